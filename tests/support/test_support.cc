#include "support/test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "core/time.h"
#include "ledger/command.h"
#include "replay/replay.h"
#include "state/records.h"
#include "state/trial_balance.h"

namespace ledger::testing {

TempDir::TempDir() {
  std::random_device random;
  const auto base = std::filesystem::temp_directory_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    const auto candidate = base / ("ledger-test-" + std::to_string(random()) + std::to_string(attempt));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate.string();
      return;
    }
  }
  ADD_FAILURE() << "cannot create a temporary folder";
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

int64_t DefaultTimeNs() { return *ParseIso8601("2026-11-25T10:00:00+08:00"); }

std::string At(int64_t utc_ns) { return FormatIso8601(utc_ns, 8 * 60); }

ParsedCommand Parse(const std::string& line) {
  Result<ParsedCommand> parsed = ParseCommandJson(line);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << " in " << line;
  return parsed.ok() ? std::move(parsed).value() : ParsedCommand();
}

std::vector<std::string> EventRecords(const Store& store, uint64_t from, uint64_t to) {
  std::vector<std::string> records;
  const Status status = store.ScanEvents(from, to, [&](uint64_t, std::string_view record) {
    records.emplace_back(record);
    return true;
  });
  EXPECT_TRUE(status.ok()) << status.ToString();
  return records;
}

TestLedger::TestLedger(LedgerConfig config) {
  options_.data_dir = dir_.path() + "/data";
  options_.config = config;
  options_.clock = ClockMode::kOccurred;
  options_.fixed_now_ns = DefaultTimeNs();
  Reopen();
}

void TestLedger::Reopen() {
  ledger_.reset();
  Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options_);
  if (!opened.ok()) {
    ADD_FAILURE() << opened.status().ToString();
    std::abort();
  }
  ledger_ = std::move(opened).value();
}

void TestLedger::ReopenWithClock(ClockMode clock, int64_t now_ns) {
  options_.clock = clock;
  options_.fixed_now_ns = now_ns;
  Reopen();
}

CommandResult TestLedger::Submit(const nlohmann::json& command) { return SubmitLine(command.dump()); }

CommandResult TestLedger::SubmitLine(const std::string& line) {
  Result<ParsedCommand> parsed = ParseCommandJson(line);
  if (!parsed.ok()) {
    ADD_FAILURE() << "parse error: " << parsed.status().ToString() << " in " << line;
    return CommandResult();
  }
  CommandResult result = ledger_->Stage(*parsed);
  const Status status = ledger_->CommitGroup();
  EXPECT_TRUE(status.ok()) << status.ToString();
  return result;
}

int64_t TestLedger::Balance(const std::string& account) {
  fb::BalanceRecordT balance;
  LoadRecord(ledger_->store().state(), keys::Balance(account), &balance);
  return balance.balance_minor;
}

std::pair<int64_t, int64_t> TestLedger::SumByUnit() {
  const Result<TrialBalance> total = SumBalances(ledger_->store());
  EXPECT_TRUE(total.ok());
  return total.ok() ? std::pair<int64_t, int64_t>(static_cast<int64_t>(total->cny_minor),
                                                  static_cast<int64_t>(total->points))
                    : std::pair<int64_t, int64_t>(-1, -1);
}

Digest TestLedger::StateDigest() {
  Result<Digest> digest = replay::StateDigest(ledger_->store());
  EXPECT_TRUE(digest.ok());
  return digest.ok() ? *digest : Digest{};
}

nlohmann::json OpenAccount(const std::string& id, const std::string& customer, const std::string& kind,
                           int64_t credit_limit_minor) {
  nlohmann::json command = {
      {"type", "open_account"}, {"command_id", id},
      {"customer", customer},   {"account", customer + (kind == "credit_card" ? ":credit" : ":debit")},
      {"kind", kind},           {"occurred_at", At(DefaultTimeNs())}};
  if (kind == "credit_card") command["credit_limit_minor"] = credit_limit_minor;
  return command;
}

