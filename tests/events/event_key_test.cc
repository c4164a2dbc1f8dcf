// The Kafka record key of each kind of event (events/event.h: EventKey): the customer the event concerns, the
// merchant for a merchant's own events, nothing for events about the ledger itself. A rejection carries the
// parties the write side routed it to (ledger/routing.h) and is keyed by its customer, else its merchant.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "events/event.h"

namespace ledger {
namespace {

// EventKey of an event carrying `payload`, read back from its encoded record.
template <typename PayloadT>
std::string KeyOf(PayloadT payload) {
  fb::EventBodyT body;
  body.sequence = 1;
  body.payload.Set(std::move(payload));
  Digest hash;
  const std::string record = EncodeEventRecord(body, kGenesisHash, &hash);
  Result<DecodedEvent> decoded = DecodeEventRecord(record);
  EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
  return decoded.ok() ? EventKey(*decoded->body) : std::string("<undecodable>");
}

// Sets the customer and the merchant where the payload has them.
template <typename PayloadT>
PayloadT About(std::string customer, std::string merchant) {
  PayloadT payload;
  if constexpr (requires { payload.customer; }) payload.customer = std::move(customer);
  if constexpr (requires { payload.merchant; }) payload.merchant = std::move(merchant);
  return payload;
}

TEST(EventKey, CustomerEventsAreKeyedByTheirCustomer) {
  EXPECT_EQ(KeyOf(About<fb::AccountOpenedT>("C1", "M1")), "C1");
  EXPECT_EQ(KeyOf(About<fb::FundsDepositedT>("C1", "M1")), "C1");
  EXPECT_EQ(KeyOf(About<fb::PointsAwardedT>("C1", "M1")), "C1");
  EXPECT_EQ(KeyOf(About<fb::CouponIssuedT>("C1", "M1")), "C1");
  EXPECT_EQ(KeyOf(About<fb::CustomerLimitSetT>("C1", "M1")), "C1");
  EXPECT_EQ(KeyOf(About<fb::PaymentCapturedT>("C1", "M1")), "C1");
  EXPECT_EQ(KeyOf(About<fb::PointsDeductedT>("C1", "M1")), "C1");
  EXPECT_EQ(KeyOf(About<fb::CouponRedeemedT>("C1", "M1")), "C1");
  EXPECT_EQ(KeyOf(About<fb::PaymentReversedT>("C1", "M1")), "C1");
  EXPECT_EQ(KeyOf(About<fb::PaymentRefundedT>("C1", "M1")), "C1");
  // Without a customer a payment is still not keyed by its merchant: only rejections fall back to it.
  EXPECT_EQ(KeyOf(About<fb::PaymentCapturedT>("", "M1")), "");
}

TEST(EventKey, AMerchantsOpeningIsKeyedByTheMerchant) {
  EXPECT_EQ(KeyOf(About<fb::MerchantOpenedT>("C1", "M1")), "M1");
}

TEST(EventKey, ARejectionIsKeyedByItsCustomerElseItsMerchant) {
  EXPECT_EQ(KeyOf(About<fb::CommandRejectedT>("C1", "M1")), "C1");
  EXPECT_EQ(KeyOf(About<fb::CommandRejectedT>("", "M1")), "M1");
  EXPECT_EQ(KeyOf(About<fb::CommandRejectedT>("", "")), "");
}

TEST(EventKey, LedgerEventsHaveNoKey) {
  EXPECT_EQ(KeyOf(fb::CheckpointRecordedT()), "");
  fb::ReconciliationRecordedT reconciliation;
  reconciliation.merchant = "M1";
  EXPECT_EQ(KeyOf(std::move(reconciliation)), "");
  EXPECT_EQ(KeyOf(fb::CommandsSkippedT()), "");
}

}  // namespace
}  // namespace ledger
