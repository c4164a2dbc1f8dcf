// Goal: SIGKILL of `ledger submit` mid-stream loses no acknowledged command and applies nothing twice.
//
// After the kills the hash chain verifies and the state equals that of a run without crashes. One JSON
// Lines file of ~20,000 commands (set-up, then a payment day through the 23:00 cut-off and midnight, with
// reversals, refunds, over-refunds and merchant retries) is applied once without crashes (the reference)
// and once with repeated kills: `submit` restarts on the same full file after each kill, so what was
// applied comes back as `duplicate`. With --clock occurred and a fixed --now the event stream is a function
// of the file, so the crashed folder must end byte-identical to the reference.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/time.h"
#include "replay/replay.h"
#include "state/records.h"
#include "storage/store.h"
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
// midnight. Deterministic for a seed: every step draws from one random source in a fixed order.
class StreamBuilder {
 public:
  StreamBuilder(uint64_t seed, size_t size)
      : random_(seed),
        size_(size),
        customers_(static_cast<int>(size / kCommandsPerCustomer)),
        credit_(customers_ + 1, false),
        points_(customers_ + 1, 0),
        coupon_(customers_ + 1) {}

  std::vector<std::string> Build() {
    t_ = *ParseIso8601("2026-11-25T00:00:01+08:00");
    OpenMerchants();
    for (int c = 1; c <= customers_; ++c) SetUpCustomer(c);
    t_ = *ParseIso8601("2026-11-25T16:00:00+08:00");
    for (int i = 1; lines_.size() < size_; ++i) PayAndFollowUp(i);
    return std::move(lines_);
  }

 private:
  struct Paid {
    std::string merchant, order;
    int64_t amount;
  };

  int64_t Uniform(int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(random_);
  }
  bool Chance(int percent) { return Uniform(1, 100) <= percent; }
  void Emit(json command) {
    command["occurred_at"] = testing::At(t_);
    lines_.push_back(command.dump());
  }
  static std::string Merchant(int64_t m) { return "M" + std::to_string(m); }
  static std::string Customer(int64_t c) { return "C" + std::to_string(c); }

  void OpenMerchants() {
    for (int m = 1; m <= kMerchants; ++m) {
      static const int kFees[] = {0, 30, 38, 60, 100};
      Emit({{"type", "open_merchant"},
            {"command_id", "m-" + Merchant(m)},
            {"merchant", Merchant(m)},
            {"name", "Merchant " + std::to_string(m)},
            {"fee_bps", kFees[Uniform(0, 4)]}});
      t_ += kNanosPerSecond;
    }
  }

