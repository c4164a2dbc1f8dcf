// Goal: legs between shards are authenticated by a tag only holders of the ledger's private key can make:
// the tag checks for the record it was made for and nothing else, under that key pair and no other. A public
// key whose signatures anyone can forge (small order) is refused, however it is encoded.
#include "core/signing.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

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
  const std::unique_ptr<LegAuthenticator> sender_key = LegAuthenticator::For(*ledger_key).value();
  const std::unique_ptr<LegAuthenticator> receiver_key = LegAuthenticator::For(*ledger_key).value();
  const std::unique_ptr<LegAuthenticator> impostor_key = LegAuthenticator::For(*other_key).value();
  const LegAuthenticator &sender = *sender_key, &receiver = *receiver_key, &impostor = *impostor_key;
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
  EXPECT_NE(tag, ledger_key->Sign(LegMessage(record)).value().substr(0, LegAuthenticator::kTagBytes));
  std::filesystem::remove_all(dir);
}

// The PEM of the Ed25519 public key whose 32 encoded bytes are `hex` (SubjectPublicKeyInfo: a fixed DER
// prefix, then the bytes).
std::string Ed25519Pem(const std::string& hex) {
  std::string der = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
  for (size_t i = 0; i < hex.size(); i += 2)
    der.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  std::string base64(4 * ((der.size() + 2) / 3) + 1, '\0');
  const int length =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(base64.data()),
                      reinterpret_cast<const unsigned char*>(der.data()), static_cast<int>(der.size()));
  base64.resize(static_cast<size_t>(length));
  return "-----BEGIN PUBLIC KEY-----\n" + base64 + "\n-----END PUBLIC KEY-----\n";
}

TEST(SignatureVerifier, AKeyAnyoneCouldForgeSignaturesForIsRefused) {
  const std::string zeros(62, '0'), ones(60, 'f');
  // The identity (order 1), y = p - 1 (order 2), y = 0 (order 4), and y = p + 1: the identity again, in an
  // encoding that is not canonical.
  for (const std::string& weak : {"01" + zeros, "ec" + ones + "7f", "00" + zeros, "ee" + ones + "7f"}) {
    Result<std::unique_ptr<SignatureVerifier>> key = SignatureVerifier::FromPem(Ed25519Pem(weak));
    ASSERT_FALSE(key.ok()) << weak;
    EXPECT_NE(key.status().message().find("weak Ed25519 public key"), std::string::npos)
        << key.status().message();
  }
  // A real key pair's public key is taken, and checks its own signatures.
  const std::string dir = ::testing::TempDir() + "/weak-keys";
  std::filesystem::remove_all(dir);
  std::unique_ptr<Signer> signer = NewKey(dir);
  ASSERT_NE(signer, nullptr);
  Result<std::unique_ptr<SignatureVerifier>> real =
      SignatureVerifier::FromPemFile(dir + "/ledger-signing.pub");
  ASSERT_TRUE(real.ok()) << real.status().ToString();
  const std::string signature = signer->Sign("message").value();
  EXPECT_TRUE(
      (*real)->Verify("message", {reinterpret_cast<const uint8_t*>(signature.data()), signature.size()}));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ledger
