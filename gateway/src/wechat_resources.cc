#include "wechat_resources.h"

#include <openssl/rand.h>

#include <span>

#include "core/assert.h"
#include "core/sha256.h"
#include "core/time.h"

namespace ledger::gateway {

using nlohmann::json;

std::string RandomBytes(size_t size) {
  std::string bytes(size, '\0');
  LEDGER_ASSERT(RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(size)) == 1);
  return bytes;
}

std::string RandomHex(size_t bytes) {
  const std::string random = RandomBytes(bytes);
  return ToHex(std::span(reinterpret_cast<const uint8_t*>(random.data()), random.size()));
}

std::string WeChatNonce() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string nonce;
  for (unsigned char byte : RandomBytes(32)) nonce += kAlphabet[byte % 36];
  return nonce;
}

const char* TradeState(PaymentState state) {
  switch (state) {
    case PaymentState::kSuccess:
      return "SUCCESS";
    case PaymentState::kReversed:
      return "REVOKED";
    case PaymentState::kPartiallyRefunded:
    case PaymentState::kRefunded:
      return "REFUND";
  }
  return "SUCCESS";
}

const char* TradeStateDescription(PaymentState state) {
  switch (state) {
    case PaymentState::kSuccess:
      return "支付成功";
    case PaymentState::kReversed:
      return "已撤销";
    case PaymentState::kPartiallyRefunded:
    case PaymentState::kRefunded:
      return "转入退款";
  }
  return "";
}

const char* TradeType(std::string_view channel) {
  if (channel == "qr_customer_presented") return "MICROPAY";
  if (channel == "b2c_h5") return "MWEB";
  if (channel == "b2c_sdk") return "APP";
  return "NATIVE";
}

std::string WeChatTime(int64_t utc_ns, int offset_minutes) {
  constexpr int64_t kNsPerSecond = 1'000'000'000;
  return FormatIso8601(utc_ns - utc_ns % kNsPerSecond, offset_minutes);
}

Result<std::vector<std::pair<std::string, std::string>>> PlatformSignatureHeaders(const ApiKey& platform_key,
                                                                                  std::string_view key_id,
                                                                                  int64_t timestamp_s,
                                                                                  std::string_view body) {
  const std::string timestamp = std::to_string(timestamp_s);
  const std::string nonce = WeChatNonce();
  Result<std::string> signature = platform_key.SignBase64(ResponseMessage(timestamp, nonce, body));
  if (!signature.ok()) return signature.status();
  return std::vector<std::pair<std::string, std::string>>{
      {"Wechatpay-Serial", std::string(key_id)},
      {"Wechatpay-Signature", std::move(signature).value()},
      {"Wechatpay-Timestamp", timestamp},
      {"Wechatpay-Nonce", nonce},
      {"Wechatpay-Signature-Type", kSignatureScheme},
  };
}

json TransactionResource(const PaymentView& payment, int offset_minutes) {
  return {
      {"mchid", payment.merchant},
      {"out_trade_no", payment.order_no},
      {"transaction_id", payment.transaction_id},
      {"trade_type", TradeType(payment.channel)},
      {"trade_state", TradeState(payment.state)},
      {"trade_state_desc", TradeStateDescription(payment.state)},
      {"bank_type", "OTHERS"},
      {"success_time", WeChatTime(payment.paid_at_ns, offset_minutes)},
      {"payer", json::object()},
      {"amount",
       {{"total", payment.order_amount_minor},
        {"payer_total", payment.payer_amount_minor},
        {"currency", kCurrency},
        {"payer_currency", kCurrency}}},
  };
}

json RefundResource(const RefundView& refund, const PaymentView& payment, int offset_minutes) {
  const std::string at = WeChatTime(refund.refunded_at_ns, offset_minutes);
  return {
      {"refund_id", refund.refund_transaction_id},
      {"out_refund_no", refund.refund_no},
      {"transaction_id", payment.transaction_id},
      {"out_trade_no", payment.order_no},
      {"channel", "ORIGINAL"},
      {"user_received_account", payment.account},
      {"success_time", at},
      {"create_time", at},
      {"status", "SUCCESS"},
      {"funds_account", "AVAILABLE"},
      {"amount",
       {{"total", payment.order_amount_minor},
        {"refund", refund.amount_minor},
        {"payer_total", payment.payer_amount_minor},
        {"payer_refund", refund.payer_amount_minor},
        {"settlement_total", payment.order_amount_minor},
        {"settlement_refund", refund.amount_minor},
        {"discount_refund", refund.amount_minor - refund.payer_amount_minor},
        {"currency", kCurrency}}},
  };
}

}  // namespace ledger::gateway
