// `ledger bench`: an end-to-end load generator through the path real commands take (JSON parse, validation,
// group commit with a synced WAL, publication to Kafka before the acknowledgement). `--through ledger` (the
// default) calls the ledger in-process; `--through serve` produces the measured commands to ledger.commands
// and counts the results a shard service (the library behind `ledger serve`) publishes on ledger.results.
// The load itself (workload, set-up and measured phases, measurements) is bench/load.h and
// bench/serve_load.h; this file reads the options, opens the ledger and Kafka, and prints the report.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>

#include "bench/load.h"
#include "bench/process_stats.h"
#include "bench/serve_load.h"
#include "cli/commands.h"
#include "cli_common.h"
#include "core/signing.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"
#include "ledger/ledger.h"

namespace ledger::cli {
namespace {

constexpr int64_t kPublishDeadlineMs = 120'000;

struct BenchArgs {
  std::string data_dir;
  bench::LoadShape shape;
  double rate = 0;
  int closed_loop = 0;
  std::string kafka = "embedded";
  std::string through = "ledger";
  std::string sync = "on";
  bool signed_commands = false;
  bool json = false;
  double progress_seconds = 0;
};

void AddBenchOptions(CLI::App& app, BenchArgs* args) {
  app.add_option("--data", args->data_dir, "a fresh data folder (must not exist or be empty)")->required();
  app.add_option("--commands", args->shape.commands, "measured commands")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}));
  app.add_option("--customers", args->shape.customers, "customers")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  app.add_option("--merchants", args->shape.merchants, "merchants")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  auto* rate = app.add_option("--rate", args->rate, "open loop: offer this many commands per second");
  auto* closed =
      app.add_option(
             "--closed-loop", args->closed_loop,
             "closed loop: K commands outstanding (default: two groups, one staging while one commits)")
          ->check(CLI::Range(1, 1'000'000));
  rate->excludes(closed);
  app.add_option("--kafka", args->kafka, "none, embedded, or a broker list")->capture_default_str();
  app.add_option("--through", args->through,
                 "ledger: call the ledger in-process; serve: through ledger.commands, a shard service and "
                 "ledger.results (needs --kafka embedded)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ledger", "serve"}));
  app.add_flag("--signed", args->signed_commands,
               "with --through serve: sign every command with a producer key the set-up registers (signed "
               "before measuring); serve checks each signature");
  app.add_option("--sync", args->sync, "on: fsync the WAL at every group commit; off: benchmark only")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--seed", args->shape.seed, "workload seed")->capture_default_str();
  app.add_flag("--json", args->json, "one JSON object instead of the text report");
  app.add_option("--progress", args->progress_seconds,
                 "every this many seconds, one line on stderr: commands done, rate since the last line, RSS")
      ->check(CLI::Range(0.0, 3600.0));
}

// One `--progress` line on stderr: how far, how fast lately, and where the memory is.
void PrintProgress(const Ledger& ledger, const bench::LoadProgress& progress) {
  const StoreMemory memory = ledger.store().Memory();
  constexpr double kMiB = 1 << 20;
  std::fprintf(
      stderr,
      "bench: %.0f s: %lld commands, %.0f commands/s in the last %.0f s, RSS %.1f MiB (memtables %.1f, "
      "block cache %.1f of which pinned %.1f, table readers %.1f, state cache %.1f)\n",
      progress.elapsed_seconds, static_cast<long long>(progress.commands_done),
      static_cast<double>(progress.recent_commands) / progress.recent_seconds, progress.recent_seconds,
      bench::CurrentRssMiB(), memory.memtables / kMiB, memory.block_cache / kMiB,
      memory.block_cache_pinned / kMiB, memory.table_readers / kMiB, ledger.state_cache_bytes() / kMiB);
}

