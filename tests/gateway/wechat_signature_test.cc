// Goal: the gateway checks merchants' requests exactly as WeChat Pay v3 does, against what the real SDK
// (wechatpayv3 2.0.4, unmodified) sends: its Authorization verifies, and every tamper — body, path, method,
// timestamp, serial, another merchant's key, a revoked key, a replayed nonce, a stale or future timestamp —
// is refused; the SDK accepts the gateway's response signatures and refuses a changed body. Keys are made by
// the openssl command line. The nonce cache forgets only what can no longer be replayed, and refuses rather
// than forgets when full.
#include "gateway/wechat_signature.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace ledger::gateway {
namespace {

using nlohmann::json;
using testing::ReadFile;
using testing::WriteFile;

constexpr char kSerial[] = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
constexpr char kOtherSerial[] = "6C2B3A1F0E9D8C7B6A5F4E3D2C1B0A9F8E7D6C5B";

class WeChatSignature : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"merchant", "other", "platform"}) {
      ASSERT_EQ(Shell("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + Path(name) +
                      ".key && openssl pkey -in " + Path(name) + ".key -pubout -out " + Path(name) + ".pub"),
                0)
          << ReadFile(Path("log"));
    }
    keys_[kSerial] = MerchantKey{"1900000001", Key("merchant.pub"), false};
    keys_[kOtherSerial] = MerchantKey{"1900000002", Key("other.pub"), false};
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  int Shell(const std::string& command) const {
    return std::system(("(" + command + ") > '" + Path("log") + "' 2>&1").c_str());
  }
  std::shared_ptr<const ApiKey> Key(const std::string& file) const {
    Result<std::unique_ptr<ApiKey>> key = ApiKey::FromPem(ReadFile(Path(file)));
    EXPECT_TRUE(key.ok()) << key.status().ToString();
    return key.ok() ? std::shared_ptr<const ApiKey>(std::move(key).value()) : nullptr;
  }
  MerchantKeyLookup Lookup() const {
    return [this](std::string_view serial) -> std::optional<MerchantKey> {
      const auto found = keys_.find(std::string(serial));
      return found == keys_.end() ? std::nullopt : std::optional<MerchantKey>(found->second);
    };
  }
  // Whether the SDK's Python is here; the reason it is not, otherwise.
  std::string SdkMissing() const {
    if (Shell(std::string("'") + LEDGER_SDK_PYTHON + "' -c 'import wechatpayv3'") != 0)
      return std::string("the wechatpayv3 SDK is not installed in ") + LEDGER_SDK_PYTHON +
             " (scripts/setup.sh installs it from PyPI): " + ReadFile(Path("log"));
    return "";
  }
  // What the SDK sends: {"authorization", "body"}.
  json SdkRequest(const std::string& key, const std::string& mchid, const std::string& serial,
                  const std::string& method, const std::string& path, const std::string& data) const {
    const int status = Shell(std::string("'") + LEDGER_SDK_PYTHON + "' '" + LEDGER_SDK_TOOL +
                             "' authorize '" + Path(key) + "' " + mchid + " " + serial + " " + method + " '" +
                             path + "'" + (data.empty() ? "" : " '" + data + "'"));
    EXPECT_EQ(status, 0) << ReadFile(Path("log"));
    return status == 0 ? json::parse(ReadFile(Path("log"))) : json::object();
  }

  testing::TempDir dir_;
  std::map<std::string, MerchantKey> keys_;
};

