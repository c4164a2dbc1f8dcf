#include "commands_start.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "state/keys.h"

namespace ledger::service {
namespace {

// How long one watermarks query waits before the service logs and asks again.
constexpr int kStartupWatermarksTimeoutMs = 5'000;

// The commands offset stored with the last group (none in a fresh store). Errors: IoError, Corruption.
Result<std::optional<int64_t>> StoredCommandsOffset(const Ledger& ledger, uint32_t partition) {
  Result<std::optional<std::string>> text = ledger.store().GetMeta(keys::CommandsOffsetMeta(partition));
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::optional<int64_t>();
  const std::string& value = **text;
  int64_t offset = -1;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), offset);
  if (error != std::errc() || end != value.data() + value.size() || offset < 0) {
    return Status::Corruption("meta " + keys::CommandsOffsetMeta(partition) + " holds '" + value +
                              "', not an offset");
  }
  return std::optional<int64_t>(offset);
}

// Asks for the partition's watermarks until Kafka answers. Errors: Aborted when asked to stop.
Result<kafka::Watermarks> WatermarksPatiently(kafka::PartitionReader& reader,
                                              const std::function<bool()>& stop_requested) {
  while (true) {
    Result<kafka::Watermarks> marks = reader.QueryWatermarks(kStartupWatermarksTimeoutMs);
    if (marks.ok()) return marks;
    spdlog::warn("serve: waiting for Kafka: {}", marks.status().message());
    if (stop_requested && stop_requested()) return Status::Aborted("stopped while waiting for Kafka");
  }
}

// Records the gap an operator accepted as a CommandsSkipped event, committed with the new commands offset.
Status RecordCommandsSkipped(Ledger& ledger, uint32_t partition, int64_t stored, const CommandsStart& start,
                             const kafka::Watermarks& marks, const std::string& accepted_by) {
  fb::CommandsSkippedT skipped;
  skipped.partition = static_cast<int32_t>(partition);
  skipped.stored_offset = stored;
  skipped.resumed_offset = start.offset;
  skipped.low_watermark = marks.low;
  skipped.high_watermark = marks.high;
  skipped.accepted_by = accepted_by;
  skipped.reason = start.gap;
  fb::PayloadUnion payload;
  payload.Set(std::move(skipped));
  // The sequence makes the id unique: the same offsets can be skipped again (an embedded broker on every
  // run).
  const std::string fact_id = "commands-skipped:" + std::to_string(partition) + ":" + std::to_string(stored) +
                              "-" + std::to_string(start.offset) + "@" +
                              std::to_string(ledger.last_sequence() + 1);
  ledger.StageMeta(keys::CommandsOffsetMeta(partition), std::to_string(start.offset));
  Result<uint64_t> sequence = ledger.RecordFact(fact_id, std::move(payload));
  if (!sequence.ok()) return sequence.status();
  spdlog::warn("serve: {} accepted the gap (event {}): {}; resuming at offset {}", accepted_by, *sequence,
               start.gap, start.offset);
  return Status::Ok();
}

Result<CommandsReader> OpenReaderAt(const CommandsReaderSettings& settings, int64_t offset) {
  // Never reset on its own: an offset out of range stops serve (kError) instead of skipping records.
  Result<std::unique_ptr<kafka::PartitionReader>> reader = kafka::PartitionReader::Open(
      settings.brokers, kafka::kCommandsTopic, settings.partition, offset, kafka::OffsetReset::kError);
  if (!reader.ok()) return reader.status();
  return CommandsReader{std::move(reader).value(), offset};
}

}  // namespace

CommandsStart DecideCommandsStart(std::optional<int64_t> stored, const kafka::Watermarks& marks,
                                  uint32_t partition, bool embedded) {
  CommandsStart start;
  if (!stored.has_value()) return start;  // a fresh store takes what the partition holds
  const std::string where = std::string(kafka::kCommandsTopic) + " partition " + std::to_string(partition);
  start.offset = *stored;
  if (*stored < marks.low) {
    start.offset = marks.low;
    start.gap =
        "offsets " + std::to_string(*stored) + ".." + std::to_string(marks.low - 1) + " of " + where +
        " are gone (expired or dropped before serve applied them): " + std::to_string(marks.low - *stored) +
        " commands never applied";
  } else if (*stored > marks.high) {
    const std::string kept = marks.low == marks.high ? "no records"
                                                     : "offsets " + std::to_string(marks.low) + ".." +
                                                           std::to_string(marks.high - 1);
    start.offset = marks.low;
    start.gap = "the stored offset " + std::to_string(*stored) + " is past the end of " + where +
                " (it holds " + kept + "): the topic was replaced" +
                (embedded ? " (the embedded broker starts empty on every run)" : "") +
                ", and whatever the old one held from offset " + std::to_string(*stored) +
                " on was never applied";
  }
  return start;
}

Result<CommandsReader> OpenCommandsReader(Ledger& ledger, const CommandsReaderSettings& settings) {
  Result<std::optional<int64_t>> stored = StoredCommandsOffset(ledger, settings.partition);
  if (!stored.ok()) return stored.status();
  Result<CommandsReader> opened = OpenReaderAt(settings, stored->value_or(-1));
  if (!opened.ok()) return opened.status();
  Result<kafka::Watermarks> marks = WatermarksPatiently(*opened->reader, settings.stop_requested);
  if (!marks.ok()) return marks.status();
  const CommandsStart start = DecideCommandsStart(*stored, *marks, settings.partition, settings.embedded);
  if (start.gap.empty()) {
    if (!settings.accepted_by.empty()) {
      spdlog::info("serve: no commands gap to accept: the stored offset fits the partition");
    }
    return opened;
  }
  // The in-process embedded broker is new on every run: whatever its topics held died with the last run,
  // before anyone could apply it. Serve accepts that itself, recorded and logged like an operator's
  // acceptance.
  const std::string acceptance = !settings.accepted_by.empty() || !settings.embedded
                                     ? settings.accepted_by
                                     : "serve (in-process embedded broker, new on every run)";
  if (acceptance.empty()) {
    return Status::InvalidArgument(
        "refusing to start: " + start.gap + "; to resume at offset " + std::to_string(start.offset) +
        " and record the gap as a CommandsSkipped event, pass --accept-command-gap "
        "OPERATOR_NAME");
  }
  opened->reader.reset();  // its fetch position is out of range: reopened where serve resumes
  LEDGER_RETURN_IF_ERROR(
      RecordCommandsSkipped(ledger, settings.partition, **stored, start, *marks, acceptance));
  return OpenReaderAt(settings, start.offset);
}

}  // namespace ledger::service
