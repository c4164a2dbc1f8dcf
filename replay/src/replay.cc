#include "replay/replay.h"

#include <cstring>

#include "events/event.h"
#include "storage/kv.h"
#include "projections/projector.h"

namespace ledger::replay {
namespace {

// Bounds the overlay of one rebuild commit, so memory stays flat for any history length.
constexpr size_t kRebuildGroupEventsMax = 8192;
constexpr uint64_t kProgressEveryEvents = 100'000;

bool SameBytes(const flatbuffers::Vector<uint8_t>* bytes, std::span<const uint8_t> expected) {
  return bytes != nullptr && bytes->size() == expected.size() && std::memcmp(bytes->data(), expected.data(), expected.size()) == 0;
}

// The rebuilt state's digest of each projection, in the format a checkpoint signed. Errors: IoError,
// Corruption (a format this version does not know).
Result<std::vector<NamedDigest>> RebuiltDigests(const Store& target, const std::vector<std::unique_ptr<Projector>>& projectors,
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
  return [&store](const std::function<bool(uint64_t, std::string_view)>& fn) { return store.ScanEvents(0, UINT64_MAX, fn); };
}

Result<ReplayReport> Replay(const EventSource& source, Store* target, const ReplayOptions& options) {
  ReplayReport report;
  report.chain_head = kGenesisHash;
  report.signatures_checked = options.verifier != nullptr;
  std::optional<Overlay> overlay;
  std::optional<ProjectionSet> projections;
  if (target != nullptr) {
    overlay.emplace(target->state());
    projections.emplace(MakeLedgerProjectors());
    LEDGER_RETURN_IF_ERROR(projections->Load(target->state()));
    if (projections->LastApplied() != 0) return Status::InvalidArgument("replay target is not empty");
  }
  size_t pending = 0;
  // The verified events themselves go into the target too, so a rebuilt store is a whole ledger store (a shard
  // restored from Kafka can serve on), not only its projections.
  std::vector<std::pair<uint64_t, std::string>> pending_events;
  Status io_status;
  auto flush = [&]() {
    if (target == nullptr || pending == 0 || !io_status.ok()) return;
    CommitBatch batch;
    batch.state = &*overlay;
    batch.events = std::move(pending_events);
    io_status = target->Commit(batch);
    pending_events.clear();
    overlay->Clear();
    pending = 0;
  };
  auto fail = [&](uint64_t sequence, std::string problem) {
    report.first_bad_sequence = sequence;
    report.problem = std::move(problem);
    return false;
  };
  // Checks a checkpoint event against the replayed history just before it.
  auto check_checkpoint = [&](uint64_t sequence, const fb::CheckpointRecorded& checkpoint) {
    report.checkpoints_seen += 1;
    if (checkpoint.sequence() != report.last_sequence) {
      return fail(sequence, "checkpoint covers sequence " + std::to_string(checkpoint.sequence()) +
                                " but follows " + std::to_string(report.last_sequence));
    }
    if (!SameBytes(checkpoint.chain_head(), report.chain_head)) {
      return fail(sequence, "checkpoint's chain head differs from the replayed chain at " + std::to_string(report.last_sequence));
    }
    std::vector<NamedDigest> signed_digests;
    if (checkpoint.digests() != nullptr) {
      for (const fb::ProjectionDigest* digest : *checkpoint.digests()) {
        NamedDigest named;
        named.name = digest->projector() == nullptr ? "" : digest->projector()->str();
        if (digest->digest() == nullptr || digest->digest()->size() != 32) return fail(sequence, "checkpoint digest is not 32 bytes");
        std::memcpy(named.digest.data(), digest->digest()->data(), 32);
        signed_digests.push_back(std::move(named));
      }
    }
    if (options.verifier != nullptr) {
      if (!SameBytes(checkpoint.public_key_id(), options.verifier->public_key_id())) {
        return fail(sequence, "bad signature: checkpoint signed by another key");
      }
      const std::string message = CheckpointMessageFor(checkpoint.digest_format(), checkpoint.shard(), checkpoint.sequence(),
                                                       report.chain_head, signed_digests, checkpoint.signed_at_ns());
      if (checkpoint.signature() == nullptr ||
          !options.verifier->Verify(message, std::span<const uint8_t>(checkpoint.signature()->data(), checkpoint.signature()->size()))) {
        return fail(sequence, "bad signature on checkpoint");
      }
    }
    if (target != nullptr) {
      flush();
      if (!io_status.ok()) return false;
      Result<std::vector<NamedDigest>> rebuilt = RebuiltDigests(*target, projections->projectors(), checkpoint.digest_format());
      if (!rebuilt.ok()) {
        io_status = rebuilt.status();
        return false;
      }
      if (rebuilt->size() != signed_digests.size()) return fail(sequence, "checkpoint names another set of projections");
      for (size_t i = 0; i < rebuilt->size(); ++i) {
        if ((*rebuilt)[i].name != signed_digests[i].name || (*rebuilt)[i].digest != signed_digests[i].digest) {
          return fail(sequence, "digest differs: projection '" + (*rebuilt)[i].name + "' rebuilt to sequence " +
                                    std::to_string(report.last_sequence) + " is not what the checkpoint signed");
        }
      }
    }
    report.checkpoints_verified += 1;
    return true;
  };

  const Status scan = source([&](uint64_t key_sequence, std::string_view record) {
    const uint64_t expected = report.last_sequence + 1;
    if (expected > options.to_sequence) return false;
    if (key_sequence != expected) {
      return fail(expected, key_sequence > expected ? "gap: sequence " + std::to_string(expected) + " is missing"
                                                    : "sequence " + std::to_string(key_sequence) + " out of order");
    }
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    if (!decoded.ok()) return fail(expected, decoded.status().message());
    const fb::EventBody& body = *decoded->body;
    if (body.sequence() != expected) {
      return fail(expected, "event says sequence " + std::to_string(body.sequence()) + " (reordered)");
    }
    if (decoded->prev_hash != report.chain_head) return fail(expected, "prev_hash does not match the previous event's hash");
    if (ChainHash(report.chain_head, decoded->body_bytes) != decoded->hash) return fail(expected, "hash mismatch");
    if (EncodeEnvelope(decoded->body_bytes, decoded->prev_hash, decoded->hash) != record) {
      return fail(expected, "record altered outside its hashed body");
    }
    if (options.as_of_ns && body.recorded_at_ns() > *options.as_of_ns) return false;
    if (body.payload_type() == fb::Payload::CheckpointRecorded &&
        !check_checkpoint(expected, *body.payload_as_CheckpointRecorded())) {
      return false;
    }
    // A forged but re-chained event must be reported, never trusted: its postings must balance per unit
    // before any projector folds them (the projectors assert it, as the write side guarantees it).
    if (!PostingsBalanced(body)) return fail(expected, "postings malformed or not summing to zero per unit");
    if (projections) {
      const Status applied = projections->Apply(body, *overlay);
      if (!applied.ok()) return fail(expected, applied.message());
      pending_events.emplace_back(expected, std::string(record));
      if (++pending >= kRebuildGroupEventsMax) {
        flush();
        if (!io_status.ok()) return false;
      }
    }
    report.events_read += 1;
    report.last_sequence = expected;
    report.chain_head = decoded->hash;
    if (options.progress && report.events_read % kProgressEveryEvents == 0) options.progress(report.events_read);
    return true;
  });
  LEDGER_RETURN_IF_ERROR(scan);
  LEDGER_RETURN_IF_ERROR(io_status);
  flush();
  LEDGER_RETURN_IF_ERROR(io_status);
  return report;
}

Result<ReplayReport> Replay(const Store& source, Store* target, uint64_t to_sequence) {
  ReplayOptions options;
  options.to_sequence = to_sequence;
  return Replay(StoreSource(source), target, options);
}

Result<Digest> StateDigest(const Store& store) { return DigestOfPrefixes(store, {""}); }

}  // namespace ledger::replay
