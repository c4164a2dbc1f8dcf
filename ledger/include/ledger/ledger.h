// Ledger: the write side of one shard. It validates commands in order against the state the writer keeps in
// memory, turns them into hash-chained events, and commits each group of commands (its events and offsets) in
// one RocksDB WriteBatch with a synced WAL. The projections' records are folded into the store behind the
// commit (projections/folder.h), so the store's records are as of folded_sequence() <= the last durable
// sequence; AwaitFolded waits for them (docs/ARCHITECTURE.md: Projections behind the commit).
//
// Invariants (checked with LEDGER_ASSERT):
//  1. Sequences are 1, 2, 3, ... with no gap; each event's prev_hash is the previous event's hash.
//  2. Every event's postings sum to zero per unit.
//  3. The writer's state reflects exactly the staged events; the stored projections never lead the events,
//     and Open folds whatever they trail by before the first command.
// Thread-safety: not thread-safe. One writer thread owns a Ledger (docs/ARCHITECTURE.md: single writer per
// shard).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/set_digest.h"
#include "core/sha256.h"
#include "core/signing.h"
#include "core/status.h"
#include "ledger/command.h"
#include "storage/store.h"

namespace ledger {

class ProjectionSet;  // projections/projector.h
struct Decision;      // ledger/src/decide.h

// Whose clock decides clearing dates, limit days, coupon expiry and the reversal and refund windows: always
// the ledger time. A command's occurred_at is kept in its events as information.
enum class ClockMode {
  // The ledger time is the ledger clock (recorded_at); occurred_at must lie within config.clock_skew_max_ns
  // of it (CLOCK_SKEW).
  kSystem,
  // The ledger time follows the input: a command's occurred_at when it has one, else the ledger clock
  // (imports, tests, the demo). recorded_at stays the ledger clock.
  kOccurred,
};

struct LedgerOptions {
  std::string data_dir = "./ledger-data";
  LedgerConfig config;
  ClockMode clock = ClockMode::kSystem;
  // Fixes the ledger clock (recorded_at, and occurred_at when a command has none).
  std::optional<int64_t> fixed_now_ns;
  bool sync = true;
  // Signs checkpoints (every config.checkpoint_every_events events, and on WriteCheckpoint). Optional.
  std::shared_ptr<const Signer> signer;
  // Checks the last checkpoint's signature when the ledger opens. Optional.
  std::shared_ptr<const SignatureVerifier> verifier;
  // Names what differs when the stored state does not match its digests (e.g. by rebuilding the projections
  // from the events and comparing key by key). Optional: without it the error names the projections only.
  std::function<std::string(const Store& live)> describe_state_differences;
  // For crash tests: committed groups are never folded into the store's records, as if the process died right
  // after each commit; the next Open must fold them from the events.
  bool hold_projection_folds_for_testing = false;
};

struct CommandResult {
  // kPending: the command went to another shard, or waits on its order behind one that did (docs/
  // ARCHITECTURE.md: Shards); its result is derived later from the event that records the decision.
  enum class Kind { kAccepted, kRejected, kDuplicate, kPending };
  std::string command_id;
  Kind kind = Kind::kRejected;
  std::string reason;  // the reason code when rejected (also for a duplicate of a rejected command)
  // One line for people when rejected (the CommandRejected event's detail); empty otherwise, and for
  // duplicates (the idempotency record keeps no detail).
  std::string detail;
  std::string transaction_id;
  std::vector<uint64_t> sequences;
  // {"command_id":…,"status":…,"reason":…,"detail":…,"transaction_id":…,"sequences":[…]}; reason and detail
  // are null when empty.
  std::string ToJson() const;
};

// A producer's signature checked ahead of staging, with what it was checked for: Ledger::WhyNotFromAProducer
// takes it only for the same key, signature and command.
struct ProducerSignatureVerdict {
  std::string key_id;
  std::string signature;  // lower-case hex, as sent
  Digest fingerprint{};   // the command's
  bool verifies = false;
};
// Whether `signature_hex` is the Ed25519 signature of CommandMessage(parsed.fingerprint) under `verifier`,
// the verifier of key `key_id` (Ledger::ProducerVerifier). Pure: callable from any thread.
ProducerSignatureVerdict CheckProducerSignature(const SignatureVerifier& verifier, std::string_view key_id,
                                                const ParsedCommand& parsed, std::string_view signature_hex);

class Ledger {
 public:
  // Opens or creates the shard's store in options.data_dir and recovers the chain head and projections.
  // Errors: IoError, Corruption (projections not matching the events), InvalidArgument.
  static Result<std::unique_ptr<Ledger>> Open(const LedgerOptions& options);
  ~Ledger();

