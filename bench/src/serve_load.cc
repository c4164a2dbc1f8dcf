#include "bench/serve_load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bench/load_workload.h"
#include "bench/process_stats.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"
#include "ledger/command.h"
#include "service/shard_service.h"

namespace ledger::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kResultsPollMax = 4096;
constexpr int kResultsPollMs = 50;
// The producer waits this long at most between looks at the clock (progress reports, open-loop arrivals).
constexpr auto kRoomWait = std::chrono::milliseconds(200);
// Every this many commands the producer waits for Kafka's acknowledgements: the sender serves its delivery
// reports only then, so they never pile up, and a refused produce is seen early.
constexpr int64_t kFlushEvery = 2048;

const char* StepName(service::ServeStep step) {
  switch (step) {
    case service::ServeStep::kOpenLedger:
      return "open-ledger";
    case service::ServeStep::kOpenCommands:
      return "open-commands";
    case service::ServeStep::kCreatePublisher:
      return "create-publisher";
    case service::ServeStep::kCatchUp:
      return "catch-up";
    case service::ServeStep::kServe:
      return "serve";
    case service::ServeStep::kDrain:
      return "drain";
  }
  return "unknown";
}

// The high watermark of `topic` partition `partition`. Errors: IoError.
Result<int64_t> HighWatermarkOf(const std::string& brokers, const char* topic, uint32_t partition) {
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, topic, partition, -1);
  if (!reader.ok()) return reader.status();
  return (*reader)->HighWatermark(static_cast<int>(kafka::kWatermarksTimeoutMs));
}

// The measured commands produced and not yet answered, shared by the producing thread and the results reader.
// Every answer must close exactly one of them; anything else fails the run.
class AnswerBook {
 public:
  // Waits (at most kRoomWait) until fewer than `bound` commands are unanswered; returns how many more may be
  // produced (0: none yet). Errors: the run's failure.
  Result<size_t> WaitForRoom(size_t bound) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, kRoomWait, [&] { return !failure_.ok() || unanswered_.size() < bound; });
    if (!failure_.ok()) return failure_;
    return unanswered_.size() < bound ? bound - unanswered_.size() : 0;
  }
  void Offered(std::string command_id, Clock::time_point at) {
    std::lock_guard<std::mutex> lock(mutex_);
    unanswered_.emplace(std::move(command_id), at);
  }
  // Waits until every offered command is answered. Errors: the run's failure; Aborted when no answer came
  // for `patience` while some were outstanding.
  Status WaitAllAnswered(std::chrono::milliseconds patience) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (failure_.ok() && !unanswered_.empty()) {
      const int64_t answered_before = answered_;
      changed_.wait_for(lock, patience, [&] { return !failure_.ok() || answered_ != answered_before; });
      if (failure_.ok() && answered_ == answered_before) {
        return Status::Aborted("no result on ledger.results for " + std::to_string(patience.count()) +
                               " ms with " + std::to_string(unanswered_.size()) + " commands unanswered" +
                               (read_error_.empty() ? "" : " (last read error: " + read_error_ + ")"));
      }
    }
    return failure_;
  }
  // Waits until the reader has read every result before offset `end`. Errors: the run's failure (a result
  // that closes no command among them); Aborted after `patience`.
  Status WaitReadThrough(int64_t end, std::chrono::milliseconds patience) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!changed_.wait_for(lock, patience, [&] { return !failure_.ok() || read_through_ >= end; })) {
      return Status::Aborted("ledger.results not read through offset " + std::to_string(end) + " in time");
    }
    return failure_;
  }
  // One result record, readable from `readable` on.
  void Answer(const kafka::Record& record, Clock::time_point readable) {
    const nlohmann::json value = nlohmann::json::parse(record.value, nullptr, /*allow_exceptions=*/false);
    std::string status;
    if (value.is_object() && value.contains("status") && value["status"].is_string())
      status = value["status"];
    std::lock_guard<std::mutex> lock(mutex_);
    read_through_ = record.offset + 1;
    const auto found = unanswered_.find(record.key);
    if (found == unanswered_.end()) {
      FailLocked(Status::Internal("a result for '" + record.key + "' at ledger.results offset " +
                                  std::to_string(record.offset) +
                                  ", which is not an unanswered measured command (answered twice?)"));
      return;
    }
    latency_.Record(std::chrono::duration_cast<std::chrono::microseconds>(readable - found->second).count());
    unanswered_.erase(found);
    ++answered_;
    tally_.accepted += status == "accepted";
    tally_.rejected += status == "rejected";
    tally_.duplicates += status == "duplicate";
    if (status != "accepted" && status != "rejected" && status != "duplicate") {
      FailLocked(Status::Internal("the result for '" + record.key + "' has no known status"));
    }
    changed_.notify_all();
  }
  void NoteReadError(const std::string& message) {
    std::lock_guard<std::mutex> lock(mutex_);
    read_error_ = message;
  }
  // The first failure wins; it wakes every waiter.
  void Fail(const Status& status) {
    std::lock_guard<std::mutex> lock(mutex_);
    FailLocked(status);
  }
  // Forgets the answers counted so far (the warm-up's), keeping the place read.
  void ForgetAnswers() {
    std::lock_guard<std::mutex> lock(mutex_);
    answered_ = 0;
    latency_ = LatencyHistogram();
    tally_ = CommandTally();
  }
  int64_t read_through() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return read_through_;
  }
  int64_t answered() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return answered_;
  }
  LatencyHistogram latency() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return latency_;
  }
  CommandTally tally() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return tally_;
  }

 private:
  void FailLocked(const Status& status) {
    if (failure_.ok()) failure_ = status;
    changed_.notify_all();
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<std::string, Clock::time_point> unanswered_;
  Status failure_;
  std::string read_error_;
  int64_t answered_ = 0;
  int64_t read_through_ = 0;  // the offset after the last result read
  LatencyHistogram latency_;
  CommandTally tally_;
};

