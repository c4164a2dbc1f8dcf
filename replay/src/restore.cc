#include "replay/restore.h"

#include <algorithm>
#include <string>

#include "events/event.h"
#include "state/keys.h"

namespace ledger::replay {

Result<RestoreReport> RestoreShard(const EventSource& source, uint32_t shard, Store* target,
                                   const ReplayOptions& options) {
  LEDGER_ASSERT(target != nullptr);
  std::optional<int64_t> next_offset;
  std::optional<std::pair<uint64_t, uint32_t>> foreign;  // (sequence, shard) of another shard's record
  // Sees each record before Replay verifies it: what it learns counts only if the whole history verifies.
  const EventSource watched = [&](const std::function<bool(uint64_t, std::string_view)>& fn) {
    return source([&](uint64_t sequence, std::string_view record) {
      Result<DecodedEvent> decoded = DecodeEventRecord(record);
      if (decoded.ok()) {
        const fb::EventBody& body = *decoded->body;
        if (body.shard() != shard) {
          foreign.emplace(sequence, body.shard());
          return false;
        }
        if (body.commands_offset() >= 0)
          next_offset = std::max(next_offset.value_or(0), body.commands_offset() + 1);
        if (const fb::CommandsSkipped* skipped = body.payload_as_CommandsSkipped()) {
          next_offset = std::max(next_offset.value_or(0), skipped->resumed_offset());
        }
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
  report.commands_offset = next_offset;
  if (next_offset.has_value()) {
    CommitBatch batch;
    batch.meta.emplace_back(keys::CommandsOffsetMeta(shard), std::to_string(*next_offset));
    LEDGER_RETURN_IF_ERROR(target->Commit(batch));
  }
  return report;
}

}  // namespace ledger::replay
