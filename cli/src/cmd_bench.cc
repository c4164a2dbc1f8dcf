// `ledger bench`: an end-to-end load generator through the path real commands take (JSON parse, validation,
// group commit with a synced WAL, publication to Kafka before the acknowledgement). The workload streams: no
// command list is held in memory, so peak RSS measures the ledger, not the generator.
//
// Mix of the measured phase (per command, decided by a hash of its index so set-up can prepare for it):
// 70% card payments, 15% payments with points, 10% with a coupon, 3% reversals, 2% refunds; about 1% of the
// payments break a limit (password-free over its per-payment limit) and are rejected. Set-up (merchants,
// accounts, deposits, points, coupons) runs first and is not measured.
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

#include "cli_common.h"
#include "cli/commands.h"
#include "ledger/command.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"
#include "ledger/ledger.h"
#include "core/time.h"

namespace ledger::cli {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kOffsetMinutes = 8 * 60;
constexpr int64_t kBenchDay = 20261201;
// Synthetic time between two measured commands: 10,000,000 commands span about 1.2 days of ledger time.
constexpr int64_t kCommandSpacingNs = 10'000'000;
constexpr int64_t kPublishDeadlineMs = 120'000;

uint64_t Mix(uint64_t x) {  // splitmix64: a well-spread hash of the command index
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

enum class Kind { kCard, kPoints, kCoupon, kReversal, kRefund, kOverLimit };

class Workload {
 public:
  Workload(int64_t commands, int customers, int merchants, uint64_t seed)
      : commands_(commands), customers_(customers), merchants_(merchants), seed_(seed) {}

  Kind KindOf(int64_t i) const {
    const uint64_t roll = Mix(seed_ ^ static_cast<uint64_t>(i)) % 1000;
    if (roll < 10) return Kind::kOverLimit;
    if (roll < 700) return Kind::kCard;
    if (roll < 850) return Kind::kPoints;
    if (roll < 950) return Kind::kCoupon;
    if (roll < 980) return Kind::kReversal;
    return Kind::kRefund;
  }

  // Set-up commands, one at a time; false when done.
  bool NextSetup(std::string* line) {
    using nlohmann::json;
    const int64_t at = StartNs() - kNanosPerHour;
    const std::string when = FormatIso8601(at, kOffsetMinutes);
    while (true) {
      if (setup_merchant_ < merchants_) {
        const std::string m = Merchant(setup_merchant_++);
        *line = json{{"type", "open_merchant"}, {"command_id", "m-" + m}, {"merchant", m}, {"name", m}, {"fee_bps", 60},
                     {"occurred_at", when}}.dump();
        return true;
      }
      if (setup_customer_ < customers_ * 3) {
        const int step = setup_customer_ % 3;
        const std::string c = Customer(setup_customer_++ / 3);
        if (step == 0) {
          *line = json{{"type", "open_account"}, {"command_id", "a-" + c}, {"customer", c}, {"account", c + ":debit"},
                       {"kind", "debit_card"}, {"occurred_at", when}}.dump();
        } else if (step == 1) {
          *line = json{{"type", "deposit"}, {"command_id", "d-" + c}, {"account", c + ":debit"},
                       {"amount_minor", 1'000'000'000}, {"occurred_at", when}}.dump();
        } else {
          *line = json{{"type", "award_points"}, {"command_id", "p-" + c}, {"customer", c}, {"points", 100'000'000},
                       {"occurred_at", when}}.dump();
        }
        return true;
      }
      while (setup_coupon_scan_ < commands_ && KindOf(setup_coupon_scan_) != Kind::kCoupon) ++setup_coupon_scan_;
      if (setup_coupon_scan_ < commands_) {
        const int64_t i = setup_coupon_scan_++;
        *line = json{{"type", "issue_coupon"}, {"command_id", "c-" + std::to_string(i)}, {"coupon", "CP" + std::to_string(i)},
                     {"customer", CustomerOf(i)}, {"value_minor", 500}, {"min_spend_minor", 0}, {"funded_by", "bank"},
                     {"expires_at", "2027-12-31T23:59:59+08:00"}, {"occurred_at", when}}.dump();
        return true;
      }
      return false;
    }
  }

  // The measured command i.
  std::string Measured(int64_t i) const {
    using nlohmann::json;
    const std::string when = FormatIso8601(StartNs() + i * kCommandSpacingNs, kOffsetMinutes);
    const Kind kind = KindOf(i);
    if (kind == Kind::kReversal || kind == Kind::kRefund) {
      // The most recent plain card payment a few commands back (a reversal may meet one already reversed or
      // refunded: a realistic rejection).
      int64_t target = i - 5;
      while (target >= 0 && KindOf(target) != Kind::kCard && target > i - 40) --target;
      if (target < 0 || KindOf(target) != Kind::kCard) target = std::max<int64_t>(0, i - 5);
      const std::string merchant = MerchantOf(target), order = "B" + std::to_string(target);
      if (kind == Kind::kReversal) {
        return json{{"type", "reverse"}, {"command_id", "rv-" + std::to_string(i)}, {"merchant", merchant},
                    {"merchant_order_no", order}, {"reason", "bench"}, {"occurred_at", when}}.dump();
      }
      return json{{"type", "refund"}, {"command_id", "rf-" + std::to_string(i)}, {"merchant", merchant},
                  {"merchant_order_no", order}, {"refund_no", "RF" + std::to_string(i)}, {"amount_minor", AmountOf(target) / 2},
                  {"occurred_at", when}}.dump();
    }
    static const char* kMedia[] = {"u_shield", "password_device", "fingerprint", "sms", "otp_card"};
    const std::string customer = CustomerOf(i);
    json pay = {{"type", "pay"}, {"command_id", "py-" + std::to_string(i)}, {"merchant", MerchantOf(i)},
                {"merchant_order_no", "B" + std::to_string(i)}, {"customer", customer}, {"funding", "own_account"},
                {"account", customer + ":debit"}, {"channel", "b2c_h5"},
                {"medium", kMedia[Mix(seed_ + 7 * static_cast<uint64_t>(i)) % 5]},
                {"order_amount_minor", AmountOf(i)}, {"occurred_at", when}};
    if (kind == Kind::kPoints) pay["points"] = AmountOf(i) / 5;
    if (kind == Kind::kCoupon) pay["coupon"] = "CP" + std::to_string(i);
    if (kind == Kind::kOverLimit) {
      pay["medium"] = "password_free";
      pay["order_amount_minor"] = 200'000;  // above password-free's 1,000.00 per payment
    }
    return pay.dump();
  }

 private:
  int64_t StartNs() const { return LocalMidnightUtcNs(kBenchDay, kOffsetMinutes) + 8 * kNanosPerHour; }
  int64_t AmountOf(int64_t i) const { return 1'000 + static_cast<int64_t>(Mix(seed_ * 31 + static_cast<uint64_t>(i)) % 19'000); }
  std::string CustomerOf(int64_t i) const { return Customer(static_cast<int>(Mix(seed_ + static_cast<uint64_t>(i) * 13) % customers_)); }
  std::string MerchantOf(int64_t i) const { return Merchant(static_cast<int>(i % merchants_)); }
  static std::string Customer(int c) { return "BC" + std::to_string(c); }
  static std::string Merchant(int m) { return "BM" + std::to_string(m); }

  int64_t commands_;
  int customers_, merchants_;
  uint64_t seed_;
  int setup_merchant_ = 0, setup_customer_ = 0;
  int64_t setup_coupon_scan_ = 0;
};

// Generates and parses the measured commands ahead of the writer, on its own thread, through a bounded queue:
// the writer thread only validates and stages (as `serve` would with parsing on its consumer thread), and the
// generator's own JSON writing stays off the measured path.
class Feeder {
 public:
  Feeder(const Workload& workload, int64_t count) : thread_([this, &workload, count] { Run(workload, count); }) {}
  ~Feeder() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  // The next command in order (blocks until it is parsed).
  Result<ParsedCommand> Take() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return !ready_.empty(); });
    Result<ParsedCommand> next = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
    return next;
  }

