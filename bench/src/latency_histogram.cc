#include "bench/latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace ledger::bench {

void LatencyHistogram::Record(int64_t micros) {
  micros = std::max<int64_t>(micros, 0);
  buckets_[Bucket(micros)] += 1;
  count_ += 1;
  max_ = std::max(max_, micros);
}

int64_t LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  const int64_t rank = static_cast<int64_t>(std::ceil(q * static_cast<double>(count_)));
  int64_t seen = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= rank) return std::min(UpperBound(b), max_);
  }
  return max_;
}

size_t LatencyHistogram::Bucket(int64_t v) {
  if (v < kSubBuckets) return static_cast<size_t>(v);
  const int exponent =
      63 - __builtin_clzll(static_cast<unsigned long long>(v)) - 5;  // v >> exponent in [32, 64)
  return static_cast<size_t>(kSubBuckets + (exponent - 1) * 32 + ((v >> exponent) - 32));
}

int64_t LatencyHistogram::UpperBound(size_t b) {
  if (b < kSubBuckets) return static_cast<int64_t>(b);
  const size_t over = b - kSubBuckets;
  const int exponent = static_cast<int>(over / 32) + 1;
  return ((static_cast<int64_t>(over % 32) + 33) << exponent) - 1;
}

}  // namespace ledger::bench
