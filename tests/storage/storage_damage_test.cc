// Storage damage: a write-ahead log damaged where acknowledged groups live never opens (the ledger must not
// continue from a shorter history), a log torn at its end by a crash mid-append of an unacknowledged group
// opens without that group, and a full disk is a clean storage failure from which the store reopens.
#include <sys/mount.h>

#include <filesystem>
#include <fstream>

#include "replay/replay.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using testing::TempDir;

LedgerOptions OptionsFor(const std::string& dir) {
  LedgerOptions options;
  options.data_dir = dir;
  options.clock = ClockMode::kOccurred;
  options.fixed_now_ns = testing::DefaultTimeNs();
  options.sync = true;  // the acknowledged high-water mark is kept for synced stores
  return options;
}

// Whether the projections are folded behind the submitted groups. Unfolded, the log ends with the last
// group's events (as when the process dies between the commit and the fold); folded, with the fold.
enum class Fold { kFolded, kHeld };

// Opens a ledger in `dir` and submits `count` deposits after one account. Returns the last sequence.
uint64_t SubmitDeposits(const std::string& dir, const std::string& prefix, int count,
                        Fold fold = Fold::kFolded) {
  LedgerOptions options = OptionsFor(dir);
  options.hold_projection_folds_for_testing = fold == Fold::kHeld;
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options);
  EXPECT_TRUE(ledger.ok()) << ledger.status().ToString();
  if (!ledger.ok()) return 0;
  std::vector<ParsedCommand> commands;
  if ((*ledger)->last_sequence() == 0)
    commands.push_back(testing::Parse(testing::OpenAccount("open", "C1").dump()));
  for (int i = 0; i < count; ++i) {
    commands.push_back(
        testing::Parse(testing::Deposit(prefix + std::to_string(i), "C1:debit", 100 + i).dump()));
  }
  EXPECT_TRUE((*ledger)->SubmitAll(commands, [](std::span<const CommandResult>) {}).ok());
  return (*ledger)->last_sequence();
}

std::string OnlyLog(const std::string& dir) {
  std::vector<std::string> logs;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".log") logs.push_back(entry.path().string());
  }
  EXPECT_EQ(logs.size(), 1u) << "expected the whole history in one write-ahead log";
  return logs.empty() ? std::string() : logs.back();
}

void Damage(const std::string& path, const std::function<void(std::string&)>& change) {
  std::string bytes = testing::ReadFile(path);
  change(bytes);
  testing::WriteFile(path, bytes);
}

std::string DurableSequenceText(const std::string& dir) {
  return testing::ReadFile(dir + "/DURABLE_SEQUENCE");
}

struct DamageCase {
  const char* what;
  std::function<void(std::string&)> change;
};

