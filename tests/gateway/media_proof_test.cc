// Goal: the gateway's medium proofs compute what the RFCs say (HOTP/TOTP test vectors of RFC 4226 and 6238,
// the OCRA one-way challenge-response vectors of RFC 6287 for OCRA-1:HOTP-SHA1-6:QN08), accept a code one
// step either side of now and no further, bind codes and signatures to one payment (another payee, order,
// amount, payer or account gets another digest), and refuse keys and signatures they cannot use.
#include "gateway/media_proof.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <string>
#include <vector>

namespace ledger::gateway {
namespace {

const std::string kRfcKey = "12345678901234567890";  // the 20-byte secret of RFC 4226, 6238 and 6287

TEST(MediaProof, HotpAndTotpGiveTheRfcTestVectors) {
  const char* const hotp[] = {"755224", "287082", "359152", "969429", "338314",
                              "254676", "287922", "162583", "399871", "520489"};
  for (uint64_t counter = 0; counter < 10; ++counter) EXPECT_EQ(Hotp(kRfcKey, counter, 6), hotp[counter]);
  // RFC 6238 appendix B, SHA-1, 8 digits.
  EXPECT_EQ(Hotp(kRfcKey, 59 / 30, 8), "94287082");
  EXPECT_EQ(Hotp(kRfcKey, 1111111109 / 30, 8), "07081804");
  EXPECT_EQ(Hotp(kRfcKey, 2000000000 / 30, 8), "69279037");
}

TEST(MediaProof, OcraGivesTheRfcOneWayChallengeResponseVectors) {
  const char* const responses[] = {"237653", "243178", "653583", "740991", "608993",
                                   "388898", "816933", "224598", "750600", "294470"};
  for (int digit = 0; digit < 10; ++digit) {
    const std::string question(8, static_cast<char>('0' + digit));
    EXPECT_EQ(*Ocra(kRfcKey, question), responses[digit]) << question;
  }
  EXPECT_FALSE(Ocra(kRfcKey, "123456789").ok());
  EXPECT_FALSE(Ocra(kRfcKey, "12a4").ok());
  EXPECT_FALSE(Ocra(kRfcKey, "").ok());
}

TEST(MediaProof, ATotpCodeMatchesOneStepEitherSideAndNoFurther) {
  const int64_t now = 1'700'000'000;
  const int64_t step = now / kTotpStepSeconds;
  for (int64_t offset : {-1, 0, 1}) {
    EXPECT_EQ(MatchTotp(kRfcKey, Hotp(kRfcKey, step + offset, 6), now), step + offset) << offset;
  }
  for (int64_t offset : {-3, -2, 2, 3})
    EXPECT_FALSE(MatchTotp(kRfcKey, Hotp(kRfcKey, step + offset, 6), now));
  EXPECT_FALSE(MatchTotp(kRfcKey, Hotp(kRfcKey, step, 8), now));  // 8 digits are not this card's
  EXPECT_FALSE(MatchTotp(kRfcKey, "", now));
  EXPECT_FALSE(MatchTotp("another secret", Hotp(kRfcKey, step, 6), now));
}

TEST(MediaProof, EveryFieldOfThePaymentChangesItsDigestAndSoItsCodes) {
  const PaymentToProve base{"M1", "O1", 10'000, "alice", "alice:debit"};
  const std::string digest = PaymentDigest(base);
  EXPECT_EQ(digest.size(), 64u);
  std::vector<PaymentToProve> others(5, base);
  others[0].merchant = "M2";
  others[1].order_no = "O2";
  others[2].amount_minor = 10'001;
  others[3].customer = "bob";
  others[4].account = "alice:credit";
  for (const PaymentToProve& other : others) EXPECT_NE(PaymentDigest(other), digest);
  // Field boundaries count: "M1"+"O1x" is not "M1O"+"1x".
  EXPECT_NE(PaymentDigest({"M1", "O1x", 1, "c", "c:a"}), PaymentDigest({"M1O", "1x", 1, "c", "c:a"}));
  const std::string challenge = OcraChallenge(digest);
  EXPECT_EQ(challenge.size(), 8u);
  EXPECT_NE(OcraChallenge(PaymentDigest(others[2])), challenge);

  const int64_t now = 1'700'000'000;
  const std::string code = SmsCode("sms key", "alice", digest, now / kSmsWindowSeconds);
  EXPECT_TRUE(MatchSms("sms key", "alice", digest, code, now));
  EXPECT_TRUE(MatchSms("sms key", "alice", digest, code, now + kSmsWindowSeconds));  // the window after
  EXPECT_FALSE(MatchSms("sms key", "alice", digest, code, now + 2 * kSmsWindowSeconds));
  EXPECT_FALSE(MatchSms("sms key", "bob", digest, code, now));
  EXPECT_FALSE(MatchSms("sms key", "alice", PaymentDigest(others[2]), code, now));
  EXPECT_FALSE(MatchSms("another key", "alice", digest, code, now));
}

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

std::string PublicPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  EXPECT_EQ(PEM_write_bio_PUBKEY(bio, key), 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(size));
  BIO_free(bio);
  return pem;
}

std::string SignBase64(EVP_PKEY* key, const std::string& message) {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  size_t size = 0;
  EXPECT_EQ(EVP_DigestSignInit(context, nullptr, EVP_sha256(), nullptr, key), 1);
  EXPECT_EQ(EVP_DigestSign(context, nullptr, &size, reinterpret_cast<const unsigned char*>(message.data()),
                           message.size()),
            1);
  std::vector<unsigned char> signature(size);
  EXPECT_EQ(EVP_DigestSign(context, signature.data(), &size,
                           reinterpret_cast<const unsigned char*>(message.data()), message.size()),
            1);
  EVP_MD_CTX_free(context);
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  out.resize(static_cast<size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                                 signature.data(), static_cast<int>(size))));
  return out;
}

TEST(MediaProof, ASignatureVerifiesOnlyOverItsDigestByItsKey) {
  const Key device(EVP_EC_gen("P-256"));
  const Key u_shield(EVP_RSA_gen(2048));
  const Key weak_rsa(EVP_RSA_gen(1024));
  const Key other_curve(EVP_EC_gen("P-384"));
  const std::string digest = PaymentDigest({"M1", "O1", 10'000, "alice", "alice:debit"});
  const std::string other = PaymentDigest({"M1", "O1", 10'001, "alice", "alice:debit"});
  for (EVP_PKEY* key : {device.get(), u_shield.get()}) {
    const std::string signature = SignBase64(key, digest);
    EXPECT_TRUE(VerifyMediumSignature(PublicPem(key), digest, signature));
    EXPECT_FALSE(VerifyMediumSignature(PublicPem(key), other, signature));
    EXPECT_FALSE(VerifyMediumSignature(PublicPem(key), digest, SignBase64(key, other)));
    EXPECT_FALSE(VerifyMediumSignature(PublicPem(key), digest, signature.substr(1)));
    EXPECT_FALSE(VerifyMediumSignature(PublicPem(key), digest, ""));
  }
  EXPECT_FALSE(VerifyMediumSignature(PublicPem(device.get()), digest, SignBase64(u_shield.get(), digest)));
  EXPECT_FALSE(VerifyMediumSignature(PublicPem(weak_rsa.get()), digest, SignBase64(weak_rsa.get(), digest)));
  EXPECT_FALSE(
      VerifyMediumSignature(PublicPem(other_curve.get()), digest, SignBase64(other_curve.get(), digest)));
  EXPECT_FALSE(VerifyMediumSignature("not a key", digest, SignBase64(device.get(), digest)));
}

}  // namespace
}  // namespace ledger::gateway
