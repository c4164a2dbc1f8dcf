// Goal: `ledger close-day` and `ledger clearing` of a ledger of several shards keep README's contract: a
// date is cleared only once every shard closed it (exit 6 naming the open shards, nothing written), the files
// merge every shard's lines, and folders that are not every shard of one ledger are refused (N folders must
// hold shards 0..N-1, each once, by the shard their events name). A closed date's files are one signed set
// that openssl and sha256sum verify and that is never rewritten.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
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

  // Two shard folders of one ledger (one key pair), each with its own day submitted locally.
  void SetUp() override {
    const ProgramRun keys = Run({"keygen", "--out", Path("keys")});
    ASSERT_EQ(keys.exit_code, 0) << Describe(keys);
    for (uint32_t k = 0; k < kShards; ++k) {
      std::filesystem::create_directories(Shard(k));
      WriteFile(Shard(k) + "/ledger.toml", Config(k, true));
      WriteFile(Path("day" + std::to_string(k) + ".jsonl"), DayOfShard(k));
      const ProgramRun run = Run(
          {"submit", "--data", Shard(k), "--clock", "occurred", Path("day" + std::to_string(k) + ".jsonl")});
      ASSERT_EQ(run.exit_code, 0) << Describe(run);
    }
  }

  std::string Config(uint32_t k, bool with_key) const {
    return "[ledger]\nshard = " + std::to_string(k) + "\n" +
           (with_key ? "[audit]\nprivate_key = \"" + Path("keys/ledger-signing.key") + "\"\n" : "");
  }

  ProgramRun Clear(const std::vector<std::string>& dirs, const std::string& out = "out",
                   const std::vector<std::string>& more = {}) {
    std::vector<std::string> args = {"clearing", "--date", "2026-11-25", "--out", Path(out)};
    for (const std::string& dir : dirs) args.insert(args.end(), {"--data", dir});
    args.insert(args.end(), more.begin(), more.end());
    return Run(args);
  }

  // Every file of folder `out` by name, with its bytes.
  std::map<std::string, std::string> FilesOf(const std::string& out) const {
    std::map<std::string, std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(Path(out)))
      files[entry.path().filename().string()] = ReadFile(entry.path().string());
    return files;
  }

  // Exit status of a shell command run in the scratch folder, its output in `log`.
  int Shell(const std::string& command) {
    return std::system(("cd '" + dir_.path() + "' && (" + command + ") > log 2>&1").c_str());
  }
  bool OpensslVerifies(const std::string& out) {
    return Shell("openssl pkeyutl -verify -pubin -inkey keys/ledger-signing.pub -rawin -in " + out +
                 "/SHA256SUMS -sigfile " + out + "/SHA256SUMS.sig") == 0;
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

// A closed date's files: SHA256SUMS lists every file, its Ed25519 signature verifies with openssl and the
// ledger's public key, and a changed SHA256SUMS does not.
TEST_F(ClearingCli, AClosedDatesFilesAreSignedAndOpensslVerifiesThem) {
  ASSERT_EQ(CloseDay(0, "2026-11-25").exit_code, 0);
  ASSERT_EQ(CloseDay(1, "2026-11-25").exit_code, 0);
  const ProgramRun run = Clear({Shard(0), Shard(1)});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.out.find(": signed"), std::string::npos) << run.out;
  const std::vector<std::string> sums = testing::Lines(ReadFile(Path("out/SHA256SUMS")));
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_NE(sums[0].find("  clearing-2026-11-25-M1.csv"), std::string::npos) << sums[0];
  EXPECT_NE(sums[1].find("  summary.json"), std::string::npos) << sums[1];
  EXPECT_EQ(ReadFile(Path("out/SHA256SUMS.sig")).size(), 64u);
  EXPECT_TRUE(OpensslVerifies("out")) << ReadFile(Path("log"));
  EXPECT_EQ(Shell("cd out && sha256sum --strict -c SHA256SUMS"), 0) << ReadFile(Path("log"));

  WriteFile(Path("out/SHA256SUMS"), ReadFile(Path("out/SHA256SUMS")) + "\n");
  EXPECT_FALSE(OpensslVerifies("out"));
}

// Issuing a signed set again changes nothing (Ed25519 is deterministic: another folder gets the same bytes,
// signature included); another set is refused there with every byte kept; a damaged file gets its signed
// bytes back.
TEST_F(ClearingCli, SignedClearingFilesAreNeverRewritten) {
  ASSERT_EQ(CloseDay(0, "2026-11-25").exit_code, 0);
  ASSERT_EQ(CloseDay(1, "2026-11-25").exit_code, 0);
  ASSERT_EQ(Clear({Shard(0), Shard(1)}).exit_code, 0);
  const std::map<std::string, std::string> issued = FilesOf("out");
  ASSERT_EQ(issued.size(), 4u);  // the CSV, summary.json, SHA256SUMS and its signature

  ProgramRun run = Clear({Shard(1), Shard(0)});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.out.find("already issued, unchanged"), std::string::npos) << run.out;
  EXPECT_EQ(FilesOf("out"), issued);
  ASSERT_EQ(Clear({Shard(0), Shard(1)}, "again").exit_code, 0);
  EXPECT_EQ(FilesOf("again"), issued);

  run = Clear({Shard(0), Shard(1)}, "out", {"--merchant", "M2"});
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_NE(run.err.find("never rewritten"), std::string::npos) << run.err;
  EXPECT_EQ(FilesOf("out"), issued);

  WriteFile(Path("out/clearing-2026-11-25-M1.csv"), "PAYMENT,M1,forged\n");
  run = Clear({Shard(0), Shard(1)});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.out.find("damaged files written again"), std::string::npos) << run.out;
  EXPECT_EQ(FilesOf("out"), issued);
}

