// The nonces merchants' requests carried within the timestamp window: a request whose (merchant, nonce) was
// seen while its first use could still be accepted is a replay. A request is accepted only when its timestamp
// is within the window of the clock, so a nonce needs remembering until its timestamp plus the window, and no
// longer. Bounded: at most `capacity` nonces, and at most `per_merchant` of one merchant's (so that one
// merchant filling it locks out only itself); a nonce over either bound is refused while the others are still
// inside the window (fail closed: forgetting one would let its request be replayed).
// Thread-safety: none; one owner.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ledger::gateway {

class NonceCache {
 public:
  enum class Admission {
    kAdmitted,  // first seen: remembered until timestamp + window
    kReplayed,  // seen before within the window
    kFull,      // the cache's or the merchant's bound is reached by nonces still inside the window: refused
  };

  NonceCache(size_t capacity, size_t per_merchant, int64_t window_seconds);

  // Admits the nonce of a request whose timestamp (seconds) was already checked to be within the window of
  // `now_s`. Forgets nonces whose window has passed first.
  Admission Admit(std::string_view mchid, std::string_view nonce, int64_t timestamp_s, int64_t now_s);
  size_t size() const { return expiry_of_.size(); }
  int64_t window_seconds() const { return window_seconds_; }

 private:
  void ForgetExpired(int64_t now_s);

  size_t capacity_;
  size_t per_merchant_;
  int64_t window_seconds_;
  std::unordered_map<std::string, size_t> live_of_merchant_;
  std::unordered_map<std::string, int64_t> expiry_of_;  // mchid '\0' nonce -> last second it matters
  std::multimap<int64_t, std::string> by_expiry_;
};

}  // namespace ledger::gateway
