// Goal: a merchant's request-signing keys are ledger facts: registered only for an open merchant, a serial
// naming one key for good (never registered twice, not even after its revocation), revoked only by their own
// merchant, once; the parser refuses serials and keys an Authorization header or the gateway could not use;
// and the keys go to every shard, like the merchant.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "ledger/command.h"
#include "ledger/ledger.h"
#include "ledger/routing.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using testing::TestLedger;
using Kind = CommandResult::Kind;

constexpr char kPem[] =
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n";

json AddKey(const std::string& id, const std::string& merchant, const std::string& serial,
            const std::string& pem = kPem) {
  return {{"type", "add_merchant_key"},
          {"command_id", id},
          {"merchant", merchant},
          {"serial_no", serial},
          {"public_key_pem", pem}};
}

json RevokeKey(const std::string& id, const std::string& merchant, const std::string& serial) {
  return {{"type", "revoke_merchant_key"}, {"command_id", id}, {"merchant", merchant}, {"serial_no", serial}};
}

std::optional<fb::MerchantKeyRecordT> StoredKey(TestLedger& ledger, const std::string& serial) {
  fb::MerchantKeyRecordT record;
  if (!LoadRecord(ledger.ledger().store().state(), keys::MerchantKey(serial), &record)) return std::nullopt;
  return record;
}

TEST(MerchantKeys, AKeyIsRegisteredForAnOpenMerchantAndItsSerialIsNeverReused) {
  TestLedger ledger;
  EXPECT_EQ(ledger.Submit(AddKey("k0", "M1", "ABC123")).reason, reason::kUnknownMerchant);
  EXPECT_FALSE(StoredKey(ledger, "ABC123"));
  ASSERT_EQ(ledger.Submit(testing::OpenMerchant("m1", "M1", 60)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(testing::OpenMerchant("m2", "M2", 60)).kind, Kind::kAccepted);
  ASSERT_EQ(ledger.Submit(AddKey("k1", "M1", "ABC123")).kind, Kind::kAccepted);
  const std::optional<fb::MerchantKeyRecordT> stored = StoredKey(ledger, "ABC123");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->merchant, "M1");
  EXPECT_EQ(stored->public_key_pem, kPem);
  EXPECT_FALSE(stored->revoked);
  EXPECT_EQ(ledger.Submit(AddKey("k2", "M2", "ABC123")).reason, reason::kAlreadyExists);
  EXPECT_EQ(StoredKey(ledger, "ABC123")->merchant, "M1");

  EXPECT_EQ(ledger.Submit(RevokeKey("r0", "M2", "ABC123")).reason, reason::kUnknownMerchantKey);
  EXPECT_FALSE(StoredKey(ledger, "ABC123")->revoked);
  EXPECT_EQ(ledger.Submit(RevokeKey("r1", "M1", "ABC123")).kind, Kind::kAccepted);
  EXPECT_TRUE(StoredKey(ledger, "ABC123")->revoked);
  EXPECT_EQ(ledger.Submit(RevokeKey("r2", "M1", "ABC123")).reason, reason::kMerchantKeyRevoked);
  EXPECT_EQ(ledger.Submit(RevokeKey("r1", "M1", "ABC123")).kind, Kind::kDuplicate);
  EXPECT_EQ(ledger.Submit(AddKey("k3", "M1", "ABC123")).reason, reason::kAlreadyExists);
  EXPECT_TRUE(StoredKey(ledger, "ABC123")->revoked);
}

TEST(MerchantKeys, SerialsAndKeysTheGatewayCouldNotUseAreMalformed) {
  const std::string long_pem =
      std::string("-----BEGIN PUBLIC KEY-----\n") + std::string(2100, 'A') + "\n-----END PUBLIC KEY-----\n";
  for (const json& bad :
       {AddKey("b1", "M1", "AB\"C"), AddKey("b2", "M1", "AB C"), AddKey("b3", "M1", std::string(65, 'A')),
        AddKey("b4", "M1", "ABC", "not a key"), AddKey("b5", "M1", "ABC", long_pem),
        AddKey("b6", "M1", "ABC", "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n"),
        AddKey("b7", "M:1", "ABC"), RevokeKey("b8", "M1", "")}) {
    SCOPED_TRACE(bad.dump());
    const Result<ParsedCommand> parsed = ParseCommandJson(bad.dump());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_TRUE(parsed->malformed.has_value());
  }
  const Result<ParsedCommand> good = ParseCommandJson(AddKey("g", "M1", std::string(64, 'A')).dump());
  ASSERT_TRUE(good.ok());
  EXPECT_FALSE(good->malformed.has_value()) << *good->malformed;
}

TEST(MerchantKeys, KeysGoToEveryShardLikeTheirMerchant) {
  const Result<ParsedCommand> add = ParseCommandJson(AddKey("k1", "M1", "ABC").dump());
  const Result<ParsedCommand> revoke = ParseCommandJson(RevokeKey("r1", "M1", "ABC").dump());
  ASSERT_TRUE(add.ok() && revoke.ok());
  EXPECT_EQ(ShardsFor(*add, 4), (std::vector<uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(ShardsFor(*revoke, 4), (std::vector<uint32_t>{0, 1, 2, 3}));
}

}  // namespace
}  // namespace ledger
