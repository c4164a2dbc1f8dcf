// The state schema: key encoders and the reconciliation-index decoder (state/keys.h), the trial balance
// (state/trial_balance.h) and the effective-limit rule (state/limits.h).
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "state/keys.h"
#include "state/limits.h"
#include "state/records.h"
#include "state/trial_balance.h"
#include "storage/kv.h"
#include "storage/store.h"
#include "support/test_support.h"

namespace ledger {
namespace {

constexpr int kDate = 20261125;

// --- keys ---

std::vector<std::string_view> AllPrefixes() {
  return {keys::kBalancePrefix,         keys::kAccountPrefix,          keys::kCustomerPrefix,
          keys::kMerchantPrefix,        keys::kCouponPrefix,           keys::kLimitOverridePrefix,
          keys::kDailyUsagePrefix,      keys::kMonthlyUsagePrefix,     keys::kChannelDailyUsagePrefix,
          keys::kPaymentPrefix,         keys::kRefundPrefix,           keys::kCommandOutcomePrefix,
          keys::kMismatchOutcomePrefix, keys::kMerchantClearingPrefix, keys::kSchemeClearingPrefix,
          keys::kClearingLinePrefix,    keys::kReconOrderPrefix,       keys::kReconRefundPrefix,
          keys::kReconDateIndexPrefix,  keys::kAppliedPrefix,          keys::kCheckpointPrefix,
          keys::kClosedOrderPrefix,     keys::kLegSentPrefix,          keys::kLegAppliedPrefix,
          keys::kOrderRoutePrefix};
}

// A scan by one prefix must never see another kind of record.
TEST(StateKeys, NoPrefixIsTheStartOfAnother) {
  const std::vector<std::string_view> prefixes = AllPrefixes();
  for (size_t i = 0; i < prefixes.size(); ++i) {
    EXPECT_TRUE(prefixes[i].ends_with('/')) << prefixes[i];
    for (size_t j = 0; j < prefixes.size(); ++j) {
      if (i == j) continue;
      EXPECT_FALSE(prefixes[j].starts_with(prefixes[i])) << prefixes[i] << " / " << prefixes[j];
    }
  }
}

// Each encoder writes under its own prefix.
TEST(StateKeys, EveryEncoderWritesUnderItsPrefix) {
  const std::pair<std::string, std::string_view> encoded[] = {
      {keys::Balance("C1:debit"), keys::kBalancePrefix},
      {keys::Account("C1:debit"), keys::kAccountPrefix},
      {keys::Customer("C1"), keys::kCustomerPrefix},
      {keys::Merchant("M1"), keys::kMerchantPrefix},
      {keys::Coupon("K1"), keys::kCouponPrefix},
      {keys::LimitOverride("C1", fb::Medium::sms), keys::kLimitOverridePrefix},
      {keys::DailyUsage("C1", fb::Medium::sms, kDate), keys::kDailyUsagePrefix},
      {keys::MonthlyUsage("C1", fb::Medium::sms, kDate / 100), keys::kMonthlyUsagePrefix},
      {keys::ChannelDailyUsage("C1", fb::Channel::qr_static, kDate), keys::kChannelDailyUsagePrefix},
      {keys::ChannelDailyUsagePrefix("C1"), keys::kChannelDailyUsagePrefix},
      {keys::Payment("M1", "O1"), keys::kPaymentPrefix},
      {keys::Refund("M1", "R1"), keys::kRefundPrefix},
      {keys::CommandOutcome("cmd-1"), keys::kCommandOutcomePrefix},
      {keys::MismatchOutcome("cmd-1", "00ff"), keys::kMismatchOutcomePrefix},
      {keys::Applied("balances"), keys::kAppliedPrefix},
      {keys::Checkpoint(7), keys::kCheckpointPrefix},
      {keys::MerchantClearing(kDate, "M1"), keys::kMerchantClearingPrefix},
      {keys::MerchantClearingPrefix(kDate), keys::kMerchantClearingPrefix},
      {keys::SchemeClearing(kDate, "wechat"), keys::kSchemeClearingPrefix},
      {keys::SchemeClearingPrefix(kDate), keys::kSchemeClearingPrefix},
      {keys::ClearingLine(kDate, "M1", 3), keys::kClearingLinePrefix},
      {keys::ReconOrder("M1", "O1"), keys::kReconOrderPrefix},
      {keys::ReconRefund("M1", "R1"), keys::kReconRefundPrefix},
      {keys::ReconDateIndex(kDate, "M1", keys::ReconLineKind::kPayment, "O1"), keys::kReconDateIndexPrefix},
  };
  for (const auto& [key, prefix] : encoded)
    EXPECT_TRUE(key.starts_with(prefix)) << key << " not under " << prefix;
}

// The scan prefixes cover exactly the keys they are documented to cover.
TEST(StateKeys, DatePrefixesCoverThatDateOnly) {
  EXPECT_TRUE(keys::MerchantClearing(kDate, "M1").starts_with(keys::MerchantClearingPrefix(kDate)));
  EXPECT_FALSE(keys::MerchantClearing(kDate + 1, "M1").starts_with(keys::MerchantClearingPrefix(kDate)));
  EXPECT_TRUE(keys::SchemeClearing(kDate, "wechat").starts_with(keys::SchemeClearingPrefix(kDate)));
  EXPECT_FALSE(keys::SchemeClearing(kDate + 1, "wechat").starts_with(keys::SchemeClearingPrefix(kDate)));
  EXPECT_TRUE(keys::ClearingLine(kDate, "M1", 9).starts_with(keys::ClearingLinePrefix(kDate, "M1")));
  EXPECT_FALSE(keys::ClearingLine(kDate, "M10", 9).starts_with(keys::ClearingLinePrefix(kDate, "M1")));
  EXPECT_TRUE(keys::ChannelDailyUsage("C1", fb::Channel::b2b, kDate)
                  .starts_with(keys::ChannelDailyUsagePrefix("C1")));
  EXPECT_FALSE(keys::ChannelDailyUsage("C10", fb::Channel::b2b, kDate)
                   .starts_with(keys::ChannelDailyUsagePrefix("C1")));
  const std::string index = keys::ReconDateIndex(kDate, "M1", keys::ReconLineKind::kRefund, "R1");
  EXPECT_TRUE(index.starts_with(keys::ReconDateIndexPrefix(kDate)));
  EXPECT_TRUE(index.starts_with(keys::ReconDateIndexPrefix(kDate, "M1")));
  EXPECT_FALSE(index.starts_with(keys::ReconDateIndexPrefix(kDate, "M")));
}

// Sequences are encoded big-endian, so key order is sequence order.
TEST(StateKeys, CheckpointsAndClearingLinesSortBySequence) {
  EXPECT_LT(keys::Checkpoint(255), keys::Checkpoint(256));
  EXPECT_LT(keys::ClearingLine(kDate, "M1", 255), keys::ClearingLine(kDate, "M1", 256));
  EXPECT_LT(keys::ClearingLine(kDate, "M1", 1), keys::ClearingLine(kDate, "M1", 1ll << 40));
}

TEST(StateKeys, TheReconciliationIndexRoundTrips) {
  const struct {
    std::string merchant;
    keys::ReconLineKind kind;
    std::string id;
  } entries[] = {{"M1", keys::ReconLineKind::kPayment, "O1"},
                 {"M1", keys::ReconLineKind::kRefund, "R-2026-11-25.001"},
                 {"merchant_with_long_name", keys::ReconLineKind::kPayment, "o"},
                 {"M2", keys::ReconLineKind::kRefund, "r"}};
  for (const auto& entry : entries) {
    const std::string key = keys::ReconDateIndex(kDate, entry.merchant, entry.kind, entry.id);
    const std::optional<keys::ReconDateIndexEntry> parsed = keys::ParseReconDateIndex(kDate, key);
    ASSERT_TRUE(parsed.has_value()) << key;
    EXPECT_EQ(parsed->merchant, entry.merchant) << key;
    EXPECT_EQ(parsed->kind, entry.kind) << key;
    EXPECT_EQ(parsed->id, entry.id) << key;
  }
}

TEST(StateKeys, TheReconciliationIndexDecoderRejectsMalformedKeys) {
  const std::string good = keys::ReconDateIndex(kDate, "M1", keys::ReconLineKind::kPayment, "O1");
  ASSERT_TRUE(keys::ParseReconDateIndex(kDate, good).has_value());
  const std::string date_prefix = keys::ReconDateIndexPrefix(kDate);
  const std::string payment_line = good.substr(date_prefix.size() + 3, 1);  // the kind letter of `good`
  const std::string malformed[] = {
      date_prefix,                                                // nothing after the date
      date_prefix + "M1",                                         // no kind
      date_prefix + "M1/",                                        // no kind
      date_prefix + "M1/" + payment_line,                         // no id
      date_prefix + "M1/" + payment_line + "/",                   // empty id
      date_prefix + "/" + payment_line + "/O1",                   // empty merchant
      date_prefix + "M1/x/O1",                                    // wrong kind letter
      date_prefix + "M1/" + payment_line + "O1",                  // kind and id run together
      date_prefix + "M1/" + payment_line + payment_line + "/O1",  // kind longer than a letter
      keys::ReconOrder("M1", "O1"),                               // another kind of key
      keys::ReconDateIndex(kDate + 1, "M1", keys::ReconLineKind::kPayment, "O1"),   // another date
      keys::ReconDateIndex(kDate * 10, "M1", keys::ReconLineKind::kPayment, "O1"),  // a date starting alike
  };
  for (const std::string& key : malformed) {
    EXPECT_FALSE(keys::ParseReconDateIndex(kDate, key).has_value()) << key;
  }
}

// --- the trial balance ---

// A RocksDB store in a temporary folder holding the given balances.
class BalancesStore {
 public:
  explicit BalancesStore(const std::map<std::string, std::pair<fb::Unit, int64_t>>& balances) {
    Result<std::unique_ptr<Store>> opened = Store::Open(dir_.path() + "/store", StoreOptions());
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    if (!opened.ok()) return;
    store_ = std::move(*opened);
    Overlay writes(store_->state());
    for (const auto& [account, balance] : balances) {
      fb::BalanceRecordT record;
      record.unit = balance.first;
      record.balance_minor = balance.second;
      SaveRecord(writes, keys::Balance(account), record);
    }
    // Records of other kinds are not balances.
    fb::UsageRecordT usage;
    usage.amount_minor = 999;
    SaveRecord(writes, keys::DailyUsage("C1", fb::Medium::sms, kDate), usage);
    CommitBatch batch;
    batch.state = &writes;
    EXPECT_TRUE(store_->Commit(batch).ok());
  }
  const Store& store() const { return *store_; }

