// A merchant's side of the WeChat Pay API v3 signatures (wechat_signature.h), as merchants' SDKs do it: every
// request signed with the merchant's key, every 2xx answer believed only once the platform key's signature
// over it verifies. `ledger demo` drives the front door with it and the gateway benchmark signs its load with
// it; the tests drive the gateway with the real SDK instead.
// Thread-safety: MerchantIdentity is immutable (share it); a call uses the connection it is given.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "gateway/https_connection.h"
#include "gateway/wechat_signature.h"

namespace ledger::gateway {

struct MerchantIdentity {
  std::string mchid;
  std::string serial_no;
  std::shared_ptr<const ApiKey> key;           // the merchant's private key
  std::shared_ptr<const ApiKey> platform_key;  // the platform's public key
  std::string platform_key_id;
};

// The identity a merchant kit folder holds (`ledger merchant-keys --out`: apiclient_key.pem, serial_no,
// platform_public_key.pem, platform_public_key_id). Errors: NotFound or IoError (a file, at most 1 MiB),
// InvalidArgument (a key).
Result<MerchantIdentity> LoadMerchantIdentity(const std::string& kit_dir, std::string_view mchid);

// The Authorization header of a request signed at `timestamp` (epoch seconds) with `nonce`.
std::string AuthorizationFor(const MerchantIdentity& merchant, std::string_view method,
                             std::string_view target, std::string_view body, std::string_view timestamp,
                             std::string_view nonce);

// Which answers carry the platform's signature: all but a bill download, whose hash the signed answer that
// announced it carries (check it with BillHash).
enum class SignedAnswer { kExpected, kDownload };

// Signs and sends one request (timestamp now, a random nonce). Errors: as HttpsConnection::Send, and
// Corruption for a 2xx answer (kExpected) whose platform signature is missing, names another key, was made
// more than 5 minutes from now or does not verify.
Result<HttpAnswer> CallSigned(HttpsConnection& connection, const MerchantIdentity& merchant,
                              std::string_view method, std::string_view target, std::string_view body,
                              SignedAnswer answer_kind = SignedAnswer::kExpected);

// Lower-case hex SHA-1 of a downloaded bill: the trade bill's announced hash_value (hash_type SHA1).
std::string BillHash(std::string_view bytes);

}  // namespace ledger::gateway
