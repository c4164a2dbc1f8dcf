// Goal: customer, merchant and account names cannot collide. A customer id or a merchant id never holds
// ':', `gl` and `merchant` are no customer's, and an account is exactly `<customer>:<name>`; so no command
// reaches a merchant's or the bank's balance except through the rule that names it (README: Accounts and
// postings).
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/time.h"
#include "events/event.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::TestLedger;
using Kind = CommandResult::Kind;

// The bank's accounts and the merchants' settlement accounts the tests watch.
const char* const kWatchedAccounts[] = {"merchant:M1",         "merchant:M1:settle", "gl:funding",
                                        "gl:interbank:wechat", "gl:fee_income",      "gl:marketing_expense",
                                        "gl:points_liability", "gl:points_issued"};

std::map<std::string, int64_t> WatchedBalances(TestLedger& ledger) {
  std::map<std::string, int64_t> balances;
  for (const char* account : kWatchedAccounts) balances[account] = ledger.Balance(account);
  return balances;
}

json WithTime(json command) {
  command["occurred_at"] = testing::At(testing::DefaultTimeNs());
  return command;
}

json OpenAccountNamed(const std::string& id, const std::string& customer, const std::string& account) {
  return WithTime({{"type", "open_account"},
                   {"command_id", id},
                   {"customer", customer},
                   {"account", account},
                   {"kind", "debit_card"}});
}

json PayFrom(const std::string& id, const std::string& merchant, const std::string& customer,
             const std::string& account, int64_t amount) {
  json pay = testing::Pay(merchant, "O-" + id, customer, amount, account);
  pay["command_id"] = id;
  return pay;
}

