// Goal: the shard service behind `ledger serve` works as a library. Started in a thread against the embedded
// broker it applies the commands produced to ledger.commands, answers each exactly once on ledger.results,
// and a stop request ends the run with everything committed, published and the commands offset stored; a
// restart resumes from that offset without applying or answering anything twice; a stored offset that no
// longer fits the partition is refused, changing nothing, until an operator accepts the gap.
#include "service/shard_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/signing.h"
#include "kafka/kafka.h"
#include "state/keys.h"
#include "state/records.h"
#include "support/serve_harness.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using testing::kServeDeadline;

constexpr char kOperator[] = "Grace Hopper";

std::unique_ptr<kafka::EmbeddedBroker> StartBroker() {
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(1);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

// A service on `data_dir` reading from `brokers` (empty: its own embedded broker), clock=occurred as the
// commands carry their times.
service::ShardServiceOptions Options(const std::string& data_dir, const std::string& brokers,
                                     const std::atomic<bool>& stop) {
  service::ShardServiceOptions options;
  options.ledger.data_dir = data_dir;
  options.ledger.clock = ClockMode::kOccurred;
  options.ledger.fixed_now_ns = testing::DefaultTimeNs();
  options.ledger.sync = false;
  options.brokers = brokers;
  options.allow_unsigned_commands = true;  // producers' signatures: ProducerSignatures tests below
  options.stop_requested = [&stop] { return stop.load(); };
  return options;
}

// A service connected on `data_dir` (Connect must succeed), run in a thread by Start(); Stop() asks it to
// stop and returns how the run ended.
class TestService {
 public:
  TestService(const std::string& data_dir, const std::string& brokers, const std::string& accept_gap = "",
              const std::function<void(service::ShardServiceOptions&)>& adjust = nullptr) {
    service::ShardServiceOptions options = Options(data_dir, brokers, stop_);
    options.accept_command_gap = accept_gap;
    if (adjust) adjust(options);
    Result<std::unique_ptr<service::ShardService>> shard = service::ShardService::Connect(std::move(options));
    EXPECT_TRUE(shard.ok()) << shard.status().ToString();
    if (shard.ok()) shard_ = std::move(shard).value();
  }
  ~TestService() {
    if (thread_.joinable()) Stop();
  }
  service::ShardService* operator->() { return shard_.get(); }
  bool connected() const { return shard_ != nullptr; }
  void Start() {
    thread_ = std::thread([this] { outcome_ = shard_->Run(); });
  }
  service::ServeOutcome Stop() {
    stop_.store(true);
    thread_.join();
    return outcome_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::unique_ptr<service::ShardService> shard_;
  std::thread thread_;
  service::ServeOutcome outcome_;
};

// Waits (bounded) until `topic` partition 0 holds `high` records in all.
bool WaitForRecords(const std::string& brokers, const std::string& topic, int64_t high) {
  for (const auto deadline = Clock::now() + kServeDeadline; Clock::now() < deadline;) {
    if (testing::TopicWatermarks(brokers, topic).high >= high) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Each result's status by command id; a command answered twice is a test failure.
std::map<std::string, std::string> ResultsById(const std::string& brokers) {
  std::map<std::string, std::string> by_id;
  for (const auto& [key, value] : testing::ParsedResults(testing::ReadTopic(brokers, kafka::kResultsTopic))) {
    EXPECT_EQ(by_id.count(key), 0u) << key << " answered twice";
    by_id[key] = value.value("status", "");
  }
  return by_id;
}

std::vector<std::string> SetupCommands() {
  return {testing::OpenMerchant("m1", "M1", 60).dump(), testing::OpenAccount("a1", "C1").dump(),
          testing::Deposit("d1", "C1:debit", 1'000'000).dump()};
}

TEST(ShardService, AppliesCommandsAnswersEachOnceAndStopsWithEverythingCommitted) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  std::vector<std::string> commands = SetupCommands();
  commands.push_back(testing::Pay("M1", "o1", "C1", 10'000).dump());
  commands.push_back("not a command");
  ASSERT_TRUE(testing::SendCommands(brokers, commands).ok());

  TestService running(data_dir, brokers);
  ASSERT_TRUE(running.connected());
  EXPECT_FALSE(running->embedded_broker());
  EXPECT_EQ(running->bootstrap(), brokers);
  running.Start();
  ASSERT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, 5));
  // The same deposit again: answered `duplicate`, applied once.
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Deposit("d1", "C1:debit", 1'000'000).dump()}).ok());
  ASSERT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, 6));
  const service::ServeOutcome outcome = running.Stop();
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.step, service::ServeStep::kDrain);

  const std::vector<kafka::Record> results = testing::ReadTopic(brokers, kafka::kResultsTopic);
  ASSERT_EQ(results.size(), 6u);
  EXPECT_EQ(results.back().key, "d1");
  EXPECT_EQ(json::parse(results.back().value).value("status", ""), "duplicate");
  const std::map<std::string, std::string> first = [&] {
    std::map<std::string, std::string> by_id;
    for (size_t i = 0; i + 1 < results.size(); ++i)
      by_id[results[i].key] = json::parse(results[i].value)["status"];
    return by_id;
  }();
  EXPECT_EQ(first.size(), 5u);
  EXPECT_EQ(first.at("m1"), "accepted");
  EXPECT_EQ(first.at("d1"), "accepted");
  EXPECT_EQ(first.at("kafka:0:4"), "rejected");  // the record that is not a command, named by its offset
  const testing::StoreState state = testing::ReadStoreState(data_dir);
  EXPECT_EQ(state.commands_offset, 6);
  // Everything committed was published before the run ended.
  EXPECT_EQ(testing::TopicWatermarks(brokers, kafka::kEventsTopic).high,
            static_cast<int64_t>(state.last_sequence));
  EXPECT_EQ(testing::StoredBalance(data_dir, "C1:debit"), 1'000'000 - 10'000);
}

