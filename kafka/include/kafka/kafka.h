// Kafka: the embedded broker, the event publisher, and consumers, on librdkafka (only the sources of the
// kafka component include librdkafka headers). Topics (docs/ARCHITECTURE.md, "Kafka is the published log"):
//   ledger.events    value: one Event record (schemas/events.fbs); key: customer id (merchant id for merchant
//                    events); headers ledger.sequence (decimal), ledger.type, ledger.transaction, ledger.seal
//                    on some (kSealHeader)
//   ledger.commands  value: one JSON command line (README: Command format); key: command id
//   ledger.results   value: one JSON result line; key: command id; header ledger.sequence (last sequence of
//                    the command's transaction; absent for `duplicate` results)
//   ledger.legs      see kLegsTopic
// Shard K reads commands partition K and writes events and results partition K.
// Thread-safety: each object is used by one thread, except EmbeddedBroker fault controls (any thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/signing.h"
#include "core/status.h"
#include "kafka/timeouts.h"
#include "ledger/ledger.h"
#include "storage/store.h"

namespace ledger::kafka {

inline constexpr char kEventsTopic[] = "ledger.events";
inline constexpr char kCommandsTopic[] = "ledger.commands";
inline constexpr char kResultsTopic[] = "ledger.results";
// Legs between shards (docs/ARCHITECTURE.md: Shards): partition D holds the legs for shard D, each the
// sending shard's event record; key: the sending shard (decimal); header ledger.sequence (its sequence
// there).
inline constexpr char kLegsTopic[] = "ledger.legs";
inline constexpr const char* kLedgerTopics[] = {kEventsTopic, kCommandsTopic, kResultsTopic, kLegsTopic};
inline constexpr char kSequenceHeader[] = "ledger.sequence";
inline constexpr char kTypeHeader[] = "ledger.type";
inline constexpr char kTransactionHeader[] = "ledger.transaction";
// The process that produced the record ("<host>:<pid>", serve's; ProducerSettings::owner), so operators see
// which process owns each shard (`ledger cluster-status`).
inline constexpr char kOwnerHeader[] = "ledger.owner";
// On ledger.legs: the sending shard's tag of the record (LegAuthenticator, core/signing.h), 32 raw bytes.
inline constexpr char kLegTagHeader[] = "ledger.leg-tag";
// On ledger.commands: the producer's key id (lower-case hex SHA-256 of its Ed25519 public key's DER; the
// ledger registered it with add_producer_key) and its signature of the command (lower-case hex of the 64
// bytes over CommandMessage(fingerprint), core/signing.h; text, so that any Kafka client can send it). Serve
// applies a command only when they check (Ledger::WhyNotFromAProducer).
inline constexpr char kProducerKeyHeader[] = "ledger.producer-key";
inline constexpr char kProducerSignatureHeader[] = "ledger.signature";
// On ledger.events: the ledger's seal, its Ed25519 signature (64 raw bytes) of SealMessage(shard, sequence,
// the event's chain hash) (core/signing.h). The publisher seals the last event of every publish pass and
// every kSealEveryEvents-th, so a reader that holds the ledger's public key folds an event only once a seal
// on it or on a later event verifies: the chain then proves every event up to the sealed one was the
// ledger's. Without the ledger's key (ProducerSettings::ledger_key) nothing is sealed.
inline constexpr char kSealHeader[] = "ledger.seal";
inline constexpr uint64_t kSealEveryEvents = 1024;
// The key the producing shard tags legs with: hex SHA-256 of the ledger key's public half (DER; Signer::
// public_key_id), on every record it produces, so operators see shards that disagree on the ledger's key.
// Informative like the owner: anyone who can produce can write it.
inline constexpr char kKeyHeader[] = "ledger.key";

// TLS and SASL for every Kafka client this process makes from now on: librdkafka's settings
// (security.protocol, sasl.mechanisms, sasl.username, ssl.ca.location, …) and, when `sasl_password_file` is
// not empty, the SASL password from that file's first line (a file only its owner may read, so the password
// is in no configuration, command line or log). The programs call it from [kafka] in ledger.toml before they
// make a client. Errors: InvalidArgument naming the setting librdkafka refuses (never its value), or the
// password file that cannot be read or is open to others.
Status SetClientSecurity(const std::vector<std::pair<std::string, std::string>>& settings,
                         const std::string& sasl_password_file);

// librdkafka's built-in mock cluster: a real Kafka-protocol broker on 127.0.0.1. It keeps a bounded tail per
// partition and nothing across restarts.
class EmbeddedBroker {
 public:
  // Starts `brokers` brokers and creates the ledger topics (kLedgerTopics) with `partitions` partitions.
  // Errors: Internal when librdkafka cannot start the cluster.
  static Result<std::unique_ptr<EmbeddedBroker>> Start(int partitions, int brokers = 1);
  ~EmbeddedBroker();
  const std::string& bootstrap() const { return bootstrap_; }

