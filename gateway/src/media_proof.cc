#include "gateway/media_proof.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <vector>

#include "base64.h"
#include "core/assert.h"
#include "core/sha256.h"
#include "openssl_handles.h"

namespace ledger::gateway {
namespace {

constexpr size_t kMediumSignatureBase64Max = 1024;  // an RSA-4096 signature takes 684
constexpr size_t kOcraQuestionBytes = 128;          // RFC 6287: Q is 128 bytes, right-padded with zeros
constexpr int kOtpDigits = 6;

std::array<unsigned char, EVP_MAX_MD_SIZE> Hmac(const EVP_MD* md, std::string_view key, std::string_view data,
                                                unsigned int* size) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  LEDGER_ASSERT(HMAC(md, key.data(), static_cast<int>(key.size()),
                     reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
                     size) != nullptr);
  return out;
}

// RFC 4226 dynamic truncation of an HMAC to `digits` decimal digits.
std::string Truncate(const unsigned char* mac, unsigned int size, int digits) {
  const unsigned offset = mac[size - 1] & 0x0f;
  const uint32_t binary = (static_cast<uint32_t>(mac[offset] & 0x7f) << 24) |
                          (static_cast<uint32_t>(mac[offset + 1]) << 16) |
                          (static_cast<uint32_t>(mac[offset + 2]) << 8) | mac[offset + 3];
  uint32_t modulus = 1;
  for (int i = 0; i < digits; ++i) modulus *= 10;
  char text[16];
  std::snprintf(text, sizeof text, "%0*u", digits, binary % modulus);
  return text;
}

bool AllDigits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

std::string PaymentDigest(const PaymentToProve& payment) {
  std::string message = "ledger-payment-v1\n";
  for (std::string_view field : {std::string_view(payment.merchant), std::string_view(payment.order_no)}) {
    message.append(field).append(1, '\n');
  }
  message.append(std::to_string(payment.amount_minor)).append(1, '\n');
  message.append(payment.customer).append(1, '\n').append(payment.account).append(1, '\n');
  return ToHex(Sha256Of(message));
}

std::string PaymentCodeDigest(std::string_view customer, std::string_view account, int64_t timestamp_s) {
  std::string message = "ledger-payment-code-v1\n";
  message.append(customer).append(1, '\n').append(account).append(1, '\n');
  message.append(std::to_string(timestamp_s)).append(1, '\n');
  return ToHex(Sha256Of(message));
}

std::string PaymentCodeId(std::string_view code_key, std::string_view auth_code) {
  unsigned int size = 0;
  const auto mac = Hmac(EVP_sha256(), code_key, auth_code, &size);
  return ToHex(std::span<const uint8_t>(mac.data(), 16));
}

std::string OcraChallenge(std::string_view payment_digest) {
  LEDGER_ASSERT(payment_digest.size() >= 16);
  uint64_t value = 0;
  std::from_chars(payment_digest.data(), payment_digest.data() + 16, value, 16);
  char text[16];
  std::snprintf(text, sizeof text, "%08llu", static_cast<unsigned long long>(value % 100'000'000ULL));
  return text;
}

std::string Hotp(std::string_view key, uint64_t counter, int digits) {
  LEDGER_ASSERT(digits >= 6 && digits <= 8);
  unsigned char moving[8];
  for (int i = 7; i >= 0; --i, counter >>= 8) moving[i] = static_cast<unsigned char>(counter & 0xff);
  unsigned int size = 0;
  const auto mac =
      Hmac(EVP_sha1(), key, std::string_view(reinterpret_cast<const char*>(moving), sizeof moving), &size);
  return Truncate(mac.data(), size, digits);
}

Result<std::string> Ocra(std::string_view key, std::string_view question) {
  if (question.size() > 8 || !AllDigits(question))
    return Status::InvalidArgument("an OCRA question of this suite is 1 to 8 digits");
  uint64_t number = 0;
  std::from_chars(question.data(), question.data() + question.size(), number);
  // RFC 6287 section 5.1: a numeric question as a hexadecimal number, left-aligned, padded with zeros.
  char hex[32];
  std::snprintf(hex, sizeof hex, "%llX", static_cast<unsigned long long>(number));
  std::string padded(hex);
  padded.resize(2 * kOcraQuestionBytes, '0');
  std::string message(kOcraSuite);
  message.push_back('\0');
  for (size_t i = 0; i < padded.size(); i += 2) {
    unsigned value = 0;
    std::from_chars(padded.data() + i, padded.data() + i + 2, value, 16);
    message.push_back(static_cast<char>(value));
  }
  unsigned int size = 0;
  const auto mac = Hmac(EVP_sha1(), key, message, &size);
  return Truncate(mac.data(), size, kOtpDigits);
}

std::string SmsCode(std::string_view sms_key, std::string_view customer, std::string_view payment_digest,
                    int64_t window) {
  std::string message = "ledger-sms-v1\n";
  message.append(customer)
      .append(1, '\n')
      .append(payment_digest)
      .append(1, '\n')
      .append(std::to_string(window));
  unsigned int size = 0;
  const auto mac = Hmac(EVP_sha256(), sms_key, message, &size);
  return Truncate(mac.data(), size, kOtpDigits);
}

bool SameCode(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<int64_t> MatchTotp(std::string_view secret, std::string_view code, int64_t now_s) {
  if (code.size() != kOtpDigits || !AllDigits(code) || now_s < kTotpStepSeconds) return std::nullopt;
  const int64_t step = now_s / kTotpStepSeconds;
  for (int64_t candidate : {step, step - 1, step + 1}) {
    if (SameCode(Hotp(secret, static_cast<uint64_t>(candidate), kOtpDigits), code)) return candidate;
  }
  return std::nullopt;
}

bool MatchSms(std::string_view sms_key, std::string_view customer, std::string_view payment_digest,
              std::string_view code, int64_t now_s) {
  if (code.size() != kOtpDigits || !AllDigits(code)) return false;
  const int64_t window = now_s / kSmsWindowSeconds;
  return SameCode(SmsCode(sms_key, customer, payment_digest, window), code) ||
         SameCode(SmsCode(sms_key, customer, payment_digest, window - 1), code);
}

bool VerifyMediumSignature(std::string_view public_key_pem, std::string_view message,
                           std::string_view signature_base64) {
  const std::optional<std::vector<unsigned char>> signature =
      FromBase64(signature_base64, kMediumSignatureBase64Max);
  if (!signature) return false;
  Bio bio(BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size())));
  if (!bio) return false;
  Key key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return false;
  const int bits = EVP_PKEY_get_bits(key.get());
  const bool usable = (EVP_PKEY_is_a(key.get(), "EC") && bits == 256) ||
                      (EVP_PKEY_is_a(key.get(), "RSA") && bits >= 2048 && bits <= 4096);
  if (!usable) return false;
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  LEDGER_ASSERT(context != nullptr);
  const bool valid =
      EVP_DigestVerifyInit(context, nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
      EVP_DigestVerify(context, signature->data(), signature->size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(context);
  return valid;
}

Result<std::string> SignMediumProof(std::string_view private_key_pem, std::string_view message) {
  Bio bio(BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size())));
  // No passphrase: an encrypted key is refused, never asked for on a terminal.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return 0; };
  Key key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  if (!key) return Status::InvalidArgument("not a private key in PEM");
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  LEDGER_ASSERT(context != nullptr);
  size_t size = 0;
  std::vector<unsigned char> signature;
  bool signed_ok =
      EVP_DigestSignInit(context, nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
      EVP_DigestSign(context, nullptr, &size, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) == 1;
  if (signed_ok) {
    signature.resize(size);
    signed_ok = EVP_DigestSign(context, signature.data(), &size,
                               reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  }
  EVP_MD_CTX_free(context);
  if (!signed_ok) return Status::InvalidArgument("the key cannot sign");
  return Base64(signature.data(), size);
}

}  // namespace ledger::gateway
