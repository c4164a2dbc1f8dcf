// Goal: faults lose, duplicate or reorder nothing. `ledger serve` killed with SIGKILL at random moments while
// commands stream through ledger.commands; a broker that goes down, answers Produce with retriable errors or
// slowly; fatal idempotent-producer errors between groups and with messages in flight; `ledger project`
// killed mid-stream. Each test checks the whole ledger.events partition (read live where it is longer than
// the embedded broker keeps) against RocksDB, and prints its figures ("[ figures  ]" lines, also as
// properties).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "events/event.h"
#include "kafka/kafka.h"
#include "kafka/projection_runner.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "replay/replay.h"
#include "storage/store.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// How long one publish may take on a healthy embedded broker before the test calls it lost (ASan included).
constexpr int64_t kPublishDeadlineMs = 60'000;
// How long reading back a partition may take.
constexpr int64_t kReadDeadlineMs = 60'000;
// How long a child process gets to start, or to exit after SIGTERM.
constexpr auto kProcessDeadline = seconds(60);

using testing::Scale;

int Scaled(int count, int at_least) { return std::max(at_least, static_cast<int>(count * Scale())); }

using testing::ReadFile;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Prints a figure and records it as a test property.
void Figure(const std::string& name, int64_t value) {
  std::cout << "[ figures  ] " << name << " = " << value << "\n";
  ::testing::Test::RecordProperty(name, std::to_string(value));
}

using testing::Child;

// ---------------------------------------------------------------------------------------------------------
// Workload: customers, merchants, then payments (about 300 bytes a command) with points (two events in one
// transaction), reversals, refunds and rule breakers, so outcomes are both accepted and rejected.
struct TestCommand {
  std::string id;
  std::string line;
};

std::vector<TestCommand> MakeWorkload(int count, uint32_t seed, int customers = 50) {
  using namespace ledger::testing;
  constexpr int kMerchants = 8;
  std::mt19937 random(seed);
  std::vector<TestCommand> commands;
  auto add = [&](const json& command) {
    commands.push_back({command["command_id"].get<std::string>(), command.dump()});
  };
  for (int m = 0; m < kMerchants; ++m)
    add(OpenMerchant("m" + std::to_string(m), "M" + std::to_string(m), 60));
  for (int c = 0; c < customers; ++c) {
    const std::string customer = "C" + std::to_string(c);
    add(OpenAccount("a" + std::to_string(c), customer));
    add(Deposit("d" + std::to_string(c), customer + ":debit", 90'000'000));
    add(AwardPoints("p" + std::to_string(c), customer, 10'000'000));
  }
  std::vector<std::pair<std::string, std::string>> orders;  // (merchant, order_no)
  for (int i = 0; static_cast<int>(commands.size()) < count; ++i) {
    const int roll = static_cast<int>(random() % 100);
    const std::string customer = "C" + std::to_string(random() % customers);
    const std::string merchant = "M" + std::to_string(random() % kMerchants);
    const std::string order_no = "O" + std::to_string(i);
    if (roll < 3 && !orders.empty()) {
      const auto& [order_merchant, order] = orders[random() % orders.size()];
      json reverse = Reverse(order_merchant, order);
      reverse["command_id"] = reverse["command_id"].get<std::string>() + std::to_string(i);
      add(reverse);
    } else if (roll < 6 && !orders.empty()) {
      const auto& [order_merchant, order] = orders[random() % orders.size()];
      add(Refund(order_merchant, order, "R" + std::to_string(i), 20));
    } else if (roll < 8) {
      add(Pay("MX", order_no, customer, 1000));  // unknown merchant: rejected
    } else if (roll < 16) {
      json pay = Pay(merchant, order_no, customer, 3000);
      pay["points"] = 100;
      add(pay);
      orders.emplace_back(merchant, order_no);
    } else {
      add(Pay(merchant, order_no, customer, 100 + static_cast<int64_t>(random() % 900)));
      orders.emplace_back(merchant, order_no);
    }
  }
  return commands;
}

using testing::Parse;

std::vector<std::pair<uint64_t, std::string>> StoreEvents(const Store& store) {
  std::vector<std::pair<uint64_t, std::string>> events;
  const Status scanned = store.ScanEvents(1, UINT64_MAX, [&](uint64_t sequence, std::string_view record) {
    events.emplace_back(sequence, std::string(record));
    return true;
  });
  EXPECT_TRUE(scanned.ok()) << scanned.ToString();
  return events;
}

std::unique_ptr<Store> OpenReadOnly(const std::string& dir) {
  StoreOptions options;
  options.read_only = true;
  options.create_if_missing = false;
  Result<std::unique_ptr<Store>> store = Store::Open(dir, options);
  return store.ok() ? std::move(store).value() : nullptr;
}

// ---------------------------------------------------------------------------------------------------------
// A consumer that reads one partition from offset 0 on its own thread and keeps every record it sees: the
// embedded broker keeps only about 5 MB per partition, so a long stream is checked from this copy.
class LiveReader {
 public:
  using OnRecord = std::function<void(const kafka::Record&)>;
  LiveReader(const std::string& brokers, const std::string& topic, OnRecord on_record = nullptr)
      : topic_(topic), on_record_(std::move(on_record)) {
    Result<std::unique_ptr<kafka::PartitionReader>> reader =
        kafka::PartitionReader::Open(brokers, topic, 0, -1);
    if (!reader.ok()) {
      ADD_FAILURE() << reader.status().ToString();
      return;
    }
    reader_ = std::move(reader).value();
    thread_ = std::thread([this] { Run(); });
  }
  ~LiveReader() { Stop(); }

  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  // The offset after the last record seen.
  int64_t next_offset() const { return next_offset_.load(); }
  // Waits until the reader has seen every record below `offset`.
  bool WaitForOffset(int64_t offset, Clock::duration timeout) const {
    const auto deadline = Clock::now() + timeout;
    while (next_offset() < offset) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return true;
  }
  // After Stop(): every record seen, in offset order; how often the offsets jumped (records the mock dropped
  // before this reader saw them); and the first read error.
  const std::vector<kafka::Record>& records() const { return records_; }
  int64_t offset_jumps() const { return offset_jumps_; }
  const std::string& error() const { return error_; }

