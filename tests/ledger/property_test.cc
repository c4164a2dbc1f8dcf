// Goal: thousands of seeded random commands, committed in random groups, keep every invariant.
//
// A generator keeps a model of what the ledger must hold (accounts, coupons, payments, limit usage). After
// every group the test checks, from the store: postings sum to zero per unit, no debit card below zero, no
// credit card past its limit, no points balance below zero, no usage record over an effective limit, the
// usage records equal the usage recomputed from the accepted results, refunds never pass a tender. Groups
// of exact duplicates change nothing, and a rebuild from the events column family is byte-identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/money.h"
#include "core/time.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "replay/replay.h"
#include "state/records.h"
#include "storage/store.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::TempDir;
using Kind = CommandResult::Kind;

// Bounds of a run. Each seed submits kCommandsPerSeed commands; the loop bound on groups only guards against
// a generator that stops making progress.
constexpr int kCommandsPerSeed = 4000;
constexpr int kGroupsMax = 10'000;
// A group of nothing but exact duplicates every kDuplicateGroupEvery groups.
constexpr int kDuplicateGroupEvery = 9;
// A rebuild from the events every kRebuildEveryGroups groups (and at the end): it opens a fresh RocksDB.
constexpr int kRebuildEveryGroups = 25;
constexpr int kInitialMerchants = 8;
constexpr int kInitialCustomers = 40;
// 2026-11-29T09:00:00+08:00: the run crosses several days, their 23:00 cut-offs and the month end.
constexpr std::string_view kStart = "2026-11-29T09:00:00+08:00";

const char* kCardChannels[] = {
    "b2c_pc", "b2c_h5", "b2c_sdk", "b2b", "c2c", "qr_static", "qr_dynamic", "qr_customer_presented", "nfc"};
const char* kWalletChannels[] = {"aggregated", "qr_static", "qr_dynamic", "qr_customer_presented"};
const char* kNonQrStaticCardChannels[] = {"b2c_pc", "b2c_h5", "b2c_sdk", "b2b", "c2c", "qr_dynamic", "nfc"};

const char* KindName(Kind kind) {
  return kind == Kind::kAccepted ? "accepted" : kind == Kind::kRejected ? "rejected" : "duplicate";
}

fb::Medium MediumOf(std::string_view name) {
  for (int i = 0; i < kMediumCount; ++i) {
    if (name == fb::EnumNameMedium(static_cast<fb::Medium>(i))) return static_cast<fb::Medium>(i);
  }
  return fb::Medium::none;
}

fb::Channel ChannelOf(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(fb::Channel::aggregated); ++i) {
    if (name == fb::EnumNameChannel(static_cast<fb::Channel>(i))) return static_cast<fb::Channel>(i);
  }
  ADD_FAILURE() << "unknown channel " << name;
  return fb::Channel::b2c_pc;
}

// The bank's policy for a medium, lowered by the customer's own settings (README: set_customer_limit).
MediumPolicy Effective(const LedgerConfig& config, fb::Medium medium, const fb::LimitOverrideRecordT& own) {
  MediumPolicy limits = config.medium_policy[static_cast<int>(medium)];
  auto lower = [](int64_t policy, int64_t mine) {
    if (mine < 0) return policy;
    return policy < 0 ? mine : std::min(policy, mine);
  };
  limits.per_payment_minor = lower(limits.per_payment_minor, own.per_payment_minor);
  limits.daily_minor = lower(limits.daily_minor, own.daily_minor);
  limits.monthly_minor = lower(limits.monthly_minor, own.monthly_minor);
  limits.daily_count = lower(limits.daily_count, own.daily_count);
  return limits;
}

// (amount_minor, count) of a usage record.
using Usage = std::pair<int64_t, int64_t>;
using UsageMap = std::map<std::string, Usage>;

