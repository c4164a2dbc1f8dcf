#include "replay/restore.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "events/event.h"
#include "state/keys.h"

namespace ledger::replay {

void CommandsResume::See(const fb::EventBody& body) {
  if (const fb::CommandsSkipped* skipped = body.payload_as_CommandsSkipped()) {
    if (skipped->resumed_offset() >= 0) next_ = skipped->resumed_offset();
  } else if (body.commands_offset() >= 0 && body.commands_offset() < INT64_MAX) {
    next_ = body.commands_offset() + 1;
  }
}

namespace {

// Stores `resume`'s offset in `target`'s meta, when the events recorded one. Errors: IoError.
Status StoreResume(const CommandsResume& resume, uint32_t shard, Store* target) {
  if (!resume.next().has_value()) return Status::Ok();
  CommitBatch batch;
  batch.meta.emplace_back(keys::CommandsOffsetMeta(shard), std::to_string(*resume.next()));
  return target->Commit(batch);
}

}  // namespace

Result<RestoreReport> RestoreShard(const EventSource& source, uint32_t shard, Store* target,
                                   const ReplayOptions& options) {
  LEDGER_ASSERT(target != nullptr);
  CommandsResume offsets;
  std::optional<std::pair<uint64_t, uint32_t>> foreign;  // (sequence, shard) of another shard's record
  // Sees each record before Replay verifies it: what it learns counts only if the whole history verifies.
  const EventSource watched = [&](const std::function<bool(uint64_t, std::string_view)>& fn) {
    return source([&](uint64_t sequence, std::string_view record) {
      Result<DecodedEvent> decoded = DecodeEventRecord(record);
      if (decoded.ok()) {
        if (decoded->body->shard() != shard) {
          foreign.emplace(sequence, decoded->body->shard());
          return false;
        }
        offsets.See(*decoded->body);
      }
      return fn(sequence, record);  // an undecodable record is Replay's to report
    });
  };
  Result<ReplayReport> replayed = Replay(watched, target, options);
  if (!replayed.ok()) return replayed.status();
  RestoreReport report;
  report.replay = std::move(replayed).value();
  if (foreign.has_value() && report.replay.ok()) {
    report.replay.first_bad_sequence = foreign->first;
    report.replay.problem = "the record holds shard " + std::to_string(foreign->second) +
                            "'s history, not shard " + std::to_string(shard) + "'s";
  }
  if (!report.replay.ok()) return report;
  report.commands_offset = offsets.next();
  LEDGER_RETURN_IF_ERROR(StoreResume(offsets, shard, target));
  return report;
}

EventSource BackupThenPartition(const Store& backup, EventSource partition) {
  return [&backup,
          partition = std::move(partition)](const std::function<bool(uint64_t, std::string_view)>& fn) {
    uint64_t head = 0;
    std::string head_record;
    bool stopped = false;
    LEDGER_RETURN_IF_ERROR(backup.ScanEvents(1, UINT64_MAX, [&](uint64_t sequence, std::string_view record) {
      head = sequence;
      head_record.assign(record);
      stopped = !fn(sequence, record);
      return !stopped;
    }));
    if (stopped) return Status::Ok();
    // The partition's last record at or below the backup's head, compared with the backup's at its sequence.
    uint64_t overlap = 0;
    std::string overlap_record;
    Status problem;
    LEDGER_RETURN_IF_ERROR(partition([&](uint64_t sequence, std::string_view record) {
      if (sequence <= head) {
        overlap = sequence;
        overlap_record.assign(record);
        return true;
      }
      if (overlap != head) {
        problem = Status::Corruption("the partition holds sequence " + std::to_string(sequence) +
                                     " but not the backup's last event " + std::to_string(head));
        return false;
      }
      return fn(sequence, record);
    }));
    LEDGER_RETURN_IF_ERROR(problem);
    if (overlap == 0) return Status::Ok();  // an empty partition: the backup alone
    std::string backup_record = overlap == head ? head_record : std::string();
    if (overlap != head) {
      LEDGER_RETURN_IF_ERROR(backup.ScanEvents(overlap, overlap, [&](uint64_t, std::string_view record) {
        backup_record.assign(record);
        return false;
      }));
    }
    if (backup_record != overlap_record) {
      return Status::Corruption("the partition's event " + std::to_string(overlap) +
                                " differs from the backup's: they are not one history");
    }
    return Status::Ok();
  };
}

}  // namespace ledger::replay
