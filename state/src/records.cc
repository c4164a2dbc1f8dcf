#include "state/records.h"

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

}  // namespace ledger
