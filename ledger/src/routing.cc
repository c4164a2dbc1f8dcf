#include "ledger/routing.h"

#include "core/assert.h"
#include "state/keys.h"
#include "state/records.h"

namespace ledger {
namespace {

// The customer of the payment `merchant`/`order_no` in `state`; empty when there is no such payment.
std::string PaymentCustomer(const KvReader& state, const std::string& merchant, const std::string& order_no) {
  fb::PaymentRecordT payment;
  return LoadRecord(state, keys::Payment(merchant, order_no), &payment) ? payment.customer : std::string();
}

const char* OwnerKindName(OwnerKind kind) {
  switch (kind) {
    case OwnerKind::kCustomer:
      return "customer";
    case OwnerKind::kOrder:
      return "merchant order";
    case OwnerKind::kEveryShard:
      return "reference data";
    case OwnerKind::kAnyShard:
      return "malformed command";
  }
  return "?";
}

}  // namespace

std::string NamedCustomer(const ParsedCommand& parsed) {
  const fb::CommandBodyUnion& body = parsed.command.body;
  if (const auto* pay = body.AsPay()) return pay->customer;
  if (const auto* open = body.AsOpenAccount()) return open->customer;
  if (const auto* points = body.AsAwardPoints()) return points->customer;
  if (const auto* coupon = body.AsIssueCoupon()) return coupon->customer;
  if (const auto* limit = body.AsSetCustomerLimit()) return limit->customer;
  if (const auto* enrolled = body.AsEnrollMedium()) return enrolled->customer;
  if (const auto* failed = body.AsRecordProofFailure()) return failed->customer;
  if (const auto* code = body.AsIssuePaymentCode()) return code->customer;
  if (const auto* transfer = body.AsTransfer()) return CustomerOfAccount(transfer->from_account);
  return std::string();
}

std::string CustomerOfAccount(std::string_view account) {
  return std::string(account.substr(0, account.find(':')));
}

std::string OrderKey(std::string_view merchant, std::string_view merchant_order_no) {
  std::string key;
  key.reserve(merchant.size() + 1 + merchant_order_no.size());
  key.append(merchant).append(1, '/').append(merchant_order_no);  // identifiers never hold '/'
  return key;
}

CommandOwner OwnerOf(const ParsedCommand& parsed) {
  if (parsed.malformed) return {OwnerKind::kAnyShard, parsed.command_id};
  const fb::CommandBodyUnion& body = parsed.command.body;
  if (const auto* pay = body.AsPay())
    return {OwnerKind::kOrder, OrderKey(pay->merchant, pay->merchant_order_no)};
  if (const auto* reverse = body.AsReverse())
    return {OwnerKind::kOrder, OrderKey(reverse->merchant, reverse->merchant_order_no)};
  if (const auto* refund = body.AsRefund())
    return {OwnerKind::kOrder, OrderKey(refund->merchant, refund->merchant_order_no)};
  if (const auto* created = body.AsCreateOrder())
    return {OwnerKind::kOrder, OrderKey(created->merchant, created->merchant_order_no)};
  if (const auto* closed = body.AsCloseOrder())
    return {OwnerKind::kOrder, OrderKey(closed->merchant, closed->merchant_order_no)};
  if (const auto* deposit = body.AsDeposit())
    return {OwnerKind::kCustomer, CustomerOfAccount(deposit->account)};
  if (const auto* transfer = body.AsTransfer())
    return {OwnerKind::kCustomer, CustomerOfAccount(transfer->from_account)};  // the payer decides first
  // Merchants and their keys are known on every shard: any shard decides its orders and checks requests.
  // So are producers' keys: every shard checks who signed the commands it reads.
  if (body.AsOpenMerchant() != nullptr || body.AsAddMerchantKey() != nullptr ||
      body.AsRevokeMerchantKey() != nullptr || body.AsAddProducerKey() != nullptr ||
      body.AsRevokeProducerKey() != nullptr) {
    return {OwnerKind::kEveryShard, parsed.command_id};
  }
  std::string customer = NamedCustomer(parsed);
  if (!customer.empty()) return {OwnerKind::kCustomer, std::move(customer)};
  return {OwnerKind::kAnyShard, parsed.command_id};  // no body: the parser marks it malformed
}

uint32_t ShardOfKey(std::string_view key, uint32_t shards) {
  LEDGER_ASSERT(shards >= 1);
  uint32_t hash = 2166136261u;  // FNV-1a, 32 bits
  for (char c : key) hash = (hash ^ static_cast<uint8_t>(c)) * 16777619u;
  return hash % shards;
}

std::vector<uint32_t> ShardsFor(const ParsedCommand& parsed, uint32_t shards) {
  const CommandOwner owner = OwnerOf(parsed);
  if (owner.kind != OwnerKind::kEveryShard) return {ShardOfKey(owner.key, shards)};
  std::vector<uint32_t> every(shards);
  for (uint32_t shard = 0; shard < shards; ++shard) every[shard] = shard;
  return every;
}

bool OwnedBy(const ParsedCommand& parsed, uint32_t shard, uint32_t shards) {
  return WhyNotOwned(parsed, shard, shards).empty();
}

std::string WhyNotOwned(const ParsedCommand& parsed, uint32_t shard, uint32_t shards) {
  LEDGER_ASSERT(shard < shards);
  const CommandOwner owner = OwnerOf(parsed);
  if (shards == 1 || owner.kind == OwnerKind::kEveryShard || owner.kind == OwnerKind::kAnyShard) return {};
  const uint32_t owner_shard = ShardOfKey(owner.key, shards);
  const std::string of = " of " + std::to_string(shards);
  if (owner_shard != shard) {
    return std::string(OwnerKindName(owner.kind)) + " " + owner.key + " belongs to shard " +
           std::to_string(owner_shard) + of;
  }
  return {};
}

CommandParties RoutingOf(const ParsedCommand& parsed, const KvReader& state) {
  CommandParties parties;
  const fb::CommandBodyUnion& body = parsed.command.body;
  if (const auto* pay = body.AsPay()) {
    parties = {pay->customer, pay->merchant};
  } else if (const auto* merchant = body.AsOpenMerchant()) {
    parties.merchant = merchant->merchant;
  } else if (const auto* created = body.AsCreateOrder()) {
    parties.merchant = created->merchant;
  } else if (const auto* closed = body.AsCloseOrder()) {
    parties.merchant = closed->merchant;
  } else if (const auto* added = body.AsAddMerchantKey()) {
    parties.merchant = added->merchant;
  } else if (const auto* revoked = body.AsRevokeMerchantKey()) {
    parties.merchant = revoked->merchant;
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