TEST(ShardService, RestartResumesFromTheStoredOffsetWithoutApplyingAgain) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  ASSERT_TRUE(testing::SendCommands(brokers, SetupCommands()).ok());
  {
    TestService running(data_dir, brokers);
    ASSERT_TRUE(running.connected());
    running.Start();
    ASSERT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, 3));
    ASSERT_TRUE(running.Stop().status.ok());
  }
  const testing::StoreState before = testing::ReadStoreState(data_dir);
  EXPECT_EQ(before.commands_offset, 3);

  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Deposit("d2", "C1:debit", 5'000).dump()}).ok());
  {
    TestService running(data_dir, brokers);
    ASSERT_TRUE(running.connected());
    running.Start();
    ASSERT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, 4));
    const service::ServeOutcome outcome = running.Stop();
    EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  }
  const testing::StoreState after = testing::ReadStoreState(data_dir);
  EXPECT_EQ(after.commands_offset, 4);
  EXPECT_GT(after.last_sequence, before.last_sequence);
  // The setup commands were neither applied nor answered again: one result each, one deposit each.
  const std::map<std::string, std::string> results = ResultsById(brokers);
  EXPECT_EQ(results, (std::map<std::string, std::string>{
                         {"m1", "accepted"}, {"a1", "accepted"}, {"d1", "accepted"}, {"d2", "accepted"}}));
  EXPECT_EQ(testing::StoredBalance(data_dir, "C1:debit"), 1'000'000 + 5'000);
}

