// Goal: `ledger close-day` and `ledger clearing` of a ledger of several shards keep README's contract: a
// date is cleared only once every shard closed it (exit 6 naming the open shards, nothing written), the files
// merge every shard's lines, and folders that are not every shard of one ledger are refused (N folders must
// hold shards 0..N-1, each once, by the shard their events name).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ledger/routing.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::Describe;
using testing::ProgramRun;
using testing::ReadFile;
using testing::RunLedger;
using testing::WriteFile;

constexpr uint32_t kShards = 2;

// The first id `prefix`N whose routing key (`key_of(id)`) lands on `shard` of this test's shards.
template <typename KeyOf>
std::string IdOnShard(const std::string& prefix, uint32_t shard, KeyOf key_of) {
  return testing::IdOnShard(prefix, shard, kShards, key_of);
}

// Shard `shard`'s customer pays its own order of M1 (both on that shard, so no leg is needed), on 2026-11-25.
std::string DayOfShard(uint32_t shard) {
  const std::string customer = IdOnShard("C", shard, [](const std::string& id) { return id; });
  const std::string order = IdOnShard("O", shard, [](const std::string& id) { return OrderKey("M1", id); });
  std::string lines;
  for (json command : {testing::OpenMerchant("m1", "M1", 60), testing::OpenAccount("a" + customer, customer),
                       testing::Deposit("d" + customer, customer + ":debit", 100'000),
                       testing::Pay("M1", order, customer, 1000 * (shard + 1))}) {
    command["occurred_at"] = "2026-11-25T10:00:00+08:00";
    lines += command.dump() + "\n";
  }
  return lines;
}

class ClearingCli : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::string Shard(uint32_t k) const { return Path("shard" + std::to_string(k)); }
  ProgramRun Run(const std::vector<std::string>& args) { return RunLedger(dir_.path(), args); }

  // Two shard folders, each with its own day submitted locally.
  void SetUp() override {
    for (uint32_t k = 0; k < kShards; ++k) {
      std::filesystem::create_directories(Shard(k));
      WriteFile(Shard(k) + "/ledger.toml", "[ledger]\nshard = " + std::to_string(k) + "\n");
      WriteFile(Path("day" + std::to_string(k) + ".jsonl"), DayOfShard(k));
      const ProgramRun run = Run(
          {"submit", "--data", Shard(k), "--clock", "occurred", Path("day" + std::to_string(k) + ".jsonl")});
      ASSERT_EQ(run.exit_code, 0) << Describe(run);
    }
  }

  ProgramRun Clear(const std::vector<std::string>& dirs) {
    std::vector<std::string> args = {"clearing", "--date", "2026-11-25", "--out", Path("out")};
    for (const std::string& dir : dirs) args.insert(args.end(), {"--data", dir});
    return Run(args);
  }

  ProgramRun CloseDay(uint32_t k, const std::string& date) {
    return Run({"close-day", "--data", Shard(k), "--date", date, "--now", "2026-11-26T10:00:00+08:00"});
  }

  testing::TempDir dir_;
};

