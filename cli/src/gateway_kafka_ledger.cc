#include "gateway_kafka_ledger.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <deque>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <span>
#include <thread>

#include "core/sha256.h"
#include "core/signing.h"
#include "events/event.h"
#include "gateway_store_reads.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"
#include "kafka_submit.h"
#include "ledger/command.h"
#include "ledger/routing.h"
#include "projections/projector.h"
#include "reconcile/reconcile.h"
#include "storage/kv.h"

namespace ledger::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Where a replica's fold stands, in its own store's meta (committed with the records it covers).
constexpr char kOffsetMeta[] = "replica.events_offset";
constexpr char kHashMeta[] = "replica.last_hash";
// The last checkpoint whose signature the replica verified (0: none).
constexpr char kSignedMeta[] = "replica.signed_through";
// The checkpoint key (its id in hex, or "none") the replica was folded under.
constexpr char kKeyMeta[] = "replica.checkpoint_key";
// Events folded per commit of a replica; results read per poll.
constexpr size_t kFoldRecordsMax = 2048;
constexpr size_t kResultsPerPollMax = 1024;
// How long the port's thread sleeps when a round brought nothing (Kafka's own fetch wait bounds the rest).
constexpr auto kIdleWait = std::chrono::milliseconds(2);
// How long the cluster may take to describe ledger.events when the port starts.
constexpr int64_t kShardCountTimeoutMs = 30'000;
// A partition that ends before the replica's offset is asked again this many times, this far apart.
constexpr int kShortEndRetries = 5;
constexpr auto kShortEndWait = std::chrono::seconds(1);
// The start-up catch-up says where it is at most this often.
constexpr auto kProgressInterval = std::chrono::seconds(2);
// Bounds the records a replica holds read but not folded, waiting for a seal (kafka.h's kSealHeader): a serve
// that seals leaves at most kSealEveryEvents - 1 events unsealed at a time; a history published before serve
// sealed is folded checkpoint by checkpoint, and [audit] checkpoint_every's default of 100,000 events holds
// about 70 to 110 MiB of records (HeldBytes).
constexpr size_t kUnsealedBytesMax = size_t{128} << 20;
// A replica says once that its partition has this many events read and not proven (a shard that does not
// seal, or a writer without the ledger's key), so that stale reads and answers waiting on them have a reason.
constexpr size_t kUnsealedWarningRecords = 2 * kafka::kSealEveryEvents;

// One shard as the gateway sees it: a replica of its history and the readers that feed it and answer.
struct Replica {
  uint32_t shard = 0;
  std::unique_ptr<Store> store;
  std::unique_ptr<ProjectionSet> projections;
  std::unique_ptr<ShardReads> reads;
  std::unique_ptr<kafka::PartitionReader> events;
  std::unique_ptr<kafka::PartitionReader> results;
  int64_t next_offset = 0;  // of ledger.events partition `shard`, after the last folded record
  int64_t read_offset = 0;  // after the last record read (folded or not)
  Digest last_hash = kGenesisHash;
  std::atomic<uint64_t> applied{0};                   // the last folded sequence
  const SignatureVerifier* checkpoint_key = nullptr;  // null: checkpoints not checked
  uint64_t signed_through = 0;                        // the last checkpoint verified (0: none yet)
  std::string key_meta;                               // kKeyMeta's value: the key it is folded under
  // Records read after the last folded one, in order. With a key, only a prefix that ends at a new event the
  // ledger sealed (or a checkpoint it signed) is folded: the rest wait for a later seal.
  std::deque<kafka::Record> unsealed;
  size_t unsealed_bytes = 0;      // HeldBytes of `unsealed`
  size_t examined = 0;            // of `unsealed`, how many Examine looked at
  uint64_t examined_through = 0;  // the last new sequence among those
  Digest examined_hash{};         // and its chain hash
  size_t fold_end = 0;            // `unsealed`'s records through the last one proven
  bool said_unsealed = false;     // kUnsealedWarningRecords was logged (reset once the records fold)
};

// What a command's result asks for before it is answered: the shard's replica holding the events the result
// reports (a sequence), or, for a result without one (a duplicate), every event published before it (an
// offset of ledger.events).
struct Readiness {
  uint32_t shard = 0;
  uint64_t sequence = 0;
  int64_t events_offset = 0;
};

struct Waiting {
  std::string command_id;
  std::vector<uint32_t> shards_left;  // the shards whose results have not come
  // Another shard the command changed on the way (a waiting order's payment code, reserved on its customer's
  // shard): its replica must hold what its partition held when the result came, so that what the customer
  // asks next (the code's waiting order) is there too.
  std::optional<uint32_t> also_changed;
  std::vector<Readiness> ready_when;
  std::optional<gateway::CommandAnswer> answer;
  gateway::LedgerPort::Done done;
  Clock::time_point deadline;
};

// The shard of a transaction id ("<shard>-<first sequence>"); nullopt when it names none of `shards`.
std::optional<uint32_t> ShardOfTransaction(std::string_view transaction_id, uint32_t shards) {
  uint32_t shard = 0;
  const char* const end = transaction_id.data() + transaction_id.size();
  const auto [next, error] = std::from_chars(transaction_id.data(), end, shard);
  if (error != std::errc() || next == end || *next != '-' || shard >= shards) return std::nullopt;
  return shard;
}

// The last sequence a result lists (its transaction's, on the shard that decided it); 0 when none.
uint64_t LastSequenceOf(const std::string& value) {
  const nlohmann::json result = nlohmann::json::parse(value, nullptr, false);
  uint64_t last = 0;
  if (!result.is_object() || !result.contains("sequences") || !result["sequences"].is_array()) return last;
  for (const nlohmann::json& sequence : result["sequences"])
    if (sequence.is_number_unsigned()) last = std::max(last, sequence.get<uint64_t>());
  return last;
}