 private:
  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST(StateTrialBalance, SumsEachUnitAndVisitsEveryAccountInKeyOrder) {
  BalancesStore balances({{"C1:debit", {fb::Unit::CNY, 7'500}},
                          {"gl:funding", {fb::Unit::CNY, -7'500}},
                          {"C1:points", {fb::Unit::POINTS, 300}},
                          {"gl:points_issued", {fb::Unit::POINTS, -300}}});
  std::vector<std::string> visited;
  const Result<TrialBalance> total =
      SumBalances(balances.store(),
                  [&](std::string_view account, const fb::BalanceRecord&) { visited.emplace_back(account); });
  ASSERT_TRUE(total.ok()) << total.status().ToString();
  EXPECT_TRUE(total->balanced());
  EXPECT_EQ(total->accounts, 4);
  EXPECT_EQ(visited, (std::vector<std::string>{"C1:debit", "C1:points", "gl:funding", "gl:points_issued"}));
}

TEST(StateTrialBalance, AnyNonZeroSumIsUnbalanced) {
  BalancesStore cny({{"C1:debit", {fb::Unit::CNY, 7'500}}, {"gl:funding", {fb::Unit::CNY, -7'000}}});
  const Result<TrialBalance> cny_total = SumBalances(cny.store());
  ASSERT_TRUE(cny_total.ok());
  EXPECT_FALSE(cny_total->balanced());
  EXPECT_TRUE(cny_total->cny_minor == 500);
  EXPECT_TRUE(cny_total->points == 0);

  // Units are summed apart: CNY +300 and points -300 do not cancel.
  BalancesStore mixed({{"C1:debit", {fb::Unit::CNY, 300}}, {"gl:points_issued", {fb::Unit::POINTS, -300}}});
  const Result<TrialBalance> mixed_total = SumBalances(mixed.store());
  ASSERT_TRUE(mixed_total.ok());
  EXPECT_FALSE(mixed_total->balanced());
  EXPECT_TRUE(mixed_total->points == -300);
}

TEST(StateTrialBalance, WideSumsDoNotWrapToZero) {
  BalancesStore huge({{"a:1", {fb::Unit::CNY, INT64_MAX}},
                      {"a:2", {fb::Unit::CNY, INT64_MAX}},
                      {"a:3", {fb::Unit::CNY, 2}}});
  const Result<TrialBalance> total = SumBalances(huge.store());
  ASSERT_TRUE(total.ok());
  EXPECT_FALSE(total->balanced());
  EXPECT_TRUE(total->cny_minor == static_cast<__int128>(INT64_MAX) * 2 + 2);
}

TEST(StateTrialBalance, AnEmptyStoreBalances) {
  BalancesStore empty({});
  const Result<TrialBalance> total = SumBalances(empty.store());
  ASSERT_TRUE(total.ok());
  EXPECT_TRUE(total->balanced());
  EXPECT_EQ(total->accounts, 0);
}

// --- the effective-limit rule ---

TEST(StateLimits, ACustomersOwnLimitOnlyLowersThePolicy) {
  LedgerConfig config;
  const int sms = static_cast<int>(fb::Medium::sms);
  config.medium_policy[sms] = MediumPolicy{500'000, 500'000, kNoLimit, 10};
  EmptyReader empty;
  Overlay state(empty);

  const MediumPolicy without = EffectiveMediumLimits(config, state, "C1", fb::Medium::sms);
  EXPECT_EQ(without.per_payment_minor, 500'000);
  EXPECT_EQ(without.daily_minor, 500'000);
  EXPECT_EQ(without.monthly_minor, kNoLimit);
  EXPECT_EQ(without.daily_count, 10);

  fb::LimitOverrideRecordT own;
  own.per_payment_minor = 1'000;  // lower: applies
  own.daily_minor = 900'000;      // higher: the policy stays
  own.monthly_minor = 50'000;     // the policy sets none: the customer's applies
  SaveRecord(state, keys::LimitOverride("C1", fb::Medium::sms), own);  // daily_count left at -1: unchanged
  const MediumPolicy with = EffectiveMediumLimits(config, state, "C1", fb::Medium::sms);
  EXPECT_EQ(with.per_payment_minor, 1'000);
  EXPECT_EQ(with.daily_minor, 500'000);
  EXPECT_EQ(with.monthly_minor, 50'000);
  EXPECT_EQ(with.daily_count, 10);

  // Another customer, or another medium of the same customer, keeps the policy.
  EXPECT_EQ(EffectiveMediumLimits(config, state, "C2", fb::Medium::sms).per_payment_minor, 500'000);
  EXPECT_EQ(EffectiveMediumLimits(config, state, "C1", fb::Medium::fingerprint).per_payment_minor,
            config.medium_policy[static_cast<int>(fb::Medium::fingerprint)].per_payment_minor);
}

}  // namespace
}  // namespace ledger
