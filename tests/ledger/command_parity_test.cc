// Goal: the simdjson command parser (ledger/command.h) gives every line the outcome the nlohmann-json parser
// it replaced gave (tests/ledger/command_oracle.h): the same accept or reject, the same messages (where the
// old one quoted the JSON library, any one-line "malformed JSON: ..." message), the same ParsedCommand fields
// and the same fingerprint, which must also be the SHA-256 of nlohmann's dump() of the line: stored
// idempotency records depend on it. Checked over a hand-written corpus, thousands of commands from a seeded
// generator, and mutations of them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "command_oracle.h"
#include "ledger/command.h"

namespace ledger {
namespace {

using nlohmann::json;

std::string Packed(const fb::CommandT& command) {
  flatbuffers::FlatBufferBuilder builder;
  builder.Finish(fb::Command::Pack(builder, &command));
  return std::string(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize());
}

struct Tally {
  int accepted = 0;
  int malformed = 0;
  int errors = 0;
};

// The two parsers agree on `line`. Returns false (after reporting) when they do not.
bool ExpectSameOutcome(const std::string& line, Tally* tally = nullptr) {
  const Result<ParsedCommand> now = ParseCommandJson(line);
  const Result<ParsedCommand> old = oracle::ParseCommandJsonWithNlohmann(line);
  const std::string shown = ::testing::PrintToString(line.size() > 400 ? line.substr(0, 400) + "..." : line);
  if (now.ok() != old.ok()) {
    ADD_FAILURE() << shown << "\n  simdjson: " << (now.ok() ? "a command" : now.status().message())
                  << "\n  nlohmann: " << (old.ok() ? "a command" : old.status().message());
    return false;
  }
  if (!old.ok()) {
    if (tally != nullptr) ++tally->errors;
    const std::string message = now.status().message();  // a copy: status() is a temporary
    EXPECT_EQ(now.status().code(), old.status().code()) << shown;
    EXPECT_EQ(message.find_first_of("\r\n"), std::string::npos) << shown;
    EXPECT_EQ(message, old.status().message()) << shown;
    return !::testing::Test::HasFailure();
  }
  if (tally != nullptr) ++(old->malformed ? tally->malformed : tally->accepted);
  EXPECT_EQ(now->fingerprint, old->fingerprint) << shown;
  EXPECT_EQ(now->command_id, old->command_id) << shown;
  EXPECT_EQ(now->type, old->type) << shown;
  EXPECT_EQ(now->malformed, old->malformed) << shown;
  EXPECT_EQ(now->line_bytes, old->line_bytes) << shown;
  EXPECT_EQ(Packed(now->command), Packed(old->command)) << shown;
  // The fingerprint is, by definition, the SHA-256 of nlohmann's canonical dump of the line.
  EXPECT_EQ(now->fingerprint, Sha256Of(json::parse(line).dump())) << shown;
  return !::testing::Test::HasFailure();
}

// ---- Hand-written corpus

const char* const kCommands[] = {
    R"({"type":"open_account","command_id":"a1","customer":"C1","account":"C1:debit","kind":"debit_card"})",
    R"({"type":"open_account","command_id":"a2","customer":"C1","account":"C1:credit",)"
    R"("kind":"credit_card","credit_limit_minor":5000000})",
    R"({"type":"open_merchant","command_id":"m1","merchant":"M1","name":"Caf\u00e9 \"Z\" \\ \/ 中文 😀",)"
    R"("fee_bps":60})",
    R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":1000000,)"
    R"("occurred_at":"2026-11-25T10:00:00+08:00"})",
    R"({"type":"award_points","command_id":"p1","customer":"C1","points":20000})",
    R"({"type":"issue_coupon","command_id":"c1","coupon":"CP1","customer":"C1","value_minor":500,)"
    R"("min_spend_minor":5000,"merchant":"M1","funded_by":"bank",)"
    R"("expires_at":"2026-12-31T23:59:59+08:00"})",
    R"({"type":"set_customer_limit","command_id":"l1","customer":"C1","medium":"sms","daily_minor":200000,)"
    R"("daily_count":5,"per_payment_minor":-1})",
    R"({"type":"pay","command_id":"M1:O1","merchant":"M1","merchant_order_no":"O1","customer":"C1",)"
    R"("funding":"own_account","account":"C1:debit","channel":"b2c_pc","medium":"sms",)"
    R"("order_amount_minor":10000,"points":1500,"coupon":"CP1","discount_minor":100})",
    R"({"type":"pay","command_id":"M1:O2","merchant":"M1","merchant_order_no":"O2","customer":"C1",)"
    R"("funding":"wechat","channel":"qr_static","order_amount_minor":700})",
    R"({"type":"reverse","command_id":"r1","merchant":"M1","merchant_order_no":"O1",)"
    R"("reason":"line\tbreak\nand \u0001\u001f\u007f\b\f\r"})",
    R"({"type":"refund","command_id":"f1","merchant":"M1","merchant_order_no":"O1","refund_no":"RF1",)"
    R"("amount_minor":3000})",
    // Whitespace everywhere, keys in any order, a byte order mark.
    " \t{ \"amount_minor\" : 5 ,\r\n \"account\":\"C1:debit\", \"command_id\":\"d2\",\"type\":\"deposit\" } "
    "\n",
    "\xEF\xBB\xBF{\"type\":\"deposit\",\"command_id\":\"d3\",\"account\":\"C1:debit\",\"amount_minor\":1}",
    // Integers at and beyond the edges of 64 bits, negative zero, huge literals in every spelling.
    R"({"type":"deposit","command_id":"d4","account":"C1:debit","amount_minor":9223372036854775807})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit","amount_minor":9223372036854775808})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit","amount_minor":18446744073709551615})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit","amount_minor":18446744073709551616})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit","amount_minor":-9223372036854775808})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit","amount_minor":-9223372036854775809})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit",)"
    R"("amount_minor":123456789012345678901234567890})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit",)"
    R"("amount_minor":-123456789012345678901234567890})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit","amount_minor":-0})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit","amount_minor":1e19})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit","amount_minor":-1E+19})",
    R"({"type":"deposit","command_id":"d4","account":"C1:debit","amount_minor":9.3e18})",
    R"({"type":"set_customer_limit","command_id":"l2","customer":"C1","medium":"otp_card",)"
    R"("monthly_minor":-5})",
    // Unknown types: anything goes within 16 levels, floats included.
    R"({"type":"frobnicate","command_id":"x1","a":[[1],{"b":[2]}],"f":[0.1,1.5,-0.0,1e-400,-1e-400,1e300,)"
    R"(4.9e-324,2.2250738585072014e-308,1.7976931348623157e308,123.456e-7,1e21,1e-7,100000000000000000000,)"
    R"(0.30000000000000004]})",
    R"({"type":"frobnicate","command_id":"x2","n":null,"t":true,"f":false,"o":{},"e":[],)"
    R"("s":"\u0000\ud83d\ude00","z":{"b":1,"a":{"d":[],"c":null}}})",
    R"({"type":"frobnicate","command_id":"x3","\u00e9":1,"e\u0301":2,"E":3,"É":4,"\u0000k":5,"":6})",
    R"({"type":"frobnicate","command_id":"x4","a":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]})",
    R"({"type":"frobnicate","command_id":"x5","occurred_at":"2026-11-25T10:00:00Z"})",
    // Well-formed but not valid: MALFORMED_COMMAND details.
    R"({"type":"open_account","command_id":"a 1","customer":"gl","account":"gl:x","kind":"savings"})",
    R"({"type":"pay","command_id":"p1","merchant":"M:1","merchant_order_no":"O/1","customer":"C1",)"
    R"("funding":"cash","channel":"pos","order_amount_minor":1})",
    R"({"type":"deposit","command_id":"d5","account":"C1:points","amount_minor":1,)"
    R"("occurred_at":"yesterday"})",
    R"({"type":"open_merchant","command_id":"m2","merchant":"M2","name":"x","fee_bps":10001})",
};