Result<gateway::CommandAnswer> AnswerOfResult(const std::string& value) {
  const nlohmann::json result = nlohmann::json::parse(value, nullptr, false);
  if (!result.is_object() || !result.contains("status") || !result["status"].is_string())
    return Status::Corruption("a result that is not one: " + value.substr(0, 200));
  gateway::CommandAnswer answer;
  const std::string status = result["status"];
  answer.kind = status == "accepted"    ? gateway::CommandAnswer::Kind::kAccepted
                : status == "duplicate" ? gateway::CommandAnswer::Kind::kDuplicate
                                        : gateway::CommandAnswer::Kind::kRejected;
  auto text = [&](const char* name) {
    return result.contains(name) && result[name].is_string() ? result[name].get<std::string>()
                                                             : std::string();
  };
  answer.reason = text("reason");
  answer.detail = text("detail");
  answer.transaction_id = text("transaction_id");
  return answer;
}

// The answer to a command sent to several shards (reference data): a rejection wins, then an acceptance.
void Merge(std::optional<gateway::CommandAnswer>& into, gateway::CommandAnswer answer) {
  if (!into.has_value() || answer.kind == gateway::CommandAnswer::Kind::kRejected ||
      (answer.kind == gateway::CommandAnswer::Kind::kAccepted &&
       into->kind == gateway::CommandAnswer::Kind::kDuplicate)) {
    into = std::move(answer);
  }
}

// The checkpoint key the replica was folded under must be the one configured now (none counts as a key): a
// replica folded unchecked, or under another key, is not vouched for by this one. Loads how far it vouches.
Status CheckSigningKey(Replica& replica, const KafkaLedgerOptions& options, const std::string& dir) {
  // "seals:" marks a replica that folded only sealed events: one folded before seals were checked may hold
  // events no holder of the key wrote, and is rebuilt.
  const std::string configured = options.checkpoint_key
                                     ? "seals:" + ToHex(options.checkpoint_key->public_key_id())
                                     : std::string("none");
  Result<std::optional<std::string>> folded_under = replica.store->GetMeta(kKeyMeta);
  if (!folded_under.ok()) return folded_under.status();
  if (replica.projections->LastApplied() > 0 && folded_under->value_or("none") != configured) {
    return Status::InvalidArgument(dir + ": the replica was folded under checkpoint key " +
                                   folded_under->value_or("none") + ", not " + configured +
                                   " ([audit] public_key); delete the folder to rebuild it under this key");
  }
  Result<std::optional<std::string>> signed_through = replica.store->GetMeta(kSignedMeta);
  if (!signed_through.ok()) return signed_through.status();
  if (signed_through->has_value()) {
    const std::string& text = **signed_through;
    const auto [end, parsed] =
        std::from_chars(text.data(), text.data() + text.size(), replica.signed_through);
    if (parsed != std::errc() || end != text.data() + text.size())
      return Status::Corruption(dir + ": an unreadable replica position; delete the folder to rebuild it");
  }
  replica.key_meta = configured;
  return Status::Ok();
}

Result<std::unique_ptr<Replica>> OpenReplica(const KafkaLedgerOptions& options, uint32_t shard) {
  auto replica = std::make_unique<Replica>();
  replica->shard = shard;
  replica->checkpoint_key = options.checkpoint_key.get();  // impl.options shares it for the port's life
  const std::string dir = options.replica_dir + "/shard-" + std::to_string(shard);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return Status::IoError("cannot make " + dir + ": " + error.message());
  StoreOptions store_options;
  store_options.sync = false;  // a replica is rebuilt from Kafka whenever it is lost
  Result<std::unique_ptr<Store>> store = Store::Open(dir, store_options);
  if (!store.ok()) return store.status();
  replica->store = std::move(store).value();
  replica->projections = std::make_unique<ProjectionSet>(MakeLedgerProjectors());
  LEDGER_RETURN_IF_ERROR(replica->projections->Load(replica->store->state()));
  replica->applied.store(replica->projections->LastApplied());
  Result<std::optional<std::string>> offset = replica->store->GetMeta(kOffsetMeta);
  if (!offset.ok()) return offset.status();
  Result<std::optional<std::string>> hash = replica->store->GetMeta(kHashMeta);
  if (!hash.ok()) return hash.status();
  if (offset->has_value() != hash->has_value())
    return Status::Corruption(dir +
                              ": the replica's offset and hash disagree; delete the folder to rebuild it");
  if (offset->has_value()) {
    const std::string& text = **offset;
    const auto [end, parsed] = std::from_chars(text.data(), text.data() + text.size(), replica->next_offset);
    std::optional<std::string> bytes = FromHex(**hash);
    if (parsed != std::errc() || end != text.data() + text.size() || !bytes || bytes->size() != 32)
      return Status::Corruption(dir + ": an unreadable replica position; delete the folder to rebuild it");
    std::copy(bytes->begin(), bytes->end(), replica->last_hash.begin());
  }
  replica->read_offset = replica->next_offset;
  LEDGER_RETURN_IF_ERROR(CheckSigningKey(*replica, options, dir));
  // From the last record folded, read again: it must be the event the replica holds (FoldNext), so a
  // partition replaced by another history is found before anything is skipped as seen.
  const int64_t start = replica->next_offset > 0 ? replica->next_offset - 1 : -1;
  Result<std::unique_ptr<kafka::PartitionReader>> events = kafka::PartitionReader::Open(
      options.brokers, kafka::kEventsTopic, shard, start, kafka::OffsetReset::kError);
  if (!events.ok()) return events.status();
  replica->events = std::move(events).value();
  replica->reads = std::make_unique<ShardReads>(*replica->store, options.timezone_offset_minutes);
  return replica;
}

