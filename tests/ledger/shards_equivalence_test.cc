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

#include "core/time.h"
#include "events/event.h"
#include "kafka/kafka.h"
#include "ledger/ledger.h"
#include "ledger/routing.h"
#include "state/keys.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using Kind = CommandResult::Kind;

// What a command came to: "accepted", "rejected REASON" or "duplicate REASON".
using Outcome = std::string;

std::string OutcomeOf(Kind kind, const std::string& reason) {
  const char* name = kind == Kind::kAccepted   ? "accepted"
                     : kind == Kind::kRejected ? "rejected"
                                               : "duplicate";
  return reason.empty() ? std::string(name) : std::string(name) + " " + reason;
}

// N in-process shards of one ledger, with every leg delivered as soon as it is committed (closed loop) or on
// request.
class Cluster {
 public:
  explicit Cluster(uint32_t shards) : shards_(shards) {
    for (uint32_t shard = 0; shard < shards; ++shard) {
      LedgerOptions options;
      options.data_dir = dir_.path() + "/shard" + std::to_string(shard);
      options.config.shard = shard;
      options.config.shards = shards;
      options.clock = ClockMode::kOccurred;
      options.fixed_now_ns = testing::DefaultTimeNs();
      options.sync = false;
      Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options);
      EXPECT_TRUE(opened.ok()) << opened.status().ToString();
      ledgers_.push_back(std::move(opened).value());
      delivered_.push_back(0);
    }
  }

  Ledger& shard(uint32_t k) { return *ledgers_[k]; }

  // Stages `command` on every shard it goes to and commits; returns the first shard's answer (each shard
  // gives the same to reference data, checked).
  CommandResult Send(const json& command) {
    const ParsedCommand parsed = testing::Parse(command.dump());
    std::vector<CommandResult> answers;
    for (const uint32_t shard : ShardsFor(parsed, shards_)) {
      answers.push_back(ledgers_[shard]->Stage(parsed));
      EXPECT_TRUE(ledgers_[shard]->CommitGroup().ok());
    }
    for (const CommandResult& answer : answers) {
      EXPECT_EQ(OutcomeOf(answer.kind, answer.reason), OutcomeOf(answers[0].kind, answers[0].reason))
          << command.dump();
    }
    return answers[0];
  }

  // Hands every committed leg to its destination and commits, until no shard sends one. Returns how many
  // legs.
  int DeliverLegs() {
    int delivered = 0;
    while (true) {
      std::vector<std::vector<std::string>> inbox(shards_);
      for (uint32_t shard = 0; shard < shards_; ++shard) {
        const uint64_t last = ledgers_[shard]->last_sequence();
        for (std::string& record :
             testing::EventRecords(ledgers_[shard]->store(), delivered_[shard] + 1, last)) {
          const Result<DecodedEvent> event = DecodeEventRecord(record);
          EXPECT_TRUE(event.ok());
          if (const std::optional<LegAddress> leg = LegAddressOf(*event->body))
            inbox[leg->destination].push_back(std::move(record));
        }
        delivered_[shard] = last;
      }
      int round = 0;
      for (uint32_t shard = 0; shard < shards_; ++shard) {
        for (const std::string& record : inbox[shard]) {
          const Result<bool> staged = ledgers_[shard]->StageLeg(record);
          EXPECT_TRUE(staged.ok() && *staged) << staged.status().ToString();
          ++round;
        }
        if (!inbox[shard].empty()) {
          EXPECT_TRUE(ledgers_[shard]->CommitGroup().ok());
        }
      }
      if (round == 0) return delivered;
      delivered += round;
    }
  }

  // Sends `command` and delivers its legs: its final outcome, as a client of the cluster would see it.
  Outcome Decide(const json& command) {
    const CommandResult answer = Send(command);
    legs_ += DeliverLegs();
    if (answer.kind != Kind::kPending) return OutcomeOf(answer.kind, answer.reason);
    return FinalOutcome(answer.command_id);
  }

  // The outcome the results published for `command_id` say (from the order shard's events).
  Outcome FinalOutcome(const std::string& command_id) {
    for (uint32_t shard = 0; shard < shards_; ++shard) {
      for (const auto& [result, last] : kafka::ResultsFromEvents(
               testing::EventRecords(ledgers_[shard]->store(), 1, ledgers_[shard]->last_sequence()))) {
        if (result.command_id == command_id) return OutcomeOf(result.kind, result.reason);
      }
    }
    return "no result";
  }

  // Every non-zero balance, summed over shards.
  std::map<std::string, int64_t> Balances() {
    std::map<std::string, int64_t> sums;
    for (const auto& ledger : ledgers_) {
      EXPECT_TRUE(
          ledger->store()
              .ScanState(keys::kBalancePrefix,
                         [&](std::string_view key, std::string_view value) {
                           std::string aligned(value);
                           fb::BalanceRecordT balance;
                           flatbuffers::GetRoot<fb::BalanceRecord>(aligned.data())->UnPackTo(&balance);
                           sums[std::string(key)] += balance.balance_minor;
                           return true;
                         })
              .ok());
    }
    std::erase_if(sums, [](const auto& entry) { return entry.second == 0; });
    return sums;
  }

  // Every shard's stored records against the digests its commits kept.
  void ExpectStatesProven() {
    for (const auto& ledger : ledgers_) EXPECT_TRUE(ledger->ProveState().ok());
  }

  int legs() const { return legs_; }

 private:
  testing::TempDir dir_;
  uint32_t shards_;
  std::vector<std::unique_ptr<Ledger>> ledgers_;
  std::vector<uint64_t> delivered_;  // per shard, the events handed to the bus
  int legs_ = 0;
};

