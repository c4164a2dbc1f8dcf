// Goal: a reversal undoes a payment within its clearing date; refunds return it pro rata, never more.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

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

json IssueCoupon(const std::string& coupon, int64_t value_minor, const std::string& funded_by) {
  return {{"type", "issue_coupon"},
          {"command_id", "issue:" + coupon},
          {"coupon", coupon},
          {"customer", "C1"},
          {"value_minor", value_minor},
          {"merchant", "M1"},
          {"funded_by", funded_by},
          {"expires_at", "2027-12-31T23:59:59+08:00"},
          {"occurred_at", testing::At(testing::DefaultTimeNs())}};
}

// C1: debit with 1,000,000 fen, 20,000 points, coupons CP1 (500, bank-funded) and CPM (500, merchant-funded),
// both for M1; merchant M1 with a fee of 60 bps.
std::vector<json> ShopCommands() {
  return {testing::OpenAccount("a1", "C1"),         testing::Deposit("d1", "C1:debit", 1'000'000),
          testing::AwardPoints("p1", "C1", 20'000), testing::OpenMerchant("m1", "M1", 60),
          IssueCoupon("CP1", 500, "bank"),          IssueCoupon("CPM", 500, "merchant")};
}

LedgerOptions ShopOptions(const std::string& data_dir) {
  LedgerOptions options;
  options.data_dir = data_dir;
  options.clock = ClockMode::kOccurred;
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
    std::unique_ptr<Ledger> ledger = OpenOrDie(ShopOptions(path));
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
  Shop() {
    const std::string data = dir_.path() + "/data";
    std::filesystem::copy(ShopTemplate(), data, std::filesystem::copy_options::recursive);
    ledger_ = OpenOrDie(ShopOptions(data));
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
  // Every account with a non-zero balance.
  std::map<std::string, int64_t> Balances() {
    std::map<std::string, int64_t> balances;
    EXPECT_TRUE(ledger_->store()
                    .ScanState(keys::kBalancePrefix,
                               [&](std::string_view key, std::string_view value) {
                                 const auto* record = flatbuffers::GetRoot<fb::BalanceRecord>(value.data());
                                 if (record->balance_minor() != 0)
                                   balances[std::string(key.substr(2))] = record->balance_minor();
                                 return true;
                               })
                    .ok());
    return balances;
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
  // Every projection record with business meaning: all but the commands index (keys::CommandOutcome) and
  // the projectors' applied sequences (keys::Applied), which a rejection advances.
  std::map<std::string, std::string> BusinessState() {
    std::map<std::string, std::string> records;
    EXPECT_TRUE(ledger_->store()
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
  fb::PaymentRecordT Payment(const std::string& order_no) {
    fb::PaymentRecordT payment;
    EXPECT_TRUE(LoadRecord(ledger_->store().state(), keys::Payment("M1", order_no), &payment)) << order_no;
    return payment;
  }
  fb::CouponRecordT Coupon(const std::string& coupon) {
    fb::CouponRecordT record;
    EXPECT_TRUE(LoadRecord(ledger_->store().state(), keys::Coupon(coupon), &record)) << coupon;
    return record;
  }
  fb::UsageRecordT DailyUsage(fb::Medium medium, int date) {
    fb::UsageRecordT usage;
    LoadRecord(ledger_->store().state(), keys::DailyUsage("C1", medium, date), &usage);
    return usage;
  }
  fb::UsageRecordT MonthlyUsage(fb::Medium medium, int month) {
    fb::UsageRecordT usage;
    LoadRecord(ledger_->store().state(), keys::MonthlyUsage("C1", medium, month), &usage);
    return usage;
  }
  fb::UsageRecordT ChannelUsage(fb::Channel channel, int date) {
    fb::UsageRecordT usage;
    LoadRecord(ledger_->store().state(), keys::ChannelDailyUsage("C1", channel, date), &usage);
    return usage;
  }
  // The PaymentRefunded event of an accepted refund.
  fb::PaymentRefundedT RefundEvent(const CommandResult& result) {
    fb::PaymentRefundedT refunded;
    EXPECT_EQ(result.sequences.size(), 1u);
    if (result.sequences.empty()) return refunded;
    EXPECT_TRUE(ledger_->store()
                    .ScanEvents(result.sequences[0], result.sequences[0],
                                [&](uint64_t, std::string_view record) {
                                  Result<DecodedEvent> decoded = DecodeEventRecord(record);
                                  EXPECT_TRUE(decoded.ok());
                                  if (!decoded.ok()) return false;
                                  const fb::PaymentRefunded* event =
                                      decoded->body->payload_as_PaymentRefunded();
                                  EXPECT_NE(event, nullptr) << EventTypeName(decoded->body->payload_type());
                                  if (event != nullptr) event->UnPackTo(&refunded);
                                  return false;
                                })
                    .ok());
    return refunded;
  }

 private:
  testing::TempDir dir_;
  std::unique_ptr<Ledger> ledger_;
};

// Order 10,000 = card 8,000 + points 1,500 + coupon CP1 500 (bank-funded); fee 60.
json MixedPay(const std::string& order_no) {
  json pay = testing::Pay("M1", order_no, "C1", 10'000);
  pay["points"] = 1'500;
  pay["coupon"] = "CP1";
  return pay;
}

json At(json command, const char* iso) {
  command["occurred_at"] = iso;
  return command;
}

json Refund(const std::string& order_no, const std::string& refund_no, int64_t amount_minor) {
  return testing::Refund("M1", order_no, refund_no, amount_minor);
}

// ---- reversals ----

TEST(Reversal, UndoesCardPointsCouponDiscountAndFee) {
  Shop ledger;
  const auto balances_before = ledger.Balances();
  const fb::CouponRecordT coupon_before = ledger.Coupon("CP1");
  json pay = MixedPay("ORD1");
  pay["discount_minor"] = 200;  // card 7,800
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  ASSERT_NE(ledger.Balances(), balances_before);
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Reverse("M1", "ORD1"))));
  EXPECT_EQ(ledger.Balances(), balances_before);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("C1:points"), 20'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 0);
  const fb::CouponRecordT coupon_after = ledger.Coupon("CP1");
  EXPECT_FALSE(coupon_after.used);
  EXPECT_EQ(coupon_after.used_by_order, coupon_before.used_by_order);
  EXPECT_EQ(ledger.Payment("ORD1").status, fb::PaymentStatus::reversed);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Reversal, GivesTheCouponBackForANewPayment) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(MixedPay("ORD1"))));
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Reverse("M1", "ORD1"))));
  ASSERT_TRUE(Accepted(ledger.Submit(MixedPay("ORD2"))));
  EXPECT_TRUE(ledger.Coupon("CP1").used);
  EXPECT_EQ(ledger.Coupon("CP1").used_by_order, "M1/ORD2");
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000 - 8'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Reversal, OfAMerchantFundedCouponPaymentRestoresEveryBalance) {
  Shop ledger;
  const auto balances_before = ledger.Balances();
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["coupon"] = "CPM";
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  EXPECT_EQ(ledger.Balance("merchant:M1"), 9'500 - 57);
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Reverse("M1", "ORD1"))));
  EXPECT_EQ(ledger.Balances(), balances_before);
  EXPECT_FALSE(ledger.Coupon("CPM").used);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Reversal, OfAWalletPaymentClearsTheSchemeReceivable) {
  Shop ledger;
  const auto balances_before = ledger.Balances();
  json pay = testing::Pay("M1", "ORD1", "C1", 30'000);
  pay["funding"] = "wechat";
  pay["channel"] = "qr_static";
  pay.erase("account");
  pay.erase("medium");
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  EXPECT_EQ(ledger.Balance("gl:interbank:wechat"), -30'000);
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Reverse("M1", "ORD1"))));
  EXPECT_EQ(ledger.Balances(), balances_before);
  EXPECT_EQ(ledger.ChannelUsage(fb::Channel::qr_static, 20261125).amount_minor, 0);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Reversal, GivesTheLimitUsageBack) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 500'000, "", "fingerprint"))));
  EXPECT_TRUE(Rejected(ledger.Submit(testing::Pay("M1", "ORD2", "C1", 1, "", "fingerprint")),
                       "LIMIT_DAILY_EXCEEDED"));
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Reverse("M1", "ORD1"))));
  const fb::UsageRecordT daily = ledger.DailyUsage(fb::Medium::fingerprint, 20261125);
  EXPECT_EQ(daily.amount_minor, 0);
  EXPECT_EQ(daily.count, 0);
  EXPECT_EQ(ledger.MonthlyUsage(fb::Medium::fingerprint, 202611).amount_minor, 0);
  EXPECT_EQ(ledger.ChannelUsage(fb::Channel::b2c_pc, 20261125).amount_minor, 0);
  EXPECT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD3", "C1", 500'000, "", "fingerprint"))));
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Reversal, GivesTheCountOfPaymentsBack) {
  Shop ledger;
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE(Accepted(
        ledger.Submit(testing::Pay("M1", "PF" + std::to_string(i), "C1", 100, "", "password_free"))));
  }
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Reverse("M1", "PF10"))));
  EXPECT_EQ(ledger.DailyUsage(fb::Medium::password_free, 20261125).count, 9);
  EXPECT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "PF11", "C1", 100, "", "password_free"))));
}

