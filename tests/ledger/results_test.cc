// Goal: a result line says why a command was rejected (`detail`, on the ledger's own results and on those
// derived from events for Kafka alike), and set_customer_limit refuses explicit negative limits instead of
// ignoring them.
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kafka/kafka.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using testing::TestLedger;
using Kind = CommandResult::Kind;

void SetUpShop(TestLedger& ledger) {
  for (const json& command : {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                              testing::Deposit("d1", "C1:debit", 50'000)}) {
    ASSERT_EQ(ledger.Submit(command).kind, Kind::kAccepted) << command.dump();
  }
}

json Limit(const std::string& id, const json& fields) {
  json command = {{"type", "set_customer_limit"},
                  {"command_id", id},
                  {"customer", "C1"},
                  {"medium", "sms"},
                  {"occurred_at", testing::At(testing::DefaultTimeNs())}};
  command.update(fields);
  return command;
}

// The customer's own sms limits as stored (all -1 when none was ever set).
fb::LimitOverrideRecordT OwnSmsLimits(TestLedger& ledger) {
  fb::LimitOverrideRecordT own;
  LoadRecord(ledger.ledger().store().state(), keys::LimitOverride("C1", fb::Medium::sms), &own);
  return own;
}

TEST(CustomerLimit, ExplicitNegativeValueIsInvalidAmountAndChangesNothing) {
  TestLedger ledger;
  SetUpShop(ledger);
  ASSERT_EQ(ledger.Submit(Limit("l0", {{"daily_minor", 100'000}})).kind, Kind::kAccepted);
  const fb::LimitOverrideRecordT before = OwnSmsLimits(ledger);
  int n = 0;
  for (const char* field : {"per_payment_minor", "daily_minor", "monthly_minor", "daily_count"}) {
    for (const int64_t value : {int64_t{-1}, int64_t{-5}, INT64_MIN}) {
      SCOPED_TRACE(std::string(field) + "=" + std::to_string(value));
      const CommandResult result = ledger.Submit(Limit("l" + std::to_string(++n), {{field, value}}));
      EXPECT_EQ(result.kind, Kind::kRejected);
      EXPECT_EQ(result.reason, reason::kInvalidAmount);
    }
  }
  const fb::LimitOverrideRecordT after = OwnSmsLimits(ledger);
  EXPECT_EQ(after.per_payment_minor, before.per_payment_minor);
  EXPECT_EQ(after.daily_minor, 100'000);
  EXPECT_EQ(after.monthly_minor, before.monthly_minor);
  EXPECT_EQ(after.daily_count, before.daily_count);
}

TEST(CustomerLimit, AbsentFieldsStayUnchanged) {
  TestLedger ledger;
  SetUpShop(ledger);
  ASSERT_EQ(ledger.Submit(Limit("l1", {{"daily_minor", 100'000}})).kind, Kind::kAccepted);

  ASSERT_EQ(ledger.Submit(Limit("l2", {{"per_payment_minor", 5'000}})).kind, Kind::kAccepted);

  const fb::LimitOverrideRecordT own = OwnSmsLimits(ledger);
  EXPECT_EQ(own.daily_minor, 100'000);
  EXPECT_EQ(own.per_payment_minor, 5'000);
  EXPECT_EQ(own.monthly_minor, kNoLimit);
}

std::vector<std::string> KeysOf(const std::string& line) {
  std::vector<std::string> keys;
  const ordered_json result = ordered_json::parse(line);
  for (const auto& [key, value] : result.items()) keys.push_back(key);
  return keys;
}

TEST(ResultLine, RejectionCarriesItsDetailAfterTheReason) {
  TestLedger ledger;
  SetUpShop(ledger);
  json pos = testing::Pay("M1", "ORD1", "C1", 100);
  pos["channel"] = "pos";

  const json malformed = json::parse(ledger.Submit(pos).ToJson());
  const json poor = json::parse(ledger.Submit(testing::Pay("M1", "ORD2", "C1", 90'000)).ToJson());
  const std::string accepted_line = ledger.Submit(testing::Pay("M1", "ORD3", "C1", 100)).ToJson();

  EXPECT_EQ(malformed["reason"], reason::kMalformedCommand);
  EXPECT_EQ(malformed["detail"], "unknown channel 'pos'");
  EXPECT_EQ(poor["reason"], reason::kInsufficientFunds);
  EXPECT_EQ(poor["detail"], "balance of C1:debit is below the card amount");
  const json accepted = json::parse(accepted_line);
  EXPECT_EQ(accepted["status"], "accepted");
  EXPECT_TRUE(accepted["detail"].is_null());
  EXPECT_EQ(KeysOf(accepted_line), (std::vector<std::string>{"command_id", "status", "reason", "detail",
                                                             "transaction_id", "sequences"}));
}

// The original detail is in the CommandRejected event, not in the idempotency record: a duplicate answers
// with the original's status and reason, and no detail.
TEST(ResultLine, DuplicateOfARejectedCommandHasNoDetail) {
  TestLedger ledger;
  SetUpShop(ledger);
  const json poor = testing::Pay("M1", "ORD1", "C1", 90'000);
  ASSERT_EQ(ledger.Submit(poor).reason, reason::kInsufficientFunds);

  const json again = json::parse(ledger.Submit(poor).ToJson());

  EXPECT_EQ(again["status"], "duplicate");
  EXPECT_EQ(again["reason"], reason::kInsufficientFunds);
  EXPECT_TRUE(again["detail"].is_null());
}

// Results published on Kafka are derived from the committed events: the same lines as the ledger's own.
TEST(ResultLine, ResultsDerivedFromEventsCarryTheSameDetail) {
  TestLedger ledger;
  SetUpShop(ledger);
  const uint64_t first = ledger.ledger().last_sequence() + 1;
  json pos = testing::Pay("M1", "ORD1", "C1", 100);
  pos["channel"] = "pos";
  std::vector<CommandResult> staged;
  for (const json& command : {pos, testing::Pay("M1", "ORD2", "C1", 90'000),
                              testing::Pay("M1", "ORD3", "C1", 100), testing::Deposit("d9", "C9:debit", 5)}) {
    staged.push_back(ledger.ledger().Stage(testing::Parse(command.dump())));
  }
  ASSERT_TRUE(ledger.ledger().CommitGroup().ok());

  const std::vector<std::pair<CommandResult, uint64_t>> derived =
      kafka::ResultsFromEvents(testing::EventRecords(ledger.ledger().store(), first, UINT64_MAX));

  ASSERT_EQ(derived.size(), staged.size());
  for (size_t i = 0; i < staged.size(); ++i) {
    EXPECT_EQ(derived[i].first.ToJson(), staged[i].ToJson());
  }
  EXPECT_EQ(json::parse(derived[0].first.ToJson())["detail"], "unknown channel 'pos'");
  EXPECT_EQ(json::parse(derived[3].first.ToJson())["detail"], "no account C9:debit");
}

}  // namespace
}  // namespace ledger
