// Goal: replay reproduces the ledger. An untouched history verifies (no false alarm: every checkpoint
// signature, chain head and digest, and the rebuilt state equals the live store byte for byte) through the
// library and `ledger replay`; a replay cut at any committed sequence equals the live state the ledger had at
// that sequence; and `ledger balance --as-of TIME` equals the balances the ledger held at that (ledger,
// recorded_at) time.
//
// The history is a generated payment day submitted in four phases, each with the ledger clock fixed an hour
// or more after the previous (so recorded_at tells the phases apart), in groups of random size; after every
// group commit (and every checkpoint) the test records the live store's state digest, and at the end of each
// phase every balance.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/workload.h"
#include "core/signing.h"
#include "core/time.h"
#include "events/event.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "replay/replay.h"
#include "state/records.h"
#include "storage/store.h"
#include "support/test_support.h"

extern char** environ;

namespace ledger {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kHourNs = 3'600'000'000'000;
constexpr int64_t kSecondNs = 1'000'000'000;
constexpr int kPhases = 4;

using testing::ScratchDir;

using testing::Scale;

using Outcome = testing::ProgramRun;
using testing::Describe;
using testing::RunLedger;

std::unique_ptr<Store> OpenStore(const std::string& dir, bool read_only = false) {
  StoreOptions options;
  options.sync = false;
  options.read_only = read_only;
  options.create_if_missing = !read_only;
  Result<std::unique_ptr<Store>> store = Store::Open(dir, options);
  EXPECT_TRUE(store.ok()) << dir << ": " << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

using Balances = std::map<std::string, int64_t>;

Balances BalancesOf(const Store& store) {
  Balances balances;
  EXPECT_TRUE(store
                  .ScanState("b/",
                             [&](std::string_view key, std::string_view value) {
                               balances[std::string(key.substr(2))] =
                                   flatbuffers::GetRoot<fb::BalanceRecord>(value.data())->balance_minor();
                               return true;
                             })
                  .ok());
  return balances;
}

// The accounts of `ledger balance --all --json` output; fails the test when it is not that.
Balances BalancesOfJson(const std::string& text) {
  Balances balances;
  const json out = json::parse(text, nullptr, false);
  EXPECT_TRUE(out.is_object() && out["accounts"].is_array()) << text;
  if (!out.is_object() || !out["accounts"].is_array()) return balances;
  for (const json& line : out["accounts"])
    balances[line["account"].get<std::string>()] = line["balance_minor"].get<int64_t>();
  EXPECT_EQ(out["sum_by_unit"]["CNY"], 0);
  EXPECT_EQ(out["sum_by_unit"]["POINTS"], 0);
  return balances;
}

struct Cut {
  uint64_t sequence = 0;
  Digest digest{};
  bool checkpoint = false;  // the cut right after a checkpoint event
};

struct PhasedHistory {
  std::unique_ptr<ScratchDir> root;
  std::string data, pubkey;
  std::unique_ptr<SignatureVerifier> verifier;
  std::vector<Cut> cuts;  // every group end, ascending
  int64_t phase_now[kPhases] = {};
  Balances phase_balances[kPhases];
  uint64_t phase_last[kPhases] = {};
  uint64_t last = 0;
  Digest chain_head{};
  Digest live_digest{};
};

const PhasedHistory& TheHistory() {
  static const std::unique_ptr<PhasedHistory> history = [] {
    auto built = std::make_unique<PhasedHistory>();
    built->root = std::make_unique<ScratchDir>();
    const std::string root = built->root->path();
    built->data = root + "/data";
    EXPECT_TRUE(GenerateKeyPair(root + "/keys").ok());
    built->pubkey = root + "/keys/ledger-signing.pub";
    Result<std::unique_ptr<Signer>> signer = Signer::FromPemFile(root + "/keys/ledger-signing.key");
    Result<std::unique_ptr<SignatureVerifier>> verifier = SignatureVerifier::FromPemFile(built->pubkey);
    EXPECT_TRUE(signer.ok() && verifier.ok());
    built->verifier = std::move(verifier).value();

    workload::Shape shape;
    shape.customers = 150;
    shape.merchants = 10;
    shape.payments = 1200;
    shape.seed = 9;
    std::vector<ParsedCommand> commands;
    for (const std::string& line : workload::MakeDay(shape)) {
      Result<ParsedCommand> parsed = ParseCommandJson(line);
      EXPECT_TRUE(parsed.ok()) << line;
      if (parsed.ok()) commands.push_back(std::move(parsed).value());
    }

    LedgerOptions options;
    options.data_dir = built->data;
    options.clock = ClockMode::kOccurred;
    options.sync = false;
    options.signer = std::shared_ptr<const Signer>(std::move(signer).value());
    options.config.checkpoint_every_events = 500;
    std::mt19937_64 random(31);
    const int64_t start = *ParseIso8601("2026-11-25T12:00:00+08:00");
    size_t next = 0;
    for (int phase = 0; phase < kPhases; ++phase) {
      // Uneven gaps between phases: 1 h, 3 h, 2 h.
      built->phase_now[phase] = start + kHourNs * (phase == 0 ? 0 : phase == 1 ? 1 : phase == 2 ? 4 : 6);
      options.fixed_now_ns = built->phase_now[phase];
      Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options);
      EXPECT_TRUE(opened.ok()) << opened.status().ToString();
      Ledger& ledger = **opened;
      auto record_cut = [&](bool checkpoint) {
        Result<Digest> digest = replay::StateDigest(ledger.store());
        EXPECT_TRUE(digest.ok());
        built->cuts.push_back(Cut{ledger.last_sequence(), *digest, checkpoint});
      };
      const size_t end = phase == kPhases - 1 ? commands.size() : commands.size() * (phase + 1) / kPhases;
      while (next < end) {
        const size_t group =
            std::min<size_t>(end - next, std::uniform_int_distribution<size_t>(1, 40)(random));
        for (size_t i = 0; i < group; ++i) ledger.Stage(commands[next++]);
        EXPECT_TRUE(ledger.CommitGroup().ok());
        if (built->cuts.empty() || built->cuts.back().sequence != ledger.last_sequence()) record_cut(false);
        const uint64_t before = ledger.last_sequence();
        EXPECT_TRUE(ledger.MaybeCheckpoint().ok());
        if (ledger.last_sequence() != before) record_cut(true);
      }
      if (phase == kPhases - 1) {
        EXPECT_TRUE(ledger.WriteCheckpoint().ok());
        record_cut(true);
      }
      built->phase_balances[phase] = BalancesOf(ledger.store());
      built->phase_last[phase] = ledger.last_sequence();
      built->last = ledger.last_sequence();
      built->chain_head = ledger.chain_head();
      Result<Digest> digest = replay::StateDigest(ledger.store());
      EXPECT_TRUE(digest.ok());
      built->live_digest = *digest;
    }
    return built;
  }();
  return *history;
}

class Replaying : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { TheHistory(); }
  const PhasedHistory& history() const { return TheHistory(); }
};

