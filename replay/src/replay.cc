#include "replay/replay.h"

#include "ledger/event.h"
#include "ledger/kv.h"
#include "projections/projector.h"

namespace ledger::replay {
namespace {

// Bounds the overlay of one rebuild commit, so memory stays flat for any history length.
constexpr size_t kRebuildGroupEventsMax = 8192;

void HashLengthPrefixed(Sha256& hasher, std::string_view bytes) {
  uint8_t length[8];
  uint64_t n = bytes.size();
  for (int i = 7; i >= 0; --i, n >>= 8) length[i] = static_cast<uint8_t>(n & 0xff);
  hasher.Update(std::span<const uint8_t>(length, 8));
  hasher.Update(bytes);
}

}  // namespace

Result<ReplayReport> Replay(const Store& source, Store* target, uint64_t to_sequence) {
  ReplayReport report;
  report.chain_head = kGenesisHash;
  std::optional<Overlay> overlay;
  std::optional<ProjectionSet> projections;
  if (target != nullptr) {
    overlay.emplace(target->state());
    projections.emplace(MakeLedgerProjectors());
    LEDGER_RETURN_IF_ERROR(projections->Load(target->state()));
    if (projections->LastApplied() != 0) return Status::InvalidArgument("replay target is not empty");
  }
  size_t pending = 0;
  Status commit_status;
  auto flush = [&]() {
    if (target == nullptr || pending == 0) return;
    CommitBatch batch;
    batch.state = &*overlay;
    commit_status = target->Commit(batch);
    overlay->Clear();
    pending = 0;
  };
  auto fail = [&](uint64_t sequence, std::string problem) {
    report.first_bad_sequence = sequence;
    report.problem = std::move(problem);
    return false;
  };
  Status scan = source.ScanEvents(0, to_sequence, [&](uint64_t key_sequence, std::string_view record) {
    const uint64_t expected = report.last_sequence + 1;
    if (key_sequence != expected) {
      return fail(expected, key_sequence > expected ? "gap: sequence " + std::to_string(expected) + " is missing"
                                                    : "sequence " + std::to_string(key_sequence) + " out of order");
    }
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    if (!decoded.ok()) return fail(expected, decoded.status().message());
    if (decoded->body->sequence() != expected) {
      return fail(expected, "event says sequence " + std::to_string(decoded->body->sequence()) + " (reordered)");
    }
    if (decoded->prev_hash != report.chain_head) return fail(expected, "prev_hash does not match the previous event's hash");
    if (ChainHash(report.chain_head, decoded->body_bytes) != decoded->hash) return fail(expected, "hash mismatch");
    if (projections) {
      const Status applied = projections->Apply(*decoded->body, *overlay);
      if (!applied.ok()) return fail(expected, applied.message());
      if (++pending >= kRebuildGroupEventsMax) {
        flush();
        if (!commit_status.ok()) return false;
      }
    }
    report.events_read += 1;
    report.last_sequence = expected;
    report.chain_head = decoded->hash;
    return true;
  });
  LEDGER_RETURN_IF_ERROR(scan);
  LEDGER_RETURN_IF_ERROR(commit_status);
  flush();
  LEDGER_RETURN_IF_ERROR(commit_status);
  return report;
}

Result<Digest> StateDigest(const Store& store) {
  Sha256 hasher;
  LEDGER_RETURN_IF_ERROR(store.ScanState("", [&](std::string_view key, std::string_view value) {
    HashLengthPrefixed(hasher, key);
    HashLengthPrefixed(hasher, value);
    return true;
  }));
  return hasher.Finish();
}

}  // namespace ledger::replay