// Lines that are not commands: the same error (or, for a library message, an error of the same kind).
const char* const kNonCommands[] = {
    "",
    "   ",
    "not json",
    "42",
    "null",
    R"(["type"])",
    R"({"type":"deposit","command_id":"d1",)",
    R"({"type":"deposit" "command_id":"d1"})",
    R"({"type":"deposit","command_id":"d1"} x)",
    R"({"type":"deposit","command_id":"d1","amount_minor":1e400})",
    R"({"type":"deposit","command_id":"d1","amount_minor":-1e309})",
    R"({"type":"deposit","command_id":"d1","amount_minor":01})",
    R"({"type":"deposit","command_id":"d1","amount_minor":1.})",
    R"({"type":"deposit","command_id":"d1","amount_minor":"5"})",
    R"({"type":"deposit","command_id":"d1","amount_minor":1.5})",
    R"({"type":"deposit","command_id":"d1","amount_minor":1e3})",
    R"({"type":"deposit","command_id":"d1","amount_minor":null})",
    R"({"type":"deposit","command_id":"d1","account":7})",
    R"({"type":"deposit","command_id":"d1","memo":"x","account":5})",
    R"({"type":"deposit","command_id":"d1","zz\u0001":1})",
    R"({"type":"deposit","command_id":"d1","occurred_at":5})",
    R"({"type":"frobnicate","command_id":"x1","occurred_at":[]})",
    R"({"type":"deposit","command_id":""})",
    R"({"type":"deposit","command_id":17})",
    R"({"command_id":"d1"})",
    R"({"type":3,"command_id":"d1"})",
    R"({"type":"deposit","type":"pay","command_id":"d1"})",
    R"({"type":"frobnicate","command_id":"x1","a":[{"k":1},{"k":2,"k":3}]})",
    R"({"type":"frobnicate","command_id":"x1","a\nb":1,"a\nb":2})",
    R"({"type":"frobnicate","command_id":"x1","a":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]})",
    R"({"type":"frobnicate","command_id":"x1","d":1,"d":2,"a":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]})",
    R"({"type":"frobnicate","command_id":"x1","a":"\ud800"})",
    R"({"type":"frobnicate","command_id":"x1","a":"\udc00"})",
    R"({"type":"frobnicate","command_id":"x1","a":"\x"})",
    "{\"type\":\"frobnicate\",\"command_id\":\"x1\",\"a\":\"\xff\"}",
    "{\"type\":\"frobnicate\",\"command_id\":\"x1\",\"a\":\"\xc0\x80\"}",
    "{\"type\":\"frobnicate\",\"command_id\":\"x1\",\"a\":\"\xed\xa0\x80\"}",
    "{\"type\":\"frobnicate\",\"command_id\":\"x1\",\"a\":\"tab\there\"}",
    "\xEF\xBB{}",
    " \xEF\xBB\xBF{}",
    "\x0b{}",
};

