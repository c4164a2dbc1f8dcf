// The clearing projector. Its keys are in state/keys.h. Every amount here comes from the events; the
// projector only reads its own records (for a reversal or refund, the payment's line).
#include "projections/clearing.h"

#include <algorithm>
#include <iterator>

#include "core/money.h"
#include "state/records.h"
#include "storage/store.h"

namespace ledger {
namespace {

// Adds one line's effect to what an interbank scheme owes for a clearing date (own-account funding has none).
void AddToScheme(KvWriter& view, FoldErrors& errors, int date, fb::Funding funding, int64_t payments,
                 int64_t payment_count, int64_t reversals, int64_t refunds) {
  if (funding == fb::Funding::own_account) return;
  const std::string key = keys::SchemeClearing(date, fb::EnumNameFunding(funding));
  fb::SchemeClearingRecordT scheme;
  LoadRecord(view, key, &scheme);
  scheme.payment_count += payment_count;
  scheme.payments_minor = errors.Add(scheme.payments_minor, payments);
  scheme.reversals_minor = errors.Add(scheme.reversals_minor, reversals);
  scheme.refunds_minor = errors.Add(scheme.refunds_minor, refunds);
  scheme.net_owed_minor = errors.Add(scheme.net_owed_minor, payments - reversals - refunds);
  SaveRecord(view, key, scheme);
}

class ClearingProjector final : public Projector {
 public:
  std::string_view name() const override { return "clearing"; }
  std::vector<std::string> KeyPrefixes() const override {
    return {std::string(keys::kReconDateIndexPrefix),   std::string(keys::kClearingLinePrefix),
            std::string(keys::kMerchantClearingPrefix), std::string(keys::kReconOrderPrefix),
            std::string(keys::kReconRefundPrefix),      std::string(keys::kSchemeClearingPrefix)};
  }

  Status Apply(const fb::EventBody& event, KvWriter& view) const override {
    FoldErrors errors;
    switch (event.payload_type()) {
      case fb::Payload::PaymentCaptured:
        Payment(event, *event.payload_as_PaymentCaptured(), view, errors);
        break;
      case fb::Payload::PaymentReversed:
        Reversal(event, *event.payload_as_PaymentReversed(), view, errors);
        break;
      case fb::Payload::PaymentRefunded:
        Refund(event, *event.payload_as_PaymentRefunded(), view, errors);
        break;
      default:
        break;
    }
    return errors.status();
  }