TEST_F(ClearingCli, ADateIsClearedOnceEveryShardClosedItAndMergesTheirLines) {
  ProgramRun run = Clear({Shard(0), Shard(1)});
  EXPECT_EQ(run.exit_code, 6) << Describe(run);
  EXPECT_NE(run.err.find("shard 0 (closed through none), shard 1"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(Path("out")));

  run = CloseDay(0, "2026-11-26");  // not ended at 2026-11-26 10:00
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  run = CloseDay(0, "2026-11-25");
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_EQ(run.out, "closed through 2026-11-25\n");
  EXPECT_EQ(CloseDay(0, "2026-11-25").out, "already closed through 2026-11-25\n");
  run = Clear({Shard(0), Shard(1)});
  EXPECT_EQ(run.exit_code, 6) << Describe(run);
  EXPECT_EQ(run.err.find("shard 0"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("shard 1 (closed through none)"), std::string::npos) << run.err;

  ASSERT_EQ(CloseDay(1, "2026-11-25").exit_code, 0);
  run = Clear({Shard(1), Shard(0)});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const std::vector<std::string> rows = testing::Lines(ReadFile(Path("out/clearing-2026-11-25-M1.csv")));
  ASSERT_EQ(rows.size(), 4u);  // header, the two shards' payments, summary
  EXPECT_EQ(rows[3].rfind("SUMMARY,M1,2,", 0), 0u) << rows[3];
  const json summary = json::parse(ReadFile(Path("out/summary.json")));
  EXPECT_EQ(summary["merchants"][0]["order_amount_minor"], 3000);
  ASSERT_EQ(summary["shards"].size(), 2u);
  for (const json& shard : summary["shards"]) {
    EXPECT_EQ(shard["closed_through"], "2026-11-25");
    EXPECT_EQ(shard["date_closed"], true);
    EXPECT_EQ(shard["through_sequence"], 5);  // four commands, then the DayClosed
  }
}

// The summary of a closed date names the DayClosed that closed it, in shard order: the same bytes after a
// later date closed, and whatever the order of the folders.
TEST_F(ClearingCli, TheSummaryOfAClosedDateDoesNotChange) {
  ASSERT_EQ(CloseDay(0, "2026-11-25").exit_code, 0);
  ASSERT_EQ(CloseDay(1, "2026-11-25").exit_code, 0);
  ASSERT_EQ(Clear({Shard(0), Shard(1)}).exit_code, 0);
  const std::string first = ReadFile(Path("out/summary.json"));
  std::filesystem::remove_all(Path("out"));
  const ProgramRun closed_later =
      Run({"close-day", "--data", Shard(0), "--date", "2026-11-26", "--now", "2026-11-27T10:00:00+08:00"});
  ASSERT_EQ(closed_later.exit_code, 0) << Describe(closed_later);
  ASSERT_EQ(Clear({Shard(1), Shard(0)}).exit_code, 0);
  EXPECT_EQ(ReadFile(Path("out/summary.json")), first);
}

// A folder without events takes its shard from --shard, which must be a shard number.
TEST_F(ClearingCli, CloseDayRefusesAShardNumberBeyondAnyShard) {
  WriteFile(Path("nothing.jsonl"), "");
  ASSERT_EQ(Run({"submit", "--data", Path("empty"), Path("nothing.jsonl")}).exit_code, 0);
  const ProgramRun run = Run({"close-day", "--data", Path("empty"), "--shard", "4294967297", "--date",
                              "2026-11-25", "--now", "2026-11-26T10:00:00+08:00"});
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_EQ(Run({"close-day", "--data", Shard(1), "--shard", "0", "--date", "2026-11-25"}).exit_code, 2);
}

// A date closed early can never reopen: close-day refuses a --now ahead of the system clock.
TEST_F(ClearingCli, CloseDayRefusesAClockAheadOfTheSystemClock) {
  const ProgramRun run =
      Run({"close-day", "--data", Shard(0), "--date", "2030-06-01", "--now", "2030-06-02T12:00:00+08:00"});
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_NE(run.err.find("ahead of the system clock"), std::string::npos) << run.err;
}

TEST_F(ClearingCli, FoldersThatAreNotEveryShardOfOneLedgerAreRefused) {
  // Shard 1 and a folder without events, shard 0 twice, shard 0 and a folder without events.
  WriteFile(Path("nothing.jsonl"), "");
  const ProgramRun created = Run({"submit", "--data", Path("empty"), Path("nothing.jsonl")});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  for (const std::vector<std::string>& dirs :
       {std::vector<std::string>{Shard(1), Path("empty")}, {Shard(0), Shard(0)}, {Shard(0), Path("empty")}}) {
    const ProgramRun run = Clear(dirs);
    EXPECT_EQ(run.exit_code, 2) << Describe(run);
    EXPECT_FALSE(std::filesystem::exists(Path("out")));
  }
}

}  // namespace
}  // namespace ledger