TEST(CommandParity, EveryCommandTypeAndEdgeValueMatchesTheNlohmannParser) {
  for (const char* line : kCommands) {
    SCOPED_TRACE(line);
    ASSERT_TRUE(ParseCommandJson(line).ok()) << ParseCommandJson(line).status().ToString();
    ExpectSameOutcome(line);
  }
}

TEST(CommandParity, NonCommandsGetTheSameErrors) {
  for (const char* line : kNonCommands) {
    SCOPED_TRACE(::testing::PrintToString(std::string(line)));
    ASSERT_FALSE(ParseCommandJson(line).ok());
    ExpectSameOutcome(line);
  }
  // Nesting far beyond any parser's bound, a longest line of them, and the messages a test pins elsewhere.
  for (const size_t depth : {17, 1'000, 30'000}) {
    ExpectSameOutcome(R"({"type":"frobnicate","command_id":"x1","a":)" + std::string(depth, '[') +
                      std::string(depth, ']') + "}");
    ExpectSameOutcome(std::string(depth, '['));
  }
  EXPECT_EQ(ParseCommandJson(R"({"a":1,"a":2})").status().message(), "malformed JSON: duplicate key 'a'");
  EXPECT_EQ(ParseCommandJson(std::string(17, '[') + std::string(17, ']')).status().message(),
            "malformed JSON: nested deeper than 16 levels");
  EXPECT_TRUE(ParseCommandJson(std::string(16, '[') + std::string(16, ']')).status().message() ==
              "a command must be a JSON object");
}

