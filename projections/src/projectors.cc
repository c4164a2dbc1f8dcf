// The ledger's inline projectors. Each is a pure fold over events; none reads another's records, so any
// subset can be rebuilt on its own. Input that cannot follow the history (a posting that would overflow, an
// unknown payment in a reversal) is reported through FoldErrors: the ledger asserts it never happens, replay
// reports it at the event's sequence.
#include <algorithm>
#include <cstring>

#include "core/money.h"
#include "events/event.h"
#include "projections/clearing.h"
#include "projections/projector.h"
#include "state/records.h"

namespace ledger {
namespace {

// balances: one BalanceRecord per account, in the account's unit; the sum over all accounts per unit is 0.
class BalancesProjector final : public Projector {
 public:
  std::vector<std::string> KeyPrefixes() const override { return {std::string(keys::kBalancePrefix)}; }
  std::string_view name() const override { return "balances"; }
  Status Apply(const fb::EventBody& event, KvWriter& view) const override {
    FoldErrors errors;
    const auto* postings = PostingsOf(event);
    if (postings == nullptr) return Status::Ok();
    // Invariant: every event's postings balance per unit (double entry).
    errors.Require(PostingsBalanced(event), "postings malformed or not summing to zero per unit");
    if (!errors.status().ok()) return errors.status();
    for (const fb::Posting* posting : *postings) {
      const std::string key = keys::Balance(ViewOf(posting->account()));
      fb::BalanceRecordT balance;
      balance.unit = posting->unit();
      if (LoadRecord(view, key, &balance))
        errors.Require(balance.unit == posting->unit(), "posting in another unit than its account");
      balance.balance_minor = errors.Add(balance.balance_minor, posting->amount_minor());
      SaveRecord(view, key, balance);
    }
    return errors.status();
  }
};

// directory: a merchant's request-signing key (mk/), from its registration and revocation.
void ApplyMerchantKeyEvent(const fb::EventBody& event, KvWriter& view, FoldErrors& errors) {
  switch (event.payload_type()) {
    case fb::Payload::MerchantKeyAdded: {
      const auto* added = event.payload_as_MerchantKeyAdded();
      fb::MerchantKeyRecordT key;
      key.merchant = StringOf(added->merchant());
      key.public_key_pem = StringOf(added->public_key_pem());
      SaveRecord(view, keys::MerchantKey(ViewOf(added->serial_no())), key);
      break;
    }
    case fb::Payload::MerchantKeyRevoked: {
      const auto* revoked = event.payload_as_MerchantKeyRevoked();
      const std::string record_key = keys::MerchantKey(ViewOf(revoked->serial_no()));
      fb::MerchantKeyRecordT key;
      errors.Require(LoadRecord(view, record_key, &key), "revocation of an unknown merchant key");
      key.revoked = true;
      SaveRecord(view, record_key, key);
      break;
    }
    default:
      break;
  }
}

// directory: a producer's command-signing key (pk/), from its registration and revocation.
void ApplyProducerKeyEvent(const fb::EventBody& event, KvWriter& view, FoldErrors& errors) {
  switch (event.payload_type()) {
    case fb::Payload::ProducerKeyAdded: {
      const auto* added = event.payload_as_ProducerKeyAdded();
      fb::ProducerKeyRecordT key;
      key.producer = StringOf(added->producer());
      key.role = added->role();
      key.public_key_pem = StringOf(added->public_key_pem());
      SaveRecord(view, keys::ProducerKey(ViewOf(added->key_id())), key);
      break;
    }
    case fb::Payload::ProducerKeyRevoked: {
      const auto* revoked = event.payload_as_ProducerKeyRevoked();
      const std::string record_key = keys::ProducerKey(ViewOf(revoked->key_id()));
      fb::ProducerKeyRecordT key;
      errors.Require(LoadRecord(view, record_key, &key), "revocation of an unknown producer key");
      key.revoked = true;
      SaveRecord(view, record_key, key);
      break;
    }
    default:
      break;
  }
}

// directory: a customer's enrolled medium (cm/), from its enrolment, failed proofs and proofs used.
void ApplyMediumEvent(const fb::EventBody& event, KvWriter& view, FoldErrors& errors) {
  switch (event.payload_type()) {
    case fb::Payload::MediumEnrolled: {
      const auto* enrolled = event.payload_as_MediumEnrolled();
      const std::string record_key = keys::CustomerMedium(ViewOf(enrolled->customer()), enrolled->medium());
      fb::CustomerMediumRecordT medium;
      LoadRecord(view, record_key, &medium);  // enrolled again: the last step used stays
      medium.public_part = StringOf(enrolled->public_part());
      medium.failures = 0;
      medium.locked = false;
      SaveRecord(view, record_key, medium);
      break;
    }
    case fb::Payload::MediumProofFailed: {
      const auto* failed = event.payload_as_MediumProofFailed();
      const std::string record_key = keys::CustomerMedium(ViewOf(failed->customer()), failed->medium());
      fb::CustomerMediumRecordT medium;
      errors.Require(LoadRecord(view, record_key, &medium), "a failed proof of a medium never enrolled");
      medium.failures = failed->failures();
      medium.locked = failed->locked();
      SaveRecord(view, record_key, medium);
      break;
    }
    case fb::Payload::MediumProofUsed: {
      const auto* used = event.payload_as_MediumProofUsed();
      const std::string record_key = keys::CustomerMedium(ViewOf(used->customer()), used->medium());
      fb::CustomerMediumRecordT medium;
      errors.Require(LoadRecord(view, record_key, &medium), "a proof of a medium never enrolled");
      medium.failures = 0;
      medium.last_step = std::max(medium.last_step, used->step());
      SaveRecord(view, record_key, medium);
      break;
    }
    default:
      break;
  }
}

// directory: a payment code (pc/), from its issue, the order it waits on and its use.
void ApplyPaymentCodeEvent(const fb::EventBody& event, KvWriter& view, FoldErrors& errors) {
  if (const auto* issued = event.payload_as_PaymentCodeIssued()) {
    fb::PaymentCodeRecordT code;
    code.customer = StringOf(issued->customer());
    code.account = StringOf(issued->account());
    code.medium = issued->medium();
    code.expires_at_ns = issued->expires_at_ns();
    SaveRecord(view, keys::PaymentCode(ViewOf(issued->payment_code())), code);
    return;
  }
  const auto* created = event.payload_as_OrderCreated();
  const auto* reserved = event.payload_as_PaymentCodeReserved();
  const auto* used = event.payload_as_PaymentCodeUsed();
  const flatbuffers::String* id = created != nullptr    ? created->payment_code()
                                  : reserved != nullptr ? reserved->payment_code()
                                                        : used->payment_code();
  if (id == nullptr || id->size() == 0) return;  // an order that waits on no code
  const std::string record_key = keys::PaymentCode(ViewOf(id));
  fb::PaymentCodeRecordT code;
  const bool issued_here = LoadRecord(view, record_key, &code);
  if (created != nullptr && created->payment_code_customer() != nullptr &&
      created->payment_code_customer()->size() > 0) {
    // The code's record is its customer's shard's: an order of another shard's customer's code reserved it
    // there (PaymentCodeReserved) and leaves this shard's records alone, even of a code of the same id this
    // shard issued to someone else.
    if (!issued_here || code.customer != ViewOf(created->payment_code_customer())) return;
    errors.Require(code.waiting_order.empty(), "a payment code reserved for two orders");
  } else if (reserved != nullptr) {
    errors.Require(issued_here && code.customer == ViewOf(reserved->customer()) && code.waiting_order.empty(),
                   "a payment code reserved that is not this shard's customer's, or for two orders");
  } else {
    // Recorded before reservations: an order may wait on a code another shard issued, of which this shard
    // then knows only the order. A code is used only where it was issued.
    errors.Require(issued_here || created != nullptr, "an unknown payment code");
  }
  if (created != nullptr || reserved != nullptr) {
    code.waiting_merchant = StringOf(created != nullptr ? created->merchant() : reserved->merchant());
    code.waiting_order =
        StringOf(created != nullptr ? created->merchant_order_no() : reserved->merchant_order_no());
  } else {
    code.used = true;
  }
  SaveRecord(view, record_key, code);
}

// directory: accounts, customers, merchants and their keys, producer keys, coupons, customer limit overrides
// and media.
class DirectoryProjector final : public Projector {
 public:
  std::vector<std::string> KeyPrefixes() const override {
    return {std::string(keys::kAccountPrefix),        std::string(keys::kCouponPrefix),
            std::string(keys::kCustomerPrefix),       std::string(keys::kLimitOverridePrefix),
            std::string(keys::kMerchantPrefix),       std::string(keys::kMerchantKeyPrefix),
            std::string(keys::kCustomerMediumPrefix), std::string(keys::kPaymentCodePrefix),
            std::string(keys::kProducerKeyPrefix)};
  }
  std::string_view name() const override { return "directory"; }
  Status Apply(const fb::EventBody& event, KvWriter& view) const override {
    FoldErrors errors;
    switch (event.payload_type()) {
      case fb::Payload::AccountOpened: {
        const auto* opened = event.payload_as_AccountOpened();
        fb::AccountRecordT account;
        account.customer = StringOf(opened->customer());
        account.kind = opened->kind();
        account.credit_limit_minor = opened->credit_limit_minor();
        SaveRecord(view, keys::Account(ViewOf(opened->account())), account);
        fb::CustomerRecordT customer;
        LoadRecord(view, keys::Customer(account.customer), &customer);
        customer.accounts += 1;
        SaveRecord(view, keys::Customer(account.customer), customer);
        break;
      }
      case fb::Payload::MerchantOpened: {
        const auto* opened = event.payload_as_MerchantOpened();
        fb::MerchantRecordT merchant;
        merchant.name = StringOf(opened->name());
        merchant.fee_bps = opened->fee_bps();
        SaveRecord(view, keys::Merchant(ViewOf(opened->merchant())), merchant);
        break;
      }
      case fb::Payload::MerchantKeyAdded:
      case fb::Payload::MerchantKeyRevoked:
        ApplyMerchantKeyEvent(event, view, errors);
        break;
      case fb::Payload::ProducerKeyAdded:
      case fb::Payload::ProducerKeyRevoked:
        ApplyProducerKeyEvent(event, view, errors);
        break;
      case fb::Payload::MediumEnrolled:
      case fb::Payload::MediumProofFailed:
      case fb::Payload::MediumProofUsed:
        ApplyMediumEvent(event, view, errors);
        break;
      case fb::Payload::PaymentCodeIssued:
      case fb::Payload::PaymentCodeUsed:
      case fb::Payload::PaymentCodeReserved:
      case fb::Payload::OrderCreated:
        ApplyPaymentCodeEvent(event, view, errors);
        break;
      case fb::Payload::CouponIssued: {
        const auto* issued = event.payload_as_CouponIssued();
        fb::CouponRecordT coupon;
        coupon.customer = StringOf(issued->customer());
        coupon.value_minor = issued->value_minor();
        coupon.min_spend_minor = issued->min_spend_minor();
        coupon.merchant = StringOf(issued->merchant());
        coupon.funded_by = issued->funded_by();
        coupon.expires_at_ns = issued->expires_at_ns();
        SaveRecord(view, keys::Coupon(ViewOf(issued->coupon())), coupon);
        break;
      }
      case fb::Payload::CouponRedeemed: {
        const auto* redeemed = event.payload_as_CouponRedeemed();
        const std::string key = keys::Coupon(ViewOf(redeemed->coupon()));
        fb::CouponRecordT coupon;
        errors.Require(LoadRecord(view, key, &coupon), "redemption of an unknown coupon");
        coupon.used = true;
        coupon.used_by_order = StringOf(redeemed->merchant()) + "/" + StringOf(redeemed->merchant_order_no());
        SaveRecord(view, key, coupon);
        break;
      }
      case fb::Payload::PaymentReversed: {
        const auto* reversed = event.payload_as_PaymentReversed();
        if (reversed->coupon() == nullptr || reversed->coupon()->size() == 0) break;
        const std::string key = keys::Coupon(ViewOf(reversed->coupon()));
        fb::CouponRecordT coupon;
        errors.Require(LoadRecord(view, key, &coupon), "reversal gives back an unknown coupon");
        coupon.used = false;  // a reversal gives the coupon back
        coupon.used_by_order.clear();
        SaveRecord(view, key, coupon);
        break;
      }
      case fb::Payload::CustomerLimitSet: {
        const auto* set = event.payload_as_CustomerLimitSet();
        const std::string key = keys::LimitOverride(ViewOf(set->customer()), set->medium());
        fb::LimitOverrideRecordT limit;
        LoadRecord(view, key, &limit);
        // -1 leaves a limit as it was.
        if (set->per_payment_minor() >= 0) limit.per_payment_minor = set->per_payment_minor();
        if (set->daily_minor() >= 0) limit.daily_minor = set->daily_minor();
        if (set->monthly_minor() >= 0) limit.monthly_minor = set->monthly_minor();
        if (set->daily_count() >= 0) limit.daily_count = set->daily_count();
        SaveRecord(view, key, limit);
        break;
      }
      default:
        break;
    }
    return errors.status();
  }
};

// limits: usage of card amounts per (customer, medium, day), (customer, medium, month) and
// (customer, channel, day); transfers count on their medium and channel c2c. Reversals, and transfers the
// payee's shard refused, give usage back; refunds do not.
class LimitsProjector final : public Projector {
 public:
  std::vector<std::string> KeyPrefixes() const override {
    return {std::string(keys::kChannelDailyUsagePrefix), std::string(keys::kDailyUsagePrefix),
            std::string(keys::kMonthlyUsagePrefix)};
  }
  std::string_view name() const override { return "limits"; }
  Status Apply(const fb::EventBody& event, KvWriter& view) const override {
    FoldErrors errors;
    if (event.payload_type() == fb::Payload::PaymentCaptured) {
      const auto* paid = event.payload_as_PaymentCaptured();
      AddUsage(view, errors, StringOf(paid->customer()), paid->medium_limited(), paid->medium(),
               paid->channel(), paid->limit_date(), paid->card_amount_minor(), 1);
    } else if (event.payload_type() == fb::Payload::PaymentReversed) {
      const auto* reversed = event.payload_as_PaymentReversed();
      AddUsage(view, errors, StringOf(reversed->customer()), reversed->medium_limited(), reversed->medium(),
               reversed->channel(), reversed->limit_date(), -reversed->card_amount_minor(), -1);
    } else if (const auto* made = event.payload_as_TransferMade()) {
      AddUsage(view, errors, StringOf(made->from_customer()), true, made->medium(), fb::Channel::c2c,
               made->limit_date(), made->amount_minor(), 1);
    } else if (const auto* sent = event.payload_as_TransferSent()) {
      AddUsage(view, errors, StringOf(sent->from_customer()), true, sent->medium(), fb::Channel::c2c,
               sent->limit_date(), sent->amount_minor(), 1);
    } else if (const auto* settled = event.payload_as_TransferSettled(); settled && !settled->accepted()) {
      // Refused by the payee's shard: as if the transfer had never been made, as one shard would decide it.
      AddUsage(view, errors, StringOf(settled->from_customer()), true, settled->medium(), fb::Channel::c2c,
               settled->limit_date(), -settled->amount_minor(), -1);
    }
    return errors.status();
  }

