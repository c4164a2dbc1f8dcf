// The librdkafka adapter: embedded broker, publisher, readers and senders. librdkafka errors become
// ledger::Status here and nowhere else.
#include "kafka/kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <utility>

#include "client_security.h"
#include "events/event.h"

namespace ledger::kafka {
namespace {

// Bound: how far back a tail search reads before giving up.
constexpr int64_t kTailSearchRecordsMax = 1 << 20;
// A tail search reads this many records back first, then a window four times larger each time.
constexpr int64_t kTailSearchFirstWindow = 256;
// One poll of a tail search: records asked for, and how long it waits for the first.
constexpr size_t kTailPollRecordsMax = 4096;
constexpr int kTailPollMs = 200;
// How often a RecordSender retries a produce its full local queue refused, polling deliveries in between.
constexpr int kSendQueueFullRetriesMax = 10'000;
// CreateTopics answers after its operation timeout at the latest: the admin queue is read a little longer.
constexpr int kAdminAnswerGraceMs = 1'000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void LogFromKafka(const rd_kafka_t*, int level, const char* facility, const char* message) {
  // librdkafka syslog levels: 0-3 errors, 4 warning, 5-7 notice/info/debug. Broker trouble is expected in
  // fault tests and handled by the caller, so it stays at debug unless it is an error.
  if (level <= 3) {
    spdlog::warn("kafka {}: {}", facility, message);
  } else {
    spdlog::debug("kafka {}: {}", facility, message);
  }
}

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

Status SetAll(rd_kafka_conf_t* conf, std::initializer_list<std::pair<const char*, std::string>> settings) {
  char error[512];
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
      return Status::InvalidArgument(std::string("kafka setting ") + name + ": " + error);
    }
  }
  return Status::Ok();
}

ConfPtr BaseConf(const std::string& brokers) {
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), LogFromKafka);
  if (!brokers.empty())
    SetAll(conf.get(), {{"bootstrap.servers", brokers}}).IgnoreError();  // checked at connect
  SetAll(conf.get(), {{"client.id", "ledger"}, {"log.connection.close", "false"}})
      .IgnoreError();  // valid names
  ApplyClientSecurity(conf.get());
  return conf;
}

Result<rd_kafka_t*> NewClient(rd_kafka_type_t type, ConfPtr conf) {
  char error[512];
  rd_kafka_t* client = rd_kafka_new(type, conf.get(), error, sizeof error);
  if (client == nullptr) return Status::InvalidArgument(std::string("kafka client: ") + error);
  conf.release();  // owned by the client now
  return client;
}

// The bytes of the last `name` header of `message`; nullopt when it has none.
std::optional<std::string_view> LastHeader(const rd_kafka_message_t* message, const char* name) {
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(message, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      value == nullptr)
    return std::nullopt;
  return std::string_view(static_cast<const char*>(value), size);
}

// A text header cut to `max` printable bytes (anyone who can produce can write it).
std::string PrintableHeader(const rd_kafka_message_t* message, const char* name, size_t max) {
  std::string text;
  for (const char c : LastHeader(message, name).value_or(std::string_view()).substr(0, max))
    text += (c >= 0x20 && c < 0x7f) ? c : '?';
  return text;
}

// A header's bytes, when it holds at most 128 (a leg tag is 32, a key id and a signature in hex 64 and 128);
// else none.
std::string BytesHeader(const rd_kafka_message_t* message, const char* name) {
  const std::optional<std::string_view> bytes = LastHeader(message, name);
  return bytes && bytes->size() <= 128 ? std::string(*bytes) : std::string();
}

std::optional<uint64_t> SequenceHeader(const rd_kafka_message_t* message) {
  const std::optional<std::string_view> text = LastHeader(message, kSequenceHeader);
  if (!text || text->empty() || text->size() > 20) return std::nullopt;
  uint64_t sequence = 0;
  for (const char c : *text) {
    if (c < '0' || c > '9') return std::nullopt;
    sequence = sequence * 10 + static_cast<uint64_t>(c - '0');
  }
  return sequence;
}