 private:
  void Run() {
    while (!stop_.load()) {
      Result<std::vector<kafka::Record>> polled = reader_->Poll(4096, 50);
      if (!polled.ok()) {
        if (error_.empty()) error_ = polled.status().ToString();
        std::this_thread::sleep_for(milliseconds(50));
        continue;
      }
      for (kafka::Record& record : *polled) {
        if (record.offset != next_offset_.load()) offset_jumps_ += 1;
        if (on_record_) on_record_(record);
        next_offset_.store(record.offset + 1);
        records_.push_back(std::move(record));
      }
    }
  }

  std::string topic_;
  OnRecord on_record_;
  std::unique_ptr<kafka::PartitionReader> reader_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> next_offset_{0};
  std::vector<kafka::Record> records_;
  int64_t offset_jumps_ = 0;
  std::string error_;
};

int64_t HighWatermark(const std::string& brokers, const std::string& topic) {
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, topic, 0, -1);
  if (!reader.ok()) return -1;
  Result<int64_t> high = (*reader)->HighWatermark(10'000);
  return high.ok() ? *high : -1;
}

// Reads a (short) partition from the beginning up to its high watermark.
std::vector<kafka::Record> ReadPartition(const std::string& brokers, const std::string& topic) {
  const int64_t high = HighWatermark(brokers, topic);
  EXPECT_GE(high, 0) << topic;
  LiveReader reader(brokers, topic);
  EXPECT_TRUE(reader.WaitForOffset(high, milliseconds(kReadDeadlineMs)))
      << topic << ": not read to the end in time";
  reader.Stop();
  EXPECT_EQ(reader.offset_jumps(), 0) << topic << " starts after offset 0: longer than the broker keeps";
  return reader.records();
}

// What a whole-partition comparison found.
struct StreamCheck {
  int64_t events = 0;
  int64_t duplicates = 0;  // records whose sequence was not above the previous one
  int64_t gaps = 0;        // sequences skipped
  int64_t mismatches = 0;  // records whose bytes differ from RocksDB's
  int64_t offset_jumps = 0;
};

// Compares a whole ledger.events partition (in offset order) with the store: sequences 1..N, each once, in
// order, bytes equal.
StreamCheck CheckEventsAgainstStore(const std::vector<kafka::Record>& records,
                                    const std::vector<std::pair<uint64_t, std::string>>& stored) {
  StreamCheck check;
  check.events = static_cast<int64_t>(records.size());
  uint64_t previous = 0;
  for (const kafka::Record& record : records) {
    const uint64_t sequence = record.sequence.value_or(0);
    if (sequence <= previous) {
      check.duplicates += 1;
      continue;
    }
    if (sequence > previous + 1) check.gaps += static_cast<int64_t>(sequence - previous - 1);
    previous = sequence;
    Result<DecodedEvent> decoded = DecodeEventRecord(record.value);
    if (sequence > stored.size() || stored[sequence - 1].second != record.value || !decoded.ok() ||
        decoded->body->sequence() != sequence) {
      if (check.mismatches++ == 0)
        ADD_FAILURE() << "sequence " << sequence << " at offset " << record.offset << " differs from RocksDB";
    }
  }
  if (previous < stored.size()) check.gaps += static_cast<int64_t>(stored.size() - previous);
  EXPECT_EQ(check.events, static_cast<int64_t>(stored.size()))
      << "ledger.events and RocksDB hold different counts";
  EXPECT_EQ(check.duplicates, 0) << "events published twice";
  EXPECT_EQ(check.gaps, 0) << "events never published";
  EXPECT_EQ(check.mismatches, 0);
  return check;
}

// Compares the results topic with the outcomes derived from the stored events: the records carrying a
// ledger.sequence header are exactly those outcomes, in order; the others are `duplicate` answers. Returns
// how many duplicate answers there were.
int64_t CheckResultsAgainstStore(const std::vector<kafka::Record>& records,
                                 const std::vector<std::pair<uint64_t, std::string>>& stored) {
  // The outcomes, one transaction at a time (whole transactions, as ResultsFromEvents requires).
  std::vector<std::pair<CommandResult, uint64_t>> expected;
  std::vector<std::string> transaction;
  std::string transaction_id;
  auto flush = [&]() {
    for (auto& outcome : kafka::ResultsFromEvents(transaction)) expected.push_back(std::move(outcome));
    transaction.clear();
  };
  for (const auto& [sequence, record] : stored) {
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    if (!decoded.ok()) {
      ADD_FAILURE() << "sequence " << sequence << ": " << decoded.status().ToString();
      return 0;
    }
    if (decoded->body->transaction_id()->str() != transaction_id) {
      flush();
      transaction_id = decoded->body->transaction_id()->str();
    }
    transaction.push_back(record);
  }
  flush();
  size_t next = 0;
  int64_t duplicates = 0, unexpected = 0;
  for (const kafka::Record& record : records) {
    if (!record.sequence.has_value()) {
      const json result = json::parse(record.value, nullptr, false);
      if (!result.is_discarded() && result.value("status", "") == "duplicate") {
        duplicates += 1;
      } else if (unexpected++ == 0) {
        ADD_FAILURE() << "result without ledger.sequence that is not a duplicate: " << record.value;
      }
      continue;
    }
    if (next >= expected.size() || *record.sequence != expected[next].second ||
        record.value != expected[next].first.ToJson() || record.key != expected[next].first.command_id) {
      if (unexpected++ == 0) {
        ADD_FAILURE() << "result at offset " << record.offset << " (" << record.value << ", sequence "
                      << *record.sequence << ") is not the next outcome: "
                      << (next < expected.size() ? expected[next].first.ToJson() : std::string("none left"));
      }
      continue;
    }
    next += 1;
  }
  EXPECT_EQ(next, expected.size()) << "outcomes missing from ledger.results";
  EXPECT_EQ(unexpected, 0);
  return duplicates;
}