TEST_F(WeChatSignature, TheSdksRequestVerifiesAndEveryTamperIsRefused) {
  if (const std::string missing = SdkMissing(); !missing.empty()) GTEST_SKIP() << missing;
  const std::string path = "/v3/pay/transactions/native";
  const json sent = SdkRequest("merchant.key", "1900000001", kSerial, "POST", path,
                               R"({"mchid": "1900000001", "out_trade_no": "T1", "amount": {"total": 100}})");
  const std::string header = sent.value("authorization", ""), body = sent.value("body", "");
  ASSERT_FALSE(header.empty());
  const int64_t now = std::time(nullptr);
  auto check = [&](std::string_view method, std::string_view target, std::string_view request_body,
                   std::string_view authorization, int64_t at, NonceCache& nonces) {
    return CheckRequest(SignedRequest{method, target, request_body, authorization}, at, Lookup(), nonces);
  };

  NonceCache fresh(100, 10, kTimestampWindowSeconds);
  auto refused = [&](std::string_view method, std::string_view target, std::string_view request_body,
                     std::string_view authorization, int64_t at = 0) {
    NonceCache nonces(100, 10, kTimestampWindowSeconds);
    return !check(method, target, request_body, authorization, at == 0 ? now : at, nonces).ok();
  };
  EXPECT_TRUE(refused("POST", path, body + " ", header));
  EXPECT_TRUE(refused("POST", path, "", header));
  EXPECT_TRUE(refused("POST", path + "?x=1", body, header));
  EXPECT_TRUE(refused("PUT", path, body, header));
  EXPECT_TRUE(refused("POST", path, body, header, now + kTimestampWindowSeconds + 60));  // stale by then
  EXPECT_TRUE(refused("POST", path, body, header, now - kTimestampWindowSeconds - 60));  // from the future
  std::string retimed = header;
  retimed.replace(retimed.find("timestamp=\"") + 11, 1, "9");
  EXPECT_TRUE(refused("POST", path, body, retimed));
  std::string reserialed = header;
  reserialed.replace(reserialed.find(kSerial), std::strlen(kSerial), kOtherSerial);
  EXPECT_TRUE(refused("POST", path, body, reserialed));  // the other merchant's key: not its mchid
  std::string unknown = header;
  unknown.replace(unknown.find(kSerial), 4, "0000");
  EXPECT_TRUE(refused("POST", path, body, unknown));

  Result<Authorization> accepted = check("POST", path, body, header, now, fresh);
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  EXPECT_EQ(accepted->mchid, "1900000001");
  const Result<Authorization> replayed = check("POST", path, body, header, now + 1, fresh);
  ASSERT_FALSE(replayed.ok());
  EXPECT_NE(replayed.status().message().find("replay"), std::string::npos) << replayed.status().ToString();

  keys_[kSerial].revoked = true;
  EXPECT_TRUE(refused("POST", path, body, header));
}

// Another merchant signing with its own key and naming the first merchant's mchid is refused; a GET signs the
// query and an empty body.
TEST_F(WeChatSignature, AKeyServesOnlyItsOwnMerchantAndAGetSignsItsQuery) {
  if (const std::string missing = SdkMissing(); !missing.empty()) GTEST_SKIP() << missing;
  const std::string target = "/v3/pay/transactions/out-trade-no/T1?mchid=1900000001";
  const json own = SdkRequest("merchant.key", "1900000001", kSerial, "GET", target, "");
  const json impostor = SdkRequest("other.key", "1900000001", kOtherSerial, "GET", target, "");
  NonceCache nonces(100, 10, kTimestampWindowSeconds);
  const int64_t now = std::time(nullptr);
  EXPECT_TRUE(
      CheckRequest(SignedRequest{"GET", target, "", own.value("authorization", "")}, now, Lookup(), nonces)
          .ok());
  EXPECT_FALSE(CheckRequest(SignedRequest{"GET", target, "", impostor.value("authorization", "")}, now,
                            Lookup(), nonces)
                   .ok());
  EXPECT_FALSE(CheckRequest(SignedRequest{"GET", "/v3/pay/transactions/out-trade-no/T2?mchid=1900000001", "",
                                          own.value("authorization", "")},
                            now, Lookup(), nonces)
                   .ok());
}

TEST_F(WeChatSignature, TheSdkAcceptsTheGatewaysResponseSignatureAndRefusesAChangedBody) {
  if (const std::string missing = SdkMissing(); !missing.empty()) GTEST_SKIP() << missing;
  const std::shared_ptr<const ApiKey> platform = Key("platform.key");
  ASSERT_TRUE(platform->is_private());
  const std::string body = R"({"code_url":"weixin://wxpay/bizpayurl?pr=abc","amount":{"total":100}})";
  const std::string timestamp = std::to_string(std::time(nullptr)),
                    nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS";
  const std::string signature = platform->SignBase64(ResponseMessage(timestamp, nonce, body)).value();
  auto sdk_accepts = [&](const std::string& sent_body) {
    WriteFile(Path("body"), sent_body);
    EXPECT_EQ(Shell(std::string("'") + LEDGER_SDK_PYTHON + "' '" + LEDGER_SDK_TOOL + "' verify-response '" +
                    Path("platform.pub") + "' " + timestamp + " " + nonce + " '" + signature + "' '" +
                    Path("body") + "'"),
              0)
        << ReadFile(Path("log"));
    return ReadFile(Path("log")) == "true\n";
  };
  EXPECT_TRUE(sdk_accepts(body));
  EXPECT_FALSE(sdk_accepts(body + " "));
  EXPECT_TRUE(Key("platform.pub")->VerifyBase64(ResponseMessage(timestamp, nonce, body), signature));
}

