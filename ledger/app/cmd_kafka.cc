// Kafka-facing commands: broker, serve, tail. See README: Kafka.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "cli_common.h"
#include "commands.h"
#include "ledger/event.h"
#include "ledger/kafka.h"
#include "ledger/ledger.h"
#include "ledger/projection_runner.h"

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

Runner AddServe(CLI::App& app) {
  struct Args {
    WriteOptions write;
    std::string brokers;
    uint32_t shard = 0;
    uint32_t shards = 1;
    int replication_factor = 1;
    std::string ack;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->write.data_dir, "data folder")->capture_default_str();
  app.add_option("--brokers", args->brokers, "Kafka bootstrap servers; none: start the embedded broker");
  app.add_option("--shard", args->shard, "this shard: consumes commands partition K, writes events partition K")->capture_default_str();
  app.add_option("--shards", args->shards, "number of shards (partitions per topic)")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--replication-factor", args->replication_factor, "replication of topics this command creates")->capture_default_str();
  app.add_option("--ack", args->ack, "kafka: acknowledge after Kafka has the events (default); local: after the local commit")
      ->check(CLI::IsMember({"kafka", "local"}));
  app.add_option("--clock", args->write.clock, "system or occurred")->capture_default_str();
  app.add_option("--now", args->write.now, "fix the ledger clock (ISO 8601)");
  return [args]() {
    InstallStopHandlers();
    if (args->shard >= args->shards) return Fail(kExitBadInput, "--shard must be below --shards");
    Result<LedgerOptions> options = MakeLedgerOptions(args->write);
    if (!options.ok()) return Fail(kExitBadInput, options.status().message());
    options->config.shard = args->shard;
    const std::string ack = args->ack.empty() ? options->config.kafka_ack : args->ack;
    std::string brokers = args->brokers.empty() ? options->config.kafka_brokers : args->brokers;
    std::unique_ptr<kafka::EmbeddedBroker> embedded;
    if (brokers.empty()) {
      Result<std::unique_ptr<kafka::EmbeddedBroker>> started = kafka::EmbeddedBroker::Start(static_cast<int>(args->shards));
      if (!started.ok()) return Fail(kExitFailure, started.status().ToString());
      embedded = std::move(started).value();
      brokers = embedded->bootstrap();
    } else {
      const Status topics = kafka::EnsureTopics(brokers, static_cast<int>(args->shards), args->replication_factor, 2000);
      if (!topics.ok()) spdlog::warn("serve: {} (continuing: the topics may exist already)", topics.message());
    }
    std::printf("bootstrap=%s\n", brokers.c_str());
    std::fflush(stdout);

    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*options);
    if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
    Result<std::unique_ptr<kafka::Publisher>> publisher =
        kafka::Publisher::Create((*ledger)->store(), kafka::ProducerSettings{brokers, args->shard, 30'000});
    if (!publisher.ok()) return Fail(kExitBadInput, publisher.status().ToString());
    // Catch up: whatever was committed before a crash but not yet published.
    Status published = PublishPatiently(**publisher, (*ledger)->last_sequence());
    if (!published.ok()) return Fail(kExitFailure, published.ToString());

    Result<std::optional<std::string>> stored_offset = (*ledger)->store().GetMeta(OffsetKey(args->shard));
    if (!stored_offset.ok()) return Fail(kExitFailure, stored_offset.status().ToString());
    const int64_t start_offset = stored_offset->has_value() ? std::stoll(**stored_offset) : -1;
    Result<std::unique_ptr<kafka::PartitionReader>> reader =
        kafka::PartitionReader::Open(brokers, kafka::kCommandsTopic, args->shard, start_offset);
    if (!reader.ok()) return Fail(kExitFailure, reader.status().ToString());
    spdlog::info("serve: shard {} at sequence {}, commands from offset {}, ack={}", args->shard,
                 (*ledger)->last_sequence(), start_offset, ack);

    const size_t group_max = (*ledger)->config().group_commands_max;
    while (!g_stop.load()) {
      Result<std::vector<kafka::Record>> records = (*reader)->Poll(group_max, kCommandPollMs);
      if (!records.ok()) {
        spdlog::warn("serve: reading commands: {}", records.status().message());
        continue;
      }
      if (records->empty()) continue;
      std::vector<CommandResult> duplicates;
      int64_t first_duplicate_offset = -1;
      for (const kafka::Record& record : *records) {
        Result<ParsedCommand> parsed = ParseCommandJson(record.value);
        CommandResult result;
        if (parsed.ok()) {
          result = (*ledger)->Stage(*parsed);
        } else {
          // Not a command at all: recorded under an id naming its place in the topic, so auditors see it.
          ParsedCommand bad;
          bad.command_id = "kafka:" + std::to_string(record.partition) + ":" + std::to_string(record.offset);
          bad.type = "unparsable";
          bad.fingerprint = Sha256Of(record.value);
          bad.malformed = parsed.status().message();
          bad.command.command_id = bad.command_id;
          spdlog::warn("serve: commands offset {}: {}", record.offset, parsed.status().message());
          result = (*ledger)->Stage(bad);
        }
        if (result.kind == CommandResult::Kind::kDuplicate) {
          if (first_duplicate_offset < 0) first_duplicate_offset = record.offset;
          duplicates.push_back(std::move(result));
        }
      }
      // A `duplicate` answer has no event to be republished from: the stored offset moves past it only once
      // the answer is acknowledged (below). Until then a crash redelivers it, and it is answered again.
      const std::string next_offset = std::to_string(records->back().offset + 1);
      (*ledger)->StageMeta(OffsetKey(args->shard),
                           first_duplicate_offset >= 0 ? std::to_string(first_duplicate_offset) : next_offset);
      const Status committed = (*ledger)->CommitGroup();
      if (!committed.ok()) return Fail(kExitFailure, committed.ToString());  // restart recovers from the WAL
      const Status checkpointed = (*ledger)->MaybeCheckpoint();
      if (!checkpointed.ok()) return Fail(kExitFailure, checkpointed.ToString());
      if (ack == "kafka") {
        published = PublishPatiently(**publisher, (*ledger)->last_sequence());
        if (published.code() == StatusCode::kAborted) break;
        if (!published.ok()) return Fail(kExitFailure, published.ToString());
      } else {
        (*publisher)->PublishThrough((*ledger)->last_sequence(), 0).IgnoreError();  // catches up later
      }
      if (!duplicates.empty()) {
        const Status sent = (*publisher)->PublishResults(duplicates, 30'000);
        if (!sent.ok()) {
          spdlog::warn("serve: duplicate results: {}", sent.message());
        } else {
          (*ledger)->StageMeta(OffsetKey(args->shard), next_offset);
          const Status moved = (*ledger)->CommitGroup();
          if (!moved.ok()) return Fail(kExitFailure, moved.ToString());
        }
      }
    }
    // Drain: a checkpoint of the final state (when a key is configured), and everything committed published.
    if (options->signer && (*ledger)->last_sequence() > (*ledger)->last_checkpoint_covered() + 1) {
      Result<uint64_t> checkpoint = (*ledger)->WriteCheckpoint();
      if (!checkpoint.ok()) return Fail(kExitFailure, checkpoint.status().ToString());
    }
    published = PublishPatiently(**publisher, (*ledger)->last_sequence());
    if (!published.ok() && published.code() != StatusCode::kAborted) return Fail(kExitFailure, published.ToString());
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
      Result<int64_t> high = (*probe)->HighWatermark(10'000);
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
