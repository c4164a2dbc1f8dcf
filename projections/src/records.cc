#include "projections/records.h"

#include <algorithm>
#include <cstdio>

#include "ledger/assert.h"
#include "ledger/money.h"

namespace ledger::keys {

std::string LimitOverride(std::string_view customer, fb::Medium medium) {
  return "l/" + std::string(customer) + "/" + fb::EnumNameMedium(medium);
}

std::string DailyUsage(std::string_view customer, fb::Medium medium, int yyyymmdd) {
  return "ud/" + std::string(customer) + "/" + fb::EnumNameMedium(medium) + "/" + std::to_string(yyyymmdd);
}

std::string MonthlyUsage(std::string_view customer, fb::Medium medium, int yyyymm) {
  return "um/" + std::string(customer) + "/" + fb::EnumNameMedium(medium) + "/" + std::to_string(yyyymm);
}

std::string ChannelDailyUsage(std::string_view customer, fb::Channel channel, int yyyymmdd) {
  return "uc/" + std::string(customer) + "/" + fb::EnumNameChannel(channel) + "/" + std::to_string(yyyymmdd);
}

std::string Payment(std::string_view merchant, std::string_view merchant_order_no) {
  return "p/" + std::string(merchant) + "/" + std::string(merchant_order_no);
}

std::string Refund(std::string_view merchant, std::string_view refund_no) {
  return "r/" + std::string(merchant) + "/" + std::string(refund_no);
}

}  // namespace ledger::keys

namespace ledger {

int64_t FoldErrors::Add(int64_t a, int64_t b) {
  const std::optional<int64_t> sum = CheckedAdd(a, b);
  Require(sum.has_value(), "an amount overflows 64 bits");
  return sum.value_or(a);
}

void FoldErrors::Require(bool condition, std::string_view what) {
  if (!condition && first_.empty()) first_ = what;
}

Status FoldErrors::status() const { return first_.empty() ? Status::Ok() : Status::Corruption(first_); }

MediumPolicy EffectiveMediumLimits(const LedgerConfig& config, const KvReader& state, std::string_view customer,
                                   fb::Medium medium) {
  MediumPolicy limits = config.medium_policy[static_cast<int>(medium)];
  fb::LimitOverrideRecordT custom;
  if (!LoadRecord(state, keys::LimitOverride(customer, medium), &custom)) return limits;
  auto lower = [](int64_t policy, int64_t own) { return own < 0 ? policy : policy < 0 ? own : std::min(policy, own); };
  limits.per_payment_minor = lower(limits.per_payment_minor, custom.per_payment_minor);
  limits.daily_minor = lower(limits.daily_minor, custom.daily_minor);
  limits.monthly_minor = lower(limits.monthly_minor, custom.monthly_minor);
  limits.daily_count = lower(limits.daily_count, custom.daily_count);
  return limits;
}

}  // namespace ledger
