// `ledger reconcile`: the ledger's lines of a clearing date against an external statement (the run is
// reconcile/run.h). Writes breaks.csv and report.json, prints a one-screen summary, records the run as
// a ReconciliationRecorded event (in shard 0's history when the ledger has several shards, each given by its
// folder). Exit 0: no breaks; 3: breaks (or malformed lines, or a statement whose summary disagrees with its
// rows); 2: unusable input, nothing written; 6: a shard has not closed the date.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli_common.h"
#include "core/money.h"
#include "core/time.h"
#include "reconcile/reconcile.h"
#include "reconcile/run.h"
#include "shard_stores.h"

namespace ledger::cli {
namespace {

constexpr int kExitBreaks = 3;

struct ReconcileArgs {
  std::vector<std::string> data_dirs;  // one per shard
  WriteOptions write;                  // its data_dir: the folder of shard 0, where the run is recorded
  std::string date;
  std::string statement;
  std::string format;
  std::string merchant;
  std::string out;
};

void PrintSummary(const ReconcileArgs& args, const recon::RunReport& run, uint64_t sequence) {
  const recon::Statement& statement = run.statement->statement;
  std::printf("reconciliation %s %s%s against %s (%s)\n", args.date.c_str(),
              recon::FormatName(run.statement->format),
              args.merchant.empty() ? "" : (" merchant " + args.merchant).c_str(), args.statement.c_str(),
              run.statement->sha256_hex.substr(0, 16).c_str());
  std::printf("  statement: %zu data lines, %zu read, %zu malformed\n", statement.data_lines,
              statement.lines.size(), statement.malformed.size());
  for (int c = 0; c < recon::kCategoryCount; ++c) {
    const recon::CategoryTotals& totals = run.outcome.totals[c];
    std::printf("  %-22s %8lld  ledger %16s  statement %16s\n",
                recon::CategoryName(static_cast<recon::Category>(c)), static_cast<long long>(totals.count),
                FormatYuan(totals.ledger_amount_minor).c_str(),
                FormatYuan(totals.statement_amount_minor).c_str());
  }
  for (const recon::MalformedLine& line : statement.malformed) {
    std::printf("  malformed line %zu: %s\n", line.line_number, line.reason.c_str());
  }
  for (const std::string& disagreement : statement.summary_disagreements)
    std::printf("  %s\n", disagreement.c_str());
  std::printf("  %lld breaks; recorded as event %llu; %s/breaks.csv, %s/report.json\n",
              static_cast<long long>(run.outcome.breaks), static_cast<unsigned long long>(sequence),
              args.out.c_str(), args.out.c_str());
}

int RunReconcile(ReconcileArgs& args) {
  Result<int> date = ParseDate(args.date);
  if (!date.ok()) return Fail(kExitBadInput, "--date: " + date.status().message());
  Result<recon::Format> format = recon::ParseFormat(args.format);
  if (!format.ok()) return Fail(kExitBadInput, "--format: " + format.status().message());
  if (args.data_dirs.empty()) args.data_dirs.push_back("./ledger-data");
  Result<ShardStores> opened = OpenShardStores(args.data_dirs, *date);
  if (!opened.ok()) return Fail(ExitCodeFor(opened.status()), opened.status().message());
  Result<std::string> open = ShardsStillOpen(*opened, *date);
  if (!open.ok()) return Fail(ExitCodeFor(open.status()), open.status().ToString());
  // One shard's open date is the day so far; several shards' would miss what is still decided.
  if (!open->empty() && opened->stores.size() > 1) {
    return Fail(kExitDayOpen,
                "clearing date " + args.date + " is not closed on every shard: " + *open +
                    "; nothing written (ledger close-day, or serve closes it after the cut-off)");
  }
  // The run is recorded in shard 0's history; opening it for writing first fails before anything is written
  // when its serve is running.
  args.write.data_dir = opened->dirs[opened->first_shard];
  Result<LedgerOptions> ledger_options = MakeLedgerOptions(args.write);
  if (!ledger_options.ok()) return Fail(kExitBadInput, ledger_options.status().message());
  const LedgerConfig& config = ledger_options->config;
  Result<recon::StatementFile> statement =
      recon::ReadStatementFile(args.statement, *format, args.merchant, config.timezone_offset_minutes);
  if (!statement.ok()) return Fail(kExitBadInput, statement.status().message());
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*ledger_options);
  if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
  Result<recon::RunReport> run = recon::ReconcileStatement(opened->Views(), config, *date, *statement);
  if (!run.ok()) return Fail(ExitCodeFor(run.status()), run.status().ToString());
  const Status written = recon::WriteRunFiles(*run, args.out);
  if (!written.ok()) return Fail(kExitFailure, written.message());
  // The run, recorded for auditors.
  Result<uint64_t> sequence = recon::RecordRun(**ledger, *run);
  if (!sequence.ok())
    return Fail(kExitFailure, "reconciliation not recorded: " + sequence.status().ToString());
  const Status published = PublishCommitted(**ledger, *ledger_options, *sequence);
  if (!published.ok())
    return Fail(kExitFailure, "reconciliation recorded but not published: " + published.message());
  if (args.write.json) {
    run->json["recorded_sequence"] = *sequence;
    std::printf("%s\n", run->json.dump().c_str());
  } else {
    PrintSummary(args, *run, *sequence);
  }
  return run->clean ? kExitOk : kExitBreaks;
}

}  // namespace

Runner AddReconcile(CLI::App& app) {
  auto args = std::make_shared<ReconcileArgs>();
  app.add_option("--data", args->data_dirs,
                 "data folder (default ./ledger-data); once per shard for a ledger of several shards");
  app.add_option("--date", args->date, "clearing date YYYY-MM-DD")->required();
  app.add_option("--statement", args->statement, "the statement file")->required();
  app.add_option("--format", args->format, "ledger-csv or wechat")->required();
  app.add_option("--merchant", args->merchant, "only this merchant (a WeChat bill's lines all belong to it)");
  app.add_option("--out", args->out, "folder for breaks.csv and report.json")->required();
  app.add_flag("--json", args->write.json, "print the report as JSON instead of the text summary");
  return [args]() { return RunReconcile(*args); };
}

}  // namespace ledger::cli
