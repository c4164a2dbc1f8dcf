// Reconciliation: the ledger's line view of one clearing date against an external statement.
//
// Both sides are reduced to lines: a payment (keyed by merchant + merchant_order_no) or a refund (keyed by
// merchant + refund_no), with a status, an amount and a fee in fen. Payment status is the payment's own
// outcome: `reversed` or `success` (a later refund does not change the payment line; refunds are lines of
// their own). Every line is classified once, from the ledger's point of view; see Category.
//
// Statement formats (ParseStatement):
//   ledger-csv  the project's clearing file (projections/clearing_file.h): PAYMENT rows are payment lines,
//               a REVERSAL row turns its payment line `reversed`, REFUND rows are refund lines (their fee
//               column is negative: the fee given back). The SUMMARY row is checked against the rows.
//   wechat      WeChat Pay's merchant trade bill (交易账单, bill type ALL): UTF-8, comma separated, each
//   field
//               prefixed by a backtick, columns found by name. 交易状态 SUCCESS -> success, REVOKED ->
//               reversed, REFUND -> a refund line (商户退款单号, 退款金额; 退款状态 other than SUCCESS is a
//               status of its own). Fees may carry 5 decimals; they are rounded half-up to fen. The trailing
//               summary (总交易单数, 应结订单总金额, 退款总金额, ..., 手续费总金额) is checked against the
//               rows.
// Thread-safety: pure functions over their arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ledger::recon {

enum class Category {
  kMatched,
  kMissingInStatement,  // the ledger has it, the statement does not
  kMissingInLedger,     // the statement has it (or has it twice), the ledger does not
  kAmountMismatch,
  kStatusMismatch,
  kFeeMismatch,
  kCarriedOver,  // near the cut-off and on the neighbouring date's side: not a break
};
inline constexpr int kCategoryCount = 7;
const char* CategoryName(Category category);  // MATCHED, MISSING_IN_STATEMENT, ...
inline bool IsBreak(Category category) {
  return category != Category::kMatched && category != Category::kCarriedOver;
}

enum class LineKind { kPayment, kRefund };

// Statuses both sides are reduced to.
enum class LineStatus { kSuccess, kReversed, kRefunded, kRefundPending, kRefundFailed };
const char* LineStatusName(LineStatus status);  // success, reversed, refunded, refund_pending, refund_failed

struct Line {
  LineKind kind = LineKind::kPayment;
  std::string merchant;
  std::string id;        // merchant_order_no of a payment, refund_no of a refund
  std::string order_no;  // the payment a refund belongs to (refunds; informative)
  LineStatus status = LineStatus::kSuccess;
  int64_t amount_minor = 0;  // order amount of a payment, amount of a refund
  int64_t fee_minor = 0;     // fee of a payment, fee given back by a refund (positive)
  int64_t occurred_at_ns = 0;
  int clearing_date = 0;   // ledger lines only
  size_t line_number = 0;  // statement lines only: 1-based line in the file
};

struct MalformedLine {
  size_t line_number = 0;
  std::string reason;
};

struct Statement {
  std::vector<Line> lines;
  std::vector<MalformedLine> malformed;
  size_t data_lines = 0;  // lines that were meant as data (parsed or malformed)
  // The statement's own summary row checked against its rows: empty when they agree or there is none.
  std::vector<std::string> summary_disagreements;
  bool has_summary = false;
};

enum class Format { kLedgerCsv, kWeChat };
// "ledger-csv" or "wechat". Errors: InvalidArgument.
Result<Format> ParseFormat(std::string_view name);
const char* FormatName(Format format);

// Parses a statement. `merchant` (not empty) is the merchant every WeChat line belongs to (a WeChat bill is
// one merchant's; otherwise 特约商户号, or 商户号 when that is empty, names it); for ledger-csv it keeps only
// that merchant's rows. Times in the statement are local at `timezone_offset_minutes` (WeChat's have no
// zone). Malformed data lines are collected, never fatal. Errors: InvalidArgument when the text is empty or
// is not the format at all (no header, a required column missing).
Result<Statement> ParseStatement(std::string_view text, Format format, const std::string& merchant,
                                 int timezone_offset_minutes);

// WeChat Pay's trade bill (交易账单, bill type ALL) of `lines`, as WeChat writes it and ParseStatement reads
// it back line for line: the header, one row per line (every field prefixed with a backtick; 交易时间 local
// at `timezone_offset_minutes`, to the second; amounts in yuan, fees with 5 decimals, a refund's fee given
// back negative), then the summary header and its row. 商户号 is `mchid`. Errors: InvalidArgument when a
// line's order or refund number holds a comma, a backtick or a line break (the format has no quoting).
Result<std::string> WeChatTradeBill(const std::vector<Line>& lines, std::string_view mchid,
                                    int timezone_offset_minutes);

struct Options {
  int date = 0;  // the clearing date reconciled, yyyymmdd
  int timezone_offset_minutes = 8 * 60;
  int clearing_cutoff_minutes = 23 * 60;
  // A line within this distance of a cut-off bounding `date` (before or after it) may sit on the neighbouring
  // date's side; see Reconcile.
  int64_t carry_over_window_ns = 60LL * 60 * 1'000'000'000;
  // Fee differences up to this many fen are not FEE_MISMATCH (0: any difference is a break).
  int64_t fee_tolerance_minor = 0;
};

struct Classified {
  Category category = Category::kMatched;
  LineKind kind = LineKind::kPayment;
  std::string merchant;
  std::string id;
  std::optional<Line> ledger;     // absent for MISSING_IN_LEDGER
  std::optional<Line> statement;  // absent for MISSING_IN_STATEMENT
  std::string note;
};

struct CategoryTotals {
  int64_t count = 0;
  int64_t ledger_amount_minor = 0;
  int64_t statement_amount_minor = 0;
};

struct Outcome {
  std::vector<Classified>
      lines;  // every line: ledger lines in key order, then statement-only lines in file order
  CategoryTotals totals[kCategoryCount];
  int64_t breaks = 0;
};

// Looks a line up by key in the whole ledger (any clearing date): what carry-over needs.
using LedgerLookup =
    std::function<std::optional<Line>(LineKind kind, const std::string& merchant, const std::string& id)>;

// Classifies every line. `ledger_lines` are the ledger's lines of options.date (any order).
// - A statement line with the same key: STATUS_MISMATCH, else AMOUNT_MISMATCH, else FEE_MISMATCH, else
// MATCHED
//   (the first difference wins). A second statement line with a key already seen is MISSING_IN_LEDGER.
// - A statement line the ledger has on the neighbouring clearing date (found by `lookup`), occurred within
// the
//   window of the cut-off between the two dates: CARRIED_OVER (its amounts still compared). Else
//   MISSING_IN_LEDGER.
// - A ledger line the statement lacks, occurred within the window of either cut-off bounding the date:
//   CARRIED_OVER (expected on the neighbouring date's statement). Else MISSING_IN_STATEMENT.
Outcome Reconcile(std::vector<Line> ledger_lines, const Statement& statement, const Options& options,
                  const LedgerLookup& lookup);

}  // namespace ledger::recon
