// SHA-256 through OpenSSL 3 (the only place OpenSSL's digest API is used). Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ledger {

using Digest = std::array<uint8_t, 32>;

// Incremental SHA-256 over any number of byte ranges.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::span<const uint8_t> bytes);
  void Update(std::string_view bytes);
  Digest Finish();

 private:
  void* context_;  // EVP_MD_CTX, kept out of the header
};

Digest Sha256Of(std::string_view bytes);
std::string ToHex(std::span<const uint8_t> bytes);
// Lower-case hex (an even, non-zero number of digits) back to bytes; nullopt for anything else.
std::optional<std::string> FromHex(std::string_view hex);

}  // namespace ledger
