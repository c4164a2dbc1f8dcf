// ledger restore: a lost shard's store rebuilt from its ledger.events partition (replay/restore.h), verified
// like `replay`, and installed into the data folder only when everything verified.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/commands.h"
#include "cli_common.h"
#include "core/config.h"
#include "replay/kafka_source.h"
#include "replay/restore.h"

namespace ledger::cli {
namespace {

namespace fs = std::filesystem;

struct RestoreArgs {
  std::string data_dir;
  bool from_kafka = false;
  std::string brokers;
  int64_t shard = -1;  // -1: [ledger] shard of the data folder's ledger.toml
  std::string pubkey;
  bool json = false;
};

// The folder the store is built in beside the data folder, so that a failed restore leaves the data folder
// as it was.
std::string StagingDir(const std::string& data_dir) {
  return fs::path(data_dir).lexically_normal().string() + ".restoring";
}

// Checks that `data_dir` can take a restored store and `staging` is free. Errors: InvalidArgument.
Status CheckFolders(const std::string& data_dir, const std::string& staging) {
  std::error_code error;
  if (fs::exists(fs::path(data_dir) / "CURRENT", error)) {
    return Status::InvalidArgument(data_dir + " already holds a store: restore writes only where none is");
  }
  if (fs::exists(staging, error)) {
    return Status::InvalidArgument(staging + " exists (an interrupted restore?): remove it and run again");
  }
  return Status::Ok();
}

// Moves the store's files from `staging` into `data_dir` (created when missing), RocksDB's CURRENT last:
// until it lands, the folder holds no store, so an interruption never leaves a partial store that opens.
// Errors: InvalidArgument (a name taken in the data folder), IoError.
Status Install(const std::string& staging, const std::string& data_dir) {
  std::error_code error;
  fs::create_directories(data_dir, error);
  if (error) return Status::IoError("cannot create " + data_dir + ": " + error.message());
  std::vector<fs::path> entries;
  for (const fs::directory_entry& entry : fs::directory_iterator(staging, error)) {
    if (fs::exists(fs::path(data_dir) / entry.path().filename())) {
      return Status::InvalidArgument(data_dir + " already holds " + entry.path().filename().string());
    }
    if (entry.path().filename() != "CURRENT") entries.push_back(entry.path());
  }
  if (error) return Status::IoError("cannot list " + staging + ": " + error.message());
  entries.push_back(fs::path(staging) / "CURRENT");
  for (const fs::path& entry : entries) {
    fs::rename(entry, fs::path(data_dir) / entry.filename(), error);
    if (error)
      return Status::IoError("cannot move " + entry.string() + " into " + data_dir + ": " + error.message());
  }
  fs::remove(staging, error);
  return Status::Ok();
}

// Restores shard `shard` from `brokers` into a fresh store in `staging`.
Result<replay::RestoreReport> RestoreInto(uint32_t shard, const std::string& brokers,
                                          const SignatureVerifier* verifier, const std::string& staging) {
  Result<std::unique_ptr<replay::KafkaEventSource>> source = replay::KafkaEventSource::Open(brokers, shard);
  if (!source.ok()) return source.status();
  StoreOptions store_options;  // synced: once installed, the restored store is the shard's record
  Result<std::unique_ptr<Store>> target = Store::Open(staging, store_options);
  if (!target.ok()) return target.status();
  replay::ReplayOptions options;
  options.verifier = verifier;
  if (isatty(STDERR_FILENO) != 0) {
    const uint64_t total =
        (*source)->high_watermark() > 0 ? static_cast<uint64_t>((*source)->high_watermark()) : 0;
    options.progress = ProgressPrinter("restore", std::chrono::steady_clock::now(), total);
  }
  Result<replay::RestoreReport> report =
      replay::RestoreShard((*source)->source(), shard, target->get(), options);
  if (options.progress) std::fputc('\n', stderr);
  return report;
}

void PrintReport(const RestoreArgs& args, uint32_t shard, const replay::RestoreReport& report,
                 const std::string& key_path) {
  const replay::ReplayReport& replayed = report.replay;
  if (args.json) {
    nlohmann::ordered_json out;
    out["outcome"] = "restored";
    out["shard"] = shard;
    out["events"] = replayed.events_read;
    out["last_sequence"] = replayed.last_sequence;
    out["chain_head"] = ToHex(replayed.chain_head);
    out["checkpoints_seen"] = replayed.checkpoints_seen;
    out["checkpoints_verified"] = replayed.checkpoints_verified;
    out["public_key"] = key_path.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(key_path);
    out["commands_offset"] = report.commands_offset ? nlohmann::ordered_json(*report.commands_offset)
                                                    : nlohmann::ordered_json(nullptr);
    out["data"] = args.data_dir;
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("restore VERIFIED: shard %u, %llu events, last sequence %llu, chain head %s\n", shard,
              static_cast<unsigned long long>(replayed.events_read),
              static_cast<unsigned long long>(replayed.last_sequence), ToHex(replayed.chain_head).c_str());
  std::printf("  checkpoints: %llu seen, %llu verified%s\n",
              static_cast<unsigned long long>(replayed.checkpoints_seen),
              static_cast<unsigned long long>(replayed.checkpoints_verified),
              key_path.empty() ? "" : (" (signatures checked with " + key_path + ")").c_str());
  if (report.commands_offset) {
    std::printf("  serve resumes ledger.commands partition %u at offset %lld\n", shard,
                static_cast<long long>(*report.commands_offset));
  } else {
    std::printf(
        "  the history records no commands offset: serve starts ledger.commands as on a fresh store\n");
  }
  std::printf("  installed in %s\n", args.data_dir.c_str());
}

int RunRestore(const RestoreArgs& args) {
  if (!args.from_kafka) return Fail(kExitBadInput, "restore needs a source: --from-kafka");
  Result<LedgerConfig> config = LoadConfig(args.data_dir + "/ledger.toml");
  if (!config.ok()) return Fail(kExitBadInput, config.status().message());
  const std::string brokers = args.brokers.empty() ? config->kafka_brokers : args.brokers;
  if (brokers.empty())
    return Fail(kExitBadInput, "--from-kafka needs --brokers (or [kafka] brokers in ledger.toml)");
  const uint32_t shard = args.shard >= 0 ? static_cast<uint32_t>(args.shard) : config->shard;
  Result<TrustAnchor> anchor = LoadTrustAnchor(args.pubkey, args.data_dir);
  if (!anchor.ok()) return Fail(kExitBadInput, anchor.status().message());
  const std::string staging = StagingDir(args.data_dir);
  if (Status free = CheckFolders(args.data_dir, staging); !free.ok())
    return Fail(kExitBadInput, free.message());

  Result<replay::RestoreReport> report = RestoreInto(shard, brokers, anchor->verifier.get(), staging);
  const auto discard = [&staging] {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
  };
  if (!report.ok()) {
    discard();
    return Fail(ExitCodeFor(report.status()) == kExitBadInput ? kExitBadInput : kExitFailure,
                "restore: the history could not be read, nothing installed: " + report.status().ToString());
  }
  const replay::ReplayReport& replayed = report->replay;
  if (!replayed.ok()) {
    discard();
    return Fail(kExitNotVerified, "restore FAILED at sequence " +
                                      std::to_string(*replayed.first_bad_sequence) + ": " + replayed.problem +
                                      "; nothing installed");
  }
  if (replayed.events_read == 0) {
    discard();
    return Fail(kExitNotVerified, "restore FAILED: ledger.events partition " + std::to_string(shard) +
                                      " holds no events; nothing installed");
  }
  // A checkpoint whose signature nobody checked proves nothing about who wrote the history before it.
  if (replayed.checkpoints_seen > 0 && !replayed.signatures_checked) {
    discard();
    return Fail(kExitSignaturesNotChecked,
                "restore NOT installed: the history holds " + std::to_string(replayed.checkpoints_seen) +
                    " signed checkpoints and no public key was given to check them (--pubkey FILE or [audit] "
                    "public_key in " +
                    args.data_dir + "/ledger.toml)");
  }
  if (Status installed = Install(staging, args.data_dir); !installed.ok()) {
    discard();
    return Fail(ExitCodeFor(installed), "restore verified but not installed: " + installed.message());
  }
  PrintReport(args, shard, *report, anchor->path);
  return kExitOk;
}

}  // namespace

Runner AddRestore(CLI::App& app) {
  auto args = std::make_shared<RestoreArgs>();
  app.add_option("--data", args->data_dir,
                 "the shard's data folder (no store in it yet; its ledger.toml is read)")
      ->required();
  app.add_flag("--from-kafka", args->from_kafka, "rebuild from the shard's ledger.events partition");
  app.add_option("--brokers", args->brokers, "Kafka bootstrap servers (default: [kafka] brokers)");
  app.add_option("--shard", args->shard, "the shard (= partition) to restore (default: [ledger] shard)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--pubkey", args->pubkey,
                 "Ed25519 public key for checkpoint signatures (default: [audit] public_key)");
  app.add_flag("--json", args->json, "JSON report");
  return [args]() { return RunRestore(*args); };
}

}  // namespace ledger::cli
