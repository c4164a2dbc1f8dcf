// Where a shard resumes reading ledger.commands, by the rule of docs/DECISIONS.md (Commands-topic offsets).
// Internal to the service component.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "kafka/kafka.h"
#include "ledger/ledger.h"

namespace ledger::service {

// Where serve reads its commands partition from, and why the stored offset does not fit the partition.
struct CommandsStart {
  int64_t offset = -1;  // -1: the partition's beginning (a fresh store); with a gap: where to resume
  std::string gap;      // empty when the stored offset fits the partition; else why not, in one line
};

// A stored offset within [low, high] is where serve resumes. Below low, records it never applied are gone;
// above high, the topic is not the one the offset was taken in. Either way the start names the gap and
// resumes at low, which the caller does only on an operator's word.
CommandsStart DecideCommandsStart(std::optional<int64_t> stored, const kafka::Watermarks& marks,
                                  uint32_t partition, bool embedded);

// The commands reader, opened where serve resumes.
struct CommandsReader {
  std::unique_ptr<kafka::PartitionReader> reader;
  int64_t offset = -1;  // where it starts (-1: the partition's beginning)
};

// What OpenCommandsReader needs to know about the run.
struct CommandsReaderSettings {
  std::string brokers;
  uint32_t partition = 0;
  bool embedded = false;    // the in-process embedded broker: its gaps are accepted by serve itself
  std::string accepted_by;  // the operator accepting a gap; empty: none
  std::function<bool()> stop_requested;
};

// Opens the commands reader where serve resumes, after checking the stored offset against the partition; an
// accepted gap is committed as a CommandsSkipped event with the new offset. Never resets on its own.
// Errors: InvalidArgument (refused: the one-line reason; nothing written), IoError, Corruption, Aborted
// (asked to stop while waiting for Kafka).
Result<CommandsReader> OpenCommandsReader(Ledger& ledger, const CommandsReaderSettings& settings);

}  // namespace ledger::service
