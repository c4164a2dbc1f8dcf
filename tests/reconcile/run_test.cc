// Goal: a reconciliation run works in-process (reconcile/run.h) exactly as `ledger reconcile` runs it. Over a
// small ledger and a hand-written statement it finds the expected matches and breaks, writes breaks.csv and
// report.json byte for byte as the program does on a copy of the same store, and records one
// ReconciliationRecorded event; a statement that cannot be read or parsed is InvalidArgument naming the file.
#include "reconcile/run.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/time.h"
#include "events/event.h"
#include "support/test_support.h"

namespace ledger {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kDay25 = 20261125;

json At(json command, const std::string& iso) {
  command["occurred_at"] = iso;
  return command;
}

// M1 charges 60 bps. Clearing date 2026-11-25: ORD1 100.00, ORD2 200.00 (reversed), ORD3 300.00, ORD4 50.00,
// ORD5 80.00, ORD6 120.00.
std::vector<json> DayCommands() {
  return {At(testing::OpenAccount("a1", "C1"), "2026-11-25T09:00:00+08:00"),
          At(testing::OpenMerchant("m1", "M1", 60), "2026-11-25T09:00:00+08:00"),
          At(testing::Deposit("d1", "C1:debit", 10'000'000), "2026-11-25T09:00:00+08:00"),
          At(testing::Pay("M1", "ORD1", "C1", 10'000), "2026-11-25T10:00:00+08:00"),
          At(testing::Pay("M1", "ORD2", "C1", 20'000), "2026-11-25T11:00:00+08:00"),
          At(testing::Reverse("M1", "ORD2"), "2026-11-25T11:05:00+08:00"),
          At(testing::Pay("M1", "ORD3", "C1", 30'000), "2026-11-25T12:00:00+08:00"),
          At(testing::Pay("M1", "ORD4", "C1", 5'000), "2026-11-25T13:00:00+08:00"),
          At(testing::Pay("M1", "ORD5", "C1", 8'000), "2026-11-25T14:00:00+08:00"),
          At(testing::Pay("M1", "ORD6", "C1", 12'000), "2026-11-25T15:00:00+08:00")};
}

// The acquirer's file for the 25th: ORD1, ORD3, ORD6 agree; ORD2 is still paid (the ledger reversed it);
// ORD4's amount differs; ORD5 is absent; ORD9 is unknown to the ledger.
constexpr char kStatement[] =
    "record_type,merchant,merchant_order_no,refund_no,occurred_at,order_amount,amount,fee\n"
    "PAYMENT,M1,ORD1,,2026-11-25T10:00:00+08:00,100.00,100.00,0.60\n"
    "PAYMENT,M1,ORD2,,2026-11-25T11:00:00+08:00,200.00,200.00,1.20\n"
    "PAYMENT,M1,ORD3,,2026-11-25T12:00:00+08:00,300.00,300.00,1.80\n"
    "PAYMENT,M1,ORD4,,2026-11-25T13:00:00+08:00,55.00,55.00,0.33\n"
    "PAYMENT,M1,ORD6,,2026-11-25T15:00:00+08:00,120.00,120.00,0.72\n"
    "PAYMENT,M1,ORD9,,2026-11-25T16:00:00+08:00,10.00,10.00,0.06\n";

class ReconcileRun : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.data_dir = dir_.path() + "/data";
    options_.clock = ClockMode::kOccurred;
    options_.fixed_now_ns = testing::DefaultTimeNs();
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options_);
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    for (const json& command : DayCommands()) {
      const CommandResult result = (*ledger)->Stage(testing::Parse(command.dump()));
      ASSERT_EQ(result.kind, CommandResult::Kind::kAccepted) << command.dump() << ": " << result.reason;
    }
    ASSERT_TRUE((*ledger)->CommitGroup().ok());
    testing::WriteFile(Path("statement.csv"), kStatement);
  }
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::unique_ptr<Ledger> Open() {
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options_);
    EXPECT_TRUE(ledger.ok()) << ledger.status().ToString();
    return ledger.ok() ? std::move(ledger).value() : nullptr;
  }
  recon::StatementFile Statement() {
    Result<recon::StatementFile> file = recon::ReadStatementFile(
        Path("statement.csv"), recon::Format::kLedgerCsv, "M1", options_.config.timezone_offset_minutes);
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    return file.ok() ? std::move(file).value() : recon::StatementFile();
  }

  testing::TempDir dir_;
  LedgerOptions options_;
};

TEST_F(ReconcileRun, FindsTheMatchesAndBreaks) {
  std::unique_ptr<Ledger> ledger = Open();
  ASSERT_NE(ledger, nullptr);
  const recon::StatementFile statement = Statement();
  Result<recon::RunReport> run =
      recon::ReconcileStatement({&ledger->store()}, options_.config, kDay25, statement);
  ASSERT_TRUE(run.ok()) << run.status().ToString();

  std::map<std::string, std::string> category_of;
  for (const recon::Classified& line : run->outcome.lines)
    category_of[line.id] = recon::CategoryName(line.category);
  EXPECT_EQ(category_of, (std::map<std::string, std::string>{{"ORD1", "MATCHED"},
                                                             {"ORD2", "STATUS_MISMATCH"},
                                                             {"ORD3", "MATCHED"},
                                                             {"ORD4", "AMOUNT_MISMATCH"},
                                                             {"ORD5", "MISSING_IN_STATEMENT"},
                                                             {"ORD6", "MATCHED"},
                                                             {"ORD9", "MISSING_IN_LEDGER"}}));
  EXPECT_EQ(run->outcome.breaks, 4);
  EXPECT_FALSE(run->clean);
  EXPECT_EQ(run->json["result"], "breaks");
  EXPECT_EQ(run->json["clearing_date"], "2026-11-25");
  EXPECT_EQ(run->json["breaks"], 4);
  EXPECT_EQ(run->json["categories"]["MATCHED"]["count"], 3);
  EXPECT_EQ(run->json["ledger_totals"]["payments"], 6);
  EXPECT_EQ(run->json["statement_totals"]["payments"], 6);
  EXPECT_FALSE(run->json.contains("recorded_sequence"));
}

TEST_F(ReconcileRun, WritesTheFilesTheProgramWritesAndRecordsOneEvent) {
  // The program on a copy of the same store, with the same statement.
  fs::copy(Path("data"), Path("copy"), fs::copy_options::recursive);
  const testing::ProgramRun cli =
      testing::RunLedger(dir_.path(), {"reconcile", "--data", Path("copy"), "--date", "2026-11-25",
                                       "--format", "ledger-csv", "--merchant", "M1", "--statement",
                                       Path("statement.csv"), "--out", Path("cli-out"), "--json"});
  ASSERT_EQ(cli.exit_code, 3) << testing::Describe(cli);

  std::unique_ptr<Ledger> ledger = Open();
  ASSERT_NE(ledger, nullptr);
  const uint64_t before = ledger->last_sequence();
  const recon::StatementFile statement = Statement();
  Result<recon::RunReport> run =
      recon::ReconcileStatement({&ledger->store()}, options_.config, kDay25, statement);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_TRUE(recon::WriteRunFiles(*run, Path("out")).ok());
  EXPECT_EQ(testing::ReadFile(Path("out/breaks.csv")), testing::ReadFile(Path("cli-out/breaks.csv")));
  EXPECT_EQ(testing::ReadFile(Path("out/report.json")), testing::ReadFile(Path("cli-out/report.json")));
  EXPECT_EQ(testing::Lines(testing::ReadFile(Path("out/breaks.csv"))).size(), 1u + 4u);  // header + breaks

  Result<uint64_t> sequence = recon::RecordRun(*ledger, *run);
  ASSERT_TRUE(sequence.ok()) << sequence.status().ToString();
  EXPECT_EQ(*sequence, before + 1);
  EXPECT_EQ(ledger->last_sequence(), before + 1);
  const std::vector<std::string> records = testing::EventRecords(ledger->store(), *sequence, *sequence);
  ASSERT_EQ(records.size(), 1u);
  Result<DecodedEvent> event = DecodeEventRecord(records[0]);
  ASSERT_TRUE(event.ok());
  const fb::ReconciliationRecorded* recorded = event->body->payload_as_ReconciliationRecorded();
  ASSERT_NE(recorded, nullptr);
  EXPECT_EQ(recorded->clearing_date(), kDay25);
  EXPECT_EQ(recorded->merchant()->str(), "M1");
  EXPECT_EQ(recorded->statement_lines(), 6);
  // The program recorded the same run at the same sequence.
  EXPECT_EQ(json::parse(cli.out)["recorded_sequence"], *sequence);
}

TEST_F(ReconcileRun, AStatementThatCannotBeReadNamesTheFile) {
  Result<recon::StatementFile> missing =
      recon::ReadStatementFile(Path("absent.csv"), recon::Format::kLedgerCsv, "M1", 8 * 60);
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().message(), Path("absent.csv") + ": cannot read the statement");

  testing::WriteFile(Path("empty.csv"), "");
  Result<recon::StatementFile> empty =
      recon::ReadStatementFile(Path("empty.csv"), recon::Format::kWeChat, "M1", 8 * 60);
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(empty.status().message(), Path("empty.csv") + ": the statement is empty");
}

}  // namespace
}  // namespace ledger
