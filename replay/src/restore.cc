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

// Bounds the events AppendTail holds before writing them.
constexpr size_t kTailBatchEventsMax = 10'000;

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

Result<TailReport> AppendTail(const EventSource& source, uint32_t shard, Store* target) {
  LEDGER_ASSERT(target != nullptr);
  Result<std::optional<std::pair<uint64_t, std::string>>> last = target->LastEvent();
  if (!last.ok()) return last.status();
  TailReport report;
  Digest head = kGenesisHash;
  if (last->has_value()) {
    report.backup_sequence = (*last)->first;
    Result<DecodedEvent> decoded = DecodeEventRecord((*last)->second);
    if (!decoded.ok()) return Status::Corruption("the backup's last event: " + decoded.status().message());
    head = decoded->hash;
  }
  report.last_sequence = report.backup_sequence;
  const auto fail = [&report](uint64_t sequence, std::string problem) {
    report.first_bad_sequence = sequence;
    report.problem = std::move(problem);
    return false;
  };
  bool matched_backup = report.backup_sequence == 0;  // the source's record at the backup's last sequence
  std::vector<std::pair<uint64_t, std::string>> tail;
  CommandsResume offsets;
  LEDGER_RETURN_IF_ERROR(source([&](uint64_t sequence, std::string_view record) {
    if (sequence < report.backup_sequence) return true;
    if (sequence == report.backup_sequence) {
      if (record != (*last)->second)
        return fail(sequence, "the partition's event differs from the backup's: they are not one history");
      matched_backup = true;
      return true;
    }
    const uint64_t expected = report.last_sequence + 1;
    if (!matched_backup || sequence != expected) {
      return fail(expected, "the partition does not hold sequence " + std::to_string(expected) +
                                " (next it holds " + std::to_string(sequence) + ")");
    }
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    if (!decoded.ok()) return fail(sequence, decoded.status().message());
    const fb::EventBody& body = *decoded->body;
    if (body.shard() != shard)
      return fail(sequence, "the record holds shard " + std::to_string(body.shard()) + "'s history");
    if (body.sequence() != sequence) return fail(sequence, "the record's sequence differs from its header's");
    if (decoded->prev_hash != head || ChainHash(decoded->prev_hash, decoded->body_bytes) != decoded->hash)
      return fail(sequence, "the record does not chain to the one before");
    head = decoded->hash;
    offsets.See(body);
    tail.emplace_back(sequence, std::string(record));
    report.last_sequence = sequence;
    return true;
  }));
  if (!report.ok()) {
    report.last_sequence = report.backup_sequence;
    return report;
  }
  for (size_t begin = 0; begin < tail.size(); begin += kTailBatchEventsMax) {
    CommitBatch batch;
    const size_t end = std::min(tail.size(), begin + kTailBatchEventsMax);
    batch.events.assign(std::make_move_iterator(tail.begin() + begin),
                        std::make_move_iterator(tail.begin() + end));
    LEDGER_RETURN_IF_ERROR(target->Commit(batch));
  }
  report.appended = tail.size();
  report.commands_offset = offsets.next();
  LEDGER_RETURN_IF_ERROR(StoreResume(offsets, shard, target));
  return report;
}

}  // namespace ledger::replay
