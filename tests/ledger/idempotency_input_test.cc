// Goal: a command id takes effect once, and bad input is either an input error or one recorded rejection.
#include <gtest/gtest.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/money.h"
#include "events/event.h"
#include "ledger/command.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using testing::TestLedger;
using Kind = CommandResult::Kind;

// Stages `commands` in one group (one synced write keeps the tests fast) and expects each to be accepted.
void SetUpInOneGroup(TestLedger& ledger, const std::vector<nlohmann::json>& commands) {
  for (const nlohmann::json& command : commands) {
    Result<ParsedCommand> parsed = ParseCommandJson(command.dump());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    const CommandResult result = ledger.ledger().Stage(*parsed);
    ASSERT_EQ(result.kind, Kind::kAccepted) << command.dump() << ": " << result.reason;
  }
  const Status status = ledger.ledger().CommitGroup();
  ASSERT_TRUE(status.ok()) << status.ToString();
}

// A ledger with customer C1 (C1:debit) and merchant M1, nothing deposited.
void OpenC1AndM1(TestLedger& ledger) {
  SetUpInOneGroup(ledger, {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60)});
}

// Parses `line`, turning a thrown exception into a test failure (the parser must never throw).
Result<ParsedCommand> ParseNoThrow(const std::string& line) {
  try {
    return ParseCommandJson(line);
  } catch (const std::exception& error) {
    ADD_FAILURE() << "ParseCommandJson threw '" << error.what() << "' for " << line;
    return Status::Internal("threw");
  }
}

struct EventSummary {
  uint64_t sequence = 0;
  std::string type;
  std::string command_id;
  std::string reason;  // CommandRejected only
};

// Every stored event from `from` on.
std::vector<EventSummary> EventsFrom(TestLedger& ledger, uint64_t from) {
  std::vector<EventSummary> events;
  std::string record;  // an aligned copy: FlatBuffers must not be read in place in RocksDB's unaligned bytes
  const Status status =
      ledger.ledger().store().ScanEvents(from, UINT64_MAX, [&](uint64_t sequence, std::string_view bytes) {
        record.assign(bytes);
        Result<DecodedEvent> decoded = DecodeEventRecord(record);
        EXPECT_TRUE(decoded.ok()) << "event " << sequence << ": " << decoded.status().ToString();
        if (!decoded.ok()) return false;
        EventSummary summary;
        summary.sequence = decoded->body->sequence();
        summary.type = EventTypeName(decoded->body->payload_type());
        summary.command_id = decoded->body->command_id() ? decoded->body->command_id()->str() : "";
        if (const auto* rejected = decoded->body->payload_as_CommandRejected()) {
          summary.reason = rejected->reason() ? rejected->reason()->str() : "";
        }
        events.push_back(summary);
        return true;
      });
  EXPECT_TRUE(status.ok()) << status.ToString();
  return events;
}

// Sum of all balances per unit {CNY, POINTS}. Like TestLedger::SumByUnit, but reads each record from an
// aligned copy (reading a FlatBuffer in place in RocksDB's unaligned bytes is undefined behaviour that UBSan
// aborts on).
std::pair<int64_t, int64_t> SumByUnit(TestLedger& ledger) {
  int64_t sums[2] = {0, 0};
  std::string aligned;
  const Status status =
      ledger.ledger().store().ScanState(keys::kBalancePrefix, [&](std::string_view, std::string_view value) {
        aligned.assign(value);
        const auto* record = flatbuffers::GetRoot<fb::BalanceRecord>(aligned.data());
        sums[static_cast<int>(record->unit())] += record->balance_minor();
        return true;
      });
  EXPECT_TRUE(status.ok()) << status.ToString();
  return {sums[0], sums[1]};
}

// ---------------------------------------------------------------------------------------------------------------
// Idempotency