TEST(ShardService, RefusesACommandsGapUntilAnOperatorAcceptsIt) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  {
    std::unique_ptr<kafka::EmbeddedBroker> first = StartBroker();
    ASSERT_NE(first, nullptr);
    ASSERT_TRUE(testing::SendCommands(first->bootstrap(), SetupCommands()).ok());
    TestService running(data_dir, first->bootstrap());
    ASSERT_TRUE(running.connected());
    running.Start();
    ASSERT_TRUE(WaitForRecords(first->bootstrap(), kafka::kResultsTopic, 3));
    ASSERT_TRUE(running.Stop().status.ok());
  }
  const testing::StoreState before = testing::ReadStoreState(data_dir);
  // A new cluster: its commands partition is empty, so the stored offset 3 is past its end.
  std::unique_ptr<kafka::EmbeddedBroker> replaced = StartBroker();
  ASSERT_NE(replaced, nullptr);
  const std::string brokers = replaced->bootstrap();

  service::ServeOutcome outcome;
  {
    TestService refused(data_dir, brokers);
    ASSERT_TRUE(refused.connected());
    outcome = refused->Run();
  }
  EXPECT_EQ(outcome.step, service::ServeStep::kOpenCommands);
  EXPECT_EQ(outcome.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(outcome.status.message().find("refusing to start: the stored offset 3 is past the end"),
            std::string::npos)
      << outcome.status.message();
  EXPECT_EQ(testing::ReadStoreState(data_dir), before);
  EXPECT_EQ(testing::TopicWatermarks(brokers, kafka::kEventsTopic).high, 0);

  {
    TestService running(data_dir, brokers, kOperator);
    ASSERT_TRUE(running.connected());
    running.Start();
    ASSERT_TRUE(WaitForRecords(brokers, kafka::kEventsTopic, static_cast<int64_t>(before.last_sequence) + 1));
    EXPECT_TRUE(running.Stop().status.ok());
  }
  const testing::StoreState accepted = testing::ReadStoreState(data_dir);
  EXPECT_EQ(accepted.commands_offset, 0);
  EXPECT_EQ(accepted.last_sequence, before.last_sequence + 1);  // the CommandsSkipped event
  const std::vector<kafka::Record> events = testing::ReadTopic(brokers, kafka::kEventsTopic);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().sequence, accepted.last_sequence);
}

TEST(ShardService, StartsItsOwnEmbeddedBrokerWhenNoneIsConfigured) {
  testing::TempDir dir;
  TestService running(dir.path() + "/data", "");
  ASSERT_TRUE(running.connected());
  EXPECT_TRUE(running->embedded_broker());
  const std::string brokers = running->bootstrap();
  EXPECT_FALSE(brokers.empty());
  ASSERT_TRUE(testing::SendCommands(brokers, SetupCommands()).ok());
  running.Start();
  ASSERT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, 3));
  EXPECT_EQ(ResultsById(brokers).size(), 3u);
  EXPECT_TRUE(running.Stop().status.ok());
}

TEST(ShardService, RejectsAShardOutsideTheShards) {
  std::atomic<bool> stop{false};
  service::ShardServiceOptions options = Options("/nonexistent", "", stop);
  options.shard = 2;
  options.shards = 2;
  Result<std::unique_ptr<service::ShardService>> shard = service::ShardService::Connect(std::move(options));
  EXPECT_EQ(shard.status().code(), StatusCode::kInvalidArgument);
}

// Goal: acknowledging after the local commit only (events not yet in Kafka) is a choice an operator makes
// explicitly, by flag or by ledger.toml; without it serve does not start, and nothing is opened.
TEST(ShardService, RefusesAckLocalUnlessExplicitlyAllowed) {
  std::atomic<bool> stop{false};
  for (const bool from_config : {false, true}) {
    testing::TempDir dir;
    service::ShardServiceOptions options = Options(dir.path() + "/data", "", stop);
    if (from_config) {
      options.ledger.config.kafka_ack = "local";
    } else {
      options.ack = "local";
    }
    Result<std::unique_ptr<service::ShardService>> refused = service::ShardService::Connect(options);
    ASSERT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << from_config;
    EXPECT_EQ(refused.status().message(),
              "ack local answers before Kafka holds the events (a machine lost with its disk loses "
              "acknowledged events): serve takes it only with --allow-ack-local");
    EXPECT_NE(access((dir.path() + "/data").c_str(), F_OK), 0) << "nothing may be opened";

    options.allow_ack_local = true;
    Result<std::unique_ptr<service::ShardService>> allowed =
        service::ShardService::Connect(std::move(options));
    EXPECT_TRUE(allowed.ok()) << allowed.status().ToString();
  }
}

