// Audit commands: keygen, checkpoint, replay. See README: Audit.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli_common.h"
#include "core/config.h"
#include "core/signing.h"
#include "core/time.h"
#include "events/event.h"
#include "ledger/ledger.h"
#include "projections/folder.h"
#include "replay/kafka_source.h"
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
  app.add_option("--out", *out, "folder for ledger-signing.key (private, mode 0600) and ledger-signing.pub")
      ->required();
  return [out]() {
    const Status status = GenerateKeyPair(*out);
    if (!status.ok()) return Fail(ExitCodeFor(status), status.message());
    std::printf("{\"private_key\":\"%s/ledger-signing.key\",\"public_key\":\"%s/ledger-signing.pub\"}\n",
                out->c_str(), out->c_str());
    return kExitOk;
  };
}

namespace {

// The sequence a stored checkpoint event covers, read from its CheckpointRecorded payload: `checkpoint`
// reports what was signed, not a value worked out beside it. Errors: Corruption, IoError.
Result<uint64_t> CoveredSequence(const Store& store, uint64_t checkpoint_sequence) {
  std::optional<uint64_t> covered;
  Status decode_status;
  auto read = [&](uint64_t, std::string_view record) {
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    if (!decoded.ok()) {
      decode_status = decoded.status();
    } else if (const fb::CheckpointRecorded* checkpoint = decoded->body->payload_as_CheckpointRecorded()) {
      covered = checkpoint->sequence();
    }
    return false;
  };
  const Status scanned = store.ScanEvents(checkpoint_sequence, checkpoint_sequence, read);
  LEDGER_RETURN_IF_ERROR(scanned);
  LEDGER_RETURN_IF_ERROR(decode_status);
  if (!covered) {
    return Status::Corruption("event " + std::to_string(checkpoint_sequence) + " is not a checkpoint");
  }
  return *covered;
}

}  // namespace

Runner AddCheckpoint(CLI::App& app) {
  auto options = std::make_shared<WriteOptions>();
  app.add_option("--data", options->data_dir, "data folder")->capture_default_str();
  app.add_flag("--json", options->json, "JSON output");
  return [options]() {
    Result<LedgerOptions> ledger_options = MakeLedgerOptions(*options);
    if (!ledger_options.ok()) return Fail(kExitBadInput, ledger_options.status().message());
    if (!ledger_options->signer)
      return Fail(kExitBadInput,
                  "no signing key: set [audit] private_key in " + options->data_dir + "/ledger.toml");
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*ledger_options);
    if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
    Result<uint64_t> sequence = (*ledger)->WriteCheckpoint();
    if (!sequence.ok()) return Fail(ExitCodeFor(sequence.status()), sequence.status().ToString());
    Result<uint64_t> covered = CoveredSequence((*ledger)->store(), *sequence);
    if (!covered.ok()) {
      return Fail(kExitFailure, "checkpoint written but not read back: " + covered.status().ToString());
    }
    const Status published = PublishCommitted(**ledger, *ledger_options, *sequence);
    if (!published.ok())
      return Fail(kExitFailure, "checkpoint written but not published: " + published.message());
    std::printf("{\"checkpoint_sequence\":%llu,\"covers_sequence\":%llu,\"chain_head\":\"%s\"}\n",
                static_cast<unsigned long long>(*sequence), static_cast<unsigned long long>(*covered),
                ToHex((*ledger)->chain_head()).c_str());
    return kExitOk;
  };
}

// Replays into `target_dir` (a fresh temporary folder when empty). Used by `replay` and `balance --as-of`.
Result<replay::ReplayReport> ReplayInto(const replay::EventSource& source, const std::string& target_dir,
                                        const replay::ReplayOptions& options,
                                        std::unique_ptr<Store>* target) {
  Result<std::unique_ptr<Store>> store = OpenFreshStore(target_dir);
  if (!store.ok()) return store.status();
  *target = std::move(store).value();
  return replay::Replay(source, target->get(), options);
}

