// Read-only commands: balance, limits, events. They open the store read-only, so they work beside a
// running writer.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli_common.h"
#include "core/config.h"
#include "core/money.h"
#include "core/time.h"
#include "events/event.h"
#include "projections/folder.h"
#include "replay/replay.h"
#include "state/limits.h"
#include "state/records.h"
#include "state/trial_balance.h"
#include "storage/store.h"

namespace ledger::cli {

// From cmd_audit.cc.
Result<std::string> MakeTempDir(const std::string& stem);
Result<replay::ReplayReport> ReplayInto(const replay::EventSource& source, const std::string& target_dir,
                                        const replay::ReplayOptions& options, std::unique_ptr<Store>* target);

namespace {

using nlohmann::ordered_json;

Result<std::unique_ptr<Store>> OpenReadOnly(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::exists(dir + "/CURRENT", error))
    return Status::InvalidArgument("no ledger data in " + dir);
  StoreOptions options;
  options.read_only = true;
  options.create_if_missing = false;
  Result<std::unique_ptr<Store>> store = Store::Open(dir, options);
  if (!store.ok()) return store.status();
  return ViewAsOfLastEvent(std::move(store).value());
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
  if (account.ends_with(":points"))
    return state.Get(keys::Customer(account.substr(0, account.size() - 7)), &ignored);
  for (const std::string& known :
       {std::string(gl::kFunding), std::string(gl::kPointsLiability), std::string(gl::kPointsIssued),
        std::string(gl::kMarketingExpense), std::string(gl::kFeeIncome),
        gl::InterbankReceivable(fb::Funding::other_bank), gl::InterbankReceivable(fb::Funding::wechat),
        gl::InterbankReceivable(fb::Funding::unionpay)}) {
    if (account == known) return true;
  }
  return false;
}

}  // namespace