  // Fault injection for tests.
  void SetBrokerDown(int broker_id, bool down);
  void SetBrokerRttMs(int broker_id, int rtt_ms);
  // The next `count` Produce requests fail with `error` (a librdkafka rd_kafka_resp_err_t value).
  void PushProduceErrors(int count, int error);

 private:
  EmbeddedBroker() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string bootstrap_;
};

struct ProducerSettings {
  std::string brokers;
  uint32_t partition = 0;
  // How long one publish waits for Kafka's acknowledgements before it rebuilds the producer and retries.
  int64_t ack_timeout_ms = kAckTimeoutMs;
  // Sent as the ledger.owner header of every record when not empty.
  std::string owner = {};
  // The ledger's key: every leg produced to ledger.legs carries its LegAuthenticator tag (the ledger.leg-tag
  // header), events are sealed (kSealHeader) and every record carries the key's id (ledger.key); none: legs
  // go untagged and events unsealed.
  std::shared_ptr<const Signer> ledger_key = {};
};

// Publishes committed events (and the command results derived from them) exactly once and in order: it reads
// the partition tails to learn what is already there and produces only what follows. Any producer failure
// (a fatal idempotence error, a delivery that timed out) rebuilds the producer and resumes from the tails.
class Publisher {
 public:
  // Errors: InvalidArgument (bad settings), IoError (cannot reach the cluster to read the tails).
  static Result<std::unique_ptr<Publisher>> Create(const Store& store, const ProducerSettings& settings);
  ~Publisher();

  // Publishes events (and results) up to and including `through`, and waits until Kafka acknowledged them.
  // Retries through producer rebuilds until `deadline_ms` passes. Errors: IoError (not acknowledged in time),
  // Corruption (the topic holds an event that differs from the store's).
  Status PublishThrough(uint64_t through, int64_t deadline_ms);
  // The highest sequence Kafka acknowledged (events topic).
  uint64_t acknowledged_through() const;
  // Publishes results that have no events (`duplicate`), waiting for the acknowledgement.
  Status PublishResults(const std::vector<CommandResult>& results, int64_t deadline_ms);
  // How many event records this publisher produced and got acknowledged (for summaries).
  uint64_t events_published() const;
  uint64_t producer_rebuilds() const;
  // Raises a fatal error in the current producer, as librdkafka 2.0.x can after a disconnect (tests).
  void InjectFatalErrorForTest();

 private:
  Publisher() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The last ledger sequence present in `topic` partition `partition` (0 when the partition holds none), read
// from the ledger.sequence header of the partition's last record. Errors: IoError.
Result<uint64_t> ReadTailSequence(const std::string& brokers, const std::string& topic, uint32_t partition,
                                  int64_t timeout_ms);

struct Record {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
  std::optional<uint64_t> sequence;  // the ledger.sequence header
  std::string owner;                 // the ledger.owner header (empty: none)
  std::string leg_tag;               // the ledger.leg-tag header's bytes (empty: none)
  std::string seal;                  // the ledger.seal header's bytes (empty: none)
  std::string key_id;                // the ledger.key header (empty: none)
  bool producer_headers = false;     // either producer header is there (even empty)
  std::string producer_key_id;       // the ledger.producer-key header's bytes (at most 256)
  std::string producer_signature;    // the ledger.signature header's bytes (at most 256)
};

// A partition's offsets: records low..high-1 are kept. A partition that does not exist reads as {0, 0}.
struct Watermarks {
  int64_t low = 0;   // the first offset still kept (later than 0 once old records expired or were dropped)
  int64_t high = 0;  // the offset the next record will get
};

// What a reader does when its offset is not in the partition (records expired, the topic was replaced).
enum class OffsetReset {
  kEarliest,  // read from the earliest record still kept (tails, followers: they check sequences themselves)
  kError,     // stop with NotFound: a consumer whose offset is part of its state (serve) must never skip
};

// A partition-assigned consumer (no consumer group): reads one partition from a given offset.
class PartitionReader {
 public:
  // `start_offset` < 0 means from the beginning. Errors: InvalidArgument, IoError.
  static Result<std::unique_ptr<PartitionReader>> Open(const std::string& brokers, const std::string& topic,
                                                       uint32_t partition, int64_t start_offset,
                                                       OffsetReset reset = OffsetReset::kEarliest);
  ~PartitionReader();
  // Returns up to `max_records` records, waiting at most `timeout_ms` for the first. An error met after some
  // records were read is returned by the next call, so no record read is ever dropped. Errors: IoError;
  // NotFound (OffsetReset::kError only): the next offset is out of the partition's range.
  Result<std::vector<Record>> Poll(size_t max_records, int timeout_ms);
  // The partition's watermarks, asked of its leader. Errors: IoError.
  Result<Watermarks> QueryWatermarks(int timeout_ms);
  // The partition's high watermark (the offset the next record will get). Errors: IoError.
  Result<int64_t> HighWatermark(int timeout_ms);

