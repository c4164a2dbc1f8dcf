// The effective-limit rule: the limits in force for a customer and medium are the bank's policy
// (LedgerConfig::medium_policy), each one lowered by the customer's own setting (a CustomerLimitSet, stored
// at keys::LimitOverride) where that is lower. A customer can tighten a limit, never loosen it; kNoLimit (-1)
// on either side means that side sets no bound. Thread-safe (a pure function of its arguments).
#pragma once

#include <string_view>

#include "core/config.h"
#include "schemas/state_generated.h"
#include "storage/kv.h"

namespace ledger {

MediumPolicy EffectiveMediumLimits(const LedgerConfig& config, const KvReader& state,
                                   std::string_view customer, fb::Medium medium);

}  // namespace ledger
