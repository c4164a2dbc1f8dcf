// ShardService: one shard of the ledger served from Kafka (README: Kafka; docs/ARCHITECTURE.md). It reads
// ledger.commands partition K, applies each batch of records as one group commit that also stores the next
// commands offset, publishes the group's events and results to partition K of ledger.events and
// ledger.results, answers duplicates on ledger.results, writes checkpoints as configured, and on a stop
// request drains: a final checkpoint (with a signing key) and everything committed published.
//
// Where it resumes follows docs/DECISIONS.md (Commands-topic offsets): a stored offset that no longer fits
// the partition (records gone, topic replaced) is refused unless an operator accepts the gap, which is then
// recorded as a CommandsSkipped event. Errors are returned, never signalled: the caller owns signal handling
// and asks the service to stop through ShardServiceOptions::stop_requested. Thread-safety: one thread runs a
// ShardService; stop_requested is called from that thread and from its commit thread (which publishes), and
// may read state other threads set (an atomic flag).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "kafka/kafka.h"
#include "ledger/ledger.h"

namespace ledger::service {

struct ShardServiceOptions {
  // The shard's store and policy. config.shard is set to `shard` by the service.
  LedgerOptions ledger;
  // Kafka bootstrap servers. Empty: config.kafka_brokers; empty there too: an in-process embedded broker,
  // started with `shards` partitions per topic (it starts empty on every run).
  std::string brokers;
  uint32_t shard = 0;
  uint32_t shards = 1;         // partitions per topic; `shard` must be below it
  int replication_factor = 1;  // of the topics the service creates on a real cluster
  // "kafka": a group's results are published once Kafka acknowledged its events; "local": after the local
  // commit (publishing catches up). Empty: config.kafka_ack.
  std::string ack;
  // "local" answers before Kafka holds the events: a machine lost with its disk takes acknowledged events
  // with it. Connect refuses it unless this is set.
  bool allow_ack_local = false;
  // Not empty: the operator who accepts a commands gap found at start (see CheckOperatorName).
  std::string accept_command_gap;
  // Legs (several shards): each shard tags the legs it sends, and applies only legs whose tag checks, with
  // the ledger's key (ledger.signer, which every shard holds; LegAuthenticator). Connect refuses several
  // shards without it unless `allow_unsigned_legs` (then a writer of ledger.legs can forge legs), and a
  // `public_key` (the ledger's, [audit] public_key) that is not its pair.
  std::shared_ptr<const SignatureVerifier> public_key;
  bool allow_unsigned_legs = false;
  // Commands: a record of ledger.commands is applied only when a producer key the ledger registered
  // (add_producer_key) and has not revoked signed it, and its role may send its type; any other is recorded
  // as UNAUTHENTICATED_COMMAND under kafka:<shard>:<offset> and moves nothing. With `allow_unsigned_commands`
  // a record without producer headers is applied unchecked (then anyone who can write ledger.commands moves
  // money: for test set-ups); a signed one is still checked.
  bool allow_unsigned_commands = false;
  // Threads (the staging thread among them) that parse a batch's commands and check their producers'
  // signatures before the batch is staged in order; 0: as many as the CPUs this process may run on.
  size_t check_threads = 0;
  // Reads ledger.legs partition `shard` from its first kept record instead of the stored legs offset: the
  // operator's way back when a genuine leg was passed (a shard configured with another key pair, since
  // fixed) and the next leg of its sender stops serve at the gap. Legs applied before are skipped by number.
  bool reread_legs = false;
  // Not empty: serve backs its own store up into this folder (Ledger::Backup: RocksDB's BackupEngine,
  // incremental, checksummed) once `backup_every` has passed since the last, between groups (nothing staged,
  // every committed group folded; serving pauses while the new files are copied), keeping the newest
  // `backup_keep`. A failed backup is logged and tried again at the next interval: it never stops serving.
  std::string backup_dir;
  std::chrono::milliseconds backup_every{std::chrono::hours(1)};
  uint32_t backup_keep = 7;
  // Asked between polls and while waiting for Kafka; true ends the run (kServe ends, kDrain follows).
  // Unset: never stops on its own.
  std::function<bool()> stop_requested;
};

// The steps of a run, in order. A failed run names the step, so that the caller can report it its own way.
enum class ServeStep {
  kOpenLedger,       // opening the store (errors as Ledger::Open)
  kOpenCommands,     // checking the stored commands offset and opening the commands reader
  kCreatePublisher,  // creating the publisher (InvalidArgument: bad settings; IoError: tails not read)
  kCatchUp,          // publishing what was committed before the last stop but not published
  kServe,            // consuming commands
  kDrain,            // the final checkpoint and publish
};

// How a run ended: status ok when it stopped on request with everything committed and published; Aborted at
// kOpenCommands when it was asked to stop before it consumed or published anything (see Run).
struct ServeOutcome {
  ServeStep step = ServeStep::kDrain;
  Status status;
};

// The reason `name` cannot name an operator accepting a commands gap (1 to 200 characters, no control
// characters), or "" when it can.
std::string CheckOperatorName(const std::string& name);

class ShardService {
 public:
  // Starts the embedded broker (no brokers configured) or makes sure the ledger topics exist on the
  // configured cluster (a cluster that does not answer is logged and the run goes on: its readers and
  // publisher wait). Errors: InvalidArgument (shard not below shards), Internal (the embedded broker did not
  // start).
  static Result<std::unique_ptr<ShardService>> Connect(ShardServiceOptions options);
  ~ShardService();
  ShardService(const ShardService&) = delete;
  ShardService& operator=(const ShardService&) = delete;

  // The bootstrap servers the run uses (the embedded broker's when it started one).
  const std::string& bootstrap() const;
  bool embedded_broker() const;

  // Runs the steps of ServeStep in order until a stop request, then drains. A start the commands offset
  // refuses (kOpenCommands, InvalidArgument: the one-line reason) changes nothing in the store or on Kafka.
  // A stop request while waiting for Kafka at kOpenCommands ends the run there with Aborted, before anything
  // is published. During kServe, NotFound means the next commands offset left the partition's range while
  // serving (records gone, topic replaced): nothing is skipped and the run ends without draining.
  // Call once.
  ServeOutcome Run();

 private:
  struct Impl;
  explicit ShardService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledger::service
