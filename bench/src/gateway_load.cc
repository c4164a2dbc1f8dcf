// ledger_gateway_load: signed codepay requests through `ledger gateway`, as a merchant's tills send them,
// measured (bench/gateway.sh runs it with the gateway and this program pinned to different cores).
//
//   ledger_gateway_load --url https://127.0.0.1:PORT --tls DIR --kit DIR --customers DIR --customer-count N
//       [--mchid M1] [--connections K] [--peak-requests N] [--rate R] [--paced-requests N] [--round N]
//       [--gateway-pid PID] [--json]
//
// Each round first asks the customer API (mutual TLS) for the payment codes it spends: customer i % N proves
// the fingerprint medium with the device key in DIR/C<i>/device_key.pem (customer-enroll's kit), over a
// timestamp of its own (one code per customer and second: the same proof never issues a second code). Then it
// signs every codepay request of the round in advance (SHA256withRSA with the merchant's key,
// WECHATPAY2-SHA256-RSA2048), so that in the measured part this process spends its CPU on TLS and HTTP only.
// Neither is measured. Two phases: the peak (a closed loop: K connections, each sending its next request
// when the last is answered) and a paced one (requests offered at R per second; each latency counts from
// when the request was due, so a stall counts for every request it delays). Every answer must be 200 with
// trade_state SUCCESS. With --gateway-pid, the gateway's CPU time (user + system, all threads) per request.
// Exit codes: 0 every measured request paid; 1 a step failed or an answer was not a payment (one line
// "gateway load: reason" on stderr); 2 bad usage.
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/latency_histogram.h"
#include "core/sha256.h"
#include "gateway/https_connection.h"
#include "gateway/media_proof.h"
#include "gateway/merchant_client.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// A payment code request's timestamp may be this far from the gateway's clock (it allows 60 s).
constexpr int64_t kTimestampSpreadSeconds = 50;

struct Options {
  std::string host;
  std::string port;
  std::string tls_dir;
  std::string kit_dir;
  std::string customers_dir;
  int customer_count = 0;
  std::string mchid = "M1";
  int connections = 16;
  int64_t peak_requests = 20'000;
  double rate = 500;
  int64_t paced_requests = 10'000;
  int64_t round = 4'000;
  long gateway_pid = 0;
  bool json = false;
};

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "gateway load: %s\n", why.c_str());
  std::exit(kExitFailure);
}

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "gateway load: %s\nusage: ledger_gateway_load --url https://HOST:PORT --tls DIR --kit DIR "
               "--customers DIR --customer-count N [--mchid M] [--connections K] [--peak-requests N] "
               "[--rate R] [--paced-requests N] [--round N] [--gateway-pid PID] [--json]\n",
               why.c_str());
  std::exit(kExitUsage);
}

