#include "bench/load.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/load_workload.h"
#include "bench/process_stats.h"
#include "ledger/command.h"

namespace ledger::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Generates and parses the measured commands ahead of the writer, on its own thread, through a bounded queue:
// the writer thread only validates and stages (as `serve` would with parsing on its consumer thread), and the
// generator's own JSON writing stays off the measured path.
class Feeder {
 public:
  Feeder(const LoadWorkload& workload, int64_t count)
      : thread_([this, &workload, count] { Run(workload, count); }) {}
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

  void Run(const LoadWorkload& workload, int64_t count) {
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

Status BadCommand(const Status& parse_error) {
  return Status::Internal("bench generated a bad command: " + parse_error.message());
}

// One set-up group: parse and stage `lines`, commit, publish; returns when the group is acknowledged.
Status RunSetupGroup(Ledger& ledger, const std::vector<std::string>& lines, const PublishThrough& publish,
                     CommandTally* tally) {
  for (const std::string& line : lines) {
    Result<ParsedCommand> parsed = ParseCommandJson(line);
    if (!parsed.ok()) return BadCommand(parsed.status());
    tally->Count(ledger.Stage(*parsed));
  }
  LEDGER_RETURN_IF_ERROR(ledger.CommitGroup());
  if (publish) LEDGER_RETURN_IF_ERROR(publish(ledger.last_sequence()));
  return Status::Ok();
}

// The measured phase, pipelined as the ledger is built to run: while one group is written, fsynced and
// published on the commit thread, the next is parsed and staged here. A command is acknowledged when its
// group's events and results are published (durable, without Kafka); the commit thread notes that moment.
class MeasuredRun {
 public:
  MeasuredRun(Ledger& ledger, const LoadShape& shape, const Pacing& pacing, const PublishThrough& publish)
      : ledger_(ledger),
        shape_(shape),
        pacing_(pacing),
        publish_(publish),
        workload_(shape.commands, shape.customers, shape.merchants, shape.seed),
        group_max_(ledger.config().group_commands_max) {
    group_.reserve(group_max_);
  }
  // Whatever way the run ends, the group on the commit thread (which writes into in_flight_ and calls
  // publish_) finishes before anything it uses goes away.
  ~MeasuredRun() { ledger_.AwaitSealed().IgnoreError(); }

  Result<MeasuredReport> Run();

 private:
  struct GroupTimes {
    std::vector<Clock::time_point> offered;  // when each command of the group was offered
    Clock::time_point acknowledged;
  };

  void MaybeReportProgress();
  // Open loop: takes everything that has arrived, up to a group, sleeping until the next arrival if none has.
  Status OfferArrived(GroupTimes* times);
  // Closed loop: takes up to `outstanding` commands minus those not yet answered. Returns false, having
  // waited for the sealed group instead, when no more may be outstanding.
  Result<bool> OfferWithinOutstanding(GroupTimes* times);
  Status Take();
  // Stages the taken commands, seals them as a group, and settles the group sealed before.
  Status StageAndSeal(std::unique_ptr<GroupTimes> times);
  // The sealed group is done: counts its latencies.
  Status Settle(const Status& sealed);

  Ledger& ledger_;
  const LoadShape shape_;
  const Pacing pacing_;
  const PublishThrough publish_;
  const LoadWorkload workload_;
  const size_t group_max_;
  Feeder* feeder_ = nullptr;  // during Run
  std::vector<ParsedCommand> group_;
  std::unique_ptr<GroupTimes> in_flight_;  // the sealed group's times
  MeasuredReport report_;
  Clock::time_point started_, last_report_;
  int64_t next_ = 0, last_reported_ = 0;
};

Result<MeasuredReport> MeasuredRun::Run() {
  const uint64_t first_sequence = ledger_.last_sequence() + 1;
  const int64_t written_before = WrittenBytes();
  started_ = Clock::now();
  Feeder feeder(workload_, shape_.commands);
  feeder_ = &feeder;
  last_report_ = started_;
  while (next_ < shape_.commands) {
    MaybeReportProgress();
    auto times = std::make_unique<GroupTimes>();
    group_.clear();
    if (pacing_.rate > 0) {
      LEDGER_RETURN_IF_ERROR(OfferArrived(times.get()));
    } else {
      const Result<bool> offered = OfferWithinOutstanding(times.get());
      if (!offered.ok()) return offered.status();
      if (!*offered) continue;
    }
    LEDGER_RETURN_IF_ERROR(StageAndSeal(std::move(times)));
  }
  LEDGER_RETURN_IF_ERROR(Settle(ledger_.AwaitSealed()));
  report_.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  report_.bytes_written = WrittenBytes() - written_before;
  report_.events = ledger_.last_sequence() + 1 - first_sequence;
  return std::move(report_);
}

void MeasuredRun::MaybeReportProgress() {
  if (pacing_.progress_seconds <= 0 ||
      Clock::now() - last_report_ < std::chrono::duration<double>(pacing_.progress_seconds)) {
    return;
  }
  const auto now = Clock::now();
  if (pacing_.on_progress) {
    pacing_.on_progress(LoadProgress{std::chrono::duration<double>(now - started_).count(), next_,
                                     next_ - last_reported_,
                                     std::chrono::duration<double>(now - last_report_).count()});
  }
  last_report_ = now;
  last_reported_ = next_;
}

Status MeasuredRun::OfferArrived(GroupTimes* times) {
  auto arrival = [&](int64_t i) {
    return started_ +
           std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(i) * 1e9 / pacing_.rate));
  };
  const auto now = Clock::now();
  if (arrival(next_) > now) std::this_thread::sleep_until(arrival(next_));
  const auto until = Clock::now();
  while (next_ < shape_.commands && group_.size() < group_max_ && arrival(next_) <= until) {
    LEDGER_RETURN_IF_ERROR(Take());
    times->offered.push_back(arrival(next_));
    ++next_;
  }
  return Status::Ok();
}

