// Goal: reconciliation classifies every line of a clearing date once, and `ledger reconcile` keeps its
// contract: exit 0 clean, 3 on breaks (or malformed lines, or a summary that disagrees with its rows), 2 on
// unusable input with nothing written; breaks.csv and report.json tell each break; every run is one
// ReconciliationRecorded event and changes nothing else.
//
// Part 1 drives the engine (recon::ParseStatement + recon::Reconcile) with hand-built ledger lines and
// hand-written statements; part 2 spawns the `ledger` binary on a small ledger made with `ledger submit`.
#include "reconcile/reconcile.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/money.h"
#include "core/time.h"
#include "support/test_support.h"

extern char** environ;

namespace ledger {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using recon::Category;
using recon::LineKind;
using recon::LineStatus;

constexpr int kUtc8 = 8 * 60;
constexpr int kCutoff = 23 * 60;
constexpr int kDay25 = 20261125;
constexpr int kDay26 = 20261126;

// =============================================================================================================
// Part 1: the engine.
// =============================================================================================================

int64_t Ns(const std::string& iso) {
  Result<int64_t> at = ParseIso8601(iso);
  EXPECT_TRUE(at.ok()) << iso;
  return at.ok() ? *at : 0;
}

// "2026-11-25T10:00:00+08:00" -> "2026-11-25 10:00:00" (WeChat's local time, no zone).
std::string WxTime(const std::string& iso) {
  std::string text = iso.substr(0, 19);
  text[10] = ' ';
  return text;
}

// A ledger line as cmd_reconcile builds it from the store: clearing date from the time, UTC+8, 23:00.
recon::Line LedgerPayment(const std::string& order, int64_t amount, int64_t fee, const std::string& iso,
                          LineStatus status = LineStatus::kSuccess, const std::string& merchant = "M1") {
  recon::Line line;
  line.kind = LineKind::kPayment;
  line.merchant = merchant;
  line.id = order;
  line.order_no = order;
  line.status = status;
  line.amount_minor = amount;
  line.fee_minor = fee;
  line.occurred_at_ns = Ns(iso);
  line.clearing_date = ClearingDate(line.occurred_at_ns, kUtc8, kCutoff);
  return line;
}

recon::Line LedgerRefund(const std::string& refund_no, const std::string& order, int64_t amount, int64_t fee,
                         const std::string& iso) {
  recon::Line line = LedgerPayment(order, amount, fee, iso, LineStatus::kRefunded);
  line.kind = LineKind::kRefund;
  line.id = refund_no;
  return line;
}

// The ledger's lines of one clearing date, out of all of them.
std::vector<recon::Line> OfDate(const std::vector<recon::Line>& all, int date) {
  std::vector<recon::Line> lines;
  for (const recon::Line& line : all) {
    if (line.clearing_date == date) lines.push_back(line);
  }
  return lines;
}

// A lookup over every ledger line (any clearing date), like cmd_reconcile's over the store.
recon::LedgerLookup LookupIn(std::vector<recon::Line> all) {
  return [all = std::move(all)](LineKind kind, const std::string& merchant,
                                const std::string& id) -> std::optional<recon::Line> {
    for (const recon::Line& line : all) {
      if (line.kind == kind && line.merchant == merchant && line.id == id) return line;
    }
    return std::nullopt;
  };
}

// ---- WeChat trade bills, written by hand
// --------------------------------------------------------------------

const std::vector<std::string> kWxColumns = {
    "交易时间",     "公众账号ID",   "商户号",       "特约商户号",   "设备号",   "微信订单号",
    "商户订单号",   "用户标识",     "交易类型",     "交易状态",     "付款银行", "货币种类",
    "应结订单金额", "代金券金额",   "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额",
    "退款类型",     "退款状态",     "商品名称",     "商户数据包",   "手续费",   "费率",
    "订单金额",     "申请退款金额", "费率备注"};
const char kWxSummaryHeader[] =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

std::string Join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string text;
  for (size_t i = 0; i < parts.size(); ++i) text += (i ? separator : "") + parts[i];
  return text;
}

// Thousandths of a fen as WeChat's 5-decimal yuan, e.g. 60500 -> "0.60500", -60000 -> "-0.60000".
std::string Yuan5(int64_t milli_fen) {
  char text[48];
  const int64_t magnitude = milli_fen < 0 ? -milli_fen : milli_fen;
  std::snprintf(text, sizeof text, "%s%lld.%05lld", milli_fen < 0 ? "-" : "",
                static_cast<long long>(magnitude / 100000), static_cast<long long>(magnitude % 100000));
  return text;
}

struct WxRow {
  std::string iso;  // 交易时间 (written as local time without the zone)
  std::string order;
  std::string state = "SUCCESS";  // 交易状态: SUCCESS, REVOKED, REFUND, ...
  int64_t order_amount = 0;       // fen: 订单金额 and 应结订单金额 (0 on refund rows)
  int64_t fee_milli = 0;          // 手续费 in 1/1000 fen (negative on refund rows: the fee given back)
  std::string refund_no;
  int64_t refund_amount = 0;      // fen: 退款金额 and 申请退款金额
  std::string refund_state;       // 退款状态
  std::string order_amount_text;  // when set, written instead of order_amount (malformed amounts)
};

WxRow WxPay(const std::string& order, int64_t amount, int64_t fee_milli, const std::string& iso,
            const std::string& state = "SUCCESS") {
  WxRow row;
  row.iso = iso;
  row.order = order;
  row.state = state;
  row.order_amount = amount;
  row.fee_milli = fee_milli;
  return row;
}

WxRow WxRefund(const std::string& refund_no, const std::string& order, int64_t amount,
               int64_t fee_milli_given_back, const std::string& iso,
               const std::string& refund_state = "SUCCESS") {
  WxRow row;
  row.iso = iso;
  row.order = order;
  row.state = "REFUND";
  row.fee_milli = -fee_milli_given_back;
  row.refund_no = refund_no;
  row.refund_amount = amount;
  row.refund_state = refund_state;
  return row;
}

