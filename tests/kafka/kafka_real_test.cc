// Goal: the ledger against real Apache Kafka brokers (scripts/kafka/cluster.sh: Kafka 4.x, KRaft, fetched
// from Maven Central) shows exactly-once publication where the embedded mock cannot: `ledger serve` killed
// over and over, a broker killed and restarted from its log, a 3-broker cluster with min.insync.replicas=2
// losing one and then two brokers; and that an acknowledgement (a result) never reaches Kafka before its
// events. Every test skips (never passes silently) when Kafka cannot be fetched here, naming the reason.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/assert.h"
#include "kafka/kafka.h"
#include "ledger/routing.h"
#include "support/serve_harness.h"
#include "support/test_support.h"

namespace ledger::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kClusterScript[] = LEDGER_SOURCE_DIR "/scripts/kafka/cluster.sh";
constexpr char kLedgerBinary[] = LEDGER_BINARY;
// Bounds, each generous for two busy cores: the first fetch (Maven Central), a cluster start, a serve start.
constexpr int kFetchTimeoutS = 900;
constexpr int kClusterTimeoutS = 150;
constexpr int kServeReadyTimeoutS = 90;
constexpr int kKcatTimeoutS = 120;

double TestScale() {
  const char* text = std::getenv("LEDGER_TEST_SCALE");
  const double scale = text == nullptr ? 1.0 : std::atof(text);
  return scale > 0 ? scale : 1.0;
}

size_t Scaled(size_t count) { return std::max<size_t>(1000, static_cast<size_t>(count * TestScale())); }

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

using testing::ReadFile;