// Whether `event` (sequence `sequence`, at or before the replica's last) is the event the replica holds:
// committed, or folded earlier in the batch being read (`batch_hashes`, the hashes of the events after the
// committed sequence `committed`, in order).
Status CheckHeld(const Replica& replica, uint64_t sequence, const DecodedEvent& event, uint64_t committed,
                 const std::vector<Digest>& batch_hashes, const std::string& where) {
  std::optional<Digest> held;
  Status problem;
  if (sequence > committed) {
    held = batch_hashes.at(sequence - committed - 1);
  } else {
    LEDGER_RETURN_IF_ERROR(
        replica.store->ScanEvents(sequence, sequence, [&](uint64_t, std::string_view record) {
          Result<DecodedEvent> stored = DecodeEventRecord(record);
          if (stored.ok())
            held = stored->hash;
          else
            problem = stored.status();
          return false;
        }));
  }
  LEDGER_RETURN_IF_ERROR(problem);
  if (!held.has_value() || *held != event.hash)
    return Status::Corruption(where + ": sequence " + std::to_string(sequence) +
                              " is not the event the replica holds: another history; delete the replica to "
                              "rebuild it");
  return Status::Ok();
}

// A checkpoint the ledger wrote: it covers the event before it (`covered`, whose hash is `chain_head`), in
// the envelope the ledger writes, signed by `key`. The chain proves order and integrity; this proves
// authorship of everything through the checkpoint. Errors: InvalidArgument naming what is wrong.
Status ProveCheckpoint(const fb::EventBody& event, const fb::CheckpointRecorded& checkpoint, uint64_t covered,
                       const Digest& chain_head, const SignatureVerifier& key) {
  if (checkpoint.sequence() != covered || !IsLedgerCheckpointEnvelope(event, checkpoint))
    return Status::InvalidArgument("a checkpoint that is not the ledger's (it covers sequence " +
                                   std::to_string(checkpoint.sequence()) + ")");
  const flatbuffers::Vector<uint8_t>* head = checkpoint.chain_head();
  if (head == nullptr || !std::equal(head->begin(), head->end(), chain_head.begin(), chain_head.end()))
    return Status::InvalidArgument("a checkpoint naming another chain head");
  return CheckCheckpointSignature(checkpoint, chain_head, key);
}

std::string WhereIs(const Replica& replica, const kafka::Record& record) {
  return "ledger.events partition " + std::to_string(replica.shard) + " offset " +
         std::to_string(record.offset);
}

// `value` decoded, an event of the replica's shard. Errors: Corruption saying `where`.
Result<DecodedEvent> DecodeShardEvent(const Replica& replica, const std::string& value,
                                      const std::string& where) {
  Result<DecodedEvent> event = DecodeEventRecord(value);
  if (!event.ok()) return Status::Corruption(where + ": " + event.status().message());
  if (event->body->shard() != replica.shard)
    return Status::Corruption(where + ": an event of shard " + std::to_string(event->body->shard()));
  return event;
}

// What a record read and not folded yet counts against kUnsealedBytesMax.
size_t HeldBytes(const kafka::Record& record) {
  return sizeof record + record.key.size() + record.value.size() + record.owner.size() +
         record.key_id.size() + record.leg_tag.size() + record.seal.size() + record.producer_key_id.size() +
         record.producer_signature.size();
}

// Reads what the replica's partition holds next (waiting up to `timeout_ms` for it) into `unsealed`. Returns
// how many records it read.
Result<size_t> ReadNext(Replica& replica, int timeout_ms) {
  Result<std::vector<kafka::Record>> records = replica.events->Poll(kFoldRecordsMax, timeout_ms);
  if (!records.ok()) return records.status();
  for (kafka::Record& record : *records) {
    replica.read_offset = record.offset + 1;
    replica.unsealed_bytes += HeldBytes(record);
    replica.unsealed.push_back(std::move(record));
  }
  return records->size();
}

