#include "gateway/merchant_client.h"

#include <openssl/evp.h>

#include <charconv>
#include <chrono>

#include "core/assert.h"
#include "core/sha256.h"
#include "new_file.h"
#include "wechat_resources.h"

namespace ledger::gateway {

namespace {

// One file of a kit folder, without its trailing line break (the gateway's bounded reader).
Result<std::string> ReadKitFile(const std::string& kit_dir, const char* name) {
  Result<std::string> value = ReadWhole(kit_dir + "/" + name, 0);
  if (!value.ok()) return value.status();
  while (!value->empty() && (value->back() == '\n' || value->back() == '\r')) value->pop_back();
  return value;
}

std::string HeaderOf(const HttpAnswer& answer, const char* name) {
  const auto found = answer.headers.find(name);
  return found == answer.headers.end() ? std::string() : found->second;
}

}  // namespace

Result<MerchantIdentity> LoadMerchantIdentity(const std::string& kit_dir, std::string_view mchid) {
  MerchantIdentity merchant;
  merchant.mchid = std::string(mchid);
  Result<std::string> key_pem = ReadKitFile(kit_dir, "apiclient_key.pem");
  Result<std::string> serial = ReadKitFile(kit_dir, "serial_no");
  Result<std::string> platform_pem = ReadKitFile(kit_dir, "platform_public_key.pem");
  Result<std::string> platform_id = ReadKitFile(kit_dir, "platform_public_key_id");
  for (const Result<std::string>* file : {&key_pem, &serial, &platform_pem, &platform_id})
    if (!file->ok()) return file->status();
  Result<std::unique_ptr<ApiKey>> key = ApiKey::FromPem(*key_pem);
  if (!key.ok()) return Status::InvalidArgument("apiclient_key.pem: " + key.status().message());
  if (!(*key)->is_private()) return Status::InvalidArgument("apiclient_key.pem holds no private key");
  Result<std::unique_ptr<ApiKey>> platform = ApiKey::FromPem(*platform_pem);
  if (!platform.ok())
    return Status::InvalidArgument("platform_public_key.pem: " + platform.status().message());
  if ((*platform)->algorithm() != KeyAlgorithm::kRsa)  // answers are signed WECHATPAY2-SHA256-RSA2048
    return Status::InvalidArgument("platform_public_key.pem is not an RSA key");
  merchant.serial_no = *serial;
  merchant.key = std::move(key).value();
  merchant.platform_key = std::move(platform).value();
  merchant.platform_key_id = *platform_id;
  return merchant;
}

std::string AuthorizationFor(const MerchantIdentity& merchant, std::string_view method,
                             std::string_view target, std::string_view body, std::string_view timestamp,
                             std::string_view nonce) {
  // A merchant's key is in memory (LoadMerchantIdentity), where signing cannot fail.
  const std::string signature =
      merchant.key->SignBase64(RequestMessage(method, target, timestamp, nonce, body)).value();
  return std::string(SchemeOf(merchant.key->algorithm())) + " mchid=\"" + merchant.mchid + "\",nonce_str=\"" +
         std::string(nonce) + "\",signature=\"" + signature + "\",timestamp=\"" + std::string(timestamp) +
         "\",serial_no=\"" + merchant.serial_no + "\"";
}

Result<HttpAnswer> CallSigned(HttpsConnection& connection, const MerchantIdentity& merchant,
                              std::string_view method, std::string_view target, std::string_view body,
                              SignedAnswer answer_kind) {
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const std::string timestamp = std::to_string(now_s);
  const std::string nonce = WeChatNonce();
  Result<HttpAnswer> answer = connection.Send(
      method, target, body,
      {{"Authorization", AuthorizationFor(merchant, method, target, body, timestamp, nonce)}});
  if (!answer.ok() || answer->status < 200 || answer->status > 299 || answer_kind == SignedAnswer::kDownload)
    return answer;
  // As the SDKs: a 2xx answer counts only when the platform signed it.
  if (HeaderOf(*answer, "wechatpay-serial") != merchant.platform_key_id)
    return Status::Corruption("the answer to " + std::string(target) + " names another platform key");
  // An answer signed long ago may be a recorded one played back.
  const std::string signed_at = HeaderOf(*answer, "wechatpay-timestamp");
  int64_t signed_at_s = 0;
  const auto [end, parsed] =
      std::from_chars(signed_at.data(), signed_at.data() + signed_at.size(), signed_at_s);
  if (parsed != std::errc() || end != signed_at.data() + signed_at.size() ||
      signed_at_s < now_s - kTimestampWindowSeconds || signed_at_s > now_s + kTimestampWindowSeconds)
    return Status::Corruption("the answer to " + std::string(target) +
                              " was not signed within 5 minutes of now");
  const std::string message = ResponseMessage(signed_at, HeaderOf(*answer, "wechatpay-nonce"), answer->body);
  if (!merchant.platform_key->VerifyBase64(message, HeaderOf(*answer, "wechatpay-signature")))
    return Status::Corruption("the answer to " + std::string(target) + " is not signed by the platform key");
  return answer;
}

std::string BillHash(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  LEDGER_ASSERT(EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha1(), nullptr) == 1);
  return ToHex(std::span<const uint8_t>(digest, size));
}

}  // namespace ledger::gateway