// The last `lines` lines of `text`.
std::string Tail(const std::string& text, size_t lines) {
  size_t pos = text.size();
  for (size_t i = 0; i <= lines; ++i) {
    if (pos == 0) return text;
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

std::string FirstLine(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.empty() ? "(no output)" : line;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------------
// Processes (fork/exec; output to files)

// Starts argv with stdout and stderr appended to the given files, in its own process group. Returns the pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path, const std::string& err_path) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  LEDGER_ASSERT(out >= 0 && err >= 0 && in >= 0);
  const pid_t pid = fork();
  LEDGER_ASSERT(pid >= 0);
  if (pid == 0) {  // only async-signal-safe calls until exec
    setpgid(0, 0);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out);
  close(err);
  close(in);
  return pid;
}

// Waits for `pid` up to `timeout`; returns its exit status (128+signal when signalled) or -1 on timeout.
int WaitFor(pid_t pid, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (done < 0) return -2;
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

bool Running(pid_t pid) {
  int status = 0;
  return pid > 0 && waitpid(pid, &status, WNOHANG) == 0;
}

// SIGKILLs `pid`'s process group and reaps it.
void KillHard(pid_t pid) {
  if (pid <= 0) return;
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  WaitFor(pid, seconds(30));
}

// SIGTERM, then SIGKILL after `grace`. Returns the exit status.
int Stop(pid_t pid, milliseconds grace) {
  if (pid <= 0) return -2;
  kill(pid, SIGTERM);
  const int status = WaitFor(pid, grace);
  if (status != -1) return status;
  KillHard(pid);
  return -1;
}

struct RunResult {
  int exit_code = -1;  // -1: timed out (and killed)
  std::string out;
  std::string err;
};

// Runs argv to completion (bounded), capturing its output through files in `scratch`.
RunResult RunProcess(const std::vector<std::string>& argv, const std::string& scratch, int timeout_s) {
  static std::atomic<int> counter{0};
  const std::string base = scratch + "/run-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  const pid_t pid = Spawn(argv, base + ".out", base + ".err");
  RunResult result;
  result.exit_code = WaitFor(pid, seconds(timeout_s));
  if (result.exit_code == -1) KillHard(pid);
  result.out = ReadFile(base + ".out");
  result.err = ReadFile(base + ".err");
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// Commands: a payment day in miniature (accounts, merchants, deposits, then payments, some rejected)

struct Workload {
  std::vector<std::string> ids;
  std::vector<std::string> lines;
};

Workload MakeWorkload(size_t count, uint32_t seed) {
  constexpr int kCustomers = 150;
  constexpr int kMerchants = 20;
  std::mt19937 random(seed);
  Workload workload;
  auto add = [&](const nlohmann::json& command) {
    workload.ids.push_back(command["command_id"].get<std::string>());
    workload.lines.push_back(command.dump());
  };
  for (int m = 0; m < kMerchants; ++m)
    add(OpenMerchant("m" + std::to_string(m), "M" + std::to_string(m), 60));
  for (int c = 0; c < kCustomers; ++c) {
    const std::string customer = "C" + std::to_string(c);
    add(OpenAccount("a" + std::to_string(c), customer));
    // Some customers get little money: their larger payments are rejected (INSUFFICIENT_FUNDS).
    add(Deposit("d" + std::to_string(c), customer + ":debit", c % 5 == 0 ? 20'000 : 5'000'000));
  }
  for (size_t order = 0; workload.ids.size() < count; ++order) {
    const std::string merchant = "M" + std::to_string(random() % kMerchants);
    // One payment in 40 names an unknown customer (UNKNOWN_ACCOUNT).
    const std::string customer =
        random() % 40 == 0 ? "X" + std::to_string(order) : "C" + std::to_string(random() % kCustomers);
    add(Pay(merchant, "O" + std::to_string(order), customer, 100 + static_cast<int64_t>(random() % 9'900)));
  }
  workload.ids.resize(count);
  workload.lines.resize(count);
  return workload;
}

// ---------------------------------------------------------------------------------------------------------
// What a Debian kcat consumer sees

struct TopicView {
  std::vector<uint64_t> sequences;  // ledger.sequence header of each record, in offset order (0: none)
  std::vector<int64_t>
      appended_ms;  // the record timestamp: the broker's append time (cluster.sh sets LogAppendTime)
  std::vector<std::string> keys;
  std::vector<std::string> values;
};

// Reads a whole ledger topic (partition 0) from the beginning with kcat. Fails the test when kcat fails.
TopicView ReadWithKcat(const std::string& brokers, const std::string& topic, const std::string& scratch) {
  const std::string format = topic == kafka::kEventsTopic ? "%T\t%h\n" : "%T\t%h\t%k\t%s\n";
  const RunResult run = RunProcess({"/usr/bin/kcat", "-C", "-b", brokers, "-t", topic, "-p", "0", "-o",
                                    "beginning", "-e", "-q", "-f", format},
                                   scratch, kKcatTimeoutS);
  EXPECT_EQ(run.exit_code, 0) << "kcat " << topic << ": " << FirstLine(run.err);
  TopicView view;
  static const std::regex kSequence("(^|,)ledger\\.sequence=([0-9]+)");
  for (const std::string& timed_line : Lines(run.out)) {
    const size_t tab0 = timed_line.find('\t');
    if (tab0 == std::string::npos) {
      ADD_FAILURE() << "unexpected kcat line: " << timed_line;
      continue;
    }
    view.appended_ms.push_back(std::stoll(timed_line.substr(0, tab0)));
    const std::string line = timed_line.substr(tab0 + 1);
    std::string headers = line;
    std::string key, value;
    if (topic != kafka::kEventsTopic) {
      const size_t tab1 = line.find('\t');
      const size_t tab2 = line.find('\t', tab1 + 1);
      if (tab1 == std::string::npos || tab2 == std::string::npos) {
        ADD_FAILURE() << "unexpected kcat line: " << line;
        view.appended_ms.pop_back();
        continue;
      }
      headers = line.substr(0, tab1);
      key = line.substr(tab1 + 1, tab2 - tab1 - 1);
      value = line.substr(tab2 + 1);
    }
    std::smatch match;
    view.sequences.push_back(std::regex_search(headers, match, kSequence) ? std::stoull(match[2]) : 0);
    view.keys.push_back(key);
    view.values.push_back(value);
  }
  return view;
}

// Checks that events are exactly sequences 1..N in order; returns N and counts gaps and duplicates.
struct EventsCheck {
  uint64_t last = 0;
  uint64_t duplicates = 0;
  uint64_t gaps = 0;
  uint64_t missing_header = 0;
};

EventsCheck CheckEvents(const TopicView& events) {
  EventsCheck check;
  uint64_t previous = 0;
  for (uint64_t sequence : events.sequences) {
    if (sequence == 0) {
      check.missing_header += 1;
    } else if (sequence <= previous) {
      check.duplicates += 1;
    } else {
      check.gaps += sequence - previous - 1;
      previous = sequence;
    }
  }
  check.last = previous;
  return check;
}

// Results per command id from the results topic.
struct ResultsCheck {
  std::map<std::string, int> per_command;  // how many results each command got
  std::map<std::string, int> by_status;
  std::set<uint64_t> sequences;  // every sequence the results name
  uint64_t unexpected = 0;       // results for commands not in the workload
};

ResultsCheck CheckResults(const TopicView& results, const Workload& workload) {
  ResultsCheck check;
  const std::set<std::string> known(workload.ids.begin(), workload.ids.end());
  for (size_t i = 0; i < results.values.size(); ++i) {
    const nlohmann::json result = nlohmann::json::parse(results.values[i], nullptr, false);
    if (result.is_discarded() || !result.contains("command_id")) {
      ADD_FAILURE() << "unparsable result: " << results.values[i];
      continue;
    }
    const std::string id = result["command_id"].get<std::string>();
    EXPECT_EQ(id, results.keys[i]) << "result key differs from its command id";
    if (!known.count(id)) check.unexpected += 1;
    check.per_command[id] += 1;
    check.by_status[result.value("status", "?")] += 1;
    if (result.contains("sequences")) {
      for (const auto& sequence : result["sequences"]) check.sequences.insert(sequence.get<uint64_t>());
    }
  }
  return check;
}

// The common end-of-test check: the events topic holds 1..N exactly once, N equals the ledger's own last
// sequence, and the results topic holds exactly one accepted/rejected result per command whose sequences are
// exactly 1..N. Prints the figures.
// Returns how many results Kafka appended before the last event they report (see
// KafkaRealResultsAppearOnlyAfterTheirEvents), with the first example in *example.
uint64_t ExpectExactlyOnce(const std::string& label, const std::string& brokers, const std::string& scratch,
                           const Workload& workload, uint64_t store_last_sequence,
                           std::string* example = nullptr) {
  const TopicView events = ReadWithKcat(brokers, kafka::kEventsTopic, scratch);
  const TopicView results = ReadWithKcat(brokers, kafka::kResultsTopic, scratch);
  const EventsCheck check = CheckEvents(events);
  ResultsCheck outcome = CheckResults(results, workload);
  // Append order across the two topics: a result must not reach Kafka before the events it reports.
  std::map<uint64_t, int64_t> event_appended_ms;
  for (size_t i = 0; i < events.sequences.size(); ++i)
    event_appended_ms.emplace(events.sequences[i], events.appended_ms[i]);
  uint64_t results_before_events = 0;
  int64_t lead_ms_max = 0;
  for (size_t i = 0; i < results.sequences.size(); ++i) {
    const auto event = event_appended_ms.find(results.sequences[i]);
    if (event == event_appended_ms.end() || results.appended_ms[i] >= event->second) continue;
    if (results_before_events++ == 0 && example != nullptr) {
      *example = "result for sequence " + std::to_string(results.sequences[i]) + " appended " +
                 std::to_string(event->second - results.appended_ms[i]) + " ms before that event";
    }
    lead_ms_max = std::max(lead_ms_max, event->second - results.appended_ms[i]);
  }
  size_t without_result = 0, more_than_one = 0;
  for (const std::string& id : workload.ids) {
    const auto it = outcome.per_command.find(id);
    if (it == outcome.per_command.end()) {
      without_result += 1;
    } else if (it->second > 1) {
      more_than_one += 1;
    }
  }
  std::cout << "[" << label << "] commands=" << workload.ids.size() << " events=" << events.sequences.size()
            << " last_sequence=" << check.last << " store_last_sequence=" << store_last_sequence
            << " duplicates=" << check.duplicates << " gaps=" << check.gaps
            << " results=" << results.values.size() << " accepted=" << outcome.by_status["accepted"]
            << " rejected=" << outcome.by_status["rejected"]
            << " duplicate_status=" << outcome.by_status["duplicate"]
            << " commands_without_result=" << without_result
            << " commands_with_several_results=" << more_than_one
            << " results_appended_before_their_events=" << results_before_events << " (by up to "
            << lead_ms_max << " ms)" << std::endl;
  EXPECT_EQ(check.missing_header, 0u);
  EXPECT_EQ(check.duplicates, 0u);
  EXPECT_EQ(check.gaps, 0u);
  EXPECT_EQ(events.sequences.size(), check.last);
  EXPECT_EQ(check.last, store_last_sequence) << "Kafka and the ledger's store disagree on the last sequence";
  EXPECT_FALSE(events.sequences.empty());
  EXPECT_TRUE(events.sequences.empty() || events.sequences.front() == 1u)
      << "the events topic does not start at sequence 1";
  EXPECT_EQ(without_result, 0u);
  EXPECT_EQ(more_than_one, 0u);
  EXPECT_EQ(outcome.unexpected, 0u);
  EXPECT_EQ(results.values.size(), workload.ids.size());
  EXPECT_EQ(outcome.by_status["accepted"] + outcome.by_status["rejected"],
            static_cast<int>(workload.ids.size()));
  EXPECT_GT(outcome.by_status["accepted"], 0);
  EXPECT_GT(outcome.by_status["rejected"], 0);
  // Every event belongs to exactly one result, and every result's sequences are events.
  EXPECT_EQ(outcome.sequences.size(), check.last);
  EXPECT_TRUE(outcome.sequences.empty() ||
              (*outcome.sequences.begin() == 1 && *outcome.sequences.rbegin() == check.last));
  return results_before_events;
}

// ---------------------------------------------------------------------------------------------------------
// A live reader of ledger.results: records every result and when it arrived. (It asks no high watermarks:
// librdkafka 2.0.2's rd_kafka_query_watermark_offsets can block past its timeout while a leader is down.)

class ResultsWatcher {
 public:
  explicit ResultsWatcher(std::string brokers) : brokers_(std::move(brokers)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~ResultsWatcher() {
    stop_ = true;
    thread_.join();
  }
  size_t count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return arrivals_.size();
  }
  // Arrival times (seconds since the watcher started) of every result so far.
  std::vector<double> arrivals() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return arrivals_;
  }
  std::set<std::string> keys() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return keys_;
  }
  double now() const { return SecondsSince(start_); }
  // Waits until at least `count` results arrived; false on timeout.
  bool WaitForCount(size_t wanted, seconds timeout) const {
    const auto deadline = Clock::now() + timeout;
    while (count() < wanted) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return true;
  }

 private:
  void Loop() {
    std::unique_ptr<kafka::PartitionReader> reader;
    int64_t next_offset = -1;
    while (!stop_) {
      if (!reader) {
        Result<std::unique_ptr<kafka::PartitionReader>> opened =
            kafka::PartitionReader::Open(brokers_, kafka::kResultsTopic, 0, next_offset);
        if (!opened.ok()) {
          std::this_thread::sleep_for(milliseconds(200));
          continue;
        }
        reader = std::move(opened).value();
      }
      Result<std::vector<kafka::Record>> records = reader->Poll(4096, 100);
      if (!records.ok()) {  // e.g. the topic does not exist yet: reopen where we were
        reader.reset();
        std::this_thread::sleep_for(milliseconds(200));
        continue;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      for (const kafka::Record& record : *records) {
        arrivals_.push_back(SecondsSince(start_));
        keys_.insert(record.key);
        next_offset = record.offset + 1;
      }
    }
  }

  const std::string brokers_;
  const Clock::time_point start_ = Clock::now();
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<double> arrivals_;
  std::set<std::string> keys_;
  std::thread thread_;
};

// Sends commands [from, to) of `workload` to ledger.commands partition 0 and waits for Kafka's
// acknowledgement.
::testing::AssertionResult SendCommands(kafka::RecordSender& sender, const Workload& workload, size_t from,
                                        size_t to) {
  for (size_t i = from; i < to; ++i) {
    const Status sent = sender.Send(kafka::kCommandsTopic, 0, workload.ids[i], workload.lines[i]);
    if (!sent.ok()) return ::testing::AssertionFailure() << "send: " << sent.ToString();
  }
  const Status flushed = sender.Flush(120'000);
  if (!flushed.ok()) return ::testing::AssertionFailure() << "flush: " << flushed.ToString();
  return ::testing::AssertionSuccess();
}

// Commands of a workload sent one after the other to ledger.commands partition 0; `sent` counts them.
struct CommandFeed {
  kafka::RecordSender& sender;
  const Workload& workload;
  size_t sent = 0;

  // Streams commands at about 250 a second for `duration_s` or until `limit` commands were sent.
  ::testing::AssertionResult SendFor(double duration_s, size_t limit) {
    const auto started = Clock::now();
    while (SecondsSince(started) < duration_s && sent < limit) {
      const size_t to = std::min(limit, sent + 50);
      ::testing::AssertionResult ok = SendCommands(sender, workload, sent, to);
      if (!ok) return ok;
      sent = to;
      std::this_thread::sleep_for(milliseconds(200));
    }
    return ::testing::AssertionSuccess();
  }
};

// How results arrived after `killed_at` (seconds on the watcher's clock): the longest pause between two
// (counted from `killed_at`), and how many arrived 10 to 20 s after it.
struct ArrivalFigures {
  double longest_pause = 0;
  size_t results_10_to_20s = 0;
};
ArrivalFigures ArrivalsAfter(const std::vector<double>& arrivals, double killed_at) {
  ArrivalFigures figures;
  double last = killed_at;
  for (double at : arrivals) {
    if (at < killed_at) continue;
    figures.longest_pause = std::max(figures.longest_pause, at - last);
    last = at;
    if (at >= killed_at + 10 && at <= killed_at + 20) figures.results_10_to_20s += 1;
  }
  return figures;
}

// The last sequence serve's log says it committed and waits to have acknowledged ("?" when none).
std::string CommittedThrough(const std::string& serve_log) {
  static const std::regex kWaiting("events through ([0-9]+) not acknowledged");
  std::string committed_through = "?";
  for (auto it = std::sregex_iterator(serve_log.begin(), serve_log.end(), kWaiting);
       it != std::sregex_iterator(); ++it) {
    committed_through = (*it)[1];
  }
  return committed_through;
}

// ---------------------------------------------------------------------------------------------------------
// The fixture: fetches Kafka (skipping when it cannot), starts clusters, runs `ledger serve`, cleans up.

class KafkaRealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kLedgerBinary, X_OK), 0) << "no ledger program at " << kLedgerBinary;
    const auto started = Clock::now();
    const RunResult fetch = RunProcess({"/bin/bash", kClusterScript, "fetch"}, dir_.path(), kFetchTimeoutS);
    if (fetch.exit_code == 77) GTEST_SKIP() << FirstLine(fetch.err);
    ASSERT_EQ(fetch.exit_code, 0) << "cluster.sh fetch: " << FirstLine(fetch.err);
    std::cout << "[setup] " << FirstLine(fetch.out) << " (" << SecondsSince(started) << " s)" << std::endl;
  }

  void TearDown() override {
    for (pid_t pid : serve_pids_) {
      if (Running(pid)) KillHard(pid);
    }
    if (HasFailure()) {
      std::cout << "--- ledger serve stderr (tail)\n" << Tail(ReadFile(serve_err()), 40) << std::endl;
      if (!cluster_dir_.empty()) {
        for (int i = 1; i <= brokers_count_; ++i) {
          std::cout << "--- broker " << i << " log (tail)\n"
                    << Tail(ReadFile(cluster_dir_ + "/broker-" + std::to_string(i) + "/broker.log"), 15)
                    << std::endl;
        }
      }
    }
    if (!cluster_dir_.empty()) {
      const RunResult stop =
          RunProcess({"/bin/bash", kClusterScript, "stop", cluster_dir_}, dir_.path(), 120);
      EXPECT_EQ(stop.exit_code, 0) << "cluster.sh stop: " << FirstLine(stop.err);
    }
  }

  // Starts `count` brokers and returns the bootstrap list.
  std::string StartCluster(int count) {
    cluster_dir_ = dir_.path() + "/cluster";
    brokers_count_ = count;
    const auto started = Clock::now();
    const RunResult start =
        RunProcess({"/bin/bash", kClusterScript, "start", std::to_string(count), cluster_dir_}, dir_.path(),
                   kClusterTimeoutS);
    EXPECT_EQ(start.exit_code, 0) << "cluster.sh start: " << FirstLine(start.err);
    std::smatch match;
    static const std::regex kBootstrap("bootstrap=(\\S+)");
    if (start.exit_code != 0 || !std::regex_search(start.out, match, kBootstrap)) return "";
    std::cout << "[cluster] " << count << " broker(s) at " << match[1] << " in " << SecondsSince(started)
              << " s" << std::endl;
    return match[1];
  }

  ::testing::AssertionResult Cluster(const std::string& verb, int broker) {
    const auto started = Clock::now();
    const RunResult run =
        RunProcess({"/bin/bash", kClusterScript, verb, cluster_dir_, std::to_string(broker)}, dir_.path(),
                   kClusterTimeoutS);
    if (run.exit_code != 0)
      return ::testing::AssertionFailure() << "cluster.sh " << verb << ": " << FirstLine(run.err);
    std::cout << "[cluster] " << FirstLine(run.out) << " (" << SecondsSince(started) << " s)" << std::endl;
    return ::testing::AssertionSuccess();
  }

  std::string serve_out() const { return dir_.path() + "/serve.out"; }
  std::string serve_err() const { return dir_.path() + "/serve.err"; }
  std::string data_dir() const { return dir_.path() + "/ledger-data"; }

  size_t ServeReadyCount() const {
    const std::string text = ReadFile(serve_err());
    size_t count = 0;
    for (size_t pos = text.find("serve: shard 0 at sequence"); pos != std::string::npos;
         pos = text.find("serve: shard 0 at sequence", pos + 1)) {
      count += 1;
    }
    return count;
  }

  // Starts `ledger serve` against `brokers`; with `wait_ready`, waits until it consumes commands.
  pid_t StartServe(const std::string& brokers, int replication_factor, bool wait_ready) {
    ready_before_last_start_ = ServeReadyCount();
    const pid_t pid =
        Spawn({kLedgerBinary, "serve", "--data", data_dir(), "--brokers", brokers, "--clock", "occurred",
               "--replication-factor", std::to_string(replication_factor), "--allow-unsigned-commands"},
              serve_out(), serve_err());
    serve_pids_.push_back(pid);
    if (!wait_ready) return pid;
    return WaitServeReady(pid) ? pid : -1;
  }

  // Waits until the serve started last consumes commands. Fails the test when it exits or takes too long.
  bool WaitServeReady(pid_t pid) {
    const auto deadline = Clock::now() + seconds(kServeReadyTimeoutS);
    while (ServeReadyCount() <= ready_before_last_start_) {
      if (!Running(pid)) {
        ADD_FAILURE() << "ledger serve exited while starting: " << Tail(ReadFile(serve_err()), 3);
        return false;
      }
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "ledger serve not ready within " << kServeReadyTimeoutS << " s";
        return false;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    return true;
  }

  // The acknowledgement contract (--ack kafka, the default): a result is in Kafka only after its events are.
  // Besides the append times (ExpectExactlyOnce), serve's own log shows it: a publisher that resumes with the
  // results tail beyond the events tail found results in Kafka whose events were not. Prints the figures.
  struct AheadFigures {
    size_t resumes_ahead = 0;  // publisher resumes with results beyond events
    std::string first_resume;
  };
  AheadFigures ReportResumesWithResultsAhead(const std::string& label) {
    AheadFigures figures;
    static const std::regex kResume("resumes after event ([0-9]+) and result ([0-9]+)");
    const std::string log = ReadFile(serve_err());
    size_t resumes = 0;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), kResume); it != std::sregex_iterator();
         ++it) {
      resumes += 1;
      if (std::stoull((*it)[2]) > std::stoull((*it)[1])) {
        if (figures.resumes_ahead++ == 0) figures.first_resume = it->str();
      }
    }
    std::cout << "[" << label << "] publisher_resumes=" << resumes
              << " resumes_with_results_ahead_of_events=" << figures.resumes_ahead
              << (figures.first_resume.empty() ? "" : " (first: \"" + figures.first_resume + "\")")
              << std::endl;
    return figures;
  }

  // Stops serve cleanly (it drains what it committed) and returns the store's last sequence.
  uint64_t StopServeAndReadStore(pid_t pid) {
    EXPECT_TRUE(Running(pid)) << "ledger serve is not running any more";
    WaitServeReady(pid);  // a SIGTERM before serve installs its handlers would just end it
    const int status = Stop(pid, seconds(60));
    EXPECT_EQ(status, 0) << "ledger serve did not stop cleanly on SIGTERM";
    const RunResult events =
        RunProcess({kLedgerBinary, "events", "--data", data_dir(), "--json"}, dir_.path(), 300);
    EXPECT_EQ(events.exit_code, 0) << "ledger events: " << FirstLine(events.err);
    const std::vector<std::string> lines = Lines(events.out);
    if (lines.empty()) return 0;
    const nlohmann::json last = nlohmann::json::parse(lines.back(), nullptr, false);
    EXPECT_FALSE(last.is_discarded());
    EXPECT_EQ(last.value("sequence", uint64_t{0}), lines.size()) << "the store's sequences are not 1..N";
    return lines.size();
  }

  // The leader of `topic` partition 0 as kcat sees it (0: unknown).
  int LeaderOf(const std::string& brokers, const std::string& topic) {
    const RunResult run =
        RunProcess({"/usr/bin/kcat", "-L", "-b", brokers, "-t", topic, "-m", "5"}, dir_.path(), 30);
    std::smatch match;
    static const std::regex kLeader("partition 0, leader (-?[0-9]+), replicas: ([0-9,]+), isrs: ([0-9,]*)");
    if (run.exit_code != 0 || !std::regex_search(run.out, match, kLeader)) return 0;
    std::cout << "[metadata] " << topic << ": leader " << match[1] << ", replicas " << match[2] << ", isrs "
              << match[3] << std::endl;
    return std::stoi(match[1]);
  }

  // Steps of KafkaRealReplicatedClusterSurvivesOneBrokerAndWaitsForQuorum (test 7), in its order.

  // ledger.events is replicated on all three brokers.
  void ExpectEventsReplicatedThreeTimes(const std::string& brokers) {
    const RunResult metadata =
        RunProcess({"/usr/bin/kcat", "-L", "-b", brokers, "-t", kafka::kEventsTopic}, dir_.path(), 30);
    EXPECT_NE(metadata.out.find("replicas: "), std::string::npos) << metadata.out;
    static const std::regex kThreeReplicas("replicas: [0-9]+,[0-9]+,[0-9]+,");
    EXPECT_TRUE(std::regex_search(metadata.out, kThreeReplicas))
        << "ledger.events is not replicated 3 times:\n"
        << metadata.out;
  }

  // Phase 2: broker `first` (the leader of ledger.events) killed; results keep arriving while commands are
  // sent for 20 s more (up to `limit`).
  void KillOneBrokerExpectingResults(int first, ResultsWatcher& watcher, CommandFeed& feed, size_t limit) {
    const double first_killed_at = watcher.now();
    ASSERT_TRUE(Cluster("kill", first));
    const size_t before_phase2 = watcher.count();
    ASSERT_TRUE(feed.SendFor(20, limit));
    const bool phase2_complete = watcher.WaitForCount(feed.sent, seconds(90));
    const ArrivalFigures arrivals = ArrivalsAfter(watcher.arrivals(), first_killed_at);
    const double phase2_end = watcher.now();
    std::cout << "[one-broker-down] killed broker " << first << ": results " << before_phase2 << " -> "
              << watcher.count() << " (commands sent " << feed.sent << "), longest pause between results "
              << arrivals.longest_pause << " s, results 10-20 s after the kill " << arrivals.results_10_to_20s
              << ", phase " << phase2_end - first_killed_at << " s" << std::endl;
    EXPECT_TRUE(phase2_complete) << "with one broker down not every command got its result";
    EXPECT_GT(arrivals.results_10_to_20s, 0u) << "no results 10-20 s after one broker was killed";
    EXPECT_LT(arrivals.longest_pause, 30.0) << "acknowledgements paused too long after one broker was killed";
  }

  // The broker phase 3 kills besides `first` (0: none). The survivor is the leader of ledger.results (where
  // an acknowledgement would show) and, when the same broker leads it, of ledger.commands (so serve can still
  // read the burst).
  int SecondBrokerToKill(const std::string& brokers, int first) {
    LeaderOf(brokers, kafka::kEventsTopic);
    const int commands_leader = LeaderOf(brokers, kafka::kCommandsTopic);
    const int results_leader = LeaderOf(brokers, kafka::kResultsTopic);
    int second = 0;
    for (int candidate = 1; candidate <= 3; ++candidate) {
      if (candidate == first || candidate == results_leader) continue;
      if (second == 0 || candidate != commands_leader) second = candidate;
    }
    return second;
  }

  // Phase 3: broker `second` killed right after a burst of commands was acknowledged by Kafka (replicated to
  // two brokers): with one broker of three up, no result may appear. Sets `*results_after_10s` to the count
  // of results 13 s after the kill.
  void KillSecondBrokerExpectingNoResults(int second, pid_t serve, ResultsWatcher& watcher, CommandFeed& feed,
                                          size_t* results_after_10s) {
    const Workload& workload = feed.workload;
    const size_t burst_from = feed.sent;
    const size_t burst_to = std::min(workload.ids.size(), feed.sent + Scaled(2'000));
    ASSERT_TRUE(SendCommands(feed.sender, workload, burst_from, burst_to));
    feed.sent = burst_to;
    ASSERT_TRUE(Cluster("kill", second));
    std::this_thread::sleep_for(seconds(3));
    const size_t after_grace = watcher.count();
    std::this_thread::sleep_for(seconds(10));
    const size_t after_10s = watcher.count();
    *results_after_10s = after_10s;
    std::set<std::string> seen = watcher.keys();
    size_t burst_acknowledged = 0;
    for (size_t i = burst_from; i < burst_to; ++i) burst_acknowledged += seen.count(workload.ids[i]);
    std::cout << "[two-brokers-down] killed broker " << second << ": results " << after_grace << " -> "
              << after_10s << " in 10 s; burst of " << burst_to - burst_from << " commands, "
              << burst_acknowledged
              << " acknowledged before the quorum was lost; serve committed through sequence "
              << CommittedThrough(ReadFile(serve_err())) << " and waits for Kafka" << std::endl;
    EXPECT_EQ(after_10s, after_grace) << "results were acknowledged while only one of three brokers was up";
    EXPECT_TRUE(Running(serve)) << "ledger serve exited while Kafka lacked replicas";
  }

  // Phase 4: broker `second` back: results arrive again (beyond the `after_10s` seen while it was down); then
  // the rest of the commands, each answered.
  void RestartBrokerAndSendTheRest(int second, pid_t serve, ResultsWatcher& watcher, CommandFeed& feed,
                                   size_t after_10s) {
    const size_t total = feed.workload.ids.size();
    const double restarted_at = watcher.now();
    ASSERT_TRUE(Cluster("restart", second));
    const bool resumed = watcher.WaitForCount(after_10s + 1, seconds(120));
    std::cout << "[quorum-back] broker " << second << " restarted; first new result after "
              << (resumed ? watcher.now() - restarted_at : -1) << " s" << std::endl;
    EXPECT_TRUE(resumed || after_10s == feed.sent) << "results did not resume after a broker returned";
    ASSERT_TRUE(feed.SendFor(1e9, total));
    const bool complete = watcher.WaitForCount(total, seconds(180));
    EXPECT_TRUE(complete) << "results: " << watcher.count() << " of " << total;
    EXPECT_TRUE(Running(serve));
  }

  TempDir dir_;
  std::string cluster_dir_;
  int brokers_count_ = 0;
  std::vector<pid_t> serve_pids_;
  size_t ready_before_last_start_ = 0;
};

// 5. `ledger serve` SIGKILLed at random moments while commands stream in: every event reaches the (real)
// events topic exactly once, in order, and every command gets exactly one result.
TEST_F(KafkaRealTest, KafkaRealServeCrashLoopPublishesExactlyOnce) {
  const std::string brokers = StartCluster(1);
  ASSERT_FALSE(brokers.empty());
  const Workload workload = MakeWorkload(Scaled(20'000), 5);
  pid_t serve = StartServe(brokers, 1, true);
  ASSERT_GT(serve, 0);
  ASSERT_EQ(LeaderOf(brokers, kafka::kEventsTopic), 1) << "serve did not create ledger.events";

  // Stream the commands in batches a little faster than a serve that keeps being killed can take them, so
  // that it always has work, while a killer SIGKILLs it at random moments (in recovery, reading, committing,
  // publishing) and starts it again.
  constexpr size_t kBatches = 20;
  std::atomic<size_t> sent{0};
  std::atomic<bool> feed_failed{false};
  std::thread feeder([&] {
    Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(brokers);
    if (!sender.ok()) {
      feed_failed = true;
      return;
    }
    const size_t batch = (workload.ids.size() + kBatches - 1) / kBatches;
    for (size_t from = 0; from < workload.ids.size(); from += batch) {
      const size_t to = std::min(workload.ids.size(), from + batch);
      if (!SendCommands(**sender, workload, from, to)) {
        feed_failed = true;
        return;
      }
      sent = to;
      std::this_thread::sleep_for(milliseconds(300));
    }
  });
  ResultsWatcher watcher(brokers);
  const uint32_t seed = 20261125;
  std::mt19937 random(seed);
  int kills = 0, kills_mid_stream = 0;
  const auto stream_started = Clock::now();
  while ((watcher.count() < workload.ids.size() || kills < 5) && kills < 60 &&
         SecondsSince(stream_started) < 240) {
    // A random moment: from during recovery (serve takes a few hundred ms to start) to well into processing.
    std::this_thread::sleep_for(milliseconds(100 + random() % 1'400));
    const size_t sent_before = sent;
    const size_t results_before = watcher.count();
    KillHard(serve);
    kills += 1;
    // Mid-stream: commands were waiting for their results when serve died.
    if (results_before < sent_before) kills_mid_stream += 1;
    std::cout << "[kill " << kills << "] at " << SecondsSince(stream_started) << " s: commands sent "
              << sent_before << ", results seen " << results_before << std::endl;
    serve = StartServe(brokers, 1, false);
  }
  feeder.join();
  ASSERT_FALSE(feed_failed) << "could not send the commands";
  // The last serve runs to the end.
  const bool complete = watcher.WaitForCount(workload.ids.size(), seconds(180));
  const size_t starts = static_cast<size_t>(kills) + 1;
  std::cout << "[crash-loop] seed=" << seed << " kills=" << kills << " kills_mid_stream=" << kills_mid_stream
            << " kills_before_ready=" << starts - std::min(starts, ServeReadyCount())
            << " results_seen=" << watcher.count() << " in " << SecondsSince(stream_started) << " s"
            << std::endl;
  EXPECT_TRUE(complete) << "not every command got a result";
  EXPECT_GE(kills, 5);
  EXPECT_GE(kills_mid_stream, 5);
  const uint64_t store_last = StopServeAndReadStore(serve);
  ExpectExactlyOnce("crash-loop", brokers, dir_.path(), workload, store_last);
  ReportResumesWithResultsAhead("crash-loop");  // asserted by KafkaRealResultsAppearOnlyAfterTheirEvents
}

// How often `needle` occurs in `text`.
size_t CountOf(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) count += 1;
  return count;
}

// What the acknowledged result lines say against the events topic: results per command, acknowledged
// sequences missing from the topic, and commands acknowledged more than once. None may be a duplicate.
struct AcknowledgedAudit {
  std::map<std::string, int> per_command;
  size_t lost = 0;
  size_t twice = 0;
};
AcknowledgedAudit AuditAcknowledged(const std::vector<std::string>& acknowledged,
                                    const std::set<uint64_t>& present) {
  AcknowledgedAudit audit;
  for (const std::string& line : acknowledged) {
    const nlohmann::json result = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(result.is_discarded()) << line;
    if (result.is_discarded()) continue;
    audit.per_command[result.value("command_id", "")] += 1;
    EXPECT_NE(result.value("status", ""), "duplicate") << line;
    for (const auto& sequence : result.value("sequences", nlohmann::json::array())) {
      if (!present.count(sequence.get<uint64_t>())) audit.lost += 1;
    }
  }
  for (const auto& [id, count] : audit.per_command) audit.twice += count > 1 ? 1 : 0;
  return audit;
}

// 6. The only broker SIGKILLed mid-stream and restarted from its log: everything `ledger submit --brokers`
// acknowledged is in the final events, nothing is duplicated, and serve waits and resumes by itself.
TEST_F(KafkaRealTest, KafkaRealBrokerKilledAndRestartedLosesNothing) {
  const std::string brokers = StartCluster(1);
  ASSERT_FALSE(brokers.empty());
  const Workload workload = MakeWorkload(Scaled(15'000), 6);
  const pid_t serve = StartServe(brokers, 1, true);
  ASSERT_GT(serve, 0);
  ResultsWatcher watcher(brokers);

  // Submit in batches, one `ledger submit --brokers` each, each batch larger than a serve group (2,048
  // commands) so that serve is mid-batch when the broker dies. A batch whose submit could not even start (the
  // broker down) is submitted again: nothing was sent in that case.
  constexpr size_t kBatches = 3;
  const size_t batch = (workload.ids.size() + kBatches - 1) / kBatches;
  std::atomic<size_t> batches_done{0};
  std::vector<std::string> acknowledged;  // every result line submit printed
  std::atomic<int> submit_failures{0}, submit_retries{0};
  std::string failure;
  std::thread feeder([&] {
    for (size_t from = 0, index = 0; from < workload.ids.size(); from += batch, ++index) {
      const size_t to = std::min(workload.ids.size(), from + batch);
      const std::string file = dir_.path() + "/batch-" + std::to_string(index) + ".jsonl";
      {
        std::ofstream out(file);
        for (size_t i = from; i < to; ++i) out << workload.lines[i] << "\n";
      }
      for (int attempt = 0;; ++attempt) {
        const RunResult run =
            RunProcess({kLedgerBinary, "submit", "--brokers", brokers, "--timeout-ms", "150000", file},
                       dir_.path(), 200);
        const std::vector<std::string> lines = Lines(run.out);
        acknowledged.insert(acknowledged.end(), lines.begin(), lines.end());
        if (run.exit_code == 0) break;
        // Only a submit that failed before sending anything (it reads the results' watermark first) may be
        // repeated without duplicating commands.
        const bool nothing_sent = lines.empty() && run.err.find("watermarks of") != std::string::npos;
        if (!nothing_sent || attempt >= 10) {
          submit_failures += 1;
          failure = "batch " + std::to_string(index) + ": exit " + std::to_string(run.exit_code) + ": " +
                    FirstLine(run.err) + " after " + std::to_string(lines.size()) + " results";
          break;
        }
        submit_retries += 1;
        std::this_thread::sleep_for(milliseconds(500));
      }
      batches_done = index + 1;
    }
  });
  // Kill the broker as soon as the second batch's first group is acknowledged (serve is then committing and
  // publishing the next groups), keep it down for 5 s, restart it from its log.
  const auto wait_started = Clock::now();
  while (watcher.count() <= batch && SecondsSince(wait_started) < 300)
    std::this_thread::sleep_for(milliseconds(2));
  const auto outage_started = Clock::now();
  const size_t batches_at_kill = batches_done;
  const size_t results_at_kill = watcher.count();
  EXPECT_TRUE(Cluster("kill", 1));
  std::this_thread::sleep_for(seconds(5));
  EXPECT_TRUE(Cluster("restart", 1));
  const double outage_s = SecondsSince(outage_started);
  // serve resumes by itself: the next result after the broker answers again.
  const double restarted_at = watcher.now();
  const size_t results_at_restart = watcher.count();
  const bool resumed =
      results_at_restart == workload.ids.size() || watcher.WaitForCount(results_at_restart + 1, seconds(120));
  const double resumed_after_s = resumed ? watcher.now() - restarted_at : -1;
  feeder.join();
  EXPECT_TRUE(resumed) << "no result within 120 s after the broker came back";
  EXPECT_EQ(submit_failures.load(), 0) << failure;

  EXPECT_TRUE(Running(serve)) << "ledger serve did not survive the broker's restart";
  const std::string serve_log = ReadFile(serve_err());
  const size_t waits = CountOf(serve_log, "waiting for Kafka");
  const uint64_t store_last = StopServeAndReadStore(serve);

  // Every acknowledged result is in the final events topic, with the same transaction.
  const TopicView events = ReadWithKcat(brokers, kafka::kEventsTopic, dir_.path());
  const std::set<uint64_t> present(events.sequences.begin(), events.sequences.end());
  const AcknowledgedAudit audit = AuditAcknowledged(acknowledged, present);
  const std::map<std::string, int>& acknowledged_per_command = audit.per_command;
  const size_t lost = audit.lost, acknowledged_twice = audit.twice;
  std::cout << "[broker-restart] killed during batch " << batches_at_kill + 1 << " of " << kBatches
            << " with " << results_at_kill << " results seen (" << results_at_restart
            << " when it was back); outage_s=" << outage_s
            << " first_result_after_restart_s=" << resumed_after_s
            << " submit_retries=" << submit_retries.load() << " acknowledged=" << acknowledged.size()
            << " acknowledged_lost=" << lost << " acknowledged_twice=" << acknowledged_twice
            << " serve_waits_logged=" << waits << std::endl;
  EXPECT_EQ(acknowledged.size(), workload.ids.size());
  EXPECT_EQ(acknowledged_per_command.size(), workload.ids.size());
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(acknowledged_twice, 0u);
  ExpectExactlyOnce("broker-restart", brokers, dir_.path(), workload, store_last);
  ReportResumesWithResultsAhead("broker-restart");  // asserted by KafkaRealResultsAppearOnlyAfterTheirEvents
}

// 7. Three brokers, replication factor 3, min.insync.replicas=2: one broker lost, the ledger keeps
// acknowledging; two lost, it acknowledges nothing (nothing unreplicated is acknowledged) and resumes when
// one returns; at the end every command has exactly one result and every event is there exactly once.
TEST_F(KafkaRealTest, KafkaRealReplicatedClusterSurvivesOneBrokerAndWaitsForQuorum) {
  const std::string brokers = StartCluster(3);
  ASSERT_FALSE(brokers.empty());
  EXPECT_NE(ReadFile(cluster_dir_ + "/broker-1/server.properties").find("min.insync.replicas=2"),
            std::string::npos);
  const Workload workload = MakeWorkload(Scaled(12'000), 7);
  const pid_t serve = StartServe(brokers, 3, true);
  ASSERT_GT(serve, 0);
  ExpectEventsReplicatedThreeTimes(brokers);

  ResultsWatcher watcher(brokers);
  Result<std::unique_ptr<kafka::RecordSender>> opened = kafka::RecordSender::Open(brokers);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  CommandFeed feed{**opened, workload};
  const size_t phase_limit = workload.ids.size() * 3 / 5;

  // Phase 1: three brokers.
  ASSERT_TRUE(feed.SendFor(5, phase_limit / 4));
  ASSERT_TRUE(watcher.WaitForCount(feed.sent, seconds(60))) << "results did not arrive with three brokers";

  // Phase 2: the leader of ledger.events killed; results keep arriving.
  const int first = LeaderOf(brokers, kafka::kEventsTopic);
  ASSERT_GT(first, 0);
  ASSERT_NO_FATAL_FAILURE(KillOneBrokerExpectingResults(first, watcher, feed, phase_limit));

  // Phase 3: a second broker killed right after a burst of commands was acknowledged by Kafka (replicated to
  // two brokers); the survivor leads ledger.results, where an acknowledgement would show.
  const int second = SecondBrokerToKill(brokers, first);
  ASSERT_GT(second, 0);
  size_t after_10s = 0;
  ASSERT_NO_FATAL_FAILURE(KillSecondBrokerExpectingNoResults(second, serve, watcher, feed, &after_10s));

  // Phase 4: one broker back: results arrive again; then the rest of the commands.
  ASSERT_NO_FATAL_FAILURE(RestartBrokerAndSendTheRest(second, serve, watcher, feed, after_10s));
  const uint64_t store_last = StopServeAndReadStore(serve);
  ExpectExactlyOnce("replicated", brokers, dir_.path(), workload, store_last);
  ReportResumesWithResultsAhead("replicated");  // asserted by KafkaRealResultsAppearOnlyAfterTheirEvents
}

// The acknowledgement contract of `--ack kafka` (the default): a result on ledger.results, which `ledger
// submit
// --brokers` prints as an acknowledgement, reaches Kafka only after the events it reports. Checked from the
// append times (LogAppendTime) of both topics and from serve's resumes. First half: plain operation with
// clean restarts of serve between batches (each starts a new producer session); second half: after the broker
// was killed and restarted (serve keeps its producer).
TEST_F(KafkaRealTest, KafkaRealResultsAppearOnlyAfterTheirEvents) {
  const std::string brokers = StartCluster(1);
  ASSERT_FALSE(brokers.empty());
  const Workload workload = MakeWorkload(Scaled(6'000), 8);
  pid_t serve = StartServe(brokers, 1, true);
  ASSERT_GT(serve, 0);
  // serve created the topics: ledger.events keeps every record, as the cluster describes it.
  EXPECT_NE(ReadFile(serve_err()).find("ledger.events keeps every record"), std::string::npos)
      << Tail(ReadFile(serve_err()), 10);
  ResultsWatcher watcher(brokers);
  Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(brokers);
  ASSERT_TRUE(sender.ok()) << sender.status().ToString();
  constexpr size_t kBatches = 20;
  const size_t batch = (workload.ids.size() + kBatches - 1) / kBatches;
  int sessions = 1;
  for (size_t from = 0, index = 0; from < workload.ids.size(); from += batch, ++index) {
    const size_t to = std::min(workload.ids.size(), from + batch);
    ASSERT_TRUE(SendCommands(**sender, workload, from, to));
    ASSERT_TRUE(watcher.WaitForCount(to, seconds(120))) << "results: " << watcher.count() << " of " << to;
    if (index + 1 < kBatches / 2) {
      ASSERT_EQ(Stop(serve, seconds(60)), 0) << "ledger serve did not stop cleanly on SIGTERM";
      serve = StartServe(brokers, 1, true);
      ASSERT_GT(serve, 0);
      sessions += 1;
    } else if (index + 1 == kBatches / 2) {
      ASSERT_TRUE(Cluster("kill", 1));
      std::this_thread::sleep_for(seconds(2));
      ASSERT_TRUE(Cluster("restart", 1));
    }
  }
  std::cout << "[ack-order] serve sessions=" << sessions << ", broker restarted after batch " << kBatches / 2
            << std::endl;
  const uint64_t store_last = StopServeAndReadStore(serve);
  std::string example;
  const uint64_t appended_before =
      ExpectExactlyOnce("ack-order", brokers, dir_.path(), workload, store_last, &example);
  EXPECT_EQ(appended_before, 0u) << "Kafka appended results before the events they acknowledge: " << example;
  const AheadFigures ahead = ReportResumesWithResultsAhead("ack-order");
  EXPECT_EQ(ahead.resumes_ahead, 0u) << "Kafka held results whose events it did not have: "
                                     << ahead.first_resume;
}

// Creates `topic` with one partition and the given retention.ms through librdkafka's admin API, as an
// operator's tool would: the ledger's own topic code plays no part.
::testing::AssertionResult CreateTopicByHand(const std::string& brokers, const std::string& topic,
                                             const std::string& retention_ms) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), error, sizeof error) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return ::testing::AssertionFailure() << error;
  }
  rd_kafka_t* client = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (client == nullptr) return ::testing::AssertionFailure() << error;
  rd_kafka_NewTopic_t* new_topic = rd_kafka_NewTopic_new(topic.c_str(), 1, 1, error, sizeof error);
  rd_kafka_NewTopic_set_config(new_topic, "retention.ms", retention_ms.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(client);
  rd_kafka_CreateTopics(client, &new_topic, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 60'000);
  ::testing::AssertionResult result = ::testing::AssertionSuccess();
  if (event == nullptr) {
    result = ::testing::AssertionFailure() << "create " << topic << ": no answer in 60 s";
  } else {
    size_t count = 0;
    const rd_kafka_topic_result_t** topics =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR || count != 1 ||
        rd_kafka_topic_result_error(topics[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      result = ::testing::AssertionFailure() << "create " << topic << " failed";
    }
    rd_kafka_event_destroy(event);
  }
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(new_topic);
  rd_kafka_destroy(client);
  return result;
}

// Goal: ledger.events is the history auditors replay and a lost shard is rebuilt from, so serve refuses a
// cluster whose ledger.events would expire records (here one created by hand with a 24-hour retention),
// before it opens its store; and a topic serve creates itself keeps everything, which the same check
// confirms.
TEST_F(KafkaRealTest, KafkaRealServeRefusesAnEventsTopicThatWouldExpireHistory) {
  const std::string brokers = StartCluster(1);
  ASSERT_FALSE(brokers.empty());
  ASSERT_TRUE(CreateTopicByHand(brokers, kafka::kEventsTopic, "86400000"));
  const RunResult refused =
      RunProcess({kLedgerBinary, "serve", "--data", data_dir(), "--brokers", brokers}, dir_.path(), 120);
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("ledger.events would drop published events: retention.ms=86400000"),
            std::string::npos)
      << refused.err;
  EXPECT_NE(access(data_dir().c_str(), F_OK), 0) << "a refused serve must not create its store";
}

// 8. Two shards on the replicated cluster (3 brokers, RF 3): `submit --brokers --shards 2` routes every
// command to its owner; one shard's serve is SIGKILLed and its data folder lost; `ledger restore
// --from-kafka` rebuilds it from its partition with the same balances, and serve resumes on it answering only
// what is new.
// Shard `shard` is lost (its serve `pid` SIGKILLed, its folder `data_dir` removed) and restored from its
// partition with the balances it had.
void LoseAndRestoreShard(const std::string& brokers, const std::string& scratch, const std::string& data_dir,
                         uint32_t shard, pid_t pid, const std::string& ledger_toml) {
  const RunResult balances_before =
      RunProcess({kLedgerBinary, "balance", "--data", data_dir, "--all"}, scratch, 120);
  KillHard(pid);
  std::filesystem::remove_all(data_dir);
  // The operator brings the shard's configuration (its keys: restore verifies with the public key).
  std::filesystem::create_directories(data_dir);
  WriteFile(data_dir + "/ledger.toml", ledger_toml);
  const RunResult restored =
      RunProcess({kLedgerBinary, "restore", "--data", data_dir, "--from-kafka", "--brokers", brokers,
                  "--shard", std::to_string(shard), "--accept-unsigned-tail", "Grace Hopper"},
                 scratch, 300);
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  std::cout << "[restore] " << FirstLine(restored.out) << std::endl;
  const RunResult balances_after =
      RunProcess({kLedgerBinary, "balance", "--data", data_dir, "--all"}, scratch, 120);
  EXPECT_EQ(balances_after.out, balances_before.out);
}

// Every command of `commands` answered exactly once over the `shards` results partitions (the merchant `m1`
// once per shard), and each customer's debit balance on its own shard as `expected`.
void ExpectAnsweredOnceWithBalances(const std::string& brokers, const std::string& scratch,
                                    const std::string* data, uint32_t shards, size_t commands,
                                    const std::map<std::string, int64_t>& expected) {
  std::map<std::string, int> answered;
  for (uint32_t shard = 0; shard < shards; ++shard) {
    for (const kafka::Record& record : ReadTopic(brokers, kafka::kResultsTopic, shard)) {
      // A signed checkpoint (serve writes one when it stops) has a result of its own, no command's.
      if (!record.key.starts_with("checkpoint:")) answered[record.key] += 1;
    }
  }
  for (const auto& [key, count] : answered)
    EXPECT_EQ(count, key == "m1" ? static_cast<int>(shards) : 1) << key;
  EXPECT_EQ(answered.size(), commands);
  for (const auto& [customer, balance_minor] : expected) {
    const RunResult balance = RunProcess({kLedgerBinary, "balance", "--data",
                                          data[ShardOfKey(customer, shards)], customer + ":debit", "--json"},
                                         scratch, 120);
    EXPECT_NE(balance.out.find("\"balance_minor\":" + std::to_string(balance_minor)), std::string::npos)
        << customer << ": " << balance.out;
  }
}

// Four shards on the replicated cluster, payments crossing between them as legs. Phase one: every command
// answered once. A lost shard (serve SIGKILLed, folder gone) is restored from its partition with the same
// balances. Phase two: while payments travel, a broker is SIGKILLed and restarted, then another shard's
// serve: every command is still answered exactly once, on its owner's partition, and every customer's money
// is what one shard would hold (each has enough for every payment, so no outcome depends on timing).
TEST_F(KafkaRealTest, KafkaRealFourShardsLegsSurviveKillsAndALostShardIsRestored) {
  constexpr uint32_t kShards = 4;
  const std::string brokers = StartCluster(3);
  ASSERT_FALSE(brokers.empty());
  std::string data[kShards], out[kShards], err[kShards];
  pid_t serve[kShards];
  const auto start_serve = [&](uint32_t shard) {
    const std::string marker = "serve: shard " + std::to_string(shard) + " at sequence";
    const size_t ready_before = CountOf(ReadFile(err[shard]), marker);
    serve[shard] = Spawn({kLedgerBinary, "serve", "--data", data[shard], "--brokers", brokers, "--shard",
                          std::to_string(shard), "--shards", std::to_string(kShards), "--replication-factor",
                          "3", "--clock", "occurred", "--allow-unsigned-commands"},
                         out[shard], err[shard]);
    serve_pids_.push_back(serve[shard]);
    for (const auto deadline = Clock::now() + seconds(kServeReadyTimeoutS);
         CountOf(ReadFile(err[shard]), marker) <= ready_before;) {
      if (!Running(serve[shard]) || Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return true;
  };
  // One key pair for the ledger: every shard signs its legs and checkpoints with it and verifies the legs.
  const RunResult keygen =
      RunProcess({kLedgerBinary, "keygen", "--out", dir_.path() + "/keys"}, dir_.path(), 60);
  ASSERT_EQ(keygen.exit_code, 0) << keygen.err;
  const std::string ledger_toml = "[audit]\nprivate_key = \"" + dir_.path() + "/keys/ledger-signing.key\"\n" +
                                  "public_key = \"" + dir_.path() + "/keys/ledger-signing.pub\"\n";
  for (uint32_t shard = 0; shard < kShards; ++shard) {
    data[shard] = dir_.path() + "/shard" + std::to_string(shard);
    out[shard] = data[shard] + ".out";
    err[shard] = data[shard] + ".err";
    std::filesystem::create_directories(data[shard]);
    WriteFile(data[shard] + "/ledger.toml", ledger_toml);
    ASSERT_TRUE(start_serve(shard)) << Tail(ReadFile(err[shard]), 5);
  }
  // Customers on every shard, each paying orders of any shard.
  std::string commands = OpenMerchant("m1", "M1", 0).dump() + "\n";
  std::vector<std::string> customers;
  std::map<std::string, int64_t> expected;  // each customer's debit balance
  int crossing = 0;
  const auto pay = [&](const std::string& customer, const std::string& order_no, int64_t amount) {
    crossing += ShardOfKey(OrderKey("M1", order_no), kShards) != ShardOfKey(customer, kShards);
    expected[customer] -= amount;
    return Pay("M1", order_no, customer, amount).dump() + "\n";
  };
  for (int c = 0; c < 12; ++c) {
    const std::string customer = "K" + std::to_string(c);
    customers.push_back(customer);
    commands += OpenAccount("open-" + customer, customer).dump() + "\n";
    commands += Deposit("dep-" + customer, customer + ":debit", 100'000).dump() + "\n";
    expected[customer] += 100'000;
    for (int order = 0; order < 3; ++order)
      commands += pay(customer, customer + "-" + std::to_string(order), 1'000 + 100 * order);
  }
  const std::string file = dir_.path() + "/commands.jsonl";
  WriteFile(file, commands);
  const RunResult submitted =
      RunProcess({kLedgerBinary, "submit", "--brokers", brokers, "--shards", std::to_string(kShards), file},
                 dir_.path(), 300);
  ASSERT_EQ(submitted.exit_code, 0) << FirstLine(submitted.err);
  const std::vector<std::string> answers = Lines(submitted.out);
  ASSERT_EQ(answers.size(), Lines(commands).size() + kShards - 1);  // the merchant is answered by every shard
  for (const std::string& line : answers) EXPECT_NE(line.find("\"accepted\""), std::string::npos) << line;
  std::cout << "[figures] phase one: " << crossing << " of " << customers.size() * 3
            << " payments crossed shards" << std::endl;

  // Shard 1 is lost: its serve killed, its folder gone (its configuration is the defaults).
  ASSERT_NO_FATAL_FAILURE(LoseAndRestoreShard(brokers, dir_.path(), data[1], 1, serve[1], ledger_toml));
  ASSERT_TRUE(start_serve(1)) << Tail(ReadFile(err[1]), 5);

  // Phase two: more payments of every customer, while broker 2 and shard 2's serve are SIGKILLed.
  std::string more;
  for (const std::string& customer : customers) {
    for (int order = 3; order < 43; ++order)
      more += pay(customer, customer + "-" + std::to_string(order), 500 + order);
  }
  WriteFile(file, more);
  const pid_t submit = Spawn({kLedgerBinary, "submit", "--brokers", brokers, "--shards",
                              std::to_string(kShards), "--timeout-ms", "240000", file},
                             dir_.path() + "/more.out", dir_.path() + "/more.err");
  const auto answered_so_far = [&]() { return Lines(ReadFile(dir_.path() + "/more.out")).size(); };
  std::this_thread::sleep_for(milliseconds(300));
  std::cout << "[figures] phase two: " << answered_so_far() << " of " << Lines(more).size()
            << " answered when broker 2 was killed" << std::endl;
  ASSERT_TRUE(Cluster("kill", 2));
  std::this_thread::sleep_for(seconds(2));  // the stream goes on with two brokers
  ASSERT_TRUE(Cluster("restart", 2));
  std::cout << "[figures] phase two: " << answered_so_far() << " answered when shard 2's serve was killed"
            << std::endl;
  KillHard(serve[2]);
  ASSERT_TRUE(start_serve(2)) << Tail(ReadFile(err[2]), 5);
  ASSERT_EQ(WaitFor(submit, seconds(300)), 0) << FirstLine(ReadFile(dir_.path() + "/more.err"));
  for (const std::string& line : Lines(ReadFile(dir_.path() + "/more.out")))
    EXPECT_NE(line.find("\"accepted\""), std::string::npos) << line;
  EXPECT_EQ(Lines(ReadFile(dir_.path() + "/more.out")).size(), Lines(more).size());
  for (uint32_t shard = 0; shard < kShards; ++shard) EXPECT_EQ(Stop(serve[shard], seconds(60)), 0);

  ExpectAnsweredOnceWithBalances(brokers, dir_.path(), data, kShards,
                                 Lines(commands).size() + Lines(more).size(), expected);
}

}  // namespace
}  // namespace ledger::testing