 private:
  static void Payment(const fb::EventBody& event, const fb::PaymentCaptured& paid, KvWriter& view,
                      FoldErrors& errors) {
    const std::string merchant = StringOf(paid.merchant());
    const std::string order = StringOf(paid.merchant_order_no());
    const int date = paid.clearing_date();
    fb::MerchantClearingRecordT summary;
    const std::string summary_key = keys::MerchantClearing(date, merchant);
    LoadRecord(view, summary_key, &summary);
    summary.payment_count += 1;
    summary.order_amount_minor = errors.Add(summary.order_amount_minor, paid.order_amount_minor());
    int64_t* funding_total[] = {&summary.own_account_minor, &summary.other_bank_minor, &summary.wechat_minor,
                                &summary.unionpay_minor};
    const auto funding = static_cast<size_t>(paid.funding());
    errors.Require(funding < std::size(funding_total), "payment with an unknown funding source");
    int64_t& by_funding = *funding_total[std::min(funding, std::size(funding_total) - 1)];
    by_funding = errors.Add(by_funding, paid.card_amount_minor());
    summary.points_value_minor = errors.Add(summary.points_value_minor, paid.points_value_minor());
    int64_t& coupon = paid.coupon_funded_by() == fb::FundedBy::merchant ? summary.coupon_merchant_minor
                                                                        : summary.coupon_bank_minor;
    coupon = errors.Add(coupon, paid.coupon_value_minor());
    summary.discount_minor = errors.Add(summary.discount_minor, paid.discount_minor());
    summary.settlement_base_minor = errors.Add(summary.settlement_base_minor, paid.settlement_base_minor());
    summary.fee_minor = errors.Add(summary.fee_minor, paid.fee_minor());
    summary.net_settlement_minor =
        errors.Add(summary.net_settlement_minor, paid.settlement_base_minor() - paid.fee_minor());
    SaveRecord(view, summary_key, summary);
    AddToScheme(view, errors, date, paid.funding(), paid.card_amount_minor(), 1, 0, 0);
    fb::ClearingLineRecordT line;
    line.kind = fb::ClearingLineKind::payment;
    line.merchant_order_no = order;
    line.occurred_at_ns = event.occurred_at_ns();
    line.funding = paid.funding();
    line.order_amount_minor = paid.order_amount_minor();
    line.card_amount_minor = paid.card_amount_minor();
    line.points_value_minor = paid.points_value_minor();
    line.coupon_value_minor = paid.coupon_value_minor();
    line.coupon_funded_by = paid.coupon_funded_by();
    line.discount_minor = paid.discount_minor();
    line.amount_minor = paid.order_amount_minor();
    line.settlement_minor = paid.settlement_base_minor();
    line.fee_minor = paid.fee_minor();
    line.transaction_id = StringOf(event.transaction_id());
    SaveRecord(view, keys::ClearingLine(date, merchant, event.sequence()), line);
    fb::ReconLineRecordT recon;
    recon.kind = fb::ClearingLineKind::payment;
    recon.merchant_order_no = order;
    recon.status = fb::PaymentStatus::success;
    recon.amount_minor = paid.order_amount_minor();
    recon.fee_minor = paid.fee_minor();
    recon.clearing_date = date;
    recon.occurred_at_ns = event.occurred_at_ns();
    recon.funding = paid.funding();
    recon.card_amount_minor = paid.card_amount_minor();
    recon.settlement_minor = paid.settlement_base_minor();
    SaveRecord(view, keys::ReconOrder(merchant, order), recon);
    view.Put(keys::ReconDateIndex(date, merchant, keys::ReconLineKind::kPayment, order), "");
  }

  static void Reversal(const fb::EventBody& event, const fb::PaymentReversed& reversed, KvWriter& view,
                       FoldErrors& errors) {
    const std::string merchant = StringOf(reversed.merchant());
    const std::string order = StringOf(reversed.merchant_order_no());
    const int date = reversed.clearing_date();
    fb::ReconLineRecordT payment;
    errors.Require(LoadRecord(view, keys::ReconOrder(merchant, order), &payment),
                   "reversal of an unknown payment");
    fb::MerchantClearingRecordT summary;
    const std::string summary_key = keys::MerchantClearing(date, merchant);
    LoadRecord(view, summary_key, &summary);
    summary.reversal_count += 1;
    summary.reversal_amount_minor = errors.Add(summary.reversal_amount_minor, reversed.order_amount_minor());
    summary.reversal_settlement_minor =
        errors.Add(summary.reversal_settlement_minor, payment.settlement_minor);
    summary.reversal_fee_minor = errors.Add(summary.reversal_fee_minor, reversed.fee_minor());
    summary.net_settlement_minor =
        errors.Add(summary.net_settlement_minor, -(payment.settlement_minor - reversed.fee_minor()));
    SaveRecord(view, summary_key, summary);
    AddToScheme(view, errors, date, payment.funding, 0, 0, reversed.card_amount_minor(), 0);
    fb::ClearingLineRecordT line;
    line.kind = fb::ClearingLineKind::reversal;
    line.merchant_order_no = order;
    line.occurred_at_ns = event.occurred_at_ns();
    line.funding = payment.funding;
    line.order_amount_minor = reversed.order_amount_minor();
    line.card_amount_minor = reversed.card_amount_minor();
    line.points_value_minor = reversed.points_value_minor();
    line.coupon_value_minor = reversed.coupon_value_minor();
    line.discount_minor = reversed.discount_minor();
    line.amount_minor = reversed.order_amount_minor();
    line.settlement_minor = -payment.settlement_minor;
    line.fee_minor = -reversed.fee_minor();
    line.transaction_id = StringOf(event.transaction_id());
    SaveRecord(view, keys::ClearingLine(date, merchant, event.sequence()), line);
    payment.status = fb::PaymentStatus::reversed;
    SaveRecord(view, keys::ReconOrder(merchant, order), payment);
  }

