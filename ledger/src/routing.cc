#include "ledger/routing.h"

#include "state/keys.h"
#include "state/records.h"

namespace ledger {
namespace {

// The customer of the payment `merchant`/`order_no` in `state`; empty when there is no such payment.
std::string PaymentCustomer(const KvReader& state, const std::string& merchant, const std::string& order_no) {
  fb::PaymentRecordT payment;
  return LoadRecord(state, keys::Payment(merchant, order_no), &payment) ? payment.customer : std::string();
}

}  // namespace

std::string NamedCustomer(const ParsedCommand& parsed) {
  const fb::CommandBodyUnion& body = parsed.command.body;
  if (const auto* pay = body.AsPay()) return pay->customer;
  if (const auto* open = body.AsOpenAccount()) return open->customer;
  if (const auto* points = body.AsAwardPoints()) return points->customer;
  if (const auto* coupon = body.AsIssueCoupon()) return coupon->customer;
  if (const auto* limit = body.AsSetCustomerLimit()) return limit->customer;
  return std::string();
}

uint32_t ShardOf(const ParsedCommand& parsed, uint32_t shards) {
  const std::string customer = NamedCustomer(parsed);
  if (customer.empty() || shards <= 1) return 0;
  uint32_t hash = 2166136261u;  // FNV-1a, 32 bits
  for (char c : customer) hash = (hash ^ static_cast<uint8_t>(c)) * 16777619u;
  return hash % shards;
}

CommandParties RoutingOf(const ParsedCommand& parsed, const KvReader& state) {
  CommandParties parties;
  const fb::CommandBodyUnion& body = parsed.command.body;
  if (const auto* pay = body.AsPay()) {
    parties = {pay->customer, pay->merchant};
  } else if (const auto* merchant = body.AsOpenMerchant()) {
    parties.merchant = merchant->merchant;
  } else if (const auto* deposit = body.AsDeposit()) {
    fb::AccountRecordT account;
    parties.customer =
        LoadRecord(state, keys::Account(deposit->account), &account) ? account.customer : deposit->account;
  } else if (const auto* reverse = body.AsReverse()) {
    parties = {PaymentCustomer(state, reverse->merchant, reverse->merchant_order_no), reverse->merchant};
  } else if (const auto* refund = body.AsRefund()) {
    parties = {PaymentCustomer(state, refund->merchant, refund->merchant_order_no), refund->merchant};
  } else {
    parties.customer = NamedCustomer(parsed);
  }
  if (parties.customer.empty() && parties.merchant.empty()) parties.merchant = parsed.command_id;
  return parties;
}

}  // namespace ledger