namespace {

struct ReplayArgs {
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

// What `replay` concluded; each has its own exit code (README: Command-line reference).
enum class Verdict { kVerified, kSignaturesNotChecked, kNotVerified };

// The live store read-only, or null when `data_dir` holds no ledger. Errors: as Store::Open.
Result<std::unique_ptr<Store>> OpenLiveStore(const std::string& data_dir) {
  std::error_code error;
  if (!std::filesystem::exists(data_dir + "/CURRENT", error)) return std::unique_ptr<Store>();
  StoreOptions store_options;
  store_options.read_only = true;
  store_options.create_if_missing = false;
  Result<std::unique_ptr<Store>> store = Store::Open(data_dir, store_options);
  if (!store.ok()) return store.status();
  return ViewAsOfLastEvent(std::move(store).value());
}

// The folder a replay rebuilds into; a temporary one goes away with this object, its store closed first.
struct ReplayTarget {
  std::string dir;
  bool temporary = false;
  std::unique_ptr<Store> store;
  ReplayTarget() = default;
  ReplayTarget(const ReplayTarget&) = delete;
  ReplayTarget& operator=(const ReplayTarget&) = delete;
  ~ReplayTarget() {
    store.reset();
    std::error_code ignored;
    if (temporary) std::filesystem::remove_all(dir, ignored);
  }
};

// How the rebuilt state compares with the live store (after a full replay only).
struct LiveComparison {
  std::optional<bool> equal;                         // nullopt: not compared
  std::vector<replay::StateDifference> differences;  // when not equal: the first differing key per projector
};

// Errors: IoError (the states could not be read).
Result<LiveComparison> CompareWithLive(const Store& live, const Store& rebuilt,
                                       const Digest& rebuilt_digest) {
  LiveComparison comparison;
  Result<Digest> live_digest = replay::StateDigest(live);
  if (!live_digest.ok()) return live_digest.status();
  comparison.equal = *live_digest == rebuilt_digest;
  if (*comparison.equal) return comparison;
  Result<std::vector<replay::StateDifference>> differences = replay::FirstDifferences(live, rebuilt);
  if (!differences.ok()) return differences.status();
  comparison.differences = std::move(differences).value();
  return comparison;
}

Verdict Judge(const replay::ReplayReport& report, const LiveComparison& live) {
  if (!report.ok() || live.equal == false) return Verdict::kNotVerified;
  // A checkpoint whose signature nobody checked proves nothing about who wrote the history before it.
  if (report.checkpoints_seen > 0 && !report.signatures_checked) return Verdict::kSignaturesNotChecked;
  return Verdict::kVerified;
}

int ExitCodeOf(Verdict verdict) {
  switch (verdict) {
    case Verdict::kVerified:
      return kExitOk;
    case Verdict::kSignaturesNotChecked:
      return kExitSignaturesNotChecked;
    case Verdict::kNotVerified:
      return kExitNotVerified;
  }
  return kExitNotVerified;
}

// The verdict in the JSON report's "outcome".
const char* OutcomeName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kVerified:
      return "verified";
    case Verdict::kSignaturesNotChecked:
      return "signatures_not_checked";
    case Verdict::kNotVerified:
      return "not_verified";
  }
  return "not_verified";
}

// The verdict in the text report's first line. Only a full verification says VERIFIED, so that no one reading
// or grepping the report takes unchecked signatures for checked ones.
const char* Headline(Verdict verdict) {
  switch (verdict) {
    case Verdict::kVerified:
      return "VERIFIED";
    case Verdict::kSignaturesNotChecked:
      return "INCOMPLETE (signatures NOT checked)";
    case Verdict::kNotVerified:
      return "FAILED";
  }
  return "FAILED";
}

constexpr char kNoKeyHint[] = "no public key (give --pubkey FILE or set [audit] public_key in ledger.toml)";

