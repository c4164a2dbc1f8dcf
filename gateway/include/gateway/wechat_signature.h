// WeChat Pay API v3 signatures, as merchants' SDKs make and check them:
// - a request carries `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",
//   timestamp="…",serial_no="…"`, the signature being SHA256withRSA (PKCS #1 v1.5), base64, by the merchant's
//   key whose serial is serial_no, over RequestMessage; or, by a merchant's SM2 key (国密),
//   `WECHATPAY2-SM2-WITH-SM3 …`, the signature being SM2 with SM3 (ID "1234567812345678", the standard's
//   default; DER-encoded r and s), base64, over the same message;
// - a response (and a notification) carries Wechatpay-Serial, -Signature, -Timestamp, -Nonce and
//   -Signature-Type, the signature by the platform's key over ResponseMessage.
// CheckRequest is the gateway's whole check of a request's signature; every refusal it gives is answered 401
// with code SIGN_ERROR.
// Thread-safety: ApiKey is immutable after creation (use from any thread); CheckRequest uses the NonceCache
// it is given, which is not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/pkcs11_token.h"
#include "core/status.h"
#include "gateway/nonce_cache.h"

namespace ledger::gateway {

inline constexpr char kSignatureScheme[] = "WECHATPAY2-SHA256-RSA2048";
inline constexpr char kSm2SignatureScheme[] = "WECHATPAY2-SM2-WITH-SM3";
// The signer ID SM2 signatures are made and checked with (GM/T 0009's default, as WeChat Pay uses it).
inline constexpr char kSm2SignerId[] = "1234567812345678";

// What signs: RSA (SHA256withRSA) or SM2 (SM2 with SM3).
enum class KeyAlgorithm : char { kRsa, kSm2 };

// The Authorization scheme a key of `algorithm` signs under.
inline const char* SchemeOf(KeyAlgorithm algorithm) {
  return algorithm == KeyAlgorithm::kSm2 ? kSm2SignatureScheme : kSignatureScheme;
}
// A request's timestamp may be this far from the gateway's clock, either way (WeChat's five minutes).
inline constexpr int64_t kTimestampWindowSeconds = 5 * 60;

// The fields of an Authorization header.
struct Authorization {
  KeyAlgorithm scheme = KeyAlgorithm::kRsa;  // WECHATPAY2-SHA256-RSA2048 or WECHATPAY2-SM2-WITH-SM3
  std::string mchid;
  std::string nonce_str;
  std::string signature;  // base64
  std::string timestamp;  // decimal seconds since the epoch, as sent
  std::string serial_no;
};

// Parses an Authorization header: the scheme (either above), then the five fields, each once, as key="value"
// separated by commas; mchid, nonce_str, timestamp and serial_no hold letters, digits, '-' and '_' only.
// Errors: InvalidArgument naming what is wrong.
Result<Authorization> ParseAuthorization(std::string_view header);

// The bytes a request signature covers: METHOD\nTARGET\nTIMESTAMP\nNONCE\nBODY\n (TARGET: path and query as
// sent; BODY: the request's bytes, empty for a GET).
std::string RequestMessage(std::string_view method, std::string_view target, std::string_view timestamp,
                           std::string_view nonce, std::string_view body);
// The bytes a response or notification signature covers: TIMESTAMP\nNONCE\nBODY\n.
std::string ResponseMessage(std::string_view timestamp, std::string_view nonce, std::string_view body);

// A key of the API's signatures: RSA of 2048 to 4096 bits with public exponent 65537, or SM2 (a merchant's
// 国密 key); public or private, from PEM (a private key in PKCS #8 or PKCS #1, a public key as
// SubjectPublicKeyInfo), or an RSA key in a PKCS #11 token.
class ApiKey {
 public:
  // Errors: InvalidArgument (not PEM; RSA under 2048 or over 4096 bits or with another exponent; neither RSA
  // nor SM2).
  static Result<std::unique_ptr<ApiKey>> FromPem(std::string_view pem);
  // The private key `ref` names, which signs in its token (core/pkcs11_token.h). Errors: InvalidArgument
  // (TokenKey::Open's, or not a sound RSA key).
  static Result<std::unique_ptr<ApiKey>> FromPkcs11(const Pkcs11KeyRef& ref);
  ~ApiKey();
  ApiKey(const ApiKey&) = delete;
  ApiKey& operator=(const ApiKey&) = delete;

  bool is_private() const { return is_private_; }
  KeyAlgorithm algorithm() const { return algorithm_; }
  // SHA256withRSA, PKCS #1 v1.5, or SM2 with SM3 (kSm2SignerId), base64 (no line breaks). Requires a private
  // key. A key in memory always
  // signs; a token's may fail (removed, logged out). Errors: IoError. Signatures by a token's key are made
  // one at a time.
  Result<std::string> SignBase64(std::string_view message) const;
  // False for anything but a valid signature of `message` by this key (bad base64 included).
  bool VerifyBase64(std::string_view message, std::string_view signature_base64) const;
  // The public key: SubjectPublicKeyInfo, DER and PEM.
  std::string PublicKeyDer() const;
  std::string PublicKeyPem() const;

 private:
  ApiKey() = default;
  void* key_ = nullptr;  // EVP_PKEY: the key in memory, or a token's public key
  bool is_private_ = false;
  KeyAlgorithm algorithm_ = KeyAlgorithm::kRsa;
  std::unique_ptr<TokenKey> token_;  // a token's key: it signs
};

// A merchant's request key as the ledger registered it.
struct MerchantKey {
  std::string mchid;
  std::shared_ptr<const ApiKey> key;
  bool revoked = false;
};
using MerchantKeyLookup = std::function<std::optional<MerchantKey>(std::string_view serial_no)>;

// A request as received.
struct SignedRequest {
  std::string_view method;
  std::string_view target;  // path and query
  std::string_view body;
  std::string_view authorization;  // the header's value
};

// Checks a request's signature as WeChat Pay does: the header parses, the serial is a registered key of the
// merchant the header names, of the header's scheme's algorithm, and is not revoked, the timestamp is within
// kTimestampWindowSeconds of `now_s`, the signature verifies, and (last, so that a forgery cannot fill the
// cache) the merchant's nonce was not seen within the window. Returns the header's fields (its mchid is the
// authenticated merchant). Errors: InvalidArgument with the reason, for the gateway's log (the client gets
// only SIGN_ERROR).
Result<Authorization> CheckRequest(const SignedRequest& request, int64_t now_s, const MerchantKeyLookup& keys,
                                   NonceCache& nonces);

}  // namespace ledger::gateway
