// Latencies in microseconds, log-bucketed (about 1.5% wide), so 10,000,000 samples take a few kilobytes.
// Thread-safety: not thread-safe (one recording thread).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace ledger::bench {

class LatencyHistogram {
 public:
  // Records one latency; a negative one counts as 0.
  void Record(int64_t micros);
  // The upper bound of the bucket holding quantile q (0..1), in microseconds, never above the largest sample;
  // 0 when nothing was recorded.
  int64_t Quantile(double q) const;
  int64_t max() const { return max_; }
  int64_t count() const { return count_; }

 private:
  static constexpr int kSubBuckets = 64;
  static size_t Bucket(int64_t v);
  static int64_t UpperBound(size_t b);

  std::array<int64_t, kSubBuckets + 60 * 32> buckets_{};
  int64_t count_ = 0;
  int64_t max_ = 0;
};

}  // namespace ledger::bench
