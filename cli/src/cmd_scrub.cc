// `ledger scrub`: proves the live state from the events. It compares every stored projection record with the
// set digests the ledger's commits kept, rebuilds the projections from the verified history into a temporary
// store and names the first differing key of every projection that differs. A store that something other than
// the ledger wrote (which the ledger refuses to open) is accepted again only when everything agrees.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli_common.h"
#include "projections/projector.h"
#include "replay/replay.h"
#include "storage/store.h"

namespace ledger::cli {

Result<replay::ReplayReport> ReplayInto(const replay::EventSource& source, const std::string& target_dir,
                                        const replay::ReplayOptions& options, std::unique_ptr<Store>* target);

namespace {

struct ScrubFindings {
  WriterCheck writers;
  // The stored projections are as of `folded_through`; events after it (a crash before their fold) are
  // folded at the next open, and the comparison stops there.
  uint64_t folded_through = 0;
  uint64_t last_event = 0;
  std::vector<std::string>
      digest_mismatches;  // projectors whose records do not add up to their stored digest
  replay::ReplayReport history;
  std::vector<replay::StateDifference> differences;
  bool verified() const { return digest_mismatches.empty() && history.ok() && differences.empty(); }
};

// Projectors whose stored records differ from the set digest kept in `meta`. Errors: IoError, Corruption.
Result<std::vector<std::string>> DigestMismatches(const Store& store) {
  const std::vector<std::unique_ptr<Projector>> projectors = MakeLedgerProjectors();
  Result<std::vector<SetDigest>> scanned = ProjectionSetDigests(store, projectors);
  if (!scanned.ok()) return scanned.status();
  std::vector<std::string> mismatches;
  for (size_t i = 0; i < projectors.size(); ++i) {
    Result<std::optional<std::string>> kept = store.GetMeta(SetDigestMetaKey(projectors[i]->name()));
    if (!kept.ok()) return kept.status();
    SetDigest expected;  // a store that never committed holds the empty set
    if (kept->has_value()) {
      Result<SetDigest> parsed = SetDigest::Parse(**kept);
      if (!parsed.ok()) return parsed.status();
      expected = *parsed;
    }
    if (!(expected == (*scanned)[i])) mismatches.emplace_back(projectors[i]->name());
  }
  return mismatches;
}

// Rebuilds the projections from `live`'s events, up to the sequence its records are folded through, in a
// temporary folder and compares. Errors: IoError, Corruption.
Status CompareWithEvents(const Store& live, const SignatureVerifier* verifier, ScrubFindings* findings) {
  ProjectionSet stored(MakeLedgerProjectors());
  LEDGER_RETURN_IF_ERROR(stored.Load(live.state()));
  findings->folded_through = stored.LastApplied();
  Result<std::optional<std::pair<uint64_t, std::string>>> last = live.LastEvent();
  if (!last.ok()) return last.status();
  findings->last_event = last->has_value() ? (*last)->first : 0;
  std::string pattern = (std::filesystem::temp_directory_path() / "ledger-scrub-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr)
    return Status::IoError("cannot create a temporary folder for the rebuild");
  struct Remove {
    std::string path;
    ~Remove() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  } remove{pattern};
  replay::ReplayOptions options;
  options.verifier = verifier;
  if (findings->folded_through < findings->last_event) options.to_sequence = findings->folded_through;
  std::unique_ptr<Store> rebuilt;
  Result<replay::ReplayReport> report =
      ReplayInto(replay::StoreSource(live), pattern + "/state", options, &rebuilt);
  if (!report.ok()) return report.status();
  findings->history = *report;
  if (!report->ok()) return Status::Ok();  // a history that does not verify proves nothing about the state
  Result<std::vector<replay::StateDifference>> differences = replay::FirstDifferences(live, *rebuilt);
  if (!differences.ok()) return differences.status();
  findings->differences = std::move(*differences);
  return Status::Ok();
}

void Print(const ScrubFindings& findings, bool adopted, bool json) {
  if (json) {
    nlohmann::ordered_json out;
    out["verified"] = findings.verified();
    out["foreign_writes"] = findings.writers.foreign_writes();
    out["adopted"] = adopted;
    out["digest_mismatches"] = findings.digest_mismatches;
    out["events_read"] = findings.history.events_read;
    out["folded_through"] = findings.folded_through;
    out["last_event"] = findings.last_event;
    out["first_bad_sequence"] = findings.history.first_bad_sequence
                                    ? nlohmann::ordered_json(*findings.history.first_bad_sequence)
                                    : nlohmann::ordered_json(nullptr);
    out["problem"] = findings.history.problem;
    out["state_differences"] = nlohmann::ordered_json::array();
    for (const replay::StateDifference& difference : findings.differences) {
      out["state_differences"].push_back({{"projector", difference.projector},
                                          {"key", difference.key},
                                          {"live", difference.live},
                                          {"rebuilt", difference.rebuilt}});
    }
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("scrub %s: %llu events, state %s\n", findings.verified() ? "VERIFIED" : "FAILED",
              static_cast<unsigned long long>(findings.history.events_read),
              findings.verified() ? "equals what the events prove" : "does not verify");
  if (findings.folded_through < findings.last_event) {
    std::printf(
        "  projections folded through sequence %llu of %llu (a stop before the fold): compared up to "
        "there; the next open folds the rest\n",
        static_cast<unsigned long long>(findings.folded_through),
        static_cast<unsigned long long>(findings.last_event));
  }
  if (findings.writers.foreign_writes()) {
    std::printf("  the store was written outside the ledger (RocksDB sequence %llu, expected %llu)%s\n",
                static_cast<unsigned long long>(findings.writers.actual),
                static_cast<unsigned long long>(*findings.writers.expected),
                adopted ? ": accepted again, nothing differs" : "");
  }
  for (const std::string& projector : findings.digest_mismatches) {
    std::printf("  projector %s: stored records do not match the digest the ledger's commits kept\n",
                projector.c_str());
  }
  if (findings.history.first_bad_sequence) {
    std::printf("  history: first bad sequence %llu: %s\n",
                static_cast<unsigned long long>(*findings.history.first_bad_sequence),
                findings.history.problem.c_str());
  }
  for (const replay::StateDifference& difference : findings.differences) {
    std::printf("  projector %s: first differing key %s: live %s, rebuilt %s\n", difference.projector.c_str(),
                difference.key.c_str(), difference.live.c_str(), difference.rebuilt.c_str());
  }
}

}  // namespace

std::string DescribeStateDifferences(const Store& live) {
  ScrubFindings findings;
  const Status compared = CompareWithEvents(live, nullptr, &findings);
  if (!compared.ok()) return "could not rebuild from the events: " + compared.message();
  if (!findings.history.ok())
    return "the history does not verify at sequence " + std::to_string(*findings.history.first_bad_sequence);
  std::string text;
  for (const replay::StateDifference& difference : findings.differences) {
    text += (text.empty() ? "" : "; ") + difference.projector + ": first differing key " + difference.key +
            ": stored " + difference.live + ", from the events " + difference.rebuilt;
  }
  return text.empty() ? "the records equal what the events prove (the stored digests were changed)" : text;
}

Runner AddScrub(CLI::App& app) {
  struct Args {
    std::string data_dir = "./ledger-data";
    std::string pubkey;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("--data", args->data_dir, "data folder")->capture_default_str();
  app.add_option("--pubkey", args->pubkey, "check checkpoint signatures with this Ed25519 public key (PEM)");
  app.add_flag("--json", args->json, "one JSON object");
  return [args]() {
    std::unique_ptr<SignatureVerifier> verifier;
    if (!args->pubkey.empty()) {
      Result<std::unique_ptr<SignatureVerifier>> loaded = SignatureVerifier::FromPemFile(args->pubkey);
      if (!loaded.ok()) return Fail(kExitBadInput, loaded.status().message());
      verifier = std::move(loaded).value();
    }
    if (!std::filesystem::exists(args->data_dir + "/CURRENT"))
      return Fail(kExitBadInput, "no ledger data in " + args->data_dir);
    StoreOptions store_options;
    store_options.create_if_missing = false;
    Result<std::unique_ptr<Store>> store = Store::Open(args->data_dir, store_options);
    if (!store.ok()) return Fail(ExitCodeFor(store.status()), store.status().ToString());
    ScrubFindings findings;
    Result<WriterCheck> writers = (*store)->CheckWriters();
    if (!writers.ok()) return Fail(kExitFailure, writers.status().ToString());
    findings.writers = *writers;
    Result<std::vector<std::string>> mismatches = DigestMismatches(**store);
    if (!mismatches.ok()) return Fail(kExitFailure, mismatches.status().ToString());
    findings.digest_mismatches = std::move(*mismatches);
    const Status compared = CompareWithEvents(**store, verifier.get(), &findings);
    if (!compared.ok()) return Fail(kExitFailure, compared.ToString());
    bool adopted = false;
    if (findings.verified() && findings.writers.foreign_writes()) {
      const Status adopt = (*store)->AdoptWriters();
      if (!adopt.ok()) return Fail(kExitFailure, adopt.ToString());
      adopted = true;
    }
    Print(findings, adopted, args->json);
    return findings.verified() ? kExitOk : kExitNotVerified;
  };
}

}  // namespace ledger::cli
