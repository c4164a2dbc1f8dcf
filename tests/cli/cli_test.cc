// Goal: `ledger` keeps README's command-line contract: outputs, exit codes, nothing written on bad input.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

extern char** environ;

namespace ledger {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

using Outcome = testing::ProgramRun;
using testing::Describe;
using testing::Lines;
using testing::ReadFile;
using testing::RunLedger;
using testing::WriteFile;

// A bad-input failure: exit 2, one line "ledger: ..." on stderr, nothing on stdout.
void ExpectBadInput(const Outcome& run, const std::string& must_mention = "") {
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_EQ(run.signal, 0) << Describe(run);
  EXPECT_EQ(run.out, "") << Describe(run);
  const std::vector<std::string> lines = Lines(run.err);
  ASSERT_EQ(lines.size(), 1u) << Describe(run);
  EXPECT_EQ(lines[0].rfind("ledger: ", 0), 0u) << lines[0];
  if (!must_mention.empty()) {
    EXPECT_NE(lines[0].find(must_mention), std::string::npos) << lines[0];
  }
}

// Six commands: C1 opens an account, M1 opens, C1 deposits 10,000.00, C1 pays 100.00 with sms (fee 0.60), a
// deposit to an unknown account is rejected, C1 gets 1,500 points.
const char kDay[] =
    R"({"type":"open_account","command_id":"a1","customer":"C1","account":"C1:debit","kind":"debit_card","occurred_at":"2026-11-25T09:00:00+08:00"}
{"type":"open_merchant","command_id":"m1","merchant":"M1","name":"Rail tickets","fee_bps":60,"occurred_at":"2026-11-25T09:00:00+08:00"}
{"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":1000000,"occurred_at":"2026-11-25T09:00:00+08:00"}
{"type":"pay","command_id":"M1:ORD1","merchant":"M1","merchant_order_no":"ORD1","customer":"C1","funding":"own_account","account":"C1:debit","channel":"b2c_pc","medium":"sms","order_amount_minor":10000,"occurred_at":"2026-11-25T10:00:00+08:00"}
{"type":"deposit","command_id":"d2","account":"C9:debit","amount_minor":5,"occurred_at":"2026-11-25T09:00:00+08:00"}
{"type":"award_points","command_id":"p1","customer":"C1","points":1500,"occurred_at":"2026-11-25T09:00:00+08:00"}
)";

class Cli : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::string Data() const { return Path("data"); }
  Outcome RunCli(const std::vector<std::string>& args, const std::string& stdin_path = "") {
    return RunLedger(dir_.path(), args, stdin_path);
  }
  // Submits kDay into Data(); fails the test unless it exits 0.
  void SubmitDay() {
    WriteFile(Path("day.jsonl"), kDay);
    const Outcome run = RunCli({"submit", "--data", Data(), "--clock", "occurred", Path("day.jsonl")});
    ASSERT_EQ(run.exit_code, 0) << Describe(run);
  }
  // Everything a reader can see of the ledger: all events and all balances.
  std::string Snapshot() {
    const Outcome events = RunCli({"events", "--data", Data(), "--json"});
    const Outcome balances = RunCli({"balance", "--data", Data(), "--all", "--json"});
    EXPECT_EQ(events.exit_code, 0) << Describe(events);
    EXPECT_EQ(balances.exit_code, 0) << Describe(balances);
    return events.out + balances.out;
  }

  testing::TempDir dir_;
};

// Read-only commands over one ledger holding kDay, made once for the suite (queries write nothing, and
// starting the program is the slow part of these tests, especially under ASan).
class CliQuery : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shared_ = new testing::TempDir();
    WriteFile(shared_->path() + "/day.jsonl", kDay);
    const Outcome run = RunLedger(
        shared_->path(), {"submit", "--data", Data(), "--clock", "occurred", shared_->path() + "/day.jsonl"});
    ASSERT_EQ(run.exit_code, 0) << Describe(run);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }
  static std::string Data() { return shared_->path() + "/data"; }
  Outcome RunCli(const std::vector<std::string>& args) { return RunLedger(scratch_.path(), args); }

  static testing::TempDir* shared_;
  testing::TempDir scratch_;  // this test's captured outputs
};

testing::TempDir* CliQuery::shared_ = nullptr;

