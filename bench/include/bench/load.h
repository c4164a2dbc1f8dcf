// `ledger bench`'s end-to-end load through the path real commands take: JSON parse, validation, group commit
// with the ledger's WAL settings, publication (when given) before a command counts as acknowledged. Set-up
// (merchants, accounts, deposits, points, coupons) runs first and is not measured; the measured phase runs
// the mix of bench/load_workload.h, pipelined as the ledger is built to run (one group staged while the one
// before it commits). docs/PERFORMANCE.md describes the method.
// Thread-safety: each call owns `ledger` for its duration (the ledger's single-writer rule). RunSetup calls
// `publish` on the caller's thread; RunMeasured runs a generator thread of its own and calls `publish` on the
// ledger's commit thread.
#pragma once

#include <cstdint>
#include <functional>

#include "bench/latency_histogram.h"
#include "core/status.h"
#include "ledger/ledger.h"

namespace ledger::bench {

// The size of a run; the seed decides the mix, so the same shape gives the same commands.
struct LoadShape {
  int64_t commands = 200'000;  // measured commands
  int customers = 20'000;
  int merchants = 500;
  uint64_t seed = 1;
};

// Publishes the committed events through `last_sequence` and returns once they are acknowledged. Empty: the
// run has no Kafka and a command is acknowledged when its group is durable.
using PublishThrough = std::function<Status(uint64_t last_sequence)>;

struct CommandTally {
  int64_t accepted = 0;
  int64_t rejected = 0;
  int64_t duplicates = 0;
  void Count(const CommandResult& result);
};

struct SetupReport {
  int64_t commands = 0;
  double seconds = 0;
  int64_t rejected = 0;
};

// Runs the set-up commands of `shape` in groups of the ledger's group_commands_max, each committed and
// published before the next. Errors: Internal (a generated command does not parse), or what committing or
// publishing returned.
Result<SetupReport> RunSetup(Ledger& ledger, const LoadShape& shape, const PublishThrough& publish);

// How far the measured phase is, for progress reports.
struct LoadProgress {
  double elapsed_seconds = 0;
  int64_t commands_done = 0;
  int64_t recent_commands = 0;  // done since the previous report
  double recent_seconds = 0;    // since the previous report (or the start)
};

// How the measured commands are offered.
struct Pacing {
  // > 0: open loop, command i arrives at i / rate seconds after the start, and a group takes everything that
  // has arrived (up to group_commands_max); its latency counts from its arrival.
  double rate = 0;
  // Closed loop (rate 0): at most this many commands offered and not yet acknowledged (at least 1).
  size_t outstanding = 1;
  // > 0: on_progress is called on the writer thread between groups, once this many seconds have passed since
  // the previous call.
  double progress_seconds = 0;
  std::function<void(const LoadProgress&)> on_progress;
};

struct MeasuredReport {
  double seconds = 0;
  CommandTally tally;
  LatencyHistogram latency;   // offered to acknowledged, per command
  int64_t bytes_written = 0;  // by this process during the phase (bench/process_stats.h)
  uint64_t events = 0;        // events the phase wrote
};

// Runs the measured commands of `shape` (after RunSetup on the same shape). Returns once every group is
// acknowledged; on an error, after the group in flight has finished, so `publish` may go away then. Errors:
// Internal (a generated command does not parse), or what committing or publishing returned.
Result<MeasuredReport> RunMeasured(Ledger& ledger, const LoadShape& shape, const Pacing& pacing,
                                   const PublishThrough& publish);

}  // namespace ledger::bench
