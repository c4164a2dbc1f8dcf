// How long the program waits for Kafka, in one place. Each bound turns a broker that does not answer into an
// error the caller reports (README: exit codes), never into a wait without end.
#pragma once

#include <cstdint>

namespace ledger::kafka {

// One publish waits this long for the brokers' acknowledgements before it rebuilds the producer and retries.
inline constexpr int64_t kAckTimeoutMs = 30'000;
// Publishing everything through a sequence (submit, demo, bench after their commits) gives up after this long.
inline constexpr int64_t kPublishDeadlineMs = 60'000;
// Reading a partition's low and high watermarks (or the tail record behind the high one).
inline constexpr int64_t kWatermarksTimeoutMs = 10'000;

}  // namespace ledger::kafka
