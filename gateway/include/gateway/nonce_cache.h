// The nonces merchants' requests carried within the timestamp window: a request whose (merchant, nonce) was
// seen while its first use could still be accepted is a replay. A request is accepted only when its timestamp
// is within the window of the clock, so a nonce needs remembering until its timestamp plus the window, and no
// longer. Bounded: at most `capacity` nonces; when every one is still inside the window a new nonce is
// refused (fail closed: forgetting one would let its request be replayed).
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
    kFull,      // `capacity` nonces are all still inside the window: refused, not remembered
  };

  NonceCache(size_t capacity, int64_t window_seconds);

  // Admits the nonce of a request whose timestamp (seconds) was already checked to be within the window of
  // `now_s`. Forgets nonces whose window has passed first.
  Admission Admit(std::string_view mchid, std::string_view nonce, int64_t timestamp_s, int64_t now_s);
  size_t size() const { return expiry_of_.size(); }

 private:
  void ForgetExpired(int64_t now_s);

  size_t capacity_;
  int64_t window_seconds_;
  std::unordered_map<std::string, int64_t> expiry_of_;  // mchid '\0' nonce -> last second it matters
  std::multimap<int64_t, std::string> by_expiry_;
};

}  // namespace ledger::gateway
