// Test support: a ledger in a temporary folder, command builders and result helpers.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "ledger/ledger.h"
#include "ledger/routing.h"
#include "storage/store.h"

namespace ledger::testing {

// A fresh temporary folder, removed when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Whole-file helpers for tests that drive the program through files.
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);  // a failed write is a test failure
std::vector<std::string> Lines(const std::string& text);

// One run of the `ledger` program.
struct ProgramRun {
  int exit_code = -1;  // -1 when the process did not exit normally
  int signal = 0;      // the terminating signal, if any
  std::string out;
  std::string err;
};

// Runs LEDGER_BINARY with `args`: stdin from `stdin_path` (or /dev/null), stdout and stderr captured in files
// under `scratch`, TMPDIR=scratch (a temporary folder the program leaves behind when it dies goes with
// `scratch`). Killed, and reported as a test failure, after `timeout`.
ProgramRun RunLedger(const std::string& scratch, const std::vector<std::string>& args,
                     const std::string& stdin_path = "",
                     std::chrono::seconds timeout = std::chrono::seconds(120));
// "exit N signal S" and both streams, for failure messages.
std::string Describe(const ProgramRun& run);

// 2026-11-25T10:00:00+08:00, the default occurred_at of commands built by tests.
int64_t DefaultTimeNs();

// A ledger in a temporary folder with clock=occurred (commands carry occurred_at) and a fixed now.
class TestLedger {
 public:
  explicit TestLedger(LedgerConfig config = LedgerConfig());
  // Submits one command line (fails the test on a parse error) and commits it.
  CommandResult Submit(const nlohmann::json& command);
  CommandResult SubmitLine(const std::string& line);
  // Balance of an account in minor units (0 when never posted).
  int64_t Balance(const std::string& account);
  // Sum of all balances per unit: {CNY, POINTS}.
  std::pair<int64_t, int64_t> SumByUnit();
  // Digest of the whole state column family.
  Digest StateDigest();
  Ledger& ledger() { return *ledger_; }
  const std::string& dir() const { return dir_.path(); }
  // Closes and reopens the ledger on the same folder.
  void Reopen();
  // Closes and reopens the ledger on the same folder with another clock mode and a fixed ledger time.
  void ReopenWithClock(ClockMode clock, int64_t now_ns);

 private:
  TempDir dir_;
  LedgerOptions options_;
  std::unique_ptr<Ledger> ledger_;
};

// Command builders with realistic defaults; fields can be overridden by assigning into the returned json.
nlohmann::json OpenAccount(const std::string& id, const std::string& customer,
                           const std::string& kind = "debit_card", int64_t credit_limit_minor = 0);
nlohmann::json OpenMerchant(const std::string& id, const std::string& merchant, int fee_bps);
nlohmann::json Deposit(const std::string& id, const std::string& account, int64_t amount_minor);
nlohmann::json AwardPoints(const std::string& id, const std::string& customer, int64_t points);
nlohmann::json Pay(const std::string& merchant, const std::string& order_no, const std::string& customer,
                   int64_t order_amount_minor, const std::string& account = "",
                   const std::string& medium = "u_shield");
nlohmann::json Reverse(const std::string& merchant, const std::string& order_no);
nlohmann::json Refund(const std::string& merchant, const std::string& order_no, const std::string& refund_no,
                      int64_t amount_minor);
nlohmann::json Transfer(const std::string& id, const std::string& from_account, const std::string& to_account,
                        int64_t amount_minor, const std::string& medium = "u_shield");
// The first id `prefix`N whose routing key (`key_of(id)`) lands on `shard` of `shards`.
template <typename KeyOf>
std::string IdOnShard(const std::string& prefix, uint32_t shard, uint32_t shards, KeyOf key_of) {
  for (int i = 0;; ++i) {
    const std::string id = prefix + std::to_string(i);
    if (ShardOfKey(key_of(id), shards) == shard) return id;
  }
}
// ISO 8601 text for `utc_ns` in UTC+8.
std::string At(int64_t utc_ns);
// Parses one command line; a line that does not parse is a test failure (and an empty command).
ParsedCommand Parse(const std::string& line);
// The stored event records with from <= sequence <= to, each an aligned copy (FlatBuffers must not be read in
// place in RocksDB's unaligned bytes). A failed scan is a test failure.
std::vector<std::string> EventRecords(const Store& store, uint64_t from, uint64_t to);

// ---------------------------------------------------------------------------------------------------------
// Processes, scratch folders and stream sizes shared by the suites.

inline double Scale() {
  const char* text = std::getenv("LEDGER_TEST_SCALE");
  if (text == nullptr) return 1.0;
  const double scale = std::atof(text);
  return scale > 0 ? scale : 1.0;
}

// `count` scaled by LEDGER_TEST_SCALE, at least 1.
inline int Scaled(int count) { return std::max(1, static_cast<int>(count * Scale())); }

// A fresh scratch folder, removed when the object goes away: in /dev/shm when there is one (RocksDB's fsyncs
// cost nothing there, and the trials open hundreds of stores), else in the temporary folder.
class ScratchDir {
 public:
  ScratchDir() {
    std::error_code error;
    const std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm", error) && access("/dev/shm", W_OK) == 0
            ? std::filesystem::path("/dev/shm")
            : std::filesystem::temp_directory_path();
    std::string pattern = (base / "ledger-replay-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "cannot create a scratch folder in " << base;
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------------------------------------
// A child process running LEDGER_BINARY, killed (SIGKILL) and reaped when the object goes away. The child
// also dies with the test process (PR_SET_PDEATHSIG), so a crashed test leaves nothing behind.
class Child {
 public:
  Child(const std::vector<std::string>& args, const std::string& out_path, const std::string& err_path) {
    std::vector<std::string> argv_text = {LEDGER_BINARY};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_text) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {  // only async-signal-safe calls until exec
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out);
    ::close(err);
    ::close(in);
    if (pid_ < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
  }
  ~Child() { Kill(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  bool Running() {
    if (pid_ <= 0 || exited_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) Record(status);
    return !exited_;
  }
  void Signal(int signal) {
    if (Running()) ::kill(pid_, signal);
  }
  // Waits for the child to exit, at most `timeout`. Returns true when it has.
  bool Wait(std::chrono::steady_clock::duration timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (Running()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return exited_;
  }
  // SIGKILL and reap (no-op when already gone).
  void Kill() {
    if (!Running()) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    if (::waitpid(pid_, &status, 0) == pid_) Record(status);
  }
  int exit_code() const { return exit_code_; }  // -1 unless it exited normally

 private:
  void Record(int status) {
    exited_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;
};

}  // namespace ledger::testing
