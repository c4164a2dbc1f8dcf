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

}  // namespace

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
  if (events->high <= events->low) return status;

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
      status.head_sequence = body.sequence();
      status.head_recorded_at_ns = body.recorded_at_ns();
      resume.See(body);
      if (const fb::CheckpointRecorded* checkpoint = body.payload_as_CheckpointRecorded()) {
        status.last_checkpoint_covers = checkpoint->sequence();
        status.last_checkpoint_signed_at_ns = checkpoint->signed_at_ns();
      }
    }
  }
  status.commands_next = resume.next();
  return status;
}

}  // namespace ledger::replay
