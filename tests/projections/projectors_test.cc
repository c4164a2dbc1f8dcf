// Each inline projector on its own: events built with the events API are folded into an Overlay over an empty
// state, and the records written are read back at their keys (state/keys.h, state/records.h). Every test also
// checks that the projector wrote nothing outside its own KeyPrefixes(), and that events it does not handle
// write nothing at all.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/sha256.h"
#include "events/event.h"
#include "projections/projector.h"
#include "state/keys.h"
#include "state/records.h"
#include "storage/kv.h"

namespace ledger {
namespace {

constexpr int64_t kOccurredAtNs = 1'795'572'000'000'000'000;  // 2026-11-25T10:00:00+08:00
constexpr int kDate = 20261125;

// One event as the ledger stores it (a record encoded by the events API) and its decoded body.
class Event {
 public:
  explicit Event(const fb::EventBodyT& body) {
    Digest hash;
    record_ = EncodeEventRecord(body, kGenesisHash, &hash);
    Result<DecodedEvent> decoded = DecodeEventRecord(record_);
    EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
    if (decoded.ok()) body_ = decoded->body;
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  const fb::EventBody& body() const { return *body_; }

 private:
  std::string record_;
  const fb::EventBody* body_ = nullptr;
};

// An event body at `sequence` carrying `payload`, of command `command_id` in transaction `transaction`.
template <typename PayloadT>
std::unique_ptr<Event> MakeEvent(uint64_t sequence, PayloadT payload, std::string command_id = "",
                                 std::string transaction = "") {
  fb::EventBodyT body;
  body.sequence = sequence;
  body.command_id = command_id.empty() ? "c" + std::to_string(sequence) : std::move(command_id);
  body.transaction_id = transaction.empty() ? "t" + std::to_string(sequence) : std::move(transaction);
  const Digest fingerprint = Sha256Of(body.command_id);
  body.command_fingerprint.assign(fingerprint.begin(), fingerprint.end());
  body.recorded_at_ns = kOccurredAtNs;
  body.occurred_at_ns = kOccurredAtNs;
  body.payload.Set(std::move(payload));
  return std::make_unique<Event>(body);
}

std::vector<std::unique_ptr<fb::PostingT>> Postings(
    std::initializer_list<std::pair<std::string, int64_t>> lines) {
  PostingList postings;
  for (const auto& [account, amount] : lines) postings.Add(account, amount);
  return postings.Take();
}

std::unique_ptr<Projector> ProjectorNamed(std::string_view name) {
  for (std::unique_ptr<Projector>& projector : MakeLedgerProjectors()) {
    if (projector->name() == name) return std::move(projector);
  }
  ADD_FAILURE() << "no projector " << name;
  return nullptr;
}

// A projector and the view it folds into: an Overlay over an empty state, holding everything written so far.
class Fold {
 public:
  explicit Fold(std::string_view projector) : projector_(ProjectorNamed(projector)) {}

  Status Apply(const Event& event) { return projector_->Apply(event.body(), view_); }
  // Applies and expects success.
  void Ok(const Event& event) {
    const Status status = Apply(event);
    EXPECT_TRUE(status.ok()) << status.ToString();
  }

  // Every key written so far with its value (nullopt: deleted), in key order.
  std::map<std::string, std::optional<std::string>> Writes() const {
    std::map<std::string, std::optional<std::string>> writes;
    view_.ForEach(
        [&](const std::string& key, const std::optional<std::string>& value) { writes[key] = value; });
    return writes;
  }
  std::vector<std::string> Keys() const {
    std::vector<std::string> keys;
    for (const auto& [key, value] : Writes()) keys.push_back(key);
    return keys;
  }
  // Keys written outside the projector's own prefixes (expected: none).
  std::vector<std::string> ForeignKeys() const {
    std::vector<std::string> foreign;
    for (const std::string& key : Keys()) {
      bool own = false;
      for (const std::string& prefix : projector_->KeyPrefixes()) own = own || key.starts_with(prefix);
      if (!own) foreign.push_back(key);
    }
    return foreign;
  }

  template <typename RecordT>
  RecordT Load(const std::string& key) const {
    RecordT record;
    EXPECT_TRUE(LoadRecord(view_, key, &record)) << "no record at " << key;
    return record;
  }
  bool Has(const std::string& key) const {
    std::string value;
    return view_.Get(key, &value);
  }