// One serve-through run: the service and the results reader on threads of their own, the commands produced on
// the caller's. Whatever way the run ends, both threads are stopped and joined before anything goes away.
class ServeRun {
 public:
  ServeRun(const ServeThrough& through, const LoadShape& shape, const Pacing& pacing)
      : through_(through),
        shape_(shape),
        pacing_(pacing),
        partition_(through.ledger.config.shard),
        workload_(shape.commands, shape.customers, shape.merchants, shape.seed) {}
  ~ServeRun() {
    if (serving_.joinable()) StopService().IgnoreError();
    StopReader();
  }

  Result<ServeMeasuredReport> Run();

 private:
  Status StartService();
  // One command through the whole path before measuring (LoadWorkload::WarmUp), answered once the service has
  // opened the store and every client has connected: the first produce to a topic waits for its metadata
  // (about 0.9 s on the embedded broker), for the bench's sender and the service's publisher alike, which is
  // no command's cost. Moves the results start past its answer.
  Status WarmUp();
  Status StartReader();
  Status ProduceAll();
  Status ProduceOne(int64_t i, Clock::time_point offered);
  // The producer headers of `line` (none without a producer key).
  kafka::Headers SignatureOf(const std::string& line) const;
  // Signs every measured command before the measured phase (ServeThrough::producer_key).
  Status SignAll();
  void MaybeReportProgress();
  // Asks the service to stop and waits for it; how its run ended (ok when it drained after the request).
  Status StopService();
  void StopReader();

  const ServeThrough through_;
  const LoadShape shape_;
  const Pacing pacing_;
  const uint32_t partition_;
  const LoadWorkload workload_;
  AnswerBook book_;
  std::vector<kafka::Headers> signatures_;  // by measured command (empty: unsigned)
  std::unique_ptr<kafka::RecordSender> sender_;
  int64_t results_start_ = 0;

  std::unique_ptr<service::ShardService> service_;
  std::atomic<bool> stop_service_{false};
  std::thread serving_;
  service::ServeOutcome outcome_;

  std::unique_ptr<kafka::PartitionReader> results_;
  std::atomic<bool> stop_reader_{false};
  std::thread reading_;

  Clock::time_point started_, last_report_;
  int64_t last_reported_ = 0;
};

Status ServeRun::StartService() {
  service::ShardServiceOptions options;
  options.ledger = through_.ledger;
  options.brokers = through_.brokers;
  options.shard = partition_;
  options.shards = partition_ + 1;
  // Unsigned commands leave the producer signature check out of the figure (docs/PERFORMANCE.md).
  options.allow_unsigned_commands = through_.producer_key == nullptr;
  options.stop_requested = [this] { return stop_service_.load(); };
  Result<std::unique_ptr<service::ShardService>> connected =
      service::ShardService::Connect(std::move(options));
  if (!connected.ok()) return connected.status();
  service_ = std::move(connected).value();
  serving_ = std::thread([this] {
    outcome_ = service_->Run();
    if (!stop_service_.load()) {
      book_.Fail(Status::Internal(std::string("the service stopped on its own at step ") +
                                  StepName(outcome_.step) + ": " + outcome_.status.ToString()));
    }
  });
  return Status::Ok();
}

