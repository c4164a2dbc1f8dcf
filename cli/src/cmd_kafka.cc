// Kafka-facing commands: broker, serve, tail. See README: Kafka.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>

#include "cli_common.h"
#include "cli/commands.h"
#include "events/event.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"
#include "ledger/ledger.h"
#include "kafka/projection_runner.h"

namespace ledger::cli {
namespace {

std::atomic<bool> g_stop{false};

void OnStopSignal(int) { g_stop.store(true); }

void InstallStopHandlers() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

// How long one serve iteration waits for the first command of a group.
constexpr int kCommandPollMs = 100;
// How long a publish waits before logging and trying again (acknowledgements simply wait meanwhile).
constexpr int64_t kPublishRetryMs = 5'000;
// How long serve waits for the topic metadata (and a creation) at start: an unreachable cluster is logged
// and serve goes on, since its readers and the publisher wait for Kafka anyway.
constexpr int64_t kTopicsTimeoutMs = 5'000;
// How long one watermarks query waits before serve logs and asks again.
constexpr int kStartupWatermarksTimeoutMs = 5'000;
// The operator's name is stored in a CommandsSkipped event: one short line.
constexpr size_t kOperatorNameMax = 200;
// How much of the parser's message a MALFORMED_COMMAND event keeps for a record that is not a command: the
// message can quote the record, which may be megabytes of binary.
constexpr size_t kUnparsableDetailMax = 300;

std::string OffsetKey(uint32_t partition) { return "commands_offset/" + std::to_string(partition); }

Status WriteFileAtomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    if (!out) return Status::IoError("cannot write " + temporary);
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) return Status::IoError("cannot rename " + temporary + ": " + error.message());
  return Status::Ok();
}

// Publishes through `through`, retrying until done or asked to stop. Errors: Corruption; Aborted on stop.
Status PublishPatiently(kafka::Publisher& publisher, uint64_t through) {
  while (true) {
    const Status status = publisher.PublishThrough(through, kPublishRetryMs);
    if (status.ok() || status.code() == StatusCode::kCorruption) return status;
    spdlog::warn("serve: waiting for Kafka: {}", status.message());
    if (g_stop.load()) return Status::Aborted("stopped while waiting for Kafka");
  }
}

// Starts the embedded broker when no brokers are configured (it creates the topics itself); otherwise makes
// sure the topics exist, asking the cluster's metadata first so that a restart costs one round trip.
// Returns the bootstrap servers. Errors: Internal (the embedded broker did not start).
Result<std::string> ConnectKafka(const std::string& configured, uint32_t shards, int replication_factor,
                                 std::unique_ptr<kafka::EmbeddedBroker>* embedded) {
  if (configured.empty()) {
    Result<std::unique_ptr<kafka::EmbeddedBroker>> started =
        kafka::EmbeddedBroker::Start(static_cast<int>(shards));
    if (!started.ok()) return started.status();
    *embedded = std::move(started).value();
    spdlog::info("serve: embedded broker at {} with empty ledger topics, partitions per topic: {}",
                 (*embedded)->bootstrap(), shards);
    return (*embedded)->bootstrap();
  }
  Result<kafka::TopicsEnsured> topics =
      kafka::EnsureTopics(configured, static_cast<int>(shards), replication_factor, kTopicsTimeoutMs);
  if (!topics.ok()) {
    spdlog::warn("serve: topics of {} not checked: {} (continuing: readers and the publisher wait for Kafka)",
                 configured, topics.status().message());
  } else {
    auto names = [](const std::vector<std::string>& list) {
      std::string text;
      for (const std::string& name : list) text += (text.empty() ? "" : ", ") + name;
      return text.empty() ? std::string("none") : text;
    };
    spdlog::info("serve: topics at {}: existing {}; created {}", configured, names(topics->existing),
                 names(topics->created));
  }
  return configured;
}

// The commands offset stored with the last group (none in a fresh store). Errors: IoError, Corruption.
Result<std::optional<int64_t>> StoredCommandsOffset(const Ledger& ledger, uint32_t partition) {
  Result<std::optional<std::string>> text = ledger.store().GetMeta(OffsetKey(partition));
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::optional<int64_t>();
  const std::string& value = **text;
  int64_t offset = -1;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), offset);
  if (error != std::errc() || end != value.data() + value.size() || offset < 0) {
    return Status::Corruption("meta " + OffsetKey(partition) + " holds '" + value + "', not an offset");
  }
  return std::optional<int64_t>(offset);
}

