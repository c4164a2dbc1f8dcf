// Goal: `ledger serve` never skips queued commands silently. A stored commands offset below the partition's
// low watermark (records dropped before serve applied them) or past its end (the topic replaced) makes serve
// refuse to start, naming the gap, with nothing written, until an operator passes --accept-command-gap; then
// it resumes at the low watermark and records a CommandsSkipped event. Records dropped while serve runs stop
// it. Also: a restart against existing topics is quick. Runs the real `ledger` binary on the embedded broker.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "kafka/kafka.h"
#include "support/serve_harness.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::kServeDeadline;
using testing::ServeProcess;

// Filler that makes the embedded broker drop the oldest records of ledger.commands: it keeps about 5 MB per
// partition, so 66 records of 100 KB (6.6 MB) push out at least the first 1.6 MB.
constexpr size_t kFillerRecordBytes = 100'000;
constexpr int kFillerRecords = 66;
// The operator named in the tests' --accept-command-gap.
constexpr char kOperator[] = "Grace Hopper";

std::unique_ptr<kafka::EmbeddedBroker> StartBroker() {
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(1);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

std::vector<std::string> ServeArgs(const std::string& data_dir, const std::string& brokers) {
  return {"--data", data_dir, "--brokers", brokers, "--clock", "occurred"};
}

std::vector<std::string> WithFlag(std::vector<std::string> args) {
  args.push_back("--accept-command-gap");
  args.push_back(kOperator);
  return args;
}

// Three commands every test starts with: serve applies them, so its stored offset is 3.
std::vector<std::string> SetupCommands() {
  using namespace ledger::testing;
  return {OpenMerchant("m1", "M1", 60).dump(), OpenAccount("a1", "C1").dump(),
          Deposit("d1", "C1:debit", 1'000'000).dump()};
}
constexpr int64_t kSetupCommands = 3;

std::vector<std::string> Filler() {
  return std::vector<std::string>(kFillerRecords, std::string(kFillerRecordBytes, 'x'));
}

// Runs serve until it answered the setup commands, then stops it (exit 0). Returns the store's state.
testing::StoreState ApplySetup(const std::string& dir, const std::string& data_dir,
                               const std::string& brokers) {
  EXPECT_TRUE(testing::SendCommands(brokers, SetupCommands()).ok());
  ServeProcess serve(dir, 0, ServeArgs(data_dir, brokers));
  EXPECT_TRUE(
      testing::WaitForHighWatermark(brokers, kafka::kResultsTopic, kSetupCommands, serve, kServeDeadline))
      << serve.err();
  EXPECT_EQ(serve.Stop(), 0) << serve.err();
  const testing::StoreState state = testing::ReadStoreState(data_dir);
  EXPECT_EQ(state.commands_offset, kSetupCommands);
  return state;
}

// The CommandsSkipped events of `data_dir`, as `ledger events --json` prints them.
std::vector<json> SkippedEvents(const std::string& dir, const std::string& data_dir) {
  std::vector<json> skipped;
  for (json& event : testing::LedgerEvents(dir, data_dir)) {
    if (event.value("type", "") == "CommandsSkipped") skipped.push_back(std::move(event));
  }
  return skipped;
}

// The status of the one result keyed `key` ("" when there is none, "twice" when there are more).
std::string StatusOf(const std::vector<kafka::Record>& results, const std::string& key) {
  std::string status;
  for (const auto& [result_key, value] : testing::ParsedResults(results)) {
    if (result_key != key) continue;
    if (!status.empty()) return "twice";
    status = value.value("status", "?");
  }
  return status;
}

TEST(KafkaServeOffsets, StoredOffsetBelowTheLowWatermarkRefusesThenResumesOnTheOperatorsFlag) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/ledger";
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string& brokers = broker->bootstrap();
  const testing::StoreState before = ApplySetup(dir.path(), data_dir, brokers);
  ASSERT_FALSE(HasFailure());

  // While serve is down, the partition drops its oldest records, the ones serve would read next among them.
  ASSERT_TRUE(testing::SendCommands(brokers, Filler()).ok());
  const kafka::Watermarks marks = testing::TopicWatermarks(brokers, kafka::kCommandsTopic);
  ASSERT_GT(marks.low, kSetupCommands)
      << "the embedded broker kept every record: the test needs its bounded tail";
  const int64_t results_before = testing::TopicWatermarks(brokers, kafka::kResultsTopic).high;

  ServeProcess refused(dir.path(), 1, ServeArgs(data_dir, brokers));
  EXPECT_EQ(refused.WaitExit(kServeDeadline), 1) << refused.err();
  const std::string gap =
      "offsets 3.." + std::to_string(marks.low - 1) + " of ledger.commands partition 0 are gone";
  EXPECT_NE(refused.err().find(gap), std::string::npos) << refused.err();
  EXPECT_NE(refused.err().find(std::to_string(marks.low - 3) + " commands never applied"), std::string::npos)
      << refused.err();
  EXPECT_NE(refused.err().find("--accept-command-gap"), std::string::npos) << refused.err();
  EXPECT_EQ(testing::ReadStoreState(data_dir), before) << "a refused start wrote to the store";
  EXPECT_EQ(testing::TopicWatermarks(brokers, kafka::kResultsTopic).high, results_before)
      << "a refused start answered something";

  ServeProcess accepted(dir.path(), 2, WithFlag(ServeArgs(data_dir, brokers)));
  ASSERT_TRUE(accepted.WaitReady(kServeDeadline)) << accepted.err();
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Deposit("d2", "C1:debit", 500).dump()}).ok());
  // Answers: the recorded gap, each filler record still kept (not a command), then the new deposit.
  const int64_t kept = marks.high - marks.low;
  ASSERT_TRUE(testing::WaitForHighWatermark(brokers, kafka::kResultsTopic, results_before + 1 + kept + 1,
                                            accepted, kServeDeadline))
      << accepted.err();
  EXPECT_EQ(accepted.Stop(), 0) << accepted.err();
  const std::vector<kafka::Record> results = testing::ReadTopic(brokers, kafka::kResultsTopic);
  EXPECT_EQ(StatusOf(results, "d2"), "accepted");
  EXPECT_EQ(StatusOf(results, "kafka:0:" + std::to_string(marks.low)), "rejected") << "the first kept record";

  const std::vector<json> skipped = SkippedEvents(dir.path(), data_dir);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0]["sequence"], before.last_sequence + 1) << "recorded before anything else was applied";
  EXPECT_EQ(skipped[0]["command_id"], "commands-skipped:0:3-" + std::to_string(marks.low) + "@" +
                                          std::to_string(before.last_sequence + 1));
  const json& payload = skipped[0]["payload"];
  EXPECT_EQ(payload["partition"], 0);
  EXPECT_EQ(payload["stored_offset"], kSetupCommands);
  EXPECT_EQ(payload["resumed_offset"], marks.low);
  EXPECT_EQ(payload["low_watermark"], marks.low);
  EXPECT_EQ(payload["high_watermark"], marks.high);
  EXPECT_EQ(payload["accepted_by"], kOperator);
  EXPECT_NE(payload["reason"].get<std::string>().find(gap), std::string::npos) << payload;
  const testing::StoreState after = testing::ReadStoreState(data_dir);
  EXPECT_EQ(after.commands_offset, marks.high + 1);
  EXPECT_EQ(after.last_sequence, before.last_sequence + 1 + static_cast<uint64_t>(kept) + 1);
}