std::vector<std::string> Split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(separator, start);
    parts.emplace_back(
        text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

struct Expectation {
  Kind kind = Kind::kAccepted;
  std::string reason;  // empty for accepted
  // For an exact duplicate: the original's result (transaction id, sequences and reason come back).
  std::optional<CommandResult> original;
};

// One generated command line, what the ledger must answer (when the model knows it), and how the model
// follows the answer.
struct Step {
  std::string line;
  std::string what;
  std::optional<Expectation> expect;
  std::function<void(const CommandResult&)> apply;
  bool new_command_id = true;  // false for exact duplicates and same-id-other-content
};

struct CustomerModel {
  std::string id;
  bool debit = false;
  bool credit = false;
  int64_t points_awarded = 0;
  std::vector<std::string> coupons;
};

struct CouponModel {
  std::string customer;
  std::string merchant;
  int64_t value_minor = 0;
  int64_t min_spend_minor = 0;
  int64_t expires_at_ns = 0;
  bool used = false;
};

struct PaymentModel {
  std::string merchant;
  std::string order;
  std::string customer;
  int64_t order_minor = 0;
  int64_t card_minor = 0;
  bool medium_limited = false;
  fb::Medium medium = fb::Medium::none;
  fb::Channel channel = fb::Channel::b2c_pc;
  int limit_date = 0;
  int clearing_date = 0;
  std::string coupon;
  bool reversed = false;
  int64_t refunded_minor = 0;
  int refunds = 0;
};

// Figures of a run, printed at the end.
struct Figures {
  int commands = 0;
  int groups = 0;
  int duplicate_groups = 0;
  int rebuilds = 0;
  int largest_group = 0;
  std::map<std::string, int> by_case;     // generator case -> count
  std::map<std::string, int> by_outcome;  // accepted / duplicate / reason -> count
  std::string last_occurred_at;
  int boundary_snaps = 0;  // jumps to 22:59:59, 23:00:00, 23:59:59 or midnight
};

// A seeded generator of commands with a model of the ledger's state. Interactive: each Step's result is fed
// back through Observe before the next Step is made, so the model knows what was accepted.
class Generator {
 public:
  Generator(uint64_t seed, const LedgerConfig& config)
      : random_(seed), config_(config), now_(*ParseIso8601(kStart)) {}

  Step Next() {
    Advance();
    if (static_cast<int>(merchants_.size()) + pending_merchants_ < kInitialMerchants) return OpenMerchant();
    if (static_cast<int>(customers_.size()) < kInitialCustomers) OpenCustomer();
    if (!pending_.empty() && (active_.size() < 10 || Chance(40))) return PopPending();
    if (active_.empty()) {
      OpenCustomer();
      return PopPending();
    }
    const int roll = static_cast<int>(Uniform(1, 1000));
    if (roll <= 25) {
      OpenCustomer();
      return PopPending();
    }
    if (roll <= 30) return OpenMerchant();
    if (roll <= 33) return OpenMerchantAgain();
    if (roll <= 38) return OpenAccountAgain();
    if (roll <= 75) return Deposit();
    if (roll <= 90) return AwardPoints();
    if (roll <= 115) return IssueCoupon(active_[Index(active_.size())]);
    if (roll <= 120) return SetLimitAbovePolicy();
    if (roll <= 125) return Unknown();
    if (roll <= 530) return Pay();
    if (roll <= 560) return CountEdge();
    if (roll <= 650) return MediumLimitEdge();
    if (roll <= 680) return QrStaticEdge();
    if (roll <= 720) return PayWithCoupon();
    if (roll <= 730) return PayDuplicateOrder();
    if (roll <= 790) return Reverse();
    if (roll <= 880) return Refund();
    if (roll <= 960) return ExactDuplicate();
    return SameIdOtherContent();
  }

  // An exact resubmission of an earlier command line (needs HasHistory()).
  Step ExactDuplicate() {
    if (history_.empty()) return Deposit();
    const auto& [line, original] = history_[Index(history_.size())];
    Step step;
    step.line = line;
    step.what = "exact_duplicate";
    step.expect = Expectation{Kind::kDuplicate, original.reason, original};
    step.new_command_id = false;
    return step;
  }

  bool HasHistory() const { return !history_.empty(); }
  int64_t now() const { return now_; }
  int boundary_snaps() const { return boundary_snaps_; }

  // Checks the result against the expectation, then moves the model on.
  void Observe(const Step& step, const CommandResult& result, Figures* figures) {
    figures->commands += 1;
    figures->by_case[step.what] += 1;
    figures->by_outcome[result.kind == Kind::kAccepted    ? "accepted"
                        : result.kind == Kind::kDuplicate ? "duplicate"
                                                          : result.reason] += 1;
    if (step.expect) {
      const Expectation& expect = *step.expect;
      if (result.kind != expect.kind || result.reason != expect.reason) {
        ADD_FAILURE() << step.what << ": expected " << KindName(expect.kind) << " " << expect.reason
                      << ", got " << KindName(result.kind) << " " << result.reason
                      << "\n  command: " << step.line << "\n  at: " << testing::At(now_);
      }
      if (expect.original) {
        EXPECT_EQ(result.transaction_id, expect.original->transaction_id) << step.line;
        EXPECT_EQ(result.sequences, expect.original->sequences) << step.line;
      }
    }
    if (result.kind == Kind::kAccepted || result.kind == Kind::kRejected) {
      EXPECT_FALSE(result.sequences.empty()) << "a decided command records events: " << step.line;
    }
    if (result.kind == Kind::kDuplicate) {
      EXPECT_FALSE(step.new_command_id) << "a new command id came back as duplicate: " << step.line;
      return;  // a duplicate changes nothing
    }
    if (step.apply) step.apply(result);
    if (step.new_command_id) history_.emplace_back(step.line, result);
  }

  // Usage recomputed from the accepted payments and reversals, keyed like the store (zero entries dropped).
  UsageMap ModelUsage() const {
    UsageMap all;
    for (const UsageMap* part : {&daily_, &monthly_, &channel_}) {
      for (const auto& [key, usage] : *part) {
        if (usage != Usage{0, 0}) all.emplace(key, usage);
      }
    }
    return all;
  }
  const std::vector<PaymentModel>& payments() const { return payments_; }
  const std::map<std::string, CouponModel>& coupons() const { return coupons_; }

 private:
  // ---- randomness and time ----
  int64_t Uniform(int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(random_);
  }
  bool Chance(int percent) { return Uniform(1, 100) <= percent; }
  size_t Index(size_t size) { return static_cast<size_t>(Uniform(0, static_cast<int64_t>(size) - 1)); }
  template <typename T, size_t N>
  const T& Pick(const T (&items)[N]) {
    return items[Index(N)];
  }

  // occurred_at never goes back: most steps move on by up to 100 s, some stay on the same instant, and some
  // jump to the next 22:59:59, 23:00:00 (clearing cut-off), 23:59:59 or midnight and then creep by seconds.
  void Advance() {
    if (creep_steps_ > 0) {
      --creep_steps_;
      now_ += Uniform(0, 1) * kNanosPerSecond;
      return;
    }
    const int roll = static_cast<int>(Uniform(1, 100));
    if (roll <= 15) return;
    if (roll <= 19) {
      const int64_t midnight = LocalMidnightUtcNs(LocalDate(now_, config_.timezone_offset_minutes),
                                                  config_.timezone_offset_minutes);
      const int64_t cutoff = midnight + int64_t{config_.clearing_cutoff_minutes} * kNanosPerMinute;
      for (int64_t boundary : {cutoff - kNanosPerSecond, cutoff, midnight + kNanosPerDay - kNanosPerSecond,
                               midnight + kNanosPerDay}) {
        if (boundary > now_) {
          if (boundary - now_ <= 3 * kNanosPerHour) {
            now_ = boundary;
            creep_steps_ = 20;
            boundary_snaps_ += 1;
            return;
          }
          break;
        }
      }
    }
    now_ += Uniform(1, 100) * kNanosPerSecond;
  }

  int LimitDate() const { return LocalDate(now_, config_.timezone_offset_minutes); }
  int Clearing() const {
    return ClearingDate(now_, config_.timezone_offset_minutes, config_.clearing_cutoff_minutes);
  }

  Step Make(json command, std::string what, std::optional<Expectation> expect = std::nullopt) {
    command["occurred_at"] = testing::At(now_);
    Step step;
    step.line = command.dump();
    step.what = std::move(what);
    step.expect = std::move(expect);
    return step;
  }
  static Expectation Accepted() { return Expectation{Kind::kAccepted, "", std::nullopt}; }
  static Expectation Rejected(const char* reason) {
    return Expectation{Kind::kRejected, reason, std::nullopt};
  }

  std::string NewId(const char* prefix) { return prefix + std::to_string(++id_counter_); }

  Step PopPending() {
    std::function<Step()> make = std::move(pending_.front());
    pending_.pop_front();
    return make();
  }

  // ---- directory ----
  Step OpenMerchant() {
    const std::string merchant = NewId("M");
    static const int kFees[] = {0, 30, 38, 60, 100};
    pending_merchants_ += 1;
    Step step = Make({{"type", "open_merchant"},
                      {"command_id", "m-" + merchant},
                      {"merchant", merchant},
                      {"name", "Shop " + merchant},
                      {"fee_bps", Pick(kFees)}},
                     "open_merchant", Accepted());
    step.apply = [this, merchant](const CommandResult& result) {
      pending_merchants_ -= 1;
      if (result.kind == Kind::kAccepted) merchants_.push_back(merchant);
    };
    return step;
  }

  Step OpenMerchantAgain() {
    if (merchants_.empty()) return OpenMerchant();
    const std::string& merchant = merchants_[Index(merchants_.size())];
    return Make({{"type", "open_merchant"},
                 {"command_id", NewId("m-again-")},
                 {"merchant", merchant},
                 {"name", "Again"},
                 {"fee_bps", 10}},
                "open_merchant_again", Rejected(reason::kAlreadyExists));
  }

  // Queues the set-up of a new customer: debit account, deposit, maybe a credit card, points, coupons and own
  // limits. The customer pays only once the set-up is done, so its own limits hold for every payment.
  void OpenCustomer() {
    const int index = static_cast<int>(customers_.size());
    customers_.emplace_back();
    customers_.back().id = "C" + std::to_string(index + 1);
    const std::string customer = customers_.back().id;
    std::vector<std::function<Step()>> setup;
    setup.push_back([this, index, customer]() {
      Step step = Make({{"type", "open_account"},
                        {"command_id", "a-" + customer + "-d"},
                        {"customer", customer},
                        {"account", customer + ":debit"},
                        {"kind", "debit_card"}},
                       "open_account", Accepted());
      step.apply = [this, index](const CommandResult& r) {
        customers_[index].debit = r.kind == Kind::kAccepted;
      };
      return step;
    });
    setup.push_back([this, customer]() {
      const int64_t amount = Chance(5) ? Uniform(1'000, 20'000) : Uniform(50'000, 3'000'000);
      return Make({{"type", "deposit"},
                   {"command_id", "d-" + customer},
                   {"account", customer + ":debit"},
                   {"amount_minor", amount}},
                  "deposit", Accepted());
    });
    if (Chance(40)) {
      setup.push_back([this, index, customer]() {
        Step step = Make({{"type", "open_account"},
                          {"command_id", "a-" + customer + "-c"},
                          {"customer", customer},
                          {"account", customer + ":credit"},
                          {"kind", "credit_card"},
                          {"credit_limit_minor", Uniform(1, 50) * 100'000}},
                         "open_credit", Accepted());
        step.apply = [this, index](const CommandResult& r) {
          customers_[index].credit = r.kind == Kind::kAccepted;
        };
        return step;
      });
    }
    if (Chance(60)) setup.push_back([this, index]() { return AwardPointsTo(index); });
    const int coupons = Chance(40) ? static_cast<int>(Uniform(1, 2)) : 0;
    for (int i = 0; i < coupons; ++i) setup.push_back([this, index]() { return IssueCoupon(index); });
    if (Chance(25)) setup.push_back([this, index]() { return SetLimit(index, false); });
    if (Chance(10)) setup.push_back([this, index]() { return SetLimit(index, false); });
    // The customer becomes active (may pay) once its last set-up command is decided.
    std::function<Step()> last = std::move(setup.back());
    setup.back() = [this, index, last]() {
      Step step = last();
      std::function<void(const CommandResult&)> apply = step.apply;
      step.apply = [this, index, apply](const CommandResult& r) {
        if (apply) apply(r);
        active_.push_back(index);
      };
      return step;
    };
    for (auto& make : setup) pending_.push_back(std::move(make));
  }

  Step OpenAccountAgain() {
    const CustomerModel& customer = customers_[active_[Index(active_.size())]];
    return Make({{"type", "open_account"},
                 {"command_id", NewId("a-again-")},
                 {"customer", customer.id},
                 {"account", customer.id + ":debit"},
                 {"kind", "debit_card"}},
                "open_account_again", Rejected(reason::kAlreadyExists));
  }

  Step Deposit() {
    const CustomerModel& customer = customers_[active_[Index(active_.size())]];
    const std::string account = customer.id + (customer.credit && Chance(20) ? ":credit" : ":debit");
    return Make({{"type", "deposit"},
                 {"command_id", NewId("d-")},
                 {"account", account},
                 {"amount_minor", Uniform(10'000, 1'000'000)}},
                "deposit", Accepted());
  }

  Step AwardPoints() { return AwardPointsTo(active_[Index(active_.size())]); }

  Step AwardPointsTo(int index) {
    const int64_t points = Uniform(1'000, 50'000);
    Step step = Make({{"type", "award_points"},
                      {"command_id", NewId("p-")},
                      {"customer", customers_[index].id},
                      {"points", points}},
                     "award_points", Accepted());
    step.apply = [this, index, points](const CommandResult& r) {
      if (r.kind == Kind::kAccepted) customers_[index].points_awarded += points;
    };
    return step;
  }

  // A coupon: bank or merchant funded, for any or one merchant, expired, expiring at the end of today
  // (23:59:59, so payments land exactly on and just after the expiry) or valid for a month.
  Step IssueCoupon(int index) {
    const std::string coupon = NewId("CP");
    CouponModel model;
    model.customer = customers_[index].id;
    model.value_minor = Uniform(5, 50) * 100;
    model.min_spend_minor = Chance(10) ? 0 : model.value_minor * 2;
    if (Chance(50) && !merchants_.empty()) model.merchant = merchants_[Index(merchants_.size())];
    const int64_t midnight =
        LocalMidnightUtcNs(LocalDate(now_, config_.timezone_offset_minutes), config_.timezone_offset_minutes);
    const int roll = static_cast<int>(Uniform(1, 100));
    model.expires_at_ns = roll <= 10   ? now_ - kNanosPerDay
                          : roll <= 40 ? midnight + kNanosPerDay - kNanosPerSecond
                                       : now_ + 30 * kNanosPerDay;
    json command = {{"type", "issue_coupon"},
                    {"command_id", "c-" + coupon},
                    {"coupon", coupon},
                    {"customer", model.customer},
                    {"value_minor", model.value_minor},
                    {"min_spend_minor", model.min_spend_minor},
                    {"funded_by", Chance(50) ? "bank" : "merchant"},
                    {"expires_at", testing::At(model.expires_at_ns)}};
    if (!model.merchant.empty()) command["merchant"] = model.merchant;
    Step step = Make(command, "issue_coupon", Accepted());
    step.apply = [this, index, coupon, model](const CommandResult& r) {
      if (r.kind != Kind::kAccepted) return;
      coupons_[coupon] = model;
      customers_[index].coupons.push_back(coupon);
    };
    return step;
  }

  // A customer's own limit, at or below the bank's policy (set before the customer's first payment).
  Step SetLimit(int index, bool above_policy) {
    const fb::Medium medium = static_cast<fb::Medium>(Uniform(0, kMediumCount - 1));
    const MediumPolicy& policy = config_.medium_policy[static_cast<int>(medium)];
    json command = {{"type", "set_customer_limit"},
                    {"command_id", NewId("l-")},
                    {"customer", customers_[index].id},
                    {"medium", fb::EnumNameMedium(medium)}};
    if (above_policy) {
      // Every medium has a daily policy: one fen more is above it.
      command["daily_minor"] = policy.daily_minor + 1;
      return Make(command, "set_limit_above_policy", Rejected(reason::kLimitAbovePolicy));
    }
    auto within = [&](int64_t limit, int64_t low, int64_t high) {
      if (limit < 0) return Uniform(low, high);
      return Chance(20) ? limit : Uniform(limit / 10, limit);  // exactly the policy is allowed
    };
    fb::LimitOverrideRecordT set;
    const int fields = static_cast<int>(Uniform(1, 15));  // a non-empty subset of the four limits
    if (fields & 1) set.per_payment_minor = within(policy.per_payment_minor, 10'000, 1'000'000);
    if (fields & 2) set.daily_minor = within(policy.daily_minor, 20'000, 2'000'000);
    if (fields & 4) set.monthly_minor = within(policy.monthly_minor, 200'000, 5'000'000);
    if (fields & 8) set.daily_count = within(policy.daily_count, 1, 6);
    if (set.per_payment_minor >= 0) command["per_payment_minor"] = set.per_payment_minor;
    if (set.daily_minor >= 0) command["daily_minor"] = set.daily_minor;
    if (set.monthly_minor >= 0) command["monthly_minor"] = set.monthly_minor;
    if (set.daily_count >= 0) command["daily_count"] = set.daily_count;
    Step step = Make(command, "set_limit", Accepted());
    const std::string key = keys::LimitOverride(customers_[index].id, medium);
    step.apply = [this, key, set](const CommandResult& r) {
      if (r.kind != Kind::kAccepted) return;
      fb::LimitOverrideRecordT& own = overrides_[key];
      if (set.per_payment_minor >= 0) own.per_payment_minor = set.per_payment_minor;
      if (set.daily_minor >= 0) own.daily_minor = set.daily_minor;
      if (set.monthly_minor >= 0) own.monthly_minor = set.monthly_minor;
      if (set.daily_count >= 0) own.daily_count = set.daily_count;
    };
    return step;
  }

  Step SetLimitAbovePolicy() { return SetLimit(active_[Index(active_.size())], true); }

  // Commands naming things that do not exist.
  Step Unknown() {
    switch (Uniform(0, 3)) {
      case 0:
        return Make({{"type", "deposit"},
                     {"command_id", NewId("d-")},
                     {"account", "CX1:debit"},
                     {"amount_minor", 100}},
                    "deposit_unknown", Rejected(reason::kUnknownAccount));
      case 1:
        return Make({{"type", "pay"},
                     {"command_id", NewId("MX:")},
                     {"merchant", "MX"},
                     {"merchant_order_no", "O1"},
                     {"customer", customers_[active_[0]].id},
                     {"funding", "wechat"},
                     {"channel", "aggregated"},
                     {"order_amount_minor", 100}},
                    "pay_unknown_merchant", Rejected(reason::kUnknownMerchant));
      case 2:
        return Make({{"type", "reverse"},
                     {"command_id", NewId("rev-")},
                     {"merchant", merchants_[0]},
                     {"merchant_order_no", NewId("NO-SUCH-ORDER-")},
                     {"reason", "timeout"}},
                    "reverse_unknown", Accepted());  // closes the order, moves nothing
      default:
        return Make({{"type", "refund"},
                     {"command_id", NewId("rf-")},
                     {"merchant", merchants_[0]},
                     {"merchant_order_no", "NO-SUCH-ORDER"},
                     {"refund_no", NewId("R")},
                     {"amount_minor", 100}},
                    "refund_unknown", Rejected(reason::kOriginalNotFound));
    }
  }

  // ---- payments ----
  json PayCommand(const std::string& merchant, const std::string& order, const std::string& customer) {
    return {{"type", "pay"},
            {"command_id", merchant + ":" + order},
            {"merchant", merchant},
            {"merchant_order_no", order},
            {"customer", customer}};
  }

  // Folds an accepted payment into the model; first checks that it kept within every limit in force.
  void RecordPayment(const PaymentModel& payment) {
    if (payment.medium_limited) {
      const MediumPolicy limits = EffectiveLimits(payment.customer, payment.medium);
      const Usage& daily = daily_[keys::DailyUsage(payment.customer, payment.medium, payment.limit_date)];
      const Usage& monthly =
          monthly_[keys::MonthlyUsage(payment.customer, payment.medium, payment.limit_date / 100)];
      auto within = [](int64_t used, int64_t more, int64_t limit) {
        return limit < 0 || used + more <= limit;
      };
      EXPECT_TRUE(within(0, payment.card_minor, limits.per_payment_minor) &&
                  within(daily.first, payment.card_minor, limits.daily_minor) &&
                  within(monthly.first, payment.card_minor, limits.monthly_minor) &&
                  within(daily.second, 1, limits.daily_count))
          << "accepted payment " << payment.merchant << "/" << payment.order << " of " << payment.customer
          << " passes a limit of " << fb::EnumNameMedium(payment.medium) << ": card " << payment.card_minor
          << ", used today " << daily.first << " in " << daily.second << " payments, this month "
          << monthly.first;
    }
    if (payment.channel == fb::Channel::qr_static && config_.qr_static_daily_minor >= 0) {
      const Usage& used =
          channel_[keys::ChannelDailyUsage(payment.customer, payment.channel, payment.limit_date)];
      EXPECT_LE(used.first + payment.card_minor, config_.qr_static_daily_minor)
          << "accepted qr_static payment " << payment.merchant << "/" << payment.order
          << " passes the channel limit";
    }
    AddUsage(payment, +1);
    if (!payment.coupon.empty()) coupons_[payment.coupon].used = true;
    payment_index_[payment.merchant + "/" + payment.order] = payments_.size();
    payments_.push_back(payment);
  }

  void AddUsage(const PaymentModel& payment, int sign) {
    auto bump = [&](Usage& usage) {
      usage.first += sign * payment.card_minor;
      usage.second += sign;
    };
    if (payment.medium_limited) {
      bump(daily_[keys::DailyUsage(payment.customer, payment.medium, payment.limit_date)]);
      bump(monthly_[keys::MonthlyUsage(payment.customer, payment.medium, payment.limit_date / 100)]);
    }
    bump(channel_[keys::ChannelDailyUsage(payment.customer, payment.channel, payment.limit_date)]);
  }

  MediumPolicy EffectiveLimits(const std::string& customer, fb::Medium medium) const {
    const auto it = overrides_.find(keys::LimitOverride(customer, medium));
    return Effective(config_, medium, it == overrides_.end() ? fb::LimitOverrideRecordT() : it->second);
  }

  // The model of the payment `command` describes, as the ledger records it when it accepts it.
  PaymentModel PaymentOf(const json& command) {
    PaymentModel payment;
    payment.merchant = command["merchant"].get<std::string>();
    payment.order = command["merchant_order_no"].get<std::string>();
    payment.customer = command["customer"].get<std::string>();
    payment.order_minor = command["order_amount_minor"].get<int64_t>();
    const std::string funding = command["funding"].get<std::string>();
    payment.medium_limited = funding == "own_account" || funding == "other_bank";
    payment.medium = payment.medium_limited ? MediumOf(command.value("medium", "")) : fb::Medium::none;
    payment.channel = ChannelOf(command["channel"].get<std::string>());
    payment.limit_date = LimitDate();
    payment.clearing_date = Clearing();
    payment.coupon = command.value("coupon", "");
    int64_t tenders = command.value("points", int64_t{0}) * config_.point_value_minor +
                      command.value("discount_minor", int64_t{0});
    if (!payment.coupon.empty()) {
      const auto it = coupons_.find(payment.coupon);
      if (it != coupons_.end()) tenders += it->second.value_minor;
    }
    payment.card_minor = payment.order_minor - tenders;
    return payment;
  }

  Step PayStep(json command, std::string what, std::optional<Expectation> expect) {
    Step step = Make(command, std::move(what), std::move(expect));
    const PaymentModel payment = PaymentOf(command);
    step.apply = [this, payment](const CommandResult& r) {
      if (r.kind != Kind::kAccepted) return;
      if (!payment.coupon.empty() && coupons_.count(payment.coupon) == 0) {
        ADD_FAILURE() << "payment accepted with a coupon that was never issued: " << payment.coupon;
      }
      RecordPayment(payment);
    };
    return step;
  }

  // A realistic payment: any funding, channel and medium, sometimes with points, a coupon or a discount; no
  // expectation (the model does not track every balance), but the model checks limits if it is accepted.
  Step Pay() {
    const CustomerModel& customer = customers_[active_[Index(active_.size())]];
    const std::string merchant = merchants_[Index(merchants_.size())];
    json pay = PayCommand(merchant, NewId("O"), customer.id);
    const int funding_roll = static_cast<int>(Uniform(1, 100));
    if (funding_roll <= 55) {
      pay["funding"] = "own_account";
      pay["account"] = customer.id + (customer.credit && Chance(35) ? ":credit" : ":debit");
    } else if (funding_roll <= 70) {
      pay["funding"] = "other_bank";
      pay["card_token"] = "tok-" + customer.id;
    } else {
      pay["funding"] = funding_roll <= 85 ? "wechat" : "unionpay";
    }
    const bool card = funding_roll <= 70;
    pay["channel"] = card ? Pick(kCardChannels) : Pick(kWalletChannels);
    if (card) {
      static const char* kMedia[] = {"u_shield", "password_device", "otp_card",
                                     "sms",      "fingerprint",     "password_free"};
      pay["medium"] = Pick(kMedia);
    }
    const int size_roll = static_cast<int>(Uniform(1, 100));
    int64_t amount = size_roll <= 70   ? Uniform(100, 20'000)
                     : size_roll <= 95 ? Uniform(20'000, 300'000)
                                       : Uniform(300'000, 3'000'000);
    if (pay["channel"] == "qr_static" && size_roll <= 95) amount = Uniform(100, 30'000);
    int64_t tenders = 0;
    if (customer.points_awarded > 0 && Chance(15)) {
      const int64_t points =
          Chance(5) ? customer.points_awarded + 1 : std::min(customer.points_awarded, amount / 5);
      if (points > 0 && points <= amount) {
        pay["points"] = points;
        tenders += points;
      }
    }
    if (!customer.coupons.empty() && Chance(10)) {
      pay["coupon"] = customer.coupons[Index(customer.coupons.size())];
      if (amount < 12'000) amount += 10'000;
    } else if (Chance(1) && !coupons_.empty()) {
      pay["coupon"] =
          std::next(coupons_.begin(), static_cast<long>(Index(coupons_.size())))->first;  // maybe another's
      if (amount < 12'000) amount += 10'000;
    }
    if (Chance(5) && tenders + 1'000 < amount / 2) pay["discount_minor"] = Uniform(100, 1'000);
    pay["order_amount_minor"] = amount;
    return PayStep(pay, "pay", std::nullopt);
  }

  // A card payment of exactly what the customer's medium limits leave for today (accepted unless the daily
  // count is used up) or one fen more (rejected with the first limit it passes). other_bank funding: no
  // balance is checked, so the limits alone decide.
  Step MediumLimitEdge() {
    return LimitEdge(HotCustomer(), static_cast<fb::Medium>(Uniform(0, kMediumCount - 1)), false);
  }

  // Small card payments by one of the first three customers on a medium with a daily count, until the count
  // is used up (then LIMIT_COUNT_EXCEEDED).
  Step CountEdge() {
    const int index = active_[Index(std::min<size_t>(active_.size(), 3))];
    std::vector<fb::Medium> counted;
    for (int m = 0; m < kMediumCount; ++m) {
      if (EffectiveLimits(customers_[index].id, static_cast<fb::Medium>(m)).daily_count >= 0) {
        counted.push_back(static_cast<fb::Medium>(m));
      }
    }
    if (counted.empty()) return MediumLimitEdge();
    return LimitEdge(index, counted[Index(counted.size())], true);
  }

  Step LimitEdge(int index, fb::Medium medium, bool small) {
    const CustomerModel& customer = customers_[index];
    const MediumPolicy limits = EffectiveLimits(customer.id, medium);
    const int date = LimitDate();
    const Usage daily = daily_[keys::DailyUsage(customer.id, medium, date)];
    const Usage monthly = monthly_[keys::MonthlyUsage(customer.id, medium, date / 100)];
    int64_t left = kAmountMinorMax;
    if (limits.per_payment_minor >= 0) left = std::min(left, limits.per_payment_minor);
    if (limits.daily_minor >= 0) left = std::min(left, limits.daily_minor - daily.first);
    if (limits.monthly_minor >= 0) left = std::min(left, limits.monthly_minor - monthly.first);
    const bool over = left <= 0 || (!small && Chance(50));
    int64_t card = over ? std::max<int64_t>(left, 0) + 1 : left;
    if (small && !over) card = std::min(left, Uniform(100, 1'000));
    Expectation expect = Accepted();
    if (limits.per_payment_minor >= 0 && card > limits.per_payment_minor) {
      expect = Rejected(reason::kLimitPerPaymentExceeded);
    } else if (limits.daily_minor >= 0 && daily.first + card > limits.daily_minor) {
      expect = Rejected(reason::kLimitDailyExceeded);
    } else if (limits.monthly_minor >= 0 && monthly.first + card > limits.monthly_minor) {
      expect = Rejected(reason::kLimitMonthlyExceeded);
    } else if (limits.daily_count >= 0 && daily.second + 1 > limits.daily_count) {
      expect = Rejected(reason::kLimitCountExceeded);
    }
    json pay = PayCommand(merchants_[Index(merchants_.size())], NewId("O"), customer.id);
    pay["funding"] = "other_bank";
    pay["card_token"] = "tok-" + customer.id;
    pay["channel"] = Pick(kNonQrStaticCardChannels);
    pay["medium"] = fb::EnumNameMedium(medium);
    pay["order_amount_minor"] = card;
    return PayStep(pay, small ? "limit_edge_count" : over ? "limit_edge_over" : "limit_edge_at", expect);
  }

  // A wallet payment on qr_static of exactly what the channel leaves today, or one fen more.
  Step QrStaticEdge() {
    const CustomerModel& customer = customers_[HotCustomer()];
    const Usage used = channel_[keys::ChannelDailyUsage(customer.id, fb::Channel::qr_static, LimitDate())];
    const int64_t left = config_.qr_static_daily_minor - used.first;
    const bool over = Chance(50) || left <= 0;
    const int64_t amount = over ? std::max<int64_t>(left, 0) + 1 : left;
    json pay = PayCommand(merchants_[Index(merchants_.size())], NewId("O"), customer.id);
    pay["funding"] = Chance(50) ? "wechat" : "unionpay";
    pay["channel"] = "qr_static";
    pay["order_amount_minor"] = amount;
    return PayStep(pay, over ? "qr_static_edge_over" : "qr_static_edge_at",
                   over ? Rejected(reason::kChannelLimitExceeded) : Accepted());
  }

  // A wallet payment with one of the customer's coupons: used, expired (the expiry instant itself is still
  // valid), for another merchant or below the minimum spend, each in the ledger's order of checks.
  Step PayWithCoupon() {
    std::vector<int> holders;
    for (int index : active_) {
      if (!customers_[index].coupons.empty()) holders.push_back(index);
    }
    if (holders.empty()) return Pay();
    const CustomerModel& customer = customers_[holders[Index(holders.size())]];
    const std::string coupon_id = customer.coupons[Index(customer.coupons.size())];
    const CouponModel& coupon = coupons_.at(coupon_id);
    std::string merchant = coupon.merchant.empty() ? merchants_[Index(merchants_.size())] : coupon.merchant;
    bool wrong_merchant = false;
    if (!coupon.merchant.empty() && merchants_.size() > 1 && Chance(15)) {
      while (merchant == coupon.merchant) merchant = merchants_[Index(merchants_.size())];
      wrong_merchant = true;
    }
    const bool below_minimum = coupon.min_spend_minor > coupon.value_minor && Chance(10);
    const int64_t amount = below_minimum
                               ? coupon.min_spend_minor - 1
                               : std::max(coupon.min_spend_minor, coupon.value_minor) + Uniform(0, 5'000);
    Expectation expect = Accepted();
    if (coupon.used) {
      expect = Rejected(reason::kCouponAlreadyUsed);
    } else if (now_ > coupon.expires_at_ns) {
      expect = Rejected(reason::kCouponExpired);
    } else if (below_minimum || wrong_merchant) {
      expect = Rejected(reason::kCouponNotApplicable);
    }
    json pay = PayCommand(merchant, NewId("O"), customer.id);
    pay["funding"] = Chance(50) ? "wechat" : "unionpay";
    pay["channel"] = Chance(50) ? "aggregated" : "qr_dynamic";
    pay["order_amount_minor"] = amount;
    pay["coupon"] = coupon_id;
    return PayStep(pay, "pay_with_coupon", expect);
  }

  // Another command id for a merchant order that is already paid.
  Step PayDuplicateOrder() {
    if (payments_.empty()) return Pay();
    const PaymentModel& paid = payments_[Index(payments_.size())];
    json pay = PayCommand(paid.merchant, paid.order, paid.customer);
    pay["command_id"] = NewId((paid.merchant + ":" + paid.order + ":retry-").c_str());
    pay["funding"] = "wechat";
    pay["channel"] = "aggregated";
    pay["order_amount_minor"] = paid.order_minor;
    return PayStep(pay, "pay_duplicate_order", Rejected(reason::kDuplicateOrder));
  }

  // Half of the limit edges go to the first few customers, so their days and months fill up.
  int HotCustomer() {
    return Chance(50) ? active_[Index(std::min<size_t>(active_.size(), 5))] : active_[Index(active_.size())];
  }

  size_t PickPayment() {
    const int roll = static_cast<int>(Uniform(1, 100));
    if (roll <= 40) return payments_.size() - 1;
    if (roll <= 70) return payments_.size() - 1 - Index(std::min<size_t>(payments_.size(), 30));
    return Index(payments_.size());
  }

  // A reversal: open only up to the end of the payment's clearing date (the 23:00 cut-off moves it).
  Step Reverse() {
    if (payments_.empty()) return Pay();
    const size_t index = PickPayment();
    const PaymentModel& payment = payments_[index];
    Expectation expect = Accepted();
    if (payment.reversed) {
      expect = Rejected(reason::kAlreadyReversed);
    } else if (payment.refunds > 0) {
      expect = Rejected(reason::kAlreadyRefunded);
    } else if (Clearing() > payment.clearing_date) {
      expect = Rejected(reason::kReversalWindowClosed);
    }
    Step step = Make({{"type", "reverse"},
                      {"command_id", NewId((payment.merchant + ":" + payment.order + ":rev").c_str())},
                      {"merchant", payment.merchant},
                      {"merchant_order_no", payment.order},
                      {"reason", Chance(50) ? "timeout" : "customer cancelled"}},
                     "reverse", expect);
    step.apply = [this, index](const CommandResult& r) {
      if (r.kind != Kind::kAccepted) return;
      PaymentModel& reversed = payments_[index];
      reversed.reversed = true;
      AddUsage(reversed, -1);  // a reversal gives the usage of the payment's own day back
      if (!reversed.coupon.empty()) coupons_[reversed.coupon].used = false;
    };
    return step;
  }

  // A refund: partial, final (exactly what is left), one fen over what is left, or a refund number in use.
  Step Refund() {
    if (payments_.empty()) return Pay();
    const size_t index = PickPayment();
    const PaymentModel& payment = payments_[index];
    const int64_t left = payment.order_minor - payment.refunded_minor;
    const int roll = static_cast<int>(Uniform(1, 100));
    std::string refund_no = NewId("R");
    std::string command_id = payment.merchant + ":" + refund_no;
    std::string what;
    int64_t amount = 0;
    bool reused_number = false;
    const auto numbers = refund_numbers_.find(payment.merchant);
    if (roll <= 10 && numbers != refund_numbers_.end() && !numbers->second.empty()) {
      refund_no = *std::next(numbers->second.begin(), static_cast<long>(Index(numbers->second.size())));
      command_id = NewId((payment.merchant + ":" + refund_no + ":again-").c_str());
      amount = std::max<int64_t>(1, left / 2);
      reused_number = true;
      what = "refund_number_reused";
    } else if (roll <= 55 && left >= 2) {
      amount = Uniform(1, left - 1);
      what = "refund_partial";
    } else if (roll <= 85 && left >= 1) {
      amount = left;
      what = "refund_final";
    } else {
      amount = left + 1;
      what = "refund_over";
    }
    Expectation expect = Accepted();
    if (payment.reversed) {
      expect = Rejected(reason::kAlreadyReversed);
    } else if (reused_number) {
      expect = Rejected(reason::kDuplicateOrder);
    } else if (amount > left) {
      expect = Rejected(reason::kRefundExceedsRemaining);
    }
    Step step = Make({{"type", "refund"},
                      {"command_id", command_id},
                      {"merchant", payment.merchant},
                      {"merchant_order_no", payment.order},
                      {"refund_no", refund_no},
                      {"amount_minor", amount}},
                     what, expect);
    step.apply = [this, index, amount, refund_no](const CommandResult& r) {
      if (r.kind != Kind::kAccepted) return;
      PaymentModel& refunded = payments_[index];
      refunded.refunded_minor += amount;
      refunded.refunds += 1;
      refund_numbers_[refunded.merchant].insert(refund_no);
    };
    return step;
  }

  // An earlier command id with other content (a larger amount, or a later occurred_at).
  Step SameIdOtherContent() {
    if (history_.empty()) return Deposit();
    json command = json::parse(history_[Index(history_.size())].first);
    // Content never sent before (so this is never an exact retry of an earlier mismatch).
    bool changed = false;
    for (const char* field : {"amount_minor", "order_amount_minor", "points", "value_minor"}) {
      if (command.contains(field)) {
        command[field] = command[field].get<int64_t>() + static_cast<int64_t>(++id_counter_);
        changed = true;
        break;
      }
    }
    if (!changed) now_ += kNanosPerSecond;
    Step step = Make(command, "same_id_other_content", Rejected(reason::kDuplicateCommandMismatch));
    step.new_command_id = false;
    return step;
  }

  std::mt19937_64 random_;
  LedgerConfig config_;
  int64_t now_;
  int creep_steps_ = 0;
  int boundary_snaps_ = 0;
  uint64_t id_counter_ = 0;
  int pending_merchants_ = 0;
  std::deque<std::function<Step()>> pending_;
  std::vector<std::string> merchants_;
  std::vector<CustomerModel> customers_;
  std::vector<int> active_;  // customers whose set-up is done
  std::map<std::string, CouponModel> coupons_;
  std::map<std::string, fb::LimitOverrideRecordT> overrides_;  // keys::LimitOverride -> own limits
  std::vector<PaymentModel> payments_;                         // accepted payments
  std::map<std::string, size_t> payment_index_;
  std::map<std::string, std::set<std::string>> refund_numbers_;  // merchant -> refund numbers in use
  UsageMap daily_, monthly_, channel_;
  std::vector<std::pair<std::string, CommandResult>> history_;  // first line of each command id, its result
};

// A ledger in a temporary folder like testing::TestLedger (clock occurred, fixed now), without an fsync per
// group: durability is the crash suite's subject, and hundreds of synced groups would make this suite's time
// the disk's.
class UnsyncedLedger {
 public:
  explicit UnsyncedLedger(const LedgerConfig& config = LedgerConfig()) {
    options_.data_dir = dir_.path() + "/data";
    options_.config = config;
    options_.clock = ClockMode::kOccurred;
    options_.fixed_now_ns = testing::DefaultTimeNs();
    options_.sync = false;
    Reopen();
  }
  // Closes and reopens the ledger on the same folder.
  void Reopen() {
    ledger_.reset();
    Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options_);
    if (!opened.ok()) {
      ADD_FAILURE() << opened.status().ToString();
      std::abort();
    }
    ledger_ = std::move(opened).value();
  }
  Ledger& ledger() { return *ledger_; }

 private:
  TempDir dir_;
  LedgerOptions options_;
  std::unique_ptr<Ledger> ledger_;
};

StoreOptions UnsyncedStore() {
  StoreOptions options;
  options.sync = false;
  return options;
}

// ---- checks on the committed state ----

// Decodes a record handed out by a scan. The scan's bytes need not be aligned for FlatBuffers, so they are
// copied into a string (heap storage, aligned) first.
template <typename NativeT>
NativeT Unpack(std::string_view value) {
  const std::string bytes(value);
  NativeT record;
  flatbuffers::GetRoot<typename NativeT::TableType>(bytes.data())->UnPackTo(&record);
  return record;
}

void ExpectBalancesHold(Ledger& ledger) {
  const Store& store = ledger.store();
  int64_t sums[2] = {0, 0};
  ASSERT_TRUE(store
                  .ScanState(keys::kBalancePrefix,
                             [&](std::string_view key, std::string_view value) {
                               const auto record = Unpack<fb::BalanceRecordT>(value);
                               sums[static_cast<int>(record.unit)] += record.balance_minor;
                               if (key.ends_with(":points") && !key.starts_with(keys::Balance("gl:"))) {
                                 EXPECT_GE(record.balance_minor, 0) << "points below zero: " << key;
                               }
                               return true;
                             })
                  .ok());
  EXPECT_EQ(sums[0], 0) << "CNY postings do not sum to zero";
  EXPECT_EQ(sums[1], 0) << "POINTS postings do not sum to zero";
  ASSERT_TRUE(store
                  .ScanState(keys::kAccountPrefix,
                             [&](std::string_view key, std::string_view value) {
                               const auto account = Unpack<fb::AccountRecordT>(value);
                               const std::string name(key.substr(keys::kAccountPrefix.size()));
                               fb::BalanceRecordT balance;
                               LoadRecord(store.state(), keys::Balance(name), &balance);
                               if (account.kind == fb::AccountKind::debit_card) {
                                 EXPECT_GE(balance.balance_minor, 0) << "debit card below zero: " << name;
                               } else {
                                 EXPECT_GE(balance.balance_minor, -account.credit_limit_minor)
                                     << "credit card past its limit: " << name;
                               }
                               return true;
                             })
                  .ok());
}

// Usage records never pass the effective limits (policy lowered by the customer's own, read from the store),
// and equal the usage the model recomputed from the accepted results.
void ExpectLimitsHold(Ledger& ledger, const Generator& generator) {
  const Store& store = ledger.store();
  const LedgerConfig& config = ledger.config();
  UsageMap stored;
  auto scan = [&](std::string_view prefix) {
    ASSERT_TRUE(
        store
            .ScanState(prefix,
                       [&](std::string_view key, std::string_view value) {
                         const auto record = Unpack<fb::UsageRecordT>(value);
                         const Usage usage{record.amount_minor, record.count};
                         EXPECT_GE(usage.first, 0) << key;
                         EXPECT_GE(usage.second, 0) << key;
                         if (usage != Usage{0, 0}) stored.emplace(std::string(key), usage);
                         const std::vector<std::string> parts = Split(key, '/');  // prefix/customer/what/date
                         if (parts.size() != 4) {
                           ADD_FAILURE() << "unexpected usage key " << key;
                           return true;
                         }
                         if (prefix == keys::kChannelDailyUsagePrefix) {
                           if (parts[2] == "qr_static" && config.qr_static_daily_minor >= 0) {
                             EXPECT_LE(usage.first, config.qr_static_daily_minor)
                                 << "channel limit passed: " << key;
                           }
                           return true;
                         }
                         const fb::Medium medium = MediumOf(parts[2]);
                         EXPECT_NE(medium, fb::Medium::none) << key;
                         fb::LimitOverrideRecordT own;
                         LoadRecord(store.state(), keys::LimitOverride(parts[1], medium), &own);
                         const MediumPolicy limits = Effective(config, medium, own);
                         if (prefix == keys::kDailyUsagePrefix) {
                           if (limits.daily_minor >= 0) {
                             EXPECT_LE(usage.first, limits.daily_minor) << "daily limit passed: " << key;
                           }
                           if (limits.daily_count >= 0) {
                             EXPECT_LE(usage.second, limits.daily_count) << "daily count passed: " << key;
                           }
                         } else if (limits.monthly_minor >= 0) {
                           EXPECT_LE(usage.first, limits.monthly_minor) << "monthly limit passed: " << key;
                         }
                         return true;
                       })
            .ok());
  };
  scan(keys::kDailyUsagePrefix);
  scan(keys::kMonthlyUsagePrefix);
  scan(keys::kChannelDailyUsagePrefix);
  const UsageMap model = generator.ModelUsage();
  if (stored != model) {
    auto s = stored.begin();
    auto m = model.begin();
    while (s != stored.end() && m != model.end() && *s == *m) ++s, ++m;
    ADD_FAILURE() << "usage records differ from the usage recomputed from accepted results: store has "
                  << (s == stored.end() ? "<end>"
                                        : s->first + "=" + std::to_string(s->second.first) + "/" +
                                              std::to_string(s->second.second))
                  << ", model has "
                  << (m == model.end() ? "<end>"
                                       : m->first + "=" + std::to_string(m->second.first) + "/" +
                                             std::to_string(m->second.second));
  }
}

// Payments never refund more of a tender than it had; coupons are used exactly when the model says so.
void ExpectPaymentsHold(Ledger& ledger, const Generator& generator) {
  const Store& store = ledger.store();
  size_t payments = 0;
  ASSERT_TRUE(store
                  .ScanState(keys::kPaymentPrefix,
                             [&](std::string_view key, std::string_view value) {
                               const auto p = Unpack<fb::PaymentRecordT>(value);
                               ++payments;
                               EXPECT_EQ(p.card_amount_minor + p.points_value_minor + p.coupon_value_minor +
                                             p.discount_minor,
                                         p.order_amount_minor)
                                   << key;
                               EXPECT_LE(p.refunded_amount_minor, p.order_amount_minor) << key;
                               EXPECT_TRUE(p.refunded_card_minor >= 0 &&
                                           p.refunded_card_minor <= p.card_amount_minor &&
                                           p.refunded_points >= 0 && p.refunded_points <= p.points &&
                                           p.refunded_points_value_minor <= p.points_value_minor &&
                                           p.refunded_coupon_minor >= 0 &&
                                           p.refunded_coupon_minor <= p.coupon_value_minor &&
                                           p.refunded_discount_minor >= 0 &&
                                           p.refunded_discount_minor <= p.discount_minor &&
                                           p.refunded_fee_minor >= 0 && p.refunded_fee_minor <= p.fee_minor)
                                   << "a refund passed a tender of " << key;
                               EXPECT_EQ(p.refunded_card_minor + p.refunded_points_value_minor +
                                             p.refunded_coupon_minor + p.refunded_discount_minor,
                                         p.refunded_amount_minor)
                                   << key;
                               return true;
                             })
                  .ok());
  EXPECT_EQ(payments, generator.payments().size()) << "payment records differ from the accepted payments";
  for (const auto& [id, coupon] : generator.coupons()) {
    fb::CouponRecordT record;
    ASSERT_TRUE(LoadRecord(store.state(), keys::Coupon(id), &record)) << id;
    EXPECT_EQ(record.used, coupon.used) << "coupon " << id;
  }
}

// Rebuilds every projection from the events column family into a fresh store: the report matches the
// ledger's head and the state is byte-identical.
void ExpectRebuildIdentical(Ledger& ledger) {
  TempDir dir;
  Result<std::unique_ptr<Store>> fresh = Store::Open(dir.path() + "/rebuilt", UnsyncedStore());
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  Result<replay::ReplayReport> report = replay::Replay(ledger.store(), fresh->get());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok()) << "sequence " << report->first_bad_sequence.value_or(0) << ": "
                            << report->problem;
  EXPECT_EQ(report->events_read, ledger.last_sequence());
  EXPECT_EQ(report->last_sequence, ledger.last_sequence());
  EXPECT_EQ(report->chain_head, ledger.chain_head());
  Result<Digest> live = replay::StateDigest(ledger.store());
  Result<Digest> rebuilt = replay::StateDigest(**fresh);
  ASSERT_TRUE(live.ok() && rebuilt.ok());
  EXPECT_EQ(ToHex(*live), ToHex(*rebuilt))
      << "rebuilt state differs from the live state at sequence " << ledger.last_sequence();
}

Digest DigestOf(Ledger& ledger) {
  Result<Digest> digest = replay::StateDigest(ledger.store());
  EXPECT_TRUE(digest.ok());
  return digest.ok() ? *digest : Digest{};
}

int GroupSize(std::mt19937_64& random) {
  const int roll = std::uniform_int_distribution<int>(1, 100)(random);
  if (roll <= 60) return std::uniform_int_distribution<int>(1, 8)(random);
  if (roll <= 90) return std::uniform_int_distribution<int>(9, 64)(random);
  return std::uniform_int_distribution<int>(65, 400)(random);
}

// Submits kCommandsPerSeed generated commands in random groups on `ledger`, checking after each group.
Figures RunSeed(uint64_t seed, Ledger& ledger, const LedgerConfig& config, int commands_max) {
  Generator generator(seed, config);
  std::mt19937_64 group_random(seed ^ 0x9e3779b97f4a7c15ULL);
  Figures figures;
  for (int group = 1; group <= kGroupsMax && figures.commands < commands_max; ++group) {
    const bool duplicates_only = group % kDuplicateGroupEvery == 0 && generator.HasHistory();
    const int size = std::min(GroupSize(group_random), commands_max - figures.commands);
    const Digest digest_before = duplicates_only ? DigestOf(ledger) : Digest{};
    const uint64_t sequence_before = ledger.last_sequence();
    const Digest head_before = ledger.chain_head();
    for (int i = 0; i < size; ++i) {
      const Step step = duplicates_only ? generator.ExactDuplicate() : generator.Next();
      Result<ParsedCommand> parsed = ParseCommandJson(step.line);
      if (!parsed.ok()) {
        ADD_FAILURE() << "generated an unparsable line: " << parsed.status().ToString() << " " << step.line;
        return figures;
      }
      const CommandResult result = ledger.Stage(*parsed);
      generator.Observe(step, result, &figures);
    }
    const Status committed = ledger.CommitGroup();
    EXPECT_TRUE(committed.ok()) << committed.ToString();
    figures.groups += 1;
    figures.largest_group = std::max(figures.largest_group, size);
    ExpectBalancesHold(ledger);
    ExpectLimitsHold(ledger, generator);
    ExpectPaymentsHold(ledger, generator);
    if (duplicates_only) {
      figures.duplicate_groups += 1;
      EXPECT_EQ(ledger.last_sequence(), sequence_before) << "a group of duplicates wrote events";
      EXPECT_EQ(ledger.chain_head(), head_before);
      EXPECT_EQ(ToHex(DigestOf(ledger)), ToHex(digest_before)) << "a group of duplicates changed the state";
    }
    if (group % kRebuildEveryGroups == 0) {
      ExpectRebuildIdentical(ledger);
      figures.rebuilds += 1;
    }
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "stopped at group " << group << " (seed " << seed << "), sequence "
                    << ledger.last_sequence();
      return figures;
    }
  }
  ExpectRebuildIdentical(ledger);
  figures.rebuilds += 1;
  figures.last_occurred_at = testing::At(generator.now());
  figures.boundary_snaps = generator.boundary_snaps();
  return figures;
}

void Report(uint64_t seed, const Figures& figures, uint64_t last_sequence) {
  std::ostringstream out;
  out << "seed " << seed << ": " << figures.commands << " commands in " << figures.groups
      << " groups (largest " << figures.largest_group << ", " << figures.duplicate_groups
      << " of duplicates only), " << last_sequence << " events, " << figures.rebuilds
      << " rebuilds, occurred_at " << kStart << " to " << figures.last_occurred_at << " ("
      << figures.boundary_snaps << " jumps to a cut-off or midnight)\n  outcomes:";
  for (const auto& [outcome, count] : figures.by_outcome) out << " " << outcome << "=" << count;
  out << "\n  cases:";
  for (const auto& [what, count] : figures.by_case) out << " " << what << "=" << count;
  std::cout << out.str() << std::endl;
  ::testing::Test::RecordProperty("seed_" + std::to_string(seed) + "_commands", figures.commands);
  ::testing::Test::RecordProperty("seed_" + std::to_string(seed) + "_events",
                                  static_cast<int>(last_sequence));
}

// Checks that the run met the cases it is meant to cover (a generator that drifted would pass vacuously).
void ExpectCoverage(const Figures& figures) {
  for (const char* what :
       {"pay", "limit_edge_at", "limit_edge_over", "qr_static_edge_at", "qr_static_edge_over",
        "limit_edge_count", "pay_with_coupon", "reverse", "refund_partial", "refund_final", "refund_over",
        "exact_duplicate", "same_id_other_content", "set_limit"}) {
    EXPECT_GT(figures.by_case.count(what) ? figures.by_case.at(what) : 0, 0) << "no " << what << " generated";
  }
  for (const char* outcome :
       {"accepted", "duplicate", reason::kLimitDailyExceeded, reason::kLimitPerPaymentExceeded,
        reason::kLimitCountExceeded, reason::kCouponExpired, reason::kAlreadyRefunded,
        reason::kChannelLimitExceeded, reason::kRefundExceedsRemaining, reason::kDuplicateCommandMismatch,
        reason::kReversalWindowClosed, reason::kInsufficientFunds}) {
    EXPECT_GT(figures.by_outcome.count(outcome) ? figures.by_outcome.at(outcome) : 0, 0) << "no " << outcome;
  }
}

// A config with tighter limits, so monthly limits and daily counts are met within a few days.
LedgerConfig TightConfig() {
  LedgerConfig config;
  config.medium_policy[static_cast<int>(fb::Medium::sms)].monthly_minor = 1'200'000;
  config.medium_policy[static_cast<int>(fb::Medium::fingerprint)].daily_count = 3;
  config.medium_policy[static_cast<int>(fb::Medium::otp_card)].monthly_minor = 900'000;
  config.qr_static_daily_minor = 30'000;
  return config;
}

TEST(Property, RandomCommandsKeepInvariantsAfterEveryGroup) {
  for (uint64_t seed : {20261125ULL, 7ULL}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    UnsyncedLedger ledger;
    const Figures figures = RunSeed(seed, ledger.ledger(), LedgerConfig(), kCommandsPerSeed);
    Report(seed, figures, ledger.ledger().last_sequence());
    ASSERT_FALSE(::testing::Test::HasFailure());
    EXPECT_EQ(figures.commands, kCommandsPerSeed);
    ExpectCoverage(figures);
  }
}

TEST(Property, TightLimitsHoldAcrossDaysAndTheMonthEnd) {
  const uint64_t seed = 424242;
  const LedgerConfig config = TightConfig();
  UnsyncedLedger ledger(config);
  const Figures figures = RunSeed(seed, ledger.ledger(), config, kCommandsPerSeed);
  Report(seed, figures, ledger.ledger().last_sequence());
  ASSERT_FALSE(::testing::Test::HasFailure());
  ExpectCoverage(figures);
  EXPECT_GT(figures.by_outcome.count(reason::kLimitMonthlyExceeded), 0u);
  EXPECT_GT(figures.by_outcome.count(reason::kLimitCountExceeded), 0u);
}

TEST(Rebuild, ReplayReportMatchesTheLedgerAndSurvivesReopen) {
  UnsyncedLedger ledger;
  const Figures figures = RunSeed(99, ledger.ledger(), LedgerConfig(), 1500);
  ASSERT_FALSE(::testing::Test::HasFailure());
  Ledger& live = ledger.ledger();
  ASSERT_GT(live.last_sequence(), 1000u);

  // Verification alone (no target) reads every event and ends on the ledger's head.
  Result<replay::ReplayReport> verified = replay::Replay(live.store(), nullptr);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_TRUE(verified->ok()) << verified->problem;
  EXPECT_EQ(verified->events_read, live.last_sequence());
  EXPECT_EQ(verified->last_sequence, live.last_sequence());
  EXPECT_EQ(verified->chain_head, live.chain_head());

  TempDir dir;
  Result<std::unique_ptr<Store>> fresh = Store::Open(dir.path() + "/rebuilt", UnsyncedStore());
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  Result<replay::ReplayReport> rebuilt = replay::Replay(live.store(), fresh->get());
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  EXPECT_TRUE(rebuilt->ok()) << rebuilt->problem;
  EXPECT_EQ(rebuilt->last_sequence, live.last_sequence());
  EXPECT_EQ(rebuilt->chain_head, live.chain_head());
  const Digest live_digest = DigestOf(live);
  Result<Digest> rebuilt_digest = replay::StateDigest(**fresh);
  ASSERT_TRUE(rebuilt_digest.ok());
  EXPECT_EQ(ToHex(*rebuilt_digest), ToHex(live_digest));
  // A second rebuild into the now non-empty target is refused, and leaves it as it was.
  Result<replay::ReplayReport> again = replay::Replay(live.store(), fresh->get());
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(ToHex(*replay::StateDigest(**fresh)), ToHex(live_digest));

  // Reopening recovers the same head and state, and the ledger goes on from there.
  const uint64_t sequence = live.last_sequence();
  const Digest head = live.chain_head();
  ledger.Reopen();
  EXPECT_EQ(ledger.ledger().last_sequence(), sequence);
  EXPECT_EQ(ledger.ledger().chain_head(), head);
  EXPECT_EQ(ToHex(DigestOf(ledger.ledger())), ToHex(live_digest));
  Result<ParsedCommand> parsed = ParseCommandJson(testing::OpenMerchant("m-after-reopen", "M9", 60).dump());
  ASSERT_TRUE(parsed.ok());
  const CommandResult next = ledger.ledger().Stage(*parsed);
  ASSERT_TRUE(ledger.ledger().CommitGroup().ok());
  EXPECT_EQ(next.kind, Kind::kAccepted) << next.reason;
  EXPECT_EQ(next.sequences, std::vector<uint64_t>{sequence + 1});
  ExpectRebuildIdentical(ledger.ledger());
  std::cout << "rebuild: " << figures.commands << " commands, " << sequence << " events replayed"
            << std::endl;
}

}  // namespace
}  // namespace ledger
