// The publisher: events and results, exactly once (legs at least once: their receivers skip duplicates) and
// in ledger order, resuming from the partition tails.
//
// Why this gives exactly once without broker transactions: a record is produced only for sequences above the
// tail read from the partition itself, the idempotent producer (acks=all) never duplicates or reorders within
// one producer session, and every failure ends the session: the next session reads the tails again.
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>
#include <utility>

#include "client_security.h"
#include "core/sha256.h"
#include "events/event.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"

namespace ledger::kafka {
namespace {

// Bounds how many store records one produce pass holds in memory before waiting for acknowledgements.
constexpr size_t kPublishChunkEventsMax = 50'000;
// How long the producer waits to fill a batch: as short as it goes, since serve's answers wait for the acks.
constexpr int kLingerMs = 1;
// How long a failed producer session waits before the producer is rebuilt.
constexpr int kRebuildBackoffMs = 200;
// The producer's batching and local queue: records per produce request, and records queued before produce
// refuses more (then the publisher polls deliveries and retries, up to kQueueFullRetriesMax times).
constexpr int kBatchRecordsMax = 10'000;
constexpr int kProducerQueueMessagesMax = 200'000;
constexpr int kQueueFullRetriesMax = 100'000;
// librdkafka refuses a message timeout below this: the acknowledgement timeout is raised to it.
constexpr int64_t kMessageTimeoutMinMs = 1'000;
// A produce pass serves delivery callbacks every this many records, so the local queue drains as it fills.
constexpr size_t kDeliveryPollEveryRecords = 1024;
// How long PublishThrough waits for `through` to be committed before it looks at the store again.
constexpr int kUncommittedWaitMs = 10;
// How long PublishThrough waits before it asks the ledger's key for a seal it did not make (a token
// reconnects at most every 5 s).
constexpr int64_t kSealRetryMs = 1'000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What a produced record is, for its delivery report.
enum class RecordKind : uintptr_t { kEvent = 0, kResult = 1, kLeg = 2 };

// Delivery opaque: sequence << 2 | kind.
void* MakeOpaque(uint64_t sequence, RecordKind kind) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(sequence << 2 | static_cast<uintptr_t>(kind)));
}

// A record's proof header: its name and bytes (a leg's tag, an event's seal); none when the name is null.
using Proof = std::pair<const char*, std::string>;

// A stored event record, decoded. Errors: Corruption naming the sequence.
Result<DecodedEvent> DecodeStored(uint64_t sequence, std::string_view record) {
  Result<DecodedEvent> decoded = DecodeEventRecord(record);
  if (!decoded.ok())
    return Status::Corruption("event " + std::to_string(sequence) + ": " + decoded.status().message());
  return decoded;
}

}  // namespace

struct Publisher::Impl {
  const Store* store = nullptr;
  ProducerSettings settings;
  std::unique_ptr<LegAuthenticator> legs_authenticator;  // from settings.ledger_key (null: legs go untagged)
  std::string key_id;  // the ledger.key header: settings.ledger_key's id, in hex (empty: none)
  rd_kafka_t* producer = nullptr;
  bool need_resume = true;
  bool session_failed = false;
  std::string failure;
  uint64_t events_produced = 0;   // highest event sequence handed to this session
  uint64_t results_produced = 0;  // highest result sequence handed to this session
  uint64_t results_scanned = 0;   // transactions through this sequence have had their results produced
  uint64_t events_acked = 0;
  uint64_t results_acked = 0;
  uint64_t legs_scanned = 0;      // the legs of events through this sequence have been produced
  uint64_t legs_produced = 0;     // leg records handed to this session
  uint64_t legs_acked = 0;        // of them, acknowledged
  uint64_t events_published = 0;  // acknowledged event records, all sessions
  uint64_t rebuilds = 0;
  int64_t plain_results_outstanding = 0;
  // Why the last pass stopped before a seal its key did not make (ok: it did not). Not a session failure: the
  // producer and what it sent are fine, the pass goes on from there once the key signs.
  Status seal_refused;

  ~Impl() { DestroyProducer(); }

