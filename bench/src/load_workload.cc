#include "bench/load_workload.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/time.h"

namespace ledger::bench {
namespace {

constexpr int kOffsetMinutes = 8 * 60;
constexpr int64_t kBenchDay = 20261201;
// Synthetic time between two measured commands: 10,000,000 commands span about 1.2 days of ledger time.
constexpr int64_t kCommandSpacingNs = 10'000'000;

uint64_t Mix(uint64_t x) {  // splitmix64: a well-spread hash of the command index
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

std::string Customer(int c) { return "BC" + std::to_string(c); }
std::string Merchant(int m) { return "BM" + std::to_string(m); }

}  // namespace

LoadKind LoadWorkload::KindOf(int64_t i) const {
  const uint64_t roll = Mix(seed_ ^ static_cast<uint64_t>(i)) % 1000;
  if (roll < 10) return LoadKind::kOverLimit;
  if (roll < 700) return LoadKind::kCard;
  if (roll < 850) return LoadKind::kPoints;
  if (roll < 950) return LoadKind::kCoupon;
  if (roll < 980) return LoadKind::kReversal;
  return LoadKind::kRefund;
}

bool LoadWorkload::NextSetup(std::string* line) {
  using nlohmann::json;
  const int64_t at = StartNs() - kNanosPerHour;
  const std::string when = FormatIso8601(at, kOffsetMinutes);
  while (true) {
    if (setup_merchant_ < merchants_) {
      const std::string m = Merchant(setup_merchant_++);
      *line = json{{"type", "open_merchant"}, {"command_id", "m-" + m}, {"merchant", m}, {"name", m},
                   {"fee_bps", 60},           {"occurred_at", when}}
                  .dump();
      return true;
    }
    if (setup_customer_ < customers_ * 3) {
      const int step = setup_customer_ % 3;
      const std::string c = Customer(setup_customer_++ / 3);
      if (step == 0) {
        *line = json{{"type", "open_account"},  {"command_id", "a-" + c}, {"customer", c},
                     {"account", c + ":debit"}, {"kind", "debit_card"},   {"occurred_at", when}}
                    .dump();
      } else if (step == 1) {
        *line = json{
            {"type", "deposit"},
            {"command_id", "d-" + c},
            {"account", c + ":debit"},
            {"amount_minor", 1'000'000'000},
            {"occurred_at",
             when}}.dump();
      } else {
        *line = json{
            {"type", "award_points"},
            {"command_id", "p-" + c},
            {"customer", c},
            {"points", 100'000'000},
            {"occurred_at",
             when}}.dump();
      }
      return true;
    }
    while (setup_coupon_scan_ < commands_ && KindOf(setup_coupon_scan_) != LoadKind::kCoupon)
      ++setup_coupon_scan_;
    if (setup_coupon_scan_ < commands_) {
      const int64_t i = setup_coupon_scan_++;
      *line = json{
          {"type", "issue_coupon"},
          {"command_id", "c-" + std::to_string(i)},
          {"coupon", "CP" + std::to_string(i)},
          {"customer", CustomerOf(i)},
          {"value_minor", 500},
          {"min_spend_minor", 0},
          {"funded_by", "bank"},
          {"expires_at", "2027-12-31T23:59:59+08:00"},
          {"occurred_at",
           when}}.dump();
      return true;
    }
    return false;
  }
}

std::string LoadWorkload::Measured(int64_t i) const {
  using nlohmann::json;
  const std::string when = FormatIso8601(StartNs() + i * kCommandSpacingNs, kOffsetMinutes);
  const LoadKind kind = KindOf(i);
  if (kind == LoadKind::kReversal || kind == LoadKind::kRefund) {
    // The most recent plain card payment a few commands back (a reversal may meet one already reversed or
    // refunded: a realistic rejection).
    int64_t target = i - 5;
    while (target >= 0 && KindOf(target) != LoadKind::kCard && target > i - 40) --target;
    if (target < 0 || KindOf(target) != LoadKind::kCard) target = std::max<int64_t>(0, i - 5);
    const std::string merchant = MerchantOf(target), order = "B" + std::to_string(target);
    if (kind == LoadKind::kReversal) {
      return json{{"type", "reverse"},    {"command_id", MeasuredCommandId(i)},
                  {"merchant", merchant}, {"merchant_order_no", order},
                  {"reason", "bench"},    {"occurred_at", when}}
          .dump();
    }
    return json{{"type", "refund"},
                {"command_id", MeasuredCommandId(i)},
                {"merchant", merchant},
                {"merchant_order_no", order},
                {"refund_no", "RF" + std::to_string(i)},
                {"amount_minor", AmountOf(target) / 2},
                {"occurred_at", when}}
        .dump();
  }
  static const char* kMedia[] = {"u_shield", "password_device", "fingerprint", "sms", "otp_card"};
  const std::string customer = CustomerOf(i);
  json pay = {{"type", "pay"},
              {"command_id", MeasuredCommandId(i)},
              {"merchant", MerchantOf(i)},
              {"merchant_order_no", "B" + std::to_string(i)},
              {"customer", customer},
              {"funding", "own_account"},
              {"account", customer + ":debit"},
              {"channel", "b2c_h5"},
              {"medium", kMedia[Mix(seed_ + 7 * static_cast<uint64_t>(i)) % 5]},
              {"order_amount_minor", AmountOf(i)},
              {"occurred_at", when}};
  if (kind == LoadKind::kPoints) pay["points"] = AmountOf(i) / 5;
  if (kind == LoadKind::kCoupon) pay["coupon"] = "CP" + std::to_string(i);
  if (kind == LoadKind::kOverLimit) {
    pay["medium"] = "password_free";
    pay["order_amount_minor"] = 200'000;  // above password-free's 1,000.00 per payment
  }
  return pay.dump();
}

std::string LoadWorkload::MeasuredCommandId(int64_t i) const {
  const LoadKind kind = KindOf(i);
  const char* prefix = kind == LoadKind::kReversal ? "rv-" : kind == LoadKind::kRefund ? "rf-" : "py-";
  return prefix + std::to_string(i);
}

std::string LoadWorkload::WarmUp() const {
  const std::string customer = CustomerOf(0);
  return nlohmann::json{{"type", "pay"},
                        {"command_id", kWarmUpCommandId},
                        {"merchant", "BM-warm-up"},
                        {"merchant_order_no", "W0"},
                        {"customer", customer},
                        {"funding", "own_account"},
                        {"account", customer + ":debit"},
                        {"channel", "b2c_h5"},
                        {"medium", "u_shield"},
                        {"order_amount_minor", 1'000},
                        {"occurred_at", FormatIso8601(StartNs(), kOffsetMinutes)}}
      .dump();
}

int64_t LoadWorkload::StartNs() const {
  return LocalMidnightUtcNs(kBenchDay, kOffsetMinutes) + 8 * kNanosPerHour;
}

int64_t LoadWorkload::AmountOf(int64_t i) const {
  return 1'000 + static_cast<int64_t>(Mix(seed_ * 31 + static_cast<uint64_t>(i)) % 19'000);
}

std::string LoadWorkload::CustomerOf(int64_t i) const {
  return Customer(static_cast<int>(Mix(seed_ + static_cast<uint64_t>(i) * 13) % customers_));
}

std::string LoadWorkload::MerchantOf(int64_t i) const { return Merchant(static_cast<int>(i % merchants_)); }

}  // namespace ledger::bench
