// One keep-alive HTTPS connection to the gateway, synchronous, for one thread at a time: what a merchant's
// system or a bank channel's backend holds open (`ledger demo` drives the front door through it; the gateway
// benchmark loads the gateway with it). The server's certificate must chain to `ca_file` and name the host; a
// client certificate is presented when one is given (the customer API's mutual TLS).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace ledger::gateway {

struct HttpsEndpoint {
  std::string host;  // an IPv4 address or a name the server certificate carries
  std::string port;
  std::string ca_file;
  std::string client_cert_file;  // empty: no client certificate
  std::string client_key_file;
  std::chrono::milliseconds deadline{
      10'000};  // for the connection and handshake; then per request, with its answer
};

struct HttpAnswer {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

class HttpsConnection {
 public:
  // Connects and completes the TLS handshake. Errors: IoError (resolve, connect, TLS, the certificate),
  // InvalidArgument (a CA or client certificate file that cannot be read).
  static Result<std::unique_ptr<HttpsConnection>> Open(const HttpsEndpoint& endpoint);
  ~HttpsConnection();
  HttpsConnection(const HttpsConnection&) = delete;
  HttpsConnection& operator=(const HttpsConnection&) = delete;

  // One request and its answer (at most 16 MiB). Errors: IoError (the connection failed, the deadline
  // passed, the answer is malformed or too large); the connection is unusable after an error.
  Result<HttpAnswer> Send(std::string_view method, std::string_view target, std::string_view body,
                          const HttpHeaders& headers);

 private:
  struct Impl;
  explicit HttpsConnection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledger::gateway
