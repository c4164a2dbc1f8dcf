#include "gateway/https_server.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cstdio>
#include <list>
#include <optional>
#include <thread>

namespace ledger::gateway {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

namespace {

class Session;

// What every connection of one server shares.
struct Shared {
  HttpsServerOptions options;
  HttpHandler handler;
  std::atomic<size_t> connections{0};
  // Connections still in their TLS handshake, oldest first (touched on the server's one thread only): over
  // the connection limit the oldest of them gives way to the new one, so connections that never finish a
  // handshake (a slowloris) cannot keep clients that do out.
  std::list<std::weak_ptr<Session>> handshaking;
  // SHA-256 of the channel client certificate (DER): only that certificate makes a request the channel's.
  // The CA also signs merchants' certificates, so chaining to it proves nothing about the bank's channel.
  std::optional<std::array<unsigned char, EVP_MAX_MD_SIZE>> channel_fingerprint;
};

std::optional<std::array<unsigned char, EVP_MAX_MD_SIZE>> Fingerprint(const X509* certificate) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (certificate == nullptr || X509_digest(certificate, EVP_sha256(), digest.data(), &size) != 1)
    return std::nullopt;
  return digest;
}

// The fingerprint of the certificate in a PEM file; nullopt when there is none to read.
std::optional<std::array<unsigned char, EVP_MAX_MD_SIZE>> FingerprintOfFile(const std::string& path) {
  if (path.empty()) return std::nullopt;
  FILE* file = std::fopen(path.c_str(), "re");
  if (file == nullptr) return std::nullopt;
  X509* certificate = PEM_read_X509(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  std::optional<std::array<unsigned char, EVP_MAX_MD_SIZE>> fingerprint = Fingerprint(certificate);
  X509_free(certificate);
  return fingerprint;
}

std::string Lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// WeChat's error body.
std::string ErrorBody(const std::string& code, const std::string& message) {
  return "{\"code\":\"" + code + "\",\"message\":\"" + message + "\"}";
}

// One connection: handshake, then requests one after another (keep-alive) until the client closes, a limit
// is passed or time runs out.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, ssl::context& context, Shared& shared)
      : stream_(std::move(socket), context), shared_(shared) {}
  ~Session() {
    LeaveHandshake();
    shared_.connections.fetch_sub(1);
  }

  void Run() {
    handshaking_ = shared_.handshaking.insert(shared_.handshaking.end(), weak_from_this());
    in_handshake_ = true;
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Handshake(); });
  }

  // Closes a connection still in its handshake (its pending handshake then fails and the session ends).
  void Evict() {
    LeaveHandshake();
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().close(ignored);
  }

 private:
  void LeaveHandshake() {
    if (!in_handshake_) return;
    shared_.handshaking.erase(handshaking_);
    in_handshake_ = false;
  }

  void Handshake() {
    beast::get_lowest_layer(stream_).expires_after(shared_.options.handshake_timeout);
    stream_.async_handshake(ssl::stream_base::server, [self = shared_from_this()](beast::error_code error) {
      self->LeaveHandshake();
      if (!error) self->Read();
    });
  }

  void Read() {
    parser_.emplace();
    parser_->body_limit(shared_.options.body_max);
    parser_->header_limit(static_cast<uint32_t>(shared_.options.head_max));
    beast::get_lowest_layer(stream_).expires_after(shared_.options.timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code error, size_t) { self->OnRead(error); });
  }

  void OnRead(beast::error_code error) {
    if (error == http::error::end_of_stream) return Shutdown();
    if (error == http::error::body_limit) {
      return Send({413, ErrorBody("PARAM_ERROR", "request body over " +
                                                     std::to_string(shared_.options.body_max) + " bytes")},
                  true);
    }
    if (error == http::error::header_limit)
      return Send({431, ErrorBody("PARAM_ERROR", "request head too large")}, true);
    if (error) return;  // a timeout, a reset, a malformed request: the connection is dropped
    const http::request<http::string_body>& message = parser_->get();
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    for (const auto& field : message)
      request.headers[Lower(field.name_string())] = std::string(field.value());
    request.body = message.body();
    const std::optional<std::array<unsigned char, EVP_MAX_MD_SIZE>> peer =
        Fingerprint(SSL_get0_peer_certificate(stream_.native_handle()));
    request.channel_client = peer && shared_.channel_fingerprint && *peer == *shared_.channel_fingerprint;
    const bool close = !message.keep_alive();
    const std::string what = request.method + " " + request.target;
    // Answered once: a handler that throws after answering must not send a second response.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    auto respond = [self = shared_from_this(), close, answered](HttpResponse response) {
      if (answered->exchange(true)) return;
      net::post(self->stream_.get_executor(), [self, close, response = std::move(response)]() mutable {
        self->Send(std::move(response), close);
      });
    };
    try {
      shared_.handler(std::move(request), respond);
    } catch (const std::exception& failure) {
      spdlog::error("gateway: {}: {}", what, failure.what());
      respond({500, ErrorBody("SYSTEM_ERROR", "internal error")});
    }
  }

  void Send(HttpResponse response, bool close) {
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(response.status));
    response_.set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) response_.set(name, value);
    response_.body() = std::move(response.body);
    response_.keep_alive(!close);
    response_.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(shared_.options.timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this(), close](beast::error_code error, size_t) {
                        if (error) return;
                        if (close) return self->Shutdown();
                        self->Read();
                      });
  }

  void Shutdown() {
    beast::get_lowest_layer(stream_).expires_after(shared_.options.timeout);
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
  }

  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  Shared& shared_;
  std::list<std::weak_ptr<Session>>::iterator handshaking_;
  bool in_handshake_ = false;
};

