// Command validation and the money rules of the ledger (README: Rules). Every amount is
// checked against kAmountMinorMax and for overflow before it is used; every event's postings balance.
#include "decide.h"

#include "core/money.h"
#include "core/signing.h"
#include "core/time.h"
#include "events/event.h"
#include "ledger/command.h"
#include "ledger/routing.h"
#include "state/limits.h"
#include "state/records.h"

namespace ledger {
namespace {

Decision Reject(const char* reason, std::string detail) {
  Decision decision;
  decision.reason = reason;
  decision.detail = std::move(detail);
  return decision;
}

bool ValidPositive(int64_t amount) { return amount > 0 && amount <= kAmountMinorMax; }
bool ValidNonNegative(int64_t amount) { return amount >= 0 && amount <= kAmountMinorMax; }

std::string PointsAccount(const std::string& customer) { return customer + ":points"; }
std::string MerchantAccount(const std::string& merchant) { return "merchant:" + merchant; }

int64_t BalanceOf(const KvReader& state, const std::string& account) {
  fb::BalanceRecordT balance;
  LoadRecord(state, keys::Balance(account), &balance);
  return balance.balance_minor;
}

bool CustomerExists(const KvReader& state, const std::string& customer) {
  fb::CustomerRecordT record;
  return LoadRecord(state, keys::Customer(customer), &record);
}

// True when used + more would pass limit (kNoLimit never passes).
bool Exceeds(int64_t used, int64_t more, int64_t limit) {
  if (limit < 0) return false;
  const std::optional<int64_t> total = CheckedAdd(used, more);
  return !total.has_value() || *total > limit;
}

// The clearing date of what is decided now: the ledger time's, unless the shard closed that date already
// (events.fbs: DayClosed): then the first date it has not closed.
int OpenClearingDate(const DecideContext& context) {
  const int date = ClearingDate(context.now_ns, context.config.timezone_offset_minutes,
                                context.config.clearing_cutoff_minutes);
  fb::ClearingDaysRecordT days;
  if (!LoadRecord(context.state, keys::kClearingDaysKey, &days) || days.closed_through < date) return date;
  return AddDays(days.closed_through, 1);
}

// The parser has checked the names: a customer id without ':' and not reserved, and the account exactly
// `<customer>:<name>` of that customer (README: Accounts and postings).
Decision DecideOpenAccount(const fb::OpenAccountT& command, const DecideContext& context) {
  if (command.kind == fb::AccountKind::credit_card && !ValidNonNegative(command.credit_limit_minor)) {
    return Reject(reason::kInvalidAmount, "credit_limit_minor must be 0 to 2^53-1");
  }
  fb::AccountRecordT existing;
  if (LoadRecord(context.state, keys::Account(command.account), &existing)) {
    return Reject(reason::kAlreadyExists, "account " + command.account + " is already open");
  }
  Decision decision;
  fb::AccountOpenedT opened;
  opened.customer = command.customer;
  opened.account = command.account;
  opened.kind = command.kind;
  opened.credit_limit_minor = command.credit_limit_minor;
  decision.payloads.emplace_back().Set(std::move(opened));
  return decision;
}

Decision DecideOpenMerchant(const fb::OpenMerchantT& command, const DecideContext& context) {
  fb::MerchantRecordT existing;
  if (LoadRecord(context.state, keys::Merchant(command.merchant), &existing)) {
    return Reject(reason::kAlreadyExists, "merchant " + command.merchant + " is already open");
  }
  Decision decision;
  fb::MerchantOpenedT opened;
  opened.merchant = command.merchant;
  opened.name = command.name;
  opened.fee_bps = command.fee_bps;
  decision.payloads.emplace_back().Set(std::move(opened));
  return decision;
}

// A serial names one key for good: never registered twice, not even after its revocation, so that a
// signature once refused as revoked never verifies again.
Decision DecideAddMerchantKey(const fb::AddMerchantKeyT& command, const DecideContext& context) {
  fb::MerchantRecordT merchant;
  if (!LoadRecord(context.state, keys::Merchant(command.merchant), &merchant)) {
    return Reject(reason::kUnknownMerchant, "no merchant " + command.merchant);
  }
  fb::MerchantKeyRecordT existing;
  if (LoadRecord(context.state, keys::MerchantKey(command.serial_no), &existing)) {
    return Reject(reason::kAlreadyExists, "key serial " + command.serial_no + " is already registered");
  }
  Decision decision;
  fb::MerchantKeyAddedT added;
  added.merchant = command.merchant;
  added.serial_no = command.serial_no;
  added.public_key_pem = command.public_key_pem;
  decision.payloads.emplace_back().Set(std::move(added));
  return decision;
}

Decision DecideRevokeMerchantKey(const fb::RevokeMerchantKeyT& command, const DecideContext& context) {
  fb::MerchantKeyRecordT key;
  if (!LoadRecord(context.state, keys::MerchantKey(command.serial_no), &key) ||
      key.merchant != command.merchant) {
    return Reject(reason::kUnknownMerchantKey,
                  "merchant " + command.merchant + " has no key with serial " + command.serial_no);
  }
  if (key.revoked)
    return Reject(reason::kMerchantKeyRevoked, "key serial " + command.serial_no + " is revoked");
  Decision decision;
  fb::MerchantKeyRevokedT revoked;
  revoked.merchant = command.merchant;
  revoked.serial_no = command.serial_no;
  decision.payloads.emplace_back().Set(std::move(revoked));
  return decision;
}

// A producer key is named by its id (the SHA-256 of its DER) for good: never registered twice, not even after
// its revocation, so that a command once refused as revoked is never applied later.
Decision DecideAddProducerKey(const fb::AddProducerKeyT& command, const DecideContext& context) {
  Result<std::unique_ptr<SignatureVerifier>> key = SignatureVerifier::FromPem(command.public_key_pem);
  if (!key.ok()) return Reject(reason::kMalformedCommand, "public_key_pem: " + key.status().message());
  const std::string key_id = ToHex((*key)->public_key_id());
  fb::ProducerKeyRecordT existing;
  if (LoadRecord(context.state, keys::ProducerKey(key_id), &existing)) {
    return Reject(reason::kAlreadyExists,
                  "producer key " + key_id + " is already registered (to " + existing.producer + ")");
  }
  Decision decision;
  fb::ProducerKeyAddedT added;
  added.producer = command.producer;
  added.role = command.role;
  added.key_id = key_id;
  added.public_key_pem = command.public_key_pem;
  decision.payloads.emplace_back().Set(std::move(added));
  return decision;
}

Decision DecideRevokeProducerKey(const fb::RevokeProducerKeyT& command, const DecideContext& context) {
  fb::ProducerKeyRecordT key;
  if (!LoadRecord(context.state, keys::ProducerKey(command.key_id), &key) ||
      key.producer != command.producer) {
    return Reject(reason::kUnknownProducerKey,
                  "producer " + command.producer + " has no key " + command.key_id);
  }
  if (key.revoked)
    return Reject(reason::kProducerKeyRevoked, "producer key " + command.key_id + " is revoked");
  Decision decision;
  fb::ProducerKeyRevokedT revoked;
  revoked.producer = command.producer;
  revoked.key_id = command.key_id;
  decision.payloads.emplace_back().Set(std::move(revoked));
  return decision;
}

}  // namespace

std::optional<fb::OrderRecordT> CreatedOrder(const KvReader& state, const std::string& merchant,
                                             const std::string& merchant_order_no) {
  fb::OrderRecordT order;
  if (!LoadRecord(state, keys::Order(merchant, merchant_order_no), &order)) return std::nullopt;
  return order;
}

namespace {

// Whether a created order may wait on its payment code (none: it waits on no code): a code of this shard's
// customer, issued to that customer, unused, waiting on no order and not expired. A code of another shard's
// customer is reserved there first (legs.cc: OrderForwarded.reserves_code); decided here, it is no code.
Decision CheckCodeCanWait(const std::string& payment_code, const std::string& customer,
                          const DecideContext& context) {
  if (payment_code.empty()) return Decision();
  fb::PaymentCodeRecordT code;
  if (ShardOfKey(customer, context.config.shards) != context.config.shard ||
      !LoadRecord(context.state, keys::PaymentCode(payment_code), &code) || code.customer.empty() ||
      code.customer != customer) {
    return Reject(reason::kPaymentCodeInvalid, "no such payment code of customer " + customer);
  }
  if (code.used || !code.waiting_order.empty())
    return Reject(reason::kPaymentCodeInvalid, "no payment code that could wait on this order");
  if (context.now_ns >= code.expires_at_ns)
    return Reject(reason::kPaymentCodeExpired, "the code has expired");
  return Decision();
}

}  // namespace

Decision CheckOrderCanWait(const fb::CreateOrderT& command, const DecideContext& context) {
  if (!ValidPositive(command.amount_minor))
    return Reject(reason::kInvalidAmount, "amount_minor must be 1 to 2^53-1");
  fb::MerchantRecordT merchant;
  if (!LoadRecord(context.state, keys::Merchant(command.merchant), &merchant))
    return Reject(reason::kUnknownMerchant, "no merchant " + command.merchant);
  fb::PaymentRecordT payment;
  if (LoadRecord(context.state, keys::Payment(command.merchant, command.merchant_order_no), &payment) ||
      CreatedOrder(context.state, command.merchant, command.merchant_order_no)) {
    return Reject(reason::kDuplicateOrder, "merchant order " + command.merchant_order_no + " exists");
  }
  if (OrderClosedAt(context.state, command.merchant, command.merchant_order_no, context.now_ns)) {
    return Reject(reason::kOrderClosed, "merchant order " + command.merchant_order_no + " was closed");
  }
  if (command.expires_at_ns <= context.now_ns) return Reject(reason::kOrderExpired, "expires_at has passed");
  return Decision();
}

fb::OrderCreatedT OrderCreatedOf(const fb::CreateOrderT& command) {
  fb::OrderCreatedT created;
  created.merchant = command.merchant;
  created.merchant_order_no = command.merchant_order_no;
  created.amount_minor = command.amount_minor;
  created.channel = command.channel;
  created.description = command.description;
  created.expires_at_ns = command.expires_at_ns;
  created.payment_code = command.payment_code;
  created.notify_url = command.notify_url;
  created.payment_code_customer = command.payment_code_customer;
  return created;
}

Decision DecideReservePaymentCode(const fb::CreateOrderT& command, const DecideContext& context) {
  if (Decision waits = CheckCodeCanWait(command.payment_code, command.payment_code_customer, context);
      !waits.accepted()) {
    return waits;
  }
  fb::PaymentCodeReservedT reserved;
  reserved.customer = command.payment_code_customer;
  reserved.payment_code = command.payment_code;
  reserved.merchant = command.merchant;
  reserved.merchant_order_no = command.merchant_order_no;
  Decision decision;
  decision.payloads.emplace_back().Set(std::move(reserved));
  return decision;
}

namespace {

Decision DecideCreateOrder(const fb::CreateOrderT& command, const DecideContext& context) {
  if (Decision checked = CheckOrderCanWait(command, context); !checked.accepted()) return checked;
  if (Decision waits = CheckCodeCanWait(command.payment_code, command.payment_code_customer, context);
      !waits.accepted()) {
    return waits;
  }
  Decision decision;
  decision.payloads.emplace_back().Set(OrderCreatedOf(command));
  return decision;
}

// Closing an order the customer has not paid: its payment, should it still come, is refused ORDER_CLOSED.
Decision DecideCloseOrder(const fb::CloseOrderT& command, const DecideContext& context) {
  fb::PaymentRecordT payment;
  if (LoadRecord(context.state, keys::Payment(command.merchant, command.merchant_order_no), &payment))
    return Reject(reason::kOrderPaid, "merchant order " + command.merchant_order_no + " is paid");
  if (!CreatedOrder(context.state, command.merchant, command.merchant_order_no))
    return Reject(reason::kOriginalNotFound, "no order " + command.merchant_order_no);
  if (OrderClosedAt(context.state, command.merchant, command.merchant_order_no, context.now_ns)) {
    return Reject(reason::kOrderClosed, "merchant order " + command.merchant_order_no + " is closed");
  }
  fb::OrderClosedT closed;
  closed.merchant = command.merchant;
  closed.merchant_order_no = command.merchant_order_no;
  closed.reason = "closed by the merchant";
  closed.closed_until_ns = context.now_ns + int64_t{context.config.closed_order_keep_days} * kNanosPerDay;
  Decision decision;
  decision.payloads.emplace_back().Set(std::move(closed));
  return decision;
}

// Enrolling again replaces the public part and forgets the failures (a new key or secret, handed to the
// customer by the bank), but keeps the last TOTP step used: a code once used stays used.
Decision DecideEnrollMedium(const fb::EnrollMediumT& command, const DecideContext& context) {
  if (!CustomerExists(context.state, command.customer))
    return Reject(reason::kUnknownAccount, "no customer " + command.customer);
  Decision decision;
  fb::MediumEnrolledT enrolled;
  enrolled.customer = command.customer;
  enrolled.medium = command.medium;
  enrolled.public_part = command.public_part;
  decision.payloads.emplace_back().Set(std::move(enrolled));
  return decision;
}

Decision DecideRecordProofFailure(const fb::RecordProofFailureT& command, const DecideContext& context) {
  fb::CustomerMediumRecordT medium;
  if (!LoadRecord(context.state, keys::CustomerMedium(command.customer, command.medium), &medium)) {
    return Reject(reason::kMediumNotEnrolled, std::string("customer ") + command.customer + " has no " +
                                                  fb::EnumNameMedium(command.medium) + " enrolled");
  }
  if (medium.locked) return Reject(reason::kMediumLocked, "the medium is locked already");
  Decision decision;
  fb::MediumProofFailedT failed;
  failed.customer = command.customer;
  failed.medium = command.medium;
  failed.failures = medium.failures + 1;
  failed.locked = failed.failures >= kMediumProofFailuresMax;
  decision.payloads.emplace_back().Set(std::move(failed));
  return decision;
}

Decision DecideDeposit(const fb::DepositT& command, const DecideContext& context) {
  if (!ValidPositive(command.amount_minor))
    return Reject(reason::kInvalidAmount, "amount_minor must be 1 to 2^53-1");
  fb::AccountRecordT account;
  if (!LoadRecord(context.state, keys::Account(command.account), &account)) {
    return Reject(reason::kUnknownAccount, "no account " + command.account);
  }
  const std::optional<int64_t> balance =
      CheckedAdd(BalanceOf(context.state, command.account), command.amount_minor);
  if (!balance || *balance > kAmountMinorMax)
    return Reject(reason::kInvalidAmount, "balance would pass 2^53-1");
  const std::optional<int64_t> funding =
      CheckedSub(BalanceOf(context.state, gl::kFunding), command.amount_minor);
  if (!funding || *funding < -kAmountMinorMax)
    return Reject(reason::kInvalidAmount, "funding total would overflow");
  Decision decision;
  fb::FundsDepositedT deposited;
  deposited.account = command.account;
  deposited.customer = account.customer;
  deposited.amount_minor = command.amount_minor;
  PostingList postings;
  postings.Add(command.account, command.amount_minor);
  postings.Add(gl::kFunding, -command.amount_minor);
  deposited.postings = postings.Take();
  decision.payloads.emplace_back().Set(std::move(deposited));
  return decision;
}

Decision DecideAwardPoints(const fb::AwardPointsT& command, const DecideContext& context) {
  if (!ValidPositive(command.points)) return Reject(reason::kInvalidAmount, "points must be 1 to 2^53-1");
  if (!CustomerExists(context.state, command.customer)) {
    return Reject(reason::kUnknownAccount, "no customer " + command.customer);
  }
  const std::optional<int64_t> value = CheckedMul(command.points, context.config.point_value_minor);
  if (!value || *value > kAmountMinorMax) return Reject(reason::kInvalidAmount, "points value passes 2^53-1");
  const std::optional<int64_t> points =
      CheckedAdd(BalanceOf(context.state, PointsAccount(command.customer)), command.points);
  const std::optional<int64_t> liability = CheckedAdd(BalanceOf(context.state, gl::kPointsLiability), *value);
  if (!points || *points > kAmountMinorMax || !liability || *liability > kAmountMinorMax) {
    return Reject(reason::kInvalidAmount, "points balance would pass 2^53-1");
  }
  Decision decision;
  fb::PointsAwardedT awarded;
  awarded.customer = command.customer;
  awarded.points = command.points;
  awarded.value_minor = *value;
  PostingList postings;
  postings.Add(PointsAccount(command.customer), command.points);
  postings.Add(gl::kPointsIssued, -command.points);
  postings.Add(gl::kPointsLiability, *value);
  postings.Add(gl::kMarketingExpense, -*value);
  awarded.postings = postings.Take();
  decision.payloads.emplace_back().Set(std::move(awarded));
  return decision;
}

Decision DecideIssueCoupon(const fb::IssueCouponT& command, const DecideContext& context) {
  if (!ValidPositive(command.value_minor))
    return Reject(reason::kInvalidAmount, "value_minor must be 1 to 2^53-1");
  if (!ValidNonNegative(command.min_spend_minor))
    return Reject(reason::kInvalidAmount, "min_spend_minor must be 0 to 2^53-1");
  fb::CouponRecordT existing;
  if (LoadRecord(context.state, keys::Coupon(command.coupon), &existing)) {
    return Reject(reason::kAlreadyExists, "coupon " + command.coupon + " already exists");
  }
  if (!CustomerExists(context.state, command.customer)) {
    return Reject(reason::kUnknownAccount, "no customer " + command.customer);
  }
  fb::MerchantRecordT merchant;
  if (!command.merchant.empty() && !LoadRecord(context.state, keys::Merchant(command.merchant), &merchant)) {
    return Reject(reason::kUnknownMerchant, "no merchant " + command.merchant);
  }
  Decision decision;
  fb::CouponIssuedT issued;
  issued.coupon = command.coupon;
  issued.customer = command.customer;
  issued.value_minor = command.value_minor;
  issued.min_spend_minor = command.min_spend_minor;
  issued.merchant = command.merchant;
  issued.funded_by = command.funded_by;
  issued.expires_at_ns = command.expires_at_ns;
  decision.payloads.emplace_back().Set(std::move(issued));
  return decision;
}

Decision DecideSetCustomerLimit(const fb::SetCustomerLimitT& command, const DecideContext& context) {
  if (!CustomerExists(context.state, command.customer)) {
    return Reject(reason::kUnknownAccount, "no customer " + command.customer);
  }
  const MediumPolicy& policy = context.config.medium_policy[static_cast<int>(command.medium)];
  const std::pair<int64_t, int64_t> asked[] = {{command.per_payment_minor, policy.per_payment_minor},
                                               {command.daily_minor, policy.daily_minor},
                                               {command.monthly_minor, policy.monthly_minor},
                                               {command.daily_count, policy.daily_count}};
  for (const auto& [value, limit] : asked) {
    if (value == kNoLimit) continue;  // absent: unchanged (an explicit negative is kNegativeLimitGiven)
    if (!ValidNonNegative(value)) return Reject(reason::kInvalidAmount, "limits must be 0 to 2^53-1");
    if (limit >= 0 && value > limit) {
      return Reject(reason::kLimitAbovePolicy, "a customer may only lower a limit below the bank's policy");
    }
  }
  Decision decision;
  fb::CustomerLimitSetT set;
  set.customer = command.customer;
  set.medium = command.medium;
  set.per_payment_minor = command.per_payment_minor;
  set.daily_minor = command.daily_minor;
  set.monthly_minor = command.monthly_minor;
  set.daily_count = command.daily_count;
  decision.payloads.emplace_back().Set(std::move(set));
  return decision;
}

// What a payment is made of once a step has checked it: the records it read and the tender amounts. Each step
// below fills its part and returns a rejection (a Decision with a reason) or an accepted, empty Decision; the
// steps run in the order the rules are checked (README: Rules), so the first failing rule names the
// rejection.
struct PayPlan {
  fb::MerchantRecordT merchant;
  fb::AccountRecordT account;  // own_account funding only
  std::string source_account;  // the customer's account, or the scheme's interbank receivable
  fb::CouponRecordT coupon;    // default (funded by the bank, no value) without a coupon
  int64_t points_value = 0;
  int64_t coupon_value = 0;
  int64_t card_amount = 0;
  int limit_date = 0;
  bool medium_limited = false;
};

// Amounts, merchant, order number, customer and the account the card amount comes from.
Decision CheckPayParties(const fb::PayT& command, const DecideContext& context, PayPlan& plan) {
  const KvReader& state = context.state;
  if (!ValidPositive(command.order_amount_minor))
    return Reject(reason::kInvalidAmount, "order_amount_minor must be 1 to 2^53-1");
  if (!ValidNonNegative(command.points)) return Reject(reason::kInvalidAmount, "points must be 0 to 2^53-1");
  if (!ValidNonNegative(command.discount_minor))
    return Reject(reason::kInvalidAmount, "discount_minor must be 0 to 2^53-1");
  if (!LoadRecord(state, keys::Merchant(command.merchant), &plan.merchant)) {
    return Reject(reason::kUnknownMerchant, "no merchant " + command.merchant);
  }
  fb::PaymentRecordT existing_payment;
  if (LoadRecord(state, keys::Payment(command.merchant, command.merchant_order_no), &existing_payment)) {
    return Reject(reason::kDuplicateOrder,
                  "merchant order " + command.merchant_order_no + " is already paid");
  }
  if (OrderClosedAt(state, command.merchant, command.merchant_order_no, context.now_ns)) {
    return Reject(reason::kOrderClosed, "merchant order " + command.merchant_order_no +
                                            " was closed by a reversal before it was paid");
  }
  if (std::optional<Decision> refused = CreatedOrderRefuses(state, command, context.now_ns))
    return std::move(*refused);
  const bool needs_customer =
      command.funding == fb::Funding::own_account || command.points > 0 || !command.coupon.empty();
  if (needs_customer && !CustomerExists(state, command.customer)) {
    return Reject(reason::kUnknownAccount, "no customer " + command.customer);
  }
  if (command.funding == fb::Funding::own_account) {
    if (!LoadRecord(state, keys::Account(command.account), &plan.account) ||
        plan.account.customer != command.customer) {
      return Reject(reason::kUnknownAccount,
                    "no account " + command.account + " of customer " + command.customer);
    }
    plan.source_account = command.account;
  } else {
    plan.source_account = gl::InterbankReceivable(command.funding);
  }
  return Decision();
}

// The coupon exists, is the customer's, unused, unexpired, and applies to this order and merchant.
Decision CheckCoupon(const fb::PayT& command, const DecideContext& context, PayPlan& plan) {
  fb::CouponRecordT& coupon = plan.coupon;
  if (!LoadRecord(context.state, keys::Coupon(command.coupon), &coupon)) {
    return Reject(reason::kCouponNotFound, "no coupon " + command.coupon);
  }
  if (coupon.customer != command.customer) {
    return Reject(reason::kCouponNotApplicable, "coupon " + command.coupon + " belongs to another customer");
  }
  if (coupon.used) return Reject(reason::kCouponAlreadyUsed, "coupon " + command.coupon + " is already used");
  if (context.now_ns > coupon.expires_at_ns) {
    return Reject(reason::kCouponExpired, "coupon " + command.coupon + " expired");
  }
  if (command.order_amount_minor < coupon.min_spend_minor) {
    return Reject(reason::kCouponNotApplicable, "order is below the coupon's minimum spend");
  }
  if (!coupon.merchant.empty() && coupon.merchant != command.merchant) {
    return Reject(reason::kCouponNotApplicable, "coupon " + command.coupon + " is for another merchant");
  }
  plan.coupon_value = coupon.value_minor;
  return Decision();
}

// Tenders: order = card + points value + coupon + discount; the card amount is what is left.
Decision CheckPayTenders(const fb::PayT& command, const DecideContext& context, PayPlan& plan) {
  const std::optional<int64_t> points_value = CheckedMul(command.points, context.config.point_value_minor);
  if (!points_value || *points_value > kAmountMinorMax)
    return Reject(reason::kInvalidAmount, "points value passes 2^53-1");
  plan.points_value = *points_value;
  if (!command.coupon.empty()) {
    Decision coupon = CheckCoupon(command, context, plan);
    if (!coupon.accepted()) return coupon;
  }
  const __int128 tenders =
      static_cast<__int128>(plan.points_value) + plan.coupon_value + command.discount_minor;
  if (tenders > command.order_amount_minor) {
    return Reject(reason::kInvalidAmount, "points, coupon and discount exceed the order amount");
  }
  plan.card_amount = command.order_amount_minor - static_cast<int64_t>(tenders);
  return Decision();
}

// The medium's limits (the customer's own, where lower) on `amount` (a payment's card amount, a transfer):
// per payment, day, month, count.
Decision CheckMediumLimits(const std::string& customer, fb::Medium medium, int64_t amount, int limit_date,
                           const DecideContext& context) {
  if (medium == fb::Medium::none) return Reject(reason::kMalformedCommand, "card payments need a medium");
  const KvReader& state = context.state;
  const MediumPolicy limits = EffectiveMediumLimits(context.config, state, customer, medium);
  fb::UsageRecordT daily;
  fb::UsageRecordT monthly;
  LoadRecord(state, keys::DailyUsage(customer, medium, limit_date), &daily);
  LoadRecord(state, keys::MonthlyUsage(customer, medium, limit_date / 100), &monthly);
  if (Exceeds(0, amount, limits.per_payment_minor)) {
    return Reject(reason::kLimitPerPaymentExceeded, "card amount passes the per-payment limit of the medium");
  }
  if (Exceeds(daily.amount_minor, amount, limits.daily_minor)) {
    return Reject(reason::kLimitDailyExceeded, "card amount passes the daily limit of the medium");
  }
  if (Exceeds(monthly.amount_minor, amount, limits.monthly_minor)) {
    return Reject(reason::kLimitMonthlyExceeded, "card amount passes the monthly limit of the medium");
  }
  if (Exceeds(daily.count, 1, limits.daily_count)) {
    return Reject(reason::kLimitCountExceeded, "payments today pass the daily count of the medium");
  }
  return Decision();
}

// A debit card's balance, or a credit card's balance and credit line, covers `amount`.
Decision CheckAccountFunds(const std::string& account_id, const fb::AccountRecordT& account, int64_t amount,
                           const KvReader& state) {
  const int64_t balance = BalanceOf(state, account_id);
  if (account.kind == fb::AccountKind::debit_card && balance < amount) {
    return Reject(reason::kInsufficientFunds, "balance of " + account_id + " is below the card amount");
  }
  if (account.kind == fb::AccountKind::credit_card &&
      static_cast<__int128>(balance) - amount < -static_cast<__int128>(account.credit_limit_minor)) {
    return Reject(reason::kCreditLimitExceeded, "card amount passes the credit limit of " + account_id);
  }
  return Decision();
}

// `account`'s balance can take `amount` more without passing 2^53-1.
bool CanCredit(const KvReader& state, const std::string& account, int64_t amount) {
  const std::optional<int64_t> after = CheckedAdd(BalanceOf(state, account), amount);
  return after && *after <= kAmountMinorMax;
}

// Limits: medium limits on the card amount for card funding; the channel limit on any funding.
Decision CheckPayLimits(const fb::PayT& command, const DecideContext& context, PayPlan& plan) {
  plan.limit_date = LocalDate(context.now_ns, context.config.timezone_offset_minutes);
  plan.medium_limited =
      command.funding == fb::Funding::own_account || command.funding == fb::Funding::other_bank;
  if (plan.medium_limited) {
    Decision medium =
        CheckMediumLimits(command.customer, command.medium, plan.card_amount, plan.limit_date, context);
    if (!medium.accepted()) return medium;
  }
  if (command.channel == fb::Channel::qr_static) {
    fb::UsageRecordT channel_usage;
    LoadRecord(context.state, keys::ChannelDailyUsage(command.customer, command.channel, plan.limit_date),
               &channel_usage);
    if (Exceeds(channel_usage.amount_minor, plan.card_amount, context.config.qr_static_daily_minor)) {
      return Reject(reason::kChannelLimitExceeded, "card amount passes the daily limit of channel qr_static");
    }
  }
  return Decision();
}

// Funds: points, the debit balance or credit line, and overflow guards on what the payment adds to the
// merchant and scheme balances.
Decision CheckPayFunds(const fb::PayT& command, const KvReader& state, const PayPlan& plan) {
  if (command.points > 0 && BalanceOf(state, PointsAccount(command.customer)) < command.points) {
    return Reject(reason::kInsufficientPoints, "customer " + command.customer + " has too few points");
  }
  if (command.funding == fb::Funding::own_account) {
    Decision funds = CheckAccountFunds(command.account, plan.account, plan.card_amount, state);
    if (!funds.accepted()) return funds;
  }
  if (!CanCredit(state, MerchantAccount(command.merchant), command.order_amount_minor))
    return Reject(reason::kInvalidAmount, "merchant balance would pass 2^53-1");
  if (command.funding != fb::Funding::own_account) {
    const std::optional<int64_t> receivable =
        CheckedSub(BalanceOf(state, plan.source_account), plan.card_amount);
    if (!receivable || *receivable < -kAmountMinorMax)
      return Reject(reason::kInvalidAmount, "scheme receivable would overflow");
  }
  return Decision();
}

bool MerchantFundedCoupon(const PayPlan& plan) {
  return plan.coupon_value > 0 && plan.coupon.funded_by == fb::FundedBy::merchant;
}

// The PaymentCaptured event: the card amount from the source to the merchant, the discount from marketing,
// the fee from the merchant to fee income.
fb::PaymentCapturedT CapturedPayment(const fb::PayT& command, const DecideContext& context,
                                     const PayPlan& plan) {
  const int64_t settlement_base =
      command.order_amount_minor - (MerchantFundedCoupon(plan) ? plan.coupon_value : 0);
  const std::optional<int64_t> fee = MulDivRoundHalfUp(settlement_base, plan.merchant.fee_bps, 10'000);
  LEDGER_ASSERT(fee.has_value() && *fee <= settlement_base);
  fb::PaymentCapturedT captured;
  captured.merchant = command.merchant;
  captured.merchant_order_no = command.merchant_order_no;
  captured.customer = command.customer;
  captured.funding = command.funding;
  captured.account = plan.source_account;
  captured.card_token = command.card_token;
  captured.channel = command.channel;
  captured.medium = plan.medium_limited ? command.medium : fb::Medium::none;
  captured.order_amount_minor = command.order_amount_minor;
  captured.card_amount_minor = plan.card_amount;
  captured.points = command.points;
  captured.points_value_minor = plan.points_value;
  captured.coupon = command.coupon;
  captured.coupon_value_minor = plan.coupon_value;
  captured.coupon_funded_by = plan.coupon.funded_by;
  captured.discount_minor = command.discount_minor;
  captured.settlement_base_minor = settlement_base;
  captured.fee_minor = *fee;
  captured.clearing_date = OpenClearingDate(context);
  captured.limit_date = plan.limit_date;
  captured.medium_limited = plan.medium_limited;
  if (std::optional<fb::OrderRecordT> order =
          CreatedOrder(context.state, command.merchant, command.merchant_order_no)) {
    captured.notify_url = std::move(order->notify_url);
  } else {
    captured.notify_url = context.order_shard.notify_url;  // a created order of another shard, or none
  }
  const std::string merchant_account = MerchantAccount(command.merchant);
  PostingList postings;
  postings.Add(plan.source_account, -plan.card_amount);
  postings.Add(merchant_account, plan.card_amount);
  postings.Add(gl::kMarketingExpense, -command.discount_minor);
  postings.Add(merchant_account, command.discount_minor);
  postings.Add(merchant_account, -*fee);
  postings.Add(gl::kFeeIncome, *fee);
  captured.postings = postings.Take();
  return captured;
}

// The PointsDeducted event: the points leave the customer, their value moves from the liability to the
// merchant.
fb::PointsDeductedT DeductedPoints(const fb::PayT& command, const PayPlan& plan) {
  fb::PointsDeductedT deducted;
  deducted.customer = command.customer;
  deducted.merchant = command.merchant;
  deducted.merchant_order_no = command.merchant_order_no;
  deducted.points = command.points;
  deducted.value_minor = plan.points_value;
  PostingList postings;
  postings.Add(PointsAccount(command.customer), -command.points);
  postings.Add(gl::kPointsIssued, command.points);
  postings.Add(gl::kPointsLiability, -plan.points_value);
  postings.Add(MerchantAccount(command.merchant), plan.points_value);
  deducted.postings = postings.Take();
  return deducted;
}

// The CouponRedeemed event: a bank-funded coupon is paid to the merchant from marketing; a merchant-funded
// one posts nothing (it lowers what the merchant is owed instead, through the settlement base).
fb::CouponRedeemedT RedeemedCoupon(const fb::PayT& command, const PayPlan& plan) {
  fb::CouponRedeemedT redeemed;
  redeemed.coupon = command.coupon;
  redeemed.customer = command.customer;
  redeemed.merchant = command.merchant;
  redeemed.merchant_order_no = command.merchant_order_no;
  redeemed.value_minor = plan.coupon_value;
  redeemed.funded_by = plan.coupon.funded_by;
  PostingList postings;
  if (!MerchantFundedCoupon(plan)) {
    postings.Add(gl::kMarketingExpense, -plan.coupon_value);
    postings.Add(MerchantAccount(command.merchant), plan.coupon_value);
  }
  redeemed.postings = postings.Take();
  return redeemed;
}

// A payment that carries a proof (one from the gateway's customer side) needs its medium enrolled and not
// locked, and an otp_card's time step not used before; a payment without one is limited by its declared
// medium as before.
Decision CheckProvenMedium(const std::string& customer, fb::Medium medium, int64_t proof_step,
                           const KvReader& state) {
  fb::CustomerMediumRecordT enrolled;
  if (!LoadRecord(state, keys::CustomerMedium(customer, medium), &enrolled)) {
    return Reject(reason::kMediumNotEnrolled,
                  "customer " + customer + " has no " + fb::EnumNameMedium(medium) + " enrolled");
  }
  if (enrolled.locked) return Reject(reason::kMediumLocked, "the medium is locked after failed proofs");
  if (medium == fb::Medium::otp_card && proof_step <= enrolled.last_step)
    return Reject(reason::kMediumProofInvalid, "a TOTP code of this time step was used already");
  return Decision();
}

Decision CheckMediumProof(const fb::PayT& command, const DecideContext& context) {
  if (command.proof.empty()) return Decision();
  return CheckProvenMedium(command.customer, command.medium, command.proof_step, context.state);
}

// Whether the payment code waits on the order `command` pays (by this shard's record of the code: an order of
// another shard reserved it here first).
bool WaitsOn(const fb::PaymentCodeRecordT& code, const fb::PayT& command) {
  return !code.waiting_order.empty() && code.waiting_merchant == command.merchant &&
         code.waiting_order == command.merchant_order_no;
}

// A payment by a payment code: the code's own customer and account, once. Scanned (no proof), it pays by the
// medium proven to issue it, before it expires, unless it already waits on an order; with a proof, the
// customer confirms the order the code waits on (a codepay above the code's medium limit).
Decision CheckPaymentCode(const fb::PayT& command, const DecideContext& context) {
  if (command.payment_code.empty()) return Decision();
  fb::PaymentCodeRecordT code;
  if (!LoadRecord(context.state, keys::PaymentCode(command.payment_code), &code) ||
      code.customer != command.customer || code.account != command.account) {
    return Reject(reason::kPaymentCodeInvalid, "no such payment code of this customer and account");
  }
  if (code.used) return Reject(reason::kPaymentCodeInvalid, "the payment code was used");
  if (command.proof.empty()) {
    if (command.medium != code.medium)
      return Reject(reason::kPaymentCodeInvalid, "a payment code pays by the medium that issued it");
    if (!code.waiting_order.empty() || context.order_shard.waiting_payment_code == command.payment_code)
      return Reject(reason::kPaymentCodeInvalid, "the payment code waits on an order for its customer");
    if (context.now_ns >= code.expires_at_ns)
      return Reject(reason::kPaymentCodeExpired, "the code has expired");
  } else if (!WaitsOn(code, command)) {
    return Reject(reason::kPaymentCodeInvalid, "the payment code does not wait on this order");
  }
  return Decision();
}

fb::MediumProofUsedT UsedProof(const std::string& customer, fb::Medium medium, const std::string& proof,
                               int64_t step) {
  fb::MediumProofUsedT used;
  used.customer = customer;
  used.medium = medium;
  used.proof = proof;
  used.step = step;
  return used;
}

fb::PaymentCodeUsedT UsedPaymentCode(const fb::PayT& command) {
  fb::PaymentCodeUsedT used;
  used.customer = command.customer;
  used.payment_code = command.payment_code;
  used.merchant = command.merchant;
  used.merchant_order_no = command.merchant_order_no;
  return used;
}

// A payment code, once its medium is proven; it pays one order (CheckPaymentCode).
Decision DecideIssuePaymentCode(const fb::IssuePaymentCodeT& command, const DecideContext& context) {
  fb::AccountRecordT account;
  if (!LoadRecord(context.state, keys::Account(command.account), &account) ||
      account.customer != command.customer)
    return Reject(reason::kUnknownAccount,
                  "no account " + command.account + " of customer " + command.customer);
  if (Decision proven =
          CheckProvenMedium(command.customer, command.medium, command.proof_step, context.state);
      !proven.accepted()) {
    return proven;
  }
  fb::PaymentCodeRecordT existing;
  if (LoadRecord(context.state, keys::PaymentCode(command.payment_code), &existing))
    return Reject(reason::kAlreadyExists, "the payment code was issued before");
  if (command.expires_at_ns <= context.now_ns)
    return Reject(reason::kPaymentCodeExpired, "expires_at has passed");
  fb::PaymentCodeIssuedT issued;
  issued.customer = command.customer;
  issued.account = command.account;
  issued.medium = command.medium;
  issued.payment_code = command.payment_code;
  issued.expires_at_ns = command.expires_at_ns;
  Decision decision;
  decision.payloads.emplace_back().Set(std::move(issued));
  decision.payloads.emplace_back().Set(
      UsedProof(command.customer, command.medium, command.proof, command.proof_step));
  return decision;
}

Decision DecidePay(const fb::PayT& command, const DecideContext& context) {
  PayPlan plan;
  if (Decision checked = CheckPayParties(command, context, plan); !checked.accepted()) return checked;
  if (Decision checked = CheckPaymentCode(command, context); !checked.accepted()) return checked;
  if (Decision checked = CheckMediumProof(command, context); !checked.accepted()) return checked;
  if (Decision checked = CheckPayTenders(command, context, plan); !checked.accepted()) return checked;
  if (Decision checked = CheckPayLimits(command, context, plan); !checked.accepted()) return checked;
  if (Decision checked = CheckPayFunds(command, context.state, plan); !checked.accepted()) return checked;
  Decision decision;
  decision.payloads.emplace_back().Set(CapturedPayment(command, context, plan));
  if (command.points > 0) decision.payloads.emplace_back().Set(DeductedPoints(command, plan));
  if (!command.coupon.empty()) decision.payloads.emplace_back().Set(RedeemedCoupon(command, plan));
  if (!command.proof.empty()) {
    decision.payloads.emplace_back().Set(
        UsedProof(command.customer, command.medium, command.proof, command.proof_step));
  }
  if (!command.payment_code.empty()) decision.payloads.emplace_back().Set(UsedPaymentCode(command));
  return decision;
}

// A reversal of an order with no payment (never seen, or refused): the payment may still be on its way (the
// merchant timed out), so the order is closed for a while and that payment will be refused.
Decision CloseUnpaidOrder(const fb::ReverseT& command, const DecideContext& context) {
  if (OrderClosedAt(context.state, command.merchant, command.merchant_order_no, context.now_ns)) {
    return Reject(reason::kAlreadyReversed, "order is already closed by a reversal");
  }
  fb::OrderClosedT closed;
  closed.merchant = command.merchant;
  closed.merchant_order_no = command.merchant_order_no;
  closed.reason = command.reason;
  closed.closed_until_ns = context.now_ns + int64_t{context.config.closed_order_keep_days} * kNanosPerDay;
  Decision decision;
  decision.payloads.emplace_back().Set(std::move(closed));
  return decision;
}

Decision DecideReverse(const fb::ReverseT& command, const DecideContext& context) {
  fb::PaymentRecordT payment;
  if (!LoadRecord(context.state, keys::Payment(command.merchant, command.merchant_order_no), &payment))
    return CloseUnpaidOrder(command, context);
  if (payment.status == fb::PaymentStatus::reversed)
    return Reject(reason::kAlreadyReversed, "payment is already reversed");
  if (payment.refund_count > 0)
    return Reject(reason::kAlreadyRefunded, "payment has refunds; refund the rest instead");
  const int clearing_date = OpenClearingDate(context);
  if (clearing_date > payment.clearing_date) {
    return Reject(reason::kReversalWindowClosed,
                  "the payment's clearing date " + FormatDate(payment.clearing_date) + " has ended");
  }
  const std::string merchant_account = MerchantAccount(command.merchant);
  const bool merchant_funded_coupon =
      payment.coupon_value_minor > 0 && payment.coupon_funded_by == fb::FundedBy::merchant;
  Decision decision;
  fb::PaymentReversedT reversed;
  reversed.merchant = command.merchant;
  reversed.merchant_order_no = command.merchant_order_no;
  reversed.reason = command.reason;
  reversed.customer = payment.customer;
  reversed.medium = payment.medium;
  reversed.channel = payment.channel;
  reversed.medium_limited = payment.medium_limited;
  reversed.limit_date = payment.limit_date;
  reversed.card_amount_minor = payment.card_amount_minor;
  reversed.points = payment.points;
  reversed.points_value_minor = payment.points_value_minor;
  reversed.coupon = payment.coupon;
  reversed.coupon_value_minor = payment.coupon_value_minor;
  reversed.discount_minor = payment.discount_minor;
  reversed.fee_minor = payment.fee_minor;
  reversed.order_amount_minor = payment.order_amount_minor;
  reversed.clearing_date = clearing_date;
  // Every line of the original, mirrored.
  PostingList postings;
  postings.Add(payment.account, payment.card_amount_minor);
  postings.Add(merchant_account, -payment.card_amount_minor);
  postings.Add(gl::kMarketingExpense, payment.discount_minor);
  postings.Add(merchant_account, -payment.discount_minor);
  postings.Add(merchant_account, payment.fee_minor);
  postings.Add(gl::kFeeIncome, -payment.fee_minor);
  postings.Add(PointsAccount(payment.customer), payment.points);
  postings.Add(gl::kPointsIssued, -payment.points);
  postings.Add(gl::kPointsLiability, payment.points_value_minor);
  postings.Add(merchant_account, -payment.points_value_minor);
  if (!merchant_funded_coupon) {
    postings.Add(gl::kMarketingExpense, payment.coupon_value_minor);
    postings.Add(merchant_account, -payment.coupon_value_minor);
  }
  reversed.postings = postings.Take();
  decision.payloads.emplace_back().Set(std::move(reversed));
  return decision;
}

Decision DecideRefund(const fb::RefundT& command, const DecideContext& context) {
  const LedgerConfig& config = context.config;
  if (!ValidPositive(command.amount_minor))
    return Reject(reason::kInvalidAmount, "amount_minor must be 1 to 2^53-1");
  fb::PaymentRecordT payment;
  if (!LoadRecord(context.state, keys::Payment(command.merchant, command.merchant_order_no), &payment)) {
    return Reject(reason::kOriginalNotFound,
                  "no payment " + command.merchant + "/" + command.merchant_order_no);
  }
  if (payment.status == fb::PaymentStatus::reversed)
    return Reject(reason::kAlreadyReversed, "payment is reversed");
  fb::RefundRecordT existing_refund;
  if (LoadRecord(context.state, keys::Refund(command.merchant, command.refund_no), &existing_refund)) {
    return Reject(reason::kDuplicateOrder, "refund number " + command.refund_no + " is already used");
  }
  const int64_t remaining = payment.order_amount_minor - payment.refunded_amount_minor;
  if (command.amount_minor > remaining) {
    return Reject(reason::kRefundExceedsRemaining,
                  "refund passes the " + FormatYuan(remaining) + " left of the order");
  }
  // Measured from the payment's stored time: its decision time in occurred mode, and within the allowed clock
  // skew of it in system mode (docs/DECISIONS.md: Whose clock decides).
  if (context.now_ns - payment.occurred_at_ns > int64_t{config.refund_window_days} * kNanosPerDay) {
    return Reject(reason::kRefundWindowClosed,
                  "refunds are allowed within " + std::to_string(config.refund_window_days) + " days");
  }

  // Pro rata over what is left of each tender; the final refund takes exactly what remains.
  const int64_t amount = command.amount_minor;
  const bool final_refund = amount == remaining;
  const int64_t card_left = payment.card_amount_minor - payment.refunded_card_minor;
  const int64_t points_left = payment.points - payment.refunded_points;
  const int64_t points_value_left = payment.points_value_minor - payment.refunded_points_value_minor;
  const int64_t coupon_left = payment.coupon_value_minor - payment.refunded_coupon_minor;
  const int64_t discount_left = payment.discount_minor - payment.refunded_discount_minor;
  const int64_t fee_left = payment.fee_minor - payment.refunded_fee_minor;
  int64_t card = card_left, points = points_left, coupon = coupon_left, discount = discount_left,
          fee = fee_left;
  if (!final_refund) {
    card = *MulDivFloor(card_left, amount, remaining);
    points = *MulDivFloor(points_left, amount, remaining);
    coupon = *MulDivFloor(coupon_left, amount, remaining);
    discount = *MulDivFloor(discount_left, amount, remaining);
    int64_t leftover = amount - card - points * config.point_value_minor - coupon - discount;
    // Place the rounding remainder on the tenders in a fixed order, within what each has left.
    for (auto [share, left] : {std::pair{&card, card_left}, std::pair{&coupon, coupon_left},
                               std::pair{&discount, discount_left}}) {
      const int64_t take = std::min(leftover, left - *share);
      *share += take;
      leftover -= take;
    }
    if (leftover > 0) {
      const int64_t more_points = std::min(leftover / config.point_value_minor, points_left - points);
      points += more_points;
      leftover -= more_points * config.point_value_minor;
    }
    if (leftover != 0) return Reject(reason::kInvalidAmount, "refund cannot be split into whole points");
    fee = std::min(fee_left, *MulDivRoundHalfUp(fee_left, amount, remaining));
  }
  const int64_t points_value = final_refund ? points_value_left : points * config.point_value_minor;
  LEDGER_ASSERT(card + points_value + coupon + discount == amount);
  const bool merchant_funded_coupon = payment.coupon_funded_by == fb::FundedBy::merchant;
  const std::string merchant_account = MerchantAccount(command.merchant);

  Decision decision;
  fb::PaymentRefundedT refunded;
  refunded.merchant = command.merchant;
  refunded.merchant_order_no = command.merchant_order_no;
  refunded.refund_no = command.refund_no;
  refunded.notify_url = command.notify_url;
  refunded.customer = payment.customer;
  refunded.amount_minor = amount;
  refunded.card_amount_minor = card;
  refunded.points = points;
  refunded.points_value_minor = points_value;
  refunded.coupon_value_minor = coupon;
  refunded.discount_minor = discount;
  refunded.fee_minor = fee;
  refunded.settlement_minor = amount - (merchant_funded_coupon ? coupon : 0);
  refunded.final_refund = final_refund;
  refunded.clearing_date = OpenClearingDate(context);
  PostingList postings;
  postings.Add(payment.account, card);
  postings.Add(merchant_account, -card);
  postings.Add(PointsAccount(payment.customer), points);
  postings.Add(gl::kPointsIssued, -points);
  postings.Add(gl::kPointsLiability, points_value);
  postings.Add(merchant_account, -points_value);
  if (!merchant_funded_coupon) {
    postings.Add(gl::kMarketingExpense, coupon);
    postings.Add(merchant_account, -coupon);
  }
  postings.Add(gl::kMarketingExpense, discount);
  postings.Add(merchant_account, -discount);
  postings.Add(merchant_account, fee);
  postings.Add(gl::kFeeIncome, -fee);
  refunded.postings = postings.Take();
  decision.payloads.emplace_back().Set(std::move(refunded));
  return decision;
}

// A transfer (C2C; events.fbs: transfers). The payer's side is checked first — amount, account, the medium's
// limits, funds — then the payee's account, wherever it lives, so one shard and several refuse alike.
struct TransferPlan {
  fb::AccountRecordT from;
  std::string to_customer;
  int limit_date = 0;
};

Decision CheckTransferPayer(const fb::TransferT& command, const DecideContext& context, TransferPlan& plan) {
  if (!ValidPositive(command.amount_minor))
    return Reject(reason::kInvalidAmount, "amount_minor must be 1 to 2^53-1");
  if (!LoadRecord(context.state, keys::Account(command.from_account), &plan.from))
    return Reject(reason::kUnknownAccount, "no account " + command.from_account);
  plan.to_customer = CustomerOfAccount(command.to_account);
  plan.limit_date = LocalDate(context.now_ns, context.config.timezone_offset_minutes);
  Decision limits =
      CheckMediumLimits(plan.from.customer, command.medium, command.amount_minor, plan.limit_date, context);
  if (!limits.accepted()) return limits;
  return CheckAccountFunds(command.from_account, plan.from, command.amount_minor, context.state);
}

// The payee's side: the account is open and can take the amount.
Decision CheckTransferPayee(const std::string& to_account, int64_t amount, const KvReader& state) {
  fb::AccountRecordT to;
  if (!LoadRecord(state, keys::Account(to_account), &to))
    return Reject(reason::kUnknownAccount, "no account " + to_account);
  if (!CanCredit(state, to_account, amount))
    return Reject(reason::kInvalidAmount, "balance of " + to_account + " would pass 2^53-1");
  return Decision();
}

// The fields TransferMade and TransferSent share: who pays whom, how much, by which medium, on which limit
// day.
template <typename Event>
Event TransferEvent(const fb::TransferT& command, const TransferPlan& plan, PostingList& postings) {
  Event event;
  event.from_customer = plan.from.customer;
  event.from_account = command.from_account;
  event.to_customer = plan.to_customer;
  event.to_account = command.to_account;
  event.amount_minor = command.amount_minor;
  event.medium = command.medium;
  event.limit_date = plan.limit_date;
  event.postings = postings.Take();
  return event;
}

Decision DecideTransfer(const fb::TransferT& command, const DecideContext& context) {
  TransferPlan plan;
  if (Decision checked = CheckTransferPayer(command, context, plan); !checked.accepted()) return checked;
  const LedgerConfig& config = context.config;
  const uint32_t payee_shard = ShardOfKey(plan.to_customer, config.shards);
  PostingList postings;
  postings.Add(command.from_account, -command.amount_minor);
  Decision decision;
  if (payee_shard == config.shard) {
    if (Decision payee = CheckTransferPayee(command.to_account, command.amount_minor, context.state);
        !payee.accepted()) {
      return payee;
    }
    postings.Add(command.to_account, command.amount_minor);
    decision.payloads.emplace_back().Set(TransferEvent<fb::TransferMadeT>(command, plan, postings));
    return decision;
  }
  if (!CanCredit(context.state, gl::Due(payee_shard), command.amount_minor))
    return Reject(reason::kInvalidAmount,
                  "due balance with shard " + std::to_string(payee_shard) + " would pass 2^53-1");
  postings.Add(gl::Due(payee_shard), command.amount_minor);
  fb::TransferSentT sent = TransferEvent<fb::TransferSentT>(command, plan, postings);
  sent.destination = payee_shard;
  sent.number = NextLegNumber(context.state, payee_shard);
  decision.payloads.emplace_back().Set(std::move(sent));
  return decision;
}

}  // namespace

std::optional<Decision> CreatedOrderRefuses(const KvReader& state, const fb::PayT& command, int64_t at_ns) {
  const std::optional<fb::OrderRecordT> order =
      CreatedOrder(state, command.merchant, command.merchant_order_no);
  if (!order) return std::nullopt;
  if (command.order_amount_minor != order->amount_minor)
    return Reject(reason::kInvalidAmount, "the order's amount is " + std::to_string(order->amount_minor));
  if (at_ns >= order->expires_at_ns) return Reject(reason::kOrderExpired, "the order has expired");
  if (order->payment_code != command.payment_code)
    return Reject(reason::kPaymentCodeInvalid, "the order waits on its own payment code");
  return std::nullopt;
}

uint64_t NextLegNumber(const KvReader& state, uint32_t destination) {
  fb::LegMarkRecordT mark;
  LoadRecord(state, keys::LegSent(destination), &mark);
  return mark.number + 1;
}

Decision DecideTransferIn(const fb::TransferSent& sent, uint32_t payer_shard, const DecideContext& context) {
  const std::string to_account = sent.to_account() ? sent.to_account()->str() : std::string();
  const int64_t amount = sent.amount_minor();
  if (Decision payee = CheckTransferPayee(to_account, amount, context.state); !payee.accepted()) return payee;
  const std::optional<int64_t> owed = CheckedSub(BalanceOf(context.state, gl::Due(payer_shard)), amount);
  if (!owed || *owed < -kAmountMinorMax)
    return Reject(reason::kInvalidAmount, "due-from balance would overflow");
  PostingList postings;
  postings.Add(to_account, amount);
  postings.Add(gl::Due(payer_shard), -amount);
  fb::TransferReceivedT received;
  received.accepted = true;
  received.to_customer = CustomerOfAccount(to_account);
  received.to_account = to_account;
  received.amount_minor = amount;
  received.postings = postings.Take();
  Decision decision;
  decision.payloads.emplace_back().Set(std::move(received));
  return decision;
}

bool OrderClosedAt(const KvReader& state, const std::string& merchant, const std::string& merchant_order_no,
                   int64_t at_ns) {
  fb::ClosedOrderRecordT closed;
  return LoadRecord(state, keys::ClosedOrder(merchant, merchant_order_no), &closed) &&
         at_ns < closed.closed_until_ns;
}

Decision Decide(const fb::CommandT& command, const DecideContext& context) {
  switch (command.body.type) {
    case fb::CommandBody::OpenAccount:
      return DecideOpenAccount(*command.body.AsOpenAccount(), context);
    case fb::CommandBody::OpenMerchant:
      return DecideOpenMerchant(*command.body.AsOpenMerchant(), context);
    case fb::CommandBody::Deposit:
      return DecideDeposit(*command.body.AsDeposit(), context);
    case fb::CommandBody::AwardPoints:
      return DecideAwardPoints(*command.body.AsAwardPoints(), context);
    case fb::CommandBody::IssueCoupon:
      return DecideIssueCoupon(*command.body.AsIssueCoupon(), context);
    case fb::CommandBody::SetCustomerLimit:
      return DecideSetCustomerLimit(*command.body.AsSetCustomerLimit(), context);
    case fb::CommandBody::Pay:
      return DecidePay(*command.body.AsPay(), context);
    case fb::CommandBody::Reverse:
      return DecideReverse(*command.body.AsReverse(), context);
    case fb::CommandBody::Refund:
      return DecideRefund(*command.body.AsRefund(), context);
    case fb::CommandBody::Transfer:
      return DecideTransfer(*command.body.AsTransfer(), context);
    case fb::CommandBody::EnrollMedium:
      return DecideEnrollMedium(*command.body.AsEnrollMedium(), context);
    case fb::CommandBody::IssuePaymentCode:
      return DecideIssuePaymentCode(*command.body.AsIssuePaymentCode(), context);
    case fb::CommandBody::RecordProofFailure:
      return DecideRecordProofFailure(*command.body.AsRecordProofFailure(), context);
    case fb::CommandBody::AddMerchantKey:
      return DecideAddMerchantKey(*command.body.AsAddMerchantKey(), context);
    case fb::CommandBody::RevokeMerchantKey:
      return DecideRevokeMerchantKey(*command.body.AsRevokeMerchantKey(), context);
    case fb::CommandBody::AddProducerKey:
      return DecideAddProducerKey(*command.body.AsAddProducerKey(), context);
    case fb::CommandBody::RevokeProducerKey:
      return DecideRevokeProducerKey(*command.body.AsRevokeProducerKey(), context);
    case fb::CommandBody::CreateOrder:
      return DecideCreateOrder(*command.body.AsCreateOrder(), context);
    case fb::CommandBody::CloseOrder:
      return DecideCloseOrder(*command.body.AsCloseOrder(), context);
    default:
      return Reject(reason::kMalformedCommand, "command has no body");
  }
}

}  // namespace ledger
