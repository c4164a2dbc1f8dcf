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

// The history of a backup followed by a partition: every event of `backup` (a store restored from a backup),
// then the events of `partition` after the backup's last one. The two must be one history: the partition's
// record at the backup's last sequence (or, when the partition ends before it, the partition's last record)
// must equal the backup's byte for byte, else the source fails with Corruption. Only the backup's events are
// used, never its projection records: RestoreShard rebuilds and proves those. `backup` must outlive the
// source.
EventSource BackupThenPartition(const Store& backup, EventSource partition);

}  // namespace ledger::replay