// Goal: with --ack local the answers still come while no new command arrives (they follow their events once
// Kafka acknowledged them, which the publish after each group does not wait for), not only at the next batch
// or at the stop.
TEST(ShardService, AckLocalAnswersEveryCommandWhileIdle) {
  testing::TempDir dir;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  ASSERT_TRUE(testing::SendCommands(brokers, SetupCommands()).ok());
  TestService running(dir.path() + "/data", brokers, "", [](service::ShardServiceOptions& options) {
    options.ack = "local";
    options.allow_ack_local = true;
  });
  ASSERT_TRUE(running.connected());
  running.Start();
  EXPECT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, 3)) << "answers waited for more commands";
  EXPECT_TRUE(running.Stop().status.ok());
  EXPECT_EQ(ResultsById(brokers).size(), 3u);
}

// Goal: a stop while Kafka is down, with a batch staged on top of the group still being published, ends the
// run cleanly (the staged batch is neither committed, checkpointed nor answered; its offset is not stored),
// and the next run, with Kafka back, answers every command exactly once.
TEST(ShardService, StopWhileKafkaIsDownLeavesTheStagedBatchToTheNextRun) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  ASSERT_TRUE(GenerateKeyPair(dir.path()).ok());
  Result<std::unique_ptr<Signer>> signer = Signer::FromPemFile(dir.path() + "/ledger-signing.key");
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  const std::shared_ptr<const Signer> shared_signer = std::move(signer).value();
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  std::vector<std::string> commands = SetupCommands();
  for (int i = 0; i < 400; ++i)
    commands.push_back(testing::Pay("M1", "o" + std::to_string(i), "C1", 100).dump());
  ASSERT_TRUE(testing::SendCommands(brokers, commands).ok());
  auto small_signed_groups = [&](service::ShardServiceOptions& options) {
    options.ledger.config.group_commands_max = 20;
    options.ledger.signer = shared_signer;
  };
  {
    TestService running(data_dir, brokers, "", small_signed_groups);
    ASSERT_TRUE(running.connected());
    broker->SetBrokerRttMs(1, 100);  // slow enough that the outage finds the stream under way
    running.Start();
    ASSERT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, 40));
    broker->SetBrokerDown(1, true);
    std::this_thread::sleep_for(std::chrono::seconds(1));  // a group publishing, the next batch staged
    const service::ServeOutcome outcome = running.Stop();
    EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  }
  const testing::StoreState stopped = testing::ReadStoreState(data_dir);
  ASSERT_TRUE(stopped.commands_offset.has_value());
  EXPECT_LT(*stopped.commands_offset, static_cast<int64_t>(commands.size())) << "the outage came too late";
  broker->SetBrokerDown(1, false);
  broker->SetBrokerRttMs(1, 0);
  TestService again(data_dir, brokers, "", small_signed_groups);
  ASSERT_TRUE(again.connected());
  again.Start();
  EXPECT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, static_cast<int64_t>(commands.size())));
  EXPECT_TRUE(again.Stop().status.ok());
  size_t answered = 0;  // fails on a second answer; checkpoints have results of their own
  for (const auto& [id, status] : ResultsById(brokers)) answered += id.rfind("checkpoint:", 0) != 0;
  EXPECT_EQ(answered, commands.size());
  EXPECT_EQ(testing::StoredBalance(data_dir, "C1:debit"), 1'000'000 - 400 * 100);
}

TEST(ShardService, OperatorNamesAreOneShortLine) {
  EXPECT_EQ(service::CheckOperatorName(kOperator), "");
  EXPECT_NE(service::CheckOperatorName(""), "");
  EXPECT_NE(service::CheckOperatorName(std::string(201, 'a')), "");
  EXPECT_NE(service::CheckOperatorName("a\nb"), "");
}

}  // namespace
}  // namespace ledger

