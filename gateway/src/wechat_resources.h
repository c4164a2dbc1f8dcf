// What the merchant API's answers and the notifier's notifications share (private to gateway/src): WeChat's
// names for the ledger's states and channels, its times, its nonces, the platform's signature headers, and
// the transaction and refund resources (the JSON a query answers and a notification encrypts).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/ledger_port.h"
#include "gateway/wechat_signature.h"

namespace ledger::gateway {

inline constexpr char kCurrency[] = "CNY";

// `size` bytes from the CSPRNG; the same as lower-case hex; WeChat's nonces (32 upper-case letters and
// digits).
std::string RandomBytes(size_t size);
std::string RandomHex(size_t bytes);
std::string WeChatNonce();

const char* TradeState(PaymentState state);
const char* TradeStateDescription(PaymentState state);
// WeChat's trade_type for the ledger's channel.
const char* TradeType(std::string_view channel);
// WeChat's times: RFC 3339 to the second, with the ledger's offset.
std::string WeChatTime(int64_t utc_ns, int offset_minutes);

// The platform's signature of `body` at `timestamp_s`: Wechatpay-Serial, -Signature, -Timestamp, -Nonce,
// -Signature-Type (wechat_signature.h: ResponseMessage), as an answer or a notification carries them. Errors:
// IoError (a token's key did not sign).
Result<std::vector<std::pair<std::string, std::string>>> PlatformSignatureHeaders(const ApiKey& platform_key,
                                                                                  std::string_view key_id,
                                                                                  int64_t timestamp_s,
                                                                                  std::string_view body);

// A payment as WeChat's query answers it (trade_state as the payment stands now).
nlohmann::json TransactionResource(const PaymentView& payment, int offset_minutes);
// A refund as WeChat's refund query answers it.
nlohmann::json RefundResource(const RefundView& refund, const PaymentView& payment, int offset_minutes);

}  // namespace ledger::gateway
