// Goal: the happy path of a payment behaves as documented.
#include <gtest/gtest.h>

#include <map>

#include "support/test_support.h"

namespace ledger {
namespace {

using testing::TestLedger;

TEST(LedgerBasics, PaymentMovesMoneyAndBalancesSumToZero) {
  TestLedger ledger;
  ASSERT_EQ(ledger.Submit(testing::OpenAccount("a1", "C1")).kind, CommandResult::Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(testing::OpenMerchant("m1", "M1", 60)).kind, CommandResult::Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(testing::Deposit("d1", "C1:debit", 1'000'000)).kind,
            CommandResult::Kind::kAccepted);
  const CommandResult paid = ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000));
  ASSERT_EQ(paid.kind, CommandResult::Kind::kAccepted) << paid.reason;
  EXPECT_EQ(ledger.Balance("C1:debit"), 990'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 60);
  EXPECT_EQ(ledger.SumByUnit(), std::make_pair(int64_t{0}, int64_t{0}));
}

}  // namespace
}  // namespace ledger