 private:
  std::unique_ptr<Projector> projector_;
  EmptyReader empty_;
  Overlay view_{empty_};
};

// --- Event payloads used across the tests ---

fb::AccountOpenedT AccountOpened(const std::string& customer, const std::string& account,
                                 fb::AccountKind kind = fb::AccountKind::debit_card,
                                 int64_t credit_limit = 0) {
  fb::AccountOpenedT opened;
  opened.customer = customer;
  opened.account = account;
  opened.kind = kind;
  opened.credit_limit_minor = credit_limit;
  return opened;
}

fb::MerchantOpenedT MerchantOpened(const std::string& merchant, int32_t fee_bps) {
  fb::MerchantOpenedT opened;
  opened.merchant = merchant;
  opened.name = merchant + " Ltd";
  opened.fee_bps = fee_bps;
  return opened;
}

fb::FundsDepositedT Deposited(const std::string& account, int64_t amount) {
  fb::FundsDepositedT deposited;
  deposited.account = account;
  deposited.customer = account.substr(0, account.find(':'));
  deposited.amount_minor = amount;
  deposited.postings = Postings({{account, amount}, {gl::kFunding, -amount}});
  return deposited;
}

struct PaymentShape {
  fb::Funding funding = fb::Funding::own_account;
  bool medium_limited = true;
  int64_t order = 10'000;
  int64_t card = 10'000;
  int64_t fee = 60;
  std::string coupon;
};

fb::PaymentCapturedT Captured(const std::string& order_no, const PaymentShape& shape = PaymentShape()) {
  fb::PaymentCapturedT paid;
  paid.merchant = "M1";
  paid.merchant_order_no = order_no;
  paid.customer = "C1";
  paid.funding = shape.funding;
  paid.account =
      shape.funding == fb::Funding::own_account ? "C1:debit" : gl::InterbankReceivable(shape.funding);
  paid.channel = fb::Channel::qr_dynamic;
  paid.medium = shape.medium_limited ? fb::Medium::sms : fb::Medium::none;
  paid.order_amount_minor = shape.order;
  paid.card_amount_minor = shape.card;
  paid.coupon = shape.coupon;
  paid.settlement_base_minor = shape.order;
  paid.fee_minor = shape.fee;
  paid.clearing_date = kDate;
  paid.limit_date = kDate;
  paid.medium_limited = shape.medium_limited;
  paid.postings = Postings(
      {{paid.account, -shape.card}, {"merchant:M1", shape.card - shape.fee}, {gl::kFeeIncome, shape.fee}});
  return paid;
}

fb::PaymentReversedT Reversed(const std::string& order_no, const PaymentShape& shape = PaymentShape()) {
  fb::PaymentReversedT reversed;
  reversed.merchant = "M1";
  reversed.merchant_order_no = order_no;
  reversed.customer = "C1";
  reversed.medium = shape.medium_limited ? fb::Medium::sms : fb::Medium::none;
  reversed.channel = fb::Channel::qr_dynamic;
  reversed.medium_limited = shape.medium_limited;
  reversed.limit_date = kDate;
  reversed.card_amount_minor = shape.card;
  reversed.coupon = shape.coupon;
  reversed.fee_minor = shape.fee;
  reversed.order_amount_minor = shape.order;
  reversed.clearing_date = kDate;
  return reversed;
}

fb::PaymentRefundedT Refunded(const std::string& order_no, const std::string& refund_no, int64_t amount,
                              int64_t fee) {
  fb::PaymentRefundedT refunded;
  refunded.merchant = "M1";
  refunded.merchant_order_no = order_no;
  refunded.refund_no = refund_no;
  refunded.customer = "C1";
  refunded.amount_minor = amount;
  refunded.card_amount_minor = amount;
  refunded.fee_minor = fee;
  refunded.settlement_minor = amount;
  refunded.clearing_date = kDate;
  return refunded;
}

fb::CommandRejectedT Rejected(const std::string& reason) {
  fb::CommandRejectedT rejected;
  rejected.command_type = "pay";
  rejected.reason = reason;
  rejected.customer = "C1";
  return rejected;
}

// --- The set of projectors ---

TEST(ProjectorSet, NamesArePresentOnceAndNoPrefixIsAnotherProjectorsPrefix) {
  const std::vector<std::unique_ptr<Projector>> projectors = MakeLedgerProjectors();
  std::vector<std::string> names;
  for (const auto& projector : projectors) names.emplace_back(projector->name());
  EXPECT_EQ(names, (std::vector<std::string>{"balances", "directory", "limits", "payments", "commands",
                                             "checkpoints", "clearing"}));
  for (size_t i = 0; i < projectors.size(); ++i) {
    for (size_t j = 0; j < projectors.size(); ++j) {
      if (i == j) continue;
      for (const std::string& mine : projectors[i]->KeyPrefixes()) {
        for (const std::string& theirs : projectors[j]->KeyPrefixes()) {
          EXPECT_FALSE(theirs.starts_with(mine))
              << names[i] << " " << mine << " covers " << names[j] << " " << theirs;
        }
      }
    }
  }
}

// --- balances ---

TEST(ProjectorBalances, PostingsAddToEachAccountInItsUnit) {
  Fold fold("balances");
  fold.Ok(*MakeEvent(1, Deposited("C1:debit", 5'000)));
  fold.Ok(*MakeEvent(2, Deposited("C1:debit", 2'500)));
  fb::PointsAwardedT awarded;
  awarded.customer = "C1";
  awarded.points = 300;
  awarded.value_minor = 300;
  awarded.postings = Postings({{"C1:points", 300},
                               {gl::kPointsIssued, -300},
                               {gl::kPointsLiability, 300},
                               {gl::kMarketingExpense, -300}});
  fold.Ok(*MakeEvent(3, std::move(awarded)));

  const auto debit = fold.Load<fb::BalanceRecordT>(keys::Balance("C1:debit"));
  EXPECT_EQ(debit.unit, fb::Unit::CNY);
  EXPECT_EQ(debit.balance_minor, 7'500);
  EXPECT_EQ(fold.Load<fb::BalanceRecordT>(keys::Balance(gl::kFunding)).balance_minor, -7'500);
  const auto points = fold.Load<fb::BalanceRecordT>(keys::Balance("C1:points"));
  EXPECT_EQ(points.unit, fb::Unit::POINTS);
  EXPECT_EQ(points.balance_minor, 300);
  EXPECT_EQ(fold.Load<fb::BalanceRecordT>(keys::Balance(gl::kPointsIssued)).unit, fb::Unit::POINTS);
  EXPECT_EQ(fold.Load<fb::BalanceRecordT>(keys::Balance(gl::kMarketingExpense)).balance_minor, -300);
  EXPECT_EQ(fold.Keys().size(), 6u);
  EXPECT_TRUE(fold.ForeignKeys().empty());
}

TEST(ProjectorBalances, UnbalancedPostingsAreCorruptionAndWriteNothing) {
  Fold fold("balances");
  fb::FundsDepositedT forged = Deposited("C1:debit", 5'000);
  forged.postings[1]->amount_minor = -4'000;  // PostingList refuses to build it: a forged record
  const Status status = fold.Apply(*MakeEvent(1, std::move(forged)));
  EXPECT_EQ(status.code(), StatusCode::kCorruption) << status.ToString();
  EXPECT_TRUE(fold.Writes().empty());
}

TEST(ProjectorBalances, EventsWithoutPostingsWriteNothing) {
  Fold fold("balances");
  fold.Ok(*MakeEvent(1, AccountOpened("C1", "C1:debit")));
  fold.Ok(*MakeEvent(2, MerchantOpened("M1", 60)));
  fold.Ok(*MakeEvent(3, Rejected("INSUFFICIENT_FUNDS")));
  EXPECT_TRUE(fold.Writes().empty());
}

// --- directory ---

TEST(ProjectorDirectory, AccountsCustomersAndMerchantsAreRecorded) {
  Fold fold("directory");
  fold.Ok(*MakeEvent(1, AccountOpened("C1", "C1:debit")));
  fold.Ok(*MakeEvent(2, AccountOpened("C1", "C1:credit", fb::AccountKind::credit_card, 90'000)));
  fold.Ok(*MakeEvent(3, MerchantOpened("M1", 60)));

  const auto credit = fold.Load<fb::AccountRecordT>(keys::Account("C1:credit"));
  EXPECT_EQ(credit.customer, "C1");
  EXPECT_EQ(credit.kind, fb::AccountKind::credit_card);
  EXPECT_EQ(credit.credit_limit_minor, 90'000);
  EXPECT_EQ(fold.Load<fb::AccountRecordT>(keys::Account("C1:debit")).kind, fb::AccountKind::debit_card);
  EXPECT_EQ(fold.Load<fb::CustomerRecordT>(keys::Customer("C1")).accounts, 2);
  const auto merchant = fold.Load<fb::MerchantRecordT>(keys::Merchant("M1"));
  EXPECT_EQ(merchant.name, "M1 Ltd");
  EXPECT_EQ(merchant.fee_bps, 60);
  EXPECT_EQ(fold.Keys(), (std::vector<std::string>{keys::Account("C1:credit"), keys::Account("C1:debit"),
                                                   keys::Customer("C1"), keys::Merchant("M1")}));
  EXPECT_TRUE(fold.ForeignKeys().empty());
}

TEST(ProjectorDirectory, ACouponIsIssuedUsedAndGivenBackByAReversal) {
  Fold fold("directory");
  fb::CouponIssuedT issued;
  issued.coupon = "K1";
  issued.customer = "C1";
  issued.value_minor = 500;
  issued.min_spend_minor = 2'000;
  issued.merchant = "M1";
  issued.funded_by = fb::FundedBy::merchant;
  issued.expires_at_ns = kOccurredAtNs + 1;
  fold.Ok(*MakeEvent(1, std::move(issued)));
  auto coupon = fold.Load<fb::CouponRecordT>(keys::Coupon("K1"));
  EXPECT_EQ(coupon.customer, "C1");
  EXPECT_EQ(coupon.value_minor, 500);
  EXPECT_EQ(coupon.min_spend_minor, 2'000);
  EXPECT_EQ(coupon.merchant, "M1");
  EXPECT_EQ(coupon.funded_by, fb::FundedBy::merchant);
  EXPECT_EQ(coupon.expires_at_ns, kOccurredAtNs + 1);
  EXPECT_FALSE(coupon.used);

  fb::CouponRedeemedT redeemed;
  redeemed.coupon = "K1";
  redeemed.customer = "C1";
  redeemed.merchant = "M1";
  redeemed.merchant_order_no = "O1";
  redeemed.value_minor = 500;
  fold.Ok(*MakeEvent(2, std::move(redeemed)));
  coupon = fold.Load<fb::CouponRecordT>(keys::Coupon("K1"));
  EXPECT_TRUE(coupon.used);
  EXPECT_EQ(coupon.used_by_order, "M1/O1");

  PaymentShape with_coupon;
  with_coupon.coupon = "K1";
  fold.Ok(*MakeEvent(3, Reversed("O1", with_coupon)));
  coupon = fold.Load<fb::CouponRecordT>(keys::Coupon("K1"));
  EXPECT_FALSE(coupon.used);
  EXPECT_EQ(coupon.used_by_order, "");
  EXPECT_EQ(fold.Keys(), std::vector<std::string>{keys::Coupon("K1")});
}

TEST(ProjectorDirectory, RedeemingAnUnknownCouponIsCorruption) {
  Fold fold("directory");
  fb::CouponRedeemedT redeemed;
  redeemed.coupon = "K9";
  EXPECT_EQ(fold.Apply(*MakeEvent(1, std::move(redeemed))).code(), StatusCode::kCorruption);
}

TEST(ProjectorDirectory, ALimitSetKeepsWhatItLeavesOut) {
  Fold fold("directory");
  fb::CustomerLimitSetT first;
  first.customer = "C1";
  first.medium = fb::Medium::sms;
  first.daily_minor = 3'000;
  first.daily_count = 4;
  fold.Ok(*MakeEvent(1, first));
  fb::CustomerLimitSetT second;
  second.customer = "C1";
  second.medium = fb::Medium::sms;
  second.daily_minor = 1'000;
  second.per_payment_minor = 200;
  fold.Ok(*MakeEvent(2, second));

  const auto limit = fold.Load<fb::LimitOverrideRecordT>(keys::LimitOverride("C1", fb::Medium::sms));
  EXPECT_EQ(limit.per_payment_minor, 200);
  EXPECT_EQ(limit.daily_minor, 1'000);
  EXPECT_EQ(limit.monthly_minor, kNoLimit);
  EXPECT_EQ(limit.daily_count, 4);
  EXPECT_FALSE(fold.Has(keys::LimitOverride("C1", fb::Medium::fingerprint)));
  EXPECT_TRUE(fold.ForeignKeys().empty());
}

TEST(ProjectorDirectory, MoneyEventsWriteNothing) {
  Fold fold("directory");
  fold.Ok(*MakeEvent(1, Deposited("C1:debit", 5'000)));
  fold.Ok(*MakeEvent(2, Captured("O1")));
  fold.Ok(*MakeEvent(3, Reversed("O1")));  // no coupon: nothing to give back
  fold.Ok(*MakeEvent(4, Rejected("UNKNOWN_ACCOUNT")));
  EXPECT_TRUE(fold.Writes().empty());
}

// --- limits (usage) ---

TEST(ProjectorLimits, ACardPaymentCountsAgainstTheMediumDayMonthAndChannel) {
  Fold fold("limits");
  fold.Ok(*MakeEvent(1, Captured("O1")));
  fold.Ok(*MakeEvent(2, Captured("O2")));
  for (const std::string& key : {keys::DailyUsage("C1", fb::Medium::sms, kDate),
                                 keys::MonthlyUsage("C1", fb::Medium::sms, kDate / 100),
                                 keys::ChannelDailyUsage("C1", fb::Channel::qr_dynamic, kDate)}) {
    const auto usage = fold.Load<fb::UsageRecordT>(key);
    EXPECT_EQ(usage.amount_minor, 20'000) << key;
    EXPECT_EQ(usage.count, 2) << key;
  }
  EXPECT_EQ(fold.Keys().size(), 3u);
  EXPECT_TRUE(fold.ForeignKeys().empty());
}

TEST(ProjectorLimits, WithoutMediumLimitsOnlyTheChannelCounts) {
  Fold fold("limits");
  PaymentShape wallet;
  wallet.funding = fb::Funding::wechat;
  wallet.medium_limited = false;
  fold.Ok(*MakeEvent(1, Captured("O1", wallet)));
  EXPECT_EQ(fold.Keys(),
            std::vector<std::string>{keys::ChannelDailyUsage("C1", fb::Channel::qr_dynamic, kDate)});
}

TEST(ProjectorLimits, AReversalGivesUsageBackARefundDoesNot) {
  Fold fold("limits");
  fold.Ok(*MakeEvent(1, Captured("O1")));
  fold.Ok(*MakeEvent(2, Refunded("O1", "R1", 4'000, 24)));
  EXPECT_EQ(fold.Load<fb::UsageRecordT>(keys::DailyUsage("C1", fb::Medium::sms, kDate)).amount_minor, 10'000);
  fold.Ok(*MakeEvent(3, Reversed("O1")));
  const auto daily = fold.Load<fb::UsageRecordT>(keys::DailyUsage("C1", fb::Medium::sms, kDate));
  EXPECT_EQ(daily.amount_minor, 0);
  EXPECT_EQ(daily.count, 0);
}

TEST(ProjectorLimits, AReversalOfUsageNeverRecordedIsCorruption) {
  Fold fold("limits");
  EXPECT_EQ(fold.Apply(*MakeEvent(1, Reversed("O1"))).code(), StatusCode::kCorruption);
}

TEST(ProjectorLimits, OtherEventsWriteNothing) {
  Fold fold("limits");
  fold.Ok(*MakeEvent(1, AccountOpened("C1", "C1:debit")));
  fold.Ok(*MakeEvent(2, Deposited("C1:debit", 5'000)));
  fold.Ok(*MakeEvent(3, Refunded("O1", "R1", 4'000, 24)));
  EXPECT_TRUE(fold.Writes().empty());
}

// --- payments ---

TEST(ProjectorPayments, APaymentIsRecordedWithItsTransaction) {
  Fold fold("payments");
  fold.Ok(*MakeEvent(7, Captured("O1")));
  const auto payment = fold.Load<fb::PaymentRecordT>(keys::Payment("M1", "O1"));
  EXPECT_EQ(payment.customer, "C1");
  EXPECT_EQ(payment.account, "C1:debit");
  EXPECT_EQ(payment.medium, fb::Medium::sms);
  EXPECT_TRUE(payment.medium_limited);
  EXPECT_EQ(payment.order_amount_minor, 10'000);
  EXPECT_EQ(payment.card_amount_minor, 10'000);
  EXPECT_EQ(payment.fee_minor, 60);
  EXPECT_EQ(payment.occurred_at_ns, kOccurredAtNs);
  EXPECT_EQ(payment.clearing_date, kDate);
  EXPECT_EQ(payment.status, fb::PaymentStatus::success);
  EXPECT_EQ(payment.transaction_id, "t7");
  EXPECT_EQ(fold.Keys(), std::vector<std::string>{keys::Payment("M1", "O1")});
}

TEST(ProjectorPayments, RefundsAddUpAndTheLastOneMakesThePaymentRefunded) {
  Fold fold("payments");
  fold.Ok(*MakeEvent(1, Captured("O1")));
  fold.Ok(*MakeEvent(2, Refunded("O1", "R1", 4'000, 24)));
  auto payment = fold.Load<fb::PaymentRecordT>(keys::Payment("M1", "O1"));
  EXPECT_EQ(payment.status, fb::PaymentStatus::partially_refunded);
  EXPECT_EQ(payment.refunded_amount_minor, 4'000);
  EXPECT_EQ(payment.refunded_fee_minor, 24);
  EXPECT_EQ(payment.refund_count, 1);
  const auto refund = fold.Load<fb::RefundRecordT>(keys::Refund("M1", "R1"));
  EXPECT_EQ(refund.merchant_order_no, "O1");
  EXPECT_EQ(refund.transaction_id, "t2");

  fold.Ok(*MakeEvent(3, Refunded("O1", "R2", 6'000, 36)));
  payment = fold.Load<fb::PaymentRecordT>(keys::Payment("M1", "O1"));
  EXPECT_EQ(payment.status, fb::PaymentStatus::refunded);
  EXPECT_EQ(payment.refunded_amount_minor, 10'000);
  EXPECT_EQ(payment.refund_count, 2);
  EXPECT_EQ(fold.Keys(), (std::vector<std::string>{keys::Payment("M1", "O1"), keys::Refund("M1", "R1"),
                                                   keys::Refund("M1", "R2")}));
  EXPECT_TRUE(fold.ForeignKeys().empty());
}

TEST(ProjectorPayments, RefundsBeyondTheOrderAreCorruption) {
  Fold fold("payments");
  fold.Ok(*MakeEvent(1, Captured("O1")));
  EXPECT_EQ(fold.Apply(*MakeEvent(2, Refunded("O1", "R1", 10'001, 0))).code(), StatusCode::kCorruption);
}

TEST(ProjectorPayments, AReversalMarksThePaymentAndOnlyOnce) {
  Fold fold("payments");
  fold.Ok(*MakeEvent(1, Captured("O1")));
  fold.Ok(*MakeEvent(2, Reversed("O1")));
  EXPECT_EQ(fold.Load<fb::PaymentRecordT>(keys::Payment("M1", "O1")).status, fb::PaymentStatus::reversed);
  EXPECT_EQ(fold.Apply(*MakeEvent(3, Reversed("O1"))).code(), StatusCode::kCorruption);
  Fold unknown("payments");
  EXPECT_EQ(unknown.Apply(*MakeEvent(1, Reversed("O9"))).code(), StatusCode::kCorruption);
}

TEST(ProjectorPayments, OtherEventsWriteNothing) {
  Fold fold("payments");
  fold.Ok(*MakeEvent(1, AccountOpened("C1", "C1:debit")));
  fold.Ok(*MakeEvent(2, Deposited("C1:debit", 5'000)));
  fold.Ok(*MakeEvent(3, Rejected("DUPLICATE_ORDER")));
  EXPECT_TRUE(fold.Writes().empty());
}

// --- commands (outcomes) ---

TEST(ProjectorCommands, TheFirstTransactionOfACommandIdIsItsOutcome) {
  Fold fold("commands");
  fold.Ok(*MakeEvent(1, Captured("O1"), "pay-1", "t-pay"));
  fold.Ok(*MakeEvent(2, Refunded("O1", "R1", 1, 0), "pay-1", "t-pay"));  // a second event of that transaction
  const auto outcome = fold.Load<fb::CommandOutcomeRecordT>(keys::CommandOutcome("pay-1"));
  EXPECT_TRUE(outcome.accepted);
  EXPECT_EQ(outcome.reason, "");
  EXPECT_EQ(outcome.transaction_id, "t-pay");
  EXPECT_EQ(outcome.sequences, (std::vector<uint64_t>{1, 2}));
  const Digest fingerprint = Sha256Of("pay-1");
  EXPECT_TRUE(std::equal(outcome.fingerprint.begin(), outcome.fingerprint.end(), fingerprint.begin(),
                         fingerprint.end()));

  fold.Ok(*MakeEvent(3, Rejected("INSUFFICIENT_FUNDS"), "pay-2", "t-rejected"));
  const auto rejected = fold.Load<fb::CommandOutcomeRecordT>(keys::CommandOutcome("pay-2"));
  EXPECT_FALSE(rejected.accepted);
  EXPECT_EQ(rejected.reason, "INSUFFICIENT_FUNDS");
  EXPECT_EQ(rejected.sequences, std::vector<uint64_t>{3});
  EXPECT_TRUE(fold.ForeignKeys().empty());
}

TEST(ProjectorCommands, AReusedIdWithOtherContentIsKeptApartAndLeavesTheOutcome) {
  Fold fold("commands");
  fold.Ok(*MakeEvent(1, Captured("O1"), "pay-1", "t-pay"));
  const std::string before = *fold.Writes().at(keys::CommandOutcome("pay-1"));

  fb::EventBodyT mismatch;
  mismatch.sequence = 2;
  mismatch.command_id = "pay-1";
  mismatch.transaction_id = "t-mismatch";
  const Digest other = Sha256Of("other content");
  mismatch.command_fingerprint.assign(other.begin(), other.end());
  mismatch.payload.Set(Rejected("DUPLICATE_COMMAND_MISMATCH"));
  fold.Ok(Event(mismatch));

  EXPECT_EQ(*fold.Writes().at(keys::CommandOutcome("pay-1")), before);
  const auto kept = fold.Load<fb::CommandOutcomeRecordT>(keys::MismatchOutcome("pay-1", ToHex(other)));
  EXPECT_FALSE(kept.accepted);
  EXPECT_EQ(kept.reason, "DUPLICATE_COMMAND_MISMATCH");
  EXPECT_EQ(kept.transaction_id, "t-mismatch");
  EXPECT_EQ(kept.sequences, std::vector<uint64_t>{2});
  EXPECT_EQ(fold.Keys().size(), 2u);
  EXPECT_TRUE(fold.ForeignKeys().empty());
}

TEST(ProjectorCommands, AnotherTransactionWithoutFingerprintChangesNothing) {
  Fold fold("commands");
  fold.Ok(*MakeEvent(1, Captured("O1"), "pay-1", "t-pay"));
  const auto before = fold.Writes();
  fb::EventBodyT foreign;
  foreign.sequence = 2;
  foreign.command_id = "pay-1";
  foreign.transaction_id = "t-other";
  foreign.payload.Set(Rejected("DUPLICATE_COMMAND_MISMATCH"));
  fold.Ok(Event(foreign));
  EXPECT_EQ(fold.Writes(), before);
}

// --- checkpoints ---

TEST(ProjectorCheckpoints, ACheckpointIsKeyedByItsEventAndHoldsTheSequenceItCovers) {
  Fold fold("checkpoints");
  fb::CheckpointRecordedT checkpoint;
  checkpoint.sequence = 41;
  fold.Ok(*MakeEvent(42, std::move(checkpoint)));
  EXPECT_EQ(fold.Load<fb::AppliedRecordT>(keys::Checkpoint(42)).sequence, 41u);
  EXPECT_EQ(fold.Keys(), std::vector<std::string>{keys::Checkpoint(42)});
  EXPECT_TRUE(fold.ForeignKeys().empty());
}

TEST(ProjectorCheckpoints, OtherEventsWriteNothing) {
  Fold fold("checkpoints");
  fold.Ok(*MakeEvent(1, Deposited("C1:debit", 5'000)));
  fold.Ok(*MakeEvent(2, Captured("O1")));
  fold.Ok(*MakeEvent(3, Rejected("CLOCK_SKEW")));
  EXPECT_TRUE(fold.Writes().empty());
}

// --- clearing ---

TEST(ProjectorClearing, APaymentMakesASummaryASchemeLineALineAndAnIndexedReconLine) {
  Fold fold("clearing");
  PaymentShape wallet;
  wallet.funding = fb::Funding::wechat;
  wallet.medium_limited = false;
  fold.Ok(*MakeEvent(5, Captured("O1", wallet)));

  const auto summary = fold.Load<fb::MerchantClearingRecordT>(keys::MerchantClearing(kDate, "M1"));
  EXPECT_EQ(summary.payment_count, 1);
  EXPECT_EQ(summary.wechat_minor, 10'000);
  EXPECT_EQ(summary.own_account_minor, 0);
  EXPECT_EQ(summary.fee_minor, 60);
  EXPECT_EQ(summary.net_settlement_minor, 10'000 - 60);
  const auto scheme = fold.Load<fb::SchemeClearingRecordT>(keys::SchemeClearing(kDate, "wechat"));
  EXPECT_EQ(scheme.payment_count, 1);
  EXPECT_EQ(scheme.net_owed_minor, 10'000);
  const auto line = fold.Load<fb::ClearingLineRecordT>(keys::ClearingLine(kDate, "M1", 5));
  EXPECT_EQ(line.kind, fb::ClearingLineKind::payment);
  EXPECT_EQ(line.merchant_order_no, "O1");
  EXPECT_EQ(line.transaction_id, "t5");
  const auto recon = fold.Load<fb::ReconLineRecordT>(keys::ReconOrder("M1", "O1"));
  EXPECT_EQ(recon.status, fb::PaymentStatus::success);
  EXPECT_EQ(recon.clearing_date, kDate);
  const std::string index = keys::ReconDateIndex(kDate, "M1", keys::ReconLineKind::kPayment, "O1");
  EXPECT_EQ(fold.Writes().at(index), std::optional<std::string>(""));
  EXPECT_EQ(fold.Keys().size(), 5u);
  EXPECT_TRUE(fold.ForeignKeys().empty());
}

TEST(ProjectorClearing, OwnAccountPaymentsOweNoScheme) {
  Fold fold("clearing");
  fold.Ok(*MakeEvent(1, Captured("O1")));
  EXPECT_FALSE(fold.Has(keys::SchemeClearing(kDate, "own_account")));
  EXPECT_EQ(fold.Load<fb::MerchantClearingRecordT>(keys::MerchantClearing(kDate, "M1")).own_account_minor,
            10'000);
  EXPECT_EQ(fold.Keys().size(), 4u);
}

TEST(ProjectorClearing, RefundsAndReversalsUpdateTheReconLines) {
  Fold fold("clearing");
  fold.Ok(*MakeEvent(1, Captured("O1")));
  fold.Ok(*MakeEvent(2, Refunded("O1", "R1", 4'000, 24)));
  EXPECT_EQ(fold.Load<fb::ReconLineRecordT>(keys::ReconOrder("M1", "O1")).status,
            fb::PaymentStatus::partially_refunded);
  const auto refund = fold.Load<fb::ReconLineRecordT>(keys::ReconRefund("M1", "R1"));
  EXPECT_EQ(refund.kind, fb::ClearingLineKind::refund);
  EXPECT_EQ(refund.amount_minor, 4'000);
  EXPECT_TRUE(fold.Has(keys::ReconDateIndex(kDate, "M1", keys::ReconLineKind::kRefund, "R1")));
  EXPECT_EQ(fold.Load<fb::ClearingLineRecordT>(keys::ClearingLine(kDate, "M1", 2)).settlement_minor, -4'000);

  fold.Ok(*MakeEvent(3, Captured("O2")));
  fold.Ok(*MakeEvent(4, Reversed("O2")));
  EXPECT_EQ(fold.Load<fb::ReconLineRecordT>(keys::ReconOrder("M1", "O2")).status,
            fb::PaymentStatus::reversed);
  const auto summary = fold.Load<fb::MerchantClearingRecordT>(keys::MerchantClearing(kDate, "M1"));
  EXPECT_EQ(summary.payment_count, 2);
  EXPECT_EQ(summary.refund_count, 1);
  EXPECT_EQ(summary.reversal_count, 1);
  EXPECT_EQ(summary.reversal_amount_minor, 10'000);
  EXPECT_TRUE(fold.ForeignKeys().empty());
}

TEST(ProjectorClearing, ARefundOfAnUnknownPaymentIsCorruption) {
  Fold fold("clearing");
  EXPECT_EQ(fold.Apply(*MakeEvent(1, Refunded("O9", "R1", 1, 0))).code(), StatusCode::kCorruption);
}

TEST(ProjectorClearing, OtherEventsWriteNothing) {
  Fold fold("clearing");
  fold.Ok(*MakeEvent(1, AccountOpened("C1", "C1:debit")));
  fold.Ok(*MakeEvent(2, Deposited("C1:debit", 5'000)));
  fold.Ok(*MakeEvent(3, Rejected("LIMIT_DAILY_EXCEEDED")));
  EXPECT_TRUE(fold.Writes().empty());
}

}  // namespace
}  // namespace ledger