nlohmann::json OpenMerchant(const std::string& id, const std::string& merchant, int fee_bps) {
  return {{"type", "open_merchant"},    {"command_id", id},   {"merchant", merchant},
          {"name", "Shop " + merchant}, {"fee_bps", fee_bps}, {"occurred_at", At(DefaultTimeNs())}};
}

nlohmann::json Deposit(const std::string& id, const std::string& account, int64_t amount_minor) {
  return {{"type", "deposit"},
          {"command_id", id},
          {"account", account},
          {"amount_minor", amount_minor},
          {"occurred_at", At(DefaultTimeNs())}};
}

nlohmann::json Transfer(const std::string& id, const std::string& from_account, const std::string& to_account,
                        int64_t amount_minor, const std::string& medium) {
  return {{"type", "transfer"},
          {"command_id", id},
          {"from_account", from_account},
          {"to_account", to_account},
          {"amount_minor", amount_minor},
          {"medium", medium},
          {"occurred_at", At(DefaultTimeNs())}};
}

nlohmann::json AwardPoints(const std::string& id, const std::string& customer, int64_t points) {
  return {{"type", "award_points"},
          {"command_id", id},
          {"customer", customer},
          {"points", points},
          {"occurred_at", At(DefaultTimeNs())}};
}

nlohmann::json Pay(const std::string& merchant, const std::string& order_no, const std::string& customer,
                   int64_t order_amount_minor, const std::string& account, const std::string& medium) {
  return {{"type", "pay"},
          {"command_id", merchant + ":" + order_no},
          {"merchant", merchant},
          {"merchant_order_no", order_no},
          {"customer", customer},
          {"funding", "own_account"},
          {"account", account.empty() ? customer + ":debit" : account},
          {"channel", "b2c_pc"},
          {"medium", medium},
          {"order_amount_minor", order_amount_minor},
          {"occurred_at", At(DefaultTimeNs())}};
}

nlohmann::json Reverse(const std::string& merchant, const std::string& order_no) {
  return {{"type", "reverse"},    {"command_id", merchant + ":" + order_no + ":rev"},
          {"merchant", merchant}, {"merchant_order_no", order_no},
          {"reason", "timeout"},  {"occurred_at", At(DefaultTimeNs())}};
}

nlohmann::json Refund(const std::string& merchant, const std::string& order_no, const std::string& refund_no,
                      int64_t amount_minor) {
  return {{"type", "refund"},
          {"command_id", merchant + ":" + refund_no},
          {"merchant", merchant},
          {"merchant_order_no", order_no},
          {"refund_no", refund_no},
          {"amount_minor", amount_minor},
          {"occurred_at", At(DefaultTimeNs())}};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  EXPECT_TRUE(out.good()) << "cannot write " << path;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

ProgramRun RunLedger(const std::string& scratch, const std::vector<std::string>& args,
                     const std::string& stdin_path, std::chrono::seconds timeout) {
  static int runs = 0;
  const std::string tag = scratch + "/run" + std::to_string(++runs);
  const std::string out_path = tag + ".out", err_path = tag + ".err";
  std::vector<std::string> argv_text = {LEDGER_BINARY};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_text = {"TMPDIR=" + scratch};
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, "TMPDIR=", 7) != 0) env_text.emplace_back(*entry);
  }
  std::vector<char*> env;
  for (std::string& entry : env_text) env.push_back(entry.data());
  env.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, stdin_path.empty() ? "/dev/null" : stdin_path.c_str(),
                                   O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  ProgramRun run;
  if (spawned != 0) {
    ADD_FAILURE() << "cannot start " << LEDGER_BINARY << ": " << std::strerror(spawned);
    return run;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0) {
      ADD_FAILURE() << "waitpid: " << std::strerror(errno);
      return run;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "ledger did not finish within " << timeout.count() << " s";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) run.signal = WTERMSIG(status);
  run.out = ReadFile(out_path);
  run.err = ReadFile(err_path);
  return run;
}

std::string Describe(const ProgramRun& run) {
  return "exit " + std::to_string(run.exit_code) + " signal " + std::to_string(run.signal) + "\nstdout:\n" +
         run.out + "\nstderr:\n" + run.err;
}

}  // namespace ledger::testing
