#include "replay/replay.h"

#include <cstring>

#include "events/event.h"
#include "projections/projector.h"
#include "storage/kv.h"

namespace ledger::replay {
namespace {

// Bounds the overlay of one rebuild commit, so memory stays flat for any history length.
constexpr size_t kRebuildGroupEventsMax = 8192;
constexpr uint64_t kProgressEveryEvents = 100'000;

bool SameBytes(const flatbuffers::Vector<uint8_t>* bytes, std::span<const uint8_t> expected) {
  return bytes != nullptr && bytes->size() == expected.size() &&
         std::memcmp(bytes->data(), expected.data(), expected.size()) == 0;
}

// The rebuilt state's digest of each projection, in the format a checkpoint signed. Errors: IoError,
// Corruption (a format this version does not know).
Result<std::vector<NamedDigest>> RebuiltDigests(const Store& target,
                                                const std::vector<std::unique_ptr<Projector>>& projectors,
                                                uint16_t digest_format) {
  if (digest_format == kDigestFormatOrdered) return ProjectionDigests(target, projectors);
  if (digest_format != kDigestFormatSet) {
    return Status::Corruption("checkpoint digest format " + std::to_string(digest_format) + " is unknown");
  }
  Result<std::vector<SetDigest>> sets = ProjectionSetDigests(target, projectors);
  if (!sets.ok()) return sets.status();
  std::vector<NamedDigest> digests;
  for (size_t i = 0; i < projectors.size(); ++i) {
    digests.push_back(NamedDigest{std::string(projectors[i]->name()), (*sets)[i].Summary()});
  }
  return digests;
}

}  // namespace

EventSource StoreSource(const Store& store) {
  return [&store](const std::function<bool(uint64_t, std::string_view)>& fn) {
    return store.ScanEvents(0, UINT64_MAX, fn);
  };
}

namespace {

// One replay: the report so far, and (with a target) the projections being rebuilt and the events and state
// not yet committed to the target.
class Replayer {
 public:
  Replayer(Store* target, const ReplayOptions& options) : target_(target), options_(options) {
    report_.chain_head = kGenesisHash;
    report_.signatures_checked = options.verifier != nullptr;
  }

  // Prepares the target. Errors: InvalidArgument (the target is not empty), IoError.
  Status Begin() {
    if (target_ == nullptr) return Status::Ok();
    overlay_.emplace(target_->state());
    projections_.emplace(MakeLedgerProjectors());
    LEDGER_RETURN_IF_ERROR(projections_->Load(target_->state()));
    if (projections_->LastApplied() != 0) return Status::InvalidArgument("replay target is not empty");
    return Status::Ok();
  }

  // Verifies one record the source keeps at `key_sequence` and folds it into the target. False stops the
  // scan: the end was reached, verification failed (in the report), or the target could not be written.
  bool Visit(uint64_t key_sequence, std::string_view record);

  // Commits what is pending. Errors: IoError from the target.
  Result<ReplayReport> Finish() {
    LEDGER_RETURN_IF_ERROR(io_status_);
    Flush();
    LEDGER_RETURN_IF_ERROR(io_status_);
    return report_;
  }

  const Status& io_status() const { return io_status_; }

 private:
  // Checks the record's place, hashes and envelope. Returns the decoded event, or nullopt after Fail.
  std::optional<DecodedEvent> VerifyChain(uint64_t expected, uint64_t key_sequence, std::string_view record);
  // Checks a checkpoint event against the replayed history just before it.
  bool CheckCheckpoint(uint64_t sequence, const fb::CheckpointRecorded& checkpoint);
  bool CheckSignature(uint64_t sequence, const fb::CheckpointRecorded& checkpoint,
                      const std::vector<NamedDigest>& signed_digests);
  bool CheckRebuiltDigests(uint64_t sequence, const fb::CheckpointRecorded& checkpoint,
                           const std::vector<NamedDigest>& signed_digests);
  // Folds a verified event into the rebuilt projections, committing a full group.
  bool Rebuild(uint64_t sequence, const fb::EventBody& body, std::string_view record);

