// `ledger bench --through serve`: the measured phase of bench/load.h driven through Kafka and the shard
// service (service/shard_service.h, the library behind `ledger serve`) instead of calling the ledger
// in-process. Each measured command is produced to ledger.commands, a ShardService on its own thread applies
// it on the same store, and the command counts as acknowledged when its result is readable on ledger.results:
// latency runs from the produce (closed loop) or from the command's arrival (open loop) to that moment.
//
// Set-up is not part of this: it goes through the ledger directly (bench/load.h RunSetup, published), and the
// ledger is closed before the service opens the store. The commands partition must hold no command yet (a
// fresh embedded broker): the service starts from a store with no commands offset, so it reads the partition
// from its beginning. Before measuring, one warm-up command (LoadWorkload::WarmUp, rejected, moving nothing)
// goes through the whole path, so that starting the service and connecting the clients are not measured.
//
// Bounds: at most Pacing::outstanding commands produced and not answered in a closed loop, at most
// kOpenLoopUnansweredMax in an open loop (an arrival held back by it still counts its wait as latency).
// Thread-safety: a call runs three threads of its own (the service, the results reader and the caller's,
// which produces) and joins them before it returns; on_progress runs on the caller's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "bench/load.h"
#include "core/signing.h"
#include "core/status.h"
#include "ledger/ledger.h"

namespace ledger::bench {

// The open loop's bound on commands produced and not yet answered (see Bounds above).
inline constexpr size_t kOpenLoopUnansweredMax = 65'536;
// Waiting for results gives up when none has come for this long while commands are outstanding.
inline constexpr int64_t kAnswerPatienceMs = 120'000;

struct ServeThrough {
  LedgerOptions ledger;  // the set-up store (closed) and its policy: what the service opens
  std::string brokers;   // the cluster the set-up was published to; commands and results go there too
  // A producer key the set-up registered: every command is signed with it (signed in advance, before the
  // measured phase, so the signing does not take the service's CPU) and the service checks each signature.
  // Null: unsigned commands, the service started with allow_unsigned_commands.
  std::shared_ptr<const Signer> producer_key = {};
};

struct ServeMeasuredReport {
  MeasuredReport measured;        // tally from the results read; events from the events topic
  int64_t results = 0;            // results of measured commands read (equals the command count on success)
  uint64_t events_published = 0;  // records in ledger.events at the end, set-up included
};

// Runs the measured commands of `shape` through the service, stops it (its stop callback) once every command
// is answered, and checks that each measured command got exactly one result. Errors: Internal (the service
// failed or stopped on its own, a result for a command that was not outstanding (answered twice), a result
// count on ledger.results other than the command count once the service drained), IoError (Kafka did not take
// the commands or its watermarks could not be read), Aborted (no result came for kAnswerPatienceMs while
// commands were outstanding).
Result<ServeMeasuredReport> RunMeasuredThroughServe(const ServeThrough& through, const LoadShape& shape,
                                                    const Pacing& pacing);

}  // namespace ledger::bench
