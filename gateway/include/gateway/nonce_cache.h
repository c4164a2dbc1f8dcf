// The nonces merchants' requests carried within the timestamp window: a request whose (merchant, nonce) was
// seen while its first use could still be accepted is a replay. A request is accepted only when its timestamp
// is within the window of the clock, so a nonce needs remembering until its timestamp plus the window, and no
// longer. Bounded: at most `capacity` nonces, and at most `per_merchant` of one merchant's (so that one
// merchant filling it locks out only itself); a nonce over either bound is refused while the others are still
// inside the window (fail closed: forgetting one would let its request be replayed).
// Persist keeps the admitted nonces in a journal file as well, so that a restarted gateway still refuses a
// replay of a request its previous run admitted.
// Thread-safety: none; one owner.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/status.h"

namespace ledger::gateway {

class NonceCache {
 public:
  enum class Admission {
    kAdmitted,  // first seen: remembered until timestamp + window
    kReplayed,  // seen before within the window
    kFull,      // the cache's or the merchant's bound is reached by nonces still inside the window: refused
  };

  NonceCache(size_t capacity, size_t per_merchant, int64_t window_seconds);
  ~NonceCache();
  NonceCache(const NonceCache&) = delete;
  NonceCache& operator=(const NonceCache&) = delete;

  // Loads the nonces of `path` still inside the window at `now_s` (a missing file: none), then journals there
  // every nonce it admits, one line "EXPIRY MCHID NONCE" written before the nonce counts as admitted (not
  // synced: a restarted process keeps it; after a machine crash a replay inside the window meets the
  // ledger's idempotency of money requests instead). A torn last line (a crash mid-write) is ignored. The
  // file is rewritten with the live nonces once it holds twice as many lines as there are, plus 1,024.
  // Errors: Corruption (a line that is not a nonce), IoError. Call once, before the first Admit.
  Status Persist(const std::string& path, int64_t now_s);

  // Admits the nonce of a request whose timestamp (seconds) was already checked to be within the window of
  // `now_s`. Forgets nonces whose window has passed first. With a journal, a nonce that cannot be written
  // there is refused (kFull): forgetting it on restart would let its request be replayed.
  Admission Admit(std::string_view mchid, std::string_view nonce, int64_t timestamp_s, int64_t now_s);
  size_t size() const { return expiry_of_.size(); }
  int64_t window_seconds() const { return window_seconds_; }

 private:
  void ForgetExpired(int64_t now_s);
  // Remembers a nonce (no bound checked, nothing journaled).
  void Remember(std::string key, std::string_view mchid, int64_t expiry);
  Status LoadJournal(const std::string& path, int64_t now_s);
  // Rewrites the journal with the live nonces (temporary file, then rename) and reopens it for appending.
  Status CompactJournal();

  size_t capacity_;
  size_t per_merchant_;
  int64_t window_seconds_;
  std::map<std::string, size_t, std::less<>> live_of_merchant_;
  std::unordered_map<std::string, int64_t> expiry_of_;  // mchid '\0' nonce -> last second it matters
  std::multimap<int64_t, std::string> by_expiry_;
  std::string journal_path_;
  int journal_fd_ = -1;
  size_t journal_lines_ = 0;
};

}  // namespace ledger::gateway
