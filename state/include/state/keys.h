// Every key of the `state` column family: its prefix, its encoder and, where a reader walks an index, its
// decoder. This header is the one place a key layout is written down; projectors own disjoint prefixes
// (projections/projector.h: KeyPrefixes) and everything else reads through these functions.
//   b/<account>                               BalanceRecord                   balances
//   a/<account> cu/<customer> m/<merchant>    directory records               directory
//   c/<coupon> l/<customer>/<medium>          coupon, customer limit override directory
//   mk/<serial_no>                             a merchant's request-signing key directory
//   cm/<customer>/<medium>                     a customer's enrolled medium      directory
//   pc/<payment code id>                       a customer's payment code         directory
//   ud/ um/ uc/<customer>/<medium|channel>/<date>   usage windows            limits
//   p/<merchant>/<order> r/<merchant>/<refund>      payment, refund           payments
//   k/<command id> km/<command id>/<fingerprint>    command outcomes          outcomes
//   ls/<shard> lr/<shard>                            legs sent to, applied from commands
//   o/<merchant>/<order>                             where an order's commands go payments
//   oc/<merchant>/<order>                            an order closed by a reversal payments
//   od/<merchant>/<order>                            an order waiting for its customer payments
//   xm/ xs/ xl/ xo/ xr/ xd/ (see below)             clearing and reconciliation views   clearing
//   ck/<sequence>                                    a signed checkpoint        checkpoints
//   z/<projector>                                    a projector's last applied sequence
// Thread-safe (pure functions).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "schemas/state_generated.h"

