#include "gateway/wechat_signature.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <vector>

#include "base64.h"
#include "core/assert.h"

namespace ledger::gateway {
namespace {

constexpr size_t kSignatureBase64Max = 1024;  // an RSA-4096 signature is 684 base64 characters

std::optional<std::vector<unsigned char>> FromBase64(std::string_view text) {
  return gateway::FromBase64(text, kSignatureBase64Max);
}

// One key="value" field of an Authorization header, from `rest` (advanced past it and a following comma).
bool NextField(std::string_view& rest, std::string_view& key, std::string_view& value) {
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  const size_t equals = rest.find('=');
  if (equals == std::string_view::npos || equals + 1 >= rest.size() || rest[equals + 1] != '"') return false;
  key = rest.substr(0, equals);
  const size_t close = rest.find('"', equals + 2);
  if (close == std::string_view::npos) return false;
  value = rest.substr(equals + 2, close - equals - 2);
  rest.remove_prefix(close + 1);
  if (!rest.empty()) {
    if (rest.front() != ',' || rest.size() == 1) return false;  // a comma, then another field
    rest.remove_prefix(1);
  }
  return true;
}

std::optional<int64_t> Seconds(std::string_view text) {
  int64_t value = 0;
  if (text.empty() || text.size() > 12) return std::nullopt;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

// RSA, 2048 to 4096 bits (a longer key's signature would not fit kSignatureBase64Max), exponent 65537 (an
// exponent of 1 makes every padded message its own signature: anyone could sign).
bool IsSoundRsaKey(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA || EVP_PKEY_get_bits(key) < 2048 ||
      EVP_PKEY_get_bits(key) > 4096)
    return false;
  BIGNUM* exponent = nullptr;
  if (EVP_PKEY_get_bn_param(key, "e", &exponent) != 1) return false;
  const bool f4 = BN_is_word(exponent, 65537) == 1;
  BN_free(exponent);
  return f4;
}

// An SM2 key whose public point passes OpenSSL's check (on the curve, not the point at infinity): a key no
// signature could verify under is no key.
bool IsSoundSm2Key(EVP_PKEY* key) {
  EVP_PKEY_CTX* context = EVP_PKEY_CTX_new(key, nullptr);
  LEDGER_ASSERT(context != nullptr);
  const bool sound = EVP_PKEY_public_check(context) == 1;
  EVP_PKEY_CTX_free(context);
  ERR_clear_error();
  return sound;
}

const EVP_MD* DigestOf(KeyAlgorithm algorithm) {
  return algorithm == KeyAlgorithm::kSm2 ? EVP_sm3() : EVP_sha256();
}

// A digest context for signing or verifying with `key`; for SM2 it carries the signer ID, which the SM2
// signature's digest covers (OpenSSL's EVP_PKEY-SM2: set on a key context given to the digest context before
// its DigestSign/VerifyInit, and freed after it: the digest context does not own it).
class DigestContext {
 public:
  DigestContext(EVP_PKEY* key, KeyAlgorithm algorithm) : context_(EVP_MD_CTX_new()) {
    LEDGER_ASSERT(context_ != nullptr);
    if (algorithm != KeyAlgorithm::kSm2) return;
    key_context_ = EVP_PKEY_CTX_new(key, nullptr);
    LEDGER_ASSERT(key_context_ != nullptr &&
                  EVP_PKEY_CTX_set1_id(key_context_, kSm2SignerId, sizeof(kSm2SignerId) - 1) == 1);
    EVP_MD_CTX_set_pkey_ctx(context_, key_context_);
  }
  ~DigestContext() {
    EVP_MD_CTX_free(context_);
    EVP_PKEY_CTX_free(key_context_);
  }
  DigestContext(const DigestContext&) = delete;
  DigestContext& operator=(const DigestContext&) = delete;
  EVP_MD_CTX* get() const { return context_; }