namespace ledger {
namespace {

// A producer's key pair made in `dir` (`name`.key, `name`.pub) and its public key's PEM.
struct ProducerKeyPair {
  std::unique_ptr<Signer> signer;
  std::string public_key_pem;
};

ProducerKeyPair MakeProducerKey(const std::string& dir, const std::string& name) {
  EXPECT_TRUE(GenerateKeyPair(dir, name).ok());
  ProducerKeyPair pair;
  Result<std::unique_ptr<Signer>> signer = Signer::FromPemFile(dir + "/" + name + ".key");
  EXPECT_TRUE(signer.ok()) << signer.status().ToString();
  if (signer.ok()) pair.signer = std::move(signer).value();
  pair.public_key_pem = testing::ReadFile(dir + "/" + name + ".pub");
  return pair;
}

json AddProducerKey(const std::string& producer, const std::string& role, const ProducerKeyPair& key) {
  return {{"type", "add_producer_key"},
          {"command_id", "producer:" + producer},
          {"producer", producer},
          {"role", role},
          {"public_key_pem", key.public_key_pem}};
}

// Records `lines` in the stopped shard's store at `data_dir`, as `ledger producer-key` does; each must be
// accepted.
void RecordInStore(const std::string& data_dir, const std::vector<json>& lines) {
  std::atomic<bool> never{false};
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(Options(data_dir, "", never).ledger);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  for (const json& line : lines) {
    Result<ParsedCommand> parsed = ParseCommandJson(line.dump());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    const CommandResult result = (*ledger)->Stage(*parsed);
    ASSERT_EQ(result.kind, CommandResult::Kind::kAccepted) << result.ToJson();
  }
  ASSERT_TRUE((*ledger)->CommitGroup().ok());
}

// Each result by its key (the command id, or kafka:0:OFFSET for a refused record).
std::map<std::string, json> ResultsByKey(const std::string& brokers) {
  std::map<std::string, json> by_key;
  for (const auto& [key, value] : testing::ParsedResults(testing::ReadTopic(brokers, kafka::kResultsTopic)))
    by_key[key] = value;
  return by_key;
}

TEST(ProducerSignatures, OnlyCommandsARegisteredUnrevokedProducerSignedForItsRoleAreApplied) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  const ProducerKeyPair operator_key = MakeProducerKey(dir.path() + "/keys", "operator");
  const ProducerKeyPair gateway_key = MakeProducerKey(dir.path() + "/keys", "gateway");
  const ProducerKeyPair stranger_key = MakeProducerKey(dir.path() + "/keys", "stranger");
  const ProducerKeyPair revoked_key = MakeProducerKey(dir.path() + "/keys", "revoked");
  const std::string revoked_id = ToHex(revoked_key.signer->public_key_id());
  RecordInStore(data_dir, {AddProducerKey("ops", "operator", operator_key),
                           AddProducerKey("gw1", "gateway", gateway_key),
                           AddProducerKey("old", "operator", revoked_key),
                           {{"type", "revoke_producer_key"},
                            {"command_id", "revoke:old"},
                            {"producer", "old"},
                            {"key_id", revoked_id}}});
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  const std::string deposit = testing::Deposit("d1", "C1:debit", 500'000).dump();
  const std::string open_account = testing::OpenAccount("a1", "C1").dump();
  // Offsets 0-1: the operator opens; 2-6: the same deposit refused five ways; 7: the operator's genuine one;
  // 8: the gateway's payment.
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::OpenMerchant("m1", "M1", 60).dump(), open_account}, 0,
                                    operator_key.signer.get())
                  .ok());
  ASSERT_TRUE(testing::SendCommands(brokers, {deposit}).ok());
  ASSERT_TRUE(testing::SendCommands(brokers, {deposit}, 0, gateway_key.signer.get()).ok());
  ASSERT_TRUE(testing::SendCommands(brokers, {deposit}, 0, stranger_key.signer.get()).ok());
  ASSERT_TRUE(testing::SendCommands(brokers, {deposit}, 0, revoked_key.signer.get()).ok());
  {  // the operator's real signature, of another command
    Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(brokers);
    ASSERT_TRUE(sender.ok());
    const auto lifted =
        kafka::CommandSignatureHeaders(*operator_key.signer, ParseCommandJson(open_account)->fingerprint)
            .value();
    ASSERT_TRUE((*sender)->Send(kafka::kCommandsTopic, 0, "d1", deposit, lifted).ok());
    ASSERT_TRUE((*sender)->Flush(10'000).ok());
  }
  ASSERT_TRUE(testing::SendCommands(brokers, {deposit}, 0, operator_key.signer.get()).ok());
  const json pay = testing::Pay("M1", "o1", "C1", 10'000);
  ASSERT_TRUE(testing::SendCommands(brokers, {pay.dump()}, 0, gateway_key.signer.get()).ok());

  TestService running(data_dir, brokers, "",
                      [](service::ShardServiceOptions& options) { options.allow_unsigned_commands = false; });
  ASSERT_TRUE(running.connected());
  running.Start();
  // The four registrations' results (published at start), then one per record.
  ASSERT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, 4 + 9));
  const service::ServeOutcome outcome = running.Stop();
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();

  std::map<std::string, json> results = ResultsByKey(brokers);
  ASSERT_EQ(results.size(), 4u + 9u);
  EXPECT_EQ(results["m1"]["status"], "accepted");
  EXPECT_EQ(results["a1"]["status"], "accepted");
  const std::map<std::string, std::string> refusals = {
      {"kafka:0:2", "not signed by a producer"},
      {"kafka:0:3", "producer gw1 (gateway) may not send deposit"},
      {"kafka:0:4", "which the ledger does not know"},
      {"kafka:0:5", "of old, revoked"},
      {"kafka:0:6", "the signature does not verify under producer key"}};
  for (const auto& [key, why] : refusals) {
    EXPECT_EQ(results[key]["status"], "rejected") << key;
    EXPECT_EQ(results[key]["reason"], reason::kUnauthenticatedCommand) << key;
    EXPECT_NE(results[key].value("detail", "").find(why), std::string::npos) << results[key].dump();
  }
  // The refusals did not claim the command id: the genuine deposit is applied, once.
  EXPECT_EQ(results["d1"]["status"], "accepted") << results["d1"].dump();
  EXPECT_EQ(results[pay["command_id"]]["status"], "accepted") << results[pay["command_id"]].dump();
  EXPECT_EQ(testing::StoredBalance(data_dir, "C1:debit"), 500'000 - 10'000);
}