 private:
  PartitionReader() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sends raw records (commands) and waits for their acknowledgement.
// A record's headers: name -> bytes, in order.
using Headers = std::vector<std::pair<std::string, std::string>>;

// The headers that sign a command for ledger.commands with a producer's key (kProducerKeyHeader,
// kProducerSignatureHeader); `fingerprint` is the command's (ParsedCommand::fingerprint). Errors: IoError (a
// key in a token that did not sign).
Result<Headers> CommandSignatureHeaders(const Signer& producer_key, const Digest& fingerprint);

class RecordSender {
 public:
  static Result<std::unique_ptr<RecordSender>> Open(const std::string& brokers);
  ~RecordSender();
  // Produces value to topic/partition with key (and `headers`, name -> bytes); returns when queued (Flush
  // waits). Errors: IoError.
  Status Send(const std::string& topic, uint32_t partition, const std::string& key, const std::string& value,
              const Headers& headers = {});
  Status Flush(int64_t timeout_ms);
  // Serves the delivery reports that arrived (a long-lived sender calls it now and then, so they do not pile
  // up). Errors: IoError when records failed since the last call (how many, and the last reason).
  Status ServeDeliveries();

 private:
  RecordSender() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What EnsureTopics found on the cluster, for serve's start-up line.
struct TopicsEnsured {
  std::vector<std::string> existing;  // ledger topics that were there already
  std::vector<std::string> created;   // ledger topics it created
};

// Makes sure the ledger topics (kLedgerTopics) exist: it asks the cluster's metadata first and creates only
// the topics missing, with `partitions` partitions (a real cluster; the embedded broker creates them itself
// and does not answer CreateTopics). It creates ledger.events to keep every record (kEventsTopicConfig).
// Errors: IoError (no metadata or no creation in time, a topic with fewer than `partitions` partitions),
// InvalidArgument.
Result<TopicsEnsured> EnsureTopics(const std::string& brokers, int partitions, int replication_factor,
                                   int64_t timeout_ms);

// Checks `shards` against the cluster as ledger.events shows it, for a reader of every shard (a gateway, the
// notifier): the topic has at least that many partitions, and none past them holds a record (serve makes one
// partition per shard; a topic made with spare partitions keeps them empty). A count too small would leave
// the shards past it unread: their payments unanswered and unnotified. What it cannot see: a count too large
// when the topic was made with spare partitions, or too small before the shards past it have published
// anything (commands sent to a partition nobody reads are answered 500 after the port's wait; serve refuses a
// command on another shard's partition, so nothing gets two owners). A topic not there yet is asked for again
// until `timeout_ms`. Errors: InvalidArgument (the count does not fit, or there is no ledger.events: start
// the shards first), IoError (no metadata or watermarks in time).
Status CheckShardCount(const std::string& brokers, uint32_t shards, int64_t timeout_ms);

// The topic settings under which ledger.events keeps every record: the published log is the history auditors
// and a lost shard are rebuilt from, so nothing may expire or be compacted away, and no replica that missed
// acknowledged records may become the leader.
inline constexpr std::pair<const char*, const char*> kEventsTopicConfig[] = {
    {"retention.ms", "-1"},
    {"retention.bytes", "-1"},
    {"cleanup.policy", "delete"},
    {"unclean.leader.election.enable", "false"}};

// Asks the cluster how ledger.events is configured and checks that it keeps every record
// (kEventsTopicConfig). Errors: InvalidArgument naming the setting that would drop records and its value, or
// when the cluster refuses to describe the topic (authorization); IoError when it does not answer in time or
// has no DescribeConfigs (the embedded mock): not checked.
Status CheckEventsKeptForever(const std::string& brokers, int64_t timeout_ms);

// The results of the commands whose events are `records` (consecutive events of whole transactions).
std::vector<std::pair<CommandResult, uint64_t>> ResultsFromEvents(const std::vector<std::string>& records);

}  // namespace ledger::kafka
