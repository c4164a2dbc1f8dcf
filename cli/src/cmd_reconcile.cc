// `ledger reconcile`: the ledger's lines of a clearing date against an external statement (see
// projections/reconcile.h). Writes breaks.csv and report.json, prints a one-screen summary, records the run as
// a ReconciliationRecorded event. Exit 0: no breaks; 3: breaks (or malformed lines, or a statement whose summary
// disagrees with its rows); 2: unusable input, nothing written.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli_common.h"
#include "cli/commands.h"
#include "core/money.h"
#include "core/sha256.h"
#include "core/time.h"
#include "projections/clearing.h"
#include "reconcile/reconcile.h"
#include "state/records.h"

namespace ledger::cli {
namespace {

constexpr int kExitBreaks = 3;

recon::LineStatus PaymentStatusOf(fb::PaymentStatus status) {
  // The payment line's own outcome: refunds are lines of their own.
  return status == fb::PaymentStatus::reversed ? recon::LineStatus::kReversed : recon::LineStatus::kSuccess;
}

recon::Line LineOf(const fb::ReconLineRecordT& record, const std::string& merchant) {
  recon::Line line;
  line.merchant = merchant;
  line.order_no = record.merchant_order_no;
  line.amount_minor = record.amount_minor;
  line.fee_minor = record.fee_minor;
  line.occurred_at_ns = record.occurred_at_ns;
  line.clearing_date = record.clearing_date;
  if (record.kind == fb::ClearingLineKind::refund) {
    line.kind = recon::LineKind::kRefund;
    line.id = record.refund_no;
    line.status = recon::LineStatus::kRefunded;
  } else {
    line.kind = recon::LineKind::kPayment;
    line.id = record.merchant_order_no;
    line.status = PaymentStatusOf(record.status);
  }
  return line;
}

std::optional<recon::Line> LookupLine(const KvReader& state, recon::LineKind kind, const std::string& merchant,
                                      const std::string& id) {
  const std::string key = kind == recon::LineKind::kPayment ? keys::ReconOrder(merchant, id) : keys::ReconRefund(merchant, id);
  fb::ReconLineRecordT record;
  if (!LoadRecord(state, key, &record)) return std::nullopt;
  return LineOf(record, merchant);
}

// The ledger's lines of `date` (one merchant when not empty), from the reconciliation index by date.
Result<std::vector<recon::Line>> LedgerLines(const Store& store, int date, const std::string& merchant) {
  std::vector<recon::Line> lines;
  Status status;
  LEDGER_RETURN_IF_ERROR(store.ScanState(keys::ReconDateIndexPrefix(date, merchant), [&](std::string_view key, std::string_view) {
    const std::optional<keys::ReconDateIndexEntry> entry = keys::ParseReconDateIndex(date, key);
    if (!entry) {
      status = Status::Corruption("malformed reconciliation index key " + std::string(key));
      return false;
    }
    const recon::LineKind kind =
        entry->kind == keys::ReconLineKind::kPayment ? recon::LineKind::kPayment : recon::LineKind::kRefund;
    std::optional<recon::Line> line = LookupLine(store.state(), kind, entry->merchant, entry->id);
    if (!line) {
      status = Status::Corruption("reconciliation index names a missing line " + std::string(key));
      return false;
    }
    lines.push_back(std::move(*line));
    return true;
  }));
  LEDGER_RETURN_IF_ERROR(status);
  return lines;
}

std::string Cell(const std::optional<recon::Line>& line, int64_t recon::Line::*field) {
  return line ? FormatYuan((*line).*field) : "";
}

std::string BreaksCsv(const recon::Outcome& outcome) {
  std::ostringstream out;
  out << "category,kind,merchant,id,merchant_order_no,statement_line,ledger_status,statement_status,ledger_amount,"
         "statement_amount,ledger_fee,statement_fee,ledger_clearing_date,note\n";
  for (const recon::Classified& line : outcome.lines) {
    if (line.category == recon::Category::kMatched) continue;
    const std::string order = line.ledger ? line.ledger->order_no : line.statement ? line.statement->order_no : "";
    out << recon::CategoryName(line.category) << ',' << (line.kind == recon::LineKind::kPayment ? "payment" : "refund")
        << ',' << line.merchant << ',' << line.id << ',' << order << ','
        << (line.statement ? std::to_string(line.statement->line_number) : "") << ','
        << (line.ledger ? recon::LineStatusName(line.ledger->status) : "") << ','
        << (line.statement ? recon::LineStatusName(line.statement->status) : "") << ','
        << Cell(line.ledger, &recon::Line::amount_minor) << ',' << Cell(line.statement, &recon::Line::amount_minor) << ','
        << Cell(line.ledger, &recon::Line::fee_minor) << ',' << Cell(line.statement, &recon::Line::fee_minor) << ','
        << (line.ledger ? FormatDate(line.ledger->clearing_date) : "") << ',' << line.note << '\n';
  }
  return out.str();
}

struct SideTotals {
  int64_t payments = 0, payments_minor = 0, reversed = 0, refunds = 0, refunds_minor = 0, fees_minor = 0;
  void Add(const recon::Line& line) {
    if (line.kind == recon::LineKind::kPayment) {
      payments += 1;
      payments_minor += line.amount_minor;
      if (line.status == recon::LineStatus::kReversed) {
        reversed += 1;  // the reversal gave the fee back
      } else {
        fees_minor += line.fee_minor;
      }
    } else {
      refunds += 1;
      refunds_minor += line.amount_minor;
      fees_minor -= line.fee_minor;
    }
  }
  nlohmann::ordered_json Json() const {
    return {{"payments", payments}, {"payments_minor", payments_minor}, {"reversed", reversed}, {"refunds", refunds},
            {"refunds_minor", refunds_minor}, {"net_fees_minor", fees_minor}};
  }
};

Status WriteText(const std::string& path, const std::string& text) {
  const std::string partial = path + ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) return Status::IoError("cannot write " + partial);
  }
  std::error_code error;
  std::filesystem::rename(partial, path, error);  // readers never see half a file
  if (error) return Status::IoError("cannot rename " + partial + ": " + error.message());
  return Status::Ok();
}

}  // namespace

