// Goal: legs between shards are authenticated by a tag only holders of the ledger's private key can make:
// the tag checks for the record it was made for and nothing else, under that key pair and no other.
#include "core/signing.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace ledger {
namespace {

std::unique_ptr<Signer> NewKey(const std::string& dir) {
  EXPECT_TRUE(GenerateKeyPair(dir).ok());
  Result<std::unique_ptr<Signer>> signer = Signer::FromPemFile(dir + "/ledger-signing.key");
  EXPECT_TRUE(signer.ok()) << signer.status().ToString();
  return signer.ok() ? std::move(signer).value() : nullptr;
}

TEST(LegAuthenticator, ATagChecksForItsRecordUnderItsKeyOnly) {
  const std::string dir = ::testing::TempDir() + "/leg_authenticator_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  const std::unique_ptr<Signer> ledger_key = NewKey(dir + "/ledger");
  const std::unique_ptr<Signer> other_key = NewKey(dir + "/other");
  ASSERT_NE(ledger_key, nullptr);
  ASSERT_NE(other_key, nullptr);
  const LegAuthenticator sender(*ledger_key), receiver(*ledger_key), impostor(*other_key);
  const std::string record("leg record \0 with a NUL", 23);
  const std::string tag = sender.Tag(record);
  EXPECT_EQ(tag.size(), LegAuthenticator::kTagBytes);
  EXPECT_EQ(tag, receiver.Tag(record));  // deterministic: any shard with the key makes the same tag
  EXPECT_TRUE(receiver.Verify(record, tag));
  EXPECT_EQ(receiver.key_id(), ledger_key->public_key_id());

  EXPECT_FALSE(receiver.Verify(record, impostor.Tag(record)));
  EXPECT_FALSE(receiver.Verify(record + "x", tag));
  EXPECT_FALSE(receiver.Verify(record.substr(0, 22), tag));
  std::string flipped = tag;
  flipped[7] ^= 0x01;
  EXPECT_FALSE(receiver.Verify(record, flipped));
  EXPECT_FALSE(receiver.Verify(record, tag.substr(0, 31)));
  EXPECT_FALSE(receiver.Verify(record, tag + "x"));
  EXPECT_FALSE(receiver.Verify(record, ""));
  // The tag is not the key's signature of the leg: a signature made for another purpose never serves.
  EXPECT_NE(tag, ledger_key->Sign(LegMessage(record)).substr(0, LegAuthenticator::kTagBytes));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ledger
