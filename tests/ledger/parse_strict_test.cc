// Goal: no input line gets past the parser as an exception or a crash, and JSON is read strictly: huge
// numbers, deep nesting, NUL bytes, invalid UTF-8 and duplicate keys are one-line input errors; a bounded
// fuzz run over random bytes and mutated command lines gives every line exactly one outcome, and staging
// every line that parses never crashes the ledger.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "ledger/command.h"
#include "ledger/ledger.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::TestLedger;
using Kind = CommandResult::Kind;

// Parses `line`, turning any escaping exception into a test failure.
Result<ParsedCommand> ParseCatching(const std::string& line) {
  try {
    return ParseCommandJson(line);
  } catch (const std::exception& error) {
    ADD_FAILURE() << "ParseCommandJson threw '" << error.what() << "'";
    return Status::Internal("threw");
  } catch (...) {
    ADD_FAILURE() << "ParseCommandJson threw a non-standard exception";
    return Status::Internal("threw");
  }
}

// An input error: InvalidArgument with a non-empty one-line message.
::testing::AssertionResult IsInputError(const Result<ParsedCommand>& parsed) {
  if (parsed.ok()) return ::testing::AssertionFailure() << "parsed as a command";
  if (parsed.status().code() != StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "not InvalidArgument: " << parsed.status().ToString();
  }
  const std::string message = parsed.status().message();
  if (message.empty() || message.find('\n') != std::string::npos || message.find('\r') != std::string::npos) {
    return ::testing::AssertionFailure() << "not a one-line message: " << message;
  }
  return ::testing::AssertionSuccess();
}

const char kDeposit[] = R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":)";

TEST(StrictInput, HugeNumbersAreInputErrorsNotExceptions) {
  const std::string lines[] = {
      std::string(kDeposit) + "1e400}",
      std::string(kDeposit) + "-1e400}",
      std::string(kDeposit) + "1e309}",
      // In a field the type does not know, and in an unknown type: the number is read before any field check.
      std::string(kDeposit) + R"(100,"memo":1e309})",
      R"({"type":"frobnicate","command_id":"x1","anything":1e309})",
      R"({"type":"frobnicate","command_id":"x1","anything":[1,{"deep":-1e99999}]})",
  };
  for (const std::string& line : lines) {
    SCOPED_TRACE(line);
    EXPECT_TRUE(IsInputError(ParseCatching(line)));
  }
}

TEST(StrictInput, DeepNestingIsAnInputError) {
  const size_t depths[] = {30'000, 1'000, 100};
  for (const size_t depth : depths) {
    SCOPED_TRACE(depth);
    const std::string open(depth, '['), close(depth, ']');
    const std::string prefix = R"({"type":"frobnicate","command_id":"x1","a":)";
    EXPECT_TRUE(IsInputError(ParseCatching(prefix + open + close + "}")));
    EXPECT_TRUE(IsInputError(ParseCatching(open)));
    std::string objects;
    for (size_t i = 0; i < depth / 6; ++i) objects += R"({"a":)";
    EXPECT_TRUE(IsInputError(ParseCatching(R"({"type":"frobnicate","command_id":"x1","a":)" + objects)));
  }
  // Shallow nesting in an unknown type is still a command (recorded as MALFORMED_COMMAND).
  Result<ParsedCommand> shallow =
      ParseCatching(R"({"type":"frobnicate","command_id":"x1","a":[[1],{"b":[2]}]})");
  ASSERT_TRUE(shallow.ok()) << shallow.status().ToString();
  EXPECT_TRUE(shallow->malformed.has_value());
}

TEST(StrictInput, InvalidUtf8AndBinaryGarbageAreInputErrors) {
  const std::string lines[] = {
      R"({"type":"deposit","command_id":"d)" + std::string("\xff\xfe") +
          R"(","account":"C1:debit","amount_minor":1})",
      R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":1,"x":")" +
          std::string("\xc0\x80") + R"("})",
      R"({"type":"frobnicate","command_id":"x1","a":")" + std::string("\xed\xa0\x80") + R"("})",
      R"({"type":"frobnicate","command_id":"x1","a":"\ud800"})",
      std::string("\x00\x01\x02\xff\x80{", 6),
      std::string("\x1f\x8b\x08\x00", 4),
  };
  for (const std::string& line : lines) {
    SCOPED_TRACE(::testing::PrintToString(line));
    EXPECT_TRUE(IsInputError(ParseCatching(line)));
  }
}