Record ToRecord(const rd_kafka_message_t* message) {
  Record record;
  record.topic = rd_kafka_topic_name(message->rkt);
  record.partition = message->partition;
  record.offset = message->offset;
  if (message->key != nullptr) record.key.assign(static_cast<const char*>(message->key), message->key_len);
  if (message->payload != nullptr)
    record.value.assign(static_cast<const char*>(message->payload), message->len);
  record.sequence = SequenceHeader(message);
  record.owner = PrintableHeader(message, kOwnerHeader, 256);
  record.key_id = PrintableHeader(message, kKeyHeader, 64);
  record.leg_tag = BytesHeader(message, kLegTagHeader);
  record.seal = BytesHeader(message, kSealHeader);
  // Kept as they came, cut to 256 bytes (a cut one checks as no key and no signature would): present is
  // present, however long or empty, so that it is checked and never taken for an unsigned record.
  const std::optional<std::string_view> key_id = LastHeader(message, kProducerKeyHeader);
  const std::optional<std::string_view> signature = LastHeader(message, kProducerSignatureHeader);
  record.producer_headers = key_id.has_value() || signature.has_value();
  record.producer_key_id = std::string(key_id.value_or("").substr(0, 256));
  record.producer_signature = std::string(signature.value_or("").substr(0, 256));
  return record;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// EmbeddedBroker

struct EmbeddedBroker::Impl {
  rd_kafka_t* handle = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~Impl() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
    if (handle != nullptr) rd_kafka_destroy(handle);
  }
};

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(int partitions, int brokers) {
  LEDGER_ASSERT(partitions >= 1 && brokers >= 1);
  std::unique_ptr<EmbeddedBroker> broker(new EmbeddedBroker());
  broker->impl_ = std::make_unique<Impl>();
  Result<rd_kafka_t*> handle = NewClient(RD_KAFKA_PRODUCER, BaseConf(""));
  if (!handle.ok()) return handle.status();
  broker->impl_->handle = *handle;
  broker->impl_->cluster = rd_kafka_mock_cluster_new(*handle, brokers);
  if (broker->impl_->cluster == nullptr)
    return Status::Internal("librdkafka could not start the mock cluster");
  broker->bootstrap_ = rd_kafka_mock_cluster_bootstraps(broker->impl_->cluster);
  for (const char* topic : kLedgerTopics) {
    const rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(broker->impl_->cluster, topic, partitions, std::min(brokers, 3));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return Status::Internal(std::string("create ") + topic + ": " + rd_kafka_err2str(err));
  }
  return broker;
}

EmbeddedBroker::~EmbeddedBroker() = default;

void EmbeddedBroker::SetBrokerDown(int broker_id, bool down) {
  if (down) {
    rd_kafka_mock_broker_set_down(impl_->cluster, broker_id);
  } else {
    rd_kafka_mock_broker_set_up(impl_->cluster, broker_id);
  }
}

void EmbeddedBroker::SetBrokerRttMs(int broker_id, int rtt_ms) {
  rd_kafka_mock_broker_set_rtt(impl_->cluster, broker_id, rtt_ms);
}

void EmbeddedBroker::PushProduceErrors(int count, int error) {
  std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count),
                                          static_cast<rd_kafka_resp_err_t>(error));
  rd_kafka_mock_push_request_errors_array(impl_->cluster, 0 /* Produce */, errors.size(), errors.data());
}

// ---------------------------------------------------------------------------------------------------------
// Tails

Result<uint64_t> ReadTailSequence(const std::string& brokers, const std::string& topic, uint32_t partition,
                                  int64_t timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  Result<std::unique_ptr<PartitionReader>> probe = PartitionReader::Open(brokers, topic, partition, -1);
  if (!probe.ok()) return probe.status();
  Result<int64_t> high = (*probe)->HighWatermark(static_cast<int>(timeout_ms));
  if (!high.ok()) return high.status();
  if (*high <= 0) return uint64_t{0};
  // Read backwards in growing windows until a record with a sequence header turns up.
  for (int64_t window = kTailSearchFirstWindow; window <= kTailSearchRecordsMax; window *= 4) {
    const int64_t start = std::max<int64_t>(0, *high - window);
    Result<std::unique_ptr<PartitionReader>> reader = PartitionReader::Open(brokers, topic, partition, start);
    if (!reader.ok()) return reader.status();
    std::optional<uint64_t> last;
    int64_t next_offset = start;
    while (next_offset < *high) {
      // A tail read only part of the way is a shorter history than the partition holds: resuming from it
      // would publish again what is already there. Only the whole window up to the watermark counts.
      if (NowMs() > deadline) return Status::IoError("timed out reading the tail of " + topic);
      Result<std::vector<Record>> records = (*reader)->Poll(kTailPollRecordsMax, kTailPollMs);
      if (!records.ok()) return records.status();
      for (const Record& record : *records) {
        if (record.sequence) last = std::max(last.value_or(0), *record.sequence);
        next_offset = record.offset + 1;
      }
    }
    if (last) return *last;
    if (start == 0) return uint64_t{0};
  }
  return Status::Corruption("no record with a ledger.sequence header in the last " +
                            std::to_string(kTailSearchRecordsMax) + " records of " + topic);
}

