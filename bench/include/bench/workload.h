// A deterministic generator of realistic command streams (customers, merchants, a day of payments with
// points, coupons, discounts, reversals, refunds, duplicates and rule breakers). Used by `ledger demo`,
// benchmarks and tests. Thread-safe (pure function of its arguments).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ledger::workload {

struct Shape {
  int customers = 2000;
  int merchants = 200;
  int payments = 20000;
  uint64_t seed = 20261125;
  // The business day in UTC+8 (yyyymmdd); payments spread over it, some refunds on the next day.
  int day = 20261125;
};

// Returns JSON command lines, in occurred_at order.
std::vector<std::string> MakeDay(const Shape& shape);

}  // namespace ledger::workload