  void DestroyProducer() {
    if (producer == nullptr) return;
    rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(producer, 0);
    rd_kafka_destroy(producer);
    producer = nullptr;
  }

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    auto* impl = static_cast<Impl*>(opaque);
    const auto tag = reinterpret_cast<uintptr_t>(message->_private);
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (!impl->session_failed) impl->failure = rd_kafka_err2str(message->err);
      impl->session_failed = true;
      return;
    }
    if (tag == 0) {  // a result without a sequence (duplicate)
      impl->plain_results_outstanding -= 1;
      return;
    }
    const uint64_t sequence = tag >> 2;
    const auto kind = static_cast<RecordKind>(tag & 3);
    if (kind == RecordKind::kLeg) {
      impl->legs_acked += 1;
    } else if (kind == RecordKind::kResult) {
      impl->results_acked = std::max(impl->results_acked, sequence);
    } else {
      // The idempotent producer delivers in order: acknowledgements rise by one.
      LEDGER_ASSERT(sequence == impl->events_acked + 1 || sequence <= impl->events_acked);
      if (sequence > impl->events_acked) {
        impl->events_acked = sequence;
        impl->events_published += 1;
      }
    }
  }

  static void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* impl = static_cast<Impl*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char text[512];
      rd_kafka_fatal_error(rk, text, sizeof text);
      impl->session_failed = true;
      impl->failure = std::string("fatal: ") + text;
      spdlog::warn("kafka producer fatal error: {}", text);
    } else {
      spdlog::debug("kafka producer: {}", reason);
    }
  }

  Status CreateProducer() {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    ApplyClientSecurity(conf);
    char error[512];
    const std::pair<const char*, std::string> settings_list[] = {
        {"bootstrap.servers", settings.brokers},
        {"client.id", "ledger-publisher"},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", std::to_string(kLingerMs)},
        {"socket.nagle.disable", "true"},  // small produce requests must not wait for delayed TCP ACKs
        {"batch.num.messages", std::to_string(kBatchRecordsMax)},
        {"queue.buffering.max.messages", std::to_string(kProducerQueueMessagesMax)},
        {"message.timeout.ms",
         std::to_string(std::max<int64_t>(settings.ack_timeout_ms, kMessageTimeoutMinMs))},
        {"log.connection.close", "false"},
    };
    for (const auto& [name, value] : settings_list) {
      if (rd_kafka_conf_set(conf, name, value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return Status::InvalidArgument(std::string("kafka setting ") + name + ": " + error);
      }
    }
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
    rd_kafka_conf_set_error_cb(conf, OnError);
    rd_kafka_conf_set_log_cb(conf,
                             [](const rd_kafka_t*, int level, const char* facility, const char* message) {
                               if (level <= 3) spdlog::warn("kafka {}: {}", facility, message);
                             });
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (producer == nullptr) {
      rd_kafka_conf_destroy(conf);
      return Status::InvalidArgument(std::string("kafka producer: ") + error);
    }
    session_failed = false;
    failure.clear();
    return Status::Ok();
  }

  // Starts a producer session: reads both tails and checks the events tail against the store.
  Status Resume() {
    DestroyProducer();
    Result<uint64_t> events_tail =
        ReadTailSequence(settings.brokers, kEventsTopic, settings.partition, kWatermarksTimeoutMs);
    if (!events_tail.ok()) return events_tail.status();
    Result<uint64_t> results_tail =
        ReadTailSequence(settings.brokers, kResultsTopic, settings.partition, kWatermarksTimeoutMs);
    if (!results_tail.ok()) return results_tail.status();
    Result<std::optional<std::pair<uint64_t, std::string>>> last = store->LastEvent();
    if (!last.ok()) return last.status();
    const uint64_t stored = last->has_value() ? (*last)->first : 0;
    if (*events_tail > stored) {
      return Status::Corruption("ledger.events partition " + std::to_string(settings.partition) +
                                " holds sequence " + std::to_string(*events_tail) +
                                " but the store ends at " + std::to_string(stored));
    }
    events_produced = events_acked = *events_tail;
    // A result is produced only after its events were acknowledged, so the results tail never passes the
    // events tail; min() keeps a partition written by an older version on the safe side.
    results_scanned = results_produced = results_acked = std::min(*results_tail, *events_tail);
    // Legs go out before the results of the same pass, so every leg up to the results tail is on Kafka; the
    // legs after it are produced again, and their receivers skip the ones they applied (by leg number).
    legs_scanned = results_scanned;
    legs_produced = legs_acked = 0;
    LEDGER_RETURN_IF_ERROR(CreateProducer());
    need_resume = false;
    spdlog::info("publisher: partition {} resumes after event {} and result {}", settings.partition,
                 events_acked, results_acked);
    return Status::Ok();
  }

  Status Produce(const char* topic, uint32_t partition, const std::string& key, const std::string& value,
                 uint64_t sequence, RecordKind kind, const std::string& type, const std::string& transaction,
                 const Proof& proof = {nullptr, {}}) {
    rd_kafka_headers_t* headers = rd_kafka_headers_new(5);
    const std::string sequence_text = std::to_string(sequence);
    if (sequence > 0)
      rd_kafka_header_add(headers, kSequenceHeader, -1, sequence_text.data(), sequence_text.size());
    if (!type.empty()) rd_kafka_header_add(headers, kTypeHeader, -1, type.data(), type.size());
    if (!transaction.empty())
      rd_kafka_header_add(headers, kTransactionHeader, -1, transaction.data(), transaction.size());
    if (!settings.owner.empty())
      rd_kafka_header_add(headers, kOwnerHeader, -1, settings.owner.data(), settings.owner.size());
    if (proof.first != nullptr)
      rd_kafka_header_add(headers, proof.first, -1, proof.second.data(), proof.second.size());
    if (!key_id.empty()) rd_kafka_header_add(headers, kKeyHeader, -1, key_id.data(), key_id.size());
    void* const opaque = sequence > 0 ? MakeOpaque(sequence, kind) : nullptr;
    for (int attempt = 0;; ++attempt) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(static_cast<int32_t>(partition)),
          RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque),
          RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Ok();  // headers now belong to the message
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || session_failed || attempt > kQueueFullRetriesMax) {
        rd_kafka_headers_destroy(headers);
        session_failed = true;
        failure = std::string("produce: ") + rd_kafka_err2str(err);
        return Status::IoError(failure);
      }
      rd_kafka_poll(producer, 5);  // the bounded local queue is full: wait for acknowledgements
    }
  }

  // The seal header for the event `sequence` whose chain hash is `hash` (kSealHeader); none without the
  // ledger's key. Errors: IoError when the key's token did not sign: the event is not produced unsealed (the
  // pass stops before it and goes on later), so no reader ever waits on more than kSealEveryEvents unsealed
  // events.
  Result<Proof> SealOf(uint64_t sequence, const Digest& hash) const {
    if (!settings.ledger_key) return Proof{nullptr, {}};
    Result<std::string> seal = settings.ledger_key->Sign(SealMessage(settings.partition, sequence, hash));
    if (!seal.ok())
      return Status::IoError("the ledger's key did not seal event " + std::to_string(sequence) + ": " +
                             seal.status().message());
    return Proof{kSealHeader, std::move(seal).value()};
  }

  // Produces the events in (events_produced, through], sealing the last one and every kSealEveryEvents-th.
  // Results wait for phase two: a consumer of ledger.results must be able to find every event of an
  // acknowledged command on ledger.events.
  Status ProduceEventsThrough(uint64_t through) {
    if (events_produced >= through) return Status::Ok();
    // The store may end before `through` (not committed yet): the pass ends at its end, which gets the seal.
    Result<std::optional<std::pair<uint64_t, std::string>>> last = store->LastEvent();
    if (!last.ok()) return last.status();
    const uint64_t pass_end = std::min(through, last->has_value() ? (*last)->first : 0);
    if (events_produced >= pass_end) return Status::Ok();
    Status status;
    size_t produced_in_pass = 0;
    LEDGER_RETURN_IF_ERROR(
        store->ScanEvents(events_produced + 1, pass_end, [&](uint64_t sequence, std::string_view record) {
          if (sequence != events_produced + 1) {
            status = Status::Corruption("the store has no event " + std::to_string(events_produced + 1) +
                                        " (next is " + std::to_string(sequence) + ")");
            return false;
          }
          Result<DecodedEvent> decoded = DecodeStored(sequence, record);
          if (!decoded.ok()) {
            status = decoded.status();
            return false;
          }
          Result<Proof> seal = Proof{nullptr, {}};
          if (sequence == pass_end || sequence % kSealEveryEvents == 0)
            seal = SealOf(sequence, decoded->hash);
          if (!seal.ok()) {
            seal_refused = seal.status();
            return false;
          }
          status = Produce(kEventsTopic, settings.partition, EventKey(*decoded->body), std::string(record),
                           sequence, RecordKind::kEvent, EventTypeName(decoded->body->payload_type()),
                           decoded->body->transaction_id()->str(), *seal);
          if (!status.ok()) return false;
          events_produced = sequence;
          if (++produced_in_pass % kDeliveryPollEveryRecords == 0) rd_kafka_poll(producer, 0);
          return true;
        }));
    return status;  // the store may end before `through` (not committed yet): the caller waits for it
  }

  // Produces the legs among the events in (legs_scanned, acked] to their destinations' partitions of
  // ledger.legs: only events Kafka holds, so a shard restored from its partition has sent no leg it lacks.
  Status ProduceLegsThrough(uint64_t acked) {
    if (legs_scanned >= acked) return Status::Ok();
    const std::string source = std::to_string(settings.partition);
    Status status;
    LEDGER_RETURN_IF_ERROR(
        store->ScanEvents(legs_scanned + 1, acked, [&](uint64_t sequence, std::string_view record) {
          Result<DecodedEvent> decoded = DecodeStored(sequence, record);
          if (!decoded.ok()) {
            status = decoded.status();
            return false;
          }
          if (const std::optional<LegAddress> leg = LegAddressOf(*decoded->body)) {
            Proof tag{nullptr, {}};
            if (legs_authenticator) tag = {kLegTagHeader, legs_authenticator->Tag(record)};
            status = Produce(kLegsTopic, leg->destination, source, std::string(record), sequence,
                             RecordKind::kLeg, EventTypeName(decoded->body->payload_type()),
                             decoded->body->transaction_id()->str(), tag);
            if (!status.ok()) return false;
            legs_produced += 1;
          }
          legs_scanned = sequence;
          return true;
        }));
    return status;
  }

  // Produces the results of the transactions in (results_scanned, acked], whose events Kafka has
  // acknowledged. A transaction is complete when the next one starts, or when it ends at `group_end` (a
  // committed group's end); an incomplete last transaction waits for the next pass.
  Status ProduceResultsThrough(uint64_t acked, uint64_t group_end) {
    const uint64_t end = std::min(acked, group_end);
    if (results_scanned >= end) return Status::Ok();
    std::vector<std::string> transaction;  // records of the transaction being read
    std::string transaction_id;
    uint64_t transaction_last = 0;
    Status status;
    auto flush_transaction = [&]() {
      if (transaction.empty() || !status.ok()) return;
      for (const auto& [result, last_sequence] : ResultsFromEvents(transaction)) {
        if (last_sequence <= results_produced) continue;
        status = Produce(kResultsTopic, settings.partition, result.command_id, result.ToJson(), last_sequence,
                         RecordKind::kResult, "", result.transaction_id);
        if (!status.ok()) return;
        results_produced = last_sequence;
      }
      results_scanned = transaction_last;
      transaction.clear();
    };
    LEDGER_RETURN_IF_ERROR(
        store->ScanEvents(results_scanned + 1, end, [&](uint64_t sequence, std::string_view record) {
          Result<DecodedEvent> decoded = DecodeStored(sequence, record);
          if (!decoded.ok()) {
            status = decoded.status();
            return false;
          }
          const std::string id = decoded->body->transaction_id()->str();
          if (id != transaction_id) {
            flush_transaction();
            if (!status.ok()) return false;
            transaction_id = id;
          }
          transaction.emplace_back(record);
          transaction_last = sequence;
          return true;
        }));
    LEDGER_RETURN_IF_ERROR(status);
    if (end == group_end) flush_transaction();
    return status;
  }

  // Polls until `acked` reaches `produced` (both members of this session), the session fails or the deadline
  // passes.
  void AwaitAcknowledgements(const uint64_t& acked, const uint64_t& produced, int64_t deadline) {
    while (!session_failed && acked < produced && NowMs() <= deadline) {
      rd_kafka_poll(producer, kDeliveryPollMs);
    }
  }
};

