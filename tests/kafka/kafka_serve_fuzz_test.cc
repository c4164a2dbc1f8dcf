// Goal: no record stops a shard. `ledger serve` (the real binary, on the embedded broker) gets a few hundred
// random and mutated lines (binary garbage, a 900 KB line, 30,000-deep nesting, invalid UTF-8, 1e400 in known
// and unknown fields, NUL bytes, duplicate keys) interleaved with valid commands. It never exits, and every
// record gets exactly one result: MALFORMED_COMMAND for each bad one, the expected outcome for each good one.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "kafka/kafka.h"
#include "ledger/command.h"
#include "support/serve_harness.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::kServeDeadline;
using testing::ServeProcess;

// A line produced to ledger.commands and what serve must answer.
struct Line {
  std::string value;
  std::string id;        // the command id it names, if any: a malformed line may be answered under it
  bool good = false;     // a valid command
  std::string expected;  // good lines: "accepted" or "rejected" (for a reason other than MALFORMED_COMMAND)
};

// Bounds of the generated input: under the producer's 1 MB message size and well under the ~5 MB the embedded
// broker keeps per partition, so every record is still there to be read back.
constexpr size_t kHugeLineBytes = 900'000;
constexpr size_t kRandomBytesMax = 2'048;
constexpr int kNestingDepth = 30'000;
// Bytes that make any JSON text invalid wherever they land in an ASCII line: a NUL, and bytes that are never
// valid UTF-8 there (a lone continuation byte, an overlong or impossible lead byte).
constexpr unsigned char kPoisonBytes[] = {0x00, 0x80, 0xc0, 0xfe, 0xff};

std::string Dump(const json& command) { return command.dump(); }

Line Bad(std::string value, std::string id = "") { return {std::move(value), std::move(id), false, ""}; }

// A deposit with id `id`, the template the mutations start from (never itself sent: ids stay unique).
json DepositTemplate(const std::string& id) { return testing::Deposit(id, "C1:debit", 100); }

// Replaces the text `from` (once) in `line`.
std::string Replace(std::string line, const std::string& from, const std::string& to) {
  const size_t at = line.find(from);
  EXPECT_NE(at, std::string::npos) << from << " in " << line;
  if (at != std::string::npos) line.replace(at, from.size(), to);
  return line;
}

// The fixed specimens: one of each kind the task names.
std::vector<Line> Specimens() {
  std::vector<Line> lines;
  auto bad = [&](std::string value, std::string id = "") {
    lines.push_back(Bad(std::move(value), std::move(id)));
  };
  bad(Replace(Dump(DepositTemplate("fz-huge")), "\"account\"",
              "\"memo\":\"" + std::string(kHugeLineBytes, 'a') + "\",\"account\""),
      "fz-huge");
  bad(std::string(kNestingDepth, '['));
  bad(std::string(kNestingDepth, '[') + std::string(kNestingDepth, ']'));
  std::string objects;
  for (int i = 0; i < kNestingDepth / 2; ++i) objects += "{\"a\":";
  bad(objects + "1" + std::string(kNestingDepth / 2, '}'));
  bad(Replace(Dump(DepositTemplate("fz-e400")), "\"amount_minor\":100", "\"amount_minor\":1e400"), "fz-e400");
  bad(Replace(Dump(DepositTemplate("fz-e400-neg")), "\"amount_minor\":100", "\"amount_minor\":-1e400"),
      "fz-e400-neg");
  bad(Replace(Dump(DepositTemplate("fz-e400-unknown")), "\"amount_minor\":100",
              "\"amount_minor\":100,\"fee\":1E400"),
      "fz-e400-unknown");
  bad(R"({"type":"fz_unknown_type","command_id":"fz-e400-type","x":1e400})", "fz-e400-type");
  bad(std::string(64, '\0'));
  bad("");
  bad(Replace(Dump(DepositTemplate("fz-nul")), "C1:debit", std::string("C1\0:debit", 9)), "fz-nul");
  bad(Replace(Dump(DepositTemplate("fz-utf8")), "C1:debit", "C1\xc3\x28:debit"), "fz-utf8");
  bad(R"({"type":"fz_bogus","command_id":"fz-dup","type":"fz_other","command_id":"fz-dup"})", "fz-dup");
  bad(R"({"command_id":"fz-dup-id","command_id":"fz-dup-id","type":"fz_bogus","type":"fz_bogus"})",
      "fz-dup-id");
  return lines;
}