// C1 (C1:debit, 100,000 fen, 5,000 points) has paid M1 10,000 fen, so merchant:M1 holds a settlement balance.
void SetUpPaidMerchant(TestLedger& ledger) {
  for (const json& command :
       {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
        testing::Deposit("d1", "C1:debit", 100'000), testing::AwardPoints("p1", "C1", 5'000),
        testing::Pay("M1", "ORD1", "C1", 10'000)}) {
    ASSERT_EQ(ledger.Submit(command).kind, Kind::kAccepted) << command.dump();
  }
  ASSERT_GT(ledger.Balance("merchant:M1"), 0);
}

// The attack of the issue: merchant `SHOP:settle` settles into `merchant:SHOP:settle`; a customer named
// `merchant:SHOP` opens an account of that very name and pays from it.
TEST(Identity, CustomerNamedLikeAMerchantCannotOpenOrSpendItsSettlementAccount) {
  TestLedger ledger;
  SetUpPaidMerchant(ledger);
  const std::map<std::string, int64_t> before = WatchedBalances(ledger);

  const CommandResult merchant = ledger.Submit(testing::OpenMerchant("m-shop", "SHOP:settle", 0));
  const CommandResult opened =
      ledger.Submit(OpenAccountNamed("a-shop", "merchant:SHOP", "merchant:SHOP:settle"));
  const CommandResult paid =
      ledger.Submit(PayFrom("p-shop", "M1", "merchant:SHOP", "merchant:SHOP:settle", 1));

  EXPECT_EQ(merchant.kind, Kind::kRejected);
  EXPECT_EQ(merchant.reason, reason::kMalformedCommand);
  EXPECT_EQ(opened.kind, Kind::kRejected);
  EXPECT_EQ(opened.reason, reason::kMalformedCommand);
  EXPECT_EQ(paid.kind, Kind::kRejected);
  EXPECT_EQ(paid.reason, reason::kMalformedCommand);
  EXPECT_EQ(WatchedBalances(ledger), before);
  EXPECT_EQ(ledger.Balance("merchant:SHOP:settle"), 0);
  EXPECT_EQ(ledger.SumByUnit(), std::make_pair(int64_t{0}, int64_t{0}));
}

TEST(Identity, CustomerNamedLikeABankAccountCannotOpenIt) {
  TestLedger ledger;
  SetUpPaidMerchant(ledger);
  const std::map<std::string, int64_t> before = WatchedBalances(ledger);

  const CommandResult opened = ledger.Submit(OpenAccountNamed("a-gl", "gl:interbank", "gl:interbank:wechat"));
  const CommandResult deposited = ledger.Submit(testing::Deposit("d-gl", "gl:interbank:wechat", 1'000));

  EXPECT_EQ(opened.reason, reason::kMalformedCommand);
  EXPECT_EQ(deposited.reason, reason::kMalformedCommand);
  EXPECT_EQ(WatchedBalances(ledger), before);
}

// Every command type that names a customer, a merchant or an account refuses a name that could collide.
TEST(Identity, EveryCommandTypeRejectsCollidingNamesAsMalformed) {
  TestLedger ledger;
  SetUpPaidMerchant(ledger);
  const std::map<std::string, int64_t> before = WatchedBalances(ledger);
  const int64_t c1_before = ledger.Balance("C1:debit");
  json coupon_for_gl = WithTime({{"type", "issue_coupon"},
                                 {"command_id", "c1"},
                                 {"coupon", "CP1"},
                                 {"customer", "gl"},
                                 {"value_minor", 100},
                                 {"funded_by", "bank"},
                                 {"expires_at", "2026-12-31T23:59:59+08:00"}});
  json coupon_for_odd_merchant = coupon_for_gl;
  coupon_for_odd_merchant["command_id"] = "c2";
  coupon_for_odd_merchant["customer"] = "C1";
  coupon_for_odd_merchant["merchant"] = "M1:settle";
  json refund = testing::Refund("merchant:M1", "ORD1", "RF1", 100);
  json reverse = testing::Reverse("M1:x", "ORD1");
  json wallet_pay = testing::Pay("M1", "ORD9", "merchant:M1", 100);
  wallet_pay.erase("account");
  wallet_pay.erase("medium");
  wallet_pay["funding"] = "wechat";
  const std::vector<json> hostile = {
      OpenAccountNamed("x1", "merchant:M1", "merchant:M1:x"),  // customer with ':'
      OpenAccountNamed("x2", "merchant", "merchant:M1"),       // reserved customer
      OpenAccountNamed("x3", "gl", "gl:funding"),              // reserved customer
      OpenAccountNamed("x4", "C1", "C1:debit:x"),              // ':' in the name
      OpenAccountNamed("x5", "C1", "C1:"),                     // empty name
      OpenAccountNamed("x6", "C1", "C1:points"),               // the points account
      OpenAccountNamed("x7", "C1", "C2:debit"),                // another customer's
      OpenAccountNamed("x8", "C1", "C1"),                      // no name at all
      testing::OpenMerchant("x9", "M1:settle", 0),             // merchant with ':'
      testing::OpenMerchant("x10", "merchant:M2", 0),          // merchant with ':'
      testing::Deposit("x11", "merchant:M1", 1'000),           // a merchant account
      testing::Deposit("x12", "gl:funding", 1'000),            // a bank account
      testing::Deposit("x13", "C1:points", 1'000),             // the points account
      testing::Deposit("x14", "C1:debit:x", 1'000),            // ':' in the name
      testing::AwardPoints("x15", "merchant:M1", 100),         // customer with ':'
      testing::AwardPoints("x16", "gl", 100),                  // reserved customer
      coupon_for_gl,                                           // reserved customer
      coupon_for_odd_merchant,                                 // merchant with ':'
      WithTime({{"type", "set_customer_limit"},
                {"command_id", "x17"},
                {"customer", "merchant"},
                {"medium", "sms"},
                {"daily_minor", 100}}),                               // reserved customer
      PayFrom("x18", "M1", "C1", "merchant:M1", 100),                 // paying from a merchant account
      PayFrom("x19", "M1", "merchant:M1", "merchant:M1:debit", 100),  // customer with ':'
      PayFrom("x20", "M1:x", "C1", "C1:debit", 100),                  // merchant with ':'
      PayFrom("x21", "M1", "gl", "gl:funding", 100),                  // reserved customer
      wallet_pay,                                                     // customer with ':', no account
      reverse,                                                        // merchant with ':'
      refund,                                                         // merchant with ':'
  };
  for (const json& command : hostile) {
    SCOPED_TRACE(command.dump());
    const CommandResult result = ledger.Submit(command);
    EXPECT_EQ(result.kind, Kind::kRejected);
    EXPECT_EQ(result.reason, reason::kMalformedCommand);
  }
  EXPECT_EQ(WatchedBalances(ledger), before);
  EXPECT_EQ(ledger.Balance("C1:debit"), c1_before);
  EXPECT_EQ(ledger.Balance("C1:points"), 5'000);
  EXPECT_EQ(ledger.SumByUnit(), std::make_pair(int64_t{0}, int64_t{0}));
}

// Names next to the forbidden ones stay usable: a customer named like a merchant id, an account name that
// contains a bank word.
TEST(Identity, OrdinaryNamesThatResembleReservedOnesAreAccepted) {
  TestLedger ledger;
  SetUpPaidMerchant(ledger);

  EXPECT_EQ(ledger.Submit(OpenAccountNamed("a-m1", "M1", "M1:settle")).kind, Kind::kAccepted);
  EXPECT_EQ(ledger.Submit(OpenAccountNamed("a-glx", "glx", "glx:funding")).kind, Kind::kAccepted);
  EXPECT_EQ(ledger.Submit(OpenAccountNamed("a-pts", "C1", "C1:points2")).kind, Kind::kAccepted);
  EXPECT_EQ(ledger.Submit(testing::OpenMerchant("m-gl", "gl", 0)).kind, Kind::kAccepted);
  EXPECT_EQ(ledger.Submit(testing::Deposit("d-m1", "M1:settle", 500)).kind, Kind::kAccepted);
  EXPECT_EQ(ledger.Balance("M1:settle"), 500);
  EXPECT_EQ(ledger.Balance("merchant:gl"), 0);
}

// -----------------------------------------------------------------------------------------------------------
// Property: no sequence of commands makes a merchant or `gl:` balance change except through its rule.

constexpr int kPropertyCommands = 3000;
constexpr int kPropertyGroupMax = 40;
const uint64_t kPropertySeeds[] = {1, 20261125};

// Names a hostile producer would try, next to ordinary ones (ordinary ones more often, so payments happen).
const char* const kCustomers[] = {"C1",           "C2",
                                  "C3",           "C4",
                                  "M1",           "gl",
                                  "merchant",     "merchant:M1",
                                  "merchant:M2",  "merchant:M1:settle",
                                  "gl:interbank", "gl:fee_income",
                                  "C1:debit",     "gl:",
                                  ":C1"};
const char* const kMerchants[] = {
    "M1", "M2", "M3", "C1", "gl", "M1:settle", "merchant:M1", "interbank:wechat", "fee_income", "M2:"};
const char* const kAccountNames[] = {"debit", "credit",           "points",  "settle",      "",
                                     "x:y",   "interbank:wechat", "funding", "debit:points"};
const char* const kWholeAccounts[] = {
    "merchant:M1",   "merchant:M1:settle",  "gl:funding", "gl:interbank:wechat",
    "gl:fee_income", "gl:points_liability", "C1",         "merchant:M2"};
const char* const kFundings[] = {"own_account", "own_account", "own_account",
                                 "other_bank",  "wechat",      "unionpay"};

// What a command names, read back from its line.
struct Named {
  std::string type;
  std::string customer;
  std::string merchant;
  std::string account;
  std::string funding;
  std::string order;
};

Named NamedIn(const json& command) {
  auto text = [&](const char* key) { return command.contains(key) ? command[key].get<std::string>() : ""; };
  return Named{text("type"),    text("customer"), text("merchant"),
               text("account"), text("funding"),  text("merchant_order_no")};
}

struct PaymentOwner {
  std::string customer;
  std::string funding;
};

class HostileGenerator {
 public:
  explicit HostileGenerator(uint64_t seed) : random_(seed), now_(testing::DefaultTimeNs()) {}

  json Next() {
    now_ += Uniform(0, 120) * kNanosPerSecond;
    json command;
    switch (Uniform(0, 11)) {
      case 0:
      case 1:
        command = OpenAccount();
        break;
      case 2:
        command = OpenMerchant();
        break;
      case 3:
      case 4:
        command = Deposit();
        break;
      case 5:
        command = AwardPoints();
        break;
      case 6:
        command = IssueCoupon();
        break;
      case 7:
        command = SetLimit();
        break;
      case 8:
      case 9:
        command = Pay();
        break;
      case 10:
        command = Reverse();
        break;
      default:
        command = Refund();
        break;
    }
    command["command_id"] = "k" + std::to_string(++counter_);
    command["occurred_at"] = testing::At(now_);
    return command;
  }

  // Orders paid so far, by merchant (reverse and refund pick among them).
  void Paid(const std::string& merchant, const std::string& order) { paid_.push_back({merchant, order}); }

 private:
  int64_t Uniform(int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(random_);
  }
  template <size_t N>
  std::string Pick(const char* const (&items)[N]) {
    return items[Uniform(0, static_cast<int64_t>(N) - 1)];
  }
  // Ordinary names two times in three.
  std::string Customer() {
    return Uniform(0, 2) < 2 ? Pick(kCustomers) : "C" + std::to_string(Uniform(1, 4));
  }
  std::string Merchant() {
    return Uniform(0, 2) < 2 ? Pick(kMerchants) : "M" + std::to_string(Uniform(1, 3));
  }
  std::string AccountOf(const std::string& customer) {
    if (Uniform(0, 5) == 0) return Pick(kWholeAccounts);
    return customer + ":" + (Uniform(0, 2) == 0 ? Pick(kAccountNames) : std::string("debit"));
  }

  json OpenAccount() {
    const std::string customer = Customer();
    return {{"type", "open_account"},
            {"customer", customer},
            {"account", AccountOf(customer)},
            {"kind", "debit_card"}};
  }
  json OpenMerchant() {
    return {
        {"type", "open_merchant"}, {"merchant", Merchant()}, {"name", "Shop"}, {"fee_bps", Uniform(0, 100)}};
  }
  json Deposit() {
    return {{"type", "deposit"}, {"account", AccountOf(Customer())}, {"amount_minor", Uniform(1, 500'000)}};
  }
  json AwardPoints() {
    return {{"type", "award_points"}, {"customer", Customer()}, {"points", Uniform(1, 5'000)}};
  }
  json IssueCoupon() {
    json coupon = {{"type", "issue_coupon"}, {"coupon", "CP" + std::to_string(Uniform(1, 40))},
                   {"customer", Customer()}, {"value_minor", Uniform(1, 500)},
                   {"funded_by", "bank"},    {"expires_at", "2027-12-31T23:59:59+08:00"}};
    if (Uniform(0, 1) == 0) coupon["merchant"] = Merchant();
    if (Uniform(0, 1) == 0) coupon["funded_by"] = "merchant";
    return coupon;
  }
  json SetLimit() {
    return {{"type", "set_customer_limit"},
            {"customer", Customer()},
            {"medium", "sms"},
            {"daily_minor", Uniform(0, 500'000)}};
  }
  json Pay() {
    const std::string customer = Customer();
    const std::string funding = Pick(kFundings);
    json pay = {{"type", "pay"},
                {"merchant", Merchant()},
                {"merchant_order_no", "O" + std::to_string(Uniform(1, 400))},
                {"customer", customer},
                {"funding", funding},
                {"channel", "b2c_pc"},
                {"order_amount_minor", Uniform(1, 50'000)}};
    if (funding == "own_account") pay["account"] = AccountOf(customer);
    if (funding == "other_bank") pay["card_token"] = "tok-" + customer;
    if (funding == "own_account" || funding == "other_bank") pay["medium"] = "u_shield";
    if (Uniform(0, 3) == 0) pay["points"] = Uniform(1, 2'000);
    if (Uniform(0, 3) == 0) pay["coupon"] = "CP" + std::to_string(Uniform(1, 40));
    if (Uniform(0, 5) == 0) pay["discount_minor"] = Uniform(1, 100);
    return pay;
  }
  std::pair<std::string, std::string> PaidOrder() {
    if (paid_.empty() || Uniform(0, 4) == 0) return {Merchant(), "O" + std::to_string(Uniform(1, 400))};
    return paid_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(paid_.size()) - 1))];
  }
  json Reverse() {
    const auto [merchant, order] = PaidOrder();
    return {{"type", "reverse"}, {"merchant", merchant}, {"merchant_order_no", order}};
  }
  json Refund() {
    const auto [merchant, order] = PaidOrder();
    return {{"type", "refund"},
            {"merchant", merchant},
            {"merchant_order_no", order},
            {"refund_no", "R" + std::to_string(++counter_)},
            {"amount_minor", Uniform(1, 20'000)}};
  }

  std::mt19937_64 random_;
  int64_t now_;
  uint64_t counter_ = 0;
  std::vector<std::pair<std::string, std::string>> paid_;
};

// The bank accounts a command type may post to: each gl: account belongs to the rules that name it.
bool BankAccountAllowed(const std::string& account, const Named& named, const PaymentOwner* payment) {
  if (named.type == "deposit") return account == gl::kFunding;
  if (named.type == "award_points") {
    return account == gl::kPointsIssued || account == gl::kPointsLiability ||
           account == gl::kMarketingExpense;
  }
  if (named.type != "pay" && named.type != "reverse" && named.type != "refund") return false;
  if (account.starts_with("gl:interbank:")) {
    const std::string funding = named.type == "pay" ? named.funding : payment ? payment->funding : "";
    return funding != "own_account" && account == "gl:interbank:" + funding;
  }
  return account == gl::kPointsIssued || account == gl::kPointsLiability ||
         account == gl::kMarketingExpense || account == gl::kFeeIncome;
}

// The customer whose accounts a command may post to.
std::string CustomerOf(const Named& named, const PaymentOwner* payment) {
  if (named.type == "reverse" || named.type == "refund") return payment ? payment->customer : "";
  return named.customer;
}

// Checks every posting of an accepted command against the rules; returns the first breach ("" when none).
std::string Breach(const json& command, const std::vector<std::string>& records,
                   const std::map<std::string, PaymentOwner>& payments) {
  const Named named = NamedIn(command);
  const auto payment_it = payments.find(named.merchant + "/" + named.order);
  const PaymentOwner* payment = payment_it == payments.end() ? nullptr : &payment_it->second;
  for (const std::string& record : records) {
    Result<DecodedEvent> event = DecodeEventRecord(record);
    if (!event.ok()) return "undecodable event";
    const auto* postings = PostingsOf(*event->body);
    if (postings == nullptr) continue;
    for (const fb::Posting* posting : *postings) {
      const std::string account = posting->account()->str();
      std::ostringstream where;
      where << EventTypeName(event->body->payload_type()) << " posts " << posting->amount_minor() << " to "
            << account;
      if (account.starts_with("merchant:")) {
        const bool merchant_rule = named.type == "pay" || named.type == "reverse" || named.type == "refund";
        if (!merchant_rule || account != "merchant:" + named.merchant) return where.str();
      } else if (account.starts_with("gl:")) {
        if (!BankAccountAllowed(account, named, payment)) return where.str();
      } else if (named.type == "deposit") {
        if (account != named.account) return where.str();
      } else {
        const std::string owner = CustomerOf(named, payment);
        if (owner.empty() || account.substr(0, account.find(':')) != owner) return where.str();
      }
    }
  }
  return "";
}

// Ids of accepted commands never hold a name that could collide.
std::string NameBreach(const Named& named) {
  const bool reserved = named.customer == "gl" || named.customer == "merchant";
  if (named.customer.find(':') != std::string::npos || reserved) {
    return "accepted customer " + named.customer;
  }
  if (named.merchant.find(':') != std::string::npos) return "accepted merchant " + named.merchant;
  if (!named.account.empty()) {
    const size_t colon = named.account.find(':');
    const std::string name = colon == std::string::npos ? "" : named.account.substr(colon + 1);
    if (name.empty() || name.find(':') != std::string::npos || name == "points") {
      return "accepted account " + named.account;
    }
  }
  return "";
}

TEST(IdentityProperty, NoCommandSequenceMovesMerchantOrBankMoneyOutsideItsRule) {
  for (const uint64_t seed : kPropertySeeds) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TestLedger ledger;
    HostileGenerator generator(seed);
    std::mt19937_64 groups(seed + 1);
    std::map<std::string, PaymentOwner> payments;  // merchant/order of accepted payments
    std::map<std::string, int> accepted_by_type;
    int rejected_malformed = 0;
    int submitted = 0;
    const int commands = testing::Scaled(kPropertyCommands);
    while (submitted < commands && !::testing::Test::HasFailure()) {
      const int size = std::uniform_int_distribution<int>(1, kPropertyGroupMax)(groups);
      std::vector<std::pair<json, CommandResult>> staged;
      for (int i = 0; i < size && submitted < commands; ++i, ++submitted) {
        const json command = generator.Next();
        Result<ParsedCommand> parsed = ParseCommandJson(command.dump());
        ASSERT_TRUE(parsed.ok()) << parsed.status().ToString() << " " << command.dump();
        const CommandResult result = ledger.ledger().Stage(*parsed);
        if (result.kind == Kind::kAccepted && command["type"] == "pay") {
          const Named named = NamedIn(command);
          payments[named.merchant + "/" + named.order] = PaymentOwner{named.customer, named.funding};
          generator.Paid(named.merchant, named.order);
        }
        staged.emplace_back(command, result);
      }
      ASSERT_TRUE(ledger.ledger().CommitGroup().ok());
      for (const auto& [command, result] : staged) {
        ASSERT_FALSE(result.sequences.empty()) << command.dump();
        const std::vector<std::string> records =
            testing::EventRecords(ledger.ledger().store(), result.sequences.front(), result.sequences.back());
        ASSERT_EQ(records.size(), result.sequences.size()) << command.dump();
        if (result.kind != Kind::kAccepted) {
          rejected_malformed += result.reason == reason::kMalformedCommand;
          const std::string breach = Breach(json{{"type", "rejected"}}, records, payments);
          EXPECT_EQ(breach, "") << "a rejected command moved money: " << command.dump();
          continue;
        }
        accepted_by_type[command["type"].get<std::string>()] += 1;
        EXPECT_EQ(NameBreach(NamedIn(command)), "") << command.dump();
        EXPECT_EQ(Breach(command, records, payments), "") << command.dump();
      }
    }
    EXPECT_EQ(ledger.SumByUnit(), std::make_pair(int64_t{0}, int64_t{0}));
    // Not vacuous: every rule ran, and hostile names were met.
    for (const char* type : {"open_account", "open_merchant", "deposit", "award_points", "issue_coupon",
                             "set_customer_limit", "pay", "reverse", "refund"}) {
      EXPECT_GT(accepted_by_type[type], 0) << "no accepted " << type;
    }
    EXPECT_GT(rejected_malformed, commands / 20);
  }
}

}  // namespace
}  // namespace ledger
