#include "gateway/nonce_cache.h"

#include "core/assert.h"

namespace ledger::gateway {

namespace {

std::string_view MerchantOf(std::string_view key) { return key.substr(0, key.find('\0')); }

}  // namespace

NonceCache::NonceCache(size_t capacity, size_t per_merchant, int64_t window_seconds)
    : capacity_(capacity), per_merchant_(per_merchant), window_seconds_(window_seconds) {
  LEDGER_ASSERT(capacity > 0 && per_merchant > 0 && window_seconds > 0);
}

void NonceCache::ForgetExpired(int64_t now_s) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now_s) {
    const std::string& key = by_expiry_.begin()->second;
    const auto live = live_of_merchant_.find(std::string(MerchantOf(key)));
    LEDGER_ASSERT(live != live_of_merchant_.end() && live->second > 0);
    if (--live->second == 0) live_of_merchant_.erase(live);
    expiry_of_.erase(key);
    by_expiry_.erase(by_expiry_.begin());
  }
}

NonceCache::Admission NonceCache::Admit(std::string_view mchid, std::string_view nonce, int64_t timestamp_s,
                                        int64_t now_s) {
  ForgetExpired(now_s);
  std::string key;
  key.reserve(mchid.size() + 1 + nonce.size());
  key.append(mchid).push_back('\0');
  key.append(nonce);
  if (expiry_of_.count(key) != 0) return Admission::kReplayed;
  size_t& live = live_of_merchant_[std::string(mchid)];
  if (expiry_of_.size() >= capacity_ || live >= per_merchant_) {
    if (live == 0) live_of_merchant_.erase(std::string(mchid));
    return Admission::kFull;
  }
  ++live;
  const int64_t expiry = timestamp_s + window_seconds_;
  by_expiry_.emplace(expiry, key);
  expiry_of_.emplace(std::move(key), expiry);
  return Admission::kAdmitted;
}

}  // namespace ledger::gateway
