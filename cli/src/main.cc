// ledger: the command-line program. See README: Command-line reference.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <map>

#include "cli/commands.h"
#include "cli_common.h"

// The program allocates with jemalloc (CMakeLists.txt), which reads its options from this symbol. Memory
// stays within its bounds only if freed memory goes back: a background thread returns pages freed more than a
// second ago (the default keeps them ten seconds, and a 1 M-command run peaked 19 MiB higher).
extern "C" {
const char* malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}

int main(int argc, char** argv) {
  // Logs go to stderr; stdout carries results only.
  spdlog::set_default_logger(spdlog::stderr_color_mt("ledger"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"ledger: an event-sourced payment ledger (system of record for payments)"};
  app.require_subcommand(1);
  std::map<CLI::App*, ledger::cli::Runner> runners;
  auto add = [&](const char* name, const char* description, ledger::cli::Runner (*adder)(CLI::App&)) {
    CLI::App* sub = app.add_subcommand(name, description);
    runners[sub] = adder(*sub);
  };
  add("demo", "make a realistic payment day in a fresh data folder and print a summary",
      ledger::cli::AddDemo);
  add("submit", "apply JSON Lines commands from FILE or - (stdin); print one result per line",
      ledger::cli::AddSubmit);
  add("balance", "print an account's balance, or all balances with --all", ledger::cli::AddBalance);
  add("limits", "print a customer's limit usage and remaining per medium and channel",
      ledger::cli::AddLimits);
  add("events", "print events as JSON, one per line", ledger::cli::AddEvents);
  add("broker", "run the embedded Kafka broker (librdkafka's mock cluster) until SIGTERM",
      ledger::cli::AddBroker);
  add("serve", "the ledger service: commands from Kafka, events and results to Kafka", ledger::cli::AddServe);
  add("tail", "print events from the ledger.events topic as JSON", ledger::cli::AddTail);
  add("cluster-status",
      "per shard, from Kafka: head sequence, results published, commands waiting, last signed checkpoint",
      ledger::cli::AddClusterStatus);
  add("keygen", "make an Ed25519 key pair for signed checkpoints", ledger::cli::AddKeygen);
  add("checkpoint", "write a signed checkpoint of the current state now", ledger::cli::AddCheckpoint);
  add("scrub",
      "prove the live state from the events: stored records against their digests, and a rebuild key by key",
      ledger::cli::AddScrub);
  add("replay", "verify the whole history and rebuild every projection; exit 0 when everything verifies",
      ledger::cli::AddReplay);
  add("backup", "back up a stopped shard's store (RocksDB BackupEngine: incremental, checksummed)",
      ledger::cli::AddBackup);
  add("restore",
      "rebuild a lost shard's store from its ledger.events partition and/or its newest backup, verified, "
      "into an "
      "empty folder",
      ledger::cli::AddRestore);
  add("clearing", "write the clearing files of a clearing date (CSV per merchant, summary.json)",
      ledger::cli::AddClearing);
  add("reconcile",
      "reconcile a clearing date against a statement (ledger-csv or wechat): breaks.csv, report.json; exit 3 "
      "on breaks",
      ledger::cli::AddReconcile);
  add("bench",
      "end-to-end load generator: commands/s, acknowledgement latency, peak RSS, bytes written per command",
      ledger::cli::AddBench);
  add("close-day",
      "close every clearing date through --date on this shard (DayClosed; later events clear on a later "
      "date)",
      ledger::cli::AddCloseDay);
  add("clearing-job",
      "downstream clearing job: the clearing views from ledger.events (same projectors as the ledger)",
      ledger::cli::AddProject);
  add("gateway",
      "the front door: the WeChat Pay v3 merchant API and the customer API over HTTPS (prints "
      "gateway=https://HOST:PORT first)",
      ledger::cli::AddGateway);
  add("notifier",
      "the merchants' notifications for every gateway behind Kafka, from one process (the gateways run with "
      "--no-notifier; prints notifier=N shards first)",
      ledger::cli::AddNotifier);
  add("customer-enroll",
      "enrol a customer's authentication medium: what the card, device or phone holds (kit in --out), the "
      "public part recorded in the ledger, a shared secret kept by the gateway (0600)",
      ledger::cli::AddCustomerEnroll);
  add("merchant-keys",
      "onboard a merchant: its request-signing key pair, certificate and APIv3 key (kit in --out), the "
      "public "
      "key recorded in the ledger; or --revoke SERIAL",
      ledger::cli::AddMerchantKeys);
  add("producer-key",
      "register a producer's command-signing key (serve applies ledger.commands records only when a "
      "registered key signed them): a new key pair in --out, or --public-key FILE; or --revoke KEY_ID",
      ledger::cli::AddProducerKeyCommand);
  add("project", "downstream projection runner: folds ledger.events into views in its own store",
      ledger::cli::AddProject);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return ledger::cli::Fail(ledger::cli::kExitBadInput, e.what());
  }
  for (const auto& [sub, runner] : runners) {
    if (sub->parsed()) return runner();
  }
  return ledger::cli::Fail(ledger::cli::kExitBadInput, "no command given");
}
