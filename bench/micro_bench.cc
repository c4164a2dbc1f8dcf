// Micro-benchmarks of the hot path: command parsing, event encoding and verification, hash chaining,
// validation + projection (Stage), a synced group commit, and replay (verify + rebuild).
// Run: build/bin/ledger_micro_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>

#include "ledger/command.h"
#include "ledger/event.h"
#include "ledger/ledger.h"
#include "replay/replay.h"
#include "workload.h"

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
    if (!ledger->SubmitAll(commands, [](std::span<const CommandResult>) {}).ok()) state.SkipWithError("submit failed");
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
    Result<replay::ReplayReport> report = replay::Replay(*source, state.range(0) == 1 ? target.get() : nullptr);
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

}  // namespace
}  // namespace ledger

BENCHMARK_MAIN();
