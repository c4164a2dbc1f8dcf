// Goal: the key-value views (the bounded read cache) behave as documented.
#include "storage/kv.h"

#include <gtest/gtest.h>

#include <map>
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
  cache.Committed(group);
  ASSERT_TRUE(cache.Get("a", &value));
  EXPECT_EQ(value, "10");
  ASSERT_TRUE(cache.Get("b", &value));
  EXPECT_EQ(value, "20");
  Overlay deletion(cache);
  deletion.Delete("a");
  base.values.erase("a");
  cache.Committed(deletion);
  EXPECT_FALSE(cache.Get("a", &value)) << "a deleted key must not be served from the cache";
  // A key cached as absent and then written by a committed group is served with its value.
  Overlay creation(cache);
  creation.Put("missing", "now here");
  base.values["missing"] = "now here";
  cache.Committed(creation);
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

}  // namespace
}  // namespace ledger