std::map<std::string, std::string> WxValues(const WxRow& row) {
  static int serial = 0;
  ++serial;
  const bool refund = row.state == "REFUND";
  return {
      {"交易时间", WxTime(row.iso)},
      {"公众账号ID", "wx2421b1c4370ec43b"},
      {"商户号", "1900000109"},
      {"特约商户号", ""},
      {"设备号", ""},
      {"微信订单号", "42000012" + std::to_string(100000 + serial)},
      {"商户订单号", row.order},
      {"用户标识", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
      {"交易类型", "NATIVE"},
      {"交易状态", row.state},
      {"付款银行", "CMB_DEBIT"},
      {"货币种类", "CNY"},
      {"应结订单金额", row.order_amount_text.empty() ? FormatYuan(row.order_amount) : row.order_amount_text},
      {"代金券金额", "0.00"},
      {"微信退款单号", refund ? "5030000" + std::to_string(100000 + serial) : ""},
      {"商户退款单号", row.refund_no},
      {"退款金额", FormatYuan(row.refund_amount)},
      {"充值券退款金额", "0.00"},
      {"退款类型", refund ? "ORIGINAL" : ""},
      {"退款状态", row.refund_state},
      {"商品名称", "rail ticket"},
      {"商户数据包", ""},
      {"手续费", Yuan5(row.fee_milli)},
      {"费率", "0.60%"},
      {"订单金额", row.order_amount_text.empty() ? FormatYuan(row.order_amount) : row.order_amount_text},
      {"申请退款金额", FormatYuan(row.refund_amount)},
      {"费率备注", ""}};
}

// One data line: every field prefixed by a backtick, in `columns` order.
std::string WxLine(const WxRow& row, const std::vector<std::string>& columns = kWxColumns) {
  const std::map<std::string, std::string> values = WxValues(row);
  std::vector<std::string> fields;
  for (const std::string& column : columns) fields.push_back("`" + values.at(column));
  return Join(fields, ",");
}

// The summary row the rows call for (5-decimal sums, like WeChat's).
std::string WxSummaryRow(const std::vector<WxRow>& rows) {
  int64_t count = 0, order = 0, refund = 0, fee = 0;
  for (const WxRow& row : rows) {
    count += 1;
    order += row.order_amount * 1000;
    refund += row.refund_amount * 1000;
    fee += row.fee_milli;
  }
  return Join({"`" + std::to_string(count), "`" + Yuan5(order), "`" + Yuan5(refund), "`0.00000",
               "`" + Yuan5(fee), "`" + Yuan5(order), "`" + Yuan5(refund)},
              ",");
}

// A whole bill: header, one line per row, then (optionally) the summary header and its row.
std::string WxBill(const std::vector<WxRow>& rows, bool summary = true,
                   const std::vector<std::string>& columns = kWxColumns) {
  std::vector<std::string> lines = {Join(columns, ",")};
  for (const WxRow& row : rows) lines.push_back(WxLine(row, columns));
  if (summary) {
    lines.push_back(kWxSummaryHeader);
    lines.push_back(WxSummaryRow(rows));
  }
  return Join(lines, "\n") + "\n";
}

recon::Statement ParseWx(const std::string& text, const std::string& merchant = "M1") {
  Result<recon::Statement> statement = recon::ParseStatement(text, recon::Format::kWeChat, merchant, kUtc8);
  EXPECT_TRUE(statement.ok()) << statement.status().ToString();
  return statement.ok() ? *statement : recon::Statement();
}

recon::Options OptionsFor(int date) {
  recon::Options options;
  options.date = date;
  return options;
}

// "CATEGORY kind id" per classified line, in the outcome's order (ledger lines by key, then statement-only).
std::vector<std::string> Golden(const recon::Outcome& outcome) {
  std::vector<std::string> lines;
  for (const recon::Classified& line : outcome.lines) {
    lines.push_back(std::string(recon::CategoryName(line.category)) + " " +
                    (line.kind == LineKind::kPayment ? "payment " : "refund ") + line.id);
  }
  return lines;
}

const recon::Classified* Find(const recon::Outcome& outcome, const std::string& id, size_t nth = 0) {
  for (const recon::Classified& line : outcome.lines) {
    if (line.id == id && nth-- == 0) return &line;
  }
  return nullptr;
}

int64_t CountOf(const recon::Outcome& outcome, Category category) {
  return outcome.totals[static_cast<int>(category)].count;
}

// ---- every category, one at a time
// ---------------------------------------------------------------------------

// Payments (one REVOKED), a refund: a bill that agrees line by line is all MATCHED, no break.
TEST(ReconcileEngine, AgreeingBillIsAllMatched) {
  const std::vector<recon::Line> ledger = {
      LedgerPayment("ORD1", 10'000, 60, "2026-11-25T10:00:00+08:00"),
      LedgerPayment("ORD2", 20'000, 120, "2026-11-25T11:00:00+08:00", LineStatus::kReversed),
      LedgerRefund("RF1", "ORD0", 5'000, 30, "2026-11-25T12:00:00+08:00")};
  const recon::Statement bill =
      ParseWx(WxBill({WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00"),
                      WxPay("ORD2", 20'000, 120'000, "2026-11-25T11:00:00+08:00", "REVOKED"),
                      WxRefund("RF1", "ORD0", 5'000, 30'000, "2026-11-25T12:00:00+08:00")}));
  ASSERT_EQ(bill.lines.size(), 3u);
  EXPECT_TRUE(bill.malformed.empty());
  EXPECT_TRUE(bill.has_summary);
  EXPECT_TRUE(bill.summary_disagreements.empty());
  EXPECT_EQ(bill.lines[1].status, LineStatus::kReversed);
  EXPECT_EQ(bill.lines[2].kind, LineKind::kRefund);
  EXPECT_EQ(bill.lines[2].fee_minor, 30);  // shown as -0.30000: the fee given back, positive on the line

  const recon::Outcome outcome = recon::Reconcile(ledger, bill, OptionsFor(kDay25), LookupIn(ledger));

  EXPECT_EQ(Golden(outcome),
            (std::vector<std::string>{"MATCHED payment ORD1", "MATCHED payment ORD2", "MATCHED refund RF1"}));
  EXPECT_EQ(outcome.breaks, 0);
  EXPECT_EQ(CountOf(outcome, Category::kMatched), 3);
  EXPECT_EQ(outcome.totals[static_cast<int>(Category::kMatched)].ledger_amount_minor, 35'000);
  EXPECT_EQ(outcome.totals[static_cast<int>(Category::kMatched)].statement_amount_minor, 35'000);
}

// The bill the gateway serves (WeChatTradeBill) reads back line for line, its summary agreeing, and matches
// the lines it was written from; a number the format cannot hold is refused, not written.
TEST(ReconcileEngine, TheWrittenWeChatBillReadsBackAndMatches) {
  const std::vector<recon::Line> ledger = {
      LedgerPayment("ORD1", 10'000, 60, "2026-11-25T10:00:00+08:00"),
      LedgerPayment("ORD2", 20'000, 120, "2026-11-25T11:00:00+08:00", LineStatus::kReversed),
      LedgerRefund("RF1", "ORD0", 5'000, 30, "2026-11-25T12:00:00+08:00")};
  Result<std::string> written = recon::WeChatTradeBill(ledger, "M1", kUtc8);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  const recon::Statement bill = ParseWx(*written);
  ASSERT_EQ(bill.lines.size(), 3u);
  EXPECT_TRUE(bill.malformed.empty());
  EXPECT_TRUE(bill.has_summary);
  EXPECT_TRUE(bill.summary_disagreements.empty());
  for (size_t i = 0; i < ledger.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(bill.lines[i].kind, ledger[i].kind);
    EXPECT_EQ(bill.lines[i].id, ledger[i].id);
    EXPECT_EQ(bill.lines[i].status, ledger[i].status);
    EXPECT_EQ(bill.lines[i].amount_minor, ledger[i].amount_minor);
    EXPECT_EQ(bill.lines[i].fee_minor, ledger[i].fee_minor);
    EXPECT_EQ(bill.lines[i].occurred_at_ns, ledger[i].occurred_at_ns);
  }
  const recon::Outcome outcome = recon::Reconcile(ledger, bill, OptionsFor(kDay25), LookupIn(ledger));
  EXPECT_EQ(outcome.breaks, 0);
  EXPECT_EQ(CountOf(outcome, Category::kMatched), 3);

  std::vector<recon::Line> comma = ledger;
  comma[0].id = "ORD,1";
  EXPECT_EQ(recon::WeChatTradeBill(comma, "M1", kUtc8).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(recon::WeChatTradeBill(ledger, "M`1", kUtc8).status().code(), StatusCode::kInvalidArgument);
}

TEST(ReconcileEngine, MissingOnEitherSideFarFromTheCutOff) {
  const std::vector<recon::Line> ledger = {LedgerPayment("ORD1", 10'000, 60, "2026-11-25T10:00:00+08:00"),
                                           LedgerPayment("ORD2", 20'000, 120, "2026-11-25T12:00:00+08:00")};
  const recon::Statement bill = ParseWx(WxBill({WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00"),
                                                WxPay("ORD9", 900, 5'000, "2026-11-25T13:00:00+08:00")}));

  const recon::Outcome outcome = recon::Reconcile(ledger, bill, OptionsFor(kDay25), LookupIn(ledger));

  EXPECT_EQ(Golden(outcome),
            (std::vector<std::string>{"MATCHED payment ORD1", "MISSING_IN_STATEMENT payment ORD2",
                                      "MISSING_IN_LEDGER payment ORD9"}));
  EXPECT_EQ(outcome.breaks, 2);
  const recon::Classified* missing = Find(outcome, "ORD2");
  ASSERT_NE(missing, nullptr);
  EXPECT_TRUE(missing->ledger.has_value());
  EXPECT_FALSE(missing->statement.has_value());
  const recon::Classified* extra = Find(outcome, "ORD9");
  ASSERT_NE(extra, nullptr);
  EXPECT_FALSE(extra->ledger.has_value());
  ASSERT_TRUE(extra->statement.has_value());
  EXPECT_EQ(extra->statement->line_number, 3u);
  EXPECT_EQ(outcome.totals[static_cast<int>(Category::kMissingInStatement)].ledger_amount_minor, 20'000);
  EXPECT_EQ(outcome.totals[static_cast<int>(Category::kMissingInLedger)].statement_amount_minor, 900);
}

TEST(ReconcileEngine, AmountMismatch) {
  const std::vector<recon::Line> ledger = {LedgerPayment("ORD1", 10'000, 60, "2026-11-25T10:00:00+08:00")};
  const recon::Statement bill = ParseWx(WxBill({WxPay("ORD1", 10'001, 60'000, "2026-11-25T10:00:00+08:00")}));

  const recon::Outcome outcome = recon::Reconcile(ledger, bill, OptionsFor(kDay25), LookupIn(ledger));

  EXPECT_EQ(Golden(outcome), (std::vector<std::string>{"AMOUNT_MISMATCH payment ORD1"}));
  EXPECT_EQ(outcome.breaks, 1);
  EXPECT_EQ(outcome.totals[static_cast<int>(Category::kAmountMismatch)].ledger_amount_minor, 10'000);
  EXPECT_EQ(outcome.totals[static_cast<int>(Category::kAmountMismatch)].statement_amount_minor, 10'001);
}

// The ledger reversed the payment; the scheme still shows it as paid. The status wins over the amount and
// fee.
TEST(ReconcileEngine, ReversedPaymentShownAsSuccessIsStatusMismatch) {
  const std::vector<recon::Line> ledger = {
      LedgerPayment("ORD1", 10'000, 60, "2026-11-25T10:00:00+08:00", LineStatus::kReversed)};
  const recon::Statement bill = ParseWx(WxBill({WxPay("ORD1", 10'050, 70'000, "2026-11-25T10:00:00+08:00")}));

  const recon::Outcome outcome = recon::Reconcile(ledger, bill, OptionsFor(kDay25), LookupIn(ledger));

  EXPECT_EQ(Golden(outcome), (std::vector<std::string>{"STATUS_MISMATCH payment ORD1"}));
  EXPECT_EQ(outcome.breaks, 1);
  ASSERT_TRUE(outcome.lines[0].statement.has_value());
  EXPECT_EQ(outcome.lines[0].ledger->status, LineStatus::kReversed);
  EXPECT_EQ(outcome.lines[0].statement->status, LineStatus::kSuccess);
}

TEST(ReconcileEngine, FeeOffByOneFenIsFeeMismatch) {
  const std::vector<recon::Line> ledger = {LedgerPayment("ORD1", 10'000, 60, "2026-11-25T10:00:00+08:00")};
  const recon::Statement bill = ParseWx(WxBill({WxPay("ORD1", 10'000, 61'000, "2026-11-25T10:00:00+08:00")}));

  const recon::Outcome outcome = recon::Reconcile(ledger, bill, OptionsFor(kDay25), LookupIn(ledger));

  EXPECT_EQ(Golden(outcome), (std::vector<std::string>{"FEE_MISMATCH payment ORD1"}));
  EXPECT_EQ(outcome.breaks, 1);
  EXPECT_EQ(outcome.lines[0].statement->fee_minor, 61);
}

TEST(ReconcileEngine, FeeToleranceOfOneFenAbsorbsOneFenButNotTwo) {
  const std::vector<recon::Line> ledger = {LedgerPayment("ORD1", 10'000, 60, "2026-11-25T10:00:00+08:00"),
                                           LedgerPayment("ORD2", 10'000, 60, "2026-11-25T11:00:00+08:00"),
                                           LedgerPayment("ORD3", 10'000, 60, "2026-11-25T12:00:00+08:00")};
  const recon::Statement bill = ParseWx(WxBill({WxPay("ORD1", 10'000, 61'000, "2026-11-25T10:00:00+08:00"),
                                                WxPay("ORD2", 10'000, 59'000, "2026-11-25T11:00:00+08:00"),
                                                WxPay("ORD3", 10'000, 62'000, "2026-11-25T12:00:00+08:00")}));
  recon::Options options = OptionsFor(kDay25);
  options.fee_tolerance_minor = 1;

  const recon::Outcome outcome = recon::Reconcile(ledger, bill, options, LookupIn(ledger));

  EXPECT_EQ(Golden(outcome), (std::vector<std::string>{"MATCHED payment ORD1", "MATCHED payment ORD2",
                                                       "FEE_MISMATCH payment ORD3"}));
  EXPECT_EQ(outcome.breaks, 1);
}

// WeChat fees carry 5 decimals: 0.60500 rounds half-up to 61 fen, 0.60499 down to 60.
TEST(ReconcileEngine, WeChatFiveDecimalFeeRoundsHalfUpToFen) {
  const std::vector<recon::Line> ledger = {LedgerPayment("ORD1", 10'083, 61, "2026-11-25T10:00:00+08:00"),
                                           LedgerPayment("ORD2", 10'083, 61, "2026-11-25T11:00:00+08:00")};
  const recon::Statement bill = ParseWx(WxBill({WxPay("ORD1", 10'083, 60'500, "2026-11-25T10:00:00+08:00"),
                                                WxPay("ORD2", 10'083, 60'499, "2026-11-25T11:00:00+08:00")}));
  ASSERT_EQ(bill.lines.size(), 2u);
  EXPECT_EQ(bill.lines[0].fee_minor, 61);
  EXPECT_EQ(bill.lines[1].fee_minor, 60);
  EXPECT_TRUE(bill.summary_disagreements.empty());  // the summary's fee total keeps the fractions: 1.20999

  const recon::Outcome outcome = recon::Reconcile(ledger, bill, OptionsFor(kDay25), LookupIn(ledger));

  EXPECT_EQ(Golden(outcome), (std::vector<std::string>{"MATCHED payment ORD1", "FEE_MISMATCH payment ORD2"}));
}

// A refund's fee given back, negative with 5 decimals on the bill, rounds half-up by magnitude.
TEST(ReconcileEngine, WeChatRefundFeeGivenBackRoundsHalfUpByMagnitude) {
  const recon::Statement bill =
      ParseWx(WxBill({WxRefund("RF1", "ORD1", 5'000, 30'500, "2026-11-25T10:00:00+08:00"),
                      WxRefund("RF2", "ORD1", 5'000, 30'499, "2026-11-25T10:01:00+08:00")}));
  ASSERT_EQ(bill.lines.size(), 2u);
  EXPECT_EQ(bill.lines[0].fee_minor, 31);
  EXPECT_EQ(bill.lines[1].fee_minor, 30);
  EXPECT_EQ(bill.lines[0].order_no, "ORD1");
  EXPECT_EQ(bill.lines[0].id, "RF1");
  EXPECT_EQ(bill.lines[0].status, LineStatus::kRefunded);
}

// ---- the cut-off
// ----------------------------------------------------------------------------------------------

// Clearing date 25 runs from 24th 23:00 to 25th 23:00 (UTC+8). The statement's own cut-off is a few seconds
// off.
TEST(ReconcileEngine, CarriedOverAcrossTheElevenPmCutOff) {
  const std::vector<recon::Line> all = {
      LedgerPayment("B9", 500, 3, "2026-11-24T22:59:55+08:00"),      // clearing 24, just before the start
      LedgerPayment("C0", 1'000, 6, "2026-11-24T23:00:05+08:00"),    // clearing 25, just after the start
      LedgerPayment("C1", 2'000, 12, "2026-11-25T22:59:50+08:00"),   // clearing 25, just before the end
      LedgerPayment("C2", 3'000, 18, "2026-11-25T12:00:00+08:00"),   // clearing 25
      LedgerPayment("C3", 4'000, 24, "2026-11-25T23:00:10+08:00")};  // clearing 26, just after the end
  ASSERT_EQ(all[0].clearing_date, 20261124);
  ASSERT_EQ(all[1].clearing_date, kDay25);
  ASSERT_EQ(all[2].clearing_date, kDay25);
  ASSERT_EQ(all[4].clearing_date, kDay26);
  // The bank's statement for the 25th runs from 24th 22:59:30 to 25th 23:00:30: it holds B9 (the ledger's
  // 24th), C2 and C3 (the ledger's 26th); C0 it put on the 24th, C1 on the 26th.
  const recon::Statement bill = ParseWx(WxBill({WxPay("B9", 500, 3'000, "2026-11-24T22:59:55+08:00"),
                                                WxPay("C2", 3'000, 18'000, "2026-11-25T12:00:00+08:00"),
                                                WxPay("C3", 4'000, 24'000, "2026-11-25T23:00:10+08:00")}));

  const recon::Outcome outcome =
      recon::Reconcile(OfDate(all, kDay25), bill, OptionsFor(kDay25), LookupIn(all));

  EXPECT_EQ(Golden(outcome), (std::vector<std::string>{"CARRIED_OVER payment C0", "CARRIED_OVER payment C1",
                                                       "MATCHED payment C2", "CARRIED_OVER payment B9",
                                                       "CARRIED_OVER payment C3"}));
  EXPECT_EQ(outcome.breaks, 0);
  EXPECT_EQ(CountOf(outcome, Category::kCarriedOver), 4);
  const recon::Classified* b9 = Find(outcome, "B9");
  ASSERT_NE(b9, nullptr);
  ASSERT_TRUE(b9->ledger.has_value());
  EXPECT_EQ(b9->ledger->clearing_date, 20261124);
  EXPECT_NE(b9->note.find("2026-11-24"), std::string::npos) << b9->note;
  const recon::Classified* c3 = Find(outcome, "C3");
  ASSERT_NE(c3, nullptr);
  ASSERT_TRUE(c3->ledger.has_value());
  ASSERT_TRUE(c3->statement.has_value());
  EXPECT_EQ(c3->ledger->clearing_date, kDay26);
  EXPECT_NE(c3->note.find("2026-11-26"), std::string::npos) << c3->note;
  EXPECT_FALSE(Find(outcome, "C1")->statement.has_value());
}

// A carried-over line still has its amounts compared: a different amount is a break, not CARRIED_OVER.
TEST(ReconcileEngine, CarriedOverStatementLineStillComparesAmounts) {
  const std::vector<recon::Line> all = {LedgerPayment("C3", 4'000, 24, "2026-11-25T23:00:10+08:00")};
  const recon::Statement bill = ParseWx(WxBill({WxPay("C3", 4'100, 24'000, "2026-11-25T23:00:10+08:00")}));

  const recon::Outcome outcome =
      recon::Reconcile(OfDate(all, kDay25), bill, OptionsFor(kDay25), LookupIn(all));

  EXPECT_EQ(Golden(outcome), (std::vector<std::string>{"AMOUNT_MISMATCH payment C3"}));
  EXPECT_EQ(outcome.breaks, 1);
}

// Without the lookup the engine cannot know the ledger has the line on the 26th: MISSING_IN_LEDGER.
TEST(ReconcileEngine, StatementLineOnTheNextDateNeedsTheLookup) {
  const std::vector<recon::Line> all = {LedgerPayment("C3", 4'000, 24, "2026-11-25T23:00:10+08:00")};
  const recon::Statement bill = ParseWx(WxBill({WxPay("C3", 4'000, 24'000, "2026-11-25T23:00:10+08:00")}));

  const recon::Outcome outcome = recon::Reconcile(OfDate(all, kDay25), bill, OptionsFor(kDay25), nullptr);

  EXPECT_EQ(Golden(outcome), (std::vector<std::string>{"MISSING_IN_LEDGER payment C3"}));
  EXPECT_EQ(outcome.breaks, 1);
}

// WeChat's bill is a natural day (00:00 to 24:00). A payment at 23:30 on the 25th is the ledger's 26th.
TEST(ReconcileEngine, CarriedOverAcrossMidnightForAWeChatNaturalDayBill) {
  const std::vector<recon::Line> all = {LedgerPayment("W1", 1'000, 6, "2026-11-25T10:00:00+08:00"),
                                        LedgerPayment("W2", 2'000, 12, "2026-11-25T23:30:00+08:00"),
                                        LedgerPayment("W3", 3'000, 18, "2026-11-26T10:00:00+08:00")};
  ASSERT_EQ(all[1].clearing_date, kDay26);
  const recon::Statement bill25 = ParseWx(WxBill({WxPay("W1", 1'000, 6'000, "2026-11-25T10:00:00+08:00"),
                                                  WxPay("W2", 2'000, 12'000, "2026-11-25T23:30:00+08:00")}));
  const recon::Statement bill26 = ParseWx(WxBill({WxPay("W3", 3'000, 18'000, "2026-11-26T10:00:00+08:00")}));

  const recon::Outcome on25 =
      recon::Reconcile(OfDate(all, kDay25), bill25, OptionsFor(kDay25), LookupIn(all));
  const recon::Outcome on26 =
      recon::Reconcile(OfDate(all, kDay26), bill26, OptionsFor(kDay26), LookupIn(all));

  EXPECT_EQ(Golden(on25), (std::vector<std::string>{"MATCHED payment W1", "CARRIED_OVER payment W2"}));
  EXPECT_EQ(on25.breaks, 0);
  ASSERT_TRUE(Find(on25, "W2")->ledger.has_value());
  EXPECT_EQ(Find(on25, "W2")->ledger->clearing_date, kDay26);
  EXPECT_EQ(Golden(on26), (std::vector<std::string>{"CARRIED_OVER payment W2", "MATCHED payment W3"}));
  EXPECT_EQ(on26.breaks, 0);
  EXPECT_FALSE(Find(on26, "W2")->statement.has_value());
}

// The window is 60 minutes, inclusive: a line at 22:00:00 may be carried over, one at 21:59:59 may not; a
// line the ledger has on the next date far from the cut-off is MISSING_IN_LEDGER, with a note saying where it
// is.
TEST(ReconcileEngine, FarFromTheCutOffIsMissingNotCarriedOver) {
  const std::vector<recon::Line> all = {LedgerPayment("F1", 1'000, 6, "2026-11-25T12:00:00+08:00"),
                                        LedgerPayment("F2", 1'000, 6, "2026-11-25T21:59:59+08:00"),
                                        LedgerPayment("F3", 1'000, 6, "2026-11-25T22:00:00+08:00"),
                                        LedgerPayment("F4", 1'000, 6, "2026-11-26T12:00:00+08:00")};
  const recon::Statement bill = ParseWx(WxBill({WxPay("F4", 1'000, 6'000, "2026-11-26T12:00:00+08:00")}));

  const recon::Outcome outcome =
      recon::Reconcile(OfDate(all, kDay25), bill, OptionsFor(kDay25), LookupIn(all));

  EXPECT_EQ(Golden(outcome),
            (std::vector<std::string>{"MISSING_IN_STATEMENT payment F1", "MISSING_IN_STATEMENT payment F2",
                                      "CARRIED_OVER payment F3", "MISSING_IN_LEDGER payment F4"}));
  EXPECT_EQ(outcome.breaks, 3);
  const recon::Classified* f4 = Find(outcome, "F4");
  ASSERT_NE(f4, nullptr);
  EXPECT_NE(f4->note.find("2026-11-26"), std::string::npos) << f4->note;
}

// ---- duplicates, refunds later
// ------------------------------------------------------------------------------

TEST(ReconcileEngine, DuplicatedStatementLineIsMissingInLedgerNamingTheFirst) {
  const std::vector<recon::Line> ledger = {LedgerPayment("ORD1", 10'000, 60, "2026-11-25T10:00:00+08:00"),
                                           LedgerPayment("ORD2", 20'000, 120, "2026-11-25T11:00:00+08:00")};
  const recon::Statement bill = ParseWx(WxBill({WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00"),
                                                WxPay("ORD2", 20'000, 120'000, "2026-11-25T11:00:00+08:00"),
                                                WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00")}));

  const recon::Outcome outcome = recon::Reconcile(ledger, bill, OptionsFor(kDay25), LookupIn(ledger));

  EXPECT_EQ(Golden(outcome), (std::vector<std::string>{"MATCHED payment ORD1", "MATCHED payment ORD2",
                                                       "MISSING_IN_LEDGER payment ORD1"}));
  EXPECT_EQ(outcome.breaks, 1);
  const recon::Classified* first = Find(outcome, "ORD1", 0);
  const recon::Classified* second = Find(outcome, "ORD1", 1);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(first->statement->line_number, 2u);
  EXPECT_FALSE(second->ledger.has_value());
  EXPECT_EQ(second->statement->line_number, 4u);
  EXPECT_EQ(second->note, "duplicate of statement line 2");
}

// A payment refunded on a later day is still a success on its own day; the refund is a line of the later day.
TEST(ReconcileEngine, RefundOnALaterDay) {
  const std::vector<recon::Line> all = {LedgerPayment("ORD1", 30'000, 180, "2026-11-25T10:00:00+08:00"),
                                        LedgerRefund("RF1", "ORD1", 10'000, 60, "2026-11-26T10:00:00+08:00")};
  const recon::Statement bill25 =
      ParseWx(WxBill({WxPay("ORD1", 30'000, 180'000, "2026-11-25T10:00:00+08:00")}));
  const recon::Statement bill26 =
      ParseWx(WxBill({WxRefund("RF1", "ORD1", 10'000, 60'000, "2026-11-26T10:00:00+08:00")}));
  // The same refund still processing at WeChat: its status differs from the ledger's.
  const recon::Statement pending26 =
      ParseWx(WxBill({WxRefund("RF1", "ORD1", 10'000, 60'000, "2026-11-26T10:00:00+08:00", "PROCESSING")}));

  const recon::Outcome on25 =
      recon::Reconcile(OfDate(all, kDay25), bill25, OptionsFor(kDay25), LookupIn(all));
  const recon::Outcome on26 =
      recon::Reconcile(OfDate(all, kDay26), bill26, OptionsFor(kDay26), LookupIn(all));
  const recon::Outcome pending =
      recon::Reconcile(OfDate(all, kDay26), pending26, OptionsFor(kDay26), LookupIn(all));

  EXPECT_EQ(Golden(on25), (std::vector<std::string>{"MATCHED payment ORD1"}));
  EXPECT_EQ(on25.breaks, 0);
  EXPECT_EQ(Golden(on26), (std::vector<std::string>{"MATCHED refund RF1"}));
  EXPECT_EQ(on26.breaks, 0);
  EXPECT_EQ(Golden(pending), (std::vector<std::string>{"STATUS_MISMATCH refund RF1"}));
  EXPECT_EQ(pending.lines[0].statement->status, LineStatus::kRefundPending);
}

// ---- the statement's own summary
// ----------------------------------------------------------------------------

TEST(ReconcileParse, WeChatSummaryThatAgreesHasNoDisagreement) {
  const std::vector<WxRow> rows = {WxPay("ORD1", 10'000, 60'500, "2026-11-25T10:00:00+08:00"),
                                   WxRefund("RF1", "ORD0", 2'000, 12'000, "2026-11-25T11:00:00+08:00")};

  const recon::Statement bill = ParseWx(WxBill(rows));

  EXPECT_TRUE(bill.has_summary);
  EXPECT_TRUE(bill.summary_disagreements.empty()) << Join(bill.summary_disagreements, "; ");
  EXPECT_EQ(bill.lines.size(), 2u);
  EXPECT_EQ(bill.data_lines, 2u);  // the summary header and row are not data lines
}

TEST(ReconcileParse, WeChatSummaryThatDisagreesIsReported) {
  const std::vector<WxRow> rows = {WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00"),
                                   WxPay("ORD2", 20'000, 120'000, "2026-11-25T11:00:00+08:00")};
  // The summary of a bill that also held a third payment of 5.00 (fee 0.03).
  const std::vector<WxRow> claimed = {rows[0], rows[1],
                                      WxPay("ORD3", 500, 3'000, "2026-11-25T12:00:00+08:00")};
  const std::string text =
      Join({Join(kWxColumns, ","), WxLine(rows[0]), WxLine(rows[1]), kWxSummaryHeader, WxSummaryRow(claimed)},
           "\n") +
      "\n";

  const recon::Statement bill = ParseWx(text);

  EXPECT_TRUE(bill.has_summary);
  EXPECT_EQ(bill.lines.size(), 2u);
  const std::string all = Join(bill.summary_disagreements, "; ");
  // The count, the order amounts (two columns) and the fees disagree.
  EXPECT_GE(bill.summary_disagreements.size(), 3u) << all;
  EXPECT_NE(all.find("总交易单数"), std::string::npos) << all;
  EXPECT_NE(all.find("手续费总金额"), std::string::npos) << all;
  EXPECT_NE(all.find("订单总金额"), std::string::npos) << all;
  EXPECT_NE(all.find("line 5"), std::string::npos) << all;  // the summary row's line
}

TEST(ReconcileParse, WeChatSummaryOffByOneFeeFenIsReported) {
  const std::vector<WxRow> rows = {WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00")};
  std::vector<WxRow> claimed = rows;
  claimed[0].fee_milli += 1'000;
  const std::string text =
      Join({Join(kWxColumns, ","), WxLine(rows[0]), kWxSummaryHeader, WxSummaryRow(claimed)}, "\n") + "\n";

  const recon::Statement bill = ParseWx(text);

  ASSERT_EQ(bill.summary_disagreements.size(), 1u) << Join(bill.summary_disagreements, "; ");
  EXPECT_NE(bill.summary_disagreements[0].find("手续费总金额"), std::string::npos)
      << bill.summary_disagreements[0];
}

// ---- malformed lines and unusable statements
// -----------------------------------------------------------------

TEST(ReconcileParse, MalformedLinesAreReportedWithTheirLineNumbersAndTheRestIsRead) {
  WxRow bad_amount = WxPay("ORD2", 20'000, 120'000, "2026-11-25T11:00:00+08:00");
  bad_amount.order_amount_text = "2OO.00";
  const std::string wrong_count = "`2026-11-25 11:30:00,`wx2421b1c4370ec43b,`1900000109,`ORD4,`SUCCESS";
  const std::string text =
      Join({Join(kWxColumns, ","),                                               // 1
            WxLine(WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00")),  // 2
            WxLine(bad_amount),                                                  // 3
            wrong_count,                                                         // 4
            "",                                                                  // 5 (blank: skipped)
            WxLine(WxPay("ORD5", 5'000, 30'000, "2026-11-25T12:00:00+08:00", "FROZEN")),  // 6
            WxLine(WxPay("ORD3", 30'000, 180'000, "2026-11-25T13:00:00+08:00"))},         // 7
           "\n") +
      "\n";

  const recon::Statement bill = ParseWx(text);

  ASSERT_EQ(bill.malformed.size(), 3u);
  EXPECT_EQ(bill.malformed[0].line_number, 3u);
  EXPECT_NE(bill.malformed[0].reason.find("2OO.00"), std::string::npos) << bill.malformed[0].reason;
  EXPECT_EQ(bill.malformed[1].line_number, 4u);
  EXPECT_NE(bill.malformed[1].reason.find("fields"), std::string::npos) << bill.malformed[1].reason;
  EXPECT_EQ(bill.malformed[2].line_number, 6u);
  EXPECT_NE(bill.malformed[2].reason.find("FROZEN"), std::string::npos) << bill.malformed[2].reason;
  ASSERT_EQ(bill.lines.size(), 2u);
  EXPECT_EQ(bill.lines[0].id, "ORD1");
  EXPECT_EQ(bill.lines[0].line_number, 2u);
  EXPECT_EQ(bill.lines[1].id, "ORD3");
  EXPECT_EQ(bill.lines[1].line_number, 7u);
  EXPECT_EQ(bill.data_lines, 5u);
  EXPECT_FALSE(bill.has_summary);

  // What was read still reconciles; what could not be read is not invented.
  const std::vector<recon::Line> ledger = {LedgerPayment("ORD1", 10'000, 60, "2026-11-25T10:00:00+08:00"),
                                           LedgerPayment("ORD2", 20'000, 120, "2026-11-25T11:00:00+08:00"),
                                           LedgerPayment("ORD3", 30'000, 180, "2026-11-25T13:00:00+08:00")};
  const recon::Outcome outcome = recon::Reconcile(ledger, bill, OptionsFor(kDay25), LookupIn(ledger));
  EXPECT_EQ(Golden(outcome),
            (std::vector<std::string>{"MATCHED payment ORD1", "MISSING_IN_STATEMENT payment ORD2",
                                      "MATCHED payment ORD3"}));
}

TEST(ReconcileParse, EmptyStatementIsInvalidArgument) {
  for (const recon::Format format : {recon::Format::kWeChat, recon::Format::kLedgerCsv}) {
    for (const std::string& text : {std::string(), std::string("\n\n  \r\n")}) {
      SCOPED_TRACE(std::string(recon::FormatName(format)) + " '" + text + "'");
      const Result<recon::Statement> statement = recon::ParseStatement(text, format, "M1", kUtc8);
      ASSERT_FALSE(statement.ok());
      EXPECT_EQ(statement.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(ReconcileParse, FileWithoutTheRequiredHeaderIsInvalidArgument) {
  // A bill whose header was cut off: the first line is data.
  const std::string headless = WxLine(WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00")) + "\n";
  // A header without 手续费.
  std::vector<std::string> columns = kWxColumns;
  columns.erase(std::find(columns.begin(), columns.end(), "手续费"));
  const std::string no_fee = Join(columns, ",") + "\n";
  // A ledger-csv file given as WeChat, and the other way round.
  const std::string ledger_csv =
      "record_type,merchant,merchant_order_no,refund_no,occurred_at,funding,order_amount,card_amount,points_"
      "value,"
      "coupon_value,coupon_funded_by,discount,amount,settlement,fee,transaction_id\n";

  for (const auto& [text, format] : {std::pair{headless, recon::Format::kWeChat},
                                     {no_fee, recon::Format::kWeChat},
                                     {ledger_csv, recon::Format::kWeChat},
                                     {headless, recon::Format::kLedgerCsv},
                                     {WxBill({}), recon::Format::kLedgerCsv}}) {
    SCOPED_TRACE(std::string(recon::FormatName(format)) + ": " + text.substr(0, 40));
    const Result<recon::Statement> statement = recon::ParseStatement(text, format, "M1", kUtc8);
    ASSERT_FALSE(statement.ok());
    EXPECT_EQ(statement.status().code(), StatusCode::kInvalidArgument);
  }
}

// ---- columns by name, encodings
// ------------------------------------------------------------------------------

TEST(ReconcileParse, WeChatColumnsAreFoundByName) {
  const std::vector<WxRow> rows = {WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00"),
                                   WxPay("ORD2", 20'000, 120'000, "2026-11-25T11:00:00+08:00", "REVOKED"),
                                   WxPay("ORD3", 30'000, 181'000, "2026-11-25T12:00:00+08:00"),
                                   WxRefund("RF1", "ORD0", 5'000, 30'000, "2026-11-25T13:00:00+08:00")};
  std::vector<std::string> shuffled = kWxColumns;
  std::reverse(shuffled.begin(), shuffled.end());
  std::rotate(shuffled.begin(), shuffled.begin() + 7, shuffled.end());
  ASSERT_NE(shuffled, kWxColumns);
  const std::vector<recon::Line> ledger = {
      LedgerPayment("ORD1", 10'000, 60, "2026-11-25T10:00:00+08:00"),
      LedgerPayment("ORD2", 20'000, 120, "2026-11-25T11:00:00+08:00", LineStatus::kReversed),
      LedgerPayment("ORD3", 30'000, 180, "2026-11-25T12:00:00+08:00"),
      LedgerRefund("RF1", "ORD0", 5'000, 30, "2026-11-25T13:00:00+08:00")};

  const recon::Statement plain = ParseWx(WxBill(rows));
  const recon::Statement reordered = ParseWx(WxBill(rows, true, shuffled));

  ASSERT_EQ(reordered.lines.size(), plain.lines.size());
  EXPECT_TRUE(reordered.malformed.empty());
  EXPECT_TRUE(reordered.summary_disagreements.empty());
  for (size_t i = 0; i < plain.lines.size(); ++i) {
    SCOPED_TRACE(plain.lines[i].id);
    EXPECT_EQ(reordered.lines[i].kind, plain.lines[i].kind);
    EXPECT_EQ(reordered.lines[i].id, plain.lines[i].id);
    EXPECT_EQ(reordered.lines[i].order_no, plain.lines[i].order_no);
    EXPECT_EQ(reordered.lines[i].status, plain.lines[i].status);
    EXPECT_EQ(reordered.lines[i].amount_minor, plain.lines[i].amount_minor);
    EXPECT_EQ(reordered.lines[i].fee_minor, plain.lines[i].fee_minor);
    EXPECT_EQ(reordered.lines[i].occurred_at_ns, plain.lines[i].occurred_at_ns);
    EXPECT_EQ(reordered.lines[i].line_number, plain.lines[i].line_number);
  }
  const std::vector<std::string> expected = {"MATCHED payment ORD1", "MATCHED payment ORD2",
                                             "FEE_MISMATCH payment ORD3", "MATCHED refund RF1"};
  EXPECT_EQ(Golden(recon::Reconcile(ledger, plain, OptionsFor(kDay25), LookupIn(ledger))), expected);
  EXPECT_EQ(Golden(recon::Reconcile(ledger, reordered, OptionsFor(kDay25), LookupIn(ledger))), expected);
}

// Bills downloaded from WeChat may start with a UTF-8 BOM and end lines with CRLF.
TEST(ReconcileParse, WeChatBomAndCrlfAreTolerated) {
  const std::vector<WxRow> rows = {WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00"),
                                   WxPay("ORD2", 20'000, 120'000, "2026-11-25T11:00:00+08:00")};
  std::string text = "\xEF\xBB\xBF";
  for (const char c : WxBill(rows)) text += c == '\n' ? std::string("\r\n") : std::string(1, c);

  const recon::Statement bill = ParseWx(text);

  EXPECT_TRUE(bill.malformed.empty());
  EXPECT_TRUE(bill.summary_disagreements.empty()) << Join(bill.summary_disagreements, "; ");
  ASSERT_EQ(bill.lines.size(), 2u);
  EXPECT_EQ(bill.lines[0].id, "ORD1");
  EXPECT_EQ(bill.lines[0].occurred_at_ns, Ns("2026-11-25T10:00:00+08:00"));
  EXPECT_EQ(bill.lines[1].amount_minor, 20'000);
}

// Without a merchant given, a WeChat line belongs to 特约商户号, or 商户号 when that is empty.
TEST(ReconcileParse, WeChatMerchantComesFromTheBillWhenNotGiven) {
  std::string sub = WxLine(WxPay("ORD2", 100, 1'000, "2026-11-25T11:00:00+08:00"));
  const std::string plain = WxLine(WxPay("ORD1", 100, 1'000, "2026-11-25T10:00:00+08:00"));
  // 特约商户号 is the 4th column: fill it in on the second line.
  const size_t third_comma = sub.find(',', sub.find(',', sub.find(',') + 1) + 1);
  sub.insert(third_comma + 2, "1900000999");
  const std::string text = Join({Join(kWxColumns, ","), plain, sub}, "\n") + "\n";

  const recon::Statement given = ParseWx(text, "M1");
  const recon::Statement from_bill = ParseWx(text, "");

  ASSERT_EQ(given.lines.size(), 2u);
  EXPECT_EQ(given.lines[0].merchant, "M1");
  EXPECT_EQ(given.lines[1].merchant, "M1");
  ASSERT_EQ(from_bill.lines.size(), 2u);
  EXPECT_EQ(from_bill.lines[0].merchant, "1900000109");
  EXPECT_EQ(from_bill.lines[1].merchant, "1900000999");
}

// The project's own clearing file: a REVERSAL row turns its payment reversed; a REFUND row's negative fee is
// the fee given back; other merchants' rows are left out; a SUMMARY that does not add up is reported.
TEST(ReconcileParse, LedgerCsvReversalRefundAndSummary) {
  const std::string header =
      "record_type,merchant,merchant_order_no,refund_no,occurred_at,funding,order_amount,card_amount,points_"
      "value,"
      "coupon_value,coupon_funded_by,discount,amount,settlement,fee,transaction_id\n";
  const std::string rows =
      "PAYMENT,M1,ORD1,,2026-11-25T10:00:00+08:00,own_account,100.00,100.00,0.00,0.00,,0.00,100.00,100.00,0."
      "60,0-4\n"
      "PAYMENT,M2,ORDX,,2026-11-25T10:30:00+08:00,own_account,7.00,7.00,0.00,0.00,,0.00,7.00,7.00,0.04,0-5\n"
      "PAYMENT,M1,ORD2,,2026-11-25T11:00:00+08:00,own_account,200.00,200.00,0.00,0.00,,0.00,200.00,200.00,1."
      "20,0-6\n"
      "REVERSAL,M1,ORD2,,2026-11-25T11:05:00+08:00,own_account,200.00,200.00,0.00,0.00,,0.00,200.00,-200.00,-"
      "1.20,0-7\n"
      "REFUND,M1,ORD0,RF1,2026-11-25T12:00:00+08:00,own_account,300.00,100.00,0.00,0.00,,0.00,100.00,-100.00,"
      "-0.60,0-8\n";
  const std::string good_summary =
      "SUMMARY,M1,2,reversals=1;refunds=1,,,300.00,300.00,0.00,0.00,,0.00,100.00,-0.00,1.20,\n";
  const std::string bad_summary =
      "SUMMARY,M1,3,reversals=1;refunds=1,,,300.00,300.00,0.00,0.00,,0.00,100.00,-0.00,1.20,\n";

  Result<recon::Statement> good =
      recon::ParseStatement(header + rows + good_summary, recon::Format::kLedgerCsv, "M1", kUtc8);
  Result<recon::Statement> bad =
      recon::ParseStatement(header + rows + bad_summary, recon::Format::kLedgerCsv, "M1", kUtc8);

  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_TRUE(good->malformed.empty());
  EXPECT_TRUE(good->has_summary);
  EXPECT_TRUE(good->summary_disagreements.empty()) << Join(good->summary_disagreements, "; ");
  ASSERT_EQ(good->lines.size(), 3u);
  EXPECT_EQ(good->lines[0].id, "ORD1");
  EXPECT_EQ(good->lines[0].status, LineStatus::kSuccess);
  EXPECT_EQ(good->lines[0].fee_minor, 60);
  EXPECT_EQ(good->lines[1].id, "ORD2");
  EXPECT_EQ(good->lines[1].status, LineStatus::kReversed);
  EXPECT_EQ(good->lines[1].amount_minor, 20'000);
  EXPECT_EQ(good->lines[1].fee_minor, 120);
  EXPECT_EQ(good->lines[2].kind, LineKind::kRefund);
  EXPECT_EQ(good->lines[2].id, "RF1");
  EXPECT_EQ(good->lines[2].order_no, "ORD0");
  EXPECT_EQ(good->lines[2].amount_minor, 10'000);
  EXPECT_EQ(good->lines[2].fee_minor, 60);
  EXPECT_EQ(good->lines[2].line_number, 6u);
  ASSERT_TRUE(bad.ok());
  ASSERT_EQ(bad->summary_disagreements.size(), 1u) << Join(bad->summary_disagreements, "; ");
  EXPECT_NE(bad->summary_disagreements[0].find("line 7"), std::string::npos) << bad->summary_disagreements[0];
}

// =============================================================================================================
// Part 2: `ledger reconcile` end to end.
// =============================================================================================================

using CliRun = testing::ProgramRun;
using testing::Describe;
using testing::Lines;
using testing::ReadFile;
using testing::RunLedger;
using testing::WriteFile;

std::vector<std::string> Split(const std::string& line, char separator) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    const size_t at = line.find(separator, start);
    fields.push_back(line.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return fields;
    start = at + 1;
  }
}

json At(json command, const std::string& iso) {
  command["occurred_at"] = iso;
  return command;
}

// The day, M1 charging 60 bps (fees: 100.00 -> 0.60):
//   clearing date 2026-11-25: ORD1 100.00; ORD2 200.00 reversed at 11:05; ORD3 300.00 (refunded on the 26th);
//                             ORD4 50.00; ORD5 80.00; ORD6 120.00
//   clearing date 2026-11-26: ORD8 60.00 paid at 23:30 on the 25th (after the cut-off); ORD7 40.00;
//                             RF1 100.00 of ORD3 (fee given back 0.60)
std::string DayCommands() {
  const std::vector<json> commands = {
      At(testing::OpenAccount("a1", "C1"), "2026-11-25T09:00:00+08:00"),
      At(testing::OpenMerchant("m1", "M1", 60), "2026-11-25T09:00:00+08:00"),
      At(testing::Deposit("d1", "C1:debit", 10'000'000), "2026-11-25T09:00:00+08:00"),
      At(testing::Pay("M1", "ORD1", "C1", 10'000), "2026-11-25T10:00:00+08:00"),
      At(testing::Pay("M1", "ORD2", "C1", 20'000), "2026-11-25T11:00:00+08:00"),
      At(testing::Reverse("M1", "ORD2"), "2026-11-25T11:05:00+08:00"),
      At(testing::Pay("M1", "ORD3", "C1", 30'000), "2026-11-25T12:00:00+08:00"),
      At(testing::Pay("M1", "ORD4", "C1", 5'000), "2026-11-25T13:00:00+08:00"),
      At(testing::Pay("M1", "ORD5", "C1", 8'000), "2026-11-25T14:00:00+08:00"),
      At(testing::Pay("M1", "ORD6", "C1", 12'000), "2026-11-25T15:00:00+08:00"),
      At(testing::Pay("M1", "ORD8", "C1", 6'000), "2026-11-25T23:30:00+08:00"),
      At(testing::Pay("M1", "ORD7", "C1", 4'000), "2026-11-26T09:00:00+08:00"),
      At(testing::Refund("M1", "ORD3", "RF1", 10'000), "2026-11-26T10:00:00+08:00"),
  };
  std::string text;
  for (const json& command : commands) text += command.dump() + "\n";
  return text;
}

const char kBreaksHeader[] =
    "category,kind,merchant,id,merchant_order_no,statement_line,ledger_status,statement_status,ledger_amount,"
    "statement_amount,ledger_fee,statement_fee,ledger_clearing_date,note";

// breaks.csv as one map per row, by column name.
std::vector<std::map<std::string, std::string>> ReadBreaks(const std::string& path) {
  const std::vector<std::string> lines = Lines(ReadFile(path));
  std::vector<std::map<std::string, std::string>> rows;
  if (lines.empty()) return rows;
  const std::vector<std::string> names = Split(lines[0], ',');
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> fields = Split(lines[i], ',');
    EXPECT_EQ(fields.size(), names.size()) << lines[i];
    std::map<std::string, std::string> row;
    for (size_t c = 0; c < names.size() && c < fields.size(); ++c) row[names[c]] = fields[c];
    rows.push_back(std::move(row));
  }
  return rows;
}

// The data folder of a ledger holding DayCommands(), made once per process with `ledger submit`, then copied
// for each test (a reconcile run appends an event, so tests do not share one ledger).
const std::string& DayTemplate() {
  static testing::TempDir dir;
  static const std::string data = [] {
    WriteFile(dir.path() + "/day.jsonl", DayCommands());
    const CliRun run = RunLedger(dir.path(), {"submit", "--data", dir.path() + "/data", "--clock", "occurred",
                                              dir.path() + "/day.jsonl"});
    EXPECT_EQ(run.exit_code, 0) << Describe(run);
    for (const std::string& line : Lines(run.out)) {
      EXPECT_EQ(json::parse(line)["status"], "accepted") << line;
    }
    return dir.path() + "/data";
  }();
  return data;
}

class ReconcileCli : public ::testing::Test {
 protected:
  void SetUp() override { fs::copy(DayTemplate(), Data(), fs::copy_options::recursive); }
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::string Data() const { return Path("data"); }
  CliRun RunCli(const std::vector<std::string>& args) { return RunLedger(dir_.path(), args); }
  CliRun Reconcile(const std::string& date, const std::string& format, const std::string& statement,
                   const std::string& out) {
    return RunCli({"reconcile", "--data", Data(), "--date", date, "--format", format, "--merchant", "M1",
                   "--statement", statement, "--out", out, "--json"});
  }
  // Every event, one JSON object per line.
  std::vector<std::string> Events() {
    const CliRun run = RunCli({"events", "--data", Data(), "--json"});
    EXPECT_EQ(run.exit_code, 0) << Describe(run);
    return Lines(run.out);
  }
  std::string Balances() {
    const CliRun run = RunCli({"balance", "--data", Data(), "--all", "--json"});
    EXPECT_EQ(run.exit_code, 0) << Describe(run);
    return run.out;
  }
  // `ledger clearing` for `date`: the path of M1's file.
  std::string ClearingFile(const std::string& date) {
    const CliRun run =
        RunCli({"clearing", "--data", Data(), "--date", date, "--merchant", "M1", "--out", Path("clearing")});
    EXPECT_EQ(run.exit_code, 0) << Describe(run);
    return Path("clearing") + "/clearing-" + date + "-M1.csv";
  }

  testing::TempDir dir_;
};

// The ledger's own clearing file reconciles clean against the ledger, on both dates: ORD3, refunded on the
// 26th, is still a success on the 25th; the reversal folds into ORD2; ORD8 (after the cut-off) is the 26th's.
TEST_F(ReconcileCli, ClearingFileRoundTripIsAllMatched) {
  for (const std::string date : {"2026-11-25", "2026-11-26"}) {
    SCOPED_TRACE(date);
    const std::string file = ClearingFile(date);
    const std::string out = Path("recon-" + date);

    const CliRun run = Reconcile(date, "ledger-csv", file, out);

    ASSERT_EQ(run.exit_code, 0) << Describe(run);
    EXPECT_EQ(run.err, "");
    EXPECT_EQ(ReadFile(out + "/breaks.csv"), std::string(kBreaksHeader) + "\n");
    const json report = json::parse(ReadFile(out + "/report.json"));
    const int64_t lines = date == std::string("2026-11-25") ? 6 : 3;  // ORD1-6; ORD8, ORD7, RF1
    EXPECT_EQ(report["categories"]["MATCHED"]["count"], lines) << report.dump(2);
    for (const auto& [category, totals] : report["categories"].items()) {
      if (category != "MATCHED") {
        EXPECT_EQ(totals["count"], 0) << category;
      }
    }
    EXPECT_EQ(report["categories"]["MATCHED"]["ledger_amount_minor"],
              report["categories"]["MATCHED"]["statement_amount_minor"]);
    EXPECT_EQ(report["breaks"], 0);
    EXPECT_EQ(report["result"], "clean");
    EXPECT_EQ(report["malformed_lines"], json::array());
    EXPECT_EQ(report["statement_summary"]["present"], true);
    EXPECT_EQ(report["statement_summary"]["disagreements"], json::array());
    EXPECT_EQ(report["statement_lines_read"], lines);
    EXPECT_EQ(report["ledger_totals"]["payments"], report["statement_totals"]["payments"]);
    EXPECT_EQ(report["ledger_totals"]["payments_minor"], report["statement_totals"]["payments_minor"]);
    EXPECT_EQ(report["ledger_totals"]["reversed"], report["statement_totals"]["reversed"]);
    EXPECT_EQ(report["ledger_totals"]["refunds_minor"], report["statement_totals"]["refunds_minor"]);
    if (date == std::string("2026-11-25")) {
      EXPECT_EQ(report["ledger_totals"]["payments"], 6);
      EXPECT_EQ(report["ledger_totals"]["payments_minor"], 85'000);
      EXPECT_EQ(report["ledger_totals"]["reversed"], 1);
      EXPECT_EQ(report["ledger_totals"]["refunds"], 0);
    } else {
      EXPECT_EQ(report["ledger_totals"]["payments"], 2);
      EXPECT_EQ(report["ledger_totals"]["payments_minor"], 10'000);
      EXPECT_EQ(report["ledger_totals"]["refunds"], 1);
      EXPECT_EQ(report["ledger_totals"]["refunds_minor"], 10'000);
    }
    // stdout (--json) is the report plus the sequence the run was recorded as.
    json printed = json::parse(run.out);
    ASSERT_TRUE(printed.contains("recorded_sequence"));
    printed.erase("recorded_sequence");
    EXPECT_EQ(printed, report);
  }
}

// report.json's net fees are net of what reversals and refunds gave back, like the clearing file's SUMMARY
// fee (fees 5.10 - ORD2's 1.20 given back by its reversal = 3.90 on the 25th).
TEST_F(ReconcileCli, ReportNetFeesAreNetOfReversals) {
  const std::string file = ClearingFile("2026-11-25");
  const std::vector<std::string> rows = Lines(ReadFile(file));
  ASSERT_FALSE(rows.empty());
  const std::vector<std::string> summary = Split(rows.back(), ',');
  ASSERT_EQ(summary.size(), 16u) << rows.back();
  ASSERT_EQ(summary[0], "SUMMARY");
  ASSERT_EQ(summary[14], "3.90");  // the clearing file's net fees

  const CliRun run = Reconcile("2026-11-25", "ledger-csv", file, Path("recon"));

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const json report = json::parse(ReadFile(Path("recon") + "/report.json"));
  EXPECT_EQ(report["statement_totals"]["net_fees_minor"], 390) << report["statement_totals"].dump();
  EXPECT_EQ(report["ledger_totals"]["net_fees_minor"], 390) << report["ledger_totals"].dump();
}

// No break, but the statement is not clean: a malformed line alone, or a SUMMARY that disagrees with the rows
// alone, is exit 3 with result "breaks".
TEST_F(ReconcileCli, MalformedLineOrSummaryDisagreementAloneIsExitThree) {
  const std::vector<std::string> rows = Lines(ReadFile(ClearingFile("2026-11-25")));
  ASSERT_EQ(rows.size(), 9u);  // header, 6 PAYMENT, 1 REVERSAL, SUMMARY
  ASSERT_EQ(rows.back().rfind("SUMMARY,M1,6,", 0), 0u) << rows.back();
  std::vector<std::string> with_junk = rows;
  with_junk.insert(with_junk.end() - 1, "PAYMENT,M1,ORD9,too,few,fields");  // line 9
  std::vector<std::string> wrong_summary = rows;
  wrong_summary.back().replace(0, std::string("SUMMARY,M1,6,").size(), "SUMMARY,M1,7,");
  WriteFile(Path("junk.csv"), Join(with_junk, "\n") + "\n");
  WriteFile(Path("wrong-summary.csv"), Join(wrong_summary, "\n") + "\n");

  const CliRun junk = Reconcile("2026-11-25", "ledger-csv", Path("junk.csv"), Path("recon-junk"));
  const CliRun summary =
      Reconcile("2026-11-25", "ledger-csv", Path("wrong-summary.csv"), Path("recon-summary"));

  ASSERT_EQ(junk.exit_code, 3) << Describe(junk);
  const json junk_report = json::parse(ReadFile(Path("recon-junk/report.json")));
  EXPECT_EQ(junk_report["breaks"], 0);
  EXPECT_EQ(junk_report["categories"]["MATCHED"]["count"], 6);
  EXPECT_EQ(junk_report["result"], "breaks");
  ASSERT_EQ(junk_report["malformed_lines"].size(), 1u);
  EXPECT_EQ(junk_report["malformed_lines"][0]["line"], 9);
  EXPECT_EQ(junk_report["statement_summary"]["disagreements"], json::array());
  EXPECT_EQ(ReadFile(Path("recon-junk/breaks.csv")), std::string(kBreaksHeader) + "\n");

  ASSERT_EQ(summary.exit_code, 3) << Describe(summary);
  const json summary_report = json::parse(ReadFile(Path("recon-summary/report.json")));
  EXPECT_EQ(summary_report["breaks"], 0);
  EXPECT_EQ(summary_report["categories"]["MATCHED"]["count"], 6);
  EXPECT_EQ(summary_report["result"], "breaks");
  EXPECT_EQ(summary_report["malformed_lines"], json::array());
  ASSERT_EQ(summary_report["statement_summary"]["disagreements"].size(), 1u) << summary_report.dump(2);
  EXPECT_NE(summary_report["statement_summary"]["disagreements"][0].get<std::string>().find("7 payments"),
            std::string::npos);
}

// A WeChat bill for the 25th with one break of each kind and a malformed line.
TEST_F(ReconcileCli, WeChatBillWithInjectedBreaks) {
  const std::vector<std::string> events_before = Events();
  const std::string balances_before = Balances();
  const std::string bill =
      Join({Join(kWxColumns, ","),                                                // 1
            WxLine(WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00")),   // 2 MATCHED
            WxLine(WxPay("ORD2", 20'000, 120'000, "2026-11-25T11:00:00+08:00")),  // 3 reversed: STATUS
            WxLine(WxPay("ORD3", 30'000, 180'000, "2026-11-25T12:00:00+08:00")),  // 4 MATCHED
            /* ORD4 left out: MISSING_IN_STATEMENT */
            WxLine(WxPay("ORD5", 8'001, 48'000, "2026-11-25T14:00:00+08:00")),      // 5 AMOUNT
            WxLine(WxPay("ORD6", 12'000, 73'000, "2026-11-25T15:00:00+08:00")),     // 6 FEE
            "`2026-11-25 16:00:00,`wx2421b1c4370ec43b,`1900000109,`ORDZ,`SUCCESS",  // 7 malformed
            WxLine(WxPay("ORDX", 1'000, 6'000, "2026-11-25T17:00:00+08:00")),       // 8 MISSING_IN_LEDGER
            WxLine(WxPay("ORD8", 6'000, 36'000, "2026-11-25T23:30:00+08:00")),      // 9 CARRIED_OVER
            kWxSummaryHeader,                                                       // 10
            WxSummaryRow({WxPay("ORD1", 10'000, 60'000, ""), WxPay("ORD2", 20'000, 120'000, ""),
                          WxPay("ORD3", 30'000, 180'000, ""), WxPay("ORD5", 8'001, 48'000, ""),
                          WxPay("ORD6", 12'000, 73'000, ""), WxPay("ORDX", 1'000, 6'000, ""),
                          WxPay("ORD8", 6'000, 36'000, "")})},  // 11
           "\n") +
      "\n";
  WriteFile(Path("wechat-2026-11-25.csv"), bill);

  const CliRun run = Reconcile("2026-11-25", "wechat", Path("wechat-2026-11-25.csv"), Path("recon"));

  ASSERT_EQ(run.exit_code, 3) << Describe(run);
  EXPECT_EQ(run.err, "");
  // breaks.csv: every line but the MATCHED ones, ledger lines first (by id), then statement-only lines.
  ASSERT_EQ(Lines(ReadFile(Path("recon/breaks.csv")))[0], kBreaksHeader);
  const std::vector<std::map<std::string, std::string>> breaks = ReadBreaks(Path("recon/breaks.csv"));
  std::vector<std::string> got;
  for (const auto& row : breaks) got.push_back(row.at("category") + " " + row.at("id"));
  EXPECT_EQ(got, (std::vector<std::string>{"STATUS_MISMATCH ORD2", "MISSING_IN_STATEMENT ORD4",
                                           "AMOUNT_MISMATCH ORD5", "FEE_MISMATCH ORD6",
                                           "MISSING_IN_LEDGER ORDX", "CARRIED_OVER ORD8"}));
  std::map<std::string, std::map<std::string, std::string>> by_id;
  for (const auto& row : breaks) by_id[row.at("id")] = row;
  EXPECT_EQ(by_id["ORD2"]["ledger_status"], "reversed");
  EXPECT_EQ(by_id["ORD2"]["statement_status"], "success");
  EXPECT_EQ(by_id["ORD2"]["statement_line"], "3");
  EXPECT_EQ(by_id["ORD4"]["statement_line"], "");
  EXPECT_EQ(by_id["ORD4"]["ledger_amount"], "50.00");
  EXPECT_EQ(by_id["ORD4"]["statement_amount"], "");
  EXPECT_EQ(by_id["ORD5"]["ledger_amount"], "80.00");
  EXPECT_EQ(by_id["ORD5"]["statement_amount"], "80.01");
  EXPECT_EQ(by_id["ORD6"]["ledger_fee"], "0.72");
  EXPECT_EQ(by_id["ORD6"]["statement_fee"], "0.73");
  EXPECT_EQ(by_id["ORD6"]["statement_line"], "6");
  EXPECT_EQ(by_id["ORDX"]["statement_line"], "8");
  EXPECT_EQ(by_id["ORDX"]["ledger_amount"], "");
  EXPECT_EQ(by_id["ORDX"]["merchant"], "M1");
  EXPECT_EQ(by_id["ORD8"]["ledger_clearing_date"], "2026-11-26");
  EXPECT_EQ(by_id["ORD8"]["statement_line"], "9");
  for (const auto& row : breaks) EXPECT_EQ(row.at("kind"), "payment") << row.at("id");

  const json report = json::parse(ReadFile(Path("recon/report.json")));
  const std::map<std::string, int> counts = {
      {"MATCHED", 2},         {"MISSING_IN_STATEMENT", 1}, {"MISSING_IN_LEDGER", 1}, {"AMOUNT_MISMATCH", 1},
      {"STATUS_MISMATCH", 1}, {"FEE_MISMATCH", 1},         {"CARRIED_OVER", 1}};
  ASSERT_EQ(report["categories"].size(), counts.size()) << report["categories"].dump();
  for (const auto& [category, count] : counts) {
    EXPECT_EQ(report["categories"][category]["count"], count) << category;
  }
  EXPECT_EQ(report["categories"]["AMOUNT_MISMATCH"]["ledger_amount_minor"], 8'000);
  EXPECT_EQ(report["categories"]["AMOUNT_MISMATCH"]["statement_amount_minor"], 8'001);
  EXPECT_EQ(report["categories"]["MISSING_IN_STATEMENT"]["ledger_amount_minor"], 5'000);
  EXPECT_EQ(report["categories"]["MISSING_IN_LEDGER"]["statement_amount_minor"], 1'000);
  EXPECT_EQ(report["breaks"], 5);
  EXPECT_EQ(report["result"], "breaks");
  EXPECT_EQ(report["format"], "wechat");
  EXPECT_EQ(report["clearing_date"], "2026-11-25");
  ASSERT_EQ(report["malformed_lines"].size(), 1u) << report["malformed_lines"].dump();
  EXPECT_EQ(report["malformed_lines"][0]["line"], 7);
  EXPECT_NE(report["malformed_lines"][0]["reason"].get<std::string>().find("fields"), std::string::npos);
  EXPECT_EQ(report["statement_data_lines"], 8);
  EXPECT_EQ(report["statement_lines_read"], 7);
  EXPECT_EQ(report["statement_summary"]["present"], true);
  EXPECT_EQ(report["statement_summary"]["disagreements"], json::array());
  // The ledger's side is its own lines of the 25th, whatever the bill says.
  EXPECT_EQ(report["ledger_totals"]["payments"], 6);
  EXPECT_EQ(report["ledger_totals"]["payments_minor"], 85'000);
  EXPECT_EQ(report["ledger_totals"]["reversed"], 1);
  EXPECT_EQ(report["statement_totals"]["payments"], 7);

  // One event more, nothing else changed.
  const std::vector<std::string> events_after = Events();
  ASSERT_EQ(events_after.size(), events_before.size() + 1);
  EXPECT_TRUE(std::equal(events_before.begin(), events_before.end(), events_after.begin()));
  const json recorded = json::parse(events_after.back());
  EXPECT_EQ(recorded["type"], "ReconciliationRecorded");
  EXPECT_EQ(recorded["payload"]["malformed_lines"], 1) << recorded.dump();
  EXPECT_EQ(Balances(), balances_before);
}

TEST_F(ReconcileCli, UnusableStatementIsExitTwoAndRecordsNothing) {
  const std::vector<std::string> events_before = Events();
  ASSERT_FALSE(events_before.empty());
  WriteFile(Path("empty.csv"), "");
  WriteFile(Path("headless.csv"), WxLine(WxPay("ORD1", 10'000, 60'000, "2026-11-25T10:00:00+08:00")) + "\n");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {Path("empty.csv"), "empty"}, {Path("missing.csv"), "missing.csv"}, {Path("headless.csv"), "header"}};

  for (const auto& [statement, mention] : cases) {
    SCOPED_TRACE(statement);
    const std::string out = Path("out-" + fs::path(statement).stem().string());

    const CliRun run = Reconcile("2026-11-25", "wechat", statement, out);

    EXPECT_EQ(run.exit_code, 2) << Describe(run);
    EXPECT_EQ(run.signal, 0);
    EXPECT_EQ(run.out, "");
    const std::vector<std::string> err = Lines(run.err);
    ASSERT_EQ(err.size(), 1u) << Describe(run);
    EXPECT_EQ(err[0].rfind("ledger: ", 0), 0u) << err[0];
    EXPECT_NE(err[0].find(mention), std::string::npos) << err[0];
    EXPECT_FALSE(fs::exists(out + "/breaks.csv"));
    EXPECT_FALSE(fs::exists(out + "/report.json"));
  }
  EXPECT_EQ(Events(), events_before);
}

// A clean WeChat bill for the 26th (ORD7 and the refund RF1; ORD8, paid at 23:30 on the 25th, is in the
// 25th's natural-day bill): exit 0, exactly one ReconciliationRecorded event appended, balances untouched.
TEST_F(ReconcileCli, RunAppendsExactlyOneReconciliationRecordedEvent) {
  const std::vector<std::string> events_before = Events();
  const std::string balances_before = Balances();
  ASSERT_FALSE(events_before.empty());
  const uint64_t last = json::parse(events_before.back())["sequence"];
  WriteFile(Path("wechat-2026-11-26.csv"),
            WxBill({WxPay("ORD7", 4'000, 24'000, "2026-11-26T09:00:00+08:00"),
                    WxRefund("RF1", "ORD3", 10'000, 60'000, "2026-11-26T10:00:00+08:00")}));

  const CliRun run = Reconcile("2026-11-26", "wechat", Path("wechat-2026-11-26.csv"), Path("recon"));

  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const json report = json::parse(ReadFile(Path("recon/report.json")));
  EXPECT_EQ(report["categories"]["MATCHED"]["count"], 2) << report.dump(2);
  EXPECT_EQ(report["categories"]["CARRIED_OVER"]["count"], 1) << report.dump(2);
  EXPECT_EQ(report["breaks"], 0);
  EXPECT_EQ(report["result"], "clean");
  const std::vector<std::map<std::string, std::string>> breaks = ReadBreaks(Path("recon/breaks.csv"));
  ASSERT_EQ(breaks.size(), 1u);  // not a break, but listed
  EXPECT_EQ(breaks[0].at("category"), "CARRIED_OVER");
  EXPECT_EQ(breaks[0].at("id"), "ORD8");
  EXPECT_EQ(breaks[0].at("statement_line"), "");

  const std::vector<std::string> events_after = Events();
  ASSERT_EQ(events_after.size(), events_before.size() + 1);
  EXPECT_TRUE(std::equal(events_before.begin(), events_before.end(), events_after.begin()));
  const json recorded = json::parse(events_after.back());
  EXPECT_EQ(recorded["sequence"], last + 1);
  EXPECT_EQ(json::parse(run.out)["recorded_sequence"], last + 1);
  EXPECT_EQ(recorded["type"], "ReconciliationRecorded");
  const json& payload = recorded["payload"];
  EXPECT_EQ(payload["clearing_date"], kDay26) << recorded.dump();
  EXPECT_EQ(payload["format"], "wechat");
  EXPECT_EQ(payload["merchant"], "M1");
  EXPECT_EQ(payload["statement_lines"], 2);
  EXPECT_EQ(payload["malformed_lines"], 0);
  std::map<std::string, std::pair<int64_t, int64_t>> counts;
  for (const json& count : payload["counts"]) {
    counts[count["category"]] = {count["count"].get<int64_t>(), count["amount_minor"].get<int64_t>()};
  }
  EXPECT_EQ(counts.size(), 7u);
  EXPECT_EQ(counts["MATCHED"], (std::pair<int64_t, int64_t>{2, 4'000 + 10'000}));
  EXPECT_EQ(counts["CARRIED_OVER"], (std::pair<int64_t, int64_t>{1, 6'000}));
  EXPECT_EQ(counts["FEE_MISMATCH"].first, 0);
  EXPECT_EQ(Balances(), balances_before);
}

}  // namespace
}  // namespace ledger
