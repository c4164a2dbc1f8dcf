// Goal: the TLS material the gateway makes on first start is what real TLS tools accept: `openssl verify`
// chains the server certificate (for servers only, naming the listen address) and the channel client
// certificate (for clients only) to the CA, and `openssl s_server` with `curl` completes a mutual-TLS
// handshake with them — and refuses a client without the channel certificate. Keys are 0600; a second start
// finds the material unchanged; a partial set is refused and left alone.
#include "gateway/tls_material.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/test_support.h"

namespace ledger::gateway {
namespace {

using testing::ReadFile;

class TlsMaterialTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  // The exit status of a shell command run in the material's folder; its output in `log`.
  int Shell(const std::string& command) const {
    const int status =
        std::system(("cd '" + Path("tls") + "' && (" + command + ") > '" + Path("log") + "' 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  static int FreePort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), size), 0);
    EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size), 0);
    ::close(fd);
    return ntohs(address.sin_port);
  }
  // One mutual-TLS exchange: openssl s_server (one connection, bounded by timeout) answered by curl with
  // `curl_options`; curl's exit status.
  int Exchange(const std::string& curl_options) {
    const std::string port = std::to_string(FreePort());
    std::filesystem::remove(Path("server.log"));
    const std::string server = "timeout 20 openssl s_server -naccept 1 -www -accept 127.0.0.1:" + port +
                               " -cert server.pem -key server.key -CAfile ca.pem -Verify 1 > '" +
                               Path("server.log") + "' 2>&1 &";
    EXPECT_EQ(std::system(("cd '" + Path("tls") + "' && " + server).c_str()), 0);
    // s_server says ACCEPT once it listens (a probe connection would use up its one accept).
    for (int i = 0; i < 200 && !std::filesystem::exists(Path("server.log")); ++i) ::usleep(50'000);
    for (int i = 0; i < 200 && ReadFile(Path("server.log")).find("ACCEPT") == std::string::npos; ++i)
      ::usleep(50'000);
    return Shell("curl -s --max-time 10 --cacert ca.pem " + curl_options + " https://127.0.0.1:" + port +
                 "/");
  }

  testing::TempDir dir_;
};

TEST_F(TlsMaterialTest, RealToolsAcceptTheMaterialForMutualTls) {
  Result<TlsMaterial> made = EnsureTlsMaterial(Path("tls"), {"127.0.0.1", "localhost"});
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ(*made, TlsMaterial::kCreated);
  const TlsFiles files = TlsFilesIn(Path("tls"));
  for (const std::string& key : {files.ca_key, files.server_key, files.client_key}) {
    struct stat info {};
    ASSERT_EQ(::stat(key.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u) << key;
  }
  EXPECT_EQ(Shell("openssl verify -CAfile ca.pem -purpose sslserver server.pem"), 0) << ReadFile(Path("log"));
  EXPECT_EQ(Shell("openssl verify -CAfile ca.pem -purpose sslclient channel-client.pem"), 0)
      << ReadFile(Path("log"));
  EXPECT_NE(Shell("openssl verify -CAfile ca.pem -purpose sslclient server.pem"), 0);
  EXPECT_NE(Shell("openssl verify -CAfile ca.pem -purpose sslserver channel-client.pem"), 0);
  ASSERT_EQ(Shell("openssl x509 -in server.pem -noout -ext subjectAltName"), 0);
  EXPECT_NE(ReadFile(Path("log")).find("IP Address:127.0.0.1"), std::string::npos) << ReadFile(Path("log"));
  EXPECT_NE(ReadFile(Path("log")).find("DNS:localhost"), std::string::npos) << ReadFile(Path("log"));

  EXPECT_EQ(Exchange("--cert channel-client.pem --key channel-client.key"), 0)
      << ReadFile(Path("server.log"));
  EXPECT_NE(ReadFile(Path("log")).find("s_server"), std::string::npos) << ReadFile(Path("log"));
  const int refused = Exchange("");  // no channel certificate: the server ends the handshake
  EXPECT_NE(refused, 0) << ReadFile(Path("log"));
  EXPECT_NE(refused, 7) << "curl could not connect at all: " << ReadFile(Path("server.log"));
}

TEST_F(TlsMaterialTest, ASecondStartFindsItUnchangedAndAPartialSetIsRefused) {
  ASSERT_TRUE(EnsureTlsMaterial(Path("tls"), {"127.0.0.1"}).ok());
  const TlsFiles files = TlsFilesIn(Path("tls"));
  const std::string ca = ReadFile(files.ca_cert), key = ReadFile(files.server_key);
  Result<TlsMaterial> again = EnsureTlsMaterial(Path("tls"), {"127.0.0.1"});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, TlsMaterial::kFound);
  EXPECT_EQ(ReadFile(files.ca_cert), ca);
  EXPECT_EQ(ReadFile(files.server_key), key);

  std::filesystem::remove(files.server_cert);
  Result<TlsMaterial> partial = EnsureTlsMaterial(Path("tls"), {"127.0.0.1"});
  EXPECT_FALSE(partial.ok());
  EXPECT_FALSE(std::filesystem::exists(files.server_cert));
  EXPECT_EQ(ReadFile(files.ca_cert), ca);
  EXPECT_FALSE(EnsureTlsMaterial(Path("other"), {}).ok());
}

}  // namespace
}  // namespace ledger::gateway
