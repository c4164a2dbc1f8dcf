// Goal: a customer's authentication media are ledger facts. A medium is enrolled with its public part only
// (a key, a phone number, or nothing), for a known customer; failed proofs are counted in a row and the fifth
// locks the medium until it is enrolled again; a payment carrying a proof needs its medium enrolled and
// unlocked, records what was proven with the payment's own events, ends a run of failures, and an otp_card's
// time step is never used twice. A payment without a proof is limited by its declared medium as before.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "events/event.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
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

}  // namespace
}  // namespace ledger
