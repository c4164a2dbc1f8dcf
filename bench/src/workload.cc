#include "bench/workload.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "core/time.h"

namespace ledger::workload {
namespace {

using nlohmann::json;

constexpr int kOffsetMinutes = 8 * 60;

std::string Id(const char* prefix, int n, int width) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%s%0*d", prefix, width, n);
  return buffer;
}

class Generator {
 public:
  explicit Generator(const Shape& shape) : shape_(shape), random_(shape.seed) {}

  std::vector<std::string> Run() {
    const int64_t day_start = LocalMidnightUtcNs(shape_.day, kOffsetMinutes);
    int64_t t = day_start;  // set-up happens in the first minutes of the day
    auto tick = [&](int64_t step_ns) {
      t += step_ns;
      return t;
    };
    for (int m = 1; m <= shape_.merchants; ++m) {
      static const int kFees[] = {0, 30, 38, 60, 100};
      Emit({{"type", "open_merchant"},
            {"command_id", "m-" + Merchant(m)},
            {"merchant", Merchant(m)},
            {"name", "Merchant " + std::to_string(m)},
            {"fee_bps", kFees[Uniform(0, 4)]}},
           tick(1'000'000));
    }
    for (int c = 1; c <= shape_.customers; ++c) {
      const std::string customer = Customer(c);
      Emit({{"type", "open_account"},
            {"command_id", "a-" + customer + "-d"},
            {"customer", customer},
            {"account", customer + ":debit"},
            {"kind", "debit_card"}},
           tick(1'000'000));
      // A few customers hold little money, so some payments fail for funds.
      const int64_t deposit = Chance(5) ? Uniform(1'000, 20'000) : Uniform(50'000, 2'000'000);
      Emit({{"type", "deposit"},
            {"command_id", "d-" + customer},
            {"account", customer + ":debit"},
            {"amount_minor", deposit}},
           tick(1'000'000));
      const bool credit = Chance(30);
      has_credit_.push_back(credit);
      if (credit) {
        Emit({{"type", "open_account"},
              {"command_id", "a-" + customer + "-c"},
              {"customer", customer},
              {"account", customer + ":credit"},
              {"kind", "credit_card"},
              {"credit_limit_minor", Uniform(10, 50) * 100'000}},
             tick(1'000'000));
      }
      int64_t points = 0;
      if (Chance(60)) {
        points = Uniform(1'000, 50'000);
        Emit({{"type", "award_points"},
              {"command_id", "p-" + customer},
              {"customer", customer},
              {"points", points}},
             tick(1'000'000));
      }
      points_.push_back(points);
      std::string coupon;
      if (Chance(25)) {
        coupon = "CP-" + customer;
        const int64_t value = Uniform(5, 50) * 100;
        json issue = {{"type", "issue_coupon"},
                      {"command_id", "c-" + customer},
                      {"coupon", coupon},
                      {"customer", customer},
                      {"value_minor", value},
                      {"min_spend_minor", value * 2},
                      {"funded_by", Chance(50) ? "bank" : "merchant"},
                      {"expires_at", Chance(5) ? "2026-11-20T23:59:59+08:00" : "2026-12-31T23:59:59+08:00"}};
        if (Chance(50)) issue["merchant"] = Merchant(Uniform(1, shape_.merchants));
        Emit(issue, tick(1'000'000));
      }
      coupons_.push_back(coupon);
      if (Chance(10)) {
        json limit = {
            {"type", "set_customer_limit"}, {"command_id", "l-" + customer}, {"customer", customer}};
        if (Chance(50)) {
          limit["medium"] = "sms";
          limit["daily_minor"] = 200'000;
        } else {
          limit["medium"] = "password_free";
          limit["daily_count"] = 3;
        }
        Emit(limit, tick(1'000'000));
      }
    }
    // Payments spread over the rest of the day (some after the 23:00 cut-off), with reversals, refunds and
    // repeats following them.
    const int64_t start = std::max(t, day_start + kNanosPerHour);
    const int64_t span = day_start + kNanosPerDay - start;
    for (int i = 0; i < shape_.payments; ++i) {
      const int64_t at = start + span / shape_.payments * i + Uniform(0, span / shape_.payments / 2);
      Payment(i, at);
    }
    std::stable_sort(lines_.begin(), lines_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> out;
    out.reserve(lines_.size());
    for (auto& [at, line] : lines_) out.push_back(std::move(line));
    return out;
  }

 private:
  struct Paid {
    std::string merchant;
    std::string order;
    int64_t amount;
    int64_t at;
  };

  void Payment(int i, int64_t at) {
    const int c = static_cast<int>(Uniform(1, shape_.customers));
    const std::string customer = Customer(c);
    const std::string merchant = Merchant(static_cast<int>(Uniform(1, shape_.merchants)));
    const std::string order = "ORD" + std::to_string(i + 1);
    static const char* kCardChannels[] = {"b2c_pc", "b2c_h5",    "b2c_sdk",    "b2b",
                                          "c2c",    "qr_static", "qr_dynamic", "qr_customer_presented",
                                          "nfc"};
    static const char* kWalletChannels[] = {"aggregated", "qr_static", "qr_dynamic", "qr_customer_presented"};
    static const char* kMedia[] = {"u_shield", "password_device", "otp_card",
                                   "sms",      "fingerprint",     "password_free"};
    static const int kMediaWeights[] = {10, 5, 10, 30, 25, 20};
    json pay = {{"type", "pay"},
                {"command_id", merchant + ":" + order},
                {"merchant", merchant},
                {"merchant_order_no", order},
                {"customer", customer}};
    const int funding_roll = static_cast<int>(Uniform(1, 100));
    if (funding_roll <= 60) {
      pay["funding"] = "own_account";
      pay["account"] = customer + (has_credit_[c - 1] && Chance(30) ? ":credit" : ":debit");
    } else if (funding_roll <= 75) {
      pay["funding"] = "other_bank";
      pay["card_token"] = "tok-" + customer;
    } else {
      pay["funding"] = funding_roll <= 90 ? "wechat" : "unionpay";
    }
    const bool card = funding_roll <= 75;
    pay["channel"] = card ? kCardChannels[Uniform(0, 8)] : kWalletChannels[Uniform(0, 3)];
    if (card) {
      int roll = static_cast<int>(Uniform(1, 100));
      int medium = 0;
      while (roll > kMediaWeights[medium]) roll -= kMediaWeights[medium++];
      pay["medium"] = kMedia[medium];
    }
    // Most orders are small; a few are large enough to meet the limits. QR codes carry small amounts.
    const int size_roll = static_cast<int>(Uniform(1, 100));
    int64_t amount = size_roll <= 70   ? Uniform(100, 20'000)
                     : size_roll <= 97 ? Uniform(20'000, 200'000)
                                       : Uniform(500'000, 2'000'000);
    if (pay["channel"] == "qr_static" && size_roll <= 97) amount = Uniform(100, 30'000);
    int64_t tenders = 0;
    if (points_[c - 1] > 0 && Chance(15)) {
      const int64_t points = std::min<int64_t>(points_[c - 1], Chance(10) ? amount : amount / 5);
      if (points > 0) {
        pay["points"] = points;
        tenders += points;
        if (points == amount) tenders = amount;  // points cover the whole order
      }
    }
    if (!coupons_[c - 1].empty() && Chance(10) && tenders < amount) {
      pay["coupon"] = coupons_[c - 1];
      if (amount < 10'000) amount += 10'000;  // usually above the minimum spend
    }
    if (Chance(5) && tenders + 1'000 < amount / 2) pay["discount_minor"] = Uniform(100, 1'000);
    pay["order_amount_minor"] = amount;
    pay["occurred_at"] = FormatIso8601(at, kOffsetMinutes);
    Emit(pay, at);
    paid_.push_back({merchant, order, amount, at});

    if (Chance(1)) Emit(pay, at + kNanosPerSecond);  // a merchant retry: must come back as duplicate
    if (Chance(3)) {  // reversal minutes later (after 23:00 some fall past the clearing date)
      const Paid& p =
          paid_[static_cast<size_t>(Uniform(std::max<int64_t>(0, static_cast<int64_t>(paid_.size()) - 20),
                                            static_cast<int64_t>(paid_.size()) - 1))];
      const int64_t when = std::max(at, p.at) + Uniform(1, 30) * kNanosPerMinute;
      Emit({{"type", "reverse"},
            {"command_id", p.merchant + ":" + p.order + ":rev"},
            {"merchant", p.merchant},
            {"merchant_order_no", p.order},
            {"reason", Chance(50) ? "timeout" : "customer cancelled"},
            {"occurred_at", FormatIso8601(when, kOffsetMinutes)}},
           when);
    }
    if (Chance(3) && !paid_.empty()) {  // refunds: partial, sometimes the rest later, some on the next day
      const Paid p = paid_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(paid_.size()) - 1))];
      const int64_t first = std::max<int64_t>(1, p.amount * Uniform(10, 60) / 100);
      const int64_t when = std::max(at, p.at) + Uniform(1, 600) * kNanosPerMinute;
      EmitRefund(p, "RF" + std::to_string(i + 1) + "a", first, when);
      if (Chance(30))
        EmitRefund(p, "RF" + std::to_string(i + 1) + "b", p.amount - first, when + kNanosPerHour);
    }
    if (Chance(1) && i > 0) {  // an over-refund attempt
      const Paid& p = paid_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(paid_.size()) - 1))];
      EmitRefund(p, "RF" + std::to_string(i + 1) + "x", p.amount + 100, at + kNanosPerMinute);
    }
  }

  void EmitRefund(const Paid& p, const std::string& refund_no, int64_t amount, int64_t when) {
    Emit({{"type", "refund"},
          {"command_id", p.merchant + ":" + refund_no},
          {"merchant", p.merchant},
          {"merchant_order_no", p.order},
          {"refund_no", refund_no},
          {"amount_minor", amount},
          {"occurred_at", FormatIso8601(when, kOffsetMinutes)}},
         when);
  }

  // Every command carries its occurred_at, so the day replays the same way whatever the wall clock says.
  void Emit(json command, int64_t at) {
    if (!command.contains("occurred_at")) command["occurred_at"] = FormatIso8601(at, kOffsetMinutes);
    lines_.emplace_back(at, command.dump());
  }

  std::string Customer(int c) const { return Id("C", c, 5); }
  std::string Merchant(int m) const { return Id("M", m, 4); }
  int64_t Uniform(int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(random_);
  }
  bool Chance(int percent) { return Uniform(1, 100) <= percent; }

  Shape shape_;
  std::mt19937_64 random_;
  std::vector<std::pair<int64_t, std::string>> lines_;
  std::vector<bool> has_credit_;
  std::vector<int64_t> points_;
  std::vector<std::string> coupons_;
  std::vector<Paid> paid_;
};

}  // namespace

std::vector<std::string> MakeDay(const Shape& shape) { return Generator(shape).Run(); }

}  // namespace ledger::workload