std::unique_ptr<kafka::EmbeddedBroker> StartBroker() {
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(1);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

std::unique_ptr<kafka::Publisher> MakePublisher(const Store& store, const std::string& brokers,
                                                int64_t ack_timeout_ms = 30'000) {
  Result<std::unique_ptr<kafka::Publisher>> publisher =
      kafka::Publisher::Create(store, kafka::ProducerSettings{brokers, 0, ack_timeout_ms});
  EXPECT_TRUE(publisher.ok()) << publisher.status().ToString();
  return publisher.ok() ? std::move(publisher).value() : nullptr;
}

// Stages and commits `commands[from, to)` as one group. Returns the last sequence.
uint64_t CommitGroup(Ledger& ledger, const std::vector<TestCommand>& commands, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) ledger.Stage(Parse(commands[i].line));
  const Status committed = ledger.CommitGroup();
  EXPECT_TRUE(committed.ok()) << committed.ToString();
  return ledger.last_sequence();
}

// Commits `commands[from, to)` in groups of `group` commands, publishing each (PublishThrough must succeed).
void CommitAndPublish(Ledger& ledger, kafka::Publisher& publisher, const std::vector<TestCommand>& commands,
                      size_t from, size_t to, size_t group) {
  for (size_t next = from; next < to; next += group) {
    const uint64_t through = CommitGroup(ledger, commands, next, std::min(to, next + group));
    const Status published = publisher.PublishThrough(through, kPublishDeadlineMs);
    ASSERT_TRUE(published.ok()) << published.ToString();
  }
}

// ---------------------------------------------------------------------------------------------------------
// 1. `ledger serve` killed with SIGKILL at random moments, at least 20 times, while commands stream in.

// The steps of test 1, in the order the test takes them. The sender thread and the live readers' callbacks
// use the members, so the destructor stops the sender first and the readers are declared after what their
// callbacks touch (members are destroyed in reverse order).
class ServeKillScenario {
 public:
  static constexpr int kKills = 20;  // never fewer, whatever the scale

  ServeKillScenario() {
    BuildStream();
    const uint32_t seed = std::random_device()();
    random_.seed(seed);
    std::cout << "[ figures  ] seed = " << seed << "\n";
  }
  ~ServeKillScenario() { StopSending(); }

  // The broker in its own process, so it outlives every serve.
  void StartBroker() {
    const std::string bootstrap_file = dir_.path() + "/bootstrap";
    broker_ = std::make_unique<Child>(std::vector<std::string>{"broker", "--bootstrap-file", bootstrap_file},
                                      dir_.path() + "/broker.out", dir_.path() + "/broker.err");
    for (const auto deadline = Clock::now() + kProcessDeadline;
         brokers_.empty() && Clock::now() < deadline;) {
      std::string text = ReadFile(bootstrap_file);
      if (text.rfind("bootstrap=", 0) == 0 && text.back() == '\n')
        brokers_ = text.substr(10, text.size() - 11);
      if (brokers_.empty()) std::this_thread::sleep_for(milliseconds(50));
      ASSERT_TRUE(broker_->Running()) << ReadFile(dir_.path() + "/broker.err");
    }
    ASSERT_FALSE(brokers_.empty()) << "ledger broker wrote no bootstrap file";
  }

  // Live readers: every event, and every result (outcomes counted as they arrive).
  void StartReaders() {
    events_ = std::make_unique<LiveReader>(brokers_, kafka::kEventsTopic);
    results_ = std::make_unique<LiveReader>(brokers_, kafka::kResultsTopic,
                                            [this](const kafka::Record& record) { CountResult(record); });
  }

  // The stream: sent in batches whenever the backlog allows, on its own thread, whatever serve is doing.
  void StartSender() {
    sender_ = std::thread([this] { SendStream(); });
  }

  void KillServeRepeatedly() {
    for (int kill = 0; kill < kKills; ++kill) {
      std::unique_ptr<Child> serve = StartServe();
      const int64_t answered_at_start = answered_.load();
      const auto started = Clock::now();
      if (random_() % 4 == 0) {
        // While starting: opening the store, catching up on what an earlier run committed but did not
        // publish.
        std::this_thread::sleep_for(milliseconds(random_() % 2500));
        kills_while_starting_ += 1;
      } else {
        // Mid-stream: once this run has answered something, a little later.
        while (answered_.load() == answered_at_start && answered_.load() < command_count() &&
               Clock::now() - started < seconds(60) && serve->Running()) {
          std::this_thread::sleep_for(milliseconds(2));
        }
        std::this_thread::sleep_for(milliseconds(random_() % 1200));
        (answered_.load() < command_count() ? kills_mid_stream_ : kills_idle_) += 1;
      }
      ASSERT_TRUE(serve->Running()) << "serve exited on its own (exit code " << serve->exit_code()
                                    << "): " << LastErr();
      serve->Kill();
    }
    kill_phase_seconds_ = SecondsSince(test_start_);
    answered_during_kills_ = answered_.load();
  }

  // The final run drains everything, then stops cleanly.
  void DrainWithFinalRun() {
    std::unique_ptr<Child> serve = StartServe();
    const auto drain_deadline = Clock::now() + seconds(300);
    while (answered_.load() < command_count() && Clock::now() < drain_deadline && serve->Running() &&
           !send_failed_.load()) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    ASSERT_FALSE(send_failed_.load()) << send_error_;
    ASSERT_EQ(answered_.load(), command_count())
        << "commands without an outcome (serve " << (serve->Running() ? "running" : "exited")
        << "): " << LastErr();
    // The last redeliveries follow the last commands; a duplicate answer can be lost to a kill (serve answers
    // duplicates after the group commit that moves its commands offset past them), so wait a bounded while:
    // the final run may still be working through the last redeliveries (slowly under the sanitizers).
    for (const auto deadline = Clock::now() + seconds(60);
         UnansweredRedeliveries() > 0 && Clock::now() < deadline;) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    // When earlier runs answered everything, this run may still be starting: SIGTERM before serve installs
    // its handler would kill it outright. It prints its bootstrap line once it handles SIGTERM.
    const std::string out_path = dir_.path() + "/serve" + std::to_string(serve_runs_) + ".out";
    for (const auto deadline = Clock::now() + kProcessDeadline;
         ReadFile(out_path).find("bootstrap=") == std::string::npos && serve->Running() &&
         Clock::now() < deadline;) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    serve->Signal(SIGTERM);
    ASSERT_TRUE(serve->Wait(kProcessDeadline)) << "serve did not stop after SIGTERM";
    ASSERT_EQ(serve->exit_code(), 0) << LastErr();
  }