// Signatures are checked on several threads before a batch is staged; registration and revocation still take
// effect at their place in the batch: a key registered in it signs what follows, a key revoked in it signs
// nothing after, however its signatures were found ahead.
TEST(ProducerSignatures, ABatchCheckedOnSeveralThreadsHonoursRegistrationsAndRevocationsInItsOrder) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  const ProducerKeyPair operator_key = MakeProducerKey(dir.path() + "/keys", "operator");
  const ProducerKeyPair later_key = MakeProducerKey(dir.path() + "/keys", "later");
  RecordInStore(data_dir, {AddProducerKey("ops", "operator", operator_key)});
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  constexpr int kEach = 20;
  const auto deposits = [](const std::string& prefix) {
    std::vector<std::string> lines;
    for (int i = 0; i < kEach; ++i)
      lines.push_back(testing::Deposit(prefix + std::to_string(i), "C1:debit", 100).dump());
    return lines;
  };
  // Offset 0: the account; 1-20: signed by a key not registered yet; 21: it is registered; 22-41: signed by
  // it; 42: a bad signature under the operator's key; 43: the operator's key revoked; 44-63: signed by it.
  ASSERT_TRUE(
      testing::SendCommands(brokers, {testing::OpenAccount("a1", "C1").dump()}, 0, operator_key.signer.get())
          .ok());
  ASSERT_TRUE(testing::SendCommands(brokers, deposits("early-"), 0, later_key.signer.get()).ok());
  ASSERT_TRUE(testing::SendCommands(brokers, {AddProducerKey("later", "operator", later_key).dump()}, 0,
                                    operator_key.signer.get())
                  .ok());
  ASSERT_TRUE(testing::SendCommands(brokers, deposits("registered-"), 0, later_key.signer.get()).ok());
  {
    Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(brokers);
    ASSERT_TRUE(sender.ok());
    const std::string forged = testing::Deposit("forged", "C1:debit", 1'000'000).dump();
    auto headers =
        kafka::CommandSignatureHeaders(*operator_key.signer, ParseCommandJson(forged)->fingerprint).value();
    for (auto& [name, value] : headers)
      if (name == "ledger.signature") value[0] = value[0] == '0' ? '1' : '0';
    ASSERT_TRUE((*sender)->Send(kafka::kCommandsTopic, 0, "forged", forged, headers).ok());
    ASSERT_TRUE((*sender)->Flush(10'000).ok());
  }
  const std::string operator_id = ToHex(operator_key.signer->public_key_id());
  const json revoke = {{"type", "revoke_producer_key"},
                       {"command_id", "revoke:ops"},
                       {"producer", "ops"},
                       {"key_id", operator_id}};
  ASSERT_TRUE(testing::SendCommands(brokers, {revoke.dump()}, 0, operator_key.signer.get()).ok());
  ASSERT_TRUE(testing::SendCommands(brokers, deposits("revoked-"), 0, operator_key.signer.get()).ok());

  TestService running(data_dir, brokers, "", [](service::ShardServiceOptions& options) {
    options.allow_unsigned_commands = false;
    options.check_threads = 4;
  });
  ASSERT_TRUE(running.connected());
  running.Start();
  ASSERT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, 1 + 64));
  const service::ServeOutcome outcome = running.Stop();
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();

  std::map<std::string, json> results = ResultsByKey(brokers);
  EXPECT_EQ(results["a1"]["status"], "accepted");
  EXPECT_EQ(results["revoke:ops"]["status"], "accepted");
  for (int i = 0; i < kEach; ++i) {
    const json& early = results["kafka:0:" + std::to_string(1 + i)];
    EXPECT_NE(early.value("detail", "").find("which the ledger does not know"), std::string::npos) << early;
    EXPECT_EQ(results["registered-" + std::to_string(i)]["status"], "accepted");
    const json& late = results["kafka:0:" + std::to_string(44 + i)];
    EXPECT_NE(late.value("detail", "").find("of ops, revoked"), std::string::npos) << late;
  }
  EXPECT_NE(results["kafka:0:42"].value("detail", "").find("does not verify"), std::string::npos)
      << results["kafka:0:42"];
  EXPECT_EQ(testing::StoredBalance(data_dir, "C1:debit"), kEach * 100);
}

