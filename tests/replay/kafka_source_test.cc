// Goal: the published history replays like the stored one. A ledger's events published to the embedded broker
// and read back through replay::KafkaEventSource verify to the same last sequence, chain head and rebuilt
// state as the store itself; and what does not belong in the topic is reported the way `ledger replay
// --source kafka` reports it: a record that is not a ledger event (no ledger.sequence header) as "sequence 0
// out of order" where it appears, records gone from the front of the partition as a gap at the first missing
// sequence.
#include "replay/kafka_source.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "kafka/kafka.h"
#include "replay/replay.h"
#include "storage/store.h"
#include "support/test_support.h"

namespace ledger {
namespace {

// Events of this size make the embedded broker drop the oldest records of a partition: it keeps about 5 MB
// each, so 66 of them (6.6 MB) push out at least the first 1.6 MB.
constexpr size_t kLargeFactBytes = 100'000;
constexpr int kLargeFacts = 66;

std::unique_ptr<kafka::EmbeddedBroker> StartBroker() {
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(1);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

void SubmitDay(testing::TestLedger& ledger) {
  EXPECT_EQ(ledger.Submit(testing::OpenMerchant("m1", "M1", 60)).kind, CommandResult::Kind::kAccepted);
  EXPECT_EQ(ledger.Submit(testing::OpenAccount("a1", "C1")).kind, CommandResult::Kind::kAccepted);
  EXPECT_EQ(ledger.Submit(testing::Deposit("d1", "C1:debit", 1'000'000)).kind,
            CommandResult::Kind::kAccepted);
  EXPECT_EQ(ledger.Submit(testing::Pay("M1", "o1", "C1", 10'000)).kind, CommandResult::Kind::kAccepted);
}

// Publishes every committed event of `ledger` to partition 0.
void Publish(testing::TestLedger& ledger, const std::string& brokers) {
  Result<std::unique_ptr<kafka::Publisher>> publisher =
      kafka::Publisher::Create(ledger.ledger().store(), kafka::ProducerSettings{brokers, 0});
  ASSERT_TRUE(publisher.ok()) << publisher.status().ToString();
  const Status published =
      (*publisher)->PublishThrough(ledger.ledger().last_sequence(), kafka::kPublishDeadlineMs);
  ASSERT_TRUE(published.ok()) << published.ToString();
}

// Replays partition 0 into a fresh store under `dir`; the report, and the rebuilt state's digest in `digest`.
replay::ReplayReport ReplayFromKafka(const std::string& brokers, const std::string& dir,
                                     Digest* digest = nullptr) {
  Result<std::unique_ptr<replay::KafkaEventSource>> source = replay::KafkaEventSource::Open(brokers, 0);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  if (!source.ok()) return {};
  StoreOptions options;
  options.sync = false;
  Result<std::unique_ptr<Store>> target = Store::Open(dir, options);
  EXPECT_TRUE(target.ok()) << target.status().ToString();
  if (!target.ok()) return {};
  Result<replay::ReplayReport> report =
      replay::Replay((*source)->source(), target->get(), replay::ReplayOptions());
  EXPECT_TRUE(report.ok()) << report.status().ToString();
  if (digest != nullptr) {
    Result<Digest> rebuilt = replay::StateDigest(**target);
    EXPECT_TRUE(rebuilt.ok());
    if (rebuilt.ok()) *digest = *rebuilt;
  }
  return report.ok() ? *report : replay::ReplayReport();
}

TEST(ReplayKafkaSource, PublishedHistoryVerifiesToTheStoresHead) {
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  testing::TestLedger ledger;
  SubmitDay(ledger);
  Publish(ledger, broker->bootstrap());
  Result<replay::ReplayReport> from_store = replay::Replay(ledger.ledger().store(), nullptr);
  ASSERT_TRUE(from_store.ok());

  testing::ScratchDir scratch;
  Digest rebuilt{};
  const replay::ReplayReport report =
      ReplayFromKafka(broker->bootstrap(), scratch.path() + "/rebuilt", &rebuilt);
  EXPECT_TRUE(report.ok()) << report.problem;
  EXPECT_EQ(report.events_read, ledger.ledger().last_sequence());
  EXPECT_EQ(report.last_sequence, ledger.ledger().last_sequence());
  EXPECT_EQ(report.chain_head, ledger.ledger().chain_head());
  EXPECT_EQ(report.chain_head, from_store->chain_head);
  EXPECT_EQ(rebuilt, ledger.StateDigest());
}

TEST(ReplayKafkaSource, ARecordThatIsNotAnEventIsOutOfOrderWhereItAppears) {
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  testing::TestLedger ledger;
  SubmitDay(ledger);
  Publish(ledger, broker->bootstrap());
  Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(broker->bootstrap());
  ASSERT_TRUE(sender.ok()) << sender.status().ToString();
  ASSERT_TRUE((*sender)->Send(kafka::kEventsTopic, 0, "someone", "not an event").ok());
  ASSERT_TRUE((*sender)->Flush(kafka::kAckTimeoutMs).ok());

  testing::ScratchDir scratch;
  const replay::ReplayReport report = ReplayFromKafka(broker->bootstrap(), scratch.path() + "/rebuilt");
  EXPECT_EQ(report.first_bad_sequence, ledger.ledger().last_sequence() + 1);
  EXPECT_EQ(report.problem, "sequence 0 out of order");
  // Everything before it verified.
  EXPECT_EQ(report.last_sequence, ledger.ledger().last_sequence());
  EXPECT_EQ(report.chain_head, ledger.ledger().chain_head());
}

TEST(ReplayKafkaSource, RecordsGoneFromTheFrontAreAGapAtTheFirstMissingSequence) {
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  testing::TestLedger ledger;
  SubmitDay(ledger);
  for (int i = 0; i < kLargeFacts; ++i) {
    fb::CommandsSkippedT large;
    large.reason = std::string(kLargeFactBytes, 'x');
    fb::PayloadUnion payload;
    payload.Set(std::move(large));
    ASSERT_TRUE(ledger.ledger().RecordFact("large-" + std::to_string(i), std::move(payload)).ok());
  }
  Publish(ledger, broker->bootstrap());
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(broker->bootstrap(), kafka::kEventsTopic, 0, -1);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  Result<kafka::Watermarks> marks = (*reader)->QueryWatermarks(kafka::kWatermarksTimeoutMs);
  ASSERT_TRUE(marks.ok()) << marks.status().ToString();
  ASSERT_GT(marks->low, 0) << "the broker kept every record: nothing to test";

  testing::ScratchDir scratch;
  const replay::ReplayReport report = ReplayFromKafka(broker->bootstrap(), scratch.path() + "/rebuilt");
  EXPECT_EQ(report.first_bad_sequence, 1u);
  EXPECT_EQ(report.problem, "gap: sequence 1 is missing");
  EXPECT_EQ(report.events_read, 0u);
}

}  // namespace
}  // namespace ledger
