// Clearing commands: clearing files for a clearing date, and the downstream clearing job.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli_common.h"
#include "core/time.h"
#include "ledger/ledger.h"
#include "projections/clearing_file.h"
#include "projections/folder.h"
#include "storage/store.h"

namespace ledger::cli {

namespace {

// The stores of every shard of one ledger, opened read-only as of their last events.
struct ShardStores {
  std::vector<std::unique_ptr<Store>> stores;
  LedgerConfig config;  // the first folder's
};

// Opens each folder: N > 1 folders must hold the histories of shards 0..N-1, each once (by the shard their
// events name), and a folder serve wrote must be one of as many shards as it recorded. Errors:
// InvalidArgument (naming the folder), and the store's own.
Result<ShardStores> OpenShardStores(const std::vector<std::string>& dirs, int date) {
  ShardStores opened;
  std::vector<bool> seen(dirs.size(), false);
  for (const std::string& dir : dirs) {
    Result<LedgerConfig> config = LoadConfig(dir + "/ledger.toml");
    if (!config.ok()) return config.status();
    std::error_code error;
    if (!std::filesystem::exists(dir + "/CURRENT", error))
      return Status::InvalidArgument("no ledger data in " + dir);
    if (opened.stores.empty()) opened.config = *config;
    StoreOptions options;
    options.read_only = true;
    options.create_if_missing = false;
    Result<std::unique_ptr<Store>> store = Store::Open(dir, options);
    if (!store.ok()) return store.status();
    Result<std::unique_ptr<Store>> view = ViewAsOfLastEvent(std::move(store).value());
    if (!view.ok()) return view.status();
    Result<clearing::ShardDays> days = clearing::ShardDaysOf(**view, date);
    if (!days.ok()) return days.status();
    if (days->shards && *days->shards != dirs.size()) {
      return Status::InvalidArgument(
          dir + " is a shard of a ledger of " + std::to_string(*days->shards) +
          " shards: clearing needs every shard's folder (--data once per shard), got " +
          std::to_string(dirs.size()));
    }
    // One folder is one ledger's (or a clearing job's views of one partition, which hold no events).
    if (dirs.size() > 1 && (!days->shard || *days->shard >= dirs.size() || seen[*days->shard])) {
      return Status::InvalidArgument(
          dir +
          (days->shard ? " holds shard " + std::to_string(*days->shard) : std::string(" holds no events")) +
          ": " + std::to_string(dirs.size()) + " folders must hold shards 0 to " +
          std::to_string(dirs.size() - 1) + ", each once (--data once per shard)");
    }
    if (days->shard && *days->shard < dirs.size()) seen[*days->shard] = true;
    opened.stores.push_back(std::move(view).value());
  }
  return opened;
}

// With several shards, the shards that have not closed `date` (each line of the date may still be decided
// there); empty when all have, and for one shard (whose file of an open date is the day so far).
Result<std::string> ShardsStillOpen(const ShardStores& opened, int date) {
  if (opened.stores.size() < 2) return std::string();
  std::string open;
  for (size_t i = 0; i < opened.stores.size(); ++i) {
    Result<clearing::ShardDays> days = clearing::ShardDaysOf(*opened.stores[i], date);
    if (!days.ok()) return days.status();
    if (days->date_closed_sequence > 0) continue;
    open += (open.empty() ? "" : ", ") + std::string("shard ") +
            (days->shard ? std::to_string(*days->shard) : "?") + " (closed through " +
            (days->closed_through > 0 ? FormatDate(days->closed_through) : std::string("none")) + ")";
  }
  return open;
}

void PrintFiles(const std::vector<clearing::FileWritten>& files, const std::string& date,
                const std::string& out, bool json) {
  nlohmann::ordered_json listed = nlohmann::ordered_json::array();
  for (const auto& file : files) {
    if (json) {
      listed.push_back({{"merchant", file.merchant},
                        {"file", file.path},
                        {"sha256", file.sha256_hex},
                        {"rows", file.rows}});
    } else {
      std::printf("%s  %s  %zu rows\n", file.sha256_hex.c_str(), file.path.c_str(), file.rows);
    }
  }
  if (json) {
    std::printf(
        "%s\n",
        nlohmann::ordered_json{{"clearing_date", date}, {"files", listed}, {"summary", out + "/summary.json"}}
            .dump()
            .c_str());
  } else {
    std::printf("%zu clearing files and %s/summary.json\n", files.size(), out.c_str());
  }
}

// The shard `dir` holds: `given` (-1: none given), else the one its events name. Errors: InvalidArgument (a
// shard the folder's events contradict, or a folder without events and no --shard).
Result<uint32_t> ShardOfFolder(const std::string& dir, int64_t given) {
  StoreOptions options;
  options.read_only = true;
  options.create_if_missing = false;
  Result<std::unique_ptr<Store>> store = Store::Open(dir, options);
  if (!store.ok()) return store.status();
  Result<clearing::ShardDays> days = clearing::ShardDaysOf(**store, 0);
  if (!days.ok()) return days.status();
  if (given < 0) {
    if (!days->shard) return Status::InvalidArgument(dir + " holds no events: name its shard with --shard");
    return *days->shard;
  }
  if (given >= (days->shards ? int64_t{*days->shards} : int64_t{UINT32_MAX} + 1)) {
    return Status::InvalidArgument(
        "--shard " + std::to_string(given) + " is no shard of " + dir +
        (days->shards ? "'s ledger of " + std::to_string(*days->shards) + " shards" : std::string()));
  }
  if (days->shard && *days->shard != given) {
    return Status::InvalidArgument(dir + " holds shard " + std::to_string(*days->shard) +
                                   "'s history, not shard " + std::to_string(given) + "'s");
  }
  return static_cast<uint32_t>(given);
}

}  // namespace

Runner AddClearing(CLI::App& app) {
  struct Args {
    std::vector<std::string> data_dirs;
    std::string date;
    std::string merchant;
    std::string out;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->data_dirs,
                 "data folder (default ./ledger-data); once per shard for a ledger of several shards");
  app.add_option("--date", args->date, "clearing date YYYY-MM-DD")->required();
  app.add_option("--merchant", args->merchant, "only this merchant");
  app.add_option("--out", args->out, "folder for the CSV files and summary.json")->required();
  app.add_flag("--json", args->json, "JSON output");
  return [args]() {
    Result<int> date = ParseDate(args->date);
    if (!date.ok()) return Fail(kExitBadInput, "--date: " + date.status().message());
    if (args->data_dirs.empty()) args->data_dirs.push_back("./ledger-data");
    Result<ShardStores> opened = OpenShardStores(args->data_dirs, *date);
    if (!opened.ok()) return Fail(ExitCodeFor(opened.status()), opened.status().message());
    Result<std::string> open = ShardsStillOpen(*opened, *date);
    if (!open.ok()) return Fail(ExitCodeFor(open.status()), open.status().ToString());
    if (!open->empty()) {
      return Fail(kExitDayOpen,
                  "clearing date " + args->date + " is not closed on every shard: " + *open +
                      "; nothing written (ledger close-day, or serve closes it after the cut-off)");
    }
    std::vector<const Store*> stores;
    for (const auto& store : opened->stores) stores.push_back(store.get());
    Result<std::vector<clearing::FileWritten>> files = clearing::WriteClearingFiles(
        stores, *date, args->merchant, args->out, opened->config.timezone_offset_minutes);
    if (!files.ok()) return Fail(ExitCodeFor(files.status()), files.status().ToString());
    PrintFiles(*files, args->date, args->out, args->json);
    return kExitOk;
  };
}

Runner AddCloseDay(CLI::App& app) {
  struct Args {
    WriteOptions write;
    std::string date;
    int64_t shard = -1;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->write.data_dir, "data folder")->capture_default_str();
  app.add_option("--shard", args->shard, "the shard the folder holds (default: the one its events name)");
  app.add_option("--date", args->date, "close every clearing date through this one, YYYY-MM-DD")->required();
  app.add_option("--now", args->write.now, "fix the ledger clock (ISO 8601)");
  app.add_flag("--json", args->write.json, "JSON output");
  return [args]() {
    Result<int> date = ParseDate(args->date);
    if (!date.ok()) return Fail(kExitBadInput, "--date: " + date.status().message());
    Result<LedgerOptions> options = MakeLedgerOptions(args->write);
    if (!options.ok()) return Fail(kExitBadInput, options.status().message());
    std::error_code error;
    if (!std::filesystem::exists(args->write.data_dir + "/CURRENT", error))
      return Fail(kExitBadInput, "no ledger data in " + args->write.data_dir);
    Result<uint32_t> shard = ShardOfFolder(args->write.data_dir, args->shard);
    if (!shard.ok()) return Fail(ExitCodeFor(shard.status()), shard.status().message());
    options->config.shard = *shard;
    const LedgerConfig& config = options->config;
    const int64_t now = options->fixed_now_ns ? *options->fixed_now_ns : SystemNowNs();
    if (now > SystemNowNs() + config.clock_skew_max_ns) {
      return Fail(kExitBadInput,
                  "--now is ahead of the system clock: a date closed early never reopens, and "
                  "every later payment would clear after it");
    }
    const int ended = AddDays(ClearingDate(now - config.clock_skew_max_ns, config.timezone_offset_minutes,
                                           config.clearing_cutoff_minutes),
                              -1);
    if (*date > ended) {
      return Fail(kExitBadInput, "clearing date " + args->date +
                                     " has not ended by the ledger clock (the last " +
                                     "ended, with the allowed clock skew, is " + FormatDate(ended) + ")");
    }
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*options);
    if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
    const bool closed = (*ledger)->CloseDaysThrough(*date);
    if (closed) {
      if (Status committed = (*ledger)->CommitGroup(); !committed.ok())
        return Fail(ExitCodeFor(committed), committed.ToString());
      const Status published = PublishCommitted(**ledger, *options, (*ledger)->last_sequence());
      if (!published.ok()) return Fail(kExitFailure, "closed, not published: " + published.ToString());
    }
    const std::string through = FormatDate((*ledger)->closed_through());
    if (args->write.json) {
      std::printf("%s\n", nlohmann::ordered_json{{"closed_through", through},
                                                 {"closed_now", closed},
                                                 {"sequence", (*ledger)->last_sequence()}}
                              .dump()
                              .c_str());
    } else {
      std::printf("%s through %s\n", closed ? "closed" : "already closed", through.c_str());
    }
    return kExitOk;
  };
}

}  // namespace ledger::cli
