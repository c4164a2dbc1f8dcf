// Who a command is about (ledger/routing.h), and that a rejection's Kafka record key follows it.
#include "ledger/routing.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "events/event.h"
#include "state/keys.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using Kind = CommandResult::Kind;
using nlohmann::json;

// A state holding account C7:debit of customer C7 and payment M1/O1 of customer C7.
class RoutingState {
 public:
  RoutingState() {
    fb::AccountRecordT account;
    account.customer = "C7";
    SaveRecord(state_, keys::Account("C7:debit"), account);
    fb::PaymentRecordT payment;
    payment.customer = "C7";
    SaveRecord(state_, keys::Payment("M1", "O1"), payment);
  }
  CommandParties Of(const json& command) const { return RoutingOf(testing::Parse(command.dump()), state_); }

 private:
  EmptyReader empty_;
  Overlay state_{empty_};
};

void ExpectParties(const CommandParties& parties, const std::string& customer, const std::string& merchant) {
  EXPECT_EQ(parties.customer, customer);
  EXPECT_EQ(parties.merchant, merchant);
}

TEST(Routing, CommandsThatNameTheirPartiesNeedNoState) {
  const RoutingState state;
  ExpectParties(state.Of(testing::Pay("M2", "O9", "C2", 100, "C2:debit")), "C2", "M2");
  ExpectParties(state.Of(testing::OpenAccount("a1", "C3")), "C3", "");
  ExpectParties(state.Of(testing::OpenMerchant("m1", "M4", 60)), "", "M4");
  ExpectParties(state.Of(testing::AwardPoints("p1", "C5", 10)), "C5", "");
  ExpectParties(state.Of(json{{"type", "issue_coupon"},
                              {"command_id", "k1"},
                              {"coupon", "K1"},
                              {"customer", "C6"},
                              {"value_minor", 100},
                              {"funded_by", "bank"},
                              {"expires_at", "2027-01-01T00:00:00+08:00"}}),
                "C6", "");
  ExpectParties(state.Of(json{{"type", "set_customer_limit"},
                              {"command_id", "l1"},
                              {"customer", "C8"},
                              {"medium", "sms"},
                              {"daily_minor", 100}}),
                "C8", "");
}

TEST(Routing, ADepositIsAboutItsAccountsCustomer) {
  const RoutingState state;
  ExpectParties(state.Of(testing::Deposit("d1", "C7:debit", 100)), "C7", "");
  // No such account: the account id stands in for the customer.
  ExpectParties(state.Of(testing::Deposit("d2", "C9:debit", 100)), "C9:debit", "");
}

TEST(Routing, AReverseOrRefundIsAboutThePaymentsCustomer) {
  const RoutingState state;
  ExpectParties(state.Of(testing::Reverse("M1", "O1")), "C7", "M1");
  ExpectParties(state.Of(testing::Refund("M1", "O1", "R1", 50)), "C7", "M1");
  // No such payment: only the merchant is known.
  ExpectParties(state.Of(testing::Reverse("M1", "O2")), "", "M1");
  ExpectParties(state.Of(testing::Refund("M1", "O2", "R1", 50)), "", "M1");
}

TEST(Routing, ACommandAboutNoOneIsAboutItsCommandId) {
  const RoutingState state;
  ExpectParties(state.Of(json{{"type", "close_account"}, {"command_id", "x-17"}}), "", "x-17");
  // A malformed body that names no one.
  ExpectParties(
      state.Of(json{{"type", "open_merchant"}, {"command_id", "x-18"}, {"name", "N"}, {"fee_bps", 60}}), "",
      "x-18");
}

ParsedCommand Parsed(const json& command) { return testing::Parse(command.dump()); }

// Every command has one owner: a customer's commands go by the customer (a deposit by its account's
// customer), an order's commands by merchant and order number whoever pays, reference data to every shard.
TEST(Routing, EachCommandGoesToTheShardOfItsOwner) {
  const ParsedCommand open = Parsed(testing::OpenAccount("s-1", "C7"));
  ASSERT_FALSE(open.malformed.has_value());
  EXPECT_EQ(OwnerOf(open).kind, OwnerKind::kCustomer);
  // FNV-1a (32 bits) of "C7" is 0x89da311f = 2312778015: % 4 == 3, % 3 == 0.
  EXPECT_EQ(ShardOfKey("C7", 4), 3u);
  EXPECT_EQ(ShardOfKey("C7", 3), 0u);
  EXPECT_EQ(ShardsFor(open, 4), std::vector<uint32_t>{3});
  EXPECT_EQ(ShardsFor(open, 1), std::vector<uint32_t>{0});
  for (const json& customers :
       {testing::Deposit("s-2", "C7:debit", 100), testing::AwardPoints("s-3", "C7", 5)}) {
    EXPECT_EQ(ShardsFor(Parsed(customers), 4), std::vector<uint32_t>{3}) << customers.dump();
  }
  // One order: the same shard for its payment by any customer, its reversal and its refund.
  const uint32_t order_shard = ShardOfKey(OrderKey("M1", "O1"), 8);
  for (const json& order : {testing::Pay("M1", "O1", "C7", 100), testing::Pay("M1", "O1", "C8", 100),
                            testing::Reverse("M1", "O1"), testing::Refund("M1", "O1", "R1", 50)}) {
    const ParsedCommand parsed = Parsed(order);
    ASSERT_FALSE(parsed.malformed.has_value()) << order.dump();
    EXPECT_EQ(OwnerOf(parsed).kind, OwnerKind::kOrder);
    EXPECT_EQ(ShardsFor(parsed, 8), std::vector<uint32_t>{order_shard}) << order.dump();
  }
  EXPECT_EQ(ShardsFor(Parsed(testing::OpenMerchant("s-4", "M1", 60)), 3), (std::vector<uint32_t>{0, 1, 2}));
  // A line that cannot be read is recorded wherever it lands.
  const ParsedCommand malformed =
      Parsed(json{{"type", "open_account"}, {"command_id", "s-5"}, {"customer", "C7"}});
  ASSERT_TRUE(malformed.malformed.has_value());
  EXPECT_TRUE(OwnedBy(malformed, 2, 4));
  EXPECT_TRUE(OwnedBy(malformed, 0, 4));
}

