#include "gateway/nonce_cache.h"

#include "core/assert.h"

namespace ledger::gateway {

NonceCache::NonceCache(size_t capacity, int64_t window_seconds)
    : capacity_(capacity), window_seconds_(window_seconds) {
  LEDGER_ASSERT(capacity > 0 && window_seconds > 0);
}

void NonceCache::ForgetExpired(int64_t now_s) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now_s) {
    expiry_of_.erase(by_expiry_.begin()->second);
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
  if (expiry_of_.size() >= capacity_) return Admission::kFull;
  const int64_t expiry = timestamp_s + window_seconds_;
  by_expiry_.emplace(expiry, key);
  expiry_of_.emplace(std::move(key), expiry);
  return Admission::kAdmitted;
}

}  // namespace ledger::gateway