// Closes the oldest connection still in its handshake; false when there is none.
bool EvictOldestHandshake(Shared& shared) {
  while (!shared.handshaking.empty()) {
    if (std::shared_ptr<Session> oldest = shared.handshaking.front().lock()) {
      oldest->Evict();
      return true;
    }
    shared.handshaking.pop_front();
  }
  return false;
}

}  // namespace

HttpHandler AnswerAtOnce(std::function<HttpResponse(const HttpRequest&)> answer) {
  return [answer = std::move(answer)](HttpRequest request, Respond respond) { respond(answer(request)); };
}

struct HttpsServer::Impl {
  // Declared so that they go in this order: the io_context (and with it every session) before the TLS
  // context and the shared state the sessions use.
  Shared shared;
  ssl::context tls{ssl::context::tls_server};
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;

  void Accept() {
    acceptor.async_accept(net::make_strand(io), [this](beast::error_code error, tcp::socket socket) {
      if (error == net::error::operation_aborted) return;  // stopped
      if (!error) {
        if (shared.connections.fetch_add(1) >= shared.options.max_connections &&
            !EvictOldestHandshake(shared)) {
          shared.connections.fetch_sub(1);
          beast::error_code ignored;
          socket.close(ignored);  // over the limit, every connection past its handshake: closed, never queued
        } else {
          std::make_shared<Session>(std::move(socket), tls, shared)->Run();
        }
      }
      Accept();
    });
  }
};

Result<std::unique_ptr<HttpsServer>> HttpsServer::Start(const HttpsServerOptions& options,
                                                        HttpHandler handler) {
  auto impl = std::make_unique<Impl>();
  impl->shared.options = options;
  impl->shared.handler = std::move(handler);
  impl->shared.channel_fingerprint = FingerprintOfFile(options.tls.client_cert);
  beast::error_code error;
  impl->tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                            ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                        error);
  impl->tls.use_certificate_chain_file(options.tls.server_cert, error);
  if (!error) impl->tls.use_private_key_file(options.tls.server_key, ssl::context::pem, error);
  if (!error) impl->tls.load_verify_file(options.tls.ca_cert, error);
  if (error) return Status::InvalidArgument("TLS files: " + error.message());
  // A client certificate is asked for and, when given, must chain to the CA; none is required here.
  impl->tls.set_verify_mode(ssl::verify_peer, error);
  const net::ip::address address = net::ip::make_address(options.host, error);
  if (error) return Status::InvalidArgument("listen host " + options.host + ": " + error.message());
  const tcp::endpoint endpoint(address, options.port);
  impl->acceptor.open(endpoint.protocol(), error);
  if (!error) impl->acceptor.set_option(net::socket_base::reuse_address(true), error);
  if (!error) impl->acceptor.bind(endpoint, error);
  if (!error) impl->acceptor.listen(net::socket_base::max_listen_connections, error);
  if (error)
    return Status::IoError("cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " +
                           error.message());
  impl->Accept();
  Impl* running = impl.get();
  impl->thread = std::thread([running] { running->io.run(); });
  return std::unique_ptr<HttpsServer>(new HttpsServer(std::move(impl)));
}

HttpsServer::HttpsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpsServer::~HttpsServer() { Stop(); }

uint16_t HttpsServer::port() const { return impl_->acceptor.local_endpoint().port(); }

void HttpsServer::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->io.stop();
  impl_->thread.join();
}

}  // namespace ledger::gateway