  static void Refund(const fb::EventBody& event, const fb::PaymentRefunded& refunded, KvWriter& view,
                     FoldErrors& errors) {
    const std::string merchant = StringOf(refunded.merchant());
    const std::string order = StringOf(refunded.merchant_order_no());
    const std::string refund_no = StringOf(refunded.refund_no());
    const int date = refunded.clearing_date();
    fb::ReconLineRecordT payment;
    errors.Require(LoadRecord(view, keys::ReconOrder(merchant, order), &payment),
                   "refund of an unknown payment");
    fb::MerchantClearingRecordT summary;
    const std::string summary_key = keys::MerchantClearing(date, merchant);
    LoadRecord(view, summary_key, &summary);
    summary.refund_count += 1;
    summary.refund_amount_minor = errors.Add(summary.refund_amount_minor, refunded.amount_minor());
    summary.refund_settlement_minor =
        errors.Add(summary.refund_settlement_minor, refunded.settlement_minor());
    summary.refund_fee_minor = errors.Add(summary.refund_fee_minor, refunded.fee_minor());
    summary.net_settlement_minor =
        errors.Add(summary.net_settlement_minor, -(refunded.settlement_minor() - refunded.fee_minor()));
    SaveRecord(view, summary_key, summary);
    AddToScheme(view, errors, date, payment.funding, 0, 0, 0, refunded.card_amount_minor());
    fb::ClearingLineRecordT line;
    line.kind = fb::ClearingLineKind::refund;
    line.merchant_order_no = order;
    line.refund_no = refund_no;
    line.occurred_at_ns = event.occurred_at_ns();
    line.funding = payment.funding;
    line.order_amount_minor = payment.amount_minor;
    line.card_amount_minor = refunded.card_amount_minor();
    line.points_value_minor = refunded.points_value_minor();
    line.coupon_value_minor = refunded.coupon_value_minor();
    line.discount_minor = refunded.discount_minor();
    line.amount_minor = refunded.amount_minor();
    line.settlement_minor = -refunded.settlement_minor();
    line.fee_minor = -refunded.fee_minor();
    line.transaction_id = StringOf(event.transaction_id());
    SaveRecord(view, keys::ClearingLine(date, merchant, event.sequence()), line);
    payment.refunded_minor = errors.Add(payment.refunded_minor, refunded.amount_minor());
    payment.status = payment.refunded_minor == payment.amount_minor ? fb::PaymentStatus::refunded
                                                                    : fb::PaymentStatus::partially_refunded;
    SaveRecord(view, keys::ReconOrder(merchant, order), payment);
    fb::ReconLineRecordT refund;
    refund.kind = fb::ClearingLineKind::refund;
    refund.merchant_order_no = order;
    refund.refund_no = refund_no;
    refund.status = fb::PaymentStatus::refunded;
    refund.amount_minor = refunded.amount_minor();
    refund.fee_minor = refunded.fee_minor();
    refund.clearing_date = date;
    refund.occurred_at_ns = event.occurred_at_ns();
    refund.funding = payment.funding;
    refund.card_amount_minor = refunded.card_amount_minor();
    refund.settlement_minor = refunded.settlement_minor();
    SaveRecord(view, keys::ReconRefund(merchant, refund_no), refund);
    view.Put(keys::ReconDateIndex(date, merchant, keys::ReconLineKind::kRefund, refund_no), "");
  }
};

}  // namespace

std::unique_ptr<Projector> MakeClearingProjector() { return std::make_unique<ClearingProjector>(); }

}  // namespace ledger
