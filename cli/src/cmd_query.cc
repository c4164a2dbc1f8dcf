// Read-only commands: balance, limits, events. They open the store read-only, so they work beside a
// running writer.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli_common.h"
#include "cli/commands.h"
#include "core/config.h"
#include "events/event.h"
#include "core/money.h"
#include "storage/store.h"
#include "core/time.h"
#include "state/records.h"
#include "state/trial_balance.h"
#include "replay/replay.h"

namespace ledger::cli {

// From cmd_audit.cc.
Result<std::string> MakeTempDir(const std::string& stem);
Result<replay::ReplayReport> ReplayInto(const replay::EventSource& source, const std::string& target_dir,
                                        const replay::ReplayOptions& options, std::unique_ptr<Store>* target);

namespace {

using nlohmann::ordered_json;

Result<std::unique_ptr<Store>> OpenReadOnly(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::exists(dir + "/CURRENT", error)) return Status::InvalidArgument("no ledger data in " + dir);
  StoreOptions options;
  options.read_only = true;
  options.create_if_missing = false;
  return Store::Open(dir, options);
}

void PrintLine(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
}

const char* UnitName(fb::Unit unit) { return unit == fb::Unit::POINTS ? "POINTS" : "CNY"; }

// Whether `account` is one the ledger knows even before anything was posted to it.
bool AccountKnown(const KvReader& state, const std::string& account) {
  std::string ignored;
  if (state.Get(keys::Account(account), &ignored)) return true;
  if (account.starts_with("merchant:")) return state.Get(keys::Merchant(account.substr(9)), &ignored);
  if (account.ends_with(":points")) return state.Get(keys::Customer(account.substr(0, account.size() - 7)), &ignored);
  for (const std::string& known : {std::string(gl::kFunding), std::string(gl::kPointsLiability), std::string(gl::kPointsIssued),
                                  std::string(gl::kMarketingExpense), std::string(gl::kFeeIncome),
                                  gl::InterbankReceivable(fb::Funding::other_bank), gl::InterbankReceivable(fb::Funding::wechat),
                                  gl::InterbankReceivable(fb::Funding::unionpay)}) {
    if (account == known) return true;
  }
  return false;
}

}  // namespace

