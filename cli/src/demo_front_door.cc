#include "demo_front_door.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "cli_common.h"
#include "core/time.h"
#include "gateway/https_connection.h"
#include "gateway/media_proof.h"
#include "gateway/merchant_client.h"

extern char** environ;

namespace ledger::cli {
namespace {

using nlohmann::json;
constexpr auto kChildDeadline = std::chrono::seconds(120);
constexpr auto kPollInterval = std::chrono::milliseconds(50);

// The demo's amounts (fen): the codepay, the native order and the part of it refunded.
constexpr int64_t kCodepayAmount = 1'200;
constexpr int64_t kNativeAmount = 8'800;
constexpr int64_t kRefundAmount = 2'000;

// Starts this program with `args`, its standard output to `out_path` and its errors appended to `log_path`.
Result<pid_t> Spawn(const std::string& program, const std::vector<std::string>& args,
                    const std::string& out_path, const std::string& log_path) {
  std::vector<std::string> words = {program};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return Status::IoError("cannot start " + program + " " + args.front());
  return pid;
}

// Waits up to `deadline` for `pid`; its exit code, or -1 when it did not end in time (it is killed then).
int WaitFor(pid_t pid, std::chrono::steady_clock::duration deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  for (;;) {
    const pid_t waited = ::waitpid(pid, &status, WNOHANG);
    if (waited == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (waited < 0 && errno != EINTR) return -1;  // not ours to wait for: no exit code to trust
    if (std::chrono::steady_clock::now() >= until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

// Runs one of this program's commands to its end. Errors: IoError naming the command and the log.
Status RunStep(const std::string& program, const std::vector<std::string>& args, const std::string& folder) {
  Result<pid_t> pid = Spawn(program, args, folder + "/" + args.front() + ".out", folder + "/programs.log");
  if (!pid.ok()) return pid.status();
  const int exit_code = WaitFor(*pid, kChildDeadline);
  if (exit_code != 0)
    return Status::IoError("ledger " + args.front() + " exited " + std::to_string(exit_code) + " (see " +
                           folder + "/programs.log)");
  return Status::Ok();
}

// `ledger gateway` on a free port of 127.0.0.1, stopped (SIGTERM, by its process id) when this goes.
class GatewayChild {
 public:
  ~GatewayChild() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    WaitFor(pid_, std::chrono::seconds(30));
  }

  Status Start(const std::string& program, const std::string& data_dir, const std::string& folder) {
    const std::string out = folder + "/gateway.out";
    Result<pid_t> pid = Spawn(program, {"gateway", "--data", data_dir, "--listen", "127.0.0.1:0"}, out,
                              folder + "/programs.log");
    if (!pid.ok()) return pid.status();
    pid_ = *pid;
    const auto until = std::chrono::steady_clock::now() + kChildDeadline;
    while (std::chrono::steady_clock::now() < until) {
      Result<std::string> printed = ReadWholeFile(out);
      const size_t at = printed.ok() ? printed->find("gateway=https://127.0.0.1:") : std::string::npos;
      const size_t end = printed.ok() ? printed->find('\n', at) : std::string::npos;
      if (at != std::string::npos && end != std::string::npos) {
        url_ = printed->substr(at + 8, end - at - 8);
        port_ = url_.substr(url_.rfind(':') + 1);
        return Status::Ok();
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return Status::IoError("ledger gateway stopped at its start (see " + folder + "/programs.log)");
      }
      std::this_thread::sleep_for(kPollInterval);
    }
    return Status::IoError("ledger gateway printed no address in time");
  }

  const std::string& url() const { return url_; }
  const std::string& port() const { return port_; }

 private:
  pid_t pid_ = 0;
  std::string url_;
  std::string port_;
};

// The requests of the front door, as the merchant's system and the bank's app send them.
class FrontDoorRun {
 public:
  FrontDoorRun(const FrontDoorPlan& plan, gateway::MerchantIdentity merchant,
               std::unique_ptr<gateway::HttpsConnection> merchant_connection,
               std::unique_ptr<gateway::HttpsConnection> channel_connection, std::string device_key_pem)
      : plan_(plan),
        merchant_(std::move(merchant)),
        merchant_connection_(std::move(merchant_connection)),
        channel_connection_(std::move(channel_connection)),
        device_key_pem_(std::move(device_key_pem)) {}

  // Every step must come out as a merchant expects it to; the first that does not is the error.
  Status Run(FrontDoorReport* report) {
    report->bill_date =
        ClearingDate(SystemNowNs(), plan_.timezone_offset_minutes, plan_.clearing_cutoff_minutes);
    LEDGER_RETURN_IF_ERROR(RunSteps(report));
    const std::pair<const char*, std::pair<const std::string*, const char*>> expected[] = {
        {"codepay", {&report->codepay_state, "SUCCESS"}},
        {"customer pay", {&report->native_state, "SUCCESS"}},
        {"query", {&report->query_state, "SUCCESS"}},
        {"refund", {&report->refund_status, "SUCCESS"}},
        {"reverse", {&report->reverse_state, "REVOKED"}}};
    for (const auto& [step, state] : expected) {
      if (*state.first != state.second)
        return Status::InvalidArgument(std::string(step) + " answered '" + *state.first + "', not " +
                                       state.second);
    }
    return Status::Ok();
  }

 private:
  Status RunSteps(FrontDoorReport* report) {
    Result<json> code = IssuePaymentCode();
    if (!code.ok()) return code.status();
    Result<json> codepay =
        Merchant("codepay", "POST", "/v3/pay/transactions/codepay",
                 Order("DEMO-CODEPAY-1", kCodepayAmount, {{"payer", {{"auth_code", (*code)["auth_code"]}}}}));
    if (!codepay.ok()) return codepay.status();
    report->codepay_state = codepay->value("trade_state", "");
    Result<json> native = Merchant("native order", "POST", "/v3/pay/transactions/native",
                                   Order("DEMO-NATIVE-1", kNativeAmount, {}));
    if (!native.ok()) return native.status();
    Result<json> paid = PayNative(native->value("code_url", ""));
    if (!paid.ok()) return paid.status();
    report->native_state = paid->value("trade_state", "");
    Result<json> query = Merchant(
        "query", "GET", "/v3/pay/transactions/out-trade-no/DEMO-NATIVE-1?mchid=" + merchant_.mchid, "");
    if (!query.ok()) return query.status();
    report->query_state = query->value("trade_state", "");
    const json refund_request = {
        {"out_trade_no", "DEMO-NATIVE-1"},
        {"out_refund_no", "DEMO-REFUND-1"},
        {"amount", {{"refund", kRefundAmount}, {"total", kNativeAmount}, {"currency", "CNY"}}}};
    Result<json> refund = Merchant("refund", "POST", "/v3/refund/domestic/refunds", refund_request.dump());
    if (!refund.ok()) return refund.status();
    report->refund_status = refund->value("status", "");
    Result<json> reverse =
        Merchant("reverse", "POST", "/v3/pay/transactions/out-trade-no/DEMO-CODEPAY-1/reverse",
                 json{{"mchid", merchant_.mchid}}.dump());
    if (!reverse.ok()) return reverse.status();
    report->reverse_state = reverse->value("trade_state", "");
    return DownloadBill(report);
  }

 public:
  int merchant_requests() const { return merchant_requests_; }
  int customer_requests() const { return customer_requests_; }

 private:
  std::string Order(const std::string& order_no, int64_t amount, json extra) const {
    json order = {{"mchid", merchant_.mchid},
                  {"description", "ledger demo"},
                  {"out_trade_no", order_no},
                  {"amount", {{"total", amount}, {"currency", "CNY"}}}};
    if (extra.is_object()) order.update(extra);
    return order.dump();
  }

  // A signed request whose answer must be 200 and JSON.
  Result<json> Merchant(const char* step, const char* method, const std::string& target,
                        const std::string& body) {
    ++merchant_requests_;
    Result<gateway::HttpAnswer> answer =
        gateway::CallSigned(*merchant_connection_, merchant_, method, target, body);
    return Expect200(step, std::move(answer));
  }

  Result<json> Customer(const char* step, const std::string& target, const json& body) {
    ++customer_requests_;
    return Expect200(step, channel_connection_->Send("POST", target, body.dump(), {}));
  }

  static Result<json> Expect200(const char* step, Result<gateway::HttpAnswer> answer) {
    if (!answer.ok()) return answer.status();
    if (answer->status != 200)
      return Status::InvalidArgument(std::string(step) + ": HTTP " + std::to_string(answer->status) + " " +
                                     answer->body.substr(0, 200));
    json parsed = json::parse(answer->body, nullptr, false);
    if (!parsed.is_object()) return Status::InvalidArgument(std::string(step) + ": the answer is not JSON");
    return parsed;
  }

  Result<json> Proven(const std::string& digest) const {
    Result<std::string> signature = gateway::SignMediumProof(device_key_pem_, digest);
    if (!signature.ok()) return Status::InvalidArgument("the device key: " + signature.status().message());
    return json{{"customer", plan_.customer},
                {"account", plan_.account},
                {"funding", "own_account"},
                {"medium", "fingerprint"},
                {"proof", {{"signature", *signature}}}};
  }

  // The customer's app shows a payment code: the fingerprint device signs the code request's digest.
  Result<json> IssuePaymentCode() {
    const int64_t now_s = SystemNowNs() / 1'000'000'000;
    Result<json> request = Proven(gateway::PaymentCodeDigest(plan_.customer, plan_.account, now_s));
    if (!request.ok()) return request.status();
    (*request)["timestamp"] = now_s;
    return Customer("payment code", "/customer/v1/payment-codes", *request);
  }

  // The customer scans the native order's code_url: the app looks the order up and signs its digest.
  Result<json> PayNative(const std::string& code_url) {
    Result<json> order =
        Customer("order lookup", "/customer/v1/orders/lookup",
                 {{"customer", plan_.customer}, {"account", plan_.account}, {"code_url", code_url}});
    if (!order.ok()) return order.status();
    Result<json> request = Proven(order->value("payment_digest", ""));
    if (!request.ok()) return request.status();
    (*request)["code_url"] = code_url;
    return Customer("customer pay", "/customer/v1/orders/pay", *request);
  }

  // The bill of the clearing date the payments were made on (taken before the first of them).
  Status DownloadBill(FrontDoorReport* report) {
    Result<json> bill =
        Merchant("trade bill", "GET",
                 "/v3/bill/tradebill?bill_date=" + FormatDate(report->bill_date) + "&bill_type=ALL", "");
    if (!bill.ok()) return bill.status();
    const std::string url = bill->value("download_url", "");
    const size_t path = url.find("/v3/");
    if (path == std::string::npos) return Status::InvalidArgument("trade bill: no download_url");
    ++merchant_requests_;
    Result<gateway::HttpAnswer> file = gateway::CallSigned(
        *merchant_connection_, merchant_, "GET", url.substr(path), "", gateway::SignedAnswer::kDownload);
    if (!file.ok()) return file.status();
    if (file->status != 200)
      return Status::InvalidArgument("bill download: HTTP " + std::to_string(file->status));
    if (gateway::BillHash(file->body) != bill->value("hash_value", ""))
      return Status::Corruption("the downloaded bill is not the one whose hash the platform signed");
    report->bill_bytes = static_cast<int64_t>(file->body.size());
    report->bill_file = plan_.data_dir + "/front-door/tradebill-" + merchant_.mchid + "-" +
                        FormatDate(report->bill_date) + ".csv";
    std::ofstream out(report->bill_file, std::ios::binary | std::ios::trunc);
    out << file->body;
    out.close();
    if (!out) return Status::IoError("cannot write " + report->bill_file);
    return Status::Ok();
  }

  const FrontDoorPlan& plan_;
  gateway::MerchantIdentity merchant_;
  std::unique_ptr<gateway::HttpsConnection> merchant_connection_;
  std::unique_ptr<gateway::HttpsConnection> channel_connection_;
  std::string device_key_pem_;
  int merchant_requests_ = 0;
  int customer_requests_ = 0;
};

}  // namespace

Result<FrontDoorReport> DriveFrontDoor(const FrontDoorPlan& plan) {
  const std::string folder = plan.data_dir + "/front-door";
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (error) return Status::IoError("cannot make " + folder + ": " + error.message());
  const std::string kit = folder + "/kit-" + plan.merchant;
  const std::string device = folder + "/" + plan.customer + "-fingerprint";
  Status step =
      RunStep(plan.ledger_program,
              {"merchant-keys", "--data", plan.data_dir, "--merchant", plan.merchant, "--out", kit}, folder);
  if (step.ok())
    step = RunStep(plan.ledger_program,
                   {"customer-enroll", "--data", plan.data_dir, "--customer", plan.customer, "--medium",
                    "fingerprint", "--out", device},
                   folder);
  if (!step.ok()) return step;
  Result<gateway::MerchantIdentity> merchant = gateway::LoadMerchantIdentity(kit, plan.merchant);
  if (!merchant.ok()) return merchant.status();
  Result<std::string> device_key = ReadWholeFile(device + "/device_key.pem");
  if (!device_key.ok()) return device_key.status();

  GatewayChild gateway_child;
  if (Status started = gateway_child.Start(plan.ledger_program, plan.data_dir, folder); !started.ok())
    return started;
  const std::string tls = plan.data_dir + "/gateway/tls";
  gateway::HttpsEndpoint endpoint{"127.0.0.1", gateway_child.port(), tls + "/ca.pem", "", ""};
  Result<std::unique_ptr<gateway::HttpsConnection>> to_merchant_api =
      gateway::HttpsConnection::Open(endpoint);
  endpoint.client_cert_file = tls + "/channel-client.pem";
  endpoint.client_key_file = tls + "/channel-client.key";
  Result<std::unique_ptr<gateway::HttpsConnection>> as_channel = gateway::HttpsConnection::Open(endpoint);
  if (!to_merchant_api.ok()) return to_merchant_api.status();
  if (!as_channel.ok()) return as_channel.status();

  FrontDoorRun run(plan, std::move(merchant).value(), std::move(to_merchant_api).value(),
                   std::move(as_channel).value(), std::move(device_key).value());
  FrontDoorReport report;
  if (Status done = run.Run(&report); !done.ok()) return done;
  report.gateway_url = gateway_child.url();
  report.merchant_requests = run.merchant_requests();
  report.customer_requests = run.customer_requests();
  return report;
}

}  // namespace ledger::cli
