// Goal: the bank's clock decides. In system clock mode clearing dates, limit days, coupon expiry and the
// reversal and refund windows follow the ledger time, whatever occurred_at the producer claims (within the
// allowed skew); occurred_at stays in the events as information. With --clock occurred the ledger clock
// follows the input's occurred_at.
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/time.h"
#include "events/event.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::TestLedger;
using Kind = CommandResult::Kind;

constexpr int kDay = 20261125;
constexpr int kNextDay = 20261126;

int64_t At(const char* text) { return *ParseIso8601(text); }

// C1 (C1:debit with 2,000,000 fen) and M1 (fee 60 bps), set up in occurred mode at 10:00 of kDay.
void SetUpShop(TestLedger& ledger) {
  for (const json& command : {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                              testing::Deposit("d1", "C1:debit", 2'000'000)}) {
    ASSERT_EQ(ledger.Submit(command).kind, Kind::kAccepted) << command.dump();
  }
}

json PayAt(const std::string& order, int64_t amount, int64_t occurred_at,
           const std::string& medium = "u_shield") {
  json pay = testing::Pay("M1", order, "C1", amount, "", medium);
  pay["occurred_at"] = testing::At(occurred_at);
  return pay;
}

// The event of `result` (its first), decoded from an aligned copy that `storage` keeps.
const fb::EventBody& EventOf(TestLedger& ledger, const CommandResult& result, std::string* storage) {
  EXPECT_FALSE(result.sequences.empty());
  const std::vector<std::string> records =
      testing::EventRecords(ledger.ledger().store(), result.sequences.front(), result.sequences.front());
  EXPECT_EQ(records.size(), 1u);
  *storage = records.empty() ? std::string() : records.front();
  Result<DecodedEvent> decoded = DecodeEventRecord(*storage);
  EXPECT_TRUE(decoded.ok());
  return *decoded->body;
}

fb::PaymentRecordT Payment(TestLedger& ledger, const std::string& order) {
  fb::PaymentRecordT payment;
  EXPECT_TRUE(LoadRecord(ledger.ledger().store().state(), keys::Payment("M1", order), &payment)) << order;
  return payment;
}

