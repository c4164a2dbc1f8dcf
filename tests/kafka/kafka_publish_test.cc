// Goal: committed events reach ledger.events exactly once, in order, byte for byte, with the documented key
// and headers, only after the local commit; each command gets exactly one result on ledger.results; the
// publisher resumes from the partition tail (a new publisher, an empty broker); a redelivered command has no
// second effect. Runs on the embedded broker (librdkafka's mock cluster).
//
// This file reads ledger.events with librdkafka directly in one place (ReadWithHeaders): kafka::Record
// carries only the ledger.sequence header, and EveryEventOnceInOrder... checks all three headers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/signing.h"
#include "events/event.h"
#include "kafka/kafka.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "projections/clearing.h"
#include "projections/projector.h"
#include "replay/replay.h"
#include "storage/store.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long one publish may take on a healthy embedded broker before the test calls it lost (ASan included).
constexpr int64_t kPublishDeadlineMs = 60'000;
// How long reading back a partition may take.
constexpr int64_t kReadDeadlineMs = 60'000;
// How long a child process gets to start up or to exit after SIGTERM.
constexpr auto kProcessDeadline = std::chrono::seconds(60);

using testing::Scale;

int Scaled(int count, int at_least) { return std::max(at_least, static_cast<int>(count * Scale())); }

using testing::ReadFile;

using testing::Child;

// ---------------------------------------------------------------------------------------------------------
// Workload: a small payment day whose commands are built with the test-support builders. `key` is the Kafka
// key every event of the command must carry: the customer, or the merchant for merchant events.
struct TestCommand {
  std::string id;
  std::string line;
  std::string key;
  // Also acceptable for a rejected reversal or refund: the merchant named in the command (when the ledger
  // does not look up the original payment's customer).
  std::string other_key;
};