// Asks for the partition's watermarks until Kafka answers. Errors: Aborted when asked to stop.
Result<kafka::Watermarks> WatermarksPatiently(kafka::PartitionReader& reader) {
  while (true) {
    Result<kafka::Watermarks> marks = reader.QueryWatermarks(kStartupWatermarksTimeoutMs);
    if (marks.ok()) return marks;
    spdlog::warn("serve: waiting for Kafka: {}", marks.status().message());
    if (g_stop.load()) return Status::Aborted("stopped while waiting for Kafka");
  }
}

// Where serve reads its commands partition from, and why the stored offset does not fit the partition.
struct CommandsStart {
  int64_t offset = -1;  // -1: the partition's beginning (a fresh store); with a gap: where to resume
  std::string gap;      // empty when the stored offset fits the partition; else why not, in one line
};

// The rule (docs/DECISIONS.md, Commands-topic offsets): a stored offset within [low, high] is where serve
// resumes. Below low, records it never applied are gone; above high, the topic is not the one the offset was
// taken in. Either way serve resumes (at low) only on an operator's word, never on its own.
CommandsStart DecideCommandsStart(std::optional<int64_t> stored, const kafka::Watermarks& marks,
                                  uint32_t partition, bool embedded) {
  CommandsStart start;
  if (!stored.has_value()) return start;  // a fresh store takes what the partition holds
  const std::string where = std::string(kafka::kCommandsTopic) + " partition " + std::to_string(partition);
  start.offset = *stored;
  if (*stored < marks.low) {
    start.offset = marks.low;
    start.gap =
        "offsets " + std::to_string(*stored) + ".." + std::to_string(marks.low - 1) + " of " + where +
        " are gone (expired or dropped before serve applied them): " + std::to_string(marks.low - *stored) +
        " commands never applied";
  } else if (*stored > marks.high) {
    const std::string kept = marks.low == marks.high ? "no records"
                                                     : "offsets " + std::to_string(marks.low) + ".." +
                                                           std::to_string(marks.high - 1);
    start.offset = marks.low;
    start.gap = "the stored offset " + std::to_string(*stored) + " is past the end of " + where +
                " (it holds " + kept + "): the topic was replaced" +
                (embedded ? " (the embedded broker starts empty on every run)" : "") +
                ", and whatever the old one held from offset " + std::to_string(*stored) +
                " on was never applied";
  }
  return start;
}

// Records the gap an operator accepted as a CommandsSkipped event, committed with the new commands offset.
Status RecordCommandsSkipped(Ledger& ledger, uint32_t partition, int64_t stored, const CommandsStart& start,
                             const kafka::Watermarks& marks, const std::string& accepted_by) {
  fb::CommandsSkippedT skipped;
  skipped.partition = static_cast<int32_t>(partition);
  skipped.stored_offset = stored;
  skipped.resumed_offset = start.offset;
  skipped.low_watermark = marks.low;
  skipped.high_watermark = marks.high;
  skipped.accepted_by = accepted_by;
  skipped.reason = start.gap;
  fb::PayloadUnion payload;
  payload.Set(std::move(skipped));
  // The sequence makes the id unique: the same offsets can be skipped again (an embedded broker on every run).
  const std::string fact_id = "commands-skipped:" + std::to_string(partition) + ":" + std::to_string(stored) +
                              "-" + std::to_string(start.offset) + "@" + std::to_string(ledger.last_sequence() + 1);
  ledger.StageMeta(OffsetKey(partition), std::to_string(start.offset));
  Result<uint64_t> sequence = ledger.RecordFact(fact_id, std::move(payload));
  if (!sequence.ok()) return sequence.status();
  spdlog::warn("serve: {} accepted the gap (event {}): {}; resuming at offset {}", accepted_by, *sequence,
               start.gap, start.offset);
  return Status::Ok();
}

// The commands reader, opened where serve resumes.
struct CommandsReader {
  std::unique_ptr<kafka::PartitionReader> reader;
  int64_t offset = -1;  // where it starts (-1: the partition's beginning)
};

