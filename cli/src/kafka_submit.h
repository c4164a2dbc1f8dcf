// Commands sent through ledger.commands to the shards that own them (ledger/routing.h), signed with a
// producer's key, and their results read back from ledger.results: what `ledger submit --brokers` does, and
// the onboarding commands (merchant-keys, customer-enroll) when the ledger is behind Kafka.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/signing.h"
#include "core/status.h"
#include "kafka/kafka.h"
#include "ledger/command.h"

namespace ledger::cli {

struct KafkaTarget {
  std::string brokers;
  uint32_t shards = 1;
  int64_t timeout_ms = 30'000;
  const Signer* producer_key = nullptr;  // none: sent unsigned (a serve that allows it, in tests)
};

// A reader of shard `shard`'s ledger.results from its current end: only answers to what is sent after it
// matter. Errors: IoError.
Result<std::unique_ptr<kafka::PartitionReader>> ResultsFromNow(const std::string& brokers, uint32_t shard);

// Sends commands[i] (its text lines[i]) to every shard that owns it and calls `on_result` with each result
// line as it arrives (one per shard a command went to). Errors: IoError (Kafka failed, or some results did
// not come within the timeout: how many).
Status SendThroughKafka(const KafkaTarget& target, const std::vector<ParsedCommand>& commands,
                        const std::vector<std::string>& lines,
                        const std::function<void(const std::string& result)>& on_result);

// One command's results (one per shard it went to). Errors: InvalidArgument (a line that is no command), and
// as SendThroughKafka.
Result<std::vector<std::string>> SendOneThroughKafka(const KafkaTarget& target, const std::string& line);

}  // namespace ledger::cli