// Looks at the records read since the last look, in order, and moves `fold_end` past the last new event that
// carries the ledger's seal or is a checkpoint it signed; without a key, past everything (FoldPrefix checks
// the chain). With a key every new event must follow the one before it (sequence and hash chain) and every
// seal and checkpoint must verify here, before anything is folded, so that a fold in several commits applies
// only what a seal already proved. Errors: Corruption naming the record.
Status Examine(Replica& replica) {
  if (replica.checkpoint_key == nullptr) {
    replica.fold_end = replica.examined = replica.unsealed.size();
    return Status::Ok();
  }
  if (replica.examined == 0) {
    replica.examined_through = replica.applied.load();
    replica.examined_hash = replica.last_hash;
  }
  for (; replica.examined < replica.unsealed.size(); ++replica.examined) {
    const kafka::Record& record = replica.unsealed[replica.examined];
    const std::string where = WhereIs(replica, record);
    Result<DecodedEvent> event = DecodeShardEvent(replica, record.value, where);
    if (!event.ok()) return event.status();
    const uint64_t sequence = event->body->sequence();
    if (sequence <= replica.examined_through) {  // published again: FoldPrefix checks it is the one held
      if (replica.fold_end == replica.examined) replica.fold_end += 1;  // nothing unsealed before it
      continue;
    }
    const std::string at = where + ": sequence " + std::to_string(sequence);
    if (sequence != replica.examined_through + 1)
      return Status::Corruption(at + " after " + std::to_string(replica.examined_through));
    if (event->prev_hash != replica.examined_hash ||
        ChainHash(event->prev_hash, event->body_bytes) != event->hash)
      return Status::Corruption(at + " does not chain");
    bool proven = false;
    if (const fb::CheckpointRecorded* checkpoint = event->body->payload_as_CheckpointRecorded()) {
      const Status signed_by_ledger = ProveCheckpoint(*event->body, *checkpoint, replica.examined_through,
                                                      replica.examined_hash, *replica.checkpoint_key);
      if (!signed_by_ledger.ok()) return Status::Corruption(at + ": " + signed_by_ledger.message());
      proven = true;
    }
    if (!record.seal.empty()) {
      if (!replica.checkpoint_key->Verify(
              SealMessage(replica.shard, sequence, event->hash),
              std::span(reinterpret_cast<const uint8_t*>(record.seal.data()), record.seal.size())))
        return Status::Corruption(at + ": a seal the ledger's key did not make");
      proven = true;
    }
    replica.examined_through = sequence;
    replica.examined_hash = event->hash;
    if (proven) replica.fold_end = replica.examined + 1;
  }
  const size_t unproven = replica.unsealed.size() - replica.fold_end;
  if (unproven < kUnsealedWarningRecords) {
    replica.said_unsealed = false;
  } else if (!replica.said_unsealed) {
    replica.said_unsealed = true;
    spdlog::warn(
        "gateway: shard {}: {} records after offset {} carry no seal of the ledger's key yet: reads of that "
        "shard stay at sequence {} until one comes (does its serve have [audit] private_key?)",
        replica.shard, unproven, replica.next_offset, replica.applied.load());
  }
  if (replica.unsealed_bytes > kUnsealedBytesMax && replica.fold_end == 0)
    return Status::Corruption(
        "ledger.events partition " + std::to_string(replica.shard) + ": " +
        std::to_string(replica.unsealed.size()) + " records after offset " +
        std::to_string(replica.next_offset) +
        " and neither a seal of the ledger's key ([audit] public_key) nor a checkpoint it signed on them: a "
        "writer without the key, a serve that does not seal, or a history published before seals whose "
        "checkpoints are too far apart for a replica that checks seals");
  return Status::Ok();
}

// Folds up to kFoldRecordsMax of the records before `fold_end` into the replica's store in one commit: every
// event must follow the last one (sequence and hash chain), or the replica stops with Corruption.
Status FoldPrefix(Replica& replica) {
  const size_t count = std::min(replica.fold_end, kFoldRecordsMax);
  Overlay overlay(replica.store->state());
  CommitBatch batch;
  batch.sync = false;
  Digest last_hash = replica.last_hash;
  const uint64_t committed = replica.projections->LastApplied();
  uint64_t applied = committed;
  uint64_t signed_through = replica.signed_through;
  std::vector<Digest> batch_hashes;  // of the events folded in this batch, in order
  for (size_t index = 0; index < count; ++index) {
    const kafka::Record& record = replica.unsealed[index];
    const std::string where = WhereIs(replica, record);
    Result<DecodedEvent> event = DecodeShardEvent(replica, record.value, where);
    if (!event.ok()) return event.status();
    const uint64_t sequence = event->body->sequence();
    if (sequence <= applied) {
      // Folded before (published again after a producer rebuild, or the last record read again at start):
      // it must be the event the replica holds, else the partition holds another history.
      LEDGER_RETURN_IF_ERROR(CheckHeld(replica, sequence, *event, committed, batch_hashes, where));
      continue;
    }
    if (sequence != applied + 1)
      return Status::Corruption(where + ": sequence " + std::to_string(sequence) + " after " +
                                std::to_string(applied));
    if (event->prev_hash != last_hash || ChainHash(event->prev_hash, event->body_bytes) != event->hash)
      return Status::Corruption(where + ": sequence " + std::to_string(sequence) + " does not chain");
    if (const fb::CheckpointRecorded* checkpoint = event->body->payload_as_CheckpointRecorded();
        checkpoint != nullptr && replica.checkpoint_key != nullptr) {
      const Status proven =
          ProveCheckpoint(*event->body, *checkpoint, applied, last_hash, *replica.checkpoint_key);
      if (!proven.ok())
        return Status::Corruption(where + ": sequence " + std::to_string(sequence) + ": " + proven.message());
      signed_through = sequence;
    }
    LEDGER_RETURN_IF_ERROR(replica.projections->Apply(*event->body, overlay));
    batch.events.emplace_back(sequence, record.value);
    batch_hashes.push_back(event->hash);
    last_hash = event->hash;
    applied = sequence;
  }
  const int64_t next_offset = replica.unsealed[count - 1].offset + 1;
  batch.state = &overlay;
  batch.meta = {{kOffsetMeta, std::to_string(next_offset)},
                {kHashMeta, ToHex(last_hash)},
                {kSignedMeta, std::to_string(signed_through)},
                {kKeyMeta, replica.key_meta}};
  LEDGER_RETURN_IF_ERROR(replica.store->Commit(batch));
  replica.signed_through = signed_through;
  replica.next_offset = next_offset;
  replica.last_hash = last_hash;
  replica.applied.store(applied);
  for (size_t index = 0; index < count; ++index) {
    replica.unsealed_bytes -= HeldBytes(replica.unsealed.front());
    replica.unsealed.pop_front();
  }
  replica.examined -= count;
  replica.fold_end -= count;
  return Status::Ok();
}

