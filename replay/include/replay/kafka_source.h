// The history of one shard as it was published: partition K of ledger.events (kafka/kafka.h) read as a replay
// EventSource. Each record's sequence is its ledger.sequence header; a record without one is not a ledger
// event and reads as sequence 0, which Replay reports as out of order. A gap in the topic is a gap in the
// sequences, which Replay reports as the first missing sequence.
// Thread-safety: one thread uses a KafkaEventSource and the EventSource it returns.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "replay/replay.h"

namespace ledger::kafka {
class PartitionReader;
}  // namespace ledger::kafka

namespace ledger::replay {

class KafkaEventSource {
 public:
  // Opens ledger.events partition `partition` from its first kept record and reads its high watermark: the
  // source reads until it has passed it (records a poll returns beyond it are passed on too). Errors:
  // InvalidArgument (bad brokers), IoError (no watermark from the cluster in time).
  static Result<std::unique_ptr<KafkaEventSource>> Open(const std::string& brokers, uint32_t partition);
  ~KafkaEventSource();
  KafkaEventSource(const KafkaEventSource&) = delete;
  KafkaEventSource& operator=(const KafkaEventSource&) = delete;

  // The records up to (at least) the high watermark seen at Open, in offset order. Read once: the reader does
  // not go back. Valid while this object lives. Errors: IoError (a failed poll, or the topic stopped
  // answering before the high watermark).
  EventSource source();
  int64_t high_watermark() const { return high_watermark_; }

 private:
  KafkaEventSource(std::unique_ptr<kafka::PartitionReader> reader, int64_t high_watermark);
  std::unique_ptr<kafka::PartitionReader> reader_;
  int64_t high_watermark_ = 0;
};

}  // namespace ledger::replay
