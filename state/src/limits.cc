#include "state/limits.h"

#include <algorithm>

#include "state/keys.h"
#include "state/records.h"

namespace ledger {

MediumPolicy EffectiveMediumLimits(const LedgerConfig& config, const KvReader& state,
                                   std::string_view customer, fb::Medium medium) {
  MediumPolicy limits = config.medium_policy[static_cast<int>(medium)];
  fb::LimitOverrideRecordT custom;
  if (!LoadRecord(state, keys::LimitOverride(customer, medium), &custom)) return limits;
  auto lower = [](int64_t policy, int64_t own) {
    return own < 0 ? policy : policy < 0 ? own : std::min(policy, own);
  };
  limits.per_payment_minor = lower(limits.per_payment_minor, custom.per_payment_minor);
  limits.daily_minor = lower(limits.daily_minor, custom.daily_minor);
  limits.monthly_minor = lower(limits.monthly_minor, custom.monthly_minor);
  limits.daily_count = lower(limits.daily_count, custom.daily_count);
  return limits;
}

}  // namespace ledger