void PrintJsonReport(const BenchArgs& args, size_t outstanding, const bench::SetupReport& setup,
                     const bench::MeasuredReport& measured, uint64_t events_published) {
  const bench::LatencyHistogram& latency = measured.latency;
  const int64_t commands = args.shape.commands;
  nlohmann::ordered_json out;
  out["commands"] = commands;
  out["seconds"] = measured.seconds;
  out["commands_per_second"] = static_cast<double>(commands) / measured.seconds;
  out["mode"] = args.rate > 0 ? "open_loop" : "closed_loop";
  if (args.rate > 0)
    out["offered_rate"] = args.rate;
  else
    out["outstanding"] = outstanding;
  out["through"] = args.through;
  out["kafka"] = args.kafka;
  out["sync"] = args.sync == "on";
  out["latency_ms"] = {{"p50", latency.Quantile(0.50) / 1e3},
                       {"p99", latency.Quantile(0.99) / 1e3},
                       {"p99_9", latency.Quantile(0.999) / 1e3},
                       {"max", latency.max() / 1e3}};
  out["peak_rss_mib"] = bench::PeakRssMiB();
  out["bytes_written_per_command"] =
      static_cast<double>(measured.bytes_written) / static_cast<double>(commands);
  out["events"] = measured.events;
  out["accepted"] = measured.tally.accepted;
  out["rejected"] = measured.tally.rejected;
  out["duplicates"] = measured.tally.duplicates;
  out["setup"] = {{"commands", setup.commands}, {"seconds", setup.seconds}, {"rejected", setup.rejected}};
  out["events_published"] = events_published;
  std::printf("%s\n", out.dump().c_str());
}

void PrintTextReport(const BenchArgs& args, const bench::SetupReport& setup,
                     const bench::MeasuredReport& measured) {
  const bench::LatencyHistogram& latency = measured.latency;
  const int64_t commands = args.shape.commands;
  std::printf("ledger bench: %lld commands in %.2f s = %.0f commands/s (%s, kafka %s, sync %s) through %s\n",
              static_cast<long long>(commands), measured.seconds,
              static_cast<double>(commands) / measured.seconds, args.rate > 0 ? "open loop" : "closed loop",
              args.kafka.c_str(), args.sync.c_str(), args.through.c_str());
  std::printf("  acknowledgement latency ms: p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
              latency.Quantile(0.50) / 1e3, latency.Quantile(0.99) / 1e3, latency.Quantile(0.999) / 1e3,
              latency.max() / 1e3);
  std::printf("  peak RSS %.1f MiB; %.0f bytes written per command; %llu events\n", bench::PeakRssMiB(),
              static_cast<double>(measured.bytes_written) / static_cast<double>(commands),
              static_cast<unsigned long long>(measured.events));
  std::printf("  accepted %lld, rejected %lld, duplicates %lld; set-up %lld commands in %.2f s\n",
              static_cast<long long>(measured.tally.accepted),
              static_cast<long long>(measured.tally.rejected),
              static_cast<long long>(measured.tally.duplicates), static_cast<long long>(setup.commands),
              setup.seconds);
}

// One `--progress` line of a run through serve: the service owns the store, so only the process's memory.
void PrintServeProgress(const bench::LoadProgress& progress) {
  std::fprintf(stderr,
               "bench: %.0f s: %lld commands answered, %.0f commands/s in the last %.0f s, RSS %.1f MiB\n",
               progress.elapsed_seconds, static_cast<long long>(progress.commands_done),
               static_cast<double>(progress.recent_commands) / progress.recent_seconds,
               progress.recent_seconds, bench::CurrentRssMiB());
}

void PrintReport(const BenchArgs& args, size_t outstanding, const bench::SetupReport& setup,
                 const bench::MeasuredReport& measured, uint64_t events_published) {
  if (args.json) {
    PrintJsonReport(args, outstanding, setup, measured, events_published);
  } else {
    PrintTextReport(args, setup, measured);
  }
}

// The options of a run that are wrong together, or "" when none is.
std::string CheckBenchArgs(const BenchArgs& args) {
  std::error_code error;
  if (std::filesystem::exists(args.data_dir, error) && !std::filesystem::is_empty(args.data_dir, error)) {
    return "--data " + args.data_dir + " is not empty; bench writes into a fresh folder";
  }
  if (args.rate < 0) return "--rate must be positive";
  // The service reads the commands partition from its beginning: only a fresh embedded broker holds no
  // commands of an earlier run.
  if (args.through == "serve" && args.kafka != "embedded") return "--through serve needs --kafka embedded";
  if (args.signed_commands && args.through != "serve") return "--signed needs --through serve";
  return "";
}

// Makes a producer key pair in `data_dir`/bench-producer and registers it as an operator's, published.
Result<std::unique_ptr<Signer>> RegisterBenchProducer(Ledger& ledger, const std::string& data_dir,
                                                      const bench::PublishThrough& publish) {
  const std::string dir = data_dir + "/bench-producer";
  LEDGER_RETURN_IF_ERROR(GenerateKeyPair(dir, "producer"));
  std::ifstream in(dir + "/producer.pub");
  const std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string line = nlohmann::json{
      {"type", "add_producer_key"},
      {"command_id", "bench-producer"},
      {"producer", "bench"},
      {"role", "operator"},
      {"public_key_pem", pem}}.dump();
  Result<CommandResult> result = SubmitOne(ledger, line);
  if (!result.ok()) return result.status();
  if (result->kind != CommandResult::Kind::kAccepted)
    return Status::Internal("the bench's producer key was refused: " + result->reason + " " + result->detail);
  if (publish) LEDGER_RETURN_IF_ERROR(publish(ledger.durable_sequence()));
  return Signer::FromPemFile(dir + "/producer.key");
}