TEST(LedgerClock, PaymentClaimingBeforeTheCutOffClearsOnTheLedgerTimesDate) {
  TestLedger ledger;
  SetUpShop(ledger);
  const int64_t now = At("2026-11-25T23:01:00+08:00");
  const int64_t claimed = At("2026-11-25T22:57:00+08:00");
  ledger.ReopenWithClock(ClockMode::kSystem, now);

  const CommandResult paid = ledger.Submit(PayAt("ORD1", 10'000, claimed));

  ASSERT_EQ(paid.kind, Kind::kAccepted) << paid.ToJson();
  std::string storage;
  const fb::EventBody& event = EventOf(ledger, paid, &storage);
  ASSERT_EQ(event.payload_type(), fb::Payload::PaymentCaptured);
  EXPECT_EQ(event.payload_as_PaymentCaptured()->clearing_date(), kNextDay);
  EXPECT_EQ(event.payload_as_PaymentCaptured()->limit_date(), kDay);
  EXPECT_EQ(event.recorded_at_ns(), now);
  EXPECT_EQ(event.occurred_at_ns(), claimed) << "occurred_at is kept as information";
  EXPECT_EQ(Payment(ledger, "ORD1").clearing_date, kNextDay);
}

TEST(LedgerClock, PaymentClaimingAfterTheCutOffClearsOnTheLedgerTimesDate) {
  TestLedger ledger;
  SetUpShop(ledger);
  ledger.ReopenWithClock(ClockMode::kSystem, At("2026-11-25T22:57:00+08:00"));

  const CommandResult paid = ledger.Submit(PayAt("ORD1", 10'000, At("2026-11-25T23:01:00+08:00")));

  ASSERT_EQ(paid.kind, Kind::kAccepted) << paid.ToJson();
  EXPECT_EQ(Payment(ledger, "ORD1").clearing_date, kDay);
}

TEST(LedgerClock, ReversalClaimingBeforeTheCutOffIsClosedAtLedgerTimeAfterIt) {
  TestLedger ledger;
  SetUpShop(ledger);
  const int64_t paid_at = At("2026-11-25T22:50:00+08:00");
  ledger.ReopenWithClock(ClockMode::kSystem, paid_at);
  ASSERT_EQ(ledger.Submit(PayAt("ORD1", 10'000, paid_at)).kind, Kind::kAccepted);
  const int64_t merchant_before = ledger.Balance("merchant:M1");
  const int64_t customer_before = ledger.Balance("C1:debit");
  ledger.ReopenWithClock(ClockMode::kSystem, At("2026-11-25T23:02:00+08:00"));
  json reverse = testing::Reverse("M1", "ORD1");
  reverse["occurred_at"] = "2026-11-25T22:58:00+08:00";

  const CommandResult reversed = ledger.Submit(reverse);

  EXPECT_EQ(reversed.kind, Kind::kRejected);
  EXPECT_EQ(reversed.reason, reason::kReversalWindowClosed);
  EXPECT_EQ(Payment(ledger, "ORD1").status, fb::PaymentStatus::success);
  EXPECT_EQ(ledger.Balance("merchant:M1"), merchant_before);
  EXPECT_EQ(ledger.Balance("C1:debit"), customer_before);
}

TEST(LedgerClock, ReversalClaimingAfterTheCutOffIsOpenAtLedgerTimeBeforeIt) {
  TestLedger ledger;
  SetUpShop(ledger);
  const int64_t paid_at = At("2026-11-25T22:50:00+08:00");
  ledger.ReopenWithClock(ClockMode::kSystem, paid_at);
  ASSERT_EQ(ledger.Submit(PayAt("ORD1", 10'000, paid_at)).kind, Kind::kAccepted);
  ledger.ReopenWithClock(ClockMode::kSystem, At("2026-11-25T22:59:00+08:00"));
  json reverse = testing::Reverse("M1", "ORD1");
  reverse["occurred_at"] = "2026-11-25T23:03:00+08:00";

  const CommandResult reversed = ledger.Submit(reverse);

  EXPECT_EQ(reversed.kind, Kind::kAccepted) << reversed.ToJson();
  EXPECT_EQ(Payment(ledger, "ORD1").status, fb::PaymentStatus::reversed);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);
  EXPECT_EQ(ledger.Balance("C1:debit"), 2'000'000);
}

// sms allows 5,000.00 a day: a payment decided after midnight counts on the new day, whatever it claims.
TEST(LedgerClock, LimitDayFollowsTheLedgerTime) {
  TestLedger ledger;
  SetUpShop(ledger);
  const int64_t noon = At("2026-11-25T12:00:00+08:00");
  ledger.ReopenWithClock(ClockMode::kSystem, noon);
  ASSERT_EQ(ledger.Submit(PayAt("ORD1", 400'000, noon, "sms")).kind, Kind::kAccepted);
  ledger.ReopenWithClock(ClockMode::kSystem, At("2026-11-26T00:02:00+08:00"));

  const CommandResult paid = ledger.Submit(PayAt("ORD2", 200'000, At("2026-11-25T23:58:00+08:00"), "sms"));

  ASSERT_EQ(paid.kind, Kind::kAccepted) << paid.ToJson();
  EXPECT_EQ(Payment(ledger, "ORD2").limit_date, kNextDay);
  fb::UsageRecordT today;
  const KvReader& state = ledger.ledger().store().state();
  ASSERT_TRUE(LoadRecord(state, keys::DailyUsage("C1", fb::Medium::sms, kNextDay), &today));
  EXPECT_EQ(today.amount_minor, 200'000);
  fb::UsageRecordT yesterday;
  ASSERT_TRUE(LoadRecord(state, keys::DailyUsage("C1", fb::Medium::sms, kDay), &yesterday));
  EXPECT_EQ(yesterday.amount_minor, 400'000) << "the day before keeps only its own payment";
}

TEST(LedgerClock, CouponExpiryFollowsTheLedgerTime) {
  TestLedger ledger;
  SetUpShop(ledger);
  const json coupon = {{"type", "issue_coupon"},
                       {"command_id", "c1"},
                       {"coupon", "CP1"},
                       {"customer", "C1"},
                       {"value_minor", 500},
                       {"funded_by", "bank"},
                       {"expires_at", "2026-11-25T23:59:59+08:00"},
                       {"occurred_at", testing::At(testing::DefaultTimeNs())}};
  ASSERT_EQ(ledger.Submit(coupon).kind, Kind::kAccepted);
  ledger.ReopenWithClock(ClockMode::kSystem, At("2026-11-26T00:01:00+08:00"));
  json late = PayAt("ORD1", 10'000, At("2026-11-25T23:58:00+08:00"));
  late["coupon"] = "CP1";

  const CommandResult expired = ledger.Submit(late);

  EXPECT_EQ(expired.kind, Kind::kRejected);
  EXPECT_EQ(expired.reason, reason::kCouponExpired);
  EXPECT_EQ(ledger.Balance("C1:debit"), 2'000'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);

  // Decided a minute before the expiry, the coupon applies even when the payment claims a later time.
  ledger.ReopenWithClock(ClockMode::kSystem, At("2026-11-25T23:58:00+08:00"));
  json early = PayAt("ORD2", 10'000, At("2026-11-26T00:01:00+08:00"));
  early["coupon"] = "CP1";
  const CommandResult used = ledger.Submit(early);
  EXPECT_EQ(used.kind, Kind::kAccepted) << used.ToJson();
  EXPECT_EQ(ledger.Balance("C1:debit"), 2'000'000 - 9'500);
}

TEST(LedgerClock, RefundWindowIsMeasuredAtLedgerTime) {
  TestLedger ledger;
  SetUpShop(ledger);
  const int64_t paid_at = At("2026-11-25T12:00:00+08:00");
  ledger.ReopenWithClock(ClockMode::kSystem, paid_at);
  ASSERT_EQ(ledger.Submit(PayAt("ORD1", 10'000, paid_at)).kind, Kind::kAccepted);
  const int64_t window_end = paid_at + int64_t{LedgerConfig().refund_window_days} * kNanosPerDay;
  const int64_t merchant_before = ledger.Balance("merchant:M1");

  ledger.ReopenWithClock(ClockMode::kSystem, window_end + kNanosPerMinute);
  json late = testing::Refund("M1", "ORD1", "RF1", 1'000);
  late["occurred_at"] = testing::At(window_end - 3 * kNanosPerMinute);
  const CommandResult closed = ledger.Submit(late);

  EXPECT_EQ(closed.kind, Kind::kRejected);
  EXPECT_EQ(closed.reason, reason::kRefundWindowClosed);
  EXPECT_EQ(ledger.Balance("merchant:M1"), merchant_before);
  EXPECT_EQ(Payment(ledger, "ORD1").refunded_amount_minor, 0);

  ledger.ReopenWithClock(ClockMode::kSystem, window_end - kNanosPerMinute);
  json in_time = testing::Refund("M1", "ORD1", "RF2", 1'000);
  in_time["occurred_at"] = testing::At(window_end + 3 * kNanosPerMinute);
  const CommandResult refunded = ledger.Submit(in_time);
  EXPECT_EQ(refunded.kind, Kind::kAccepted) << refunded.ToJson();
  EXPECT_EQ(Payment(ledger, "ORD1").refunded_amount_minor, 1'000);
}

// --clock occurred (imports, tests, the demo): the input's occurred_at is the time that decides, and the
// event keeps the ledger's own clock as recorded_at.
TEST(LedgerClock, OccurredModeDecidesByTheInputsTime) {
  TestLedger ledger;  // occurred mode, ledger clock fixed at 10:00
  SetUpShop(ledger);
  const int64_t late = At("2026-11-25T23:30:00+08:00");

  const CommandResult paid = ledger.Submit(PayAt("ORD1", 10'000, late));

  ASSERT_EQ(paid.kind, Kind::kAccepted) << paid.ToJson();
  std::string storage;
  const fb::EventBody& event = EventOf(ledger, paid, &storage);
  EXPECT_EQ(event.payload_as_PaymentCaptured()->clearing_date(), kNextDay);
  EXPECT_EQ(event.occurred_at_ns(), late);
  EXPECT_EQ(event.recorded_at_ns(), testing::DefaultTimeNs());
  EXPECT_EQ(Payment(ledger, "ORD1").occurred_at_ns, late);
}

}  // namespace
}  // namespace ledger