// ---------------------------------------------------------------------------------------------------------
// PartitionReader

namespace {

// A consumer error librdkafka gave up on, as a Status.
Status ConsumeError(const std::string& topic, uint32_t partition, rd_kafka_resp_err_t err, int64_t offset,
                    const std::string& text) {
  const std::string where = topic + " partition " + std::to_string(partition);
  // With auto.offset.reset=error librdkafka reports an offset out of range as _AUTO_OFFSET_RESET and stops
  // fetching the partition.
  if (err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET || err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
    return Status::NotFound("offset " + std::to_string(offset) + " of " + where +
                            " is out of range: " + text);
  }
  return Status::IoError("consume " + where + ": " + text);
}

}  // namespace

struct PartitionReader::Impl {
  rd_kafka_t* consumer = nullptr;
  std::string topic;
  uint32_t partition = 0;
  Status pending;  // an error met after records were read: returned by the next Poll
  ~Impl() {
    if (consumer != nullptr) {
      rd_kafka_consumer_close(consumer);
      rd_kafka_destroy(consumer);
    }
  }
};

Result<std::unique_ptr<PartitionReader>> PartitionReader::Open(const std::string& brokers,
                                                               const std::string& topic, uint32_t partition,
                                                               int64_t start_offset, OffsetReset reset) {
  ConfPtr conf = BaseConf(brokers);
  // Assigned partitions, no group membership; nothing is committed to the broker.
  LEDGER_RETURN_IF_ERROR(
      SetAll(conf.get(), {{"group.id", "ledger-reader"},
                          {"enable.auto.commit", "false"},
                          {"enable.auto.offset.store", "false"},
                          {"enable.partition.eof", "false"},
                          // Out of range (retention, the mock's bounded tail, a replaced
                          // topic): read from the earliest record still there, or stop.
                          {"auto.offset.reset", reset == OffsetReset::kError ? "error" : "earliest"},
                          {"fetch.wait.max.ms", std::to_string(kFetchWaitMaxMs)}}));
  Result<rd_kafka_t*> consumer = NewClient(RD_KAFKA_CONSUMER, std::move(conf));
  if (!consumer.ok()) return consumer.status();
  std::unique_ptr<PartitionReader> reader(new PartitionReader());
  reader->impl_ = std::make_unique<Impl>();
  reader->impl_->consumer = *consumer;
  reader->impl_->topic = topic;
  reader->impl_->partition = partition;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), static_cast<int32_t>(partition))->offset =
      start_offset < 0 ? RD_KAFKA_OFFSET_BEGINNING : start_offset;
  const rd_kafka_resp_err_t err = rd_kafka_assign(*consumer, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return Status::IoError(std::string("assign ") + topic + ": " + rd_kafka_err2str(err));
  return reader;
}

PartitionReader::~PartitionReader() = default;

Result<std::vector<Record>> PartitionReader::Poll(size_t max_records, int timeout_ms) {
  if (!impl_->pending.ok()) return std::exchange(impl_->pending, Status::Ok());
  std::vector<Record> records;
  const int64_t deadline = NowMs() + timeout_ms;
  while (records.size() < max_records) {
    const int64_t left = deadline - NowMs();
    rd_kafka_message_t* message = rd_kafka_consumer_poll(
        impl_->consumer, records.empty() ? static_cast<int>(std::max<int64_t>(0, left)) : 0);
    if (message == nullptr) {
      if (!records.empty() || left <= 0) break;
      continue;
    }
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const rd_kafka_resp_err_t err = message->err;
      const int64_t offset = message->offset;
      const std::string text = rd_kafka_message_errstr(message);
      rd_kafka_message_destroy(message);
      if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
      // Transport errors are retried by librdkafka itself; report only what it gives up on.
      if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        spdlog::debug("kafka reader {}: {}", impl_->topic, text);
        if (NowMs() >= deadline) break;
        continue;
      }
      Status error = ConsumeError(impl_->topic, impl_->partition, err, offset, text);
      if (records.empty()) return error;
      impl_->pending = std::move(error);  // the records read so far are not dropped
      break;
    }
    records.push_back(ToRecord(message));
    rd_kafka_message_destroy(message);
  }
  return records;
}

