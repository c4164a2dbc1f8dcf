#include "support/serve_harness.h"

#include <signal.h>

#include <filesystem>
#include <thread>

#include "ledger/command.h"
#include "state/keys.h"
#include "state/records.h"
#include "storage/store.h"

namespace ledger::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long one watermarks query may take on the embedded broker.
constexpr int kWatermarksTimeoutMs = 10'000;
// How often the waits look again.
constexpr auto kPollEvery = milliseconds(20);

std::string CommandsOffsetKey() { return keys::CommandsOffsetMeta(0); }

}  // namespace

ServeProcess::ServeProcess(const std::string& dir, int run, const std::vector<std::string>& args)
    : out_path_(dir + "/serve" + std::to_string(run) + ".out"),
      err_path_(dir + "/serve" + std::to_string(run) + ".err"),
      child_(
          [&] {
            // The serve tests send unsigned commands; producer signatures have tests of their own
            // (tests/service/shard_service_test.cc, tests/kafka/kcat_flatc_test.sh).
            std::vector<std::string> all = {"serve", "--allow-unsigned-commands"};
            all.insert(all.end(), args.begin(), args.end());
            return all;
          }(),
          out_path_, err_path_) {}

bool ServeProcess::WaitReady(Clock::duration timeout) {
  for (const auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
    if (err().find("serve: shard") != std::string::npos) return true;
    if (!child_.Running()) return false;
    std::this_thread::sleep_for(kPollEvery);
  }
  return false;
}

int ServeProcess::WaitExit(Clock::duration timeout) {
  if (!child_.Wait(timeout)) return -1;
  return child_.exit_code();
}

int ServeProcess::Stop() {
  // SIGTERM before serve installs its handler would end it outright: it prints bootstrap= once it has.
  for (const auto deadline = Clock::now() + kServeDeadline;
       out().find("bootstrap=") == std::string::npos && child_.Running() && Clock::now() < deadline;) {
    std::this_thread::sleep_for(kPollEvery);
  }
  child_.Signal(SIGTERM);
  return WaitExit(kServeDeadline);
}

kafka::Watermarks TopicWatermarks(const std::string& brokers, const std::string& topic, uint32_t partition) {
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, topic, partition, -1);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return {-1, -1};
  Result<kafka::Watermarks> marks = (*reader)->QueryWatermarks(kWatermarksTimeoutMs);
  EXPECT_TRUE(marks.ok()) << marks.status().ToString();
  return marks.ok() ? *marks : kafka::Watermarks{-1, -1};
}

std::vector<kafka::Record> ReadTopic(const std::string& brokers, const std::string& topic,
                                     uint32_t partition) {
  std::vector<kafka::Record> records;
  const kafka::Watermarks marks = TopicWatermarks(brokers, topic, partition);
  if (marks.high <= marks.low) return records;
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, topic, partition, marks.low);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return records;
  int64_t next = marks.low;
  for (const auto deadline = Clock::now() + kServeDeadline; next < marks.high && Clock::now() < deadline;) {
    Result<std::vector<kafka::Record>> polled = (*reader)->Poll(4096, 200);
    EXPECT_TRUE(polled.ok()) << polled.status().ToString();
    if (!polled.ok()) break;
    for (kafka::Record& record : *polled) {
      next = record.offset + 1;
      records.push_back(std::move(record));
    }
  }
  EXPECT_GE(next, marks.high) << topic << ": not read up to the high watermark in time";
  return records;
}

bool WaitForHighWatermark(const std::string& brokers, const std::string& topic, int64_t high,
                          ServeProcess& serve, Clock::duration timeout) {
  for (const auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
    if (TopicWatermarks(brokers, topic).high >= high) return true;
    if (!serve.child().Running()) return false;
    std::this_thread::sleep_for(kPollEvery * 5);
  }
  return false;
}

Status SendCommands(const std::string& brokers, const std::vector<std::string>& values, uint32_t partition,
                    const Signer* producer_key) {
  Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(brokers);
  if (!sender.ok()) return sender.status();
  for (const std::string& value : values) {
    const nlohmann::json command = nlohmann::json::parse(value, nullptr, false);
    const std::string key =
        command.is_object() && command.contains("command_id") && command["command_id"].is_string()
            ? command["command_id"].get<std::string>()
            : std::string("test");
    Result<ParsedCommand> parsed = ParseCommandJson(value);
    const kafka::Headers headers =
        producer_key != nullptr && parsed.ok()
            ? kafka::CommandSignatureHeaders(*producer_key, parsed->fingerprint).value()
            : kafka::Headers();
    LEDGER_RETURN_IF_ERROR((*sender)->Send(kafka::kCommandsTopic, partition, key, value, headers));
  }
  return (*sender)->Flush(std::chrono::duration_cast<milliseconds>(kServeDeadline).count());
}

int64_t StoredBalance(const std::string& data_dir, const std::string& account) {
  StoreOptions options;
  options.read_only = true;
  options.create_if_missing = false;
  Result<std::unique_ptr<Store>> store = Store::Open(data_dir, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return -1;
  fb::BalanceRecordT balance;
  LoadRecord((*store)->state(), keys::Balance(account), &balance);
  return balance.balance_minor;
}

StoreState ReadStoreState(const std::string& data_dir) {
  StoreOptions options;
  options.read_only = true;
  options.create_if_missing = false;
  Result<std::unique_ptr<Store>> store = Store::Open(data_dir, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  StoreState state;
  if (!store.ok()) return state;
  Result<std::optional<std::pair<uint64_t, std::string>>> last = (*store)->LastEvent();
  EXPECT_TRUE(last.ok()) << last.status().ToString();
  if (last.ok() && last->has_value()) state.last_sequence = (*last)->first;
  Result<std::optional<std::string>> offset = (*store)->GetMeta(CommandsOffsetKey());
  EXPECT_TRUE(offset.ok()) << offset.status().ToString();
  if (offset.ok() && offset->has_value()) state.commands_offset = std::stoll(**offset);
  return state;
}

std::vector<nlohmann::json> LedgerEvents(const std::string& scratch, const std::string& data_dir) {
  const ProgramRun run = RunLedger(scratch, {"events", "--data", data_dir, "--json"});
  EXPECT_EQ(run.exit_code, 0) << Describe(run);
  std::vector<nlohmann::json> events;
  for (const std::string& line : Lines(run.out)) {
    nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(event.is_discarded()) << "not JSON: " << line;
    events.push_back(std::move(event));
  }
  return events;
}

std::vector<std::pair<std::string, nlohmann::json>> ParsedResults(const std::vector<kafka::Record>& records) {
  std::vector<std::pair<std::string, nlohmann::json>> results;
  for (const kafka::Record& record : records) {
    nlohmann::json value = nlohmann::json::parse(record.value, nullptr, false);
    EXPECT_FALSE(value.is_discarded())
        << "result at offset " << record.offset << " is not JSON: " << record.value;
    results.emplace_back(record.key, std::move(value));
  }
  return results;
}

void ConfigureLedgerKey(const std::string& scratch, const std::vector<std::string>& data_dirs) {
  const ProgramRun keygen = RunLedger(scratch, {"keygen", "--out", scratch + "/keys"});
  ASSERT_EQ(keygen.exit_code, 0) << Describe(keygen);
  for (const std::string& folder : data_dirs) {
    std::filesystem::create_directories(folder);
    WriteFile(folder + "/ledger.toml", "[audit]\nprivate_key = \"" + scratch +
                                           "/keys/ledger-signing.key\"\n" + "public_key = \"" + scratch +
                                           "/keys/ledger-signing.pub\"\n");
  }
}

}  // namespace ledger::testing