// Opens the commands reader where serve resumes, after checking the stored offset against the partition.
// Errors: InvalidArgument (refused: the one-line reason), IoError, Corruption, Aborted.
Result<CommandsReader> OpenCommandsReader(Ledger& ledger, const std::string& brokers, uint32_t partition,
                                          bool embedded, const std::string& accepted_by) {
  Result<std::optional<int64_t>> stored = StoredCommandsOffset(ledger, partition);
  if (!stored.ok()) return stored.status();
  // Never reset on its own: an offset out of range stops serve (kError) instead of skipping records.
  auto open = [&](int64_t offset) -> Result<CommandsReader> {
    Result<std::unique_ptr<kafka::PartitionReader>> reader = kafka::PartitionReader::Open(
        brokers, kafka::kCommandsTopic, partition, offset, kafka::OffsetReset::kError);
    if (!reader.ok()) return reader.status();
    return CommandsReader{std::move(reader).value(), offset};
  };
  Result<CommandsReader> opened = open(stored->value_or(-1));
  if (!opened.ok()) return opened.status();
  Result<kafka::Watermarks> marks = WatermarksPatiently(*opened->reader);
  if (!marks.ok()) return marks.status();
  const CommandsStart start = DecideCommandsStart(*stored, *marks, partition, embedded);
  if (start.gap.empty()) {
    if (!accepted_by.empty()) {
      spdlog::info("serve: no commands gap to accept: the stored offset fits the partition");
    }
    return opened;
  }
  // The in-process embedded broker is new on every run: whatever its topics held died with the last run, before
  // anyone could apply it. Serve accepts that itself, recorded and logged like an operator's acceptance.
  const std::string acceptance =
      !accepted_by.empty() || !embedded ? accepted_by : "serve (in-process embedded broker, new on every run)";
  if (acceptance.empty()) {
    return Status::InvalidArgument(
        "refusing to start: " + start.gap + "; to resume at offset " + std::to_string(start.offset) +
        " and record the gap as a CommandsSkipped event, pass --accept-command-gap "
        "OPERATOR_NAME");
  }
  opened->reader.reset();  // its fetch position is out of range: reopened where serve resumes
  LEDGER_RETURN_IF_ERROR(RecordCommandsSkipped(ledger, partition, **stored, start, *marks, acceptance));
  return open(start.offset);
}

// The command a record holds, or a stand-in that records it as MALFORMED_COMMAND under an id naming its place
// in the topic. The parser must never throw, but one record must never stop a shard either: anything it
// throws is reported like any other unparsable line.
ParsedCommand CommandOfRecord(const kafka::Record& record) {
  Result<ParsedCommand> parsed = Status::Internal("not parsed");
  try {
    parsed = ParseCommandJson(record.value);
  } catch (const std::exception& error) {
    parsed = Status::InvalidArgument(std::string("the command parser failed: ") + error.what());
  } catch (...) {
    parsed = Status::InvalidArgument("the command parser failed");
  }
  if (parsed.ok()) return std::move(parsed).value();
  ParsedCommand bad;
  bad.command_id = "kafka:" + std::to_string(record.partition) + ":" + std::to_string(record.offset);
  bad.type = "unparsable";
  bad.fingerprint = Sha256Of(record.value);
  bad.malformed = PrintableText(parsed.status().message(), kUnparsableDetailMax);
  bad.command.command_id = bad.command_id;
  bad.line_bytes = record.value.size();
  spdlog::warn("serve: commands offset {}: {}", record.offset, *bad.malformed);
  return bad;
}

}  // namespace

Runner AddBroker(CLI::App& app) {
  struct Args {
    int partitions = 1;
    int brokers = 1;
    std::string bootstrap_file;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--partitions", args->partitions, "partitions per ledger topic")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--brokers", args->brokers, "mock brokers in the cluster")->capture_default_str()->check(CLI::Range(1, 16));
  app.add_option("--bootstrap-file", args->bootstrap_file, "also write bootstrap=HOST:PORT,... to this file");
  return [args]() {
    InstallStopHandlers();
    Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(args->partitions, args->brokers);
    if (!broker.ok()) return Fail(kExitFailure, broker.status().ToString());
    const std::string line = "bootstrap=" + (*broker)->bootstrap() + "\n";
    std::fputs(line.c_str(), stdout);
    std::fflush(stdout);
    if (!args->bootstrap_file.empty()) {
      const Status written = WriteFileAtomically(args->bootstrap_file, line);
      if (!written.ok()) return Fail(kExitFailure, written.message());
    }
    spdlog::info("broker: serving {} until SIGTERM or SIGINT", (*broker)->bootstrap());
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    spdlog::info("broker: stopping");
    return kExitOk;
  };
}