// One random bad line with id `id` where it names one.
Line RandomBadLine(std::mt19937& random, const std::string& id) {
  const std::string base = Dump(DepositTemplate(id));
  const auto at = [&](size_t size) { return static_cast<size_t>(random() % size); };
  switch (random() % 6) {
    case 0: {  // binary garbage
      std::string bytes(at(kRandomBytesMax + 1), '\0');
      for (char& c : bytes) c = static_cast<char>(random());
      return Bad(bytes);
    }
    case 1:  // truncated: a prefix of a JSON object is never a whole JSON value
      return Bad(base.substr(0, at(base.size())), id);
    case 2: {  // a poison byte inserted anywhere
      std::string line = base;
      line.insert(at(line.size() + 1), 1, static_cast<char>(kPoisonBytes[at(sizeof kPoisonBytes)]));
      return Bad(line, id);
    }
    case 3: {  // a poison byte replacing one
      std::string line = base;
      line[at(line.size())] = static_cast<char>(kPoisonBytes[at(sizeof kPoisonBytes)]);
      return Bad(line, id);
    }
    case 4: {  // an out-of-range number in a known or an unknown field
      static const char* const kHuge[] = {"1e400", "-1e400", "1E999", "1e309"};
      const std::string number = kHuge[at(4)];
      return Bad(random() % 2 == 0
                     ? Replace(base, "\"amount_minor\":100", "\"amount_minor\":" + number)
                     : Replace(base, "\"amount_minor\":100", "\"amount_minor\":100,\"n\":" + number),
                 id);
    }
    default:  // duplicate keys, every reading of which is not a command
      return Bad(R"({"type":"fz_bogus","command_id":")" + id + R"(","type":"fz_bogus_)" +
                     std::to_string(at(100)) + R"("})",
                 id);
  }
}

