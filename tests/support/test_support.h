// Test support: a ledger in a temporary folder, command builders and result helpers.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ledger/ledger.h"
#include "ledger/store.h"

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

// Runs LEDGER_BINARY with `args`: stdin from `stdin_path` (or /dev/null), stdout and stderr captured in files under
// `scratch`, TMPDIR=scratch (a temporary folder the program leaves behind when it dies goes with `scratch`).
// Killed, and reported as a test failure, after `timeout`.
ProgramRun RunLedger(const std::string& scratch, const std::vector<std::string>& args, const std::string& stdin_path = "",
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

 private:
  TempDir dir_;
  LedgerOptions options_;
  std::unique_ptr<Ledger> ledger_;
};

// Command builders with realistic defaults; fields can be overridden by assigning into the returned json.
nlohmann::json OpenAccount(const std::string& id, const std::string& customer, const std::string& kind = "debit_card",
                           int64_t credit_limit_minor = 0);
nlohmann::json OpenMerchant(const std::string& id, const std::string& merchant, int fee_bps);
nlohmann::json Deposit(const std::string& id, const std::string& account, int64_t amount_minor);
nlohmann::json AwardPoints(const std::string& id, const std::string& customer, int64_t points);
nlohmann::json Pay(const std::string& merchant, const std::string& order_no, const std::string& customer,
                   int64_t order_amount_minor, const std::string& account = "", const std::string& medium = "u_shield");
nlohmann::json Reverse(const std::string& merchant, const std::string& order_no);
nlohmann::json Refund(const std::string& merchant, const std::string& order_no, const std::string& refund_no,
                      int64_t amount_minor);
// ISO 8601 text for `utc_ns` in UTC+8.
std::string At(int64_t utc_ns);

}  // namespace ledger::testing