TEST_F(Cli, SubmitPrintsOneResultPerCommandAndExitsZero) {
  WriteFile(Path("day.jsonl"), kDay);

  const Outcome run = RunCli({"submit", "--data", Data(), "--clock", "occurred", Path("day.jsonl")});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 6u) << run.out;
  const std::vector<std::string> ids = {"a1", "m1", "d1", "M1:ORD1", "d2", "p1"};
  uint64_t expected_sequence = 1;
  for (size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(lines[i]);
    const ordered_json result = ordered_json::parse(lines[i]);
    std::vector<std::string> keys;
    for (const auto& [key, value] : result.items()) keys.push_back(key);
    EXPECT_EQ(keys, (std::vector<std::string>{"command_id", "status", "reason", "detail", "transaction_id",
                                              "sequences"}));
    EXPECT_EQ(result["command_id"], ids[i]);
    ASSERT_TRUE(result["sequences"].is_array());
    ASSERT_FALSE(result["sequences"].empty());
    EXPECT_EQ(result["sequences"][0], expected_sequence);
    EXPECT_EQ(result["transaction_id"], "0-" + std::to_string(expected_sequence));
    expected_sequence += result["sequences"].size();
    if (ids[i] == "d2") {
      EXPECT_EQ(result["status"], "rejected");
      EXPECT_EQ(result["reason"], "UNKNOWN_ACCOUNT");
      EXPECT_EQ(result["detail"], "no account C9:debit");
    } else {
      EXPECT_EQ(result["status"], "accepted");
      EXPECT_TRUE(result["reason"].is_null());
      EXPECT_TRUE(result["detail"].is_null());
    }
  }
}

