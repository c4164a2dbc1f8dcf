// Replay: reading history back from the `events` column family, verifying the sequence and the hash chain,
// rebuilding projections into a fresh store, and digesting a store's state canonically.
// Thread-safety: functions take their stores exclusively for the call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ledger/sha256.h"
#include "ledger/status.h"
#include "ledger/store.h"

namespace ledger::replay {

struct ReplayReport {
  uint64_t events_read = 0;
  uint64_t last_sequence = 0;
  Digest chain_head{};
  // Set when verification failed: the first sequence that is wrong and what is wrong with it.
  std::optional<uint64_t> first_bad_sequence;
  std::string problem;
  bool ok() const { return !first_bad_sequence.has_value(); }
};

// Reads events 1..to_sequence from `source`, checks that sequences start at 1 and rise by one, recomputes
// every hash, and (when `target` is not null) folds every verified event through fresh ledger projectors
// into `target`, committing in groups. Stops at the first bad event. Errors: IoError from either store
// (verification failures are reported in the ReplayReport, not as errors).
Result<ReplayReport> Replay(const Store& source, Store* target, uint64_t to_sequence = UINT64_MAX);

// SHA-256 over every (key, value) of the `state` column family in key order, each length-prefixed: equal for
// equal contents whatever the RocksDB file layout. Errors: IoError.
Result<Digest> StateDigest(const Store& store);

}  // namespace ledger::replay
