// Base64 (RFC 4648, standard alphabet, padded) for the gateway's signatures (private to gateway/src).
#pragma once

#include <openssl/evp.h>

#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ledger::gateway {

inline std::string Base64(const unsigned char* bytes, size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes, static_cast<int>(size));
  out.resize(static_cast<size_t>(written));
  return out;
}

// Strict base64 of at most `max_size` characters: the standard alphabet, padded to a multiple of four.
// nullopt otherwise.
inline std::optional<std::vector<unsigned char>> FromBase64(std::string_view text, size_t max_size) {
  if (text.empty() || text.size() % 4 != 0 || text.size() > max_size) return std::nullopt;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool padding = c == '=' && i + 2 >= text.size() && (i + 1 == text.size() || text[i + 1] == '=');
    if (!padding && !std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/') return std::nullopt;
  }
  std::vector<unsigned char> out(text.size() / 4 * 3);
  const int decoded = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                      static_cast<int>(text.size()));
  if (decoded < 0) return std::nullopt;
  size_t size = static_cast<size_t>(decoded);
  if (text.ends_with("==")) {
    size -= 2;
  } else if (text.ends_with("=")) {
    size -= 1;
  }
  out.resize(size);
  return out;
}

}  // namespace ledger::gateway
