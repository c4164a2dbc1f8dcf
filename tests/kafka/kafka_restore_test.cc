// Goal: a lost shard comes back. `ledger serve` (signed checkpoints on) applies commands; its data folder is
// deleted; `ledger restore --from-kafka` rebuilds the store from the shard's ledger.events partition,
// verifying chain and checkpoint signatures, with the same state digest and the commands offset the history
// records; serve on the restored folder then applies only new commands and answers a redelivered one as a
// duplicate, nothing twice. A restore that cannot verify, or has nowhere to go, installs nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kafka/kafka.h"
#include "replay/replay.h"
#include "support/serve_harness.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::kServeDeadline;
using testing::ServeProcess;

std::unique_ptr<kafka::EmbeddedBroker> StartBroker() {
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(1);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

// Makes a key pair under `dir`/keys and writes `data_dir`/ledger.toml signing a checkpoint every 4 events
// (`with_public_key`: also naming the public key that replay and restore check with).
void WriteSigningConfig(const std::string& dir, const std::string& data_dir, bool with_public_key) {
  const testing::ProgramRun keygen = testing::RunLedger(dir, {"keygen", "--out", dir + "/keys"});
  ASSERT_EQ(keygen.exit_code, 0) << testing::Describe(keygen);
  std::filesystem::create_directories(data_dir);
  std::string toml = "[audit]\nprivate_key = \"" + dir + "/keys/ledger-signing.key\"\ncheckpoint_every = 4\n";
  if (with_public_key) toml += "public_key = \"" + dir + "/keys/ledger-signing.pub\"\n";
  testing::WriteFile(data_dir + "/ledger.toml", toml);
}

std::vector<std::string> DayOfCommands() {
  std::vector<std::string> commands = {testing::OpenMerchant("m1", "M1", 60).dump(),
                                       testing::OpenAccount("a1", "C1").dump(),
                                       testing::Deposit("d1", "C1:debit", 1'000'000).dump()};
  for (int i = 0; i < 6; ++i)
    commands.push_back(testing::Pay("M1", "o" + std::to_string(i), "C1", 1'000).dump());
  return commands;
}

// Serves `data_dir` until ledger.results holds `results` records, then stops it (exit 0).
void ServeUntil(const std::string& dir, int run, const std::string& data_dir, const std::string& brokers,
                int64_t results) {
  ServeProcess serve(dir, run, {"--data", data_dir, "--brokers", brokers, "--clock", "occurred"});
  EXPECT_TRUE(testing::WaitForHighWatermark(brokers, kafka::kResultsTopic, results, serve, kServeDeadline))
      << serve.err();
  EXPECT_EQ(serve.Stop(), 0) << serve.err();
}

Digest StateDigestOf(const std::string& data_dir) {
  StoreOptions options;
  options.read_only = true;
  options.create_if_missing = false;
  Result<std::unique_ptr<Store>> store = Store::Open(data_dir, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return Digest{};
  Result<Digest> digest = replay::StateDigest(**store);
  EXPECT_TRUE(digest.ok()) << digest.status().ToString();
  return digest.ok() ? *digest : Digest{};
}

TEST(Restore, ALostShardComesBackVerifiedAndServeResumesWithoutAnsweringTwice) {
  testing::TempDir dir;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  const std::string data_dir = dir.path() + "/data";
  WriteSigningConfig(dir.path(), data_dir, true);
  const std::vector<std::string> commands = DayOfCommands();
  ASSERT_TRUE(testing::SendCommands(brokers, commands).ok());
  const int64_t answered = static_cast<int64_t>(commands.size());
  ServeUntil(dir.path(), 0, data_dir, brokers, answered);
  const testing::StoreState before = testing::ReadStoreState(data_dir);
  ASSERT_EQ(before.commands_offset, answered);
  const Digest digest_before = StateDigestOf(data_dir);
  const int64_t balance_before = testing::StoredBalance(data_dir, "C1:debit");
  ASSERT_EQ(balance_before, 1'000'000 - 6 * 1'000);

  // The shard is lost: a new folder with only its configuration.
  const std::string restored = dir.path() + "/restored";
  std::filesystem::create_directories(restored);
  std::filesystem::copy_file(data_dir + "/ledger.toml", restored + "/ledger.toml");
  std::filesystem::remove_all(data_dir);
  const testing::ProgramRun restore = testing::RunLedger(
      dir.path(), {"restore", "--data", restored, "--from-kafka", "--brokers", brokers, "--shard", "0"});
  ASSERT_EQ(restore.exit_code, 0) << testing::Describe(restore);
  EXPECT_NE(restore.out.find("restore VERIFIED: shard 0"), std::string::npos) << restore.out;
  EXPECT_NE(restore.out.find("resumes ledger.commands partition 0 at offset " + std::to_string(answered)),
            std::string::npos)
      << restore.out;
  EXPECT_FALSE(std::filesystem::exists(restored + ".restoring"));
  EXPECT_EQ(testing::ReadStoreState(restored), before);
  EXPECT_EQ(StateDigestOf(restored), digest_before);

  // Serve resumes: a new command is applied, a redelivered old one is a duplicate, nothing else is answered.
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Deposit("d2", "C1:debit", 5'000).dump(),
                                              testing::Deposit("d1", "C1:debit", 1'000'000).dump()})
                  .ok());
  ServeUntil(dir.path(), 1, restored, brokers, answered + 2);
  // The answers to commands (a signed checkpoint's transaction, `checkpoint:N`, has one of its own).
  std::vector<std::pair<std::string, json>> results;
  for (auto& [key, value] : testing::ParsedResults(testing::ReadTopic(brokers, kafka::kResultsTopic))) {
    if (!key.starts_with("checkpoint:")) results.emplace_back(key, std::move(value));
  }
  ASSERT_EQ(results.size(), static_cast<size_t>(answered + 2));
  EXPECT_EQ(results[answered].first, "d2");
  EXPECT_EQ(results[answered].second.value("status", ""), "accepted");
  EXPECT_EQ(results[answered + 1].first, "d1");
  EXPECT_EQ(results[answered + 1].second.value("status", ""), "duplicate");
  EXPECT_EQ(testing::StoredBalance(restored, "C1:debit"), balance_before + 5'000);
  EXPECT_EQ(testing::ReadStoreState(restored).commands_offset, answered + 2);
}

TEST(Restore, InstallsNothingItCouldNotVerifyOrWouldOverwrite) {
  testing::TempDir dir;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  const std::string data_dir = dir.path() + "/data";
  // An empty partition: nothing to restore.
  const std::string empty = dir.path() + "/empty";
  const testing::ProgramRun nothing =
      testing::RunLedger(dir.path(), {"restore", "--data", empty, "--from-kafka", "--brokers", brokers});
  EXPECT_EQ(nothing.exit_code, 5) << testing::Describe(nothing);
  EXPECT_FALSE(std::filesystem::exists(empty + "/CURRENT"));

  WriteSigningConfig(dir.path(), data_dir, false);  // signs checkpoints, names no public key
  const std::vector<std::string> commands = DayOfCommands();
  ASSERT_TRUE(testing::SendCommands(brokers, commands).ok());
  ServeUntil(dir.path(), 0, data_dir, brokers, static_cast<int64_t>(commands.size()));

  // Signed checkpoints and no key to check them: verified otherwise, but not installed.
  const std::string restored = dir.path() + "/restored";
  const testing::ProgramRun unchecked =
      testing::RunLedger(dir.path(), {"restore", "--data", restored, "--from-kafka", "--brokers", brokers});
  EXPECT_EQ(unchecked.exit_code, 4) << testing::Describe(unchecked);
  EXPECT_NE(unchecked.err.find("restore NOT installed"), std::string::npos) << unchecked.err;
  EXPECT_FALSE(std::filesystem::exists(restored + "/CURRENT"));
  EXPECT_FALSE(std::filesystem::exists(restored + ".restoring"));
  // A key that did not sign them: the history does not verify.
  const testing::ProgramRun other_key =
      testing::RunLedger(dir.path(), {"keygen", "--out", dir.path() + "/other"});
  ASSERT_EQ(other_key.exit_code, 0) << testing::Describe(other_key);
  const testing::ProgramRun forged =
      testing::RunLedger(dir.path(), {"restore", "--data", restored, "--from-kafka", "--brokers", brokers,
                                      "--pubkey", dir.path() + "/other/ledger-signing.pub"});
  EXPECT_EQ(forged.exit_code, 5) << testing::Describe(forged);
  EXPECT_FALSE(std::filesystem::exists(restored + "/CURRENT"));
  // A folder that holds a store is never written.
  const testing::ProgramRun over =
      testing::RunLedger(dir.path(), {"restore", "--data", data_dir, "--from-kafka", "--brokers", brokers,
                                      "--pubkey", dir.path() + "/keys/ledger-signing.pub"});
  EXPECT_EQ(over.exit_code, 2) << testing::Describe(over);
  EXPECT_NE(over.err.find("already holds a store"), std::string::npos) << over.err;
  // With the right key it installs.
  const testing::ProgramRun good =
      testing::RunLedger(dir.path(), {"restore", "--data", restored, "--from-kafka", "--brokers", brokers,
                                      "--pubkey", dir.path() + "/keys/ledger-signing.pub", "--json"});
  ASSERT_EQ(good.exit_code, 0) << testing::Describe(good);
  const json report = json::parse(good.out);
  EXPECT_EQ(report.value("outcome", ""), "restored");
  EXPECT_GT(report.value("checkpoints_verified", 0), 0);
  EXPECT_EQ(report.value("commands_offset", -1), static_cast<int64_t>(commands.size()));
  EXPECT_EQ(StateDigestOf(restored), StateDigestOf(data_dir));
}

}  // namespace
}  // namespace ledger