int64_t PositiveInteger(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size() && value > 0) return value;
  } catch (const std::exception&) {
  }
  Usage(flag + " must be a positive integer, not '" + text + "'");
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--json") {
      options.json = true;
      continue;
    }
    if (i + 1 >= argc) Usage(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--url") {
      constexpr std::string_view kScheme = "https://";
      const size_t colon = value.rfind(':');
      if (!value.starts_with(kScheme) || colon == std::string::npos || colon < kScheme.size())
        Usage("--url must be https://HOST:PORT");
      options.host = value.substr(kScheme.size(), colon - kScheme.size());
      options.port = value.substr(colon + 1);
    } else if (flag == "--tls") {
      options.tls_dir = value;
    } else if (flag == "--kit") {
      options.kit_dir = value;
    } else if (flag == "--customers") {
      options.customers_dir = value;
    } else if (flag == "--customer-count") {
      options.customer_count = static_cast<int>(std::min<int64_t>(PositiveInteger(flag, value), 1'000'000));
    } else if (flag == "--mchid") {
      options.mchid = value;
    } else if (flag == "--connections") {
      options.connections = static_cast<int>(std::min<int64_t>(PositiveInteger(flag, value), 256));
    } else if (flag == "--peak-requests") {
      options.peak_requests = PositiveInteger(flag, value);
    } else if (flag == "--rate") {
      options.rate = static_cast<double>(PositiveInteger(flag, value));
    } else if (flag == "--paced-requests") {
      options.paced_requests = PositiveInteger(flag, value);
    } else if (flag == "--round") {
      options.round = PositiveInteger(flag, value);
    } else if (flag == "--gateway-pid") {
      options.gateway_pid = static_cast<long>(PositiveInteger(flag, value));
    } else {
      Usage("unknown option " + flag);
    }
  }
  if (options.host.empty() || options.tls_dir.empty() || options.kit_dir.empty() ||
      options.customers_dir.empty() || options.customer_count == 0)
    Usage("--url, --tls, --kit, --customers and --customer-count are required");
  return options;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string RandomHex(size_t bytes) {
  std::vector<uint8_t> random(bytes);
  if (RAND_bytes(random.data(), static_cast<int>(bytes)) != 1) Die("no randomness");
  return ledger::ToHex(random);
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A connection to the gateway, with the channel's client certificate or without. Dies when it cannot connect.
std::unique_ptr<ledger::gateway::HttpsConnection> Connect(const Options& options, bool channel) {
  ledger::gateway::HttpsEndpoint endpoint;
  endpoint.host = options.host;
  endpoint.port = options.port;
  endpoint.ca_file = options.tls_dir + "/ca.pem";
  if (channel) {
    endpoint.client_cert_file = options.tls_dir + "/channel-client.pem";
    endpoint.client_key_file = options.tls_dir + "/channel-client.key";
  }
  auto connection = ledger::gateway::HttpsConnection::Open(endpoint);
  if (!connection.ok()) Die(connection.status().ToString());
  return std::move(connection).value();
}

// One request; dies when the connection fails.
ledger::gateway::HttpAnswer Post(ledger::gateway::HttpsConnection& connection, const std::string& target,
                                 const std::string& body, const std::string& authorization) {
  ledger::gateway::HttpHeaders headers;
  if (!authorization.empty()) headers.emplace_back("Authorization", authorization);
  auto answer = connection.Send("POST", target, body, headers);
  if (!answer.ok()) Die(answer.status().ToString());
  return std::move(answer).value();
}

// Runs fn(connection, connection's number, index) for every index below `count`, one thread per connection,
// each taking the next index when done with the last.
template <typename Fn>
void OnConnections(std::vector<std::unique_ptr<ledger::gateway::HttpsConnection>>& connections, int64_t count,
                   Fn fn) {
  std::atomic<int64_t> next{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < connections.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int64_t i = next++; i < count; i = next++) fn(*connections[t], t, i);
    });
  }
  for (std::thread& thread : threads) thread.join();
}

