#include "state/trial_balance.h"

#include "state/keys.h"

namespace ledger {

Result<TrialBalance> SumBalances(const Store& store, const BalanceVisitor& visit) {
  TrialBalance total;
  const Status scanned =
      store.ScanState(keys::kBalancePrefix, [&](std::string_view key, std::string_view value) {
        const auto* record = flatbuffers::GetRoot<fb::BalanceRecord>(value.data());
        (record->unit() == fb::Unit::CNY ? total.cny_minor : total.points) += record->balance_minor();
        total.accounts += 1;
        if (visit) visit(key.substr(keys::kBalancePrefix.size()), *record);
        return true;
      });
  if (!scanned.ok()) return scanned;
  return total;
}

}  // namespace ledger
