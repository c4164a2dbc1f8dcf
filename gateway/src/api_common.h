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

// How a customer's front end names an order waiting for it: a native order's code_url (the QR code), an H5
// order's h5_url, an app order's prepay_id. Each names the order only; the customer's proof authorises its
// payment.
struct OrderReference {
  std::string_view field;    // the merchant API's answer field and the customer API's request field
  std::string_view channel;  // the ledger's channel of such orders
  std::string_view prefix;
  std::string_view endpoint;  // POST /v3/pay/transactions/{endpoint} makes one
};
inline constexpr OrderReference kOrderReferences[] = {
    {"code_url", "qr_dynamic", "ledger://pay/", "native"},
    {"h5_url", "b2c_h5", "ledger://h5/", "h5"},
    {"prepay_id", "b2c_sdk", "ledger://app/", "app"},
};

inline std::string OrderLink(const OrderReference& kind, std::string_view mchid, std::string_view order_no) {
  return std::string(kind.prefix) + std::string(mchid) + "/" + std::string(order_no);
}
// (mchid, out_trade_no) of a link OrderLink made for `kind`; nullopt for anything else.
inline std::optional<std::pair<std::string, std::string>> ParseOrderLink(const OrderReference& kind,
                                                                         std::string_view link) {
  if (!link.starts_with(kind.prefix)) return std::nullopt;
  link.remove_prefix(kind.prefix.size());
  const size_t slash = link.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view mchid = link.substr(0, slash);
  const std::string_view order_no = link.substr(slash + 1);
  if (!ValidNumber(mchid, 32) || !ValidOrderNo(order_no)) return std::nullopt;
  return std::make_pair(std::string(mchid), std::string(order_no));
}

}  // namespace ledger::gateway