namespace {

// What one serve run works with.
struct ServeContext {
  Ledger& ledger;
  kafka::Publisher& publisher;
  kafka::PartitionReader& reader;
  uint32_t shard = 0;
  bool ack_kafka = true;
};

// Applies one batch of records as one group: commit, publish, then answer the duplicates. Every record gets
// exactly one result, whatever it holds. Errors: whatever stops serve (a failed commit, Corruption, Aborted).
Status ApplyRecords(ServeContext& serve, const std::vector<kafka::Record>& records) {
  Ledger& ledger = serve.ledger;
  std::vector<CommandResult> duplicates;
  int64_t first_duplicate_offset = -1;
  for (const kafka::Record& record : records) {
    CommandResult result = ledger.Stage(CommandOfRecord(record));
    if (result.kind == CommandResult::Kind::kDuplicate) {
      if (first_duplicate_offset < 0) first_duplicate_offset = record.offset;
      duplicates.push_back(std::move(result));
    }
  }
  // A `duplicate` answer has no event to be republished from: the stored offset moves past it only once
  // the answer is acknowledged (below). Until then a crash redelivers it, and it is answered again.
  const std::string next_offset = std::to_string(records.back().offset + 1);
  ledger.StageMeta(OffsetKey(serve.shard),
                   first_duplicate_offset >= 0 ? std::to_string(first_duplicate_offset) : next_offset);
  LEDGER_RETURN_IF_ERROR(ledger.CommitGroup());  // on error a restart recovers from the WAL
  LEDGER_RETURN_IF_ERROR(ledger.MaybeCheckpoint());
  if (serve.ack_kafka) {
    LEDGER_RETURN_IF_ERROR(PublishPatiently(serve.publisher, ledger.last_sequence()));
  } else {
    serve.publisher.PublishThrough(ledger.last_sequence(), 0).IgnoreError();  // catches up later
  }
  if (duplicates.empty()) return Status::Ok();
  const Status sent = serve.publisher.PublishResults(duplicates, kafka::kAckTimeoutMs);
  if (!sent.ok()) {
    spdlog::warn("serve: duplicate results: {}", sent.message());
    return Status::Ok();
  }
  ledger.StageMeta(OffsetKey(serve.shard), next_offset);
  return ledger.CommitGroup();
}

// Consumes commands until asked to stop. Errors: NotFound (the next commands offset is out of range: records
// gone or the topic replaced while serving), and whatever ApplyRecords reports.
Status ServeCommands(ServeContext& serve) {
  const size_t group_max = serve.ledger.config().group_commands_max;
  while (!g_stop.load()) {
    Result<std::vector<kafka::Record>> records = serve.reader.Poll(group_max, kCommandPollMs);
    if (!records.ok()) {
      if (records.status().code() == StatusCode::kNotFound) return records.status();
      spdlog::warn("serve: reading commands: {}", records.status().message());
      continue;
    }
    if (records->empty()) continue;
    LEDGER_RETURN_IF_ERROR(ApplyRecords(serve, *records));
  }
  return Status::Ok();
}

// Drains: a checkpoint of the final state (when a key is configured), and everything committed published.
Status Drain(Ledger& ledger, kafka::Publisher& publisher, bool signer) {
  if (signer && ledger.last_sequence() > ledger.last_checkpoint_covered() + 1) {
    Result<uint64_t> checkpoint = ledger.WriteCheckpoint();
    if (!checkpoint.ok()) return checkpoint.status();
  }
  const Status published = PublishPatiently(publisher, ledger.last_sequence());
  return published.code() == StatusCode::kAborted ? Status::Ok() : published;
}

// --accept-command-gap: a name for the record, on one short line.
std::string CheckOperatorName(const std::string& name) {
  if (name.empty() || name.size() > kOperatorNameMax) return "an operator name of 1 to 200 characters";
  for (const char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return "an operator name without control characters";
    }
  }
  return "";
}

}  // namespace

