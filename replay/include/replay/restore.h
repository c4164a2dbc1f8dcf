// Restore: a lost shard's store rebuilt from its published history (partition K of ledger.events), verified
// as `replay` verifies it, with the commands offset serve resumes from taken from the history itself (each
// event records the ledger.commands offset of its command; a CommandsSkipped event records where serve
// resumed). A restored shard therefore neither applies nor answers again a command its events cover.
// Thread-safety: as Replay.
#pragma once

#include <cstdint>
#include <optional>

#include "core/status.h"
#include "replay/replay.h"
#include "storage/store.h"

namespace ledger::fb {
struct EventBody;
}  // namespace ledger::fb

namespace ledger::replay {

// Where serve resumes on ledger.commands after the events it has seen, in history order: past the last
// command's offset, or where a CommandsSkipped event says serve resumed. The last fact wins, not the largest
// offset: after the topic was replaced (CommandsSkipped) offsets start again from its low watermark.
class CommandsResume {
 public:
  void See(const fb::EventBody& body);
  // nullopt: no event seen recorded an offset.
  const std::optional<int64_t>& next() const { return next_; }

 private:
  std::optional<int64_t> next_;
};

struct RestoreReport {
  ReplayReport replay;  // verification; a history of another shard fails it at its first event
  // Where serve resumes reading ledger.commands partition `shard`: past the last command the history
  // records. nullopt: the history records none (written before events carried offsets, or never fed from
  // the commands topic); serve then starts as on a fresh store.
  std::optional<int64_t> commands_offset;
};

// Replays `source` (the history of shard `shard`) into `target`, a fresh store, and when it verifies,
// stores the commands offset in the target's `meta` (state/keys.h: CommandsOffsetMeta). A record of another
// shard stops the replay and is reported as the first bad sequence. The caller installs the target only when
// the report is ok() (and its signatures were checked, when there are checkpoints). Errors: IoError.
Result<RestoreReport> RestoreShard(const EventSource& source, uint32_t shard, Store* target,
                                   const ReplayOptions& options);

// What AppendTail added after a restored backup's last event.
struct TailReport {
  uint64_t backup_sequence = 0;  // the target's last event before
  uint64_t appended = 0;
  uint64_t last_sequence = 0;
  std::optional<int64_t> commands_offset;  // as in RestoreReport, from the appended events; nullopt: none
  // Set when the partition and the backup disagree or the tail does not chain: nothing was appended.
  std::optional<uint64_t> first_bad_sequence;
  std::string problem;
  bool ok() const { return !first_bad_sequence.has_value(); }
};

// Appends to `target` (a store restored from a backup of shard `shard`) the events of `source` after its last
// event: the source's record at that sequence must equal the target's byte for byte, and every later record
// must be the next sequence of this shard and chain to the one before (hash recomputed). Nothing is appended
// unless the whole tail checks; projections are not folded (the next Ledger::Open folds them). A partition
// that ends before the backup's last event appends nothing and is no error (the publisher republishes). The
// commands offset the tail records, if any, is stored in `meta`. Errors: IoError.
Result<TailReport> AppendTail(const EventSource& source, uint32_t shard, Store* target);

}  // namespace ledger::replay