  // Validates `command` against the state including the open group, and stages its events in the group.
  // The result is final but not yet durable: it is acknowledged only after CommitGroup returns Ok.
  CommandResult Stage(const ParsedCommand& command);
  // Why a command read from ledger.commands, signed with `signature` (lower-case hex) by the producer key
  // `key_id` (lower-case hex; both empty: unsigned), may not be applied; "" when it may: a producer key
  // registered and not revoked in the state including the open group signed
  // CommandMessage(parsed.fingerprint), and its role may send parsed.type (ProducerRoleMaySend). The reason
  // is one printable line.
  // `ahead`: the signature's check done ahead, on another thread (CheckProducerSignature), used when it was
  // made for this key, signature and command (else the signature is checked here); the key's registration,
  // revocation and role are checked here all the same.
  std::string WhyNotFromAProducer(const ParsedCommand& parsed, std::string_view key_id,
                                  std::string_view signature,
                                  const ProducerSignatureVerdict* ahead = nullptr);
  // The verifier of producer key `key_id` when the state including the open group holds the key (revoked or
  // not); nullptr otherwise. A key never changes under its id (the id is its hash), so a signature checked
  // with it ahead of staging holds when the command is staged. The verifier is safe to use from any thread.
  std::shared_ptr<const SignatureVerifier> ProducerVerifier(std::string_view key_id);
  // Stages one leg from another shard: a record of ledger.legs partition config.shard, which is an event of
  // the sending shard (events.fbs: legs). A forwarded command is decided here as one shard would decide it,
  // with the answer as the transaction's last event; an answer settles the order's command (its result) and
  // decides the commands parked behind it, in order. Returns false for a leg applied before (nothing staged).
  // Errors: InvalidArgument (not a leg for this shard: not an event, another destination, a command that
  // cannot be read or is not one the sender may forward here, an answer to nothing this shard sent; nothing
  // staged, and the leg number stays open for the sender's real leg), Corruption (a leg number skipped).
  Result<bool> StageLeg(std::string_view record);
  // Writes the open group atomically (one WriteBatch, synced WAL) and waits for it (and any group sealed
  // before it) and for its fold, so the store's records include it. On error the group is discarded and the
  // ledger reloads its state from the store; the staged results must not be acknowledged.
  Status CommitGroup();
  // Waits for the sealed group and for the fold of every durable group into the store's records.
  // Errors: the sealed group's (see SealGroup), the fold's (IoError, Corruption).
  Status AwaitFolded();
  // Backs the store up into `backup_dir` once every committed group is folded (so the image holds the state
  // at its last event), keeping the newest `keep` backups; labelled "shard K sequence N". Only between groups
  // (nothing staged). Errors: as Store::Backup, and a failed fold.
  Result<BackupSummary> Backup(const std::string& backup_dir, uint32_t keep);
  // The sequence the store's projection records are as of (they trail the commit).
  uint64_t folded_sequence() const;