// Everything the report of one replay shows.
struct ReplayOutcome {
  const ReplayArgs& args;
  const replay::ReplayReport& report;
  const LiveComparison& live;
  Verdict verdict;
  std::string key_path;  // empty: no key
  std::string state_digest_hex;
  std::string out_dir;  // empty: a temporary folder
  double seconds = 0;
};

std::string Problem(const ReplayOutcome& outcome) {
  if (!outcome.report.ok()) return outcome.report.problem;
  if (outcome.live.equal == false) return "rebuilt state differs from the live store";
  if (outcome.verdict == Verdict::kSignaturesNotChecked) {
    return "checkpoint signatures not checked: no public key";
  }
  return "";
}

nlohmann::ordered_json ReplayJson(const ReplayOutcome& outcome) {
  using nlohmann::ordered_json;
  const replay::ReplayReport& report = outcome.report;
  ordered_json out;
  out["verified"] = outcome.verdict == Verdict::kVerified;
  out["outcome"] = OutcomeName(outcome.verdict);
  out["source"] = outcome.args.source;
  out["events_read"] = report.events_read;
  out["last_sequence"] = report.last_sequence;
  out["chain_head"] = ToHex(report.chain_head);
  out["checkpoints_seen"] = report.checkpoints_seen;
  out["checkpoints_verified"] = report.checkpoints_verified;
  out["signatures_checked"] = report.signatures_checked;
  out["public_key"] = outcome.key_path.empty() ? ordered_json(nullptr) : ordered_json(outcome.key_path);
  out["state_digest"] = outcome.state_digest_hex;
  out["live_state_equal"] = outcome.live.equal ? ordered_json(*outcome.live.equal) : ordered_json(nullptr);
  ordered_json differences = ordered_json::array();
  for (const replay::StateDifference& difference : outcome.live.differences) {
    differences.push_back({{"projector", difference.projector},
                           {"key", difference.key},
                           {"live", difference.live},
                           {"rebuilt", difference.rebuilt}});
  }
  out["state_differences"] = std::move(differences);
  out["first_bad_sequence"] =
      report.first_bad_sequence ? ordered_json(*report.first_bad_sequence) : ordered_json(nullptr);
  out["problem"] = Problem(outcome);
  out["out"] = outcome.out_dir.empty() ? ordered_json(nullptr) : ordered_json(outcome.out_dir);
  out["seconds"] = outcome.seconds;
  return out;
}

void PrintCheckpointsLine(const ReplayOutcome& outcome) {
  const replay::ReplayReport& report = outcome.report;
  const auto seen = static_cast<unsigned long long>(report.checkpoints_seen);
  const auto verified = static_cast<unsigned long long>(report.checkpoints_verified);
  if (report.checkpoints_seen == 0) {
    std::printf("  checkpoints: no checkpoints in the history replayed, so no signatures to check\n");
  } else if (report.signatures_checked) {
    std::printf("  checkpoints: %llu seen, %llu verified (signatures checked with %s)\n", seen, verified,
                outcome.key_path.c_str());
  } else {
    std::printf(
        "  checkpoints: %llu seen, %llu with matching chain head and digests; "
        "signatures NOT checked: %s\n",
        seen, verified, kNoKeyHint);
  }
}

void PrintReplayText(const ReplayOutcome& outcome) {
  const replay::ReplayReport& report = outcome.report;
  std::printf("replay %s: %llu events to sequence %llu, chain head %s\n", Headline(outcome.verdict),
              static_cast<unsigned long long>(report.events_read),
              static_cast<unsigned long long>(report.last_sequence), ToHex(report.chain_head).c_str());
  PrintCheckpointsLine(outcome);
  if (outcome.live.equal) {
    std::printf("  rebuilt state %s the live store\n", *outcome.live.equal ? "equals" : "DIFFERS FROM");
  }
  for (const replay::StateDifference& difference : outcome.live.differences) {
    std::printf("  projector %s: first differing key %s: live %s, rebuilt %s\n", difference.projector.c_str(),
                difference.key.c_str(), difference.live.c_str(), difference.rebuilt.c_str());
  }
  if (!report.ok()) {
    std::printf("  first bad sequence %llu: %s\n",
                static_cast<unsigned long long>(*report.first_bad_sequence), report.problem.c_str());
  }
  if (!outcome.out_dir.empty()) std::printf("  projections rebuilt in %s\n", outcome.out_dir.c_str());
}

}  // namespace

