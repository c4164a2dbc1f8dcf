// Goal: a lost shard comes back. `ledger serve` (signed checkpoints on) applies commands; its data folder is
// deleted; `ledger restore --from-kafka` rebuilds the store from the shard's ledger.events partition,
// verifying chain and checkpoint signatures, with the same state digest and the commands offset the history
// records; serve on the restored folder then applies only new commands and answers a redelivered one as a
// duplicate, nothing twice. A restore that cannot verify, or has nowhere to go, installs nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
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

// Loses `data_dir` and restores it into DIR/restored (with its ledger.toml) from backup `backup_id`, the
// newest in `backups`, and the partition's later events: the same store state and digest as before the loss.
// Returns the restored folder ("" when the restore failed).
std::string LoseAndRestoreFromBackup(const std::string& dir, const std::string& data_dir,
                                     const std::string& backups, const std::string& brokers,
                                     uint32_t backup_id) {
  const testing::StoreState before = testing::ReadStoreState(data_dir);
  const Digest digest_before = StateDigestOf(data_dir);
  const std::string restored = dir + "/restored";
  std::filesystem::create_directories(restored);
  std::filesystem::copy_file(data_dir + "/ledger.toml", restored + "/ledger.toml");
  std::filesystem::remove_all(data_dir);
  const testing::ProgramRun restore = testing::RunLedger(
      dir, {"restore", "--data", restored, "--from-backup", backups, "--from-kafka", "--brokers", brokers});
  EXPECT_EQ(restore.exit_code, 0) << testing::Describe(restore);
  if (restore.exit_code != 0) return "";
  EXPECT_NE(restore.out.find("from backup " + std::to_string(backup_id)), std::string::npos) << restore.out;
  EXPECT_EQ(testing::ReadStoreState(restored), before);
  EXPECT_EQ(StateDigestOf(restored), digest_before);
  return restored;
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
  EXPECT_FALSE(std::filesystem::exists(restored + "/.restoring"));
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
  EXPECT_FALSE(std::filesystem::exists(restored + "/.restoring"));
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

  // A folder holding a file of a store (a stray write-ahead log would be replayed into the restored one).
  const std::string stray = dir.path() + "/stray";
  std::filesystem::create_directories(stray);
  testing::WriteFile(stray + "/000099.log", "");
  const testing::ProgramRun into_stray =
      testing::RunLedger(dir.path(), {"restore", "--data", stray, "--from-kafka", "--brokers", brokers,
                                      "--pubkey", dir.path() + "/keys/ledger-signing.pub"});
  EXPECT_EQ(into_stray.exit_code, 2) << testing::Describe(into_stray);
  EXPECT_FALSE(std::filesystem::exists(stray + "/CURRENT"));
}