// Reads what the replica's partition holds next (waiting up to `timeout_ms` for it) and folds what a seal
// covers (everything, without a key). Returns how many records it read.
Result<size_t> FoldNext(Replica& replica, int timeout_ms) {
  Result<size_t> read = ReadNext(replica, timeout_ms);
  if (!read.ok()) return read.status();
  LEDGER_RETURN_IF_ERROR(Examine(replica));
  while (replica.fold_end > 0) LEDGER_RETURN_IF_ERROR(FoldPrefix(replica));
  return read;
}

// Folds the replica up to its partition's end as it is now.
Status CatchUp(Replica& replica) {
  Result<kafka::Watermarks> marks = replica.events->QueryWatermarks(kafka::kWatermarksTimeoutMs);
  // Right after a leader change the partition's end can read short for a moment: asked again before it
  // counts.
  for (int again = 0; again < kShortEndRetries && marks.ok() && replica.next_offset > marks->high; ++again) {
    std::this_thread::sleep_for(kShortEndWait);
    marks = replica.events->QueryWatermarks(kafka::kWatermarksTimeoutMs);
  }
  if (!marks.ok()) return marks.status();
  if (replica.next_offset > marks->high)
    return Status::Corruption("ledger.events partition " + std::to_string(replica.shard) +
                              " ends at offset " + std::to_string(marks->high) + " but the replica read to " +
                              std::to_string(replica.next_offset) +
                              ": another history; delete the replica to rebuild it");
  auto said = Clock::now();
  // A replica that read before reads its last record again first (FoldNext checks it), even at the end.
  bool recheck = replica.read_offset > 0;
  while (recheck || replica.read_offset < marks->high) {
    recheck = false;
    Result<size_t> folded = FoldNext(replica, kafka::kWatermarksTimeoutMs);
    if (!folded.ok()) return folded.status();
    if (*folded == 0)
      return Status::IoError("ledger.events partition " + std::to_string(replica.shard) +
                             ": nothing read at " + std::to_string(replica.read_offset) + " of " +
                             std::to_string(marks->high));
    if (Clock::now() - said >= kProgressInterval) {
      spdlog::info("gateway: shard {} replica at offset {} of {}", replica.shard, replica.read_offset,
                   marks->high);
      said = Clock::now();
    }
  }
  return Status::Ok();
}

}  // namespace

struct KafkaLedger::Impl {
  KafkaLedgerOptions options;
  std::vector<std::unique_ptr<Replica>> replicas;
  std::unique_ptr<kafka::RecordSender> sender;
  std::mutex sender_mutex;  // the sender is used by the server's thread and the port's
  mutable std::mutex mutex;
  std::deque<std::shared_ptr<Waiting>> waiting;  // in the order sent
  bool stopping = false;
  Status failure;
  std::thread thread;

  const ShardReads& Reads(uint32_t shard) const { return *replicas[shard]->reads; }
  uint32_t OrderShard(std::string_view merchant, std::string_view order_no) const {
    return ShardOfKey(OrderKey(merchant, order_no), options.shards);
  }

  void Follow();
  // One round: folds, reads results, answers what is ready, expires what is overdue. False when a replica
  // failed (failure is set).
  bool Round(bool* idle);
  void OnResult(uint32_t shard, const kafka::Record& record);
  // The end of shard's ledger.events partition now (the offset its next record will get); nullopt when the
  // broker does not say. A broker round trip on this thread: asked only for results that need it.
  std::optional<int64_t> EventsEnd(uint32_t shard);
  // The waiting commands whose results all came and whose replicas are there, taken out of `waiting`.
  std::vector<std::shared_ptr<Waiting>> TakeReady();
  std::vector<std::shared_ptr<Waiting>> TakeOverdue();
  void Fail(const Status& status);
};

KafkaLedger::KafkaLedger() : impl_(std::make_unique<Impl>()) {}

KafkaLedger::~KafkaLedger() { Stop(); }

Result<std::unique_ptr<KafkaLedger>> KafkaLedger::Open(const KafkaLedgerOptions& options) {
  if (options.shards == 0) return Status::InvalidArgument("the Kafka port needs at least one shard");
  LEDGER_RETURN_IF_ERROR(kafka::CheckShardCount(options.brokers, options.shards, kShardCountTimeoutMs));
  if (options.checkpoint_key == nullptr)
    spdlog::warn(
        "gateway: no [audit] public_key: the replicas check the chain of ledger.events, not who wrote it");
  std::unique_ptr<KafkaLedger> port(new KafkaLedger());
  Impl& impl = *port->impl_;
  impl.options = options;
  for (uint32_t shard = 0; shard < options.shards; ++shard) {
    Result<std::unique_ptr<Replica>> replica = OpenReplica(options, shard);
    if (!replica.ok()) return replica.status();
    LEDGER_RETURN_IF_ERROR(CatchUp(**replica));
    Result<std::unique_ptr<kafka::PartitionReader>> results = ResultsFromNow(options.brokers, shard);
    if (!results.ok()) return results.status();
    (*replica)->results = std::move(results).value();
    spdlog::info(
        "gateway: shard {} replica through sequence {}; checkpoints verified through {}; records held until "
        "a "
        "seal: {}",
        shard, (*replica)->applied.load(), (*replica)->signed_through, (*replica)->unsealed.size());
    if (options.checkpoint_key != nullptr && (*replica)->signed_through == 0 &&
        (*replica)->applied.load() > 0)
      spdlog::warn(
          "gateway: shard {}: no checkpoint verified yet: nothing proves who wrote the {} events the "
          "replica holds (the shard writes one every [audit] checkpoint_every events and at shutdown)",
          shard, (*replica)->applied.load());
    impl.replicas.push_back(std::move(replica).value());
  }
  Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(options.brokers);
  if (!sender.ok()) return sender.status();
  impl.sender = std::move(sender).value();
  impl.thread = std::thread([&impl] { impl.Follow(); });
  return port;
}