TEST(Reversal, AllowedBeforeTheCutOffOfTheClearingDate) {
  Shop ledger;
  ASSERT_TRUE(
      Accepted(ledger.Submit(At(testing::Pay("M1", "ORD1", "C1", 10'000), "2026-11-25T22:00:00+08:00"))));
  EXPECT_TRUE(Accepted(ledger.Submit(At(testing::Reverse("M1", "ORD1"), "2026-11-25T22:59:00+08:00"))));
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Reversal, AfterTheCutOffOfTheClearingDateIsWindowClosed) {
  Shop ledger;
  ASSERT_TRUE(
      Accepted(ledger.Submit(At(testing::Pay("M1", "ORD1", "C1", 10'000), "2026-11-25T22:00:00+08:00"))));
  const auto before = ledger.BusinessState();
  EXPECT_TRUE(Rejected(ledger.Submit(At(testing::Reverse("M1", "ORD1"), "2026-11-25T23:30:00+08:00")),
                       "REVERSAL_WINDOW_CLOSED"));
  EXPECT_EQ(ledger.BusinessState(), before);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000 - 10'000);
  EXPECT_EQ(ledger.Payment("ORD1").status, fb::PaymentStatus::success);
}

TEST(Reversal, NextMorningIsWindowClosedForAPaymentBeforeTheCutOff) {
  Shop ledger;
  ASSERT_TRUE(
      Accepted(ledger.Submit(At(testing::Pay("M1", "ORD1", "C1", 10'000), "2026-11-25T22:00:00+08:00"))));
  EXPECT_TRUE(Rejected(ledger.Submit(At(testing::Reverse("M1", "ORD1"), "2026-11-26T00:30:00+08:00")),
                       "REVERSAL_WINDOW_CLOSED"));
}

TEST(Reversal, PaymentAfterTheCutOffIsReversibleTheNextMorning) {
  Shop ledger;
  ASSERT_TRUE(
      Accepted(ledger.Submit(At(testing::Pay("M1", "ORD1", "C1", 10'000), "2026-11-25T23:30:00+08:00"))));
  EXPECT_TRUE(Accepted(ledger.Submit(At(testing::Reverse("M1", "ORD1"), "2026-11-26T00:30:00+08:00"))));
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  // The usage goes back to the payment's own natural day.
  EXPECT_EQ(ledger.DailyUsage(fb::Medium::u_shield, 20261125).amount_minor, 0);
  EXPECT_EQ(ledger.DailyUsage(fb::Medium::u_shield, 20261126).amount_minor, 0);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Reversal, PaymentAfterTheCutOffClosesAtTheNextCutOff) {
  Shop ledger;
  ASSERT_TRUE(
      Accepted(ledger.Submit(At(testing::Pay("M1", "ORD1", "C1", 10'000), "2026-11-25T23:30:00+08:00"))));
  EXPECT_TRUE(Rejected(ledger.Submit(At(testing::Reverse("M1", "ORD1"), "2026-11-26T23:00:00+08:00")),
                       "REVERSAL_WINDOW_CLOSED"));
}

TEST(Reversal, SecondReversalIsAlreadyReversed) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(MixedPay("ORD1"))));
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Reverse("M1", "ORD1"))));
  const auto before = ledger.BusinessState();
  json again = testing::Reverse("M1", "ORD1");
  again["command_id"] = "M1:ORD1:rev-again";
  EXPECT_TRUE(Rejected(ledger.Submit(again), "ALREADY_REVERSED"));
  EXPECT_EQ(ledger.BusinessState(), before);
  EXPECT_EQ(ledger.Balance("C1:points"), 20'000);
}

TEST(Reversal, AfterARefundIsAlreadyRefunded) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(MixedPay("ORD1"))));
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF1", 1'000))));
  const auto before = ledger.BusinessState();
  EXPECT_TRUE(Rejected(ledger.Submit(testing::Reverse("M1", "ORD1")), "ALREADY_REFUNDED"));
  EXPECT_EQ(ledger.BusinessState(), before);
  EXPECT_EQ(ledger.Payment("ORD1").status, fb::PaymentStatus::partially_refunded);
}

// A reversal (冲正) that arrives before its payment (the merchant timed out; the payment is still on its way)
// closes the order: it moves nothing, a second reversal is ALREADY_REVERSED, and the late payment is refused
// ORDER_CLOSED with nothing moved, until closed_order_keep_days (7) have passed.
TEST(Reversal, BeforeItsPaymentClosesTheOrderAndTheLatePaymentIsRefused) {
  Shop ledger;
  const auto before = ledger.BusinessState();
  const std::map<std::string, int64_t> balances = ledger.Balances();
  EXPECT_TRUE(Accepted(ledger.Submit(At(testing::Reverse("M1", "LATE"), "2026-11-25T10:00:00+08:00"))));
  EXPECT_EQ(ledger.Balances(), balances);
  json again = At(testing::Reverse("M1", "LATE"), "2026-11-25T10:00:05+08:00");
  again["command_id"] = "rev-again";
  EXPECT_TRUE(Rejected(ledger.Submit(again), "ALREADY_REVERSED"));
  json late = At(testing::Pay("M1", "LATE", "C1", 10'000), "2026-11-25T10:00:10+08:00");
  EXPECT_TRUE(Rejected(ledger.Submit(late), "ORDER_CLOSED"));
  EXPECT_EQ(ledger.Balances(), balances);
  json much_later = At(testing::Pay("M1", "LATE", "C1", 10'000), "2026-12-02T10:00:01+08:00");
  much_later["command_id"] = "pay-after-a-week";
  EXPECT_TRUE(Accepted(ledger.Submit(much_later)));
  EXPECT_NE(ledger.BusinessState(), before);
}

TEST(Reversal, OfARejectedPaymentClosesTheOrder) {
  Shop ledger;
  ASSERT_TRUE(Rejected(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 2'000'000)), "INSUFFICIENT_FUNDS"));
  EXPECT_TRUE(Accepted(ledger.Submit(testing::Reverse("M1", "ORD1"))));
  json retry = testing::Pay("M1", "ORD1", "C1", 2'000);
  retry["command_id"] = "retry";
  EXPECT_TRUE(Rejected(ledger.Submit(retry), "ORDER_CLOSED"));
}

// ---- refunds ----

TEST(Refund, PartialThenTheRest) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000))));
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF1", 4'000))));
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000 - 10'000 + 4'000);
  EXPECT_EQ(ledger.Payment("ORD1").status, fb::PaymentStatus::partially_refunded);
  EXPECT_EQ(ledger.Payment("ORD1").refunded_amount_minor, 4'000);
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF2", 6'000))));
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 0);
  EXPECT_EQ(ledger.Payment("ORD1").status, fb::PaymentStatus::refunded);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, MoreThanWhatRemainsIsRejectedAndMovesNothing) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(MixedPay("ORD1"))));
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF1", 4'000))));
  const auto before = ledger.BusinessState();
  EXPECT_TRUE(Rejected(ledger.Submit(Refund("ORD1", "RF2", 6'001)), "REFUND_EXCEEDS_REMAINING"));
  EXPECT_EQ(ledger.BusinessState(), before);
  EXPECT_EQ(ledger.Payment("ORD1").refunded_amount_minor, 4'000);
  EXPECT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF3", 6'000))));
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, FirstRefundAboveTheOrderIsRejected) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000))));
  const auto before = ledger.BusinessState();
  EXPECT_TRUE(Rejected(ledger.Submit(Refund("ORD1", "RF1", 10'001)), "REFUND_EXCEEDS_REMAINING"));
  EXPECT_EQ(ledger.BusinessState(), before);
}

TEST(Refund, SplitsProRataAcrossCardPointsAndCoupon) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(MixedPay("ORD1"))));
  const int64_t marketing_paid = ledger.Balance("gl:marketing_expense");
  const int64_t merchant_paid = ledger.Balance("merchant:M1");
  const CommandResult refunded = ledger.Submit(Refund("ORD1", "RF1", 5'000));
  ASSERT_TRUE(Accepted(refunded));
  const fb::PaymentRefundedT event = ledger.RefundEvent(refunded);
  EXPECT_EQ(event.amount_minor, 5'000);
  EXPECT_EQ(event.card_amount_minor, 4'000);
  EXPECT_EQ(event.points, 750);
  EXPECT_EQ(event.points_value_minor, 750);
  EXPECT_EQ(event.coupon_value_minor, 250);
  EXPECT_EQ(event.discount_minor, 0);
  EXPECT_EQ(event.fee_minor, 30);
  EXPECT_FALSE(event.final_refund);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000 - 8'000 + 4'000);
  EXPECT_EQ(ledger.Balance("C1:points"), 20'000 - 1'500 + 750);
  EXPECT_EQ(ledger.Balance("gl:marketing_expense") - marketing_paid, 250);
  EXPECT_EQ(ledger.Balance("merchant:M1") - merchant_paid, -5'000 + 30);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, SplitsTheDiscountProRata) {
  Shop ledger;
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["discount_minor"] = 1'000;
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  const int64_t marketing_paid = ledger.Balance("gl:marketing_expense");
  const CommandResult refunded = ledger.Submit(Refund("ORD1", "RF1", 5'000));
  ASSERT_TRUE(Accepted(refunded));
  const fb::PaymentRefundedT event = ledger.RefundEvent(refunded);
  EXPECT_EQ(event.card_amount_minor, 4'500);
  EXPECT_EQ(event.discount_minor, 500);
  EXPECT_EQ(ledger.Balance("gl:marketing_expense") - marketing_paid, 500);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000 - 9'000 + 4'500);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, RoundingRemainderGoesToTheCardFirst) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(MixedPay("ORD1"))));
  const CommandResult refunded = ledger.Submit(Refund("ORD1", "RF1", 3'333));
  ASSERT_TRUE(Accepted(refunded));
  const fb::PaymentRefundedT event = ledger.RefundEvent(refunded);
  // floor shares: card 2,666.4 -> 2,666, points 499.95 -> 499, coupon 166.65 -> 166; 2 fen left go to the
  // card.
  EXPECT_EQ(event.card_amount_minor, 2'668);
  EXPECT_EQ(event.points, 499);
  EXPECT_EQ(event.coupon_value_minor, 166);
  EXPECT_EQ(
      event.card_amount_minor + event.points_value_minor + event.coupon_value_minor + event.discount_minor,
      3'333);
  EXPECT_EQ(event.fee_minor, 20);  // 60 * 3,333 / 10,000 = 19.998
}

TEST(Refund, FinalRefundTakesExactlyWhatRemainsOfEachTender) {
  Shop ledger;
  const int64_t marketing_before = ledger.Balance("gl:marketing_expense");
  ASSERT_TRUE(Accepted(ledger.Submit(MixedPay("ORD1"))));
  const CommandResult first = ledger.Submit(Refund("ORD1", "RF1", 3'333));
  ASSERT_TRUE(Accepted(first));
  const CommandResult last = ledger.Submit(Refund("ORD1", "RF2", 6'667));
  ASSERT_TRUE(Accepted(last));
  const fb::PaymentRefundedT a = ledger.RefundEvent(first);
  const fb::PaymentRefundedT b = ledger.RefundEvent(last);
  EXPECT_TRUE(b.final_refund);
  EXPECT_EQ(a.card_amount_minor + b.card_amount_minor, 8'000);
  EXPECT_EQ(a.points + b.points, 1'500);
  EXPECT_EQ(a.points_value_minor + b.points_value_minor, 1'500);
  EXPECT_EQ(a.coupon_value_minor + b.coupon_value_minor, 500);
  EXPECT_EQ(a.discount_minor + b.discount_minor, 0);
  EXPECT_EQ(a.fee_minor + b.fee_minor, 60);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("C1:points"), 20'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 0);
  EXPECT_EQ(ledger.Balance("gl:marketing_expense"), marketing_before);
  const fb::PaymentRecordT payment = ledger.Payment("ORD1");
  EXPECT_EQ(payment.status, fb::PaymentStatus::refunded);
  EXPECT_EQ(payment.refunded_card_minor, payment.card_amount_minor);
  EXPECT_EQ(payment.refunded_points, payment.points);
  EXPECT_EQ(payment.refunded_coupon_minor, payment.coupon_value_minor);
  EXPECT_EQ(payment.refunded_fee_minor, payment.fee_minor);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, ManySmallRefundsNeverPassAnyTender) {
  Shop ledger;
  json pay = MixedPay("ORD1");
  pay["discount_minor"] = 333;  // card 7,667
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  for (int i = 1; i <= 7; ++i) {
    ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF" + std::to_string(i), 1'111))));
  }
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF-LAST", 10'000 - 7 * 1'111))));
  const fb::PaymentRecordT payment = ledger.Payment("ORD1");
  EXPECT_EQ(payment.refunded_card_minor, 7'667);
  EXPECT_EQ(payment.refunded_points, 1'500);
  EXPECT_EQ(payment.refunded_coupon_minor, 500);
  EXPECT_EQ(payment.refunded_discount_minor, 333);
  EXPECT_EQ(payment.refunded_fee_minor, 60);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("C1:points"), 20'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, ReturnsTheFeeProRataRoundingHalfUp) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000))));
  const CommandResult refunded = ledger.Submit(Refund("ORD1", "RF1", 2'250));
  ASSERT_TRUE(Accepted(refunded));
  EXPECT_EQ(ledger.RefundEvent(refunded).fee_minor, 14);  // 60 * 2,250 / 10,000 = 13.5
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 60 - 14);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60 - 2'250 + 14);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, MerchantFundedCouponPartIsNotTakenFromTheMerchant) {
  Shop ledger;
  const int64_t marketing_before = ledger.Balance("gl:marketing_expense");
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["coupon"] = "CPM";  // card 9,500; settlement base 9,500; fee 57
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  ASSERT_EQ(ledger.Balance("merchant:M1"), 9'500 - 57);
  const CommandResult first = ledger.Submit(Refund("ORD1", "RF1", 5'000));
  ASSERT_TRUE(Accepted(first));
  const fb::PaymentRefundedT event = ledger.RefundEvent(first);
  EXPECT_EQ(event.card_amount_minor, 4'750);
  EXPECT_EQ(event.coupon_value_minor, 250);
  EXPECT_EQ(event.settlement_minor, 4'750);
  EXPECT_EQ(event.fee_minor, 29);  // 57 * 5,000 / 10,000 = 28.5
  EXPECT_EQ(ledger.Balance("merchant:M1"), 9'500 - 57 - 4'750 + 29);
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF2", 5'000))));
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 0);
  EXPECT_EQ(ledger.Balance("gl:marketing_expense"), marketing_before);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, WalletPaymentIsRefundedToTheScheme) {
  Shop ledger;
  json pay = testing::Pay("M1", "ORD1", "C1", 10'000);
  pay["funding"] = "unionpay";
  pay.erase("account");
  pay.erase("medium");
  ASSERT_TRUE(Accepted(ledger.Submit(pay)));
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF1", 10'000))));
  EXPECT_EQ(ledger.Balance("gl:interbank:unionpay"), 0);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, DoesNotGiveLimitUsageBack) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 500'000, "", "fingerprint"))));
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF1", 500'000))));
  const fb::UsageRecordT usage = ledger.DailyUsage(fb::Medium::fingerprint, 20261125);
  EXPECT_EQ(usage.amount_minor, 500'000);
  EXPECT_EQ(usage.count, 1);
  EXPECT_TRUE(Rejected(ledger.Submit(testing::Pay("M1", "ORD2", "C1", 1, "", "fingerprint")),
                       "LIMIT_DAILY_EXCEEDED"));
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, DoesNotGiveTheCouponBack) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(MixedPay("ORD1"))));
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF1", 10'000))));
  EXPECT_TRUE(ledger.Coupon("CP1").used);
}

TEST(Refund, OnTheLastDayOfTheWindowIsAccepted) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000))));
  json refund = Refund("ORD1", "RF1", 10'000);
  refund["occurred_at"] = testing::At(testing::DefaultTimeNs() + 365 * kNanosPerDay);
  EXPECT_TRUE(Accepted(ledger.Submit(refund)));
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000'000);
}

TEST(Refund, AfterThreeHundredSixtyFiveDaysIsWindowClosed) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000))));
  const auto before = ledger.BusinessState();
  json refund = Refund("ORD1", "RF1", 10'000);
  refund["occurred_at"] = testing::At(testing::DefaultTimeNs() + 365 * kNanosPerDay + kNanosPerSecond);
  EXPECT_TRUE(Rejected(ledger.Submit(refund), "REFUND_WINDOW_CLOSED"));
  EXPECT_EQ(ledger.BusinessState(), before);
}

TEST(Refund, OfAReversedPaymentIsAlreadyReversed) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(MixedPay("ORD1"))));
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Reverse("M1", "ORD1"))));
  const auto before = ledger.BusinessState();
  EXPECT_TRUE(Rejected(ledger.Submit(Refund("ORD1", "RF1", 1'000)), "ALREADY_REVERSED"));
  EXPECT_EQ(ledger.BusinessState(), before);
  EXPECT_EQ(ledger.SumByUnit(), kBalanced);
}

TEST(Refund, ReusedRefundNumberIsADuplicateOrder) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000))));
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF1", 1'000))));
  const auto before = ledger.BusinessState();
  json again = Refund("ORD1", "RF1", 1'000);
  again["command_id"] = "M1:RF1:again";
  EXPECT_TRUE(Rejected(ledger.Submit(again), "DUPLICATE_ORDER"));
  EXPECT_EQ(ledger.BusinessState(), before);
  EXPECT_EQ(ledger.Payment("ORD1").refunded_amount_minor, 1'000);
}

TEST(Refund, RefundNumberIsUniqueAcrossTheMerchantsOrders) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000))));
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD2", "C1", 10'000))));
  ASSERT_TRUE(Accepted(ledger.Submit(Refund("ORD1", "RF1", 1'000))));
  json other = Refund("ORD2", "RF1", 1'000);
  other["command_id"] = "M1:ORD2:RF1";
  EXPECT_TRUE(Rejected(ledger.Submit(other), "DUPLICATE_ORDER"));
  EXPECT_EQ(ledger.Payment("ORD2").refunded_amount_minor, 0);
}

TEST(Refund, UnknownPaymentIsOriginalNotFound) {
  Shop ledger;
  const auto before = ledger.BusinessState();
  EXPECT_TRUE(Rejected(ledger.Submit(Refund("NOPE", "RF1", 1'000)), "ORIGINAL_NOT_FOUND"));
  EXPECT_EQ(ledger.BusinessState(), before);
}

TEST(Refund, NonPositiveAmountIsInvalid) {
  Shop ledger;
  ASSERT_TRUE(Accepted(ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000))));
  const auto before = ledger.BusinessState();
  EXPECT_TRUE(Rejected(ledger.Submit(Refund("ORD1", "RF1", 0)), "INVALID_AMOUNT"));
  EXPECT_TRUE(Rejected(ledger.Submit(Refund("ORD1", "RF2", -5)), "INVALID_AMOUNT"));
  EXPECT_EQ(ledger.BusinessState(), before);
}

}  // namespace
}  // namespace ledger