Status ServeRun::WarmUp() {
  book_.Offered(LoadWorkload::kWarmUpCommandId, Clock::now());
  LEDGER_RETURN_IF_ERROR(sender_->Send(kafka::kCommandsTopic, partition_, LoadWorkload::kWarmUpCommandId,
                                       workload_.WarmUp(), SignatureOf(workload_.WarmUp())));
  LEDGER_RETURN_IF_ERROR(sender_->Flush(kafka::kAckTimeoutMs));
  LEDGER_RETURN_IF_ERROR(book_.WaitAllAnswered(std::chrono::milliseconds(kAnswerPatienceMs)));
  if (book_.tally().rejected != 1) return Status::Internal("the warm-up command was not rejected");
  results_start_ = book_.read_through();
  book_.ForgetAnswers();
  return Status::Ok();
}

Status ServeRun::StartReader() {
  // The set-up's results are there already: the measured ones follow them.
  Result<int64_t> high = HighWatermarkOf(through_.brokers, kafka::kResultsTopic, partition_);
  if (!high.ok()) return high.status();
  results_start_ = *high;
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(through_.brokers, kafka::kResultsTopic, partition_, results_start_);
  if (!reader.ok()) return reader.status();
  results_ = std::move(reader).value();
  reading_ = std::thread([this] {
    while (!stop_reader_.load()) {
      Result<std::vector<kafka::Record>> records = results_->Poll(kResultsPollMax, kResultsPollMs);
      const Clock::time_point readable = Clock::now();
      if (!records.ok()) {
        book_.NoteReadError(records.status().ToString());
        std::this_thread::sleep_for(std::chrono::milliseconds(kResultsPollMs));
        continue;
      }
      for (const kafka::Record& record : *records) book_.Answer(record, readable);
    }
  });
  return Status::Ok();
}

kafka::Headers ServeRun::SignatureOf(const std::string& line) const {
  if (through_.producer_key == nullptr) return {};
  Result<ParsedCommand> parsed = ParseCommandJson(line);
  LEDGER_ASSERT(parsed.ok());  // the workload writes commands
  Result<kafka::Headers> headers =
      kafka::CommandSignatureHeaders(*through_.producer_key, parsed->fingerprint);
  LEDGER_ASSERT(headers.ok());  // the benchmark's key is a file's
  return std::move(headers).value();
}

Status ServeRun::SignAll() {
  if (through_.producer_key == nullptr) return Status::Ok();
  signatures_.reserve(static_cast<size_t>(shape_.commands));
  for (int64_t i = 0; i < shape_.commands; ++i) signatures_.push_back(SignatureOf(workload_.Measured(i)));
  return Status::Ok();
}

Status ServeRun::ProduceOne(int64_t i, Clock::time_point offered) {
  std::string id = workload_.MeasuredCommandId(i);
  const std::string line = workload_.Measured(i);
  book_.Offered(id, offered);  // before the produce: the answer may come at once
  LEDGER_RETURN_IF_ERROR(sender_->Send(kafka::kCommandsTopic, partition_, id, line,
                                       signatures_.empty() ? kafka::Headers() : signatures_[i]));
  if ((i + 1) % kFlushEvery == 0) LEDGER_RETURN_IF_ERROR(sender_->Flush(kafka::kAckTimeoutMs));
  return Status::Ok();
}

// Closed loop: keeps up to `outstanding` commands unanswered, each offered when produced. Open loop: command
// i arrives at i / rate seconds and counts from then, whatever the bound held it back.
Status ServeRun::ProduceAll() {
  const bool open_loop = pacing_.rate > 0;
  const size_t bound = open_loop ? kOpenLoopUnansweredMax : std::max<size_t>(1, pacing_.outstanding);
  auto arrival = [&](int64_t i) {
    return started_ +
           std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(i) * 1e9 / pacing_.rate));
  };
  int64_t next = 0;
  while (next < shape_.commands) {
    MaybeReportProgress();
    if (open_loop && arrival(next) > Clock::now()) {
      std::this_thread::sleep_until(std::min(arrival(next), Clock::now() + kRoomWait));
      continue;
    }
    Result<size_t> room = book_.WaitForRoom(bound);
    if (!room.ok()) return room.status();
    const Clock::time_point now = Clock::now();
    for (size_t taken = 0; taken < *room && next < shape_.commands; ++taken, ++next) {
      if (open_loop && arrival(next) > now) break;
      LEDGER_RETURN_IF_ERROR(ProduceOne(next, open_loop ? arrival(next) : now));
    }
  }
  return sender_->Flush(kafka::kAckTimeoutMs);
}

