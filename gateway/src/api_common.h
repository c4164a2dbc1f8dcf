// What the merchant and customer APIs share (private to gateway/src): the identifiers they accept, the clock,
// and the code_url that names an order waiting for its customer.
#pragma once

#include <cctype>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace ledger::gateway {

inline int64_t SystemSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A path segment or query value the API accepts: 1..max letters, digits and "_-|*@" (WeChat's order and
// refund numbers), so nothing needs decoding and nothing can reach past its key in the ledger.
inline bool ValidNumber(std::string_view text, size_t max = 64) {
  if (text.empty() || text.size() > max) return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("_-|*@").find(c) == std::string_view::npos)
      return false;
  }
  return true;
}

// WeChat's out_trade_no: at most 32 characters (which keeps the gateway's command ids within the ledger's
// 128).
inline bool ValidOrderNo(std::string_view text) { return ValidNumber(text, 32); }

// The code_url of a native order: it names the order only; the customer's proof authorises its payment.
inline constexpr std::string_view kCodeUrlPrefix = "ledger://pay/";
inline std::string CodeUrl(std::string_view mchid, std::string_view order_no) {
  return std::string(kCodeUrlPrefix) + std::string(mchid) + "/" + std::string(order_no);
}
// (mchid, out_trade_no) of a code_url; nullopt for anything CodeUrl would not make.
inline std::optional<std::pair<std::string, std::string>> ParseCodeUrl(std::string_view url) {
  if (!url.starts_with(kCodeUrlPrefix)) return std::nullopt;
  url.remove_prefix(kCodeUrlPrefix.size());
  const size_t slash = url.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view mchid = url.substr(0, slash);
  const std::string_view order_no = url.substr(slash + 1);
  if (!ValidNumber(mchid, 32) || !ValidOrderNo(order_no)) return std::nullopt;
  return std::make_pair(std::string(mchid), std::string(order_no));
}

}  // namespace ledger::gateway
