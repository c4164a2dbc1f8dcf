// Goal: the key-value views (the writer's bounded memory of the state, overlays) behave as documented.
#include "storage/kv.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

namespace ledger {
namespace {

// A reader over a map, counting how often it is asked (to see what the cache answers itself).
class CountingReader final : public KvReader {
 public:
  bool Get(std::string_view key, std::string* value) const override {
    ++reads;
    auto it = values.find(std::string(key));
    if (it == values.end()) return false;
    *value = it->second;
    return true;
  }
  std::map<std::string, std::string> values;
  mutable int reads = 0;
};

TEST(WriterState, ServesPresentAndAbsentKeysTakesWritesAndStaysWithinItsBound) {
  CountingReader base;
  base.values = {{"a", "1"}, {"b", "2"}};
  WriterState state(base, 4096);
  std::string value;
  ASSERT_TRUE(state.Get("a", &value));
  EXPECT_EQ(value, "1");
  ASSERT_TRUE(state.Get("a", &value));
  EXPECT_EQ(base.reads, 1) << "a second read of a present key is the memory's";
  EXPECT_FALSE(state.Get("missing", &value));
  EXPECT_FALSE(state.Get("missing", &value));
  EXPECT_EQ(base.reads, 2) << "an absent key is held as absent";

  // A group: "a" changes, "b" (never read) changes, "missing" is created, then "a" again.
  state.Put("a", "10");
  state.Put("b", "20");
  state.Put("missing", "now here");
  state.Put("a", "11");
  ASSERT_TRUE(state.Get("a", &value));
  EXPECT_EQ(value, "11") << "reads see the open group";
  std::vector<GroupWrite> writes = state.SealGroup(5);
  ASSERT_EQ(writes.size(), 3u) << "each key once";
  EXPECT_EQ(writes[0].key, "a");
  EXPECT_EQ(writes[0].value, "11");
  EXPECT_EQ(writes[0].prior, "1") << "the value before the group";
  EXPECT_EQ(writes[1].key, "b");
  EXPECT_EQ(writes[1].prior, "2");
  EXPECT_EQ(writes[2].key, "missing");
  EXPECT_EQ(writes[2].prior, std::nullopt);
  // The next group deletes "a": its prior is the sealed group's value, not the base's.
  state.Delete("a");
  EXPECT_FALSE(state.Get("a", &value)) << "a deleted key must not be served";
  writes = state.SealGroup(6);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].value, std::nullopt);
  EXPECT_EQ(writes[0].prior, "11");
  EXPECT_EQ(state.open_group_bytes(), 0u);

  // The fold writes both groups to the base; then the bound: thousands of distinct keys never hold more than
  // the capacity.
  base.values.erase("a");
  base.values["b"] = "20";
  base.values["missing"] = "now here";
  state.Folded(6);
  for (int i = 0; i < 5000; ++i) base.values["k" + std::to_string(i)] = std::string(40, 'x');
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(state.Get("k" + std::to_string(i), &value));
    ASSERT_LE(state.bytes(), 4096u);
  }
  EXPECT_GT(state.bytes(), 2048u) << "the memory is used up to its bound";
  ASSERT_TRUE(state.Get("missing", &value));
  EXPECT_EQ(value, "now here");
  EXPECT_FALSE(state.Get("a", &value));
}

// The store behind the writer's memory lags it (the fold runs behind the commit): a written key the base does
// not hold yet must be served from memory, whatever the eviction pressure, until the fold passes it.
TEST(WriterState, HoldsWrittenKeysUntilTheFoldPassesThemThenLetsThemGo) {
  CountingReader base;
  for (int i = 0; i < 1000; ++i) base.values["old" + std::to_string(i)] = std::string(40, 'o');
  WriterState state(base, 4096);
  for (int i = 0; i < 20; ++i) state.Put("new" + std::to_string(i), "v" + std::to_string(i));
  state.Put("old0", "changed");
  std::string value;
  for (int i = 1; i < 1000; ++i) ASSERT_TRUE(state.Get("old" + std::to_string(i), &value));
  ASSERT_TRUE(state.Get("new3", &value)) << "a key of the open group vanished";
  state.SealGroup(7);  // durable up to 7; the base still has none of it
  state.Folded(6);
  for (int round = 0; round < 3; ++round) {
    for (int i = 1; i < 1000; ++i) ASSERT_TRUE(state.Get("old" + std::to_string(i), &value));
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(state.Get("new" + std::to_string(i), &value)) << "a written key vanished before its fold";
    EXPECT_EQ(value, "v" + std::to_string(i));
  }
  ASSERT_TRUE(state.Get("old0", &value));
  EXPECT_EQ(value, "changed") << "the base's stale value must not come back before the fold";

  // The fold writes the group to the base and passes 7: the keys may now leave like any other.
  for (int i = 0; i < 20; ++i) base.values["new" + std::to_string(i)] = "v" + std::to_string(i);
  base.values["old0"] = "changed";
  state.Folded(7);
  for (int round = 0; round < 3; ++round) {
    for (int i = 1; i < 1000; ++i) ASSERT_TRUE(state.Get("old" + std::to_string(i), &value));
  }
  EXPECT_LE(state.bytes(), 4096u) << "once folded, nothing is held over the bound";
  const int reads_before = base.reads;
  ASSERT_TRUE(state.Get("new0", &value));
  EXPECT_EQ(value, "v0");
  EXPECT_EQ(base.reads, reads_before + 1) << "an evicted key is read again from the base";
}

TEST(Overlay, AbsorbKeepsTheFirstPriorAndTheLastValue) {
  CountingReader base;
  base.values = {{"a", "1"}, {"b", "2"}};
  std::vector<GroupWrite> first = {{"a", "10", "1"}};
  std::vector<GroupWrite> second = {{"a", "100", "10"}, {"b", std::nullopt, "2"}, {"c", "3", std::nullopt}};
  Overlay folded(base, /*track_priors=*/true);
  folded.Absorb(std::move(first));
  folded.Absorb(std::move(second));
  std::map<std::string, std::pair<std::optional<std::string>, std::optional<std::string>>> seen;
  folded.ForEachWithPrior([&](const std::string& key, const std::optional<std::string>& value,
                              const std::optional<std::string>& prior) {
    seen[key] = {value, prior};
  });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen["a"].first, "100");
  EXPECT_EQ(seen["a"].second, "1") << "the prior is the value before the first absorbed group";
  EXPECT_EQ(seen["b"].first, std::nullopt);
  EXPECT_EQ(seen["b"].second, "2");
  EXPECT_EQ(seen["c"].first, "3");
  EXPECT_EQ(seen["c"].second, std::nullopt);
}

}  // namespace
}  // namespace ledger