TEST(StorageDamage, DamageInsideTheLogRefusesToOpenAndNamesWhatCanNoLongerBeProven) {
  // Goal: a flipped byte, a zeroed 4 KiB block or a log cut in half never opens as a shorter history.
  const DamageCase cases[] = {
      {"one byte flipped mid-log",
       [](std::string& b) { b[b.size() / 2] = static_cast<char>(b[b.size() / 2] ^ 0x40); }},
      {"4 KiB zeroed mid-log", [](std::string& b) { std::fill_n(b.begin() + b.size() / 2, 4096, '\0'); }},
      {"log cut in half", [](std::string& b) { b.resize(b.size() / 2); }},
  };
  for (const DamageCase& damage : cases) {
    SCOPED_TRACE(damage.what);
    TempDir dir;
    const std::string data = dir.path() + "/data";
    const uint64_t last = SubmitDeposits(data, "d", 3000);
    ASSERT_GT(last, 1000u);
    const std::string log = OnlyLog(data);
    Damage(log, damage.change);
    const std::string damaged_log = testing::ReadFile(log);

    Result<std::unique_ptr<Ledger>> reopened = Ledger::Open(OptionsFor(data));
    ASSERT_FALSE(reopened.ok()) << "a damaged history opened at sequence " << (*reopened)->last_sequence();
    EXPECT_EQ(reopened.status().code(), StatusCode::kCorruption);
    const std::string message = reopened.status().message();
    EXPECT_NE(message.find(".log"), std::string::npos) << message;
    EXPECT_NE(message.find(".." + std::to_string(last) + " can no longer be proven"), std::string::npos)
        << message;
    EXPECT_NE(message.find("replay --source kafka"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line";

    // The program: exit 1 (storage failure), one line, and nothing appended to the damaged history.
    testing::WriteFile(dir.path() + "/more.jsonl", testing::Deposit("late", "C1:debit", 5).dump() + "\n");
    const testing::ProgramRun run = testing::RunLedger(
        dir.path(), {"submit", "--data", data, "--clock", "occurred", dir.path() + "/more.jsonl"});
    EXPECT_EQ(run.exit_code, 1) << testing::Describe(run);
    EXPECT_TRUE(run.out.empty()) << testing::Describe(run);
    EXPECT_NE(run.err.find("can no longer be proven"), std::string::npos) << testing::Describe(run);
    EXPECT_EQ(testing::ReadFile(log), damaged_log) << "the damaged log was changed";
    EXPECT_EQ(DurableSequenceText(data), testing::ReadFile(data + "/DURABLE_SEQUENCE"));
  }
}

TEST(StorageDamage, TornTailOfAnUnacknowledgedGroupOpensWithoutIt) {
  // Goal: a crash mid-append of a group that was never acknowledged (its tail zero-filled or cut off) opens
  // at the last acknowledged group; the lost command can be submitted again and is applied, not a duplicate.
  const DamageCase cases[] = {
      {"tail zero-filled", [](std::string& b) { std::fill(b.end() - 64, b.end(), '\0'); }},
      {"tail cut off", [](std::string& b) { b.resize(b.size() - 64); }},
  };
  for (const DamageCase& damage : cases) {
    SCOPED_TRACE(damage.what);
    TempDir dir;
    const std::string data = dir.path() + "/data";
    const uint64_t acknowledged = SubmitDeposits(data, "a", 200);
    const std::string durable_before = DurableSequenceText(data);
    ASSERT_NE(durable_before.find(std::to_string(acknowledged)), std::string::npos);
    // One more group reaches the log, then the crash: its high-water mark update never happened, nor its
    // fold.
    const uint64_t torn_last = SubmitDeposits(data, "torn", 1, Fold::kHeld);
    ASSERT_EQ(torn_last, acknowledged + 1);
    testing::WriteFile(data + "/DURABLE_SEQUENCE", durable_before);
    Damage(OnlyLog(data), damage.change);

    Result<std::unique_ptr<Ledger>> reopened = Ledger::Open(OptionsFor(data));
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    EXPECT_EQ((*reopened)->last_sequence(), acknowledged);
    const CommandResult again =
        (*reopened)->Stage(testing::Parse(testing::Deposit("torn0", "C1:debit", 100).dump()));
    EXPECT_EQ(again.kind, CommandResult::Kind::kAccepted) << again.ToJson();
    ASSERT_TRUE((*reopened)->CommitGroup().ok());
    EXPECT_EQ((*reopened)->last_sequence(), acknowledged + 1);
  }
}

TEST(StorageDamage, TornTailOfAnAcknowledgedGroupDoesNotOpen) {
  // Goal: the same damage at the end of the log is refused when the group there was acknowledged.
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const uint64_t last = SubmitDeposits(data, "a", 200, Fold::kHeld);
  Damage(OnlyLog(data), [](std::string& b) { std::fill(b.end() - 64, b.end(), '\0'); });
  Result<std::unique_ptr<Ledger>> reopened = Ledger::Open(OptionsFor(data));
  ASSERT_FALSE(reopened.ok());
  EXPECT_NE(reopened.status().message().find(".." + std::to_string(last) + " can no longer be proven"),
            std::string::npos)
      << reopened.status().message();
}

TEST(StorageDamage, TornFoldAtTheTailOpensWithEveryEventAndFoldsThemAgain) {
  // Goal: the fold of the projections is written after the events and not synced; a crash that tears it
  // loses no event, and the projections are folded again from the events to exactly what a replay builds.
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const uint64_t last = SubmitDeposits(data, "a", 200);
  Damage(OnlyLog(data), [](std::string& b) { std::fill(b.end() - 64, b.end(), '\0'); });
  {
    Result<std::unique_ptr<Ledger>> reopened = Ledger::Open(OptionsFor(data));
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    EXPECT_EQ((*reopened)->last_sequence(), last);
    EXPECT_EQ((*reopened)->folded_sequence(), last);
    EXPECT_TRUE((*reopened)->ProveState().ok());
  }
  Result<std::unique_ptr<Store>> live = Store::Open(data, StoreOptions{.read_only = true});
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  TempDir rebuilt_dir;
  Result<std::unique_ptr<Store>> rebuilt = Store::Open(rebuilt_dir.path(), StoreOptions{});
  ASSERT_TRUE(rebuilt.ok());
  Result<replay::ReplayReport> report = replay::Replay(**live, rebuilt->get());
  ASSERT_TRUE(report.ok() && report->ok());
  EXPECT_EQ(replay::StateDigest(**live).value(), replay::StateDigest(**rebuilt).value());
}

TEST(StorageDamage, FullDiskIsAStorageFailureAndTheStoreReopens) {
  // Goal: on a 20 MiB tmpfs, running out of space exits 1 with "no space left" (no abort), every printed
  // result stays durable, and the store opens and takes commands once there is room again.
  TempDir dir;
  const std::string mount_point = dir.path() + "/small";
  std::filesystem::create_directories(mount_point);
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=20m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                 << "): needs root with CAP_SYS_ADMIN";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mount_point};
  const std::string data = mount_point + "/data";
  std::string lines = testing::OpenAccount("open", "C1").dump() + "\n";
  for (int i = 0; i < 60'000; ++i)
    lines += testing::Deposit("d" + std::to_string(i), "C1:debit", 100).dump() + "\n";
  testing::WriteFile(dir.path() + "/commands.jsonl", lines);

  const testing::ProgramRun full = testing::RunLedger(
      dir.path(), {"submit", "--data", data, "--clock", "occurred", dir.path() + "/commands.jsonl"});
  EXPECT_EQ(full.exit_code, 1) << testing::Describe(full);
  EXPECT_EQ(full.signal, 0) << testing::Describe(full);
  EXPECT_NE(full.err.find("no space left"), std::string::npos) << testing::Describe(full);
  const std::vector<std::string> acknowledged = testing::Lines(full.out);
  ASSERT_GT(acknowledged.size(), 1u);
  ASSERT_LT(acknowledged.size(), 60'001u) << "the disk never filled up";

  ASSERT_EQ(::mount("tmpfs", mount_point.c_str(), "tmpfs", MS_REMOUNT, "size=64m"), 0)
      << std::strerror(errno);
  const testing::ProgramRun balance =
      testing::RunLedger(dir.path(), {"balance", "--data", data, "C1:debit", "--json"});
  ASSERT_EQ(balance.exit_code, 0) << testing::Describe(balance);
  // Every acknowledged deposit (one per printed line after the account's) is in the balance.
  EXPECT_GE(nlohmann::json::parse(balance.out)["balance_minor"].get<int64_t>(),
            static_cast<int64_t>(acknowledged.size() - 1) * 100);
  testing::WriteFile(dir.path() + "/more.jsonl", testing::Deposit("after", "C1:debit", 5).dump() + "\n");
  const testing::ProgramRun more = testing::RunLedger(
      dir.path(), {"submit", "--data", data, "--clock", "occurred", dir.path() + "/more.jsonl"});
  EXPECT_EQ(more.exit_code, 0) << testing::Describe(more);
  EXPECT_NE(more.out.find("\"accepted\""), std::string::npos) << testing::Describe(more);
}

TEST(StorageDamage, AShardNumberChangedInTheConfigIsRefused) {
  // Goal: a store keeps the shard it was written as; `shard = 7` in ledger.toml later is refused (exit 2),
  // and nothing with a shard-7 transaction id is appended to shard 0's history.
  TempDir dir;
  const std::string data = dir.path() + "/data";
  testing::WriteFile(dir.path() + "/first.jsonl", testing::OpenAccount("a1", "C1").dump() + "\n");
  const testing::ProgramRun first = testing::RunLedger(
      dir.path(), {"submit", "--data", data, "--clock", "occurred", dir.path() + "/first.jsonl"});
  ASSERT_EQ(first.exit_code, 0) << testing::Describe(first);
  testing::WriteFile(data + "/ledger.toml", "[ledger]\nshard = 7\n");
  testing::WriteFile(dir.path() + "/more.jsonl", testing::Deposit("d1", "C1:debit", 100).dump() + "\n");
  const testing::ProgramRun more = testing::RunLedger(
      dir.path(), {"submit", "--data", data, "--clock", "occurred", dir.path() + "/more.jsonl"});
  EXPECT_EQ(more.exit_code, 2) << testing::Describe(more);
  EXPECT_TRUE(more.out.empty()) << testing::Describe(more);
  EXPECT_NE(more.err.find("holds shard 0's history, but this ledger is shard 7"), std::string::npos)
      << testing::Describe(more);
  const testing::ProgramRun events = testing::RunLedger(dir.path(), {"events", "--data", data});
  EXPECT_EQ(testing::Lines(events.out).size(), 1u) << testing::Describe(events);
}

TEST(StorageDamage, AStoreRebuiltFromTheHistoryIsAWholeLedgerThatGoesOn) {
  // Goal: the recovery the damage message names works: a replay's target holds the verified events as well as
  // the projections, so the ledger opens on it at the same head and takes the next command.
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const uint64_t last = SubmitDeposits(data, "d", 300);
  const std::string rebuilt_dir = dir.path() + "/rebuilt";
  {
    StoreOptions read_only;
    read_only.read_only = true;
    read_only.create_if_missing = false;
    Result<std::unique_ptr<Store>> source = Store::Open(data, read_only);
    ASSERT_TRUE(source.ok()) << source.status().ToString();
    Result<std::unique_ptr<Store>> target = Store::Open(rebuilt_dir, StoreOptions());
    ASSERT_TRUE(target.ok()) << target.status().ToString();
    Result<replay::ReplayReport> report = replay::Replay(**source, target->get());
    ASSERT_TRUE(report.ok() && report->ok()) << (report.ok() ? report->problem : report.status().ToString());
    Result<std::vector<replay::StateDifference>> differences = replay::FirstDifferences(**source, **target);
    ASSERT_TRUE(differences.ok());
    EXPECT_TRUE(differences->empty());
  }
  Result<std::unique_ptr<Ledger>> restored = Ledger::Open(OptionsFor(rebuilt_dir));
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ((*restored)->last_sequence(), last);
  const CommandResult next =
      (*restored)->Stage(testing::Parse(testing::Deposit("after", "C1:debit", 7).dump()));
  EXPECT_EQ(next.kind, CommandResult::Kind::kAccepted) << next.ToJson();
  ASSERT_TRUE((*restored)->CommitGroup().ok());
  EXPECT_EQ((*restored)->last_sequence(), last + 1);
}

}  // namespace
}  // namespace ledger
