// Goal: every rule of a payment (tenders, funds, points, coupons, fees, funding, limits, clock) holds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/money.h"
#include "core/time.h"
#include "events/event.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using Kind = CommandResult::Kind;
using json = nlohmann::json;

const std::pair<int64_t, int64_t> kBalanced{0, 0};

::testing::AssertionResult Accepted(const CommandResult& result) {
  if (result.kind == Kind::kAccepted) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << result.command_id << " was not accepted: " << result.ToJson();
}

// Rejected with `reason`, recorded as exactly one (CommandRejected) event.
::testing::AssertionResult Rejected(const CommandResult& result, const std::string& reason) {
  if (result.kind == Kind::kRejected && result.reason == reason && result.sequences.size() == 1) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << result.command_id << " expected rejected " << reason << ", got " << result.ToJson();
}

// C1: debit with 1,000,000 fen and 20,000 points; C2: debit with 1,000,000 fen; M1 (fee 60 bps), M2 (fee 0).
std::vector<json> ShopCommands() {
  return {testing::OpenAccount("a1", "C1"),
          testing::Deposit("d1", "C1:debit", 1'000'000),
          testing::AwardPoints("p1", "C1", 20'000),
          testing::OpenAccount("a2", "C2"),
          testing::Deposit("d2", "C2:debit", 1'000'000),
          testing::OpenMerchant("m1", "M1", 60),
          testing::OpenMerchant("m2", "M2", 0)};
}

LedgerOptions ShopOptions(const std::string& data_dir, ClockMode clock) {
  LedgerOptions options;
  options.data_dir = data_dir;
  options.clock = clock;
  options.fixed_now_ns = testing::DefaultTimeNs();
  options.sync = false;  // these tests are about rules, not durability
  return options;
}

std::unique_ptr<Ledger> OpenOrDie(const LedgerOptions& options) {
  Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options);
  if (!opened.ok()) {
    ADD_FAILURE() << opened.status().ToString();
    std::abort();
  }
  return std::move(opened).value();
}

// The data folder of a closed ledger holding ShopCommands(), made once per process: creating a RocksDB
// database costs far more than a test, copying a small one does not.
const std::string& ShopTemplate() {
  static testing::TempDir dir;
  static const std::string data = [] {
    const std::string path = dir.path() + "/data";
    std::unique_ptr<Ledger> ledger = OpenOrDie(ShopOptions(path, ClockMode::kOccurred));
    for (const json& command : ShopCommands()) {
      Result<ParsedCommand> parsed = ParseCommandJson(command.dump());
      const bool accepted = parsed.ok() && ledger->Stage(*parsed).kind == Kind::kAccepted;
      if (!accepted) {
        ADD_FAILURE() << "cannot set up the shop: " << command.dump();
        std::abort();
      }
    }
    if (!ledger->CommitGroup().ok()) {
      ADD_FAILURE() << "cannot commit the shop";
      std::abort();
    }
    return path;
  }();
  return data;
}

// Like testing::TestLedger, but each one starts as its own copy of the shop (ShopCommands()).
class Shop {
 public:
  explicit Shop(ClockMode clock = ClockMode::kOccurred) {
    const std::string data = dir_.path() + "/data";
    std::filesystem::copy(ShopTemplate(), data, std::filesystem::copy_options::recursive);
    ledger_ = OpenOrDie(ShopOptions(data, clock));
  }
  CommandResult Submit(const json& command) {
    Result<ParsedCommand> parsed = ParseCommandJson(command.dump());
    if (!parsed.ok()) {
      ADD_FAILURE() << "parse error: " << parsed.status().ToString() << " in " << command.dump();
      return CommandResult();
    }
    CommandResult result = ledger_->Stage(*parsed);
    const Status status = ledger_->CommitGroup();
    EXPECT_TRUE(status.ok()) << status.ToString();
    return result;
  }
  int64_t Balance(const std::string& account) {
    fb::BalanceRecordT balance;
    LoadRecord(ledger_->store().state(), keys::Balance(account), &balance);
    return balance.balance_minor;
  }
  // Sum of all balances per unit: {CNY, POINTS}.
  std::pair<int64_t, int64_t> SumByUnit() {
    int64_t sums[2] = {0, 0};
    EXPECT_TRUE(ledger_->store()
                    .ScanState(keys::kBalancePrefix,
                               [&](std::string_view, std::string_view value) {
                                 const auto* record = flatbuffers::GetRoot<fb::BalanceRecord>(value.data());
                                 sums[static_cast<int>(record->unit())] += record->balance_minor();
                                 return true;
                               })
                    .ok());
    return {sums[0], sums[1]};
  }
  Ledger& ledger() { return *ledger_; }

 private:
  testing::TempDir dir_;
  std::unique_ptr<Ledger> ledger_;
};