std::vector<TestCommand> MakeWorkload(int count, uint32_t seed) {
  using namespace ledger::testing;
  constexpr int kCustomers = 40;
  constexpr int kMerchants = 5;
  std::mt19937 random(seed);
  std::vector<TestCommand> commands;
  auto add = [&](const json& command, const std::string& key, const std::string& other_key = "") {
    commands.push_back({command["command_id"].get<std::string>(), command.dump(), key, other_key});
  };
  for (int m = 0; m < kMerchants; ++m)
    add(OpenMerchant("m" + std::to_string(m), "M" + std::to_string(m), 60), "M" + std::to_string(m));
  for (int c = 0; c < kCustomers; ++c) {
    const std::string customer = "C" + std::to_string(c);
    add(OpenAccount("a" + std::to_string(c), customer), customer);
    add(Deposit("d" + std::to_string(c), customer + ":debit", 50'000'000), customer);
    add(AwardPoints("p" + std::to_string(c), customer, 100'000), customer);
  }
  struct Order {
    std::string merchant, order_no, customer;
    int refunds = 0;
  };
  std::vector<Order> orders;
  for (int i = 0; static_cast<int>(commands.size()) < count; ++i) {
    const int roll = static_cast<int>(random() % 100);
    const std::string customer = "C" + std::to_string(random() % kCustomers);
    const std::string merchant = "M" + std::to_string(random() % kMerchants);
    const std::string order_no = "O" + std::to_string(i);
    if (roll < 4 && !orders.empty()) {  // reversal (some rejected: already reversed or refunded)
      const Order& order = orders[random() % orders.size()];
      json reverse = Reverse(order.merchant, order.order_no);
      reverse["command_id"] = reverse["command_id"].get<std::string>() + std::to_string(i);
      add(reverse, order.customer, order.merchant);
    } else if (roll < 8 && !orders.empty()) {  // partial refund
      Order& order = orders[random() % orders.size()];
      add(Refund(order.merchant, order.order_no, "R" + std::to_string(i), 50), order.customer,
          order.merchant);
    } else if (roll < 11) {  // rule breaker: unknown merchant
      add(Pay("MX", order_no, customer, 1000), customer);
    } else if (roll < 14) {  // rule breaker: more than the account holds
      add(Pay(merchant, order_no, customer, 90'000'000), customer);
    } else if (roll < 24) {  // points: more than one event in the transaction
      json pay = Pay(merchant, order_no, customer, 5000);
      pay["points"] = 300;
      add(pay, customer);
      orders.push_back({merchant, order_no, customer});
    } else {
      add(Pay(merchant, order_no, customer, 100 + static_cast<int64_t>(random() % 9900)), customer);
      orders.push_back({merchant, order_no, customer});
    }
  }
  return commands;
}

using testing::Parse;

// Every event of the store, in sequence order.
std::vector<std::pair<uint64_t, std::string>> StoreEvents(const Store& store) {
  std::vector<std::pair<uint64_t, std::string>> events;
  const Status scanned = store.ScanEvents(1, UINT64_MAX, [&](uint64_t sequence, std::string_view record) {
    events.emplace_back(sequence, std::string(record));
    return true;
  });
  EXPECT_TRUE(scanned.ok()) << scanned.ToString();
  return events;
}

// Reads `topic` partition 0 from the beginning up to its high watermark.
std::vector<kafka::Record> ReadPartition(const std::string& brokers, const std::string& topic) {
  std::vector<kafka::Record> records;
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, topic, 0, -1);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return records;
  Result<int64_t> high = (*reader)->HighWatermark(10'000);
  EXPECT_TRUE(high.ok()) << high.status().ToString();
  if (!high.ok()) return records;
  const auto deadline = Clock::now() + milliseconds(kReadDeadlineMs);
  int64_t next = 0;
  while (next < *high && Clock::now() < deadline) {
    Result<std::vector<kafka::Record>> polled = (*reader)->Poll(4096, 200);
    EXPECT_TRUE(polled.ok()) << polled.status().ToString();
    if (!polled.ok()) break;
    for (kafka::Record& record : *polled) {
      next = record.offset + 1;
      records.push_back(std::move(record));
    }
  }
  EXPECT_GE(next, *high) << topic << ": could not read up to the high watermark in time";
  return records;
}

int64_t HighWatermark(const std::string& brokers, const std::string& topic) {
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, topic, 0, -1);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return -1;
  Result<int64_t> high = (*reader)->HighWatermark(10'000);
  EXPECT_TRUE(high.ok()) << high.status().ToString();
  return high.ok() ? *high : -1;
}

// Checks that `records` (a whole ledger.events partition) hold exactly the store's events: sequences 1..N in
// order, each once (header and body agree), values equal to the RocksDB records.
void ExpectTopicEqualsStore(const std::vector<kafka::Record>& records, const Store& store) {
  const std::vector<std::pair<uint64_t, std::string>> events = StoreEvents(store);
  ASSERT_EQ(records.size(), events.size()) << "ledger.events must hold every stored event exactly once";
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_TRUE(records[i].sequence.has_value())
        << "offset " << records[i].offset << " has no ledger.sequence header";
    ASSERT_EQ(*records[i].sequence, i + 1)
        << "offset " << records[i].offset << ": sequences must be 1, 2, 3, ...";
    ASSERT_EQ(records[i].value, events[i].second)
        << "sequence " << i + 1 << ": record bytes differ from RocksDB";
  }
}

// ---------------------------------------------------------------------------------------------------------
// Raw librdkafka read of a partition with all headers (see the note at the top of the file).
struct HeaderedRecord {
  int64_t offset = 0;
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
};

std::vector<HeaderedRecord> ReadWithHeaders(const std::string& brokers, const char* topic) {
  std::vector<HeaderedRecord> records;
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"bootstrap.servers", brokers},
                                                        {"group.id", "kafka-publish-test"},
                                                        {"enable.auto.commit", "false"},
                                                        {"enable.partition.eof", "true"},
                                                        {"log.connection.close", "false"}}) {
    EXPECT_EQ(rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error), RD_KAFKA_CONF_OK)
        << error;
  }
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
  if (consumer == nullptr) {
    ADD_FAILURE() << error;
    rd_kafka_conf_destroy(conf);
    return records;
  }
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  EXPECT_EQ(rd_kafka_assign(consumer, list), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(list);
  const auto deadline = Clock::now() + milliseconds(kReadDeadlineMs);
  bool at_end = false;
  while (!at_end && Clock::now() < deadline) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer, 200);
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_end = true;
    } else if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Connection hiccups are retried by librdkafka; anything else is a failure of the read.
      if (message->err != RD_KAFKA_RESP_ERR__TRANSPORT) ADD_FAILURE() << rd_kafka_message_errstr(message);
    } else {
      HeaderedRecord record;
      record.offset = message->offset;
      if (message->key != nullptr)
        record.key.assign(static_cast<const char*>(message->key), message->key_len);
      if (message->payload != nullptr)
        record.value.assign(static_cast<const char*>(message->payload), message->len);
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0;
             rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
          EXPECT_EQ(record.headers.count(name), 0u)
              << "offset " << record.offset << ": header " << name << " twice";
          record.headers[name] =
              value == nullptr ? std::string() : std::string(static_cast<const char*>(value), size);
        }
      }
      records.push_back(std::move(record));
    }
    rd_kafka_message_destroy(message);
  }
  EXPECT_TRUE(at_end) << topic << ": end of partition not reached in time";
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return records;
}