Runner AddReconcile(CLI::App& app) {
  struct Args {
    WriteOptions write;
    std::string date;
    std::string statement;
    std::string format;
    std::string merchant;
    std::string out;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->write.data_dir, "data folder")->capture_default_str();
  app.add_option("--date", args->date, "clearing date YYYY-MM-DD")->required();
  app.add_option("--statement", args->statement, "the statement file")->required();
  app.add_option("--format", args->format, "ledger-csv or wechat")->required();
  app.add_option("--merchant", args->merchant, "only this merchant (a WeChat bill's lines all belong to it)");
  app.add_option("--out", args->out, "folder for breaks.csv and report.json")->required();
  app.add_flag("--json", args->write.json, "print the report as JSON instead of the text summary");
  return [args]() {
    Result<int> date = ParseDate(args->date);
    if (!date.ok()) return Fail(kExitBadInput, "--date: " + date.status().message());
    Result<recon::Format> format = recon::ParseFormat(args->format);
    if (!format.ok()) return Fail(kExitBadInput, "--format: " + format.status().message());
    Result<LedgerOptions> ledger_options = MakeLedgerOptions(args->write);
    if (!ledger_options.ok()) return Fail(kExitBadInput, ledger_options.status().message());
    const LedgerConfig& config = ledger_options->config;
    std::error_code error;
    if (!std::filesystem::exists(args->write.data_dir + "/CURRENT", error)) {
      return Fail(kExitBadInput, "no ledger data in " + args->write.data_dir);
    }
    std::string text;
    {
      std::ifstream in(args->statement, std::ios::binary);
      if (!in) return Fail(kExitBadInput, args->statement + ": cannot read the statement");
      std::ostringstream buffer;
      buffer << in.rdbuf();
      text = buffer.str();
    }
    Result<recon::Statement> statement = recon::ParseStatement(text, *format, args->merchant, config.timezone_offset_minutes);
    if (!statement.ok()) return Fail(kExitBadInput, args->statement + ": " + statement.status().message());
    const std::string statement_sha = ToHex(Sha256Of(text));

    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*ledger_options);
    if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
    const Store& store = (*ledger)->store();
    Result<std::vector<recon::Line>> ledger_lines = LedgerLines(store, *date, args->merchant);
    if (!ledger_lines.ok()) return Fail(ExitCodeFor(ledger_lines.status()), ledger_lines.status().ToString());
    recon::Options options;
    options.date = *date;
    options.timezone_offset_minutes = config.timezone_offset_minutes;
    options.clearing_cutoff_minutes = config.clearing_cutoff_minutes;
    options.carry_over_window_ns = config.reconciliation_carry_over_minutes * kNanosPerMinute;
    options.fee_tolerance_minor = config.reconciliation_fee_tolerance_minor;
    const recon::Outcome outcome = recon::Reconcile(
        std::move(*ledger_lines), *statement, options,
        [&store](recon::LineKind kind, const std::string& merchant, const std::string& id) {
          return LookupLine(store.state(), kind, merchant, id);
        });

    // The report.
    nlohmann::ordered_json report;
    report["clearing_date"] = args->date;
    report["format"] = recon::FormatName(*format);
    report["merchant"] = args->merchant;
    report["statement"] = args->statement;
    report["statement_sha256"] = statement_sha;
    report["statement_data_lines"] = statement->data_lines;
    report["statement_lines_read"] = statement->lines.size();
    nlohmann::ordered_json categories = nlohmann::ordered_json::object();
    for (int c = 0; c < recon::kCategoryCount; ++c) {
      const recon::CategoryTotals& totals = outcome.totals[c];
      categories[recon::CategoryName(static_cast<recon::Category>(c))] = {
          {"count", totals.count}, {"ledger_amount_minor", totals.ledger_amount_minor},
          {"statement_amount_minor", totals.statement_amount_minor}};
    }
    report["categories"] = std::move(categories);
    // Totals of each side: the ledger's lines of the date, every statement line read.
    SideTotals ledger_side, statement_side;
    for (const recon::Classified& line : outcome.lines) {
      if (line.ledger && line.ledger->clearing_date == *date) ledger_side.Add(*line.ledger);
    }
    for (const recon::Line& line : statement->lines) statement_side.Add(line);
    report["ledger_totals"] = ledger_side.Json();
    report["statement_totals"] = statement_side.Json();
    report["breaks"] = outcome.breaks;
    nlohmann::ordered_json malformed = nlohmann::ordered_json::array();
    for (const recon::MalformedLine& line : statement->malformed) malformed.push_back({{"line", line.line_number}, {"reason", line.reason}});
    report["malformed_lines"] = std::move(malformed);
    report["statement_summary"] = {{"present", statement->has_summary}, {"disagreements", statement->summary_disagreements}};
    const bool clean = outcome.breaks == 0 && statement->malformed.empty() && statement->summary_disagreements.empty();
    report["result"] = clean ? "clean" : "breaks";

    std::filesystem::create_directories(args->out, error);
    if (error) return Fail(kExitFailure, "cannot create " + args->out + ": " + error.message());
    Status written = WriteText(args->out + "/breaks.csv", BreaksCsv(outcome));
    if (written.ok()) written = WriteText(args->out + "/report.json", report.dump(2) + "\n");
    if (!written.ok()) return Fail(kExitFailure, written.message());

    // The run, recorded for auditors.
    auto recorded = std::make_unique<fb::ReconciliationRecordedT>();
    recorded->clearing_date = *date;
    recorded->format = recon::FormatName(*format);
    recorded->merchant = args->merchant;
    const Digest digest = Sha256Of(text);
    recorded->statement_sha256.assign(digest.begin(), digest.end());
    recorded->statement_lines = static_cast<int64_t>(statement->data_lines);
    recorded->malformed_lines = static_cast<int64_t>(statement->malformed.size());
    for (int c = 0; c < recon::kCategoryCount; ++c) {
      auto count = std::make_unique<fb::ReconciliationCountT>();
      count->category = recon::CategoryName(static_cast<recon::Category>(c));
      count->count = outcome.totals[c].count;
      count->amount_minor = outcome.totals[c].ledger_amount_minor;
      recorded->counts.push_back(std::move(count));
    }
    fb::PayloadUnion payload;
    payload.Set(std::move(*recorded));
    const std::string fact_id = "reconcile/" + args->date + "/" + recon::FormatName(*format) + "/" +
                                (args->merchant.empty() ? "*" : args->merchant) + "/" + statement_sha.substr(0, 16) +
                                "/" + std::to_string(SystemNowNs());
    Result<uint64_t> sequence = (*ledger)->RecordFact(fact_id, std::move(payload));
    if (!sequence.ok()) return Fail(kExitFailure, "reconciliation not recorded: " + sequence.status().ToString());
    const Status published = PublishCommitted(**ledger, config, *sequence);
    if (!published.ok()) return Fail(kExitFailure, "reconciliation recorded but not published: " + published.message());
    report["recorded_sequence"] = *sequence;

    if (args->write.json) {
      std::printf("%s\n", report.dump().c_str());
    } else {
      std::printf("reconciliation %s %s%s against %s (%s)\n", args->date.c_str(), recon::FormatName(*format),
                  args->merchant.empty() ? "" : (" merchant " + args->merchant).c_str(), args->statement.c_str(),
                  statement_sha.substr(0, 16).c_str());
      std::printf("  statement: %zu data lines, %zu read, %zu malformed\n", statement->data_lines, statement->lines.size(),
                  statement->malformed.size());
      for (int c = 0; c < recon::kCategoryCount; ++c) {
        const recon::CategoryTotals& totals = outcome.totals[c];
        std::printf("  %-22s %8lld  ledger %16s  statement %16s\n", recon::CategoryName(static_cast<recon::Category>(c)),
                    static_cast<long long>(totals.count), FormatYuan(totals.ledger_amount_minor).c_str(),
                    FormatYuan(totals.statement_amount_minor).c_str());
      }
      for (const recon::MalformedLine& line : statement->malformed) {
        std::printf("  malformed line %zu: %s\n", line.line_number, line.reason.c_str());
      }
      for (const std::string& disagreement : statement->summary_disagreements) std::printf("  %s\n", disagreement.c_str());
      std::printf("  %lld breaks; recorded as event %llu; %s/breaks.csv, %s/report.json\n",
                  static_cast<long long>(outcome.breaks), static_cast<unsigned long long>(*sequence), args->out.c_str(),
                  args->out.c_str());
    }
    return clean ? kExitOk : kExitBreaks;
  };
}

}  // namespace ledger::cli
