// Goal: `ledger serve` closes a clearing date by itself (日切). Two `ledger serve` processes (shard 0 and 1
// of 2) on one embedded broker, with the system clock fixed by --now: on 2026-11-25 10:00 payments (two of
// them crossing shards as legs) are decided and the date stays open (`ledger clearing` of both shards exits
// 6); restarted a day later, each shard appends one DayClosed for 2026-11-25 before anything else, the shard
// that receives nothing after the restart too, so the date clears (every payment of it once) and a payment
// decided after the close clears on 2026-11-26.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/time.h"
#include "events/event.h"
#include "kafka/kafka.h"
#include "ledger/routing.h"
#include "support/serve_harness.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::kServeDeadline;
using testing::ServeProcess;

constexpr uint32_t kShards = 2;
// The ledger clock of the first day's serves, and a day later (both before the 23:00 cut-off).
constexpr char kDayOne[] = "2026-11-25T10:00:00+08:00";
constexpr char kDayTwo[] = "2026-11-26T10:00:00+08:00";

// The first id `prefix`N whose routing key (`key_of(id)`) lands on `shard` of this test's shards.
template <typename KeyOf>
std::string IdOnShard(const std::string& prefix, uint32_t shard, KeyOf key_of) {
  return testing::IdOnShard(prefix, shard, kShards, key_of);
}
std::string CustomerOnShard(uint32_t shard) {
  return IdOnShard("C", shard, [](const std::string& id) { return id; });
}
std::string OrderOnShard(const std::string& prefix, uint32_t shard) {
  return IdOnShard(prefix, shard, [](const std::string& id) { return OrderKey("M1", id); });
}

// Shard `shard` of 2 with the system clock fixed at `now`.
std::vector<std::string> ServeArgs(const std::string& data_dir, const std::string& brokers, uint32_t shard,
                                   const std::string& now) {
  return {"--data",    data_dir,
          "--brokers", brokers,
          "--shard",   std::to_string(shard),
          "--shards",  std::to_string(kShards),
          "--clock",   "system",
          "--now",     now};
}

// `ledger submit --brokers --shards 2` of `commands`; every command must be answered `accepted` (the merchant
// once by each shard). Returns the answers by command id.
std::map<std::string, json> SubmitAccepted(const std::string& scratch, const std::string& brokers,
                                           const std::string& name, const std::vector<json>& commands) {
  std::string text;
  for (const json& command : commands) text += command.dump() + "\n";
  const std::string file = scratch + "/" + name + ".jsonl";
  testing::WriteFile(file, text);
  const testing::ProgramRun submit = testing::RunLedger(
      scratch, {"submit", "--brokers", brokers, "--shards", std::to_string(kShards), file});
  EXPECT_EQ(submit.exit_code, 0) << testing::Describe(submit);
  std::map<std::string, json> answers;
  for (const std::string& line : testing::Lines(submit.out)) {
    const json answer = json::parse(line);
    EXPECT_EQ(answer.value("status", ""), "accepted") << line;
    answers[answer.value("command_id", "")] = answer;
  }
  for (const json& command : commands)
    EXPECT_EQ(answers.count(command["command_id"]), 1u) << command["command_id"] << " not answered";
  return answers;
}

// The clearing dates of the DayClosed events on ledger.events partition `shard`, in order.
std::vector<int> DayClosedOnKafka(const std::string& brokers, uint32_t shard) {
  std::vector<int> dates;
  for (const kafka::Record& record : testing::ReadTopic(brokers, kafka::kEventsTopic, shard)) {
    Result<DecodedEvent> decoded = DecodeEventRecord(record.value);
    EXPECT_TRUE(decoded.ok()) << "ledger.events " << shard << " offset " << record.offset << ": "
                              << decoded.status().ToString();
    if (decoded.ok() && decoded->body->payload_type() == fb::Payload::DayClosed)
      dates.push_back(decoded->body->payload_as_DayClosed()->clearing_date());
  }
  return dates;
}

