#include "state/records.h"

#include <algorithm>
#include <cstdio>

#include "core/assert.h"
#include "core/money.h"

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