Result<Watermarks> PartitionReader::QueryWatermarks(int timeout_ms) {
  Watermarks marks;
  const rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(impl_->consumer, impl_->topic.c_str(),
                                                                   static_cast<int32_t>(impl_->partition),
                                                                   &marks.low, &marks.high, timeout_ms);
  if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
      err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
    return Watermarks{};
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return Status::IoError("watermarks of " + impl_->topic + ": " + rd_kafka_err2str(err));
  if (marks.low < 0 || marks.low > marks.high) {  // the broker's answer, not ours to assert
    return Status::IoError("watermarks of " + impl_->topic + ": low " + std::to_string(marks.low) +
                           " and high " + std::to_string(marks.high) + " do not make a range");
  }
  return marks;
}

Result<int64_t> PartitionReader::HighWatermark(int timeout_ms) {
  Result<Watermarks> marks = QueryWatermarks(timeout_ms);
  if (!marks.ok()) return marks.status();
  return marks->high;
}

// ---------------------------------------------------------------------------------------------------------
// RecordSender

struct RecordSender::Impl {
  rd_kafka_t* producer = nullptr;
  int64_t failed = 0;
  std::string failure;
  ~Impl() {
    if (producer != nullptr) rd_kafka_destroy(producer);
  }
};

Result<Headers> CommandSignatureHeaders(const Signer& producer_key, const Digest& fingerprint) {
  Result<std::string> signature = producer_key.Sign(CommandMessage(fingerprint));
  if (!signature.ok()) return signature.status();
  return Headers{{kProducerKeyHeader, ToHex(producer_key.public_key_id())},
                 {kProducerSignatureHeader,
                  ToHex({reinterpret_cast<const uint8_t*>(signature->data()), signature->size()})}};
}

Result<std::unique_ptr<RecordSender>> RecordSender::Open(const std::string& brokers) {
  ConfPtr conf = BaseConf(brokers);
  LEDGER_RETURN_IF_ERROR(
      SetAll(conf.get(), {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "2"}}));
  std::unique_ptr<RecordSender> sender(new RecordSender());
  sender->impl_ = std::make_unique<Impl>();
  rd_kafka_conf_set_opaque(conf.get(), sender->impl_.get());
  rd_kafka_conf_set_dr_msg_cb(conf.get(), [](rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    auto* impl = static_cast<Impl*>(opaque);
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      impl->failed += 1;
      impl->failure = rd_kafka_err2str(message->err);
    }
  });
  Result<rd_kafka_t*> producer = NewClient(RD_KAFKA_PRODUCER, std::move(conf));
  if (!producer.ok()) return producer.status();
  sender->impl_->producer = *producer;
  return sender;
}

RecordSender::~RecordSender() = default;

Status RecordSender::Send(const std::string& topic, uint32_t partition, const std::string& key,
                          const std::string& value, const Headers& headers) {
  for (int attempt = 0;; ++attempt) {
    rd_kafka_headers_t* record_headers = rd_kafka_headers_new(headers.size());
    for (const auto& [name, bytes] : headers)
      rd_kafka_header_add(record_headers, name.data(), name.size(), bytes.data(), bytes.size());
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        impl_->producer, RD_KAFKA_V_TOPIC(topic.c_str()),
        RD_KAFKA_V_PARTITION(static_cast<int32_t>(partition)), RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(record_headers), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Ok();  // the headers belong to the message now
    rd_kafka_headers_destroy(record_headers);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt > kSendQueueFullRetriesMax) {
      return Status::IoError(std::string("produce: ") + rd_kafka_err2str(err));
    }
    rd_kafka_poll(impl_->producer,
                  kDeliveryPollMs);  // the bounded local queue is full: let deliveries drain it
  }
}

Status RecordSender::ServeDeliveries() {
  rd_kafka_poll(impl_->producer, 0);
  if (impl_->failed == 0) return Status::Ok();
  const Status failed = Status::IoError(std::to_string(impl_->failed) + " records failed: " + impl_->failure);
  impl_->failed = 0;
  return failed;
}