  void Flush() {
    if (target_ == nullptr || pending_ == 0 || !io_status_.ok()) return;
    CommitBatch batch;
    batch.state = &*overlay_;
    batch.events = std::move(pending_events_);
    io_status_ = target_->Commit(batch);
    pending_events_.clear();
    overlay_->Clear();
    pending_ = 0;
  }

  bool Fail(uint64_t sequence, std::string problem) {
    report_.first_bad_sequence = sequence;
    report_.problem = std::move(problem);
    return false;
  }

  Store* target_;
  const ReplayOptions& options_;
  ReplayReport report_;
  std::optional<Overlay> overlay_;
  std::optional<ProjectionSet> projections_;
  size_t pending_ = 0;
  // The verified events themselves go into the target too, so a rebuilt store is a whole ledger store (a
  // shard restored from Kafka can serve on), not only its projections.
  std::vector<std::pair<uint64_t, std::string>> pending_events_;
  Status io_status_;
};

bool Replayer::CheckCheckpoint(uint64_t sequence, const fb::CheckpointRecorded& checkpoint) {
  report_.checkpoints_seen += 1;
  if (checkpoint.sequence() != report_.last_sequence) {
    return Fail(sequence, "checkpoint covers sequence " + std::to_string(checkpoint.sequence()) +
                              " but follows " + std::to_string(report_.last_sequence));
  }
  if (!SameBytes(checkpoint.chain_head(), report_.chain_head)) {
    return Fail(sequence, "checkpoint's chain head differs from the replayed chain at " +
                              std::to_string(report_.last_sequence));
  }
  std::vector<NamedDigest> signed_digests;
  if (checkpoint.digests() != nullptr) {
    for (const fb::ProjectionDigest* digest : *checkpoint.digests()) {
      NamedDigest named;
      named.name = digest->projector() == nullptr ? "" : digest->projector()->str();
      if (digest->digest() == nullptr || digest->digest()->size() != 32)
        return Fail(sequence, "checkpoint digest is not 32 bytes");
      std::memcpy(named.digest.data(), digest->digest()->data(), 32);
      signed_digests.push_back(std::move(named));
    }
  }
  if (!CheckSignature(sequence, checkpoint, signed_digests)) return false;
  if (!CheckRebuiltDigests(sequence, checkpoint, signed_digests)) return false;
  report_.checkpoints_verified += 1;
  return true;
}

bool Replayer::CheckSignature(uint64_t sequence, const fb::CheckpointRecorded& checkpoint,
                              const std::vector<NamedDigest>& signed_digests) {
  if (options_.verifier == nullptr) return true;
  if (!SameBytes(checkpoint.public_key_id(), options_.verifier->public_key_id())) {
    return Fail(sequence, "bad signature: checkpoint signed by another key");
  }
  const std::string message =
      CheckpointMessageFor(checkpoint.digest_format(), checkpoint.shard(), checkpoint.sequence(),
                           report_.chain_head, signed_digests, checkpoint.signed_at_ns());
  if (checkpoint.signature() == nullptr ||
      !options_.verifier->Verify(message, std::span<const uint8_t>(checkpoint.signature()->data(),
                                                                   checkpoint.signature()->size()))) {
    return Fail(sequence, "bad signature on checkpoint");
  }
  return true;
}

bool Replayer::CheckRebuiltDigests(uint64_t sequence, const fb::CheckpointRecorded& checkpoint,
                                   const std::vector<NamedDigest>& signed_digests) {
  if (target_ == nullptr) return true;
  Flush();
  if (!io_status_.ok()) return false;
  Result<std::vector<NamedDigest>> rebuilt =
      RebuiltDigests(*target_, projections_->projectors(), checkpoint.digest_format());
  if (!rebuilt.ok()) {
    io_status_ = rebuilt.status();
    return false;
  }
  if (rebuilt->size() != signed_digests.size())
    return Fail(sequence, "checkpoint names another set of projections");
  for (size_t i = 0; i < rebuilt->size(); ++i) {
    if ((*rebuilt)[i].name != signed_digests[i].name || (*rebuilt)[i].digest != signed_digests[i].digest) {
      return Fail(sequence, "digest differs: projection '" + (*rebuilt)[i].name + "' rebuilt to sequence " +
                                std::to_string(report_.last_sequence) + " is not what the checkpoint signed");
    }
  }
  return true;
}

std::optional<DecodedEvent> Replayer::VerifyChain(uint64_t expected, uint64_t key_sequence,
                                                  std::string_view record) {
  if (key_sequence != expected) {
    Fail(expected, key_sequence > expected ? "gap: sequence " + std::to_string(expected) + " is missing"
                                           : "sequence " + std::to_string(key_sequence) + " out of order");
    return std::nullopt;
  }
  Result<DecodedEvent> decoded = DecodeEventRecord(record);
  if (!decoded.ok()) {
    Fail(expected, decoded.status().message());
    return std::nullopt;
  }
  const fb::EventBody& body = *decoded->body;
  if (body.sequence() != expected) {
    Fail(expected, "event says sequence " + std::to_string(body.sequence()) + " (reordered)");
  } else if (decoded->prev_hash != report_.chain_head) {
    Fail(expected, "prev_hash does not match the previous event's hash");
  } else if (ChainHash(report_.chain_head, decoded->body_bytes) != decoded->hash) {
    Fail(expected, "hash mismatch");
  } else if (EncodeEnvelope(decoded->body_bytes, decoded->prev_hash, decoded->hash) != record) {
    Fail(expected, "record altered outside its hashed body");
  } else {
    return std::move(decoded).value();
  }
  return std::nullopt;
}

bool Replayer::Rebuild(uint64_t sequence, const fb::EventBody& body, std::string_view record) {
  if (!projections_) return true;
  const Status applied = projections_->Apply(body, *overlay_);
  if (!applied.ok()) return Fail(sequence, applied.message());
  pending_events_.emplace_back(sequence, std::string(record));
  if (++pending_ >= kRebuildGroupEventsMax) {
    Flush();
    if (!io_status_.ok()) return false;
  }
  return true;
}

bool Replayer::Visit(uint64_t key_sequence, std::string_view record) {
  const uint64_t expected = report_.last_sequence + 1;
  if (expected > options_.to_sequence) return false;
  std::optional<DecodedEvent> decoded = VerifyChain(expected, key_sequence, record);
  if (!decoded) return false;
  const fb::EventBody& body = *decoded->body;
  if (options_.as_of_ns && body.recorded_at_ns() > *options_.as_of_ns) return false;
  if (body.payload_type() == fb::Payload::CheckpointRecorded &&
      !CheckCheckpoint(expected, *body.payload_as_CheckpointRecorded())) {
    return false;
  }
  // A forged but re-chained event must be reported, never trusted: its postings must balance per unit
  // before any projector folds them (the projectors assert it, as the write side guarantees it).
  if (!PostingsBalanced(body)) return Fail(expected, "postings malformed or not summing to zero per unit");
  if (!Rebuild(expected, body, record)) return false;
  report_.events_read += 1;
  report_.last_sequence = expected;
  report_.chain_head = decoded->hash;
  if (options_.progress && report_.events_read % kProgressEveryEvents == 0)
    options_.progress(report_.events_read);
  return true;
}

}  // namespace

Result<ReplayReport> Replay(const EventSource& source, Store* target, const ReplayOptions& options) {
  Replayer replayer(target, options);
  LEDGER_RETURN_IF_ERROR(replayer.Begin());
  LEDGER_RETURN_IF_ERROR(source([&replayer](uint64_t key_sequence, std::string_view record) {
    return replayer.Visit(key_sequence, record);
  }));
  return replayer.Finish();
}

Result<ReplayReport> Replay(const Store& source, Store* target, uint64_t to_sequence) {
  ReplayOptions options;
  options.to_sequence = to_sequence;
  return Replay(StoreSource(source), target, options);
}

Result<Digest> StateDigest(const Store& store) { return DigestOfPrefixes(store, {""}); }

}  // namespace ledger::replay
