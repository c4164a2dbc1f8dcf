// Clearing commands: clearing files for a clearing date, and the downstream clearing job.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli_common.h"
#include "core/signing.h"
#include "core/time.h"
#include "ledger/ledger.h"
#include "projections/clearing_file.h"
#include "projections/folder.h"
#include "shard_stores.h"
#include "storage/store.h"

namespace ledger::cli {

namespace {

// What a merchant id may be (README: identifiers): 1..128 printable ASCII characters, no space, no '/'.
bool IsIdentifier(const std::string& id) {
  return !id.empty() && id.size() <= 128 &&
         std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '/'; });
}

// The key a closed date's files are signed with: [audit] private_key of the first folder's ledger.toml;
// none when `unsigned_` (an open date's, or the operator's choice). Errors: InvalidArgument (no key
// configured, or unreadable).
Result<std::unique_ptr<Signer>> ClearingSigner(const ShardStores& opened, const std::string& dir,
                                               bool unsigned_) {
  if (unsigned_) return std::unique_ptr<Signer>();
  const std::string& key = opened.config.audit_private_key;
  if (key.empty()) {
    return Status::InvalidArgument(
        "a closed date's clearing files are signed with [audit] private_key, which " + dir +
        "/ledger.toml does not name (--unsigned issues them unsigned)");
  }
  Result<std::unique_ptr<Signer>> signer = LoadSigner(dir, opened.config, key);
  if (!signer.ok()) return Status::InvalidArgument("[audit] private_key: " + signer.status().message());
  return signer;
}

void PrintIssue(const clearing::ClearingIssue& issue, const std::string& date, const std::string& out,
                bool json) {
  nlohmann::ordered_json listed = nlohmann::ordered_json::array();
  for (const auto& file : issue.files) {
    if (json) {
      listed.push_back({{"merchant", file.merchant},
                        {"file", file.path},
                        {"sha256", file.sha256_hex},
                        {"rows", file.rows}});
    } else {
      std::printf("%s  %s  %zu rows\n", file.sha256_hex.c_str(), file.path.c_str(), file.rows);
    }
  }
  const char* state = issue.unchanged      ? "already issued, unchanged"
                      : issue.repaired > 0 ? "already issued, damaged files written again"
                      : issue.signed_files ? "signed"
                      : issue.final        ? "final, unsigned"
                                           : "not final, unsigned";
  if (json) {
    std::printf("%s\n", nlohmann::ordered_json{{"clearing_date", date},
                                               {"files", listed},
                                               {"summary", out + "/summary.json"},
                                               {"final", issue.final},
                                               {"signed", issue.signed_files},
                                               {"unchanged", issue.unchanged},
                                               {"repaired", issue.repaired}}
                            .dump()
                            .c_str());
  } else {
    std::printf("%zu clearing files and %s/summary.json: %s\n", issue.files.size(), out.c_str(), state);
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
    bool unsigned_ = false;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->data_dirs,
                 "data folder (default ./ledger-data); once per shard for a ledger of several shards");
  app.add_option("--date", args->date, "clearing date YYYY-MM-DD")->required();
  app.add_option("--merchant", args->merchant, "only this merchant");
  app.add_option("--out", args->out, "folder for the CSV files and summary.json")->required();
  app.add_flag("--unsigned", args->unsigned_,
               "issue a closed date's files without signing them (no [audit] private_key)");
  app.add_flag("--json", args->json, "JSON output");
  return [args]() {
    Result<int> date = ParseDate(args->date);
    if (!date.ok()) return Fail(kExitBadInput, "--date: " + date.status().message());
    if (!args->merchant.empty() && !IsIdentifier(args->merchant))
      return Fail(kExitBadInput, "--merchant: 1 to 128 printable ASCII characters without spaces or '/'");
    if (args->data_dirs.empty()) args->data_dirs.push_back("./ledger-data");
    std::error_code error;
    if (std::filesystem::exists(args->out + "/CURRENT", error))
      return Fail(kExitBadInput,
                  "--out " + args->out + " holds a store: clearing files go into a folder of their own");
    Result<ShardStores> opened = OpenShardStores(args->data_dirs, *date);
    if (!opened.ok()) return Fail(ExitCodeFor(opened.status()), opened.status().message());
    Result<std::string> open = ShardsStillOpen(*opened, *date);
    if (!open.ok()) return Fail(ExitCodeFor(open.status()), open.status().ToString());
    // One shard's file of an open date is the day so far; several shards' would miss what is still decided.
    if (!open->empty() && opened->stores.size() > 1) {
      return Fail(kExitDayOpen,
                  "clearing date " + args->date + " is not closed on every shard: " + *open +
                      "; nothing written (ledger close-day, or serve closes it after the cut-off)");
    }
    const bool final = open->empty() && opened->whole_ledger;
    Result<std::unique_ptr<Signer>> signer =
        ClearingSigner(*opened, args->data_dirs.front(), !final || args->unsigned_);
    if (!signer.ok()) return Fail(kExitBadInput, signer.status().message());
    Result<clearing::ClearingIssue> issue = clearing::IssueClearingFiles(
        opened->Views(), *date, args->merchant, args->out, opened->config.timezone_offset_minutes,
        opened->whole_ledger, signer->get());
    if (!issue.ok()) {
      const bool refused = issue.status().code() == StatusCode::kInvalidArgument;
      return Fail(ExitCodeFor(issue.status()),
                  refused ? issue.status().message() + "; nothing written" : issue.status().ToString());
    }
    if (!open->empty() || !opened->whole_ledger) {
      std::fprintf(stderr, "ledger: %s: not final, not signed\n",
                   !open->empty() ? "the date is still open"
                                  : "these folders are not proven to be the whole ledger (shards 0..N-1)");
    }
    if (issue->final && !issue->signed_files) {
      std::fprintf(stderr, "ledger: clearing date %s is closed; its files are not signed (--unsigned)\n",
                   args->date.c_str());
    }
    PrintIssue(*issue, args->date, args->out, args->json);
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