TEST_F(Cli, ResubmittingTheSameFileGivesDuplicatesAndWritesNothing) {
  SubmitDay();
  const std::string before = Snapshot();
  const Outcome first = RunCli({"submit", "--data", Data(), "--clock", "occurred", Path("day.jsonl")});

  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  const std::vector<std::string> lines = Lines(first.out);
  ASSERT_EQ(lines.size(), 6u);
  for (const std::string& line : lines) {
    SCOPED_TRACE(line);
    const json result = json::parse(line);
    EXPECT_EQ(result["status"], "duplicate");
    if (result["command_id"] == "d2") {
      EXPECT_EQ(result["reason"], "UNKNOWN_ACCOUNT");
    }
    if (result["command_id"] == "a1") {
      EXPECT_EQ(result["sequences"], json::array({1}));
    }
  }
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(CliQuery, BalanceShowsBalanceAndUnit) {
  const Outcome debit = RunCli({"balance", "--data", Data(), "C1:debit", "--json"});
  const Outcome points = RunCli({"balance", "--data", Data(), "C1:points", "--json"});
  const Outcome merchant = RunCli({"balance", "--data", Data(), "merchant:M1", "--json"});

  ASSERT_EQ(debit.exit_code, 0) << Describe(debit);
  EXPECT_EQ(json::parse(debit.out),
            json::parse(R"({"account":"C1:debit","unit":"CNY","balance_minor":990000})"));
  ASSERT_EQ(points.exit_code, 0) << Describe(points);
  EXPECT_EQ(json::parse(points.out),
            json::parse(R"({"account":"C1:points","unit":"POINTS","balance_minor":1500})"));
  ASSERT_EQ(merchant.exit_code, 0) << Describe(merchant);
  EXPECT_EQ(json::parse(merchant.out)["balance_minor"], 10000 - 60);
  EXPECT_EQ(Lines(debit.out).size(), 1u);
}

TEST_F(CliQuery, BalanceAllEndsWithZeroSumsByUnit) {
  const Outcome run = RunCli({"balance", "--data", Data(), "--all", "--json"});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_FALSE(lines.empty());
  const std::string suffix = R"("sum_by_unit":{"CNY":0,"POINTS":0}})";
  ASSERT_GE(lines.back().size(), suffix.size());
  EXPECT_EQ(lines.back().substr(lines.back().size() - suffix.size()), suffix) << lines.back();
  const ordered_json all = ordered_json::parse(run.out);
  ASSERT_TRUE(all.contains("accounts"));
  int64_t debit = -1;
  for (const auto& account : all["accounts"]) {
    if (account["account"] == "C1:debit") debit = account["balance_minor"];
  }
  EXPECT_EQ(debit, 990000);
  EXPECT_EQ(all.back(), ordered_json::parse(R"({"CNY":0,"POINTS":0})"));
}

TEST_F(CliQuery, EventsAreOneJsonObjectPerLineAndHashChained) {
  const Outcome run = RunCli({"events", "--data", Data(), "--json"});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 6u) << run.out;
  std::string previous_hash(64, '0');
  for (size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(lines[i]);
    const json event = json::parse(lines[i]);
    EXPECT_EQ(event["sequence"], i + 1);
    ASSERT_TRUE(event["type"].is_string());
    ASSERT_TRUE(event["prev_hash"].is_string());
    ASSERT_TRUE(event["hash"].is_string());
    const std::string hash = event["hash"];
    EXPECT_EQ(hash.size(), 64u);
    EXPECT_EQ(hash.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(event["prev_hash"], previous_hash);
    EXPECT_NE(hash, previous_hash);
    previous_hash = hash;
  }
  EXPECT_EQ(json::parse(lines[0])["type"], "AccountOpened");
  EXPECT_EQ(json::parse(lines[4])["type"], "CommandRejected");
}

TEST_F(CliQuery, EventsRangeSelectsSequences) {
  const Outcome run = RunCli({"events", "--data", Data(), "--from-seq", "2", "--to-seq", "3", "--json"});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(json::parse(lines[0])["sequence"], 2);
  EXPECT_EQ(json::parse(lines[1])["sequence"], 3);
}

// Goal: events and replay refuse a negative --from-seq or --to-seq (exit 2), never reading it as "to the
// end".
TEST_F(CliQuery, NegativeSequencesAreBadArguments) {
  const std::vector<std::vector<std::string>> commands = {
      {"events", "--data", Data(), "--from-seq", "-1", "--json"},
      {"events", "--data", Data(), "--to-seq", "-2", "--json"},
      {"events", "--data", Data(), "--from-seq", "-1", "--to-seq", "-1", "--json"},
      {"replay", "--data", Data(), "--to-seq", "-1", "--json"},
  };
  for (const std::vector<std::string>& args : commands) {
    SCOPED_TRACE(args[0] + " " + args[3] + " " + args[4]);
    ExpectBadInput(RunCli(args), args[3] + ": must be a sequence number (a whole number, 0 or more)");
  }
}

TEST_F(CliQuery, LimitsShowUsageOfTheMediumUsed) {
  const Outcome run = RunCli({"limits", "--data", Data(), "C1", "--date", "2026-11-25", "--json"});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const json limits = json::parse(run.out);
  EXPECT_EQ(limits["customer"], "C1");
  EXPECT_EQ(limits["date"], "2026-11-25");
  bool saw_sms = false;
  for (const json& medium : limits["media"]) {
    SCOPED_TRACE(medium.dump());
    if (medium["medium"] == "sms") {
      saw_sms = true;
      EXPECT_EQ(medium["used_today_minor"], 10000);
      EXPECT_EQ(medium["payments_today"], 1);
      EXPECT_EQ(medium["used_month_minor"], 10000);
      EXPECT_EQ(medium["daily_minor"], 500000);
      EXPECT_EQ(medium["remaining_today_minor"], 500000 - 10000);
      EXPECT_EQ(medium["remaining_month_minor"], 5000000 - 10000);
    } else {
      EXPECT_EQ(medium["used_today_minor"], 0);
      EXPECT_EQ(medium["payments_today"], 0);
    }
  }
  EXPECT_TRUE(saw_sms);
  for (const json& channel : limits["channels"]) {
    if (channel["channel"] == "b2c_pc") {
      EXPECT_EQ(channel["used_today_minor"], 10000);
    }
  }
}

TEST_F(CliQuery, LimitsOnAnotherDayShowNoUsage) {
  const Outcome run = RunCli({"limits", "--data", Data(), "C1", "--date", "2026-11-26", "--json"});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const json limits = json::parse(run.out);
  for (const json& medium : limits["media"]) {
    EXPECT_EQ(medium["used_today_minor"], 0) << medium.dump();
    if (medium["medium"] == "sms") {
      EXPECT_EQ(medium["used_month_minor"], 10000);  // same month
    }
  }
}

TEST_F(CliQuery, LimitsWithoutJsonPrintOneReadableLinePerMediumAndChannel) {
  const Outcome run = RunCli({"limits", "--data", Data(), "C1", "--date", "2026-11-25"});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 1u + 6 + 10) << run.out;  // a title, six media, ten channels
  EXPECT_EQ(lines[0], "limits of C1 on 2026-11-25 (amounts in CNY)");
  EXPECT_EQ(run.out.find('{'), std::string::npos) << "text, not JSON: " << run.out;
  // C1 paid 100.00 by sms through b2c_pc: the default sms policy is 5,000.00 a day and 50,000.00 a month.
  EXPECT_NE(
      run.out.find("medium  sms              per payment 5000.00; today 100.00 of 5000.00 (4900.00 left); "
                   "this month 100.00 of 50000.00 (49900.00 left); payments today 1 (no limit)\n"),
      std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("medium  u_shield         per payment "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("; today 0.00 of "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("channel b2c_pc                today 100.00 (no limit); payments today 1\n"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("channel qr_static             today 0.00 of "), std::string::npos) << run.out;
}

TEST_F(CliQuery, LimitsTextAndJsonShowTheSameUsage) {
  const Outcome text = RunCli({"limits", "--data", Data(), "C1", "--date", "2026-11-25"});
  const Outcome json_run = RunCli({"limits", "--data", Data(), "C1", "--date", "2026-11-25", "--json"});

  ASSERT_EQ(text.exit_code, 0) << Describe(text);
  ASSERT_EQ(json_run.exit_code, 0) << Describe(json_run);
  ASSERT_EQ(Lines(json_run.out).size(), 1u) << "--json stays one JSON object on one line: " << json_run.out;
  const json limits = json::parse(json_run.out);
  const std::vector<std::string> lines = Lines(text.out);
  ASSERT_EQ(lines.size(), 1 + limits["media"].size() + limits["channels"].size()) << text.out;
  for (size_t i = 0; i < limits["media"].size(); ++i) {
    const json& medium = limits["media"][i];
    EXPECT_EQ(lines[1 + i].rfind("medium  " + medium["medium"].get<std::string>() + " ", 0), 0u)
        << lines[1 + i];
    EXPECT_NE(lines[1 + i].find("payments today " + std::to_string(medium["payments_today"].get<int64_t>())),
              std::string::npos)
        << lines[1 + i];
  }
}

// Line 3 of each input is bad in another way; lines 1, 2 and 4 are valid.
std::vector<std::string> BadInputs() {
  const std::string good1 =
      R"({"type":"open_account","command_id":"a2","customer":"C2","account":"C2:debit","kind":"debit_card"})";
  const std::string good2 = R"({"type":"deposit","command_id":"d9","account":"C1:debit","amount_minor":777})";
  const std::string good4 = R"({"type":"deposit","command_id":"d10","account":"C1:debit","amount_minor":1})";
  const std::string bad3[] = {
      R"({"type":"deposit","command_id":"d3","account":"C1:debit",)",                     // malformed JSON
      R"({"type":"deposit","command_id":"d3","account":"C1:debit","amount_minor":"5"})",  // wrong type
      // an unknown field
      R"({"type":"deposit","command_id":"d3","account":"C1:debit","amount_minor":5,"memo":1})",
  };
  std::vector<std::string> inputs;
  for (const std::string& bad : bad3) {
    inputs.push_back(good1 + "\n" + good2 + "\n" + bad + "\n" + good4 + "\n");
  }
  return inputs;
}

TEST_F(Cli, BadLineInFreshFolderIsExitTwoAndWritesNothing) {
  int n = 0;
  for (const std::string& input : BadInputs()) {
    SCOPED_TRACE(input);
    const std::string data = Path("fresh" + std::to_string(++n));
    const std::string file = Path("bad" + std::to_string(n) + ".jsonl");
    WriteFile(file, input);

    const Outcome run = RunCli({"submit", "--data", data, "--clock", "occurred", file});

    ExpectBadInput(run, "line 3");
    EXPECT_FALSE(fs::exists(data + "/CURRENT"));
    const Outcome events = RunCli({"events", "--data", data, "--json"});
    EXPECT_NE(events.exit_code, 0) << Describe(events);
    EXPECT_EQ(events.out, "");
  }
}

TEST_F(Cli, BadLineLeavesExistingLedgerUnchanged) {
  SubmitDay();
  const std::string before = Snapshot();
  int n = 0;
  for (const std::string& input : BadInputs()) {
    SCOPED_TRACE(input);
    const std::string file = Path("bad" + std::to_string(++n) + ".jsonl");
    WriteFile(file, input);

    const Outcome run = RunCli({"submit", "--data", Data(), "--clock", "occurred", file});

    ExpectBadInput(run, "line 3");
  }
  EXPECT_EQ(Snapshot(), before);  // no events and no balance changed (line 2 would have deposited 7.77)
}

TEST_F(Cli, BadLineFromStdinNamesTheLine) {
  WriteFile(Path("bad.jsonl"), BadInputs()[0]);

  const Outcome run = RunCli({"submit", "--data", Data(), "--clock", "occurred", "-"}, Path("bad.jsonl"));

  ExpectBadInput(run, "line 3");
  EXPECT_FALSE(fs::exists(Data() + "/CURRENT"));
}

// Not a command type the ledger knows, with a non-string occurred_at: a wrong JSON type, so an input error
// (exit 2, the line named), never a crash.
TEST_F(Cli, UnknownTypeWithNumericOccurredAtIsBadInputNotACrash) {
  WriteFile(Path("odd.jsonl"),
            std::string(kDay) + R"({"type":"frobnicate","command_id":"x1","occurred_at":5})" + "\n");

  const Outcome run = RunCli({"submit", "--data", Data(), "--clock", "occurred", Path("odd.jsonl")});

  ExpectBadInput(run, "line 7");
  EXPECT_FALSE(fs::exists(Data() + "/CURRENT"));
}

TEST_F(Cli, SubmitReadsStdinWithDash) {
  WriteFile(Path("day.jsonl"), kDay);

  const Outcome run = RunCli({"submit", "--data", Data(), "--clock", "occurred", "-"}, Path("day.jsonl"));

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(json::parse(lines[0])["command_id"], "a1");
  EXPECT_EQ(json::parse(lines[0])["status"], "accepted");
  const Outcome balance = RunCli({"balance", "--data", Data(), "C1:debit", "--json"});
  ASSERT_EQ(balance.exit_code, 0) << Describe(balance);
  EXPECT_EQ(json::parse(balance.out)["balance_minor"], 990000);
}

TEST_F(Cli, BlankLinesAreSkippedAndCountedInLineNumbers) {
  const std::string input =
      std::string("\n") +
      R"({"type":"open_account","command_id":"a1","customer":"C1","account":"C1:debit","kind":"debit_card"})" +
      "\r\n   \n{bad\n";
  WriteFile(Path("blank.jsonl"), input);

  const Outcome run = RunCli({"submit", "--data", Data(), "--clock", "occurred", Path("blank.jsonl")});

  ExpectBadInput(run, "line 4");
}

// A NUL byte does not end a line: submit hands the parser the whole line, which refuses it.
TEST_F(Cli, NulByteInALineIsBadInputNamingTheLine) {
  const std::string deposit = R"({"type":"deposit","command_id":"d3","account":"C1:debit","amount_minor":5})";
  const std::string hidden = R"(,"amount_minor":7})";
  WriteFile(Path("nul.jsonl"), std::string(kDay) + deposit + std::string(1, '\0') + hidden + "\n");

  const Outcome run = RunCli({"submit", "--data", Data(), "--clock", "occurred", Path("nul.jsonl")});

  ExpectBadInput(run, "line 7");
  EXPECT_NE(run.err.find("NUL"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(Data() + "/CURRENT"));
}

TEST_F(Cli, SystemClockRejectsSkewedCommandAsBusinessOutcome) {
  WriteFile(
      Path("skew.jsonl"),
      R"({"type":"open_account","command_id":"a1","customer":"C1","account":"C1:debit","kind":"debit_card","occurred_at":"2026-11-25T10:00:00+08:00"}
{"type":"open_account","command_id":"a2","customer":"C2","account":"C2:debit","kind":"debit_card","occurred_at":"2026-11-25T10:06:00+08:00"}
)");

  const Outcome run =
      RunCli({"submit", "--data", Data(), "--now", "2026-11-25T10:00:00+08:00", Path("skew.jsonl")});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(json::parse(lines[0])["status"], "accepted");
  EXPECT_EQ(json::parse(lines[1])["status"], "rejected");
  EXPECT_EQ(json::parse(lines[1])["reason"], "CLOCK_SKEW");
}

TEST_F(CliQuery, UnknownAccountIsBadInput) {
  const Outcome run = RunCli({"balance", "--data", Data(), "C9:debit", "--json"});

  ExpectBadInput(run, "C9:debit");
  // A customer that does not exist, and an account its customer never opened.
  ExpectBadInput(RunCli({"balance", "--data", Data(), "C9:points", "--json"}), "C9:points");
  ExpectBadInput(RunCli({"balance", "--data", Data(), "C1:savings", "--json"}), "C1:savings");
  ExpectBadInput(RunCli({"limits", "--data", Data(), "C9", "--date", "2026-11-25", "--json"}), "C9");
}

TEST_F(CliQuery, BankAccountWithoutPostingsShowsZero) {
  const Outcome run = RunCli({"balance", "--data", Data(), "gl:interbank:wechat", "--json"});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_EQ(json::parse(run.out),
            json::parse(R"({"account":"gl:interbank:wechat","unit":"CNY","balance_minor":0})"));
}

// README lists the bank's own accounts (gl:funding, gl:fee_income, ...); any other "gl:" name is as unknown
// as any other account, and must not read as a zero balance.
TEST_F(CliQuery, MisspeltBankAccountIsBadInput) {
  const Outcome run = RunCli({"balance", "--data", Data(), "gl:fee_incme", "--json"});

  ExpectBadInput(run, "gl:fee_incme");
}

TEST_F(Cli, MissingDataFolderIsBadInputAndCreatesNothing) {
  const std::string missing = Path("missing");
  const std::vector<std::vector<std::string>> commands = {
      {"balance", "--data", missing, "C1:debit", "--json"},
      {"balance", "--data", missing, "--all", "--json"},
      {"events", "--data", missing, "--json"},
      {"limits", "--data", missing, "C1", "--date", "2026-11-25", "--json"},
  };
  for (const std::vector<std::string>& args : commands) {
    SCOPED_TRACE(args[0]);
    ExpectBadInput(RunCli(args));
    EXPECT_FALSE(fs::exists(missing));
  }
}

TEST_F(Cli, MissingInputFileIsBadInput) {
  ExpectBadInput(RunCli({"submit", "--data", Data(), Path("nope.jsonl")}));
  EXPECT_FALSE(fs::exists(Data() + "/CURRENT"));
}

TEST_F(Cli, BadArgumentsAreExitTwo) {
  ExpectBadInput(RunCli({"balance", "--data", Data()}));  // neither ACCOUNT nor --all
  ExpectBadInput(RunCli({"frobnicate"}));                 // unknown command
  ExpectBadInput(RunCli({"submit", "--data", Data(), "--clock", "sundial", "-"}));  // bad --clock
  ExpectBadInput(RunCli({"submit", "--data", Data(), "--now", "noon", "-"}));       // bad --now
  EXPECT_FALSE(fs::exists(Data() + "/CURRENT"));
}

TEST_F(Cli, BadConfigIsBadInputNamingTheLine) {
  SubmitDay();
  const std::string before = Snapshot();
  WriteFile(Data() + "/ledger.toml", "[ledger]\nshard = 0\n[limits.sms]\ndaily_minor = \"1000\"\n");
  const std::string more = R"({"type":"deposit","command_id":"d9","account":"C1:debit","amount_minor":777})";
  WriteFile(Path("more.jsonl"), more + "\n");

  const Outcome run = RunCli({"submit", "--data", Data(), "--clock", "occurred", Path("more.jsonl")});

  ExpectBadInput(run, "line 4");
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(Cli, DemoPrintsSummaryWithZeroSums) {
  const Outcome run = RunCli(
      {"demo", "--data", Data(), "--payments", "300", "--customers", "50", "--merchants", "10", "--json"});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 1u) << run.out;
  const json summary = json::parse(lines[0]);
  EXPECT_EQ(summary["sum_by_unit"], json::parse(R"({"CNY":0,"POINTS":0})"));
  ASSERT_TRUE(summary["accepted"].is_number_integer());
  EXPECT_GT(summary["accepted"].get<int64_t>(), 0);
  const Outcome all = RunCli({"balance", "--data", Data(), "--all", "--json"});
  ASSERT_EQ(all.exit_code, 0) << Describe(all);
  EXPECT_EQ(json::parse(all.out)["sum_by_unit"], json::parse(R"({"CNY":0,"POINTS":0})"));
}

// Whether a running process's command line holds `needle` (its words joined by spaces).
bool AProcessRuns(const std::string& needle) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string words((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(words.begin(), words.end(), '\0', ' ');
    if (words.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST_F(Cli, DemoGoesThroughTheFrontDoorAndStopsTheGateway) {
  const Outcome run = RunCli(
      {"demo", "--data", Data(), "--payments", "300", "--customers", "50", "--merchants", "10", "--json"});

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const json door = json::parse(Lines(run.out).at(0))["front_door"];
  EXPECT_EQ(door["codepay"], "SUCCESS") << door;
  EXPECT_EQ(door["reverse"], "REVOKED") << door;
  EXPECT_EQ(door["native_paid"], "SUCCESS") << door;
  EXPECT_EQ(door["query"], "SUCCESS") << door;
  EXPECT_EQ(door["refund"], "SUCCESS") << door;
  EXPECT_EQ(door["merchant_requests"], 7) << door;
  EXPECT_EQ(door["customer_requests"], 3) << door;
  // The bill the merchant downloaded holds the three lines, and is kept.
  const std::string bill = ReadFile(door["bill_file"].get<std::string>());
  EXPECT_EQ(static_cast<int64_t>(bill.size()), door["bill_bytes"].get<int64_t>());
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"`DEMO-CODEPAY-1,", "`REVOKED,"},
      {"`DEMO-NATIVE-1,", "`SUCCESS,`OTHERS,`CNY,`88.00,"},
      {"`DEMO-REFUND-1,", "`20.00,"}};
  for (const auto& [order, state] : rows) {
    int found = 0;
    for (const std::string& line : Lines(bill))
      found += line.find(order) != std::string::npos && line.find(state) != std::string::npos;
    EXPECT_EQ(found, 1) << order << " " << state << "\n" << bill;
  }
  // What went through the gateway is in the ledger: the native order paid 88.00, 20.00 of it refunded.
  const Outcome events = RunCli({"events", "--data", Data(), "--json"});
  ASSERT_EQ(events.exit_code, 0) << Describe(events);
  int captured = 0, refunded = 0;
  for (const std::string& line : Lines(events.out)) {
    const json event = json::parse(line);
    if (event["type"] == "PaymentCaptured" &&
        event["payload"].value("merchant_order_no", "") == "DEMO-NATIVE-1") {
      ++captured;
      EXPECT_EQ(event["payload"]["order_amount_minor"], 8800) << line;
    }
    if (event["type"] == "PaymentRefunded" && event["payload"].value("refund_no", "") == "DEMO-REFUND-1")
      ++refunded;
  }
  EXPECT_EQ(captured, 1);
  EXPECT_EQ(refunded, 1);
  EXPECT_FALSE(AProcessRuns("gateway --data " + Data())) << "the demo left its gateway running";
}

TEST_F(Cli, DemoRefusesExistingLedgerUnlessFresh) {
  SubmitDay();  // an existing ledger (cheaper to make than a demo day)
  const std::string before = Snapshot();
  // clang-format off
  const std::vector<std::string> demo = {"demo", "--data", Data(), "--payments", "300", "--customers", "50",
                                         "--merchants", "10", "--json"};
  // clang-format on

  const Outcome again = RunCli(demo);

  ExpectBadInput(again, "--fresh");
  EXPECT_EQ(Snapshot(), before);

  std::vector<std::string> fresh = demo;
  fresh.push_back("--fresh");
  const Outcome replaced = RunCli(fresh);
  ASSERT_EQ(replaced.exit_code, 0) << Describe(replaced);
  const json summary = json::parse(replaced.out);
  EXPECT_EQ(summary["sum_by_unit"], json::parse(R"({"CNY":0,"POINTS":0})"));
  EXPECT_GT(summary["accepted"].get<int64_t>(), 0);
  // The old ledger is gone: kDay's account C1:debit is not in the demo day (its customers are C00001, ...).
  ExpectBadInput(RunCli({"balance", "--data", Data(), "C1:debit", "--json"}), "C1:debit");
}

TEST_F(Cli, DemoFreshRefusesToDeleteAFolderThatHoldsNoLedger) {
  WriteFile(Path("keep.txt"), "precious");

  const Outcome run = RunCli({"demo", "--data", dir_.path(), "--payments", "10", "--customers", "5",
                              "--merchants", "2", "--fresh", "--json"});

  ExpectBadInput(run);
  EXPECT_EQ(ReadFile(Path("keep.txt")), "precious");
}

// A small `ledger bench` run: no Kafka, no fsync (the figures are not what is tested here).
std::vector<std::string> SmallBench(const std::string& data, const std::string& kafka = "none") {
  return {"bench", "--data",  data,  "--commands", "400", "--customers", "40", "--merchants",
          "4",     "--kafka", kafka, "--sync",     "off", "--seed",      "3"};
}

TEST_F(Cli, BenchAnswersEveryMeasuredCommandAndTheSameSeedGivesTheSameOutcomes) {
  std::vector<std::string> as_json = SmallBench(Path("json-run"));
  as_json.push_back("--json");

  const Outcome json_run = RunCli(as_json);
  const Outcome text_run = RunCli(SmallBench(Path("text-run")));

  ASSERT_EQ(json_run.exit_code, 0) << Describe(json_run);
  ASSERT_EQ(Lines(json_run.out).size(), 1u) << json_run.out;
  const json report = json::parse(json_run.out);
  EXPECT_EQ(report["commands"], 400);
  EXPECT_EQ(report["mode"], "closed_loop");
  EXPECT_EQ(report["outstanding"], 2 * 2048);  // two groups of the default group_commit.commands_max
  EXPECT_EQ(report["kafka"], "none");
  EXPECT_EQ(report["sync"], false);
  EXPECT_EQ(report["events_published"], 0);
  const int64_t accepted = report["accepted"], rejected = report["rejected"],
                duplicates = report["duplicates"];
  EXPECT_EQ(accepted + rejected + duplicates, 400);
  EXPECT_GT(rejected, 0) << "the mix breaks limits and reverses payments twice";
  EXPECT_GE(report["events"].get<int64_t>(), accepted);
  // Set-up: 4 merchants, then per customer an account, a deposit and points, then one coupon per coupon
  // payment.
  EXPECT_GT(report["setup"]["commands"].get<int64_t>(), 4 + 40 * 3);
  EXPECT_EQ(report["setup"]["rejected"], 0);
  const json& latency = report["latency_ms"];
  EXPECT_LE(latency["p50"].get<double>(), latency["p99"].get<double>());
  EXPECT_LE(latency["p99"].get<double>(), latency["p99_9"].get<double>());
  EXPECT_LE(latency["p99_9"].get<double>(), latency["max"].get<double>());

  ASSERT_EQ(text_run.exit_code, 0) << Describe(text_run);
  const std::vector<std::string> lines = Lines(text_run.out);
  ASSERT_EQ(lines.size(), 4u) << text_run.out;
  EXPECT_EQ(lines[0].rfind("ledger bench: 400 commands in ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("(closed loop, kafka none, sync off)"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1].rfind("  acknowledgement latency ms: p50 ", 0), 0u) << lines[1];
  EXPECT_NE(lines[2].find("; " + std::to_string(report["events"].get<int64_t>()) + " events"),
            std::string::npos)
      << lines[2];
  EXPECT_EQ(
      lines[3].rfind("  accepted " + std::to_string(accepted) + ", rejected " + std::to_string(rejected) +
                         ", duplicates " + std::to_string(duplicates) + "; set-up " +
                         std::to_string(report["setup"]["commands"].get<int64_t>()) + " commands in ",
                     0),
      0u)
      << lines[3];
}

TEST_F(Cli, BenchOpenLoopThroughTheEmbeddedBrokerPublishesEveryEvent) {
  std::vector<std::string> args = SmallBench(Data(), "embedded");
  for (const char* more : {"--rate", "4000", "--json"}) args.push_back(more);

  const Outcome run = RunCli(args);

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const json report = json::parse(run.out);
  EXPECT_EQ(report["mode"], "open_loop");
  EXPECT_EQ(report["offered_rate"], 4000.0);
  EXPECT_FALSE(report.contains("outstanding"));
  EXPECT_EQ(report["kafka"], "embedded");
  // Every set-up command is accepted with one event; the measured events follow.
  EXPECT_EQ(report["events_published"].get<int64_t>(),
            report["setup"]["commands"].get<int64_t>() + report["events"].get<int64_t>());
}

TEST_F(Cli, BenchRefusesAFolderInUseAndContradictoryPacing) {
  fs::create_directories(Path("used"));
  WriteFile(Path("used/keep.txt"), "precious");

  ExpectBadInput(RunCli(SmallBench(Path("used"))), "is not empty");
  EXPECT_EQ(ReadFile(Path("used/keep.txt")), "precious");
  std::vector<std::string> both = SmallBench(Data());
  for (const char* more : {"--rate", "100", "--closed-loop", "4"}) both.push_back(more);
  ExpectBadInput(RunCli(both), "--rate excludes --closed-loop");
  EXPECT_FALSE(fs::exists(Data()));
}

}  // namespace
}  // namespace ledger
