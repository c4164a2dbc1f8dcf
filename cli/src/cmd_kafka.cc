// Kafka-facing commands: broker, serve, tail, project. See README: Kafka.
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/commands.h"
#include "cli_common.h"
#include "core/time.h"
#include "events/event.h"
#include "kafka/kafka.h"
#include "kafka/projection_runner.h"
#include "kafka/timeouts.h"
#include "ledger/ledger.h"
#include "replay/cluster_status.h"
#include "service/shard_service.h"

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

}  // namespace

Runner AddBroker(CLI::App& app) {
  struct Args {
    int partitions = 1;
    int brokers = 1;
    std::string bootstrap_file;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--partitions", args->partitions, "partitions per ledger topic")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--brokers", args->brokers, "mock brokers in the cluster")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  app.add_option("--bootstrap-file", args->bootstrap_file, "also write bootstrap=HOST:PORT,... to this file");
  return [args]() {
    InstallStopHandlers();
    Result<std::unique_ptr<kafka::EmbeddedBroker>> broker =
        kafka::EmbeddedBroker::Start(args->partitions, args->brokers);
    if (!broker.ok()) return Fail(kExitFailure, broker.status().ToString());
    const std::string line = "bootstrap=" + (*broker)->bootstrap() + "\n";
    std::fputs(line.c_str(), stdout);
    std::fflush(stdout);
    if (!args->bootstrap_file.empty()) {
      const Status written = WriteFileAtomically(args->bootstrap_file, line);
      if (!written.ok()) return Fail(kExitFailure, written.message());
    }
    spdlog::info("broker: serving {} until SIGTERM or SIGINT", (*broker)->bootstrap());
    // The broker runs on librdkafka's threads: this one only waits for a stop signal.
    constexpr auto kStopCheckInterval = std::chrono::milliseconds(50);
    while (!g_stop.load()) std::this_thread::sleep_for(kStopCheckInterval);
    spdlog::info("broker: stopping");
    return kExitOk;
  };
}

namespace {

// The exit code and message of a serve run that did not stop cleanly (README: Command-line reference).
int FailServe(const service::ServeOutcome& outcome) {
  const Status& status = outcome.status;
  switch (outcome.step) {
    case service::ServeStep::kOpenLedger:
      return Fail(ExitCodeFor(status), status.ToString());
    case service::ServeStep::kOpenCommands:
      if (status.code() == StatusCode::kAborted) return kExitOk;  // stopped before anything was consumed
      return Fail(kExitFailure, "serve: " + status.message());
    case service::ServeStep::kCreatePublisher:
      return Fail(kExitBadInput, status.ToString());
    case service::ServeStep::kServe:
      if (status.code() == StatusCode::kNotFound) {
        return Fail(kExitFailure,
                    "serve: stopping, nothing skipped: " + status.message() +
                        " (records gone or the topic replaced while serving; a restart checks the "
                        "stored offset and refuses unless --accept-command-gap)");
      }
      return Fail(kExitFailure, status.ToString());
    case service::ServeStep::kCatchUp:
    case service::ServeStep::kDrain:
      return Fail(kExitFailure, status.ToString());
  }
  return Fail(kExitFailure, status.ToString());
}

}  // namespace

