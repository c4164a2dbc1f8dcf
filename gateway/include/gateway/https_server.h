// The gateway's HTTPS server: HTTP/1.1 with keep-alive over TLS (Boost.Beast on Boost.Asio, OpenSSL 3), one
// thread of its own running every connection asynchronously, so that a slow or half-open client never stalls
// another. Bounded everywhere: connections (beyond the limit the oldest still in its TLS handshake makes way
// for a new one, else the new one is closed at once), the request head (431 beyond it) and body (413 beyond
// it, WeChat's error body), and the time a connection may take for its handshake, each request and each
// response (then it is closed). A client may present a certificate signed by the gateway's CA (mutual TLS);
// the handler is told whether it was the channel client certificate itself (tls.client_cert, the bank's
// channels) — the CA signs merchants' certificates too, so chaining to it is not enough. The server refuses
// no connection for lacking one, since merchants authenticate by request signatures. Thread-safety: Start and
// Stop from one owner thread; the handler runs on the server's thread and must not block (work that waits,
// such as a ledger commit, answers later through its Respond, from any thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "gateway/tls_material.h"

namespace ledger::gateway {

struct HttpRequest {
  std::string method;                          // "GET", "POST", …
  std::string target;                          // path and query, as sent
  std::map<std::string, std::string> headers;  // names in lower case; a repeated header: the last
  std::string body;
  bool channel_client = false;  // presented the channel client certificate (HttpsServerOptions::tls)
};

struct HttpResponse {
  int status = 200;
  std::string body = {};
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers = {};
};

// Answers one request; callable once, from any thread (the answer is sent on the connection's own strand).
using Respond = std::function<void(HttpResponse)>;
// Takes a request and answers it through `respond`, now or later. A connection reads its next request only
// after the answer, so one client has one request in the handler at a time.
using HttpHandler = std::function<void(HttpRequest request, Respond respond)>;
// A handler that answers at once.
HttpHandler AnswerAtOnce(std::function<HttpResponse(const HttpRequest&)> answer);

struct HttpsServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port (HttpsServer::port says which)
  TlsFiles tls;  // the server's certificate and key, the CA client certificates must chain to, the channel's
  size_t max_connections = 256;
  size_t body_max = 64 * 1024;
  size_t head_max = 16 * 1024;
  std::chrono::milliseconds timeout{10'000};  // per request read, per response write
  // For the TLS handshake, which a client completes in milliseconds; over the connection limit the oldest
  // connection still in its handshake is closed for the new one.
  std::chrono::milliseconds handshake_timeout{3'000};
};

class HttpsServer {
 public:
  // Listens and starts serving. Errors: InvalidArgument (unreadable TLS files, a host that is no address),
  // IoError (cannot listen).
  static Result<std::unique_ptr<HttpsServer>> Start(const HttpsServerOptions& options, HttpHandler handler);
  ~HttpsServer();  // stops
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  uint16_t port() const;
  // Stops accepting, closes every connection and joins the server's thread.
  void Stop();

  struct Impl;

 private:
  explicit HttpsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledger::gateway
