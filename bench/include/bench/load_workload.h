// The command stream of `ledger bench`: set-up commands (merchants, accounts, deposits, points, coupons),
// then the measured commands, each a pure function of its index so the stream never has to be held in memory
// (peak RSS then measures the ledger, not the generator).
//
// Mix of the measured phase (per command, decided by a hash of its index so set-up can prepare for it):
// 70% card payments, 15% payments with points, 10% with a coupon, 3% reversals, 2% refunds; about 1% of the
// payments break a limit (password-free over its per-payment limit) and are rejected.
// Thread-safety: Measured and KindOf are const and may run on any thread; NextSetup is not thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace ledger::bench {

enum class LoadKind { kCard, kPoints, kCoupon, kReversal, kRefund, kOverLimit };

class LoadWorkload {
 public:
  LoadWorkload(int64_t commands, int customers, int merchants, uint64_t seed)
      : commands_(commands), customers_(customers), merchants_(merchants), seed_(seed) {}

  // What the measured command `i` is.
  LoadKind KindOf(int64_t i) const;
  // The next set-up command as one JSON line; false when set-up is done.
  bool NextSetup(std::string* line);
  // The measured command `i` as one JSON line (0 <= i < commands).
  std::string Measured(int64_t i) const;
  // The command id of the measured command `i` (unique within the stream: its kind's prefix and `i`).
  std::string MeasuredCommandId(int64_t i) const;
  // A command that exercises the whole command path and changes no decision of the measured commands: a
  // payment to a merchant that does not exist, at the time of the first measured command. It is rejected
  // (one CommandRejected event, no money moved, no limit used). Its id is kWarmUpCommandId.
  std::string WarmUp() const;
  static constexpr char kWarmUpCommandId[] = "bench-warm-up";

 private:
  int64_t StartNs() const;
  int64_t AmountOf(int64_t i) const;
  std::string CustomerOf(int64_t i) const;
  std::string MerchantOf(int64_t i) const;

  int64_t commands_;
  int customers_, merchants_;
  uint64_t seed_;
  int setup_merchant_ = 0, setup_customer_ = 0;
  int64_t setup_coupon_scan_ = 0;
};

}  // namespace ledger::bench
