// Goal: SIGKILL of `ledger submit` mid-stream loses no acknowledged command and applies nothing twice.
//
// After the kills the hash chain verifies and the state equals that of a run without crashes. One JSON
// Lines file of ~20,000 commands (set-up, then a payment day through the 23:00 cut-off and midnight, with
// reversals, refunds, over-refunds and merchant retries) is applied once without crashes (the reference)
// and once with repeated kills: `submit` restarts on the same full file after each kill, so what was
// applied comes back as `duplicate`. With --clock occurred and a fixed --now the event stream is a function
// of the file, so the crashed folder must end byte-identical to the reference.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "storage/store.h"
#include "core/time.h"
#include "state/records.h"
#include "replay/replay.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kSeed = 20261125;
// Commands in the file (set-up lines included); the payment loop stops at this bound. LEDGER_TEST_SCALE
// (scripts/test.sh sets 0.25 under ASan) scales it down, never below kCommandsMin: four groups of 2,048
// (the default group bound), so a few kills still land between groups.
constexpr size_t kCommandsTarget = 20'000;
constexpr size_t kCommandsMin = 8'000;
// One customer per ~17 commands: a set-up of about a quarter of the file.
constexpr size_t kCommandsPerCustomer = 17;
constexpr int kMerchants = 40;
// Kills after a random number of acknowledged lines, plus one kill a few milliseconds after the start
// (while the input is parsed or the store recovers).
constexpr int kLineKills = 4;
constexpr int kEarlyKillRun = 2;  // which run (0-based) is killed early
// After the acknowledgement threshold is met, keep draining for up to this long before the kill, so the kill
// lands anywhere in the next group's validation or commit.
constexpr int kKillDelayMsMax = 40;
// Every child is bounded in time (ASan builds are ~3x slower than RelWithDebInfo).
constexpr auto kRunDeadline = std::chrono::seconds(180);
constexpr auto kReapDeadline = std::chrono::seconds(20);
constexpr char kNow[] = "2026-11-26T00:00:00+08:00";

// ---- the command stream ----

size_t StreamSize() {
  const char* text = std::getenv("LEDGER_TEST_SCALE");
  double scale = text == nullptr ? 1.0 : std::strtod(text, nullptr);
  if (!(scale > 0.0) || scale > 1.0) scale = 1.0;
  return std::max(kCommandsMin, static_cast<size_t>(static_cast<double>(kCommandsTarget) * scale));
}