  // Everything published must have reached the live readers.
  void OpenStoreAndStopReaders() {
    store_ = OpenReadOnly(data_dir_);
    ASSERT_NE(store_, nullptr);
    EXPECT_TRUE(
        events_->WaitForOffset(HighWatermark(brokers_, kafka::kEventsTopic), milliseconds(kReadDeadlineMs)));
    EXPECT_TRUE(results_->WaitForOffset(HighWatermark(brokers_, kafka::kResultsTopic),
                                        milliseconds(kReadDeadlineMs)));
    events_->Stop();
    results_->Stop();
    EXPECT_EQ(events_->error(), "");
    EXPECT_EQ(results_->error(), "");
    EXPECT_EQ(events_->offset_jumps(), 0)
        << "the live reader fell behind the broker's bounded tail: the check is void";
    EXPECT_EQ(results_->offset_jumps(), 0)
        << "the live reader fell behind the broker's bounded tail: the check is void";
  }

  // Every command: exactly one accepted/rejected outcome.
  void CheckOneOutcomePerCommand() {
    for (const TestCommand& command : commands_) {
      auto it = outcomes_.find(command.id);
      if (it == outcomes_.end()) {
        missing_ += 1;
      } else if (it->second > 1) {
        answered_twice_ += 1;
      }
    }
    EXPECT_EQ(outcomes_.size(), commands_.size()) << "outcomes for commands never sent";
    EXPECT_EQ(missing_, 0) << "commands without an outcome";
    EXPECT_EQ(answered_twice_, 0) << "commands with two outcomes";
  }

  // RocksDB and ledger.events hold the same events; the chain verifies; results match the events.
  void CheckEventsResultsAndChain() {
    const std::vector<std::pair<uint64_t, std::string>> stored = StoreEvents(*store_);
    check_ = CheckEventsAgainstStore(events_->records(), stored);
    duplicate_answers_ = CheckResultsAgainstStore(results_->records(), stored);
    Result<replay::ReplayReport> verified = replay::Replay(*store_, nullptr);
    ASSERT_TRUE(verified.ok()) << verified.status().ToString();
    EXPECT_TRUE(verified->ok()) << verified->problem;
    EXPECT_EQ(verified->events_read, static_cast<uint64_t>(check_.events));
  }

  void ReportStreamFigures() {
    Figure("commands", static_cast<int64_t>(commands_.size()));
    Figure("serve_kills", kKills);
    Figure("kills_while_starting", kills_while_starting_);
    Figure("kills_mid_stream", kills_mid_stream_);
    Figure("kills_after_stream_end", kills_idle_);
    Figure("commands_answered_before_final_run", answered_during_kills_);
    Figure("events", check_.events);
    Figure("duplicate_events", check_.duplicates);
    Figure("gaps", check_.gaps);
    Figure("commands_with_two_outcomes", answered_twice_);
    Figure("commands_without_outcome", missing_);
  }

  // Every redelivery must be answered (`duplicate`, with the original outcome); extra answers are allowed.
  void CheckEveryRedeliveryAnswered() {
    std::map<std::string, int> duplicate_answers_of;
    for (const kafka::Record& record : results_->records()) {
      if (!record.sequence.has_value()) duplicate_answers_of[record.key] += 1;
    }
    for (const auto& [id, times] : redelivered_)
      answers_lost_ += std::max(0, times - duplicate_answers_of[id]);
    EXPECT_EQ(answers_lost_, 0) << "redelivered commands never answered: serve answers duplicates "
                                   "(PublishResults) only after the group "
                                   "commit that moved its commands offset past them, so a kill in between "
                                   "loses those answers for good; "
                                   "last serve log:\n"
                                << LastErr();
  }

  void ReportRedeliveryFigures() {
    Figure("redeliveries_sent", static_cast<int64_t>(redeliveries_));
    Figure("duplicate_answers", duplicate_answers_);
    Figure("redeliveries_never_answered", answers_lost_);
    Figure("kill_phase_ms", static_cast<int64_t>(kill_phase_seconds_ * 1000));
    Figure("total_ms", static_cast<int64_t>(SecondsSince(test_start_) * 1000));
  }

  void StopBroker() {
    broker_->Signal(SIGTERM);
    EXPECT_TRUE(broker_->Wait(kProcessDeadline));
    EXPECT_EQ(broker_->exit_code(), 0);
  }

 private:
  // Commands in ledger.commands not yet answered, at most: the embedded broker keeps about 5 MB per partition
  // (about 17,000 of these commands), and serve must never find its next command already dropped.
  static constexpr int64_t kBacklogMax = 6'000;
  static constexpr size_t kSendBatch = 500;

  int64_t command_count() const { return static_cast<int64_t>(commands_.size()); }

  // The stream: every command, plus about 1% sent a second time a little later (a client's retry, a
  // redelivery), which must be answered `duplicate` and change nothing.
  void BuildStream() {
    constexpr size_t kRedeliveryEvery = 97, kRedeliveryDelay = 1'500;
    std::vector<std::pair<size_t, const TestCommand*>> pending;  // (send after index, command)
    for (size_t i = 0; i < commands_.size(); ++i) {
      stream_.push_back(&commands_[i]);
      if (i % kRedeliveryEvery == 50) pending.emplace_back(i + kRedeliveryDelay, &commands_[i]);
      while (!pending.empty() && (pending.front().first <= i || i + 1 == commands_.size())) {
        stream_.push_back(pending.front().second);
        redelivered_[pending.front().second->id] += 1;
        pending.erase(pending.begin());
        redeliveries_ += 1;
      }
    }
  }

