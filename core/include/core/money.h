// Money arithmetic: int64 minor units (fen), checked; never floating point. Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ledger {

// The largest integer every JSON reader keeps exact (2^53 - 1); larger amounts are INVALID_AMOUNT.
inline constexpr int64_t kAmountMinorMax = (int64_t{1} << 53) - 1;

// Returns a + b, or nullopt on int64 overflow.
std::optional<int64_t> CheckedAdd(int64_t a, int64_t b);
// Returns a - b, or nullopt on int64 overflow.
std::optional<int64_t> CheckedSub(int64_t a, int64_t b);
// Returns a * b, or nullopt on int64 overflow.
std::optional<int64_t> CheckedMul(int64_t a, int64_t b);
// Returns round_half_up(a * b / divisor) for a, b >= 0 and divisor > 0, or nullopt on overflow.
std::optional<int64_t> MulDivRoundHalfUp(int64_t a, int64_t b, int64_t divisor);
// Returns floor(a * b / divisor) for a, b >= 0 and divisor > 0, or nullopt on overflow.
std::optional<int64_t> MulDivFloor(int64_t a, int64_t b, int64_t divisor);

// Formats fen as yuan with two decimals: 12345 -> "123.45", -5 -> "-0.05".
std::string FormatYuan(int64_t amount_minor);

}  // namespace ledger
