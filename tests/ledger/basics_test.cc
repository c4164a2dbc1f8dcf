// Goal: the foundations (money, time, hashing, the happy path of a payment) behave as documented.
#include <gtest/gtest.h>

#include <map>

#include "core/money.h"
#include "core/time.h"
#include "storage/kv.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using testing::TestLedger;

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

// A reader over a map, counting how often it is asked (to see what the cache answers itself).
class CountingReader final : public KvReader {
 public:
  bool Get(std::string_view key, std::string* value) const override {
    ++reads;
    auto it = values.find(std::string(key));
    if (it == values.end()) return false;
    *value = it->second;
    return true;
  }
  std::map<std::string, std::string> values;
  mutable int reads = 0;
};

TEST(CachedReader, ServesPresentAndAbsentKeysFollowsCommitsAndStaysWithinItsBound) {
  CountingReader base;
  base.values = {{"a", "1"}, {"b", "2"}};
  CachedReader cache(base, 4096);
  std::string value;
  ASSERT_TRUE(cache.Get("a", &value));
  EXPECT_EQ(value, "1");
  ASSERT_TRUE(cache.Get("a", &value));
  EXPECT_EQ(base.reads, 1) << "a second read of a present key is the cache's";
  EXPECT_FALSE(cache.Get("missing", &value));
  EXPECT_FALSE(cache.Get("missing", &value));
  EXPECT_EQ(base.reads, 2) << "an absent key is cached as absent";

  // A committed group: "a" changes, "b" (never read) changes, "a2" is new. The cache follows what it holds.
  Overlay group(cache);
  group.Put("a", "10");
  group.Put("b", "20");
  base.values["a"] = "10";
  base.values["b"] = "20";
  cache.Committed(group);
  ASSERT_TRUE(cache.Get("a", &value));
  EXPECT_EQ(value, "10");
  ASSERT_TRUE(cache.Get("b", &value));
  EXPECT_EQ(value, "20");
  Overlay deletion(cache);
  deletion.Delete("a");
  base.values.erase("a");
  cache.Committed(deletion);
  EXPECT_FALSE(cache.Get("a", &value)) << "a deleted key must not be served from the cache";
  // A key cached as absent and then written by a committed group is served with its value.
  Overlay creation(cache);
  creation.Put("missing", "now here");
  base.values["missing"] = "now here";
  cache.Committed(creation);
  const int reads_before = base.reads;
  ASSERT_TRUE(cache.Get("missing", &value))
      << "a key cached as absent must follow the commit that creates it";
  EXPECT_EQ(value, "now here");
  EXPECT_FALSE(cache.Get("a", &value));
  EXPECT_EQ(base.reads, reads_before) << "both answers come from the cache";

  // The bound: thousands of distinct keys never hold more than the capacity.
  for (int i = 0; i < 5000; ++i) base.values["k" + std::to_string(i)] = std::string(40, 'x');
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(cache.Get("k" + std::to_string(i), &value));
    ASSERT_LE(cache.bytes(), 4096u);
  }
  EXPECT_GT(cache.bytes(), 2048u) << "the cache is used up to its bound";
}

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