  // Pipelined group commit: the open group is written on a background thread while the caller stages the next
  // one on top of it (its reads see the sealed group's writes), so validation and the WriteBatch, the fsync
  // and `after_durable` overlap. At most one group is in flight: SealGroup first waits for the group sealed
  // before and returns that group's outcome, then seals the open group and returns at once. `after_durable`
  // (e.g. publishing to Kafka) runs on the commit thread with the group's last sequence once the group is
  // durable; its error becomes the group's outcome. On a commit error the ledger reloads from the store, and
  // the results of the failed group and of the group staged on top are void (never acknowledged).
  using AfterDurable = std::function<Status(uint64_t last_sequence)>;
  Status SealGroup(AfterDurable after_durable = nullptr);
  // Waits for the sealed group, if any, and returns its outcome (see SealGroup).
  Status AwaitSealed();
  // The last sequence known durable on this thread (advanced by CommitGroup, SealGroup and AwaitSealed).
  uint64_t durable_sequence() const { return committed_sequence_; }
  // Adds a `meta` write (e.g. the commands-topic offset) to the open group, committed atomically with it.
  void StageMeta(std::string key, std::string value);
  size_t staged_commands() const { return staged_commands_; }
  size_t staged_bytes() const;
  // What the bounded state read cache holds now, in bytes (its own charge, bookkeeping included).
  size_t state_cache_bytes() const;
  // True when the open group reached a count or byte bound of the config.
  bool GroupFull() const;

  // Clearing days (日切; events.fbs: DayClosed). The last clearing date this shard closed (0: none).
  int closed_through() const;
  // The clearing date serve should close now: the last one that ended by the ledger clock at least the
  // allowed clock skew ago, when this shard has not closed it and its history began on or before it; nullopt
  // otherwise, and always with --clock occurred (the input's times decide; an operator closes days).
  std::optional<int> DayToClose() const;
  // Stages a DayClosed for every clearing date through `date` in the open group (the caller commits); false
  // when the shard closed `date` already (nothing staged).
  bool CloseDaysThrough(int date);

  // Records one fact that no command produced (e.g. ReconciliationRecorded) as its own transaction and
  // commits it. Requires no staged commands. Returns its sequence. Errors: IoError.
  Result<uint64_t> RecordFact(const std::string& fact_id, fb::PayloadUnion payload);
  // Writes a signed checkpoint of the committed state as the next event and commits it. Requires a signer
  // and no staged commands. Returns the checkpoint's event sequence. Errors: InvalidArgument (no signer),
  // IoError.
  Result<uint64_t> WriteCheckpoint();
  // Writes a checkpoint when a signer is set and checkpoint_every_events have passed since the last one. A
  // checkpoint the key did not sign (a key in a token can fail) is not written and not an error: the shard
  // goes on and the next group tries again (unsigned_checkpoint says why the last one was not written).
  Status MaybeCheckpoint();
  // Why the last checkpoint MaybeCheckpoint tried was not signed (Ok: it was, or none was due).
  const Status& unsigned_checkpoint() const { return unsigned_checkpoint_; }
  // Compares every stored projection record with the set digests the ledger's commits maintained (a full
  // scan). Errors: Corruption naming the projections that differ (and, with describe_state_differences, the
  // keys).
  Status ProveState();
  // The sequence the last checkpoint covers (0: none).
  uint64_t last_checkpoint_covered() const { return last_checkpoint_covered_; }

  // Stages and commits all commands in pipelined groups; calls on_durable with each committed group's
  // results, in order, once the group is durable.
  Status SubmitAll(std::span<const ParsedCommand> commands,
                   const std::function<void(std::span<const CommandResult>)>& on_durable);

  uint64_t last_sequence() const { return last_sequence_; }  // committed or staged
  const Digest& chain_head() const { return chain_head_; }
  const LedgerConfig& config() const { return options_.config; }
  Store& store() { return *store_; }
  const Store& store() const { return *store_; }