// A large merchant's orders spread over every shard: no merchant makes one shard hot.
TEST(Routing, OneMerchantsOrdersSpreadOverAllShards) {
  constexpr int kOrders = 4000;
  constexpr uint32_t kShards = 8;
  std::vector<int> per_shard(kShards);
  for (int i = 0; i < kOrders; ++i)
    per_shard[ShardOfKey(OrderKey("12306", "T" + std::to_string(i)), kShards)]++;
  for (uint32_t shard = 0; shard < kShards; ++shard) {
    // 500 expected each; a binomial standard deviation is about 21.
    EXPECT_GT(per_shard[shard], 400) << "shard " << shard;
    EXPECT_LT(per_shard[shard], 600) << "shard " << shard;
  }
}

// A shard refuses a command another shard owns: recorded as WRONG_SHARD, nothing moved, and the same command
// again gets the same answer; what it owns, and reference data, it applies.
TEST(Routing, AShardRefusesACommandItDoesNotOwnAndMovesNothing) {
  LedgerConfig config;
  config.shards = 4;
  config.shard = 2;
  testing::TestLedger ledger(config);
  // Customers C7 (shard 3 of 4) and one this shard owns.
  std::string own_customer;
  for (int i = 0; own_customer.empty(); ++i) {
    if (ShardOfKey("K" + std::to_string(i), 4) == 2) own_customer = "K" + std::to_string(i);
  }
  ASSERT_EQ(ledger.Submit(testing::OpenMerchant("m1", "M1", 60)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(testing::OpenAccount("a1", own_customer)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(testing::Deposit("d1", own_customer + ":debit", 5'000)).kind, Kind::kAccepted);

  const CommandResult foreign = ledger.Submit(testing::OpenAccount("a2", "C7"));
  EXPECT_EQ(foreign.kind, Kind::kRejected);
  EXPECT_EQ(foreign.reason, "WRONG_SHARD");
  EXPECT_EQ(foreign.detail, "customer C7 belongs to shard 3 of 4; this is shard 2");
  const CommandResult deposit = ledger.Submit(testing::Deposit("d2", "C7:debit", 5'000));
  EXPECT_EQ(deposit.reason, "WRONG_SHARD");
  EXPECT_EQ(ledger.Balance("C7:debit"), 0);
  EXPECT_EQ(ledger.Balance(own_customer + ":debit"), 5'000);
  // Recorded: each rejection is an event of its own.
  EXPECT_GT(deposit.sequences.at(0), foreign.sequences.at(0));
  const CommandResult again = ledger.Submit(testing::OpenAccount("a2", "C7"));
  EXPECT_EQ(again.kind, Kind::kDuplicate);
  EXPECT_EQ(again.reason, "WRONG_SHARD");
}

// The Kafka record key of the event a command produced (its only event).
std::string KeyOfOnlyEvent(testing::TestLedger& ledger, const CommandResult& result) {
  EXPECT_EQ(result.sequences.size(), 1u);
  if (result.sequences.size() != 1) return {};
  const std::vector<std::string> records =
      testing::EventRecords(ledger.ledger().store(), result.sequences[0], result.sequences[0]);
  EXPECT_EQ(records.size(), 1u);
  if (records.size() != 1) return {};
  Result<DecodedEvent> decoded = DecodeEventRecord(records[0]);
  EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
  if (!decoded.ok()) return {};
  EXPECT_EQ(decoded->body->payload_type(), fb::Payload::CommandRejected);
  return EventKey(*decoded->body);
}

// A rejection lands where the events of the customer it concerns land: its key is the customer, else the
// merchant, else the command id.
TEST(Routing, ARejectionsRecordKeyIsItsRoutingCustomerElseMerchant) {
  testing::TestLedger ledger;
  for (const json& setup : {testing::OpenAccount("a1", "C7"), testing::OpenMerchant("m1", "M1", 60),
                            testing::Deposit("d1", "C7:debit", 1'000)}) {
    ASSERT_EQ(ledger.Submit(setup).kind, Kind::kAccepted);
  }
  const CommandResult overdraft = ledger.Submit(testing::Pay("M1", "O1", "C7", 5'000, "C7:debit"));
  ASSERT_EQ(overdraft.kind, Kind::kRejected);
  EXPECT_EQ(KeyOfOnlyEvent(ledger, overdraft), "C7");

  json zero_deposit = testing::Deposit("d2", "C7:debit", 1);
  zero_deposit["amount_minor"] = 0;
  const CommandResult deposit = ledger.Submit(zero_deposit);
  ASSERT_EQ(deposit.kind, Kind::kRejected);
  EXPECT_EQ(KeyOfOnlyEvent(ledger, deposit), "C7");

  const CommandResult refund = ledger.Submit(testing::Refund("M1", "O404", "R1", 10));
  ASSERT_EQ(refund.kind, Kind::kRejected);
  EXPECT_EQ(KeyOfOnlyEvent(ledger, refund), "M1");

  const CommandResult unknown = ledger.SubmitLine(R"({"type":"close_account","command_id":"x-1"})");
  ASSERT_EQ(unknown.kind, Kind::kRejected);
  EXPECT_EQ(KeyOfOnlyEvent(ledger, unknown), "x-1");
}

}  // namespace
}  // namespace ledger
