// Goal: the onboarding material the gateway hands a merchant is what real tools and the real SDK accept:
// `openssl verify` chains apiclient_cert.pem to the gateway's CA, `openssl x509 -serial` reads serial_no, the
// certificate, the private key and public_key_pem are one key pair, and a request the wechatpayv3 SDK signs
// with apiclient_key.pem passes CheckRequest. The kit is written whole or not at all, with secrets 0600, and
// never over another folder's contents. The platform key is made once and its id is the digest `openssl` and
// `sha256sum` compute. APIv3 keys are fresh, of WeChat's shape, and the gateway's copy is never overwritten.
#include "gateway/merchant_kit.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gateway/tls_material.h"
#include "gateway/wechat_signature.h"
#include "support/test_support.h"

namespace ledger::gateway {
namespace {

using nlohmann::json;
using testing::ReadFile;
using testing::WriteFile;

constexpr char kMchid[] = "1900000001";

class MerchantKitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Result<TlsMaterial> made = EnsureTlsMaterial(Path("tls"), {"127.0.0.1"});
    ASSERT_TRUE(made.ok()) << made.status().ToString();
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  // The exit status of a shell command run in the test's folder; its output in `log`.
  int Shell(const std::string& command) const {
    const int status =
        std::system(("cd '" + dir_.path() + "' && (" + command + ") > '" + Path("log") + "' 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string Log() const { return ReadFile(Path("log")); }
  static unsigned Mode(const std::string& path) {
    struct stat info {};
    EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
    return info.st_mode & 0777;
  }
  MerchantCredentials Credentials(const std::string& mchid = kMchid) const {
    Result<MerchantCredentials> made = MakeMerchantCredentials(TlsFilesIn(Path("tls")), mchid);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    return made.ok() ? std::move(made).value() : MerchantCredentials();
  }
  PlatformKey Platform() const {
    Result<PlatformKey> platform = EnsurePlatformKey(Path("gateway"));
    EXPECT_TRUE(platform.ok()) << platform.status().ToString();
    return platform.ok() ? std::move(platform).value() : PlatformKey();
  }
  // The kit for `credentials` in <test folder>/kit.
  void WriteKit(const MerchantCredentials& credentials) const {
    const Status written = WriteMerchantKit(Path("kit"), credentials, Platform(), Path("tls/ca.pem"));
    ASSERT_TRUE(written.ok()) << written.ToString();
  }
  // Whether the SDK's Python is here; the reason it is not, otherwise.
  std::string SdkMissing() const {
    if (Shell(std::string("'") + LEDGER_SDK_PYTHON + "' -c 'import wechatpayv3'") != 0)
      return std::string("the wechatpayv3 SDK is not installed in ") + LEDGER_SDK_PYTHON +
             " (scripts/setup.sh installs it from PyPI): " + Log();
    return "";
  }
  std::vector<std::string> Entries(const std::string& dir) const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
      names.push_back(entry.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  testing::TempDir dir_;
};

bool IsApiV3Key(const std::string& key) {
  return key.size() == 32 && std::all_of(key.begin(), key.end(),
                                         [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
}

TEST_F(MerchantKitTest, TheCertificateChainsToTheCaAndCarriesTheSerialAndTheKey) {
  const MerchantCredentials credentials = Credentials();
  ASSERT_NO_FATAL_FAILURE(WriteKit(credentials));
  EXPECT_EQ(Shell("openssl verify -CAfile kit/ca.pem kit/apiclient_cert.pem"), 0) << Log();
  ASSERT_EQ(Shell("openssl x509 -in kit/apiclient_cert.pem -noout -serial"), 0) << Log();
  EXPECT_EQ(Log(), "serial=" + credentials.serial_no + "\n");
  EXPECT_EQ(credentials.serial_no.size(), 40u);
  EXPECT_EQ(credentials.serial_no.find_first_not_of("0123456789ABCDEF"), std::string::npos);
  ASSERT_EQ(Shell("openssl x509 -in kit/apiclient_cert.pem -noout -pubkey"), 0) << Log();
  EXPECT_EQ(Log(), credentials.public_key_pem);
  ASSERT_EQ(Shell("openssl pkey -in kit/apiclient_key.pem -pubout"), 0) << Log();
  EXPECT_EQ(Log(), credentials.public_key_pem);
  ASSERT_EQ(Shell("openssl x509 -in kit/apiclient_cert.pem -noout -subject -nameopt RFC2253 -ext keyUsage"),
            0);
  EXPECT_NE(Log().find("subject=CN=1900000001,O=ledger merchant"), std::string::npos) << Log();
  EXPECT_NE(Log().find("Digital Signature"), std::string::npos) << Log();
  EXPECT_EQ(Shell("openssl x509 -in kit/apiclient_cert.pem -noout -checkend " + std::to_string(1824 * 86400)),
            0)
      << "valid for five years: " << Log();
  EXPECT_NE(Shell("openssl x509 -in kit/apiclient_cert.pem -noout -checkend " + std::to_string(1828 * 86400)),
            0);
  ASSERT_EQ(Shell("openssl pkey -in kit/apiclient_key.pem -noout -text"), 0) << Log();
  EXPECT_NE(Log().find("Private-Key: (2048 bit"), std::string::npos) << Log();

  EXPECT_TRUE(credentials.private_key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));  // PKCS #8
  EXPECT_TRUE(credentials.public_key_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
  Result<std::unique_ptr<ApiKey>> private_key = ApiKey::FromPem(credentials.private_key_pem);
  ASSERT_TRUE(private_key.ok()) << private_key.status().ToString();
  EXPECT_TRUE((*private_key)->is_private());
  Result<std::unique_ptr<ApiKey>> public_key = ApiKey::FromPem(credentials.public_key_pem);
  ASSERT_TRUE(public_key.ok()) << public_key.status().ToString();
  EXPECT_TRUE((*public_key)->VerifyBase64("m", (*private_key)->SignBase64("m").value()));
}

TEST_F(MerchantKitTest, TheSdksRequestSignedWithTheKitsKeyPassesCheckRequest) {
  if (const std::string missing = SdkMissing(); !missing.empty()) GTEST_SKIP() << missing;
  const MerchantCredentials credentials = Credentials();
  ASSERT_NO_FATAL_FAILURE(WriteKit(credentials));
  const std::string target = "/v3/pay/transactions/native";
  ASSERT_EQ(Shell(std::string("'") + LEDGER_SDK_PYTHON + "' '" + LEDGER_SDK_TOOL +
                  "' authorize kit/apiclient_key.pem " + kMchid + " $(cat kit/serial_no) POST " + target +
                  " '{\"mchid\": \"1900000001\", \"out_trade_no\": \"T1\", \"amount\": {\"total\": 100}}'"),
            0)
      << Log();
  const json sent = json::parse(Log());
  const std::shared_ptr<const ApiKey> key(ApiKey::FromPem(credentials.public_key_pem).value().release());
  const MerchantKeyLookup lookup = [&](std::string_view serial) -> std::optional<MerchantKey> {
    if (serial != credentials.serial_no) return std::nullopt;
    return MerchantKey{kMchid, key, false};
  };
  NonceCache nonces(100, 10, kTimestampWindowSeconds);
  const std::string body = sent.value("body", ""), authorization = sent.value("authorization", "");
  const Result<Authorization> checked =
      CheckRequest(SignedRequest{"POST", target, body, authorization}, std::time(nullptr), lookup, nonces);
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();
  EXPECT_EQ(checked->mchid, kMchid);
  EXPECT_EQ(checked->serial_no, credentials.serial_no);
}

TEST_F(MerchantKitTest, TheKitHoldsEachFileWithItsModeAndContent) {
  const MerchantCredentials credentials = Credentials();
  ASSERT_NO_FATAL_FAILURE(WriteKit(credentials));
  const PlatformKey platform = Platform();
  EXPECT_EQ(Entries(Path("kit")),
            (std::vector<std::string>{"apiclient_cert.pem", "apiclient_key.pem", "apiv3_key", "ca.pem",
                                      "platform_public_key.pem", "platform_public_key_id", "serial_no"}));
  EXPECT_EQ(Entries(dir_.path()), (std::vector<std::string>{"gateway", "kit", "tls"}));  // no staging left
  EXPECT_EQ(Mode(Path("kit")), 0700u);
  const std::pair<const char*, unsigned> modes[] = {{"apiclient_key.pem", 0600},
                                                    {"apiv3_key", 0600},
                                                    {"apiclient_cert.pem", 0644},
                                                    {"serial_no", 0644},
                                                    {"ca.pem", 0644},
                                                    {"platform_public_key.pem", 0644},
                                                    {"platform_public_key_id", 0644}};
  for (const auto& [name, mode] : modes) EXPECT_EQ(Mode(Path("kit/") + name), mode) << name;
  EXPECT_EQ(ReadFile(Path("kit/apiclient_key.pem")), credentials.private_key_pem);
  EXPECT_EQ(ReadFile(Path("kit/apiclient_cert.pem")), credentials.certificate_pem);
  EXPECT_EQ(ReadFile(Path("kit/serial_no")), credentials.serial_no + "\n");
  EXPECT_EQ(ReadFile(Path("kit/apiv3_key")), credentials.apiv3_key + "\n");
  EXPECT_EQ(ReadFile(Path("kit/platform_public_key.pem")), platform.public_key_pem);
  EXPECT_EQ(ReadFile(Path("kit/platform_public_key_id")), platform.public_key_id + "\n");
  EXPECT_EQ(ReadFile(Path("kit/ca.pem")), ReadFile(Path("tls/ca.pem")));
  // An empty folder made beforehand is taken, and a trailing slash names the same folder.
  std::filesystem::create_directory(Path("empty"));
  const Status into_empty = WriteMerchantKit(Path("empty/"), credentials, platform, Path("tls/ca.pem"));
  ASSERT_TRUE(into_empty.ok()) << into_empty.ToString();
  EXPECT_EQ(Entries(Path("empty")).size(), 7u);
  EXPECT_EQ(Mode(Path("empty")), 0700u);
}

TEST_F(MerchantKitTest, AFolderInTheWayIsRefusedAndLeftUnchanged) {
  const MerchantCredentials credentials = Credentials();
  const PlatformKey platform = Platform();
  std::filesystem::create_directory(Path("kit"));
  WriteFile(Path("kit/notes"), "mine");
  const Status over = WriteMerchantKit(Path("kit"), credentials, platform, Path("tls/ca.pem"));
  EXPECT_EQ(over.code(), StatusCode::kInvalidArgument) << over.ToString();
  EXPECT_EQ(Entries(Path("kit")), std::vector<std::string>{"notes"});
  EXPECT_EQ(ReadFile(Path("kit/notes")), "mine");
  WriteFile(Path("file"), "mine");
  EXPECT_EQ(WriteMerchantKit(Path("file"), credentials, platform, Path("tls/ca.pem")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadFile(Path("file")), "mine");
  // The CA's key given for its certificate: refused, so that it never rides along to a merchant.
  EXPECT_EQ(WriteMerchantKit(Path("other"), credentials, platform, Path("tls/ca.key")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteMerchantKit(Path("other"), credentials, platform, Path("tls/none.pem")).code(),
            StatusCode::kIoError);
  MerchantCredentials swapped = credentials;
  swapped.public_key_pem = credentials.private_key_pem;
  EXPECT_EQ(WriteMerchantKit(Path("other"), swapped, platform, Path("tls/ca.pem")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Entries(dir_.path()), (std::vector<std::string>{"file", "gateway", "kit", "tls"}));
}

TEST_F(MerchantKitTest, ThePlatformKeyIsMadeOnceAndItsIdIsTheDigestOfItsPublicKey) {
  const PlatformKey first = Platform();
  const PlatformKey second = Platform();
  EXPECT_EQ(first.private_key_path, Path("gateway/platform_key.pem"));
  EXPECT_EQ(second.public_key_id, first.public_key_id);
  EXPECT_EQ(second.public_key_pem, first.public_key_pem);
  EXPECT_EQ(Mode(Path("gateway")), 0700u);
  EXPECT_EQ(Mode(first.private_key_path), 0600u);
  EXPECT_EQ(Entries(Path("gateway")), std::vector<std::string>{"platform_key.pem"});
  const std::string key_pem = ReadFile(first.private_key_path);
  EXPECT_TRUE(key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
  Result<std::unique_ptr<ApiKey>> key = ApiKey::FromPem(key_pem);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_TRUE((*key)->is_private());
  EXPECT_TRUE(ApiKey::FromPem(first.public_key_pem).ok());

  WriteFile(Path("platform.pub"), first.public_key_pem);
  ASSERT_EQ(Shell("openssl pkey -pubin -in platform.pub -outform DER | sha256sum | cut -c1-32 | tr a-f A-F"),
            0);
  EXPECT_EQ(first.public_key_id + "\n", "PUB_KEY_ID_" + Log());
  ASSERT_EQ(Shell("openssl pkey -in gateway/platform_key.pem -pubout"), 0) << Log();
  EXPECT_EQ(Log(), first.public_key_pem);
}

TEST_F(MerchantKitTest, APlatformKeyFileThatIsNotAnAcceptableRsaKeyIsRefused) {
  std::filesystem::create_directory(Path("gateway"));
  const std::string path = Path("gateway/platform_key.pem");
  WriteFile(path, "garbage\n");
  EXPECT_EQ(EnsurePlatformKey(Path("gateway")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadFile(path), "garbage\n");
  std::filesystem::remove(path);
  ASSERT_EQ(
      Shell("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out gateway/platform_key.pem"),
      0)
      << Log();
  EXPECT_EQ(EnsurePlatformKey(Path("gateway")).status().code(), StatusCode::kInvalidArgument);
  std::filesystem::remove(path);
  const Result<PlatformKey> elsewhere = EnsurePlatformKey(Path("elsewhere"));
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status().ToString();
  WriteFile(path, elsewhere->public_key_pem);  // a public key alone
  EXPECT_EQ(EnsurePlatformKey(Path("gateway")).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(MerchantKitTest, EachMerchantGetsFreshKeysOfWeChatsShapeAndABadMchidOrCaIsRefused) {
  const MerchantCredentials first = Credentials(), second = Credentials("shop_2-B");
  EXPECT_TRUE(IsApiV3Key(first.apiv3_key)) << first.apiv3_key.size();
  EXPECT_TRUE(IsApiV3Key(second.apiv3_key));
  EXPECT_NE(first.apiv3_key, second.apiv3_key);
  EXPECT_NE(first.serial_no, second.serial_no);
  EXPECT_NE(first.private_key_pem, second.private_key_pem);
  for (const std::string& bad :
       std::vector<std::string>{"", "../x", "a/b", "a.b", "a b", std::string(33, '1')})
    EXPECT_EQ(MakeMerchantCredentials(TlsFilesIn(Path("tls")), bad).status().code(),
              StatusCode::kInvalidArgument)
        << bad;
  EXPECT_TRUE(MakeMerchantCredentials(TlsFilesIn(Path("tls")), std::string(32, '1')).ok());
  EXPECT_EQ(MakeMerchantCredentials(TlsFilesIn(Path("none")), kMchid).status().code(), StatusCode::kIoError);
}

TEST_F(MerchantKitTest, TheGatewaysApiV3KeyRoundTripsAndIsNeverOverwritten) {
  const std::string key = Credentials().apiv3_key, other = Credentials().apiv3_key;
  EXPECT_EQ(LoadApiV3Key(Path("gateway"), kMchid).status().code(), StatusCode::kNotFound);
  const Status stored = StoreApiV3Key(Path("gateway"), kMchid, key);
  ASSERT_TRUE(stored.ok()) << stored.ToString();
  Result<std::string> loaded = LoadApiV3Key(Path("gateway"), kMchid);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*loaded, key);
  EXPECT_EQ(Mode(Path("gateway/apiv3")), 0700u);
  EXPECT_EQ(Mode(Path("gateway/apiv3/") + kMchid), 0600u);
  EXPECT_EQ(ReadFile(Path("gateway/apiv3/") + kMchid), key + "\n");
  EXPECT_EQ(Entries(Path("gateway/apiv3")), std::vector<std::string>{kMchid});  // no temporary left

  EXPECT_TRUE(StoreApiV3Key(Path("gateway"), kMchid, key).ok());  // the same key again
  const Status replaced = StoreApiV3Key(Path("gateway"), kMchid, other);
  EXPECT_EQ(replaced.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(replaced.message().find(other), std::string::npos) << "a key in a message ends up in a log";
  EXPECT_EQ(*LoadApiV3Key(Path("gateway"), kMchid), key);
  EXPECT_EQ(LoadApiV3Key(Path("gateway"), "1900000002").status().code(), StatusCode::kNotFound);

  for (const std::string& bad : std::vector<std::string>{"../x", "", "a/b", std::string(33, '1')}) {
    EXPECT_EQ(StoreApiV3Key(Path("gateway"), bad, other).code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(LoadApiV3Key(Path("gateway"), bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(StoreApiV3Key(Path("gateway"), "1900000002", "short").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StoreApiV3Key(Path("gateway"), "1900000002", key + "\n").code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(Path("x")));
  WriteFile(Path("gateway/apiv3/1900000003"), "not a key\n");
  EXPECT_EQ(LoadApiV3Key(Path("gateway"), "1900000003").status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace ledger::gateway