Runner AddBalance(CLI::App& app) {
  struct Args {
    std::string data_dir = "./ledger-data";
    std::string account;
    std::string as_of;
    bool all = false;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->data_dir, "data folder")->capture_default_str();
  app.add_option("account", args->account, "account name, e.g. C1:debit, C1:points, merchant:M1, gl:fee_income");
  app.add_option("--as-of", args->as_of, "the balance as it was at this time (ISO 8601): replays the history up to it");
  app.add_flag("--all", args->all, "every account, then the sum per unit (always zero)");
  app.add_flag("--json", args->json, "JSON output");
  return [args]() {
    if (args->all == !args->account.empty()) return Fail(kExitBadInput, "give an ACCOUNT or --all");
    Result<std::unique_ptr<Store>> store = OpenReadOnly(args->data_dir);
    if (!store.ok()) return Fail(ExitCodeFor(store.status()), store.status().message());
    std::string temporary_dir;
    if (!args->as_of.empty()) {
      // Rebuild the projections as they were at that moment into a temporary store, and read from it.
      Result<int64_t> as_of = ParseIso8601(args->as_of);
      if (!as_of.ok()) return Fail(kExitBadInput, "--as-of: " + as_of.status().message());
      Result<std::string> dir = MakeTempDir("ledger-as-of");
      if (!dir.ok()) return Fail(kExitFailure, dir.status().message());
      temporary_dir = *dir;
      replay::ReplayOptions options;
      options.as_of_ns = *as_of;
      std::unique_ptr<Store> rebuilt;
      Result<replay::ReplayReport> report = ReplayInto(replay::StoreSource(**store), temporary_dir, options, &rebuilt);
      if (!report.ok() || !report->ok()) {
        rebuilt.reset();
        std::error_code ignored;
        std::filesystem::remove_all(temporary_dir, ignored);
        return Fail(kExitFailure, report.ok() ? "history does not verify at sequence " +
                                                    std::to_string(*report->first_bad_sequence) + ": " + report->problem
                                              : report.status().ToString());
      }
      *store = std::move(rebuilt);
    }
    struct Cleanup {
      std::string dir;
      Result<std::unique_ptr<Store>>* store;
      ~Cleanup() {
        if (dir.empty()) return;
        store->value().reset();
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
      }
    } cleanup{temporary_dir, &store};
    if (!args->all) {
      fb::BalanceRecordT balance;
      balance.unit = UnitOfAccount(args->account);
      if (!LoadRecord((*store)->state(), keys::Balance(args->account), &balance) &&
          !AccountKnown((*store)->state(), args->account)) {
        return Fail(kExitBadInput, "no account " + args->account);
      }
      if (args->json) {
        ordered_json out;
        out["account"] = args->account;
        out["unit"] = UnitName(balance.unit);
        out["balance_minor"] = balance.balance_minor;
        PrintLine(out.dump());
      } else {
        PrintLine(args->account + " " +
                  (balance.unit == fb::Unit::CNY ? FormatYuan(balance.balance_minor) + " CNY"
                                                 : std::to_string(balance.balance_minor) + " points"));
      }
      return kExitOk;
    }
    ordered_json accounts = ordered_json::array();
    const Result<TrialBalance> total =
        SumBalances(**store, [&](std::string_view account, const fb::BalanceRecord& record) {
          if (args->json) {
            ordered_json line;
            line["account"] = account;
            line["unit"] = UnitName(record.unit());
            line["balance_minor"] = record.balance_minor();
            accounts.push_back(std::move(line));
          } else {
            PrintLine(std::string(account) + " " +
                      (record.unit() == fb::Unit::CNY ? FormatYuan(record.balance_minor()) + " CNY"
                                                      : std::to_string(record.balance_minor()) + " points"));
          }
        });
    if (!total.ok()) return Fail(kExitFailure, total.status().ToString());
    // Double entry: both sums are zero; anything else is a broken invariant.
    if (args->json) {
      ordered_json out;
      out["accounts"] = std::move(accounts);
      out["sum_by_unit"] = {{"CNY", static_cast<int64_t>(total->cny_minor)}, {"POINTS", static_cast<int64_t>(total->points)}};
      PrintLine(out.dump());
    } else {
      PrintLine("sum CNY " + std::to_string(static_cast<int64_t>(total->cny_minor)) + " POINTS " +
                std::to_string(static_cast<int64_t>(total->points)));
    }
    return total->balanced() ? kExitOk : Fail(kExitFailure, "balances do not sum to zero");
  };
}

