// Goal: N shards are one ledger. The same command stream gives, command for command, the same outcomes and
// reasons at N = 1, 2, 4 and 8, and the same balances (a customer's on its own shard; a merchant's and the
// bank's summed over shards), while a payment whose order and customer live on different shards travels as
// legs: the order shard forwards it, the customer's shard decides it, the order shard answers it. Commands
// that arrive on an order while its payment is away wait (parked) and are decided in arrival order, as one
// shard would. Legs are applied once: a leg delivered again is skipped, a skipped number stops the shard.
//
// The shards are in-process Ledgers; a test "bus" hands each committed leg event to its destination (serve
// does it through ledger.legs: tests/kafka/kafka_shards_test.cc).
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench/workload.h"
#include "core/time.h"
#include "events/event.h"
#include "kafka/kafka.h"
#include "ledger/ledger.h"
#include "ledger/routing.h"
#include "shard_cluster.h"
#include "state/keys.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using Kind = CommandResult::Kind;
using testing::Cluster;
using testing::CustomerOnShard;
using testing::EventOfShard;
using testing::OrderOnShard;
using testing::Outcome;
using testing::OutcomeOf;

std::string At(int64_t ns) { return testing::At(ns); }

// A seeded stream of a payment day: merchants, customers with debit and credit cards, deposits, points,
// limits, payments (some over funds or limits, some by an unknown customer, the same order from two
// customers), reversals, partial and full refunds (some too large), transfers (some to unknown accounts, over
// funds or limits) and exact duplicates.
std::vector<json> RandomStream(uint64_t seed, int payments) {
  std::mt19937_64 random(seed);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<uint64_t>(n)); };
  std::vector<json> stream;
  int64_t time = testing::DefaultTimeNs();
  auto stamp = [&](json command) {
    time += (1 + pick(600)) * kNanosPerSecond;
    command["occurred_at"] = At(time);
    return command;
  };
  const std::vector<std::string> merchants = {"M1", "M2", "M3"};
  stream.push_back(stamp(testing::OpenMerchant("om1", "M1", 60)));
  stream.push_back(stamp(testing::OpenMerchant("om2", "M2", 0)));
  stream.push_back(stamp(testing::OpenMerchant("om3", "M3", 35)));
  const int customers = 12;
  for (int c = 0; c < customers; ++c) {
    const std::string customer = "C" + std::to_string(c);
    stream.push_back(stamp(testing::OpenAccount("oa" + std::to_string(c), customer)));
    stream.push_back(stamp(testing::OpenAccount("oc" + std::to_string(c), customer, "credit_card", 50'000)));
    stream.push_back(
        stamp(testing::Deposit("dp" + std::to_string(c), customer + ":debit", 20'000 + pick(80'000))));
    stream.push_back(stamp(testing::AwardPoints("ap" + std::to_string(c), customer, 1'000 + pick(5'000))));
  }
  const std::vector<std::string> media = {"u_shield", "password_device", "otp_card",
                                          "sms",      "fingerprint",     "password_free"};
  struct Order {
    std::string merchant, order_no;
    int64_t amount;
  };
  std::vector<Order> orders;
  for (int n = 0; n < payments; ++n) {
    const int roll = pick(100);
    const std::string id = std::to_string(n);
    if (roll < 45 || orders.empty()) {
      // A payment: mostly a new order, sometimes an order already used (by whoever paid it, or by another).
      Order order{merchants[pick(3)], "O" + id, 100 + pick(60'000)};
      if (!orders.empty() && pick(10) == 0) order = orders[pick(static_cast<int>(orders.size()))];
      const std::string customer = pick(25) == 0 ? "CX" : "C" + std::to_string(pick(customers));
      const bool credit = pick(4) == 0;
      json pay = testing::Pay(order.merchant, order.order_no, customer, order.amount,
                              customer + (credit ? ":credit" : ":debit"), media[pick(6)]);
      pay["command_id"] = "p" + id;
      if (pick(8) == 0) pay["points"] = 100 * (1 + pick(20));
      orders.push_back(order);
      stream.push_back(stamp(pay));
    } else if (roll < 55) {
      const Order& order = orders[pick(static_cast<int>(orders.size()))];
      json reverse = testing::Reverse(order.merchant, pick(10) == 0 ? "NOPE" + id : order.order_no);
      reverse["command_id"] = "v" + id;
      stream.push_back(stamp(reverse));
    } else if (roll < 70) {
      const Order& order = orders[pick(static_cast<int>(orders.size()))];
      const int64_t amount = pick(3) == 0 ? order.amount : 1 + pick(static_cast<int>(order.amount));
      // Refund numbers name their order: reused only on the same order (see docs/ARCHITECTURE.md, Shards).
      json refund = testing::Refund(order.merchant, order.order_no,
                                    order.order_no + "-R" + std::to_string(pick(3)), amount);
      refund["command_id"] = "r" + id;
      stream.push_back(stamp(refund));
    } else if (roll < 80) {
      const std::string customer = "C" + std::to_string(pick(customers));
      stream.push_back(stamp(testing::Deposit("d" + id, customer + ":debit", 1 + pick(30'000))));
    } else if (roll < 83) {
      json limit = {{"type", "set_customer_limit"},
                    {"command_id", "l" + id},
                    {"customer", "C" + std::to_string(pick(customers))},
                    {"medium", media[pick(6)]},
                    {"daily_minor", 1'000 * (1 + pick(20))}};
      stream.push_back(stamp(limit));
    } else if (roll < 92) {
      // A transfer (C2C): to another customer's debit card or repaying a credit card, sometimes to an account
      // that does not exist, sometimes more than the payer has.
      const std::string from = "C" + std::to_string(pick(customers)) + (pick(5) == 0 ? ":credit" : ":debit");
      const std::string payee = pick(6) == 0 ? "CX" : "C" + std::to_string(pick(customers));
      const std::string to = payee + (pick(4) == 0 ? ":credit" : ":debit");
      if (to == from) continue;
      stream.push_back(stamp(testing::Transfer("t" + id, from, to, 1 + pick(40'000), media[pick(6)])));
    } else {
      stream.push_back(
          stream[stream.size() - 1 - pick(static_cast<int>(std::min<size_t>(stream.size(), 30)))]);
    }
  }
  return stream;
}

// The outcome of every command of `stream` at `shards` shards, in order, and the balances at the end.
struct StreamRun {
  std::vector<Outcome> outcomes;
  std::map<std::string, int64_t> balances;
  // Per clearing date the stream covers, its clearing files (shard-naming transaction ids cut off).
  std::map<int, std::map<std::string, std::string>> clearing;
  int legs = 0;
};

StreamRun RunStream(const std::vector<json>& stream, uint32_t shards) {
  Cluster cluster(shards);
  StreamRun run;
  for (const json& command : stream) run.outcomes.push_back(cluster.Decide(command));
  cluster.ExpectDueAccountsDrained();
  run.balances = testing::WithoutDueAccounts(cluster.Balances());
  // The stream's days, closed on every shard, then cleared over all of them.
  const int first = ClearingDate(testing::DefaultTimeNs(), 480, 23 * 60);
  const int last = AddDays(first, 4);
  cluster.CloseDaysThrough(last);
  for (int date = first; date <= last; date = AddDays(date, 1))
    run.clearing[date] = cluster.ClearingFiles(date);
  run.legs = cluster.legs();
  cluster.ExpectStatesProven();
  return run;
}

void ExpectSameRun(const std::vector<json>& stream, const StreamRun& one, const StreamRun& many,
                   uint32_t shards) {
  ASSERT_EQ(one.outcomes.size(), many.outcomes.size());
  for (size_t i = 0; i < stream.size(); ++i) {
    EXPECT_EQ(many.outcomes[i], one.outcomes[i])
        << "N=" << shards << " command " << i << ": " << stream[i].dump();
  }
  EXPECT_EQ(many.balances, one.balances) << "N=" << shards;
  for (const auto& [date, files] : one.clearing) {
    ASSERT_EQ(many.clearing.count(date), 1u);
    EXPECT_EQ(many.clearing.at(date), files) << "N=" << shards << " clearing date " << date;
  }
}

TEST(ShardsEquivalence, ARandomDayGivesTheSameOutcomesAndBalancesAtOneTwoFourAndEightShards) {
  for (const uint64_t seed : {1u, 2u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    // Not scaled down (as LEDGER_TEST_SCALE does elsewhere): the coverage checks below need a whole day.
    const std::vector<json> stream = RandomStream(seed, 400);
    const StreamRun one = RunStream(stream, 1);
    EXPECT_EQ(one.legs, 0);
    // The stream exercises what it should: accepted and refused payments, reversals and refunds.
    std::map<std::string, int> seen;
    for (const Outcome& outcome : one.outcomes) seen[outcome] += 1;
    for (const char* expected : {"accepted", "rejected INSUFFICIENT_FUNDS", "rejected DUPLICATE_ORDER",
                                 "rejected ORIGINAL_NOT_FOUND", "rejected UNKNOWN_ACCOUNT"}) {
      EXPECT_GT(seen[expected], 0) << expected;
    }
    EXPECT_GT(seen["duplicate"] + seen["duplicate DUPLICATE_ORDER"], 0);
    // The clearing files cover the stream's dates: two with payments at least.
    int dates_with_rows = 0;
    for (const auto& [date, files] : one.clearing) dates_with_rows += files.size() > 1 ? 1 : 0;
    EXPECT_GE(dates_with_rows, 2);
    std::map<std::string, int> transfers;  // outcomes of transfers
    for (size_t i = 0; i < stream.size(); ++i) {
      if (stream[i]["type"] == "transfer") transfers[one.outcomes[i]] += 1;
    }
    for (const char* expected : {"accepted", "rejected UNKNOWN_ACCOUNT", "rejected INSUFFICIENT_FUNDS"})
      EXPECT_GT(transfers[expected], 0) << "transfer " << expected;
    for (const uint32_t shards : {2u, 4u, 8u}) {
      const StreamRun many = RunStream(stream, shards);
      ExpectSameRun(stream, one, many, shards);
      EXPECT_GT(many.legs, 0) << "N=" << shards << ": no payment crossed shards";
      std::cout << "[ figures  ] seed " << seed << " N=" << shards << ": " << stream.size() << " commands, "
                << many.legs << " legs\n";
    }
  }
}

// The demo's day (`ledger demo`, made smaller): customers, merchants, payments with points, coupons and
// discounts, reversals, refunds, duplicates and rule breakers. The same outcomes, balances and clearing files
// at one and four shards.
TEST(ShardsEquivalence, TheDemosDayIsTheSameAtOneAndFourShards) {
  workload::Shape shape;
  shape.customers = 150;
  shape.merchants = 12;
  shape.payments = 1'200;
  std::vector<json> stream;
  for (const std::string& line : workload::MakeDay(shape)) stream.push_back(json::parse(line));
  const StreamRun one = RunStream(stream, 1);
  const StreamRun four = RunStream(stream, 4);
  ExpectSameRun(stream, one, four, 4);
  std::map<std::string, int> seen;
  for (const Outcome& outcome : one.outcomes) seen[outcome] += 1;
  EXPECT_GT(seen["accepted"], static_cast<int>(stream.size()) / 2);
  EXPECT_GT(static_cast<int>(stream.size()) - seen["accepted"], 0);  // some refused or duplicates
  EXPECT_GT(four.legs, 0);
  // The day's clearing: a file per merchant that sold that day, and the summary.
  EXPECT_GT(one.clearing.begin()->second.size(), static_cast<size_t>(shape.merchants) / 2);
  std::cout << "[ figures  ] demo day: " << stream.size() << " commands, N=4: " << four.legs << " legs\n";
}

// A reversal and a second customer's payment arrive on an order while its payment is away: both wait on the
// order shard, answer nothing yet, and are decided in arrival order once the answer is back, as one shard
// decides them.
TEST(ShardsEquivalence, CommandsOnAnOrderInFlightWaitAndAreDecidedInArrivalOrder) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(1, kShards), b = CustomerOnShard(1, kShards, 1);
  const std::string order = OrderOnShard(0, kShards);
  std::vector<json> setup = {testing::OpenMerchant("m", "M1", 60), testing::OpenAccount("oa", a),
                             testing::OpenAccount("ob", b), testing::Deposit("da", a + ":debit", 50'000),
                             testing::Deposit("db", b + ":debit", 50'000)};
  json pay_a = testing::Pay("M1", order, a, 10'000);
  pay_a["command_id"] = "pay-a";
  json reverse = testing::Reverse("M1", order);
  json pay_b = testing::Pay("M1", order, b, 10'000);
  pay_b["command_id"] = "pay-b";
  json pay_again = testing::Pay("M1", order, b, 10'000);
  pay_again["command_id"] = "pay-again";

  Cluster one(1);
  for (const json& command : setup) one.Decide(command);
  std::vector<Outcome> expected;
  for (const json& command : {pay_a, reverse, pay_b, pay_again}) expected.push_back(one.Decide(command));
  EXPECT_EQ(expected, (std::vector<Outcome>{"accepted", "accepted", "rejected DUPLICATE_ORDER",
                                            "rejected DUPLICATE_ORDER"}));

  Cluster cluster(kShards);
  for (const json& command : setup) cluster.Decide(command);
  // All three arrive before any leg moves: the first goes, the others wait; a redelivery of a waiting one
  // waits too (no second parking, no answer).
  EXPECT_EQ(cluster.Send(pay_a).kind, Kind::kPending);
  EXPECT_EQ(cluster.Send(reverse).kind, Kind::kPending);
  EXPECT_EQ(cluster.Send(pay_b).kind, Kind::kPending);
  EXPECT_EQ(cluster.Send(pay_b).kind, Kind::kPending);
  EXPECT_EQ(cluster.FinalOutcome("pay-a"), "no result");
  EXPECT_GT(cluster.DeliverLegs(), 0);
  EXPECT_EQ(cluster.FinalOutcome("pay-a"), expected[0]);
  EXPECT_EQ(cluster.FinalOutcome(reverse["command_id"]), expected[1]);
  EXPECT_EQ(cluster.FinalOutcome("pay-b"), expected[2]);
  EXPECT_EQ(cluster.Decide(pay_again), expected[3]);
  // Answered now: a redelivery is a duplicate with the decision's reason.
  const CommandResult again = cluster.Send(pay_b);
  EXPECT_EQ(OutcomeOf(again.kind, again.reason), "duplicate DUPLICATE_ORDER");
  EXPECT_EQ(cluster.Balances(), one.Balances());
  cluster.ExpectStatesProven();
}

// A leg delivered twice is applied once; a leg whose number skips one stops the shard; a record that is no
// leg for this shard is refused; none of them stages anything.
TEST(ShardsEquivalence, LegsAreAppliedOnceInNumberOrder) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(1, kShards);
  Cluster cluster(kShards);
  for (const json& command : {testing::OpenMerchant("m", "M1", 60), testing::OpenAccount("oa", a),
                              testing::Deposit("da", a + ":debit", 50'000)}) {
    cluster.Decide(command);
  }
  std::vector<std::string> legs;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(cluster.Send(testing::Pay("M1", OrderOnShard(0, kShards, i), a, 1'000)).kind, Kind::kPending);
  }
  for (std::string& record :
       testing::EventRecords(cluster.shard(0).store(), 1, cluster.shard(0).last_sequence())) {
    if (LegAddressOf(*DecodeEventRecord(record)->body)) legs.push_back(std::move(record));
  }
  ASSERT_EQ(legs.size(), 2u);
  Ledger& customer_shard = cluster.shard(1);
  const uint64_t head = customer_shard.last_sequence();
  const Result<bool> skipped = customer_shard.StageLeg(legs[1]);
  EXPECT_EQ(skipped.status().code(), StatusCode::kCorruption) << skipped.status().ToString();
  EXPECT_EQ(customer_shard.StageLeg("not an event").status().code(), StatusCode::kInvalidArgument);
  // Shard 0's own events are no legs for shard 1: its first event (the merchant) is not a leg at all.
  const std::vector<std::string> first = testing::EventRecords(cluster.shard(0).store(), 1, 1);
  EXPECT_EQ(customer_shard.StageLeg(first[0]).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(customer_shard.last_sequence(), head);
  ASSERT_TRUE(customer_shard.StageLeg(legs[0]).ok());
  ASSERT_TRUE(customer_shard.CommitGroup().ok());
  const uint64_t applied = customer_shard.last_sequence();
  EXPECT_GT(applied, head);
  const Result<bool> again = customer_shard.StageLeg(legs[0]);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(customer_shard.last_sequence(), applied);
}

// A leg as shard `source` would send it: an OrderForwarded event for `destination` carrying `command`.
std::string ForgedLeg(uint32_t source, uint32_t destination, uint64_t number, const json& command, bool pays,
                      const std::string& order, bool reserves_code = false) {
  const ParsedCommand parsed = testing::Parse(command.dump());
  flatbuffers::FlatBufferBuilder builder;
  builder.Finish(fb::Command::Pack(builder, &parsed.command));
  fb::OrderForwardedT forwarded;
  forwarded.destination = destination;
  forwarded.number = number;
  forwarded.order = order;
  forwarded.command.assign(builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize());
  forwarded.pays = pays;
  forwarded.reserves_code = reserves_code;
  return EventOfShard(source, parsed.command_id, parsed.fingerprint, std::move(forwarded));
}

// An order waiting on payment code 0x0e… of `customer` (or on none, `code` empty).
json WaitingOn(const std::string& order, const std::string& customer,
               const std::string& code = std::string(32, 'e')) {
  json command = {{"type", "create_order"},
                  {"command_id", "wait-" + order},
                  {"merchant", "M1"},
                  {"merchant_order_no", order},
                  {"amount_minor", 100},
                  {"channel", code.empty() ? "qr_dynamic" : "qr_customer_presented"},
                  {"expires_at", testing::At(testing::DefaultTimeNs() + 60'000'000'000)}};
  if (!code.empty()) {
    command["payment_code"] = code;
    command["payment_code_customer"] = customer;
  }
  return command;
}

// Only a command on an order of the sending shard travels as a leg (a payment claiming an order only to its
// customer's shard, an order reserving a payment code only on its customer's shard): a deposit, a payment for
// an order of another shard or one that pays a fresh order without claiming it, a reservation carrying a
// payment or naming a code of another shard's customer, an order created without reserving its code, is
// refused, nothing staged, and the sender's real
// leg of that number still applies.
TEST(ShardsEquivalence, ALegCarryingAnythingButItsSendersOrderCommandIsRefused) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(1, kShards);
  Cluster cluster(kShards);
  for (const json& command : {testing::OpenMerchant("m", "M1", 60), testing::OpenAccount("oa", a),
                              testing::Deposit("da", a + ":debit", 50'000)}) {
    cluster.Decide(command);
  }
  Ledger& target = cluster.shard(1);
  const uint64_t head = target.last_sequence();
  const std::string own_order = OrderOnShard(0, kShards), foreign_order = OrderOnShard(1, kShards);
  const std::vector<std::string> forged = {
      ForgedLeg(0, 1, 1, testing::Deposit("smuggled", a + ":debit", 1'000'000), false, "M1/" + own_order),
      ForgedLeg(0, 1, 1, testing::Pay("M1", foreign_order, a, 100), true, "M1/" + foreign_order),
      ForgedLeg(0, 1, 1, testing::Pay("M1", own_order, a, 100), false, "M1/" + own_order),
      ForgedLeg(0, 1, 1, testing::Pay("M1", own_order, a, 100), true, "M1/elsewhere"),
      ForgedLeg(0, 1, 1, testing::Pay("M1", own_order, a, 100), true, "M1/" + own_order, true),
      ForgedLeg(0, 1, 1, WaitingOn(own_order, CustomerOnShard(0, kShards)), false, "M1/" + own_order, true),
      ForgedLeg(0, 1, 1, WaitingOn(own_order, a, ""), false, "M1/" + own_order, true),
      ForgedLeg(0, 1, 1, WaitingOn(own_order, a), false, "M1/" + own_order),  // creates, reserving nothing
  };
  for (const std::string& leg : forged) {
    EXPECT_EQ(target.StageLeg(leg).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(target.last_sequence(), head);
  }
  EXPECT_EQ(cluster.Decide(testing::Pay("M1", own_order, a, 100)), "accepted");
  EXPECT_EQ(cluster.Balances()[keys::Balance(a + ":debit")], 50'000 - 100);
  cluster.ExpectStatesProven();
}

// A reversal that arrives before its payment closes the order on the order shard; the late payment, whose
// customer lives on another shard, is refused there ORDER_CLOSED without travelling, as one shard refuses it.
TEST(ShardsEquivalence, AReversalBeforeItsPaymentClosesTheOrderOnItsShard) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(1, kShards);
  const std::string order = OrderOnShard(0, kShards);
  const std::vector<json> stream = {testing::OpenMerchant("m", "M1", 60), testing::OpenAccount("oa", a),
                                    testing::Deposit("da", a + ":debit", 50'000),
                                    testing::Reverse("M1", order), testing::Pay("M1", order, a, 1'000)};
  const StreamRun one = RunStream(stream, 1);
  EXPECT_EQ(one.outcomes.back(), "rejected ORDER_CLOSED");
  const StreamRun two = RunStream(stream, kShards);
  ExpectSameRun(stream, one, two, kShards);
  EXPECT_EQ(two.legs, 0);
}

// An answer from shard `source` to `destination` for order `order`, as if it answered leg `answers` of the
// command `command_id` with `fingerprint`: accepted.
std::string ForgedAnswer(uint32_t source, uint32_t destination, uint64_t answers, const std::string& order,
                         const std::string& command_id, const Digest& fingerprint) {
  fb::OrderAnsweredT answered;
  answered.destination = destination;
  answered.number = 1;
  answered.answers = answers;
  answered.order = order;
  answered.accepted = true;
  return EventOfShard(source, command_id, fingerprint, std::move(answered));
}

// An answer must name the command in flight on its order: another leg number, another command id or another
// fingerprint is refused with nothing staged, and the real answer settles the order afterwards.
TEST(ShardsEquivalence, AnAnswerMustNameTheCommandInFlight) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(1, kShards);
  const std::string order = OrderOnShard(0, kShards);
  Cluster cluster(kShards);
  for (const json& command : {testing::OpenMerchant("m", "M1", 60), testing::OpenAccount("oa", a),
                              testing::Deposit("da", a + ":debit", 50'000)}) {
    cluster.Decide(command);
  }
  const json pay = testing::Pay("M1", order, a, 1'000);
  const ParsedCommand parsed = testing::Parse(pay.dump());
  ASSERT_EQ(cluster.Send(pay).kind, Kind::kPending);
  Ledger& order_shard = cluster.shard(0);
  const uint64_t head = order_shard.last_sequence();
  Digest other = parsed.fingerprint;
  other[0] ^= 1;
  for (const std::string& forged :
       {ForgedAnswer(1, 0, 2, "M1/" + order, parsed.command_id, parsed.fingerprint),
        ForgedAnswer(1, 0, 1, "M1/" + order, "someone-else", parsed.fingerprint),
        ForgedAnswer(1, 0, 1, "M1/" + order, parsed.command_id, other)}) {
    EXPECT_EQ(order_shard.StageLeg(forged).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(order_shard.last_sequence(), head);
  }
  EXPECT_GT(cluster.DeliverLegs(), 0);
  EXPECT_EQ(cluster.FinalOutcome(parsed.command_id), "accepted");
  cluster.ExpectStatesProven();
}

}  // namespace
}  // namespace ledger