// A NUL byte used to end the line for the JSON reader, so whatever followed it was never read.
TEST(StrictInput, NulByteAnywhereIsAnInputError) {
  const std::string valid = testing::Deposit("d1", "C1:debit", 100).dump();
  ASSERT_TRUE(ParseCatching(valid).ok());
  const std::string lines[] = {
      valid + std::string(1, '\0'),
      valid + std::string(1, '\0') + R"({"type":"deposit","command_id":"d2"})",
      std::string(1, '\0') + valid,
      valid.substr(0, 10) + std::string(1, '\0') + valid.substr(10),
  };
  for (const std::string& line : lines) {
    SCOPED_TRACE(::testing::PrintToString(line));
    const Result<ParsedCommand> parsed = ParseCatching(line);
    EXPECT_TRUE(IsInputError(parsed));
    if (!parsed.ok()) {
      EXPECT_NE(parsed.status().message().find("NUL"), std::string::npos) << parsed.status().message();
    }
  }
}

TEST(StrictInput, DuplicateKeysAtAnyDepthAreInputErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {std::string(kDeposit) + R"(100,"amount_minor":999999999})", "amount_minor"},
      {R"({"type":"deposit","type":"pay","command_id":"d1","account":"C1:debit","amount_minor":1})", "type"},
      {R"({"command_id":"a","type":"deposit","command_id":"b","account":"C1:debit","amount_minor":1})",
       "command_id"},
      {R"({"type":"frobnicate","command_id":"x1","a":{"b":1,"c":{"d":1,"d":2}}})", "d"},
      {R"({"type":"frobnicate","command_id":"x1","a":[{"k":1},{"k":2,"k":3}]})", "k"},
  };
  for (const auto& [line, key] : cases) {
    SCOPED_TRACE(line);
    const Result<ParsedCommand> parsed = ParseCatching(line);
    ASSERT_TRUE(IsInputError(parsed));
    EXPECT_NE(parsed.status().message().find("duplicate key '" + key + "'"), std::string::npos)
        << parsed.status().message();
  }
  // The same key in sibling objects is not a duplicate.
  EXPECT_TRUE(
      ParseCatching(R"({"type":"frobnicate","command_id":"x1","a":[{"k":1},{"k":2}],"b":{"k":3}})").ok());
}

// A duplicate key's name is shown safely: control characters never break the one-line message.
TEST(StrictInput, DuplicateKeyWithControlCharactersGivesOneLineMessage) {
  const Result<ParsedCommand> parsed =
      ParseCatching(R"({"type":"frobnicate","command_id":"x1","a\nb":1,"a\nb":2})");
  EXPECT_TRUE(IsInputError(parsed));
}

// -----------------------------------------------------------------------------------------------------------
// Bounded fuzzing

constexpr int kFuzzLines = 20'000;
constexpr auto kFuzzTimeBudget = std::chrono::seconds(4);
constexpr int kStageGroup = 250;
const uint64_t kFuzzSeeds[] = {11, 2026};

