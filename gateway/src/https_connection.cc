#include "gateway/https_connection.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>

namespace ledger::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr uint64_t kAnswerMax = 16 << 20;  // a day's trade bill of a large merchant fits

// Runs one asynchronous operation of the connection to its end on `io` (this thread). The stream's timer
// bounds it (Beast's timeouts hold for asynchronous operations only): beast::error::timeout past the
// deadline.
template <typename Start>
beast::error_code RunToEnd(asio::io_context& io, Start start) {
  beast::error_code result = asio::error::operation_aborted;
  start([&result](beast::error_code error, auto&&...) { result = error; });
  io.restart();
  io.run();
  return result;
}

}  // namespace

struct HttpsConnection::Impl {
  asio::io_context io;
  asio::ssl::context tls{asio::ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  std::string host_header;
  std::chrono::milliseconds deadline{};
};

HttpsConnection::HttpsConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpsConnection::~HttpsConnection() = default;

Result<std::unique_ptr<HttpsConnection>> HttpsConnection::Open(const HttpsEndpoint& endpoint) {
  auto impl = std::make_unique<Impl>();
  impl->deadline = endpoint.deadline;
  impl->host_header = endpoint.host + ":" + endpoint.port;
  beast::error_code error;
  impl->tls.load_verify_file(endpoint.ca_file, error);
  if (error) return Status::InvalidArgument("CA file " + endpoint.ca_file + ": " + error.message());
  impl->tls.set_verify_mode(asio::ssl::verify_peer);
  if (!endpoint.client_cert_file.empty()) {
    impl->tls.use_certificate_chain_file(endpoint.client_cert_file, error);
    if (!error) impl->tls.use_private_key_file(endpoint.client_key_file, asio::ssl::context::pem, error);
    if (error)
      return Status::InvalidArgument("client certificate " + endpoint.client_cert_file + ": " +
                                     error.message());
  }
  impl->stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(impl->io, impl->tls);
  asio::ip::make_address(endpoint.host, error);
  const bool is_address = !error;
  error = {};
  // SNI names a host; an address is not sent (RFC 6066).
  if (!is_address && !SSL_set_tlsext_host_name(impl->stream->native_handle(), endpoint.host.c_str()))
    return Status::IoError("cannot name the host for TLS");
  impl->stream->set_verify_callback(asio::ssl::host_name_verification(endpoint.host));
  asio::ip::tcp::resolver resolver(impl->io);
  const auto addresses = resolver.resolve(endpoint.host, endpoint.port, error);
  if (error) return Status::IoError("resolving " + endpoint.host + ": " + error.message());
  beast::tcp_stream& tcp = beast::get_lowest_layer(*impl->stream);
  tcp.expires_after(endpoint.deadline);
  error = RunToEnd(impl->io, [&](auto done) { tcp.async_connect(addresses, done); });
  if (error) return Status::IoError("connecting to " + impl->host_header + ": " + error.message());
  tcp.socket().set_option(asio::ip::tcp::no_delay(true), error);
  tcp.expires_after(endpoint.deadline);
  error = RunToEnd(impl->io,
                   [&](auto done) { impl->stream->async_handshake(asio::ssl::stream_base::client, done); });
  if (error) return Status::IoError("TLS with " + impl->host_header + ": " + error.message());
  return std::unique_ptr<HttpsConnection>(new HttpsConnection(std::move(impl)));
}

Result<HttpAnswer> HttpsConnection::Send(std::string_view method, std::string_view target,
                                         std::string_view body, const HttpHeaders& headers) {
  http::request<http::string_body> request{http::string_to_verb(method), target, 11};
  if (request.method() == http::verb::unknown) return Status::InvalidArgument("no such HTTP method");
  request.set(http::field::host, impl_->host_header);
  request.set(http::field::accept, "application/json");
  if (!body.empty()) request.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = std::string(body);
  request.prepare_payload();
  // One deadline for the request and its answer.
  beast::get_lowest_layer(*impl_->stream).expires_after(impl_->deadline);
  beast::error_code error =
      RunToEnd(impl_->io, [&](auto done) { http::async_write(*impl_->stream, request, done); });
  if (error) return Status::IoError("sending " + std::string(target) + ": " + error.message());
  http::response_parser<http::string_body> parser;
  parser.body_limit(kAnswerMax);
  error =
      RunToEnd(impl_->io, [&](auto done) { http::async_read(*impl_->stream, impl_->buffer, parser, done); });
  if (error) return Status::IoError("the answer to " + std::string(target) + ": " + error.message());
  HttpAnswer answer;
  answer.status = parser.get().result_int();
  for (const auto& field : parser.get()) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    answer.headers[name] = std::string(field.value());
  }
  answer.body = std::move(parser.get().body());
  return answer;
}

}  // namespace ledger::gateway