Result<bool> MeasuredRun::OfferWithinOutstanding(GroupTimes* times) {
  const size_t answered_later = in_flight_ ? in_flight_->offered.size() : 0;
  if (answered_later >= pacing_.outstanding) {
    LEDGER_RETURN_IF_ERROR(Settle(ledger_.AwaitSealed()));
    return false;
  }
  const auto now = Clock::now();
  while (next_ < shape_.commands &&
         group_.size() < std::min(pacing_.outstanding - answered_later, group_max_)) {
    LEDGER_RETURN_IF_ERROR(Take());
    times->offered.push_back(now);
    ++next_;
  }
  return true;
}

Status MeasuredRun::Take() {
  Result<ParsedCommand> parsed = feeder_->Take();
  if (!parsed.ok()) return BadCommand(parsed.status());
  group_.push_back(std::move(parsed).value());
  return Status::Ok();
}

Status MeasuredRun::StageAndSeal(std::unique_ptr<GroupTimes> times) {
  for (const ParsedCommand& command : group_) report_.tally.Count(ledger_.Stage(command));
  GroupTimes* sealing = times.get();
  const PublishThrough& publish = publish_;
  const Status sealed = ledger_.SealGroup([&publish, sealing](uint64_t last_sequence) {
    if (publish) LEDGER_RETURN_IF_ERROR(publish(last_sequence));
    sealing->acknowledged = Clock::now();
    return Status::Ok();
  });
  Status status = Settle(sealed);  // the group sealed before this one
  in_flight_ = std::move(times);
  if (status.ok() && ledger_.durable_sequence() == ledger_.last_sequence()) {
    in_flight_->acknowledged = Clock::now();  // nothing to write (duplicates only): answered at once
    status = Settle(Status::Ok());
  }
  return status;
}

Status MeasuredRun::Settle(const Status& sealed) {
  LEDGER_RETURN_IF_ERROR(sealed);
  if (in_flight_) {
    for (const auto& at : in_flight_->offered) {
      report_.latency.Record(
          std::chrono::duration_cast<std::chrono::microseconds>(in_flight_->acknowledged - at).count());
    }
    in_flight_.reset();
  }
  return Status::Ok();
}

}  // namespace

void CommandTally::Count(const CommandResult& result) {
  accepted += result.kind == CommandResult::Kind::kAccepted;
  rejected += result.kind == CommandResult::Kind::kRejected;
  duplicates += result.kind == CommandResult::Kind::kDuplicate;
}

Result<SetupReport> RunSetup(Ledger& ledger, const LoadShape& shape, const PublishThrough& publish) {
  LoadWorkload workload(shape.commands, shape.customers, shape.merchants, shape.seed);
  const size_t group_max = ledger.config().group_commands_max;
  const auto started = Clock::now();
  CommandTally tally;
  SetupReport report;
  std::vector<std::string> group;
  group.reserve(group_max);
  std::string line;
  while (workload.NextSetup(&line)) {
    group.push_back(std::move(line));
    ++report.commands;
    if (group.size() == group_max) {
      LEDGER_RETURN_IF_ERROR(RunSetupGroup(ledger, group, publish, &tally));
      group.clear();
    }
  }
  if (!group.empty()) LEDGER_RETURN_IF_ERROR(RunSetupGroup(ledger, group, publish, &tally));
  report.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  report.rejected = tally.rejected;
  return report;
}

Result<MeasuredReport> RunMeasured(Ledger& ledger, const LoadShape& shape, const Pacing& pacing,
                                   const PublishThrough& publish) {
  MeasuredRun run(ledger, shape, pacing, publish);
  return run.Run();
}

}  // namespace ledger::bench