 private:
  static void Bump(KvWriter& view, FoldErrors& errors, const std::string& key, int64_t amount_minor,
                   int64_t count) {
    fb::UsageRecordT usage;
    LoadRecord(view, key, &usage);
    usage.amount_minor = errors.Add(usage.amount_minor, amount_minor);
    usage.count = errors.Add(usage.count, count);
    errors.Require(usage.amount_minor >= 0 && usage.count >= 0, "limit usage would go below zero");
    SaveRecord(view, key, usage);
  }
  static void AddUsage(KvWriter& view, FoldErrors& errors, const std::string& customer, bool medium_limited,
                       fb::Medium medium, fb::Channel channel, int limit_date, int64_t amount_minor,
                       int64_t count) {
    if (medium_limited) {
      Bump(view, errors, keys::DailyUsage(customer, medium, limit_date), amount_minor, count);
      Bump(view, errors, keys::MonthlyUsage(customer, medium, limit_date / 100), amount_minor, count);
    }
    Bump(view, errors, keys::ChannelDailyUsage(customer, channel, limit_date), amount_minor, count);
  }
};

// Bytes of a FlatBuffers vector, as a std::vector (empty when absent).
std::vector<uint8_t> BytesOf(const flatbuffers::Vector<uint8_t>* bytes) {
  return bytes == nullptr ? std::vector<uint8_t>() : std::vector<uint8_t>(bytes->begin(), bytes->end());
}

// The order routes of the order shard (events.fbs: legs): a forwarded command claims the order for its
// destination; a parked command waits on it; the answer releases it (a refused payment forgets the route, as
// if the order had never been paid) and the parked commands are decided again by the ledger, in order.
void FoldOrderRoute(const fb::EventBody& event, KvWriter& view, FoldErrors& errors) {
  fb::OrderRouteRecordT route;
  if (const auto* forwarded = event.payload_as_OrderForwarded()) {
    const std::string key = keys::OrderRoute(ViewOf(forwarded->order()));
    const bool known = LoadRecord(view, key, &route);
    errors.Require(!known || !route.in_flight, "a second command forwarded while one is in flight");
    errors.Require(!known || route.shard == forwarded->destination(), "an order forwarded to two shards");
    route.shard = forwarded->destination();
    route.in_flight = true;
    route.pays = forwarded->pays();
    route.number = forwarded->number();
    route.command_id = StringOf(event.command_id());
    route.fingerprint = BytesOf(event.command_fingerprint());
    route.reserves_code = forwarded->reserves_code();
    route.command = route.reserves_code ? BytesOf(forwarded->command()) : std::vector<uint8_t>();
    SaveRecord(view, key, route);
  } else if (const auto* parked = event.payload_as_CommandParked()) {
    const std::string key = keys::OrderRoute(ViewOf(parked->order()));
    errors.Require(LoadRecord(view, key, &route) && route.in_flight, "a command parked on an idle order");
    auto& waiting = route.parked.emplace_back(std::make_unique<fb::ParkedCommandRecordT>());
    waiting->command_id = StringOf(event.command_id());
    waiting->fingerprint = BytesOf(event.command_fingerprint());
    waiting->command = BytesOf(parked->command());
    waiting->ledger_time_ns = parked->ledger_time_ns();
    SaveRecord(view, key, route);
  } else if (const auto* settled = event.payload_as_OrderSettled()) {
    const std::string key = keys::OrderRoute(ViewOf(settled->order()));
    errors.Require(LoadRecord(view, key, &route) && route.in_flight && route.shard == settled->source(),
                   "an answer for an order not forwarded there");
    // A refused payment leaves the order unpaid; an answered reservation leaves it on this shard (created
    // or not): either way no other shard decides what follows.
    if ((route.pays && !settled->accepted()) || route.reserves_code) {
      view.Delete(key);
      return;
    }
    route.in_flight = false;
    route.pays = false;
    route.parked.clear();
    route.number = 0;
    route.command_id.clear();
    route.fingerprint.clear();
    SaveRecord(view, key, route);
  }
}

// The transfers sent to other shards and not settled yet (events.fbs: transfers).
void FoldTransferInFlight(const fb::EventBody& event, KvWriter& view, FoldErrors& errors) {
  if (const auto* sent = event.payload_as_TransferSent()) {
    const std::string key = keys::TransferInFlight(sent->destination(), sent->number());
    fb::TransferInFlightRecordT record;
    errors.Require(!LoadRecord(view, key, &record), "a transfer leg number sent twice");
    record.command_id = StringOf(event.command_id());
    record.fingerprint = BytesOf(event.command_fingerprint());
    record.from_customer = StringOf(sent->from_customer());
    record.from_account = StringOf(sent->from_account());
    record.amount_minor = sent->amount_minor();
    record.medium = sent->medium();
    record.limit_date = sent->limit_date();
    SaveRecord(view, key, record);
  } else if (const auto* settled = event.payload_as_TransferSettled()) {
    const std::string key = keys::TransferInFlight(settled->source(), settled->answers());
    fb::TransferInFlightRecordT record;
    errors.Require(LoadRecord(view, key, &record), "a transfer settled that was not in flight");
    view.Delete(key);
  }
}

// An order waiting for its customer (OrderCreated), and an order closed unpaid (OrderClosed).
void FoldOrder(const fb::EventBody& event, KvWriter& view) {
  if (const auto* created = event.payload_as_OrderCreated()) {
    fb::OrderRecordT order;
    order.amount_minor = created->amount_minor();
    order.channel = created->channel();
    order.description = StringOf(created->description());
    order.expires_at_ns = created->expires_at_ns();
    order.created_at_ns = event.occurred_at_ns();
    order.payment_code = StringOf(created->payment_code());
    order.notify_url = StringOf(created->notify_url());
    SaveRecord(view, keys::Order(ViewOf(created->merchant()), ViewOf(created->merchant_order_no())), order);
  } else if (const auto* closed = event.payload_as_OrderClosed()) {
    fb::ClosedOrderRecordT record;
    record.closed_until_ns = closed->closed_until_ns();
    record.reason = StringOf(closed->reason());
    SaveRecord(view, keys::ClosedOrder(ViewOf(closed->merchant()), ViewOf(closed->merchant_order_no())),
               record);
  }
}

// The last clearing date the shard closed.
void FoldClearingDays(const fb::EventBody& event, KvWriter& view, FoldErrors& errors) {
  const auto* closed = event.payload_as_DayClosed();
  if (closed == nullptr) return;
  fb::ClearingDaysRecordT days;
  const std::string key(keys::kClearingDaysKey);
  LoadRecord(view, key, &days);
  errors.Require(closed->clearing_date() > days.closed_through, "a clearing date closed twice");
  days.closed_through = closed->clearing_date();
  days.closed_sequence = event.sequence();
  SaveRecord(view, key, days);
  SaveRecord(view, keys::DayClosed(closed->clearing_date()), days);  // which event closed which dates
}

// payments: what reversals and refunds need to know of each payment, the refund numbers in use, the routes of
// orders whose payment another shard holds and the transfers in flight to other shards.
class PaymentsProjector final : public Projector {
 public:
  std::vector<std::string> KeyPrefixes() const override {
    return {std::string(keys::kPaymentPrefix),    std::string(keys::kRefundPrefix),
            std::string(keys::kOrderRoutePrefix), std::string(keys::kClosedOrderPrefix),
            std::string(keys::kOrderPrefix),      std::string(keys::kTransferInFlightPrefix),
            std::string(keys::kClearingDaysKey),  std::string(keys::kDayClosedPrefix)};
  }
  std::string_view name() const override { return "payments"; }
  Status Apply(const fb::EventBody& event, KvWriter& view) const override {
    FoldErrors errors;
    FoldClearingDays(event, view, errors);
    switch (event.payload_type()) {
      case fb::Payload::OrderForwarded:
      case fb::Payload::CommandParked:
      case fb::Payload::OrderSettled:
        FoldOrderRoute(event, view, errors);
        break;
      case fb::Payload::TransferSent:
      case fb::Payload::TransferSettled:
        FoldTransferInFlight(event, view, errors);
        break;
      case fb::Payload::OrderCreated:
      case fb::Payload::OrderClosed:
        FoldOrder(event, view);
        break;
      case fb::Payload::PaymentCaptured: {
        const auto* paid = event.payload_as_PaymentCaptured();
        fb::PaymentRecordT payment;
        payment.customer = StringOf(paid->customer());
        payment.funding = paid->funding();
        payment.account = StringOf(paid->account());
        payment.channel = paid->channel();
        payment.medium = paid->medium();
        payment.medium_limited = paid->medium_limited();
        payment.order_amount_minor = paid->order_amount_minor();
        payment.card_amount_minor = paid->card_amount_minor();
        payment.points = paid->points();
        payment.points_value_minor = paid->points_value_minor();
        payment.coupon = StringOf(paid->coupon());
        payment.coupon_value_minor = paid->coupon_value_minor();
        payment.coupon_funded_by = paid->coupon_funded_by();
        payment.discount_minor = paid->discount_minor();
        payment.settlement_base_minor = paid->settlement_base_minor();
        payment.fee_minor = paid->fee_minor();
        payment.occurred_at_ns = event.occurred_at_ns();
        payment.clearing_date = paid->clearing_date();
        payment.limit_date = paid->limit_date();
        payment.status = fb::PaymentStatus::success;
        payment.transaction_id = StringOf(event.transaction_id());
        SaveRecord(view, keys::Payment(ViewOf(paid->merchant()), ViewOf(paid->merchant_order_no())), payment);
        break;
      }
      case fb::Payload::PaymentReversed: {
        const auto* reversed = event.payload_as_PaymentReversed();
        const std::string key =
            keys::Payment(ViewOf(reversed->merchant()), ViewOf(reversed->merchant_order_no()));
        fb::PaymentRecordT payment;
        errors.Require(LoadRecord(view, key, &payment), "reversal of an unknown payment");
        errors.Require(payment.status == fb::PaymentStatus::success,
                       "reversal of a payment not in status success");
        payment.status = fb::PaymentStatus::reversed;
        SaveRecord(view, key, payment);
        break;
      }
      case fb::Payload::PaymentRefunded: {
        const auto* refunded = event.payload_as_PaymentRefunded();
        const std::string key =
            keys::Payment(ViewOf(refunded->merchant()), ViewOf(refunded->merchant_order_no()));
        fb::PaymentRecordT payment;
        errors.Require(LoadRecord(view, key, &payment), "refund of an unknown payment");
        payment.refunded_amount_minor = errors.Add(payment.refunded_amount_minor, refunded->amount_minor());
        payment.refunded_card_minor = errors.Add(payment.refunded_card_minor, refunded->card_amount_minor());
        payment.refunded_points = errors.Add(payment.refunded_points, refunded->points());
        payment.refunded_points_value_minor =
            errors.Add(payment.refunded_points_value_minor, refunded->points_value_minor());
        payment.refunded_coupon_minor =
            errors.Add(payment.refunded_coupon_minor, refunded->coupon_value_minor());
        payment.refunded_discount_minor =
            errors.Add(payment.refunded_discount_minor, refunded->discount_minor());
        payment.refunded_fee_minor = errors.Add(payment.refunded_fee_minor, refunded->fee_minor());
        payment.refund_count += 1;
        errors.Require(payment.refunded_amount_minor <= payment.order_amount_minor,
                       "refunds exceed the payment");
        payment.status = payment.refunded_amount_minor == payment.order_amount_minor
                             ? fb::PaymentStatus::refunded
                             : fb::PaymentStatus::partially_refunded;
        SaveRecord(view, key, payment);
        fb::RefundRecordT refund;
        refund.merchant_order_no = StringOf(refunded->merchant_order_no());
        refund.transaction_id = StringOf(event.transaction_id());
        SaveRecord(view, keys::Refund(ViewOf(refunded->merchant()), ViewOf(refunded->refund_no())), refund);
        break;
      }
      default:
        break;
    }
    return errors.status();
  }
};

// Advances the leg number kept at `key` to `number`, which must be the next one.
void AdvanceLegMark(KvWriter& view, const std::string& key, uint64_t number, FoldErrors& errors) {
  fb::LegMarkRecordT mark;
  LoadRecord(view, key, &mark);
  errors.Require(number == mark.number + 1, "legs out of order");
  mark.number = number;
  SaveRecord(view, key, mark);
}

// The leg numbers an event sends or applies (events.fbs: legs).
void FoldLegMarks(const fb::EventBody& event, KvWriter& view, FoldErrors& errors) {
  if (const std::optional<AppliedLeg> applied = LegAppliedBy(event))
    AdvanceLegMark(view, keys::LegApplied(applied->source), applied->number, errors);
  if (const std::optional<LegAddress> sent = LegAddressOf(event))
    AdvanceLegMark(view, keys::LegSent(sent->destination), sent->number, errors);
}

// Whether `event` leaves its command waiting for another shard's answer.
bool LeavesCommandPending(const fb::EventBody& event) {
  return event.payload_type() == fb::Payload::OrderForwarded ||
         event.payload_type() == fb::Payload::CommandParked ||
         event.payload_type() == fb::Payload::TransferSent;
}

// Whether `event` carries the fingerprint `fingerprint`.
bool SameFingerprint(const fb::EventBody& event, const std::vector<uint8_t>& fingerprint) {
  return event.command_fingerprint() != nullptr &&
         std::equal(fingerprint.begin(), fingerprint.end(), event.command_fingerprint()->begin(),
                    event.command_fingerprint()->end());
}

// commands: the outcome of every command id, for idempotency, and the leg numbers sent and applied. The first
// transaction recorded for a command id is its outcome; later events with that id (a
// DUPLICATE_COMMAND_MISMATCH rejection) leave it alone. A pending outcome (forwarded, parked) is replaced by
// the next transaction of the same command; an OrderSettled gives the other shard's decision.
class CommandsProjector final : public Projector {
 public:
  std::vector<std::string> KeyPrefixes() const override {
    return {std::string(keys::kCommandOutcomePrefix), std::string(keys::kMismatchOutcomePrefix),
            std::string(keys::kLegSentPrefix), std::string(keys::kLegAppliedPrefix)};
  }
  std::string_view name() const override { return "commands"; }
  Status Apply(const fb::EventBody& event, KvWriter& view) const override {
    FoldErrors errors;
    FoldLegMarks(event, view, errors);
    // The payee's side of another shard's transfer is no outcome of that command here: its result is the
    // payer's shard's (a retry sent here is WRONG_SHARD, never a duplicate of the payee's half).
    if (event.payload_type() == fb::Payload::TransferReceived) return errors.status();
    const std::string key = keys::CommandOutcome(ViewOf(event.command_id()));
    const std::string transaction = StringOf(event.transaction_id());
    fb::CommandOutcomeRecordT outcome;
    const bool known = LoadRecord(view, key, &outcome);
    if (known && outcome.pending && outcome.transaction_id != transaction &&
        SameFingerprint(event, outcome.fingerprint)) {
      SaveRecord(view, key, NextOutcome(event, outcome.fingerprint));
      return errors.status();
    }
    if (known) {
      if (outcome.transaction_id != transaction) {
        // The id reused with other content: remember that content's own outcome, so sending the same
        // mismatching command again is a duplicate of it and records nothing new.
        if (event.command_fingerprint() == nullptr) return errors.status();
        fb::CommandOutcomeRecordT mismatch;
        mismatch.fingerprint.assign(event.command_fingerprint()->begin(), event.command_fingerprint()->end());
        mismatch.accepted = false;
        mismatch.reason = event.payload_type() == fb::Payload::CommandRejected
                              ? StringOf(event.payload_as_CommandRejected()->reason())
                              : std::string();
        mismatch.transaction_id = transaction;
        mismatch.sequences.push_back(event.sequence());
        SaveRecord(view, keys::MismatchOutcome(ViewOf(event.command_id()), ToHex(mismatch.fingerprint)),
                   mismatch);
        return errors.status();
      }
      outcome.sequences.push_back(event.sequence());
    } else {
      outcome = NextOutcome(event, BytesOf(event.command_fingerprint()));
    }
    SaveRecord(view, key, outcome);
    return errors.status();
  }