 private:
  static constexpr size_t kAheadMax = 4096;  // bounds the queue: two groups

  void Run(const Workload& workload, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      Result<ParsedCommand> parsed = ParseCommandJson(workload.Measured(i));
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [this] { return stopping_ || ready_.size() < kAheadMax; });
      if (stopping_) return;
      ready_.push_back(std::move(parsed));
      changed_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Result<ParsedCommand>> ready_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

// Latencies in microseconds, log-bucketed (about 1.5% wide), so 10,000,000 samples take a few kilobytes.
class LatencyHistogram {
 public:
  void Record(int64_t micros) {
    micros = std::max<int64_t>(micros, 0);
    buckets_[Bucket(micros)] += 1;
    count_ += 1;
    max_ = std::max(max_, micros);
  }
  // The upper bound of the bucket holding quantile q (0..1), in microseconds.
  int64_t Quantile(double q) const {
    if (count_ == 0) return 0;
    const int64_t rank = static_cast<int64_t>(std::ceil(q * static_cast<double>(count_)));
    int64_t seen = 0;
    for (size_t b = 0; b < buckets_.size(); ++b) {
      seen += buckets_[b];
      if (seen >= rank) return std::min(UpperBound(b), max_);
    }
    return max_;
  }
  int64_t max() const { return max_; }
  int64_t count() const { return count_; }

