// SetDigest: an order-independent, incrementally updatable hash of a set of (key, value) records, in the
// spirit of LtHash (Bellare-Micciancio's additive hashing over a lattice, as Lewi et al. use it for database
// replicas): each record maps to 1024 pseudo-random 16-bit lanes, and the digest of a set is their lane-wise
// sum modulo 2^16. Adding a record adds its lanes, removing it subtracts them, so a fold that rewrites a
// record updates the digest with the record's old and new value only: keeping it costs what changed, and two
// sets are equal exactly when (but for a negligible chance) their digests are. A record's lanes are the
// AES-256-CTR key stream under SHA-256 of its length-prefixed key and value (docs/DECISIONS.md: Set digests).
// Thread-safety: a SetDigest is a value; distinct objects may be used from distinct threads.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/sha256.h"
#include "core/status.h"

namespace ledger {

class SetDigest {
 public:
  static constexpr size_t kLanes = 1024;
  static constexpr size_t kBytes = kLanes * 2;

  // The digest of the empty set.
  SetDigest() { lanes_.fill(0); }

  void Add(std::string_view key, std::string_view value);
  void Remove(std::string_view key, std::string_view value);
  void Add(const SetDigest& other);
  void Subtract(const SetDigest& other);
  bool empty() const;
  bool operator==(const SetDigest& other) const = default;

  // The lanes as 2048 little-endian bytes (how the digest is stored) and back. Errors: Corruption (size).
  std::string Serialize() const;
  static Result<SetDigest> Parse(std::string_view bytes);
  // SHA-256 of Serialize(): the 32 bytes a checkpoint signs.
  Digest Summary() const;

 private:
  std::array<uint16_t, kLanes> lanes_;
};

}  // namespace ledger