Result<std::unique_ptr<Publisher>> Publisher::Create(const Store& store, const ProducerSettings& settings) {
  std::unique_ptr<Publisher> publisher(new Publisher());
  publisher->impl_ = std::make_unique<Impl>();
  publisher->impl_->store = &store;
  publisher->impl_->settings = settings;
  if (settings.ledger_key) {
    Result<std::unique_ptr<LegAuthenticator>> authenticator = LegAuthenticator::For(*settings.ledger_key);
    if (!authenticator.ok()) return authenticator.status();
    publisher->impl_->legs_authenticator = std::move(authenticator).value();
    publisher->impl_->key_id = ToHex(settings.ledger_key->public_key_id());
  }
  return publisher;
}

Publisher::~Publisher() = default;

Status Publisher::PublishThrough(uint64_t through, int64_t deadline_ms) {
  Impl& impl = *impl_;
  const int64_t deadline = NowMs() + deadline_ms;
  Status last_error;
  while (true) {
    if (NowMs() > deadline) {
      return Status::IoError("events through " + std::to_string(through) +
                             " not acknowledged by Kafka in time" +
                             (last_error.ok() ? "" : ": " + last_error.message()));
    }
    if (impl.need_resume || impl.session_failed) {
      if (impl.producer != nullptr) {
        impl.rebuilds += 1;
        spdlog::warn("publisher: rebuilding the producer after: {}", impl.failure);
      }
      const Status resumed = impl.Resume();
      if (resumed.code() == StatusCode::kCorruption) return resumed;
      if (!resumed.ok()) {
        last_error = resumed;
        impl.need_resume = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(kRebuildBackoffMs));
        continue;
      }
    }
    // Phase one: a bounded chunk of events, then their acknowledgements. Phase two: the legs among the
    // acknowledged events, then theirs (a leg must not overtake the answers its sender gave before it).
    // Phase three: the results of the transactions whose events are all acknowledged, then theirs.
    const uint64_t chunk_end = std::min<uint64_t>(through, impl.events_produced + kPublishChunkEventsMax);
    Status produced = impl.ProduceEventsThrough(chunk_end);
    if (produced.ok()) impl.AwaitAcknowledgements(impl.events_acked, impl.events_produced, deadline);
    if (produced.ok() && !impl.session_failed && impl.events_acked == impl.events_produced) {
      produced = impl.ProduceLegsThrough(impl.events_acked);
      if (produced.ok()) impl.AwaitAcknowledgements(impl.legs_acked, impl.legs_produced, deadline);
    }
    if (produced.ok() && !impl.session_failed && impl.events_acked == impl.events_produced &&
        impl.legs_acked == impl.legs_produced) {
      produced = impl.ProduceResultsThrough(impl.events_acked, through);
      if (produced.ok()) impl.AwaitAcknowledgements(impl.results_acked, impl.results_produced, deadline);
    }
    if (produced.code() == StatusCode::kCorruption) return produced;
    if (produced.ok() && !impl.session_failed && !impl.seal_refused.ok()) {
      // The events before the one the key did not seal went out; the rest waits for the key.
      last_error = std::exchange(impl.seal_refused, Status::Ok());
      if (NowMs() + kSealRetryMs > deadline)
        return Status::IoError("events through " + std::to_string(through) +
                               " not published: " + last_error.message());
      std::this_thread::sleep_for(std::chrono::milliseconds(kSealRetryMs));
      continue;
    }
    impl.seal_refused = Status::Ok();
    if (!produced.ok() || impl.session_failed) {
      last_error = produced.ok() ? Status::IoError(impl.failure) : produced;
      impl.session_failed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(kRebuildBackoffMs));
      continue;
    }
    if (impl.events_acked >= through && impl.results_scanned >= through &&
        impl.results_acked >= impl.results_produced) {
      return Status::Ok();
    }
    if (impl.events_produced < chunk_end) {  // `through` is not committed yet
      std::this_thread::sleep_for(std::chrono::milliseconds(kUncommittedWaitMs));
    }
  }
}

