// Audit commands: keygen, checkpoint, replay. See README: Audit.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli_common.h"
#include "commands.h"
#include "ledger/kafka.h"
#include "ledger/ledger.h"
#include "ledger/signing.h"
#include "ledger/time.h"
#include "replay/replay.h"

namespace ledger::cli {

Result<std::string> MakeTempDir(const std::string& stem) {
  std::string pattern = (std::filesystem::temp_directory_path() / (stem + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) return Status::IoError("cannot create a temporary folder");
  return pattern;
}

Result<std::unique_ptr<Store>> OpenFreshStore(const std::string& dir) {
  std::error_code error;
  if (std::filesystem::exists(dir, error) && !std::filesystem::is_empty(dir, error)) {
    return Status::InvalidArgument(dir + " is not empty; replay writes into a fresh folder");
  }
  StoreOptions options;
  options.sync = false;  // a rebuild can always be redone; its last commit is flushed at close
  return Store::Open(dir, options);
}

Runner AddKeygen(CLI::App& app) {
  auto out = std::make_shared<std::string>();
  app.add_option("--out", *out, "folder for ledger-signing.key (private, mode 0600) and ledger-signing.pub")->required();
  return [out]() {
    const Status status = GenerateKeyPair(*out);
    if (!status.ok()) return Fail(ExitCodeFor(status), status.message());
    std::printf("{\"private_key\":\"%s/ledger-signing.key\",\"public_key\":\"%s/ledger-signing.pub\"}\n", out->c_str(), out->c_str());
    return kExitOk;
  };
}

Runner AddCheckpoint(CLI::App& app) {
  auto options = std::make_shared<WriteOptions>();
  app.add_option("--data", options->data_dir, "data folder")->capture_default_str();
  app.add_flag("--json", options->json, "JSON output");
  return [options]() {
    Result<LedgerOptions> ledger_options = MakeLedgerOptions(*options);
    if (!ledger_options.ok()) return Fail(kExitBadInput, ledger_options.status().message());
    if (!ledger_options->signer) return Fail(kExitBadInput, "no signing key: set [audit] private_key in " + options->data_dir + "/ledger.toml");
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*ledger_options);
    if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
    Result<uint64_t> sequence = (*ledger)->WriteCheckpoint();
    if (!sequence.ok()) return Fail(ExitCodeFor(sequence.status()), sequence.status().ToString());
    const Status published = PublishCommitted(**ledger, ledger_options->config, *sequence);
    if (!published.ok()) return Fail(kExitFailure, "checkpoint written but not published: " + published.message());
    std::printf("{\"checkpoint_sequence\":%llu,\"covers_sequence\":%llu,\"chain_head\":\"%s\"}\n",
                static_cast<unsigned long long>(*sequence), static_cast<unsigned long long>(*sequence - 1),
                ToHex((*ledger)->chain_head()).c_str());
    return kExitOk;
  };
}

// Replays into `target_dir` (a fresh temporary folder when empty). Used by `replay` and `balance --as-of`.
Result<replay::ReplayReport> ReplayInto(const replay::EventSource& source, const std::string& target_dir,
                                        const replay::ReplayOptions& options, std::unique_ptr<Store>* target) {
  Result<std::unique_ptr<Store>> store = OpenFreshStore(target_dir);
  if (!store.ok()) return store.status();
  *target = std::move(store).value();
  return replay::Replay(source, target->get(), options);
}

Runner AddReplay(CLI::App& app) {
  struct Args {
    std::string data_dir = "./ledger-data";
    std::string source = "rocksdb";
    std::string brokers;
    uint32_t partition = 0;
    uint64_t to_sequence = UINT64_MAX;
    std::string as_of;
    std::string pubkey;
    std::string out;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->data_dir, "the ledger's data folder (the live store compared after a full replay)")->capture_default_str();
  app.add_option("--source", args->source, "where history comes from")->check(CLI::IsMember({"rocksdb", "kafka"}))->capture_default_str();
  app.add_option("--brokers", args->brokers, "with --source kafka: bootstrap servers");
  app.add_option("--partition", args->partition, "with --source kafka: the shard's partition")->capture_default_str();
  auto* to_seq = app.add_option("--to-seq", args->to_sequence, "stop after this sequence");
  app.add_option("--as-of", args->as_of, "stop before the first event recorded after this time (ISO 8601)")->excludes(to_seq);
  app.add_option("--pubkey", args->pubkey, "the ledger's public key (PEM): checks every checkpoint signature");
  app.add_option("--out", args->out, "rebuild the projections into this new folder (default: a temporary one)");
  app.add_flag("--json", args->json, "JSON report");
  return [args]() {
    replay::ReplayOptions options;
    options.to_sequence = args->to_sequence;
    if (!args->as_of.empty()) {
      Result<int64_t> as_of = ParseIso8601(args->as_of);
      if (!as_of.ok()) return Fail(kExitBadInput, "--as-of: " + as_of.status().message());
      options.as_of_ns = *as_of;
    }
    std::unique_ptr<SignatureVerifier> verifier;
    if (!args->pubkey.empty()) {
      Result<std::unique_ptr<SignatureVerifier>> loaded = SignatureVerifier::FromPemFile(args->pubkey);
      if (!loaded.ok()) return Fail(kExitBadInput, loaded.status().message());
      verifier = std::move(loaded).value();
      options.verifier = verifier.get();
    }
    // The live store: the source for --source rocksdb, and what a full replay must reproduce.
    std::unique_ptr<Store> live;
    std::error_code error;
    if (std::filesystem::exists(args->data_dir + "/CURRENT", error)) {
      StoreOptions store_options;
      store_options.read_only = true;
      store_options.create_if_missing = false;
      Result<std::unique_ptr<Store>> opened = Store::Open(args->data_dir, store_options);
      if (!opened.ok()) return Fail(ExitCodeFor(opened.status()), opened.status().ToString());
      live = std::move(opened).value();
    } else if (args->source == "rocksdb") {
      return Fail(kExitBadInput, "no ledger data in " + args->data_dir);
    }
    uint64_t total = 0;
    if (live) {
      Result<std::optional<std::pair<uint64_t, std::string>>> last = live->LastEvent();
      if (last.ok() && last->has_value()) total = (*last)->first;
    }
    replay::EventSource source;
    std::unique_ptr<kafka::PartitionReader> reader;
    int64_t high_watermark = 0;
    if (args->source == "rocksdb") {
      source = replay::StoreSource(*live);
    } else {
      if (args->brokers.empty()) return Fail(kExitBadInput, "--source kafka needs --brokers");
      Result<std::unique_ptr<kafka::PartitionReader>> opened =
          kafka::PartitionReader::Open(args->brokers, kafka::kEventsTopic, args->partition, -1);
      if (!opened.ok()) return Fail(kExitFailure, opened.status().ToString());
      reader = std::move(opened).value();
      Result<int64_t> high = reader->HighWatermark(10'000);
      if (!high.ok()) return Fail(kExitFailure, high.status().ToString());
      high_watermark = *high;
      source = [&reader, high_watermark](const std::function<bool(uint64_t, std::string_view)>& fn) -> Status {
        int64_t next = 0;
        int idle_polls = 0;
        while (next < high_watermark) {
          Result<std::vector<kafka::Record>> records = reader->Poll(4096, 500);
          if (!records.ok()) return records.status();
          if (records->empty() && ++idle_polls > 60) return Status::IoError("ledger.events stopped before its high watermark");
          for (const kafka::Record& record : *records) {
            idle_polls = 0;
            next = record.offset + 1;
            // A record without a sequence header is not a ledger event: it gets sequence 0, a reordering.
            if (!fn(record.sequence.value_or(0), record.value)) return Status::Ok();
          }
        }
        return Status::Ok();
      };
    }
    const bool show_progress = isatty(STDERR_FILENO) != 0;
    const auto started = std::chrono::steady_clock::now();
    if (show_progress) {
      options.progress = [&](uint64_t events) {
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        std::fprintf(stderr, "\rreplay: %llu events, %.0f events/s%s", static_cast<unsigned long long>(events),
                     seconds > 0 ? events / seconds : 0.0,
                     total > 0 ? (", " + std::to_string(events * 100 / total) + "%").c_str() : "");
      };
    }
    std::string target_dir = args->out;
    bool temporary = false;
    if (target_dir.empty()) {
      Result<std::string> made = MakeTempDir("ledger-replay");
      if (!made.ok()) return Fail(kExitFailure, made.status().message());
      target_dir = *made;
      temporary = true;
    }
    std::unique_ptr<Store> target;
    Result<replay::ReplayReport> report = ReplayInto(source, target_dir, options, &target);
    if (show_progress) std::fputc('\n', stderr);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (!report.ok()) {
      target.reset();
      if (temporary) std::filesystem::remove_all(target_dir, error);
      return Fail(ExitCodeFor(report.status()), report.status().ToString());
    }
    // A full replay must reproduce the live store byte for byte.
    std::optional<bool> live_equal;
    std::string rebuilt_digest_hex;
    const bool full = args->as_of.empty() && args->to_sequence == UINT64_MAX;
    Result<Digest> rebuilt_digest = replay::StateDigest(*target);
    if (!rebuilt_digest.ok()) return Fail(kExitFailure, rebuilt_digest.status().ToString());
    rebuilt_digest_hex = ToHex(*rebuilt_digest);
    if (full && live && report->ok()) {
      Result<Digest> live_digest = replay::StateDigest(*live);
      if (!live_digest.ok()) return Fail(kExitFailure, live_digest.status().ToString());
      live_equal = *live_digest == *rebuilt_digest;
    }
    target.reset();
    if (temporary) std::filesystem::remove_all(target_dir, error);
    const bool verified = report->ok() && live_equal.value_or(true);

    nlohmann::ordered_json out;
    out["verified"] = verified;
    out["source"] = args->source;
    out["events_read"] = report->events_read;
    out["last_sequence"] = report->last_sequence;
    out["chain_head"] = ToHex(report->chain_head);
    out["checkpoints_seen"] = report->checkpoints_seen;
    out["checkpoints_verified"] = report->checkpoints_verified;
    out["signatures_checked"] = report->signatures_checked;
    out["state_digest"] = rebuilt_digest_hex;
    out["live_state_equal"] = live_equal ? nlohmann::ordered_json(*live_equal) : nlohmann::ordered_json(nullptr);
    out["first_bad_sequence"] = report->first_bad_sequence ? nlohmann::ordered_json(*report->first_bad_sequence) : nlohmann::ordered_json(nullptr);
    out["problem"] = report->ok() ? (live_equal == false ? "rebuilt state differs from the live store" : "") : report->problem;
    out["out"] = temporary ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(target_dir);
    out["seconds"] = seconds;
    if (args->json) {
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("replay %s: %llu events to sequence %llu, chain head %s\n", verified ? "VERIFIED" : "FAILED",
                  static_cast<unsigned long long>(report->events_read), static_cast<unsigned long long>(report->last_sequence),
                  ToHex(report->chain_head).c_str());
      std::printf("  checkpoints: %llu seen, %llu verified%s\n", static_cast<unsigned long long>(report->checkpoints_seen),
                  static_cast<unsigned long long>(report->checkpoints_verified),
                  report->signatures_checked ? "" : " (signatures NOT checked: give --pubkey)");
      if (live_equal) std::printf("  rebuilt state %s the live store\n", *live_equal ? "equals" : "DIFFERS FROM");
      if (!report->ok()) {
        std::printf("  first bad sequence %llu: %s\n", static_cast<unsigned long long>(*report->first_bad_sequence),
                    report->problem.c_str());
      }
      if (!temporary) std::printf("  projections rebuilt in %s\n", target_dir.c_str());
    }
    return verified ? kExitOk : kExitBadInput;
  };
}

}  // namespace ledger::cli