// Valid commands whose outcomes do not depend on their order among themselves.
Line RandomGoodLine(std::mt19937& random, int index) {
  using namespace ledger::testing;
  const std::string n = std::to_string(index);
  switch (random() % 3) {
    case 0:
      return {Dump(Deposit("fz-g" + n, "C1:debit", 100 + index)), "fz-g" + n, true, "accepted"};
    case 1:
      return {Dump(OpenAccount("fz-g" + n, "CG" + n)), "fz-g" + n, true, "accepted"};
    default:  // an unknown merchant: rejected by the rules, not as malformed
      return {Dump(Pay("MX", "G" + n, "C1", 1'000)), "MX:G" + n, true, "rejected"};
  }
}

std::vector<Line> MakeLines(std::mt19937& random) {
  using namespace ledger::testing;
  std::vector<Line> lines = Specimens();
  const int bad = testing::Scaled(300);
  const int good = testing::Scaled(60);
  for (int i = 0; i < bad; ++i) lines.push_back(RandomBadLine(random, "fz-b" + std::to_string(i)));
  for (int i = 0; i < good; ++i) lines.push_back(RandomGoodLine(random, i));
  std::shuffle(lines.begin(), lines.end(), random);
  // The merchant and the account the good lines use come first.
  const std::vector<Line> setup = {
      {Dump(OpenMerchant("fz-m1", "M1", 60)), "fz-m1", true, "accepted"},
      {Dump(OpenAccount("fz-a1", "C1")), "fz-a1", true, "accepted"},
      {Dump(Deposit("fz-d1", "C1:debit", 1'000'000)), "fz-d1", true, "accepted"}};
  lines.insert(lines.begin(), setup.begin(), setup.end());
  return lines;
}

// Checks the one result of the record at `offset` holding `line`; `by_key` is consumed as results are
// matched.
void ExpectOneResult(const Line& line, int64_t offset, std::multimap<std::string, json>& by_key) {
  std::vector<json> found;
  for (const std::string& key : {"kafka:0:" + std::to_string(offset), line.id}) {
    if (key.empty()) continue;
    for (auto [it, end] = by_key.equal_range(key); it != end;) {
      found.push_back(it->second);
      it = by_key.erase(it);
    }
  }
  const std::string shown = line.value.substr(0, 120);
  ASSERT_EQ(found.size(), 1u) << "record at offset " << offset << " (" << line.value.size()
                              << " bytes: " << shown << ") has " << found.size() << " results";
  const json& result = found[0];
  if (!line.good) {
    EXPECT_EQ(result["status"], "rejected") << shown << " -> " << result;
    EXPECT_EQ(result["reason"], "MALFORMED_COMMAND") << shown << " -> " << result;
    return;
  }
  EXPECT_EQ(result["status"], line.expected) << shown << " -> " << result;
  EXPECT_NE(result["reason"], "MALFORMED_COMMAND") << shown << " -> " << result;
}

TEST(KafkaServeFuzz, EveryRecordIsAnsweredOnceAndNoRecordStopsServe) {
  const uint32_t seed = std::random_device()();
  std::mt19937 random(seed);
  std::cout << "[ figures  ] seed = " << seed << "\n";
  const std::vector<Line> lines = MakeLines(random);
  testing::TempDir dir;
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(1);
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string brokers = (*broker)->bootstrap();
  const std::string data_dir = dir.path() + "/ledger";
  ServeProcess serve(dir.path(), 1, {"--data", data_dir, "--brokers", brokers, "--clock", "occurred"});
  ASSERT_TRUE(serve.WaitReady(kServeDeadline)) << serve.err();

  std::vector<std::string> values;
  for (const Line& line : lines) values.push_back(line.value);
  const auto sent_at = std::chrono::steady_clock::now();
  const Status sent = testing::SendCommands(brokers, values);
  ASSERT_TRUE(sent.ok()) << sent.ToString();
  const int64_t records = static_cast<int64_t>(lines.size());
  const bool answered =
      testing::WaitForHighWatermark(brokers, kafka::kResultsTopic, records, serve, kServeDeadline);
  const auto answer_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - sent_at)
          .count();
  ASSERT_TRUE(serve.child().Running())
      << "serve exited (code " << serve.child().exit_code() << "): " << serve.err();
  ASSERT_TRUE(answered) << "not every record was answered in time: " << serve.err();

  // The commands partition in offset order is the lines in order: each record's offset names it.
  const std::vector<kafka::Record> commands = testing::ReadTopic(brokers, kafka::kCommandsTopic);
  ASSERT_EQ(commands.size(), lines.size());
  std::multimap<std::string, json> by_key;
  for (auto& [key, result] : testing::ParsedResults(testing::ReadTopic(brokers, kafka::kResultsTopic))) {
    by_key.emplace(key, std::move(result));
  }
  ASSERT_EQ(by_key.size(), lines.size()) << "one result per record";
  for (size_t i = 0; i < lines.size(); ++i) {
    ASSERT_EQ(commands[i].value, lines[i].value) << "offset " << commands[i].offset;
    ExpectOneResult(lines[i], commands[i].offset, by_key);
  }
  EXPECT_TRUE(by_key.empty()) << by_key.size() << " results for no record";
  EXPECT_TRUE(serve.child().Running()) << serve.err();
  EXPECT_EQ(serve.Stop(), 0) << serve.err();
  // Every event the bad lines left is readable as JSON (their details are printable).
  EXPECT_EQ(testing::LedgerEvents(dir.path(), data_dir).size(), lines.size());
  std::cout << "[ figures  ] records = " << records << ", answered in " << answer_ms << " ms\n";
}

}  // namespace
}  // namespace ledger