// Without the ledger's private key a closed date is issued only with --unsigned (SHA256SUMS, no signature);
// one shard's open date is the day so far: no key needed, nothing final.
TEST_F(ClearingCli, AClosedDateNeedsTheKeyOrUnsignedAndAnOpenDateIsNotFinal) {
  WriteFile(Shard(0) + "/ledger.toml", Config(0, false));
  ProgramRun run = Clear({Shard(0)});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.out.find("not final, unsigned"), std::string::npos) << run.out;
  EXPECT_NE(run.err.find("the date is still open"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(Path("out/SHA256SUMS")));

  ASSERT_EQ(CloseDay(0, "2026-11-25").exit_code, 0);
  run = Clear({Shard(0)}, "closed");
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_NE(run.err.find("--unsigned"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(Path("closed")));
  run = Clear({Shard(0)}, "closed", {"--unsigned"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.err.find("not signed"), std::string::npos) << run.err;
  EXPECT_TRUE(std::filesystem::exists(Path("closed/SHA256SUMS")));
  EXPECT_FALSE(std::filesystem::exists(Path("closed/SHA256SUMS.sig")));
  EXPECT_EQ(Shell("cd closed && sha256sum --strict -c SHA256SUMS"), 0) << ReadFile(Path("log"));
}

// reconcile of several shards reads every shard's lines of the date (the merged clearing file reconciles
// clean), waits for every shard to close the date, and records the run in shard 0's history.
TEST_F(ClearingCli, ReconcileReadsEveryShardsLines) {
  const std::vector<std::string> reconcile = {
      "reconcile", "--date",     "2026-11-25", "--statement", Path("out/clearing-2026-11-25-M1.csv"),
      "--format",  "ledger-csv", "--out",      Path("recon")};
  auto with = [&](const std::vector<std::string>& dirs) {
    std::vector<std::string> args = reconcile;
    for (const std::string& dir : dirs) args.insert(args.end(), {"--data", dir});
    return args;
  };
  ASSERT_EQ(CloseDay(0, "2026-11-25").exit_code, 0);
  ASSERT_EQ(Clear({Shard(0)}, "out", {"--unsigned"}).exit_code, 0);  // shard 0's part only
  ProgramRun run = Run(with({Shard(1), Shard(0)}));
  EXPECT_EQ(run.exit_code, 6) << Describe(run);
  EXPECT_NE(run.err.find("shard 1 (closed through none)"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(Path("recon")));

  ASSERT_EQ(CloseDay(1, "2026-11-25").exit_code, 0);
  ASSERT_EQ(Clear({Shard(0), Shard(1)}, "merged").exit_code, 0);
  std::vector<std::string> args = with({Shard(1), Shard(0)});
  args[4] = Path("merged/clearing-2026-11-25-M1.csv");
  run = Run(args);
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const json report = json::parse(ReadFile(Path("recon/report.json")));
  EXPECT_EQ(report["categories"]["MATCHED"]["count"], 2) << report.dump();
  EXPECT_EQ(report["breaks"], 0) << report.dump();
  const std::string last_of_shard0 = testing::Lines(Run({"events", "--data", Shard(0)}).out).back();
  EXPECT_NE(last_of_shard0.find("ReconciliationRecorded"), std::string::npos) << last_of_shard0;
  EXPECT_EQ(Run({"events", "--data", Shard(1)}).out.find("ReconciliationRecorded"), std::string::npos);

  // One shard's folder alone: the other shard's line is missing in the ledger.
  args = reconcile;
  args[4] = Path("merged/clearing-2026-11-25-M1.csv");
  args.insert(args.end(), {"--data", Shard(1)});
  run = Run(args);
  EXPECT_EQ(run.exit_code, 3) << Describe(run);
}

// One shard's folder alone is not the whole ledger: its closed date's files are issued unsigned and not final
// (they can never block the whole set), as are the folders of two ledgers (another key) together; a second
// run into a folder another run holds is refused.
TEST_F(ClearingCli, APartOfTheLedgerIsNeverSignedAsFinal) {
  ASSERT_EQ(CloseDay(0, "2026-11-25").exit_code, 0);
  ASSERT_EQ(CloseDay(1, "2026-11-25").exit_code, 0);
  ProgramRun run = Clear({Shard(1)}, "part");
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.err.find("not proven to be the whole ledger"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(Path("part/SHA256SUMS")));
  run = Clear({Shard(0), Shard(1)}, "part");
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.out.find(": signed"), std::string::npos) << run.out;

  ASSERT_EQ(Run({"keygen", "--out", Path("other-keys")}).exit_code, 0);
  WriteFile(Shard(1) + "/ledger.toml", "[ledger]\nshard = 1\n[audit]\nprivate_key = \"" +
                                           Path("other-keys/ledger-signing.key") + "\"\n");
  run = Clear({Shard(0), Shard(1)}, "mixed");
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_NE(run.err.find("another ledger key"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(Path("mixed")));

  run = Clear({Shard(0)}, "out", {"--merchant", "M1\nx"});
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_EQ(Clear({Shard(0)}, "shard0").exit_code, 2);  // --out the data folder itself

  std::filesystem::create_directories(Path("locked"));
  const int held = ::open(Path("locked").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);  // as a run in progress holds it
  run = Clear({Shard(0)}, "locked", {"--unsigned"});
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_NE(run.err.find("another clearing run"), std::string::npos) << run.err;
  EXPECT_TRUE(std::filesystem::is_empty(Path("locked")));
  ::close(held);
}

}  // namespace
}  // namespace ledger