// Every projection record that carries business meaning: balances, directory (coupons, limits), limit usage
// and payments. Only the commands index (keys::CommandOutcome) and the projectors' applied sequences
// (keys::Applied) are left out, since a rejection is itself recorded.
std::map<std::string, std::string> BusinessState(Shop& ledger) {
  std::map<std::string, std::string> records;
  EXPECT_TRUE(ledger.ledger()
                  .store()
                  .ScanState("",
                             [&](std::string_view key, std::string_view value) {
                               if (!key.starts_with(keys::kCommandOutcomePrefix) &&
                                   !key.starts_with(keys::kAppliedPrefix)) {
                                 records.emplace(std::string(key), std::string(value));
                               }
                               return true;
                             })
                  .ok());
  return records;
}

fb::EventBodyT EventAt(Shop& ledger, uint64_t sequence) {
  fb::EventBodyT body;
  EXPECT_TRUE(ledger.ledger()
                  .store()
                  .ScanEvents(sequence, sequence,
                              [&](uint64_t, std::string_view record) {
                                Result<DecodedEvent> decoded = DecodeEventRecord(record);
                                EXPECT_TRUE(decoded.ok());
                                if (decoded.ok()) decoded->body->UnPackTo(&body);
                                return false;
                              })
                  .ok());
  return body;
}

fb::UsageRecordT DailyUsage(Shop& ledger, const std::string& customer, fb::Medium medium, int date) {
  fb::UsageRecordT usage;
  LoadRecord(ledger.ledger().store().state(), keys::DailyUsage(customer, medium, date), &usage);
  return usage;
}

fb::CouponRecordT Coupon(Shop& ledger, const std::string& coupon) {
  fb::CouponRecordT record;
  EXPECT_TRUE(LoadRecord(ledger.ledger().store().state(), keys::Coupon(coupon), &record)) << coupon;
  return record;
}

bool PaymentExists(Shop& ledger, const std::string& merchant, const std::string& order_no) {
  fb::PaymentRecordT payment;
  return LoadRecord(ledger.ledger().store().state(), keys::Payment(merchant, order_no), &payment);
}

json IssueCoupon(const std::string& coupon, const std::string& customer, int64_t value_minor,
                 const std::string& merchant = "M1", const std::string& funded_by = "bank",
                 int64_t min_spend_minor = 0, const std::string& expires_at = "2026-12-31T23:59:59+08:00") {
  json command = {{"type", "issue_coupon"},
                  {"command_id", "issue:" + coupon},
                  {"coupon", coupon},
                  {"customer", customer},
                  {"value_minor", value_minor},
                  {"min_spend_minor", min_spend_minor},
                  {"funded_by", funded_by},
                  {"expires_at", expires_at},
                  {"occurred_at", testing::At(testing::DefaultTimeNs())}};
  if (!merchant.empty()) command["merchant"] = merchant;
  return command;
}

json SetLimit(const std::string& id, const std::string& customer, const std::string& medium,
              const std::string& field, int64_t value) {
  return {{"type", "set_customer_limit"},
          {"command_id", id},
          {"customer", customer},
          {"medium", medium},
          {field, value},
          {"occurred_at", testing::At(testing::DefaultTimeNs())}};
}

json WalletPay(const std::string& order_no, int64_t amount_minor, const std::string& funding) {
  json command = testing::Pay("M1", order_no, "C1", amount_minor);
  command["funding"] = funding;
  command.erase("account");
  command.erase("medium");
  return command;
}

// ---- tenders ----

