// Statement parsers: the project's clearing file and WeChat Pay's trade bill, reduced to reconciliation lines.
// Columns are found by name in the header; a data line that cannot be read is collected with its line number
// and reason, and parsing goes on.
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
    std::string_view field = Trim(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
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
      return Status::InvalidArgument("line " + std::to_string(reader.number()) + ": not " + format + ": " + found.message());
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

Result<Statement> ParseLedgerCsv(std::string_view text, const std::string& merchant_filter) {
  Statement statement;
  LineReader reader(text);
  size_t type = 0, merchant = 0, order = 0, refund = 0, occurred = 0, order_amount = 0, amount = 0, fee = 0;
  Result<Header> read = ReadHeader(reader, "a ledger-csv clearing file",
                                   {{"record_type", &type}, {"merchant", &merchant}, {"merchant_order_no", &order},
                                    {"refund_no", &refund}, {"occurred_at", &occurred}, {"order_amount", &order_amount},
                                    {"amount", &amount}, {"fee", &fee}});
  if (!read.ok()) return read.status();
  const Header& header = *read;
  std::string_view line;
  std::vector<std::string_view> fields;
  std::unordered_map<std::string, size_t> payments;  // merchant/order -> index in statement.lines
  int64_t payment_rows = 0, reversal_rows = 0, refund_rows = 0, order_total = 0, refund_total = 0;
  struct Summary {
    size_t line_number;
    std::string payments, counts;
    int64_t order_total, refund_total;
  };
  std::vector<Summary> summaries;
  while (reader.Next(&line)) {
    if (Blank(line)) continue;
    statement.data_lines += 1;
    const size_t number = reader.number();
    auto malformed = [&](const std::string& reason) { statement.malformed.push_back(MalformedLine{number, reason}); };
    SplitFields(line, &fields);
    if (fields.size() != header.size()) {
      malformed("expected " + std::to_string(header.size()) + " fields, found " + std::to_string(fields.size()));
      continue;
    }
    if (!merchant_filter.empty() && fields[merchant] != merchant_filter) {
      statement.data_lines -= 1;
      continue;
    }
    const std::string_view kind = fields[type];
    Result<int64_t> order_minor = ParseAmount(fields[order_amount], "order_amount");
    Result<int64_t> amount_minor = ParseAmount(fields[amount], "amount");
    Result<int64_t> fee_minor = ParseAmount(fields[fee], "fee");
    for (const Result<int64_t>* parsed : {&order_minor, &amount_minor, &fee_minor}) {
      if (!parsed->ok()) {
        malformed(parsed->status().message());
        break;
      }
    }
    if (!order_minor.ok() || !amount_minor.ok() || !fee_minor.ok()) continue;
    if (kind == "SUMMARY") {
      statement.data_lines -= 1;  // not a data line (as in the WeChat bill)
      statement.has_summary = true;
      summaries.push_back(Summary{number, std::string(fields[order]), std::string(fields[refund]), *order_minor, *amount_minor});
      continue;
    }
    Result<int64_t> at = ParseIso8601(fields[occurred]);
    if (!at.ok()) {
      malformed("occurred_at: " + at.status().message());
      continue;
    }
    if (fields[order].empty()) {
      malformed("empty merchant_order_no");
      continue;
    }
    Line parsed;
    parsed.merchant = std::string(fields[merchant]);
    parsed.order_no = std::string(fields[order]);
    parsed.occurred_at_ns = *at;
    parsed.line_number = number;
    const std::string payment_key = parsed.merchant + '\0' + parsed.order_no;
    if (kind == "PAYMENT") {
      parsed.kind = LineKind::kPayment;
      parsed.id = parsed.order_no;
      parsed.status = LineStatus::kSuccess;
      parsed.amount_minor = *amount_minor;
      parsed.fee_minor = *fee_minor;
      payments.emplace(payment_key, statement.lines.size());
      statement.lines.push_back(std::move(parsed));
      payment_rows += 1;
      order_total += *order_minor;
    } else if (kind == "REVERSAL") {
      reversal_rows += 1;
      if (const auto found = payments.find(payment_key); found != payments.end()) {
        statement.lines[found->second].status = LineStatus::kReversed;
      } else {  // the payment row is not in this file: the reversal stands for it
        parsed.kind = LineKind::kPayment;
        parsed.id = parsed.order_no;
        parsed.status = LineStatus::kReversed;
        parsed.amount_minor = *amount_minor;
        parsed.fee_minor = -*fee_minor;
        payments.emplace(payment_key, statement.lines.size());
        statement.lines.push_back(std::move(parsed));
      }
    } else if (kind == "REFUND") {
      if (fields[refund].empty()) {
        malformed("REFUND row without refund_no");
        continue;
      }
      parsed.kind = LineKind::kRefund;
      parsed.id = std::string(fields[refund]);
      parsed.status = LineStatus::kRefunded;
      parsed.amount_minor = *amount_minor;
      parsed.fee_minor = -*fee_minor;  // the file shows the fee given back as negative
      statement.lines.push_back(std::move(parsed));
      refund_rows += 1;
      refund_total += *amount_minor;
    } else {
      malformed("unknown record_type '" + std::string(kind) + "'");
    }
  }
  for (const Summary& summary : summaries) {
    const std::string where = "SUMMARY (line " + std::to_string(summary.line_number) + ")";
    if (summary.payments != std::to_string(payment_rows)) {
      statement.summary_disagreements.push_back(where + " says " + summary.payments + " payments, the rows hold " + std::to_string(payment_rows));
    }
    const std::string counts = "reversals=" + std::to_string(reversal_rows) + ";refunds=" + std::to_string(refund_rows);
    if (summary.counts != counts) statement.summary_disagreements.push_back(where + " says " + summary.counts + ", the rows hold " + counts);
    if (summary.order_total != order_total) {
      statement.summary_disagreements.push_back(where + " order amount " + FormatYuan(summary.order_total) + ", the rows sum to " + FormatYuan(order_total));
    }
    if (summary.refund_total != refund_total) {
      statement.summary_disagreements.push_back(where + " refunded amount " + FormatYuan(summary.refund_total) + ", the rows sum to " + FormatYuan(refund_total));
    }
  }
  return statement;
}

// ---------------------------------------------------------------------------------------------------------
// wechat

constexpr const char* kWeChatSummaryFirstColumn = "总交易单数";

Result<Statement> ParseWeChat(std::string_view text, const std::string& merchant_override, int offset_minutes) {
  Statement statement;
  LineReader reader(text);
  size_t time = 0, mch = 0, order = 0, state = 0, order_amount = 0, fee = 0, refund_no = 0, refund_amount = 0;
  Result<Header> read = ReadHeader(reader, "a WeChat Pay trade bill",
                                   {{"交易时间", &time}, {"商户号", &mch}, {"商户订单号", &order}, {"交易状态", &state},
                                    {"订单金额", &order_amount}, {"手续费", &fee}, {"商户退款单号", &refund_no},
                                    {"退款金额", &refund_amount}});
  if (!read.ok()) return read.status();
  const Header& header = *read;
  std::string_view line;
  std::vector<std::string_view> fields;
  const std::optional<size_t> sub_mch = header.Find("特约商户号");
  const std::optional<size_t> refund_state = header.Find("退款状态");
  // Column sums the summary row is checked against: summary column -> data column.
  const std::pair<const char*, const char*> summed[] = {
      {"应结订单总金额", "应结订单金额"}, {"退款总金额", "退款金额"}, {"充值券退款总金额", "充值券退款金额"},
      {"手续费总金额", "手续费"},         {"订单总金额", "订单金额"}, {"申请退款总金额", "申请退款金额"}};
  // Data column positions of the summed columns (npos when the bill lacks one), and their sums in 1/1000 fen.
  constexpr size_t kAbsent = static_cast<size_t>(-1);
  std::array<size_t, std::size(summed)> summed_positions;
  std::array<int64_t, std::size(summed)> sums{};
  for (size_t c = 0; c < std::size(summed); ++c) summed_positions[c] = header.Find(summed[c].second).value_or(kAbsent);
  int64_t rows = 0;
  bool in_summary = false;
  while (reader.Next(&line)) {
    if (Blank(line)) continue;
    const size_t number = reader.number();
    SplitFields(line, &fields);
    if (!fields.empty() && fields[0] == kWeChatSummaryFirstColumn) {
      // The summary header: the next non-blank line is its row.
      const Header summary_header(fields);
      std::string_view row;
      while (reader.Next(&row) && Blank(row)) {
      }
      std::vector<std::string_view> values;
      SplitFields(row, &values);
      statement.has_summary = true;
      in_summary = true;
      const std::string where = "summary (line " + std::to_string(reader.number()) + ")";
      if (values.size() != summary_header.size()) {
        statement.summary_disagreements.push_back(where + ": expected " + std::to_string(summary_header.size()) + " fields, found " + std::to_string(values.size()));
        continue;
      }
      if (const std::optional<size_t> count = summary_header.Find(kWeChatSummaryFirstColumn)) {
        if (values[*count] != std::to_string(rows)) {
          statement.summary_disagreements.push_back(where + ": " + kWeChatSummaryFirstColumn + " " + std::string(values[*count]) +
                                                    ", the bill has " + std::to_string(rows) + " rows");
        }
      }
      for (size_t c = 0; c < std::size(summed); ++c) {
        const char* summary_column = summed[c].first;
        const std::optional<size_t> position = summary_header.Find(summary_column);
        if (!position || summed_positions[c] == kAbsent) continue;
        Result<int64_t> stated = clearing::ParseYuan(values[*position], 5);
        if (!stated.ok()) {
          statement.summary_disagreements.push_back(where + ": " + summary_column + ": " + stated.status().message());
        } else if (*stated != sums[c]) {
          statement.summary_disagreements.push_back(where + ": " + summary_column + " " + std::string(values[*position]) +
                                                    ", the rows sum to " + FormatYuan(sums[c] / 1000) +
                                                    (sums[c] % 1000 != 0 ? " (and a fraction of a fen)" : ""));
        }
      }
      continue;
    }
    statement.data_lines += 1;
    auto malformed = [&](const std::string& reason) { statement.malformed.push_back(MalformedLine{number, reason}); };
    if (in_summary) {
      malformed("a data line after the summary");
      continue;
    }
    if (fields.size() != header.size()) {
      malformed("expected " + std::to_string(header.size()) + " fields, found " + std::to_string(fields.size()));
      continue;
    }
    rows += 1;
    // The summary is checked against every row of the bill: each summed column that reads as an amount counts,
    // whether or not the rest of the row is usable (an unreadable amount is reported below and in the check).
    for (size_t c = 0; c < std::size(summed); ++c) {
      if (summed_positions[c] == kAbsent || fields[summed_positions[c]].empty()) continue;
      if (Result<int64_t> value = clearing::ParseYuan(fields[summed_positions[c]], 5); value.ok()) sums[c] += *value;
    }
    Result<int64_t> at = ParseLocalTime(fields[time], offset_minutes);
    if (!at.ok()) {
      malformed("交易时间: " + at.status().message());
      continue;
    }
    if (fields[order].empty()) {
      malformed("empty 商户订单号");
      continue;
    }
    Result<int64_t> fee_fen = ParseFeeToFen(fields[fee]);
    if (!fee_fen.ok()) {
      malformed(std::string("手续费: ") + fee_fen.status().message());
      continue;
    }
    Line parsed;
    parsed.merchant = !merchant_override.empty() ? merchant_override
                      : sub_mch && !fields[*sub_mch].empty() ? std::string(fields[*sub_mch])
                                                              : std::string(fields[mch]);
    parsed.order_no = std::string(fields[order]);
    parsed.occurred_at_ns = *at;
    parsed.line_number = number;
    const std::string_view status = fields[state];
    if (status == "REFUND") {
      if (fields[refund_no].empty()) {
        malformed("REFUND row without 商户退款单号");
        continue;
      }
      Result<int64_t> amount = ParseAmount(fields[refund_amount], "退款金额");
      if (!amount.ok()) {
        malformed(amount.status().message());
        continue;
      }
      parsed.kind = LineKind::kRefund;
      parsed.id = std::string(fields[refund_no]);
      const std::string_view refund_status = refund_state ? fields[*refund_state] : std::string_view("SUCCESS");
      parsed.status = refund_status == "SUCCESS"                                  ? LineStatus::kRefunded
                      : refund_status == "PROCESSING" || refund_status.empty()    ? LineStatus::kRefundPending
                                                                                  : LineStatus::kRefundFailed;
      parsed.amount_minor = *amount;
      parsed.fee_minor = std::llabs(*fee_fen);  // WeChat shows the fee given back as negative
    } else if (status == "SUCCESS" || status == "REVOKED") {
      Result<int64_t> amount = ParseAmount(fields[order_amount], "订单金额");
      if (!amount.ok()) {
        malformed(amount.status().message());
        continue;
      }
      parsed.kind = LineKind::kPayment;
      parsed.id = parsed.order_no;
      parsed.status = status == "SUCCESS" ? LineStatus::kSuccess : LineStatus::kReversed;
      parsed.amount_minor = *amount;
      parsed.fee_minor = *fee_fen;
    } else {
      malformed("unknown 交易状态 '" + std::string(status) + "'");
      continue;
    }
    statement.lines.push_back(std::move(parsed));
  }
  return statement;
}

}  // namespace

Result<Format> ParseFormat(std::string_view name) {
  if (name == "ledger-csv") return Format::kLedgerCsv;
  if (name == "wechat") return Format::kWeChat;
  return Status::InvalidArgument("unknown statement format '" + std::string(name) + "' (ledger-csv or wechat)");
}

const char* FormatName(Format format) { return format == Format::kLedgerCsv ? "ledger-csv" : "wechat"; }

Result<Statement> ParseStatement(std::string_view text, Format format, const std::string& merchant,
                                 int timezone_offset_minutes) {
  return format == Format::kLedgerCsv ? ParseLedgerCsv(text, merchant) : ParseWeChat(text, merchant, timezone_offset_minutes);
}

}  // namespace ledger::recon
