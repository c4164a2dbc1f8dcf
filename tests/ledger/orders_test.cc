// Goal: an order that waits for its customer (create_order; the gateway's native orders) is paid once, by its
// own amount, before it expires, and never after the merchant closed it; close_order never closes a paid
// order; and each refusal moves nothing.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "ledger/command.h"
#include "ledger/ledger.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::At;
using testing::DefaultTimeNs;
using testing::TestLedger;
using Kind = CommandResult::Kind;

constexpr int64_t kMinute = 60LL * 1'000'000'000;

json CreateOrder(const std::string& id, const std::string& order, int64_t amount, int64_t expires_at_ns) {
  return {{"type", "create_order"},
          {"command_id", id},
          {"merchant", "M1"},
          {"merchant_order_no", order},
          {"amount_minor", amount},
          {"channel", "qr_dynamic"},
          {"description", "ticket"},
          {"expires_at", At(expires_at_ns)},
          {"occurred_at", At(DefaultTimeNs())}};
}

json CloseOrder(const std::string& id, const std::string& order) {
  return {{"type", "close_order"},
          {"command_id", id},
          {"merchant", "M1"},
          {"merchant_order_no", order},
          {"occurred_at", At(DefaultTimeNs())}};
}

json PayAt(const std::string& order, int64_t amount, int64_t at_ns) {
  json pay = testing::Pay("M1", order, "C1", amount, "", "u_shield");
  pay["occurred_at"] = At(at_ns);
  pay["command_id"] = "pay-" + order + "-" + std::to_string(amount) + "-" + std::to_string(at_ns);
  return pay;
}

class Orders : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const json& command : {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                                testing::Deposit("d1", "C1:debit", 100'000)}) {
      ASSERT_EQ(ledger_.Submit(command).kind, Kind::kAccepted) << command.dump();
    }
  }
  bool HasOrder(const std::string& order) {
    fb::OrderRecordT record;
    return LoadRecord(ledger_.ledger().store().state(), keys::Order("M1", order), &record);
  }
  TestLedger ledger_;
};

TEST_F(Orders, AnOrderIsPaidOnceByItsAmountBeforeItExpires) {
  const int64_t expires = DefaultTimeNs() + 30 * kMinute;
  EXPECT_EQ(ledger_.Submit(CreateOrder("o0", "N1", 0, expires)).reason, reason::kInvalidAmount);
  EXPECT_EQ(ledger_.Submit(CreateOrder("o1", "N1", 5'000, DefaultTimeNs())).reason, reason::kOrderExpired);
  EXPECT_FALSE(HasOrder("N1"));
  ASSERT_EQ(ledger_.Submit(CreateOrder("o2", "N1", 5'000, expires)).kind, Kind::kAccepted);
  EXPECT_TRUE(HasOrder("N1"));
  EXPECT_EQ(ledger_.Submit(CreateOrder("o3", "N1", 5'000, expires)).reason, reason::kDuplicateOrder);
  EXPECT_EQ(ledger_.Submit(PayAt("N1", 4'000, DefaultTimeNs())).reason, reason::kInvalidAmount);
  EXPECT_EQ(ledger_.Balance("C1:debit"), 100'000);
  ASSERT_EQ(ledger_.Submit(PayAt("N1", 5'000, DefaultTimeNs() + kMinute)).kind, Kind::kAccepted);
  EXPECT_EQ(ledger_.Balance("C1:debit"), 95'000);
  EXPECT_EQ(ledger_.Submit(CloseOrder("c1", "N1")).reason, reason::kOrderPaid);
  EXPECT_EQ(ledger_.Submit(CreateOrder("o4", "N1", 5'000, expires)).reason, reason::kDuplicateOrder);

  ASSERT_EQ(ledger_.Submit(CreateOrder("o5", "N2", 7'000, expires)).kind, Kind::kAccepted);
  EXPECT_EQ(ledger_.Submit(PayAt("N2", 7'000, expires)).reason, reason::kOrderExpired);
  EXPECT_EQ(ledger_.Balance("C1:debit"), 95'000);
}

TEST_F(Orders, AClosedOrderIsNeverPaidAndAnUnknownOneCannotBeClosed) {
  EXPECT_EQ(ledger_.Submit(CloseOrder("c0", "N9")).reason, reason::kOriginalNotFound);
  ASSERT_EQ(ledger_.Submit(CreateOrder("o1", "N3", 5'000, DefaultTimeNs() + 30 * kMinute)).kind,
            Kind::kAccepted);
  ASSERT_EQ(ledger_.Submit(CloseOrder("c1", "N3")).kind, Kind::kAccepted);
  EXPECT_EQ(ledger_.Submit(CloseOrder("c1", "N3")).kind, Kind::kDuplicate);
  EXPECT_EQ(ledger_.Submit(CloseOrder("c2", "N3")).reason, reason::kOrderClosed);
  EXPECT_EQ(ledger_.Submit(PayAt("N3", 5'000, DefaultTimeNs() + kMinute)).reason, reason::kOrderClosed);
  EXPECT_EQ(ledger_.Balance("C1:debit"), 100'000);
  json other_channel = CreateOrder("o2", "N4", 5'000, DefaultTimeNs() + kMinute);
  other_channel["channel"] = "b2c_pc";
  const Result<ParsedCommand> parsed = ParseCommandJson(other_channel.dump());
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->malformed.has_value());
}

}  // namespace
}  // namespace ledger