// Events after the last signed checkpoint chain, but nothing proves who wrote them: restore installs them
// only when an operator accepts them by name.
TEST(Restore, EventsAfterTheLastSignedCheckpointNeedAnOperatorsAcceptance) {
  testing::TempDir dir;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  const std::string data_dir = dir.path() + "/data";
  WriteSigningConfig(dir.path(), data_dir, true);
  const std::vector<std::string> commands = DayOfCommands();
  ASSERT_TRUE(testing::SendCommands(brokers, commands).ok());
  ServeUntil(dir.path(), 0, data_dir, brokers, static_cast<int64_t>(commands.size()));
  // The same shard served on without its signing key: its last events are not covered by a checkpoint.
  testing::WriteFile(data_dir + "/ledger.toml", "");
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Deposit("d9", "C1:debit", 7).dump()}).ok());
  ServeUntil(dir.path(), 1, data_dir, brokers, static_cast<int64_t>(commands.size()) + 2);
  const std::vector<std::string> args = {"restore",
                                         "--data",
                                         dir.path() + "/restored",
                                         "--from-kafka",
                                         "--brokers",
                                         brokers,
                                         "--pubkey",
                                         dir.path() + "/keys/ledger-signing.pub"};
  const testing::ProgramRun refused = testing::RunLedger(dir.path(), args);
  EXPECT_EQ(refused.exit_code, 4) << testing::Describe(refused);
  EXPECT_NE(refused.err.find("follow the last signed checkpoint"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/restored/CURRENT"));
  std::vector<std::string> accepted_args = args;
  accepted_args.insert(accepted_args.end(), {"--accept-unsigned-tail", "Grace Hopper"});
  const testing::ProgramRun accepted = testing::RunLedger(dir.path(), accepted_args);
  ASSERT_EQ(accepted.exit_code, 0) << testing::Describe(accepted);
  EXPECT_NE(accepted.err.find("Grace Hopper accepted 1 events"), std::string::npos) << accepted.err;
  EXPECT_EQ(testing::StoredBalance(dir.path() + "/restored", "C1:debit"), 1'000'000 - 6 * 1'000 + 7);
}

// The restore drill from a backup: a backup of the stopped shard, more commands served, the shard lost; the
// backup plus the partition's events after it give back the same state, verified, and serve resumes.
TEST(Restore, ABackupAndThePartitionsLaterEventsGiveBackTheShard) {
  testing::TempDir dir;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  const std::string data_dir = dir.path() + "/data";
  WriteSigningConfig(dir.path(), data_dir, true);
  std::vector<std::string> commands = DayOfCommands();
  ASSERT_TRUE(testing::SendCommands(brokers, commands).ok());
  ServeUntil(dir.path(), 0, data_dir, brokers, static_cast<int64_t>(commands.size()));
  const std::string backups = dir.path() + "/backups";
  const testing::ProgramRun backup =
      testing::RunLedger(dir.path(), {"backup", "--data", data_dir, "--to", backups, "--json"});
  ASSERT_EQ(backup.exit_code, 0) << testing::Describe(backup);
  EXPECT_EQ(json::parse(backup.out).value("id", 0), 1);
  // After the backup: three more commands (and serve's closing checkpoint).
  const std::vector<std::string> later = {testing::Deposit("d2", "C1:debit", 5'000).dump(),
                                          testing::Pay("M1", "o9", "C1", 2'000).dump(),
                                          testing::AwardPoints("p1", "C1", 300).dump()};
  ASSERT_TRUE(testing::SendCommands(brokers, later).ok());
  const int64_t answered = static_cast<int64_t>(commands.size() + later.size());
  ServeUntil(dir.path(), 1, data_dir, brokers, answered + 1);  // + the first run's closing checkpoint
  const std::string restored = LoseAndRestoreFromBackup(dir.path(), data_dir, backups, brokers, 1);
  ASSERT_FALSE(restored.empty());
  // An auditor's replay of the restored store verifies and equals it.
  const testing::ProgramRun audit = testing::RunLedger(dir.path(), {"replay", "--data", restored});
  EXPECT_EQ(audit.exit_code, 0) << testing::Describe(audit);
  // Serve resumes on it: one new command, nothing answered twice.
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Deposit("d3", "C1:debit", 1).dump()}).ok());
  ServeUntil(dir.path(), 2, restored, brokers, answered + 3);
  EXPECT_EQ(testing::ReadStoreState(restored).commands_offset, answered + 1);
  std::map<std::string, int> answers;
  for (const auto& [key, value] : testing::ParsedResults(testing::ReadTopic(brokers, kafka::kResultsTopic))) {
    if (!key.starts_with("checkpoint:")) answers[key] += 1;
  }
  EXPECT_EQ(answers.size(), static_cast<size_t>(answered + 1));

  // A backup of another ledger is never spliced with this partition: nothing installed.
  const std::string other = dir.path() + "/other";
  testing::WriteFile(dir.path() + "/one.jsonl", testing::OpenMerchant("x1", "MX", 10).dump() + "\n");
  const testing::ProgramRun other_day = testing::RunLedger(
      dir.path(), {"submit", "--data", other, "--clock", "occurred", dir.path() + "/one.jsonl"});
  ASSERT_EQ(other_day.exit_code, 0) << testing::Describe(other_day);
  ASSERT_EQ(testing::RunLedger(dir.path(), {"backup", "--data", other, "--to", dir.path() + "/other-backups"})
                .exit_code,
            0);
  const testing::ProgramRun spliced =
      testing::RunLedger(dir.path(), {"restore", "--data", dir.path() + "/spliced", "--from-backup",
                                      dir.path() + "/other-backups", "--from-kafka", "--brokers", brokers});
  EXPECT_EQ(spliced.exit_code, 5) << testing::Describe(spliced);
  EXPECT_NE(spliced.err.find("not one history"), std::string::npos) << spliced.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/spliced/CURRENT"));
  for (const auto& [key, count] : answers) EXPECT_EQ(count, 1) << key << " answered twice";
}

// The newest backup id in a BackupEngine folder (its meta/<id> files), 0 when none.
uint32_t NewestBackupId(const std::string& backups) {
  uint32_t newest = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(backups + "/meta", error)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") == std::string::npos)
      newest = std::max<uint32_t>(newest, static_cast<uint32_t>(std::stoul(name)));
  }
  return newest;
}

// serve --backup-to backs its store up while it serves (the data folder's lock stays serve's), goes on
// answering, and its newest backup with the partition's later events gives the shard back.
TEST(Restore, ARunningServeBacksItselfUpAndItsBackupRestores) {
  testing::TempDir dir;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  const std::string brokers = broker->bootstrap();
  const std::string data_dir = dir.path() + "/data";
  const std::string backups = dir.path() + "/backups";
  WriteSigningConfig(dir.path(), data_dir, true);
  const std::vector<std::string> commands = DayOfCommands();
  ASSERT_TRUE(testing::SendCommands(brokers, commands).ok());
  ServeProcess serve(dir.path(), 0,
                     {"--data", data_dir, "--brokers", brokers, "--clock", "occurred", "--backup-to", backups,
                      "--backup-every", "1", "--backup-keep", "2"});
  const int64_t answered = static_cast<int64_t>(commands.size());
  ASSERT_TRUE(testing::WaitForHighWatermark(brokers, kafka::kResultsTopic, answered, serve, kServeDeadline))
      << serve.err();
  // A backup that began after every answer was published holds every event answered.
  const uint32_t seen = NewestBackupId(backups);
  const auto deadline = std::chrono::steady_clock::now() + kServeDeadline;
  while (NewestBackupId(backups) <= seen && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_GT(NewestBackupId(backups), seen) << serve.err();
  const testing::ProgramRun locked =
      testing::RunLedger(dir.path(), {"backup", "--data", data_dir, "--to", dir.path() + "/offline"});
  EXPECT_EQ(locked.exit_code, 1) << testing::Describe(locked);  // the store is serve's
  // It goes on answering after its backups.
  ASSERT_TRUE(testing::SendCommands(brokers, {testing::Deposit("d2", "C1:debit", 5'000).dump()}).ok());
  ASSERT_TRUE(
      testing::WaitForHighWatermark(brokers, kafka::kResultsTopic, answered + 1, serve, kServeDeadline))
      << serve.err();
  EXPECT_EQ(serve.Stop(), 0) << serve.err();
  EXPECT_NE(serve.err().find("serve: backup "), std::string::npos) << serve.err();
  EXPECT_EQ(serve.err().find("backup into"), std::string::npos) << serve.err();  // no failed backup
  EXPECT_FALSE(
      LoseAndRestoreFromBackup(dir.path(), data_dir, backups, brokers, NewestBackupId(backups)).empty());
}

}  // namespace
}  // namespace ledger