// Valid command lines of every type: the seeds of the mutations.
std::vector<std::string> ValidLines() {
  json coupon = {
      {"type", "issue_coupon"}, {"command_id", "c1"},  {"coupon", "CP1"},
      {"customer", "C1"},       {"value_minor", 500},  {"min_spend_minor", 5000},
      {"merchant", "M1"},       {"funded_by", "bank"}, {"expires_at", "2026-12-31T23:59:59+08:00"}};
  json limit = {{"type", "set_customer_limit"}, {"command_id", "l1"}, {"customer", "C1"}, {"medium", "sms"},
                {"daily_minor", 200000},        {"daily_count", 5}};
  json credit = testing::OpenAccount("a2", "C1", "credit_card", 5'000'000);
  json wallet = testing::Pay("M1", "ORD2", "C1", 700);
  wallet["funding"] = "wechat";
  wallet.erase("account");
  wallet.erase("medium");
  wallet["channel"] = "qr_static";
  json points = testing::Pay("M1", "ORD3", "C1", 9'000);
  points["points"] = 1500;
  points["coupon"] = "CP1";
  points["discount_minor"] = 100;
  return {testing::OpenAccount("a1", "C1").dump(),
          credit.dump(),
          testing::OpenMerchant("m1", "M1", 60).dump(),
          testing::Deposit("d1", "C1:debit", 1'000'000).dump(),
          testing::AwardPoints("p1", "C1", 20'000).dump(),
          coupon.dump(),
          limit.dump(),
          testing::Pay("M1", "ORD1", "C1", 10'000).dump(),
          wallet.dump(),
          points.dump(),
          testing::Reverse("M1", "ORD1").dump(),
          testing::Refund("M1", "ORD3", "RF1", 3'000).dump(),
          R"({"type":"frobnicate","command_id":"x1","anything":[1,2]})"};
}

// Pieces worth splicing into a line: huge numbers, nesting, NULs, bad UTF-8, JSON punctuation, keys again.
const char* const kSplices[] = {"1e400",
                                "-1e400",
                                "1e309",
                                "123456789012345678901234567890",
                                "1e-400",
                                "-0",
                                "[[[[[[[[[[[[[[[[[[[[[[[[",
                                "{\"a\":{\"a\":{\"a\":",
                                "]]]]}}}}",
                                "\\u0000",
                                "\\ud800",
                                "\xff",
                                "\xc0\x80",
                                "\xed\xa0\x80",
                                "null",
                                "true",
                                "\"",
                                ",",
                                ":",
                                "{}",
                                "[]",
                                ",\"amount_minor\":1",
                                ",\"type\":\"pay\"",
                                ",\"command_id\":\"z\"",
                                ",\"customer\":\"merchant:M1\"",
                                ",\"account\":\"gl:funding\"",
                                "\"occurred_at\":\"9999-12-31T23:59:59+14:00\"",
                                "\"occurred_at\":\"0001-01-01T00:00:00-12:00\"",
                                "9223372036854775807",
                                "-9223372036854775808",
                                "18446744073709551616"};

// Values a field may be set to, of every JSON type: limits of the integer range, hostile names, odd times.
json OddValue(int which) {
  switch (which) {
    case 0:
      return INT64_MAX;
    case 1:
      return INT64_MIN;
    case 2:
      return -1;
    case 3:
      return 0;
    case 4:
      return int64_t{1} << 53;
    case 5:
      return 1.5;
    case 6:
      return nullptr;
    case 7:
      return true;
    case 8:
      return json::array({1, "a"});
    case 9:
      return json::object({{"a", 1}});
    case 10:
      return "";
    case 11:
      return std::string(200, 'x');
    case 12:
      return "merchant:M1";
    case 13:
      return "gl:funding";
    case 14:
      return "C1:points";
    case 15:
      return "9999-12-31T23:59:59+14:00";
    case 16:
      return "0001-01-01T00:00:00-12:00";
    case 17:
      return "2026-02-29T10:00:00+08:00";
    case 18:
      return "b2c_pc";
    default:
      return "M1";
  }
}
constexpr int kOddValues = 20;

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : random_(seed), valid_(ValidLines()) {}

  std::string Next() {
    const int kind = Uniform(0, 9);
    if (kind == 0) return RandomBytes();
    std::string line = valid_[static_cast<size_t>(Uniform(0, static_cast<int>(valid_.size()) - 1))];
    if (kind <= 4) return MutateFields(line);
    const int mutations = Uniform(1, 3);
    for (int i = 0; i < mutations; ++i) Mutate(&line);
    return line;
  }

 private:
  int Uniform(int low, int high) { return std::uniform_int_distribution<int>(low, high)(random_); }
  size_t Position(const std::string& line) {
    return static_cast<size_t>(Uniform(0, static_cast<int>(line.size())));
  }

  std::string RandomBytes() {
    std::string bytes(static_cast<size_t>(Uniform(0, 200)), '\0');
    for (char& c : bytes) c = static_cast<char>(Uniform(0, 255));
    return bytes;
  }

  // Still JSON: fields set to odd values, removed, or taken from another command type.
  std::string MutateFields(const std::string& line) {
    json command = json::parse(line);
    const int mutations = Uniform(1, 3);
    for (int i = 0; i < mutations; ++i) {
      auto field = command.begin();
      std::advance(field, Uniform(0, static_cast<int>(command.size()) - 1));
      const std::string key = field.key();
      const int roll = Uniform(0, 9);
      if (roll == 0 && key != "type" && key != "command_id") {
        command.erase(key);
      } else if (roll == 1) {
        command["type"] = json::parse(valid_[static_cast<size_t>(Uniform(0, 11))])["type"];
      } else {
        command[key] = OddValue(Uniform(0, kOddValues - 1));
      }
    }
    // Mostly a new command id and order, so the command is decided rather than answered as a mismatch.
    if (Uniform(0, 4) > 0) {
      command["command_id"] = "f" + std::to_string(++fresh_ids_);
      if (command.contains("merchant_order_no")) {
        command["merchant_order_no"] = "F" + std::to_string(fresh_ids_);
      }
    }
    return command.dump();
  }

  void Mutate(std::string* line) {
    switch (Uniform(0, 6)) {
      case 0:  // flip a byte
        if (!line->empty()) (*line)[Position(*line) % line->size()] = static_cast<char>(Uniform(0, 255));
        break;
      case 1:  // truncate
        line->resize(Position(*line));
        break;
      case 2:  // a NUL somewhere
        line->insert(Position(*line), 1, '\0');
        break;
      case 3: {  // a value replaced by a splice
        const size_t colon = line->find(':', Position(*line));
        if (colon == std::string::npos) break;
        const size_t end = line->find_first_of(",}", colon);
        line->replace(colon + 1, (end == std::string::npos ? line->size() : end) - colon - 1,
                      kSplices[Uniform(0, static_cast<int>(std::size(kSplices)) - 1)]);
        break;
      }
      case 4:  // a field repeated (a duplicate key, or a second value)
        if (line->size() > 1 && line->back() == '}') {
          const size_t comma = line->find(',', Position(*line));
          if (comma != std::string::npos) {
            const size_t next = line->find_first_of(",}", comma + 1);
            line->insert(line->size() - 1, line->substr(comma, next - comma));
          }
        }
        break;
      case 5: {  // deep nesting
        const int depth = Uniform(1, 2000);
        line->insert(Position(*line), std::string(static_cast<size_t>(depth), Uniform(0, 1) ? '[' : '{'));
        break;
      }
      default:  // any splice anywhere
        line->insert(Position(*line), kSplices[Uniform(0, static_cast<int>(std::size(kSplices)) - 1)]);
        break;
    }
  }

  std::mt19937_64 random_;
  std::vector<std::string> valid_;
  int fresh_ids_ = 0;
};

TEST(StrictInputFuzz, RandomAndMutatedLinesGetExactlyOneOutcomeAndNeverCrashTheLedger) {
  const auto deadline = std::chrono::steady_clock::now() + kFuzzTimeBudget * testing::Scale();
  int lines = 0, errors = 0, commands = 0, malformed = 0, accepted = 0;
  for (const uint64_t seed : kFuzzSeeds) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Mutator mutator(seed);
    TestLedger ledger;
    // The valid lines first, so mutated payments meet an open account, a merchant and money.
    std::vector<std::string> batch = ValidLines();
    const int budget = testing::Scaled(kFuzzLines) / static_cast<int>(std::size(kFuzzSeeds));
    for (int i = 0; i < budget && std::chrono::steady_clock::now() < deadline; ++i) {
      batch.push_back(mutator.Next());
    }
    int staged = 0;
    for (const std::string& line : batch) {
      ++lines;
      const Result<ParsedCommand> parsed = ParseCatching(line);
      ASSERT_FALSE(::testing::Test::HasFailure()) << ::testing::PrintToString(line);
      if (!parsed.ok()) {
        ++errors;
        ASSERT_TRUE(IsInputError(parsed)) << ::testing::PrintToString(line);
        continue;
      }
      ++commands;
      ASSERT_FALSE(parsed->command_id.empty()) << ::testing::PrintToString(line);
      malformed += parsed->malformed.has_value();
      const uint64_t before = ledger.ledger().last_sequence();
      const CommandResult result = ledger.ledger().Stage(*parsed);
      accepted += result.kind == Kind::kAccepted;
      if (result.kind == Kind::kDuplicate) {
        EXPECT_EQ(ledger.ledger().last_sequence(), before) << ::testing::PrintToString(line);
      } else {
        EXPECT_FALSE(result.sequences.empty()) << ::testing::PrintToString(line);
        EXPECT_EQ(result.kind == Kind::kAccepted, result.reason.empty()) << result.ToJson();
      }
      if (++staged % kStageGroup == 0) {
        ASSERT_TRUE(ledger.ledger().CommitGroup().ok());
      }
    }
    ASSERT_TRUE(ledger.ledger().CommitGroup().ok());
    EXPECT_EQ(ledger.SumByUnit(), std::make_pair(int64_t{0}, int64_t{0}));
  }
  std::cout << "fuzz: " << lines << " lines, " << errors << " input errors, " << commands << " commands ("
            << malformed << " malformed, " << accepted << " accepted)" << std::endl;
  // Not vacuous: both outcomes were met many times.
  EXPECT_GT(errors, lines / 10);
  EXPECT_GT(commands, lines / 20);
  EXPECT_GT(accepted, lines / 100);  // a ratio: LEDGER_TEST_SCALE and the time budget shrink the stream
}

}  // namespace
}  // namespace ledger
