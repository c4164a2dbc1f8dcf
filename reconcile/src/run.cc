#include "reconcile/run.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>

#include "core/money.h"
#include "core/sha256.h"
#include "core/time.h"
#include "state/keys.h"
#include "state/records.h"

namespace ledger::recon {
namespace {

LineStatus PaymentStatusOf(fb::PaymentStatus status) {
  // The payment line's own outcome: refunds are lines of their own.
  return status == fb::PaymentStatus::reversed ? LineStatus::kReversed : LineStatus::kSuccess;
}

Line LineOf(const fb::ReconLineRecordT& record, const std::string& merchant) {
  Line line;
  line.merchant = merchant;
  line.order_no = record.merchant_order_no;
  line.amount_minor = record.amount_minor;
  line.fee_minor = record.fee_minor;
  line.occurred_at_ns = record.occurred_at_ns;
  line.clearing_date = record.clearing_date;
  if (record.kind == fb::ClearingLineKind::refund) {
    line.kind = LineKind::kRefund;
    line.id = record.refund_no;
    line.status = LineStatus::kRefunded;
  } else {
    line.kind = LineKind::kPayment;
    line.id = record.merchant_order_no;
    line.status = PaymentStatusOf(record.status);
  }
  return line;
}

std::optional<Line> LookupLine(const KvReader& state, LineKind kind, const std::string& merchant,
                               const std::string& id) {
  const std::string key =
      kind == LineKind::kPayment ? keys::ReconOrder(merchant, id) : keys::ReconRefund(merchant, id);
  fb::ReconLineRecordT record;
  if (!LoadRecord(state, key, &record)) return std::nullopt;
  return LineOf(record, merchant);
}

std::string Cell(const std::optional<Line>& line, int64_t Line::*field) {
  return line ? FormatYuan((*line).*field) : "";
}

struct SideTotals {
  int64_t payments = 0, payments_minor = 0, reversed = 0, refunds = 0, refunds_minor = 0, fees_minor = 0;
  void Add(const Line& line) {
    if (line.kind == LineKind::kPayment) {
      payments += 1;
      payments_minor += line.amount_minor;
      if (line.status == LineStatus::kReversed) {
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
    return {{"payments", payments}, {"payments_minor", payments_minor}, {"reversed", reversed},
            {"refunds", refunds},   {"refunds_minor", refunds_minor},   {"net_fees_minor", fees_minor}};
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

Options OptionsOf(const LedgerConfig& config, int date) {
  Options options;
  options.date = date;
  options.timezone_offset_minutes = config.timezone_offset_minutes;
  options.clearing_cutoff_minutes = config.clearing_cutoff_minutes;
  options.carry_over_window_ns = config.reconciliation_carry_over_minutes * kNanosPerMinute;
  options.fee_tolerance_minor = config.reconciliation_fee_tolerance_minor;
  return options;
}

nlohmann::ordered_json CategoriesJson(const Outcome& outcome) {
  nlohmann::ordered_json categories = nlohmann::ordered_json::object();
  for (int c = 0; c < kCategoryCount; ++c) {
    const CategoryTotals& totals = outcome.totals[c];
    categories[CategoryName(static_cast<Category>(c))] = {
        {"count", totals.count},
        {"ledger_amount_minor", totals.ledger_amount_minor},
        {"statement_amount_minor", totals.statement_amount_minor}};
  }
  return categories;
}

// report.json's object (without "recorded_sequence").
nlohmann::ordered_json ReportJson(const RunReport& run) {
  const StatementFile& file = *run.statement;
  const Statement& statement = file.statement;
  nlohmann::ordered_json report;
  report["clearing_date"] = FormatDate(run.date);
  report["format"] = FormatName(file.format);
  report["merchant"] = file.merchant;
  report["statement"] = file.path;
  report["statement_sha256"] = file.sha256_hex;
  report["statement_data_lines"] = statement.data_lines;
  report["statement_lines_read"] = statement.lines.size();
  report["categories"] = CategoriesJson(run.outcome);
  // Totals of each side: the ledger's lines of the date, every statement line read.
  SideTotals ledger_side, statement_side;
  for (const Classified& line : run.outcome.lines) {
    if (line.ledger && line.ledger->clearing_date == run.date) ledger_side.Add(*line.ledger);
  }
  for (const Line& line : statement.lines) statement_side.Add(line);
  report["ledger_totals"] = ledger_side.Json();
  report["statement_totals"] = statement_side.Json();
  report["breaks"] = run.outcome.breaks;
  nlohmann::ordered_json malformed = nlohmann::ordered_json::array();
  for (const MalformedLine& line : statement.malformed)
    malformed.push_back({{"line", line.line_number}, {"reason", line.reason}});
  report["malformed_lines"] = std::move(malformed);
  report["statement_summary"] = {{"present", statement.has_summary},
                                 {"disagreements", statement.summary_disagreements}};
  report["result"] = run.clean ? "clean" : "breaks";
  return report;
}

}  // namespace

Result<StatementFile> ReadStatementFile(const std::string& path, Format format, const std::string& merchant,
                                        int timezone_offset_minutes) {
  StatementFile file;
  file.path = path;
  file.format = format;
  file.merchant = merchant;
  std::string text;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::InvalidArgument(path + ": cannot read the statement");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
  }
  Result<Statement> statement = ParseStatement(text, format, merchant, timezone_offset_minutes);
  if (!statement.ok()) return Status::InvalidArgument(path + ": " + statement.status().message());
  file.statement = std::move(statement).value();
  file.sha256 = Sha256Of(text);
  file.sha256_hex = ToHex(file.sha256);
  return file;
}

Result<std::vector<Line>> LedgerLines(const Store& store, int date, const std::string& merchant) {
  std::vector<Line> lines;
  Status status;
  LEDGER_RETURN_IF_ERROR(store.ScanState(
      keys::ReconDateIndexPrefix(date, merchant), [&](std::string_view key, std::string_view) {
        const std::optional<keys::ReconDateIndexEntry> entry = keys::ParseReconDateIndex(date, key);
        if (!entry) {
          status = Status::Corruption("malformed reconciliation index key " + std::string(key));
          return false;
        }
        const LineKind kind =
            entry->kind == keys::ReconLineKind::kPayment ? LineKind::kPayment : LineKind::kRefund;
        std::optional<Line> line = LookupLine(store.state(), kind, entry->merchant, entry->id);
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

Result<RunReport> ReconcileStatement(const std::vector<const Store*>& stores, const LedgerConfig& config,
                                     int date, const StatementFile& statement) {
  std::vector<Line> ledger_lines;
  for (const Store* store : stores) {
    Result<std::vector<Line>> lines = LedgerLines(*store, date, statement.merchant);
    if (!lines.ok()) return lines.status();
    ledger_lines.insert(ledger_lines.end(), std::make_move_iterator(lines->begin()),
                        std::make_move_iterator(lines->end()));
  }
  RunReport run;
  run.date = date;
  run.statement = &statement;
  // A line lives on one shard (its order's), so the first store holding it is the only one.
  run.outcome = Reconcile(std::move(ledger_lines), statement.statement, OptionsOf(config, date),
                          [&stores](LineKind kind, const std::string& merchant, const std::string& id) {
                            std::optional<Line> line;
                            for (size_t i = 0; i < stores.size() && !line; ++i)
                              line = LookupLine(stores[i]->state(), kind, merchant, id);
                            return line;
                          });
  run.clean = run.outcome.breaks == 0 && statement.statement.malformed.empty() &&
              statement.statement.summary_disagreements.empty();
  run.json = ReportJson(run);
  return run;
}

std::string BreaksCsv(const Outcome& outcome) {
  std::ostringstream out;
  out << "category,kind,merchant,id,merchant_order_no,statement_line,ledger_status,statement_status,ledger_"
         "amount,"
         "statement_amount,ledger_fee,statement_fee,ledger_clearing_date,note\n";
  for (const Classified& line : outcome.lines) {
    if (line.category == Category::kMatched) continue;
    const std::string order = line.ledger      ? line.ledger->order_no
                              : line.statement ? line.statement->order_no
                                               : "";
    out << CategoryName(line.category) << ',' << (line.kind == LineKind::kPayment ? "payment" : "refund")
        << ',' << line.merchant << ',' << line.id << ',' << order << ','
        << (line.statement ? std::to_string(line.statement->line_number) : "") << ','
        << (line.ledger ? LineStatusName(line.ledger->status) : "") << ','
        << (line.statement ? LineStatusName(line.statement->status) : "") << ','
        << Cell(line.ledger, &Line::amount_minor) << ',' << Cell(line.statement, &Line::amount_minor) << ','
        << Cell(line.ledger, &Line::fee_minor) << ',' << Cell(line.statement, &Line::fee_minor) << ','
        << (line.ledger ? FormatDate(line.ledger->clearing_date) : "") << ',' << line.note << '\n';
  }
  return out.str();
}

Status WriteRunFiles(const RunReport& report, const std::string& out_dir) {
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) return Status::IoError("cannot create " + out_dir + ": " + error.message());
  LEDGER_RETURN_IF_ERROR(WriteText(out_dir + "/breaks.csv", BreaksCsv(report.outcome)));
  return WriteText(out_dir + "/report.json", report.json.dump(2) + "\n");
}

Result<uint64_t> RecordRun(Ledger& ledger, const RunReport& report) {
  const StatementFile& file = *report.statement;
  auto recorded = std::make_unique<fb::ReconciliationRecordedT>();
  recorded->clearing_date = report.date;
  recorded->format = FormatName(file.format);
  recorded->merchant = file.merchant;
  recorded->statement_sha256.assign(file.sha256.begin(), file.sha256.end());
  recorded->statement_lines = static_cast<int64_t>(file.statement.data_lines);
  recorded->malformed_lines = static_cast<int64_t>(file.statement.malformed.size());
  for (int c = 0; c < kCategoryCount; ++c) {
    auto count = std::make_unique<fb::ReconciliationCountT>();
    count->category = CategoryName(static_cast<Category>(c));
    count->count = report.outcome.totals[c].count;
    count->amount_minor = report.outcome.totals[c].ledger_amount_minor;
    recorded->counts.push_back(std::move(count));
  }
  fb::PayloadUnion payload;
  payload.Set(std::move(*recorded));
  const std::string fact_id = "reconcile/" + FormatDate(report.date) + "/" + FormatName(file.format) + "/" +
                              (file.merchant.empty() ? "*" : file.merchant) + "/" +
                              file.sha256_hex.substr(0, 16) + "/" + std::to_string(SystemNowNs());
  return ledger.RecordFact(fact_id, std::move(payload));
}

}  // namespace ledger::recon