 private:
  EVP_MD_CTX* context_;
  EVP_PKEY_CTX* key_context_ = nullptr;
};

}  // namespace

Result<Authorization> ParseAuthorization(std::string_view header) {
  const size_t space = header.find(' ');
  const std::string_view scheme = header.substr(0, space);
  if (space == std::string_view::npos || (scheme != kSignatureScheme && scheme != kSm2SignatureScheme))
    return Status::InvalidArgument(std::string("Authorization is not ") + kSignatureScheme + " or " +
                                   kSm2SignatureScheme);
  std::string_view rest = header.substr(space + 1);
  std::map<std::string_view, std::string_view> fields;
  while (!rest.empty()) {
    std::string_view key, value;
    if (!NextField(rest, key, value))
      return Status::InvalidArgument("Authorization: a field is not key=\"value\"");
    if (!fields.emplace(key, value).second)
      return Status::InvalidArgument("Authorization: field " + std::string(key) + " given twice");
  }
  Authorization out;
  out.scheme = scheme == SchemeOf(KeyAlgorithm::kSm2) ? KeyAlgorithm::kSm2 : KeyAlgorithm::kRsa;
  const std::pair<const char*, std::string*> wanted[] = {{"mchid", &out.mchid},
                                                         {"nonce_str", &out.nonce_str},
                                                         {"signature", &out.signature},
                                                         {"timestamp", &out.timestamp},
                                                         {"serial_no", &out.serial_no}};
  for (const auto& [name, field] : wanted) {
    const auto found = fields.find(name);
    if (found == fields.end() || found->second.empty())
      return Status::InvalidArgument(std::string("Authorization: no ") + name);
    *field = std::string(found->second);
  }
  if (fields.size() != std::size(wanted)) return Status::InvalidArgument("Authorization: an unknown field");
  // Bounded, since a nonce is kept for the window: WeChat's are 32 characters, its serials 40.
  if (out.mchid.size() > 32 || out.nonce_str.size() > 64 || out.serial_no.size() > 64 ||
      out.signature.size() > kSignatureBase64Max || out.timestamp.size() > 12)
    return Status::InvalidArgument("Authorization: a field is too long");
  // Letters, digits, '-' and '_' only: a line break in a nonce would move bytes between the signed message's
  // lines (a nonce ending in a line break and "{" signs the same message as a body starting with "{"), making
  // a replay look new.
  for (const std::string* field : {&out.mchid, &out.nonce_str, &out.timestamp, &out.serial_no}) {
    if (!std::all_of(field->begin(), field->end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        }))
      return Status::InvalidArgument("Authorization: a field holds other than letters, digits, '-' or '_'");
  }
  return out;
}

std::string RequestMessage(std::string_view method, std::string_view target, std::string_view timestamp,
                           std::string_view nonce, std::string_view body) {
  std::string message;
  message.reserve(method.size() + target.size() + timestamp.size() + nonce.size() + body.size() + 5);
  for (std::string_view part : {method, target, timestamp, nonce, body}) message.append(part).push_back('\n');
  return message;
}

std::string ResponseMessage(std::string_view timestamp, std::string_view nonce, std::string_view body) {
  std::string message;
  for (std::string_view part : {timestamp, nonce, body}) message.append(part).push_back('\n');
  return message;
}

Result<std::unique_ptr<ApiKey>> ApiKey::FromPem(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  LEDGER_ASSERT(bio != nullptr);
  const bool is_private = pem.find("PRIVATE KEY-----") != std::string_view::npos;
  EVP_PKEY* key = is_private ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr)
                             : PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) return Status::InvalidArgument("not a PEM key");
  const bool sm2 = EVP_PKEY_is_a(key, "SM2") == 1;
  if (sm2 && !IsSoundSm2Key(key)) {
    EVP_PKEY_free(key);
    return Status::InvalidArgument("not a valid SM2 public key (its point fails OpenSSL's public key check)");
  }
  if (!sm2 && !IsSoundRsaKey(key)) {
    EVP_PKEY_free(key);
    return Status::InvalidArgument("not an SM2 key, nor an RSA key of 2048 to 4096 bits with exponent 65537");
  }
  std::unique_ptr<ApiKey> out(new ApiKey());
  out->key_ = key;
  out->is_private_ = is_private;
  out->algorithm_ = sm2 ? KeyAlgorithm::kSm2 : KeyAlgorithm::kRsa;
  return out;
}

Result<std::unique_ptr<ApiKey>> ApiKey::FromPkcs11(const Pkcs11KeyRef& ref) {
  Result<std::unique_ptr<TokenKey>> token = TokenKey::Open(ref);
  if (!token.ok()) return token.status();
  std::unique_ptr<ApiKey> out(new ApiKey());
  out->key_ = (*token)->NewPublicKey();
  out->is_private_ = true;
  if ((*token)->kind() != TokenKey::Kind::kRsa || !IsSoundRsaKey(static_cast<EVP_PKEY*>(out->key_)))
    return Status::InvalidArgument(ref.uri +
                                   " is not an RSA key of 2048 to 4096 bits with public exponent 65537");
  out->token_ = std::move(token).value();
  return out;
}