TEST_F(Replaying, UntouchedHistoryVerifiesAndReproducesTheLiveStore) {
  const PhasedHistory& h = history();
  ASSERT_GT(h.last, 1500u);
  ScratchDir dir;
  std::unique_ptr<Store> live = OpenStore(h.data, true);
  ASSERT_NE(live, nullptr);
  std::unique_ptr<Store> rebuilt = OpenStore(dir.path() + "/rebuilt");
  replay::ReplayOptions options;
  options.verifier = h.verifier.get();
  Result<replay::ReplayReport> report = replay::Replay(replay::StoreSource(*live), rebuilt.get(), options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok()) << *report->first_bad_sequence << ": " << report->problem;
  EXPECT_EQ(report->events_read, h.last);
  EXPECT_EQ(report->last_sequence, h.last);
  EXPECT_EQ(report->chain_head, h.chain_head);
  EXPECT_TRUE(report->signatures_checked);
  EXPECT_GE(report->checkpoints_seen, 3u);
  EXPECT_EQ(report->checkpoints_verified, report->checkpoints_seen);
  EXPECT_EQ(*replay::StateDigest(*rebuilt), h.live_digest);
  EXPECT_EQ(BalancesOf(*rebuilt), h.phase_balances[kPhases - 1]);
  EXPECT_EQ(BalancesOf(*rebuilt), BalancesOf(*live));
}

