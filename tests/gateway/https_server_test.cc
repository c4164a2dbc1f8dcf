// Goal: the gateway's HTTPS server keeps its bounds against real clients (curl, openssl s_client): it serves
// HTTP/1.1 over TLS with keep-alive, tells the handler whether the client presented the channel certificate
// (that certificate, not any the CA signed),
// answers a body over the limit 413 and a head over the limit 431 without calling the handler, closes a
// client that sends nothing once the timeout passes while serving others meanwhile, and closes connections
// over its limit at once.
#include "gateway/https_server.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "gateway/merchant_kit.h"
#include "support/test_support.h"

namespace ledger::gateway {
namespace {

using testing::ReadFile;
using testing::WriteFile;

class HttpsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(EnsureTlsMaterial(Path("tls"), {"127.0.0.1"}).ok());
    options_.tls = TlsFilesIn(Path("tls"));
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  void Serve() {
    Result<std::unique_ptr<HttpsServer>> started = HttpsServer::Start(
        options_, AnswerAtOnce([this](const HttpRequest& request) {
          calls_.fetch_add(1);
          const auto agent = request.headers.find("user-agent");
          return HttpResponse{200, "{\"method\":\"" + request.method + "\",\"target\":\"" + request.target +
                                       "\",\"bytes\":" + std::to_string(request.body.size()) +
                                       ",\"channel\":" + (request.channel_client ? "true" : "false") +
                                       ",\"agent\":" + (agent != request.headers.end() ? "true" : "false") +
                                       "}"};
        }));
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    server_ = std::move(started).value();
  }
  std::string Url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  // curl's exit status; its output (and -w's) in `log`.
  int Curl(const std::string& arguments) const {
    const int status = std::system(("cd '" + Path("tls") + "' && curl -s --max-time 15 --cacert ca.pem " +
                                    arguments + " > '" + Path("log") + "' 2>&1")
                                       .c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string Log() const { return ReadFile(Path("log")); }

  testing::TempDir dir_;
  HttpsServerOptions options_;
  std::unique_ptr<HttpsServer> server_;
  std::atomic<int> calls_{0};
};

TEST_F(HttpsServerTest, ServesKeepAliveAndSaysWhetherTheChannelCertificateWasPresented) {
  Serve();
  ASSERT_EQ(Curl("-v '" + Url("/v3/a?x=1") + "' '" + Url("/v3/b") + "'"), 0) << Log();
  EXPECT_NE(Log().find(R"({"method":"GET","target":"/v3/a?x=1","bytes":0,"channel":false,"agent":true})"),
            std::string::npos)
      << Log();
  EXPECT_NE(Log().find("Re-using existing connection"), std::string::npos) << Log();
  ASSERT_EQ(
      Curl("--cert channel-client.pem --key channel-client.key -d hello '" + Url("/customer/v1/x") + "'"), 0)
      << Log();
  EXPECT_EQ(Log(), R"({"method":"POST","target":"/customer/v1/x","bytes":5,"channel":true,"agent":true})");
  EXPECT_EQ(calls_.load(), 3);
  // A merchant's certificate chains to the same CA, but is not the channel's: its holder is no bank channel
  // (an attacker's review used one to reach the customer API).
  Result<MerchantCredentials> merchant = MakeMerchantCredentials(options_.tls, "M9");
  ASSERT_TRUE(merchant.ok()) << merchant.status().ToString();
  WriteFile(Path("tls/m9.pem"), merchant->certificate_pem);
  WriteFile(Path("tls/m9.key"), merchant->private_key_pem);
  ASSERT_EQ(Curl("--cert m9.pem --key m9.key -d hello '" + Url("/customer/v1/x") + "'"), 0) << Log();
  EXPECT_EQ(Log(), R"({"method":"POST","target":"/customer/v1/x","bytes":5,"channel":false,"agent":true})");
}

TEST_F(HttpsServerTest, ABodyOrAHeadOverTheLimitIsRefusedWithoutCallingTheHandler) {
  options_.body_max = 1024;
  options_.head_max = 2048;
  Serve();
  WriteFile(Path("exact"), std::string(1024, 'a'));
  WriteFile(Path("over"), std::string(1025, 'a'));
  ASSERT_EQ(Curl("-w ' %{http_code}' --data-binary @" + Path("exact") + " '" + Url("/v3/p") + "'"), 0)
      << Log();
  EXPECT_NE(Log().find("\"bytes\":1024"), std::string::npos) << Log();
  EXPECT_EQ(calls_.load(), 1);
  ASSERT_EQ(Curl("-w ' %{http_code}' --data-binary @" + Path("over") + " '" + Url("/v3/p") + "'"), 0)
      << Log();
  EXPECT_NE(Log().find("\"code\":\"PARAM_ERROR\""), std::string::npos) << Log();
  EXPECT_TRUE(Log().ends_with(" 413")) << Log();
  ASSERT_EQ(Curl("-w ' %{http_code}' -H 'X-Big: " + std::string(3000, 'b') + "' '" + Url("/v3/p") + "'"), 0)
      << Log();
  EXPECT_TRUE(Log().ends_with(" 431")) << Log();
  EXPECT_EQ(calls_.load(), 1);
}

TEST_F(HttpsServerTest, ASilentClientIsClosedAfterTheTimeoutAndStallsNoOne) {
  options_.timeout = std::chrono::milliseconds(1500);
  Serve();
  // A client that completes the handshake and then sends nothing (s_client's stdin stays open and empty).
  // Its exit is recorded as soon as it ends (the pipeline itself lasts as long as the sleep).
  const std::string silent = "cd '" + Path("tls") +
                             "' && (sleep 15 | (timeout 15 openssl s_client -quiet -connect 127.0.0.1:" +
                             std::to_string(server_->port()) + " -CAfile ca.pem > '" + Path("silent.log") +
                             "' 2>&1; echo $? > '" + Path("silent.exit") + "')) > /dev/null 2>&1 &";
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(std::system(silent.c_str()), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(Curl("'" + Url("/v3/meanwhile") + "'"), 0) << Log();
  EXPECT_NE(Log().find("/v3/meanwhile"), std::string::npos) << Log();
  // The silent client's connection ends once the timeout passed (s_client exits), long before its 30 s.
  for (int i = 0; i < 100 && !std::filesystem::exists(Path("silent.exit")); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(std::filesystem::exists(Path("silent.exit"))) << ReadFile(Path("silent.log"));
  const auto lasted = std::chrono::steady_clock::now() - started;
  EXPECT_GE(lasted, options_.timeout);  // closed by the timeout, not at once
  EXPECT_LT(lasted, std::chrono::seconds(12));
  EXPECT_NE(ReadFile(Path("silent.log")).find("verify return:1"), std::string::npos)  // it did connect
      << ReadFile(Path("silent.log"));
}

TEST_F(HttpsServerTest, AConnectionOverTheLimitIsClosedAtOnce) {
  options_.max_connections = 1;
  options_.timeout = std::chrono::milliseconds(5000);
  Serve();
  const std::string holder = "cd '" + Path("tls") +
                             "' && (sleep 4 | timeout 10 openssl s_client -quiet -connect 127.0.0.1:" +
                             std::to_string(server_->port()) + " -CAfile ca.pem > /dev/null 2>&1) &";
  ASSERT_EQ(std::system(holder.c_str()), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_NE(Curl("'" + Url("/v3/second") + "'"), 0) << Log();
  EXPECT_EQ(calls_.load(), 0);
  // Once the holder is gone (its stdin ends after 4 s) the slot is free again.
  int third = -1;
  for (int i = 0; i < 30 && third != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    third = Curl("'" + Url("/v3/third") + "'");
  }
  EXPECT_EQ(third, 0) << Log();
  EXPECT_EQ(calls_.load(), 1);
}

// Connections that never start their TLS handshake (a slowloris holding every slot) give way to a client
// that does: over the limit the oldest connection still in its handshake is closed for the new one.
TEST_F(HttpsServerTest, ConnectionsStuckBeforeTheirHandshakeMakeWayForARealClient) {
  options_.max_connections = 2;
  options_.handshake_timeout = std::chrono::milliseconds(20'000);
  Serve();
  const std::string port = std::to_string(server_->port());
  for (int i = 0; i < 2; ++i) {
    const std::string silent =
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/" + port + "; sleep 8' > /dev/null 2>&1 &";
    ASSERT_EQ(std::system(silent.c_str()), 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(Curl("'" + Url("/v3/real") + "'"), 0) << Log();
  EXPECT_NE(Log().find("/v3/real"), std::string::npos) << Log();
  ASSERT_EQ(Curl("'" + Url("/v3/again") + "'"), 0) << Log();
  EXPECT_EQ(calls_.load(), 2);
}

}  // namespace
}  // namespace ledger::gateway