TEST(Pay, OrderIsCardPlusPointsCouponAndDiscount) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 500))));
  const int64_t marketing_before = ledger.Balance("gl:marketing_expense");
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["points"] = 1'500;
  pay["coupon"] = "CP1";
  pay["discount_minor"] = 200;
  const CommandResult paid = ledger.Submit(pay);
  ASSERT_TRUE(Accepted(paid));
  ASSERT_EQ(paid.sequences.size(), 3u);  // PaymentCaptured, PointsDeducted, CouponRedeemed
  const fb::EventBodyT captured = EventAt(ledger, paid.sequences[0]);
  ASSERT_NE(captured.payload.AsPaymentCaptured(), nullptr);
  EXPECT_EQ(captured.payload.AsPaymentCaptured()->card_amount_minor, 7'800);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000 - 7'800);
  EXPECT_EQ(ledger.Balance("C1:points"), 20'000 - 1'500);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);
  EXPECT_EQ(ledger.Balance("gl:marketing_expense") - marketing_before, -(500 + 200));
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 60);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Points, MayCoverTheWholeOrder) {
  Shop ledger;
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["points"] = 10'000;
  const CommandResult paid = ledger.Submit(pay);
  ASSERT_TRUE(Accepted(paid));
  EXPECT_EQ(EventAt(ledger, paid.sequences[0]).payload.AsPaymentCaptured()->card_amount_minor, 0);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("C1:points"), 10'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Pay, TendersAboveTheOrderAmountAreInvalid) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 500))));
  const auto before = BusinessState(ledger);
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["points"] = 1'500;
  pay["coupon"] = "CP1";
  pay["discount_minor"] = 8'001;  // 1,500 + 500 + 8,001 = 10,001
  EXPECT_TRUE(Rejected(ledger.Submit(pay), "INVALID_AMOUNT"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_FALSE(Coupon(ledger, "CP1").used);
  EXPECT_EQ(ledger.Balance("C1:points"), 20'000);
}

TEST(Pay, TendersEqualToTheOrderAmountAreAccepted) {
  Shop ledger;
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["points"] = 1'500;
  pay["discount_minor"] = 8'500;
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

// ---- funds ----

TEST(Pay, DebitCardCannotGoBelowZero) {
  Shop ledger;
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(Rejected(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 1'000'001)), "INSUFFICIENT_FUNDS"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);
  EXPECT_EQ(DailyUsage(ledger, "C1", fb::Medium::u_shield, 20261125).amount_minor, 0);
  EXPECT_FALSE(PaymentExists(ledger, "M1", "ORD1"));
}

TEST(Pay, DebitCardMayReachExactlyZero) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 1'000'000))));
  EXPECT_EQ(ledger.Balance("C1:debit"), 0);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Credit, PaymentMakesTheCreditBalanceNegative) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::OpenAccount("a3", "C1", "credit_card", 50'000))));
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 30'000, "C1:credit"))));
  EXPECT_EQ(ledger.Balance("C1:credit"), -30'000);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 30'000 - 180);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Credit, UsedAmountMayReachButNotPassTheCreditLimit) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::OpenAccount("a3", "C1", "credit_card", 50'000))));
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 50'000, "C1:credit"))));
  EXPECT_EQ(ledger.Balance("C1:credit"), -50'000);
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(
      Rejected(ledger.Submit(testing::Pay("M1", "ORD2", "C1", 1, "C1:credit")), "CREDIT_LIMIT_EXCEEDED"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_EQ(ledger.Balance("C1:credit"), -50'000);
  EXPECT_FALSE(PaymentExists(ledger, "M1", "ORD2"));
}

// ---- points ----

TEST(Points, MoreThanTheBalanceIsRejected) {
  Shop ledger;
  const auto before = BusinessState(ledger);
  json pay = testing::Pay("M1", "ORD1", "C1", 30'000);
  pay["points"] = 20'001;
  EXPECT_TRUE(Rejected(ledger.Submit(pay), "INSUFFICIENT_POINTS"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_EQ(ledger.Balance("C1:points"), 20'000);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
}

TEST(Points, DeductionLowersPointsAndPaysTheMerchantTheirValue) {
  Shop ledger;
  const int64_t liability_before = ledger.Balance("gl:points_liability");
  const int64_t issued_before = ledger.Balance("gl:points_issued");
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["points"] = 1'500;
  const CommandResult paid = ledger.Submit(pay);
  ASSERT_TRUE(Accepted(paid));
  ASSERT_EQ(paid.sequences.size(), 2u);
  const fb::EventBodyT event = EventAt(ledger, paid.sequences[1]);
  const fb::PointsDeductedT* deducted = event.payload.AsPointsDeducted();
  ASSERT_NE(deducted, nullptr);
  EXPECT_EQ(deducted->points, 1'500);
  EXPECT_EQ(deducted->value_minor, 1'500);
  std::map<std::string, std::pair<int64_t, fb::Unit>> lines;
  for (const auto& posting : deducted->postings)
    lines[posting->account] = {posting->amount_minor, posting->unit};
  EXPECT_EQ(lines["C1:points"], std::make_pair(int64_t{-1'500}, fb::Unit::POINTS));
  EXPECT_EQ(lines["merchant:M1"], std::make_pair(int64_t{1'500}, fb::Unit::CNY));

  fb::BalanceRecordT points;
  ASSERT_TRUE(LoadRecord(ledger.ledger().store().state(), keys::Balance("C1:points"), &points));
  EXPECT_EQ(points.unit, fb::Unit::POINTS);
  EXPECT_EQ(points.balance_minor, 18'500);
  EXPECT_EQ(ledger.Balance("gl:points_liability") - liability_before, -1'500);
  EXPECT_EQ(ledger.Balance("gl:points_issued") - issued_before, 1'500);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000 - 8'500);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

// ---- coupons ----

TEST(Coupon, UnknownCouponIsNotFound) {
  Shop ledger;
  const auto before = BusinessState(ledger);
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["coupon"] = "NOPE";
  EXPECT_TRUE(Rejected(ledger.Submit(pay), "COUPON_NOT_FOUND"));
  EXPECT_EQ(BusinessState(ledger), before);
}

TEST(Coupon, SecondUseIsRejected) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 500))));
  json first = testing::Pay("M1", "ORD1", "C1", 10'000);
  first["coupon"] = "CP1";
  ASSERT_TRUE(Accepted(ledger.Submit(first)));
  EXPECT_TRUE(Coupon(ledger, "CP1").used);
  const auto before = BusinessState(ledger);
  json second = testing::Pay("M1", "ORD2", "C1", 10'000);
  second["coupon"] = "CP1";
  EXPECT_TRUE(Rejected(ledger.Submit(second), "COUPON_ALREADY_USED"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_FALSE(PaymentExists(ledger, "M1", "ORD2"));
}

TEST(Coupon, UseAfterExpiryIsRejected) {
  Shop ledger;
  ASSERT_TRUE(
      Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 500, "M1", "bank", 0, "2026-11-25T09:59:59+08:00"))));
  const auto before = BusinessState(ledger);
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);  // at 10:00:00
  pay["coupon"] = "CP1";
  EXPECT_TRUE(Rejected(ledger.Submit(pay), "COUPON_EXPIRED"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_FALSE(Coupon(ledger, "CP1").used);
}

TEST(Coupon, UseAtTheExpiryInstantIsAccepted) {
  Shop ledger;
  ASSERT_TRUE(
      Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 500, "M1", "bank", 0, "2026-11-25T10:00:00+08:00"))));
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["coupon"] = "CP1";
  EXPECT_TRUE(Accepted(ledger.Submit(pay)));
  EXPECT_TRUE(Coupon(ledger, "CP1").used);
}

TEST(Coupon, AnotherCustomersCouponIsNotApplicable) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP2", "C2", 500))));
  const auto before = BusinessState(ledger);
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["coupon"] = "CP2";
  EXPECT_TRUE(Rejected(ledger.Submit(pay), "COUPON_NOT_APPLICABLE"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_FALSE(Coupon(ledger, "CP2").used);
}

TEST(Coupon, OrderBelowMinimumSpendIsNotApplicable) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 500, "M1", "bank", 5'000))));
  const auto before = BusinessState(ledger);
  json below = testing::Pay("M1", "ORD1", "C1", 4'999);
  below["coupon"] = "CP1";
  EXPECT_TRUE(Rejected(ledger.Submit(below), "COUPON_NOT_APPLICABLE"));
  EXPECT_EQ(BusinessState(ledger), before);
  json at = testing::Pay("M1", "ORD2", "C1", 5'000);
  at["coupon"] = "CP1";
  EXPECT_TRUE(Accepted(ledger.Submit(at)));
}

TEST(Coupon, CouponOfAnotherMerchantIsNotApplicable) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 500, "M1"))));
  const auto before = BusinessState(ledger);
  json pay = testing::Pay("M2", "ORD1", "C1", 10'000);
  pay["coupon"] = "CP1";
  EXPECT_TRUE(Rejected(ledger.Submit(pay), "COUPON_NOT_APPLICABLE"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_FALSE(Coupon(ledger, "CP1").used);
}

TEST(Coupon, CouponWithoutMerchantScopeIsUsableAnywhere) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 500, ""))));
  json pay = testing::Pay("M2", "ORD1", "C1", 10'000);
  pay["coupon"] = "CP1";
  EXPECT_TRUE(Accepted(ledger.Submit(pay)));
  EXPECT_EQ(ledger.Balance("merchant:M2"), 10'000);
}

TEST(Coupon, BankFundedCouponIsMarketingExpenseAndPaidToTheMerchant) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 500, "M1", "bank"))));
  const int64_t marketing_before = ledger.Balance("gl:marketing_expense");
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["coupon"] = "CP1";
  const CommandResult paid = ledger.Submit(pay);
  ASSERT_TRUE(Accepted(paid));
  ASSERT_EQ(paid.sequences.size(), 2u);
  const fb::EventBodyT event = EventAt(ledger, paid.sequences[1]);
  const fb::CouponRedeemedT* redeemed = event.payload.AsCouponRedeemed();
  ASSERT_NE(redeemed, nullptr);
  std::map<std::string, int64_t> lines;
  for (const auto& posting : redeemed->postings) lines[posting->account] += posting->amount_minor;
  EXPECT_EQ(lines["gl:marketing_expense"], -500);
  EXPECT_EQ(lines["merchant:M1"], 500);
  EXPECT_EQ(ledger.Balance("gl:marketing_expense") - marketing_before, -500);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000 - 9'500);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);  // fee on the whole order
  EXPECT_TRUE(Coupon(ledger, "CP1").used);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Coupon, MerchantFundedCouponLowersTheSettlementBase) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 500, "M1", "merchant"))));
  const int64_t marketing_before = ledger.Balance("gl:marketing_expense");
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["coupon"] = "CP1";
  const CommandResult paid = ledger.Submit(pay);
  ASSERT_TRUE(Accepted(paid));
  const fb::EventBodyT event = EventAt(ledger, paid.sequences[0]);
  ASSERT_NE(event.payload.AsPaymentCaptured(), nullptr);
  EXPECT_EQ(event.payload.AsPaymentCaptured()->settlement_base_minor, 9'500);
  EXPECT_EQ(event.payload.AsPaymentCaptured()->fee_minor, 57);  // 9,500 * 60 / 10,000
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000 - 9'500);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 9'500 - 57);
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 57);
  EXPECT_EQ(ledger.Balance("gl:marketing_expense"), marketing_before);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

