// Goal: a customer's authentication media are ledger facts. A medium is enrolled with its public part only
// (a key, a phone number, or nothing), for a known customer; failed proofs are counted in a row and the fifth
// locks the medium until it is enrolled again; a payment carrying a proof needs its medium enrolled and
// unlocked, records what was proven with the payment's own events, ends a run of failures, and an otp_card's
// time step is never used twice. A payment without a proof is limited by its declared medium as before.
// A payment code is issued once its medium is proven, pays one order of its own customer and account by that
// medium before it expires, or — above that medium's limit — waits on the order until the customer confirms
// it with a proof of another medium.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "events/event.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "shard_cluster.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::TestLedger;
using Kind = CommandResult::Kind;

constexpr char kPem[] =
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";

json Enroll(const std::string& id, const std::string& customer, const std::string& medium,
            std::optional<std::string> public_part) {
  json command = {{"type", "enroll_medium"}, {"command_id", id}, {"customer", customer}, {"medium", medium}};
  if (public_part) command["public_part"] = *public_part;
  return command;
}

json Failure(const std::string& id, const std::string& customer, const std::string& medium) {
  return {{"type", "record_proof_failure"}, {"command_id", id}, {"customer", customer}, {"medium", medium}};
}

json ProvenPay(const std::string& order_no, const std::string& medium, int64_t step) {
  json pay = testing::Pay("M1", order_no, "alice", 1'000, "", medium);
  pay["proof"] = medium + " proven";
  pay["proof_step"] = step;
  return pay;
}

std::optional<fb::CustomerMediumRecordT> Medium(TestLedger& ledger, const std::string& customer,
                                                fb::Medium medium) {
  fb::CustomerMediumRecordT record;
  if (!LoadRecord(ledger.ledger().store().state(), keys::CustomerMedium(customer, medium), &record))
    return std::nullopt;
  return record;
}

void OpenAliceAndMerchant(TestLedger& ledger) {
  ASSERT_EQ(ledger.Submit(testing::OpenAccount("a1", "alice")).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(testing::Deposit("d1", "alice:debit", 100'000)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(testing::OpenMerchant("m1", "M1", 60)).kind, Kind::kAccepted);
}

TEST(CustomerMedia, AMediumIsEnrolledWithItsPublicPartOnlyForAKnownCustomer) {
  TestLedger ledger;
  EXPECT_EQ(ledger.Submit(Enroll("e0", "alice", "fingerprint", kPem)).reason, reason::kUnknownAccount);
  OpenAliceAndMerchant(ledger);
  ASSERT_EQ(ledger.Submit(Enroll("e1", "alice", "fingerprint", kPem)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(Enroll("e2", "alice", "sms", "+8613800138000")).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(Enroll("e3", "alice", "otp_card", std::nullopt)).kind, Kind::kAccepted);
  EXPECT_EQ(Medium(ledger, "alice", fb::Medium::fingerprint)->public_part, kPem);
  EXPECT_EQ(Medium(ledger, "alice", fb::Medium::sms)->public_part, "+8613800138000");
  EXPECT_EQ(Medium(ledger, "alice", fb::Medium::otp_card)->public_part, "");
  EXPECT_FALSE(Medium(ledger, "alice", fb::Medium::u_shield));

  for (const json& bad :
       {Enroll("b1", "alice", "fingerprint", std::nullopt), Enroll("b2", "alice", "u_shield", "not a key"),
        Enroll("b3", "alice", "sms", "12ab45"), Enroll("b4", "alice", "sms", "123"),
        Enroll("b5", "alice", "otp_card", "secret"), Enroll("b6", "alice", "none", std::nullopt),
        Failure("b7", "alice", "none")}) {
    SCOPED_TRACE(bad.dump());
    EXPECT_EQ(ledger.Submit(bad).reason, reason::kMalformedCommand);
  }
  EXPECT_FALSE(Medium(ledger, "alice", fb::Medium::u_shield));
  EXPECT_EQ(Medium(ledger, "alice", fb::Medium::otp_card)->public_part, "");
}

TEST(CustomerMedia, TheFifthFailureInARowLocksTheMediumUntilItIsEnrolledAgain) {
  TestLedger ledger;
  OpenAliceAndMerchant(ledger);
  EXPECT_EQ(ledger.Submit(Failure("f0", "alice", "otp_card")).reason, reason::kMediumNotEnrolled);
  ASSERT_EQ(ledger.Submit(Enroll("e1", "alice", "otp_card", std::nullopt)).kind, Kind::kAccepted);
  for (int i = 1; i <= 4; ++i) {
    ASSERT_EQ(ledger.Submit(Failure("f" + std::to_string(i), "alice", "otp_card")).kind, Kind::kAccepted);
  }
  EXPECT_EQ(Medium(ledger, "alice", fb::Medium::otp_card)->failures, 4);
  EXPECT_FALSE(Medium(ledger, "alice", fb::Medium::otp_card)->locked);
  // A proven payment ends the run: four more failures still do not lock.
  ASSERT_EQ(ledger.Submit(ProvenPay("o1", "otp_card", 100)).kind, Kind::kAccepted);
  EXPECT_EQ(Medium(ledger, "alice", fb::Medium::otp_card)->failures, 0);
  for (int i = 5; i <= 8; ++i) {
    ASSERT_EQ(ledger.Submit(Failure("f" + std::to_string(i), "alice", "otp_card")).kind, Kind::kAccepted);
  }
  EXPECT_FALSE(Medium(ledger, "alice", fb::Medium::otp_card)->locked);
  ASSERT_EQ(ledger.Submit(Failure("f9", "alice", "otp_card")).kind, Kind::kAccepted);
  EXPECT_TRUE(Medium(ledger, "alice", fb::Medium::otp_card)->locked);
  EXPECT_EQ(ledger.Submit(Failure("f10", "alice", "otp_card")).reason, reason::kMediumLocked);

  const int64_t balance = ledger.Balance("alice:debit");
  EXPECT_EQ(ledger.Submit(ProvenPay("o2", "otp_card", 200)).reason, reason::kMediumLocked);
  EXPECT_EQ(ledger.Balance("alice:debit"), balance);
  ASSERT_EQ(ledger.Submit(Enroll("e2", "alice", "otp_card", std::nullopt)).kind, Kind::kAccepted);
  EXPECT_FALSE(Medium(ledger, "alice", fb::Medium::otp_card)->locked);
  EXPECT_EQ(Medium(ledger, "alice", fb::Medium::otp_card)->failures, 0);
  EXPECT_EQ(ledger.Submit(ProvenPay("o3", "otp_card", 200)).kind, Kind::kAccepted);
  EXPECT_EQ(ledger.Balance("alice:debit"), balance - 1'000);
}

TEST(CustomerMedia, AProvenPaymentNeedsItsMediumEnrolledAndUsesATotpStepOnce) {
  TestLedger ledger;
  OpenAliceAndMerchant(ledger);
  EXPECT_EQ(ledger.Submit(ProvenPay("o1", "otp_card", 100)).reason, reason::kMediumNotEnrolled);
  ASSERT_EQ(ledger.Submit(Enroll("e1", "alice", "otp_card", std::nullopt)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(ProvenPay("o2", "otp_card", 100)).kind, Kind::kAccepted);
  EXPECT_EQ(Medium(ledger, "alice", fb::Medium::otp_card)->last_step, 100);
  EXPECT_EQ(ledger.Submit(ProvenPay("o3", "otp_card", 100)).reason, reason::kMediumProofInvalid);
  EXPECT_EQ(ledger.Submit(ProvenPay("o4", "otp_card", 99)).reason, reason::kMediumProofInvalid);
  // Enrolled again (a new card): a used step stays used.
  ASSERT_EQ(ledger.Submit(Enroll("e2", "alice", "otp_card", std::nullopt)).kind, Kind::kAccepted);
  EXPECT_EQ(ledger.Submit(ProvenPay("o5", "otp_card", 100)).reason, reason::kMediumProofInvalid);
  EXPECT_EQ(ledger.Submit(ProvenPay("o6", "otp_card", 101)).kind, Kind::kAccepted);
  EXPECT_EQ(ledger.Balance("alice:debit"), 100'000 - 2'000);

  // The proof is recorded with the payment; a declared medium still pays without one.
  bool recorded = false;
  ASSERT_TRUE(ledger.ledger()
                  .store()
                  .ScanEvents(1, ledger.ledger().durable_sequence(),
                              [&](uint64_t, std::string_view record) {
                                Result<DecodedEvent> decoded = DecodeEventRecord(record);
                                EXPECT_TRUE(decoded.ok());
                                const fb::EventBody& event = *decoded->body;
                                const auto* used = event.payload_as_MediumProofUsed();
                                recorded = recorded || (used != nullptr && used->step() == 101 &&
                                                        used->proof()->str() == "otp_card proven" &&
                                                        event.command_id()->str() == "M1:o6");
                                return true;
                              })
                  .ok());
  EXPECT_TRUE(recorded);
  EXPECT_EQ(ledger.Submit(testing::Pay("M1", "o7", "alice", 1'000, "", "u_shield")).kind, Kind::kAccepted);
  json stepless = testing::Pay("M1", "o8", "alice", 1'000);
  stepless["proof_step"] = 5;
  EXPECT_EQ(ledger.Submit(stepless).reason, reason::kMalformedCommand);
}

constexpr char kCode[] = "0123456789abcdef0123456789abcdef";
constexpr int64_t kMinute = 60'000'000'000;

json IssueCode(const std::string& id, const std::string& code, const std::string& medium, int64_t step = 0,
               const std::string& customer = "alice") {
  json command = {{"type", "issue_payment_code"},
                  {"command_id", id},
                  {"customer", customer},
                  {"account", customer + ":debit"},
                  {"medium", medium},
                  {"proof", medium + " proven"},
                  {"payment_code", code},
                  {"expires_at", testing::At(testing::DefaultTimeNs() + kMinute)}};
  if (step > 0) command["proof_step"] = step;
  return command;
}

json CodePay(const std::string& order_no, int64_t amount, const std::string& medium, const std::string& code,
             const std::string& customer = "alice") {
  json pay = testing::Pay("M1", order_no, customer, amount, "", medium);
  pay["channel"] = "qr_customer_presented";
  pay["payment_code"] = code;
  return pay;
}

std::optional<fb::PaymentCodeRecordT> CodeIn(const Ledger& ledger, const std::string& code) {
  fb::PaymentCodeRecordT record;
  if (!LoadRecord(ledger.store().state(), keys::PaymentCode(code), &record)) return std::nullopt;
  return record;
}

std::optional<fb::PaymentCodeRecordT> Code(TestLedger& ledger, const std::string& code) {
  return CodeIn(ledger.ledger(), code);
}

json WaitingOrder(const std::string& id, const std::string& order_no, int64_t amount, const std::string& code,
                  const std::string& customer = "alice") {
  return {{"type", "create_order"},
          {"command_id", id},
          {"merchant", "M1"},
          {"merchant_order_no", order_no},
          {"amount_minor", amount},
          {"channel", "qr_customer_presented"},
          {"payment_code", code},
          {"payment_code_customer", customer},
          {"expires_at", testing::At(testing::DefaultTimeNs() + 5 * kMinute)}};
}

bool OrderCreatedOn(const Ledger& ledger, const std::string& order_no) {
  fb::OrderRecordT order;
  return LoadRecord(ledger.store().state(), keys::Order("M1", order_no), &order);
}

json Confirmation(const std::string& id, const std::string& order_no, int64_t amount, const std::string& code,
                  const std::string& customer) {
  json confirm = CodePay(order_no, amount, "u_shield", code, customer);
  confirm["command_id"] = id;
  confirm["proof"] = "u_shield proven";
  return confirm;
}

TEST(PaymentCodes, ACodeIsIssuedOnAProvenMediumAndPaysOneOrderBeforeItExpires) {
  TestLedger ledger;
  OpenAliceAndMerchant(ledger);
  EXPECT_EQ(ledger.Submit(IssueCode("c0", kCode, "otp_card", 7)).reason, reason::kMediumNotEnrolled);
  ASSERT_EQ(ledger.Submit(Enroll("e1", "alice", "otp_card", std::nullopt)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(Enroll("e2", "alice", "fingerprint", kPem)).kind, Kind::kAccepted);
  json other_account = IssueCode("c1", kCode, "fingerprint");
  other_account["account"] = "alice:credit";
  EXPECT_EQ(ledger.Submit(other_account).reason, reason::kUnknownAccount);
  ASSERT_EQ(ledger.Submit(IssueCode("c2", kCode, "otp_card", 7)).kind, Kind::kAccepted);
  EXPECT_EQ(Medium(ledger, "alice", fb::Medium::otp_card)->last_step, 7);  // the code spent its step
  EXPECT_EQ(ledger.Submit(IssueCode("c3", std::string(32, 'a'), "otp_card", 7)).reason,
            reason::kMediumProofInvalid);
  EXPECT_EQ(ledger.Submit(IssueCode("c4", kCode, "fingerprint")).reason, reason::kAlreadyExists);
  EXPECT_EQ(Code(ledger, kCode)->medium, fb::Medium::otp_card);

  const int64_t balance = ledger.Balance("alice:debit");
  EXPECT_EQ(ledger.Submit(CodePay("o1", 1'000, "fingerprint", kCode)).reason, reason::kPaymentCodeInvalid);
  json late = CodePay("o2", 1'000, "otp_card", kCode);
  late["occurred_at"] = testing::At(testing::DefaultTimeNs() + kMinute);
  EXPECT_EQ(ledger.Submit(late).reason, reason::kPaymentCodeExpired);
  json savings = testing::OpenAccount("a3", "alice");
  savings["account"] = "alice:savings";
  ASSERT_EQ(ledger.Submit(savings).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(testing::Deposit("d2", "alice:savings", 5'000)).kind, Kind::kAccepted);
  json other_account_pays = CodePay("o3", 1'000, "otp_card", kCode);
  other_account_pays["account"] = "alice:savings";
  EXPECT_EQ(ledger.Submit(other_account_pays).reason, reason::kPaymentCodeInvalid);
  EXPECT_EQ(ledger.Balance("alice:debit"), balance);
  ASSERT_EQ(ledger.Submit(CodePay("o4", 1'000, "otp_card", kCode)).kind, Kind::kAccepted);
  EXPECT_TRUE(Code(ledger, kCode)->used);
  EXPECT_EQ(ledger.Submit(CodePay("o5", 1'000, "otp_card", kCode)).reason, reason::kPaymentCodeInvalid);
  EXPECT_EQ(ledger.Balance("alice:debit"), balance - 1'000);
}

TEST(PaymentCodes, AboveItsMediumsLimitACodeWaitsOnTheOrderUntilTheCustomerConfirmsIt) {
  TestLedger ledger;
  OpenAliceAndMerchant(ledger);
  ASSERT_EQ(ledger.Submit(testing::Deposit("d2", "alice:debit", 1'000'000)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(Enroll("e1", "alice", "password_free", kPem)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(Enroll("e2", "alice", "u_shield", kPem)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(IssueCode("c1", kCode, "password_free")).kind, Kind::kAccepted);
  // 2,000.00: above password_free's 1,000.00 a payment.
  EXPECT_EQ(ledger.Submit(CodePay("o1", 200'000, "password_free", kCode)).reason,
            reason::kLimitPerPaymentExceeded);
  json wait = WaitingOrder("w1", "o1", 200'000, kCode);
  // With one shard, a code this shard never issued is no code.
  EXPECT_EQ(ledger.Submit(WaitingOrder("w-unknown", "o9", 200'000, std::string(32, 'f'))).reason,
            reason::kPaymentCodeInvalid);
  json no_code = wait;
  no_code.erase("payment_code");
  no_code["command_id"] = "w0";
  EXPECT_EQ(ledger.Submit(no_code).reason, reason::kMalformedCommand);
  json no_customer = wait;
  no_customer.erase("payment_code_customer");
  no_customer["command_id"] = "w0-customer";
  EXPECT_EQ(ledger.Submit(no_customer).reason, reason::kMalformedCommand);
  json other_customer = wait;
  other_customer["payment_code_customer"] = "bob";
  other_customer["command_id"] = "w0-bob";
  EXPECT_EQ(ledger.Submit(other_customer).reason, reason::kPaymentCodeInvalid);  // the code is alice's
  ASSERT_EQ(ledger.Submit(wait).kind, Kind::kAccepted);
  EXPECT_EQ(Code(ledger, kCode)->waiting_order, "o1");
  json other_order = wait;
  other_order["command_id"] = "w2";
  other_order["merchant_order_no"] = "o2";
  EXPECT_EQ(ledger.Submit(other_order).reason, reason::kPaymentCodeInvalid);  // a code waits on one order
  // Scanned again, the waiting code pays nothing; the order is paid only with the code and a proof.
  EXPECT_EQ(ledger.Submit(CodePay("o3", 100, "password_free", kCode)).reason, reason::kPaymentCodeInvalid);
  json without_code = testing::Pay("M1", "o1", "alice", 200'000, "", "u_shield");
  without_code["command_id"] = "without-code";  // M1:o1 was the refused scan
  without_code["channel"] = "qr_customer_presented";
  without_code["proof"] = "u_shield proven";
  EXPECT_EQ(ledger.Submit(without_code).reason, reason::kPaymentCodeInvalid);
  json confirm = CodePay("o1", 200'000, "u_shield", kCode);
  confirm["command_id"] = "confirm";
  confirm["proof"] = "u_shield proven";
  json unproven = confirm;
  unproven["command_id"] = "unproven";
  unproven.erase("proof");
  EXPECT_EQ(ledger.Submit(unproven).reason, reason::kPaymentCodeInvalid);
  EXPECT_EQ(ledger.Balance("alice:debit"), 1'100'000);
  ASSERT_EQ(ledger.Submit(confirm).kind, Kind::kAccepted);
  EXPECT_EQ(ledger.Balance("alice:debit"), 900'000);
  EXPECT_TRUE(Code(ledger, kCode)->used);
}

// The order waits on its shard, the code was issued on its customer's: the code's shard reserves the code for
// the order before the order's shard creates it, and pays it only with a proof, only once.
TEST(PaymentCodes, ACodeOfAnotherShardsCustomerIsReservedThereForTheOrderAndPaysItOnceConfirmed) {
  testing::Cluster cluster(2);
  const std::string customer = testing::CustomerOnShard(1, 2);
  const std::string waiting = testing::OrderOnShard(0, 2);
  const std::string second = testing::OrderOnShard(0, 2, 1);
  const std::string plain = testing::OrderOnShard(0, 2, 2);
  for (const json& command :
       {testing::OpenMerchant("m1", "M1", 60), testing::OpenAccount("a1", customer),
        testing::Deposit("d1", customer + ":debit", 1'000'000), Enroll("e1", customer, "password_free", kPem),
        Enroll("e2", customer, "u_shield", kPem), IssueCode("c1", kCode, "password_free", 0, customer)}) {
    ASSERT_EQ(cluster.Decide(command), "accepted") << command.dump();
  }
  EXPECT_EQ(cluster.Decide(WaitingOrder("w0", waiting, 200'000, kCode, customer + "x")),
            "rejected PAYMENT_CODE_INVALID");  // not the code's customer (whichever shard that names)
  ASSERT_EQ(cluster.Decide(WaitingOrder("w1", waiting, 200'000, kCode, customer)), "accepted");
  EXPECT_EQ(CodeIn(cluster.shard(1), kCode)->waiting_order, waiting);  // reserved where it was issued
  EXPECT_FALSE(CodeIn(cluster.shard(0), kCode).has_value());  // the code's record is its shard's only
  EXPECT_EQ(cluster.Decide(WaitingOrder("w2", second, 200'000, kCode, customer)),
            "rejected PAYMENT_CODE_INVALID");
  EXPECT_FALSE(OrderCreatedOn(cluster.shard(0), second));

  json unproven = CodePay(waiting, 200'000, "password_free", kCode, customer);
  unproven["command_id"] = "unproven";
  EXPECT_EQ(cluster.Decide(unproven), "rejected PAYMENT_CODE_INVALID");  // scanned again: it waits
  EXPECT_EQ(cluster.Decide(Confirmation("not-waiting", plain, 200'000, kCode, customer)),
            "rejected PAYMENT_CODE_INVALID");  // the code waits on no such order
  EXPECT_EQ(cluster.BalanceOn(1, customer + ":debit"), 1'000'000);

  ASSERT_EQ(cluster.Decide(Confirmation("confirm", waiting, 200'000, kCode, customer)), "accepted");
  EXPECT_EQ(cluster.BalanceOn(1, customer + ":debit"), 800'000);
  EXPECT_TRUE(CodeIn(cluster.shard(1), kCode)->used);
  EXPECT_EQ(cluster.Decide(Confirmation("confirm-again", waiting, 200'000, kCode, customer)),
            "rejected DUPLICATE_ORDER");
  EXPECT_EQ(cluster.BalanceOn(1, customer + ":debit"), 800'000);
  cluster.ExpectStatesProven();
}

// Two scans of one code on two other shards race: both orders' shards ask the code's shard, which reserves
// the code for the first leg it decides and refuses the second; only the first order is created, and only it
// is paid. A confirmation that arrives while the reservation is in flight waits for it on the order's shard.
TEST(PaymentCodes, TwoOrdersOfTwoOtherShardsRaceForOneCodeAndOnlyTheFirstIsCreatedAndPaid) {
  testing::Cluster cluster(3);
  const std::string customer = testing::CustomerOnShard(2, 3);
  const std::string first = testing::OrderOnShard(0, 3);
  const std::string second = testing::OrderOnShard(1, 3);
  const std::string third = testing::OrderOnShard(0, 3, 1);
  const std::string other_code(32, 'e');
  for (const json& command :
       {testing::OpenMerchant("m1", "M1", 60), testing::OpenAccount("a1", customer),
        testing::Deposit("d1", customer + ":debit", 1'000'000), Enroll("e1", customer, "password_free", kPem),
        Enroll("e2", customer, "u_shield", kPem), IssueCode("c1", kCode, "password_free", 0, customer),
        IssueCode("c2", other_code, "password_free", 0, customer)}) {
    ASSERT_EQ(cluster.Decide(command), "accepted") << command.dump();
  }
  // Both orders are sent before the code's shard hears of either (shard 0's leg reaches it first).
  EXPECT_EQ(cluster.Send(WaitingOrder("w1", first, 200'000, kCode, customer)).kind, Kind::kPending);
  EXPECT_EQ(cluster.Send(WaitingOrder("w2", second, 300'000, kCode, customer)).kind, Kind::kPending);
  cluster.DeliverLegs();
  EXPECT_EQ(cluster.FinalOutcome("w1"), "accepted");
  EXPECT_EQ(cluster.FinalOutcome("w2"), "rejected PAYMENT_CODE_INVALID");
  EXPECT_TRUE(OrderCreatedOn(cluster.shard(0), first));
  EXPECT_FALSE(OrderCreatedOn(cluster.shard(1), second));
  EXPECT_EQ(CodeIn(cluster.shard(2), kCode)->waiting_order, first);
  // Asked again, the created order's command answers as it did: the order shard's transaction.
  const CommandResult again = cluster.Send(WaitingOrder("w1", first, 200'000, kCode, customer));
  EXPECT_EQ(again.kind, Kind::kDuplicate);
  EXPECT_EQ(again.transaction_id.substr(0, 2), "0-");
  EXPECT_EQ(again.sequences.size(), 2u);

  EXPECT_EQ(cluster.Decide(Confirmation("confirm-second", second, 300'000, kCode, customer)),
            "rejected PAYMENT_CODE_INVALID");
  EXPECT_EQ(cluster.BalanceOn(2, customer + ":debit"), 1'000'000);
  EXPECT_EQ(cluster.Decide(Confirmation("confirm-first", first, 200'000, kCode, customer)), "accepted");
  EXPECT_EQ(cluster.BalanceOn(2, customer + ":debit"), 800'000);

  // The customer confirms before the code's shard answered the reservation: the confirmation is parked
  // behind it and decided once the order exists.
  EXPECT_EQ(cluster.Send(WaitingOrder("w3", third, 100'000, other_code, customer)).kind, Kind::kPending);
  EXPECT_EQ(cluster.Send(Confirmation("confirm-third", third, 100'000, other_code, customer)).kind,
            Kind::kPending);
  cluster.DeliverLegs();
  EXPECT_EQ(cluster.FinalOutcome("w3"), "accepted");
  EXPECT_EQ(cluster.FinalOutcome("confirm-third"), "accepted");
  EXPECT_EQ(cluster.BalanceOn(2, customer + ":debit"), 700'000);
  EXPECT_TRUE(CodeIn(cluster.shard(2), other_code)->used);
  cluster.ExpectStatesProven();
}

// Two shards issued codes of one id (ids are keyed hashes of the codes, so only a collision or a forged
// producer makes this; the order's shard issued one too): each order reserves the code of the customer it
// names on that customer's shard, the order's shard records the orders and leaves its own customer's code
// alone, and each customer confirms only the order reserved for their own code.
TEST(PaymentCodes, CodesOfOneIdOnThreeShardsAreReservedEachOnItsOwnShard) {
  testing::Cluster cluster(3);
  const std::string on_order_shard = testing::CustomerOnShard(0, 3);
  const std::string first = testing::CustomerOnShard(1, 3), second = testing::CustomerOnShard(2, 3);
  const std::string o1 = testing::OrderOnShard(0, 3), o2 = testing::OrderOnShard(0, 3, 1);
  std::vector<json> setup = {testing::OpenMerchant("m1", "M1", 60)};
  for (const std::string& customer : {on_order_shard, first, second}) {
    for (const json& command : {testing::OpenAccount("a-" + customer, customer),
                                testing::Deposit("d-" + customer, customer + ":debit", 1'000'000),
                                Enroll("e1-" + customer, customer, "password_free", kPem),
                                Enroll("e2-" + customer, customer, "u_shield", kPem),
                                IssueCode("c-" + customer, kCode, "password_free", 0, customer)}) {
      setup.push_back(command);
    }
  }
  for (const json& command : setup) ASSERT_EQ(cluster.Decide(command), "accepted") << command.dump();
  ASSERT_EQ(cluster.Decide(WaitingOrder("w1", o1, 200'000, kCode, first)), "accepted");
  ASSERT_EQ(cluster.Decide(WaitingOrder("w2", o2, 300'000, kCode, second)), "accepted");
  EXPECT_EQ(CodeIn(cluster.shard(1), kCode)->waiting_order, o1);
  EXPECT_EQ(CodeIn(cluster.shard(2), kCode)->waiting_order, o2);
  EXPECT_EQ(CodeIn(cluster.shard(0), kCode)->waiting_order, "");  // the order shard's own customer's code
  EXPECT_EQ(cluster.Decide(Confirmation("c0-o1", o1, 200'000, kCode, on_order_shard)),
            "rejected PAYMENT_CODE_INVALID");
  EXPECT_EQ(cluster.Decide(Confirmation("c2-o1", o1, 200'000, kCode, second)),
            "rejected PAYMENT_CODE_INVALID");
  EXPECT_EQ(cluster.Decide(Confirmation("c1-o1", o1, 200'000, kCode, first)), "accepted");
  EXPECT_EQ(cluster.Decide(Confirmation("c2-o2", o2, 300'000, kCode, second)), "accepted");
  EXPECT_EQ(cluster.BalanceOn(1, first + ":debit"), 800'000);
  EXPECT_EQ(cluster.BalanceOn(2, second + ":debit"), 700'000);
  EXPECT_EQ(cluster.BalanceOn(0, on_order_shard + ":debit"), 1'000'000);
  cluster.ExpectStatesProven();
}

}  // namespace
}  // namespace ledger