namespace ledger::keys {

// Prefixes, for scans and for the projectors' declarations of what they own (values in state/src/keys.cc,
// the one place a key literal is written).
extern const std::string_view kBalancePrefix;
extern const std::string_view kAccountPrefix;
extern const std::string_view kCustomerPrefix;
extern const std::string_view kMerchantPrefix;
extern const std::string_view kMerchantKeyPrefix;
extern const std::string_view kProducerKeyPrefix;
extern const std::string_view kCustomerMediumPrefix;
extern const std::string_view kPaymentCodePrefix;
extern const std::string_view kCouponPrefix;
extern const std::string_view kLimitOverridePrefix;
extern const std::string_view kDailyUsagePrefix;
extern const std::string_view kMonthlyUsagePrefix;
extern const std::string_view kChannelDailyUsagePrefix;
extern const std::string_view kPaymentPrefix;
extern const std::string_view kRefundPrefix;
extern const std::string_view kCommandOutcomePrefix;
extern const std::string_view kMismatchOutcomePrefix;
extern const std::string_view kLegSentPrefix;
extern const std::string_view kLegAppliedPrefix;
extern const std::string_view kOrderRoutePrefix;
extern const std::string_view kClosedOrderPrefix;
extern const std::string_view kOrderPrefix;
extern const std::string_view kTransferInFlightPrefix;
// the shard's clearing days (one record; its own prefix)
extern const std::string_view kClearingDaysKey;
// each DayClosed, keyed by the date it closed through (8 digits)
extern const std::string_view kDayClosedPrefix;
extern const std::string_view kMerchantClearingPrefix;
extern const std::string_view kSchemeClearingPrefix;
extern const std::string_view kClearingLinePrefix;
extern const std::string_view kReconOrderPrefix;
extern const std::string_view kReconRefundPrefix;
extern const std::string_view kReconDateIndexPrefix;
extern const std::string_view kAppliedPrefix;
extern const std::string_view kCheckpointPrefix;

// balances
std::string Balance(std::string_view account);
// directory
std::string Account(std::string_view account);
std::string Customer(std::string_view customer);
std::string Merchant(std::string_view merchant);
std::string MerchantKey(std::string_view serial_no);
std::string ProducerKey(std::string_view key_id);
std::string CustomerMedium(std::string_view customer, fb::Medium medium);
std::string PaymentCode(std::string_view payment_code);
std::string Coupon(std::string_view coupon);
std::string LimitOverride(std::string_view customer, fb::Medium medium);
// limits (usage)
std::string DailyUsage(std::string_view customer, fb::Medium medium, int yyyymmdd);
std::string MonthlyUsage(std::string_view customer, fb::Medium medium, int yyyymm);
std::string ChannelDailyUsage(std::string_view customer, fb::Channel channel, int yyyymmdd);
// Every channel usage window of a customer ("uc/<customer>/").
std::string ChannelDailyUsagePrefix(std::string_view customer);
// payments
std::string Payment(std::string_view merchant, std::string_view merchant_order_no);
std::string Refund(std::string_view merchant, std::string_view refund_no);
// the route of an order whose commands another shard decides; `order` is "merchant/order_no"
std::string OrderRoute(std::string_view order);
// an order a reversal closed before it was paid
std::string ClosedOrder(std::string_view merchant, std::string_view merchant_order_no);
// an order created to wait for its customer (create_order)
std::string Order(std::string_view merchant, std::string_view merchant_order_no);
// the DayClosed that closed every date through `yyyymmdd` (ClearingDaysRecord, its sequence)
std::string DayClosed(int yyyymmdd);
// a transfer sent to shard `destination` as leg `number`, not settled yet
std::string TransferInFlight(uint32_t destination, uint64_t number);
// commands (idempotency)
std::string CommandOutcome(std::string_view command_id);
// The outcome of a reused command id with other content, per content (fingerprint in hex).
std::string MismatchOutcome(std::string_view command_id, std::string_view fingerprint_hex);
// legs: the last number sent to shard `shard`, and the last applied from it
std::string LegSent(uint32_t shard);
std::string LegApplied(uint32_t shard);
// each projector's last applied sequence
std::string Applied(std::string_view projector);
// a signed checkpoint, keyed by its event's sequence (8 bytes big-endian), holding the sequence it covers
std::string Checkpoint(int64_t checkpoint_sequence);

// Clearing views, keyed by clearing date (yyyymmdd):
//   xm/<date>/<merchant>                 MerchantClearingRecord
//   xs/<date>/<scheme>                   SchemeClearingRecord (scheme: other_bank, wechat, unionpay)
//   xl/<date>/<merchant>/<sequence>      ClearingLineRecord (sequence: 8 bytes big-endian, file order)
//   xo/<merchant>/<merchant_order_no>    ReconLineRecord of the payment (status kept current)
//   xr/<merchant>/<refund_no>            ReconLineRecord of the refund
//   xd/<date>/<merchant>/<o|r>/<id>      index of reconciliation lines by clearing date (empty value)
std::string MerchantClearing(int date, std::string_view merchant);
// Every merchant's summary of a date ("xm/<date>/"; the merchant follows it).
std::string MerchantClearingPrefix(int date);
std::string SchemeClearing(int date, std::string_view scheme);
// Every scheme's summary of a date ("xs/<date>/"; the scheme follows it).
std::string SchemeClearingPrefix(int date);
std::string ClearingLinePrefix(int date, std::string_view merchant);
std::string ClearingLine(int date, std::string_view merchant, int64_t sequence);
std::string ReconOrder(std::string_view merchant, std::string_view order_no);
std::string ReconRefund(std::string_view merchant, std::string_view refund_no);
// All index entries of a date, or of one merchant on that date when `merchant` is not empty.
std::string ReconDateIndexPrefix(int date, std::string_view merchant = {});
enum class ReconLineKind { kPayment, kRefund };
std::string ReconDateIndex(int date, std::string_view merchant, ReconLineKind kind, std::string_view id);
struct ReconDateIndexEntry {
  std::string merchant;
  ReconLineKind kind = ReconLineKind::kPayment;
  std::string id;  // merchant_order_no or refund_no
};
// Decodes an index key of `date`; nullopt when it is not one (a damaged or forged state).
std::optional<ReconDateIndexEntry> ParseReconDateIndex(int date, std::string_view key);

// The `meta` key holding the next ledger.commands offset of `partition` serve reads (written with each group,
// and by `restore` from the offsets the events record).
std::string CommandsOffsetMeta(uint32_t partition);
// The `meta` key holding the next ledger.legs offset of `partition` serve reads (written with each group).
std::string LegsOffsetMeta(uint32_t partition);
// The `meta` key holding how many shards the ledger had when serve first committed to this store.
inline constexpr char kShardsMeta[] = "shards";

}  // namespace ledger::keys
