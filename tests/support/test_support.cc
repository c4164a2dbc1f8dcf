#include "support/test_support.h"

#include <filesystem>
#include <random>

#include "ledger/command.h"
#include "ledger/time.h"
#include "projections/records.h"
#include "replay/replay.h"

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
  int64_t sums[2] = {0, 0};
  EXPECT_TRUE(ledger_->store()
                  .ScanState("b/",
                             [&](std::string_view, std::string_view value) {
                               const auto* record = flatbuffers::GetRoot<fb::BalanceRecord>(value.data());
                               sums[static_cast<int>(record->unit())] += record->balance_minor();
                               return true;
                             })
                  .ok());
  return {sums[0], sums[1]};
}

Digest TestLedger::StateDigest() {
  Result<Digest> digest = replay::StateDigest(ledger_->store());
  EXPECT_TRUE(digest.ok());
  return digest.ok() ? *digest : Digest{};
}

nlohmann::json OpenAccount(const std::string& id, const std::string& customer, const std::string& kind,
                           int64_t credit_limit_minor) {
  nlohmann::json command = {{"type", "open_account"}, {"command_id", id}, {"customer", customer},
                            {"account", customer + (kind == "credit_card" ? ":credit" : ":debit")}, {"kind", kind},
                            {"occurred_at", At(DefaultTimeNs())}};
  if (kind == "credit_card") command["credit_limit_minor"] = credit_limit_minor;
  return command;
}

nlohmann::json OpenMerchant(const std::string& id, const std::string& merchant, int fee_bps) {
  return {{"type", "open_merchant"}, {"command_id", id}, {"merchant", merchant}, {"name", "Shop " + merchant},
          {"fee_bps", fee_bps}, {"occurred_at", At(DefaultTimeNs())}};
}

nlohmann::json Deposit(const std::string& id, const std::string& account, int64_t amount_minor) {
  return {{"type", "deposit"}, {"command_id", id}, {"account", account}, {"amount_minor", amount_minor},
          {"occurred_at", At(DefaultTimeNs())}};
}

nlohmann::json AwardPoints(const std::string& id, const std::string& customer, int64_t points) {
  return {{"type", "award_points"}, {"command_id", id}, {"customer", customer}, {"points", points},
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
  return {{"type", "reverse"}, {"command_id", merchant + ":" + order_no + ":rev"}, {"merchant", merchant},
          {"merchant_order_no", order_no}, {"reason", "timeout"}, {"occurred_at", At(DefaultTimeNs())}};
}

nlohmann::json Refund(const std::string& merchant, const std::string& order_no, const std::string& refund_no,
                      int64_t amount_minor) {
  return {{"type", "refund"}, {"command_id", merchant + ":" + refund_no}, {"merchant", merchant},
          {"merchant_order_no", order_no}, {"refund_no", refund_no}, {"amount_minor", amount_minor},
          {"occurred_at", At(DefaultTimeNs())}};
}

}  // namespace ledger::testing
