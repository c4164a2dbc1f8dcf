// ProjectionRunner: the generic downstream job. It consumes ledger.events in a consumer group, folds each
// partition's events through its own ProjectionSet, and commits the view, the last applied sequence and the
// Kafka offset of each partition in one RocksDB WriteBatch (Kafka Streams' KIP-892 pattern). A redelivered
// event (sequence <= last applied) is skipped; a gap (sequence > last applied + 1) stops the job with
// Corruption, loudly: the view would be wrong, so the job must not guess.
// Each partition's view lives in its own store, `<data_dir>/partition-<K>`, so shards never mix.
// Thread-safety: one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "projections/projector.h"
#include "storage/store.h"

namespace ledger {

struct ProjectionRunnerOptions {
  std::string brokers;
  std::string group;
  std::string data_dir;
  std::function<std::vector<std::unique_ptr<Projector>>()> make_projectors = MakeLedgerProjectors;
  bool sync = true;
};

class ProjectionRunner {
 public:
  // Errors: InvalidArgument (settings), IoError.
  static Result<std::unique_ptr<ProjectionRunner>> Open(const ProjectionRunnerOptions& options);
  ~ProjectionRunner();

  // Polls up to `max_events` events (waiting up to `timeout_ms` for the first), applies and commits them.
  // Returns how many were applied (skipped redeliveries not counted). Errors: Corruption on a gap or a bad
  // record, IoError.
  Result<size_t> RunOnce(size_t max_events, int timeout_ms);
  // Last applied sequence of a partition (0 when none).
  uint64_t LastApplied(int32_t partition) const;
  // The store of a partition's view (nullptr when the partition was never assigned).
  Store* StoreOf(int32_t partition);

 private:
  ProjectionRunner() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledger
