// Goal: two shards are one ledger: each decides what it owns, and a payment whose order and customer live on
// different shards travels between them as legs. Two `ledger serve` processes (shard 0 and 1 of 2) on
// one embedded broker; `ledger submit --brokers --shards 2` routes each command to its owner (reference data
// to both): the merchant is known on both shards, each customer exists and holds money on its own shard only,
// and a command produced straight to the wrong partition is refused WRONG_SHARD on that shard with nothing
// moved on either.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/signing.h"
#include "events/event.h"
#include "kafka/kafka.h"
#include "ledger/ledger.h"
#include "ledger/routing.h"
#include "support/serve_harness.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::kServeDeadline;
using testing::ServeProcess;

constexpr uint32_t kShards = 2;

// The first id `prefix`N whose routing key (`key_of(id)`) lands on `shard` of this test's shards.
template <typename KeyOf>
std::string IdOnShard(const std::string& prefix, uint32_t shard, KeyOf key_of) {
  return testing::IdOnShard(prefix, shard, kShards, key_of);
}
std::string CustomerOnShard(uint32_t shard) {
  return IdOnShard("C", shard, [](const std::string& id) { return id; });
}
std::string OrderOnShard(uint32_t shard) {
  return IdOnShard("O", shard, [](const std::string& id) { return OrderKey("M1", id); });
}

std::vector<std::string> ServeArgs(const std::string& data_dir, const std::string& brokers, uint32_t shard) {
  return {"--data",    data_dir,
          "--brokers", brokers,
          "--shard",   std::to_string(shard),
          "--shards",  std::to_string(kShards),
          "--clock",   "occurred"};
}

// Every result on ledger.results partition `shard`: command id -> parsed result (a command answered twice on
// one shard is a test failure).
std::map<std::string, json> ResultsOf(const std::string& brokers, uint32_t shard) {
  std::map<std::string, json> by_id;
  for (const kafka::Record& record : testing::ReadTopic(brokers, kafka::kResultsTopic, shard)) {
    EXPECT_EQ(by_id.count(record.key), 0u) << record.key << " answered twice on shard " << shard;
    by_id[record.key] = json::parse(record.value);
  }
  return by_id;
}

// The results on partition `shard` once every id of `ids` is answered there (bounded wait).
std::map<std::string, json> AnswersOnceThere(const std::string& brokers, uint32_t shard,
                                             const std::vector<std::string>& ids) {
  std::map<std::string, json> results;
  for (const auto deadline = std::chrono::steady_clock::now() + kServeDeadline;
       std::chrono::steady_clock::now() < deadline;) {
    results = ResultsOf(brokers, shard);
    if (std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return results.count(id) != 0; }))
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return results;
}

// Operators see both shards from Kafka alone: heads, results published, no command and no leg waiting, no
// clearing date closed yet, and the serve process that produced each shard's events.
void ExpectClusterStatusFromKafka(const std::string& scratch, const std::string& brokers,
                                  const std::string (&data)[kShards], const pid_t (&serves)[kShards]) {
  const testing::ProgramRun status = testing::RunLedger(
      scratch, {"cluster-status", "--brokers", brokers, "--shards", std::to_string(kShards), "--json"});
  ASSERT_EQ(status.exit_code, 0) << testing::Describe(status);
  const std::vector<std::string> shard_lines = testing::Lines(status.out);
  ASSERT_EQ(shard_lines.size(), kShards) << status.out;
  for (uint32_t shard = 0; shard < kShards; ++shard) {
    const json line = json::parse(shard_lines[shard]);
    EXPECT_EQ(line.value("shard", -1), static_cast<int>(shard));
    EXPECT_EQ(line.value("head_sequence", uint64_t{0}), testing::ReadStoreState(data[shard]).last_sequence);
    // Shard 0's last transaction answered a leg: it has no result of its own.
    EXPECT_LE(line.value("results_through", uint64_t{0}), line.value("head_sequence", uint64_t{0}));
    EXPECT_EQ(line["commands_lag"], 0) << line.dump();
    EXPECT_EQ(line["legs_in_flight"], 0) << line.dump();  // every leg sent was applied
    EXPECT_EQ(line["closed_through"], "none") << line.dump();
    const std::string owner = line.value("owner", "");
    EXPECT_TRUE(owner.ends_with(":" + std::to_string(serves[shard]))) << line.dump();
    // A serve with the ledger's key seals the end of every pass, so an idle shard's head is sealed.
    if (line["key"].is_null())
      EXPECT_TRUE(line["last_sealed"].is_null()) << line.dump();
    else
      EXPECT_EQ(line["last_sealed"], line["head_sequence"]) << line.dump();
  }
}

TEST(Shards, TwoShardsEachApplyWhatTheyOwnAndRefuseTheRest) {
  testing::TempDir dir;
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(kShards);
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string brokers = (*broker)->bootstrap();
  const std::string data[kShards] = {dir.path() + "/shard0", dir.path() + "/shard1"};
  testing::ConfigureLedgerKey(dir.path(), {data[0], data[1]});
  ServeProcess shard0(dir.path(), 0, ServeArgs(data[0], brokers, 0));
  ServeProcess shard1(dir.path(), 1, ServeArgs(data[1], brokers, 1));
  const pid_t serve_pids[kShards] = {shard0.child().pid(), shard1.child().pid()};
  ASSERT_TRUE(shard0.WaitReady(kServeDeadline)) << shard0.err();
  ASSERT_TRUE(shard1.WaitReady(kServeDeadline)) << shard1.err();

  // Customer A and the order A pays live on shard 0; B and B's order on shard 1.
  const std::string a = CustomerOnShard(0), b = CustomerOnShard(1);
  const std::string order_a = OrderOnShard(0), order_b = OrderOnShard(1);
  std::string commands;
  for (const json& command :
       {testing::OpenMerchant("m1", "M1", 60), testing::OpenAccount("open-a", a),
        testing::OpenAccount("open-b", b), testing::Deposit("dep-a", a + ":debit", 100'000),
        testing::Deposit("dep-b", b + ":debit", 200'000), testing::Pay("M1", order_a, a, 10'000),
        testing::Pay("M1", order_b, b, 20'000)}) {
    commands += command.dump() + "\n";
  }
  const std::string file = dir.path() + "/commands.jsonl";
  testing::WriteFile(file, commands);
  const testing::ProgramRun submit = testing::RunLedger(
      dir.path(), {"submit", "--brokers", brokers, "--shards", std::to_string(kShards), file});
  ASSERT_EQ(submit.exit_code, 0) << testing::Describe(submit);
  // One line per answer: the merchant's from each shard, one for each other command.
  const std::vector<std::string> lines = testing::Lines(submit.out);
  ASSERT_EQ(lines.size(), 8u) << submit.out;
  for (const std::string& line : lines) EXPECT_EQ(json::parse(line).value("status", ""), "accepted") << line;

  // A deposit for A produced straight to shard 1's partition: refused there, recorded, nothing moved. And a
  // payment by A for an order of shard 1, correctly routed: shard 1 claims the order and sends the payment to
  // A's shard as a leg; shard 0 decides it (A's money and limits are there) and answers with a leg; shard 1
  // answers the command with shard 0's decision. Then the merchant reverses it: shard 1 sends the reversal to
  // shard 0, which holds the payment.
  const std::string order_across =
      IdOnShard("X", 1, [](const std::string& id) { return OrderKey("M1", id); });
  ASSERT_TRUE(
      testing::SendCommands(brokers, {testing::Deposit("stray", a + ":debit", 5'000).dump()}, 1).ok());
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Pay("M1", order_across, a, 1'000).dump()}, 1).ok());
  std::map<std::string, json> results[kShards];
  results[1] = AnswersOnceThere(brokers, 1, {"stray", "M1:" + order_across});
  ASSERT_EQ(results[1].count("M1:" + order_across), 1u);
  const json& across = results[1]["M1:" + order_across];
  EXPECT_EQ(across.value("status", ""), "accepted") << across.dump();
  EXPECT_EQ(across.value("transaction_id", "").rfind("0-", 0), 0u) << "decided on shard 0: " << across.dump();
  const std::string order_reversed =
      IdOnShard("Y", 1, [](const std::string& id) { return OrderKey("M1", id); });
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Pay("M1", order_reversed, a, 2'000).dump()}, 1).ok());
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Reverse("M1", order_reversed).dump()}, 1).ok());
  results[1] = AnswersOnceThere(brokers, 1, {"M1:" + order_reversed, "M1:" + order_reversed + ":rev"});
  EXPECT_EQ(results[1]["M1:" + order_reversed].value("status", ""), "accepted");
  EXPECT_EQ(results[1]["M1:" + order_reversed + ":rev"].value("status", ""), "accepted")
      << results[1]["M1:" + order_reversed + ":rev"].dump();
  ASSERT_EQ(results[1].count("stray"), 1u);
  EXPECT_EQ(results[1]["stray"].value("reason", ""), "WRONG_SHARD");
  EXPECT_EQ(results[1]["stray"].value("detail", ""),
            "customer " + a + " belongs to shard 0 of 2; this is shard 1");
  ASSERT_EQ(shard0.Stop(), 0) << shard0.err();
  ASSERT_EQ(shard1.Stop(), 0) << shard1.err();

  // Each shard answered what it owns, and the merchant on both.
  results[0] = ResultsOf(brokers, 0);
  results[1] = ResultsOf(brokers, 1);
  for (const char* id : {"open-a", "dep-a"}) EXPECT_EQ(results[0].count(id), 1u) << id;
  for (const char* id : {"open-b", "dep-b"}) EXPECT_EQ(results[1].count(id), 1u) << id;
  EXPECT_EQ(results[0].count("m1") + results[1].count("m1"), 2u);
  EXPECT_EQ(results[0].count("M1:" + order_a), 1u);
  EXPECT_EQ(results[1].count("M1:" + order_b), 1u);
  // Money sits with its owner only; the merchant's balance is the sum over shards.
  EXPECT_EQ(testing::StoredBalance(data[0], a + ":debit"), 100'000 - 10'000 - 1'000);
  EXPECT_EQ(testing::StoredBalance(data[1], a + ":debit"), 0);
  EXPECT_EQ(testing::StoredBalance(data[1], b + ":debit"), 200'000 - 20'000);
  EXPECT_EQ(testing::StoredBalance(data[0], b + ":debit"), 0);
  // 0.6% fee on each payment; the reversed one moved nothing in the end.
  EXPECT_EQ(testing::StoredBalance(data[0], "merchant:M1") + testing::StoredBalance(data[1], "merchant:M1"),
            (10'000 - 60) + (20'000 - 120) + (1'000 - 6));

  // A shard restarted with another shard count would give customers two owners: refused, nothing written.
  const testing::StoreState stopped = testing::ReadStoreState(data[0]);
  ServeProcess recounted(dir.path(), 2,
                         {"--data", data[0], "--brokers", brokers, "--shard", "0", "--clock", "occurred"});
  EXPECT_EQ(recounted.WaitExit(kServeDeadline), 2) << recounted.err();
  EXPECT_NE(recounted.err().find("a ledger of 2 shards, not 1"), std::string::npos) << recounted.err();
  EXPECT_EQ(testing::ReadStoreState(data[0]), stopped);

  ExpectClusterStatusFromKafka(dir.path(), brokers, data, serve_pids);
}

// Sends each command to the partition(s) of the shard(s) that own it (as `submit --brokers` routes).
void SendRouted(const std::string& brokers, const std::vector<json>& commands) {
  for (const json& command : commands) {
    for (const uint32_t shard : ShardsFor(testing::Parse(command.dump()), kShards)) {
      ASSERT_TRUE(testing::SendCommands(brokers, {command.dump()}, shard).ok());
    }
  }
}

// The customer's shard is SIGKILLed while payments of the other shard's orders travel to it and back, and
// restarted: every command is answered exactly once, on its order's shard, and the money is as if nothing
// happened (each customer has enough for every payment, so the outcomes do not depend on timing).
TEST(Shards, ACustomerShardKilledMidStreamAnswersEveryCommandOnceLegsIncluded) {
  testing::TempDir dir;
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(kShards);
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string brokers = (*broker)->bootstrap();
  const std::string data[kShards] = {dir.path() + "/shard0", dir.path() + "/shard1"};
  testing::ConfigureLedgerKey(dir.path(), {data[0], data[1]});
  auto shard0 = std::make_unique<ServeProcess>(dir.path(), 0, ServeArgs(data[0], brokers, 0));
  auto shard1 = std::make_unique<ServeProcess>(dir.path(), 1, ServeArgs(data[1], brokers, 1));
  ASSERT_TRUE(shard0->WaitReady(kServeDeadline)) << shard0->err();
  ASSERT_TRUE(shard1->WaitReady(kServeDeadline)) << shard1->err();
  const std::string customer = CustomerOnShard(1);
  SendRouted(brokers, {testing::OpenMerchant("m1", "M1", 0), testing::OpenAccount("open", customer),
                       testing::Deposit("dep", customer + ":debit", 10'000'000)});
  // The deposit is acknowledged before anyone pays: the legs reach shard 1 on another topic than its
  // commands, so an unanswered deposit may still be behind them (nothing orders the two).
  ASSERT_EQ(AnswersOnceThere(brokers, 1, {"open", "dep"}).count("dep"), 1u);
  ASSERT_EQ(AnswersOnceThere(brokers, 0, {"m1"}).count("m1"), 1u);
  // Orders of shard 0 paid by shard 1's customer: each travels 0 -> 1 -> 0; every fifth is then reversed.
  std::vector<json> payments;
  std::vector<std::string> ids;
  int64_t kept = 0;
  for (int i = 0; static_cast<int>(payments.size()) < 2 * testing::Scaled(60); ++i) {
    const std::string order = "K" + std::to_string(i);
    if (ShardOfKey(OrderKey("M1", order), kShards) != 0) continue;
    payments.push_back(testing::Pay("M1", order, customer, 1'000 + i));
    ids.push_back(payments.back()["command_id"]);
    if (payments.size() % 5 == 0) {
      payments.push_back(testing::Reverse("M1", order));
      ids.push_back(payments.back()["command_id"]);
    } else {
      kept += 1'000 + i;
    }
  }
  const size_t half = payments.size() / 2;
  SendRouted(brokers, std::vector<json>(payments.begin(), payments.begin() + half));
  // Killed once the first payments are answered: later ones are on their way, in one direction or the other.
  const std::vector<std::string> first_ids(ids.begin(), ids.begin() + 3);
  AnswersOnceThere(brokers, 0, first_ids);
  shard1->child().Kill();
  std::cout << "[ figures  ] answered when shard 1 was killed: " << ResultsOf(brokers, 0).size() - 1 << " of "
            << ids.size() << "\n";
  SendRouted(brokers, std::vector<json>(payments.begin() + half, payments.end()));
  shard1 = std::make_unique<ServeProcess>(dir.path(), 2, ServeArgs(data[1], brokers, 1));
  ASSERT_TRUE(shard1->WaitReady(kServeDeadline)) << shard1->err();
  const std::map<std::string, json> answers = AnswersOnceThere(brokers, 0, ids);
  for (const std::string& id : ids) {
    ASSERT_EQ(answers.count(id), 1u) << id << " not answered";
    EXPECT_EQ(answers.at(id).value("status", ""), "accepted") << answers.at(id).dump();
  }
  ASSERT_EQ(shard0->Stop(), 0) << shard0->err();
  ASSERT_EQ(shard1->Stop(), 0) << shard1->err();
  // Exactly once over both partitions (ResultsOf fails on a second answer within one).
  const std::map<std::string, json> on_customer_shard = ResultsOf(brokers, 1);
  for (const std::string& id : ids) EXPECT_EQ(on_customer_shard.count(id), 0u) << id;
  std::map<std::string, json> on_order_shard = ResultsOf(brokers, 0);
  // The signed checkpoints serve writes at each stop have results of their own.
  std::erase_if(on_order_shard, [](const auto& entry) { return entry.first.starts_with("checkpoint:"); });
  EXPECT_EQ(on_order_shard.size(), ids.size() + 1);  // and the merchant
  EXPECT_EQ(testing::StoredBalance(data[1], customer + ":debit"), 10'000'000 - kept);
  EXPECT_EQ(testing::StoredBalance(data[1], "merchant:M1") + testing::StoredBalance(data[0], "merchant:M1"),
            kept);
}

// A transfer leg as shard 0 would send it to shard 1: 1,000,000.00 from `payer` to `payee`'s debit card,
// forged by the test (number 1: the next leg shard 1 expects from shard 0).
std::string ForgedTransferLeg(const std::string& payer, const std::string& payee) {
  fb::TransferSentT sent;
  sent.destination = 1;
  sent.number = 1;
  sent.from_customer = payer;
  sent.from_account = payer + ":debit";
  sent.to_customer = payee;
  sent.to_account = payee + ":debit";
  sent.amount_minor = 100'000'000;
  sent.medium = fb::Medium::u_shield;
  const ParsedCommand command = testing::Parse(
      testing::Transfer("forged", payer + ":debit", payee + ":debit", sent.amount_minor).dump());
  fb::EventBodyT body;
  body.shard = 0;
  body.sequence = 99;
  body.transaction_id = "0-99";
  body.command_id = command.command_id;
  body.command_fingerprint.assign(command.fingerprint.begin(), command.fingerprint.end());
  body.payload.Set(std::move(sent));
  Digest hash;
  return EncodeEventRecord(body, Digest{}, &hash);
}

// Legs carry the sending shard's signature with the ledger's key: a well-formed leg produced to ledger.legs
// unsigned, or signed with another key, is passed by the receiving shard (logged) and moves nothing, and the
// real leg of that number, signed, still applies.
TEST(Shards, ALegNotSignedWithTheLedgersKeyIsPassedAndMovesNothing) {
  testing::TempDir dir;
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(kShards);
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string brokers = (*broker)->bootstrap();
  const std::string data[kShards] = {dir.path() + "/shard0", dir.path() + "/shard1"};
  testing::ConfigureLedgerKey(dir.path(), {data[0], data[1]});
  ServeProcess shard0(dir.path(), 0, ServeArgs(data[0], brokers, 0));
  ServeProcess shard1(dir.path(), 1, ServeArgs(data[1], brokers, 1));
  ASSERT_TRUE(shard0.WaitReady(kServeDeadline)) << shard0.err();
  ASSERT_TRUE(shard1.WaitReady(kServeDeadline)) << shard1.err();
  const std::string a = CustomerOnShard(0), b = CustomerOnShard(1);
  SendRouted(brokers, {testing::OpenAccount("open-a", a), testing::OpenAccount("open-b", b),
                       testing::Deposit("dep-a", a + ":debit", 100'000)});
  ASSERT_EQ(AnswersOnceThere(brokers, 1, {"open-b"}).count("open-b"), 1u);

  const testing::ProgramRun other_key =
      testing::RunLedger(dir.path(), {"keygen", "--out", dir.path() + "/other"});
  ASSERT_EQ(other_key.exit_code, 0) << testing::Describe(other_key);
  Result<std::unique_ptr<Signer>> impostor = Signer::FromPemFile(dir.path() + "/other/ledger-signing.key");
  ASSERT_TRUE(impostor.ok()) << impostor.status().ToString();
  const std::string forged = ForgedTransferLeg(a, b);
  Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(brokers);
  ASSERT_TRUE(sender.ok()) << sender.status().ToString();
  ASSERT_TRUE((*sender)->Send(kafka::kLegsTopic, 1, "0", forged).ok());
  ASSERT_TRUE((*sender)
                  ->Send(kafka::kLegsTopic, 1, "0", forged,
                         {{kafka::kLegTagHeader, LegAuthenticator::For(**impostor).value()->Tag(forged)}})
                  .ok());
  ASSERT_TRUE((*sender)->Flush(10'000).ok());

  SendRouted(brokers, {testing::Transfer("real", a + ":debit", b + ":debit", 500)});
  const std::map<std::string, json> answered = AnswersOnceThere(brokers, 0, {"real"});
  ASSERT_EQ(answered.count("real"), 1u);
  EXPECT_EQ(answered.at("real").value("status", ""), "accepted") << answered.at("real").dump();
  ASSERT_EQ(shard0.Stop(), 0) << shard0.err();
  ASSERT_EQ(shard1.Stop(), 0) << shard1.err();
  EXPECT_NE(shard1.err().find("not tagged with the ledger's key (passed)"), std::string::npos)
      << shard1.err();
  EXPECT_NE(
      shard1.err().find("its tag does not check with the ledger's key (passed; this shard checks with key"),
      std::string::npos)
      << shard1.err();
  EXPECT_EQ(testing::StoredBalance(data[1], b + ":debit"), 500);
  EXPECT_EQ(testing::StoredBalance(data[0], a + ":debit"), 100'000 - 500);
}

// Shards configured with different key pairs pass each other's genuine legs. cluster-status shows the keys
// and fails; once the receiver has the ledger's key pair, serve --reread-legs reads its legs partition again
// and applies the leg it passed: the transfer completes, once.
TEST(Shards, AShardWithAnotherKeyIsShownAndRereadingLegsAppliesTheLegItPassed) {
  testing::TempDir dir;
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(kShards);
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string brokers = (*broker)->bootstrap();
  const std::string data[kShards] = {dir.path() + "/shard0", dir.path() + "/shard1"};
  auto configure = [&](uint32_t shard, const std::string& pair) {
    std::filesystem::create_directories(data[shard]);
    testing::WriteFile(data[shard] + "/ledger.toml", "[audit]\nprivate_key = \"" + dir.path() + "/" + pair +
                                                         "/ledger-signing.key\"\npublic_key = \"" +
                                                         dir.path() + "/" + pair + "/ledger-signing.pub\"\n");
  };
  for (const char* pair : {"k0", "k1"}) {
    const testing::ProgramRun keygen =
        testing::RunLedger(dir.path(), {"keygen", "--out", dir.path() + "/" + pair});
    ASSERT_EQ(keygen.exit_code, 0) << testing::Describe(keygen);
  }
  configure(0, "k0");
  configure(1, "k1");  // a pair of its own: each shard checks only that its two keys are one pair
  ServeProcess shard0(dir.path(), 0, ServeArgs(data[0], brokers, 0));
  ServeProcess shard1(dir.path(), 1, ServeArgs(data[1], brokers, 1));
  ASSERT_TRUE(shard0.WaitReady(kServeDeadline)) << shard0.err();
  ASSERT_TRUE(shard1.WaitReady(kServeDeadline)) << shard1.err();
  const std::string a = CustomerOnShard(0), b = CustomerOnShard(1);
  SendRouted(brokers, {testing::OpenAccount("open-a", a), testing::OpenAccount("open-b", b),
                       testing::Deposit("dep-a", a + ":debit", 100'000)});
  ASSERT_EQ(AnswersOnceThere(brokers, 1, {"open-b"}).count("open-b"), 1u);
  ASSERT_EQ(AnswersOnceThere(brokers, 0, {"dep-a"}).count("dep-a"), 1u);
  SendRouted(brokers, {testing::Transfer("t1", a + ":debit", b + ":debit", 700)});
  const auto deadline = std::chrono::steady_clock::now() + kServeDeadline;
  while (shard1.err().find("tagged with key") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(shard1.err().find("every shard must have the ledger's one key pair"), std::string::npos)
      << shard1.err();

  const testing::ProgramRun status = testing::RunLedger(
      dir.path(), {"cluster-status", "--brokers", brokers, "--shards", std::to_string(kShards), "--json"});
  EXPECT_EQ(status.exit_code, 1) << testing::Describe(status);
  EXPECT_NE(status.err.find("the shards tag legs with different keys"), std::string::npos) << status.err;
  const std::vector<std::string> lines = testing::Lines(status.out);
  ASSERT_EQ(lines.size(), kShards) << status.out;
  const std::string key0 = json::parse(lines[0]).value("key", ""),
                    key1 = json::parse(lines[1]).value("key", "");
  EXPECT_EQ(key0.size(), 64u);
  EXPECT_EQ(key1.size(), 64u);
  EXPECT_NE(key0, key1);
  for (const std::string& line : lines)  // each seals with its own key (cluster-status cannot tell which)
    EXPECT_EQ(json::parse(line)["last_sealed"], json::parse(line)["head_sequence"]) << line;

  ASSERT_EQ(shard1.Stop(), 0) << shard1.err();
  configure(1, "k0");
  std::vector<std::string> args = ServeArgs(data[1], brokers, 1);
  args.push_back("--reread-legs");
  ServeProcess mended(dir.path(), 2, args);
  const std::map<std::string, json> answered = AnswersOnceThere(brokers, 0, {"t1"});
  ASSERT_EQ(answered.count("t1"), 1u) << mended.err();
  EXPECT_EQ(answered.at("t1").value("status", ""), "accepted") << answered.at("t1").dump();
  ASSERT_EQ(shard0.Stop(), 0) << shard0.err();
  ASSERT_EQ(mended.Stop(), 0) << mended.err();
  EXPECT_NE(mended.err().find("from its first record"), std::string::npos) << mended.err();
  EXPECT_EQ(testing::StoredBalance(data[1], b + ":debit"), 700);
  EXPECT_EQ(testing::StoredBalance(data[0], a + ":debit"), 100'000 - 700);
}

// Several shards without the ledger's key pair would apply any leg: serve refuses to start, unless the
// operator explicitly allows unsigned legs.
TEST(Shards, SeveralShardsWithoutTheLedgersKeyAreRefusedUnlessUnsignedLegsAreAllowed) {
  testing::TempDir dir;
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(kShards);
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string brokers = (*broker)->bootstrap();
  ServeProcess refused(dir.path(), 0, ServeArgs(dir.path() + "/shard0", brokers, 0));
  EXPECT_EQ(refused.WaitExit(kServeDeadline), 1) << refused.err();
  EXPECT_NE(refused.err().find("--allow-unsigned-legs"), std::string::npos) << refused.err();
  std::vector<std::string> args = ServeArgs(dir.path() + "/shard0", brokers, 0);
  args.push_back("--allow-unsigned-legs");
  ServeProcess allowed(dir.path(), 1, args);
  ASSERT_TRUE(allowed.WaitReady(kServeDeadline)) << allowed.err();
  EXPECT_EQ(allowed.Stop(), 0) << allowed.err();
  // Keys that are configured are used, flag or not: a private key and a public key of two pairs are refused.
  for (const char* pair : {"k0", "k1"}) {
    const testing::ProgramRun keygen =
        testing::RunLedger(dir.path(), {"keygen", "--out", dir.path() + "/" + pair});
    ASSERT_EQ(keygen.exit_code, 0) << testing::Describe(keygen);
  }
  testing::WriteFile(dir.path() + "/shard0/ledger.toml", "[audit]\nprivate_key = \"" + dir.path() +
                                                             "/k0/ledger-signing.key\"\npublic_key = \"" +
                                                             dir.path() + "/k1/ledger-signing.pub\"\n");
  ServeProcess mismatched(dir.path(), 2, args);
  EXPECT_EQ(mismatched.WaitExit(kServeDeadline), 1) << mismatched.err();
  EXPECT_NE(mismatched.err().find("not one key pair"), std::string::npos) << mismatched.err();
}

// A stopped shard's committed legs that serve had not published yet go out with the next command that
// publishes its history (here `ledger close-day`): signed with the ledger's key like serve's, so the receiver
// applies them.
TEST(Shards, LegsPublishedByAnOperatorCommandAreSigned) {
  testing::TempDir dir;
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(kShards);
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string brokers = (*broker)->bootstrap();
  const std::string data = dir.path() + "/shard0";
  testing::ConfigureLedgerKey(dir.path(), {data});
  const std::string a = CustomerOnShard(0), b = CustomerOnShard(1);
  {
    LedgerOptions options;
    options.data_dir = data;
    options.config.shards = kShards;
    options.clock = ClockMode::kOccurred;
    options.fixed_now_ns = testing::DefaultTimeNs();
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options);
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    for (const json& command :
         {testing::OpenAccount("open-a", a), testing::Deposit("dep-a", a + ":debit", 1'000),
          testing::Transfer("t1", a + ":debit", b + ":debit", 700)}) {
      (*ledger)->Stage(testing::Parse(command.dump()));
    }
    ASSERT_TRUE((*ledger)->CommitGroup().ok());
  }
  testing::WriteFile(data + "/ledger.toml",
                     testing::ReadFile(data + "/ledger.toml") + "[kafka]\nbrokers = \"" + brokers + "\"\n");
  const testing::ProgramRun closed =
      testing::RunLedger(dir.path(), {"close-day", "--data", data, "--date", "2020-01-01"});
  ASSERT_EQ(closed.exit_code, 0) << testing::Describe(closed);
  const std::vector<kafka::Record> legs = testing::ReadTopic(brokers, kafka::kLegsTopic, 1);
  ASSERT_EQ(legs.size(), 1u);
  Result<std::unique_ptr<Signer>> key = Signer::FromPemFile(dir.path() + "/keys/ledger-signing.key");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_TRUE(LegAuthenticator::For(**key).value()->Verify(legs[0].value, legs[0].leg_tag));
}

}  // namespace
}  // namespace ledger
