// Goal: `ledger keygen`, `checkpoint` and `replay` keep README's audit contract: keys land only where asked
// with fixed modes, a checkpoint reports what it signed, and replay's exit code says exactly what was
// verified.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/signing.h"
#include "state/records.h"
#include "storage/kv.h"
#include "storage/store.h"
#include "storage/testing.h"
#include "support/test_support.h"

namespace ledger {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::Describe;
using testing::Lines;
using testing::ProgramRun;
using testing::ReadFile;
using testing::WriteFile;

// Replay's exit codes (README: Command-line reference).
constexpr int kExitVerified = 0;
constexpr int kExitStorage = 1;
constexpr int kExitBadArguments = 2;
constexpr int kExitSignaturesNotChecked = 4;
constexpr int kExitNotVerified = 5;

// C1 opens a debit account, M1 opens, C1 deposits 10,000.00 and pays 100.00.
const char kDay[] =
    R"({"type":"open_account","command_id":"a1","customer":"C1","account":"C1:debit","kind":"debit_card","occurred_at":"2026-11-25T09:00:00+08:00"}
{"type":"open_merchant","command_id":"m1","merchant":"M1","name":"Rail tickets","fee_bps":60,"occurred_at":"2026-11-25T09:00:00+08:00"}
{"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":1000000,"occurred_at":"2026-11-25T09:00:00+08:00"}
{"type":"pay","command_id":"M1:ORD1","merchant":"M1","merchant_order_no":"ORD1","customer":"C1","funding":"own_account","account":"C1:debit","channel":"b2c_pc","medium":"sms","order_amount_minor":10000,"occurred_at":"2026-11-25T10:00:00+08:00"}
)";
const char kMore[] =
    R"({"type":"deposit","command_id":"d2","account":"C1:debit","amount_minor":500,"occurred_at":"2026-11-25T11:00:00+08:00"}
)";