void KafkaLedger::Stop() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  std::deque<std::shared_ptr<Waiting>> left;
  {
    std::lock_guard lock(impl_->mutex);
    left.swap(impl_->waiting);
  }
  for (auto& waiting : left) waiting->done(Status::Aborted("the gateway is stopping"));
}

Status KafkaLedger::failure() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->failure;
}

uint32_t KafkaLedger::shards() const { return impl_->options.shards; }

void KafkaLedger::Submit(std::string command_line, Done done) {
  if (impl_->options.producer_key == nullptr)
    return done(Status::Aborted("this Kafka port only reads: it has no producer key"));
  Result<ParsedCommand> parsed = ParseCommandJson(command_line);
  if (!parsed.ok()) return done(parsed.status());  // the gateway built a line the ledger cannot read
  // A refund number is checked by the shard that holds its payment only: one another order's shard holds is
  // refused here, as one shard would (the same number, other content).
  if (const fb::RefundT* refund = parsed->command.body.AsRefund(); refund != nullptr) {
    Result<std::optional<gateway::RefundView>> held = Refund(refund->merchant, refund->refund_no);
    if (held.ok() && held->has_value() && (*held)->order_no != refund->merchant_order_no) {
      return done(gateway::CommandAnswer{gateway::CommandAnswer::Kind::kRejected,
                                         "DUPLICATE_COMMAND_MISMATCH",
                                         "refund number " + refund->refund_no + " is another order's", ""});
    }
  }
  auto waiting = std::make_shared<Waiting>();
  waiting->command_id = parsed->command_id;
  // Sent from this copy: once the waiter is published, the port's thread changes shards_left.
  const std::vector<uint32_t> shards = ShardsFor(*parsed, impl_->options.shards);
  waiting->shards_left = shards;
  if (const fb::CreateOrderT* create = parsed->command.body.AsCreateOrder();
      create != nullptr && !create->payment_code_customer.empty()) {
    const uint32_t code_shard = ShardOfKey(create->payment_code_customer, impl_->options.shards);
    if (std::find(shards.begin(), shards.end(), code_shard) == shards.end())
      waiting->also_changed = code_shard;
  }
  waiting->done = std::move(done);
  waiting->deadline = Clock::now() + std::chrono::milliseconds(impl_->options.answer_timeout_ms);
  Status refused;
  {
    // Waiting before it is sent: its result may come before Send returns.
    std::lock_guard lock(impl_->mutex);
    if (!impl_->failure.ok() || impl_->stopping) {
      refused = Status::Aborted("the ledger port stopped");
    } else if (impl_->waiting.size() >= impl_->options.waiting_max) {
      refused = Status::Aborted("too many commands wait for their results");
    } else {
      impl_->waiting.push_back(waiting);
    }
  }
  if (!refused.ok()) return waiting->done(refused);
  // A producer key in a token may fail to sign: then nothing is sent, and the command fails like a send.
  const Result<kafka::Headers> headers =
      kafka::CommandSignatureHeaders(*impl_->options.producer_key, parsed->fingerprint);
  Status sent = headers.status();
  if (sent.ok()) {
    std::lock_guard lock(impl_->sender_mutex);
    for (uint32_t shard : shards) {
      sent = impl_->sender->Send(kafka::kCommandsTopic, shard, parsed->command_id, command_line, *headers);
      if (!sent.ok()) break;
    }
  }
  if (sent.ok()) return;
  bool mine = false;
  {
    std::lock_guard lock(impl_->mutex);
    auto it = std::find(impl_->waiting.begin(), impl_->waiting.end(), waiting);
    if (it != impl_->waiting.end()) {
      impl_->waiting.erase(it);
      mine = true;
    }
  }
  if (mine) waiting->done(sent);  // else Stop or a failure answered it already
}

void KafkaLedger::Impl::Follow() {
  while (true) {
    {
      std::lock_guard lock(mutex);
      if (stopping) return;
    }
    bool idle = true;
    if (!Round(&idle)) return;
    if (idle) std::this_thread::sleep_for(kIdleWait);
  }
}

bool KafkaLedger::Impl::Round(bool* idle) {
  for (auto& replica : replicas) {
    Result<size_t> folded = FoldNext(*replica, 0);
    if (!folded.ok()) {
      Fail(folded.status());
      return false;
    }
    Result<std::vector<kafka::Record>> results = replica->results->Poll(kResultsPerPollMax, 0);
    if (!results.ok()) {
      Fail(results.status());
      return false;
    }
    if (*folded > 0 || !results->empty()) *idle = false;
    for (const kafka::Record& record : *results) OnResult(replica->shard, record);
  }
  {
    // A command whose record failed gets no result: it is answered when its time is up.
    std::lock_guard lock(sender_mutex);
    const Status delivered = sender->ServeDeliveries();
    if (!delivered.ok()) spdlog::warn("gateway: ledger.commands: {}", delivered.message());
  }
  for (auto& waiting : TakeReady()) waiting->done(std::move(*waiting->answer));
  for (auto& waiting : TakeOverdue()) {
    waiting->done(Status::IoError("no result for command " + waiting->command_id + " within " +
                                  std::to_string(options.answer_timeout_ms) +
                                  " ms: it may or may not be applied"));
  }
  return true;
}