TEST(Authorization, ParsesTheFiveFieldsOnceEachAndNothingElse) {
  const std::string good =
      R"(WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="N1",signature="c2ln",timestamp="1700000000",serial_no="AB")";
  Result<Authorization> parsed = ParseAuthorization(good);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->mchid, "1900000001");
  EXPECT_EQ(parsed->nonce_str, "N1");
  EXPECT_EQ(parsed->signature, "c2ln");
  EXPECT_EQ(parsed->timestamp, "1700000000");
  EXPECT_EQ(parsed->serial_no, "AB");
  Result<Authorization> sm2 =
      ParseAuthorization(std::string(kSm2SignatureScheme) + good.substr(good.find(' ')));
  ASSERT_TRUE(sm2.ok()) << sm2.status().ToString();
  EXPECT_EQ(parsed->scheme, KeyAlgorithm::kRsa);
  EXPECT_EQ(sm2->scheme, KeyAlgorithm::kSm2);
  for (
      const std::string& bad : std::vector<std::string>{
          std::string("WECHATPAY2-SHA256-RSA2048"), std::string("Bearer x"),
          "WECHATPAY2-SM2-WITH-SM3x" + good.substr(good.find(' ')),
          R"(WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="N1",signature="c2ln",timestamp="1")",
          good + R"(,mchid="2")", good + R"(,extra="x")", good + ",",
          R"(WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str="N1",signature="c2ln",timestamp="1",serial_no="AB")",
          R"(WECHATPAY2-SHA256-RSA2048 mchid="",nonce_str="N1",signature="c2ln",timestamp="1",serial_no="AB")",
          "WECHATPAY2-SHA256-RSA2048 "
          "mchid=\"1\",nonce_str=\"N\n{\",signature=\"c2ln\",timestamp=\"1\",serial_no=\"AB\"",
          R"(WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="N 1",signature="c2ln",timestamp="1",serial_no="AB")",
          R"(WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str=")" + std::string(65, 'n') +
              R"(",signature="c2ln",timestamp="1",serial_no="AB")"}) {
    EXPECT_FALSE(ParseAuthorization(bad).ok()) << bad;
  }
}

TEST(NonceCache, RemembersANonceUntilItsRequestCouldNoLongerBeAcceptedAndRefusesWhenFull) {
  NonceCache cache(2, 2, 300);
  EXPECT_EQ(cache.Admit("M1", "a", 1000, 1000), NonceCache::Admission::kAdmitted);
  EXPECT_EQ(cache.Admit("M2", "a", 1000, 1000), NonceCache::Admission::kAdmitted);  // another merchant's
  EXPECT_EQ(cache.Admit("M1", "a", 1000, 1300), NonceCache::Admission::kReplayed);  // still acceptable then
  EXPECT_EQ(cache.Admit("M1", "b", 1000, 1000), NonceCache::Admission::kFull);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.Admit("M1", "b", 1250, 1301), NonceCache::Admission::kAdmitted);  // a and a expired
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Admit("M1", "a", 1301, 1301), NonceCache::Admission::kAdmitted);
}

// One merchant filling its share of the cache locks out only itself.
TEST(NonceCache, OneMerchantFillingItsShareLocksOutOnlyItself) {
  NonceCache cache(10, 2, 300);
  EXPECT_EQ(cache.Admit("M1", "a", 1000, 1000), NonceCache::Admission::kAdmitted);
  EXPECT_EQ(cache.Admit("M1", "b", 1300, 1000), NonceCache::Admission::kAdmitted);  // lives until 1600
  EXPECT_EQ(cache.Admit("M1", "c", 1000, 1000), NonceCache::Admission::kFull);
  EXPECT_EQ(cache.Admit("M2", "c", 1000, 1000), NonceCache::Admission::kAdmitted);
  EXPECT_EQ(cache.Admit("M1", "c", 1301, 1301), NonceCache::Admission::kAdmitted);  // a expired
  EXPECT_EQ(cache.Admit("M1", "d", 1301, 1301), NonceCache::Admission::kFull);
}