std::unique_ptr<kafka::EmbeddedBroker> StartBroker() {
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(1);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

std::unique_ptr<kafka::Publisher> MakePublisher(const Store& store, const std::string& brokers) {
  Result<std::unique_ptr<kafka::Publisher>> publisher =
      kafka::Publisher::Create(store, kafka::ProducerSettings{brokers, 0, 30'000});
  EXPECT_TRUE(publisher.ok()) << publisher.status().ToString();
  return publisher.ok() ? std::move(publisher).value() : nullptr;
}

// Stages `commands[from, to)` in groups of 1..kGroupMax commands, committing each group and publishing it
// (when `publisher` is set). Returns each command's local result, in order.
std::vector<CommandResult> SubmitInGroups(Ledger& ledger, kafka::Publisher* publisher,
                                          const std::vector<TestCommand>& commands, size_t from, size_t to,
                                          std::mt19937& random) {
  constexpr size_t kGroupMax = 64;  // small groups: many publishes, transactions split across them
  std::vector<CommandResult> results;
  size_t next = from;
  while (next < to) {
    const size_t group = std::min<size_t>(to - next, 1 + random() % kGroupMax);
    for (size_t i = 0; i < group; ++i) results.push_back(ledger.Stage(Parse(commands[next + i].line)));
    next += group;
    const Status committed = ledger.CommitGroup();
    EXPECT_TRUE(committed.ok()) << committed.ToString();
    if (publisher != nullptr) {
      const Status published = publisher->PublishThrough(ledger.last_sequence(), kPublishDeadlineMs);
      EXPECT_TRUE(published.ok()) << published.ToString();
      if (!published.ok()) break;
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------------------

TEST(KafkaPublish, NothingReachesKafkaBeforeTheLocalCommit) {
  testing::TestLedger ledger;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  std::unique_ptr<kafka::Publisher> publisher = MakePublisher(ledger.ledger().store(), broker->bootstrap());
  ASSERT_NE(publisher, nullptr);
  const CommandResult staged = ledger.ledger().Stage(Parse(testing::OpenAccount("a1", "C1").dump()));
  ASSERT_EQ(staged.kind, CommandResult::Kind::kAccepted);
  ASSERT_EQ(ledger.ledger().last_sequence(), 1u);
  // Staged is not committed: the publisher has nothing to send and says so on its deadline.
  const Status early = publisher->PublishThrough(1, 1'000);
  EXPECT_EQ(early.code(), StatusCode::kIoError) << early.ToString();
  EXPECT_EQ(publisher->acknowledged_through(), 0u);
  EXPECT_EQ(HighWatermark(broker->bootstrap(), kafka::kEventsTopic), 0);
  EXPECT_EQ(HighWatermark(broker->bootstrap(), kafka::kResultsTopic), 0);

  ASSERT_TRUE(ledger.ledger().CommitGroup().ok());
  const Status published = publisher->PublishThrough(1, kPublishDeadlineMs);
  ASSERT_TRUE(published.ok()) << published.ToString();
  EXPECT_EQ(publisher->acknowledged_through(), 1u);
  const std::vector<kafka::Record> events = ReadPartition(broker->bootstrap(), kafka::kEventsTopic);
  ASSERT_NO_FATAL_FAILURE(ExpectTopicEqualsStore(events, ledger.ledger().store()));
  const std::vector<kafka::Record> results = ReadPartition(broker->bootstrap(), kafka::kResultsTopic);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].key, "a1");
  EXPECT_EQ(results[0].value, staged.ToJson());
}

TEST(KafkaPublish, EveryEventOnceInOrderWithKeyHeadersAndOneResultPerCommand) {
  testing::TestLedger ledger;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  std::unique_ptr<kafka::Publisher> publisher = MakePublisher(ledger.ledger().store(), broker->bootstrap());
  ASSERT_NE(publisher, nullptr);
  const std::vector<TestCommand> commands = MakeWorkload(Scaled(3000, 400), 7);
  std::mt19937 random(11);
  const std::vector<CommandResult> local =
      SubmitInGroups(ledger.ledger(), publisher.get(), commands, 0, commands.size(), random);
  ASSERT_EQ(local.size(), commands.size());
  const uint64_t last = ledger.ledger().last_sequence();
  ASSERT_GT(last, commands.size()) << "the workload must have transactions of more than one event";
  EXPECT_EQ(publisher->acknowledged_through(), last);
  EXPECT_EQ(publisher->events_published(), last);
  EXPECT_EQ(publisher->producer_rebuilds(), 0u);

  // Events: 1..N once, in order, bytes as stored, key and headers as documented.
  std::map<std::string, const TestCommand*> command_of_id;
  for (const TestCommand& command : commands) command_of_id[command.id] = &command;
  std::vector<std::string> wrong_keys;  // the first few, for the failure message
  size_t wrong_key_count = 0;
  const std::vector<std::pair<uint64_t, std::string>> stored = StoreEvents(ledger.ledger().store());
  ASSERT_EQ(stored.size(), last);
  const std::vector<HeaderedRecord> events = ReadWithHeaders(broker->bootstrap(), kafka::kEventsTopic);
  ASSERT_EQ(events.size(), stored.size()) << "every committed event exactly once";
  size_t multi_event_transactions = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const HeaderedRecord& record = events[i];
    SCOPED_TRACE("offset " + std::to_string(record.offset));
    ASSERT_EQ(record.value, stored[i].second) << "record bytes must equal the RocksDB record";
    Result<DecodedEvent> decoded = DecodeEventRecord(record.value);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    const fb::EventBody& body = *decoded->body;
    ASSERT_EQ(body.sequence(), i + 1);
    EXPECT_EQ(record.headers.size(), 3u);
    EXPECT_EQ(record.headers.at(kafka::kSequenceHeader), std::to_string(i + 1));
    EXPECT_EQ(record.headers.at(kafka::kTypeHeader), EventTypeName(body.payload_type()));
    EXPECT_EQ(record.headers.at(kafka::kTransactionHeader), body.transaction_id()->str());
    ASSERT_EQ(command_of_id.count(body.command_id()->str()), 1u);
    // The key is the customer (merchant for merchant events): a rejected reversal or refund concerns a known
    // payment, so it must carry that payment's customer (or at least the merchant), never an empty key.
    const TestCommand& command = *command_of_id[body.command_id()->str()];
    const bool rejected = body.payload_type() == fb::Payload::CommandRejected;
    if (record.key != command.key &&
        !(rejected && !command.other_key.empty() && record.key == command.other_key)) {
      if (++wrong_key_count <= 3) {
        wrong_keys.push_back("sequence " + std::to_string(i + 1) + " (" + EventTypeName(body.payload_type()) +
                             " of " + command.id +
                             (rejected ? ", " + body.payload_as_CommandRejected()->reason()->str() : "") +
                             "): key \"" + record.key + "\", expected \"" + command.key + "\"");
      }
    }
    if (i > 0 && events[i - 1].headers.at(kafka::kTransactionHeader) == body.transaction_id()->str())
      multi_event_transactions += 1;
  }
  EXPECT_GT(multi_event_transactions, 0u);
  EXPECT_EQ(wrong_key_count, 0u) << "events with a wrong Kafka key, e.g. "
                                 << ::testing::PrintToString(wrong_keys);

  // Results: one per command, in ledger order, the same JSON as the local outcome.
  const std::vector<kafka::Record> results = ReadPartition(broker->bootstrap(), kafka::kResultsTopic);
  ASSERT_EQ(results.size(), commands.size()) << "exactly one result per command";
  uint64_t previous = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].key, commands[i].id);
    EXPECT_EQ(results[i].value, local[i].ToJson());
    ASSERT_TRUE(results[i].sequence.has_value());
    EXPECT_EQ(*results[i].sequence, local[i].sequences.back())
        << "ledger.sequence: the transaction's last sequence";
    EXPECT_GT(*results[i].sequence, previous);
    previous = *results[i].sequence;
  }
  RecordProperty("commands", static_cast<int>(commands.size()));
  RecordProperty("events", static_cast<int>(last));
  std::cout << "[ figures  ] commands " << commands.size() << ", events " << last
            << ", multi-event transactions " << multi_event_transactions << "\n";
}

// With the ledger's key, the last event of every publish pass and every kSealEveryEvents-th carry its seal
// (over shard, sequence and the event's chain hash), and no other event does.
TEST(KafkaPublish, SealsTheLastEventOfEveryPassAndEveryThousandTwentyFourth) {
  testing::TestLedger ledger;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  testing::TempDir keys;
  ASSERT_TRUE(GenerateKeyPair(keys.path()).ok());
  Result<std::unique_ptr<Signer>> signer = Signer::FromPemFile(keys.path() + "/ledger-signing.key");
  Result<std::unique_ptr<SignatureVerifier>> verifier =
      SignatureVerifier::FromPemFile(keys.path() + "/ledger-signing.pub");
  ASSERT_TRUE(signer.ok() && verifier.ok());
  Result<std::unique_ptr<kafka::Publisher>> publisher = kafka::Publisher::Create(
      ledger.ledger().store(),
      kafka::ProducerSettings{broker->bootstrap(), 0, 30'000, {}, std::move(signer).value()});
  ASSERT_TRUE(publisher.ok()) << publisher.status().ToString();
  // Groups of up to 600 commands: some passes cross a multiple of 1,024 events, most do not.
  const std::vector<TestCommand> commands = MakeWorkload(Scaled(6000, 1800), 5);
  std::mt19937 random(3);
  std::set<uint64_t> expected;
  for (size_t next = 0; next < commands.size();) {
    const size_t group = std::min<size_t>(commands.size() - next, 1 + random() % 600);
    for (size_t i = 0; i < group; ++i) ledger.ledger().Stage(Parse(commands[next + i].line));
    next += group;
    ASSERT_TRUE(ledger.ledger().CommitGroup().ok());
    const uint64_t pass_end = ledger.ledger().last_sequence();
    ASSERT_TRUE((*publisher)->PublishThrough(pass_end, kPublishDeadlineMs).ok());
    expected.insert(pass_end);
  }
  for (uint64_t every = kafka::kSealEveryEvents; every <= ledger.ledger().last_sequence();
       every += kafka::kSealEveryEvents)
    expected.insert(every);
  ASSERT_GE(ledger.ledger().last_sequence(), kafka::kSealEveryEvents);

  std::set<uint64_t> sealed;
  for (const HeaderedRecord& record : ReadWithHeaders(broker->bootstrap(), kafka::kEventsTopic)) {
    const auto seal = record.headers.find(kafka::kSealHeader);
    if (seal == record.headers.end()) continue;
    Result<DecodedEvent> event = DecodeEventRecord(record.value);
    ASSERT_TRUE(event.ok());
    const uint64_t sequence = event->body->sequence();
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(seal->second.data()),
                                         seal->second.size());
    EXPECT_TRUE((*verifier)->Verify(SealMessage(0, sequence, event->hash), bytes)) << sequence;
    // Bound to its place: not another sequence's, not another shard's.
    EXPECT_FALSE((*verifier)->Verify(SealMessage(0, sequence + 1, event->hash), bytes));
    EXPECT_FALSE((*verifier)->Verify(SealMessage(1, sequence, event->hash), bytes));
    sealed.insert(sequence);
  }
  EXPECT_EQ(sealed, expected);
  std::cout << "[ figures  ] events " << ledger.ledger().last_sequence() << ", sealed " << sealed.size()
            << "\n";
}

TEST(KafkaPublish, NewPublisherResumesFromThePartitionTail) {
  testing::TestLedger ledger;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::vector<TestCommand> commands = MakeWorkload(Scaled(1200, 300), 21);
  std::mt19937 random(5);
  const size_t half = commands.size() / 2;
  uint64_t first_through = 0;
  {
    std::unique_ptr<kafka::Publisher> first = MakePublisher(ledger.ledger().store(), broker->bootstrap());
    ASSERT_NE(first, nullptr);
    SubmitInGroups(ledger.ledger(), first.get(), commands, 0, half, random);
    first_through = ledger.ledger().last_sequence();
    EXPECT_EQ(first->events_published(), first_through);
  }  // destroyed: a process restart in miniature
  // Committed while no publisher runs: the next one must pick these up from the store.
  SubmitInGroups(ledger.ledger(), nullptr, commands, half, half + (commands.size() - half) / 2, random);
  std::unique_ptr<kafka::Publisher> second = MakePublisher(ledger.ledger().store(), broker->bootstrap());
  ASSERT_NE(second, nullptr);
  // Publishing what Kafka has already is a no-op.
  ASSERT_TRUE(second->PublishThrough(first_through, kPublishDeadlineMs).ok());
  EXPECT_EQ(second->events_published(), 0u) << "events already in the partition must not be produced again";
  SubmitInGroups(ledger.ledger(), second.get(), commands, half + (commands.size() - half) / 2,
                 commands.size(), random);
  const uint64_t last = ledger.ledger().last_sequence();
  ASSERT_TRUE(second->PublishThrough(last, kPublishDeadlineMs).ok());
  EXPECT_EQ(second->events_published(), last - first_through);

  const std::vector<kafka::Record> events = ReadPartition(broker->bootstrap(), kafka::kEventsTopic);
  ASSERT_NO_FATAL_FAILURE(ExpectTopicEqualsStore(events, ledger.ledger().store()));
  const std::vector<kafka::Record> results = ReadPartition(broker->bootstrap(), kafka::kResultsTopic);
  ASSERT_EQ(results.size(), commands.size());
  for (size_t i = 0; i < results.size(); ++i) EXPECT_EQ(results[i].key, commands[i].id);
}

// The rule for a broker that lost everything (the embedded broker keeps nothing across restarts): an empty
// partition gets the whole history from RocksDB, the system of record; consumers skip what they applied
// (ProjectionRunner skips sequences at or below its last applied one).
TEST(KafkaPublish, EmptyRestartedBrokerGetsTheWholeHistoryOnce) {
  testing::TestLedger ledger;
  const std::vector<TestCommand> commands = MakeWorkload(Scaled(800, 200), 33);
  std::mt19937 random(9);
  {
    std::unique_ptr<kafka::EmbeddedBroker> first_broker = StartBroker();
    ASSERT_NE(first_broker, nullptr);
    std::unique_ptr<kafka::Publisher> publisher =
        MakePublisher(ledger.ledger().store(), first_broker->bootstrap());
    ASSERT_NE(publisher, nullptr);
    SubmitInGroups(ledger.ledger(), publisher.get(), commands, 0, commands.size(), random);
    EXPECT_EQ(ReadPartition(first_broker->bootstrap(), kafka::kEventsTopic).size(),
              ledger.ledger().last_sequence());
  }
  const uint64_t last = ledger.ledger().last_sequence();
  std::unique_ptr<kafka::EmbeddedBroker> second_broker = StartBroker();
  ASSERT_NE(second_broker, nullptr);
  ASSERT_EQ(HighWatermark(second_broker->bootstrap(), kafka::kEventsTopic), 0);
  std::unique_ptr<kafka::Publisher> publisher =
      MakePublisher(ledger.ledger().store(), second_broker->bootstrap());
  ASSERT_NE(publisher, nullptr);
  const Status published = publisher->PublishThrough(last, kPublishDeadlineMs);
  ASSERT_TRUE(published.ok()) << published.ToString();
  EXPECT_EQ(publisher->events_published(), last) << "the whole history, from sequence 1";
  const std::vector<kafka::Record> events = ReadPartition(second_broker->bootstrap(), kafka::kEventsTopic);
  ASSERT_NO_FATAL_FAILURE(ExpectTopicEqualsStore(events, ledger.ledger().store()));
  const std::vector<kafka::Record> results = ReadPartition(second_broker->bootstrap(), kafka::kResultsTopic);
  ASSERT_EQ(results.size(), commands.size()) << "one result per command, again from the start";
  // Publishing again changes nothing.
  ASSERT_TRUE(publisher->PublishThrough(last, kPublishDeadlineMs).ok());
  EXPECT_EQ(HighWatermark(second_broker->bootstrap(), kafka::kEventsTopic), static_cast<int64_t>(last));
}

// ---------------------------------------------------------------------------------------------------------
// `ledger serve` against an in-process embedded broker: commands in, results out.

class ServeFixture {
 public:
  ServeFixture() : broker_(StartBroker()) {}
  const std::string& brokers() const { return broker_->bootstrap(); }
  std::string data_dir() const { return dir_.path() + "/serve"; }

  std::unique_ptr<Child> StartServe() {
    const std::string tag = dir_.path() + "/serve" + std::to_string(++runs_);
    return std::make_unique<Child>(
        std::vector<std::string>{"serve", "--data", data_dir(), "--brokers", brokers(), "--clock", "occurred",
                                 "--allow-unsigned-commands"},
        tag + ".out", tag + ".err");
  }
  void Send(const std::vector<std::string>& lines) {
    Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(brokers());
    ASSERT_TRUE(sender.ok()) << sender.status().ToString();
    for (const std::string& line : lines) {
      const Status sent =
          (*sender)->Send(kafka::kCommandsTopic, 0, json::parse(line)["command_id"].get<std::string>(), line);
      ASSERT_TRUE(sent.ok()) << sent.ToString();
    }
    const Status flushed = (*sender)->Flush(30'000);
    ASSERT_TRUE(flushed.ok()) << flushed.ToString();
  }
  // Waits until ledger.results holds at least `count` records; returns them all.
  std::vector<kafka::Record> WaitForResults(size_t count) {
    const auto deadline = Clock::now() + kProcessDeadline;
    while (Clock::now() < deadline) {
      if (HighWatermark(brokers(), kafka::kResultsTopic) >= static_cast<int64_t>(count)) break;
      std::this_thread::sleep_for(milliseconds(100));
    }
    std::vector<kafka::Record> results = ReadPartition(brokers(), kafka::kResultsTopic);
    EXPECT_GE(results.size(), count) << "serve did not answer in time";
    return results;
  }
  // SIGTERM: serve drains and exits 0.
  void Stop(Child& serve) {
    serve.Signal(SIGTERM);
    EXPECT_TRUE(serve.Wait(kProcessDeadline)) << "serve did not stop after SIGTERM";
    EXPECT_EQ(serve.exit_code(), 0);
  }
  // Last sequence and state digest of the stopped serve's store.
  std::pair<uint64_t, Digest> Snapshot() {
    StoreOptions options;
    options.read_only = true;
    Result<std::unique_ptr<Store>> store = Store::Open(data_dir(), options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return {0, Digest{}};
    Result<std::optional<std::pair<uint64_t, std::string>>> last = (*store)->LastEvent();
    Result<Digest> digest = replay::StateDigest(**store);
    EXPECT_TRUE(last.ok() && digest.ok());
    return {last.ok() && last->has_value() ? (*last)->first : 0, digest.ok() ? *digest : Digest{}};
  }

 private:
  testing::TempDir dir_;
  std::unique_ptr<kafka::EmbeddedBroker> broker_;
  int runs_ = 0;
};

TEST(KafkaPublish, RedeliveredCommandIsAnsweredDuplicateWithoutASecondEffect) {
  using namespace ledger::testing;
  ServeFixture fixture;
  const std::string pay1 = Pay("M1", "ORD1", "C1", 10'000).dump();
  const std::string pay2 = Pay("M1", "ORD2", "C1", 2'000).dump();
  // Phase 1: pay2 arrives twice in a row (the same line redelivered), most likely in one group.
  const std::vector<std::string> first = {OpenMerchant("m1", "M1", 60).dump(),
                                          OpenAccount("a1", "C1").dump(),
                                          Deposit("d1", "C1:debit", 1'000'000).dump(),
                                          pay1,
                                          pay2,
                                          pay2};
  ASSERT_NO_FATAL_FAILURE(fixture.Send(first));
  std::unique_ptr<Child> serve = fixture.StartServe();
  std::vector<kafka::Record> results = fixture.WaitForResults(first.size());
  ASSERT_EQ(results.size(), first.size());
  std::map<std::string, std::vector<json>> by_id;
  for (const kafka::Record& record : results) by_id[record.key].push_back(json::parse(record.value));
  for (const char* id : {"m1", "a1", "d1", "M1:ORD1"}) {
    ASSERT_EQ(by_id[id].size(), 1u) << id;
    EXPECT_EQ(by_id[id][0]["status"], "accepted") << id;
  }
  ASSERT_EQ(by_id["M1:ORD2"].size(), 2u);
  EXPECT_EQ(by_id["M1:ORD2"][0]["status"], "accepted");
  EXPECT_EQ(by_id["M1:ORD2"][1]["status"], "duplicate");
  EXPECT_EQ(by_id["M1:ORD2"][1]["sequences"], by_id["M1:ORD2"][0]["sequences"])
      << "a duplicate returns the original outcome";
  EXPECT_EQ(by_id["M1:ORD2"][1]["transaction_id"], by_id["M1:ORD2"][0]["transaction_id"]);
  const int64_t events_before = HighWatermark(fixture.brokers(), kafka::kEventsTopic);
  fixture.Stop(*serve);
  const auto [last_before, digest_before] = fixture.Snapshot();
  EXPECT_EQ(static_cast<int64_t>(last_before), events_before)
      << "one event per accepted command, none for the duplicate";

  // Phase 2: after a restart, earlier commands are redelivered (pay1 twice, a1 once).
  ASSERT_NO_FATAL_FAILURE(fixture.Send({pay1, pay1, first[1]}));
  serve = fixture.StartServe();
  results = fixture.WaitForResults(first.size() + 3);
  ASSERT_EQ(results.size(), first.size() + 3);
  for (size_t i = first.size(); i < results.size(); ++i) {
    const json result = json::parse(results[i].value);
    EXPECT_EQ(result["status"], "duplicate") << results[i].value;
    EXPECT_FALSE(results[i].sequence.has_value()) << "a duplicate result carries no ledger.sequence header";
    const json& original = by_id[results[i].key].at(0);
    EXPECT_EQ(result["sequences"], original["sequences"]);
    EXPECT_EQ(result["transaction_id"], original["transaction_id"]);
  }
  EXPECT_EQ(HighWatermark(fixture.brokers(), kafka::kEventsTopic), events_before)
      << "no new event for a redelivery";
  fixture.Stop(*serve);
  const auto [last_after, digest_after] = fixture.Snapshot();
  EXPECT_EQ(last_after, last_before) << "no new event in RocksDB";
  EXPECT_EQ(digest_after, digest_before) << "state unchanged by redeliveries";
}

TEST(KafkaPublish, DemoPublishesEveryEventItWrites) {
  testing::TempDir dir;
  Child demo({"demo", "--data", dir.path() + "/demo", "--payments", "500", "--customers", "50", "--merchants",
              "10", "--json"},
             dir.path() + "/demo.out", dir.path() + "/demo.err");
  ASSERT_TRUE(demo.Wait(std::chrono::seconds(180))) << "demo did not finish";
  ASSERT_EQ(demo.exit_code(), 0) << ReadFile(dir.path() + "/demo.err");
  const json out = json::parse(ReadFile(dir.path() + "/demo.out"));
  ASSERT_TRUE(out.contains("kafka")) << out.dump();
  EXPECT_GT(out["events_written"].get<uint64_t>(), 500u);
  EXPECT_EQ(out["kafka"]["events_published"], out["events_written"]);
  EXPECT_EQ(out["kafka"]["embedded"], true);
  // The summary's net fees follow the payments (reversals give the fee back) and agree with the books.
  EXPECT_GT(out["payments"]["reversed"].get<int64_t>(), 0) << "the demo day has reversals";
  EXPECT_EQ(out["payments"]["net_fees_minor"], out["payments"]["fee_income_balance_minor"])
      << out["payments"].dump();
}

}  // namespace
}  // namespace ledger

namespace ledger {
namespace {

// The downstream clearing job folds ledger.events with the same projectors the ledger runs inline: fed the
// same events, its clearing views are the same bytes, key for key.
TEST(KafkaPublish, ClearingJobViewsAreByteIdenticalToTheLedgersOwn) {
  testing::TempDir dir;
  testing::TestLedger ledger;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  std::unique_ptr<kafka::Publisher> publisher = MakePublisher(ledger.ledger().store(), broker->bootstrap());
  ASSERT_NE(publisher, nullptr);
  const std::vector<TestCommand> commands = MakeWorkload(Scaled(2000, 400), 31);
  std::mt19937 random(5);
  SubmitInGroups(ledger.ledger(), publisher.get(), commands, 0, commands.size(), random);
  const uint64_t last = ledger.ledger().last_sequence();
  ASSERT_EQ(publisher->acknowledged_through(), last);

  const std::string job_dir = dir.path() + "/clearing";
  Child job({"clearing-job", "--brokers", broker->bootstrap(), "--group", "clearing", "--data", job_dir,
             "--idle-exit-ms", "1500"},
            dir.path() + "/job.out", dir.path() + "/job.err");
  ASSERT_TRUE(job.Wait(kProcessDeadline)) << "clearing-job did not finish";
  ASSERT_EQ(job.exit_code(), 0) << ReadFile(dir.path() + "/job.err");

  StoreOptions read_only;
  read_only.read_only = true;
  read_only.create_if_missing = false;
  Result<std::unique_ptr<Store>> view = Store::Open(job_dir + "/partition-0", read_only);
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  const std::unique_ptr<Projector> clearing = MakeClearingProjector();
  auto records = [&](const Store& store) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const std::string& prefix : clearing->KeyPrefixes()) {
      EXPECT_TRUE(store
                      .ScanState(prefix,
                                 [&](std::string_view key, std::string_view value) {
                                   out.emplace_back(key, value);
                                   return true;
                                 })
                      .ok());
    }
    return out;
  };
  const auto inline_records = records(ledger.ledger().store());
  const auto job_records = records(**view);
  ASSERT_GT(inline_records.size(), commands.size() / 4) << "the workload must produce clearing records";
  ASSERT_EQ(job_records.size(), inline_records.size());
  size_t differing = 0;
  for (size_t i = 0; i < inline_records.size(); ++i) differing += inline_records[i] != job_records[i];
  EXPECT_EQ(differing, 0u) << "clearing records differ between the ledger and clearing-job";
  Result<Digest> inline_digest = DigestOfPrefixes(ledger.ledger().store(), clearing->KeyPrefixes());
  Result<Digest> job_digest = DigestOfPrefixes(**view, clearing->KeyPrefixes());
  ASSERT_TRUE(inline_digest.ok() && job_digest.ok());
  EXPECT_EQ(ToHex(*inline_digest), ToHex(*job_digest));
}

}  // namespace
}  // namespace ledger