 private:
  explicit Ledger(const LedgerOptions& options);
  Status Recover();
  // Corruption when something other than the ledger wrote the store since its last commit.
  Status RefuseForeignWrites() const;
  // Corruption unless the events from the last checkpoint to the head chain and the checkpoint names the head
  // it followed (and, with a verifier, carries a valid signature).
  Status VerifyChainSinceCheckpoint() const;
  bool VerifyCheckpointSignature(const fb::CheckpointRecorded& checkpoint) const;
  // Ok while the folder folds; an error once it failed, or when the last recovery failed.
  Status FolderHealthy() const;
  // Reads the last event: last_sequence_ and chain_head_. Errors: Corruption, InvalidArgument (another
  // shard's store).
  Status LoadChainHead();
  // The sequence the last checkpoint folded into the store covers (0: none).
  Result<uint64_t> LastCheckpointCovered() const;
  // The projections' set digests from `meta`, as of all.LastApplied() (computing and storing them once for an
  // older store).
  Result<std::vector<SetDigest>> LoadSetDigests(const ProjectionSet& all);
  int64_t NowNs() const;
  // The ledger clock, the time the command claims and the time that decides (see ClockMode).
  struct CommandTimes {
    int64_t now = 0;
    int64_t occurred = 0;
    int64_t ledger_time = 0;
  };
  CommandTimes TimesOf(const fb::CommandT& command) const;
  // Stages a command this shard owns and has not seen: decided here, or forwarded or parked when another
  // shard decides its order (RouteOrderCommand).
  CommandResult StageOwned(const ParsedCommand& parsed, const CommandTimes& times);
  // For a command on an order: the OrderForwarded or CommandParked payload when another shard decides it, or
  // a refusal (ORDER_BUSY); nullopt when this shard decides it.
  std::optional<fb::PayloadUnion> RouteOrderCommand(const ParsedCommand& parsed, int64_t ledger_time,
                                                    std::string* refusal);
  // Turns a refused `decision` into its one CommandRejected payload.
  void RecordRefusal(const ParsedCommand& parsed, Decision& decision) const;
  // Stages `decision` (accepted, or turned into a CommandRejected) as the command's transaction.
  CommandResult StageDecision(const ParsedCommand& parsed, const CommandTimes& times, Decision decision);
  // StageLeg's kinds of leg: a command on an order and its answer, a transfer and its answer.
  Status StageLegPayload(const fb::EventBody& leg);
  Status StageForwarded(const fb::EventBody& leg, const fb::OrderForwarded& forwarded);
  Status StageAnswer(const fb::EventBody& leg, const fb::OrderAnswered& answered);
  Status StageTransferIn(const fb::EventBody& leg, const fb::TransferSent& sent);
  Status StageTransferAnswer(const fb::EventBody& leg, const fb::TransferReceived& received);
  // The id of the transaction the next AppendEvents records: "<shard>-<its first sequence>".
  std::string NextTransactionId() const;

  // Sequences `payloads` as the events of one transaction and folds them into the open group.
  // `commands_offset`: where the command was read on ledger.commands (-1: elsewhere).
  std::vector<uint64_t> AppendEvents(const std::string& command_id, const Digest& fingerprint, int64_t now,
                                     int64_t occurred, std::vector<fb::PayloadUnion>& payloads,
                                     std::string* transaction_id, int64_t commands_offset = -1);

  struct Impl;
  LedgerOptions options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Impl> impl_;
  uint64_t last_sequence_ = 0;
  Digest chain_head_{};
  uint64_t committed_sequence_ = 0;
  size_t staged_commands_ = 0;
  uint64_t last_checkpoint_covered_ = 0;
  Status unsigned_checkpoint_;
  bool checkpoint_signing_failed_ = false;  // set by WriteCheckpoint when the signer failed
  std::chrono::steady_clock::time_point next_checkpoint_try_{};  // after an unsigned one
  int64_t history_began_ns_ = 0;                                 // recorded_at of event 1 (0: no history)
};

}  // namespace ledger