// The gateway's CPU time so far (user + system of every thread), in seconds; 0 without a pid.
double GatewayCpuSeconds(long pid) {
  if (pid == 0) return 0;
  std::istringstream stat(ReadFile("/proc/" + std::to_string(pid) + "/stat"));
  std::string field;
  // Fields 14 and 15 (utime, stime); the second field (comm) holds no space for `ledger`.
  unsigned long long utime = 0, stime = 0;
  for (int i = 1; i <= 13; ++i) stat >> field;
  stat >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Codepay {
  std::string body;
  std::string authorization;
};

struct PhaseReport {
  std::string name;
  int64_t requests = 0;
  double seconds = 0;  // measured parts only
  double gateway_cpu_seconds = 0;
  ledger::bench::LatencyHistogram latency;
};

class LoadRun {
 public:
  explicit LoadRun(const Options& options)
      : options_(options),
        run_id_(RandomHex(4)),
        next_timestamp_(static_cast<size_t>(options.customer_count), 0) {
    auto merchant = ledger::gateway::LoadMerchantIdentity(options.kit_dir, options.mchid);
    if (!merchant.ok()) Die(merchant.status().ToString());
    merchant_ = std::move(merchant).value();
    for (int i = 1; i <= options.customer_count; ++i)
      device_keys_.push_back(ReadFile(options.customers_dir + "/C" + std::to_string(i) + "/device_key.pem"));
  }

  // `requests` codepay requests in rounds; rate 0: the closed loop.
  PhaseReport Run(const std::string& name, int64_t requests, double rate) {
    PhaseReport report;
    report.name = name;
    std::vector<int64_t> latencies;
    for (int64_t done = 0; done < requests;) {
      const int64_t size = std::min(options_.round, requests - done);
      Reconnect(channel_, true);
      std::vector<Codepay> round = SignedCodepays(IssueCodes(size));
      // Fresh connections: the gateway closes one that was idle while the codes were issued.
      Reconnect(to_merchant_, false);
      std::fprintf(stderr, "gateway load: %s: %lld requests signed, sending\n", name.c_str(),
                   static_cast<long long>(size));
      const double cpu_before = GatewayCpuSeconds(options_.gateway_pid);
      const Clock::time_point start = Clock::now();
      Send(round, rate, start, latencies);
      report.seconds += std::chrono::duration<double>(Clock::now() - start).count();
      report.gateway_cpu_seconds += GatewayCpuSeconds(options_.gateway_pid) - cpu_before;
      done += size;
      std::fprintf(stderr, "gateway load: %s: %lld of %lld requests\n", name.c_str(),
                   static_cast<long long>(done), static_cast<long long>(requests));
    }
    for (int64_t micros : latencies) report.latency.Record(micros);
    report.requests = requests;
    return report;
  }

 private:
  void Reconnect(std::vector<std::unique_ptr<ledger::gateway::HttpsConnection>>& connections, bool channel) {
    connections.clear();
    for (int i = 0; i < options_.connections; ++i) connections.push_back(Connect(options_, channel));
  }

  // `count` payment codes, each proven with a customer's fingerprint device key.
  std::vector<std::string> IssueCodes(int64_t count) {
    struct Ask {
      int customer;  // 0-based
      int64_t timestamp;
    };
    std::vector<Ask> asks;
    const int64_t now = NowSeconds();
    for (int64_t i = 0; i < count; ++i) {
      const int customer = static_cast<int>(code_counter_++ % static_cast<uint64_t>(options_.customer_count));
      int64_t& next = next_timestamp_[static_cast<size_t>(customer)];
      next = std::max(next, now - kTimestampSpreadSeconds);
      if (next > now + kTimestampSpreadSeconds)
        Die("the customers have no unused second left for a payment code: give more customers");
      asks.push_back({customer, next++});
    }
    std::vector<std::string> codes(static_cast<size_t>(count));
    OnConnections(channel_, count, [&](ledger::gateway::HttpsConnection& connection, size_t, int64_t i) {
      const Ask& ask = asks[static_cast<size_t>(i)];
      const std::string customer = "C" + std::to_string(ask.customer + 1);
      const std::string account = customer + ":debit";
      const std::string digest = ledger::gateway::PaymentCodeDigest(customer, account, ask.timestamp);
      auto proof = ledger::gateway::SignMediumProof(device_keys_[static_cast<size_t>(ask.customer)], digest);
      if (!proof.ok()) Die(customer + "'s device key: " + proof.status().ToString());
      const json body = {{"customer", customer},       {"account", account},
                         {"funding", "own_account"},   {"medium", "fingerprint"},
                         {"timestamp", ask.timestamp}, {"proof", {{"signature", *proof}}}};
      auto [status, headers, answer] = Post(connection, "/customer/v1/payment-codes", body.dump(), "");
      const json code = json::parse(answer, nullptr, false);
      if (status != 200 || !code.is_object() || !code.contains("auth_code") || !code["auth_code"].is_string())
        Die("a payment code for " + customer + " was refused: " + std::to_string(status) + " " + answer);
      codes[static_cast<size_t>(i)] = code["auth_code"].get<std::string>();
    });
    return codes;
  }

  std::vector<Codepay> SignedCodepays(const std::vector<std::string>& codes) {
    std::vector<Codepay> requests;
    const std::string timestamp = std::to_string(NowSeconds());
    for (const std::string& code : codes) {
      const json body = {{"mchid", options_.mchid},
                         {"description", "bench"},
                         {"out_trade_no", "L" + run_id_ + std::to_string(order_counter_++)},
                         {"amount", {{"total", 1}, {"currency", "CNY"}}},
                         {"payer", {{"auth_code", code}}}};
      Codepay request;
      request.body = body.dump();
      request.authorization = ledger::gateway::AuthorizationFor(merchant_, "POST", kCodepay, request.body,
                                                                timestamp, RandomHex(16));
      requests.push_back(std::move(request));
    }
    return requests;
  }

  void Send(const std::vector<Codepay>& round, double rate, Clock::time_point start,
            std::vector<int64_t>& latencies) {
    std::vector<std::vector<int64_t>> per_connection(to_merchant_.size());
    OnConnections(to_merchant_, static_cast<int64_t>(round.size()),
                  [&](ledger::gateway::HttpsConnection& connection, size_t t, int64_t i) {
                    Clock::time_point due = Clock::now();
                    if (rate > 0) {
                      due = start + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(static_cast<double>(i) / rate));
                      std::this_thread::sleep_until(due);
                    }
                    const Codepay& request = round[static_cast<size_t>(i)];
                    auto [status, headers, answer] =
                        Post(connection, std::string(kCodepay), request.body, request.authorization);
                    per_connection[t].push_back(
                        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - due).count());
                    const json paid = json::parse(answer, nullptr, false);
                    if (status != 200 || !paid.is_object() || paid.value("trade_state", "") != "SUCCESS")
                      Die("a codepay was not paid: " + std::to_string(status) + " " + answer);
                  });
    for (const std::vector<int64_t>& some : per_connection)
      latencies.insert(latencies.end(), some.begin(), some.end());
  }

  static constexpr std::string_view kCodepay = "/v3/pay/transactions/codepay";

  const Options& options_;
  ledger::gateway::MerchantIdentity merchant_;
  std::string run_id_;                    // order numbers differ from run to run
  std::vector<std::string> device_keys_;  // PEM
  std::vector<int64_t> next_timestamp_;   // per customer: the next second its payment code request may name
  uint64_t code_counter_ = 0;
  uint64_t order_counter_ = 0;
  std::vector<std::unique_ptr<ledger::gateway::HttpsConnection>> to_merchant_;  // the merchant API's
  std::vector<std::unique_ptr<ledger::gateway::HttpsConnection>> channel_;  // with the channel certificate
};

