#include "https_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace ledger::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;

constexpr size_t kAnswerBytesMax = 64 * 1024;
constexpr size_t kUrlBytesMax = 2048;

bool IsIpv4(const std::string& host) {
  boost::system::error_code error;
  const asio::ip::address address = asio::ip::make_address(host, error);
  return !error && address.is_v4();
}

// Names the server must prove: SNI and the certificate's name (or, for an address, its IP entry).
void ExpectServer(SSL* ssl, const std::string& host) {
  if (IsIpv4(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set1_host(ssl, host.c_str());
  }
}

using Endpoints = std::vector<asio::ip::tcp::endpoint>;

// The host's addresses within `deadline`. The system resolver cannot be cancelled (asio's own resolver
// thread is joined when its context goes, so a name server that never answers would hold the caller for the
// resolver's own timeout): it runs on a thread of its own, left to finish alone when the deadline passes.
Result<Endpoints> Resolve(const HttpsUrl& url, std::chrono::milliseconds deadline) {
  auto answer = std::make_shared<std::promise<Result<Endpoints>>>();
  std::future<Result<Endpoints>> future = answer->get_future();
  std::thread([host = url.host, port = url.port, answer] {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    boost::system::error_code error;
    const auto results = resolver.resolve(host, port, error);
    if (error) return answer->set_value(Status::IoError("cannot resolve " + host + ": " + error.message()));
    Endpoints endpoints;
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
    answer->set_value(std::move(endpoints));
  }).detach();
  if (future.wait_for(deadline) != std::future_status::ready)
    return Status::IoError("cannot resolve " + url.host + " within the deadline");
  return future.get();
}

asio::awaitable<int> Exchange(ssl::context& tls, const HttpsUrl& url, const Endpoints& endpoints,
                              http::request<http::string_body>& request) {
  const auto executor = co_await asio::this_coro::executor;
  beast::ssl_stream<beast::tcp_stream> stream(executor, tls);
  ExpectServer(stream.native_handle(), url.host);
  co_await beast::get_lowest_layer(stream).async_connect(endpoints, asio::use_awaitable);
  co_await stream.async_handshake(ssl::stream_base::client, asio::use_awaitable);
  co_await http::async_write(stream, request, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kAnswerBytesMax);
  co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
  co_return parser.get().result_int();
}

}  // namespace

Result<HttpsUrl> ParseHttpsUrl(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (url.size() > kUrlBytesMax || !url.starts_with(kScheme))
    return Status::InvalidArgument("not an https:// URL of at most 2048 bytes");
  url.remove_prefix(kScheme.size());
  const size_t authority_end = url.find_first_of("/?");
  const std::string_view authority = url.substr(0, authority_end);
  HttpsUrl parsed;
  parsed.target = authority_end == std::string_view::npos ? "/" : std::string(url.substr(authority_end));
  if (parsed.target.front() == '?') parsed.target.insert(0, "/");
  for (char c : parsed.target) {
    if (c <= 0x20 || c >= 0x7f || c == '#')
      return Status::InvalidArgument("the URL's path has '#' or a space");
  }
  const size_t colon = authority.find(':');
  parsed.host = std::string(authority.substr(0, colon));
  parsed.port = colon == std::string_view::npos ? "443" : std::string(authority.substr(colon + 1));
  if (parsed.host.empty() ||
      parsed.host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789.-") != std::string::npos)
    return Status::InvalidArgument("the URL's host must be a name or an IPv4 address");
  const bool port_ok = !parsed.port.empty() && parsed.port.size() <= 5 &&
                       parsed.port.find_first_not_of("0123456789") == std::string::npos &&
                       std::stoi(parsed.port) >= 1 && std::stoi(parsed.port) <= 65535;
  if (!port_ok) return Status::InvalidArgument("the URL's port must be 1 to 65535");
  return parsed;
}

Result<int> PostOnce(const HttpsPost& post) {
  Result<HttpsUrl> url = ParseHttpsUrl(post.url);
  if (!url.ok()) return url.status();
  ssl::context tls(ssl::context::tls_client);
  tls.set_options(ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  tls.set_default_verify_paths();
  boost::system::error_code error;
  if (!post.extra_ca_file.empty()) tls.load_verify_file(post.extra_ca_file, error);
  if (error) return Status::IoError("cannot read " + post.extra_ca_file + ": " + error.message());
  tls.set_verify_mode(ssl::verify_peer);

  http::request<http::string_body> request(http::verb::post, url->target, 11);
  request.set(http::field::host, url->port == "443" ? url->host : url->host + ":" + url->port);
  request.set(http::field::user_agent, "ledger-gateway-notifier");
  for (const auto& [name, value] : post.headers) request.set(name, value);
  request.body() = post.body;
  request.prepare_payload();

  const auto started = std::chrono::steady_clock::now();
  Result<Endpoints> endpoints = Resolve(*url, post.deadline);
  if (!endpoints.ok()) return endpoints.status();
  const auto left = post.deadline - std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - started);
  // The rest of the exchange runs on this io_context for what is left of the deadline; what is unfinished
  // then is dropped with it (its sockets closed; its completion handler is never called then, and `outcome`
  // outlives the context anyway).
  std::optional<Result<int>> outcome;
  asio::io_context io;
  asio::co_spawn(io, Exchange(tls, *url, *endpoints, request),
                 [&outcome](std::exception_ptr failure, int status) {
                   if (!failure) {
                     outcome.emplace(status);
                     return;
                   }
                   try {
                     std::rethrow_exception(failure);
                   } catch (const std::exception& e) {
                     outcome.emplace(Status::IoError(e.what()));
                   } catch (...) {
                     outcome.emplace(Status::IoError("the exchange failed"));
                   }
                 });
  if (left.count() > 0) io.run_for(left);
  if (!outcome.has_value()) return Status::IoError("no answer within the deadline");
  return *outcome;
}

}  // namespace ledger::gateway
