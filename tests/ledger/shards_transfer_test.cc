// Goal: a transfer (C2C) moves money from one customer's account to another's under the payer's medium
// limits, with the same outcome at any number of shards. On one shard it is one TransferMade event; when the
// payee lives on another shard the money travels through due-to/due-from accounts as legs (TransferSent,
// TransferReceived, TransferSettled), the result comes from the payer's shard once the payee's shard
// answered, a refusal there gives the payer the money and the limit usage back, and no leg that does not
// answer the transfer in flight moves anything.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/money.h"
#include "events/event.h"
#include "ledger/ledger.h"
#include "ledger/routing.h"
#include "shard_cluster.h"
#include "state/keys.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using Kind = CommandResult::Kind;
using testing::Cluster;
using testing::CustomerOnShard;
using testing::EventOfShard;
using testing::Outcome;

// Payer `a` and payee `b`: debit cards with 50,000 and 1,000, `a` also a credit card with a 20,000 line, and
// `a`'s sms limit lowered to 10,000 a day.
std::vector<json> TwoCustomers(const std::string& a, const std::string& b) {
  json limit = {{"type", "set_customer_limit"},
                {"command_id", "limit-a"},
                {"customer", a},
                {"medium", "sms"},
                {"daily_minor", 10'000}};
  return {testing::OpenAccount("oa", a),
          testing::OpenAccount("oac", a, "credit_card", 20'000),
          testing::OpenAccount("ob", b),
          testing::Deposit("da", a + ":debit", 50'000),
          testing::Deposit("db", b + ":debit", 1'000),
          limit};
}

std::unique_ptr<Cluster> WithCustomers(uint32_t shards, const std::string& a, const std::string& b) {
  auto cluster = std::make_unique<Cluster>(shards);
  for (const json& command : TwoCustomers(a, b)) EXPECT_EQ(cluster->Decide(command), "accepted");
  return cluster;
}

TEST(Transfer, OnOneShardMovesTheAmountInOneEventAndCountsOnTheMediumsLimit) {
  const std::unique_ptr<Cluster> cluster_owned = WithCustomers(1, "A", "B");
  Cluster& cluster = *cluster_owned;
  const uint64_t head = cluster.shard(0).last_sequence();
  EXPECT_EQ(cluster.Decide(testing::Transfer("t1", "A:debit", "B:debit", 6'000, "sms")), "accepted");
  const std::vector<std::string> events = testing::EventRecords(cluster.shard(0).store(), head + 1, head + 1);
  ASSERT_EQ(cluster.shard(0).last_sequence(), head + 1);
  const fb::TransferMade* made = DecodeEventRecord(events[0])->body->payload_as_TransferMade();
  ASSERT_NE(made, nullptr);
  EXPECT_EQ(made->amount_minor(), 6'000);
  EXPECT_EQ(made->from_customer()->str(), "A");
  EXPECT_EQ(made->to_customer()->str(), "B");
  EXPECT_EQ(cluster.BalanceOn(0, "A:debit"), 44'000);
  EXPECT_EQ(cluster.BalanceOn(0, "B:debit"), 7'000);
  // 6,000 of the 10,000 sms day used: 5,000 more is refused, by another medium it goes.
  EXPECT_EQ(cluster.Decide(testing::Transfer("t2", "A:debit", "B:debit", 5'000, "sms")),
            "rejected LIMIT_DAILY_EXCEEDED");
  EXPECT_EQ(cluster.Decide(testing::Transfer("t3", "A:debit", "B:debit", 5'000, "u_shield")), "accepted");
  // Repaying a credit card is a transfer to it.
  EXPECT_EQ(cluster.Decide(testing::Transfer("t4", "A:credit", "B:debit", 20'000)), "accepted");
  EXPECT_EQ(cluster.Decide(testing::Transfer("t5", "A:debit", "A:credit", 15'000)), "accepted");
  EXPECT_EQ(cluster.BalanceOn(0, "A:credit"), -5'000);
  EXPECT_EQ(cluster.Decide(testing::Transfer("t1", "A:debit", "B:debit", 6'000, "sms")), "duplicate");
  cluster.ExpectStatesProven();
}

// The payer's side is checked first (amount, account, limits, funds), then the payee's account; a refusal
// moves nothing.
TEST(Transfer, RefusalsCheckThePayerFirstAndMoveNothing) {
  const std::unique_ptr<Cluster> cluster_owned = WithCustomers(1, "A", "B");
  Cluster& cluster = *cluster_owned;
  const auto before = cluster.Balances();
  const std::vector<std::pair<json, Outcome>> cases = {
      {testing::Transfer("z", "A:debit", "B:debit", 0), "rejected INVALID_AMOUNT"},
      {testing::Transfer("n", "N:debit", "B:debit", 100), "rejected UNKNOWN_ACCOUNT"},
      {testing::Transfer("l", "A:debit", "X:debit", 10'001, "sms"), "rejected LIMIT_DAILY_EXCEEDED"},
      {testing::Transfer("f", "A:debit", "X:debit", 50'001), "rejected INSUFFICIENT_FUNDS"},
      {testing::Transfer("c", "A:credit", "B:debit", 20'001), "rejected CREDIT_LIMIT_EXCEEDED"},
      {testing::Transfer("u", "A:debit", "X:debit", 100), "rejected UNKNOWN_ACCOUNT"},
      {testing::Transfer("s", "A:debit", "A:debit", 100), "rejected MALFORMED_COMMAND"},
      {testing::Transfer("m", "A:debit", "B:debit", 100, "none"), "rejected MALFORMED_COMMAND"},
  };
  for (const auto& [command, outcome] : cases) EXPECT_EQ(cluster.Decide(command), outcome) << command.dump();
  EXPECT_EQ(cluster.Balances(), before);
}

// Payer on shard 0, payee on shard 1: the payer's shard answers nothing until the payee's shard answered; in
// between the money sits in gl:due:1; once settled the due accounts cancel and the balances are one
// shard's.
TEST(Transfer, AcrossShardsTravelsThroughDueAccountsAndIsAnsweredByThePayersShard) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(0, kShards), b = CustomerOnShard(1, kShards);
  const json transfer = testing::Transfer("t1", a + ":debit", b + ":debit", 6'000, "sms");
  const std::unique_ptr<Cluster> one_owned = WithCustomers(1, a, b);
  Cluster& one = *one_owned;
  EXPECT_EQ(one.Decide(transfer), "accepted");

  const std::unique_ptr<Cluster> cluster_owned = WithCustomers(kShards, a, b);
  Cluster& cluster = *cluster_owned;
  EXPECT_EQ(cluster.Send(transfer).kind, Kind::kPending);
  EXPECT_EQ(cluster.Send(transfer).kind, Kind::kPending);  // again while away: still waiting, nothing new
  EXPECT_EQ(cluster.FinalOutcome("t1"), "no result");
  EXPECT_EQ(cluster.BalanceOn(0, a + ":debit"), 44'000);
  EXPECT_EQ(cluster.BalanceOn(0, gl::Due(1)), 6'000);
  EXPECT_EQ(cluster.BalanceOn(1, b + ":debit"), 1'000);
  EXPECT_EQ(cluster.DeliverLegs(), 2);  // TransferSent, TransferReceived
  EXPECT_EQ(cluster.FinalOutcome("t1"), "accepted");
  EXPECT_EQ(cluster.BalanceOn(1, b + ":debit"), 7'000);
  EXPECT_EQ(cluster.BalanceOn(1, gl::Due(0)), -6'000);
  cluster.ExpectDueAccountsDrained();
  const CommandResult again = cluster.Send(transfer);
  EXPECT_EQ(testing::OutcomeOf(again.kind, again.reason), "duplicate");
  // The usage stays counted on the payer's shard: the next 5,000 by sms passes the 10,000 day there too.
  EXPECT_EQ(cluster.Decide(testing::Transfer("t2", a + ":debit", b + ":debit", 5'000, "sms")),
            one.Decide(testing::Transfer("t2", a + ":debit", b + ":debit", 5'000, "sms")));
  EXPECT_EQ(testing::WithoutDueAccounts(cluster.Balances()), one.Balances());
  cluster.ExpectStatesProven();
}

// The payee's shard refuses a transfer to an account it does not hold: the payer's shard gives the money and
// the medium's usage back, as if one shard had refused it, and the next transfer within the limit goes.
TEST(Transfer, RefusedByThePayeesShardGivesTheMoneyAndTheLimitBack) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(0, kShards), b = CustomerOnShard(1, kShards);
  const std::string nobody = CustomerOnShard(1, kShards, 1);
  const std::vector<json> stream = {testing::Transfer("t1", a + ":debit", nobody + ":debit", 8'000, "sms"),
                                    testing::Transfer("t2", a + ":debit", b + ":credit", 8'000, "sms"),
                                    testing::Transfer("t3", a + ":debit", b + ":debit", 8'000, "sms")};
  const std::unique_ptr<Cluster> one_owned = WithCustomers(1, a, b);
  Cluster& one = *one_owned;
  const std::unique_ptr<Cluster> two_owned = WithCustomers(kShards, a, b);
  Cluster& two = *two_owned;
  std::vector<Outcome> outcomes;
  for (const json& command : stream) {
    outcomes.push_back(one.Decide(command));
    EXPECT_EQ(two.Decide(command), outcomes.back()) << command.dump();
  }
  EXPECT_EQ(outcomes,
            (std::vector<Outcome>{"rejected UNKNOWN_ACCOUNT", "rejected UNKNOWN_ACCOUNT", "accepted"}));
  EXPECT_EQ(two.BalanceOn(0, a + ":debit"), 42'000);
  two.ExpectDueAccountsDrained();
  EXPECT_EQ(testing::WithoutDueAccounts(two.Balances()), one.Balances());
  two.ExpectStatesProven();
}

// Lifts every medium limit, as an operator's ledger.toml may.
void NoMediumLimits(LedgerConfig& config) {
  for (MediumPolicy& policy : config.medium_policy) policy = MediumPolicy{};
}

// The due account between two shards holds their net position: the whole 2^53-1 going from shard 0 to shard 1
// and back leaves it at zero, and the next transfer goes, as on one shard (a due-to and a due-from kept apart
// would each have reached the bound and refused every later transfer between the two).
TEST(Transfer, MoneyGoingBackAndForthBetweenShardsNeverReachesTheBound) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(0, kShards), b = CustomerOnShard(1, kShards);
  const std::vector<json> stream = {testing::OpenAccount("oa", a),
                                    testing::OpenAccount("ob", b),
                                    testing::Deposit("da", a + ":debit", kAmountMinorMax),
                                    testing::Transfer("t1", a + ":debit", b + ":debit", kAmountMinorMax),
                                    testing::Transfer("t2", b + ":debit", a + ":debit", kAmountMinorMax),
                                    testing::Transfer("t3", a + ":debit", b + ":debit", 1),
                                    testing::Transfer("t4", b + ":debit", a + ":debit", 1)};
  Cluster one(1, NoMediumLimits);
  Cluster two(kShards, NoMediumLimits);
  for (const json& command : stream) {
    EXPECT_EQ(one.Decide(command), "accepted") << command.dump();
    EXPECT_EQ(two.Decide(command), "accepted") << command.dump();
  }
  EXPECT_EQ(two.BalanceOn(0, gl::Due(1)), 0);
  two.ExpectDueAccountsDrained();
  EXPECT_EQ(testing::WithoutDueAccounts(two.Balances()), one.Balances());
}

// A transfer refused by the payee's shard, sent again to the payee's shard (a retry produced to the wrong
// partition), is not a duplicate of the payee's half there: it is refused WRONG_SHARD and moves nothing; on
// the payer's shard it is a duplicate of the refusal.
TEST(Transfer, TheCommandHasNoOutcomeOnThePayeesShard) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(0, kShards), nobody = CustomerOnShard(1, kShards);
  Cluster two(kShards);
  EXPECT_EQ(two.Decide(testing::OpenAccount("oa", a)), "accepted");
  EXPECT_EQ(two.Decide(testing::Deposit("da", a + ":debit", 10'000)), "accepted");
  const json transfer = testing::Transfer("t1", a + ":debit", nobody + ":debit", 5'000);
  EXPECT_EQ(two.Decide(transfer), "rejected UNKNOWN_ACCOUNT");
  const ParsedCommand parsed = testing::Parse(transfer.dump());
  const CommandResult on_payer = two.shard(0).Stage(parsed);
  const CommandResult on_payee = two.shard(1).Stage(parsed);
  EXPECT_EQ(testing::OutcomeOf(on_payer.kind, on_payer.reason), "duplicate UNKNOWN_ACCOUNT");
  EXPECT_EQ(testing::OutcomeOf(on_payee.kind, on_payee.reason), "rejected WRONG_SHARD");
  EXPECT_EQ(two.BalanceOn(0, a + ":debit"), 10'000);
}

// Restarts between the legs: a leg published again after a restart is skipped, a duplicate while the
// transfer is away stays pending, and after it settled it is a duplicate; the balances are one shard's.
TEST(Transfer, RestartsBetweenItsLegsChangeNothing) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(0, kShards), b = CustomerOnShard(1, kShards);
  const json transfer = testing::Transfer("t1", a + ":debit", b + ":debit", 6'000, "sms");
  const std::unique_ptr<Cluster> one_owned = WithCustomers(1, a, b);
  Cluster& one = *one_owned;
  const std::unique_ptr<Cluster> two_owned = WithCustomers(kShards, a, b);
  Cluster& two = *two_owned;
  EXPECT_EQ(one.Decide(transfer), "accepted");
  EXPECT_EQ(two.Send(transfer).kind, Kind::kPending);
  two.Reopen(0);
  EXPECT_EQ(two.Send(transfer).kind, Kind::kPending);
  std::vector<std::string> sent;
  for (std::string& record : testing::EventRecords(two.shard(0).store(), 1, two.shard(0).last_sequence())) {
    if (LegAddressOf(*DecodeEventRecord(record)->body)) sent.push_back(std::move(record));
  }
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_TRUE(*two.shard(1).StageLeg(sent[0]));
  ASSERT_TRUE(two.shard(1).CommitGroup().ok());
  two.MarkDelivered(0);
  two.Reopen(1);
  const Result<bool> again = two.shard(1).StageLeg(sent[0]);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);  // published again after a restart: skipped
  EXPECT_GT(two.DeliverLegs(), 0);
  two.Reopen(0);
  EXPECT_EQ(two.FinalOutcome("t1"), "accepted");
  const CommandResult duplicate = two.Send(transfer);
  EXPECT_EQ(testing::OutcomeOf(duplicate.kind, duplicate.reason), "duplicate");
  two.ExpectDueAccountsDrained();
  EXPECT_EQ(testing::WithoutDueAccounts(two.Balances()), one.Balances());
  two.ExpectStatesProven();
}

// Transfer legs as shard `source` would send them (forged by the test).
std::string ForgedSent(uint32_t source, uint32_t destination, const std::string& from, const std::string& to,
                       int64_t amount, const ParsedCommand& command) {
  fb::TransferSentT sent;
  sent.destination = destination;
  sent.number = 1;
  sent.from_customer = CustomerOfAccount(from);
  sent.from_account = from;
  sent.to_customer = CustomerOfAccount(to);
  sent.to_account = to;
  sent.amount_minor = amount;
  sent.medium = fb::Medium::u_shield;
  return EventOfShard(source, command.command_id, command.fingerprint, std::move(sent));
}

std::string ForgedReceived(uint32_t source, uint32_t destination, uint64_t answers, bool accepted,
                           int64_t amount, const std::string& command_id, const Digest& fingerprint,
                           uint64_t number = 1) {
  fb::TransferReceivedT received;
  received.destination = destination;
  received.number = number;
  received.answers = answers;
  received.accepted = accepted;
  received.reason = accepted ? "" : "UNKNOWN_ACCOUNT";
  received.amount_minor = amount;
  return EventOfShard(source, command_id, fingerprint, std::move(received));
}

// A writer of ledger.legs cannot credit a payee with a transfer its payer's shard did not send (a payer of
// another shard, a payee of another shard, an amount no command carries), nor settle a transfer that does not
// wait for that answer (another leg, id or fingerprint; an accepted answer for another amount; a refusal that
// would refund the payer of a settled transfer). Nothing is staged, and the real legs still apply.
TEST(Transfer, LegsThatDoNotAnswerTheTransferInFlightAreRefused) {
  constexpr uint32_t kShards = 2;
  const std::string a = CustomerOnShard(0, kShards), b = CustomerOnShard(1, kShards);
  const std::string a2 = CustomerOnShard(0, kShards, 1);
  const std::unique_ptr<Cluster> cluster_owned = WithCustomers(kShards, a, b);
  Cluster& cluster = *cluster_owned;
  const json transfer = testing::Transfer("t1", a + ":debit", b + ":debit", 6'000);
  const ParsedCommand parsed = testing::Parse(transfer.dump());
  ASSERT_EQ(cluster.Send(transfer).kind, Kind::kPending);

  Ledger& payee_shard = cluster.shard(1);
  const uint64_t payee_head = payee_shard.last_sequence();
  for (const std::string& forged :
       {ForgedSent(0, 1, b + ":debit", a + ":debit", 6'000, parsed),   // payer not on the sender
        ForgedSent(0, 1, a + ":debit", a2 + ":debit", 6'000, parsed),  // payee not on this shard
        ForgedSent(0, 1, a + ":debit", b + ":debit", 0, parsed),
        ForgedSent(0, 1, a + ":debit", b + ":debit", kAmountMinorMax + 1, parsed)}) {
    EXPECT_EQ(payee_shard.StageLeg(forged).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(payee_shard.last_sequence(), payee_head);
  }
  Ledger& payer_shard = cluster.shard(0);
  const uint64_t payer_head = payer_shard.last_sequence();
  Digest other = parsed.fingerprint;
  other[0] ^= 1;
  for (const std::string& forged : {ForgedReceived(1, 0, 2, false, 6'000, "t1", parsed.fingerprint),
                                    ForgedReceived(1, 0, 1, false, 6'000, "t9", parsed.fingerprint),
                                    ForgedReceived(1, 0, 1, false, 6'000, "t1", other),
                                    ForgedReceived(1, 0, 1, true, 60'000, "t1", parsed.fingerprint)}) {
    EXPECT_EQ(payer_shard.StageLeg(forged).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(payer_shard.last_sequence(), payer_head);
  }
  EXPECT_EQ(cluster.DeliverLegs(), 2);
  EXPECT_EQ(cluster.FinalOutcome("t1"), "accepted");
  // Settled: a refusal naming it now (the next leg number, as a writer copying numbers would) refunds
  // nothing.
  const Result<bool> late =
      payer_shard.StageLeg(ForgedReceived(1, 0, 1, false, 6'000, "t1", parsed.fingerprint, 2));
  EXPECT_EQ(late.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cluster.BalanceOn(0, a + ":debit"), 44'000);
  cluster.ExpectDueAccountsDrained();
  cluster.ExpectStatesProven();
}

}  // namespace
}  // namespace ledger
