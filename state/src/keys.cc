#include "state/keys.h"

#include <cstdio>

#include "storage/store.h"

namespace ledger::keys {

// constinit: fixed before any other file's static initialisers run, whatever the link order.
constinit const std::string_view kBalancePrefix = "b/";
constinit const std::string_view kAccountPrefix = "a/";
constinit const std::string_view kCustomerPrefix = "cu/";
constinit const std::string_view kMerchantPrefix = "m/";
constinit const std::string_view kMerchantKeyPrefix = "mk/";
constinit const std::string_view kProducerKeyPrefix = "pk/";
constinit const std::string_view kCustomerMediumPrefix = "cm/";
constinit const std::string_view kPaymentCodePrefix = "pc/";
constinit const std::string_view kCouponPrefix = "c/";
constinit const std::string_view kLimitOverridePrefix = "l/";
constinit const std::string_view kDailyUsagePrefix = "ud/";
constinit const std::string_view kMonthlyUsagePrefix = "um/";
constinit const std::string_view kChannelDailyUsagePrefix = "uc/";
constinit const std::string_view kPaymentPrefix = "p/";
constinit const std::string_view kRefundPrefix = "r/";
constinit const std::string_view kCommandOutcomePrefix = "k/";
constinit const std::string_view kMismatchOutcomePrefix = "km/";
constinit const std::string_view kLegSentPrefix = "ls/";
constinit const std::string_view kLegAppliedPrefix = "lr/";
constinit const std::string_view kOrderRoutePrefix = "o/";
constinit const std::string_view kClosedOrderPrefix = "oc/";
constinit const std::string_view kOrderPrefix = "od/";
constinit const std::string_view kTransferInFlightPrefix = "tf/";
constinit const std::string_view kClearingDaysKey = "dc/days";
constinit const std::string_view kDayClosedPrefix = "dh/";
constinit const std::string_view kMerchantClearingPrefix = "xm/";
constinit const std::string_view kSchemeClearingPrefix = "xs/";
constinit const std::string_view kClearingLinePrefix = "xl/";
constinit const std::string_view kReconOrderPrefix = "xo/";
constinit const std::string_view kReconRefundPrefix = "xr/";
constinit const std::string_view kReconDateIndexPrefix = "xd/";
constinit const std::string_view kAppliedPrefix = "z/";
constinit const std::string_view kCheckpointPrefix = "ck/";

namespace {

std::string Join(std::string_view prefix, std::string_view a) { return std::string(prefix).append(a); }
std::string Join(std::string_view prefix, std::string_view a, std::string_view b) {
  return std::string(prefix).append(a).append("/").append(b);
}
std::string Join(std::string_view prefix, std::string_view a, std::string_view b, std::string_view c) {
  return Join(prefix, a, b).append("/").append(c);
}
constexpr std::string_view kPaymentLine = "o";
constexpr std::string_view kRefundLine = "r";

}  // namespace

std::string Balance(std::string_view account) { return Join(kBalancePrefix, account); }
std::string Account(std::string_view account) { return Join(kAccountPrefix, account); }
std::string Customer(std::string_view customer) { return Join(kCustomerPrefix, customer); }
std::string Merchant(std::string_view merchant) { return Join(kMerchantPrefix, merchant); }
std::string MerchantKey(std::string_view serial_no) { return Join(kMerchantKeyPrefix, serial_no); }
std::string ProducerKey(std::string_view key_id) { return Join(kProducerKeyPrefix, key_id); }
std::string PaymentCode(std::string_view payment_code) { return Join(kPaymentCodePrefix, payment_code); }
std::string CustomerMedium(std::string_view customer, fb::Medium medium) {
  return Join(kCustomerMediumPrefix, customer, fb::EnumNameMedium(medium));
}
std::string Coupon(std::string_view coupon) { return Join(kCouponPrefix, coupon); }
std::string LimitOverride(std::string_view customer, fb::Medium medium) {
  return Join(kLimitOverridePrefix, customer, fb::EnumNameMedium(medium));
}
std::string DailyUsage(std::string_view customer, fb::Medium medium, int yyyymmdd) {
  return Join(kDailyUsagePrefix, customer, fb::EnumNameMedium(medium), std::to_string(yyyymmdd));
}
std::string MonthlyUsage(std::string_view customer, fb::Medium medium, int yyyymm) {
  return Join(kMonthlyUsagePrefix, customer, fb::EnumNameMedium(medium), std::to_string(yyyymm));
}
std::string ChannelDailyUsage(std::string_view customer, fb::Channel channel, int yyyymmdd) {
  return Join(kChannelDailyUsagePrefix, customer, fb::EnumNameChannel(channel), std::to_string(yyyymmdd));
}
std::string ChannelDailyUsagePrefix(std::string_view customer) {
  return Join(kChannelDailyUsagePrefix, customer) + "/";
}
std::string Payment(std::string_view merchant, std::string_view merchant_order_no) {
  return Join(kPaymentPrefix, merchant, merchant_order_no);
}
std::string Refund(std::string_view merchant, std::string_view refund_no) {
  return Join(kRefundPrefix, merchant, refund_no);
}
std::string OrderRoute(std::string_view order) { return Join(kOrderRoutePrefix, order); }
std::string Order(std::string_view merchant, std::string_view merchant_order_no) {
  return Join(kOrderPrefix, merchant, merchant_order_no);
}

std::string ClosedOrder(std::string_view merchant, std::string_view merchant_order_no) {
  return Join(kClosedOrderPrefix, merchant, merchant_order_no);
}
std::string TransferInFlight(uint32_t destination, uint64_t number) {
  return Join(kTransferInFlightPrefix, std::to_string(destination), std::to_string(number));
}
std::string DayClosed(int yyyymmdd) {
  char date[16];
  std::snprintf(date, sizeof date, "%08d", yyyymmdd);  // zero-padded: key order is date order
  return Join(kDayClosedPrefix, date);
}
std::string LegSent(uint32_t shard) { return Join(kLegSentPrefix, std::to_string(shard)); }
std::string LegApplied(uint32_t shard) { return Join(kLegAppliedPrefix, std::to_string(shard)); }
std::string CommandOutcome(std::string_view command_id) { return Join(kCommandOutcomePrefix, command_id); }
std::string MismatchOutcome(std::string_view command_id, std::string_view fingerprint_hex) {
  return Join(kMismatchOutcomePrefix, command_id, fingerprint_hex);
}
std::string Applied(std::string_view projector) { return Join(kAppliedPrefix, projector); }
std::string Checkpoint(int64_t checkpoint_sequence) {
  return Join(kCheckpointPrefix, SequenceKey(static_cast<uint64_t>(checkpoint_sequence)));
}

std::string MerchantClearing(int date, std::string_view merchant) {
  return Join(kMerchantClearingPrefix, std::to_string(date), merchant);
}
std::string MerchantClearingPrefix(int date) {
  return Join(kMerchantClearingPrefix, std::to_string(date)) + "/";
}
std::string SchemeClearing(int date, std::string_view scheme) {
  return Join(kSchemeClearingPrefix, std::to_string(date), scheme);
}
std::string SchemeClearingPrefix(int date) { return Join(kSchemeClearingPrefix, std::to_string(date)) + "/"; }
std::string ClearingLinePrefix(int date, std::string_view merchant) {
  return Join(kClearingLinePrefix, std::to_string(date), merchant) + "/";
}
std::string ClearingLine(int date, std::string_view merchant, int64_t sequence) {
  return ClearingLinePrefix(date, merchant) + SequenceKey(static_cast<uint64_t>(sequence));
}
std::string ReconOrder(std::string_view merchant, std::string_view order_no) {
  return Join(kReconOrderPrefix, merchant, order_no);
}
std::string ReconRefund(std::string_view merchant, std::string_view refund_no) {
  return Join(kReconRefundPrefix, merchant, refund_no);
}
std::string ReconDateIndexPrefix(int date, std::string_view merchant) {
  std::string prefix = Join(kReconDateIndexPrefix, std::to_string(date)) + "/";
  if (!merchant.empty()) prefix.append(merchant).append("/");
  return prefix;
}
std::string ReconDateIndex(int date, std::string_view merchant, ReconLineKind kind, std::string_view id) {
  return ReconDateIndexPrefix(date, merchant)
      .append(kind == ReconLineKind::kPayment ? kPaymentLine : kRefundLine)
      .append("/")
      .append(id);
}

std::optional<ReconDateIndexEntry> ParseReconDateIndex(int date, std::string_view key) {
  const std::string prefix = ReconDateIndexPrefix(date);
  if (!key.starts_with(prefix)) return std::nullopt;
  const std::string_view rest = key.substr(prefix.size());  // <merchant>/<o|r>/<id>
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || rest.size() < slash + 4 || rest[slash + 2] != '/') {
    return std::nullopt;
  }
  const std::string_view kind = rest.substr(slash + 1, 1);
  if (kind != kPaymentLine && kind != kRefundLine) return std::nullopt;
  return ReconDateIndexEntry{std::string(rest.substr(0, slash)),
                             kind == kPaymentLine ? ReconLineKind::kPayment : ReconLineKind::kRefund,
                             std::string(rest.substr(slash + 3))};
}

std::string CommandsOffsetMeta(uint32_t partition) { return "commands_offset/" + std::to_string(partition); }
std::string LegsOffsetMeta(uint32_t partition) { return "legs_offset/" + std::to_string(partition); }

}  // namespace ledger::keys