Status RecordSender::Flush(int64_t timeout_ms) {
  const rd_kafka_resp_err_t err = rd_kafka_flush(impl_->producer, static_cast<int>(timeout_ms));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return Status::IoError(std::string("flush: ") + rd_kafka_err2str(err));
  if (impl_->failed > 0)
    return Status::IoError(std::to_string(impl_->failed) + " records failed: " + impl_->failure);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------------------
// EnsureTopics

namespace {

using ClientPtr = std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)>;

// The partition count of each ledger topic the cluster has (absent: the topic does not exist). Asks for all
// topics: a request naming a missing topic could make a broker with auto.create.topics.enable create it with
// its default partition count.
Result<std::map<std::string, int>> LedgerTopicPartitions(rd_kafka_t* client, int64_t timeout_ms) {
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t err =
      rd_kafka_metadata(client, 1, nullptr, &metadata, static_cast<int>(timeout_ms));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::IoError(std::string("topic metadata: ") + rd_kafka_err2str(err));
  }
  std::map<std::string, int> found;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& topic = metadata->topics[i];
    if (topic.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    for (const char* name : kLedgerTopics) {
      if (std::strcmp(topic.topic, name) == 0) found[name] = topic.partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(metadata);
  return found;
}

// Creates `names` with `partitions` partitions and waits for the answer. A topic created meanwhile by someone
// else counts as created.
Status CreateTopics(rd_kafka_t* client, const std::vector<std::string>& names, int partitions,
                    int replication_factor, int64_t timeout_ms) {
  char error[512];
  std::vector<rd_kafka_NewTopic_t*> topics;
  for (const std::string& name : names) {
    rd_kafka_NewTopic_t* topic =
        rd_kafka_NewTopic_new(name.c_str(), partitions, replication_factor, error, sizeof error);
    if (topic == nullptr) {
      rd_kafka_NewTopic_destroy_array(topics.data(), topics.size());
      return Status::InvalidArgument("topic " + name + ": " + error);
    }
    topics.push_back(topic);
    // Legs too: a restored shard reads its legs partition from the start (the marks skip what it applied).
    if (name != kEventsTopic && name != kLegsTopic) continue;
    for (const auto& [key, value] : kEventsTopicConfig) {
      if (rd_kafka_NewTopic_set_config(topic, key, value) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_NewTopic_destroy_array(topics.data(), topics.size());
        return Status::InvalidArgument(std::string("topic ") + name + ": cannot set " + key);
      }
    }
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(client);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(client, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, static_cast<int>(timeout_ms), error, sizeof error);
  rd_kafka_CreateTopics(client, topics.data(), topics.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout_ms) + kAdminAnswerGraceMs);
  Status status;
  if (event == nullptr) {
    status = Status::IoError("create topics: no answer in " + std::to_string(timeout_ms) + " ms");
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = Status::IoError(std::string("create topics: ") + rd_kafka_event_error_string(event));
  } else {
    size_t count = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    for (size_t i = 0; i < count && status.ok(); ++i) {
      const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        status = Status::IoError(std::string("create ") + rd_kafka_topic_result_name(results[i]) + ": " +
                                 rd_kafka_err2str(err));
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy_array(topics.data(), topics.size());
  return status;
}

}  // namespace

Result<TopicsEnsured> EnsureTopics(const std::string& brokers, int partitions, int replication_factor,
                                   int64_t timeout_ms) {
  Result<rd_kafka_t*> admin = NewClient(RD_KAFKA_PRODUCER, BaseConf(brokers));
  if (!admin.ok()) return admin.status();
  ClientPtr client(*admin, rd_kafka_destroy);
  Result<std::map<std::string, int>> found = LedgerTopicPartitions(client.get(), timeout_ms);
  if (!found.ok()) return found.status();
  TopicsEnsured ensured;
  for (const char* name : kLedgerTopics) {
    const auto it = found->find(name);
    if (it == found->end()) {
      ensured.created.push_back(name);
    } else if (it->second < partitions) {
      return Status::IoError(std::string(name) + " has " + std::to_string(it->second) +
                             " partitions, fewer than the " + std::to_string(partitions) + " shards");
    } else {
      ensured.existing.push_back(name);
    }
  }
  if (!ensured.created.empty()) {
    LEDGER_RETURN_IF_ERROR(
        CreateTopics(client.get(), ensured.created, partitions, replication_factor, timeout_ms));
  }
  return ensured;
}

Status CheckShardCount(const std::string& brokers, uint32_t shards, int64_t timeout_ms) {
  Result<rd_kafka_t*> admin = NewClient(RD_KAFKA_PRODUCER, BaseConf(brokers));
  if (!admin.ok()) return admin.status();
  ClientPtr client(*admin, rd_kafka_destroy);
  // Asked again while the topic is not there yet (the shards may be making it right now) or not described.
  constexpr auto kAskAgain = std::chrono::milliseconds(500);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  Result<std::map<std::string, int>> found = LedgerTopicPartitions(client.get(), timeout_ms);
  while (found.ok() && !found->contains(kEventsTopic) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(kAskAgain);
    found = LedgerTopicPartitions(client.get(), timeout_ms);
  }
  if (!found.ok()) return found.status();
  const auto events = found->find(kEventsTopic);
  if (events == found->end())
    return Status::InvalidArgument(std::string(kEventsTopic) + " does not exist at " + brokers +
                                   ": start the shards first");
  const auto partitions = static_cast<uint32_t>(std::max(events->second, 0));
  if (partitions < shards)
    return Status::InvalidArgument(std::string(kEventsTopic) + " has " + std::to_string(partitions) +
                                   " partitions: fewer than --shards " + std::to_string(shards));
  for (uint32_t partition = shards; partition < partitions; ++partition) {
    Result<std::unique_ptr<PartitionReader>> reader =
        PartitionReader::Open(brokers, kEventsTopic, partition, -1);
    if (!reader.ok()) return reader.status();
    Result<Watermarks> marks = (*reader)->QueryWatermarks(static_cast<int>(timeout_ms));
    if (!marks.ok()) return marks.status();
    if (marks->high > 0)
      return Status::InvalidArgument(std::string(kEventsTopic) + " partition " + std::to_string(partition) +
                                     " holds events: the cluster has more shards than --shards " +
                                     std::to_string(shards));
  }
  return Status::Ok();
}

namespace {

// The configuration entries of `topic` as the cluster describes them. Errors: IoError.
Result<std::map<std::string, std::string>> DescribeTopicConfig(rd_kafka_t* client, const std::string& topic,
                                                               int64_t timeout_ms) {
  char error[512];
  // Asked of the broker that answers the metadata, not of whichever librdkafka would pick: a broker without
  // DescribeConfigs (the embedded mock) then refuses at once instead of the request waiting out its timeout.
  const rd_kafka_metadata_t* metadata = nullptr;
  if (rd_kafka_metadata(client, 0, nullptr, &metadata, static_cast<int>(timeout_ms)) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::IoError("describe " + topic + ": no metadata");
  }
  const int32_t broker = metadata->orig_broker_id;
  rd_kafka_metadata_destroy(metadata);
  rd_kafka_ConfigResource_t* resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(client);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(client, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  rd_kafka_AdminOptions_set_request_timeout(options, static_cast<int>(timeout_ms), error, sizeof error);
  rd_kafka_AdminOptions_set_broker(options, broker, error, sizeof error);
  rd_kafka_DescribeConfigs(client, &resource, 1, options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout_ms) + kAdminAnswerGraceMs);
  Result<std::map<std::string, std::string>> described = Status::Internal("not described");
  if (event == nullptr) {
    described = Status::IoError("describe " + topic + ": no answer in " + std::to_string(timeout_ms) + " ms");
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    described = Status::IoError("describe " + topic + ": " + rd_kafka_event_error_string(event));
  } else {
    size_t count = 0;
    const rd_kafka_ConfigResource_t** resources =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event), &count);
    if (count == 1 &&
        rd_kafka_ConfigResource_error(resources[0]) == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
      // A cluster that will not say how the topic is kept is not shown to keep it.
      described = Status::InvalidArgument("not allowed to describe " + topic +
                                          " (DescribeConfigs): its retention cannot be checked");
    } else if (count != 1 || rd_kafka_ConfigResource_error(resources[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* why = count == 1 ? rd_kafka_ConfigResource_error_string(resources[0]) : nullptr;
      described = Status::IoError("describe " + topic + ": " + (why != nullptr ? why : "no answer for it"));
    } else {
      std::map<std::string, std::string> config;
      size_t entries = 0;
      const rd_kafka_ConfigEntry_t** entry = rd_kafka_ConfigResource_configs(resources[0], &entries);
      for (size_t i = 0; i < entries; ++i) {
        const char* value = rd_kafka_ConfigEntry_value(entry[i]);
        config[rd_kafka_ConfigEntry_name(entry[i])] = value != nullptr ? value : "";
      }
      described = std::move(config);
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  rd_kafka_ConfigResource_destroy(resource);
  return described;
}

}  // namespace

Status CheckEventsKeptForever(const std::string& brokers, int64_t timeout_ms) {
  Result<rd_kafka_t*> admin = NewClient(RD_KAFKA_PRODUCER, BaseConf(brokers));
  if (!admin.ok()) return admin.status();
  ClientPtr client(*admin, rd_kafka_destroy);
  Result<std::map<std::string, std::string>> config =
      DescribeTopicConfig(client.get(), kEventsTopic, timeout_ms);
  if (!config.ok()) return config.status();
  for (const auto& [key, wanted] : kEventsTopicConfig) {
    const auto it = config->find(key);
    if (it == config->end())
      return Status::IoError(std::string(kEventsTopic) + ": the cluster does not say " + key);
    if (it->second != wanted) {
      return Status::InvalidArgument(std::string(kEventsTopic) + " would drop published events: " + key +
                                     "=" + it->second + " (a shard serves only a topic with " + key + "=" +
                                     wanted +
                                     ": kafka-configs.sh --alter --entity-type topics --entity-name " +
                                     kEventsTopic + " --add-config " + key + "=" + wanted + ")");
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------------------
// Results derived from events

std::vector<std::pair<CommandResult, uint64_t>> ResultsFromEvents(const std::vector<std::string>& records) {
  std::vector<std::pair<CommandResult, uint64_t>> results;
  std::string current;   // the transaction being read
  bool answered = true;  // whether it answers its command (not sent to another shard)
  auto drop_unanswered = [&]() {
    if (!answered) results.pop_back();
  };
  for (const std::string& record : records) {
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    LEDGER_ASSERT(decoded.ok());
    const fb::EventBody& body = *decoded->body;
    const std::string transaction = body.transaction_id()->str();
    if (results.empty() || current != transaction) {
      drop_unanswered();
      current = transaction;
      CommandResult result;
      result.command_id = body.command_id()->str();
      result.transaction_id = transaction;
      result.kind = CommandResult::Kind::kAccepted;
      results.emplace_back(std::move(result), 0);
      answered = true;
    }
    CommandResult& result = results.back().first;
    results.back().second = body.sequence();
    switch (body.payload_type()) {
      case fb::Payload::CommandRejected: {
        const fb::CommandRejected& rejected = *body.payload_as_CommandRejected();
        result.kind = CommandResult::Kind::kRejected;
        result.reason = rejected.reason()->str();
        result.detail = rejected.detail() ? rejected.detail()->str() : "";
        break;
      }
      case fb::Payload::OrderSettled: {
        // The decision another shard made, under its transaction (legs: docs/ARCHITECTURE.md, Shards).
        const fb::OrderSettled& settled = *body.payload_as_OrderSettled();
        result.kind = settled.accepted() ? CommandResult::Kind::kAccepted : CommandResult::Kind::kRejected;
        result.reason = settled.reason() ? settled.reason()->str() : "";
        result.detail = settled.detail() ? settled.detail()->str() : "";
        result.transaction_id = settled.transaction_id() ? settled.transaction_id()->str() : "";
        result.sequences = UlongsOf(settled.sequences());
        continue;
      }
      case fb::Payload::TransferSettled: {
        // The payee's shard answered the transfer: its result, under this transaction.
        const fb::TransferSettled& settled = *body.payload_as_TransferSettled();
        result.kind = settled.accepted() ? CommandResult::Kind::kAccepted : CommandResult::Kind::kRejected;
        result.reason = settled.reason() ? settled.reason()->str() : "";
        result.detail = settled.detail() ? settled.detail()->str() : "";
        break;
      }
      case fb::Payload::OrderForwarded:
      case fb::Payload::CommandParked:
      case fb::Payload::OrderAnswered:
      case fb::Payload::TransferSent:
      case fb::Payload::TransferReceived:
        // Sent to, waiting for, or decided for another shard: the result comes from the order shard's
        // OrderSettled, or the payer shard's TransferSettled.
        answered = false;
        break;
      default:
        break;
    }
    result.sequences.push_back(body.sequence());
  }
  drop_unanswered();
  return results;
}

}  // namespace ledger::kafka