namespace {

// Rebuilds the projections as they were at `as_of_text` (ISO 8601) from the history in *store into a new
// temporary folder (*temporary_dir), and puts the rebuilt store in *store. Returns kExitOk or the exit code
// (the reason printed; the temporary folder is gone then).
int RebuildAsOf(const std::string& as_of_text, std::unique_ptr<Store>* store, std::string* temporary_dir) {
  Result<int64_t> as_of = ParseIso8601(as_of_text);
  if (!as_of.ok()) return Fail(kExitBadInput, "--as-of: " + as_of.status().message());
  Result<std::string> dir = MakeTempDir("ledger-as-of");
  if (!dir.ok()) return Fail(kExitFailure, dir.status().message());
  *temporary_dir = *dir;
  replay::ReplayOptions options;
  options.as_of_ns = *as_of;
  std::unique_ptr<Store> rebuilt;
  Result<replay::ReplayReport> report =
      ReplayInto(replay::StoreSource(**store), *temporary_dir, options, &rebuilt);
  if (!report.ok() || !report->ok()) {
    rebuilt.reset();
    std::error_code ignored;
    std::filesystem::remove_all(*temporary_dir, ignored);
    temporary_dir->clear();
    return Fail(kExitFailure, report.ok()
                                  ? "history does not verify at sequence " +
                                        std::to_string(*report->first_bad_sequence) + ": " + report->problem
                                  : report.status().ToString());
  }
  *store = std::move(rebuilt);
  return kExitOk;
}

std::string BalanceText(std::string_view account, fb::Unit unit, int64_t balance_minor) {
  return std::string(account) + " " +
         (unit == fb::Unit::CNY ? FormatYuan(balance_minor) + " CNY"
                                : std::to_string(balance_minor) + " points");
}

int PrintOneBalance(const KvReader& state, const std::string& account, bool json) {
  fb::BalanceRecordT balance;
  balance.unit = UnitOfAccount(account);
  if (!LoadRecord(state, keys::Balance(account), &balance) && !AccountKnown(state, account)) {
    return Fail(kExitBadInput, "no account " + account);
  }
  if (json) {
    ordered_json out;
    out["account"] = account;
    out["unit"] = UnitName(balance.unit);
    out["balance_minor"] = balance.balance_minor;
    PrintLine(out.dump());
  } else {
    PrintLine(BalanceText(account, balance.unit, balance.balance_minor));
  }
  return kExitOk;
}

// Every account, then the sum per unit; exit 1 when a sum is not zero.
int PrintAllBalances(const Store& store, bool json) {
  ordered_json accounts = ordered_json::array();
  const Result<TrialBalance> total =
      SumBalances(store, [&](std::string_view account, const fb::BalanceRecord& record) {
        if (json) {
          ordered_json line;
          line["account"] = account;
          line["unit"] = UnitName(record.unit());
          line["balance_minor"] = record.balance_minor();
          accounts.push_back(std::move(line));
        } else {
          PrintLine(BalanceText(account, record.unit(), record.balance_minor()));
        }
      });
  if (!total.ok()) return Fail(kExitFailure, total.status().ToString());
  // Double entry: both sums are zero; anything else is a broken invariant.
  if (json) {
    ordered_json out;
    out["accounts"] = std::move(accounts);
    out["sum_by_unit"] = {{"CNY", static_cast<int64_t>(total->cny_minor)},
                          {"POINTS", static_cast<int64_t>(total->points)}};
    PrintLine(out.dump());
  } else {
    PrintLine("sum CNY " + std::to_string(static_cast<int64_t>(total->cny_minor)) + " POINTS " +
              std::to_string(static_cast<int64_t>(total->points)));
  }
  return total->balanced() ? kExitOk : Fail(kExitFailure, "balances do not sum to zero");
}

// A store that may be a temporary rebuild (balance --as-of): closed, then its folder removed, on the way out.
struct StoreInUse {
  std::unique_ptr<Store> store;
  std::string temporary_dir;  // empty: the live store, kept
  ~StoreInUse() {
    store.reset();
    if (temporary_dir.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(temporary_dir, ignored);
  }
};

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
  app.add_option("account", args->account,
                 "account name, e.g. C1:debit, C1:points, merchant:M1, gl:fee_income");
  app.add_option("--as-of", args->as_of,
                 "the balance as it was at this time (ISO 8601): replays the history up to it");
  app.add_flag("--all", args->all, "every account, then the sum per unit (always zero)");
  app.add_flag("--json", args->json, "JSON output");
  return [args]() {
    if (args->all == !args->account.empty()) return Fail(kExitBadInput, "give an ACCOUNT or --all");
    Result<std::unique_ptr<Store>> opened = OpenReadOnly(args->data_dir);
    if (!opened.ok()) return Fail(ExitCodeFor(opened.status()), opened.status().message());
    StoreInUse in_use;
    in_use.store = std::move(opened).value();
    if (!args->as_of.empty()) {
      const int rebuilt = RebuildAsOf(args->as_of, &in_use.store, &in_use.temporary_dir);
      if (rebuilt != kExitOk) return rebuilt;
    }
    if (!args->all) return PrintOneBalance(in_use.store->state(), args->account, args->json);
    return PrintAllBalances(*in_use.store, args->json);
  };
}

namespace {

// A limit or what is left of it: null when there is no limit.
ordered_json LimitOrNull(int64_t limit) { return limit < 0 ? ordered_json(nullptr) : ordered_json(limit); }
ordered_json RemainingOrNull(int64_t limit, int64_t used) {
  return limit < 0 ? ordered_json(nullptr) : ordered_json(std::max<int64_t>(0, limit - used));
}

// `customer`'s limits and usage on `date` per medium and per channel (the --json form).
ordered_json LimitsJson(const LedgerConfig& config, const KvReader& state, const std::string& customer,
                        int date) {
  ordered_json media = ordered_json::array();
  for (int m = 0; m < kMediumCount; ++m) {
    const auto medium = static_cast<fb::Medium>(m);
    const MediumPolicy limits = EffectiveMediumLimits(config, state, customer, medium);
    fb::UsageRecordT daily, monthly;
    LoadRecord(state, keys::DailyUsage(customer, medium, date), &daily);
    LoadRecord(state, keys::MonthlyUsage(customer, medium, date / 100), &monthly);
    ordered_json line;
    line["medium"] = fb::EnumNameMedium(medium);
    line["per_payment_minor"] = LimitOrNull(limits.per_payment_minor);
    line["daily_minor"] = LimitOrNull(limits.daily_minor);
    line["monthly_minor"] = LimitOrNull(limits.monthly_minor);
    line["daily_count"] = LimitOrNull(limits.daily_count);
    line["used_today_minor"] = daily.amount_minor;
    line["payments_today"] = daily.count;
    line["used_month_minor"] = monthly.amount_minor;
    line["remaining_today_minor"] = RemainingOrNull(limits.daily_minor, daily.amount_minor);
    line["remaining_month_minor"] = RemainingOrNull(limits.monthly_minor, monthly.amount_minor);
    line["remaining_count"] = RemainingOrNull(limits.daily_count, daily.count);
    media.push_back(std::move(line));
  }
  ordered_json channels = ordered_json::array();
  for (int c = static_cast<int>(fb::Channel::MIN); c <= static_cast<int>(fb::Channel::MAX); ++c) {
    const auto channel = static_cast<fb::Channel>(c);
    fb::UsageRecordT usage;
    LoadRecord(state, keys::ChannelDailyUsage(customer, channel, date), &usage);
    const int64_t limit = channel == fb::Channel::qr_static ? config.qr_static_daily_minor : kNoLimit;
    ordered_json line;
    line["channel"] = fb::EnumNameChannel(channel);
    line["daily_minor"] = LimitOrNull(limit);
    line["used_today_minor"] = usage.amount_minor;
    line["payments_today"] = usage.count;
    line["remaining_today_minor"] = RemainingOrNull(limit, usage.amount_minor);
    channels.push_back(std::move(line));
  }
  ordered_json out;
  out["customer"] = customer;
  out["date"] = FormatDate(date);
  out["media"] = std::move(media);
  out["channels"] = std::move(channels);
  return out;
}

// "USED of LIMIT (LEFT left)", or "USED (no limit)"; amounts in yuan, counts as they are.
std::string UsedOfLimit(const ordered_json& used, const ordered_json& limit, const ordered_json& left,
                        bool yuan) {
  auto text = [yuan](const ordered_json& value) {
    return yuan ? FormatYuan(value.get<int64_t>()) : std::to_string(value.get<int64_t>());
  };
  if (limit.is_null()) return text(used) + " (no limit)";
  return text(used) + " of " + text(limit) + " (" + text(left) + " left)";
}

// The readable form of LimitsJson: one line per medium and per channel, amounts in yuan.
void PrintLimitsText(const ordered_json& limits) {
  PrintLine("limits of " + limits["customer"].get<std::string>() + " on " +
            limits["date"].get<std::string>() + " (amounts in CNY)");
  char line[512];
  for (const ordered_json& m : limits["media"]) {
    const ordered_json& per_payment = m["per_payment_minor"];
    std::snprintf(
        line, sizeof line, "medium  %-16s per payment %s; today %s; this month %s; payments today %s",
        m["medium"].get<std::string>().c_str(),
        per_payment.is_null() ? "no limit" : FormatYuan(per_payment.get<int64_t>()).c_str(),
        UsedOfLimit(m["used_today_minor"], m["daily_minor"], m["remaining_today_minor"], true).c_str(),
        UsedOfLimit(m["used_month_minor"], m["monthly_minor"], m["remaining_month_minor"], true).c_str(),
        UsedOfLimit(m["payments_today"], m["daily_count"], m["remaining_count"], false).c_str());
    PrintLine(line);
  }
  for (const ordered_json& c : limits["channels"]) {
    std::snprintf(
        line, sizeof line, "channel %-21s today %s; payments today %lld",
        c["channel"].get<std::string>().c_str(),
        UsedOfLimit(c["used_today_minor"], c["daily_minor"], c["remaining_today_minor"], true).c_str(),
        static_cast<long long>(c["payments_today"].get<int64_t>()));
    PrintLine(line);
  }
}

}  // namespace

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
  app.add_flag("--json", args->json, "JSON output (default: one line per medium and per channel)");
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
      bool any = false;
      (*store)
          ->ScanState(keys::ChannelDailyUsagePrefix(args->customer),
                      [&](std::string_view, std::string_view) {
                        any = true;
                        return false;
                      })
          .IgnoreError();
      if (!any) return Fail(kExitBadInput, "no customer " + args->customer);
    }
    const ordered_json limits = LimitsJson(*config, state, args->customer, date);
    if (args->json) {
      PrintLine(limits.dump());
    } else {
      PrintLimitsText(limits);
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
    const Status status =
        (*store)->ScanEvents(args->from, args->to, [&](uint64_t sequence, std::string_view record) {
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