TEST(KafkaServeOffsets, StoredOffsetPastTheEndOfAReplacedTopicRefusesThenResumesOnTheOperatorsFlag) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/ledger";
  testing::StoreState before;
  {
    std::unique_ptr<kafka::EmbeddedBroker> first = StartBroker();
    ASSERT_NE(first, nullptr);
    before = ApplySetup(dir.path(), data_dir, first->bootstrap());
    ASSERT_FALSE(HasFailure());
  }
  // A new cluster whose commands topic is shorter than the stored offset.
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string& brokers = broker->bootstrap();
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::OpenAccount("a2", "C2").dump()}).ok());

  ServeProcess refused(dir.path(), 1, ServeArgs(data_dir, brokers));
  EXPECT_EQ(refused.WaitExit(kServeDeadline), 1) << refused.err();
  const std::string gap =
      "the stored offset 3 is past the end of ledger.commands partition 0 (it holds offsets 0..0)"
      ": the topic was replaced";
  EXPECT_NE(refused.err().find(gap), std::string::npos) << refused.err();
  EXPECT_EQ(testing::ReadStoreState(data_dir), before) << "a refused start wrote to the store";
  EXPECT_EQ(testing::TopicWatermarks(brokers, kafka::kEventsTopic).high, 0) << "a refused start published";
  EXPECT_EQ(testing::TopicWatermarks(brokers, kafka::kResultsTopic).high, 0) << "a refused start answered";

  ServeProcess accepted(dir.path(), 2, WithFlag(ServeArgs(data_dir, brokers)));
  // Results: the whole history again (the new cluster is empty), the recorded gap, and the new command.
  ASSERT_TRUE(testing::WaitForHighWatermark(brokers, kafka::kResultsTopic, kSetupCommands + 2, accepted,
                                            kServeDeadline))
      << accepted.err();
  EXPECT_EQ(accepted.Stop(), 0) << accepted.err();
  EXPECT_EQ(StatusOf(testing::ReadTopic(brokers, kafka::kResultsTopic), "a2"), "accepted");
  // The event is published like any other, keyed by no customer.
  int published = 0;
  for (const kafka::Record& record : testing::ReadTopic(brokers, kafka::kEventsTopic)) {
    if (record.sequence != before.last_sequence + 1) continue;
    published += 1;
    EXPECT_EQ(record.key, "");
  }
  EXPECT_EQ(published, 1);

  const std::vector<json> skipped = SkippedEvents(dir.path(), data_dir);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0]["command_id"], "commands-skipped:0:3-0@" + std::to_string(before.last_sequence + 1));
  const json& payload = skipped[0]["payload"];
  EXPECT_EQ(payload["stored_offset"], kSetupCommands);
  EXPECT_EQ(payload["resumed_offset"], 0);
  EXPECT_EQ(payload["low_watermark"], 0);
  EXPECT_EQ(payload["high_watermark"], 1);
  EXPECT_EQ(payload["accepted_by"], kOperator);
  EXPECT_NE(payload["reason"].get<std::string>().find(gap), std::string::npos) << payload;
  const testing::StoreState after = testing::ReadStoreState(data_dir);
  EXPECT_EQ(after.commands_offset, 1);
  EXPECT_EQ(after.last_sequence, before.last_sequence + 2);
}