// A restarted gateway still refuses the replay of a nonce its previous run admitted (the journal), forgets
// what left the window, ignores a torn last line, refuses a journal that is not one, and keeps the journal's
// size bounded by the live nonces.
TEST(NonceCache, AJournaledNonceIsStillRefusedAfterARestart) {
  testing::TempDir dir;
  const std::string journal = dir.path() + "/nonces";
  {
    NonceCache first(100, 100, 300);
    ASSERT_TRUE(first.Persist(journal, 1000).ok());
    EXPECT_EQ(first.Admit("M1", "a", 1000, 1000), NonceCache::Admission::kAdmitted);
    EXPECT_EQ(first.Admit("M1", "b", 1200, 1200), NonceCache::Admission::kAdmitted);
  }
  WriteFile(journal, ReadFile(journal) + "1500 M1 torn");  // a crash mid-write
  {
    NonceCache restarted(100, 100, 300);
    ASSERT_TRUE(restarted.Persist(journal, 1250).ok());
    EXPECT_EQ(restarted.Admit("M1", "a", 1250, 1250), NonceCache::Admission::kReplayed);
    EXPECT_EQ(restarted.Admit("M1", "b", 1250, 1250), NonceCache::Admission::kReplayed);
    EXPECT_EQ(restarted.Admit("M1", "torn", 1250, 1250), NonceCache::Admission::kAdmitted);
  }
  {
    NonceCache later(1000, 1000, 300);
    ASSERT_TRUE(later.Persist(journal, 1450).ok());  // a (until 1300) left the window; b did not
    EXPECT_EQ(later.size(), 2u);
    EXPECT_EQ(later.Admit("M1", "a", 1450, 1450), NonceCache::Admission::kAdmitted);
    EXPECT_EQ(later.Admit("M1", "b", 1450, 1450), NonceCache::Admission::kReplayed);
    for (int i = 0; i < 5000; ++i) {
      const int64_t at = 2000 + i;  // each nonce outlives the next 300 only
      ASSERT_EQ(later.Admit("M2", "n" + std::to_string(i), at, at), NonceCache::Admission::kAdmitted);
    }
  }
  EXPECT_LT(testing::Lines(ReadFile(journal)).size(), 2u * 301 + 1024 + 1);
  WriteFile(journal, "1500 M1 a\nnot a nonce at all\n");
  NonceCache refused(100, 100, 300);
  EXPECT_EQ(refused.Persist(journal, 1000).code(), StatusCode::kCorruption);
  NonceCache nowhere(100, 100, 300);
  EXPECT_EQ(nowhere.Persist(dir.path() + "/missing/nonces", 1000).code(), StatusCode::kIoError);
}

// A key whose public exponent is not 65537 is refused (an exponent of 1 lets anyone sign).
TEST_F(WeChatSignature, AnRsaKeyWithAnotherExponentIsRefused) {
  ASSERT_EQ(
      Shell("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_keygen_pubexp:3 "
            "-out " +
            Path("e3.key") + " && openssl pkey -in " + Path("e3.key") + " -pubout -out " + Path("e3.pub")),
      0)
      << ReadFile(Path("log"));
  EXPECT_FALSE(ApiKey::FromPem(ReadFile(Path("e3.pub"))).ok());
  EXPECT_FALSE(ApiKey::FromPem(ReadFile(Path("e3.key"))).ok());
  EXPECT_TRUE(ApiKey::FromPem(ReadFile(Path("merchant.pub"))).ok());
}