 private:
  static constexpr int kSubBuckets = 64;
  static size_t Bucket(int64_t v) {
    if (v < kSubBuckets) return static_cast<size_t>(v);
    const int exponent = 63 - __builtin_clzll(static_cast<unsigned long long>(v)) - 5;  // v >> exponent in [32, 64)
    return static_cast<size_t>(kSubBuckets + (exponent - 1) * 32 + ((v >> exponent) - 32));
  }
  static int64_t UpperBound(size_t b) {
    if (b < kSubBuckets) return static_cast<int64_t>(b);
    const size_t over = b - kSubBuckets;
    const int exponent = static_cast<int>(over / 32) + 1;
    return ((static_cast<int64_t>(over % 32) + 33) << exponent) - 1;
  }
  std::array<int64_t, kSubBuckets + 60 * 32> buckets_{};
  int64_t count_ = 0;
  int64_t max_ = 0;
};

int64_t WrittenBytes() {  // bytes this process caused to be written to storage (/proc/self/io)
  std::ifstream io("/proc/self/io");
  std::string name;
  int64_t value = 0;
  while (io >> name >> value) {
    if (name == "write_bytes:") return value;
  }
  return 0;
}

double PeakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

double CurrentRssMiB() {
  std::ifstream status("/proc/self/status");
  std::string name;
  while (status >> name) {
    if (name == "VmRSS:") {
      double kib = 0;
      status >> kib;
      return kib / 1024.0;
    }
    status.ignore(1 << 16, '\n');
  }
  return 0;
}

// One `--progress` line on stderr: how far, how fast lately, and where the memory is.
void ReportProgress(const Ledger& ledger, Clock::duration elapsed, int64_t commands_done, int64_t recent_commands,
                    Clock::duration recent) {
  const StoreMemory memory = ledger.store().Memory();
  const double recent_seconds = std::chrono::duration<double>(recent).count();
  constexpr double kMiB = 1 << 20;
  std::fprintf(stderr,
               "bench: %.0f s: %lld commands, %.0f commands/s in the last %.0f s, RSS %.1f MiB (memtables %.1f, "
               "block cache %.1f of which pinned %.1f, table readers %.1f, state cache %.1f)\n",
               std::chrono::duration<double>(elapsed).count(), static_cast<long long>(commands_done),
               static_cast<double>(recent_commands) / recent_seconds, recent_seconds, CurrentRssMiB(), memory.memtables / kMiB, memory.block_cache / kMiB, memory.block_cache_pinned / kMiB,
               memory.table_readers / kMiB, ledger.state_cache_bytes() / kMiB);
}

}  // namespace

