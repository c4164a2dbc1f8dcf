#include "replay/kafka_source.h"

#include <utility>
#include <vector>

#include "kafka/kafka.h"
#include "kafka/timeouts.h"

namespace ledger::replay {
namespace {

// Records asked for per poll.
constexpr size_t kPollRecordsMax = 4096;
// How long one poll waits for its first record.
constexpr int kPollTimeoutMs = 500;
// Polls in a row without a record before the high watermark: 30 s, after which the topic has stopped.
constexpr int kIdlePollsMax = 60;

}  // namespace

Result<std::unique_ptr<KafkaEventSource>> KafkaEventSource::Open(const std::string& brokers,
                                                                 uint32_t partition) {
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, kafka::kEventsTopic, partition, -1);
  if (!reader.ok()) return reader.status();
  Result<int64_t> high = (*reader)->HighWatermark(kafka::kWatermarksTimeoutMs);
  if (!high.ok()) return high.status();
  return std::unique_ptr<KafkaEventSource>(new KafkaEventSource(std::move(reader).value(), *high));
}

KafkaEventSource::KafkaEventSource(std::unique_ptr<kafka::PartitionReader> reader, int64_t high_watermark)
    : reader_(std::move(reader)), high_watermark_(high_watermark) {}

KafkaEventSource::~KafkaEventSource() = default;

EventSource KafkaEventSource::source() {
  return [this](const std::function<bool(uint64_t, std::string_view)>& fn) -> Status {
    int64_t next = 0;
    int idle_polls = 0;
    while (next < high_watermark_) {
      Result<std::vector<kafka::Record>> records = reader_->Poll(kPollRecordsMax, kPollTimeoutMs);
      if (!records.ok()) return records.status();
      if (records->empty() && ++idle_polls > kIdlePollsMax) {
        return Status::IoError("ledger.events stopped before its high watermark");
      }
      for (const kafka::Record& record : *records) {
        idle_polls = 0;
        next = record.offset + 1;
        // A record without a sequence header is not a ledger event: it gets sequence 0, a reordering.
        if (!fn(record.sequence.value_or(0), record.value)) return Status::Ok();
      }
    }
    return Status::Ok();
  };
}

}  // namespace ledger::replay