// Many keys in one object take the sorting path of the duplicate check.
TEST(CommandParity, ObjectsWithManyKeysFindTheFirstDuplicate) {
  for (const int keys : {28, 29, 30, 31, 200}) {  // 31 to 34 members: both sides of the pairwise bound
    for (const int repeated : {-1, 0, keys / 2, keys - 1}) {
      std::string line = R"({"type":"frobnicate","command_id":"x1")";
      for (int i = 0; i < keys; ++i)
        line += ",\"k" + std::to_string(i % 7) + "_" + std::to_string(i) + "\":1";
      if (repeated >= 0)
        line += ",\"k" + std::to_string(repeated % 7) + "_" + std::to_string(repeated) + "\":2";
      line += ",\"z\":{\"q\":1,\"q\":2}}";
      SCOPED_TRACE(line);
      EXPECT_FALSE(ParseCommandJson(line).ok());
      ExpectSameOutcome(line);
    }
  }
}

// ---- Seeded generator: commands of every type with random field sets, values, spellings and spacing

enum class FieldKind { kString, kInteger };
struct GeneratedField {
  const char* name;
  FieldKind kind;
};
struct GeneratedType {
  const char* type;
  std::vector<GeneratedField> fields;
};

const std::vector<GeneratedType>& Types() {
  using F = FieldKind;
  static const std::vector<GeneratedType> types = {
      {"open_account",
       {{"customer", F::kString},
        {"account", F::kString},
        {"kind", F::kString},
        {"credit_limit_minor", F::kInteger}}},
      {"open_merchant", {{"merchant", F::kString}, {"name", F::kString}, {"fee_bps", F::kInteger}}},
      {"deposit", {{"account", F::kString}, {"amount_minor", F::kInteger}}},
      {"award_points", {{"customer", F::kString}, {"points", F::kInteger}}},
      {"issue_coupon",
       {{"coupon", F::kString},
        {"customer", F::kString},
        {"value_minor", F::kInteger},
        {"min_spend_minor", F::kInteger},
        {"merchant", F::kString},
        {"funded_by", F::kString},
        {"expires_at", F::kString}}},
      {"set_customer_limit",
       {{"customer", F::kString},
        {"medium", F::kString},
        {"per_payment_minor", F::kInteger},
        {"daily_minor", F::kInteger},
        {"monthly_minor", F::kInteger},
        {"daily_count", F::kInteger}}},
      {"pay",
       {{"merchant", F::kString},
        {"merchant_order_no", F::kString},
        {"customer", F::kString},
        {"funding", F::kString},
        {"account", F::kString},
        {"card_token", F::kString},
        {"channel", F::kString},
        {"medium", F::kString},
        {"order_amount_minor", F::kInteger},
        {"points", F::kInteger},
        {"coupon", F::kString},
        {"discount_minor", F::kInteger}}},
      {"reverse", {{"merchant", F::kString}, {"merchant_order_no", F::kString}, {"reason", F::kString}}},
      {"refund",
       {{"merchant", F::kString},
        {"merchant_order_no", F::kString},
        {"refund_no", F::kString},
        {"amount_minor", F::kInteger}}},
      {"frobnicate", {{"anything", F::kString}, {"count", F::kInteger}}},
  };
  return types;
}

