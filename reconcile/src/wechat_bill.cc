// Writes WeChat Pay's trade bill of the ledger's lines (reconcile.h: WeChatTradeBill), the inverse of the
// statement parser's WeChat reader.
#include <array>
#include <cstdio>
#include <string>

#include "core/money.h"
#include "core/time.h"
#include "reconcile/reconcile.h"

namespace ledger::recon {
namespace {

constexpr std::array<const char*, 27> kColumns = {
    "交易时间",     "公众账号ID",   "商户号",       "特约商户号",   "设备号",   "微信订单号",
    "商户订单号",   "用户标识",     "交易类型",     "交易状态",     "付款银行", "货币种类",
    "应结订单金额", "代金券金额",   "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额",
    "退款类型",     "退款状态",     "商品名称",     "商户数据包",   "手续费",   "费率",
    "订单金额",     "申请退款金额", "费率备注"};
constexpr char kSummaryHeader[] =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

// Fen as WeChat's 5-decimal yuan ("0.60000", "-0.30000").
std::string Yuan5(int64_t fen) {
  char text[48];
  const int64_t magnitude = fen < 0 ? -fen : fen;
  std::snprintf(text, sizeof text, "%s%lld.%02lld000", fen < 0 ? "-" : "",
                static_cast<long long>(magnitude / 100), static_cast<long long>(magnitude % 100));
  return text;
}

// "YYYY-MM-DD HH:MM:SS", local.
std::string LocalTime(int64_t utc_ns, int offset_minutes) {
  const std::string iso = FormatIso8601(utc_ns - utc_ns % kNanosPerSecond, offset_minutes);
  return iso.substr(0, 10) + " " + iso.substr(11, 8);
}

bool Writable(const std::string& field) { return field.find_first_of(",`\r\n") == std::string::npos; }

const char* RefundState(LineStatus status) {
  switch (status) {
    case LineStatus::kRefunded:
      return "SUCCESS";
    case LineStatus::kRefundPending:
      return "PROCESSING";
    default:
      return "ABNORMAL";
  }
}

// One row's fields in kColumns order.
std::array<std::string, kColumns.size()> Row(const Line& line, std::string_view mchid, int offset_minutes) {
  const bool refund = line.kind == LineKind::kRefund;
  const int64_t order_amount = refund ? 0 : line.amount_minor;
  const int64_t refund_amount = refund ? line.amount_minor : 0;
  return {LocalTime(line.occurred_at_ns, offset_minutes),
          "",
          std::string(mchid),
          "",
          "",
          "",
          refund ? line.order_no : line.id,
          "",
          "NATIVE",
          refund ? "REFUND" : (line.status == LineStatus::kReversed ? "REVOKED" : "SUCCESS"),
          "OTHERS",
          "CNY",
          FormatYuan(order_amount),
          "0.00",
          "",
          refund ? line.id : "",
          FormatYuan(refund_amount),
          "0.00",
          refund ? "ORIGINAL" : "",
          refund ? RefundState(line.status) : "",
          "",
          "",
          Yuan5(refund ? -line.fee_minor : line.fee_minor),
          "",
          FormatYuan(order_amount),
          FormatYuan(refund_amount),
          ""};
}

}  // namespace

Result<std::string> WeChatTradeBill(const std::vector<Line>& lines, std::string_view mchid,
                                    int timezone_offset_minutes) {
  if (!Writable(std::string(mchid)))
    return Status::InvalidArgument("merchant id cannot be written in a WeChat bill");
  std::string bill;
  for (size_t c = 0; c < kColumns.size(); ++c) bill += std::string(c ? "," : "") + kColumns[c];
  bill += "\n";
  int64_t orders = 0, refunds = 0, fees = 0;
  for (const Line& line : lines) {
    if (!Writable(line.id) || !Writable(line.order_no))
      return Status::InvalidArgument("order or refund number " + line.id +
                                     " cannot be written in a WeChat bill");
    const auto fields = Row(line, mchid, timezone_offset_minutes);
    for (size_t c = 0; c < fields.size(); ++c) bill += std::string(c ? ",`" : "`") + fields[c];
    bill += "\n";
    const bool refund = line.kind == LineKind::kRefund;
    (refund ? refunds : orders) += line.amount_minor;
    fees += refund ? -line.fee_minor : line.fee_minor;
  }
  bill += std::string(kSummaryHeader) + "\n`" + std::to_string(lines.size()) + ",`" + Yuan5(orders) + ",`" +
          Yuan5(refunds) + ",`0.00000,`" + Yuan5(fees) + ",`" + Yuan5(orders) + ",`" + Yuan5(refunds) + "\n";
  return bill;
}

}  // namespace ledger::recon