TEST(ProducerSignatures, AServiceThatAllowsUnsignedCommandsStillChecksEveryRecordWithProducerHeaders) {
  testing::TempDir dir;
  const std::string data_dir = dir.path() + "/data";
  const ProducerKeyPair stranger_key = MakeProducerKey(dir.path() + "/keys", "stranger");
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::OpenAccount("a1", "C1").dump()}).ok());
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Deposit("d1", "C1:debit", 500'000).dump()}, 0,
                                    stranger_key.signer.get())
                  .ok());
  {  // producer headers too long to be a key id or a signature, and an empty one: still headers, checked
    Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(brokers);
    ASSERT_TRUE(sender.ok());
    const std::string d2 = testing::Deposit("d2", "C1:debit", 500'000).dump();
    ASSERT_TRUE((*sender)
                    ->Send(kafka::kCommandsTopic, 0, "d2", d2,
                           {{kafka::kProducerKeyHeader, std::string(300, 'a')},
                            {kafka::kProducerSignatureHeader, std::string(300, '0')}})
                    .ok());
    ASSERT_TRUE(
        (*sender)->Send(kafka::kCommandsTopic, 0, "d2", d2, {{kafka::kProducerSignatureHeader, ""}}).ok());
    ASSERT_TRUE((*sender)->Flush(10'000).ok());
  }
  TestService running(data_dir, brokers);  // allow_unsigned_commands
  ASSERT_TRUE(running.connected());
  running.Start();
  ASSERT_TRUE(WaitForRecords(brokers, kafka::kResultsTopic, 4));
  ASSERT_TRUE(running.Stop().status.ok());
  std::map<std::string, json> results = ResultsByKey(brokers);
  EXPECT_EQ(results["a1"]["status"], "accepted");
  for (const char* refused : {"kafka:0:1", "kafka:0:2", "kafka:0:3"})
    EXPECT_EQ(results[refused]["reason"], reason::kUnauthenticatedCommand) << results[refused].dump();
  EXPECT_EQ(results.count("d1"), 0u);
  EXPECT_EQ(results.count("d2"), 0u);
  EXPECT_EQ(testing::StoredBalance(data_dir, "C1:debit"), 0);
}

}  // namespace
}  // namespace ledger