// Waits (bounded) until shard `shard` published a DayClosed of `date` (yyyymmdd) while `serve` runs. True
// when it did.
bool WaitForDayClosed(const std::string& brokers, uint32_t shard, int date, ServeProcess& serve) {
  for (const auto deadline = std::chrono::steady_clock::now() + kServeDeadline;
       std::chrono::steady_clock::now() < deadline;) {
    const std::vector<int> closed = DayClosedOnKafka(brokers, shard);
    if (std::find(closed.begin(), closed.end(), date) != closed.end()) return true;
    if (!serve.child().Running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// The stored events of `events` whose payload is `type`.
std::vector<json> OfType(const std::vector<json>& events, const std::string& type) {
  std::vector<json> found;
  for (const json& event : events)
    if (event.value("payload_type", "") == type) found.push_back(event);
  return found;
}

// Day one: customers A (shard 0) and B (shard 1) each pay an order of their own shard and one of the other's
// (a leg there and back). Returns the orders and their amounts.
std::map<std::string, int64_t> PayDayOne(const std::string& scratch, const std::string& brokers,
                                         const std::string& a, const std::string& b) {
  SubmitAccepted(scratch, brokers, "setup",
                 {testing::OpenMerchant("m1", "M1", 60), testing::OpenAccount("open-a", a),
                  testing::OpenAccount("open-b", b), testing::Deposit("dep-a", a + ":debit", 100'000),
                  testing::Deposit("dep-b", b + ":debit", 100'000)});
  const std::string a_own = OrderOnShard("A", 0), b_own = OrderOnShard("B", 1);
  const std::string a_across = OrderOnShard("X", 1), b_across = OrderOnShard("Y", 0);
  const std::map<std::string, int64_t> day_one = {
      {a_own, 1'100}, {b_own, 2'200}, {a_across, 3'300}, {b_across, 4'400}};
  const std::map<std::string, json> paid = SubmitAccepted(
      scratch, brokers, "day-one",
      {testing::Pay("M1", a_own, a, day_one.at(a_own)), testing::Pay("M1", b_own, b, day_one.at(b_own)),
       testing::Pay("M1", a_across, a, day_one.at(a_across)),
       testing::Pay("M1", b_across, b, day_one.at(b_across))});
  // The payments across shards were decided on the customer's shard.
  EXPECT_EQ(paid.at("M1:" + a_across).value("transaction_id", "").rfind("0-", 0), 0u)
      << paid.at("M1:" + a_across);
  EXPECT_EQ(paid.at("M1:" + b_across).value("transaction_id", "").rfind("1-", 0), 0u)
      << paid.at("M1:" + b_across);
  return day_one;
}

// 2026-11-25's clearing file over both shards: every payment of day one once, the late one not.
void ExpectDayOneCleared(const std::string& dir, const std::map<std::string, int64_t>& day_one,
                         const std::string& late, const uint64_t (&day_one_last)[kShards]) {
  const std::vector<std::string> rows =
      testing::Lines(testing::ReadFile(dir + "/out/clearing-2026-11-25-M1.csv"));
  ASSERT_EQ(rows.size(), day_one.size() + 2);  // header, the payments, summary
  std::map<std::string, int> rows_of_order;
  int64_t total = 0;
  for (size_t i = 1; i + 1 < rows.size(); ++i) {
    ASSERT_EQ(rows[i].rfind("PAYMENT,M1,", 0), 0u) << rows[i];
    const std::string order = rows[i].substr(11, rows[i].find(',', 11) - 11);
    ++rows_of_order[order];
    EXPECT_EQ(day_one.count(order), 1u) << rows[i];
    if (day_one.count(order) != 0) total += day_one.at(order);
  }
  for (const auto& [order, amount] : day_one) EXPECT_EQ(rows_of_order[order], 1) << order;
  EXPECT_EQ(rows_of_order.count(late), 0u);
  EXPECT_EQ(rows.back().rfind("SUMMARY,M1,4,", 0), 0u) << rows.back();
  const json summary = json::parse(testing::ReadFile(dir + "/out/summary.json"));
  EXPECT_EQ(summary["merchants"][0]["order_amount_minor"], total);
  EXPECT_EQ(total, 1'100 + 2'200 + 3'300 + 4'400);
  ASSERT_EQ(summary["shards"].size(), kShards);
  for (const json& shard : summary["shards"]) {
    EXPECT_EQ(shard["closed_through"], "2026-11-25") << shard;
    EXPECT_EQ(shard["date_closed"], true) << shard;
    EXPECT_EQ(shard["through_sequence"], day_one_last[shard.value("shard", 0)] + 1) << shard;
  }
}

TEST(DayClose, TwoServesCloseTheDateAfterTheCutOffAndItClearsAcrossShards) {
  testing::TempDir dir;
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(kShards);
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string brokers = (*broker)->bootstrap();
  const std::string data[kShards] = {dir.path() + "/shard0", dir.path() + "/shard1"};
  testing::ConfigureLedgerKey(dir.path(), {data[0], data[1]});
  auto clearing = [&](const std::string& date, const std::string& out) {
    return testing::RunLedger(dir.path(), {"clearing", "--data", data[0], "--data", data[1], "--date", date,
                                           "--out", dir.path() + "/" + out});
  };

  auto shard0 = std::make_unique<ServeProcess>(dir.path(), 0, ServeArgs(data[0], brokers, 0, kDayOne));
  auto shard1 = std::make_unique<ServeProcess>(dir.path(), 1, ServeArgs(data[1], brokers, 1, kDayOne));
  ASSERT_TRUE(shard0->WaitReady(kServeDeadline)) << shard0->err();
  ASSERT_TRUE(shard1->WaitReady(kServeDeadline)) << shard1->err();
  const std::string a = CustomerOnShard(0), b = CustomerOnShard(1);
  const std::map<std::string, int64_t> day_one = PayDayOne(dir.path(), brokers, a, b);

  // The date has not ended: not cleared while the serves run, nor once they stopped.
  testing::ProgramRun run = clearing("2026-11-25", "out-running");
  EXPECT_EQ(run.exit_code, 6) << testing::Describe(run);
  EXPECT_NE(run.err.find("shard 0 (closed through none), shard 1 (closed through none)"), std::string::npos)
      << run.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/out-running"));
  ASSERT_EQ(shard0->Stop(), 0) << shard0->err();
  ASSERT_EQ(shard1->Stop(), 0) << shard1->err();
  for (uint32_t shard = 0; shard < kShards; ++shard) {
    EXPECT_TRUE(OfType(testing::LedgerEvents(dir.path(), data[shard]), "DayClosed").empty()) << shard;
    EXPECT_TRUE(DayClosedOnKafka(brokers, shard).empty()) << shard;
  }
  const uint64_t day_one_last[kShards] = {testing::ReadStoreState(data[0]).last_sequence,
                                          testing::ReadStoreState(data[1]).last_sequence};

  // A day later, 10:00: 2026-11-25 ended at 23:00 (and 5 minutes of allowed skew). Each shard closes it by
  // itself once it serves; then A pays an order of shard 0, and shard 1 receives nothing at all.
  shard0 = std::make_unique<ServeProcess>(dir.path(), 2, ServeArgs(data[0], brokers, 0, kDayTwo));
  shard1 = std::make_unique<ServeProcess>(dir.path(), 3, ServeArgs(data[1], brokers, 1, kDayTwo));
  ASSERT_TRUE(shard0->WaitReady(kServeDeadline)) << shard0->err();
  ASSERT_TRUE(shard1->WaitReady(kServeDeadline)) << shard1->err();
  ASSERT_TRUE(WaitForDayClosed(brokers, 0, 20261125, *shard0)) << shard0->err();
  ASSERT_TRUE(WaitForDayClosed(brokers, 1, 20261125, *shard1)) << shard1->err();
  const std::string late = OrderOnShard("Z", 0);
  json late_payment = testing::Pay("M1", late, a, 5'500);
  late_payment["occurred_at"] = kDayTwo;
  const std::map<std::string, json> late_paid =
      SubmitAccepted(dir.path(), brokers, "day-two", {late_payment});
  EXPECT_EQ(late_paid.at("M1:" + late).value("transaction_id", "").rfind("0-", 0), 0u);
  ASSERT_EQ(shard0->Stop(), 0) << shard0->err();
  ASSERT_EQ(shard1->Stop(), 0) << shard1->err();

  // Each shard closed 2026-11-25 once, right after day one's history, at the ledger clock of day two; on
  // Kafka as in the store. The idle shard wrote nothing else but the checkpoint of its stop.
  const int64_t day_two_ns = *ParseIso8601(kDayTwo);
  std::vector<json> events[kShards];
  for (uint32_t shard = 0; shard < kShards; ++shard) {
    events[shard] = testing::LedgerEvents(dir.path(), data[shard]);
    const std::vector<json> closed = OfType(events[shard], "DayClosed");
    ASSERT_EQ(closed.size(), 1u) << "shard " << shard;
    EXPECT_EQ(closed[0]["sequence"], day_one_last[shard] + 1) << closed[0];
    EXPECT_EQ(closed[0]["command_id"], "day-closed/" + std::to_string(shard) + "/2026-11-25") << closed[0];
    EXPECT_EQ(closed[0]["payload"]["clearing_date"], 20261125) << closed[0];
    EXPECT_EQ(closed[0]["payload"]["closed_at_ns"], day_two_ns) << closed[0];
    EXPECT_EQ(DayClosedOnKafka(brokers, shard), std::vector<int>{20261125}) << "shard " << shard;
  }
  for (size_t i = day_one_last[1] + 1; i < events[1].size(); ++i)
    EXPECT_EQ(events[1][i].value("payload_type", ""), "CheckpointRecorded") << events[1][i];
  // The late payment was decided after the close: it clears on 2026-11-26.
  std::vector<json> late_captured;
  for (const json& event : OfType(events[0], "PaymentCaptured"))
    if (event["payload"].value("merchant_order_no", "") == late) late_captured.push_back(event);
  ASSERT_EQ(late_captured.size(), 1u);
  EXPECT_GT(late_captured[0]["sequence"], day_one_last[0] + 1);
  EXPECT_EQ(late_captured[0]["payload"]["clearing_date"], 20261126) << late_captured[0];

  run = clearing("2026-11-25", "out");
  ASSERT_EQ(run.exit_code, 0) << testing::Describe(run);
  ExpectDayOneCleared(dir.path(), day_one, late, day_one_last);
  // 2026-11-26, the late payment's date, is open on both shards.
  run = clearing("2026-11-26", "out-next");
  EXPECT_EQ(run.exit_code, 6) << testing::Describe(run);
  EXPECT_NE(run.err.find("shard 0 (closed through 2026-11-25), shard 1 (closed through 2026-11-25)"),
            std::string::npos)
      << run.err;
  // One shard's folder is not the ledger: serve recorded two shards there.
  run = testing::RunLedger(dir.path(), {"clearing", "--data", data[0], "--date", "2026-11-25", "--out",
                                        dir.path() + "/out-alone"});
  EXPECT_EQ(run.exit_code, 2) << testing::Describe(run);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/out-alone"));
}

}  // namespace
}  // namespace ledger