 private:
  // The outcome the first event of a transaction gives its command.
  static fb::CommandOutcomeRecordT NextOutcome(const fb::EventBody& event, std::vector<uint8_t> fingerprint) {
    fb::CommandOutcomeRecordT outcome;
    outcome.fingerprint = std::move(fingerprint);
    if (const auto* settled = event.payload_as_OrderSettled()) {
      outcome.accepted = settled->accepted();
      outcome.reason = StringOf(settled->reason());
      outcome.transaction_id = StringOf(settled->transaction_id());
      outcome.sequences = UlongsOf(settled->sequences());
      return outcome;
    }
    outcome.transaction_id = StringOf(event.transaction_id());
    outcome.sequences.push_back(event.sequence());
    if (const auto* settled = event.payload_as_TransferSettled()) {
      outcome.accepted = settled->accepted();
      outcome.reason = StringOf(settled->reason());
      return outcome;
    }
    outcome.pending = LeavesCommandPending(event);
    outcome.accepted = event.payload_type() != fb::Payload::CommandRejected;
    if (!outcome.accepted) outcome.reason = StringOf(event.payload_as_CommandRejected()->reason());
    return outcome;
  }
};

// checkpoints: one record per signed checkpoint, keyed by the checkpoint event's sequence, holding the
// sequence the checkpoint covers.
class CheckpointsProjector final : public Projector {
 public:
  std::vector<std::string> KeyPrefixes() const override { return {std::string(keys::kCheckpointPrefix)}; }
  std::string_view name() const override { return "checkpoints"; }
  Status Apply(const fb::EventBody& event, KvWriter& view) const override {
    FoldErrors errors;
    if (event.payload_type() != fb::Payload::CheckpointRecorded) return errors.status();
    fb::AppliedRecordT covered;
    covered.sequence = event.payload_as_CheckpointRecorded()->sequence();
    SaveRecord(view, keys::Checkpoint(event.sequence()), covered);
    return errors.status();
  }
};

}  // namespace

std::vector<std::unique_ptr<Projector>> MakeLedgerProjectors() {
  std::vector<std::unique_ptr<Projector>> projectors;
  projectors.push_back(std::make_unique<BalancesProjector>());
  projectors.push_back(std::make_unique<DirectoryProjector>());
  projectors.push_back(std::make_unique<LimitsProjector>());
  projectors.push_back(std::make_unique<PaymentsProjector>());
  projectors.push_back(std::make_unique<CommandsProjector>());
  projectors.push_back(std::make_unique<CheckpointsProjector>());
  projectors.push_back(MakeClearingProjector());
  return projectors;
}

Result<Digest> DigestOfPrefixes(const Store& store, const std::vector<std::string>& prefixes) {
  Sha256 hasher;
  for (const std::string& prefix : prefixes) {
    LEDGER_RETURN_IF_ERROR(store.ScanState(prefix, [&](std::string_view key, std::string_view value) {
      hasher.Update(SequenceKey(key.size()));
      hasher.Update(key);
      hasher.Update(SequenceKey(value.size()));
      hasher.Update(value);
      return true;
    }));
  }
  return hasher.Finish();
}

Result<std::vector<NamedDigest>> ProjectionDigests(
    const Store& store, const std::vector<std::unique_ptr<Projector>>& projectors) {
  std::vector<NamedDigest> digests;
  for (const auto& projector : projectors) {
    Result<Digest> digest = DigestOfPrefixes(store, projector->KeyPrefixes());
    if (!digest.ok()) return digest.status();
    digests.push_back(NamedDigest{std::string(projector->name()), *digest});
  }
  return digests;
}

Result<std::vector<SetDigest>> ProjectionSetDigests(
    const Store& store, const std::vector<std::unique_ptr<Projector>>& projectors) {
  std::vector<SetDigest> digests(projectors.size());
  for (size_t i = 0; i < projectors.size(); ++i) {
    for (const std::string& prefix : projectors[i]->KeyPrefixes()) {
      LEDGER_RETURN_IF_ERROR(store.ScanState(prefix, [&](std::string_view key, std::string_view value) {
        digests[i].Add(key, value);
        return true;
      }));
    }
  }
  return digests;
}

std::string SetDigestMetaKey(std::string_view projector) { return "set_digest/" + std::string(projector); }

std::string CheckpointMessageFor(uint16_t digest_format, uint32_t shard, uint64_t sequence,
                                 const Digest& chain_head, const std::vector<NamedDigest>& digests,
                                 int64_t signed_at_ns) {
  std::string message = CheckpointMessage(shard, sequence, chain_head, digests, signed_at_ns);
  if (digest_format == kDigestFormatOrdered) return message;
  // The domain tag is the message's first bytes: "ledger-checkpoint-v1" becomes "-v2" for set digests, so a
  // signature over one format can never verify as the other.
  constexpr std::string_view kOrderedTag = "ledger-checkpoint-v1";
  LEDGER_ASSERT(std::string_view(message).starts_with(kOrderedTag));
  message.replace(0, kOrderedTag.size(), "ledger-checkpoint-v" + std::to_string(digest_format));
  return message;
}

Result<std::vector<NamedDigest>> SignedDigestsOf(const fb::CheckpointRecorded& checkpoint) {
  std::vector<NamedDigest> signed_digests;
  if (checkpoint.digests() == nullptr) return signed_digests;
  for (const fb::ProjectionDigest* digest : *checkpoint.digests()) {
    NamedDigest named;
    named.name = digest->projector() == nullptr ? "" : digest->projector()->str();
    if (digest->digest() == nullptr || digest->digest()->size() != named.digest.size())
      return Status::InvalidArgument("checkpoint digest is not 32 bytes");
    std::copy_n(digest->digest()->data(), named.digest.size(), named.digest.begin());
    signed_digests.push_back(std::move(named));
  }
  return signed_digests;
}

Status CheckCheckpointSignature(const fb::CheckpointRecorded& checkpoint, const Digest& chain_head,
                                const SignatureVerifier& key) {
  const flatbuffers::Vector<uint8_t>* key_id = checkpoint.public_key_id();
  if (key_id == nullptr ||
      !std::equal(key_id->begin(), key_id->end(), key.public_key_id().begin(), key.public_key_id().end()))
    return Status::InvalidArgument("bad signature: checkpoint signed by another key");
  Result<std::vector<NamedDigest>> digests = SignedDigestsOf(checkpoint);
  if (!digests.ok()) return digests.status();
  const std::string message =
      CheckpointMessageFor(checkpoint.digest_format(), checkpoint.shard(), checkpoint.sequence(), chain_head,
                           *digests, checkpoint.signed_at_ns());
  if (checkpoint.signature() == nullptr ||
      !key.Verify(message,
                  std::span<const uint8_t>(checkpoint.signature()->data(), checkpoint.signature()->size())))
    return Status::InvalidArgument("bad signature on checkpoint");
  return Status::Ok();
}

bool IsLedgerCheckpointEnvelope(const fb::EventBody& event, const fb::CheckpointRecorded& checkpoint) {
  return event.command_id() != nullptr &&
         event.command_id()->string_view() == "checkpoint:" + std::to_string(checkpoint.sequence()) &&
         event.commands_offset() == -1 && event.shard() == checkpoint.shard();
}

ProjectionSet::ProjectionSet(std::vector<std::unique_ptr<Projector>> projectors)
    : projectors_(std::move(projectors)) {
  LEDGER_ASSERT(!projectors_.empty());
  for (size_t i = 0; i < projectors_.size(); ++i) {
    for (std::string& prefix : projectors_[i]->KeyPrefixes()) prefixes_.emplace_back(std::move(prefix), i);
  }
}

std::optional<size_t> ProjectionSet::OwnerOf(std::string_view key) const {
  for (const auto& [prefix, index] : prefixes_) {
    if (key.starts_with(prefix)) return index;
  }
  return std::nullopt;
}

Status ProjectionSet::Load(const KvReader& reader) {
  bool first = true;
  for (const auto& projector : projectors_) {
    std::string bytes;
    uint64_t applied = 0;
    if (reader.Get(keys::Applied(projector->name()), &bytes)) {
      if (bytes.size() != 8)
        return Status::Corruption("applied sequence of " + std::string(projector->name()) +
                                  " is not 8 bytes");
      applied = DecodeSequenceKey(bytes);
    }
    if (!first && applied != last_applied_) {
      return Status::Corruption("projectors disagree on the last applied sequence");
    }
    last_applied_ = applied;
    first = false;
  }
  return Status::Ok();
}

Status ProjectionSet::Apply(const fb::EventBody& event, KvWriter& view) {
  LEDGER_RETURN_IF_ERROR(ApplyUnrecorded(event, view));
  RecordApplied(view);
  return Status::Ok();
}

Status ProjectionSet::ApplyUnrecorded(const fb::EventBody& event, KvWriter& view) {
  if (event.sequence() != last_applied_ + 1) {
    return Status::Corruption("event sequence " + std::to_string(event.sequence()) + " does not follow " +
                              std::to_string(last_applied_));
  }
  for (const auto& projector : projectors_) LEDGER_RETURN_IF_ERROR(projector->Apply(event, view));
  last_applied_ = event.sequence();
  return Status::Ok();
}

void ProjectionSet::RecordApplied(KvWriter& view) const {
  const std::string sequence_bytes = SequenceKey(last_applied_);
  for (const auto& projector : projectors_) view.Put(keys::Applied(projector->name()), sequence_bytes);
}

std::vector<std::unique_ptr<Projector>> SelectProjectors(std::vector<std::unique_ptr<Projector>> all,
                                                         const std::vector<std::string>& names, bool keep) {
  std::vector<std::unique_ptr<Projector>> selected;
  for (auto& projector : all) {
    const bool named = std::find(names.begin(), names.end(), projector->name()) != names.end();
    if (named == keep) selected.push_back(std::move(projector));
  }
  return selected;
}

}  // namespace ledger
