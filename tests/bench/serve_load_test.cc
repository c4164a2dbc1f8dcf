// Goal: the measured phase through the shard service (`ledger bench --through serve`) answers every measured
// command exactly once on ledger.results, makes the same decisions as the in-process path for the same seed
// (the path must not change an outcome), and fails with a message naming the command when a command is
// answered twice.
#include "bench/serve_load.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "bench/load.h"
#include "bench/load_workload.h"
#include "kafka/kafka.h"
#include "support/serve_harness.h"
#include "support/test_support.h"

namespace ledger {
namespace {

bench::LoadShape Shape(int64_t commands) {
  bench::LoadShape shape;
  shape.commands = commands;
  shape.customers = 300;
  shape.merchants = 20;
  shape.seed = 7;
  return shape;
}

LedgerOptions OptionsIn(const std::string& data_dir) {
  LedgerOptions options;
  options.data_dir = data_dir;
  options.clock = ClockMode::kOccurred;  // the workload's own timeline, as `ledger bench` runs it
  options.sync = false;
  return options;
}

bench::Pacing ClosedLoop(const LedgerOptions& options) {
  bench::Pacing pacing;
  pacing.outstanding = 2 * options.config.group_commands_max;
  return pacing;
}

// The measured phase through the ledger in-process (no Kafka); its tally.
bench::CommandTally RunThroughLedger(const std::string& data_dir, const bench::LoadShape& shape) {
  const LedgerOptions options = OptionsIn(data_dir);
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options);
  EXPECT_TRUE(ledger.ok()) << ledger.status().ToString();
  if (!ledger.ok()) return {};
  const Result<bench::SetupReport> setup = bench::RunSetup(**ledger, shape, nullptr);
  EXPECT_TRUE(setup.ok()) << setup.status().ToString();
  const Result<bench::MeasuredReport> measured =
      bench::RunMeasured(**ledger, shape, ClosedLoop(options), nullptr);
  EXPECT_TRUE(measured.ok()) << measured.status().ToString();
  return measured.ok() ? measured->tally : bench::CommandTally{};
}

// Set-up through the ledger, published to `brokers`, then the ledger closed (as `ledger bench` does before
// the service opens the store). The number of set-up commands.
int64_t SetUpAndPublish(const std::string& data_dir, const std::string& brokers,
                        const bench::LoadShape& shape) {
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(OptionsIn(data_dir));
  EXPECT_TRUE(ledger.ok()) << ledger.status().ToString();
  if (!ledger.ok()) return -1;
  Result<std::unique_ptr<kafka::Publisher>> publisher =
      kafka::Publisher::Create((*ledger)->store(), kafka::ProducerSettings{brokers, 0, kafka::kAckTimeoutMs});
  EXPECT_TRUE(publisher.ok()) << publisher.status().ToString();
  if (!publisher.ok()) return -1;
  const Result<bench::SetupReport> setup = bench::RunSetup(**ledger, shape, [&](uint64_t through) {
    return (*publisher)->PublishThrough(through, kafka::kPublishDeadlineMs);
  });
  EXPECT_TRUE(setup.ok()) << setup.status().ToString();
  return setup.ok() ? setup->commands : -1;
}

std::unique_ptr<kafka::EmbeddedBroker> StartBroker() {
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(1);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

TEST(ServeLoad, AnswersEveryCommandOnceWithTheDecisionsOfTheLedgerPath) {
  testing::TempDir dir;
  const bench::LoadShape shape = Shape(2'000);
  const bench::CommandTally direct = RunThroughLedger(dir.path() + "/direct", shape);
  EXPECT_EQ(direct.accepted + direct.rejected, shape.commands);
  EXPECT_GT(direct.rejected, 0);  // the mix rejects some: equal totals then say something about decisions

  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string data_dir = dir.path() + "/served";
  const int64_t setup_commands = SetUpAndPublish(data_dir, broker->bootstrap(), shape);
  ASSERT_GT(setup_commands, 0);
  const LedgerOptions options = OptionsIn(data_dir);
  const Result<bench::ServeMeasuredReport> served = bench::RunMeasuredThroughServe(
      bench::ServeThrough{options, broker->bootstrap()}, shape, ClosedLoop(options));
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  EXPECT_EQ(served->results, shape.commands);
  EXPECT_EQ(served->measured.latency.count(), shape.commands);
  EXPECT_EQ(served->measured.tally.accepted, direct.accepted);
  EXPECT_EQ(served->measured.tally.rejected, direct.rejected);
  EXPECT_EQ(served->measured.tally.duplicates, 0);
  EXPECT_GT(served->measured.events, static_cast<uint64_t>(shape.commands));

  // Read back on its own: one result per measured command id, and nothing else after the set-up's and the
  // warm-up's.
  std::map<std::string, int> results_per_id;
  const std::vector<kafka::Record> results = testing::ReadTopic(broker->bootstrap(), kafka::kResultsTopic);
  for (const kafka::Record& record : results) ++results_per_id[record.key];
  EXPECT_EQ(static_cast<int64_t>(results.size()), setup_commands + 1 + shape.commands);
  EXPECT_EQ(results_per_id[bench::LoadWorkload::kWarmUpCommandId], 1);
  const bench::LoadWorkload workload(shape.commands, shape.customers, shape.merchants, shape.seed);
  for (int64_t i = 0; i < shape.commands; ++i) {
    ASSERT_EQ(results_per_id[workload.MeasuredCommandId(i)], 1) << workload.MeasuredCommandId(i);
  }
}

TEST(ServeLoad, FailsNamingTheCommandWhenOneIsAnsweredTwice) {
  testing::TempDir dir;
  const bench::LoadShape shape = Shape(50);
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string data_dir = dir.path() + "/served";
  ASSERT_GT(SetUpAndPublish(data_dir, broker->bootstrap(), shape), 0);
  // The first measured command is already waiting on ledger.commands: the service answers it once for that
  // record and once more (`duplicate`) for the bench's own.
  const bench::LoadWorkload workload(shape.commands, shape.customers, shape.merchants, shape.seed);
  ASSERT_TRUE(testing::SendCommands(broker->bootstrap(), {workload.Measured(0)}).ok());
  const LedgerOptions options = OptionsIn(data_dir);
  const Result<bench::ServeMeasuredReport> served = bench::RunMeasuredThroughServe(
      bench::ServeThrough{options, broker->bootstrap()}, shape, ClosedLoop(options));
  ASSERT_FALSE(served.ok());
  EXPECT_EQ(served.status().code(), StatusCode::kInternal) << served.status().ToString();
  EXPECT_NE(served.status().message().find("'" + workload.MeasuredCommandId(0) + "'"), std::string::npos)
      << served.status().ToString();
}

}  // namespace
}  // namespace ledger