namespace {

// The live store (--data): the source for --source rocksdb, and what a full replay must reproduce. Null when
// the folder holds no ledger, or when it is damaged and the history comes from Kafka (rebuilding a damaged
// store from Kafka is the recovery itself: the replay goes on without the comparison, with a warning).
// Returns the exit code to stop with (printed), or kExitOk to go on.
int OpenLiveForReplay(const ReplayArgs& args, std::unique_ptr<Store>* live) {
  Result<std::unique_ptr<Store>> opened_live = OpenLiveStore(args.data_dir);
  if (opened_live.ok()) {
    *live = std::move(opened_live).value();
  } else if (args.source == "kafka" && opened_live.status().code() == StatusCode::kCorruption) {
    std::fprintf(stderr, "ledger: warning: the live store is not compared (%s)\n",
                 opened_live.status().message().c_str());
  } else {
    return Fail(ExitCodeFor(opened_live.status()), opened_live.status().ToString());
  }
  if (!*live && args.source == "rocksdb") return Fail(kExitBadInput, "no ledger data in " + args.data_dir);
  return kExitOk;
}

// Where the history is read from: the live store, or ledger.events through `kafka` (kept alive with it).
struct History {
  replay::EventSource source;
  std::unique_ptr<replay::KafkaEventSource> kafka;
};

// Returns the exit code to stop with (printed), or kExitOk to go on.
int OpenHistory(const ReplayArgs& args, const Store* live, History* history) {
  if (args.source == "rocksdb") {
    history->source = replay::StoreSource(*live);
    return kExitOk;
  }
  if (args.brokers.empty()) return Fail(kExitBadInput, "--source kafka needs --brokers");
  // The data folder's TLS and SASL settings, when it has a ledger.toml.
  Result<LedgerConfig> config = LoadConfig(args.data_dir + "/ledger.toml");
  if (!config.ok()) return Fail(kExitBadInput, config.status().message());
  const Status secured = UseKafkaSecurity(*config, args.data_dir);
  if (!secured.ok()) return Fail(kExitBadInput, secured.message());
  Result<std::unique_ptr<replay::KafkaEventSource>> opened =
      replay::KafkaEventSource::Open(args.brokers, args.partition);
  if (!opened.ok()) return Fail(kExitFailure, opened.status().ToString());
  history->kafka = std::move(opened).value();
  history->source = history->kafka->source();
  return kExitOk;
}

// The last sequence of the live store (0 when unknown): what progress is a percentage of.
uint64_t LiveLastSequence(const Store* live) {
  if (live == nullptr) return 0;
  Result<std::optional<std::pair<uint64_t, std::string>>> last = live->LastEvent();
  return last.ok() && last->has_value() ? (*last)->first : 0;
}

// --out, else a fresh temporary folder. Errors: IoError.
Status ChooseTarget(const ReplayArgs& args, ReplayTarget* target) {
  target->dir = args.out;
  if (!target->dir.empty()) return Status::Ok();
  Result<std::string> made = MakeTempDir("ledger-replay");
  if (!made.ok()) return made.status();
  target->dir = *made;
  target->temporary = true;
  return Status::Ok();
}

// The replay's options from the arguments. Errors: InvalidArgument with the message to print.
Result<replay::ReplayOptions> ReplayOptionsOf(const ReplayArgs& args) {
  replay::ReplayOptions options;
  options.to_sequence = args.to_sequence;
  if (!args.as_of.empty()) {
    Result<int64_t> as_of = ParseIso8601(args.as_of);
    if (!as_of.ok()) return Status::InvalidArgument("--as-of: " + as_of.status().message());
    options.as_of_ns = *as_of;
  }
  return options;
}

int RunReplay(const ReplayArgs& args) {
  Result<replay::ReplayOptions> options = ReplayOptionsOf(args);
  if (!options.ok()) return Fail(kExitBadInput, options.status().message());
  Result<TrustAnchor> anchor = LoadTrustAnchor(args.pubkey, args.data_dir);
  if (!anchor.ok()) return Fail(kExitBadInput, anchor.status().message());
  options->verifier = anchor->verifier.get();
  std::unique_ptr<Store> live;
  if (const int code = OpenLiveForReplay(args, &live); code != kExitOk) return code;
  const uint64_t total = LiveLastSequence(live.get());
  History history;
  if (const int code = OpenHistory(args, live.get(), &history); code != kExitOk) return code;
  const bool show_progress = isatty(STDERR_FILENO) != 0;
  const auto started = std::chrono::steady_clock::now();
  if (show_progress) options->progress = ProgressPrinter("replay", started, total);
  ReplayTarget target;
  const Status chosen = ChooseTarget(args, &target);
  if (!chosen.ok()) return Fail(kExitFailure, chosen.message());
  Result<replay::ReplayReport> report = ReplayInto(history.source, target.dir, *options, &target.store);
  if (show_progress) std::fputc('\n', stderr);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // The history could not be read (or the target not written): nothing is known about it.
  if (!report.ok()) return Fail(ExitCodeFor(report.status()), report.status().ToString());
  Result<Digest> rebuilt_digest = replay::StateDigest(*target.store);
  if (!rebuilt_digest.ok()) return Fail(kExitFailure, rebuilt_digest.status().ToString());
  // A full replay must reproduce the live store byte for byte.
  LiveComparison live_comparison;
  const bool full = args.as_of.empty() && args.to_sequence == UINT64_MAX;
  if (full && live && report->ok()) {
    Result<LiveComparison> compared = CompareWithLive(*live, *target.store, *rebuilt_digest);
    if (!compared.ok()) return Fail(kExitFailure, compared.status().ToString());
    live_comparison = std::move(compared).value();
  }
  const ReplayOutcome outcome{args,
                              *report,
                              live_comparison,
                              Judge(*report, live_comparison),
                              anchor->path,
                              ToHex(*rebuilt_digest),
                              target.temporary ? "" : target.dir,
                              seconds};
  if (args.json) {
    std::printf("%s\n", ReplayJson(outcome).dump().c_str());
  } else {
    PrintReplayText(outcome);
  }
  return ExitCodeOf(outcome.verdict);
}

}  // namespace

Runner AddReplay(CLI::App& app) {
  auto args = std::make_shared<ReplayArgs>();
  app.add_option("--data", args->data_dir,
                 "the ledger's data folder (the live store compared after a full replay)")
      ->capture_default_str();
  app.add_option("--source", args->source, "where history comes from")
      ->check(CLI::IsMember({"rocksdb", "kafka"}))
      ->capture_default_str();
  app.add_option("--brokers", args->brokers, "with --source kafka: bootstrap servers");
  app.add_option("--partition", args->partition, "with --source kafka: the shard's partition")
      ->capture_default_str();
  auto* to_seq =
      app.add_option("--to-seq", args->to_sequence, "stop after this sequence")->check(SequenceNumber());
  app.add_option("--as-of", args->as_of, "stop before the first event recorded after this time (ISO 8601)")
      ->excludes(to_seq);
  app.add_option("--pubkey", args->pubkey,
                 "the ledger's public key (PEM): checks every checkpoint signature "
                 "(default: [audit] public_key in ledger.toml)");
  app.add_option("--out", args->out,
                 "rebuild the projections into this new folder (default: a temporary one)");
  app.add_flag("--json", args->json, "JSON report");
  return [args]() { return RunReplay(*args); };
}

}  // namespace ledger::cli
