// Goal: the foundations (money, time, hashing, the happy path of a payment) behave as documented.
#include <gtest/gtest.h>

#include "ledger/money.h"
#include "ledger/time.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using testing::TestLedger;

TEST(Money, RoundHalfUpAndOverflow) {
  EXPECT_EQ(*MulDivRoundHalfUp(10000, 60, 10000), 60);
  EXPECT_EQ(*MulDivRoundHalfUp(9950, 60, 10000), 60);   // 59.7 -> 60
  EXPECT_EQ(*MulDivRoundHalfUp(9916, 60, 10000), 59);   // 59.496 -> 59
  EXPECT_EQ(*MulDivRoundHalfUp(25, 1, 10), 3);          // 2.5 -> 3
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

TEST(LedgerBasics, PaymentMovesMoneyAndBalancesSumToZero) {
  TestLedger ledger;
  ASSERT_EQ(ledger.Submit(testing::OpenAccount("a1", "C1")).kind, CommandResult::Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(testing::OpenMerchant("m1", "M1", 60)).kind, CommandResult::Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(testing::Deposit("d1", "C1:debit", 1'000'000)).kind, CommandResult::Kind::kAccepted);
  const CommandResult paid = ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000));
  ASSERT_EQ(paid.kind, CommandResult::Kind::kAccepted) << paid.reason;
  EXPECT_EQ(ledger.Balance("C1:debit"), 990'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 60);
  EXPECT_EQ(ledger.SumByUnit(), std::make_pair(int64_t{0}, int64_t{0}));
}

}  // namespace
}  // namespace ledger