ApiKey::~ApiKey() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

Result<std::string> ApiKey::SignBase64(std::string_view message) const {
  LEDGER_ASSERT(is_private_);
  if (token_) {
    Result<std::string> signature = token_->Sign(message);
    // The token's reason (unreachable, PIN refused, another key): what an operator needs in the log.
    if (!signature.ok())
      return Status::IoError("the platform key's token did not sign: " + signature.status().message());
    return Base64(reinterpret_cast<const unsigned char*>(signature->data()), signature->size());
  }
  const DigestContext digest(static_cast<EVP_PKEY*>(key_), algorithm_);
  EVP_MD_CTX* context = digest.get();
  const auto* bytes = reinterpret_cast<const unsigned char*>(message.data());
  size_t length = 0;
  std::vector<unsigned char> signature;
  bool signed_ok = EVP_DigestSignInit(context, nullptr, DigestOf(algorithm_), nullptr,
                                      static_cast<EVP_PKEY*>(key_)) == 1 &&
                   EVP_DigestSign(context, nullptr, &length, bytes, message.size()) == 1;
  if (signed_ok) {
    signature.resize(length);
    signed_ok = EVP_DigestSign(context, signature.data(), &length, bytes, message.size()) == 1;
  }
  LEDGER_ASSERT(signed_ok);  // a key in memory signs whatever it is given
  return Base64(signature.data(), length);
}

std::string ApiKey::PublicKeyDer() const {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(static_cast<EVP_PKEY*>(key_), &der);
  LEDGER_ASSERT(length > 0);
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

std::string ApiKey::PublicKeyPem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  LEDGER_ASSERT(bio != nullptr && PEM_write_bio_PUBKEY(bio, static_cast<EVP_PKEY*>(key_)) == 1);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(length));
  BIO_free(bio);
  return out;
}

bool ApiKey::VerifyBase64(std::string_view message, std::string_view signature_base64) const {
  const std::optional<std::vector<unsigned char>> signature = FromBase64(signature_base64);
  if (!signature) return false;
  const DigestContext digest(static_cast<EVP_PKEY*>(key_), algorithm_);
  EVP_MD_CTX* context = digest.get();
  bool valid = EVP_DigestVerifyInit(context, nullptr, DigestOf(algorithm_), nullptr,
                                    static_cast<EVP_PKEY*>(key_)) == 1 &&
               EVP_DigestVerify(context, signature->data(), signature->size(),
                                reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  return valid;
}

Result<Authorization> CheckRequest(const SignedRequest& request, int64_t now_s, const MerchantKeyLookup& keys,
                                   NonceCache& nonces) {
  // A shorter memory would forget a nonce while its request could still be accepted.
  LEDGER_ASSERT(nonces.window_seconds() >= kTimestampWindowSeconds);
  Result<Authorization> authorization = ParseAuthorization(request.authorization);
  if (!authorization.ok()) return authorization.status();
  const std::optional<MerchantKey> key = keys(authorization->serial_no);
  if (!key) return Status::InvalidArgument("unknown serial_no");
  if (key->mchid != authorization->mchid) return Status::InvalidArgument("serial_no is another merchant's");
  if (key->revoked) return Status::InvalidArgument("serial_no is revoked");
  if (key->key->algorithm() != authorization->scheme)
    return Status::InvalidArgument("the scheme is not the algorithm of serial_no's key");
  const std::optional<int64_t> timestamp = Seconds(authorization->timestamp);
  if (!timestamp || *timestamp > now_s + kTimestampWindowSeconds ||
      *timestamp < now_s - kTimestampWindowSeconds)
    return Status::InvalidArgument("timestamp outside the window");
  const std::string message = RequestMessage(request.method, request.target, authorization->timestamp,
                                             authorization->nonce_str, request.body);
  if (!key->key->VerifyBase64(message, authorization->signature))
    return Status::InvalidArgument("signature does not verify");
  switch (nonces.Admit(authorization->mchid, authorization->nonce_str, *timestamp, now_s)) {
    case NonceCache::Admission::kAdmitted:
      return authorization;
    case NonceCache::Admission::kReplayed:
      return Status::InvalidArgument("nonce_str seen within the window (a replay)");
    case NonceCache::Admission::kFull:
      return Status::InvalidArgument("nonce cache full of nonces inside the window");
  }
  return Status::Internal("unreachable");
}

}  // namespace ledger::gateway
