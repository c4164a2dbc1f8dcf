#include "replay/cluster_status.h"

#include <algorithm>
#include <chrono>

#include "events/event.h"
#include "kafka/kafka.h"
#include "replay/restore.h"

namespace ledger::replay {
namespace {

// How many records one poll of the events tail asks for.
constexpr size_t kPollRecordsMax = 4096;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Result<kafka::Watermarks> WatermarksOf(const std::string& brokers, const char* topic, uint32_t shard,
                                       int64_t timeout_ms) {
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, topic, shard, -1);
  if (!reader.ok()) return reader.status();
  return (*reader)->QueryWatermarks(static_cast<int>(timeout_ms));
}

// The leg numbers `body` sends or applies.
void NoteLegs(const fb::EventBody& body, ShardStatus& status) {
  if (const std::optional<LegAddress> leg = LegAddressOf(body))
    status.legs_sent[leg->destination] = leg->number;
  if (const std::optional<AppliedLeg> applied = LegAppliedBy(body))
    status.legs_applied[applied->source] = applied->number;
}

// The last leg number `status` says its shard sent to (applied from) `other`: 0 when it read its whole
// history and saw none, nullopt when it cannot tell.
std::optional<uint64_t> LastLeg(const ShardStatus& status, const std::map<uint32_t, uint64_t>& legs,
                                uint32_t other) {
  const auto it = legs.find(other);
  if (it != legs.end()) return it->second;
  return status.whole_history ? std::optional<uint64_t>(0) : std::nullopt;
}

}  // namespace

std::optional<uint64_t> LegsInFlightTo(uint32_t shard, const std::vector<std::optional<ShardStatus>>& all) {
  if (shard >= all.size() || !all[shard]) return std::nullopt;
  uint64_t in_flight = 0;
  for (uint32_t source = 0; source < all.size(); ++source) {
    if (source == shard) continue;
    if (!all[source]) return std::nullopt;
    const std::optional<uint64_t> sent = LastLeg(*all[source], all[source]->legs_sent, shard);
    const std::optional<uint64_t> applied = LastLeg(*all[shard], all[shard]->legs_applied, source);
    if (!sent || !applied) return std::nullopt;
    if (*sent > *applied) in_flight += *sent - *applied;
  }
  return in_flight;
}

Result<ShardStatus> ReadShardStatus(const std::string& brokers, uint32_t shard, int64_t timeout_ms) {
  ShardStatus status;
  status.shard = shard;
  Result<uint64_t> results = kafka::ReadTailSequence(brokers, kafka::kResultsTopic, shard, timeout_ms);
  if (!results.ok()) return results.status();
  status.results_through = *results;
  Result<kafka::Watermarks> commands = WatermarksOf(brokers, kafka::kCommandsTopic, shard, timeout_ms);
  if (!commands.ok()) return commands.status();
  status.commands_high = commands->high;
  Result<kafka::Watermarks> events = WatermarksOf(brokers, kafka::kEventsTopic, shard, timeout_ms);
  if (!events.ok()) return events.status();
  if (events->high <= events->low) {
    status.whole_history = events->low == 0;  // nothing published yet
    return status;
  }

  const int64_t from = std::max(events->low, events->high - kStatusScanEventsMax);
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, kafka::kEventsTopic, shard, from);
  if (!reader.ok()) return reader.status();
  CommandsResume resume;
  const int64_t deadline = NowMs() + timeout_ms;
  for (int64_t next = from; next < events->high;) {
    if (NowMs() > deadline)
      return Status::IoError("ledger.events partition " + std::to_string(shard) + " not read in time");
    Result<std::vector<kafka::Record>> polled = (*reader)->Poll(kPollRecordsMax, 200);
    if (!polled.ok()) return polled.status();
    for (const kafka::Record& record : *polled) {
      next = record.offset + 1;
      Result<DecodedEvent> decoded = DecodeEventRecord(record.value);
      if (!decoded.ok()) {
        return Status::Corruption("ledger.events partition " + std::to_string(shard) + " offset " +
                                  std::to_string(record.offset) + ": " + decoded.status().message());
      }
      const fb::EventBody& body = *decoded->body;
      if (status.head_sequence == 0) status.whole_history = body.sequence() == 1;
      status.head_sequence = body.sequence();
      NoteLegs(body, status);
      status.head_recorded_at_ns = body.recorded_at_ns();
      resume.See(body);
      status.owner = record.owner;
      status.key_id = record.key_id;
      if (!record.seal.empty()) status.last_sealed = body.sequence();
      if (const fb::DayClosed* closed = body.payload_as_DayClosed())
        status.closed_through = closed->clearing_date();
      if (const fb::CheckpointRecorded* checkpoint = body.payload_as_CheckpointRecorded()) {
        status.last_checkpoint_covers = checkpoint->sequence();
        status.last_checkpoint_signed_at_ns = checkpoint->signed_at_ns();
      }
    }
  }
  status.commands_next = resume.next();
  if (!status.closed_through && status.whole_history) status.closed_through = 0;
  return status;
}

}  // namespace ledger::replay
