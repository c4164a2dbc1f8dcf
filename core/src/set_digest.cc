// SetDigest: lanes from SHA-256 then AES-256-CTR (OpenSSL). See set_digest.h.
#include "core/set_digest.h"

#include <openssl/evp.h>

#include <cstring>
#include <memory>

#include "core/assert.h"

namespace ledger {
namespace {

using Lanes = std::array<uint16_t, SetDigest::kLanes>;

// One cipher context per thread, reused: creating one per record would cost more than the key stream.
class LaneExpander {
 public:
  LaneExpander()
      : cipher_(EVP_CIPHER_fetch(nullptr, "AES-256-CTR", nullptr)), context_(EVP_CIPHER_CTX_new()) {
    LEDGER_ASSERT(cipher_ != nullptr && context_ != nullptr);
  }
  ~LaneExpander() {
    EVP_CIPHER_CTX_free(context_);
    EVP_CIPHER_free(cipher_);
  }
  LaneExpander(const LaneExpander&) = delete;
  LaneExpander& operator=(const LaneExpander&) = delete;

  // The record's lanes: the key stream of AES-256-CTR keyed by SHA-256(len(key) || key || value), counter 0.
  void Expand(std::string_view key, std::string_view value, Lanes* lanes) {
    seed_.clear();  // keeps its buffer: no allocation per record
    uint64_t key_size = key.size();
    for (int i = 7; i >= 0; --i) seed_.push_back(static_cast<char>((key_size >> (8 * i)) & 0xff));
    seed_.append(key);
    seed_.append(value);
    const Digest aes_key = Sha256Of(seed_);
    static const uint8_t kZeroIv[16] = {};
    static const uint8_t kZeros[SetDigest::kBytes] = {};
    uint8_t stream[SetDigest::kBytes];
    int written = 0;
    LEDGER_ASSERT(EVP_EncryptInit_ex(context_, cipher_, nullptr, aes_key.data(), kZeroIv) == 1);
    LEDGER_ASSERT(EVP_EncryptUpdate(context_, stream, &written, kZeros, sizeof kZeros) == 1);
    LEDGER_ASSERT(written == static_cast<int>(sizeof stream));
    for (size_t i = 0; i < SetDigest::kLanes; ++i) {
      (*lanes)[i] = static_cast<uint16_t>(stream[2 * i] | (stream[2 * i + 1] << 8));
    }
  }

 private:
  EVP_CIPHER* cipher_;
  EVP_CIPHER_CTX* context_;
  std::string seed_;
};

void ExpandRecord(std::string_view key, std::string_view value, Lanes* lanes) {
  thread_local LaneExpander expander;
  expander.Expand(key, value, lanes);
}

}  // namespace

void SetDigest::Add(std::string_view key, std::string_view value) {
  Lanes record;
  ExpandRecord(key, value, &record);
  for (size_t i = 0; i < kLanes; ++i) lanes_[i] = static_cast<uint16_t>(lanes_[i] + record[i]);
}

void SetDigest::Remove(std::string_view key, std::string_view value) {
  Lanes record;
  ExpandRecord(key, value, &record);
  for (size_t i = 0; i < kLanes; ++i) lanes_[i] = static_cast<uint16_t>(lanes_[i] - record[i]);
}

void SetDigest::Add(const SetDigest& other) {
  for (size_t i = 0; i < kLanes; ++i) lanes_[i] = static_cast<uint16_t>(lanes_[i] + other.lanes_[i]);
}

void SetDigest::Subtract(const SetDigest& other) {
  for (size_t i = 0; i < kLanes; ++i) lanes_[i] = static_cast<uint16_t>(lanes_[i] - other.lanes_[i]);
}

bool SetDigest::empty() const {
  for (uint16_t lane : lanes_) {
    if (lane != 0) return false;
  }
  return true;
}

std::string SetDigest::Serialize() const {
  std::string bytes(kBytes, '\0');
  for (size_t i = 0; i < kLanes; ++i) {
    bytes[2 * i] = static_cast<char>(lanes_[i] & 0xff);
    bytes[2 * i + 1] = static_cast<char>(lanes_[i] >> 8);
  }
  return bytes;
}

Result<SetDigest> SetDigest::Parse(std::string_view bytes) {
  if (bytes.size() != kBytes) {
    return Status::Corruption("a set digest is " + std::to_string(kBytes) + " bytes, not " +
                              std::to_string(bytes.size()));
  }
  SetDigest digest;
  for (size_t i = 0; i < kLanes; ++i) {
    digest.lanes_[i] = static_cast<uint16_t>(static_cast<uint8_t>(bytes[2 * i]) |
                                             (static_cast<uint8_t>(bytes[2 * i + 1]) << 8));
  }
  return digest;
}

Digest SetDigest::Summary() const { return Sha256Of(Serialize()); }

}  // namespace ledger
