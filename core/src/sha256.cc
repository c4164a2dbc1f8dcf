// The OpenSSL adapter for SHA-256. OpenSSL failures here mean a broken installation: they are assertions.
#include "core/sha256.h"

#include <openssl/evp.h>

#include "core/assert.h"

namespace ledger {
namespace {

// Fetched once: EVP_sha256() makes every initialisation look the algorithm up again in OpenSSL 3, which costs
// more than hashing a command.
const EVP_MD* Sha256Algorithm() {
  static EVP_MD* const algorithm = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  LEDGER_ASSERT(algorithm != nullptr);
  return algorithm;
}

}  // namespace

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  LEDGER_ASSERT(context_ != nullptr);
  LEDGER_ASSERT(EVP_DigestInit_ex2(static_cast<EVP_MD_CTX*>(context_), Sha256Algorithm(), nullptr) == 1);
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(context_)); }

void Sha256::Update(std::span<const uint8_t> bytes) {
  LEDGER_ASSERT(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(context_), bytes.data(), bytes.size()) == 1);
}

void Sha256::Update(std::string_view bytes) {
  LEDGER_ASSERT(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(context_), bytes.data(), bytes.size()) == 1);
}

Digest Sha256::Finish() {
  Digest out{};
  unsigned int length = 0;
  LEDGER_ASSERT(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(context_), out.data(), &length) == 1);
  LEDGER_ASSERT(length == out.size());
  return out;
}

Digest Sha256Of(std::string_view bytes) {
  // One context per thread, reused: creating one per hash costs as much as the hash.
  struct Context {
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(context); }
  };
  thread_local Context reused;
  LEDGER_ASSERT(reused.context != nullptr);
  LEDGER_ASSERT(EVP_DigestInit_ex2(reused.context, Sha256Algorithm(), nullptr) == 1);
  LEDGER_ASSERT(EVP_DigestUpdate(reused.context, bytes.data(), bytes.size()) == 1);
  Digest out{};
  unsigned int length = 0;
  LEDGER_ASSERT(EVP_DigestFinal_ex(reused.context, out.data(), &length) == 1);
  LEDGER_ASSERT(length == out.size());
  return out;
}

std::string ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::optional<std::string> FromHex(std::string_view hex) {
  if (hex.empty() || hex.size() % 2 != 0) return std::nullopt;
  auto digit = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  std::string bytes;
  bytes.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int high = digit(hex[i]), low = digit(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(high * 16 + low));
  }
  return bytes;
}

}  // namespace ledger
