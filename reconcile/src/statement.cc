// Statement parsers: the project's clearing file and WeChat Pay's trade bill, reduced to reconciliation
// lines. Columns are found by name in the header; a data line that cannot be read is collected with its line
// number and reason, and parsing goes on.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <unordered_map>

#include "core/money.h"
#include "core/time.h"
#include "projections/clearing_file.h"
#include "reconcile/reconcile.h"

namespace ledger::recon {
namespace {

// One physical line at a time, with its 1-based number; strips a trailing '\r' and a leading UTF-8 BOM.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") text_.remove_prefix(3);
  }
  bool Next(std::string_view* line) {
    if (position_ >= text_.size()) return false;
    const size_t end = text_.find('\n', position_);
    const size_t stop = end == std::string_view::npos ? text_.size() : end;
    *line = text_.substr(position_, stop - position_);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    position_ = stop + 1;
    ++number_;
    return true;
  }
  size_t number() const { return number_; }

 private:
  std::string_view text_;
  size_t position_ = 0;
  size_t number_ = 0;
};

std::string_view Trim(std::string_view field) {
  while (!field.empty() && (field.front() == ' ' || field.front() == '\t')) field.remove_prefix(1);
  while (!field.empty() && (field.back() == ' ' || field.back() == '\t')) field.remove_suffix(1);
  return field;
}

