// Cluster status: what the published topics say about each shard, for operators (`ledger cluster-status`).
// Read from Kafka alone, so it works from any machine that reaches the brokers, whichever shards are up:
// the head of each events partition, how far results are published, how many commands wait, and the last
// signed checkpoint among the newest events.
// Thread-safety: a plain function; each call opens its own clients.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace ledger::replay {

// How many of a partition's newest events are read to find the last checkpoint and the commands position
// (one checkpoint per [audit] checkpoint_every events; the default is far more than this, so "none seen" is
// common for a busy shard and says only that).
inline constexpr int64_t kStatusScanEventsMax = 20'000;

struct ShardStatus {
  uint32_t shard = 0;
  uint64_t head_sequence = 0;  // the last event published (0: none)
  int64_t head_recorded_at_ns = 0;
  uint64_t results_through = 0;  // the sequence the last published result reports
  int64_t commands_high = 0;     // the commands partition's next offset
  // The next commands offset the newest events say serve reads (nullopt: none among them recorded one).
  std::optional<int64_t> commands_next;
  std::optional<int64_t> commands_lag() const {
    return commands_next ? std::optional<int64_t>(commands_high - *commands_next) : std::nullopt;
  }
  std::optional<uint64_t> last_checkpoint_covers;  // among the newest kStatusScanEventsMax events
  // The newest event among them that carries a seal (kafka.h's kSealHeader), present, not verified: this
  // reads Kafka without the ledger's key. A shard whose serve seals has its head sealed once it is idle.
  std::optional<uint64_t> last_sealed;
  int64_t last_checkpoint_signed_at_ns = 0;
  // Legs (docs/ARCHITECTURE.md: Shards) among the events read: the last number sent to each shard, and the
  // last applied from each shard. `whole_history`: the events read start at sequence 1, so a shard missing
  // from a map was never sent to (applied from).
  std::map<uint32_t, uint64_t> legs_sent;
  std::map<uint32_t, uint64_t> legs_applied;
  bool whole_history = false;
  // The last clearing date the shard closed (events.fbs: DayClosed) among the events read; 0 when it read its
  // whole history and saw none, nullopt when it cannot tell.
  std::optional<int> closed_through;
  // The process that produced the newest event ("<host>:<pid>", its ledger.owner header; empty: none said).
  std::string owner;
  // The key it tags legs with (the newest event's ledger.key header, hex; empty: none said).
  std::string key_id;
};

// The legs other shards sent shard `shard` that it has not applied yet, from every shard's status (indexed by
// shard); nullopt when the events read cannot tell (a pair's last leg lies before the newest events read).
std::optional<uint64_t> LegsInFlightTo(uint32_t shard, const std::vector<std::optional<ShardStatus>>& all);

// The status of shard `shard` from `brokers`. Errors: IoError (the cluster did not answer in time),
// Corruption (a record of the events partition is not an event).
Result<ShardStatus> ReadShardStatus(const std::string& brokers, uint32_t shard, int64_t timeout_ms);

}  // namespace ledger::replay