Runner AddServe(CLI::App& app) {
  struct Args {
    WriteOptions write;
    service::ShardServiceOptions service;
    int64_t backup_every_seconds = 3600;
  };
  auto args = std::make_shared<Args>();
  service::ShardServiceOptions& service = args->service;
  app.add_option("--data", args->write.data_dir, "data folder")->capture_default_str();
  app.add_option("--brokers", service.brokers, "Kafka bootstrap servers; none: start the embedded broker");
  app.add_option("--shard", service.shard,
                 "this shard: consumes commands partition K, writes events partition K")
      ->capture_default_str();
  app.add_option("--shards", service.shards, "number of shards (partitions per topic)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--replication-factor", service.replication_factor,
                 "replication of topics this command creates")
      ->capture_default_str();
  app.add_option("--ack", service.ack,
                 "kafka: acknowledge after Kafka has the events (default); local: after the local commit")
      ->check(CLI::IsMember({"kafka", "local"}));
  app.add_flag("--allow-unsigned-legs", service.allow_unsigned_legs,
               "several shards without [audit] keys: legs unsigned and unverified (any writer of ledger.legs "
               "can forge them)");
  app.add_flag("--allow-unsigned-commands", service.allow_unsigned_commands,
               "apply records of ledger.commands that carry no producer signature (any writer of "
               "ledger.commands can then move money: test set-ups only); signed records are still checked");
  app.add_flag("--reread-legs", service.reread_legs,
               "read ledger.legs from its first record (legs applied before are skipped): after a leg was "
               "passed for a key another shard did not share");
  app.add_flag("--allow-ack-local", service.allow_ack_local,
               "accept --ack local (or [kafka] ack = \"local\"): answers that a lost disk can take back");
  app.add_option(
         "--accept-command-gap", service.accept_command_gap,
         "OPERATOR_NAME: when the stored commands offset no longer fits the partition (records gone, "
         "topic replaced), resume at its first kept offset and record a CommandsSkipped event naming you")
      ->check(service::CheckOperatorName);
  app.add_option("--backup-to", service.backup_dir,
                 "back the store up into this folder while serving (incremental; `ledger restore "
                 "--from-backup`)");
  app.add_option("--backup-every", args->backup_every_seconds, "seconds between backups")
      ->check(CLI::Range(int64_t{1}, int64_t{7} * 24 * 3600))
      ->capture_default_str();
  app.add_option("--backup-keep", service.backup_keep, "how many of the newest backups to keep")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--clock", args->write.clock, "system or occurred")->capture_default_str();
  app.add_option("--now", args->write.now, "fix the ledger clock (ISO 8601)");
  return [args]() {
    InstallStopHandlers();
    if (args->service.shard >= args->service.shards)
      return Fail(kExitBadInput, "--shard must be below --shards");
    args->service.backup_every = std::chrono::seconds(args->backup_every_seconds);
    if (const std::string& to = args->service.backup_dir; !to.empty()) {
      std::error_code error;
      std::filesystem::create_directories(to, error);
      if (error || !std::filesystem::is_directory(to, error))
        return Fail(kExitBadInput, "--backup-to " + to + ": not a folder it can create");
    }
    Result<LedgerOptions> options = MakeLedgerOptions(args->write);
    if (!options.ok()) return Fail(kExitBadInput, options.status().message());
    service::ShardServiceOptions service_options = args->service;
    service_options.ledger = std::move(options).value();
    if (const std::string& key = service_options.ledger.config.audit_public_key; !key.empty()) {
      Result<std::unique_ptr<SignatureVerifier>> verifier =
          SignatureVerifier::FromPemFile(UnderDataDir(args->write.data_dir, key));
      if (!verifier.ok()) return Fail(kExitBadInput, "[audit] public_key: " + verifier.status().message());
      service_options.public_key = std::move(verifier).value();
    }
    service_options.stop_requested = [] { return g_stop.load(); };
    Result<std::unique_ptr<service::ShardService>> shard =
        service::ShardService::Connect(std::move(service_options));
    if (!shard.ok()) return Fail(kExitFailure, shard.status().ToString());
    std::printf("bootstrap=%s\n", (*shard)->bootstrap().c_str());
    std::fflush(stdout);
    const service::ServeOutcome outcome = (*shard)->Run();
    return outcome.status.ok() ? kExitOk : FailServe(outcome);
  };
}