// ---- fees ----

TEST(Fee, RoundsHalfUpOnTheSettlementBase) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 50, "M1", "merchant"))));
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["coupon"] = "CP1";
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 60);  // 9,950 * 60 / 10,000 = 59.7
  EXPECT_EQ(ledger.Balance("merchant:M1"), 9'950 - 60);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Fee, RoundsDownBelowHalf) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 84, "M1", "merchant"))));
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["coupon"] = "CP1";
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 59);  // 9,916 * 60 / 10,000 = 59.496
  EXPECT_EQ(ledger.Balance("merchant:M1"), 9'916 - 59);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Fee, BankFundedCouponDoesNotLowerTheFeeBase) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(IssueCoupon("CP1", "C1", 84, "M1", "bank"))));
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["coupon"] = "CP1";
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 60);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);
}

TEST(Fee, ZeroBpsMerchantPaysNoFee) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M2", "ORD1", "C1", 10'000))));
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 0);
  EXPECT_EQ(ledger.Balance("merchant:M2"), 10'000);
}

// ---- funding ----

TEST(Pay, OtherBankFundingChargesTheInterbankReceivable) {
  Shop ledger;
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["funding"] = "other_bank";
  pay.erase("account");
  pay["card_token"] = "tok-4242";
  pay["points"] = 1'000;
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  EXPECT_EQ(ledger.Balance("gl:interbank:other_bank"), -9'000);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("C1:points"), 19'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Pay, WalletFundingChargesTheSchemeReceivable) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(WalletPay("ORD1", 10'000, "wechat"))));
  ASSERT_TRUE(Accepted(ledger.Submit(WalletPay("ORD2", 20'000, "unionpay"))));
  EXPECT_EQ(ledger.Balance("gl:interbank:wechat"), -10'000);
  EXPECT_EQ(ledger.Balance("gl:interbank:unionpay"), -20'000);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 30'000 - 180);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Limit, WalletsAreNotSubjectToMediumLimits) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(WalletPay("ORD1", 600'000, "wechat"))));  // above every medium's 500,000
  EXPECT_EQ(ledger.Balance("gl:interbank:wechat"), -600'000);
  for (int medium = 0; medium < kMediumCount; ++medium) {
    EXPECT_EQ(DailyUsage(ledger, "C1", static_cast<fb::Medium>(medium), 20261125).amount_minor, 0);
  }
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Limit, WalletsAreSubjectToTheQrStaticChannelLimit) {
  Shop ledger;
  json first = WalletPay("ORD1", 50'000, "wechat");
  first["channel"] = "qr_static";
  ASSERT_TRUE(Accepted(ledger.Submit(first)));
  const auto before = BusinessState(ledger);
  json second = WalletPay("ORD2", 1, "unionpay");
  second["channel"] = "qr_static";
  EXPECT_TRUE(Rejected(ledger.Submit(second), "CHANNEL_LIMIT_EXCEEDED"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_EQ(ledger.Balance("gl:interbank:unionpay"), 0);
}

TEST(Limit, QrStaticChannelLimitIsPerCustomerPerDay) {
  Shop ledger;
  json first = testing::Pay("M1", "ORD1", "C1", 50'000);
  first["channel"] = "qr_static";
  ASSERT_TRUE(Accepted(ledger.Submit(first)));
  json over = testing::Pay("M1", "ORD2", "C1", 1);
  over["channel"] = "qr_static";
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(Rejected(ledger.Submit(over), "CHANNEL_LIMIT_EXCEEDED"));
  EXPECT_EQ(BusinessState(ledger), before);
  json other_customer = testing::Pay("M1", "ORD3", "C2", 50'000);
  other_customer["channel"] = "qr_static";
  EXPECT_TRUE(Accepted(ledger.Submit(other_customer)));
  json next_day = testing::Pay("M1", "ORD4", "C1", 50'000);
  next_day["channel"] = "qr_static";
  next_day["occurred_at"] = "2026-11-26T10:00:00+08:00";
  EXPECT_TRUE(Accepted(ledger.Submit(next_day)));
}

TEST(Limit, QrStaticChannelLimitCountsOnlyTheCardAmount) {
  Shop ledger;
  json pay = testing::Pay("M1", "ORD1", "C1", 60'000);
  pay["channel"] = "qr_static";
  pay["points"] = 10'000;
  EXPECT_TRUE(Accepted(ledger.Submit(pay)));
}

// ---- medium limits ----

struct MediumLimits {
  const char* medium;
  int64_t per_payment_minor;
  int64_t daily_minor;
};

std::ostream& operator<<(std::ostream& out, const MediumLimits& limits) { return out << limits.medium; }

class LimitMedium : public ::testing::TestWithParam<MediumLimits> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Accepted(ledger_.Submit(testing::Deposit("d9", "C1:debit", 300'000'000))));
  }
  json PayWith(const std::string& order_no, int64_t amount_minor) {
    return testing::Pay("M2", order_no, "C1", amount_minor, "", GetParam().medium);
  }
  fb::Medium Medium() const {
    for (int i = 0; i < kMediumCount; ++i) {
      if (std::string(fb::EnumNamesMedium()[i]) == GetParam().medium) return static_cast<fb::Medium>(i);
    }
    ADD_FAILURE() << "no medium " << GetParam().medium;
    return fb::Medium::none;
  }
  Shop ledger_;
};

TEST_P(LimitMedium, PerPaymentExactlyAtLimitIsAccepted) {
  ASSERT_TRUE(Accepted(ledger_.Submit(PayWith("ORD1", GetParam().per_payment_minor))));
  const fb::UsageRecordT usage = DailyUsage(ledger_, "C1", Medium(), 20261125);
  EXPECT_EQ(usage.amount_minor, GetParam().per_payment_minor);
  EXPECT_EQ(usage.count, 1);
}

TEST_P(LimitMedium, PerPaymentOneFenMoreIsRejected) {
  const auto before = BusinessState(ledger_);
  EXPECT_TRUE(Rejected(ledger_.Submit(PayWith("ORD1", GetParam().per_payment_minor + 1)),
                       "LIMIT_PER_PAYMENT_EXCEEDED"));
  EXPECT_EQ(BusinessState(ledger_), before);
  EXPECT_EQ(DailyUsage(ledger_, "C1", Medium(), 20261125).amount_minor, 0);
}

TEST_P(LimitMedium, DailyExactlyAtLimitThenOneFenMoreIsRejected) {
  int64_t left = GetParam().daily_minor;
  for (int i = 0; left > 0; ++i) {
    const int64_t amount = std::min(left, GetParam().per_payment_minor);
    ASSERT_TRUE(Accepted(ledger_.Submit(PayWith("FILL" + std::to_string(i), amount))));
    left -= amount;
  }
  EXPECT_EQ(DailyUsage(ledger_, "C1", Medium(), 20261125).amount_minor, GetParam().daily_minor);
  const auto before = BusinessState(ledger_);
  EXPECT_TRUE(Rejected(ledger_.Submit(PayWith("OVER", 1)), "LIMIT_DAILY_EXCEEDED"));
  EXPECT_EQ(BusinessState(ledger_), before);
  EXPECT_EQ(ledger_.SumByUnit(), kBalanced);
}

INSTANTIATE_TEST_SUITE_P(Limit, LimitMedium,
                         ::testing::Values(MediumLimits{"u_shield", 100'000'000, 100'000'000},
                                           MediumLimits{"password_device", 50'000'000, 100'000'000},
                                           MediumLimits{"otp_card", 100'000, 500'000},
                                           MediumLimits{"sms", 500'000, 500'000},
                                           MediumLimits{"fingerprint", 500'000, 500'000},
                                           MediumLimits{"password_free", 100'000, 100'000}),
                         [](const ::testing::TestParamInfo<MediumLimits>& info) {
                           return std::string(info.param.medium);
                         });

TEST(Limit, SmsMonthlyLimitSpansTheDaysOfOneMonth) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Deposit("d9", "C1:debit", 10'000'000))));
  for (int day = 1; day <= 10; ++day) {
    json pay = testing::Pay("M2", "DAY" + std::to_string(day), "C1", 500'000, "", "sms");
    pay["occurred_at"] =
        "2026-12-" + std::string(day < 10 ? "0" : "") + std::to_string(day) + "T12:00:00+08:00";
    ASSERT_TRUE(Accepted(ledger.Submit(pay))) << "day " << day;
  }
  const auto before = BusinessState(ledger);
  json over = testing::Pay("M2", "DAY11", "C1", 1, "", "sms");
  over["occurred_at"] = "2026-12-11T12:00:00+08:00";
  EXPECT_TRUE(Rejected(ledger.Submit(over), "LIMIT_MONTHLY_EXCEEDED"));
  EXPECT_EQ(BusinessState(ledger), before);
  json next_month = testing::Pay("M2", "JAN1", "C1", 500'000, "", "sms");
  next_month["occurred_at"] = "2027-01-01T00:00:01+08:00";
  EXPECT_TRUE(Accepted(ledger.Submit(next_month)));
}

TEST(Limit, PasswordFreeAllowsAtMostTenPaymentsADay) {
  Shop ledger;
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE(Accepted(
        ledger.Submit(testing::Pay("M2", "PF" + std::to_string(i), "C1", 1'000, "", "password_free"))));
  }
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(Rejected(ledger.Submit(testing::Pay("M2", "PF11", "C1", 1'000, "", "password_free")),
                       "LIMIT_COUNT_EXCEEDED"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_EQ(DailyUsage(ledger, "C1", fb::Medium::password_free, 20261125).count, 10);
  json next_day = testing::Pay("M2", "PF12", "C1", 1'000, "", "password_free");
  next_day["occurred_at"] = "2026-11-26T10:00:00+08:00";
  EXPECT_TRUE(Accepted(ledger.Submit(next_day)));
}

TEST(Limit, OnlyTheCardAmountCounts) {
  Shop ledger;
  json pay = testing::Pay("M2", "ORD1", "C1", 120'000, "", "otp_card");
  pay["points"] = 20'000;  // card 100,000 = the otp_card per-payment limit
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  EXPECT_EQ(DailyUsage(ledger, "C1", fb::Medium::otp_card, 20261125).amount_minor, 100'000);
}

TEST(Limit, OtherBankCardsAreSubjectToMediumLimits) {
  Shop ledger;
  json pay = testing::Pay("M2", "ORD1", "C1", 100'001, "", "otp_card");
  pay["funding"] = "other_bank";
  pay.erase("account");
  pay["card_token"] = "tok-4242";
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(Rejected(ledger.Submit(pay), "LIMIT_PER_PAYMENT_EXCEEDED"));
  EXPECT_EQ(BusinessState(ledger), before);
}

TEST(Limit, DailyUsageResetsAtLocalMidnightUtcPlus8) {
  Shop ledger;
  json late = testing::Pay("M2", "ORD1", "C1", 500'000, "", "fingerprint");
  late["occurred_at"] = "2026-11-25T23:59:59+08:00";
  ASSERT_TRUE(Accepted(ledger.Submit(late)));
  json early = testing::Pay("M2", "ORD2", "C1", 500'000, "", "fingerprint");
  early["occurred_at"] = "2026-11-26T00:00:01+08:00";  // the same UTC day (16:00:01Z), the next local day
  EXPECT_TRUE(Accepted(ledger.Submit(early)));
  EXPECT_EQ(DailyUsage(ledger, "C1", fb::Medium::fingerprint, 20261125).amount_minor, 500'000);
  EXPECT_EQ(DailyUsage(ledger, "C1", fb::Medium::fingerprint, 20261126).amount_minor, 500'000);
}

TEST(Limit, OneLocalDaySpanningTwoUtcDatesSharesItsUsage) {
  Shop ledger;
  json early = testing::Pay("M2", "ORD1", "C1", 500'000, "", "fingerprint");
  early["occurred_at"] = "2026-11-25T00:00:01+08:00";  // 2026-11-24 in UTC
  ASSERT_TRUE(Accepted(ledger.Submit(early)));
  json late = testing::Pay("M2", "ORD2", "C1", 1, "", "fingerprint");
  late["occurred_at"] = "2026-11-25T23:59:59+08:00";  // 2026-11-25 in UTC
  EXPECT_TRUE(Rejected(ledger.Submit(late), "LIMIT_DAILY_EXCEEDED"));
}

TEST(Limit, CustomerMayLowerALimitAndItIsEnforced) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(SetLimit("l1", "C1", "sms", "daily_minor", 200'000))));
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M2", "ORD1", "C1", 200'000, "", "sms"))));
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(
      Rejected(ledger.Submit(testing::Pay("M2", "ORD2", "C1", 1, "", "sms")), "LIMIT_DAILY_EXCEEDED"));
  EXPECT_EQ(BusinessState(ledger), before);
  // Other customers keep the policy.
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M2", "ORD3", "C2", 500'000, "", "sms"))));
}

TEST(Limit, CustomerMayLowerTheDailyCount) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(SetLimit("l1", "C1", "password_free", "daily_count", 2))));
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M2", "ORD1", "C1", 100, "", "password_free"))));
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M2", "ORD2", "C1", 100, "", "password_free"))));
  EXPECT_TRUE(Rejected(ledger.Submit(testing::Pay("M2", "ORD3", "C1", 100, "", "password_free")),
                       "LIMIT_COUNT_EXCEEDED"));
}

TEST(Limit, RaisingAboveThePolicyIsRejectedAndKeepsTheLoweredLimit) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(SetLimit("l1", "C1", "sms", "per_payment_minor", 200'000))));
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(Rejected(ledger.Submit(SetLimit("l2", "C1", "sms", "per_payment_minor", 500'001)),
                       "LIMIT_ABOVE_POLICY"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_TRUE(Rejected(ledger.Submit(testing::Pay("M2", "ORD1", "C1", 200'001, "", "sms")),
                       "LIMIT_PER_PAYMENT_EXCEEDED"));
}

TEST(Limit, RaisingBackUpToThePolicyIsAllowed) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(SetLimit("l1", "C1", "sms", "daily_minor", 200'000))));
  ASSERT_TRUE(Accepted(ledger.Submit(SetLimit("l2", "C1", "sms", "daily_minor", 500'000))));
  EXPECT_TRUE(Accepted(ledger.Submit(testing::Pay("M2", "ORD1", "C1", 500'000, "", "sms"))));
}

// ---- identity and amounts ----

TEST(Pay, UnknownMerchantIsRejected) {
  Shop ledger;
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(Rejected(ledger.Submit(testing::Pay("M9", "ORD1", "C1", 10'000)), "UNKNOWN_MERCHANT"));
  EXPECT_EQ(BusinessState(ledger), before);
}

TEST(Pay, AccountOfAnotherCustomerIsUnknown) {
  Shop ledger;
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(
      Rejected(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000, "C2:debit")), "UNKNOWN_ACCOUNT"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_EQ(ledger.Balance("C2:debit"), 1'000'000);
}

TEST(Pay, AccountThatDoesNotExistIsUnknown) {
  Shop ledger;
  EXPECT_TRUE(
      Rejected(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000, "C1:savings")), "UNKNOWN_ACCOUNT"));
}

TEST(Pay, NonPositiveOrderAmountIsInvalid) {
  Shop ledger;
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(Rejected(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 0)), "INVALID_AMOUNT"));
  EXPECT_TRUE(Rejected(ledger.Submit(testing::Pay("M1", "ORD2", "C1", -1)), "INVALID_AMOUNT"));
  EXPECT_EQ(BusinessState(ledger), before);
}

TEST(Pay, OrderAmountAbove2Pow53Minus1IsInvalid) {
  Shop ledger;
  const auto before = BusinessState(ledger);
  EXPECT_TRUE(Rejected(ledger.Submit(WalletPay("ORD1", kAmountMinorMax + 1, "wechat")), "INVALID_AMOUNT"));
  EXPECT_EQ(BusinessState(ledger), before);
}

TEST(Pay, OrderAmountOf2Pow53Minus1IsValid) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(WalletPay("ORD1", kAmountMinorMax, "wechat"))));
  EXPECT_EQ(ledger.Balance("gl:interbank:wechat"), -kAmountMinorMax);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Pay, NegativePointsOrDiscountAreInvalid) {
  Shop ledger;
  const auto before = BusinessState(ledger);
  json points = testing::Pay("M1", "ORD1", "C1", 10'000);
  points["points"] = -1;
  EXPECT_TRUE(Rejected(ledger.Submit(points), "INVALID_AMOUNT"));
  json discount = testing::Pay("M1", "ORD2", "C1", 10'000);
  discount["discount_minor"] = -1;
  EXPECT_TRUE(Rejected(ledger.Submit(discount), "INVALID_AMOUNT"));
  EXPECT_EQ(BusinessState(ledger), before);
}

TEST(Pay, SameMerchantOrderUnderAnotherCommandIdIsADuplicateOrder) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000))));
  const auto before = BusinessState(ledger);
  json again = testing::Pay("M1", "ORD1", "C1", 10'000);
  again["command_id"] = "retry-with-new-id";
  EXPECT_TRUE(Rejected(ledger.Submit(again), "DUPLICATE_ORDER"));
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_EQ(ledger.Balance("C1:debit"), 990'000);
}

TEST(Pay, SameOrderNumberAtAnotherMerchantIsAnotherOrder) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000))));
  EXPECT_TRUE(Accepted(ledger.Submit(testing::Pay("M2", "ORD1", "C1", 10'000))));
}

TEST(Pay, UnknownEnumValueIsRecordedAsMalformedAndMovesNothing) {
  Shop ledger;
  const auto before = BusinessState(ledger);
  const uint64_t last = ledger.ledger().last_sequence();
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["medium"] = "retina";
  const CommandResult result = ledger.Submit(pay);
  ASSERT_TRUE(Rejected(result, "MALFORMED_COMMAND"));
  EXPECT_EQ(result.sequences[0], last + 1);
  const fb::EventBodyT event = EventAt(ledger, result.sequences[0]);
  ASSERT_NE(event.payload.AsCommandRejected(), nullptr);
  EXPECT_EQ(event.payload.AsCommandRejected()->reason, "MALFORMED_COMMAND");
  EXPECT_EQ(event.command_id, "M1:ORD1");
  EXPECT_EQ(BusinessState(ledger), before);
  EXPECT_FALSE(PaymentExists(ledger, "M1", "ORD1"));
}

// ---- clock ----

// A shop whose ledger checks occurred_at against its clock (fixed at testing::DefaultTimeNs()).
class PayClock : public ::testing::Test {
 protected:
  json PayAt(const std::string& order_no, int64_t offset_ns) {
    json pay = testing::Pay("M2", order_no, "C1", 10'000);
    pay["occurred_at"] = testing::At(testing::DefaultTimeNs() + offset_ns);
    return pay;
  }
  static constexpr int64_t kMinute = 60 * kNanosPerSecond;
  Shop ledger_{ClockMode::kSystem};
};

TEST_F(PayClock, MoreThanFiveMinutesFromTheLedgerClockIsClockSkew) {
  const auto before = BusinessState(ledger_);
  EXPECT_TRUE(Rejected(ledger_.Submit(PayAt("ORD1", 6 * kMinute)), "CLOCK_SKEW"));
  EXPECT_TRUE(Rejected(ledger_.Submit(PayAt("ORD2", -6 * kMinute)), "CLOCK_SKEW"));
  EXPECT_EQ(BusinessState(ledger_), before);
  EXPECT_EQ(ledger_.Balance("C1:debit"), 1'000'000);
}

TEST_F(PayClock, WithinFiveMinutesOfTheLedgerClockIsAccepted) {
  EXPECT_TRUE(Accepted(ledger_.Submit(PayAt("ORD1", 4 * kMinute))));
  EXPECT_TRUE(Accepted(ledger_.Submit(PayAt("ORD2", -4 * kMinute))));
  EXPECT_EQ(ledger_.Balance("C1:debit"), 1'000'000 - 20'000);
}

}  // namespace
}  // namespace ledger