// Splits on commas (neither format quotes fields). WeChat prefixes every data field with a backtick so
// spreadsheets keep long numbers as text: it is removed.
void SplitFields(std::string_view line, std::vector<std::string_view>* fields) {
  fields->clear();
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    std::string_view field =
        Trim(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (!field.empty() && field.front() == '`') field = Trim(field.substr(1));
    fields->push_back(field);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
}

bool Blank(std::string_view line) { return Trim(line).empty(); }

// Column positions by name.
class Header {
 public:
  explicit Header(const std::vector<std::string_view>& names) {
    for (size_t i = 0; i < names.size(); ++i) positions_.emplace(std::string(names[i]), i);
    size_ = names.size();
  }
  std::optional<size_t> Find(const std::string& name) const {
    const auto found = positions_.find(name);
    if (found == positions_.end()) return std::nullopt;
    return found->second;
  }
  // The position of a required column, or an error naming it.
  Status Require(const std::string& name, size_t* position) const {
    const std::optional<size_t> found = Find(name);
    if (!found) return Status::InvalidArgument("the header has no column " + name);
    *position = *found;
    return Status::Ok();
  }
  size_t size() const { return size_; }

 private:
  std::unordered_map<std::string, size_t> positions_;
  size_t size_ = 0;
};

// Skips leading blank lines, reads the header and finds the `required` columns. Errors: InvalidArgument (an
// empty text, or a header without one of them: not `format` at all).
Result<Header> ReadHeader(LineReader& reader, const char* format,
                          std::initializer_list<std::pair<const char*, size_t*>> required) {
  std::string_view line;
  while (reader.Next(&line) && Blank(line)) {
  }
  if (Blank(line)) return Status::InvalidArgument("the statement is empty");
  std::vector<std::string_view> fields;
  SplitFields(line, &fields);
  Header header(fields);
  for (const auto& [name, position] : required) {
    const Status found = header.Require(name, position);
    if (!found.ok()) {
      return Status::InvalidArgument("line " + std::to_string(reader.number()) + ": not " + format + ": " +
                                     found.message());
    }
  }
  return header;
}

// A fee in yuan with up to 5 decimals, rounded half-up (away from zero) to fen.
Result<int64_t> ParseFeeToFen(std::string_view text) {
  Result<int64_t> milli_fen = clearing::ParseYuan(text, 5);  // units of 1/1000 fen
  if (!milli_fen.ok()) return milli_fen.status();
  const int64_t magnitude = (std::llabs(*milli_fen) + 500) / 1000;
  return *milli_fen < 0 ? -magnitude : magnitude;
}

Result<int64_t> ParseAmount(std::string_view text, const char* column) {
  Result<int64_t> amount = clearing::ParseYuan(text);
  if (!amount.ok()) return Status::InvalidArgument(std::string(column) + ": " + amount.status().message());
  return amount;
}

// "YYYY-MM-DD HH:MM:SS" in the statement's local time (read by hand: a million lines a run).
Result<int64_t> ParseLocalTime(std::string_view text, int offset_minutes) {
  auto two_digits = [&](size_t at, int* out) {
    if (text[at] < '0' || text[at] > '9' || text[at + 1] < '0' || text[at + 1] > '9') return false;
    *out = (text[at] - '0') * 10 + (text[at + 1] - '0');
    return true;
  };
  int hour = 0, minute = 0, second = 0;
  if (text.size() != 19 || text[10] != ' ' || text[13] != ':' || text[16] != ':' || !two_digits(11, &hour) ||
      !two_digits(14, &minute) || !two_digits(17, &second) || hour > 23 || minute > 59 || second > 59) {
    return Status::InvalidArgument("bad time '" + std::string(text) + "'");
  }
  Result<int> date = ParseDate(text.substr(0, 10));
  if (!date.ok()) return Status::InvalidArgument("bad time '" + std::string(text) + "'");
  return LocalMidnightUtcNs(*date, offset_minutes) + hour * kNanosPerHour + minute * kNanosPerMinute +
         second * kNanosPerSecond;
}

// ---------------------------------------------------------------------------------------------------------
// ledger-csv

// Reads a clearing file row by row: PAYMENT, REVERSAL and REFUND rows become lines, SUMMARY rows are checked
// against the rows once all are read.
class LedgerCsvParser {
 public:
  explicit LedgerCsvParser(const std::string& merchant_filter) : merchant_filter_(merchant_filter) {}

  Result<Statement> Parse(std::string_view text) {
    LineReader reader(text);
    Result<Header> read = ReadHeader(reader, "a ledger-csv clearing file",
                                     {{"record_type", &type_},
                                      {"merchant", &merchant_},
                                      {"merchant_order_no", &order_},
                                      {"refund_no", &refund_},
                                      {"occurred_at", &occurred_},
                                      {"order_amount", &order_amount_},
                                      {"amount", &amount_},
                                      {"fee", &fee_}});
    if (!read.ok()) return read.status();
    std::string_view line;
    while (reader.Next(&line)) {
      if (Blank(line)) continue;
      statement_.data_lines += 1;
      SplitFields(line, &fields_);
      ReadRow(reader.number(), read->size());
    }
    CheckSummaries();
    return std::move(statement_);
  }

 private:
  struct Summary {
    size_t line_number;
    std::string payments, counts;
    int64_t order_total, refund_total;
  };

  void Malformed(size_t number, const std::string& reason) {
    statement_.malformed.push_back(MalformedLine{number, reason});
  }

  // One data row (its fields in fields_): a line, a summary, a row of another merchant, or a malformed row.
  void ReadRow(size_t number, size_t header_size) {
    if (fields_.size() != header_size) {
      Malformed(number, "expected " + std::to_string(header_size) + " fields, found " +
                            std::to_string(fields_.size()));
      return;
    }
    if (!merchant_filter_.empty() && fields_[merchant_] != merchant_filter_) {
      statement_.data_lines -= 1;
      return;
    }
    const std::string_view kind = fields_[type_];
    Result<int64_t> order_minor = ParseAmount(fields_[order_amount_], "order_amount");
    Result<int64_t> amount_minor = ParseAmount(fields_[amount_], "amount");
    Result<int64_t> fee_minor = ParseAmount(fields_[fee_], "fee");
    for (const Result<int64_t>* parsed : {&order_minor, &amount_minor, &fee_minor}) {
      if (!parsed->ok()) {
        Malformed(number, parsed->status().message());
        break;
      }
    }
    if (!order_minor.ok() || !amount_minor.ok() || !fee_minor.ok()) return;
    if (kind == "SUMMARY") {
      statement_.data_lines -= 1;  // not a data line (as in the WeChat bill)
      statement_.has_summary = true;
      summaries_.push_back(Summary{number, std::string(fields_[order_]), std::string(fields_[refund_]),
                                   *order_minor, *amount_minor});
      return;
    }
    Result<int64_t> at = ParseIso8601(fields_[occurred_]);
    if (!at.ok()) {
      Malformed(number, "occurred_at: " + at.status().message());
      return;
    }
    if (fields_[order_].empty()) {
      Malformed(number, "empty merchant_order_no");
      return;
    }
    Line parsed;
    parsed.merchant = std::string(fields_[merchant_]);
    parsed.order_no = std::string(fields_[order_]);
    parsed.occurred_at_ns = *at;
    parsed.line_number = number;
    AddLine(kind, std::move(parsed), *order_minor, *amount_minor, *fee_minor);
  }

  // A readable row of `kind` as a line (or a payment line turned `reversed`).
  void AddLine(std::string_view kind, Line parsed, int64_t order_minor, int64_t amount_minor,
               int64_t fee_minor) {
    const std::string payment_key = parsed.merchant + '\0' + parsed.order_no;
    if (kind == "PAYMENT") {
      parsed.kind = LineKind::kPayment;
      parsed.id = parsed.order_no;
      parsed.status = LineStatus::kSuccess;
      parsed.amount_minor = amount_minor;
      parsed.fee_minor = fee_minor;
      payments_.emplace(payment_key, statement_.lines.size());
      statement_.lines.push_back(std::move(parsed));
      payment_rows_ += 1;
      order_total_ += order_minor;
    } else if (kind == "REVERSAL") {
      reversal_rows_ += 1;
      if (const auto found = payments_.find(payment_key); found != payments_.end()) {
        statement_.lines[found->second].status = LineStatus::kReversed;
      } else {  // the payment row is not in this file: the reversal stands for it
        parsed.kind = LineKind::kPayment;
        parsed.id = parsed.order_no;
        parsed.status = LineStatus::kReversed;
        parsed.amount_minor = amount_minor;
        parsed.fee_minor = -fee_minor;
        payments_.emplace(payment_key, statement_.lines.size());
        statement_.lines.push_back(std::move(parsed));
      }
    } else if (kind == "REFUND") {
      if (fields_[refund_].empty()) {
        Malformed(parsed.line_number, "REFUND row without refund_no");
        return;
      }
      parsed.kind = LineKind::kRefund;
      parsed.id = std::string(fields_[refund_]);
      parsed.status = LineStatus::kRefunded;
      parsed.amount_minor = amount_minor;
      parsed.fee_minor = -fee_minor;  // the file shows the fee given back as negative
      statement_.lines.push_back(std::move(parsed));
      refund_rows_ += 1;
      refund_total_ += amount_minor;
    } else {
      Malformed(parsed.line_number, "unknown record_type '" + std::string(kind) + "'");
    }
  }

  void CheckSummaries() {
    std::vector<std::string>& disagreements = statement_.summary_disagreements;
    for (const Summary& summary : summaries_) {
      const std::string where = "SUMMARY (line " + std::to_string(summary.line_number) + ")";
      if (summary.payments != std::to_string(payment_rows_)) {
        disagreements.push_back(where + " says " + summary.payments + " payments, the rows hold " +
                                std::to_string(payment_rows_));
      }
      const std::string counts =
          "reversals=" + std::to_string(reversal_rows_) + ";refunds=" + std::to_string(refund_rows_);
      if (summary.counts != counts)
        disagreements.push_back(where + " says " + summary.counts + ", the rows hold " + counts);
      if (summary.order_total != order_total_) {
        disagreements.push_back(where + " order amount " + FormatYuan(summary.order_total) +
                                ", the rows sum to " + FormatYuan(order_total_));
      }
      if (summary.refund_total != refund_total_) {
        disagreements.push_back(where + " refunded amount " + FormatYuan(summary.refund_total) +
                                ", the rows sum to " + FormatYuan(refund_total_));
      }
    }
  }

  const std::string& merchant_filter_;
  size_t type_ = 0, merchant_ = 0, order_ = 0, refund_ = 0, occurred_ = 0, order_amount_ = 0, amount_ = 0,
         fee_ = 0;
  Statement statement_;
  std::vector<std::string_view> fields_;
  std::unordered_map<std::string, size_t> payments_;  // merchant/order -> index in statement_.lines
  int64_t payment_rows_ = 0, reversal_rows_ = 0, refund_rows_ = 0, order_total_ = 0, refund_total_ = 0;
  std::vector<Summary> summaries_;
};

// ---------------------------------------------------------------------------------------------------------
// wechat

constexpr const char* kWeChatSummaryFirstColumn = "总交易单数";
// Column sums the summary row is checked against: summary column -> data column.
constexpr std::pair<const char*, const char*> kWeChatSummed[] = {
    {"应结订单总金额", "应结订单金额"}, {"退款总金额", "退款金额"}, {"充值券退款总金额", "充值券退款金额"},
    {"手续费总金额", "手续费"},         {"订单总金额", "订单金额"}, {"申请退款总金额", "申请退款金额"}};
constexpr size_t kWeChatSummedCount = std::size(kWeChatSummed);

// Reads a WeChat trade bill: data rows become lines, and the summary (a header row starting with
// kWeChatSummaryFirstColumn and its value row) is checked against the rows before it.
class WeChatParser {
 public:
  WeChatParser(const std::string& merchant_override, int offset_minutes)
      : merchant_override_(merchant_override), offset_minutes_(offset_minutes) {}

  Result<Statement> Parse(std::string_view text) {
    LineReader reader(text);
    Result<Header> read = ReadHeader(reader, "a WeChat Pay trade bill",
                                     {{"交易时间", &time_},
                                      {"商户号", &mch_},
                                      {"商户订单号", &order_},
                                      {"交易状态", &state_},
                                      {"订单金额", &order_amount_},
                                      {"手续费", &fee_},
                                      {"商户退款单号", &refund_no_},
                                      {"退款金额", &refund_amount_}});
    if (!read.ok()) return read.status();
    const Header& header = *read;
    sub_mch_ = header.Find("特约商户号");
    refund_state_ = header.Find("退款状态");
    for (size_t c = 0; c < kWeChatSummedCount; ++c) {
      summed_positions_[c] = header.Find(kWeChatSummed[c].second).value_or(kAbsent);
    }
    std::string_view line;
    while (reader.Next(&line)) {
      if (Blank(line)) continue;
      const size_t number = reader.number();
      SplitFields(line, &fields_);
      if (!fields_.empty() && fields_[0] == kWeChatSummaryFirstColumn) {
        CheckSummary(reader);
        continue;
      }
      statement_.data_lines += 1;
      if (in_summary_) {
        Malformed(number, "a data line after the summary");
        continue;
      }
      if (fields_.size() != header.size()) {
        Malformed(number, "expected " + std::to_string(header.size()) + " fields, found " +
                              std::to_string(fields_.size()));
        continue;
      }
      rows_ += 1;
      AddToSums();
      ReadRow(number);
    }
    return std::move(statement_);
  }

 private:
  static constexpr size_t kAbsent = static_cast<size_t>(-1);

  void Malformed(size_t number, const std::string& reason) {
    statement_.malformed.push_back(MalformedLine{number, reason});
  }

  // The summary is checked against every row of the bill: each summed column that reads as an amount counts,
  // whether or not the rest of the row is usable (an unreadable amount is reported by ReadRow and the check).
  void AddToSums() {
    for (size_t c = 0; c < kWeChatSummedCount; ++c) {
      if (summed_positions_[c] == kAbsent || fields_[summed_positions_[c]].empty()) continue;
      if (Result<int64_t> value = clearing::ParseYuan(fields_[summed_positions_[c]], 5); value.ok())
        sums_[c] += *value;
    }
  }

  // The summary header is in fields_: the next non-blank line is its row, checked against the rows so far.
  void CheckSummary(LineReader& reader) {
    const Header summary_header(fields_);
    std::string_view row;
    while (reader.Next(&row) && Blank(row)) {
    }
    std::vector<std::string_view> values;
    SplitFields(row, &values);
    statement_.has_summary = true;
    in_summary_ = true;
    std::vector<std::string>& disagreements = statement_.summary_disagreements;
    const std::string where = "summary (line " + std::to_string(reader.number()) + ")";
    if (values.size() != summary_header.size()) {
      disagreements.push_back(where + ": expected " + std::to_string(summary_header.size()) +
                              " fields, found " + std::to_string(values.size()));
      return;
    }
    if (const std::optional<size_t> count = summary_header.Find(kWeChatSummaryFirstColumn)) {
      if (values[*count] != std::to_string(rows_)) {
        disagreements.push_back(where + ": " + kWeChatSummaryFirstColumn + " " + std::string(values[*count]) +
                                ", the bill has " + std::to_string(rows_) + " rows");
      }
    }
    for (size_t c = 0; c < kWeChatSummedCount; ++c) {
      const char* summary_column = kWeChatSummed[c].first;
      const std::optional<size_t> position = summary_header.Find(summary_column);
      if (!position || summed_positions_[c] == kAbsent) continue;
      Result<int64_t> stated = clearing::ParseYuan(values[*position], 5);
      if (!stated.ok()) {
        disagreements.push_back(where + ": " + summary_column + ": " + stated.status().message());
      } else if (*stated != sums_[c]) {
        disagreements.push_back(where + ": " + summary_column + " " + std::string(values[*position]) +
                                ", the rows sum to " + FormatYuan(sums_[c] / 1000) +
                                (sums_[c] % 1000 != 0 ? " (and a fraction of a fen)" : ""));
      }
    }
  }

  // One data row of the bill's width (in fields_): a payment or refund line, or a malformed row.
  void ReadRow(size_t number) {
    Result<int64_t> at = ParseLocalTime(fields_[time_], offset_minutes_);
    if (!at.ok()) {
      Malformed(number, "交易时间: " + at.status().message());
      return;
    }
    if (fields_[order_].empty()) {
      Malformed(number, "empty 商户订单号");
      return;
    }
    Result<int64_t> fee_fen = ParseFeeToFen(fields_[fee_]);
    if (!fee_fen.ok()) {
      Malformed(number, std::string("手续费: ") + fee_fen.status().message());
      return;
    }
    Line parsed;
    parsed.merchant = !merchant_override_.empty()               ? merchant_override_
                      : sub_mch_ && !fields_[*sub_mch_].empty() ? std::string(fields_[*sub_mch_])
                                                                : std::string(fields_[mch_]);
    parsed.order_no = std::string(fields_[order_]);
    parsed.occurred_at_ns = *at;
    parsed.line_number = number;
    const std::string_view status = fields_[state_];
    if (status == "REFUND") {
      if (!ReadRefund(*fee_fen, &parsed)) return;
    } else if (status == "SUCCESS" || status == "REVOKED") {
      if (!ReadPayment(status, *fee_fen, &parsed)) return;
    } else {
      Malformed(number, "unknown 交易状态 '" + std::string(status) + "'");
      return;
    }
    statement_.lines.push_back(std::move(parsed));
  }

  // False after reporting the row malformed.
  bool ReadRefund(int64_t fee_fen, Line* parsed) {
    if (fields_[refund_no_].empty()) {
      Malformed(parsed->line_number, "REFUND row without 商户退款单号");
      return false;
    }
    Result<int64_t> amount = ParseAmount(fields_[refund_amount_], "退款金额");
    if (!amount.ok()) {
      Malformed(parsed->line_number, amount.status().message());
      return false;
    }
    parsed->kind = LineKind::kRefund;
    parsed->id = std::string(fields_[refund_no_]);
    const std::string_view refund_status =
        refund_state_ ? fields_[*refund_state_] : std::string_view("SUCCESS");
    parsed->status = refund_status == "SUCCESS"                               ? LineStatus::kRefunded
                     : refund_status == "PROCESSING" || refund_status.empty() ? LineStatus::kRefundPending
                                                                              : LineStatus::kRefundFailed;
    parsed->amount_minor = *amount;
    parsed->fee_minor = std::llabs(fee_fen);  // WeChat shows the fee given back as negative
    return true;
  }

  // False after reporting the row malformed.
  bool ReadPayment(std::string_view status, int64_t fee_fen, Line* parsed) {
    Result<int64_t> amount = ParseAmount(fields_[order_amount_], "订单金额");
    if (!amount.ok()) {
      Malformed(parsed->line_number, amount.status().message());
      return false;
    }
    parsed->kind = LineKind::kPayment;
    parsed->id = parsed->order_no;
    parsed->status = status == "SUCCESS" ? LineStatus::kSuccess : LineStatus::kReversed;
    parsed->amount_minor = *amount;
    parsed->fee_minor = fee_fen;
    return true;
  }

  const std::string& merchant_override_;
  const int offset_minutes_;
  size_t time_ = 0, mch_ = 0, order_ = 0, state_ = 0, order_amount_ = 0, fee_ = 0, refund_no_ = 0,
         refund_amount_ = 0;
  std::optional<size_t> sub_mch_;
  std::optional<size_t> refund_state_;
  // Data column positions of the summed columns (kAbsent when the bill lacks one), and their sums in 1/1000
  // fen.
  std::array<size_t, kWeChatSummedCount> summed_positions_{};
  std::array<int64_t, kWeChatSummedCount> sums_{};
  int64_t rows_ = 0;
  bool in_summary_ = false;
  Statement statement_;
  std::vector<std::string_view> fields_;
};

}  // namespace

Result<Format> ParseFormat(std::string_view name) {
  if (name == "ledger-csv") return Format::kLedgerCsv;
  if (name == "wechat") return Format::kWeChat;
  return Status::InvalidArgument("unknown statement format '" + std::string(name) +
                                 "' (ledger-csv or wechat)");
}

const char* FormatName(Format format) { return format == Format::kLedgerCsv ? "ledger-csv" : "wechat"; }

Result<Statement> ParseStatement(std::string_view text, Format format, const std::string& merchant,
                                 int timezone_offset_minutes) {
  if (format == Format::kLedgerCsv) return LedgerCsvParser(merchant).Parse(text);
  return WeChatParser(merchant, timezone_offset_minutes).Parse(text);
}

}  // namespace ledger::recon