Runner AddBench(CLI::App& app) {
  struct Args {
    std::string data_dir;
    int64_t commands = 200'000;
    int customers = 20'000;
    int merchants = 500;
    double rate = 0;
    int closed_loop = 0;
    std::string kafka = "embedded";
    std::string sync = "on";
    uint64_t seed = 1;
    bool json = false;
    double progress_seconds = 0;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->data_dir, "a fresh data folder (must not exist or be empty)")->required();
  app.add_option("--commands", args->commands, "measured commands")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}));
  app.add_option("--customers", args->customers, "customers")->capture_default_str()->check(CLI::Range(1, 10'000'000));
  app.add_option("--merchants", args->merchants, "merchants")->capture_default_str()->check(CLI::Range(1, 1'000'000));
  auto* rate = app.add_option("--rate", args->rate, "open loop: offer this many commands per second");
  auto* closed = app.add_option("--closed-loop", args->closed_loop, "closed loop: K commands outstanding (default: two groups, one staging while one commits)")
                     ->check(CLI::Range(1, 1'000'000));
  rate->excludes(closed);
  app.add_option("--kafka", args->kafka, "none, embedded, or a broker list")->capture_default_str();
  app.add_option("--sync", args->sync, "on: fsync the WAL at every group commit; off: benchmark only")
      ->capture_default_str()->check(CLI::IsMember({"on", "off"}));
  app.add_option("--seed", args->seed, "workload seed")->capture_default_str();
  app.add_flag("--json", args->json, "one JSON object instead of the text report");
  app.add_option("--progress", args->progress_seconds,
                 "every this many seconds, one line on stderr: commands done, rate since the last line, RSS")
      ->check(CLI::Range(0.0, 3600.0));
  return [args]() {
    std::error_code error;
    if (std::filesystem::exists(args->data_dir, error) && !std::filesystem::is_empty(args->data_dir, error)) {
      return Fail(kExitBadInput, "--data " + args->data_dir + " is not empty; bench writes into a fresh folder");
    }
    if (args->rate < 0) return Fail(kExitBadInput, "--rate must be positive");
    WriteOptions write;
    write.data_dir = args->data_dir;
    write.clock = "occurred";  // the synthetic timeline, whatever the wall clock says
    write.no_sync = args->sync == "off";
    Result<LedgerOptions> options = MakeLedgerOptions(write);
    if (!options.ok()) return Fail(kExitBadInput, options.status().message());
    const size_t group_max = options->config.group_commands_max;
    const size_t outstanding = args->closed_loop > 0 ? static_cast<size_t>(args->closed_loop) : 2 * group_max;
    Result<std::unique_ptr<Ledger>> opened = Ledger::Open(*options);
    if (!opened.ok()) return Fail(ExitCodeFor(opened.status()), opened.status().ToString());
    Ledger& ledger = **opened;

    std::unique_ptr<kafka::EmbeddedBroker> embedded;
    std::string brokers = args->kafka == "none" ? "" : args->kafka;
    if (args->kafka == "embedded") {
      Result<std::unique_ptr<kafka::EmbeddedBroker>> started = kafka::EmbeddedBroker::Start(1);
      if (!started.ok()) return Fail(kExitFailure, started.status().ToString());
      embedded = std::move(started).value();
      brokers = embedded->bootstrap();
    }
    std::unique_ptr<kafka::Publisher> publisher;
    if (!brokers.empty()) {
      Result<std::unique_ptr<kafka::Publisher>> created =
          kafka::Publisher::Create(ledger.store(), kafka::ProducerSettings{brokers, options->config.shard, kafka::kAckTimeoutMs});
      if (!created.ok()) return Fail(kExitBadInput, created.status().ToString());
      publisher = std::move(created).value();
    }
    // The commit thread may be publishing a sealed group: whatever way this function ends, it waits for that
    // before the publisher (declared above, so destroyed after this) goes away.
    struct AwaitSealedOnExit {
      Ledger& ledger;
      ~AwaitSealedOnExit() { ledger.AwaitSealed().IgnoreError(); }
    } await_sealed_on_exit{ledger};

    int64_t accepted = 0, rejected = 0, duplicates = 0;
    auto count = [&](const CommandResult& result) {
      accepted += result.kind == CommandResult::Kind::kAccepted;
      rejected += result.kind == CommandResult::Kind::kRejected;
      duplicates += result.kind == CommandResult::Kind::kDuplicate;
    };
    // One group: parse and stage `lines`, commit, publish; returns when the group is acknowledged.
    auto run_group = [&](const std::vector<std::string>& lines) -> Status {
      for (const std::string& line : lines) {
        Result<ParsedCommand> parsed = ParseCommandJson(line);
        if (!parsed.ok()) return Status::Internal("bench generated a bad command: " + parsed.status().message());
        count(ledger.Stage(*parsed));
      }
      LEDGER_RETURN_IF_ERROR(ledger.CommitGroup());
      if (publisher) LEDGER_RETURN_IF_ERROR(publisher->PublishThrough(ledger.last_sequence(), kPublishDeadlineMs));
      return Status::Ok();
    };

    // Set-up, not measured.
    Workload workload(args->commands, args->customers, args->merchants, args->seed);
    const auto setup_started = Clock::now();
    std::vector<std::string> group;
    group.reserve(group_max);
    std::string line;
    int64_t setup_commands = 0;
    while (workload.NextSetup(&line)) {
      group.push_back(std::move(line));
      ++setup_commands;
      if (group.size() == group_max) {
        const Status status = run_group(group);
        if (!status.ok()) return Fail(kExitFailure, "set-up: " + status.ToString());
        group.clear();
      }
    }
    if (!group.empty()) {
      const Status status = run_group(group);
      if (!status.ok()) return Fail(kExitFailure, "set-up: " + status.ToString());
      group.clear();
    }
    const double setup_seconds = std::chrono::duration<double>(Clock::now() - setup_started).count();
    const int64_t setup_rejected = rejected;
    accepted = rejected = duplicates = 0;

    // The measured phase, pipelined as the ledger is built to run: while one group is written, fsynced and
    // published on the commit thread, the next is parsed and staged here. A command is acknowledged when its
    // group's events and results are on Kafka; the commit thread notes that moment.
    struct GroupTimes {
      std::vector<Clock::time_point> offered;  // when each command of the group was offered
      Clock::time_point acknowledged;
    };
    LatencyHistogram latency;
    std::unique_ptr<GroupTimes> in_flight;  // the sealed group's times
    auto settle = [&](const Status& sealed) -> Status {  // the sealed group is done: count its latencies
      LEDGER_RETURN_IF_ERROR(sealed);
      if (in_flight) {
        for (const auto& at : in_flight->offered) {
          latency.Record(std::chrono::duration_cast<std::chrono::microseconds>(in_flight->acknowledged - at).count());
        }
        in_flight.reset();
      }
      return Status::Ok();
    };
    const uint64_t first_sequence = ledger.last_sequence() + 1;
    const int64_t written_before = WrittenBytes();
    const auto started = Clock::now();
    int64_t next = 0;
    Feeder feeder(workload, args->commands);
    std::vector<ParsedCommand> measured_group;
    measured_group.reserve(group_max);
    auto take = [&]() -> Status {
      Result<ParsedCommand> parsed = feeder.Take();
      if (!parsed.ok()) return Status::Internal("bench generated a bad command: " + parsed.status().message());
      measured_group.push_back(std::move(parsed).value());
      return Status::Ok();
    };
    auto last_report = started;
    int64_t last_reported = 0;
    while (next < args->commands) {
      if (args->progress_seconds > 0 && Clock::now() - last_report >= std::chrono::duration<double>(args->progress_seconds)) {
        const auto now = Clock::now();
        ReportProgress(ledger, now - started, next, next - last_reported, now - last_report);
        last_report = now;
        last_reported = next;
      }
      auto times = std::make_unique<GroupTimes>();
      measured_group.clear();
      if (args->rate > 0) {  // open loop: everything that has arrived, up to a group
        auto arrival = [&](int64_t i) {
          return started + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(i) * 1e9 / args->rate));
        };
        const auto now = Clock::now();
        if (arrival(next) > now) std::this_thread::sleep_until(arrival(next));
        const auto until = Clock::now();
        while (next < args->commands && measured_group.size() < group_max && arrival(next) <= until) {
          const Status taken = take();
          if (!taken.ok()) return Fail(kExitFailure, taken.ToString());
          times->offered.push_back(arrival(next));
          ++next;
        }
      } else {  // closed loop: up to `outstanding` commands offered and not yet answered
        const size_t answered_later = in_flight ? in_flight->offered.size() : 0;
        if (answered_later >= outstanding) {
          const Status status = settle(ledger.AwaitSealed());
          if (!status.ok()) return Fail(kExitFailure, status.ToString());
          continue;
        }
        const auto now = Clock::now();
        while (next < args->commands && measured_group.size() < std::min(outstanding - answered_later, group_max)) {
          const Status taken = take();
          if (!taken.ok()) return Fail(kExitFailure, taken.ToString());
          times->offered.push_back(now);
          ++next;
        }
      }
      for (const ParsedCommand& command : measured_group) count(ledger.Stage(command));
      GroupTimes* sealing = times.get();
      const Status sealed = ledger.SealGroup([&publisher, sealing](uint64_t last_sequence) {
        if (publisher) LEDGER_RETURN_IF_ERROR(publisher->PublishThrough(last_sequence, kPublishDeadlineMs));
        sealing->acknowledged = Clock::now();
        return Status::Ok();
      });
      Status status = settle(sealed);  // the group sealed before this one
      in_flight = std::move(times);
      if (status.ok() && ledger.durable_sequence() == ledger.last_sequence()) {
        in_flight->acknowledged = Clock::now();  // nothing to write (duplicates only): answered at once
        status = settle(Status::Ok());
      }
      if (!status.ok()) return Fail(kExitFailure, status.ToString());
    }
    {
      const Status status = settle(ledger.AwaitSealed());
      if (!status.ok()) return Fail(kExitFailure, status.ToString());
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    const int64_t written = WrittenBytes() - written_before;
    const uint64_t events = ledger.last_sequence() + 1 - first_sequence;

    nlohmann::ordered_json out;
    out["commands"] = args->commands;
    out["seconds"] = seconds;
    out["commands_per_second"] = static_cast<double>(args->commands) / seconds;
    out["mode"] = args->rate > 0 ? "open_loop" : "closed_loop";
    if (args->rate > 0) out["offered_rate"] = args->rate;
    else out["outstanding"] = outstanding;
    out["kafka"] = args->kafka == "embedded" ? "embedded" : args->kafka;
    out["sync"] = args->sync == "on";
    out["latency_ms"] = {{"p50", latency.Quantile(0.50) / 1e3}, {"p99", latency.Quantile(0.99) / 1e3},
                         {"p99_9", latency.Quantile(0.999) / 1e3}, {"max", latency.max() / 1e3}};
    out["peak_rss_mib"] = PeakRssMiB();
    out["bytes_written_per_command"] = static_cast<double>(written) / static_cast<double>(args->commands);
    out["events"] = events;
    out["accepted"] = accepted;
    out["rejected"] = rejected;
    out["duplicates"] = duplicates;
    out["setup"] = {{"commands", setup_commands}, {"seconds", setup_seconds}, {"rejected", setup_rejected}};
    out["events_published"] = publisher ? publisher->events_published() : 0;
    if (args->json) {
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("ledger bench: %lld commands in %.2f s = %.0f commands/s (%s, kafka %s, sync %s)\n",
                  static_cast<long long>(args->commands), seconds, static_cast<double>(args->commands) / seconds,
                  args->rate > 0 ? "open loop" : "closed loop", args->kafka.c_str(), args->sync.c_str());
      std::printf("  acknowledgement latency ms: p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", latency.Quantile(0.50) / 1e3,
                  latency.Quantile(0.99) / 1e3, latency.Quantile(0.999) / 1e3, latency.max() / 1e3);
      std::printf("  peak RSS %.1f MiB; %.0f bytes written per command; %llu events\n", PeakRssMiB(),
                  static_cast<double>(written) / static_cast<double>(args->commands), static_cast<unsigned long long>(events));
      std::printf("  accepted %lld, rejected %lld, duplicates %lld; set-up %lld commands in %.2f s\n",
                  static_cast<long long>(accepted), static_cast<long long>(rejected), static_cast<long long>(duplicates),
                  static_cast<long long>(setup_commands), setup_seconds);
    }
    return kExitOk;
  };
}

}  // namespace ledger::cli