// The projectors are split among fold threads; how many must change nothing: the same report, every
// checkpoint verified against the rebuilt set digests, the live state byte for byte, and every event in the
// target.
TEST_F(Replaying, EveryNumberOfFoldThreadsRebuildsTheSameState) {
  const PhasedHistory& h = history();
  ScratchDir dir;
  std::unique_ptr<Store> live = OpenStore(h.data, true);
  ASSERT_NE(live, nullptr);
  for (const size_t threads : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64}}) {
    SCOPED_TRACE("fold_threads " + std::to_string(threads));
    std::unique_ptr<Store> rebuilt = OpenStore(dir.path() + "/rebuilt-" + std::to_string(threads));
    ASSERT_NE(rebuilt, nullptr);
    replay::ReplayOptions options;
    options.verifier = h.verifier.get();
    options.fold_threads = threads;
    Result<replay::ReplayReport> report = replay::Replay(replay::StoreSource(*live), rebuilt.get(), options);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->ok()) << report->problem;
    EXPECT_EQ(report->events_read, h.last);
    EXPECT_EQ(report->chain_head, h.chain_head);
    EXPECT_GE(report->checkpoints_seen, 3u);
    EXPECT_EQ(report->checkpoints_verified, report->checkpoints_seen);
    EXPECT_EQ(*replay::StateDigest(*rebuilt), h.live_digest);
    uint64_t events = 0;
    ASSERT_TRUE(rebuilt
                    ->ScanEvents(0, UINT64_MAX,
                                 [&](uint64_t sequence, std::string_view record) {
                                   std::string kept;
                                   EXPECT_TRUE(live->ScanEvents(sequence, sequence,
                                                                [&](uint64_t, std::string_view r) {
                                                                  kept = std::string(r);
                                                                  return false;
                                                                })
                                                   .ok());
                                   EXPECT_EQ(record, kept) << "event " << sequence;
                                   events += 1;
                                   return true;
                                 })
                    .ok());
    EXPECT_EQ(events, h.last);
  }
}

