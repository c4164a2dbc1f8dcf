// The trial balance: every balance summed per unit. Double entry keeps both sums at zero after every
// committed group; any other figure is a broken invariant (or a damaged store) that the caller reports.
// Thread-safety: reads a store, which may be read from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "core/status.h"
#include "schemas/state_generated.h"
#include "storage/store.h"

namespace ledger {

struct TrialBalance {
  // Sums as wide integers: a damaged store cannot overflow them into zero.
  __int128 cny_minor = 0;
  __int128 points = 0;
  int64_t accounts = 0;

  bool balanced() const { return cny_minor == 0 && points == 0; }
};

// Each balance record as it is summed (account id, record), for callers that also list the accounts.
using BalanceVisitor = std::function<void(std::string_view account, const fb::BalanceRecord& record)>;

// Sums every balance in `store`; `visit` (optional) sees each one in key order.
Result<TrialBalance> SumBalances(const Store& store, const BalanceVisitor& visit = nullptr);

}  // namespace ledger
