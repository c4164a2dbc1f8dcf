// The OpenSSL adapter for SHA-256. OpenSSL failures here mean a broken installation: they are assertions.
#include "core/sha256.h"

#include <openssl/evp.h>

#include "core/assert.h"

namespace ledger {

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  LEDGER_ASSERT(context_ != nullptr);
  LEDGER_ASSERT(EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(context_), EVP_sha256(), nullptr) == 1);
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
  Sha256 hasher;
  hasher.Update(bytes);
  return hasher.Finish();
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

}  // namespace ledger
