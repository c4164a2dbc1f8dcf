// Clearing commands: clearing files for a clearing date, and the downstream clearing job.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli_common.h"
#include "core/time.h"
#include "projections/clearing_file.h"
#include "projections/folder.h"
#include "storage/store.h"

namespace ledger::cli {

Runner AddClearing(CLI::App& app) {
  struct Args {
    std::string data_dir = "./ledger-data";
    std::string date;
    std::string merchant;
    std::string out;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->data_dir, "data folder")->capture_default_str();
  app.add_option("--date", args->date, "clearing date YYYY-MM-DD")->required();
  app.add_option("--merchant", args->merchant, "only this merchant");
  app.add_option("--out", args->out, "folder for the CSV files and summary.json")->required();
  app.add_flag("--json", args->json, "JSON output");
  return [args]() {
    Result<int> date = ParseDate(args->date);
    if (!date.ok()) return Fail(kExitBadInput, "--date: " + date.status().message());
    Result<LedgerConfig> config = LoadConfig(args->data_dir + "/ledger.toml");
    if (!config.ok()) return Fail(kExitBadInput, config.status().message());
    std::error_code error;
    if (!std::filesystem::exists(args->data_dir + "/CURRENT", error))
      return Fail(kExitBadInput, "no ledger data in " + args->data_dir);
    StoreOptions options;
    options.read_only = true;
    options.create_if_missing = false;
    Result<std::unique_ptr<Store>> opened = Store::Open(args->data_dir, options);
    if (!opened.ok()) return Fail(ExitCodeFor(opened.status()), opened.status().ToString());
    Result<std::unique_ptr<Store>> store = ViewAsOfLastEvent(std::move(opened).value());
    if (!store.ok()) return Fail(ExitCodeFor(store.status()), store.status().ToString());
    Result<std::vector<clearing::FileWritten>> files = clearing::WriteClearingFiles(
        **store, *date, args->merchant, args->out, config->timezone_offset_minutes);
    if (!files.ok()) return Fail(ExitCodeFor(files.status()), files.status().ToString());
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& file : *files) {
      if (args->json) {
        out.push_back({{"merchant", file.merchant},
                       {"file", file.path},
                       {"sha256", file.sha256_hex},
                       {"rows", file.rows}});
      } else {
        std::printf("%s  %s  %zu rows\n", file.sha256_hex.c_str(), file.path.c_str(), file.rows);
      }
    }
    if (args->json) {
      std::printf("%s\n",
                  nlohmann::ordered_json{
                      {"clearing_date", args->date}, {"files", out}, {"summary", args->out + "/summary.json"}}
                      .dump()
                      .c_str());
    } else {
      std::printf("%zu clearing files and %s/summary.json\n", files->size(), args->out.c_str());
    }
    return kExitOk;
  };
}

}  // namespace ledger::cli