// A merchant's SM2 key (国密): a request signed WECHATPAY2-SM2-WITH-SM3 by the openssl command line (SM2 with
// SM3, the standard's default signer ID, DER r and s) verifies; signed with another signer ID, or sent under
// the RSA scheme, or an RSA key's request sent under the SM2 scheme, it does not. What the gateway signs with
// an SM2 key the openssl command line verifies.
TEST_F(WeChatSignature, AnSm2KeySignsUnderTheSm2SchemeOnlyWithTheStandardsSignerId) {
  ASSERT_EQ(Shell("openssl genpkey -algorithm SM2 -out " + Path("sm2.key") + " && openssl pkey -in " +
                  Path("sm2.key") + " -pubout -out " + Path("sm2.pub")),
            0)
      << ReadFile(Path("log"));
  const std::shared_ptr<const ApiKey> sm2 = Key("sm2.pub");
  ASSERT_NE(sm2, nullptr);
  EXPECT_EQ(sm2->algorithm(), KeyAlgorithm::kSm2);
  EXPECT_EQ(Key("merchant.pub")->algorithm(), KeyAlgorithm::kRsa);
  keys_["5M2"] = MerchantKey{"1900000003", sm2, false};
  const std::string target = "/v3/pay/transactions/out-trade-no/T1?mchid=1900000003";
  const std::string timestamp = std::to_string(std::time(nullptr));
  WriteFile(Path("message"), RequestMessage("GET", target, timestamp, "NONCE1", ""));
  auto openssl_signature = [&](const std::string& signer_id) {
    EXPECT_EQ(Shell("openssl dgst -sm3 -sign " + Path("sm2.key") + " -sigopt distid:" + signer_id + " -out " +
                    Path("sig") + " " + Path("message") + " && openssl base64 -A -in " + Path("sig")),
              0)
        << ReadFile(Path("log"));
    return ReadFile(Path("log"));
  };
  auto header = [&](const char* scheme, const std::string& nonce, const std::string& signature) {
    return std::string(scheme) + " mchid=\"1900000003\",nonce_str=\"" + nonce + "\",signature=\"" +
           signature + "\",timestamp=\"" + timestamp + "\",serial_no=\"5M2\"";
  };
  NonceCache nonces(100, 10, kTimestampWindowSeconds);
  const int64_t now = std::time(nullptr);
  const std::string good = openssl_signature(kSm2SignerId);
  const std::string other_id = openssl_signature("ALICE123@YAHOO.COM");
  EXPECT_FALSE(CheckRequest(SignedRequest{"GET", target, "", header(kSignatureScheme, "NONCE1", good)}, now,
                            Lookup(), nonces)
                   .ok());
  EXPECT_FALSE(CheckRequest(SignedRequest{"GET", target, "", header(kSm2SignatureScheme, "NONCE1", other_id)},
                            now, Lookup(), nonces)
                   .ok());
  const Result<Authorization> checked = CheckRequest(
      SignedRequest{"GET", target, "", header(kSm2SignatureScheme, "NONCE1", good)}, now, Lookup(), nonces);
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();
  EXPECT_EQ(checked->scheme, KeyAlgorithm::kSm2);
  // An RSA key's valid signature under the SM2 scheme names the wrong algorithm.
  keys_["RSA3"] = MerchantKey{"1900000003", Key("merchant.pub"), false};
  const std::string rsa = Key("merchant.key")->SignBase64(ReadFile(Path("message"))).value();
  std::string rsa_header = header(kSm2SignatureScheme, "NONCE2", rsa);
  rsa_header.replace(rsa_header.find("5M2"), 3, "RSA3");
  EXPECT_FALSE(CheckRequest(SignedRequest{"GET", target, "", rsa_header}, now, Lookup(), nonces).ok());

  const std::string ours = Key("sm2.key")->SignBase64(ReadFile(Path("message"))).value();
  WriteFile(Path("ours.b64"), ours);
  EXPECT_EQ(Shell("openssl base64 -d -A -in " + Path("ours.b64") + " -out " + Path("ours.sig") +
                  " && openssl dgst -sm3 -verify " + Path("sm2.pub") + " -sigopt distid:" + kSm2SignerId +
                  " -signature " + Path("ours.sig") + " " + Path("message")),
            0)
      << ReadFile(Path("log"));
  EXPECT_TRUE(sm2->VerifyBase64(ReadFile(Path("message")), ours));
  EXPECT_FALSE(sm2->VerifyBase64(ReadFile(Path("message")) + " ", ours));
}

}  // namespace
}  // namespace ledger::gateway