std::string At(int64_t ns) { return testing::At(ns); }

// A seeded stream of a payment day: merchants, customers with debit and credit cards, deposits, points,
// limits, payments (some over funds or limits, some by an unknown customer, the same order from two
// customers), reversals, partial and full refunds (some too large), and exact duplicates.
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
    } else if (roll < 85) {
      json limit = {{"type", "set_customer_limit"},
                    {"command_id", "l" + id},
                    {"customer", "C" + std::to_string(pick(customers))},
                    {"medium", media[pick(6)]},
                    {"daily_minor", 1'000 * (1 + pick(20))}};
      stream.push_back(stamp(limit));
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
  int legs = 0;
};

StreamRun RunStream(const std::vector<json>& stream, uint32_t shards) {
  Cluster cluster(shards);
  StreamRun run;
  for (const json& command : stream) run.outcomes.push_back(cluster.Decide(command));
  run.balances = cluster.Balances();
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
    for (const uint32_t shards : {2u, 4u, 8u}) {
      const StreamRun many = RunStream(stream, shards);
      ExpectSameRun(stream, one, many, shards);
      EXPECT_GT(many.legs, 0) << "N=" << shards << ": no payment crossed shards";
      std::cout << "[ figures  ] seed " << seed << " N=" << shards << ": " << stream.size() << " commands, "
                << many.legs << " legs\n";
    }
  }
}

// Ids of customers and orders that land where the test needs them.
std::string CustomerOnShard(uint32_t shard, uint32_t shards, int skip = 0) {
  for (int i = 0;; ++i) {
    const std::string id = "K" + std::to_string(i);
    if (ShardOfKey(id, shards) == shard && skip-- == 0) return id;
  }
}
std::string OrderOnShard(uint32_t shard, uint32_t shards, int skip = 0) {
  for (int i = 0;; ++i) {
    const std::string id = "Q" + std::to_string(i);
    if (ShardOfKey(OrderKey("M1", id), shards) == shard && skip-- == 0) return id;
  }
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

// An event record as shard `source` would write it for command `command_id` (a leg, forged by the test).
template <typename PayloadT>
std::string EventOfShard(uint32_t source, const std::string& command_id, const Digest& fingerprint,
                         PayloadT payload) {
  fb::EventBodyT body;
  body.shard = source;
  body.sequence = 99;
  body.transaction_id = std::to_string(source) + "-99";
  body.command_id = command_id;
  body.command_fingerprint.assign(fingerprint.begin(), fingerprint.end());
  body.payload.Set(std::move(payload));
  Digest hash;
  return EncodeEventRecord(body, Digest{}, &hash);
}

// A leg as shard `source` would send it: an OrderForwarded event for `destination` carrying `command`.
std::string ForgedLeg(uint32_t source, uint32_t destination, uint64_t number, const json& command, bool pays,
                      const std::string& order) {
  const ParsedCommand parsed = testing::Parse(command.dump());
  flatbuffers::FlatBufferBuilder builder;
  builder.Finish(fb::Command::Pack(builder, &parsed.command));
  fb::OrderForwardedT forwarded;
  forwarded.destination = destination;
  forwarded.number = number;
  forwarded.order = order;
  forwarded.command.assign(builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize());
  forwarded.pays = pays;
  return EventOfShard(source, parsed.command_id, parsed.fingerprint, std::move(forwarded));
}

// Only a command on an order of the sending shard travels as a leg (a payment claiming an order only to its
// customer's shard): a deposit, a payment for an order of another shard or one that pays a fresh order
// without claiming it is refused, nothing staged, and the sender's real leg of that number still applies.
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