TEST(KafkaServeOffsets, RecordsDroppedBeforeServeReadThemStopServeInsteadOfBeingSkipped) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/ledger";
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string& brokers = broker->bootstrap();
  ASSERT_TRUE(testing::SendCommands(brokers, SetupCommands()).ok());
  ServeProcess serve(dir.path(), 1, ServeArgs(data_dir, brokers));
  ASSERT_TRUE(
      testing::WaitForHighWatermark(brokers, kafka::kResultsTopic, kSetupCommands, serve, kServeDeadline))
      << serve.err();

  // Serve paused (by its pid) while the partition drops the records it would read next.
  serve.child().Signal(SIGSTOP);
  const bool sent = testing::SendCommands(brokers, Filler()).ok();
  serve.child().Signal(SIGCONT);
  ASSERT_TRUE(sent);
  ASSERT_GT(testing::TopicWatermarks(brokers, kafka::kCommandsTopic).low, kSetupCommands);

  EXPECT_EQ(serve.WaitExit(kServeDeadline), 1) << serve.err();
  EXPECT_NE(
      serve.err().find("serve: stopping, nothing skipped: offset 3 of ledger.commands partition 0 is out of "
                       "range"),
      std::string::npos)
      << serve.err();
  const testing::StoreState after = testing::ReadStoreState(data_dir);
  EXPECT_EQ(after.commands_offset, kSetupCommands) << "the stored offset moved past records never applied";
  EXPECT_EQ(testing::TopicWatermarks(brokers, kafka::kResultsTopic).high, kSetupCommands)
      << "something was answered";
}