// Plausible string values: valid ids, enum values and times, and hostile ones.
const char* const kStringValues[] = {"C1",
                                     "C2",
                                     "C1:debit",
                                     "C1:credit",
                                     "C1:points",
                                     "M1",
                                     "M:1",
                                     "gl",
                                     "merchant",
                                     "gl:funding",
                                     "O1",
                                     "debit_card",
                                     "credit_card",
                                     "savings",
                                     "own_account",
                                     "other_bank",
                                     "wechat",
                                     "unionpay",
                                     "cash",
                                     "b2c_pc",
                                     "qr_static",
                                     "nfc",
                                     "pos",
                                     "sms",
                                     "u_shield",
                                     "password_free",
                                     "none",
                                     "bank",
                                     "merchant",
                                     "2026-11-25T10:00:00+08:00",
                                     "2026-02-29T10:00:00+08:00",
                                     "9999-12-31T23:59:59+14:00",
                                     "yesterday",
                                     "",
                                     "a b",
                                     "a/b",
                                     "T0K3N"};

// Pieces of string content: ASCII, JSON specials, control characters, multi-byte UTF-8.
const char* const kStringPieces[] = {"a",
                                     "Z",
                                     "7",
                                     " ",
                                     ":",
                                     "/",
                                     "\"",
                                     "\\",
                                     "\x01",
                                     "\x1f",
                                     "\x7f",
                                     "\b",
                                     "\f",
                                     "\n",
                                     "\r",
                                     "\t",
                                     "\xc3\xa9",
                                     "\xe4\xb8\xad",
                                     "\xf0\x9f\x98\x80",
                                     "\xef\xbb\xbf",
                                     "\xe2\x80\xa8",
                                     "\xc2\x80"};

// Integer and number literals, spelled as a producer might.
const char* const kNumberLiterals[] = {"0",
                                       "-0",
                                       "1",
                                       "-1",
                                       "60",
                                       "10000",
                                       "10001",
                                       "500",
                                       "-5",
                                       "9007199254740993",
                                       "9223372036854775807",
                                       "9223372036854775808",
                                       "-9223372036854775808",
                                       "-9223372036854775809",
                                       "18446744073709551615",
                                       "18446744073709551616",
                                       "100000000000000000000",
                                       "-100000000000000000000",
                                       "1e19",
                                       "-1e19",
                                       "9.3e18",
                                       "1E+19",
                                       "1.0",
                                       "1.5",
                                       "1e3",
                                       "-0.0",
                                       "1e-400",
                                       "123456789012345678901234567890.5",
                                       "0.1",
                                       "4.9e-324",
                                       "1.7976931348623157e308",
                                       "2.5e-5",
                                       "1e21",
                                       "1e-7",
                                       "3.14159"};

class CommandGenerator {
 public:
  explicit CommandGenerator(uint64_t seed) : random_(seed) {}

  std::string Next() {
    const GeneratedType& type = Types()[Pick(Types().size())];
    std::vector<std::pair<std::string, std::string>> members;  // key, JSON text of the value
    members.emplace_back("type", Roll(50) ? Number() : String(type.type));
    if (!Roll(40))
      members.emplace_back("command_id", Roll(10) ? RandomString() : Quote("id" + std::to_string(++ids_)));
    for (const GeneratedField& field : type.fields) {
      if (Roll(5)) continue;
      const bool wrong = Roll(60);
      members.emplace_back(field.name,
                           (field.kind == FieldKind::kInteger) != wrong ? Number() : StringValue());
    }
    if (Roll(8)) members.emplace_back("occurred_at", Roll(10) ? Number() : StringValue());
    if (Roll(25)) members.emplace_back(RandomString(), AnyValue(1));
    if (Roll(60) && !members.empty()) members.push_back(members[Pick(members.size())]);  // a duplicate
    std::shuffle(members.begin(), members.end(), random_);
    std::string line = Roll(100) ? "\xEF\xBB\xBF" : "";
    line += Space() + "{";
    for (size_t i = 0; i < members.size(); ++i) {
      line += (i > 0 ? "," : "") + Space() + Quote(members[i].first) + Space() + ":" + Space() +
              members[i].second + Space();
    }
    return line + "}" + Space();
  }

