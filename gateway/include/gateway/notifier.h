// The notifier: tells merchants of their payments and refunds, as WeChat Pay API v3 does. Driven by the
// ledger's events (LedgerPort::NoticesAfter): each payment or refund whose order or refund request named a
// notify_url becomes a delivery, POSTed to it with the platform's signature headers and the resource
// (transaction or refund, as the query answers it) encrypted AEAD_AES_256_GCM under the merchant's APIv3 key,
// so the merchant's SDK `callback()` verifies and decrypts it. At least once: a delivery is done when the
// merchant answers 2xx, and retried on the schedule otherwise, up to its end.
//
// Its state — the last event read and the deliveries not done — is one file, replaced whole after each pass
// (gateway/notifier.json), so a restart resumes where the last pass ended: a delivery made but not yet
// recorded is made again (merchants dedupe on the notification id, which is the same every time).
// Thread-safety: RunOnce from one thread at a time; Start/Stop from the owner's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "gateway/ledger_port.h"
#include "gateway/wechat_signature.h"

namespace ledger::gateway {

// WeChat's schedule: the waits after each failed attempt (15 s, 15 s, 30 s, 3 min, 10 min, 20 min, 30 min,
// 30 min, 30 min, 60 min, 3 h, 3 h, 3 h, 6 h, 6 h); after the last, the delivery is given up (logged).
inline const std::vector<int64_t> kWeChatRetrySeconds = {15,   15,   30,    180,   600,   1200,  1800, 1800,
                                                         1800, 3600, 10800, 10800, 10800, 21600, 21600};

struct NotifierOptions {
  std::string gateway_dir;  // the state file, the merchants' APIv3 keys, notify-ca.pem (an extra trusted CA)
  // The state file's name in gateway_dir: one notifier per history (a shard's events), each its own file.
  std::string state_file = "notifier.json";
  // The history's name in notification ids ("" for the one in-process shard; "shard-K" behind Kafka, where
  // every shard numbers its own events, so that two shards' notices of the same sequence differ).
  std::string history;
  std::shared_ptr<const ApiKey> platform_key;
  std::string platform_key_id;
  int timezone_offset_minutes = 480;
  std::vector<int64_t> retry_seconds = kWeChatRetrySeconds;
  std::chrono::milliseconds delivery_deadline{5'000};
  // Deliveries waiting at most; beyond it no more events are read until some are done (nothing is skipped).
  size_t pending_max = 2'000;
  size_t events_per_pass = 4'096;
  size_t deliveries_per_pass = 64;
  size_t parallel_deliveries = 8;
  // One merchant's share: deliveries waiting (beyond it a new notice of that merchant is given up, logged),
  // and attempts per pass (so a merchant whose server never answers holds at most these slots).
  size_t pending_per_merchant = 100;
  size_t attempts_per_merchant_per_pass = 2;
  std::function<int64_t()> clock_s = {};  // seconds since the epoch; the system clock when empty
};

class Notifier {
 public:
  // Reads the state file (none: from the first event). Errors: Corruption naming the file and what is wrong
  // (also a state that read further than the ledger holds), IoError.
  static Result<std::unique_ptr<Notifier>> Open(NotifierOptions options, const LedgerPort& ledger);
  ~Notifier();  // Stop()

  // One pass: reads the notices after the last event read (while fewer than pending_max wait), makes the due
  // deliveries, and replaces the state file. Errors: from the ledger's reads and the state file.
  Status RunOnce();
  // Calls RunOnce every `interval` on its own thread until Stop (an error is logged, the next pass retries).
  void Start(std::chrono::milliseconds interval);
  void Stop();

  uint64_t through() const;
  size_t pending() const;

  struct Delivery;

 private:
  Notifier(NotifierOptions options, const LedgerPort& ledger);
  Status Load();
  // Adds the notices of the events after through_ (while fewer than pending_max wait) and moves through_.
  Status ReadNotices(int64_t now_s);
  // Indexes into deliveries_ of this pass's attempts: due, at most deliveries_per_pass, fairly shared.
  std::vector<size_t> DueDeliveries(int64_t now_s) const;
  Status Save() const;
  // The notification's body for a delivery (its resource encrypted); the error when it cannot be made yet.
  Result<std::string> Body(const Delivery& delivery, int64_t now_s) const;
  // One attempt: kDelivered when the merchant took it (2xx), kFailed otherwise. kUnsigned: nothing was sent
  // (the platform key's token did not sign): not an attempt the merchant failed, so it is tried again at the
  // first interval without counting.
  enum class Attempt : char { kDelivered, kFailed, kUnsigned };
  Attempt Deliver(const Delivery& delivery, int64_t now_s) const;

  NotifierOptions options_;
  const LedgerPort& ledger_;
  std::string state_path_;
  mutable std::mutex mutex_;  // guards through_ and deliveries_ for the readers of the figures
  uint64_t through_ = 0;
  std::vector<Delivery> deliveries_;
  bool signing_failed_ = false;  // the last pass had a delivery the platform key did not sign (RunOnce's)
  std::thread thread_;
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<bool> stop_requested_{false};  // read by a pass between its rounds of deliveries
};

}  // namespace ledger::gateway