int RunBench(const BenchArgs& args) {
  if (const std::string wrong = CheckBenchArgs(args); !wrong.empty()) return Fail(kExitBadInput, wrong);
  WriteOptions write;
  write.data_dir = args.data_dir;
  write.clock = "occurred";  // the synthetic timeline, whatever the wall clock says
  write.no_sync = args.sync == "off";
  Result<LedgerOptions> options = MakeLedgerOptions(write);
  if (!options.ok()) return Fail(kExitBadInput, options.status().message());
  const size_t group_max = options->config.group_commands_max;
  const size_t outstanding = args.closed_loop > 0 ? static_cast<size_t>(args.closed_loop) : 2 * group_max;
  Result<std::unique_ptr<Ledger>> opened = Ledger::Open(*options);
  if (!opened.ok()) return Fail(ExitCodeFor(opened.status()), opened.status().ToString());
  std::unique_ptr<Ledger> ledger = std::move(opened).value();

  std::unique_ptr<kafka::EmbeddedBroker> embedded;
  std::string brokers = args.kafka == "none" ? "" : args.kafka;
  if (args.kafka == "embedded") {
    Result<std::unique_ptr<kafka::EmbeddedBroker>> started = kafka::EmbeddedBroker::Start(1);
    if (!started.ok()) return Fail(kExitFailure, started.status().ToString());
    embedded = std::move(started).value();
    brokers = embedded->bootstrap();
  }
  std::unique_ptr<kafka::Publisher> publisher;
  bench::PublishThrough publish;
  if (!brokers.empty()) {
    Result<std::unique_ptr<kafka::Publisher>> created = kafka::Publisher::Create(
        ledger->store(), kafka::ProducerSettings{brokers, options->config.shard, kafka::kAckTimeoutMs});
    if (!created.ok()) return Fail(kExitBadInput, created.status().ToString());
    publisher = std::move(created).value();
    publish = [&publisher](uint64_t through) {
      return publisher->PublishThrough(through, kPublishDeadlineMs);
    };
  }

  // Set-up goes through the ledger directly in both modes, published before the measured phase.
  const Result<bench::SetupReport> setup = bench::RunSetup(*ledger, args.shape, publish);
  if (!setup.ok()) return Fail(kExitFailure, "set-up: " + setup.status().ToString());
  bench::Pacing pacing;
  pacing.rate = args.rate;
  pacing.outstanding = outstanding;
  pacing.progress_seconds = args.progress_seconds;
  if (args.through == "serve") {
    std::shared_ptr<const Signer> producer_key;
    if (args.signed_commands) {
      Result<std::unique_ptr<Signer>> registered = RegisterBenchProducer(*ledger, args.data_dir, publish);
      if (!registered.ok()) return Fail(kExitFailure, "set-up: " + registered.status().ToString());
      producer_key = std::move(registered).value();
    }
    // The service opens the store itself: the set-up's ledger and publisher close first.
    publish = nullptr;
    publisher.reset();
    ledger.reset();
    pacing.on_progress = PrintServeProgress;
    const Result<bench::ServeMeasuredReport> served = bench::RunMeasuredThroughServe(
        bench::ServeThrough{*options, brokers, producer_key}, args.shape, pacing);
    if (!served.ok()) return Fail(kExitFailure, "through serve: " + served.status().ToString());
    PrintReport(args, outstanding, *setup, served->measured, served->events_published);
    return kExitOk;
  }
  pacing.on_progress = [&ledger](const bench::LoadProgress& progress) { PrintProgress(*ledger, progress); };
  // Returns only once no group is in flight, so the publisher may go away after it.
  const Result<bench::MeasuredReport> measured = bench::RunMeasured(*ledger, args.shape, pacing, publish);
  if (!measured.ok()) return Fail(kExitFailure, measured.status().ToString());
  PrintReport(args, outstanding, *setup, *measured, publisher ? publisher->events_published() : 0);
  return kExitOk;
}

}  // namespace

Runner AddBench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  AddBenchOptions(app, args.get());
  return [args]() { return RunBench(*args); };
}

}  // namespace ledger::cli
