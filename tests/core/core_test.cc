// Goal: the foundations — money and time — behave as documented.
#include <gtest/gtest.h>

#include "core/money.h"
#include "core/time.h"

namespace ledger {
namespace {

TEST(Money, RoundHalfUpAndOverflow) {
  EXPECT_EQ(*MulDivRoundHalfUp(10000, 60, 10000), 60);
  EXPECT_EQ(*MulDivRoundHalfUp(9950, 60, 10000), 60);  // 59.7 -> 60
  EXPECT_EQ(*MulDivRoundHalfUp(9916, 60, 10000), 59);  // 59.496 -> 59
  EXPECT_EQ(*MulDivRoundHalfUp(25, 1, 10), 3);         // 2.5 -> 3
  EXPECT_FALSE(CheckedAdd(INT64_MAX, 1).has_value());
  EXPECT_FALSE(CheckedMul(INT64_MAX / 2 + 1, 2).has_value());
  EXPECT_EQ(FormatYuan(12345), "123.45");
  EXPECT_EQ(FormatYuan(-5), "-0.05");
}

TEST(Time, ParsesOffsetsAndComputesClearingDates) {
  const int64_t a = *ParseIso8601("2026-11-25T23:30:00+08:00");
  EXPECT_EQ(a, *ParseIso8601("2026-11-25T15:30:00Z"));
  EXPECT_EQ(LocalDate(a, 480), 20261125);
  EXPECT_EQ(ClearingDate(a, 480, 23 * 60), 20261126);  // after the 23:00 cut-off
  EXPECT_EQ(ClearingDate(*ParseIso8601("2026-11-25T22:59:59+08:00"), 480, 23 * 60), 20261125);
  EXPECT_EQ(ClearingDate(*ParseIso8601("2026-11-25T23:00:00+08:00"), 480, 23 * 60), 20261126);
  EXPECT_EQ(FormatIso8601(a, 480), "2026-11-25T23:30:00+08:00");
  EXPECT_FALSE(ParseIso8601("2026-11-25T23:30:00").ok());  // no offset
  EXPECT_FALSE(ParseIso8601("2026-02-30T00:00:00Z").ok());
}

}  // namespace
}  // namespace ledger