TEST(Idempotency, ExactDuplicateReturnsOriginalOutcomeAndChangesNothing) {
  TestLedger ledger;
  OpenC1AndM1(ledger);
  const CommandResult original = ledger.Submit(testing::Deposit("d1", "C1:debit", 50'000));
  ASSERT_EQ(original.kind, Kind::kAccepted) << original.reason;
  const Digest state_before = ledger.StateDigest();
  const uint64_t sequence_before = ledger.ledger().last_sequence();
  const Digest head_before = ledger.ledger().chain_head();

  const CommandResult again = ledger.Submit(testing::Deposit("d1", "C1:debit", 50'000));

  EXPECT_EQ(again.kind, Kind::kDuplicate);
  EXPECT_EQ(again.command_id, "d1");
  EXPECT_EQ(again.transaction_id, original.transaction_id);
  EXPECT_EQ(again.sequences, original.sequences);
  EXPECT_EQ(again.reason, "");
  EXPECT_EQ(ledger.Balance("C1:debit"), 50'000);  // not deposited twice
  EXPECT_EQ(ledger.StateDigest(), state_before);
  EXPECT_EQ(ledger.ledger().last_sequence(), sequence_before);
  EXPECT_EQ(ledger.ledger().chain_head(), head_before);
}

TEST(Idempotency, DuplicateOfRejectedCommandReturnsOriginalReasonWithoutRevalidating) {
  TestLedger ledger;
  const CommandResult original = ledger.Submit(testing::Deposit("d1", "C1:debit", 700));
  ASSERT_EQ(original.kind, Kind::kRejected);
  ASSERT_EQ(original.reason, reason::kUnknownAccount);
  // The account exists now, so re-deciding the command would accept it: a duplicate must not.
  ASSERT_EQ(ledger.Submit(testing::OpenAccount("a1", "C1")).kind, Kind::kAccepted);
  const Digest state_before = ledger.StateDigest();
  const uint64_t sequence_before = ledger.ledger().last_sequence();

  const CommandResult again = ledger.Submit(testing::Deposit("d1", "C1:debit", 700));

  EXPECT_EQ(again.kind, Kind::kDuplicate);
  EXPECT_EQ(again.reason, reason::kUnknownAccount);
  EXPECT_EQ(again.transaction_id, original.transaction_id);
  EXPECT_EQ(again.sequences, original.sequences);
  EXPECT_EQ(ledger.Balance("C1:debit"), 0);
  EXPECT_EQ(ledger.StateDigest(), state_before);
  EXPECT_EQ(ledger.ledger().last_sequence(), sequence_before);
}

TEST(Idempotency, DuplicatePaymentMovesNoMoneyAndUsesNoLimit) {
  TestLedger ledger;
  SetUpInOneGroup(ledger, {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                           testing::Deposit("d1", "C1:debit", 100'000)});
  const CommandResult paid = ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000));
  ASSERT_EQ(paid.kind, Kind::kAccepted) << paid.reason;
  const Digest state_before = ledger.StateDigest();

  const CommandResult again = ledger.Submit(testing::Pay("M1", "ORD1", "C1", 10'000));

  EXPECT_EQ(again.kind, Kind::kDuplicate);
  EXPECT_EQ(again.transaction_id, paid.transaction_id);
  EXPECT_EQ(again.sequences, paid.sequences);
  EXPECT_EQ(ledger.Balance("C1:debit"), 90'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 10'000 - 60);
  EXPECT_EQ(ledger.StateDigest(), state_before);  // includes limit usage and the payment record
}

TEST(Idempotency, KeyOrderAndWhitespaceAreTheSameContent) {
  const std::string compact =
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":500,"occurred_at":"2026-11-25T10:00:00+08:00"})";
  const std::string reordered =
      "{ \"amount_minor\" : 500 ,\n \"occurred_at\":\"2026-11-25T10:00:00+08:00\",\t"
      "\"account\": \"C1:debit\", "
      "\"command_id\":\"d1\", \"type\":\"deposit\" }";
  Result<ParsedCommand> a = ParseNoThrow(compact);
  Result<ParsedCommand> b = ParseNoThrow(reordered);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a->fingerprint, b->fingerprint);

  TestLedger ledger;
  OpenC1AndM1(ledger);
  const CommandResult original = ledger.SubmitLine(compact);
  ASSERT_EQ(original.kind, Kind::kAccepted) << original.reason;
  const Digest state_before = ledger.StateDigest();
  const uint64_t sequence_before = ledger.ledger().last_sequence();

  const CommandResult again = ledger.SubmitLine(reordered);

  EXPECT_EQ(again.kind, Kind::kDuplicate);
  EXPECT_EQ(again.transaction_id, original.transaction_id);
  EXPECT_EQ(again.sequences, original.sequences);
  EXPECT_EQ(ledger.Balance("C1:debit"), 500);
  EXPECT_EQ(ledger.StateDigest(), state_before);
  EXPECT_EQ(ledger.ledger().last_sequence(), sequence_before);
}

TEST(Idempotency, FingerprintDiffersWhenContentDiffers) {
  Result<ParsedCommand> a = ParseNoThrow(testing::Deposit("d1", "C1:debit", 500).dump());
  Result<ParsedCommand> b = ParseNoThrow(testing::Deposit("d1", "C1:debit", 501).dump());
  Result<ParsedCommand> c = ParseNoThrow(testing::Deposit("d1", "C2:debit", 500).dump());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_NE(a->fingerprint, b->fingerprint);
  EXPECT_NE(a->fingerprint, c->fingerprint);
}

TEST(Idempotency, SameIdOtherContentIsRejectedAsMismatchAndKeepsOriginal) {
  TestLedger ledger;
  OpenC1AndM1(ledger);
  const CommandResult original = ledger.Submit(testing::Deposit("d1", "C1:debit", 1'000));
  ASSERT_EQ(original.kind, Kind::kAccepted);
  const uint64_t sequence_before = ledger.ledger().last_sequence();

  const CommandResult other = ledger.Submit(testing::Deposit("d1", "C1:debit", 9'999));

  EXPECT_EQ(other.kind, Kind::kRejected);
  EXPECT_EQ(other.reason, reason::kDuplicateCommandMismatch);
  EXPECT_NE(other.transaction_id, original.transaction_id);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000);
  EXPECT_EQ(ledger.Balance("gl:funding"), -1'000);
  EXPECT_EQ(SumByUnit(ledger), std::make_pair(int64_t{0}, int64_t{0}));
  // Recorded as exactly one rejection.
  const std::vector<EventSummary> events = EventsFrom(ledger, sequence_before + 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "CommandRejected");
  EXPECT_EQ(events[0].reason, reason::kDuplicateCommandMismatch);
  EXPECT_EQ(events[0].command_id, "d1");

  // The original outcome is still what the id stands for.
  const Digest state_before = ledger.StateDigest();
  const CommandResult exact = ledger.Submit(testing::Deposit("d1", "C1:debit", 1'000));
  EXPECT_EQ(exact.kind, Kind::kDuplicate);
  EXPECT_EQ(exact.reason, "");
  EXPECT_EQ(exact.transaction_id, original.transaction_id);
  EXPECT_EQ(exact.sequences, original.sequences);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000);
  EXPECT_EQ(ledger.StateDigest(), state_before);
}

// Sending the very same mismatching command again is a duplicate of its first refusal: the same outcome, and
// nothing new recorded (a resubmitted file records nothing twice).
TEST(Idempotency, RepeatedMismatchIsADuplicateOfItsFirstRefusal) {
  TestLedger ledger;
  SetUpInOneGroup(ledger, {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                           testing::Deposit("d1", "C1:debit", 1'000)});
  const CommandResult first = ledger.Submit(testing::Deposit("d1", "C1:debit", 2'000));
  ASSERT_EQ(first.reason, reason::kDuplicateCommandMismatch);
  const uint64_t sequence_before = ledger.ledger().last_sequence();

  const CommandResult second = ledger.Submit(testing::Deposit("d1", "C1:debit", 2'000));

  EXPECT_EQ(second.kind, Kind::kDuplicate);
  EXPECT_EQ(second.reason, reason::kDuplicateCommandMismatch);
  EXPECT_EQ(second.transaction_id, first.transaction_id);
  EXPECT_EQ(second.sequences, first.sequences);
  EXPECT_EQ(ledger.ledger().last_sequence(), sequence_before);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000);
}

TEST(Idempotency, DuplicateWithinOneGroupIsDuplicate) {
  TestLedger ledger;
  OpenC1AndM1(ledger);
  const uint64_t sequence_before = ledger.ledger().last_sequence();
  Result<ParsedCommand> parsed = ParseNoThrow(testing::Deposit("d1", "C1:debit", 300).dump());
  ASSERT_TRUE(parsed.ok());

  const CommandResult first = ledger.ledger().Stage(*parsed);
  const CommandResult second = ledger.ledger().Stage(*parsed);
  ASSERT_TRUE(ledger.ledger().CommitGroup().ok());

  EXPECT_EQ(first.kind, Kind::kAccepted) << first.reason;
  EXPECT_EQ(second.kind, Kind::kDuplicate);
  EXPECT_EQ(second.transaction_id, first.transaction_id);
  EXPECT_EQ(second.sequences, first.sequences);
  EXPECT_EQ(ledger.Balance("C1:debit"), 300);
  EXPECT_EQ(ledger.ledger().last_sequence(), sequence_before + 1);
  EXPECT_EQ(EventsFrom(ledger, sequence_before + 1).size(), 1u);
}

TEST(Idempotency, MismatchWithinOneGroupIsRejected) {
  TestLedger ledger;
  OpenC1AndM1(ledger);
  Result<ParsedCommand> a = ParseNoThrow(testing::Deposit("d1", "C1:debit", 300).dump());
  Result<ParsedCommand> b = ParseNoThrow(testing::Deposit("d1", "C1:debit", 301).dump());
  ASSERT_TRUE(a.ok() && b.ok());

  const CommandResult first = ledger.ledger().Stage(*a);
  const CommandResult second = ledger.ledger().Stage(*b);
  ASSERT_TRUE(ledger.ledger().CommitGroup().ok());

  EXPECT_EQ(first.kind, Kind::kAccepted);
  EXPECT_EQ(second.kind, Kind::kRejected);
  EXPECT_EQ(second.reason, reason::kDuplicateCommandMismatch);
  EXPECT_EQ(ledger.Balance("C1:debit"), 300);
}

TEST(Idempotency, SurvivesReopen) {
  TestLedger ledger;
  OpenC1AndM1(ledger);
  const CommandResult deposited = ledger.Submit(testing::Deposit("d1", "C1:debit", 80'000));
  const CommandResult rejected = ledger.Submit(testing::Deposit("d2", "C9:debit", 5));
  const CommandResult paid = ledger.Submit(testing::Pay("M1", "ORD1", "C1", 20'000));
  ASSERT_EQ(deposited.kind, Kind::kAccepted);
  ASSERT_EQ(rejected.kind, Kind::kRejected);
  ASSERT_EQ(paid.kind, Kind::kAccepted) << paid.reason;
  const Digest state_before = ledger.StateDigest();
  const Digest head_before = ledger.ledger().chain_head();
  const uint64_t sequence_before = ledger.ledger().last_sequence();

  ledger.Reopen();

  EXPECT_EQ(ledger.ledger().last_sequence(), sequence_before);
  EXPECT_EQ(ledger.ledger().chain_head(), head_before);
  EXPECT_EQ(ledger.StateDigest(), state_before);
  const CommandResult again_deposit = ledger.Submit(testing::Deposit("d1", "C1:debit", 80'000));
  const CommandResult again_rejected = ledger.Submit(testing::Deposit("d2", "C9:debit", 5));
  const CommandResult again_paid = ledger.Submit(testing::Pay("M1", "ORD1", "C1", 20'000));
  EXPECT_EQ(again_deposit.kind, Kind::kDuplicate);
  EXPECT_EQ(again_deposit.sequences, deposited.sequences);
  EXPECT_EQ(again_rejected.kind, Kind::kDuplicate);
  EXPECT_EQ(again_rejected.reason, reason::kUnknownAccount);
  EXPECT_EQ(again_rejected.sequences, rejected.sequences);
  EXPECT_EQ(again_paid.kind, Kind::kDuplicate);
  EXPECT_EQ(again_paid.transaction_id, paid.transaction_id);
  EXPECT_EQ(ledger.ledger().last_sequence(), sequence_before);
  EXPECT_EQ(ledger.ledger().chain_head(), head_before);
  EXPECT_EQ(ledger.StateDigest(), state_before);
  EXPECT_EQ(ledger.Balance("C1:debit"), 60'000);
}

TEST(Idempotency, MismatchIsDetectedAfterReopen) {
  TestLedger ledger;
  SetUpInOneGroup(ledger, {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                           testing::Deposit("d1", "C1:debit", 1'000)});
  ledger.Reopen();

  const CommandResult other = ledger.Submit(testing::Deposit("d1", "C1:debit", 1'001));

  EXPECT_EQ(other.kind, Kind::kRejected);
  EXPECT_EQ(other.reason, reason::kDuplicateCommandMismatch);
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000);
}

// ---------------------------------------------------------------------------------------------------------------
// Input: errors (not a command) vs MALFORMED_COMMAND (a command, but not a valid one)

TEST(Input, NonCommandsAreParseErrors) {
  const char* const lines[] = {
      R"({"type":"deposit","command_id":"d1",)",                                            // truncated JSON
      R"({"type":"deposit" "command_id":"d1"})",                                            // missing comma
      "not json at all",                                                                    // not JSON
      "",                                                                                   // empty
      R"([{"type":"deposit","command_id":"d1"}])",                                          // an array
      R"("deposit")",                                                                       // a string
      "42",                                                                                 // a number
      "null",                                                                               // null
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":"100"})",  // string amount
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":1.5})",  // fractional amount
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":1e3})",  // float notation
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":null})",  // null amount
      R"({"type":"deposit","command_id":"d1","account":7,"amount_minor":100})",  // number as string field
      // an unknown field
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":100,"memo":"x"})",
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":100,"occurred_at":5})",
      R"({"type":"deposit","account":"C1:debit","amount_minor":100})",                  // missing command_id
      R"({"type":"deposit","command_id":"","account":"C1:debit","amount_minor":100})",  // empty command_id
      R"({"type":"deposit","command_id":17,"account":"C1:debit","amount_minor":100})",  // numeric command_id
      R"({"command_id":"d1","account":"C1:debit","amount_minor":100})",                 // missing type
      R"({"type":3,"command_id":"d1"})",                                                // numeric type
  };
  for (const char* line : lines) {
    SCOPED_TRACE(line);
    Result<ParsedCommand> parsed = ParseNoThrow(line);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_FALSE(parsed.status().message().empty());
    EXPECT_EQ(parsed.status().message().find('\n'), std::string::npos);  // one line
  }
}

TEST(Input, OverlongLineIsParseError) {
  nlohmann::json command = testing::OpenMerchant("m1", "M1", 60);
  command["name"] = std::string(kCommandLineBytesMax, 'x');
  Result<ParsedCommand> parsed = ParseNoThrow(command.dump());
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
}

// An unknown type skips the per-type field checks, but occurred_at is common to every type: a non-string
// value is a wrong JSON type (an input error), and must never escape as an exception.
TEST(Input, UnknownTypeWithNonStringOccurredAtIsParseError) {
  Result<ParsedCommand> parsed = ParseNoThrow(R"({"type":"frobnicate","command_id":"x1","occurred_at":5})");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
}

TEST(Input, WellFormedButInvalidCommandsAreMalformedNotErrors) {
  const char* const lines[] = {
      R"({"type":"open_account","command_id":"a1","customer":"C1","account":"C1:debit","kind":"savings"})",
      R"({"type":"pay","command_id":"p1","merchant":"M1","merchant_order_no":"O1","customer":"C1","funding":"cash","account":"C1:debit","channel":"b2c_pc","medium":"sms","order_amount_minor":100})",
      R"({"type":"pay","command_id":"p1","merchant":"M1","merchant_order_no":"O1","customer":"C1","funding":"own_account","account":"C1:debit","channel":"b2c_pc","medium":"carrier_pigeon","order_amount_minor":100})",
      R"({"type":"deposit","command_id":"d1","amount_minor":100})",    // missing account
      R"({"type":"deposit","command_id":"d1","account":"C1:debit"})",  // missing amount
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":100,"occurred_at":"2026-11-25T10:00:00"})",
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":100,"occurred_at":"2026-02-30T10:00:00+08:00"})",
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":100,"occurred_at":"yesterday"})",
      R"({"type":"deposit","command_id":"d 1","account":"C1:debit","amount_minor":100})",  // space in id
      R"({"type":"frobnicate","command_id":"x1","anything":[1,2]})",                       // unknown type
  };
  for (const char* line : lines) {
    SCOPED_TRACE(line);
    Result<ParsedCommand> parsed = ParseNoThrow(line);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_TRUE(parsed->malformed.has_value());
    EXPECT_FALSE(parsed->command_id.empty());
  }
}

TEST(Input, ValidCommandIsNotMalformed) {
  Result<ParsedCommand> parsed = ParseNoThrow(testing::Pay("M1", "ORD1", "C1", 10'000).dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_FALSE(parsed->malformed.has_value()) << *parsed->malformed;
  EXPECT_EQ(parsed->command_id, "M1:ORD1");
  EXPECT_EQ(parsed->type, "pay");
}

TEST(Input, MalformedCommandIsRecordedAsOneRejectionAndMovesNoMoney) {
  TestLedger ledger;
  SetUpInOneGroup(ledger, {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                           testing::Deposit("d1", "C1:debit", 10'000)});
  nlohmann::json pay = testing::Pay("M1", "ORD1", "C1", 5'000);
  pay["medium"] = "carrier_pigeon";
  const uint64_t sequence_before = ledger.ledger().last_sequence();

  const CommandResult result = ledger.Submit(pay);

  EXPECT_EQ(result.kind, Kind::kRejected);
  EXPECT_EQ(result.reason, reason::kMalformedCommand);
  ASSERT_EQ(result.sequences.size(), 1u);
  const std::vector<EventSummary> events = EventsFrom(ledger, sequence_before + 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "CommandRejected");
  EXPECT_EQ(events[0].reason, reason::kMalformedCommand);
  EXPECT_EQ(events[0].sequence, result.sequences[0]);
  EXPECT_EQ(ledger.Balance("C1:debit"), 10'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);
  EXPECT_EQ(SumByUnit(ledger), std::make_pair(int64_t{0}, int64_t{0}));
}

TEST(Input, RejectedCommandIsExactlyOneCommandRejectedEvent) {
  TestLedger ledger;
  SetUpInOneGroup(ledger, {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                           testing::Deposit("d1", "C1:debit", 1'000)});
  const uint64_t sequence_before = ledger.ledger().last_sequence();

  const CommandResult result =
      ledger.Submit(testing::Pay("M1", "ORD1", "C1", 5'000));  // more than the balance

  ASSERT_EQ(result.kind, Kind::kRejected);
  EXPECT_EQ(result.reason, reason::kInsufficientFunds);
  EXPECT_EQ(result.sequences, std::vector<uint64_t>{sequence_before + 1});
  EXPECT_EQ(ledger.ledger().last_sequence(), sequence_before + 1);
  const std::vector<EventSummary> events = EventsFrom(ledger, sequence_before + 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "CommandRejected");
  EXPECT_EQ(events[0].reason, reason::kInsufficientFunds);
  EXPECT_EQ(events[0].command_id, "M1:ORD1");
  EXPECT_EQ(ledger.Balance("C1:debit"), 1'000);
  EXPECT_EQ(ledger.Balance("merchant:M1"), 0);
  EXPECT_EQ(ledger.Balance("gl:fee_income"), 0);
  EXPECT_EQ(SumByUnit(ledger), std::make_pair(int64_t{0}, int64_t{0}));
}

TEST(Input, AmountsOutsideOneToTwoToThe53AreInvalidAmount) {
  TestLedger ledger;
  OpenC1AndM1(ledger);
  const std::string amounts[] = {"9007199254740992",      // 2^53
                                 "9223372036854775807",   // INT64_MAX
                                 "9223372036854775808",   // INT64_MAX + 1
                                 "18446744073709551615",  // UINT64_MAX
                                 "0",
                                 "-1",
                                 "-9223372036854775808"};
  int n = 0;
  for (const std::string& amount : amounts) {
    SCOPED_TRACE(amount);
    const std::string line = R"({"type":"deposit","command_id":"big)" + std::to_string(++n) +
                             R"(","account":"C1:debit","amount_minor":)" + amount + "}";
    const uint64_t sequence_before = ledger.ledger().last_sequence();
    const CommandResult result = ledger.SubmitLine(line);
    EXPECT_EQ(result.kind, Kind::kRejected);
    EXPECT_EQ(result.reason, reason::kInvalidAmount);
    EXPECT_EQ(ledger.ledger().last_sequence(), sequence_before + 1);
    EXPECT_EQ(ledger.Balance("C1:debit"), 0);
    EXPECT_EQ(ledger.Balance("gl:funding"), 0);
  }
  nlohmann::json pay = testing::Pay("M1", "ORD1", "C1", 1);
  pay["order_amount_minor"] = UINT64_MAX;
  const CommandResult paid = ledger.Submit(pay);
  EXPECT_EQ(paid.kind, Kind::kRejected);
  EXPECT_EQ(paid.reason, reason::kInvalidAmount);
  EXPECT_EQ(SumByUnit(ledger), std::make_pair(int64_t{0}, int64_t{0}));
}

TEST(Input, LargestValidAmountIsAccepted) {
  TestLedger ledger;
  OpenC1AndM1(ledger);
  const CommandResult result = ledger.Submit(testing::Deposit("d1", "C1:debit", kAmountMinorMax));
  EXPECT_EQ(result.kind, Kind::kAccepted) << result.reason;
  EXPECT_EQ(ledger.Balance("C1:debit"), kAmountMinorMax);
}

// command.cc: "values beyond int64 read as INT64_MAX so validation reports INVALID_AMOUNT". An integer
// literal is an integer whatever its size: it is a well-formed command with an invalid amount, not a wrong
// JSON type.
TEST(Input, IntegerLiteralsBeyond64BitsAreInvalidAmountNotInputErrors) {
  const std::string amounts[] = {"100000000000000000000", "-100000000000000000000"};
  for (const std::string& amount : amounts) {
    SCOPED_TRACE(amount);
    const std::string line =
        R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":)" + amount + "}";
    Result<ParsedCommand> parsed = ParseNoThrow(line);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    TestLedger ledger;
    OpenC1AndM1(ledger);
    const CommandResult result = ledger.ledger().Stage(*parsed);
    ASSERT_TRUE(ledger.ledger().CommitGroup().ok());
    EXPECT_EQ(result.kind, Kind::kRejected);
    EXPECT_EQ(result.reason, reason::kInvalidAmount);
    EXPECT_EQ(ledger.Balance("C1:debit"), 0);
  }
}

TEST(Input, DepositThatWouldOverflowBalanceIsInvalidAmount) {
  TestLedger ledger;
  SetUpInOneGroup(ledger, {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                           testing::Deposit("d1", "C1:debit", kAmountMinorMax)});

  const CommandResult result = ledger.Submit(testing::Deposit("d2", "C1:debit", 1));

  EXPECT_EQ(result.kind, Kind::kRejected);
  EXPECT_EQ(result.reason, reason::kInvalidAmount);
  EXPECT_EQ(ledger.Balance("C1:debit"), kAmountMinorMax);
  EXPECT_EQ(ledger.Balance("gl:funding"), -kAmountMinorMax);
  EXPECT_EQ(SumByUnit(ledger), std::make_pair(int64_t{0}, int64_t{0}));
}

TEST(Input, DepositThatWouldOverflowFundingIsInvalidAmount) {
  TestLedger ledger;
  SetUpInOneGroup(ledger, {testing::OpenAccount("a1", "C1"), testing::OpenAccount("a2", "C2"),
                           testing::Deposit("d1", "C1:debit", kAmountMinorMax)});

  const CommandResult result = ledger.Submit(testing::Deposit("d2", "C2:debit", kAmountMinorMax));

  EXPECT_EQ(result.kind, Kind::kRejected);
  EXPECT_EQ(result.reason, reason::kInvalidAmount);
  EXPECT_EQ(ledger.Balance("C2:debit"), 0);
  EXPECT_EQ(ledger.Balance("gl:funding"), -kAmountMinorMax);
}

// ---------------------------------------------------------------------------------------------------------------
// Input: ledger.toml

std::string WriteConfig(const testing::TempDir& dir, const std::string& text) {
  const std::string path = dir.path() + "/ledger.toml";
  std::ofstream(path) << text;
  return path;
}

TEST(InputConfig, MissingFileGivesDefaults) {
  testing::TempDir dir;
  Result<LedgerConfig> config = LoadConfig(dir.path() + "/ledger.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const LedgerConfig defaults;
  EXPECT_EQ(config->medium_policy[3].daily_minor, defaults.medium_policy[3].daily_minor);
  EXPECT_EQ(config->qr_static_daily_minor, defaults.qr_static_daily_minor);
}

TEST(InputConfig, UnknownKeyIsErrorNamingTheLine) {
  testing::TempDir dir;
  const std::string path =
      WriteConfig(dir, "[ledger]\nshard = 0\n\n[limits.sms]\ndaily_minor = 1000\nbogus = 1\n");
  Result<LedgerConfig> config = LoadConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("line 6"), std::string::npos) << config.status().message();
  EXPECT_NE(config.status().message().find("bogus"), std::string::npos) << config.status().message();
}

TEST(InputConfig, UnknownTopLevelKeyIsErrorNamingTheLine) {
  testing::TempDir dir;
  const std::string path = WriteConfig(dir, "# comment\nfoo = 1\n");
  Result<LedgerConfig> config = LoadConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("line 2"), std::string::npos) << config.status().message();
}

TEST(InputConfig, WrongTypeIsErrorNamingTheLine) {
  const char* const texts[] = {"[ledger]\nshard = 0\n[limits.sms]\ndaily_minor = \"1000\"\n",
                               "[ledger]\nshard = 0\n[limits.sms]\ndaily_minor = 1.5\n",
                               "[ledger]\nshard = 0\n[limits.sms]\ndaily_minor = true\n"};
  for (const char* text : texts) {
    SCOPED_TRACE(text);
    testing::TempDir dir;
    Result<LedgerConfig> config = LoadConfig(WriteConfig(dir, text));
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(config.status().message().find("line 4"), std::string::npos) << config.status().message();
  }
}

TEST(InputConfig, SyntaxErrorNamesTheLine) {
  testing::TempDir dir;
  Result<LedgerConfig> config =
      LoadConfig(WriteConfig(dir, "[ledger]\nshard = 0\nrefund_window_days = = 3\n"));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("line 3"), std::string::npos) << config.status().message();
}

TEST(InputConfig, ValidFileChangesLimitsAndLedgerEnforcesThem) {
  testing::TempDir dir;
  Result<LedgerConfig> config = LoadConfig(WriteConfig(dir, "[limits.sms]\ndaily_minor = 1000\n"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const int sms = static_cast<int>(fb::Medium::sms);
  EXPECT_EQ(config->medium_policy[sms].daily_minor, 1000);
  const LedgerConfig defaults;
  EXPECT_EQ(config->medium_policy[sms].per_payment_minor, defaults.medium_policy[sms].per_payment_minor);
  EXPECT_EQ(config->medium_policy[0].daily_minor, defaults.medium_policy[0].daily_minor);

  TestLedger ledger(*config);
  SetUpInOneGroup(ledger, {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                           testing::Deposit("d1", "C1:debit", 100'000)});
  const CommandResult first = ledger.Submit(testing::Pay("M1", "ORD1", "C1", 600, "", "sms"));
  ASSERT_EQ(first.kind, Kind::kAccepted) << first.reason;
  const CommandResult second = ledger.Submit(testing::Pay("M1", "ORD2", "C1", 500, "", "sms"));
  EXPECT_EQ(second.kind, Kind::kRejected);
  EXPECT_EQ(second.reason, reason::kLimitDailyExceeded);
  EXPECT_EQ(ledger.Balance("C1:debit"), 100'000 - 600);
  // The same payment under the default policy would pass.
  TestLedger default_ledger;
  SetUpInOneGroup(default_ledger, {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                                   testing::Deposit("d1", "C1:debit", 100'000)});
  ASSERT_EQ(default_ledger.Submit(testing::Pay("M1", "ORD1", "C1", 600, "", "sms")).kind, Kind::kAccepted);
  EXPECT_EQ(default_ledger.Submit(testing::Pay("M1", "ORD2", "C1", 500, "", "sms")).kind, Kind::kAccepted);
}

// [group_commit] has no wait_us_max (no bound on waiting: a group closes by count or bytes, or when its
// caller seals it), so a file that still sets it is refused like any other unknown key; the table's other
// keys apply.
TEST(InputConfig, GroupCommitWaitIsAnUnknownKeyNamingTheLine) {
  testing::TempDir dir;
  const std::string path = WriteConfig(dir, "[group_commit]\ncommands_max = 64\nwait_us_max = 1000\n");
  Result<LedgerConfig> config = LoadConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(), path + ": line 3: unknown key 'wait_us_max' in [group_commit]");

  config = LoadConfig(WriteConfig(dir, "[group_commit]\ncommands_max = 64\nbytes_max = 65536\n"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->group_commands_max, 64u);
  EXPECT_EQ(config->group_bytes_max, 65'536u);
}

// The program: bad input (exit 2) with that one line, and no store is created.
TEST(InputConfig, ProgramRefusesGroupCommitWaitAsBadInput) {
  testing::TempDir dir;
  const std::string data = dir.path() + "/data";
  std::filesystem::create_directories(data);
  testing::WriteFile(data + "/ledger.toml", "[group_commit]\ncommands_max = 64\nwait_us_max = 1000\n");
  testing::WriteFile(dir.path() + "/in.jsonl", testing::OpenAccount("a1", "C1").dump() + "\n");

  const testing::ProgramRun run = testing::RunLedger(
      dir.path(), {"submit", "--data", data, "--clock", "occurred", dir.path() + "/in.jsonl"});

  EXPECT_EQ(run.exit_code, 2) << testing::Describe(run);
  EXPECT_EQ(run.out, "") << testing::Describe(run);
  EXPECT_EQ(run.err,
            "ledger: " + data + "/ledger.toml: line 3: unknown key 'wait_us_max' in [group_commit]\n")
      << testing::Describe(run);
  EXPECT_FALSE(std::filesystem::exists(data + "/CURRENT"));
}

}  // namespace
}  // namespace ledger
