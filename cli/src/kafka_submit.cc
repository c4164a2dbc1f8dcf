#include "kafka_submit.h"

#include <chrono>
#include <map>
#include <memory>

#include "kafka/kafka.h"
#include "kafka/timeouts.h"
#include "ledger/routing.h"

namespace ledger::cli {
namespace {

constexpr size_t kResultsPerPollMax = 4096;
constexpr int kResultsPollMs = 50;

}  // namespace

Result<std::unique_ptr<kafka::PartitionReader>> ResultsFromNow(const std::string& brokers, uint32_t shard) {
  Result<std::unique_ptr<kafka::PartitionReader>> probe =
      kafka::PartitionReader::Open(brokers, kafka::kResultsTopic, shard, -1);
  if (!probe.ok()) return probe.status();
  Result<int64_t> high = (*probe)->HighWatermark(kafka::kWatermarksTimeoutMs);
  if (!high.ok()) return high.status();
  return kafka::PartitionReader::Open(brokers, kafka::kResultsTopic, shard, *high);
}

Status SendThroughKafka(const KafkaTarget& target, const std::vector<ParsedCommand>& commands,
                        const std::vector<std::string>& lines,
                        const std::function<void(const std::string& result)>& on_result) {
  std::vector<std::unique_ptr<kafka::PartitionReader>> readers;
  for (uint32_t shard = 0; shard < target.shards; ++shard) {
    Result<std::unique_ptr<kafka::PartitionReader>> reader = ResultsFromNow(target.brokers, shard);
    if (!reader.ok()) return reader.status();
    readers.push_back(std::move(reader).value());
  }
  Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(target.brokers);
  if (!sender.ok()) return sender.status();
  // Each command goes to its owner's shard; reference data goes to every shard, which each answer it.
  std::map<std::string, int64_t> waiting;
  size_t outstanding = 0;
  for (size_t i = 0; i < commands.size(); ++i) {
    Result<kafka::Headers> headers =
        target.producer_key != nullptr
            ? kafka::CommandSignatureHeaders(*target.producer_key, commands[i].fingerprint)
            : kafka::Headers();
    if (!headers.ok()) return headers.status();
    for (uint32_t shard : ShardsFor(commands[i], target.shards)) {
      LEDGER_RETURN_IF_ERROR(
          (*sender)->Send(kafka::kCommandsTopic, shard, commands[i].command_id, lines[i], *headers));
      waiting[commands[i].command_id] += 1;
      outstanding += 1;
    }
  }
  LEDGER_RETURN_IF_ERROR((*sender)->Flush(target.timeout_ms));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(target.timeout_ms);
  while (outstanding > 0 && std::chrono::steady_clock::now() < deadline) {
    for (auto& reader : readers) {
      Result<std::vector<kafka::Record>> records = reader->Poll(kResultsPerPollMax, kResultsPollMs);
      if (!records.ok()) return records.status();
      for (const kafka::Record& record : *records) {
        auto it = waiting.find(record.key);
        if (it == waiting.end() || it->second == 0) continue;
        it->second -= 1;
        outstanding -= 1;
        on_result(record.value);
      }
    }
  }
  if (outstanding > 0) {
    return Status::IoError(std::to_string(outstanding) + " commands got no result within " +
                           std::to_string(target.timeout_ms) + " ms");
  }
  return Status::Ok();
}

Result<std::vector<std::string>> SendOneThroughKafka(const KafkaTarget& target, const std::string& line) {
  Result<ParsedCommand> parsed = ParseCommandJson(line);
  if (!parsed.ok()) return parsed.status();
  std::vector<std::string> results;
  LEDGER_RETURN_IF_ERROR(SendThroughKafka(target, {*parsed}, {line},
                                          [&](const std::string& result) { results.push_back(result); }));
  return results;
}

}  // namespace ledger::cli