// A realistic day, in occurred_at order: set-up from 00:00, payments from 16:00 past the 23:00 cut-off and
// midnight. Deterministic for a seed.
std::vector<std::string> MakeStream(uint64_t seed, size_t size) {
  const int customers = static_cast<int>(size / kCommandsPerCustomer);
  std::mt19937_64 random(seed);
  auto uniform = [&](int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(random);
  };
  auto chance = [&](int percent) { return uniform(1, 100) <= percent; };
  std::vector<std::string> lines;
  int64_t t = *ParseIso8601("2026-11-25T00:00:01+08:00");
  auto emit = [&](json command) {
    command["occurred_at"] = testing::At(t);
    lines.push_back(command.dump());
  };
  auto merchant = [](int64_t m) { return "M" + std::to_string(m); };
  auto customer = [](int64_t c) { return "C" + std::to_string(c); };

  for (int m = 1; m <= kMerchants; ++m) {
    static const int kFees[] = {0, 30, 38, 60, 100};
    emit({{"type", "open_merchant"},
          {"command_id", "m-" + merchant(m)},
          {"merchant", merchant(m)},
          {"name", "Merchant " + std::to_string(m)},
          {"fee_bps", kFees[uniform(0, 4)]}});
    t += kNanosPerSecond;
  }
  std::vector<bool> credit(customers + 1, false);
  std::vector<int64_t> points(customers + 1, 0);
  std::vector<std::string> coupon(customers + 1);
  for (int c = 1; c <= customers; ++c) {
    const std::string id = customer(c);
    emit({{"type", "open_account"},
          {"command_id", "a-" + id + "-d"},
          {"customer", id},
          {"account", id + ":debit"},
          {"kind", "debit_card"}});
    emit({{"type", "deposit"},
          {"command_id", "d-" + id},
          {"account", id + ":debit"},
          {"amount_minor", chance(5) ? uniform(1'000, 20'000) : uniform(50'000, 2'000'000)}});
    if (chance(30)) {
      credit[c] = true;
      emit({{"type", "open_account"},
            {"command_id", "a-" + id + "-c"},
            {"customer", id},
            {"account", id + ":credit"},
            {"kind", "credit_card"},
            {"credit_limit_minor", uniform(10, 50) * 100'000}});
    }
    if (chance(60)) {
      points[c] = uniform(1'000, 50'000);
      emit({{"type", "award_points"}, {"command_id", "p-" + id}, {"customer", id}, {"points", points[c]}});
    }
    if (chance(25)) {
      coupon[c] = "CP-" + id;
      const int64_t value = uniform(5, 50) * 100;
      json issue = {{"type", "issue_coupon"},
                    {"command_id", "c-" + id},
                    {"coupon", coupon[c]},
                    {"customer", id},
                    {"value_minor", value},
                    {"min_spend_minor", value * 2},
                    {"funded_by", chance(50) ? "bank" : "merchant"},
                    {"expires_at", chance(10) ? "2026-11-25T23:59:59+08:00" : "2026-12-31T23:59:59+08:00"}};
      if (chance(50)) issue["merchant"] = merchant(uniform(1, kMerchants));
      emit(issue);
    }
    if (chance(10)) {
      json limit = {{"type", "set_customer_limit"}, {"command_id", "l-" + id}, {"customer", id}};
      if (chance(50)) {
        limit["medium"] = "sms";
        limit["daily_minor"] = 200'000;
      } else {
        limit["medium"] = "password_free";
        limit["daily_count"] = 3;
      }
      emit(limit);
    }
    t += uniform(0, 2) * kNanosPerSecond;
  }

  struct Paid {
    std::string merchant, order;
    int64_t amount;
  };
  std::vector<Paid> paid;
  static const char* kCardChannels[] = {
      "b2c_pc", "b2c_h5", "b2c_sdk", "b2b", "c2c", "qr_static", "qr_dynamic", "qr_customer_presented", "nfc"};
  static const char* kWalletChannels[] = {"aggregated", "qr_static", "qr_dynamic", "qr_customer_presented"};
  static const char* kMedia[] = {"u_shield", "password_device", "otp_card",
                                 "sms",      "fingerprint",     "password_free"};
  t = *ParseIso8601("2026-11-25T16:00:00+08:00");
  for (int i = 1; lines.size() < size; ++i) {
    t += uniform(0, 5) * kNanosPerSecond;
    const int64_t c = uniform(1, customers);
    const std::string id = customer(c);
    const std::string m = merchant(uniform(1, kMerchants));
    const std::string order = "ORD" + std::to_string(i);
    json pay = {{"type", "pay"},
                {"command_id", m + ":" + order},
                {"merchant", m},
                {"merchant_order_no", order},
                {"customer", id}};
    const int funding = static_cast<int>(uniform(1, 100));
    if (funding <= 60) {
      pay["funding"] = "own_account";
      pay["account"] = id + (credit[c] && chance(30) ? ":credit" : ":debit");
    } else if (funding <= 75) {
      pay["funding"] = "other_bank";
      pay["card_token"] = "tok-" + id;
    } else {
      pay["funding"] = funding <= 90 ? "wechat" : "unionpay";
    }
    const bool card = funding <= 75;
    pay["channel"] = card ? kCardChannels[uniform(0, 8)] : kWalletChannels[uniform(0, 3)];
    if (card) pay["medium"] = kMedia[uniform(0, 5)];
    const int size = static_cast<int>(uniform(1, 100));
    int64_t amount = size <= 70   ? uniform(100, 20'000)
                     : size <= 97 ? uniform(20'000, 200'000)
                                  : uniform(500'000, 2'000'000);
    if (pay["channel"] == "qr_static" && size <= 97) amount = uniform(100, 30'000);
    if (points[c] > 0 && chance(15)) pay["points"] = std::min(points[c], amount / 5 + 1);
    if (!coupon[c].empty() && chance(10)) {
      pay["coupon"] = coupon[c];
      amount += 10'000;
    }
    if (chance(5)) pay["discount_minor"] = uniform(1, 100);
    pay["order_amount_minor"] = amount;
    emit(pay);
    paid.push_back({m, order, amount});
    if (chance(1)) emit(pay);  // a merchant retry: the same line again, a duplicate in every run
    if (chance(3)) {  // a reversal of a recent payment (after 23:00 some fall past the clearing date)
      const Paid& p =
          paid[paid.size() - 1 - static_cast<size_t>(uniform(0, std::min<int64_t>(19, paid.size() - 1)))];
      t += uniform(0, 3) * kNanosPerSecond;
      emit({{"type", "reverse"},
            {"command_id", p.merchant + ":" + p.order + ":rev" + std::to_string(i)},
            {"merchant", p.merchant},
            {"merchant_order_no", p.order},
            {"reason", "timeout"}});
    }
    if (chance(4)) {  // a partial refund, sometimes the rest, sometimes one fen too many
      const Paid& p = paid[static_cast<size_t>(uniform(0, static_cast<int64_t>(paid.size()) - 1))];
      const int64_t first = std::max<int64_t>(1, p.amount * uniform(10, 60) / 100);
      const int roll = static_cast<int>(uniform(1, 100));
      emit({{"type", "refund"},
            {"command_id", p.merchant + ":RF" + std::to_string(i) + "a"},
            {"merchant", p.merchant},
            {"merchant_order_no", p.order},
            {"refund_no", "RF" + std::to_string(i) + "a"},
            {"amount_minor", first}});
      if (roll <= 40) {
        const int64_t rest = p.amount - first + (roll <= 10 ? 1 : 0);
        emit({{"type", "refund"},
              {"command_id", p.merchant + ":RF" + std::to_string(i) + "b"},
              {"merchant", p.merchant},
              {"merchant_order_no", p.order},
              {"refund_no", "RF" + std::to_string(i) + "b"},
              {"amount_minor", rest}});
      }
    }
  }
  return lines;
}

// ---- running `ledger submit` as a child ----

struct SubmitRun {
  std::vector<std::string> lines;  // complete result lines read from the child's stdout
  bool partial_line = false;       // bytes after the last newline when the pipe closed
  bool killed = false;             // ended by our SIGKILL
  bool exited_ok = false;          // exit status 0
  bool timed_out = false;
  std::string stderr_text;
};

struct KillPlan {
  std::optional<size_t> after_lines;  // kill once this many lines were read (after a delay)
  std::optional<int> after_ms;        // kill this long after the start
  int delay_ms = 0;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Waits up to `deadline` for `pid`; SIGKILLs it past the deadline. Returns the wait status.
int Reap(pid_t pid, Clock::duration deadline, bool* timed_out) {
  const auto end = Clock::now() + deadline;
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0) return status;
    if (Clock::now() > end) {
      *timed_out = true;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Runs `ledger submit --data data --clock occurred --now kNow file`, reading its results as they come, and
// kills it as `plan` says. Every path ends with the child reaped.
SubmitRun RunSubmit(const std::string& data, const std::string& file, const std::string& stderr_path,
                    const KillPlan& plan) {
  SubmitRun run;
  std::vector<std::string> args = {LEDGER_BINARY, "submit", "--data", data, "--clock",
                                   "occurred",    "--now",  kNow,     file};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2 failed";
    return run;
  }
  const int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (err < 0) {
    ADD_FAILURE() << "cannot open " << stderr_path;
    return run;
  }
  const auto start = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {  // child: only async-signal-safe calls until exec
    dup2(out[1], STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  close(err);
  if (pid < 0) {
    close(out[0]);
    ADD_FAILURE() << "fork failed";
    return run;
  }

  std::string pending;
  std::optional<Clock::time_point> kill_at;
  char buffer[1 << 16];
  // Bounded by kRunDeadline: every iteration waits at most 20 ms.
  while (true) {
    const auto now = Clock::now();
    if (now - start > kRunDeadline) {
      run.timed_out = true;
      kill(pid, SIGKILL);
      ADD_FAILURE() << "ledger submit did not finish within the deadline";
      break;
    }
    if (!kill_at && plan.after_ms && now - start >= std::chrono::milliseconds(*plan.after_ms)) kill_at = now;
    if (!kill_at && plan.after_lines && run.lines.size() >= *plan.after_lines) {
      kill_at = now + std::chrono::milliseconds(plan.delay_ms);
    }
    if (kill_at && !run.killed && now >= *kill_at) {
      kill(pid, SIGKILL);
      run.killed = true;  // confirmed by the wait status below
    }
    pollfd poll_fd{out[0], POLLIN, 0};
    const int ready = poll(&poll_fd, 1, 20);
    if (ready <= 0) continue;
    const ssize_t n = read(out[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child exited or was killed, and every printed byte is read
    pending.append(buffer, static_cast<size_t>(n));
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      run.lines.push_back(pending.substr(0, newline));
      pending.erase(0, newline + 1);
    }
  }
  close(out[0]);
  const int status = Reap(pid, kReapDeadline, &run.timed_out);
  run.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  run.exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  run.partial_line = !pending.empty();
  run.stderr_text = ReadFile(stderr_path);
  return run;
}

// ---- checks ----

struct Outcome {
  std::string command_id;
  std::string status;
  std::string reason;  // "" when null
  std::string transaction_id;
  std::vector<uint64_t> sequences;
};

std::optional<Outcome> ParseResult(const std::string& line) {
  try {
    const json result = json::parse(line);
    Outcome outcome;
    outcome.command_id = result.at("command_id").get<std::string>();
    outcome.status = result.at("status").get<std::string>();
    outcome.reason = result.at("reason").is_null() ? "" : result.at("reason").get<std::string>();
    outcome.transaction_id = result.at("transaction_id").get<std::string>();
    outcome.sequences = result.at("sequences").get<std::vector<uint64_t>>();
    return outcome;
  } catch (const json::exception& error) {
    ADD_FAILURE() << "result line is not a result: " << line << " (" << error.what() << ")";
    return std::nullopt;
  }
}

std::string CommandIdOf(const std::string& line) {
  return json::parse(line).at("command_id").get<std::string>();
}

// The chain (report) and state digest of a stopped ledger's folder.
struct FolderState {
  replay::ReplayReport report;
  Digest digest{};
};

FolderState Inspect(const Store& store) {
  FolderState state;
  Result<replay::ReplayReport> report = replay::Replay(store, nullptr);
  EXPECT_TRUE(report.ok()) << report.status().ToString();
  if (report.ok()) state.report = *report;
  Result<Digest> digest = replay::StateDigest(store);
  EXPECT_TRUE(digest.ok());
  if (digest.ok()) state.digest = *digest;
  return state;
}

std::unique_ptr<Store> OpenStore(const std::string& dir) {
  Result<std::unique_ptr<Store>> store = Store::Open(dir, StoreOptions());
  EXPECT_TRUE(store.ok()) << dir << ": " << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

TEST(Crash, KilledSubmitLosesNoAcknowledgedCommandAndAppliesNothingTwice) {
  TempDir dir;
  const size_t size = StreamSize();
  std::vector<std::string> commands = MakeStream(kSeed, size);
  commands.resize(size);  // the last payment may have brought a refund or retry past the bound
  ASSERT_EQ(commands.size(), size);
  const std::string file = dir.path() + "/commands.jsonl";
  {
    std::ofstream out(file);
    for (const std::string& line : commands) out << line << '\n';
    ASSERT_TRUE(out.good());
  }
  std::vector<std::string> ids;
  ids.reserve(commands.size());
  for (const std::string& line : commands) ids.push_back(CommandIdOf(line));

  // The reference: the same file, no crash.
  const std::string reference_dir = dir.path() + "/reference";
  const SubmitRun reference = RunSubmit(reference_dir, file, dir.path() + "/reference.err", KillPlan{});
  ASSERT_TRUE(reference.exited_ok) << reference.stderr_text;
  ASSERT_EQ(reference.lines.size(), commands.size());
  std::vector<Outcome> expected;
  expected.reserve(commands.size());
  for (size_t k = 0; k < reference.lines.size(); ++k) {
    std::optional<Outcome> outcome = ParseResult(reference.lines[k]);
    ASSERT_TRUE(outcome.has_value());
    ASSERT_EQ(outcome->command_id, ids[k]) << "results come in input order";
    expected.push_back(std::move(*outcome));
  }

  // Runs with kills, each restarting on the same full file, then one to the end.
  const std::string crash_dir = dir.path() + "/crashed";
  std::mt19937_64 random(kSeed);
  auto uniform = [&](int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(random);
  };
  std::vector<int> decided_in_run(commands.size(), -1);  // the run that acknowledged a non-duplicate outcome
  struct Acknowledged {
    size_t index;
    Outcome outcome;
  };
  std::vector<Acknowledged> acknowledged;
  size_t furthest = 0;  // the most lines any run acknowledged
  int kills = 0, duplicates_after_restart = 0, partial_lines = 0;
  std::ostringstream per_run;
  const int runs = kLineKills + 2;  // line kills, one early kill, and the final run
  for (int r = 0; r < runs; ++r) {
    const bool last = r == runs - 1;
    KillPlan plan;
    if (r == kEarlyKillRun) {
      plan.after_ms = static_cast<int>(uniform(5, 400));
    } else if (!last) {
      plan.after_lines =
          std::min<size_t>(commands.size() - 1, furthest + static_cast<size_t>(uniform(size / 40, size / 5)));
      plan.delay_ms = static_cast<int>(uniform(0, kKillDelayMsMax));
    }
    const SubmitRun run = RunSubmit(crash_dir, file, dir.path() + "/run" + std::to_string(r) + ".err", plan);
    ASSERT_FALSE(run.timed_out);
    if (last) {
      ASSERT_TRUE(run.exited_ok) << run.stderr_text;
      EXPECT_EQ(run.lines.size(), commands.size());
    } else if (!run.killed) {
      // The run may finish before the kill lands; it must then have succeeded.
      ASSERT_TRUE(run.exited_ok) << run.stderr_text;
    }
    kills += run.killed ? 1 : 0;
    partial_lines += run.partial_line ? 1 : 0;
    int duplicates = 0;
    std::optional<size_t> first_decided;
    ASSERT_LE(run.lines.size(), commands.size());
    for (size_t k = 0; k < run.lines.size(); ++k) {
      std::optional<Outcome> outcome = ParseResult(run.lines[k]);
      ASSERT_TRUE(outcome.has_value());
      const Outcome& want = expected[k];
      // Line k answers command k, with the reference's transaction and sequences: with a fixed clock the
      // events are a function of the file, and a command applied before a kill comes back as duplicate.
      ASSERT_EQ(outcome->command_id, ids[k]) << "run " << r << " line " << k;
      EXPECT_EQ(outcome->transaction_id, want.transaction_id) << "run " << r << ": " << run.lines[k];
      EXPECT_EQ(outcome->sequences, want.sequences) << "run " << r << ": " << run.lines[k];
      EXPECT_EQ(outcome->reason, want.reason) << "run " << r << ": " << run.lines[k];
      if (want.status == "duplicate") {
        EXPECT_EQ(outcome->status, "duplicate") << "run " << r << ": " << run.lines[k];
      } else if (outcome->status == "duplicate") {
        ++duplicates;
      } else {
        EXPECT_EQ(outcome->status, want.status) << "run " << r << ": " << run.lines[k];
        // Decided (not duplicate) at most once over all runs: nothing is applied twice.
        EXPECT_EQ(decided_in_run[k], -1)
            << "command " << ids[k] << " decided in run " << decided_in_run[k] << " and again in run " << r;
        decided_in_run[k] = r;
        if (!first_decided) first_decided = k;
      }
      acknowledged.push_back({k, std::move(*outcome)});
      if (::testing::Test::HasFailure()) break;
    }
    ASSERT_FALSE(::testing::Test::HasFailure()) << "run " << r;
    if (r > 0) duplicates_after_restart += duplicates;
    furthest = std::max(furthest, run.lines.size());
    per_run << " run" << r << (run.killed ? "(killed)" : "(exit 0)") << "=" << run.lines.size() << " acks/"
            << duplicates << " dup";
    if (first_decided) per_run << " (first decided: line " << *first_decided + 1 << ")";
  }
  EXPECT_GE(kills, 3) << "too few runs were killed to test anything";
  // Commands made durable by a run that was killed before it printed them: acknowledged only as duplicate.
  int hidden = 0;
  for (size_t k = 0; k < commands.size(); ++k) {
    if (expected[k].status != "duplicate" && decided_in_run[k] == -1) ++hidden;
  }

  // The folders, with every child gone.
  std::unique_ptr<Store> crashed = OpenStore(crash_dir);
  std::unique_ptr<Store> reference_store = OpenStore(reference_dir);
  ASSERT_TRUE(crashed && reference_store);
  const FolderState after_crashes = Inspect(*crashed);
  const FolderState without = Inspect(*reference_store);
  // The chain verifies from sequence 1 with no gap, and ends where the reference ends.
  EXPECT_TRUE(after_crashes.report.ok()) << "sequence " << after_crashes.report.first_bad_sequence.value_or(0)
                                         << ": " << after_crashes.report.problem;
  EXPECT_TRUE(without.report.ok()) << without.report.problem;
  EXPECT_EQ(after_crashes.report.events_read, after_crashes.report.last_sequence);
  EXPECT_EQ(after_crashes.report.last_sequence, without.report.last_sequence)
      << "events were lost or applied twice";
  EXPECT_EQ(ToHex(after_crashes.report.chain_head), ToHex(without.report.chain_head));
  EXPECT_EQ(ToHex(after_crashes.digest), ToHex(without.digest))
      << "state differs from the run without crashes";
  // Every acknowledged command is in the idempotency index with the acknowledged transaction and sequences.
  size_t missing = 0;
  for (const Acknowledged& ack : acknowledged) {
    fb::CommandOutcomeRecordT record;
    if (!LoadRecord(crashed->state(), keys::CommandOutcome(ack.outcome.command_id), &record)) {
      ++missing;
      ADD_FAILURE() << "acknowledged command " << ack.outcome.command_id << " (line " << ack.index + 1
                    << ") is not in the ledger";
      if (missing > 10) break;
      continue;
    }
    EXPECT_EQ(record.transaction_id, ack.outcome.transaction_id) << ack.outcome.command_id;
    EXPECT_EQ(record.sequences, ack.outcome.sequences) << ack.outcome.command_id;
    EXPECT_EQ(record.reason, ack.outcome.reason) << ack.outcome.command_id;
    if (::testing::Test::HasFailure()) break;
  }
  // A rebuild of the crashed folder's projections from its events is byte-identical too.
  TempDir rebuilt_dir;
  std::unique_ptr<Store> rebuilt = OpenStore(rebuilt_dir.path() + "/rebuilt");
  ASSERT_TRUE(rebuilt);
  Result<replay::ReplayReport> rebuild = replay::Replay(*crashed, rebuilt.get());
  ASSERT_TRUE(rebuild.ok() && rebuild->ok());
  Result<Digest> rebuilt_digest = replay::StateDigest(*rebuilt);
  ASSERT_TRUE(rebuilt_digest.ok());
  EXPECT_EQ(ToHex(*rebuilt_digest), ToHex(after_crashes.digest));

  std::ostringstream figures;
  figures << "crash: " << commands.size() << " commands, " << without.report.last_sequence << " events, "
          << kills << " kills, " << acknowledged.size() << " acknowledged lines over " << runs << " runs ("
          << duplicates_after_restart << " duplicates after restarts, " << hidden
          << " commands durable before a kill but never acknowledged as decided), " << partial_lines
          << " runs ended mid-line, gaps " << (after_crashes.report.ok() ? 0 : 1) << ", missing " << missing
          << "\n " << per_run.str();
  std::cout << figures.str() << std::endl;
  ::testing::Test::RecordProperty("commands", static_cast<int>(commands.size()));
  ::testing::Test::RecordProperty("kills", kills);
  ::testing::Test::RecordProperty("acknowledged_lines", static_cast<int>(acknowledged.size()));
  ::testing::Test::RecordProperty("duplicates_after_restart", duplicates_after_restart);
  ::testing::Test::RecordProperty("durable_before_kill_unacknowledged", hidden);
  ::testing::Test::RecordProperty("gaps", after_crashes.report.ok() ? 0 : 1);
}

// A command id reused with other content is rejected (and recorded) once. A client that restarts on the same
// file after a crash sends that line again: it must get the same answer (transaction and sequences) and the
// ledger must record nothing new, or a crash-free run and a crashed one end with different chains.
TEST(Crash, RestartOnTheSameFileDoesNotRecordAMismatchedCommandAgain) {
  TempDir dir;
  const std::string file = dir.path() + "/commands.jsonl";
  {
    std::ofstream out(file);
    auto merchant = [](const char* id, const char* merchant, const char* at) {
      return json{{"type", "open_merchant"}, {"command_id", id}, {"merchant", merchant},
                  {"name", "Shop"},          {"fee_bps", 60},    {"occurred_at", at}}
          .dump();
    };
    out << merchant("m1", "M1", "2026-11-25T10:00:00+08:00") << '\n'
        << merchant("m1", "M2", "2026-11-25T10:00:00+08:00") << '\n'  // the same id, other content
        << merchant("m3", "M3", "2026-11-25T10:00:01+08:00") << '\n';
    ASSERT_TRUE(out.good());
  }
  const std::string data = dir.path() + "/data";
  const SubmitRun first = RunSubmit(data, file, dir.path() + "/first.err", KillPlan{});
  ASSERT_TRUE(first.exited_ok) << first.stderr_text;
  ASSERT_EQ(first.lines.size(), 3u);
  std::vector<Outcome> original;
  for (const std::string& line : first.lines) {
    std::optional<Outcome> outcome = ParseResult(line);
    ASSERT_TRUE(outcome.has_value());
    original.push_back(*outcome);
  }
  ASSERT_EQ(original[1].status, "rejected");
  ASSERT_EQ(original[1].reason, "DUPLICATE_COMMAND_MISMATCH");
  FolderState before;
  {
    std::unique_ptr<Store> store = OpenStore(data);
    ASSERT_TRUE(store);
    before = Inspect(*store);
  }
  ASSERT_EQ(before.report.last_sequence, 3u);

  const SubmitRun again = RunSubmit(data, file, dir.path() + "/again.err", KillPlan{});
  ASSERT_TRUE(again.exited_ok) << again.stderr_text;
  ASSERT_EQ(again.lines.size(), 3u);
  for (size_t k = 0; k < again.lines.size(); ++k) {
    std::optional<Outcome> outcome = ParseResult(again.lines[k]);
    ASSERT_TRUE(outcome.has_value());
    EXPECT_EQ(outcome->reason, original[k].reason) << again.lines[k];
    EXPECT_EQ(outcome->transaction_id, original[k].transaction_id)
        << "resubmitted line " << k + 1 << ": " << again.lines[k];
    EXPECT_EQ(outcome->sequences, original[k].sequences)
        << "resubmitted line " << k + 1 << ": " << again.lines[k];
  }
  std::unique_ptr<Store> store = OpenStore(data);
  ASSERT_TRUE(store);
  const FolderState after = Inspect(*store);
  EXPECT_EQ(after.report.last_sequence, before.report.last_sequence) << "the restart recorded events again";
  EXPECT_EQ(ToHex(after.report.chain_head), ToHex(before.report.chain_head));
  EXPECT_EQ(ToHex(after.digest), ToHex(before.digest));
}

}  // namespace
}  // namespace ledger
