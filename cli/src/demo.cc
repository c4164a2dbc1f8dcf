// ledger demo: a realistic payment day in a fresh data folder, then a short summary.
#include <nlohmann/json.hpp>

#include <chrono>
#include <spdlog/spdlog.h>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/signing.h"
#include <map>
#include <memory>

#include "cli_common.h"
#include "cli/commands.h"
#include "ledger/command.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"
#include <thread>
#include <csignal>
#include "ledger/ledger.h"
#include "core/money.h"
#include "state/records.h"
#include "state/trial_balance.h"
#include "bench/workload.h"

namespace ledger::cli {

Runner AddDemo(CLI::App& app) {
  struct Args {
    std::string data_dir = "./ledger-data";
    workload::Shape shape;
    bool fresh = false;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->data_dir, "data folder to create")->capture_default_str();
  app.add_option("--customers", args->shape.customers, "customers")->capture_default_str()->check(CLI::Range(1, 1'000'000));
  app.add_option("--merchants", args->shape.merchants, "merchants")->capture_default_str()->check(CLI::Range(1, 100'000));
  app.add_option("--payments", args->shape.payments, "payments")->capture_default_str()->check(CLI::Range(1, 10'000'000));
  app.add_option("--seed", args->shape.seed, "random seed (same seed, same day)")->capture_default_str();
  app.add_flag("--fresh", args->fresh, "delete an existing ledger data folder first");
  app.add_flag("--json", args->json, "JSON summary");
  auto brokers = std::make_shared<std::string>();
  auto serve_seconds = std::make_shared<int>(0);
  app.add_option("--brokers", *brokers, "publish to this Kafka cluster instead of the embedded broker");
  app.add_option("--serve-seconds", *serve_seconds, "keep the embedded broker up this long after the day, for other clients")
      ->capture_default_str()->check(CLI::Range(0, 86400));
  return [args, brokers, serve_seconds]() {
    namespace fs = std::filesystem;
    std::error_code error;
    const fs::path dir(args->data_dir);
    if (fs::exists(dir, error) && !fs::is_empty(dir, error)) {
      if (!args->fresh) return Fail(kExitBadInput, args->data_dir + " is not empty (use --fresh to replace a ledger there)");
      if (!fs::exists(dir / "CURRENT", error)) return Fail(kExitBadInput, args->data_dir + " holds no ledger; refusing to delete it");
      fs::remove_all(dir, error);
      if (error) return Fail(kExitFailure, "cannot delete " + args->data_dir + ": " + error.message());
    }
    const auto started = std::chrono::steady_clock::now();
    const std::vector<std::string> lines = workload::MakeDay(args->shape);
    std::vector<ParsedCommand> commands;
    commands.reserve(lines.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      Result<ParsedCommand> parsed = ParseCommandJson(lines[i]);
      if (!parsed.ok()) return Fail(kExitFailure, "demo line " + std::to_string(i + 1) + ": " + parsed.status().message());
      commands.push_back(std::move(parsed).value());
    }
    // An audit key pair for the day's signed checkpoints (every 10,000 events and at the end), configured in
    // the folder's ledger.toml so `ledger checkpoint` and later runs keep signing with it.
    const std::string key_dir = args->data_dir + "/audit-keys";
    const Status keys = GenerateKeyPair(key_dir);
    if (!keys.ok()) return Fail(kExitFailure, keys.message());
    {
      std::ofstream toml(args->data_dir + "/ledger.toml");
      toml << "# written by `ledger demo`\n[audit]\nprivate_key = \"audit-keys/ledger-signing.key\"\n"
             "public_key = \"audit-keys/ledger-signing.pub\"\ncheckpoint_every = 10000\n";
      if (!toml) return Fail(kExitFailure, "cannot write " + args->data_dir + "/ledger.toml");
    }
    WriteOptions write_options;
    write_options.data_dir = args->data_dir;
    write_options.clock = "occurred";  // the day is in the past: trust each command's occurred_at
    Result<LedgerOptions> made_options = MakeLedgerOptions(write_options);
    if (!made_options.ok()) return Fail(kExitFailure, made_options.status().ToString());
    LedgerOptions options = *made_options;
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options);
    if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());

    std::map<std::string, int64_t> by_status, by_reason, accepted_by_type;
    std::vector<const ParsedCommand*> in_order;
    size_t next = 0;
    const Status status = (*ledger)->SubmitAll(commands, [&](std::span<const CommandResult> results) {
      for (const CommandResult& result : results) {
        const ParsedCommand& command = commands[next++];
        if (result.kind == CommandResult::Kind::kAccepted) {
          by_status["accepted"] += 1;
          accepted_by_type[command.type] += 1;
        } else if (result.kind == CommandResult::Kind::kRejected) {
          by_status["rejected"] += 1;
          by_reason[result.reason] += 1;
        } else {
          by_status["duplicate"] += 1;
        }
      }
    });
    if (!status.ok()) return Fail(kExitFailure, status.ToString());
    if ((*ledger)->last_sequence() > (*ledger)->last_checkpoint_covered() + 1) {
      Result<uint64_t> checkpoint = (*ledger)->WriteCheckpoint();  // the day ends with a signed checkpoint
      if (!checkpoint.ok()) return Fail(kExitFailure, checkpoint.status().ToString());
    }
    // Publish the day: through the embedded broker unless a cluster was named.
    std::unique_ptr<kafka::EmbeddedBroker> embedded;
    std::string bootstrap = *brokers;
    if (bootstrap.empty()) {
      Result<std::unique_ptr<kafka::EmbeddedBroker>> started = kafka::EmbeddedBroker::Start(1);
      if (!started.ok()) return Fail(kExitFailure, started.status().ToString());
      embedded = std::move(started).value();
      bootstrap = embedded->bootstrap();
    }
    Result<std::unique_ptr<kafka::Publisher>> publisher =
        kafka::Publisher::Create((*ledger)->store(), kafka::ProducerSettings{bootstrap, 0, kafka::kAckTimeoutMs});
    if (!publisher.ok()) return Fail(kExitBadInput, publisher.status().ToString());
    const Status published = (*publisher)->PublishThrough((*ledger)->last_sequence(), 300'000);
    if (!published.ok()) return Fail(kExitFailure, published.ToString());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

    // Totals from the projections the ledger just wrote.
    Store& store = (*ledger)->store();
    const Result<TrialBalance> trial = SumBalances(store);
    if (!trial.ok()) return Fail(kExitFailure, trial.status().ToString());
    const __int128 sums[2] = {trial->cny_minor, trial->points};
    int64_t order_total = 0, fee_total = 0, refunded_total = 0, reversed = 0, payments = 0;
    store.ScanState(keys::kPaymentPrefix, [&](std::string_view, std::string_view value) {
      const auto* payment = flatbuffers::GetRoot<fb::PaymentRecord>(value.data());
      payments += 1;
      order_total += payment->order_amount_minor();
      // A reversal gives the whole fee back; a refund gives back its share.
      if (payment->status() != fb::PaymentStatus::reversed) fee_total += payment->fee_minor() - payment->refunded_fee_minor();
      refunded_total += payment->refunded_amount_minor();
      reversed += payment->status() == fb::PaymentStatus::reversed;
      return true;
    }).IgnoreError();
    std::string fee_income;
    fb::BalanceRecordT fee_record;
    LoadRecord(store.state(), keys::Balance("gl:fee_income"), &fee_record);

    nlohmann::ordered_json out;
    out["data_dir"] = args->data_dir;
    out["commands"] = commands.size();
    out["accepted"] = by_status["accepted"];
    out["rejected"] = by_status["rejected"];
    out["duplicates"] = by_status["duplicate"];
    out["accepted_by_type"] = accepted_by_type;
    out["rejected_by_reason"] = by_reason;
    out["events_written"] = (*ledger)->last_sequence();
    out["chain_head"] = ToHex((*ledger)->chain_head());
    out["payments"] = {{"count", payments}, {"reversed", reversed}, {"order_amount_minor", order_total},
                       {"refunded_minor", refunded_total}, {"net_fees_minor", fee_total},
                       {"fee_income_balance_minor", fee_record.balance_minor}};
    out["sum_by_unit"] = {{"CNY", static_cast<int64_t>(sums[0])}, {"POINTS", static_cast<int64_t>(sums[1])}};
    out["kafka"] = {{"bootstrap", bootstrap}, {"embedded", embedded != nullptr},
                    {"events_published", (*publisher)->events_published()}};
    out["seconds"] = seconds;
    if (args->json) {
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("ledger demo: %zu commands in %.2f s into %s\n", commands.size(), seconds, args->data_dir.c_str());
      std::printf("  accepted %lld, rejected %lld, duplicates %lld; events written %llu\n",
                  static_cast<long long>(by_status["accepted"]), static_cast<long long>(by_status["rejected"]),
                  static_cast<long long>(by_status["duplicate"]),
                  static_cast<unsigned long long>((*ledger)->last_sequence()));
      std::printf("  rejected by reason:");
      for (const auto& [reason, count] : by_reason) std::printf(" %s=%lld", reason.c_str(), static_cast<long long>(count));
      std::printf("\n  payments %lld (reversed %lld): orders %s CNY, refunded %s CNY, net fees %s CNY\n",
                  static_cast<long long>(payments), static_cast<long long>(reversed), FormatYuan(order_total).c_str(),
                  FormatYuan(refunded_total).c_str(), FormatYuan(fee_total).c_str());
      std::printf("  sum of all balances: CNY %lld, POINTS %lld (double entry: always 0)\n",
                  static_cast<long long>(sums[0]), static_cast<long long>(sums[1]));
      std::printf("  chain head %s\n", ToHex((*ledger)->chain_head()).c_str());
      std::printf("  kafka: %s broker at %s, %llu event records published (events written: %llu)\n",
                  embedded ? "embedded" : "external", bootstrap.c_str(),
                  static_cast<unsigned long long>((*publisher)->events_published()),
                  static_cast<unsigned long long>((*ledger)->last_sequence()));
      std::printf("  signed checkpoints up to sequence %llu; verify: ledger replay --data %s --pubkey %s/ledger-signing.pub\n",
                  static_cast<unsigned long long>((*ledger)->last_checkpoint_covered()), args->data_dir.c_str(), key_dir.c_str());
      std::printf("  try: ledger balance --data %s --all --json | tail -c 200\n", args->data_dir.c_str());
    }
    std::fflush(stdout);
    if (embedded && *serve_seconds > 0) {
      spdlog::info("demo: embedded broker stays at {} for {} s (Ctrl-C ends it)", bootstrap, *serve_seconds);
      sigset_t signals;
      sigemptyset(&signals);
      sigaddset(&signals, SIGINT);
      sigaddset(&signals, SIGTERM);
      sigprocmask(SIG_BLOCK, &signals, nullptr);
      timespec wait{*serve_seconds, 0};
      sigtimedwait(&signals, nullptr, &wait);
    }
    return sums[0] == 0 && sums[1] == 0 ? kExitOk : Fail(kExitFailure, "balances do not sum to zero");
  };
}

}  // namespace ledger::cli
