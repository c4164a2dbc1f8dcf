// Replay: reading history back (from the `events` column family or from the ledger.events topic), verifying
// the sequence, the hash chain and the signed checkpoints, rebuilding projections into a fresh store, and
// digesting a store's state canonically.
// Thread-safety: functions take their stores exclusively for the call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/sha256.h"
#include "core/signing.h"
#include "core/status.h"
#include "storage/store.h"

namespace ledger::replay {

// Calls fn(sequence, record) for each event in order until fn returns false. `sequence` is where the source
// keeps the record (the key in RocksDB, the ledger.sequence header on Kafka). Errors: IoError.
using EventSource = std::function<Status(const std::function<bool(uint64_t, std::string_view)>&)>;

// The events of `store` from sequence 1.
EventSource StoreSource(const Store& store);

struct ReplayOptions {
  uint64_t to_sequence = UINT64_MAX;
  // Stops before the first event recorded (recorded_at) after this instant.
  std::optional<int64_t> as_of_ns;
  // Checks checkpoint signatures with this key; without one, signatures are reported as not checked.
  const SignatureVerifier* verifier = nullptr;
  // Called now and then, on the calling thread, with the number of events read so far.
  std::function<void(uint64_t)> progress;
  // With a target: how many threads fold the projectors (each owns some of them); 0 means one per hardware
  // thread. The rebuilt state is the same for any number.
  size_t fold_threads = 0;
};

struct ReplayReport {
  uint64_t events_read = 0;
  uint64_t last_sequence = 0;
  Digest chain_head{};
  uint64_t checkpoints_seen = 0;
  uint64_t checkpoints_verified = 0;  // signature (when a key was given), chain head and digests all equal
  bool signatures_checked = false;
  // The last checkpoint event whose signature was checked and verified (0: none): a signature vouches for the
  // history through it; nothing proves who wrote the events after it.
  uint64_t signed_through = 0;
  // Set when verification failed: the first sequence that is wrong and what is wrong with it.
  std::optional<uint64_t> first_bad_sequence;
  std::string problem;
  bool ok() const { return !first_bad_sequence.has_value(); }
};

// Reads events from `source`, checks that sequences start at 1 and rise by one, recomputes every hash, and
// checks every checkpoint (it must cover the sequence before it, name the chain head there, carry a valid
// signature, and — when `target` is given — match the rebuilt projection digests). When `target` is not null
// every verified event is written into it and folded through fresh ledger projectors, on
// options.fold_threads threads beside the caller's (which reads and verifies), committed in large batches
// (synced or not as the target was opened: a rebuild can be redone, so the CLI opens it with sync off). The
// target is written only while no fold thread reads it. Stops at the first bad event; the target then holds
// the events before it and their projections' records, and may hold records of a few later events too.
// Errors: IoError from a store or the source; verification failures are in the report.
Result<ReplayReport> Replay(const EventSource& source, Store* target, const ReplayOptions& options);

// Shorthand: replay `source`'s own events up to `to_sequence`.
Result<ReplayReport> Replay(const Store& source, Store* target, uint64_t to_sequence = UINT64_MAX);

// Where a rebuilt store and a live one disagree: the first differing key of one projector, with each side's
// value described for people (a balance as its amount, other records as their fields; "(absent)" when
// missing).
struct StateDifference {
  std::string projector;
  std::string key;
  std::string live;
  std::string rebuilt;
};

// Compares `live` with `rebuilt` projector by projector (each over its own key prefixes, in key order) and
// returns the first differing key of every projector that differs; empty when the states are equal.
// Errors: IoError.
Result<std::vector<StateDifference>> FirstDifferences(const Store& live, const Store& rebuilt);

// SHA-256 over every (key, value) of the `state` column family in key order, each length-prefixed: equal for
// equal contents whatever the RocksDB file layout. Errors: IoError.
Result<Digest> StateDigest(const Store& store);

}  // namespace ledger::replay
