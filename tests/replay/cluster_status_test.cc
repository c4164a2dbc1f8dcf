// Goal: the legs in flight to a shard, as cluster-status reports them, come from the leg numbers in every
// shard's newest events: what each sender last sent it minus what it last applied from that sender, and
// "cannot tell" (never a guess) when a pair's last leg lies before the events read.
#include "replay/cluster_status.h"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

namespace ledger::replay {
namespace {

ShardStatus Status(uint32_t shard, bool whole_history) {
  ShardStatus status;
  status.shard = shard;
  status.whole_history = whole_history;
  return status;
}

TEST(ClusterStatus, LegsInFlightAreWhatSendersSentMinusWhatTheShardApplied) {
  std::vector<std::optional<ShardStatus>> all = {Status(0, true), Status(1, true), Status(2, true)};
  EXPECT_EQ(LegsInFlightTo(0, all), 0u);  // nothing sent anywhere
  all[1]->legs_sent[0] = 7;
  all[2]->legs_sent[0] = 3;
  all[0]->legs_applied[1] = 5;
  EXPECT_EQ(LegsInFlightTo(0, all), (7u - 5u) + 3u);
  all[0]->legs_applied[2] = 3;
  all[0]->legs_applied[1] = 7;
  EXPECT_EQ(LegsInFlightTo(0, all), 0u);
  EXPECT_EQ(LegsInFlightTo(1, all), 0u);
}

TEST(ClusterStatus, LegsInFlightAreUnknownWhenTheEventsReadCannotTell) {
  std::vector<std::optional<ShardStatus>> all = {Status(0, false), Status(1, true)};
  all[1]->legs_sent[0] = 4;
  // Shard 0's newest events applied nothing from shard 1, and older ones were not read.
  EXPECT_EQ(LegsInFlightTo(0, all), std::nullopt);
  all[0]->legs_applied[1] = 4;
  EXPECT_EQ(LegsInFlightTo(0, all), 0u);
  // A shard that could not be read makes every count unknown.
  all[1].reset();
  EXPECT_EQ(LegsInFlightTo(0, all), std::nullopt);
  EXPECT_EQ(LegsInFlightTo(1, all), std::nullopt);
}

}  // namespace
}  // namespace ledger::replay