namespace {

// An instant for people: ISO 8601 in the bank's time zone, "-" for none.
std::string StatusTime(int64_t ns) {
  return ns == 0 ? std::string("-") : FormatIso8601(ns, LedgerConfig().timezone_offset_minutes);
}

template <typename T>
nlohmann::ordered_json JsonOrNull(const std::optional<T>& value) {
  return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

// The last clearing date closed: "YYYY-MM-DD", "none", or "?" when the events read cannot tell.
std::string ClosedThrough(std::optional<int> date) {
  if (!date) return "?";
  return *date == 0 ? std::string("none") : FormatDate(*date);
}

void PrintShardStatusJson(const replay::ShardStatus& status, std::optional<uint64_t> legs_in_flight) {
  const nlohmann::ordered_json out{
      {"shard", status.shard},
      {"head_sequence", status.head_sequence},
      {"last_event_at", StatusTime(status.head_recorded_at_ns)},
      {"results_through", status.results_through},
      {"commands_high", status.commands_high},
      {"commands_next", JsonOrNull(status.commands_next)},
      {"commands_lag", JsonOrNull(status.commands_lag())},
      {"legs_in_flight", JsonOrNull(legs_in_flight)},
      {"last_checkpoint_covers", JsonOrNull(status.last_checkpoint_covers)},
      {"last_checkpoint_signed_at", StatusTime(status.last_checkpoint_signed_at_ns)},
      {"last_sealed", JsonOrNull(status.last_sealed)},
      {"closed_through", ClosedThrough(status.closed_through)},
      {"owner", status.owner},
      {"key",
       status.key_id.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(status.key_id)}};
  std::printf("%s\n", out.dump().c_str());
}

void PrintShardStatusLine(const replay::ShardStatus& status, std::optional<uint64_t> legs_in_flight) {
  const std::optional<int64_t> lag = status.commands_lag();
  std::printf(
      "%-5u %12llu %12llu %10s %6s %12s %12s %-26s %-26s %-10s %-16s %s\n", status.shard,
      static_cast<unsigned long long>(status.head_sequence),
      static_cast<unsigned long long>(status.results_through), lag ? std::to_string(*lag).c_str() : "?",
      legs_in_flight ? std::to_string(*legs_in_flight).c_str() : "?",
      status.last_checkpoint_covers ? std::to_string(*status.last_checkpoint_covers).c_str() : "-",
      status.last_sealed ? std::to_string(*status.last_sealed).c_str() : "-",
      StatusTime(status.head_recorded_at_ns).c_str(), StatusTime(status.last_checkpoint_signed_at_ns).c_str(),
      ClosedThrough(status.closed_through).c_str(),
      status.key_id.empty() ? "-" : status.key_id.substr(0, 16).c_str(),
      status.owner.empty() ? "-" : status.owner.c_str());
}

// The shards' keys when they are not all one ("shard 0 KEY, shard 1 KEY"), else "". A shard that names no
// key (it signs nothing) is left out.
std::string KeysDisagree(const std::vector<std::optional<replay::ShardStatus>>& statuses) {
  std::string keys;
  std::string first;
  bool differ = false;
  for (const auto& status : statuses) {
    if (!status || status->key_id.empty()) continue;
    if (first.empty()) first = status->key_id;
    differ = differ || status->key_id != first;
    keys += (keys.empty() ? "" : ", ") + std::string("shard ") + std::to_string(status->shard) + " " +
            status->key_id.substr(0, 16);
  }
  return differ ? keys : std::string();
}

}  // namespace

Runner AddClusterStatus(CLI::App& app) {
  struct Args {
    std::string brokers;
    uint32_t shards = 1;
    bool json = false;
    std::string kafka_config;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--brokers", args->brokers, "Kafka bootstrap servers")->required();
  app.add_option("--shards", args->shards, "number of shards (partitions per topic)")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_flag("--json", args->json, "one JSON object per shard");
  AddKafkaConfigOption(app, args->kafka_config);
  return [args]() {
    if (const Status security = UseKafkaConfigFile(args->kafka_config, args->brokers); !security.ok())
      return Fail(kExitBadInput, security.message());
    // How long the cluster gets to answer for one shard.
    constexpr int64_t kShardStatusTimeoutMs = 30'000;
    std::vector<std::optional<replay::ShardStatus>> statuses(args->shards);
    bool all_read = true;
    for (uint32_t shard = 0; shard < args->shards; ++shard) {
      Result<replay::ShardStatus> status =
          replay::ReadShardStatus(args->brokers, shard, kShardStatusTimeoutMs);
      if (!status.ok()) {
        all_read = false;
        std::fprintf(stderr, "ledger: shard %u: %s\n", shard, status.status().ToString().c_str());
        continue;
      }
      statuses[shard] = std::move(status).value();
    }
    if (!args->json) {
      std::printf("%-5s %12s %12s %10s %6s %12s %12s %-26s %-26s %-10s %-16s %s\n", "shard", "head",
                  "results", "commands", "legs", "checkpoint", "sealed", "last event at",
                  "checkpoint signed at", "closed", "key", "owner");
    }
    for (uint32_t shard = 0; shard < args->shards; ++shard) {
      if (!statuses[shard]) continue;
      const std::optional<uint64_t> legs = replay::LegsInFlightTo(shard, statuses);
      if (args->json) {
        PrintShardStatusJson(*statuses[shard], legs);
      } else {
        PrintShardStatusLine(*statuses[shard], legs);
      }
    }
    if (const std::string keys = KeysDisagree(statuses); !keys.empty()) {
      std::fprintf(stderr,
                   "ledger: the shards tag legs with different keys (%s): each passes the others' legs; give "
                   "every shard the ledger's one key pair, then restart them with --reread-legs\n",
                   keys.c_str());
      return kExitFailure;
    }
    return all_read ? kExitOk : kExitFailure;
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
    std::string kafka_config;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--brokers", args->brokers, "Kafka bootstrap servers")->required();
  app.add_option("--partition", args->partition, "partition (shard)")->capture_default_str();
  app.add_flag("--from-beginning", args->from_beginning, "start at the oldest record kept");
  app.add_flag("--json", args->json, "JSON Lines output (the only format)");
  app.add_option("--max", args->max_records, "stop after this many events");
  app.add_option("--idle-exit-ms", args->idle_exit_ms, "stop when no event arrived for this long");
  AddKafkaConfigOption(app, args->kafka_config);
  return [args]() {
    if (const Status security = UseKafkaConfigFile(args->kafka_config, args->brokers); !security.ok())
      return Fail(kExitBadInput, security.message());
    // Records printed per poll at most: one stdout flush each.
    constexpr size_t kTailBatchMax = 1024;
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
      Result<std::vector<kafka::Record>> records = (*reader)->Poll(kTailBatchMax, kafka::kConsumerPollMs);
      if (!records.ok()) return Fail(kExitFailure, records.status().ToString());
      if (records->empty()) {
        const auto idle = std::chrono::steady_clock::now() - last_seen;
        if (args->idle_exit_ms >= 0 && idle > std::chrono::milliseconds(args->idle_exit_ms)) break;
        continue;
      }
      last_seen = std::chrono::steady_clock::now();
      for (const kafka::Record& record : *records) {
        Result<DecodedEvent> decoded = DecodeEventRecord(record.value);
        if (!decoded.ok())
          return Fail(kExitFailure,
                      "offset " + std::to_string(record.offset) + ": " + decoded.status().message());
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
  auto kafka_config = std::make_shared<std::string>();
  app.add_option("--brokers", options->brokers, "Kafka bootstrap servers")->required();
  app.add_option("--group", options->group, "consumer group")->required();
  app.add_option("--data", options->data_dir, "folder for the views (one store per partition)")
      ->capture_default_str();
  app.add_option("--idle-exit-ms", *idle_exit_ms, "stop when no event arrived for this long");
  AddKafkaConfigOption(app, *kafka_config);
  return [options, idle_exit_ms, kafka_config]() {
    if (const Status security = UseKafkaConfigFile(*kafka_config, options->brokers); !security.ok())
      return Fail(kExitBadInput, security.message());
    InstallStopHandlers();
    Result<std::unique_ptr<ProjectionRunner>> runner = ProjectionRunner::Open(*options);
    if (!runner.ok()) return Fail(ExitCodeFor(runner.status()), runner.status().ToString());
    auto last_applied = std::chrono::steady_clock::now();
    uint64_t total = 0;
    // Events applied per pass at most (one view commit each).
    constexpr size_t kProjectBatchMax = 4096;
    // Before the first event the idle wait allows at least this long, for the consumer group's first
    // rebalance.
    constexpr int64_t kFirstRebalanceMs = 30'000;
    while (!g_stop.load()) {
      Result<size_t> applied = (*runner)->RunOnce(kProjectBatchMax, kafka::kConsumerPollMs);
      if (!applied.ok()) return Fail(kExitFailure, applied.status().ToString());
      total += *applied;
      if (*applied > 0) {
        last_applied = std::chrono::steady_clock::now();
      } else if (*idle_exit_ms >= 0 &&
                 std::chrono::steady_clock::now() - last_applied >
                     std::chrono::milliseconds(
                         total > 0 ? *idle_exit_ms : std::max<int64_t>(*idle_exit_ms, kFirstRebalanceMs))) {
        break;
      }
    }
    spdlog::info("project: applied {} events", total);
    return kExitOk;
  };
}

}  // namespace ledger::cli
