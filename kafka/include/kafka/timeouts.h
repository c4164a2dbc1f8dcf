// How long the program waits for Kafka, in one place. Each bound turns a broker that does not answer into an
// error the caller reports (README: exit codes), never into a wait without end.
#pragma once

#include <cstdint>

namespace ledger::kafka {

// One publish waits this long for the brokers' acknowledgements before it rebuilds the producer and retries.
inline constexpr int64_t kAckTimeoutMs = 30'000;
// Publishing everything through a sequence (submit, demo, bench after their commits) gives up after this
// long.
inline constexpr int64_t kPublishDeadlineMs = 60'000;
// Reading a partition's low and high watermarks (or the tail record behind the high one).
inline constexpr int64_t kWatermarksTimeoutMs = 10'000;
// One poll of a long-running consumer (serve, tail, project) waits this long for its first record, so that a
// stop request is seen within it.
inline constexpr int kConsumerPollMs = 100;
// A broker holds a fetch open at most this long waiting for records: short, so that a poll returns soon after
// records arrive and a stop request is seen.
inline constexpr int kFetchWaitMaxMs = 50;
// While waiting for deliveries (acknowledgements, or room in a full local producer queue), each wait for
// librdkafka's callbacks lasts this long.
inline constexpr int kDeliveryPollMs = 10;

}  // namespace ledger::kafka