void KafkaLedger::Impl::OnResult(uint32_t shard, const kafka::Record& record) {
  std::shared_ptr<Waiting> waiting;
  {
    std::lock_guard lock(mutex);
    for (auto& candidate : this->waiting) {
      if (candidate->command_id != record.key) continue;
      auto left = std::find(candidate->shards_left.begin(), candidate->shards_left.end(), shard);
      if (left == candidate->shards_left.end()) continue;
      candidate->shards_left.erase(left);
      waiting = candidate;
      break;
    }
  }
  if (waiting == nullptr) return;  // another gateway's, or one that timed out
  const Result<gateway::CommandAnswer> answer = AnswerOfResult(record.value);
  Readiness ready{shard, 0, 0};
  if (record.sequence.has_value()) {
    ready.sequence = *record.sequence;
  } else {
    // No sequence (a duplicate): its events were published before it, so the partition's end now covers
    // them.
    // Unknown when the broker does not say: then it waits until its time is up.
    ready.events_offset = EventsEnd(shard).value_or(std::numeric_limits<int64_t>::max());
  }
  // The other shard published its part before this shard could decide (its answer came as a leg after its
  // events), so that partition's end now covers it. Unknown when the broker does not say: then answered
  // without it (at worst the customer's next read misses the reservation and is asked again, where waiting
  // out the deadline would answer a created order as a failure).
  std::optional<Readiness> also;
  if (waiting->also_changed.has_value())
    also = Readiness{*waiting->also_changed, 0, EventsEnd(*waiting->also_changed).value_or(0)};
  std::lock_guard lock(mutex);
  if (also.has_value()) waiting->ready_when.push_back(*also);
  if (!answer.ok()) {
    // Not a refusal: the command may well be applied. Answered as unknown when its time is up.
    spdlog::error("gateway: shard {}: {}", shard, answer.status().message());
    waiting->shards_left.push_back(shard);
    return;
  }
  // A payment another shard decided (its customer's): that shard's events must be there too.
  const std::optional<uint32_t> decided_on = ShardOfTransaction(answer->transaction_id, options.shards);
  if (decided_on.has_value() && *decided_on != shard)
    waiting->ready_when.push_back({*decided_on, LastSequenceOf(record.value), 0});
  Merge(waiting->answer, *answer);
  waiting->ready_when.push_back(ready);
}

std::optional<int64_t> KafkaLedger::Impl::EventsEnd(uint32_t shard) {
  Result<kafka::Watermarks> marks = replicas[shard]->events->QueryWatermarks(kafka::kWatermarksTimeoutMs);
  if (!marks.ok()) return std::nullopt;
  return marks->high;
}

std::vector<std::shared_ptr<Waiting>> KafkaLedger::Impl::TakeReady() {
  auto is_ready = [this](const Waiting& waiting) {
    if (!waiting.shards_left.empty()) return false;
    for (const Readiness& ready : waiting.ready_when) {
      const Replica& replica = *replicas[ready.shard];
      if (replica.applied.load() < ready.sequence || replica.next_offset < ready.events_offset) return false;
    }
    return true;
  };
  std::vector<std::shared_ptr<Waiting>> taken;
  std::lock_guard lock(mutex);
  for (auto it = waiting.begin(); it != waiting.end();) {
    if (is_ready(**it)) {
      taken.push_back(std::move(*it));
      it = waiting.erase(it);
    } else {
      ++it;
    }
  }
  return taken;
}

std::vector<std::shared_ptr<Waiting>> KafkaLedger::Impl::TakeOverdue() {
  const Clock::time_point now = Clock::now();
  std::vector<std::shared_ptr<Waiting>> taken;
  std::lock_guard lock(mutex);
  for (auto it = waiting.begin(); it != waiting.end();) {
    if ((*it)->deadline <= now) {
      taken.push_back(std::move(*it));
      it = waiting.erase(it);
    } else {
      ++it;
    }
  }
  return taken;
}

void KafkaLedger::Impl::Fail(const Status& status) {
  spdlog::error("gateway: the Kafka port stopped: {}", status.ToString());
  std::deque<std::shared_ptr<Waiting>> left;
  {
    std::lock_guard lock(mutex);
    failure = status;
    left.swap(waiting);
  }
  for (auto& waiting : left) waiting->done(status);
}

Result<std::optional<gateway::MerchantKeyRecordView>> KafkaLedger::MerchantKey(
    std::string_view serial_no) const {
  // Every shard records every merchant key; a revocation any replica has seen counts at once.
  std::optional<gateway::MerchantKeyRecordView> found;
  for (const auto& replica : impl_->replicas) {
    Result<std::optional<gateway::MerchantKeyRecordView>> key = replica->reads->MerchantKey(serial_no);
    if (!key.ok()) return key.status();
    if (!key->has_value()) continue;
    if (!found.has_value())
      found = std::move(*key);
    else
      found->revoked = found->revoked || (*key)->revoked;
  }
  return found;
}

Result<std::optional<gateway::PaymentView>> KafkaLedger::Payment(std::string_view merchant,
                                                                 std::string_view order_no) const {
  // On the order's shard, or where its route says: the customer's shard decided it and holds the payment.
  const uint32_t order_shard = impl_->OrderShard(merchant, order_no);
  Result<std::optional<gateway::PaymentView>> payment = impl_->Reads(order_shard).Payment(merchant, order_no);
  if (!payment.ok() || payment->has_value()) return payment;
  Result<std::optional<uint32_t>> routed = impl_->Reads(order_shard).OrderRoutedTo(merchant, order_no);
  if (!routed.ok()) return routed.status();
  if (!routed->has_value() || **routed == order_shard || **routed >= impl_->options.shards) return payment;
  return impl_->Reads(**routed).Payment(merchant, order_no);
}