// Goal: a restart against a cluster whose topics exist starts at once (one metadata round trip and one clear
// line, no wait for a CreateTopics answer the embedded broker never gives); prints its figures.
TEST(KafkaServeStartup, RestartAgainstExistingTopicsIsQuickAndSaysSo) {
  // The start-up used to wait 3 s for that answer; a quick one takes tens of milliseconds.
  constexpr auto kQuickStart = milliseconds(2'000);
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/ledger";
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string& brokers = broker->bootstrap();
  for (int run = 1; run <= 2; ++run) {
    const auto started = Clock::now();
    ServeProcess serve(dir.path(), run, ServeArgs(data_dir, brokers));
    while (serve.out().find("bootstrap=") == std::string::npos && serve.child().Running() &&
           Clock::now() - started < kServeDeadline) {
      std::this_thread::sleep_for(milliseconds(5));
    }
    const auto bootstrap_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - started).count();
    ASSERT_TRUE(serve.WaitReady(kServeDeadline)) << serve.err();
    const auto ready_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - started).count();
    ASSERT_TRUE(
        testing::SendCommands(brokers, {testing::OpenAccount("a" + std::to_string(run), "C1").dump()}).ok());
    ASSERT_TRUE(testing::WaitForHighWatermark(brokers, kafka::kResultsTopic, run, serve, kServeDeadline))
        << serve.err();
    const auto answered_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - started).count();
    std::cout << "[ figures  ] run " << run << ": bootstrap= after " << bootstrap_ms
              << " ms, consuming after " << ready_ms << " ms, first result after " << answered_ms << " ms\n";
    EXPECT_LT(bootstrap_ms, kQuickStart.count());
    EXPECT_NE(serve.err().find(
                  "topics at " + brokers +
                  ": existing ledger.events, ledger.commands, ledger.results, ledger.legs; created none"),
              std::string::npos)
        << serve.err();
    EXPECT_EQ(serve.err().find("create topics"), std::string::npos) << serve.err();
    EXPECT_EQ(serve.Stop(), 0) << serve.err();
  }
}

// Goal: with the in-process embedded broker (new on every run) a restart after a stored offset starts, and
// the chain records who accepted the gap; the commands answered before stay answered once.
TEST(KafkaServeOffsets, EmbeddedBrokerRestartRecordsTheGapItselfAndStarts) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/ledger";
  for (int run = 0; run < 2; ++run) {
    ServeProcess serve(dir.path(), run, {"--data", data_dir, "--clock", "occurred"});
    ASSERT_TRUE(serve.WaitReady(kServeDeadline)) << serve.err();
    const std::string out = serve.out();
    const size_t at = out.find("bootstrap=");
    ASSERT_NE(at, std::string::npos) << out;
    const std::string brokers = out.substr(at + 10, out.find('\n', at) - at - 10);
    const std::string id = "a" + std::to_string(run);
    ASSERT_TRUE(
        testing::SendCommands(brokers, {testing::OpenAccount(id, "C" + std::to_string(run)).dump()}).ok());
    // The second run first republishes the history to its new broker, then answers its recorded gap.
    std::string status;
    for (const auto deadline = std::chrono::steady_clock::now() + kServeDeadline;
         status.empty() && std::chrono::steady_clock::now() < deadline;) {
      status = StatusOf(testing::ReadTopic(brokers, kafka::kResultsTopic), id);
      if (status.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(status, "accepted") << serve.err();
    EXPECT_EQ(serve.Stop(), 0) << serve.err();
  }
  const std::vector<json> skipped = SkippedEvents(dir.path(), data_dir);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0]["payload"]["accepted_by"].get<std::string>().find("in-process embedded broker"),
            std::string::npos)
      << skipped[0].dump();
  EXPECT_EQ(skipped[0]["payload"]["stored_offset"], 1);
  EXPECT_EQ(skipped[0]["payload"]["resumed_offset"], 0);
}

}  // namespace
}  // namespace ledger
