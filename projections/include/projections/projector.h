// Projectors fold events into views: (state, event) -> state. The same code runs inline in the ledger (in the
// WriteBatch of the events, with each projector's last applied sequence), in downstream consumers, and in
// replay; the same events in give byte-identical records out.
// Thread-safety: a ProjectionSet is used by one thread; projectors themselves hold no state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/set_digest.h"
#include "core/signing.h"
#include "core/status.h"
#include "schemas/events_generated.h"
#include "storage/kv.h"
#include "storage/store.h"

namespace ledger {

class Projector {
 public:
  virtual ~Projector() = default;
  // A stable name; keys::Applied(name) holds its last applied sequence.
  virtual std::string_view name() const = 0;
  // Folds `event` into the view: reads the projector's own records from `view` and writes the new ones.
  // Errors: Corruption when the event cannot follow the history (see FoldErrors); `view` is then unusable.
  virtual Status Apply(const fb::EventBody& event, KvWriter& view) const = 0;
  // The key prefixes this projector owns in the `state` column family (no two projectors share one).
  virtual std::vector<std::string> KeyPrefixes() const = 0;
};

// SHA-256 over the (key, value) pairs under `prefixes` in key order, each length-prefixed (8 bytes,
// big-endian). Depends only on the contents, never on RocksDB's file layout. Errors: IoError.
Result<Digest> DigestOfPrefixes(const Store& store, const std::vector<std::string>& prefixes);

// Digest of each projector's records: SHA-256 over (key, value) pairs, each length-prefixed, under the
// projector's prefixes in key order. Depends only on the contents, never on RocksDB's file layout.
// Errors: IoError.
Result<std::vector<NamedDigest>> ProjectionDigests(const Store& store,
                                                   const std::vector<std::unique_ptr<Projector>>& projectors);

// How a checkpoint's digests are made (CheckpointRecorded.digest_format).
inline constexpr uint16_t kDigestFormatOrdered = 1;  // ProjectionDigests: SHA-256 over records in key order
inline constexpr uint16_t kDigestFormatSet = 2;      // SHA-256 of each projector's SetDigest (Summary())

// The set digest of each projector's records, by a full scan of its prefixes. Errors: IoError.
Result<std::vector<SetDigest>> ProjectionSetDigests(
    const Store& store, const std::vector<std::unique_ptr<Projector>>& projectors);

// The `meta` key holding a projector's set digest, kept up to date by each commit.
std::string SetDigestMetaKey(std::string_view projector);

// The exact bytes a checkpoint of `digest_format` signs: CheckpointMessage, whose domain tag names the
// format.
std::string CheckpointMessageFor(uint16_t digest_format, uint32_t shard, uint64_t sequence,
                                 const Digest& chain_head, const std::vector<NamedDigest>& digests,
                                 int64_t signed_at_ns);

// The digests a checkpoint signed, in its order. Errors: InvalidArgument (a digest that is not 32 bytes).
Result<std::vector<NamedDigest>> SignedDigestsOf(const fb::CheckpointRecorded& checkpoint);

// Whether `key` signed `checkpoint` over `chain_head` (the hash of the event it covers) and its own digests.
// Errors: InvalidArgument "checkpoint signed by another key", "bad signature on checkpoint", or a malformed
// digest (SignedDigestsOf).
Status CheckCheckpointSignature(const fb::CheckpointRecorded& checkpoint, const Digest& chain_head,
                                const SignatureVerifier& key);

// Whether the event around `checkpoint` is the envelope the ledger writes (command id
// "checkpoint:<sequence>", no commands offset, its own shard): the signature covers the payload only, so a
// forged envelope (another command id or commands offset) must not be vouched for.
bool IsLedgerCheckpointEnvelope(const fb::EventBody& event, const fb::CheckpointRecorded& checkpoint);

// The projectors the ledger keeps inline: balances, directory, limits, payments, commands, checkpoints,
// clearing (projections/clearing.h).
std::vector<std::unique_ptr<Projector>> MakeLedgerProjectors();
// The projectors of `all` whose names are in `names` (keep == true) or are not (keep == false), in order.
std::vector<std::unique_ptr<Projector>> SelectProjectors(std::vector<std::unique_ptr<Projector>> all,
                                                         const std::vector<std::string>& names, bool keep);

// A set of projectors advanced together, one event at a time, exactly once each.
class ProjectionSet {
 public:
  explicit ProjectionSet(std::vector<std::unique_ptr<Projector>> projectors);

  // Reads every projector's last applied sequence. Errors: Corruption when they differ (a set is always
  // written in one batch, so they move together).
  Status Load(const KvReader& reader);
  // Applies `event` to every projector and records its sequence. Errors: Corruption unless
  // event.sequence() == LastApplied() + 1 (nothing written), or when a projector cannot fold the event
  // (then `view` holds part of it and must be dropped).
  Status Apply(const fb::EventBody& event, KvWriter& view);
  // The same without writing the applied sequence (a caller folding many events records it once:
  // RecordApplied).
  Status ApplyUnrecorded(const fb::EventBody& event, KvWriter& view);
  // Writes LastApplied() as every projector's applied sequence into `view`.
  void RecordApplied(KvWriter& view) const;
  uint64_t LastApplied() const { return last_applied_; }
  const std::vector<std::unique_ptr<Projector>>& projectors() const { return projectors_; }
  // The index of the projector owning `key`, or nullopt (e.g. the applied-sequence keys, owned by the set).
  std::optional<size_t> OwnerOf(std::string_view key) const;

 private:
  std::vector<std::unique_ptr<Projector>> projectors_;
  std::vector<std::pair<std::string, size_t>> prefixes_;  // (key prefix, projector index), for OwnerOf
  uint64_t last_applied_ = 0;
};

}  // namespace ledger
