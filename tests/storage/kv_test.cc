// Goal: the key-value views (the bounded read cache) behave as documented.
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

TEST(CachedReader, ServesPresentAndAbsentKeysFollowsCommitsAndStaysWithinItsBound) {
  CountingReader base;
  base.values = {{"a", "1"}, {"b", "2"}};
  CachedReader cache(base, 4096);
  std::string value;
  ASSERT_TRUE(cache.Get("a", &value));
  EXPECT_EQ(value, "1");
  ASSERT_TRUE(cache.Get("a", &value));
  EXPECT_EQ(base.reads, 1) << "a second read of a present key is the cache's";
  EXPECT_FALSE(cache.Get("missing", &value));
  EXPECT_FALSE(cache.Get("missing", &value));
  EXPECT_EQ(base.reads, 2) << "an absent key is cached as absent";

  // A committed group: "a" changes, "b" (never read) changes, "a2" is new. The cache follows what it holds.
  Overlay group(cache);
  group.Put("a", "10");
  group.Put("b", "20");
  base.values["a"] = "10";
  base.values["b"] = "20";
  cache.Committed(group, 1);
  cache.Folded(1);
  ASSERT_TRUE(cache.Get("a", &value));
  EXPECT_EQ(value, "10");
  ASSERT_TRUE(cache.Get("b", &value));
  EXPECT_EQ(value, "20");
  Overlay deletion(cache);
  deletion.Delete("a");
  base.values.erase("a");
  cache.Committed(deletion, 2);
  cache.Folded(2);
  EXPECT_FALSE(cache.Get("a", &value)) << "a deleted key must not be served from the cache";
  // A key cached as absent and then written by a committed group is served with its value.
  Overlay creation(cache);
  creation.Put("missing", "now here");
  base.values["missing"] = "now here";
  cache.Committed(creation, 3);
  cache.Folded(3);
  const int reads_before = base.reads;
  ASSERT_TRUE(cache.Get("missing", &value))
      << "a key cached as absent must follow the commit that creates it";
  EXPECT_EQ(value, "now here");
  EXPECT_FALSE(cache.Get("a", &value));
  EXPECT_EQ(base.reads, reads_before) << "both answers come from the cache";

  // The bound: thousands of distinct keys never hold more than the capacity.
  for (int i = 0; i < 5000; ++i) base.values["k" + std::to_string(i)] = std::string(40, 'x');
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(cache.Get("k" + std::to_string(i), &value));
    ASSERT_LE(cache.bytes(), 4096u);
  }
  EXPECT_GT(cache.bytes(), 2048u) << "the cache is used up to its bound";
}

// The store behind the writer's memory lags it (the fold runs behind the commit): a committed key the base
// does not hold yet must be served from memory, whatever the eviction pressure, until the fold passes it.
TEST(CachedReader, HoldsCommittedKeysUntilTheFoldPassesThemThenLetsThemGo) {
  CountingReader base;
  for (int i = 0; i < 1000; ++i) base.values["old" + std::to_string(i)] = std::string(40, 'o');
  CachedReader cache(base, 4096);
  Overlay group(cache, /*track_priors=*/true);
  for (int i = 0; i < 20; ++i) group.Put("new" + std::to_string(i), "v" + std::to_string(i));
  group.Put("old0", "changed");
  cache.Committed(group, /*sequence=*/7);  // durable up to 7; the base still has none of it
  cache.Folded(6);
  std::string value;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(cache.Get("old" + std::to_string(i), &value));
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(cache.Get("new" + std::to_string(i), &value)) << "a committed key vanished before its fold";
    EXPECT_EQ(value, "v" + std::to_string(i));
  }
  ASSERT_TRUE(cache.Get("old0", &value));
  EXPECT_EQ(value, "changed") << "the base's stale value must not come back before the fold";

  // The fold writes the group to the base and passes 7: the keys may now leave like any other.
  for (int i = 0; i < 20; ++i) base.values["new" + std::to_string(i)] = "v" + std::to_string(i);
  base.values["old0"] = "changed";
  cache.Folded(7);
  for (int round = 0; round < 3; ++round) {
    for (int i = 1; i < 1000; ++i) ASSERT_TRUE(cache.Get("old" + std::to_string(i), &value));
  }
  EXPECT_LE(cache.bytes(), 4096u) << "once folded, nothing is held over the bound";
  const int reads_before = base.reads;
  ASSERT_TRUE(cache.Get("new0", &value));
  EXPECT_EQ(value, "v0");
  EXPECT_EQ(base.reads, reads_before + 1) << "an evicted key is read again from the base";
}

TEST(Overlay, AbsorbKeepsTheFirstPriorAndTheLastValue) {
  CountingReader base;
  base.values = {{"a", "1"}, {"b", "2"}};
  Overlay first(base, /*track_priors=*/true);
  first.Put("a", "10");
  Overlay second(first, /*track_priors=*/true);
  second.Put("a", "100");
  second.Delete("b");
  second.Put("c", "3");
  Overlay folded(base, /*track_priors=*/true);
  folded.Absorb(first);
  folded.Absorb(second);
  std::map<std::string, std::pair<std::optional<std::string>, std::optional<std::string>>> seen;
  folded.ForEachWithPrior([&](const std::string& key, const std::optional<std::string>& value,
                              const std::optional<std::string>& prior) {
    seen[key] = {value, prior};
  });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen["a"].first, "100");
  EXPECT_EQ(seen["a"].second, "1") << "the prior is the value before the first absorbed overlay";
  EXPECT_EQ(seen["b"].first, std::nullopt);
  EXPECT_EQ(seen["b"].second, "2");
  EXPECT_EQ(seen["c"].first, "3");
  EXPECT_EQ(seen["c"].second, std::nullopt);
}

}  // namespace
}  // namespace ledger