Runner AddServe(CLI::App& app) {
  struct Args {
    WriteOptions write;
    std::string brokers;
    uint32_t shard = 0;
    uint32_t shards = 1;
    int replication_factor = 1;
    std::string ack;
    std::string accept_command_gap;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->write.data_dir, "data folder")->capture_default_str();
  app.add_option("--brokers", args->brokers, "Kafka bootstrap servers; none: start the embedded broker");
  app.add_option("--shard", args->shard, "this shard: consumes commands partition K, writes events partition K")->capture_default_str();
  app.add_option("--shards", args->shards, "number of shards (partitions per topic)")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--replication-factor", args->replication_factor, "replication of topics this command creates")->capture_default_str();
  app.add_option("--ack", args->ack, "kafka: acknowledge after Kafka has the events (default); local: after the local commit")
      ->check(CLI::IsMember({"kafka", "local"}));
  app.add_option("--accept-command-gap", args->accept_command_gap,
                 "OPERATOR_NAME: when the stored commands offset no longer fits the partition (records gone, "
                 "topic replaced), resume at its first kept offset and record a CommandsSkipped event naming you")
      ->check(CheckOperatorName);
  app.add_option("--clock", args->write.clock, "system or occurred")->capture_default_str();
  app.add_option("--now", args->write.now, "fix the ledger clock (ISO 8601)");
  return [args]() {
    InstallStopHandlers();
    if (args->shard >= args->shards) return Fail(kExitBadInput, "--shard must be below --shards");
    Result<LedgerOptions> options = MakeLedgerOptions(args->write);
    if (!options.ok()) return Fail(kExitBadInput, options.status().message());
    options->config.shard = args->shard;
    const std::string ack = args->ack.empty() ? options->config.kafka_ack : args->ack;
    std::unique_ptr<kafka::EmbeddedBroker> embedded;
    Result<std::string> brokers =
        ConnectKafka(args->brokers.empty() ? options->config.kafka_brokers : args->brokers, args->shards,
                     args->replication_factor, &embedded);
    if (!brokers.ok()) return Fail(kExitFailure, brokers.status().ToString());
    std::printf("bootstrap=%s\n", brokers->c_str());
    std::fflush(stdout);

    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*options);
    if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
    // Checked before anything is published or written: a refused start changes nothing.
    Result<CommandsReader> reader =
        OpenCommandsReader(**ledger, *brokers, args->shard, embedded != nullptr, args->accept_command_gap);
    if (!reader.ok()) {
      if (reader.status().code() == StatusCode::kAborted) return kExitOk;
      return Fail(kExitFailure, "serve: " + reader.status().message());
    }
    Result<std::unique_ptr<kafka::Publisher>> publisher =
        kafka::Publisher::Create((*ledger)->store(), kafka::ProducerSettings{*brokers, args->shard, kafka::kAckTimeoutMs});
    if (!publisher.ok()) return Fail(kExitBadInput, publisher.status().ToString());
    // Catch up: whatever was committed before a crash but not yet published.
    const Status published = PublishPatiently(**publisher, (*ledger)->last_sequence());
    if (!published.ok()) return Fail(kExitFailure, published.ToString());
    spdlog::info("serve: shard {} at sequence {}, commands from offset {}, ack={}", args->shard,
                 (*ledger)->last_sequence(), reader->offset, ack);

    ServeContext serve{**ledger, **publisher, *reader->reader, args->shard, ack == "kafka"};
    const Status served = ServeCommands(serve);
    if (served.code() == StatusCode::kNotFound) {
      return Fail(kExitFailure,
                  "serve: stopping, nothing skipped: " + served.message() +
                      " (records gone or the topic replaced while serving; a restart checks the "
                      "stored offset and refuses unless --accept-command-gap)");
    }
    if (!served.ok() && served.code() != StatusCode::kAborted) return Fail(kExitFailure, served.ToString());
    const Status drained = Drain(**ledger, **publisher, options->signer != nullptr);
    if (!drained.ok()) return Fail(kExitFailure, drained.ToString());
    spdlog::info("serve: stopped at sequence {}", (*ledger)->last_sequence());
    return kExitOk;
  };
}

