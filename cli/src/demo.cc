// ledger demo: a realistic payment day in a fresh data folder, then a short summary.
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "bench/workload.h"
#include "cli/commands.h"
#include "cli_common.h"
#include "core/money.h"
#include "core/signing.h"
#include "core/time.h"
#include "demo_front_door.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "state/records.h"
#include "state/trial_balance.h"

namespace ledger::cli {
namespace {

struct DemoArgs {
  std::string data_dir = "./ledger-data";
  workload::Shape shape;
  bool fresh = false;
  bool json = false;
  std::string brokers;
  int serve_seconds = 0;
};

void AddDemoOptions(CLI::App& app, DemoArgs* args) {
  app.add_option("--data", args->data_dir, "data folder to create")->capture_default_str();
  app.add_option("--customers", args->shape.customers, "customers")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--merchants", args->shape.merchants, "merchants")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));
  app.add_option("--payments", args->shape.payments, "payments")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  app.add_option("--seed", args->shape.seed, "random seed (same seed, same day)")->capture_default_str();
  app.add_flag("--fresh", args->fresh, "delete an existing ledger data folder first");
  app.add_flag("--json", args->json, "JSON summary");
  app.add_option("--brokers", args->brokers, "publish to this Kafka cluster instead of the embedded broker");
  app.add_option("--serve-seconds", args->serve_seconds,
                 "keep the embedded broker up this long after the day, for other clients")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
}

// The folder must be new or empty; with --fresh, a folder holding a ledger (and only that) is deleted first.
// Returns kExitOk to go on, else the exit code (the reason printed).
int PrepareFolder(const DemoArgs& args) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path dir(args.data_dir);
  if (!fs::exists(dir, error) || fs::is_empty(dir, error)) return kExitOk;
  if (!args.fresh)
    return Fail(kExitBadInput, args.data_dir + " is not empty (use --fresh to replace a ledger there)");
  if (!fs::exists(dir / "CURRENT", error))
    return Fail(kExitBadInput, args.data_dir + " holds no ledger; refusing to delete it");
  fs::remove_all(dir, error);
  if (error) return Fail(kExitFailure, "cannot delete " + args.data_dir + ": " + error.message());
  return kExitOk;
}

// An audit key pair for the day's signed checkpoints (every 10,000 events and at the end), configured in the
// folder's ledger.toml so `ledger checkpoint` and later runs keep signing with it. Returns kExitOk or the
// exit code (the reason printed).
int WriteAuditConfig(const std::string& data_dir, const std::string& key_dir) {
  const Status keys = GenerateKeyPair(key_dir);
  if (!keys.ok()) return Fail(kExitFailure, keys.message());
  std::ofstream toml(data_dir + "/ledger.toml");
  toml << "# written by `ledger demo`\n[audit]\nprivate_key = \"audit-keys/ledger-signing.key\"\n"
          "public_key = \"audit-keys/ledger-signing.pub\"\ncheckpoint_every = 10000\n";
  if (!toml) return Fail(kExitFailure, "cannot write " + data_dir + "/ledger.toml");
  return kExitOk;
}

// What the day's commands came to.
struct DayOutcomes {
  std::map<std::string, int64_t> by_status, by_reason, accepted_by_type;
};

Status SubmitDay(Ledger& ledger, const std::vector<ParsedCommand>& commands, DayOutcomes* outcomes) {
  size_t next = 0;
  return ledger.SubmitAll(commands, [&](std::span<const CommandResult> results) {
    for (const CommandResult& result : results) {
      const ParsedCommand& command = commands[next++];
      if (result.kind == CommandResult::Kind::kAccepted) {
        outcomes->by_status["accepted"] += 1;
        outcomes->accepted_by_type[command.type] += 1;
      } else if (result.kind == CommandResult::Kind::kRejected) {
        outcomes->by_status["rejected"] += 1;
        outcomes->by_reason[result.reason] += 1;
      } else {
        outcomes->by_status["duplicate"] += 1;
      }
    }
  });
}

// Where the day was published.
struct Publication {
  std::unique_ptr<kafka::EmbeddedBroker> embedded;  // null when --brokers named a cluster
  std::string bootstrap;
  std::unique_ptr<kafka::Publisher> publisher;
};

// Publishes the day: through the embedded broker unless a cluster was named. Returns kExitOk or the exit code
// (the reason printed).
int PublishDay(Ledger& ledger, const std::string& brokers, Publication* publication) {
  publication->bootstrap = brokers;
  if (publication->bootstrap.empty()) {
    Result<std::unique_ptr<kafka::EmbeddedBroker>> started = kafka::EmbeddedBroker::Start(1);
    if (!started.ok()) return Fail(kExitFailure, started.status().ToString());
    publication->embedded = std::move(started).value();
    publication->bootstrap = publication->embedded->bootstrap();
  }
  Result<std::unique_ptr<kafka::Publisher>> publisher = kafka::Publisher::Create(
      ledger.store(), kafka::ProducerSettings{publication->bootstrap, 0, kafka::kAckTimeoutMs});
  if (!publisher.ok()) return Fail(kExitBadInput, publisher.status().ToString());
  publication->publisher = std::move(publisher).value();
  const Status published = publication->publisher->PublishThrough(ledger.last_sequence(), 300'000);
  if (!published.ok()) return Fail(kExitFailure, published.ToString());
  return kExitOk;
}

// Totals from the projections the ledger just wrote.
struct DayTotals {
  __int128 sums[2] = {0, 0};  // CNY, POINTS
  int64_t order_total = 0, fee_total = 0, refunded_total = 0, reversed = 0, payments = 0;
  int64_t fee_income_balance = 0;
};

Result<DayTotals> SumDay(Store& store) {
  DayTotals totals;
  const Result<TrialBalance> trial = SumBalances(store);
  if (!trial.ok()) return trial.status();
  totals.sums[0] = trial->cny_minor;
  totals.sums[1] = trial->points;
  store
      .ScanState(keys::kPaymentPrefix,
                 [&](std::string_view, std::string_view value) {
                   const auto* payment = flatbuffers::GetRoot<fb::PaymentRecord>(value.data());
                   totals.payments += 1;
                   totals.order_total += payment->order_amount_minor();
                   // A reversal gives the whole fee back; a refund gives back its share.
                   if (payment->status() != fb::PaymentStatus::reversed)
                     totals.fee_total += payment->fee_minor() - payment->refunded_fee_minor();
                   totals.refunded_total += payment->refunded_amount_minor();
                   totals.reversed += payment->status() == fb::PaymentStatus::reversed;
                   return true;
                 })
      .IgnoreError();
  fb::BalanceRecordT fee_record;
  LoadRecord(store.state(), keys::Balance("gl:fee_income"), &fee_record);
  totals.fee_income_balance = fee_record.balance_minor;
  return totals;
}

// Everything the summary reports.
struct DaySummary {
  size_t commands = 0;
  DayOutcomes outcomes;
  DayTotals totals;
  uint64_t events_written = 0;
  std::string chain_head;
  uint64_t checkpoint_covered = 0;
  uint64_t events_published = 0;
  bool embedded = false;
  std::string bootstrap;
  double seconds = 0;
  FrontDoorReport front_door;
};

void PrintJsonSummary(const DemoArgs& args, DaySummary& day) {
  const DayTotals& t = day.totals;
  nlohmann::ordered_json out;
  out["data_dir"] = args.data_dir;
  out["commands"] = day.commands;
  out["accepted"] = day.outcomes.by_status["accepted"];
  out["rejected"] = day.outcomes.by_status["rejected"];
  out["duplicates"] = day.outcomes.by_status["duplicate"];
  out["accepted_by_type"] = day.outcomes.accepted_by_type;
  out["rejected_by_reason"] = day.outcomes.by_reason;
  out["events_written"] = day.events_written;
  out["chain_head"] = day.chain_head;
  out["payments"] = {{"count", t.payments},
                     {"reversed", t.reversed},
                     {"order_amount_minor", t.order_total},
                     {"refunded_minor", t.refunded_total},
                     {"net_fees_minor", t.fee_total},
                     {"fee_income_balance_minor", t.fee_income_balance}};
  out["sum_by_unit"] = {{"CNY", static_cast<int64_t>(t.sums[0])},
                        {"POINTS", static_cast<int64_t>(t.sums[1])}};
  out["kafka"] = {
      {"bootstrap", day.bootstrap}, {"embedded", day.embedded}, {"events_published", day.events_published}};
  const FrontDoorReport& door = day.front_door;
  out["front_door"] = {{"gateway", door.gateway_url},
                       {"merchant_requests", door.merchant_requests},
                       {"customer_requests", door.customer_requests},
                       {"codepay", door.codepay_state},
                       {"native_paid", door.native_state},
                       {"query", door.query_state},
                       {"refund", door.refund_status},
                       {"reverse", door.reverse_state},
                       {"bill_date", door.bill_date},
                       {"bill_bytes", door.bill_bytes},
                       {"bill_file", door.bill_file}};
  out["seconds"] = day.seconds;
  std::printf("%s\n", out.dump().c_str());
}

void PrintTextSummary(const DemoArgs& args, DaySummary& day) {
  const DayTotals& t = day.totals;
  std::map<std::string, int64_t>& by_status = day.outcomes.by_status;
  std::printf("ledger demo: %zu commands in %.2f s into %s\n", day.commands, day.seconds,
              args.data_dir.c_str());
  std::printf("  accepted %lld, rejected %lld, duplicates %lld; events written %llu\n",
              static_cast<long long>(by_status["accepted"]), static_cast<long long>(by_status["rejected"]),
              static_cast<long long>(by_status["duplicate"]),
              static_cast<unsigned long long>(day.events_written));
  std::printf("  rejected by reason:");
  for (const auto& [reason, count] : day.outcomes.by_reason)
    std::printf(" %s=%lld", reason.c_str(), static_cast<long long>(count));
  std::printf("\n  payments %lld (reversed %lld): orders %s CNY, refunded %s CNY, net fees %s CNY\n",
              static_cast<long long>(t.payments), static_cast<long long>(t.reversed),
              FormatYuan(t.order_total).c_str(), FormatYuan(t.refunded_total).c_str(),
              FormatYuan(t.fee_total).c_str());
  std::printf("  sum of all balances: CNY %lld, POINTS %lld (double entry: always 0)\n",
              static_cast<long long>(t.sums[0]), static_cast<long long>(t.sums[1]));
  std::printf("  chain head %s\n", day.chain_head.c_str());
  std::printf("  kafka: %s broker at %s, %llu event records published (events written: %llu)\n",
              day.embedded ? "embedded" : "external", day.bootstrap.c_str(),
              static_cast<unsigned long long>(day.events_published),
              static_cast<unsigned long long>(day.events_written));
  std::printf(
      "  signed checkpoints up to sequence %llu; verify: ledger replay --data %s --pubkey "
      "%s/audit-keys/ledger-signing.pub\n",
      static_cast<unsigned long long>(day.checkpoint_covered), args.data_dir.c_str(), args.data_dir.c_str());
  const FrontDoorReport& door = day.front_door;
  std::printf(
      "  front door: gateway at %s: codepay %s, reversed %s; native order paid %s, query %s, refund %s; "
      "trade bill of %s (%lld bytes, SHA-1 as signed) in %s; %d merchant requests, each answer's platform "
      "signature verified; %d customer requests\n",
      door.gateway_url.c_str(), door.codepay_state.c_str(), door.reverse_state.c_str(),
      door.native_state.c_str(), door.query_state.c_str(), door.refund_status.c_str(),
      FormatDate(door.bill_date).c_str(), static_cast<long long>(door.bill_bytes), door.bill_file.c_str(),
      door.merchant_requests, door.customer_requests);
  std::printf("  try: ledger balance --data %s --all --json | tail -c 200\n", args.data_dir.c_str());
}

// Keeps the process (and so the embedded broker) up for `seconds`, or until SIGINT or SIGTERM.
void ServeFor(const std::string& bootstrap, int seconds) {
  spdlog::info("demo: embedded broker stays at {} for {} s (Ctrl-C ends it)", bootstrap, seconds);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  timespec wait{seconds, 0};
  sigtimedwait(&signals, nullptr, &wait);
}

Result<std::vector<ParsedCommand>> ParseDay(const std::vector<std::string>& lines) {
  std::vector<ParsedCommand> commands;
  commands.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    Result<ParsedCommand> parsed = ParseCommandJson(lines[i]);
    if (!parsed.ok())
      return Status::Internal("demo line " + std::to_string(i + 1) + ": " + parsed.status().message());
    commands.push_back(std::move(parsed).value());
  }
  return commands;
}

constexpr int64_t kFrontDoorDepositMinor = 100'000;  // 1,000.00 CNY

// The merchant and the customer the front door serves: the day's first merchant and first debit account.
FrontDoorPlan PlanFrontDoor(const std::vector<std::string>& day, const std::string& data_dir,
                            const LedgerConfig& config) {
  FrontDoorPlan plan;
  plan.data_dir = data_dir;
  std::error_code error;
  plan.ledger_program = std::filesystem::read_symlink("/proc/self/exe", error).string();
  plan.timezone_offset_minutes = config.timezone_offset_minutes;
  plan.clearing_cutoff_minutes = config.clearing_cutoff_minutes;
  for (const std::string& line : day) {
    const nlohmann::json command = nlohmann::json::parse(line, nullptr, false);
    if (!command.is_object()) continue;
    const std::string type = command.value("type", "");
    if (type == "open_merchant" && plan.merchant.empty()) plan.merchant = command.value("merchant", "");
    if (type == "open_account" && plan.customer.empty() && command.value("kind", "") == "debit_card") {
      plan.customer = command.value("customer", "");
      plan.account = command.value("account", "");
    }
    if (!plan.merchant.empty() && !plan.customer.empty()) break;  // both come early in the day
  }
  return plan;
}

int RunDemo(const DemoArgs& args) {
  if (const int prepared = PrepareFolder(args); prepared != kExitOk) return prepared;
  const auto started = std::chrono::steady_clock::now();
  const std::vector<std::string> day_lines = workload::MakeDay(args.shape);
  const Result<std::vector<ParsedCommand>> commands = ParseDay(day_lines);
  if (!commands.ok()) return Fail(kExitFailure, commands.status().message());
  if (const int written = WriteAuditConfig(args.data_dir, args.data_dir + "/audit-keys");
      written != kExitOk) {
    return written;
  }
  WriteOptions write_options;
  write_options.data_dir = args.data_dir;
  write_options.clock = "occurred";  // the day is in the past: trust each command's occurred_at
  Result<LedgerOptions> options = MakeLedgerOptions(write_options);
  if (!options.ok()) return Fail(kExitFailure, options.status().ToString());
  Result<std::unique_ptr<Ledger>> opened = Ledger::Open(*options);
  if (!opened.ok()) return Fail(ExitCodeFor(opened.status()), opened.status().ToString());

  DaySummary day;
  day.commands = commands->size();
  const Status status = SubmitDay(**opened, *commands, &day.outcomes);
  if (!status.ok()) return Fail(kExitFailure, status.ToString());
  const FrontDoorPlan plan = PlanFrontDoor(day_lines, args.data_dir, options->config);
  // Money for what the customer pays through the front door, whatever the day left in the account.
  const std::string deposit = nlohmann::json{
      {"type", "deposit"},
      {"command_id", "front-door-deposit"},
      {"account", plan.account},
      {"amount_minor",
       kFrontDoorDepositMinor}}.dump();
  Result<CommandResult> topped_up = SubmitOne(**opened, deposit);
  if (!topped_up.ok()) return Fail(kExitFailure, topped_up.status().ToString());
  if (topped_up->kind == CommandResult::Kind::kRejected)
    return Fail(kExitFailure, "the front door's deposit: " + topped_up->reason + ": " + topped_up->detail);
  // The front door's programs open the store themselves: this process lets go of it until they are done.
  opened->reset();
  Result<FrontDoorReport> front_door = DriveFrontDoor(plan);
  if (!front_door.ok()) return Fail(kExitFailure, "the front door: " + front_door.status().ToString());
  day.front_door = *front_door;
  opened = Ledger::Open(*options);
  if (!opened.ok()) return Fail(ExitCodeFor(opened.status()), opened.status().ToString());
  Ledger& ledger = **opened;
  if (ledger.last_sequence() > ledger.last_checkpoint_covered() + 1) {
    Result<uint64_t> checkpoint = ledger.WriteCheckpoint();  // the day ends with a signed checkpoint
    if (!checkpoint.ok()) return Fail(kExitFailure, checkpoint.status().ToString());
  }
  Publication publication;
  if (const int published = PublishDay(ledger, args.brokers, &publication); published != kExitOk)
    return published;
  day.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  Result<DayTotals> totals = SumDay(ledger.store());
  if (!totals.ok()) return Fail(kExitFailure, totals.status().ToString());
  day.totals = *totals;
  day.events_written = ledger.last_sequence();
  day.chain_head = ToHex(ledger.chain_head());
  day.checkpoint_covered = ledger.last_checkpoint_covered();
  day.events_published = publication.publisher->events_published();
  day.embedded = publication.embedded != nullptr;
  day.bootstrap = publication.bootstrap;
  if (args.json) {
    PrintJsonSummary(args, day);
  } else {
    PrintTextSummary(args, day);
  }
  std::fflush(stdout);
  if (publication.embedded && args.serve_seconds > 0) ServeFor(publication.bootstrap, args.serve_seconds);
  return day.totals.sums[0] == 0 && day.totals.sums[1] == 0
             ? kExitOk
             : Fail(kExitFailure, "balances do not sum to zero");
}

}  // namespace

Runner AddDemo(CLI::App& app) {
  auto args = std::make_shared<DemoArgs>();
  AddDemoOptions(app, args.get());
  return [args]() { return RunDemo(*args); };
}

}  // namespace ledger::cli
