// Micro-benchmarks of the hot path: command parsing, event encoding and verification, hash chaining,
// validation + projection (Stage), a synced group commit, each projector's apply, replay (verify + rebuild),
// and reconciliation of 1,000,000 WeChat statement lines (parse + classify; target: under 2 s). Run:
// build/bin/ledger_micro_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "bench/workload.h"
#include "core/time.h"
#include "events/event.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "projections/projector.h"
#include "reconcile/reconcile.h"
#include "replay/replay.h"

namespace ledger {
namespace {

std::string TempPath(const std::string& stem) {
  static std::mt19937_64 random(std::random_device{}());
  return (std::filesystem::temp_directory_path() / (stem + "-" + std::to_string(random()))).string();
}

const std::vector<std::string>& DayLines() {
  static const std::vector<std::string> lines = [] {
    workload::Shape shape;
    shape.customers = 2000;
    shape.merchants = 200;
    shape.payments = 50'000;
    return workload::MakeDay(shape);
  }();
  return lines;
}

void BM_ParseCommand(benchmark::State& state) {
  const auto& lines = DayLines();
  size_t i = 0;
  for (auto _ : state) {
    Result<ParsedCommand> parsed = ParseCommandJson(lines[i++ % lines.size()]);
    benchmark::DoNotOptimize(parsed);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseCommand);

void BM_EncodeAndVerifyEvent(benchmark::State& state) {
  fb::EventBodyT body;
  body.sequence = 1;
  body.transaction_id = "0-1";
  body.command_id = "M0001:ORD1";
  fb::PaymentCapturedT paid;
  paid.merchant = "M0001";
  paid.merchant_order_no = "ORD1";
  paid.customer = "C00001";
  paid.account = "C00001:debit";
  paid.order_amount_minor = 10'000;
  PostingList postings;
  postings.Add("C00001:debit", -10'000);
  postings.Add("merchant:M0001", 10'000);
  paid.postings = postings.Take();
  body.payload.Set(std::move(paid));
  Digest head{};
  for (auto _ : state) {
    Digest hash;
    const std::string record = EncodeEventRecord(body, head, &hash);
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    benchmark::DoNotOptimize(decoded);
    benchmark::DoNotOptimize(ChainHash(head, decoded->body_bytes) == hash);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeAndVerifyEvent);

void BM_HashChain(benchmark::State& state) {
  const std::string body(static_cast<size_t>(state.range(0)), 'x');
  Digest head{};
  for (auto _ : state) head = ChainHash(head, body);
  benchmark::DoNotOptimize(head);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_HashChain)->Arg(300)->Arg(600);

// Validation and projection of a realistic day, group commit with a synced WAL (Arg 1) or without (Arg 0).
void BM_SubmitDay(benchmark::State& state) {
  const auto& lines = DayLines();
  std::vector<ParsedCommand> commands;
  for (const auto& line : lines) commands.push_back(*ParseCommandJson(line));
  for (auto _ : state) {
    state.PauseTiming();
    const std::string dir = TempPath("ledger-bench");
    LedgerOptions options;
    options.data_dir = dir;
    options.clock = ClockMode::kOccurred;
    options.sync = state.range(0) == 1;
    auto ledger = std::move(Ledger::Open(options)).value();
    state.ResumeTiming();
    const Status status = ledger->SubmitAll(commands, [](std::span<const CommandResult>) {});
    benchmark::DoNotOptimize(status.ok());
    state.PauseTiming();
    ledger.reset();
    std::filesystem::remove_all(dir);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(commands.size()));
}
BENCHMARK(BM_SubmitDay)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond)->Iterations(3);

// Replay: verify every hash and rebuild every projection into a fresh store.
void BM_Replay(benchmark::State& state) {
  const auto& lines = DayLines();
  const std::string source_dir = TempPath("ledger-bench-source");
  uint64_t events = 0;
  {
    std::vector<ParsedCommand> commands;
    for (const auto& line : lines) commands.push_back(*ParseCommandJson(line));
    LedgerOptions options;
    options.data_dir = source_dir;
    options.clock = ClockMode::kOccurred;
    options.sync = false;
    auto ledger = std::move(Ledger::Open(options)).value();
    if (!ledger->SubmitAll(commands, [](std::span<const CommandResult>) {}).ok())
      state.SkipWithError("submit failed");
    events = ledger->last_sequence();
  }
  StoreOptions read_only;
  read_only.read_only = true;
  auto source = std::move(Store::Open(source_dir, read_only)).value();
  for (auto _ : state) {
    state.PauseTiming();
    const std::string target_dir = TempPath("ledger-bench-target");
    StoreOptions target_options;
    target_options.sync = false;
    auto target = std::move(Store::Open(target_dir, target_options)).value();
    state.ResumeTiming();
    Result<replay::ReplayReport> report =
        replay::Replay(*source, state.range(0) == 1 ? target.get() : nullptr);
    if (!report.ok() || !report->ok()) state.SkipWithError("replay failed");
    state.PauseTiming();
    target.reset();
    std::filesystem::remove_all(target_dir);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(events));
  source.reset();
  std::filesystem::remove_all(source_dir);
}
BENCHMARK(BM_Replay)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(3);

// Validation and the inline projections of one command (Ledger::Stage), the group commit left out of the
// timing.
void BM_StageCommand(benchmark::State& state) {
  const auto& lines = DayLines();
  std::vector<ParsedCommand> commands;
  for (const auto& line : lines) commands.push_back(*ParseCommandJson(line));
  const std::string dir = TempPath("ledger-bench-stage");
  LedgerOptions options;
  options.data_dir = dir;
  options.clock = ClockMode::kOccurred;
  options.sync = false;
  auto ledger = std::move(Ledger::Open(options)).value();
  size_t next = 0, staged = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ledger->Stage(commands[next]));
    ++next;
    if (++staged == 2048 || next == commands.size()) {
      state.PauseTiming();
      if (!ledger->CommitGroup().ok()) state.SkipWithError("commit failed");
      staged = 0;
      if (next == commands.size()) {  // the day is over: start it again in a fresh folder
        ledger.reset();
        std::filesystem::remove_all(dir);
        ledger = std::move(Ledger::Open(options)).value();
        next = 0;
      }
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
  ledger.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_StageCommand)->Iterations(200'000);

// Each projector alone over a day's events (decoded once), folding into an in-memory overlay.
void BM_ProjectorApply(benchmark::State& state) {
  static const std::vector<std::string> records = [] {
    const std::string dir = TempPath("ledger-bench-projectors");
    std::vector<ParsedCommand> commands;
    for (const auto& line : DayLines()) commands.push_back(*ParseCommandJson(line));
    LedgerOptions options;
    options.data_dir = dir;
    options.clock = ClockMode::kOccurred;
    options.sync = false;
    std::vector<std::string> out;
    {
      auto ledger = std::move(Ledger::Open(options)).value();
      if (!ledger->SubmitAll(commands, [](std::span<const CommandResult>) {}).ok()) return out;
      ledger->store()
          .ScanEvents(1, ledger->last_sequence(),
                      [&](uint64_t, std::string_view record) {
                        out.emplace_back(record);
                        return true;
                      })
          .IgnoreError();
    }
    std::filesystem::remove_all(dir);
    return out;
  }();
  std::vector<std::unique_ptr<Projector>> all = MakeLedgerProjectors();
  const Projector& projector = *all[static_cast<size_t>(state.range(0))];
  state.SetLabel(std::string(projector.name()));
  for (auto _ : state) {
    EmptyReader empty;
    Overlay view(empty);
    for (const std::string& record : records) {
      Result<DecodedEvent> decoded = DecodeEventRecord(record);
      if (!decoded.ok() || !projector.Apply(*decoded->body, view).ok()) state.SkipWithError("apply failed");
    }
    benchmark::DoNotOptimize(view.size());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(records.size()));
}
BENCHMARK(BM_ProjectorApply)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->Iterations(3);

// A WeChat trade bill of N payment lines and the ledger's N matching lines; parse + classify is timed.
void BM_ReconcileWeChat(benchmark::State& state) {
  const int64_t lines = state.range(0);
  const int date = 20261125;
  const int64_t day_start = LocalMidnightUtcNs(date, 8 * 60);
  std::string bill =
      "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
      "付款银行,货币种类,"
      "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,"
      "商户数据包,"
      "手续费,费率,订单金额,申请退款金额,费率备注\n";
  bill.reserve(static_cast<size_t>(lines) * 200);
  std::vector<recon::Line> ledger_lines;
  ledger_lines.reserve(static_cast<size_t>(lines));
  for (int64_t i = 0; i < lines; ++i) {
    // Spread over 01:00-21:00 local: far from the cut-off, so every line is a plain match.
    const int64_t at = day_start + kNanosPerHour + (20 * kNanosPerHour / lines) * i;
    const int64_t amount = 1'000 + (i * 7919) % 19'000;
    const int64_t fee = (amount * 60 + 5'000) / 10'000;
    const std::string when = FormatIso8601(at, 8 * 60);  // 2026-11-25T10:00:00+08:00
    const std::string order = "B" + std::to_string(i);
    char row[512];
    std::snprintf(
        row, sizeof row,
        "`%s %s,`wx0000000000000001,`1900000001,`,`,`42000000%010lld,`%s,`oUser,`NATIVE,`SUCCESS,`CMB_DEBIT,"
        "`CNY,`%lld.%02lld,`0.00,`,`,`0.00,`0.00,`,`,`goods,`,`%lld.%02lld000,`0.60%%,`%lld.%02lld,`0.00,`\n",
        when.substr(0, 10).c_str(), when.substr(11, 8).c_str(), static_cast<long long>(i), order.c_str(),
        static_cast<long long>(amount / 100), static_cast<long long>(amount % 100),
        static_cast<long long>(fee / 100), static_cast<long long>(fee % 100),
        static_cast<long long>(amount / 100), static_cast<long long>(amount % 100));
    bill += row;
    recon::Line line;
    line.kind = recon::LineKind::kPayment;
    line.merchant = "M0001";
    line.id = line.order_no = order;
    line.amount_minor = amount;
    line.fee_minor = fee;
    line.occurred_at_ns = at;
    line.clearing_date = date;
    ledger_lines.push_back(std::move(line));
  }
  // The store's index hands the command its lines in key order (merchant, kind, id).
  std::sort(ledger_lines.begin(), ledger_lines.end(),
            [](const recon::Line& a, const recon::Line& b) { return a.id < b.id; });
  recon::Options options;
  options.date = date;
  for (auto _ : state) {
    Result<recon::Statement> statement = recon::ParseStatement(bill, recon::Format::kWeChat, "M0001", 8 * 60);
    if (!statement.ok() || !statement->malformed.empty()) state.SkipWithError("the bill did not parse");
    const recon::Outcome outcome = recon::Reconcile(ledger_lines, *statement, options, nullptr);
    if (outcome.totals[static_cast<int>(recon::Category::kMatched)].count != lines)
      state.SkipWithError("not all matched");
    benchmark::DoNotOptimize(outcome.breaks);
  }
  state.SetItemsProcessed(state.iterations() * lines);
}
BENCHMARK(BM_ReconcileWeChat)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace ledger

BENCHMARK_MAIN();