TEST_F(Replaying, LedgerReplayVerifiesAnUntouchedHistory) {
  const PhasedHistory& h = history();
  ScratchDir scratch;
  const Outcome run = RunLedger(scratch.path(), {"replay", "--data", h.data, "--pubkey", h.pubkey, "--json"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const json report = json::parse(run.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << Describe(run);
  EXPECT_EQ(report["verified"], true);
  EXPECT_EQ(report["source"], "rocksdb");
  EXPECT_EQ(report["events_read"], h.last);
  EXPECT_EQ(report["last_sequence"], h.last);
  EXPECT_EQ(report["chain_head"], ToHex(h.chain_head));
  EXPECT_EQ(report["signatures_checked"], true);
  EXPECT_GT(report["checkpoints_verified"].get<uint64_t>(), 0u);
  EXPECT_EQ(report["checkpoints_verified"], report["checkpoints_seen"]);
  EXPECT_EQ(report["live_state_equal"], true);
  EXPECT_EQ(report["state_digest"], ToHex(h.live_digest));
  EXPECT_TRUE(report["first_bad_sequence"].is_null());
  EXPECT_EQ(report["problem"], "");

  // Rebuilt into a folder, the balances read there are exactly the live ones.
  const std::string out = scratch.path() + "/rebuilt";
  const Outcome rebuilt =
      RunLedger(scratch.path(), {"replay", "--data", h.data, "--pubkey", h.pubkey, "--out", out, "--json"});
  ASSERT_EQ(rebuilt.exit_code, 0) << Describe(rebuilt);
  const Outcome live_balances = RunLedger(scratch.path(), {"balance", "--data", h.data, "--all", "--json"});
  const Outcome rebuilt_balances = RunLedger(scratch.path(), {"balance", "--data", out, "--all", "--json"});
  ASSERT_EQ(live_balances.exit_code, 0) << Describe(live_balances);
  ASSERT_EQ(rebuilt_balances.exit_code, 0) << Describe(rebuilt_balances);
  EXPECT_EQ(rebuilt_balances.out, live_balances.out);
  EXPECT_EQ(BalancesOfJson(live_balances.out), h.phase_balances[kPhases - 1]);
}

// Replay cut at every recorded group end (a sample of them when scaled down): the rebuilt state is
// byte-identical to the live state at that sequence.
TEST_F(Replaying, CutAtAnyCommittedSequenceEqualsTheLiveStateThen) {
  const PhasedHistory& h = history();
  std::unique_ptr<Store> live = OpenStore(h.data, true);
  ASSERT_NE(live, nullptr);
  ASSERT_GE(h.cuts.size(), 40u);
  // Every cut right after a checkpoint, the first and the last, and a random sample of the others.
  std::vector<Cut> cuts, others;
  for (size_t i = 0; i < h.cuts.size(); ++i) {
    (h.cuts[i].checkpoint || i == 0 || i + 1 == h.cuts.size() ? cuts : others).push_back(h.cuts[i]);
  }
  std::mt19937_64 random(5);
  std::shuffle(others.begin(), others.end(), random);
  const size_t keep = std::max<size_t>(20, static_cast<size_t>(60 * Scale()));
  for (size_t i = 0; i < others.size() && cuts.size() < keep; ++i) cuts.push_back(others[i]);
  int checkpoint_cuts = 0;
  ScratchDir dir;
  int n = 0;
  for (const Cut& cut : cuts) {
    const std::string target_dir = dir.path() + "/cut" + std::to_string(++n);
    std::unique_ptr<Store> target = OpenStore(target_dir);
    ASSERT_NE(target, nullptr);
    replay::ReplayOptions options;
    options.to_sequence = cut.sequence;
    options.verifier = h.verifier.get();
    Result<replay::ReplayReport> report = replay::Replay(replay::StoreSource(*live), target.get(), options);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->ok()) << report->problem;
    EXPECT_EQ(report->last_sequence, cut.sequence);
    EXPECT_EQ(*replay::StateDigest(*target), cut.digest) << "cut at " << cut.sequence;
    checkpoint_cuts += cut.checkpoint;
    target.reset();
    std::filesystem::remove_all(target_dir);
  }
  std::printf("[ cuts     ] %zu cuts compared (%d right after a checkpoint), of %zu recorded\n", cuts.size(),
              checkpoint_cuts, h.cuts.size());

  // The shorthand and the program agree: `ledger replay --to-seq N --out DIR` rebuilds the state at N.
  ScratchDir scratch;
  for (const Cut& cut : {h.cuts[h.cuts.size() / 3], h.cuts[h.cuts.size() / 2]}) {
    const std::string out = scratch.path() + "/at-" + std::to_string(cut.sequence);
    {
      std::unique_ptr<Store> target = OpenStore(out + "-lib");
      Result<replay::ReplayReport> report = replay::Replay(*live, target.get(), cut.sequence);
      ASSERT_TRUE(report.ok() && report->ok());
      EXPECT_EQ(*replay::StateDigest(*target), cut.digest);
    }
    const Outcome run =
        RunLedger(scratch.path(), {"replay", "--data", h.data, "--to-seq", std::to_string(cut.sequence),
                                   "--pubkey", h.pubkey, "--out", out, "--json"});
    ASSERT_EQ(run.exit_code, 0) << Describe(run);
    const json report = json::parse(run.out, nullptr, false);
    ASSERT_TRUE(report.is_object()) << Describe(run);
    EXPECT_EQ(report["verified"], true);
    EXPECT_EQ(report["last_sequence"], cut.sequence);
    EXPECT_EQ(report["state_digest"], ToHex(cut.digest));
    EXPECT_TRUE(report["live_state_equal"].is_null());  // a cut is not compared with the live store
    std::unique_ptr<Store> rebuilt = OpenStore(out, true);
    ASSERT_NE(rebuilt, nullptr);
    EXPECT_EQ(*replay::StateDigest(*rebuilt), cut.digest);
  }
}

// `ledger balance --as-of TIME` (ledger time): at each phase's clock, a moment inside the gap after it, and
// just before the next phase, the balances are those the ledger held at the end of that phase.
TEST_F(Replaying, BalanceAsOfEqualsTheBalancesRecordedAtThatTime) {
  const PhasedHistory& h = history();
  ScratchDir scratch;
  auto as_of = [&](int64_t at) {
    const Outcome run = RunLedger(
        scratch.path(), {"balance", "--data", h.data, "--all", "--as-of", testing::At(at), "--json"});
    EXPECT_EQ(run.exit_code, 0) << Describe(run);
    return BalancesOfJson(run.out);
  };
  // Before the first event: nothing.
  EXPECT_EQ(as_of(h.phase_now[0] - kSecondNs), Balances());
  for (int phase = 0; phase < kPhases; ++phase) {
    SCOPED_TRACE("phase " + std::to_string(phase));
    EXPECT_EQ(as_of(h.phase_now[phase]), h.phase_balances[phase]);
    if (phase + 1 < kPhases) {
      EXPECT_EQ(as_of(h.phase_now[phase + 1] - kSecondNs), h.phase_balances[phase]);
    } else {
      EXPECT_EQ(as_of(h.phase_now[phase] + 30 * 60 * kSecondNs), h.phase_balances[phase]);
    }
  }
  // One account, as of the first phase, and the library's as_of_ns cut agrees with the recorded state.
  const std::string account = h.phase_balances[0].rbegin()->first;
  const Outcome one = RunLedger(scratch.path(), {"balance", "--data", h.data, account, "--as-of",
                                                 testing::At(h.phase_now[0]), "--json"});
  ASSERT_EQ(one.exit_code, 0) << Describe(one);
  const json line = json::parse(one.out, nullptr, false);
  ASSERT_TRUE(line.is_object()) << one.out;
  EXPECT_EQ(line["account"], account);
  EXPECT_EQ(line["balance_minor"], h.phase_balances[0].at(account));

  std::unique_ptr<Store> live = OpenStore(h.data, true);
  for (int phase = 0; phase < kPhases; ++phase) {
    ScratchDir dir;
    std::unique_ptr<Store> target = OpenStore(dir.path() + "/as-of");
    replay::ReplayOptions options;
    options.as_of_ns = h.phase_now[phase] + kSecondNs;
    options.verifier = h.verifier.get();
    Result<replay::ReplayReport> report = replay::Replay(replay::StoreSource(*live), target.get(), options);
    ASSERT_TRUE(report.ok() && report->ok());
    EXPECT_EQ(report->last_sequence, h.phase_last[phase]);
    EXPECT_EQ(BalancesOf(*target), h.phase_balances[phase]);
    const auto cut = std::find_if(h.cuts.begin(), h.cuts.end(),
                                  [&](const Cut& c) { return c.sequence == h.phase_last[phase]; });
    ASSERT_NE(cut, h.cuts.end());
    EXPECT_EQ(*replay::StateDigest(*target), cut->digest);
  }
}

}  // namespace
}  // namespace ledger