uint64_t Publisher::acknowledged_through() const { return impl_->events_acked; }
uint64_t Publisher::events_published() const { return impl_->events_published; }
uint64_t Publisher::producer_rebuilds() const { return impl_->rebuilds; }

Status Publisher::PublishResults(const std::vector<CommandResult>& results, int64_t deadline_ms) {
  Impl& impl = *impl_;
  if (results.empty()) return Status::Ok();
  const int64_t deadline = NowMs() + deadline_ms;
  if (impl.need_resume || impl.session_failed || impl.producer == nullptr)
    LEDGER_RETURN_IF_ERROR(impl.Resume());
  for (const CommandResult& result : results) {
    impl.plain_results_outstanding += 1;
    LEDGER_RETURN_IF_ERROR(impl.Produce(kResultsTopic, impl.settings.partition, result.command_id,
                                        result.ToJson(), 0, RecordKind::kResult, "", result.transaction_id));
  }
  while (impl.plain_results_outstanding > 0 && !impl.session_failed && NowMs() < deadline) {
    rd_kafka_poll(impl.producer, kDeliveryPollMs);
  }
  if (impl.session_failed || impl.plain_results_outstanding > 0) {
    impl.plain_results_outstanding = 0;
    impl.session_failed = true;
    return Status::IoError("duplicate results not acknowledged: " + impl.failure);
  }
  return Status::Ok();
}

void Publisher::InjectFatalErrorForTest() {
  if (impl_->producer == nullptr) return;
  rd_kafka_test_fatal_error(impl_->producer, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                            "injected by a test");
}

}  // namespace ledger::kafka