  // Runs on the results reader's thread.
  void CountResult(const kafka::Record& record) {
    std::lock_guard lock(outcomes_mutex_);
    if (!record.sequence.has_value()) {  // a duplicate answer
      duplicate_answers_live_[record.key] += 1;
      return;
    }
    if (outcomes_[record.key]++ == 0) answered_.fetch_add(1);
  }

  // Redeliveries not answered yet (each redelivery needs a `duplicate` answer of its own).
  int64_t UnansweredRedeliveries() {
    std::lock_guard lock(outcomes_mutex_);
    int64_t missing = 0;
    for (const auto& [id, times] : redelivered_) {
      const auto seen = duplicate_answers_live_.find(id);
      missing += std::max(0, times - (seen == duplicate_answers_live_.end() ? 0 : seen->second));
    }
    return missing;
  }

  // Runs on the sender thread; on an error it writes send_error_ before it sets send_failed_ and returns.
  void SendStream() {
    auto fail = [this](const std::string& error) {
      send_error_ = error;
      send_failed_.store(true);
    };
    Result<std::unique_ptr<kafka::RecordSender>> opened = kafka::RecordSender::Open(brokers_);
    if (!opened.ok()) return fail(opened.status().ToString());
    kafka::RecordSender& out = **opened;
    size_t next = 0;
    while (next < stream_.size() && !stop_sending_.load()) {
      if (sent_.load() - answered_.load() > kBacklogMax - static_cast<int64_t>(kSendBatch)) {
        std::this_thread::sleep_for(milliseconds(5));
        continue;
      }
      const size_t end = std::min(stream_.size(), next + kSendBatch);
      for (; next < end; ++next) {
        const Status status = out.Send(kafka::kCommandsTopic, 0, stream_[next]->id, stream_[next]->line);
        if (!status.ok()) return fail(status.ToString());
      }
      const Status flushed = out.Flush(30'000);
      if (!flushed.ok()) return fail(flushed.ToString());
      sent_.store(static_cast<int64_t>(next));
    }
  }

  void StopSending() {
    stop_sending_.store(true);
    if (sender_.joinable()) sender_.join();
  }

  std::unique_ptr<Child> StartServe() {
    const std::string tag = dir_.path() + "/serve" + std::to_string(++serve_runs_);
    return std::make_unique<Child>(
        std::vector<std::string>{"serve", "--data", data_dir_, "--brokers", brokers_, "--clock", "occurred",
                                 "--allow-unsigned-commands"},
        tag + ".out", tag + ".err");
  }
  std::string LastErr() const {
    return ReadFile(dir_.path() + "/serve" + std::to_string(serve_runs_) + ".err");
  }

  const Clock::time_point test_start_ = Clock::now();
  testing::TempDir dir_;
  const std::string data_dir_ = dir_.path() + "/ledger";
  const std::vector<TestCommand> commands_ = MakeWorkload(Scaled(100'000, 4'000), 42);
  std::vector<const TestCommand*> stream_;
  size_t redeliveries_ = 0;
  std::map<std::string, int> redelivered_;  // command id -> times sent again
  std::mt19937 random_;

  std::unique_ptr<Child> broker_;
  std::string brokers_;

  std::mutex outcomes_mutex_;
  std::map<std::string, int> outcomes_;                // command id -> accepted/rejected answers
  std::atomic<int64_t> answered_{0};                   // command ids with at least one outcome
  std::map<std::string, int> duplicate_answers_live_;  // command id -> `duplicate` answers seen so far
  std::unique_ptr<LiveReader> events_;
  std::unique_ptr<LiveReader> results_;

  std::atomic<int64_t> sent_{0};
  std::atomic<bool> stop_sending_{false};
  std::string send_error_;
  std::atomic<bool> send_failed_{false};
  std::thread sender_;

  int serve_runs_ = 0;
  int kills_while_starting_ = 0, kills_mid_stream_ = 0, kills_idle_ = 0;
  double kill_phase_seconds_ = 0;
  int64_t answered_during_kills_ = 0;

  std::unique_ptr<Store> store_;
  int64_t missing_ = 0, answered_twice_ = 0;
  StreamCheck check_;
  int64_t duplicate_answers_ = 0;
  int64_t answers_lost_ = 0;
};

TEST(KafkaFault, ServeKilledAtRandomMomentsLosesAndDuplicatesNothing) {
  ServeKillScenario scenario;
  ASSERT_NO_FATAL_FAILURE(scenario.StartBroker());
  scenario.StartReaders();
  scenario.StartSender();
  ASSERT_NO_FATAL_FAILURE(scenario.KillServeRepeatedly());
  ASSERT_NO_FATAL_FAILURE(scenario.DrainWithFinalRun());
  ASSERT_NO_FATAL_FAILURE(scenario.OpenStoreAndStopReaders());
  scenario.CheckOneOutcomePerCommand();
  ASSERT_NO_FATAL_FAILURE(scenario.CheckEventsResultsAndChain());
  scenario.ReportStreamFigures();
  scenario.CheckEveryRedeliveryAnswered();
  scenario.ReportRedeliveryFigures();
  scenario.StopBroker();
}

// ---------------------------------------------------------------------------------------------------------
// 2. Broker down, retriable Produce errors, slow round trips: PublishThrough waits; nothing is lost,
//    duplicated or reordered.

TEST(KafkaFault, BrokerDownErrorsAndSlowRoundTripsLoseNothing) {
  testing::TestLedger ledger;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  // A short acknowledgement timeout, so a long outage also exercises the producer rebuild.
  std::unique_ptr<kafka::Publisher> publisher =
      MakePublisher(ledger.ledger().store(), broker->bootstrap(), 5'000);
  ASSERT_NE(publisher, nullptr);
  const std::vector<TestCommand> commands = MakeWorkload(Scaled(1'500, 400), 7, 20);
  const size_t step = commands.size() / 6;
  size_t next = 0;
  auto phase_end = [&](int phase) {
    return phase == 6 ? commands.size() : step * static_cast<size_t>(phase);
  };

  // Healthy.
  ASSERT_NO_FATAL_FAILURE(CommitAndPublish(ledger.ledger(), *publisher, commands, next, phase_end(1), 25));
  next = phase_end(1);

  // Down before the publish, for longer than the acknowledgement timeout: a short publish gives up with
  // IoError; a patient one returns Ok once the broker is back.
  broker->SetBrokerDown(1, true);
  uint64_t through = CommitGroup(ledger.ledger(), commands, next, phase_end(2));
  next = phase_end(2);
  const Status short_wait = publisher->PublishThrough(through, 1'000);
  EXPECT_EQ(short_wait.code(), StatusCode::kIoError) << short_wait.ToString();
  const auto down_since = Clock::now();
  constexpr int kOutageSeconds = 6;  // longer than the 5 s acknowledgement timeout
  std::thread bring_up([&] {
    std::this_thread::sleep_for(seconds(kOutageSeconds));
    broker->SetBrokerDown(1, false);
  });
  const Status patient = publisher->PublishThrough(through, kPublishDeadlineMs);
  const double outage_wait = SecondsSince(down_since);
  bring_up.join();
  ASSERT_TRUE(patient.ok()) << patient.ToString();
  EXPECT_GE(outage_wait, kOutageSeconds - 0.5) << "acknowledged while the broker was down?";
  EXPECT_EQ(publisher->acknowledged_through(), through);

  // Down while groups are being produced (in flight), shorter than the acknowledgement timeout: retried.
  const auto flap_since = Clock::now();
  std::thread flap([&] {
    std::this_thread::sleep_for(milliseconds(30));
    broker->SetBrokerDown(1, true);
    std::this_thread::sleep_for(seconds(2));
    broker->SetBrokerDown(1, false);
  });
  ASSERT_NO_FATAL_FAILURE(CommitAndPublish(ledger.ledger(), *publisher, commands, next, phase_end(3), 5));
  next = phase_end(3);
  flap.join();
  const double flap_seconds = SecondsSince(flap_since);

  // Produce requests failing with retriable errors: NOT_LEADER_FOR_PARTITION (6), REQUEST_TIMED_OUT (7).
  const auto errors_since = Clock::now();
  broker->PushProduceErrors(5, 6);
  ASSERT_NO_FATAL_FAILURE(CommitAndPublish(ledger.ledger(), *publisher, commands, next, phase_end(4), 25));
  next = phase_end(4);
  broker->PushProduceErrors(5, 7);
  ASSERT_NO_FATAL_FAILURE(CommitAndPublish(ledger.ledger(), *publisher, commands, next, phase_end(5), 25));
  next = phase_end(5);
  const double errors_seconds = SecondsSince(errors_since);

  // 500 ms round trips: slower, not different.
  broker->SetBrokerRttMs(1, 500);
  const auto slow_since = Clock::now();
  ASSERT_NO_FATAL_FAILURE(CommitAndPublish(ledger.ledger(), *publisher, commands, next, commands.size(),
                                           (commands.size() - next + 2) / 3));
  const double slow_seconds = SecondsSince(slow_since);
  broker->SetBrokerRttMs(1, 0);
  EXPECT_GE(slow_seconds, 1.0) << "three publishes with 500 ms round trips";

  const uint64_t last = ledger.ledger().last_sequence();
  EXPECT_EQ(publisher->acknowledged_through(), last);
  const std::vector<std::pair<uint64_t, std::string>> stored = StoreEvents(ledger.ledger().store());
  const StreamCheck check =
      CheckEventsAgainstStore(ReadPartition(broker->bootstrap(), kafka::kEventsTopic), stored);
  const int64_t duplicate_answers =
      CheckResultsAgainstStore(ReadPartition(broker->bootstrap(), kafka::kResultsTopic), stored);
  EXPECT_EQ(duplicate_answers, 0);
  Figure("commands", static_cast<int64_t>(commands.size()));
  Figure("events", check.events);
  Figure("duplicate_events", check.duplicates);
  Figure("gaps", check.gaps);
  Figure("outage_wait_ms", static_cast<int64_t>(outage_wait * 1000));
  Figure("flap_phase_ms", static_cast<int64_t>(flap_seconds * 1000));
  Figure("produce_errors_phase_ms", static_cast<int64_t>(errors_seconds * 1000));
  Figure("slow_phase_ms", static_cast<int64_t>(slow_seconds * 1000));
  Figure("producer_rebuilds", static_cast<int64_t>(publisher->producer_rebuilds()));
  Figure("events_published", static_cast<int64_t>(publisher->events_published()));
  EXPECT_EQ(publisher->events_published(), last);
}

// ---------------------------------------------------------------------------------------------------------
// 3. Fatal idempotent-producer errors: between groups and with messages in flight. The publisher rebuilds
//    its producer, reads the tails again and resumes.

TEST(KafkaFault, FatalProducerErrorRebuildsAndResumesExactlyOnce) {
  constexpr int kInjections = 3;  // of each kind
  testing::TestLedger ledger;
  std::unique_ptr<kafka::EmbeddedBroker> broker = StartBroker();
  ASSERT_NE(broker, nullptr);
  std::unique_ptr<kafka::Publisher> publisher = MakePublisher(ledger.ledger().store(), broker->bootstrap());
  ASSERT_NE(publisher, nullptr);
  const std::vector<TestCommand> commands = MakeWorkload(Scaled(1'200, 400), 99, 20);
  const size_t quarter = commands.size() / 4;
  ASSERT_NO_FATAL_FAILURE(CommitAndPublish(ledger.ledger(), *publisher, commands, 0, quarter, 20));
  size_t next = quarter;
  const size_t group = std::max<size_t>(1, quarter / (2 * kInjections));

  // Between groups: the producer is idle when it fails.
  for (int i = 0; i < kInjections; ++i) {
    const uint64_t rebuilds_before = publisher->producer_rebuilds();
    publisher->InjectFatalErrorForTest();
    const uint64_t through = CommitGroup(ledger.ledger(), commands, next, next + group);
    next += group;
    const Status published = publisher->PublishThrough(through, kPublishDeadlineMs);
    ASSERT_TRUE(published.ok()) << published.ToString();
    EXPECT_GT(publisher->producer_rebuilds(), rebuilds_before);
  }
  const uint64_t rebuilds_between_groups = publisher->producer_rebuilds();

  // In flight: slow round trips keep the group's records unacknowledged while the producer fails.
  broker->SetBrokerRttMs(1, 500);
  for (int i = 0; i < kInjections; ++i) {
    const uint64_t rebuilds_before = publisher->producer_rebuilds();
    const uint64_t through = CommitGroup(ledger.ledger(), commands, next, next + group);
    next += group;
    const Status early = publisher->PublishThrough(through, 50);  // produces, then gives up waiting
    EXPECT_EQ(early.code(), StatusCode::kIoError) << "acknowledged within 50 ms despite 500 ms round trips";
    EXPECT_LT(publisher->acknowledged_through(), through);
    publisher->InjectFatalErrorForTest();
    // Fast again for the rebuild: reading the tails takes many round trips.
    broker->SetBrokerRttMs(1, 0);
    const Status published = publisher->PublishThrough(through, kPublishDeadlineMs);
    ASSERT_TRUE(published.ok()) << published.ToString();
    EXPECT_GT(publisher->producer_rebuilds(), rebuilds_before);
    broker->SetBrokerRttMs(1, 500);
  }
  broker->SetBrokerRttMs(1, 0);
  ASSERT_NO_FATAL_FAILURE(CommitAndPublish(ledger.ledger(), *publisher, commands, next, commands.size(), 20));

  const uint64_t last = ledger.ledger().last_sequence();
  EXPECT_EQ(publisher->acknowledged_through(), last);
  EXPECT_GE(publisher->producer_rebuilds(), static_cast<uint64_t>(2 * kInjections));
  const std::vector<std::pair<uint64_t, std::string>> stored = StoreEvents(ledger.ledger().store());
  const StreamCheck check =
      CheckEventsAgainstStore(ReadPartition(broker->bootstrap(), kafka::kEventsTopic), stored);
  const int64_t duplicate_answers =
      CheckResultsAgainstStore(ReadPartition(broker->bootstrap(), kafka::kResultsTopic), stored);
  EXPECT_EQ(duplicate_answers, 0);
  Figure("commands", static_cast<int64_t>(commands.size()));
  Figure("events", check.events);
  Figure("fatal_errors_injected", 2 * kInjections);
  Figure("producer_rebuilds_between_groups", static_cast<int64_t>(rebuilds_between_groups));
  Figure("producer_rebuilds", static_cast<int64_t>(publisher->producer_rebuilds()));
  Figure("duplicate_events", check.duplicates);
  Figure("gaps", check.gaps);
}

// ---------------------------------------------------------------------------------------------------------
// 4. `ledger project` killed with SIGKILL mid-stream and restarted: the view ends byte-identical to an
//    uninterrupted run's and to the ledger's own state.
//
// Each restart joins a fresh consumer group: where a view resumes is decided by the offset committed in its
// own store (never by the group), and rejoining the killed member's group would wait out that member's
// session timeout (about 35 s on the embedded broker) per restart.

// The steps of test 4, in the order the test takes them.
class ProjectionKillScenario {
 public:
  static constexpr int kKills = 3;

  void Start() {
    broker_ = StartBroker();
    ASSERT_NE(broker_, nullptr);
    publisher_ = MakePublisher(ledger_.ledger().store(), broker_->bootstrap());
    ASSERT_NE(publisher_, nullptr);
    // Small enough that the whole partition stays in the embedded broker (a restarted view rereads from its
    // own offset, and the uninterrupted run from offset 0).
    commands_ = MakeWorkload(Scaled(3'000, 1'000), 1234, 30);
    const uint32_t seed = std::random_device()();
    random_.seed(seed);
    std::cout << "[ figures  ] seed = " << seed << "\n";
  }

  // The stream is cut into kKills + 1 segments: each run gets its segment while it consumes and is killed at
  // a random point in it; the last segment is left for the final run.
  void KillProjectionRepeatedly() {
    const size_t segment_groups =
        std::max<size_t>(4, (commands_.size() + kGroup - 1) / kGroup / (kKills + 1));
    for (int kill = 0; kill < kKills; ++kill) ASSERT_NO_FATAL_FAILURE(RunAndKill(segment_groups));
  }

  void PublishTheRest() {
    while (next_ < commands_.size()) ASSERT_NO_FATAL_FAILURE(PublishGroup());
    last_ = ledger_.ledger().last_sequence();
    events_high_ = HighWatermark(broker_->bootstrap(), kafka::kEventsTopic);
    ASSERT_EQ(events_high_, static_cast<int64_t>(last_));
  }

  // The final run applies the rest and exits when idle.
  void RunFinalProjection() {
    std::unique_ptr<Child> project = StartProject(1'500);
    ASSERT_TRUE(project->Wait(seconds(180))) << "ledger project did not finish";
    ASSERT_EQ(project->exit_code(), 0) << ReadFile(dir_.path() + "/project" + std::to_string(runs_) + ".err");
    resumed_ = OpenReadOnly(view_dir_ + "/partition-0");
    ASSERT_NE(resumed_, nullptr);
    EXPECT_EQ(ViewOffset(), events_high_);
  }

  // The uninterrupted run, in-process.
  void RunUninterrupted() {
    ProjectionRunnerOptions options;
    options.brokers = broker_->bootstrap();
    options.group = "uninterrupted";
    options.data_dir = dir_.path() + "/uninterrupted";
    Result<std::unique_ptr<ProjectionRunner>> runner = ProjectionRunner::Open(options);
    ASSERT_TRUE(runner.ok()) << runner.status().ToString();
    runner_ = std::move(runner).value();
    for (const auto deadline = Clock::now() + seconds(120);
         runner_->LastApplied(0) < last_ && Clock::now() < deadline;) {
      Result<size_t> applied = runner_->RunOnce(4096, 200);
      ASSERT_TRUE(applied.ok()) << applied.status().ToString();
    }
    ASSERT_EQ(runner_->LastApplied(0), last_);
    ASSERT_NE(runner_->StoreOf(0), nullptr);
  }

  void CompareViews() {
    Result<Digest> resumed_digest = replay::StateDigest(*resumed_);
    Result<Digest> uninterrupted_digest = replay::StateDigest(*runner_->StoreOf(0));
    ASSERT_TRUE(resumed_digest.ok() && uninterrupted_digest.ok());
    EXPECT_EQ(ToHex(*resumed_digest), ToHex(*uninterrupted_digest))
        << "a killed and restarted view differs from an uninterrupted one";
    EXPECT_EQ(ToHex(*resumed_digest), ToHex(ledger_.StateDigest()))
        << "the view differs from the ledger's own projections";
  }

  void ReportFigures() {
    std::ostringstream kill_offsets;
    for (int64_t offset : offsets_at_kill_) kill_offsets << offset << " ";
    std::cout << "[ figures  ] view offsets at each kill = " << kill_offsets.str() << "(of " << last_
              << ")\n";
    Figure("commands", static_cast<int64_t>(commands_.size()));
    Figure("events", static_cast<int64_t>(last_));
    Figure("project_kills", kKills);
    Figure("kills_mid_stream", kills_mid_stream_);
    Figure("kills_before_first_event", kills_without_progress_);
  }

 private:
  static constexpr size_t kGroup =
      8;  // commands per published group: many small steps for the view to follow

  // Where the view is: the Kafka offset committed with it (-1: nothing yet). Opens the store read-only beside
  // the running job; a failed open counts as no progress.
  int64_t ViewOffset() const {
    std::unique_ptr<Store> store = OpenReadOnly(view_dir_ + "/partition-0");
    if (store == nullptr) return -1;
    Result<std::optional<std::string>> offset = store->GetMeta("kafka_offset");
    return offset.ok() && offset->has_value() ? std::stoll(**offset) : -1;
  }

  std::unique_ptr<Child> StartProject(int64_t idle_exit_ms) {
    const std::string tag = dir_.path() + "/project" + std::to_string(++runs_);
    std::vector<std::string> args = {
        "project", "--brokers", broker_->bootstrap(), "--group", "view-" + std::to_string(runs_),
        "--data",  view_dir_};
    if (idle_exit_ms >= 0) {
      args.push_back("--idle-exit-ms");
      args.push_back(std::to_string(idle_exit_ms));
    }
    return std::make_unique<Child>(args, tag + ".out", tag + ".err");
  }

  void PublishGroup() {
    if (next_ >= commands_.size()) return;
    const size_t end = std::min(commands_.size(), next_ + kGroup);
    const uint64_t through = CommitGroup(ledger_.ledger(), commands_, next_, end);
    next_ = end;
    const Status published = publisher_->PublishThrough(through, kPublishDeadlineMs);
    ASSERT_TRUE(published.ok()) << published.ToString();
  }

  // One run: started, fed a few groups while it joins its group, then a random part of its segment; killed.
  void RunAndKill(size_t segment_groups) {
    std::unique_ptr<Child> project = StartProject(-1);
    const int64_t offset_at_start = ViewOffset();
    const std::string err_path = dir_.path() + "/project" + std::to_string(runs_) + ".err";
    // While the job joins its group (a few seconds): a few groups only.
    for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(PublishGroup());
    bool progressed = false;
    for (const auto deadline = Clock::now() + seconds(60); !progressed && Clock::now() < deadline;) {
      ASSERT_TRUE(project->Running()) << "ledger project exited: " << ReadFile(err_path);
      progressed = ViewOffset() > offset_at_start;
      if (!progressed) std::this_thread::sleep_for(milliseconds(50));
    }
    // Then a random part of the segment, group by group, while the job follows; then the kill.
    const size_t groups = segment_groups / 4 + random_() % (segment_groups - segment_groups / 4);
    for (size_t i = 0; i < groups; ++i) {
      ASSERT_NO_FATAL_FAILURE(PublishGroup());
      std::this_thread::sleep_for(milliseconds(5));
    }
    std::this_thread::sleep_for(milliseconds(random_() % 200));
    ASSERT_TRUE(project->Running()) << "ledger project exited: " << ReadFile(err_path);
    (progressed ? kills_mid_stream_ : kills_without_progress_) += 1;
    project->Kill();
    offsets_at_kill_.push_back(ViewOffset());
  }

  testing::TempDir dir_;
  const std::string view_dir_ = dir_.path() + "/view";
  testing::TestLedger ledger_;
  std::unique_ptr<kafka::EmbeddedBroker> broker_;
  std::unique_ptr<kafka::Publisher> publisher_;
  std::vector<TestCommand> commands_;
  std::mt19937 random_;
  int runs_ = 0;
  size_t next_ = 0;  // the first command not yet published
  int kills_mid_stream_ = 0, kills_without_progress_ = 0;
  std::vector<int64_t> offsets_at_kill_;
  uint64_t last_ = 0;
  int64_t events_high_ = 0;
  std::unique_ptr<Store> resumed_;
  std::unique_ptr<ProjectionRunner> runner_;
};

TEST(KafkaFault, ProjectionKilledMidStreamResumesToTheSameView) {
  ProjectionKillScenario scenario;
  ASSERT_NO_FATAL_FAILURE(scenario.Start());
  ASSERT_NO_FATAL_FAILURE(scenario.KillProjectionRepeatedly());
  ASSERT_NO_FATAL_FAILURE(scenario.PublishTheRest());
  ASSERT_NO_FATAL_FAILURE(scenario.RunFinalProjection());
  ASSERT_NO_FATAL_FAILURE(scenario.RunUninterrupted());
  ASSERT_NO_FATAL_FAILURE(scenario.CompareViews());
  scenario.ReportFigures();
}

}  // namespace
}  // namespace ledger