// A failure with a reason: `code`, one line "ledger: ..." on stderr mentioning `must_mention`, nothing on
// stdout.
void ExpectRefused(const ProgramRun& run, int code, const std::string& must_mention) {
  EXPECT_EQ(run.exit_code, code) << Describe(run);
  EXPECT_EQ(run.out, "") << Describe(run);
  const std::vector<std::string> lines = Lines(run.err);
  ASSERT_EQ(lines.size(), 1u) << Describe(run);
  EXPECT_EQ(lines[0].rfind("ledger: ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(must_mention), std::string::npos) << lines[0];
}

mode_t ModeOf(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
  return info.st_mode & 07777;
}

// Sets the process umask (inherited by the `ledger` runs) for one scope.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

class AuditCli : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::string Data() const { return Path("data"); }
  ProgramRun RunCli(const std::vector<std::string>& args) { return testing::RunLedger(dir_.path(), args); }

  void Submit(const std::string& name, const std::string& lines) {
    WriteFile(Path(name), lines);
    const ProgramRun run = RunCli({"submit", "--data", Data(), "--clock", "occurred", Path(name)});
    ASSERT_EQ(run.exit_code, 0) << Describe(run);
  }
  // A key pair in Path(name)/, made with the library (keygen itself is tested below).
  std::string MakeKeys(const std::string& name) {
    const Status made = GenerateKeyPair(Path(name));
    EXPECT_TRUE(made.ok()) << made.ToString();
    return Path(name);
  }
  void Configure(const std::string& audit_lines) {
    WriteFile(Data() + "/ledger.toml", "[audit]\n" + audit_lines);
  }
  // kDay signed by a checkpoint with the key pair in Path("keys"), configured as [audit] private_key only.
  void SignedDay() {
    Submit("day.jsonl", kDay);
    Configure("private_key = \"" + MakeKeys("keys") + "/ledger-signing.key\"\n");
    const ProgramRun run = RunCli({"checkpoint", "--data", Data()});
    ASSERT_EQ(run.exit_code, 0) << Describe(run);
    checkpoint_sequence_ = json::parse(run.out)["checkpoint_sequence"].get<uint64_t>();
  }
  std::string Events() {
    const ProgramRun run = RunCli({"events", "--data", Data(), "--json"});
    EXPECT_EQ(run.exit_code, 0) << Describe(run);
    return run.out;
  }
  json ReplayJson(std::vector<std::string> extra, int expected_exit) {
    std::vector<std::string> args = {"replay", "--data", Data(), "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const ProgramRun run = RunCli(args);
    EXPECT_EQ(run.exit_code, expected_exit) << Describe(run);
    const json report = json::parse(run.out, nullptr, false);
    EXPECT_TRUE(report.is_object()) << Describe(run);
    return report.is_object() ? report : json::object();
  }

  testing::TempDir dir_;
  uint64_t checkpoint_sequence_ = 0;  // set by SignedDay
};

// ---------------------------------------------------------------------------------------------------------
// keygen

// Goal: a dangling symbolic link at a key path is refused, and nothing is written where it points.
TEST_F(AuditCli, KeygenRefusesADanglingSymlinkAtAKeyPath) {
  for (const std::string name : {"ledger-signing.key", "ledger-signing.pub"}) {
    SCOPED_TRACE(name);
    const std::string keys = Path("keys-" + name), outside = Path("outside-" + name);
    fs::create_directories(keys);
    fs::create_directories(outside);
    fs::create_symlink(outside + "/stolen", keys + "/" + name);

    const ProgramRun run = RunCli({"keygen", "--out", keys});

    ExpectRefused(run, kExitBadArguments, name);
    EXPECT_FALSE(fs::exists(fs::symlink_status(outside + "/stolen"))) << "written through the link";
    EXPECT_TRUE(fs::is_empty(outside));
    // Only the planted link is there: no half of a key pair was left behind.
    std::vector<std::string> entries;
    for (const auto& entry : fs::directory_iterator(keys))
      entries.push_back(entry.path().filename().string());
    EXPECT_EQ(entries, std::vector<std::string>{name});
    EXPECT_TRUE(fs::is_symlink(keys + "/" + name));
  }
}

// Goal: an --out that is a symbolic link is refused, and nothing is written in the folder it points to.
TEST_F(AuditCli, KeygenRefusesAnOutFolderThatIsASymlink) {
  fs::create_directories(Path("elsewhere"));
  fs::create_directory_symlink(Path("elsewhere"), Path("keys"));

  const ProgramRun run = RunCli({"keygen", "--out", Path("keys")});
  const ProgramRun with_slash = RunCli({"keygen", "--out", Path("keys") + "/"});

  ExpectRefused(run, kExitBadArguments, "symbolic link");
  ExpectRefused(with_slash, kExitBadArguments, "symbolic link");
  EXPECT_TRUE(fs::is_empty(Path("elsewhere")));
}

// Goal: the folder, private key and public key get modes 0700, 0600 and 0644 whatever the umask.
TEST_F(AuditCli, KeygenModesDoNotDependOnTheUmask) {
  for (const mode_t mask : {mode_t{077}, mode_t{000}, mode_t{022}}) {
    SCOPED_TRACE("umask " + std::to_string(mask));
    const std::string keys = Path("new-" + std::to_string(mask)) + "/keys";
    ProgramRun run;
    {
      ScopedUmask umask(mask);
      run = RunCli({"keygen", "--out", keys});
    }

    ASSERT_EQ(run.exit_code, 0) << Describe(run);
    EXPECT_EQ(ModeOf(keys), 0700u);
    EXPECT_EQ(ModeOf(keys + "/ledger-signing.key"), 0600u);
    EXPECT_EQ(ModeOf(keys + "/ledger-signing.pub"), 0644u);
    EXPECT_TRUE(SignatureVerifier::FromPemFile(keys + "/ledger-signing.pub").ok());
    EXPECT_TRUE(Signer::FromPemFile(keys + "/ledger-signing.key").ok());
  }
}

// ---------------------------------------------------------------------------------------------------------
// checkpoint

// Goal: the covers_sequence `checkpoint` prints is the sequence field of the CheckpointRecorded event stored.
TEST_F(AuditCli, CheckpointPrintsTheSequenceItsStoredEventCovers) {
  Submit("day.jsonl", kDay);
  Configure("private_key = \"" + MakeKeys("keys") + "/ledger-signing.key\"\n");
  for (const std::string more : {"", "more.jsonl"}) {  // a first checkpoint, then one after more events
    if (!more.empty()) Submit(more, kMore);
    const size_t events_before = Lines(Events()).size();

    const ProgramRun run = RunCli({"checkpoint", "--data", Data()});

    ASSERT_EQ(run.exit_code, 0) << Describe(run);
    const json printed = json::parse(run.out);
    const uint64_t sequence = printed["checkpoint_sequence"].get<uint64_t>();
    EXPECT_EQ(sequence, events_before + 1);
    const ProgramRun stored = RunCli({"events", "--data", Data(), "--from-seq", std::to_string(sequence),
                                      "--to-seq", std::to_string(sequence)});
    ASSERT_EQ(stored.exit_code, 0) << Describe(stored);
    const json event = json::parse(stored.out);
    ASSERT_EQ(event["type"], "CheckpointRecorded") << stored.out;
    EXPECT_EQ(printed["covers_sequence"], event["payload"]["sequence"]) << run.out << "\n" << stored.out;
    EXPECT_EQ(printed["chain_head"], event["hash"]);
    EXPECT_EQ(Lines(Events()).size(), events_before + 1);  // the checkpoint is the only event written
  }
}

// ---------------------------------------------------------------------------------------------------------
// replay: the trust anchor

// Goal: without any public key, a history with checkpoints is not reported VERIFIED and exits 4.
TEST_F(AuditCli, ReplayWithoutAKeyDoesNotCallSignedCheckpointsVerified) {
  SignedDay();
  const std::string events = Events();

  const ProgramRun text = RunCli({"replay", "--data", Data()});
  const json report = ReplayJson({}, kExitSignaturesNotChecked);

  EXPECT_EQ(text.exit_code, kExitSignaturesNotChecked) << Describe(text);
  EXPECT_EQ(text.out.find("VERIFIED"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("signatures NOT checked"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("no public key"), std::string::npos) << text.out;
  EXPECT_EQ(report["verified"], false);
  EXPECT_EQ(report["outcome"], "signatures_not_checked");
  EXPECT_EQ(report["signatures_checked"], false);
  EXPECT_EQ(report["checkpoints_seen"], 1);
  EXPECT_EQ(report["live_state_equal"], true);  // everything else was checked and holds
  EXPECT_TRUE(report["public_key"].is_null());
  EXPECT_EQ(Events(), events);
}

// Goal: a history without checkpoints and no key has nothing to sign-check: exit 0, saying "no checkpoints".
TEST_F(AuditCli, ReplayOfAHistoryWithoutCheckpointsNeedsNoKey) {
  Submit("day.jsonl", kDay);

  const ProgramRun text = RunCli({"replay", "--data", Data()});
  const json report = ReplayJson({}, kExitVerified);

  EXPECT_EQ(text.exit_code, kExitVerified) << Describe(text);
  EXPECT_EQ(text.out.rfind("replay VERIFIED", 0), 0u) << text.out;
  EXPECT_NE(text.out.find("no checkpoints"), std::string::npos) << text.out;
  EXPECT_EQ(report["verified"], true);
  EXPECT_EQ(report["outcome"], "verified");
  EXPECT_EQ(report["checkpoints_seen"], 0);
}

// Goal: without --pubkey, replay checks signatures with [audit] public_key (relative to the data folder).
TEST_F(AuditCli, ReplayChecksSignaturesWithTheConfiguredPublicKey) {
  Submit("day.jsonl", kDay);
  MakeKeys("data/audit-keys");
  Configure(
      "private_key = \"audit-keys/ledger-signing.key\"\npublic_key = \"audit-keys/ledger-signing.pub\"\n");
  const ProgramRun checkpoint = RunCli({"checkpoint", "--data", Data()});
  ASSERT_EQ(checkpoint.exit_code, 0) << Describe(checkpoint);  // private_key keeps working beside it

  const ProgramRun text = RunCli({"replay", "--data", Data()});
  const json report = ReplayJson({}, kExitVerified);

  EXPECT_EQ(text.exit_code, kExitVerified) << Describe(text);
  EXPECT_EQ(text.out.rfind("replay VERIFIED", 0), 0u) << text.out;
  EXPECT_EQ(report["verified"], true);
  EXPECT_EQ(report["signatures_checked"], true);
  EXPECT_EQ(report["checkpoints_verified"], 1);
  EXPECT_EQ(report["public_key"], Data() + "/audit-keys/ledger-signing.pub");
}

// Goal: checkpoints signed by another key than the trusted one (configured or --pubkey) fail with exit 5.
TEST_F(AuditCli, ReplayWithAnotherKeyThanTheSignersFails) {
  SignedDay();
  const std::string other = MakeKeys("other") + "/ledger-signing.pub";
  const std::string own = Path("keys") + "/ledger-signing.pub";
  Configure("private_key = \"" + Path("keys") + "/ledger-signing.key\"\npublic_key = \"" + other + "\"\n");

  const json configured = ReplayJson({}, kExitNotVerified);
  const json given = ReplayJson({"--pubkey", other}, kExitNotVerified);
  const json overridden = ReplayJson({"--pubkey", own}, kExitVerified);

  for (const json& report : {configured, given}) {
    EXPECT_EQ(report["verified"], false) << report.dump();
    EXPECT_EQ(report["outcome"], "not_verified");
    EXPECT_EQ(report["first_bad_sequence"], checkpoint_sequence_) << report.dump();
    EXPECT_NE(report["problem"].get<std::string>().find("another key"), std::string::npos) << report.dump();
    EXPECT_EQ(report["public_key"], other);
  }
  EXPECT_EQ(overridden["verified"], true) << overridden.dump();  // --pubkey overrides the configured key
  EXPECT_EQ(overridden["public_key"], own);
}

// Goal: a configured public key that cannot be read is bad input (exit 2), never a silent "not checked".
TEST_F(AuditCli, ReplayWithAnUnreadableConfiguredKeyIsBadInput) {
  SignedDay();
  Configure("public_key = \"audit-keys/missing.pub\"\n");

  const ProgramRun run = RunCli({"replay", "--data", Data()});

  ExpectRefused(run, kExitBadArguments, "missing.pub");
}

// ---------------------------------------------------------------------------------------------------------
// replay: exit codes and named differences

// Goal: a live store differing from its rebuilt history fails (exit 5), naming each projector's first key.
TEST_F(AuditCli, ReplayNamesTheFirstDifferingKeyOfTheLiveState) {
  Submit("day.jsonl", kDay);
  constexpr int64_t kRebuilt = 1'000'000 - 10'000;  // C1:debit after kDay
  constexpr int64_t kAltered = kRebuilt + 100'000'000;
  {
    // Someone with disk access raises C1's balance in the live store (not through an event).
    Result<std::unique_ptr<Store>> store = Store::Open(Data(), StoreOptions());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Overlay overlay((*store)->state());
    fb::BalanceRecordT balance;
    ASSERT_TRUE(LoadRecord((*store)->state(), keys::Balance("C1:debit"), &balance));
    ASSERT_EQ(balance.balance_minor, kRebuilt);
    balance.balance_minor = kAltered;
    SaveRecord(overlay, keys::Balance("C1:debit"), balance);
    CommitBatch batch;
    batch.state = &overlay;
    ASSERT_TRUE((*store)->Commit(batch).ok());
  }

  const ProgramRun text = RunCli({"replay", "--data", Data()});
  const json report = ReplayJson({}, kExitNotVerified);

  EXPECT_EQ(text.exit_code, kExitNotVerified) << Describe(text);
  EXPECT_EQ(text.out.rfind("replay FAILED", 0), 0u) << text.out;
  const std::string line = "  projector balances: first differing key b/C1:debit: live " +
                           std::to_string(kAltered) + ", rebuilt " + std::to_string(kRebuilt) + "\n";
  EXPECT_NE(text.out.find(line), std::string::npos) << text.out;
  EXPECT_EQ(report["live_state_equal"], false);
  ASSERT_TRUE(report["state_differences"].is_array()) << report.dump();
  ASSERT_EQ(report["state_differences"].size(), 1u) << report.dump();  // only the balances projector differs
  const json& difference = report["state_differences"][0];
  EXPECT_EQ(difference["projector"], "balances");
  EXPECT_EQ(difference["key"], "b/C1:debit");
  EXPECT_NE(difference["live"].get<std::string>().find(std::to_string(kAltered)), std::string::npos)
      << difference;
  EXPECT_NE(difference["rebuilt"].get<std::string>().find(std::to_string(kRebuilt)), std::string::npos)
      << difference;
  EXPECT_TRUE(report["first_bad_sequence"].is_null());  // the history itself verifies
}

// Goal: a history that does not verify exits 5, one that cannot be read exits 1, bad arguments exit 2.
TEST_F(AuditCli, ReplayExitCodesSeparateFailedFromUnreadableAndBadArguments) {
  Submit("day.jsonl", kDay);
  {
    // A re-chained change would be caught the same way; a record no longer decoding is the simplest.
    Result<std::unique_ptr<Store>> store = Store::Open(Data(), StoreOptions());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE(testing::TEST_PutEventRaw(**store, 3, "not an event").ok());
  }
  const json failed = ReplayJson({}, kExitNotVerified);
  EXPECT_EQ(failed["verified"], false);
  EXPECT_EQ(failed["first_bad_sequence"], 3);

  // The store's CURRENT names a manifest that is gone: nothing can be read.
  WriteFile(Data() + "/CURRENT", "MANIFEST-999999\n");
  const ProgramRun unreadable = RunCli({"replay", "--data", Data(), "--json"});
  EXPECT_EQ(unreadable.exit_code, kExitStorage) << Describe(unreadable);
  EXPECT_EQ(unreadable.out, "");

  ExpectRefused(RunCli({"replay", "--data", Path("nowhere")}), kExitBadArguments, "no ledger data");
}

}  // namespace
}  // namespace ledger