Runner AddLimits(CLI::App& app) {
  struct Args {
    std::string data_dir = "./ledger-data";
    std::string customer;
    std::string date;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->data_dir, "data folder")->capture_default_str();
  app.add_option("customer", args->customer, "customer id")->required();
  app.add_option("--date", args->date, "the day (YYYY-MM-DD, UTC+8); default today")->capture_default_str();
  app.add_flag("--json", args->json, "JSON output");
  return [args]() {
    Result<LedgerConfig> config = LoadConfig(args->data_dir + "/ledger.toml");
    if (!config.ok()) return Fail(kExitBadInput, config.status().message());
    int date = LocalDate(SystemNowNs(), config->timezone_offset_minutes);
    if (!args->date.empty()) {
      Result<int> parsed = ParseDate(args->date);
      if (!parsed.ok()) return Fail(kExitBadInput, "--date: " + parsed.status().message());
      date = *parsed;
    }
    Result<std::unique_ptr<Store>> store = OpenReadOnly(args->data_dir);
    if (!store.ok()) return Fail(ExitCodeFor(store.status()), store.status().message());
    const KvReader& state = (*store)->state();
    fb::CustomerRecordT customer;
    if (!LoadRecord(state, keys::Customer(args->customer), &customer)) {
      // Customers paying only with other banks' cards or wallets have usage but no record: show it anyway.
      std::string ignored;
      bool any = false;
      (*store)->ScanState(std::string(keys::kChannelDailyUsagePrefix) + args->customer + "/", [&](std::string_view, std::string_view) { any = true; return false; }).IgnoreError();
      if (!any) return Fail(kExitBadInput, "no customer " + args->customer);
    }
    auto nullable = [](int64_t limit) { return limit < 0 ? ordered_json(nullptr) : ordered_json(limit); };
    auto remaining = [](int64_t limit, int64_t used) {
      return limit < 0 ? ordered_json(nullptr) : ordered_json(std::max<int64_t>(0, limit - used));
    };
    ordered_json media = ordered_json::array();
    for (int m = 0; m < kMediumCount; ++m) {
      const auto medium = static_cast<fb::Medium>(m);
      const MediumPolicy limits = EffectiveMediumLimits(*config, state, args->customer, medium);
      fb::UsageRecordT daily, monthly;
      LoadRecord(state, keys::DailyUsage(args->customer, medium, date), &daily);
      LoadRecord(state, keys::MonthlyUsage(args->customer, medium, date / 100), &monthly);
      ordered_json line;
      line["medium"] = fb::EnumNameMedium(medium);
      line["per_payment_minor"] = nullable(limits.per_payment_minor);
      line["daily_minor"] = nullable(limits.daily_minor);
      line["monthly_minor"] = nullable(limits.monthly_minor);
      line["daily_count"] = nullable(limits.daily_count);
      line["used_today_minor"] = daily.amount_minor;
      line["payments_today"] = daily.count;
      line["used_month_minor"] = monthly.amount_minor;
      line["remaining_today_minor"] = remaining(limits.daily_minor, daily.amount_minor);
      line["remaining_month_minor"] = remaining(limits.monthly_minor, monthly.amount_minor);
      line["remaining_count"] = remaining(limits.daily_count, daily.count);
      media.push_back(std::move(line));
    }
    ordered_json channels = ordered_json::array();
    for (int c = static_cast<int>(fb::Channel::MIN); c <= static_cast<int>(fb::Channel::MAX); ++c) {
      const auto channel = static_cast<fb::Channel>(c);
      fb::UsageRecordT usage;
      LoadRecord(state, keys::ChannelDailyUsage(args->customer, channel, date), &usage);
      const int64_t limit = channel == fb::Channel::qr_static ? config->qr_static_daily_minor : kNoLimit;
      ordered_json line;
      line["channel"] = fb::EnumNameChannel(channel);
      line["daily_minor"] = nullable(limit);
      line["used_today_minor"] = usage.amount_minor;
      line["payments_today"] = usage.count;
      line["remaining_today_minor"] = remaining(limit, usage.amount_minor);
      channels.push_back(std::move(line));
    }
    ordered_json out;
    out["customer"] = args->customer;
    out["date"] = FormatDate(date);
    out["media"] = std::move(media);
    out["channels"] = std::move(channels);
    if (args->json) {
      PrintLine(out.dump());
    } else {
      PrintLine(out.dump(2));
    }
    return kExitOk;
  };
}

Runner AddEvents(CLI::App& app) {
  struct Args {
    std::string data_dir = "./ledger-data";
    uint64_t from = 1;
    uint64_t to = UINT64_MAX;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->data_dir, "data folder")->capture_default_str();
  app.add_option("--from-seq", args->from, "first sequence")->check(SequenceNumber())->capture_default_str();
  app.add_option("--to-seq", args->to, "last sequence")->check(SequenceNumber());
  app.add_flag("--json", args->json, "JSON Lines output (the only format)");
  return [args]() {
    if (args->from > args->to) return Fail(kExitBadInput, "--from-seq is after --to-seq");
    Result<std::unique_ptr<Store>> store = OpenReadOnly(args->data_dir);
    if (!store.ok()) return Fail(ExitCodeFor(store.status()), store.status().message());
    Status bad;
    const Status status = (*store)->ScanEvents(args->from, args->to, [&](uint64_t sequence, std::string_view record) {
      Result<DecodedEvent> decoded = DecodeEventRecord(record);
      if (!decoded.ok()) {
        bad = Status::Corruption("event " + std::to_string(sequence) + ": " + decoded.status().message());
        return false;
      }
      PrintLine(EventToJson(*decoded));
      return true;
    });
    std::fflush(stdout);
    if (!status.ok()) return Fail(kExitFailure, status.ToString());
    if (!bad.ok()) return Fail(kExitFailure, bad.ToString());
    return kExitOk;
  };
}

}  // namespace ledger::cli