Result<std::optional<gateway::PaymentView>> KafkaLedger::PaymentByTransaction(
    std::string_view transaction_id) const {
  const std::optional<uint32_t> shard = ShardOfTransaction(transaction_id, impl_->options.shards);
  if (!shard.has_value()) return std::optional<gateway::PaymentView>();
  return impl_->Reads(*shard).PaymentByTransaction(transaction_id);
}

Result<std::optional<gateway::OrderView>> KafkaLedger::Order(std::string_view merchant,
                                                             std::string_view order_no) const {
  return impl_->Reads(impl_->OrderShard(merchant, order_no)).Order(merchant, order_no);
}

Result<std::optional<gateway::RefundView>> KafkaLedger::Refund(std::string_view merchant,
                                                               std::string_view refund_no) const {
  // A refund lives on the shard that holds its payment, which its number does not tell; a refund number is
  // unique on that shard only, so when two shards hold one, the latest is the one just asked for.
  std::optional<gateway::RefundView> found;
  for (const auto& replica : impl_->replicas) {
    Result<std::optional<gateway::RefundView>> refund = replica->reads->Refund(merchant, refund_no);
    if (!refund.ok()) return refund.status();
    if (refund->has_value() && (!found || (*refund)->refunded_at_ns > found->refunded_at_ns))
      found = std::move(*refund);
  }
  return found;
}

Result<std::optional<gateway::CustomerMediumView>> KafkaLedger::CustomerMedium(
    std::string_view customer, std::string_view medium) const {
  return impl_->Reads(ShardOfKey(customer, impl_->options.shards)).CustomerMedium(customer, medium);
}

Result<std::optional<gateway::PaymentCodeView>> KafkaLedger::PaymentCode(
    std::string_view payment_code) const {
  // A code is issued on its customer's shard, which its id does not tell: that shard's record is the code's,
  // with the order it is reserved for. Another shard's record of it knows only an order there that waits on
  // it (created after that reservation).
  for (const auto& replica : impl_->replicas) {
    Result<std::optional<gateway::PaymentCodeView>> code = replica->reads->PaymentCode(payment_code);
    if (!code.ok()) return code.status();
    if (code->has_value() && !(*code)->customer.empty()) return code;
  }
  return std::optional<gateway::PaymentCodeView>();
}

Result<std::string> KafkaLedger::TradeBill(std::string_view merchant, int date) const {
  std::vector<recon::Line> lines;
  for (const auto& replica : impl_->replicas) {
    Result<std::vector<recon::Line>> shard_lines = replica->reads->TradeLines(merchant, date);
    if (!shard_lines.ok()) return shard_lines.status();
    lines.insert(lines.end(), std::make_move_iterator(shard_lines->begin()),
                 std::make_move_iterator(shard_lines->end()));
  }
  return recon::WeChatTradeBill(lines, merchant, impl_->options.timezone_offset_minutes);
}

Result<gateway::NoticeBatch> KafkaLedger::NoticesAfter(uint64_t after, size_t events_max) const {
  return impl_->Reads(0).NoticesAfter(after, events_max);
}

namespace {

// One shard's notices over the port's reads (KafkaLedger::NoticesOf).
class ShardNotices final : public gateway::LedgerPort {
 public:
  ShardNotices(const KafkaLedger& port, const ShardReads& shard) : port_(port), shard_(shard) {}
  Result<std::optional<gateway::MerchantKeyRecordView>> MerchantKey(
      std::string_view serial_no) const override {
    return port_.MerchantKey(serial_no);
  }
  Result<std::optional<gateway::PaymentView>> Payment(std::string_view merchant,
                                                      std::string_view order_no) const override {
    return port_.Payment(merchant, order_no);
  }
  Result<std::optional<gateway::PaymentView>> PaymentByTransaction(
      std::string_view transaction_id) const override {
    return port_.PaymentByTransaction(transaction_id);
  }
  Result<std::optional<gateway::OrderView>> Order(std::string_view merchant,
                                                  std::string_view order_no) const override {
    return port_.Order(merchant, order_no);
  }
  Result<std::optional<gateway::RefundView>> Refund(std::string_view merchant,
                                                    std::string_view refund_no) const override {
    return port_.Refund(merchant, refund_no);
  }
  Result<std::optional<gateway::CustomerMediumView>> CustomerMedium(std::string_view customer,
                                                                    std::string_view medium) const override {
    return port_.CustomerMedium(customer, medium);
  }
  Result<std::optional<gateway::PaymentCodeView>> PaymentCode(std::string_view payment_code) const override {
    return port_.PaymentCode(payment_code);
  }
  Result<std::string> TradeBill(std::string_view merchant, int date) const override {
    return port_.TradeBill(merchant, date);
  }
  Result<gateway::NoticeBatch> NoticesAfter(uint64_t after, size_t events_max) const override {
    return shard_.NoticesAfter(after, events_max);
  }
  void Submit(std::string, Done done) override { done(Status::Aborted("a notices port sends no commands")); }

 private:
  const KafkaLedger& port_;
  const ShardReads& shard_;
};

}  // namespace

std::unique_ptr<gateway::LedgerPort> KafkaLedger::NoticesOf(uint32_t shard) const {
  return std::make_unique<ShardNotices>(*this, impl_->Reads(shard));
}

}  // namespace ledger::cli