void ServeRun::MaybeReportProgress() {
  const auto now = Clock::now();
  if (pacing_.progress_seconds <= 0 ||
      now - last_report_ < std::chrono::duration<double>(pacing_.progress_seconds)) {
    return;
  }
  const int64_t done = book_.answered();
  if (pacing_.on_progress) {
    pacing_.on_progress(LoadProgress{std::chrono::duration<double>(now - started_).count(), done,
                                     done - last_reported_,
                                     std::chrono::duration<double>(now - last_report_).count()});
  }
  last_report_ = now;
  last_reported_ = done;
}

Status ServeRun::StopService() {
  if (!serving_.joinable()) return Status::Internal("the service was not running");
  stop_service_.store(true);
  serving_.join();
  if (!outcome_.status.ok() || outcome_.step != service::ServeStep::kDrain) {
    return Status::Internal(std::string("the service did not stop cleanly (step ") + StepName(outcome_.step) +
                            "): " + outcome_.status.ToString());
  }
  return Status::Ok();
}

void ServeRun::StopReader() {
  if (!reading_.joinable()) return;
  stop_reader_.store(true);
  reading_.join();
}

Result<ServeMeasuredReport> ServeRun::Run() {
  LEDGER_RETURN_IF_ERROR(SignAll());
  Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(through_.brokers);
  if (!sender.ok()) return sender.status();
  sender_ = std::move(sender).value();
  LEDGER_RETURN_IF_ERROR(StartReader());
  LEDGER_RETURN_IF_ERROR(StartService());
  LEDGER_RETURN_IF_ERROR(WarmUp());
  // The warm-up's events and result are published before its answer is readable.
  Result<int64_t> events_before = HighWatermarkOf(through_.brokers, kafka::kEventsTopic, partition_);
  if (!events_before.ok()) return events_before.status();
  const int64_t written_before = WrittenBytes();
  started_ = last_report_ = Clock::now();
  LEDGER_RETURN_IF_ERROR(ProduceAll());
  LEDGER_RETURN_IF_ERROR(book_.WaitAllAnswered(std::chrono::milliseconds(kAnswerPatienceMs)));
  ServeMeasuredReport report;
  report.measured.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  report.measured.bytes_written = WrittenBytes() - written_before;
  LEDGER_RETURN_IF_ERROR(StopService());  // drains: everything committed is published
  // Exactly one result per command: every command was answered, and every result the drained service left
  // on the partition closed one unanswered command (a second answer fails the run naming its command).
  Result<int64_t> results_end = HighWatermarkOf(through_.brokers, kafka::kResultsTopic, partition_);
  if (!results_end.ok()) return results_end.status();
  LEDGER_RETURN_IF_ERROR(book_.WaitReadThrough(*results_end, std::chrono::milliseconds(kAnswerPatienceMs)));
  StopReader();
  if (*results_end - results_start_ != shape_.commands) {
    return Status::Internal("ledger.results holds " + std::to_string(*results_end - results_start_) +
                            " results for " + std::to_string(shape_.commands) + " measured commands");
  }
  Result<int64_t> events_after = HighWatermarkOf(through_.brokers, kafka::kEventsTopic, partition_);
  if (!events_after.ok()) return events_after.status();
  report.measured.tally = book_.tally();
  report.measured.latency = book_.latency();
  report.measured.events = static_cast<uint64_t>(*events_after - *events_before);
  report.results = book_.answered();
  report.events_published = static_cast<uint64_t>(*events_after);
  return report;
}

}  // namespace

Result<ServeMeasuredReport> RunMeasuredThroughServe(const ServeThrough& through, const LoadShape& shape,
                                                    const Pacing& pacing) {
  ServeRun run(through, shape, pacing);
  return run.Run();
}

}  // namespace ledger::bench