json PhaseJson(const PhaseReport& phase) {
  json out = {{"requests", phase.requests},
              {"seconds", phase.seconds},
              {"requests_per_second", static_cast<double>(phase.requests) / phase.seconds},
              {"latency_ms",
               {{"p50", phase.latency.Quantile(0.50) / 1e3},
                {"p99", phase.latency.Quantile(0.99) / 1e3},
                {"max", phase.latency.max() / 1e3}}}};
  if (phase.gateway_cpu_seconds > 0)
    out["gateway_cpu_ms_per_request"] = phase.gateway_cpu_seconds * 1e3 / static_cast<double>(phase.requests);
  return out;
}

void PrintPhase(const PhaseReport& phase) {
  std::printf(
      "gateway load: %s: %lld codepay in %.2f s = %.0f requests/s, latency p50 %.2f ms, p99 %.2f ms, "
      "max %.2f ms",
      phase.name.c_str(), static_cast<long long>(phase.requests), phase.seconds,
      static_cast<double>(phase.requests) / phase.seconds, phase.latency.Quantile(0.50) / 1e3,
      phase.latency.Quantile(0.99) / 1e3, phase.latency.max() / 1e3);
  if (phase.gateway_cpu_seconds > 0)
    std::printf(", gateway CPU %.3f ms per request",
                phase.gateway_cpu_seconds * 1e3 / static_cast<double>(phase.requests));
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseOptions(argc, argv);
  try {
    LoadRun run(options);
    const PhaseReport peak =
        run.Run("peak (" + std::to_string(options.connections) + " connections, closed loop)",
                options.peak_requests, 0);
    const PhaseReport paced =
        run.Run("paced (" + std::to_string(static_cast<long long>(options.rate)) + " requests/s offered)",
                options.paced_requests, options.rate);
    if (options.json) {
      std::printf("%s\n", json{{"peak", PhaseJson(peak)},
                               {"paced", PhaseJson(paced)},
                               {"connections", options.connections},
                               {"offered_rate", options.rate}}
                              .dump()
                              .c_str());
    } else {
      PrintPhase(peak);
      PrintPhase(paced);
    }
  } catch (const std::exception& error) {  // Boost's and the standard library's failures: one line
    Die(error.what());
  }
  return 0;
}
