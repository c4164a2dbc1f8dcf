// One HTTPS POST with a deadline (private to gateway/src): what the notifier sends merchants. The server's
// certificate is verified against the system's trust store and, when given, one more CA file, and must name
// the URL's host.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace ledger::gateway {

struct HttpsUrl {
  std::string host;    // a DNS name or an IPv4 address
  std::string port;    // "443" unless given
  std::string target;  // path and query, "/" at least
};

// https://HOST[:PORT][/PATH][?QUERY]: no user part, no fragment, no IPv6 literal, host letters, digits, '.'
// and '-'. Errors: InvalidArgument naming what is wrong.
Result<HttpsUrl> ParseHttpsUrl(std::string_view url);

struct HttpsPost {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string extra_ca_file;                  // empty: the system's trust store only
  std::chrono::milliseconds deadline{5'000};  // for all of it: resolve, connect, handshake, send, answer
};

// The answer's HTTP status (its body is read, at most 64 KiB, and dropped). Errors: InvalidArgument (the
// URL), IoError (resolve, connect, TLS, the certificate, the deadline, a malformed answer).
Result<int> PostOnce(const HttpsPost& post);

}  // namespace ledger::gateway
