// Goal: an order that waits for its customer (create_order; the gateway's native orders) is paid once, by its
// own amount, before it expires, and never after the merchant closed it; close_order never closes a paid
// order; and each refusal moves nothing.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "events/event.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "shard_cluster.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::At;
using testing::Cluster;
using testing::CustomerOnShard;
using testing::DefaultTimeNs;
using testing::OrderOnShard;
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

json PayAt(const std::string& order, int64_t amount, int64_t at_ns, const std::string& customer = "C1") {
  json pay = testing::Pay("M1", order, customer, amount, "", "u_shield");
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

// The customer's shard decides a payment of another shard's order but cannot see the order: the order's shard
// refuses a payment of the wrong amount or after the expiry before it forwards it, as one shard would.
TEST(OrdersAcrossShards, AnOrderIsPaidByItsAmountBeforeItExpiresWhicheverShardItsCustomerIsOn) {
  Cluster cluster(2);
  const std::string customer = CustomerOnShard(1, 2);
  const std::string late = OrderOnShard(0, 2);
  const std::string paid = OrderOnShard(0, 2, 1);
  for (const json& command : {testing::OpenMerchant("m1", "M1", 60), testing::OpenAccount("a1", customer),
                              testing::Deposit("d1", customer + ":debit", 100'000)}) {
    ASSERT_EQ(cluster.Decide(command), "accepted") << command.dump();
  }
  const int64_t expires = DefaultTimeNs() + 30 * kMinute;
  for (const std::string& order : {late, paid}) {
    json create = CreateOrder("o-" + order, order, 7'000, expires);
    create["notify_url"] = "https://shop.example/notify/" + order;
    ASSERT_EQ(cluster.Decide(create), "accepted");
  }
  EXPECT_EQ(cluster.Decide(PayAt(late, 7'000, expires, customer)), "rejected ORDER_EXPIRED");
  EXPECT_EQ(cluster.Decide(PayAt(paid, 6'000, DefaultTimeNs(), customer)), "rejected INVALID_AMOUNT");
  EXPECT_EQ(cluster.BalanceOn(1, customer + ":debit"), 100'000);
  EXPECT_EQ(cluster.Decide(PayAt(paid, 7'000, DefaultTimeNs() + kMinute, customer)), "accepted");
  EXPECT_EQ(cluster.BalanceOn(1, customer + ":debit"), 93'000);
  // The customer's shard records the payment with the order's notify_url, which the leg carried.
  std::vector<std::string> urls;
  for (const std::string& record :
       testing::EventRecords(cluster.shard(1).store(), 1, cluster.shard(1).last_sequence())) {
    const Result<DecodedEvent> event = DecodeEventRecord(record);
    ASSERT_TRUE(event.ok());
    if (const auto* captured = event->body->payload_as_PaymentCaptured())
      urls.push_back(StringOf(captured->notify_url()));
  }
  EXPECT_EQ(urls, std::vector<std::string>{"https://shop.example/notify/" + paid});
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

// The notify_url of a waiting order travels with its payment's event, a refund's with the refund's: what the
// gateway's notifier reads. Only https URLs of at most 256 visible characters are commands.
TEST_F(Orders, TheNotifyUrlsOfAnOrderAndARefundAreRecordedWithThePaymentAndTheRefund) {
  constexpr char kPayUrl[] = "https://shop.example/notify/N5";
  constexpr char kRefundUrl[] = "https://shop.example/notify/R5";
  json order = CreateOrder("o1", "N5", 5'000, DefaultTimeNs() + 30 * kMinute);
  for (const std::string& bad :
       std::vector<std::string>{"http://shop.example/n", "https://", "https://shop example/n",
                                "https://" + std::string(250, 'h')}) {
    order["notify_url"] = bad;
    const Result<ParsedCommand> parsed = ParseCommandJson(order.dump());
    ASSERT_TRUE(parsed.ok());
    EXPECT_TRUE(parsed->malformed.has_value()) << bad;
  }
  order["notify_url"] = kPayUrl;
  ASSERT_EQ(ledger_.Submit(order).kind, Kind::kAccepted);
  ASSERT_EQ(ledger_.Submit(PayAt("N5", 5'000, DefaultTimeNs() + kMinute)).kind, Kind::kAccepted);
  json refund = testing::Refund("M1", "N5", "R5", 2'000);
  refund["notify_url"] = kRefundUrl;
  ASSERT_EQ(ledger_.Submit(refund).kind, Kind::kAccepted);
  ASSERT_EQ(ledger_.Submit(PayAt("N6", 1'000, DefaultTimeNs() + kMinute)).kind, Kind::kAccepted);

  std::vector<std::pair<std::string, std::string>> urls;  // (event type, notify_url) of every event with one
  ASSERT_TRUE(ledger_.ledger()
                  .store()
                  .ScanEvents(1, UINT64_MAX,
                              [&](uint64_t, std::string_view record) {
                                Result<DecodedEvent> event = DecodeEventRecord(record);
                                EXPECT_TRUE(event.ok());
                                if (!event.ok()) return false;
                                const fb::EventBody& body = *event->body;
                                if (const auto* created = body.payload_as_OrderCreated())
                                  urls.emplace_back("OrderCreated", StringOf(created->notify_url()));
                                if (const auto* paid = body.payload_as_PaymentCaptured())
                                  urls.emplace_back("PaymentCaptured", StringOf(paid->notify_url()));
                                if (const auto* refunded = body.payload_as_PaymentRefunded())
                                  urls.emplace_back("PaymentRefunded", StringOf(refunded->notify_url()));
                                return true;
                              })
                  .ok());
  const std::vector<std::pair<std::string, std::string>> expected = {{"OrderCreated", kPayUrl},
                                                                     {"PaymentCaptured", kPayUrl},
                                                                     {"PaymentRefunded", kRefundUrl},
                                                                     {"PaymentCaptured", ""}};
  EXPECT_EQ(urls, expected);
}

}  // namespace
}  // namespace ledger
