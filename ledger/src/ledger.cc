#include "ledger/ledger.h"

#include <future>
#include <nlohmann/json.hpp>

#include "core/set_digest.h"
#include "core/time.h"
#include "decide.h"
#include "events/event.h"
#include "ledger/routing.h"
#include "ledger_impl.h"
#include "projections/folder.h"
#include "projections/projector.h"
#include "state/records.h"

namespace ledger {

std::string CommandResult::ToJson() const {
  nlohmann::ordered_json out;
  out["command_id"] = command_id;
  out["status"] = kind == Kind::kAccepted   ? "accepted"
                  : kind == Kind::kRejected ? "rejected"
                  : kind == Kind::kPending  ? "pending"
                                            : "duplicate";
  out["reason"] = reason.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(reason);
  out["detail"] = detail.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(detail);
  out["transaction_id"] = transaction_id;
  out["sequences"] = sequences;
  return out.dump();
}

Ledger::Ledger(const LedgerOptions& options) : options_(options) {}
Ledger::~Ledger() = default;

Result<std::unique_ptr<Ledger>> Ledger::Open(const LedgerOptions& options) {
  if (options.config.shards == 0 ||
      (options.config.shards > 1 && options.config.shard >= options.config.shards)) {
    return Status::InvalidArgument("shard " + std::to_string(options.config.shard) + " is not below the " +
                                   std::to_string(options.config.shards) + " shards");
  }
  std::unique_ptr<Ledger> ledger(new Ledger(options));
  StoreOptions store_options;
  store_options.sync = options.sync;
  Result<std::unique_ptr<Store>> store = Store::Open(options.data_dir, store_options);
  if (!store.ok()) return store.status();
  ledger->store_ = std::move(store).value();
  LEDGER_RETURN_IF_ERROR(ledger->Recover());
  return ledger;
}

Status Ledger::Recover() {
  impl_.reset();  // an earlier folder first folds every group that was durable
  impl_ = std::make_unique<Impl>(store_->state());
  LEDGER_RETURN_IF_ERROR(LoadChainHead());
  ProjectionSet all(MakeLedgerProjectors());
  LEDGER_RETURN_IF_ERROR(all.Load(store_->state()));
  // The projections are folded behind the commit: they may trail the events (a crash before the fold), never
  // lead them.
  if (all.LastApplied() > last_sequence_) {
    return Status::Corruption("projections are at sequence " + std::to_string(all.LastApplied()) +
                              " but the last event is " + std::to_string(last_sequence_));
  }
  committed_sequence_ = last_sequence_;
  staged_commands_ = 0;
  Result<uint64_t> covered = LastCheckpointCovered();
  if (!covered.ok()) return covered.status();
  last_checkpoint_covered_ = *covered;
  LEDGER_RETURN_IF_ERROR(RefuseForeignWrites());
  LEDGER_RETURN_IF_ERROR(VerifyChainSinceCheckpoint());
  Result<std::vector<SetDigest>> digests = LoadSetDigests(all);
  if (!digests.ok()) return digests.status();
  // Installed only once caught up and running: a ledger whose recovery failed has no folder and refuses to
  // commit (SealGroup).
  auto folder = std::make_unique<ProjectionFolder>(*store_, all.LastApplied(), std::move(*digests),
                                                   kDecisionProjectors);
  LEDGER_RETURN_IF_ERROR(folder->CatchUp(last_sequence_));
  if (options_.hold_projection_folds_for_testing) folder->HoldForTesting();
  folder->Start();
  impl_->folder = std::move(folder);
  impl_->state.Folded(last_sequence_);
  LEDGER_RETURN_IF_ERROR(impl_->projections.Load(store_->state()));
  // The checkpoints the catch-up folded count too.
  covered = LastCheckpointCovered();
  if (!covered.ok()) return covered.status();
  last_checkpoint_covered_ = *covered;
  return Status::Ok();
}

Status Ledger::LoadChainHead() {
  Result<std::optional<std::pair<uint64_t, std::string>>> last = store_->LastEvent();
  if (!last.ok()) return last.status();
  last_sequence_ = 0;
  chain_head_ = kGenesisHash;
  if (!last->has_value()) return Status::Ok();
  Result<DecodedEvent> decoded = DecodeEventRecord((*last)->second);
  if (!decoded.ok()) return Status::Corruption("last event: " + decoded.status().message());
  if (decoded->body->sequence() != (*last)->first)
    return Status::Corruption("last event's key and sequence differ");
  // A store is one shard's history: a shard number changed in ledger.toml would interleave two shards' ids.
  if (decoded->body->shard() != options_.config.shard) {
    return Status::InvalidArgument(
        "the store in " + options_.data_dir + " holds shard " + std::to_string(decoded->body->shard()) +
        "'s history, but this ledger is shard " + std::to_string(options_.config.shard) +
        " (ledger.toml [ledger] shard, --shard)");
  }
  last_sequence_ = decoded->body->sequence();
  chain_head_ = decoded->hash;
  // When the history began (DayToClose closes no date before it).
  Status first_read = Status::Ok();
  LEDGER_RETURN_IF_ERROR(store_->ScanEvents(1, 1, [&](uint64_t, std::string_view record) {
    const std::string aligned(record);  // outlives the decoded view, which points into it
    Result<DecodedEvent> first = DecodeEventRecord(aligned);
    if (first.ok()) {
      history_began_ns_ = first->body->recorded_at_ns();
    } else {
      first_read = Status::Corruption("event 1: " + first.status().message());
    }
    return false;
  }));
  return first_read;
}

Result<uint64_t> Ledger::LastCheckpointCovered() const {
  uint64_t covered = 0;
  LEDGER_RETURN_IF_ERROR(
      store_->ScanState(keys::kCheckpointPrefix, [&](std::string_view, std::string_view value) {
        fb::AppliedRecordT record;
        flatbuffers::GetRoot<fb::AppliedRecord>(value.data())->UnPackTo(&record);
        covered = std::max(covered, record.sequence);
        return true;
      }));
  return covered;
}

Status Ledger::RefuseForeignWrites() const {
  Result<WriterCheck> writers = store_->CheckWriters();
  if (!writers.ok()) return writers.status();
  if (!writers->foreign_writes()) return Status::Ok();
  return Status::Corruption(
      "the store in " + options_.data_dir + " was written by something other than the ledger " +
      "(RocksDB sequence " + std::to_string(writers->actual) + ", the ledger's last commit left " +
      std::to_string(*writers->expected) + "): its state is not trusted. Run `ledger scrub --data " +
      options_.data_dir + "` to compare it with the events and name what differs");
}

Status Ledger::VerifyChainSinceCheckpoint() const {
  if (last_checkpoint_covered_ == 0) return Status::Ok();
  // The checkpoint event follows the sequence it covers; every event from the covered one to the head must
  // chain, and the checkpoint must name the chain head it followed.
  const uint64_t covered = last_checkpoint_covered_;
  Digest previous{};
  bool have_previous = false;
  uint64_t expected = covered;
  std::string problem;
  LEDGER_RETURN_IF_ERROR(
      store_->ScanEvents(covered, last_sequence_, [&](uint64_t sequence, std::string_view record) {
        Result<DecodedEvent> decoded = DecodeEventRecord(record);
        if (!decoded.ok()) {
          problem = "event " + std::to_string(sequence) + ": " + decoded.status().message();
          return false;
        }
        if (sequence != expected++ || decoded->body->sequence() != sequence) {
          problem = "sequence " + std::to_string(sequence) + " out of place";
          return false;
        }
        if (ChainHash(decoded->prev_hash, decoded->body_bytes) != decoded->hash ||
            (have_previous && decoded->prev_hash != previous)) {
          problem = "event " + std::to_string(sequence) + " does not chain";
          return false;
        }
        if (sequence == covered + 1) {
          const fb::CheckpointRecorded* checkpoint = decoded->body->payload_as_CheckpointRecorded();
          if (checkpoint == nullptr || checkpoint->sequence() != covered ||
              checkpoint->chain_head() == nullptr || checkpoint->chain_head()->size() != previous.size() ||
              !std::equal(previous.begin(), previous.end(), checkpoint->chain_head()->data())) {
            problem = "the checkpoint at sequence " + std::to_string(sequence) +
                      " does not name the chain head at " + std::to_string(covered);
            return false;
          }
          if (options_.verifier && !VerifyCheckpointSignature(*checkpoint)) {
            problem = "the checkpoint at sequence " + std::to_string(sequence) + " has a bad signature";
            return false;
          }
        }
        previous = decoded->hash;
        have_previous = true;
        return true;
      }));
  if (problem.empty() && (!have_previous || previous != chain_head_))
    problem = "the chain does not reach the head";
  if (problem.empty()) return Status::Ok();
  return Status::Corruption("the chain head at sequence " + std::to_string(last_sequence_) +
                            " does not verify against the last checkpoint (after sequence " +
                            std::to_string(covered) + "): " + problem +
                            "; nothing will be appended. Run `ledger replay` to find the first bad event");
}

bool Ledger::VerifyCheckpointSignature(const fb::CheckpointRecorded& checkpoint) const {
  if (checkpoint.chain_head() == nullptr || checkpoint.chain_head()->size() != 32 ||
      checkpoint.signature() == nullptr) {
    return false;
  }
  Digest head{};
  std::copy(checkpoint.chain_head()->begin(), checkpoint.chain_head()->end(), head.begin());
  std::vector<NamedDigest> digests;
  if (checkpoint.digests() != nullptr) {
    for (const fb::ProjectionDigest* digest : *checkpoint.digests()) {
      NamedDigest named;
      named.name = StringOf(digest->projector());
      if (digest->digest() == nullptr || digest->digest()->size() != 32) return false;
      std::copy(digest->digest()->begin(), digest->digest()->end(), named.digest.begin());
      digests.push_back(std::move(named));
    }
  }
  const std::string message =
      CheckpointMessageFor(checkpoint.digest_format(), checkpoint.shard(), checkpoint.sequence(), head,
                           digests, checkpoint.signed_at_ns());
  return options_.verifier->Verify(
      message, std::span<const uint8_t>(checkpoint.signature()->data(), checkpoint.signature()->size()));
}

Result<std::vector<SetDigest>> Ledger::LoadSetDigests(const ProjectionSet& all) {
  const auto& projectors = all.projectors();
  std::vector<SetDigest> digests(projectors.size());
  // Folds store the digests of the projectors they change; one never changed holds the empty set.
  bool any_stored = false;
  for (size_t i = 0; i < projectors.size(); ++i) {
    Result<std::optional<std::string>> stored = store_->GetMeta(SetDigestMetaKey(projectors[i]->name()));
    if (!stored.ok()) return stored.status();
    if (!stored->has_value()) continue;
    any_stored = true;
    Result<SetDigest> parsed = SetDigest::Parse(**stored);
    if (!parsed.ok())
      return Status::Corruption("set digest of " + std::string(projectors[i]->name()) + ": " +
                                parsed.status().message());
    digests[i] = *parsed;
  }
  if (any_stored || all.LastApplied() == 0) return digests;
  // A store from before set digests: compute them once from the records (a full scan) and keep them.
  Result<std::vector<SetDigest>> scanned = ProjectionSetDigests(*store_, projectors);
  if (!scanned.ok()) return scanned.status();
  CommitBatch batch;
  for (size_t i = 0; i < projectors.size(); ++i) {
    batch.meta.emplace_back(SetDigestMetaKey(projectors[i]->name()), (*scanned)[i].Serialize());
  }
  LEDGER_RETURN_IF_ERROR(store_->Commit(batch));
  impl_->last_proven_sequence = all.LastApplied();
  return scanned;
}

Status Ledger::ProveState() {
  LEDGER_RETURN_IF_ERROR(AwaitFolded());
  LEDGER_RETURN_IF_ERROR(RefuseForeignWrites());
  const auto& projectors = impl_->folder->projections().projectors();
  Result<std::vector<SetDigest>> stored = ProjectionSetDigests(*store_, projectors);
  if (!stored.ok()) return stored.status();
  const std::vector<SetDigest> digests = impl_->folder->digests();
  std::string differing;
  for (size_t i = 0; i < projectors.size(); ++i) {
    if ((*stored)[i] == digests[i]) continue;
    differing += (differing.empty() ? "" : ", ") + std::string(projectors[i]->name());
  }
  if (differing.empty()) {
    impl_->last_proven_sequence = last_sequence_;
    return Status::Ok();
  }
  std::string located;
  if (options_.describe_state_differences) located = "; " + options_.describe_state_differences(*store_);
  return Status::Corruption(
      "the stored records of " + differing +
      " do not match the digests the ledger's own folds produced: the state was changed " +
      "outside the ledger" + located + "; nothing is signed or appended");
}

int64_t Ledger::NowNs() const { return options_.fixed_now_ns ? *options_.fixed_now_ns : SystemNowNs(); }

size_t Ledger::state_cache_bytes() const { return impl_->state.bytes(); }

size_t Ledger::staged_bytes() const { return impl_->event_bytes + impl_->state.open_group_bytes(); }

bool Ledger::GroupFull() const {
  return staged_commands_ >= options_.config.group_commands_max ||
         staged_bytes() >= options_.config.group_bytes_max;
}

Ledger::CommandTimes Ledger::TimesOf(const fb::CommandT& command) const {
  CommandTimes times;
  times.now = NowNs();
  times.occurred = command.has_occurred_at ? command.occurred_at_ns : times.now;
  // The ledger time decides (dates, windows, expiry), not the time a producer claims; with --clock occurred
  // the ledger time follows the input (ClockMode). recorded_at stays the ledger clock either way.
  times.ledger_time = options_.clock == ClockMode::kOccurred ? times.occurred : times.now;
  return times;
}

CommandResult Ledger::Stage(const ParsedCommand& parsed) {
  const LedgerConfig& config = options_.config;
  const CommandTimes times = TimesOf(parsed.command);
  fb::CommandOutcomeRecordT original;
  if (LoadRecord(impl_->state, keys::CommandOutcome(parsed.command_id), &original)) {
    if (std::equal(original.fingerprint.begin(), original.fingerprint.end(), parsed.fingerprint.begin(),
                   parsed.fingerprint.end())) {
      // Same id, same content: the original outcome (or, while another shard decides it, none yet), and
      // nothing else happens.
      CommandResult result;
      result.command_id = parsed.command_id;
      result.kind = original.pending ? CommandResult::Kind::kPending : CommandResult::Kind::kDuplicate;
      result.reason = original.reason;
      result.transaction_id = original.transaction_id;
      result.sequences = original.sequences;
      return result;
    }
    fb::CommandOutcomeRecordT earlier_mismatch;
    if (LoadRecord(impl_->state, keys::MismatchOutcome(parsed.command_id, ToHex(parsed.fingerprint)),
                   &earlier_mismatch)) {
      // This very content was already refused as a mismatch: a duplicate of that refusal.
      CommandResult result;
      result.command_id = parsed.command_id;
      result.kind = CommandResult::Kind::kDuplicate;
      result.reason = earlier_mismatch.reason;
      result.transaction_id = earlier_mismatch.transaction_id;
      result.sequences = earlier_mismatch.sequences;
      return result;
    }
    return StageDecision(parsed, times,
                         Decision{reason::kDuplicateCommandMismatch,
                                  "command id " + parsed.command_id + " was used with other content",
                                  {}});
  }
  if (parsed.malformed) {
    const char* why = parsed.unauthenticated ? reason::kUnauthenticatedCommand : reason::kMalformedCommand;
    return StageDecision(parsed, times, Decision{why, *parsed.malformed, {}});
  }
  if (std::string why = config.shards > 1 ? WhyNotOwned(parsed, config.shard, config.shards) : "";
      !why.empty()) {
    // Produced to the wrong partition: deciding it here would give its customer or order a second owner.
    return StageDecision(
        parsed, times,
        Decision{reason::kWrongShard, why + "; this is shard " + std::to_string(config.shard), {}});
  }
  if (options_.clock == ClockMode::kSystem && (times.occurred - times.now > config.clock_skew_max_ns ||
                                               times.now - times.occurred > config.clock_skew_max_ns)) {
    return StageDecision(
        parsed, times,
        Decision{reason::kClockSkew,
                 "occurred_at is more than " + std::to_string(config.clock_skew_max_ns / kNanosPerSecond) +
                     " s from the ledger clock",
                 {}});
  }
  return StageOwned(parsed, times);
}

CommandResult Ledger::StageOwned(const ParsedCommand& parsed, const CommandTimes& times) {
  std::string refusal;
  std::optional<fb::PayloadUnion> routed =
      options_.config.shards > 1 ? RouteOrderCommand(parsed, times.ledger_time, &refusal) : std::nullopt;
  if (!refusal.empty()) return StageDecision(parsed, times, Decision{reason::kOrderBusy, refusal, {}});
  if (!routed) {
    return StageDecision(
        parsed, times,
        Decide(parsed.command, DecideContext{options_.config, impl_->state, times.ledger_time, {}}));
  }
  std::vector<fb::PayloadUnion> payloads;
  payloads.push_back(std::move(*routed));
  CommandResult result;
  result.command_id = parsed.command_id;
  result.kind = CommandResult::Kind::kPending;
  result.sequences = AppendEvents(parsed.command_id, parsed.fingerprint, times.now, times.occurred, payloads,
                                  &result.transaction_id, parsed.commands_offset);
  ++staged_commands_;
  return result;
}

void Ledger::RecordRefusal(const ParsedCommand& parsed, Decision& decision) const {
  if (decision.accepted()) return;
  fb::CommandRejectedT rejected;
  rejected.command_type = parsed.type;
  rejected.reason = decision.reason;
  rejected.detail = decision.detail;
  // Who the rejection is about (ledger/routing.h): its Kafka record key.
  CommandParties parties = RoutingOf(parsed, impl_->state);
  rejected.customer = std::move(parties.customer);
  rejected.merchant = std::move(parties.merchant);
  decision.payloads.clear();
  decision.payloads.emplace_back().Set(std::move(rejected));
}

CommandResult Ledger::StageDecision(const ParsedCommand& parsed, const CommandTimes& times,
                                    Decision decision) {
  RecordRefusal(parsed, decision);
  CommandResult result;
  result.command_id = parsed.command_id;
  // A transfer to another shard's customer waits for the payee's shard (TransferSettled gives the result).
  const bool waits = decision.payloads.front().type == fb::Payload::TransferSent;
  result.sequences = AppendEvents(parsed.command_id, parsed.fingerprint, times.now, times.occurred,
                                  decision.payloads, &result.transaction_id, parsed.commands_offset);
  result.kind = !decision.accepted() ? CommandResult::Kind::kRejected
                : waits              ? CommandResult::Kind::kPending
                                     : CommandResult::Kind::kAccepted;
  result.reason = decision.reason;
  if (!decision.accepted()) result.detail = decision.detail;
  ++staged_commands_;
  return result;
}

std::string Ledger::NextTransactionId() const {
  return std::to_string(options_.config.shard) + "-" + std::to_string(last_sequence_ + 1);
}

std::vector<uint64_t> Ledger::AppendEvents(const std::string& command_id, const Digest& fingerprint,
                                           int64_t now, int64_t occurred,
                                           std::vector<fb::PayloadUnion>& payloads,
                                           std::string* transaction_id, int64_t commands_offset) {
  LEDGER_ASSERT(!payloads.empty());
  *transaction_id = NextTransactionId();
  std::vector<uint64_t> sequences;
  for (fb::PayloadUnion& payload : payloads) {
    fb::EventBodyT body;
    body.schema_version = kSchemaVersion;
    body.shard = options_.config.shard;
    body.sequence = last_sequence_ + 1;
    body.transaction_id = *transaction_id;
    body.command_id = command_id;
    body.command_fingerprint.assign(fingerprint.begin(), fingerprint.end());
    body.recorded_at_ns = now;
    body.occurred_at_ns = occurred;
    body.payload = std::move(payload);
    body.commands_offset = commands_offset;
    Digest hash;
    std::string record = EncodeEventRecord(body, chain_head_, &hash);
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    LEDGER_ASSERT(decoded.ok());
    // Invariant 3: the writer's projections advance with the events, in the same group.
    const Status applied = impl_->projections.ApplyUnrecorded(*decoded->body, impl_->state);
    LEDGER_ASSERT(applied.ok());
    if (body.sequence == 1) history_began_ns_ = now;
    last_sequence_ = body.sequence;
    chain_head_ = hash;
    sequences.push_back(body.sequence);
    impl_->event_bytes += record.size();
    impl_->events.emplace_back(body.sequence, std::move(record));
  }
  return sequences;
}

Result<BackupSummary> Ledger::Backup(const std::string& backup_dir, uint32_t keep) {
  LEDGER_ASSERT(impl_->events.empty() && staged_commands_ == 0);
  LEDGER_RETURN_IF_ERROR(AwaitFolded());
  return store_->Backup(
      backup_dir, keep,
      "shard " + std::to_string(options_.config.shard) + " sequence " + std::to_string(last_sequence_));
}

Result<uint64_t> Ledger::WriteCheckpoint() {
  if (!options_.signer) return Status::InvalidArgument("no signing key configured ([audit] private_key)");
  if (options_.hold_projection_folds_for_testing)
    return Status::InvalidArgument("no checkpoint while folds are held: it would sign unfolded state");
  LEDGER_ASSERT(impl_->events.empty() && staged_commands_ == 0);
  LEDGER_RETURN_IF_ERROR(AwaitFolded());  // the digests follow the folded groups
  // Prove the state before signing it: nothing but the ledger wrote the store, and, when a scrub is due, the
  // stored records add up to the digests the commits maintained.
  LEDGER_RETURN_IF_ERROR(RefuseForeignWrites());
  if (last_sequence_ - impl_->last_proven_sequence >= options_.config.scrub_every_events) {
    LEDGER_RETURN_IF_ERROR(ProveState());
  }
  std::vector<NamedDigest> digests_storage;
  const auto& projectors = impl_->folder->projections().projectors();
  const std::vector<SetDigest> set_digests = impl_->folder->digests();
  for (size_t i = 0; i < projectors.size(); ++i) {
    digests_storage.push_back(NamedDigest{std::string(projectors[i]->name()), set_digests[i].Summary()});
  }
  const std::vector<NamedDigest>* digests = &digests_storage;
  const int64_t now = NowNs();
  fb::CheckpointRecordedT checkpoint;
  checkpoint.shard = options_.config.shard;
  checkpoint.sequence = last_sequence_;
  checkpoint.chain_head.assign(chain_head_.begin(), chain_head_.end());
  for (const NamedDigest& digest : *digests) {
    auto named = std::make_unique<fb::ProjectionDigestT>();
    named->projector = digest.name;
    named->digest.assign(digest.digest.begin(), digest.digest.end());
    checkpoint.digests.push_back(std::move(named));
  }
  checkpoint.signed_at_ns = now;
  checkpoint.public_key_id.assign(options_.signer->public_key_id().begin(),
                                  options_.signer->public_key_id().end());
  checkpoint.digest_format = kDigestFormatSet;
  const std::string message = CheckpointMessageFor(kDigestFormatSet, checkpoint.shard, checkpoint.sequence,
                                                   chain_head_, *digests, now);
  Result<std::string> signature = options_.signer->Sign(message);
  if (!signature.ok()) {  // a key in a token that did not sign: no checkpoint, nothing staged
    checkpoint_signing_failed_ = true;
    return signature.status();
  }
  checkpoint.signature.assign(signature->begin(), signature->end());
  std::vector<fb::PayloadUnion> payloads(1);
  payloads[0].Set(std::move(checkpoint));
  const std::string command_id = "checkpoint:" + std::to_string(last_sequence_);
  std::string transaction_id;
  const std::vector<uint64_t> sequences =
      AppendEvents(command_id, Sha256Of(message), now, now, payloads, &transaction_id);
  ++staged_commands_;
  const uint64_t covered = last_sequence_ - 1;
  LEDGER_RETURN_IF_ERROR(CommitGroup());
  last_checkpoint_covered_ = covered;
  return sequences.front();
}

int Ledger::closed_through() const {
  fb::ClearingDaysRecordT days;
  LoadRecord(impl_->state, keys::kClearingDaysKey, &days);
  return days.closed_through;
}

std::optional<int> Ledger::DayToClose() const {
  if (options_.clock != ClockMode::kSystem || last_sequence_ == 0) return std::nullopt;
  const LedgerConfig& config = options_.config;
  const int tz = config.timezone_offset_minutes, cutoff = config.clearing_cutoff_minutes;
  // Clearing dates are whole days: the date before the one open skew ago has ended at least skew ago.
  const int ended = AddDays(ClearingDate(NowNs() - config.clock_skew_max_ns, tz, cutoff), -1);
  fb::ClearingDaysRecordT days;
  LoadRecord(impl_->state, keys::kClearingDaysKey, &days);
  if (ended <= days.closed_through) return std::nullopt;
  if (ClearingDate(history_began_ns_, tz, cutoff) > ended)
    return std::nullopt;  // no history on or before that date: nothing of it to close
  return ended;
}

bool Ledger::CloseDaysThrough(int date) {
  if (date <= closed_through()) return false;
  const int64_t now = NowNs();
  fb::DayClosedT closed;
  closed.clearing_date = date;
  closed.closed_at_ns = now;
  std::vector<fb::PayloadUnion> payloads;
  payloads.emplace_back().Set(std::move(closed));
  // '/' is in no command id a client can send (README: identifiers).
  const std::string fact_id = "day-closed/" + std::to_string(options_.config.shard) + "/" + FormatDate(date);
  std::string transaction_id;
  AppendEvents(fact_id, Sha256Of(fact_id), now, now, payloads, &transaction_id);
  ++staged_commands_;
  return true;
}

Result<uint64_t> Ledger::RecordFact(const std::string& fact_id, fb::PayloadUnion payload) {
  LEDGER_ASSERT(impl_->events.empty() && staged_commands_ == 0);
  const int64_t now = NowNs();
  std::vector<fb::PayloadUnion> payloads;
  payloads.push_back(std::move(payload));
  std::string transaction_id;
  const std::vector<uint64_t> sequences =
      AppendEvents(fact_id, Sha256Of(fact_id), now, now, payloads, &transaction_id);
  ++staged_commands_;
  LEDGER_RETURN_IF_ERROR(CommitGroup());
  return sequences.front();
}

Status Ledger::MaybeCheckpoint() {
  if (!options_.signer ||
      last_sequence_ - last_checkpoint_covered_ < options_.config.checkpoint_every_events) {
    return Status::Ok();
  }
  // After a checkpoint the key did not sign, the next try waits a while: each costs a wait for the group's
  // fold, and the shard must keep its pace while the token is out.
  if (!unsigned_checkpoint_.ok() && std::chrono::steady_clock::now() < next_checkpoint_try_)
    return Status::Ok();
  checkpoint_signing_failed_ = false;
  Result<uint64_t> written = WriteCheckpoint();
  if (checkpoint_signing_failed_)
    next_checkpoint_try_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  unsigned_checkpoint_ = checkpoint_signing_failed_ ? written.status() : Status::Ok();
  return written.ok() || checkpoint_signing_failed_ ? Status::Ok() : written.status();
}

void Ledger::StageMeta(std::string key, std::string value) {
  impl_->meta.emplace_back(std::move(key), std::move(value));
}

Status Ledger::CommitGroup() {
  LEDGER_RETURN_IF_ERROR(SealGroup());
  return AwaitFolded();
}

Status Ledger::FolderHealthy() const {
  if (!impl_->folder) return Status::IoError("the ledger could not recover its store; open it again");
  // After a fold error nothing more is committed: the projections could not follow it.
  return impl_->folder->status();
}

Status Ledger::AwaitFolded() {
  LEDGER_RETURN_IF_ERROR(AwaitSealed());
  LEDGER_RETURN_IF_ERROR(FolderHealthy());
  LEDGER_RETURN_IF_ERROR(impl_->folder->AwaitFolded(committed_sequence_));
  impl_->state.Folded(impl_->folder->folded_sequence());
  return Status::Ok();
}

uint64_t Ledger::folded_sequence() const { return impl_->folder ? impl_->folder->folded_sequence() : 0; }

Status Ledger::SealGroup(AfterDurable after_durable) {
  LEDGER_RETURN_IF_ERROR(AwaitSealed());
  LEDGER_RETURN_IF_ERROR(FolderHealthy());
  if (impl_->events.empty() && impl_->meta.empty()) {
    staged_commands_ = 0;  // a group of duplicates only: nothing to write
    return Status::Ok();
  }
  LEDGER_ASSERT(impl_->events.empty() || impl_->events.front().first == committed_sequence_ + 1);
  LEDGER_ASSERT(impl_->events.empty() || impl_->events.back().first == last_sequence_);
  auto group = std::make_unique<InFlightGroup>();
  group->writes = impl_->state.SealGroup(last_sequence_);
  group->batch.events = std::move(impl_->events);
  group->batch.meta = std::move(impl_->meta);
  group->last_sequence = last_sequence_;
  impl_->events.clear();
  impl_->meta.clear();
  impl_->event_bytes = 0;
  staged_commands_ = 0;
  group->done = std::async(std::launch::async, [store = store_.get(), group = group.get(),
                                                folder = impl_->folder.get(),
                                                after_durable = std::move(after_durable)]() {
    // The commit writes what recovery needs: the events and the offsets beside them. The projections'
    // records follow behind, folded from the durable group (ProjectionFolder).
    // The answers (after_durable: publication, acknowledgement) go first: they need the group durable,
    // not folded, and a full fold queue would otherwise hold them up. The push still bounds the writer:
    // the next group is not sealed before this one is pushed.
    InFlightGroup::Outcome outcome;
    outcome.committed = store->Commit(group->batch);
    if (!outcome.committed.ok()) return outcome;
    if (after_durable) outcome.after_durable = after_durable(group->last_sequence);
    if (!group->batch.events.empty()) {
      const Status pushed = folder->Push(FoldGroup{std::move(group->writes), std::move(group->batch.events)});
      if (outcome.after_durable.ok()) outcome.after_durable = pushed;
    }
    return outcome;
  });
  impl_->in_flight = std::move(group);
  return Status::Ok();
}

Status Ledger::AwaitSealed() {
  if (!impl_->in_flight) return Status::Ok();
  const InFlightGroup::Outcome outcome = impl_->in_flight->done.get();
  if (!outcome.committed.ok()) {
    // Nothing of the group is durable, and the open group was validated against it: drop both and start again
    // from what the store holds.
    impl_->in_flight.reset();
    const Status recovered = Recover();
    if (!recovered.ok())
      return Status::IoError(outcome.committed.message() + "; recovery failed: " + recovered.message());
    return outcome.committed;
  }
  impl_->state.Folded(impl_->folder->folded_sequence());
  committed_sequence_ = impl_->in_flight->last_sequence;
  impl_->in_flight.reset();
  return outcome.after_durable;
}

Status Ledger::SubmitAll(std::span<const ParsedCommand> commands,
                         const std::function<void(std::span<const CommandResult>)>& on_durable) {
  std::vector<CommandResult> open, sealed;  // results of the open group and of the group in flight
  open.reserve(std::min(commands.size(), options_.config.group_commands_max));
  for (const ParsedCommand& command : commands) {
    open.push_back(Stage(command));
    if (GroupFull()) {
      LEDGER_RETURN_IF_ERROR(SealGroup());  // returns once the previously sealed group is durable
      if (!sealed.empty()) on_durable(sealed);
      sealed.swap(open);
      open.clear();
      LEDGER_RETURN_IF_ERROR(MaybeCheckpoint());
    }
  }
  LEDGER_RETURN_IF_ERROR(SealGroup());
  if (!sealed.empty()) on_durable(sealed);
  LEDGER_RETURN_IF_ERROR(AwaitSealed());
  if (!open.empty()) on_durable(open);
  LEDGER_RETURN_IF_ERROR(MaybeCheckpoint());
  return AwaitFolded();
}

}  // namespace ledger