 private:
  bool Roll(int one_in) { return std::uniform_int_distribution<int>(0, one_in - 1)(random_) == 0; }
  size_t Pick(size_t count) { return std::uniform_int_distribution<size_t>(0, count - 1)(random_); }

  std::string Space() {
    static const char* const kSpaces[] = {" ", "\t", "\r\n", "  "};
    return Roll(6) ? kSpaces[Pick(std::size(kSpaces))] : "";
  }

  std::string Number() {
    if (Roll(3)) return kNumberLiterals[Pick(std::size(kNumberLiterals))];
    if (Roll(4)) {  // a random double, written to round trip
      char text[40];
      std::snprintf(text, sizeof text, "%.17g", std::uniform_real_distribution<double>(-1e6, 1e6)(random_));
      return text;
    }
    std::string digits = Roll(4) ? "-" : "";
    const size_t length = 1 + Pick(Roll(5) ? 25 : 12);
    for (size_t i = 0; i < length; ++i) digits += static_cast<char>('0' + (i == 0 ? 1 + Pick(9) : Pick(10)));
    return digits;
  }

  std::string RandomString() {
    std::string text;
    const size_t pieces = Pick(12);
    for (size_t i = 0; i < pieces; ++i) text += kStringPieces[Pick(std::size(kStringPieces))];
    return text;
  }

  std::string StringValue() {
    return Quote(Roll(4) ? RandomString() : kStringValues[Pick(std::size(kStringValues))]);
  }
  std::string String(const std::string& text) { return Quote(text); }

  // `text` as a JSON string, each character spelled one of the ways JSON allows.
  std::string Quote(const std::string& text) {
    if (Roll(2)) return json(text).dump();
    std::string out = "\"";
    for (size_t i = 0; i < text.size(); ++i) {
      const auto byte = static_cast<unsigned char>(text[i]);
      if (byte == '"' || byte == '\\' || byte < 0x20 || (byte < 0x80 && Roll(8))) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, Roll(2) ? "\\u%04x" : "\\u%04X", byte);
        out += byte == '/' && Roll(2) ? std::string("\\/") : std::string(escaped);
      } else if (byte >= 0xc0 && byte < 0xe0 && Roll(2)) {  // a two-byte character as \u escape
        const unsigned code = ((byte & 0x1fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3fu);
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", code);
        out += escaped;
        ++i;
      } else if (byte >= 0xf0 && Roll(2)) {  // a four-byte character as a surrogate pair
        unsigned code = byte & 0x07u;
        for (int k = 1; k <= 3; ++k) code = (code << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3fu);
        char escaped[16];
        std::snprintf(escaped, sizeof escaped, "\\u%04x\\u%04x", 0xd800 + ((code - 0x10000) >> 10),
                      0xdc00 + ((code - 0x10000) & 0x3ff));
        out += escaped;
        i += 3;
      } else {
        out += static_cast<char>(byte);
      }
    }
    return out + "\"";
  }

  // Any JSON value, nested up to about 18 levels (beyond the bound now and then).
  std::string AnyValue(int level) {
    switch (Pick(level > 18 ? 5 : 7)) {
      case 0:
        return Number();
      case 1:
        return StringValue();
      case 2:
        return Roll(2) ? "true" : "false";
      case 3:
        return "null";
      case 4:
        return Roll(2) ? "[]" : "{}";
      case 5: {
        std::string out = "[";
        const size_t items = 1 + Pick(3);
        for (size_t i = 0; i < items; ++i) out += (i > 0 ? "," : "") + AnyValue(level + 1);
        return out + "]";
      }
      default: {
        std::string out = "{";
        const size_t items = 1 + Pick(3);
        for (size_t i = 0; i < items; ++i) {
          out += (i > 0 ? "," : "") + Quote(Roll(3) ? RandomString() : std::string(1, 'a' + Pick(3))) + ":" +
                 AnyValue(level + 1);
        }
        return out + "}";
      }
    }
  }

  std::mt19937_64 random_;
  int ids_ = 0;
};