  // A debit account with a deposit; sometimes a credit card, points, a coupon, an own limit.
  void SetUpCustomer(int c) {
    const std::string id = Customer(c);
    Emit({{"type", "open_account"},
          {"command_id", "a-" + id + "-d"},
          {"customer", id},
          {"account", id + ":debit"},
          {"kind", "debit_card"}});
    Emit({{"type", "deposit"},
          {"command_id", "d-" + id},
          {"account", id + ":debit"},
          {"amount_minor", Chance(5) ? Uniform(1'000, 20'000) : Uniform(50'000, 2'000'000)}});
    if (Chance(30)) {
      credit_[c] = true;
      Emit({{"type", "open_account"},
            {"command_id", "a-" + id + "-c"},
            {"customer", id},
            {"account", id + ":credit"},
            {"kind", "credit_card"},
            {"credit_limit_minor", Uniform(10, 50) * 100'000}});
    }
    if (Chance(60)) {
      points_[c] = Uniform(1'000, 50'000);
      Emit({{"type", "award_points"}, {"command_id", "p-" + id}, {"customer", id}, {"points", points_[c]}});
    }
    if (Chance(25)) IssueCoupon(c);
    if (Chance(10)) SetLimit(id);
    t_ += Uniform(0, 2) * kNanosPerSecond;
  }

  void IssueCoupon(int c) {
    const std::string id = Customer(c);
    coupon_[c] = "CP-" + id;
    const int64_t value = Uniform(5, 50) * 100;
    json issue = {{"type", "issue_coupon"},
                  {"command_id", "c-" + id},
                  {"coupon", coupon_[c]},
                  {"customer", id},
                  {"value_minor", value},
                  {"min_spend_minor", value * 2},
                  {"funded_by", Chance(50) ? "bank" : "merchant"},
                  {"expires_at", Chance(10) ? "2026-11-25T23:59:59+08:00" : "2026-12-31T23:59:59+08:00"}};
    if (Chance(50)) issue["merchant"] = Merchant(Uniform(1, kMerchants));
    Emit(issue);
  }

  void SetLimit(const std::string& id) {
    json limit = {{"type", "set_customer_limit"}, {"command_id", "l-" + id}, {"customer", id}};
    if (Chance(50)) {
      limit["medium"] = "sms";
      limit["daily_minor"] = 200'000;
    } else {
      limit["medium"] = "password_free";
      limit["daily_count"] = 3;
    }
    Emit(limit);
  }

  // Payment i of customer c: funding, channel and medium, then the amount and the tenders.
  json PayCommand(int i, int64_t c) {
    static const char* kCardChannels[] = {"b2c_pc", "b2c_h5",    "b2c_sdk",    "b2b",
                                          "c2c",    "qr_static", "qr_dynamic", "qr_customer_presented",
                                          "nfc"};
    static const char* kWalletChannels[] = {"aggregated", "qr_static", "qr_dynamic", "qr_customer_presented"};
    static const char* kMedia[] = {"u_shield", "password_device", "otp_card",
                                   "sms",      "fingerprint",     "password_free"};
    const std::string id = Customer(c);
    const std::string m = Merchant(Uniform(1, kMerchants));
    const std::string order = "ORD" + std::to_string(i);
    json pay = {{"type", "pay"},
                {"command_id", m + ":" + order},
                {"merchant", m},
                {"merchant_order_no", order},
                {"customer", id}};
    const int funding = static_cast<int>(Uniform(1, 100));
    if (funding <= 60) {
      pay["funding"] = "own_account";
      pay["account"] = id + (credit_[c] && Chance(30) ? ":credit" : ":debit");
    } else if (funding <= 75) {
      pay["funding"] = "other_bank";
      pay["card_token"] = "tok-" + id;
    } else {
      pay["funding"] = funding <= 90 ? "wechat" : "unionpay";
    }
    const bool card = funding <= 75;
    pay["channel"] = card ? kCardChannels[Uniform(0, 8)] : kWalletChannels[Uniform(0, 3)];
    if (card) pay["medium"] = kMedia[Uniform(0, 5)];
    const int band = static_cast<int>(Uniform(1, 100));
    int64_t amount = band <= 70   ? Uniform(100, 20'000)
                     : band <= 97 ? Uniform(20'000, 200'000)
                                  : Uniform(500'000, 2'000'000);
    if (pay["channel"] == "qr_static" && band <= 97) amount = Uniform(100, 30'000);
    if (points_[c] > 0 && Chance(15)) pay["points"] = std::min(points_[c], amount / 5 + 1);
    if (!coupon_[c].empty() && Chance(10)) {
      pay["coupon"] = coupon_[c];
      amount += 10'000;
    }
    if (Chance(5)) pay["discount_minor"] = Uniform(1, 100);
    pay["order_amount_minor"] = amount;
    return pay;
  }

  // A payment, sometimes retried by the merchant, sometimes followed by a reversal or refunds.
  void PayAndFollowUp(int i) {
    t_ += Uniform(0, 5) * kNanosPerSecond;
    const int64_t c = Uniform(1, customers_);
    const json pay = PayCommand(i, c);
    Emit(pay);
    paid_.push_back({pay["merchant"].get<std::string>(), pay["merchant_order_no"].get<std::string>(),
                     pay["order_amount_minor"].get<int64_t>()});
    if (Chance(1)) Emit(pay);  // a merchant retry: the same line again, a duplicate in every run
    if (Chance(3)) ReverseRecent(i);
    if (Chance(4)) Refund(i);
  }

  // A reversal of a recent payment (after 23:00 some fall past the clearing date).
  void ReverseRecent(int i) {
    const Paid& p =
        paid_[paid_.size() - 1 - static_cast<size_t>(Uniform(0, std::min<int64_t>(19, paid_.size() - 1)))];
    t_ += Uniform(0, 3) * kNanosPerSecond;
    Emit({{"type", "reverse"},
          {"command_id", p.merchant + ":" + p.order + ":rev" + std::to_string(i)},
          {"merchant", p.merchant},
          {"merchant_order_no", p.order},
          {"reason", "timeout"}});
  }

  // A partial refund, sometimes the rest, sometimes one fen too many.
  void Refund(int i) {
    const Paid& p = paid_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(paid_.size()) - 1))];
    const int64_t first = std::max<int64_t>(1, p.amount * Uniform(10, 60) / 100);
    const int roll = static_cast<int>(Uniform(1, 100));
    Emit({{"type", "refund"},
          {"command_id", p.merchant + ":RF" + std::to_string(i) + "a"},
          {"merchant", p.merchant},
          {"merchant_order_no", p.order},
          {"refund_no", "RF" + std::to_string(i) + "a"},
          {"amount_minor", first}});
    if (roll <= 40) {
      const int64_t rest = p.amount - first + (roll <= 10 ? 1 : 0);
      Emit({{"type", "refund"},
            {"command_id", p.merchant + ":RF" + std::to_string(i) + "b"},
            {"merchant", p.merchant},
            {"merchant_order_no", p.order},
            {"refund_no", "RF" + std::to_string(i) + "b"},
            {"amount_minor", rest}});
    }
  }

  std::mt19937_64 random_;
  size_t size_;
  int customers_;
  int64_t t_ = 0;
  std::vector<std::string> lines_;
  std::vector<bool> credit_;
  std::vector<int64_t> points_;
  std::vector<std::string> coupon_;
  std::vector<Paid> paid_;
};

std::vector<std::string> MakeStream(uint64_t seed, size_t size) { return StreamBuilder(seed, size).Build(); }

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

// The command file of the test: the stream cut to its size, and each line's command id.
struct CommandFile {
  std::string path;
  std::vector<std::string> commands;
  std::vector<std::string> ids;
};

void WriteCommandFile(const std::string& dir, CommandFile* file) {
  const size_t size = StreamSize();
  file->commands = MakeStream(kSeed, size);
  file->commands.resize(size);  // the last payment may have brought a refund or retry past the bound
  ASSERT_EQ(file->commands.size(), size);
  file->path = dir + "/commands.jsonl";
  {
    std::ofstream out(file->path);
    for (const std::string& line : file->commands) out << line << '\n';
    ASSERT_TRUE(out.good());
  }
  file->ids.reserve(file->commands.size());
  for (const std::string& line : file->commands) file->ids.push_back(CommandIdOf(line));
}

// The reference: the same file applied without a crash in `reference_dir`; its outcomes, line by line.
void RunReference(const std::string& dir, const std::string& reference_dir, const CommandFile& file,
                  std::vector<Outcome>* expected) {
  const SubmitRun reference = RunSubmit(reference_dir, file.path, dir + "/reference.err", KillPlan{});
  ASSERT_TRUE(reference.exited_ok) << reference.stderr_text;
  ASSERT_EQ(reference.lines.size(), file.commands.size());
  expected->reserve(file.commands.size());
  for (size_t k = 0; k < reference.lines.size(); ++k) {
    std::optional<Outcome> outcome = ParseResult(reference.lines[k]);
    ASSERT_TRUE(outcome.has_value());
    ASSERT_EQ(outcome->command_id, file.ids[k]) << "results come in input order";
    expected->push_back(std::move(*outcome));
  }
}

// The runs with kills, each restarting on the same full file, then one to the end: where each is killed, and
// what each acknowledged, checked line by line against the reference.
class CrashRuns {
 public:
  struct Acknowledged {
    size_t index;
    Outcome outcome;
  };
  static constexpr int kRuns = kLineKills + 2;  // line kills, one early kill, and the final run

  CrashRuns(const CommandFile& file, const std::vector<Outcome>& expected)
      : file_(file), expected_(expected), decided_in_run_(file.commands.size(), -1) {}

  // Where run `r` is killed: early, after a number of acknowledged lines past the furthest run so far, or not
  // at all (the last run).
  KillPlan PlanFor(int r) {
    const size_t size = file_.commands.size();
    KillPlan plan;
    if (r == kEarlyKillRun) {
      plan.after_ms = static_cast<int>(Uniform(5, 400));
    } else if (r != kRuns - 1) {
      plan.after_lines =
          std::min<size_t>(size - 1, furthest_ + static_cast<size_t>(Uniform(size / 40, size / 5)));
      plan.delay_ms = static_cast<int>(Uniform(0, kKillDelayMsMax));
    }
    return plan;
  }

  // Checks what run `r` acknowledged and records the commands it decided.
  void Check(int r, const SubmitRun& run) {
    const bool last = r == kRuns - 1;
    ASSERT_FALSE(run.timed_out);
    if (last) {
      ASSERT_TRUE(run.exited_ok) << run.stderr_text;
      EXPECT_EQ(run.lines.size(), file_.commands.size());
    } else if (!run.killed) {
      // The run may finish before the kill lands; it must then have succeeded.
      ASSERT_TRUE(run.exited_ok) << run.stderr_text;
    }
    kills_ += run.killed ? 1 : 0;
    partial_lines_ += run.partial_line ? 1 : 0;
    int duplicates = 0;
    std::optional<size_t> first_decided;
    ASSERT_LE(run.lines.size(), file_.commands.size());
    for (size_t k = 0; k < run.lines.size(); ++k) {
      std::optional<Outcome> outcome = ParseResult(run.lines[k]);
      ASSERT_TRUE(outcome.has_value());
      CheckLine(r, k, run.lines[k], *outcome, &duplicates, &first_decided);
      acknowledged_.push_back({k, std::move(*outcome)});
      if (::testing::Test::HasFailure()) break;
    }
    ASSERT_FALSE(::testing::Test::HasFailure()) << "run " << r;
    if (r > 0) duplicates_after_restart_ += duplicates;
    furthest_ = std::max(furthest_, run.lines.size());
    per_run_ << " run" << r << (run.killed ? "(killed)" : "(exit 0)") << "=" << run.lines.size() << " acks/"
             << duplicates << " dup";
    if (first_decided) per_run_ << " (first decided: line " << *first_decided + 1 << ")";
  }

  // Commands made durable by a run that was killed before it printed them: acknowledged only as duplicate.
  int Hidden() const {
    int hidden = 0;
    for (size_t k = 0; k < file_.commands.size(); ++k) {
      if (expected_[k].status != "duplicate" && decided_in_run_[k] == -1) ++hidden;
    }
    return hidden;
  }
  int kills() const { return kills_; }
  int partial_lines() const { return partial_lines_; }
  int duplicates_after_restart() const { return duplicates_after_restart_; }
  const std::vector<Acknowledged>& acknowledged() const { return acknowledged_; }
  std::string per_run() const { return per_run_.str(); }

 private:
  int64_t Uniform(int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(random_);
  }

  // Line k answers command k, with the reference's transaction and sequences: with a fixed clock the events
  // are a function of the file, and a command applied before a kill comes back as duplicate.
  void CheckLine(int r, size_t k, const std::string& line, const Outcome& outcome, int* duplicates,
                 std::optional<size_t>* first_decided) {
    const Outcome& want = expected_[k];
    ASSERT_EQ(outcome.command_id, file_.ids[k]) << "run " << r << " line " << k;
    EXPECT_EQ(outcome.transaction_id, want.transaction_id) << "run " << r << ": " << line;
    EXPECT_EQ(outcome.sequences, want.sequences) << "run " << r << ": " << line;
    EXPECT_EQ(outcome.reason, want.reason) << "run " << r << ": " << line;
    if (want.status == "duplicate") {
      EXPECT_EQ(outcome.status, "duplicate") << "run " << r << ": " << line;
    } else if (outcome.status == "duplicate") {
      ++*duplicates;
    } else {
      EXPECT_EQ(outcome.status, want.status) << "run " << r << ": " << line;
      // Decided (not duplicate) at most once over all runs: nothing is applied twice.
      EXPECT_EQ(decided_in_run_[k], -1) << "command " << file_.ids[k] << " decided in run "
                                        << decided_in_run_[k] << " and again in run " << r;
      decided_in_run_[k] = r;
      if (!*first_decided) *first_decided = k;
    }
  }

  const CommandFile& file_;
  const std::vector<Outcome>& expected_;
  std::mt19937_64 random_{kSeed};
  std::vector<int> decided_in_run_;  // the run that acknowledged a non-duplicate outcome
  std::vector<Acknowledged> acknowledged_;
  size_t furthest_ = 0;  // the most lines any run acknowledged
  int kills_ = 0, duplicates_after_restart_ = 0, partial_lines_ = 0;
  std::ostringstream per_run_;
};

// The chain verifies from sequence 1 with no gap, and ends where the reference ends, with the same state.
void ExpectSameHistory(const FolderState& after_crashes, const FolderState& without) {
  EXPECT_TRUE(after_crashes.report.ok()) << "sequence " << after_crashes.report.first_bad_sequence.value_or(0)
                                         << ": " << after_crashes.report.problem;
  EXPECT_TRUE(without.report.ok()) << without.report.problem;
  EXPECT_EQ(after_crashes.report.events_read, after_crashes.report.last_sequence);
  EXPECT_EQ(after_crashes.report.last_sequence, without.report.last_sequence)
      << "events were lost or applied twice";
  EXPECT_EQ(ToHex(after_crashes.report.chain_head), ToHex(without.report.chain_head));
  EXPECT_EQ(ToHex(after_crashes.digest), ToHex(without.digest))
      << "state differs from the run without crashes";
}

// Every acknowledged command is in the idempotency index with the acknowledged transaction and sequences.
// Returns how many are missing (the count stops a little past 10).
size_t ExpectAcknowledgedIndexed(const Store& crashed,
                                 const std::vector<CrashRuns::Acknowledged>& acknowledged) {
  size_t missing = 0;
  for (const CrashRuns::Acknowledged& ack : acknowledged) {
    fb::CommandOutcomeRecordT record;
    if (!LoadRecord(crashed.state(), keys::CommandOutcome(ack.outcome.command_id), &record)) {
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
  return missing;
}

// A rebuild of the crashed folder's projections from its events is byte-identical too.
void ExpectRebuildIdentical(Store& crashed, const Digest& digest) {
  TempDir rebuilt_dir;
  std::unique_ptr<Store> rebuilt = OpenStore(rebuilt_dir.path() + "/rebuilt");
  ASSERT_TRUE(rebuilt);
  Result<replay::ReplayReport> rebuild = replay::Replay(crashed, rebuilt.get());
  ASSERT_TRUE(rebuild.ok() && rebuild->ok());
  Result<Digest> rebuilt_digest = replay::StateDigest(*rebuilt);
  ASSERT_TRUE(rebuilt_digest.ok());
  EXPECT_EQ(ToHex(*rebuilt_digest), ToHex(digest));
}

TEST(Crash, KilledSubmitLosesNoAcknowledgedCommandAndAppliesNothingTwice) {
  TempDir dir;
  CommandFile file;
  ASSERT_NO_FATAL_FAILURE(WriteCommandFile(dir.path(), &file));
  const std::string reference_dir = dir.path() + "/reference";
  std::vector<Outcome> expected;
  ASSERT_NO_FATAL_FAILURE(RunReference(dir.path(), reference_dir, file, &expected));

  const std::string crash_dir = dir.path() + "/crashed";
  CrashRuns runs(file, expected);
  for (int r = 0; r < CrashRuns::kRuns; ++r) {
    const KillPlan plan = runs.PlanFor(r);
    const SubmitRun run =
        RunSubmit(crash_dir, file.path, dir.path() + "/run" + std::to_string(r) + ".err", plan);
    ASSERT_NO_FATAL_FAILURE(runs.Check(r, run));
  }
  EXPECT_GE(runs.kills(), 3) << "too few runs were killed to test anything";

  // The folders, with every child gone.
  std::unique_ptr<Store> crashed = OpenStore(crash_dir);
  std::unique_ptr<Store> reference_store = OpenStore(reference_dir);
  ASSERT_TRUE(crashed && reference_store);
  const FolderState after_crashes = Inspect(*crashed);
  const FolderState without = Inspect(*reference_store);
  ExpectSameHistory(after_crashes, without);
  const size_t missing = ExpectAcknowledgedIndexed(*crashed, runs.acknowledged());
  ASSERT_NO_FATAL_FAILURE(ExpectRebuildIdentical(*crashed, after_crashes.digest));

  std::ostringstream figures;
  figures << "crash: " << file.commands.size() << " commands, " << without.report.last_sequence << " events, "
          << runs.kills() << " kills, " << runs.acknowledged().size() << " acknowledged lines over "
          << CrashRuns::kRuns << " runs (" << runs.duplicates_after_restart()
          << " duplicates after restarts, " << runs.Hidden()
          << " commands durable before a kill but never acknowledged as decided), " << runs.partial_lines()
          << " runs ended mid-line, gaps " << (after_crashes.report.ok() ? 0 : 1) << ", missing " << missing
          << "\n " << runs.per_run();
  std::cout << figures.str() << std::endl;
  ::testing::Test::RecordProperty("commands", static_cast<int>(file.commands.size()));
  ::testing::Test::RecordProperty("kills", runs.kills());
  ::testing::Test::RecordProperty("acknowledged_lines", static_cast<int>(runs.acknowledged().size()));
  ::testing::Test::RecordProperty("duplicates_after_restart", runs.duplicates_after_restart());
  ::testing::Test::RecordProperty("durable_before_kill_unacknowledged", runs.Hidden());
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
