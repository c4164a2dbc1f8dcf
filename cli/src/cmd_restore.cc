// ledger backup: a RocksDB backup of a stopped shard. ledger restore: a lost shard's store rebuilt from its
// ledger.events partition, or from its newest backup (and the partition's events after it), verified, and
// installed into the data folder only when everything verified (replay/restore.h).
#include <unistd.h>

#include <charconv>
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
#include "state/keys.h"
#include "storage/store.h"

namespace ledger::cli {
namespace {

namespace fs = std::filesystem;

struct RestoreArgs {
  std::string data_dir;
  std::string from_backup;  // the backup folder; empty: none
  bool from_kafka = false;
  std::string brokers;
  int64_t shard = -1;  // -1: [ledger] shard of the data folder's ledger.toml
  std::string pubkey;
  std::string accept_unsigned_tail;  // the operator who accepts events after the last signed checkpoint
  bool json = false;
};

// The folder the store is built in: inside the data folder (so the final moves stay on one filesystem), and
// apart from it, so that a failed restore leaves no store in the data folder.
std::string StagingDir(const std::string& data_dir) { return (fs::path(data_dir) / ".restoring").string(); }

// Whether `name` is a file RocksDB keeps in a database folder (or the ledger beside them): one left in the
// data folder would be taken for part of the restored store (a stray write-ahead log is replayed into it).
bool IsStoreFileName(const std::string& name) {
  static constexpr std::string_view kPrefixes[] = {
      "MANIFEST-", "OPTIONS-", "LOG", "CURRENT", "IDENTITY", "LOCK", "DURABLE_SEQUENCE"};
  for (std::string_view prefix : kPrefixes) {
    if (name.starts_with(prefix)) return true;
  }
  return name.ends_with(".log") || name.ends_with(".sst") || name.ends_with(".blob");
}

// Checks that `data_dir` is a folder (or can be made one) holding no store files, and creates `staging` in it
// (it must not exist: an earlier restore that was interrupted leaves it for the operator to look at).
// Errors: InvalidArgument.
Status PrepareFolders(const std::string& data_dir, const std::string& staging) {
  std::error_code error;
  if (data_dir.empty()) return Status::InvalidArgument("--data must name a folder");
  const fs::file_status status = fs::status(data_dir, error);
  if (fs::exists(status) && !fs::is_directory(status))
    return Status::InvalidArgument(data_dir + " is not a folder");
  if (!fs::exists(status)) {
    fs::create_directories(data_dir, error);
    if (error) return Status::InvalidArgument("cannot create " + data_dir + ": " + error.message());
  }
  if (fs::exists(fs::path(data_dir) / "CURRENT", error)) {
    return Status::InvalidArgument(data_dir + " already holds a store: restore writes only where none is");
  }
  for (const fs::directory_entry& entry : fs::directory_iterator(data_dir, error)) {
    const std::string name = entry.path().filename().string();
    if (IsStoreFileName(name)) {
      return Status::InvalidArgument(data_dir + " holds " + name +
                                     ", a file of a store: restore writes only into a folder without one");
    }
  }
  if (error) return Status::InvalidArgument("cannot list " + data_dir + ": " + error.message());
  if (fs::exists(fs::symlink_status(staging, error)) || !fs::create_directory(staging, error) || error) {
    return Status::InvalidArgument(staging + " exists (an interrupted restore?): remove it and run again");
  }
  return Status::Ok();
}

// Moves the store's files from `staging` into `data_dir` (created when missing), RocksDB's CURRENT last:
// until it lands, the folder holds no store, so an interruption never leaves a partial store that opens.
// Errors: InvalidArgument (a name taken in the data folder), IoError.
Status Install(const std::string& staging, const std::string& data_dir) {
  std::error_code error;
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

// What a restore did, for its report.
struct RestoreOutcome {
  uint32_t shard = 0;
  replay::RestoreReport report;         // the verification (of the whole installed history) and the offset
  std::optional<BackupSummary> backup;  // --from-backup: the backup restored
  uint64_t events_after_backup = 0;     // --from-backup: the events the partition added after it
};

void PrintReport(const RestoreArgs& args, const RestoreOutcome& outcome, const std::string& key_path) {
  const uint32_t shard = outcome.shard;
  const replay::RestoreReport& report = outcome.report;
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
    out["signed_through"] = replayed.signed_through;
    out["public_key"] = key_path.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(key_path);
    out["commands_offset"] = report.commands_offset ? nlohmann::ordered_json(*report.commands_offset)
                                                    : nlohmann::ordered_json(nullptr);
    out["backup"] = outcome.backup ? nlohmann::ordered_json{{"id", outcome.backup->id},
                                                            {"label", outcome.backup->label},
                                                            {"created_at_s", outcome.backup->created_at_s}}
                                   : nlohmann::ordered_json(nullptr);
    out["events_from_kafka"] = outcome.backup ? outcome.events_after_backup : replayed.events_read;
    out["data"] = args.data_dir;
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("restore VERIFIED: shard %u, %llu events, last sequence %llu, chain head %s\n", shard,
              static_cast<unsigned long long>(replayed.events_read),
              static_cast<unsigned long long>(replayed.last_sequence), ToHex(replayed.chain_head).c_str());
  std::printf("  signed through sequence %llu\n", static_cast<unsigned long long>(replayed.signed_through));
  std::printf("  checkpoints: %llu seen, %llu verified%s\n",
              static_cast<unsigned long long>(replayed.checkpoints_seen),
              static_cast<unsigned long long>(replayed.checkpoints_verified),
              key_path.empty() ? "" : (" (signatures checked with " + key_path + ")").c_str());
  if (outcome.backup) {
    std::printf("  from backup %u (%s), then %llu events from ledger.events partition %u\n",
                outcome.backup->id, outcome.backup->label.c_str(),
                static_cast<unsigned long long>(outcome.events_after_backup), shard);
  }
  if (report.commands_offset) {
    std::printf("  serve resumes ledger.commands partition %u at offset %lld\n", shard,
                static_cast<long long>(*report.commands_offset));
  } else {
    std::printf(
        "  the history records no commands offset: serve starts ledger.commands as on a fresh store\n");
  }
  std::printf("  installed in %s\n", args.data_dir.c_str());
}

// Progress on stderr while a history of about `total` events is read (a terminal only).
std::function<void(uint64_t)> RestoreProgress(uint64_t total) {
  if (isatty(STDERR_FILENO) == 0) return nullptr;
  return ProgressPrinter("restore", std::chrono::steady_clock::now(), total);
}

// Restores the newest backup of args.from_backup into a scratch folder beside `staging` and rebuilds the
// shard in `staging` from the backup's events, followed (with --from-kafka) by the partition's later ones,
// with RestoreShard's verification: the backup's own projection records are never trusted. A failed check is
// in the outcome's report. Errors: NotFound (no backup), Corruption (a damaged backup, a partition of another
// history), IoError.
Result<RestoreOutcome> RestoreFromBackup(const RestoreArgs& args, uint32_t shard, const std::string& brokers,
                                         const SignatureVerifier* verifier, const std::string& staging) {
  const std::string scratch = staging + "-backup";
  std::error_code error;
  if (fs::exists(fs::symlink_status(scratch, error)) || !fs::create_directory(scratch, error) || error) {
    return Status::InvalidArgument(scratch + " exists (an interrupted restore?): remove it and run again");
  }
  struct RemoveScratch {
    std::string dir;
    ~RemoveScratch() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } remove_scratch{scratch};
  RestoreOutcome outcome;
  outcome.shard = shard;
  Result<BackupSummary> backup = RestoreLatestBackup(args.from_backup, scratch);
  if (!backup.ok()) return backup.status();
  outcome.backup = *backup;
  StoreOptions read_only;
  read_only.read_only = true;
  read_only.create_if_missing = false;
  Result<std::unique_ptr<Store>> backup_store = Store::Open(scratch, read_only);
  if (!backup_store.ok()) return backup_store.status();
  Result<std::optional<std::pair<uint64_t, std::string>>> backup_head = (*backup_store)->LastEvent();
  if (!backup_head.ok()) return backup_head.status();
  const uint64_t backup_sequence = backup_head->has_value() ? (*backup_head)->first : 0;
  std::unique_ptr<replay::KafkaEventSource> partition;
  replay::EventSource source = replay::StoreSource(**backup_store);
  if (args.from_kafka) {
    Result<std::unique_ptr<replay::KafkaEventSource>> opened = replay::KafkaEventSource::Open(brokers, shard);
    if (!opened.ok()) return opened.status();
    partition = std::move(opened).value();
    source = replay::BackupThenPartition(**backup_store, partition->source());
  }
  Result<std::unique_ptr<Store>> target = Store::Open(staging, StoreOptions());
  if (!target.ok()) return target.status();
  replay::ReplayOptions options;
  options.verifier = verifier;
  options.progress = RestoreProgress(backup_sequence);
  Result<replay::RestoreReport> report = replay::RestoreShard(source, shard, target->get(), options);
  if (options.progress) std::fputc('\n', stderr);
  if (!report.ok()) return report.status();
  outcome.report = std::move(report).value();
  outcome.events_after_backup = outcome.report.replay.last_sequence > backup_sequence
                                    ? outcome.report.replay.last_sequence - backup_sequence
                                    : 0;
  return outcome;
}

// The outcome of a restore from ledger.events alone into `staging`.
Result<RestoreOutcome> RestoreFromKafka(uint32_t shard, const std::string& brokers,
                                        const SignatureVerifier* verifier, const std::string& staging) {
  Result<replay::RestoreReport> report = RestoreInto(shard, brokers, verifier, staging);
  if (!report.ok()) return report.status();
  RestoreOutcome outcome;
  outcome.shard = shard;
  outcome.report = std::move(report).value();
  return outcome;
}

int RunRestore(const RestoreArgs& args) {
  if (!args.from_kafka && args.from_backup.empty())
    return Fail(kExitBadInput, "restore needs a source: --from-kafka, --from-backup DIR, or both");
  Result<LedgerConfig> config = LoadConfig(args.data_dir + "/ledger.toml");
  if (!config.ok()) return Fail(kExitBadInput, config.status().message());
  const Status secured = UseKafkaSecurity(*config, args.data_dir);
  if (!secured.ok()) return Fail(kExitBadInput, secured.message());
  const std::string brokers = args.brokers.empty() ? config->kafka_brokers : args.brokers;
  if (args.from_kafka && brokers.empty())
    return Fail(kExitBadInput, "--from-kafka needs --brokers (or [kafka] brokers in ledger.toml)");
  const uint32_t shard = args.shard >= 0 ? static_cast<uint32_t>(args.shard) : config->shard;
  Result<TrustAnchor> anchor = LoadTrustAnchor(args.pubkey, args.data_dir);
  if (!anchor.ok()) return Fail(kExitBadInput, anchor.status().message());
  const std::string staging = StagingDir(args.data_dir);
  if (Status prepared = PrepareFolders(args.data_dir, staging); !prepared.ok())
    return Fail(kExitBadInput, prepared.message());

  Result<RestoreOutcome> outcome =
      args.from_backup.empty() ? RestoreFromKafka(shard, brokers, anchor->verifier.get(), staging)
                               : RestoreFromBackup(args, shard, brokers, anchor->verifier.get(), staging);
  const auto discard = [&staging] {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
  };
  if (!outcome.ok()) {
    discard();
    const StatusCode code = outcome.status().code();
    const int exit_code = code == StatusCode::kNotFound     ? kExitBadInput
                          : code == StatusCode::kCorruption ? kExitNotVerified
                                                            : kExitFailure;
    return Fail(exit_code, "restore: nothing installed: " + outcome.status().ToString());
  }
  const replay::ReplayReport& replayed = outcome->report.replay;
  if (!replayed.ok()) {
    discard();
    return Fail(kExitNotVerified, "restore FAILED at sequence " +
                                      std::to_string(*replayed.first_bad_sequence) + ": " + replayed.problem +
                                      "; nothing installed");
  }
  if (replayed.events_read == 0) {
    discard();
    return Fail(kExitNotVerified, "restore FAILED: shard " + std::to_string(shard) +
                                      "'s history holds no events; nothing installed");
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
  // Events after the last signed checkpoint chain correctly, but the chain holds no secret: anyone who could
  // write the partition could have appended them. An operator accepts them by name, or they are not
  // installed.
  const uint64_t unsigned_events = replayed.last_sequence - replayed.signed_through;
  if (unsigned_events > 0 && args.accept_unsigned_tail.empty()) {
    discard();
    return Fail(
        kExitSignaturesNotChecked,
        "restore NOT installed: events " + std::to_string(replayed.signed_through + 1) + ".." +
            std::to_string(replayed.last_sequence) +
            " follow the last signed checkpoint, so nothing proves who wrote them; check them (ledger "
            "events, the channels' statements) and run again with --accept-unsigned-tail OPERATOR_NAME");
  }
  if (unsigned_events > 0) {
    std::fprintf(stderr, "ledger: %s accepted %llu events not covered by a signed checkpoint (%llu..%llu)\n",
                 args.accept_unsigned_tail.c_str(), static_cast<unsigned long long>(unsigned_events),
                 static_cast<unsigned long long>(replayed.signed_through + 1),
                 static_cast<unsigned long long>(replayed.last_sequence));
  }
  if (Status installed = Install(staging, args.data_dir); !installed.ok()) {
    discard();
    return Fail(ExitCodeFor(installed), "restore verified but not installed: " + installed.message());
  }
  PrintReport(args, *outcome, anchor->path);
  return kExitOk;
}

struct BackupArgs {
  WriteOptions write;
  std::string to;
  uint32_t keep = 7;
};

int RunBackup(const BackupArgs& args) {
  Result<LedgerOptions> options = MakeLedgerOptions(args.write);
  if (!options.ok()) return Fail(kExitBadInput, options.status().message());
  options->signer.reset();  // a backup writes no checkpoint
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*options);
  if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
  Result<BackupSummary> backup = (*ledger)->Backup(args.to, args.keep);
  if (!backup.ok()) return Fail(kExitFailure, "backup: " + backup.status().ToString());
  if (args.write.json) {
    nlohmann::ordered_json out{{"id", backup->id},       {"label", backup->label},
                               {"files", backup->files}, {"size_bytes", backup->size_bytes},
                               {"to", args.to},          {"keep", args.keep}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("backup %u (%s): %u files, %llu bytes in %s (the newest %u kept)\n", backup->id,
                backup->label.c_str(), backup->files, static_cast<unsigned long long>(backup->size_bytes),
                args.to.c_str(), args.keep);
  }
  return kExitOk;
}

}  // namespace

Runner AddRestore(CLI::App& app) {
  auto args = std::make_shared<RestoreArgs>();
  app.add_option("--data", args->data_dir,
                 "the shard's data folder (no store in it yet; its ledger.toml is read)")
      ->required();
  app.add_option("--from-backup", args->from_backup,
                 "start from the newest backup in this folder (`ledger backup`); with --from-kafka, then the "
                 "partition's events after it");
  app.add_flag("--from-kafka", args->from_kafka, "rebuild from the shard's ledger.events partition");
  app.add_option("--brokers", args->brokers, "Kafka bootstrap servers (default: [kafka] brokers)");
  app.add_option("--shard", args->shard, "the shard (= partition) to restore (default: [ledger] shard)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--pubkey", args->pubkey,
                 "Ed25519 public key for checkpoint signatures (default: [audit] public_key)");
  app.add_option(
      "--accept-unsigned-tail", args->accept_unsigned_tail,
      "install events after the last signed checkpoint too (none is installed without it); names the "
      "operator who checked them");
  app.add_flag("--json", args->json, "JSON report");
  return [args]() { return RunRestore(*args); };
}

Runner AddBackup(CLI::App& app) {
  auto args = std::make_shared<BackupArgs>();
  app.add_option("--data", args->write.data_dir, "data folder of a stopped ledger")->capture_default_str();
  app.add_option("--to", args->to, "backup folder (created; earlier backups there are kept and shared)")
      ->required();
  app.add_option("--keep", args->keep, "how many of the newest backups to keep")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_flag("--json", args->write.json, "JSON output");
  return [args]() { return RunBackup(*args); };
}

}  // namespace ledger::cli