Runner AddTail(CLI::App& app) {
  struct Args {
    std::string brokers;
    uint32_t partition = 0;
    bool from_beginning = false;
    bool json = false;
    int64_t max_records = -1;
    int64_t idle_exit_ms = -1;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--brokers", args->brokers, "Kafka bootstrap servers")->required();
  app.add_option("--partition", args->partition, "partition (shard)")->capture_default_str();
  app.add_flag("--from-beginning", args->from_beginning, "start at the oldest record kept");
  app.add_flag("--json", args->json, "JSON Lines output (the only format)");
  app.add_option("--max", args->max_records, "stop after this many events");
  app.add_option("--idle-exit-ms", args->idle_exit_ms, "stop when no event arrived for this long");
  return [args]() {
    InstallStopHandlers();
    int64_t start = -1;
    if (!args->from_beginning) {
      Result<std::unique_ptr<kafka::PartitionReader>> probe =
          kafka::PartitionReader::Open(args->brokers, kafka::kEventsTopic, args->partition, -1);
      if (!probe.ok()) return Fail(kExitFailure, probe.status().ToString());
      Result<int64_t> high = (*probe)->HighWatermark(kafka::kWatermarksTimeoutMs);
      if (!high.ok()) return Fail(kExitFailure, high.status().ToString());
      start = *high;
    }
    Result<std::unique_ptr<kafka::PartitionReader>> reader =
        kafka::PartitionReader::Open(args->brokers, kafka::kEventsTopic, args->partition, start);
    if (!reader.ok()) return Fail(kExitFailure, reader.status().ToString());
    int64_t printed = 0;
    auto last_seen = std::chrono::steady_clock::now();
    while (!g_stop.load() && (args->max_records < 0 || printed < args->max_records)) {
      Result<std::vector<kafka::Record>> records = (*reader)->Poll(1024, 100);
      if (!records.ok()) return Fail(kExitFailure, records.status().ToString());
      if (records->empty()) {
        const auto idle = std::chrono::steady_clock::now() - last_seen;
        if (args->idle_exit_ms >= 0 && idle > std::chrono::milliseconds(args->idle_exit_ms)) break;
        continue;
      }
      last_seen = std::chrono::steady_clock::now();
      for (const kafka::Record& record : *records) {
        Result<DecodedEvent> decoded = DecodeEventRecord(record.value);
        if (!decoded.ok()) return Fail(kExitFailure, "offset " + std::to_string(record.offset) + ": " + decoded.status().message());
        std::string line = EventToJson(*decoded) + "\n";
        std::fputs(line.c_str(), stdout);
        if (args->max_records >= 0 && ++printed >= args->max_records) break;
      }
      std::fflush(stdout);
    }
    std::fflush(stdout);
    return kExitOk;
  };
}

Runner AddProject(CLI::App& app) {
  auto options = std::make_shared<ProjectionRunnerOptions>();
  options->data_dir = "./projection-data";
  auto idle_exit_ms = std::make_shared<int64_t>(-1);
  app.add_option("--brokers", options->brokers, "Kafka bootstrap servers")->required();
  app.add_option("--group", options->group, "consumer group")->required();
  app.add_option("--data", options->data_dir, "folder for the views (one store per partition)")->capture_default_str();
  app.add_option("--idle-exit-ms", *idle_exit_ms, "stop when no event arrived for this long");
  return [options, idle_exit_ms]() {
    InstallStopHandlers();
    Result<std::unique_ptr<ProjectionRunner>> runner = ProjectionRunner::Open(*options);
    if (!runner.ok()) return Fail(ExitCodeFor(runner.status()), runner.status().ToString());
    auto last_applied = std::chrono::steady_clock::now();
    uint64_t total = 0;
    while (!g_stop.load()) {
      Result<size_t> applied = (*runner)->RunOnce(4096, 100);
      if (!applied.ok()) return Fail(kExitFailure, applied.status().ToString());
      total += *applied;
      if (*applied > 0) {
        last_applied = std::chrono::steady_clock::now();
      } else if (*idle_exit_ms >= 0 &&
                 // Before the first event, allow for the consumer group's first rebalance too.
                 std::chrono::steady_clock::now() - last_applied >
                     std::chrono::milliseconds(total > 0 ? *idle_exit_ms : std::max<int64_t>(*idle_exit_ms, 30'000))) {
        break;
      }
    }
    spdlog::info("project: applied {} events", total);
    return kExitOk;
  };
}

}  // namespace ledger::cli