constexpr int kGeneratedCommands = 10'000;

TEST(CommandParity, ThousandsOfGeneratedCommandsMatchTheNlohmannParser) {
  Tally tally;
  for (const uint64_t seed : {7u, 2026u}) {
    CommandGenerator generator(seed);
    for (int i = 0; i < kGeneratedCommands / 2; ++i) {
      if (!ExpectSameOutcome(generator.Next(), &tally)) return;
    }
  }
  // Not vacuous: every outcome met many times.
  EXPECT_GT(tally.accepted, kGeneratedCommands / 40);
  EXPECT_GT(tally.malformed, kGeneratedCommands / 10);
  EXPECT_GT(tally.errors, kGeneratedCommands / 10);
}

// Mutations of generated lines: bytes flipped, cut short, pieces of JSON spliced in.
TEST(CommandParity, MutatedLinesGetTheSameOutcome) {
  static const char* const kSplices[] = {"1e400",
                                         "123456789012345678901234567890",
                                         "[[[[[[[[[[[[[[[[[[",
                                         "]]]]}}}}",
                                         "\\u0000",
                                         "\\ud800",
                                         "\\udc00",
                                         "\xff",
                                         "\xc0\x80",
                                         "\"",
                                         ",",
                                         ":",
                                         "{}",
                                         "[]",
                                         "null",
                                         "\xEF\xBB\xBF",
                                         "-",
                                         ".",
                                         "e"};
  std::mt19937_64 random(99);
  const auto pick = [&random](size_t count) {
    return std::uniform_int_distribution<size_t>(0, count - 1)(random);
  };
  CommandGenerator generator(5);
  Tally tally;
  for (int i = 0; i < kGeneratedCommands; ++i) {
    std::string line = generator.Next();
    const size_t at = pick(line.size() + 1);
    switch (pick(4)) {
      case 0:
        if (at < line.size()) line[at] = static_cast<char>(pick(256));
        break;
      case 1:
        line.resize(at);
        break;
      case 2:
        line.insert(at, std::string(1 + pick(40), pick(2) ? '[' : '{'));
        break;
      default:
        line.insert(at, kSplices[pick(std::size(kSplices))]);
        break;
    }
    if (line.find('\0') != std::string::npos) continue;
    if (!ExpectSameOutcome(line, &tally)) return;
  }
  EXPECT_GT(tally.errors, kGeneratedCommands / 4);
  EXPECT_GT(tally.accepted + tally.malformed, kGeneratedCommands / 20);
}

// Each thread has its own parser: lines parsed on several threads at once come out as they do on one.
TEST(CommandParity, ParsingOnSeveralThreadsAtOnceGivesTheSameResults) {
  constexpr int kThreads = 4;
  constexpr int kLinesPerThread = 1'000;
  std::vector<std::vector<std::string>> lines(kThreads);
  std::vector<std::vector<std::string>> expected(kThreads);  // fingerprint hex or error message, one thread
  const auto outcome = [](const std::string& line) {
    const Result<ParsedCommand> parsed = ParseCommandJson(line);
    return parsed.ok() ? ToHex(parsed->fingerprint) + (parsed->malformed ? *parsed->malformed : "")
                       : parsed.status().message();
  };
  for (int t = 0; t < kThreads; ++t) {
    CommandGenerator generator(100 + static_cast<uint64_t>(t));
    for (int i = 0; i < kLinesPerThread; ++i) {
      lines[t].push_back(generator.Next());
      expected[t].push_back(outcome(lines[t].back()));
    }
  }
  std::vector<std::vector<std::string>> actual(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (const std::string& line : lines[t]) actual[t].push_back(outcome(line));
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(actual, expected);
}

}  // namespace
}  // namespace ledger
