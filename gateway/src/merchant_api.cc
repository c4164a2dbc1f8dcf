#include "gateway/merchant_api.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "api_common.h"
#include "core/time.h"
#include "gateway/media_proof.h"
#include "gateway/merchant_client.h"
#include "https_client.h"
#include "wechat_resources.h"
#include "zlib.h"

namespace ledger::gateway {

using nlohmann::json;

struct MerchantApi::Call {
  std::string method;
  std::string path;
  std::map<std::string, std::string, std::less<>> query;
  std::string body;
  std::string mchid;  // authenticated
  std::string host;   // the Host header the client sent (the base of a download_url)
};

namespace {

// Splits "path?a=1&b=2"; nullopt when a query pair is malformed, repeated or holds a value ValidNumber
// refuses.
std::optional<MerchantApi::Call> SplitTarget(std::string_view target) {
  MerchantApi::Call call;
  const size_t question = target.find('?');
  call.path = std::string(target.substr(0, question));
  if (question == std::string_view::npos) return call;
  std::string_view rest = target.substr(question + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const size_t equals = pair.find('=');
    if (equals == std::string_view::npos || !ValidNumber(pair.substr(equals + 1))) return std::nullopt;
    if (!call.query.emplace(std::string(pair.substr(0, equals)), std::string(pair.substr(equals + 1))).second)
      return std::nullopt;
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
  }
  return call;
}

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> segments;
  while (!path.empty()) {
    if (path.front() == '/') path.remove_prefix(1);
    const size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  }
  return segments;
}

bool Matches(const std::vector<std::string_view>& segments, std::initializer_list<std::string_view> pattern) {
  if (segments.size() != pattern.size()) return false;
  size_t i = 0;
  for (std::string_view part : pattern) {
    if (part != "*" && part != segments[i]) return false;
    ++i;
  }
  return true;
}

// The HTTP status and WeChat code a ledger rejection is answered with.
std::pair<int, const char*> WeChatError(std::string_view reason) {
  if (reason == "ORIGINAL_NOT_FOUND") return {404, "ORDER_NOT_EXIST"};
  if (reason == "DUPLICATE_COMMAND_MISMATCH") return {400, "INVALID_REQUEST"};
  if (reason == "INVALID_AMOUNT" || reason == "MALFORMED_COMMAND") return {400, "PARAM_ERROR"};
  if (reason == "ORDER_BUSY") return {429, "FREQUENCY_LIMITED"};
  if (reason == "DUPLICATE_ORDER") return {403, "OUT_TRADE_NO_USED"};
  if (reason == "ORDER_PAID") return {400, "ORDERPAID"};
  if (reason == "ORDER_CLOSED") return {400, "ORDER_CLOSED"};
  if (reason == "UNKNOWN_MERCHANT") return {403, "NO_AUTH"};
  if (reason == "PAYMENT_CODE_INVALID") return {400, "AUTH_CODE_INVALID"};
  if (reason == "PAYMENT_CODE_EXPIRED") return {400, "AUTHCODEEXPIRE"};
  if (reason == "INSUFFICIENT_FUNDS" || reason == "CREDIT_LIMIT_EXCEEDED") return {403, "NOT_ENOUGH"};
  return {400, "INVALID_REQUEST"};  // windows closed, already reversed or refunded, more than remains
}

// The order a refund names: by out_trade_no, else by transaction_id (none when neither is a valid number).
Result<std::optional<PaymentView>> OrderOfRefund(const LedgerPort& ledger, const std::string& mchid,
                                                 const json& body) {
  const auto text = [&body](const char* name) {
    return body.contains(name) && body[name].is_string() ? body[name].get<std::string>() : std::string();
  };
  const std::string order_no = text("out_trade_no");
  if (!order_no.empty()) {
    if (!ValidOrderNo(order_no)) return std::optional<PaymentView>();
    return ledger.Payment(mchid, order_no);
  }
  const std::string transaction_id = text("transaction_id");
  if (!ValidNumber(transaction_id)) return std::optional<PaymentView>();
  return ledger.PaymentByTransaction(transaction_id);
}

// gzip of `text` with no name and no time in its header, so the same bill always gives the same bytes (its
// hash_value is announced before it is downloaded).
std::string Gzip(const std::string& text) {
  z_stream stream{};
  constexpr int kGzipWindowBits = 15 + 16;
  if (deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, kGzipWindowBits, 9, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2 failed");
  std::string out(deflateBound(&stream, text.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int finished = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (finished != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

// A Host header fit to be the base of a URL: a name or address and a port, nothing else.
bool ValidHost(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  for (char c : host) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view(".-:[]").find(c) == std::string_view::npos)
      return false;
  }
  return true;
}

std::string QueryValue(const MerchantApi::Call& call, std::string_view name) {
  const auto found = call.query.find(name);
  return found == call.query.end() ? std::string() : found->second;
}

}  // namespace

MerchantApi::MerchantApi(MerchantApiOptions options, LedgerPort& ledger)
    : options_(std::move(options)),
      ledger_(ledger),
      nonces_(options_.nonce_capacity, options_.nonce_per_merchant, kTimestampWindowSeconds) {
  if (!options_.clock_s) options_.clock_s = SystemSeconds;
}

void MerchantApi::LogRefusal(const HttpRequest& request, const Status& why) {
  constexpr size_t kRefusalsLoggedPerSecond = 10;
  constexpr size_t kTargetLogged = 200;
  const int64_t now_s = options_.clock_s();
  if (now_s != refusal_log_second_) {
    if (refusals_unlogged_ > 0)
      spdlog::warn("gateway: {} more requests refused, not logged", refusals_unlogged_);
    refusal_log_second_ = now_s;
    refusals_logged_ = 0;
    refusals_unlogged_ = 0;
  }
  if (refusals_logged_ >= kRefusalsLoggedPerSecond) {
    ++refusals_unlogged_;
    return;
  }
  ++refusals_logged_;
  spdlog::warn("gateway: {} {} refused: {}", request.method.substr(0, 16),
               request.target.substr(0, kTargetLogged), why.ToString().substr(0, kTargetLogged));
}

Status MerchantApi::PersistNonces(const std::string& path) {
  return nonces_.Persist(path, options_.clock_s());
}

HttpResponse MerchantApi::Signed(int status, std::string body) const {
  HttpResponse response{status, std::move(body)};
  Result<std::vector<std::pair<std::string, std::string>>> headers = PlatformSignatureHeaders(
      *options_.platform_key, options_.platform_key_id, options_.clock_s(), response.body);
  if (!headers.ok()) {
    // Unsigned, so no SDK takes it for an answer: the merchant retries, or queries, later.
    spdlog::error("gateway: {}; answered 500 unsigned", headers.status().message());
    return {500, json{{"code", "SYSTEM_ERROR"}, {"message", "the answer could not be signed; retry"}}.dump()};
  }
  response.headers = std::move(headers).value();
  response.headers.emplace_back("Request-ID", WeChatNonce());
  return response;
}

HttpResponse MerchantApi::Error(int status, std::string_view code, std::string_view message) const {
  // Replace, not throw, on bytes that are not UTF-8 (a message may quote what a client sent).
  return Signed(status, json{{"code", code}, {"message", message}}.dump(-1, ' ', false,
                                                                        json::error_handler_t::replace));
}

std::optional<MerchantKey> MerchantApi::LookupKey(std::string_view serial_no) {
  Result<std::optional<MerchantKeyRecordView>> record = ledger_.MerchantKey(serial_no);
  if (!record.ok()) {
    spdlog::error("gateway: reading merchant key {}: {}", serial_no, record.status().ToString());
    return std::nullopt;
  }
  if (!record->has_value()) return std::nullopt;
  const MerchantKeyRecordView& view = **record;
  auto cached = keys_by_pem_.find(view.public_key_pem);
  if (cached == keys_by_pem_.end()) {
    Result<std::unique_ptr<ApiKey>> key = ApiKey::FromPem(view.public_key_pem);
    if (!key.ok()) return std::nullopt;  // a key the ledger recorded but no request can be checked with
    if (keys_by_pem_.size() >= options_.key_cache_max) keys_by_pem_.clear();
    cached = keys_by_pem_.emplace(view.public_key_pem, std::shared_ptr<const ApiKey>(std::move(*key))).first;
  }
  return MerchantKey{view.merchant, cached->second, view.revoked};
}

void MerchantApi::Handle(const HttpRequest& request, Respond respond) {
  const auto authorization = request.headers.find("authorization");
  const SignedRequest signed_request{
      request.method, request.target, request.body,
      authorization == request.headers.end() ? std::string_view() : std::string_view(authorization->second)};
  Result<Authorization> checked = CheckRequest(
      signed_request, options_.clock_s(), [this](std::string_view serial) { return LookupKey(serial); },
      nonces_);
  if (!checked.ok()) {
    LogRefusal(request, checked.status());
    // Not signed: anyone can ask for it, and each signature costs the server's thread about a millisecond.
    return respond({401, R"({"code":"SIGN_ERROR","message":"签名错误"})"});
  }
  std::optional<Call> call = SplitTarget(request.target);
  if (!call) return respond(Error(400, "PARAM_ERROR", "query string"));
  call->method = request.method;
  call->body = request.body;
  call->mchid = checked->mchid;
  const auto host = request.headers.find("host");
  if (host != request.headers.end()) call->host = host->second;
  Route(*call, std::move(respond));
}

void MerchantApi::Route(const Call& call, Respond respond) {
  const std::vector<std::string_view> path = Segments(call.path);
  const bool get = call.method == "GET";
  const bool post = call.method == "POST";
  const size_t last = path.empty() ? 0 : path.size() - 1;
  if (get && Matches(path, {"v3", "pay", "transactions", "out-trade-no", "*"}))
    return QueryPayment(call, path[last], std::move(respond));
  if (get && Matches(path, {"v3", "pay", "transactions", "id", "*"}))
    return QueryByTransaction(call, path[last], std::move(respond));
  if (post && Matches(path, {"v3", "pay", "transactions", "out-trade-no", "*", "reverse"}))
    return Reverse(call, path[last - 1], std::move(respond));
  if (post && Matches(path, {"v3", "refund", "domestic", "refunds"}))
    return RefundOrder(call, std::move(respond));
  for (const OrderReference& kind : kOrderReferences) {
    if (post && Matches(path, {"v3", "pay", "transactions", kind.endpoint}))
      return CreateWaitingOrder(call, kind, std::move(respond));
  }
  if (post && Matches(path, {"v3", "pay", "transactions", "codepay"}))
    return CodePay(call, std::move(respond));
  if (post && Matches(path, {"v3", "pay", "transactions", "out-trade-no", "*", "close"}))
    return CloseOrder(call, path[last - 1], std::move(respond));
  if (get && Matches(path, {"v3", "refund", "domestic", "refunds", "*"}))
    return QueryRefund(call, path[last], std::move(respond));
  if (get && Matches(path, {"v3", "bill", "tradebill"})) return TradeBill(call, std::move(respond));
  if (get && Matches(path, {"v3", "billdownload", "file"})) return DownloadBill(call, std::move(respond));
  respond(Error(404, "NOT_FOUND", "no such API: " + call.method + " " + call.path));
}

HttpResponse MerchantApi::PaymentAnswer(const PaymentView& payment) const {
  return Signed(200, TransactionResource(payment, options_.timezone_offset_minutes).dump());
}

void MerchantApi::QueryPayment(const Call& call, std::string_view order_no, Respond respond) {
  if (QueryValue(call, "mchid") != call.mchid) return respond(Error(403, "NO_AUTH", "mchid is not yours"));
  if (!ValidOrderNo(order_no)) return respond(Error(400, "PARAM_ERROR", "out_trade_no"));
  Result<std::optional<PaymentView>> payment = ledger_.Payment(call.mchid, order_no);
  if (!payment.ok()) return respond(Error(500, "SYSTEM_ERROR", "the ledger could not be read"));
  if (payment->has_value()) return respond(PaymentAnswer(**payment));
  Result<std::optional<OrderView>> order = ledger_.Order(call.mchid, order_no);
  if (!order.ok()) return respond(Error(500, "SYSTEM_ERROR", "the ledger could not be read"));
  if (!order->has_value()) return respond(Error(404, "ORDER_NOT_EXIST", "订单不存在"));
  respond(OrderAnswer(call.mchid, std::string(order_no), **order));
}

void MerchantApi::QueryByTransaction(const Call& call, std::string_view transaction_id, Respond respond) {
  if (QueryValue(call, "mchid") != call.mchid) return respond(Error(403, "NO_AUTH", "mchid is not yours"));
  if (!ValidNumber(transaction_id)) return respond(Error(400, "PARAM_ERROR", "transaction_id"));
  Result<std::optional<PaymentView>> payment = ledger_.PaymentByTransaction(transaction_id);
  if (!payment.ok()) return respond(Error(500, "SYSTEM_ERROR", "the ledger could not be read"));
  if (!payment->has_value()) return respond(Error(404, "ORDER_NOT_EXIST", "订单不存在"));
  if ((*payment)->merchant != call.mchid) return respond(Error(403, "NO_AUTH", "not your order"));
  respond(PaymentAnswer(**payment));
}

HttpResponse MerchantApi::Rejection(const CommandAnswer& answer) const {
  const auto [status, code] = WeChatError(answer.reason);
  const std::string message =
      answer.reason == "DUPLICATE_COMMAND_MISMATCH"
          ? "the number was used before with other parameters"
          : answer.reason + (answer.detail.empty() ? std::string() : ": " + answer.detail);
  return Error(status, code, message);
}

std::optional<HttpResponse> MerchantApi::CopyNotifyUrl(const json& body, json& command) const {
  if (!body.contains("notify_url")) return std::nullopt;
  // WeChat's bound on its length, and a URL the notifier can reach (https, a host name or IPv4 address).
  constexpr size_t kNotifyUrlBytesMax = 256;
  const bool usable = body["notify_url"].is_string() &&
                      body["notify_url"].get_ref<const std::string&>().size() <= kNotifyUrlBytesMax &&
                      ParseHttpsUrl(body["notify_url"].get_ref<const std::string&>()).ok();
  if (!usable)
    return Error(400, "PARAM_ERROR", "notify_url must be an https:// URL of at most 256 characters");
  command["notify_url"] = body["notify_url"];
  return std::nullopt;
}

std::optional<HttpResponse> MerchantApi::RefuseOrderAction(const Call& call,
                                                           std::string_view order_no) const {
  const json body = json::parse(call.body, nullptr, false);
  if (!body.is_object() || !body.contains("mchid") || !body["mchid"].is_string())
    return Error(400, "PARAM_ERROR", "body must be a JSON object with mchid");
  if (body["mchid"].get<std::string>() != call.mchid) return Error(403, "NO_AUTH", "mchid is not yours");
  if (!ValidOrderNo(order_no)) return Error(400, "PARAM_ERROR", "out_trade_no");
  return std::nullopt;
}

void MerchantApi::Reverse(const Call& call, std::string_view order_no, Respond respond) {
  if (std::optional<HttpResponse> refused = RefuseOrderAction(call, order_no))
    return respond(std::move(*refused));
  const std::string order(order_no);
  // The id names what is reversed: this payment, or the order while unpaid. With the order number alone, a
  // payment made after an unpaid order's closing lapsed would meet the old reversal as a duplicate and be
  // answered REVOKED while it stands.
  Result<std::optional<PaymentView>> payment = ledger_.Payment(call.mchid, order);
  if (!payment.ok()) return respond(Error(500, "SYSTEM_ERROR", "the ledger could not be read"));
  const std::optional<PaymentView> paid = *payment;
  const std::string target = paid ? paid->transaction_id : std::string("unpaid");
  const json command = {{"type", "reverse"},
                        {"command_id", "gw:reverse:" + call.mchid + ":" + order + ":" + target},
                        {"merchant", call.mchid},
                        {"merchant_order_no", order},
                        {"reason", "merchant reversal"}};
  SubmitThen(
      call.mchid, command.dump(),
      [this, mchid = call.mchid, order, paid, respond](const CommandAnswer& answer) {
        // Reversing a reversed order again: the same outcome.
        if (answer.kind == CommandAnswer::Kind::kAccepted || answer.reason.empty() ||
            answer.reason == "ALREADY_REVERSED") {
          return respond(Signed(
              200, json{{"mchid", mchid}, {"out_trade_no", order}, {"trade_state", "REVOKED"}}.dump()));
        }
        if (paid && (answer.reason == "REVERSAL_WINDOW_CLOSED" || answer.reason == "ALREADY_REFUNDED"))
          return RefundForReversal(mchid, *paid, answer, respond);
        respond(Rejection(answer));
      },
      respond);
}

// After its clearing date's cut-off a payment can no longer be cancelled (it is in that date's clearing): the
// reversal becomes a refund of all of it on today's clearing date, under a refund number no merchant can
// choose (':' is not in out_refund_no's alphabet), so a reversal asked again finds it.
void MerchantApi::RefundForReversal(const std::string& mchid, const PaymentView& paid,
                                    const CommandAnswer& refusal, Respond respond) {
  const std::string refund_no = "reversal:" + paid.transaction_id;
  const auto refunded = [this, mchid, order = paid.order_no](const CommandAnswer&) {
    return Signed(200, json{{"mchid", mchid}, {"out_trade_no", order}, {"trade_state", "REFUND"}}.dump());
  };
  // Made by this reversal asked before (whatever the reverse command answers now)?
  Result<std::optional<RefundView>> earlier = ledger_.Refund(mchid, refund_no);
  if (!earlier.ok()) return respond(Error(500, "SYSTEM_ERROR", "the ledger could not be read"));
  if (earlier->has_value()) return respond(refunded(refusal));
  if (refusal.reason == "ALREADY_REFUNDED") return respond(Rejection(refusal));  // the merchant's own refunds
  constexpr int64_t kNsPerSecond = 1'000'000'000;
  if (options_.clock_s() - paid.paid_at_ns / kNsPerSecond > options_.reversal_window_s)
    return respond(Error(400, "REVERSE_EXPIRE", "the payment is past the reversal window; refund it"));
  const json command = {{"type", "refund"},
                        {"command_id", "gw:reversal-refund:" + mchid + ":" + paid.transaction_id},
                        {"merchant", mchid},
                        {"merchant_order_no", paid.order_no},
                        {"refund_no", refund_no},
                        // All of it, always: the same reversal again is then the same command (a duplicate).
                        {"amount_minor", paid.order_amount_minor}};
  SubmitFor(mchid, command.dump(), refunded, std::move(respond));
}

void MerchantApi::SubmitThen(const std::string& mchid, std::string command_line,
                             std::function<void(const CommandAnswer&)> then, Respond respond) {
  {
    std::lock_guard lock(in_flight_mutex_);
    size_t& waiting = in_flight_[mchid];
    if (waiting >= options_.in_flight_per_merchant)
      return respond(Error(429, "FREQUENCY_LIMITED", "too many requests in flight"));
    ++waiting;
  }
  ledger_.Submit(std::move(command_line), [this, mchid, then = std::move(then),
                                           respond](Result<CommandAnswer> result) {
    {
      std::lock_guard lock(in_flight_mutex_);
      if (--in_flight_[mchid] == 0) in_flight_.erase(mchid);
    }
    if (!result.ok()) {
      spdlog::error("gateway: command for {}: {}", mchid, result.status().ToString());
      return respond(Error(500, "SYSTEM_ERROR", "the ledger did not answer; ask again with the same number"));
    }
    then(*result);
  });
}

void MerchantApi::SubmitFor(const std::string& mchid, std::string command_line, OnAnswer answer,
                            Respond respond, std::string_view success_reason) {
  SubmitThen(
      mchid, std::move(command_line),
      [this, answer = std::move(answer), respond,
       success_reason = std::string(success_reason)](const CommandAnswer& result) {
        if (result.kind == CommandAnswer::Kind::kAccepted || result.reason.empty() ||
            (!success_reason.empty() && result.reason == success_reason))
          return respond(answer(result));
        respond(Rejection(result));
      },
      respond);
}

void MerchantApi::RefundOrder(const Call& call, Respond respond) {
  const json body = json::parse(call.body, nullptr, false);
  const json* amount = body.is_object() && body.contains("amount") ? &body["amount"] : nullptr;
  if (amount == nullptr || !amount->is_object() || !body.contains("out_refund_no") ||
      !body["out_refund_no"].is_string() || !amount->contains("refund") ||
      !(*amount)["refund"].is_number_integer() || !amount->contains("total") ||
      !(*amount)["total"].is_number_integer())
    return respond(Error(400, "PARAM_ERROR", "out_refund_no, amount.refund and amount.total are required"));
  if (amount->contains("currency") && (*amount)["currency"] != kCurrency)
    return respond(Error(400, "PARAM_ERROR", "currency must be CNY"));
  const std::string refund_no = body["out_refund_no"].get<std::string>();
  if (!ValidNumber(refund_no)) return respond(Error(400, "PARAM_ERROR", "out_refund_no"));
  Result<std::optional<PaymentView>> payment = OrderOfRefund(ledger_, call.mchid, body);
  if (!payment.ok()) return respond(Error(500, "SYSTEM_ERROR", "the ledger could not be read"));
  if (!payment->has_value()) return respond(Error(404, "ORDER_NOT_EXIST", "订单不存在"));
  const PaymentView order = **payment;
  if (order.merchant != call.mchid) return respond(Error(403, "NO_AUTH", "not your order"));
  if ((*amount)["total"].get<int64_t>() != order.order_amount_minor)
    return respond(Error(400, "PARAM_ERROR", "amount.total is not the order's total"));
  json command = {{"type", "refund"},       {"command_id", "gw:refund:" + call.mchid + ":" + refund_no},
                  {"merchant", call.mchid}, {"merchant_order_no", order.order_no},
                  {"refund_no", refund_no}, {"amount_minor", (*amount)["refund"].get<int64_t>()}};
  if (std::optional<HttpResponse> refused = CopyNotifyUrl(body, command)) return respond(*refused);
  SubmitFor(
      call.mchid, command.dump(),
      [this, mchid = call.mchid, refund_no](const CommandAnswer&) {
        Result<std::optional<RefundView>> refund = ledger_.Refund(mchid, refund_no);
        if (!refund.ok() || !refund->has_value())
          return Error(500, "SYSTEM_ERROR", "the refund could not be read");
        Result<std::optional<PaymentView>> paid = ledger_.Payment(mchid, (*refund)->order_no);
        if (!paid.ok() || !paid->has_value())
          return Error(500, "SYSTEM_ERROR", "the order could not be read");
        return RefundAnswer(**refund, **paid);
      },
      std::move(respond));
}

HttpResponse MerchantApi::RefundAnswer(const RefundView& refund, const PaymentView& payment) const {
  return Signed(200, RefundResource(refund, payment, options_.timezone_offset_minutes).dump());
}

void MerchantApi::QueryRefund(const Call& call, std::string_view refund_no, Respond respond) {
  if (!ValidNumber(refund_no)) return respond(Error(400, "PARAM_ERROR", "out_refund_no"));
  Result<std::optional<RefundView>> refund = ledger_.Refund(call.mchid, refund_no);
  if (!refund.ok()) return respond(Error(500, "SYSTEM_ERROR", "the ledger could not be read"));
  if (!refund->has_value()) return respond(Error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"));
  Result<std::optional<PaymentView>> payment = ledger_.Payment(call.mchid, (*refund)->order_no);
  if (!payment.ok() || !payment->has_value())
    return respond(Error(500, "SYSTEM_ERROR", "the order could not be read"));
  respond(RefundAnswer(**refund, **payment));
}

Result<std::string> MerchantApi::BillBytes(const Call& call, int* status, std::string* code) {
  *status = 400;
  *code = "PARAM_ERROR";
  const Result<int> date = ParseDate(QueryValue(call, "bill_date"));
  if (!date.ok()) return Status::InvalidArgument("bill_date must be YYYY-MM-DD");
  const std::string tar_type = QueryValue(call, "tar_type");
  if (!tar_type.empty() && tar_type != "GZIP")
    return Status::InvalidArgument("tar_type must be GZIP or absent");
  const int64_t now_ns = options_.clock_s() * 1'000'000'000;
  if (*date > ClearingDate(now_ns, options_.timezone_offset_minutes, options_.clearing_cutoff_minutes)) {
    *code = "NO_STATEMENT_EXIST";
    return Status::InvalidArgument("no bill for a date that has not begun");
  }
  Result<std::string> bill = ledger_.TradeBill(call.mchid, *date);
  if (!bill.ok()) {
    *status = 500;
    *code = "SYSTEM_ERROR";
    spdlog::error("gateway: bill of {} for {}: {}", *date, call.mchid, bill.status().ToString());
    return Status::Internal("the bill could not be made");
  }
  return tar_type == "GZIP" ? Gzip(*bill) : *bill;
}

void MerchantApi::TradeBill(const Call& call, Respond respond) {
  const std::string bill_type = QueryValue(call, "bill_type");
  if (!bill_type.empty() && bill_type != "ALL")
    return respond(Error(400, "PARAM_ERROR", "bill_type must be ALL"));
  if (!ValidHost(call.host)) return respond(Error(400, "PARAM_ERROR", "a Host header is required"));
  int status = 0;
  std::string code;
  Result<std::string> bytes = BillBytes(call, &status, &code);
  if (!bytes.ok()) return respond(Error(status, code, bytes.status().message()));
  std::string url =
      "https://" + call.host + "/v3/billdownload/file?bill_date=" + QueryValue(call, "bill_date");
  if (!QueryValue(call, "tar_type").empty()) url += "&tar_type=" + QueryValue(call, "tar_type");
  respond(Signed(
      200, json{{"hash_type", "SHA1"}, {"hash_value", BillHash(*bytes)}, {"download_url", url}}.dump()));
}

void MerchantApi::DownloadBill(const Call& call, Respond respond) {
  int status = 0;
  std::string code;
  Result<std::string> bytes = BillBytes(call, &status, &code);
  if (!bytes.ok()) return respond(Error(status, code, bytes.status().message()));
  HttpResponse response{200, std::move(bytes).value()};
  response.content_type =
      QueryValue(call, "tar_type") == "GZIP" ? "application/gzip" : "text/csv; charset=utf-8";
  respond(std::move(response));
}

// An order no payment has come for yet: NOTPAY while it waits, CLOSED once closed or expired.
HttpResponse MerchantApi::OrderAnswer(const std::string& mchid, const std::string& order_no,
                                      const OrderView& order) const {
  const bool closed = order.closed || options_.clock_s() * 1'000'000'000 >= order.expires_at_ns;
  // A codepay waiting for its customer's confirmation is USERPAYING until then.
  const bool paying = !closed && !order.payment_code.empty();
  json body = {{"mchid", mchid},
               {"out_trade_no", order_no},
               {"trade_type", TradeType(order.channel)},
               {"trade_state", closed ? "CLOSED" : (paying ? "USERPAYING" : "NOTPAY")},
               {"trade_state_desc", closed ? "已关闭" : (paying ? "用户支付中" : "未支付")},
               {"amount", {{"total", order.amount_minor}, {"currency", kCurrency}}}};
  return Signed(200, body.dump());
}

struct MerchantApi::OrderRequest {
  json body;
  std::string description;
  std::string order_no;
  int64_t total = 0;
};

std::optional<HttpResponse> MerchantApi::ReadOrderRequest(const Call& call, OrderRequest& order) const {
  order.body = json::parse(call.body, nullptr, false);
  const json& body = order.body;
  const auto text = [&body](const char* name) {
    return body.is_object() && body.contains(name) && body[name].is_string() ? body[name].get<std::string>()
                                                                             : std::string();
  };
  const json* amount = body.is_object() && body.contains("amount") ? &body["amount"] : nullptr;
  if (amount == nullptr || !amount->is_object() || !amount->contains("total") ||
      !(*amount)["total"].is_number_integer() || text("description").empty() ||
      !ValidOrderNo(text("out_trade_no")))
    return Error(400, "PARAM_ERROR", "description, out_trade_no and amount.total are required");
  if (text("mchid") != call.mchid) return Error(403, "NO_AUTH", "mchid is not yours");
  if (amount->contains("currency") && (*amount)["currency"] != kCurrency)
    return Error(400, "PARAM_ERROR", "currency must be CNY");
  order.description = text("description");
  order.order_no = text("out_trade_no");
  order.total = (*amount)["total"].get<int64_t>();
  return std::nullopt;
}

void MerchantApi::CreateWaitingOrder(const Call& call, const OrderReference& kind, Respond respond) {
  OrderRequest order;
  if (std::optional<HttpResponse> refused = ReadOrderRequest(call, order))
    return respond(std::move(*refused));
  int64_t expires_at_ns = (options_.clock_s() + options_.order_expiry_default_s) * 1'000'000'000;
  // The same request again must be the same command: an order made before keeps the default expiry its
  // first request got (a clock second later would make it another command, DUPLICATE_COMMAND_MISMATCH).
  Result<std::optional<OrderView>> earlier = ledger_.Order(call.mchid, order.order_no);
  if (!earlier.ok()) return respond(Error(500, "SYSTEM_ERROR", "the ledger could not be read"));
  if (earlier->has_value()) expires_at_ns = (*earlier)->expires_at_ns;
  if (order.body.contains("time_expire")) {
    const Result<int64_t> parsed = order.body["time_expire"].is_string()
                                       ? ParseIso8601(order.body["time_expire"].get<std::string>())
                                       : Result<int64_t>(Status::InvalidArgument("not text"));
    if (!parsed.ok()) return respond(Error(400, "PARAM_ERROR", "time_expire: " + parsed.status().message()));
    expires_at_ns = *parsed;
  }
  json command = {{"type", "create_order"},
                  {"command_id", "gw:order:" + call.mchid + ":" + order.order_no},
                  {"merchant", call.mchid},
                  {"merchant_order_no", order.order_no},
                  {"amount_minor", order.total},
                  {"channel", kind.channel},
                  {"description", order.description},
                  {"expires_at", FormatIso8601(expires_at_ns, options_.timezone_offset_minutes)}};
  if (std::optional<HttpResponse> refused = CopyNotifyUrl(order.body, command)) return respond(*refused);
  SubmitFor(
      call.mchid, command.dump(-1, ' ', false, json::error_handler_t::replace),
      [this, &kind, mchid = call.mchid, order_no = order.order_no](const CommandAnswer&) {
        // What the customer's front end reads (the QR code, the H5 link, the app's prepay id) and pays
        // through the customer endpoints.
        return Signed(200, json{{kind.field, OrderLink(kind, mchid, order_no)}}.dump());
      },
      std::move(respond));
}

// The customer's payment code pays at once within the limit of the medium that issued it; above it (the
// amount is known only at the scan) the order waits for the customer to confirm with a stronger medium:
// USERPAYING, which the merchant polls and reverses after its own timeout, as with WeChat's codepay.
void MerchantApi::CodePay(const Call& call, Respond respond) {
  OrderRequest order;
  if (std::optional<HttpResponse> refused = ReadOrderRequest(call, order))
    return respond(std::move(*refused));
  const json* payer = order.body.contains("payer") ? &order.body["payer"] : nullptr;
  const std::string auth_code = payer != nullptr && payer->is_object() && payer->contains("auth_code") &&
                                        (*payer)["auth_code"].is_string()
                                    ? (*payer)["auth_code"].get<std::string>()
                                    : std::string();
  if (auth_code.size() != 18 || auth_code.find_first_not_of("0123456789") != std::string::npos)
    return respond(Error(400, "PARAM_ERROR", "payer.auth_code must be the 18 digits of a payment code"));
  // Asked again once the customer confirmed: the payment (the order's own commands would say USERPAYING).
  Result<std::optional<PaymentView>> paid = ledger_.Payment(call.mchid, order.order_no);
  if (!paid.ok()) return respond(Error(500, "SYSTEM_ERROR", "the ledger could not be read"));
  if (paid->has_value()) return respond(PaymentAnswer(**paid));
  const std::string code_id = PaymentCodeId(options_.payment_code_key, auth_code);
  Result<std::optional<PaymentCodeView>> code = ledger_.PaymentCode(code_id);
  if (!code.ok()) return respond(Error(500, "SYSTEM_ERROR", "the ledger could not be read"));
  if (!code->has_value()) return respond(Error(400, "AUTH_CODE_INVALID", "no such payment code"));
  // The ledger refuses it too (PAYMENT_CODE_INVALID): a scan of a code reserved for another order is refused
  // before the ledger is asked to pay.
  const bool waits_elsewhere = !(*code)->waiting_order.empty() && ((*code)->waiting_merchant != call.mchid ||
                                                                   (*code)->waiting_order != order.order_no);
  if (waits_elsewhere)
    return respond(Error(400, "AUTH_CODE_INVALID", "the payment code waits on another order"));
  const json pay = {{"type", "pay"},
                    {"command_id", "gw:codepay:" + call.mchid + ":" + order.order_no},
                    {"merchant", call.mchid},
                    {"merchant_order_no", order.order_no},
                    {"customer", (*code)->customer},
                    {"funding", "own_account"},
                    {"account", (*code)->account},
                    {"channel", "qr_customer_presented"},
                    {"medium", (*code)->medium},
                    {"order_amount_minor", order.total},
                    {"payment_code", code_id}};
  order.body["payer"]["auth_code"] = code_id;  // what waits with the order: the code's id, never the code
  SubmitThen(
      call.mchid, pay.dump(-1, ' ', false, json::error_handler_t::replace),
      [this, call, order, code = **code, respond](const CommandAnswer& answer) {
        const bool paid = answer.kind == CommandAnswer::Kind::kAccepted || answer.reason.empty();
        if (!paid && answer.reason.starts_with("LIMIT_")) return WaitForCustomer(call, order, code, respond);
        if (!paid) return respond(Rejection(answer));
        Result<std::optional<PaymentView>> payment = ledger_.Payment(call.mchid, order.order_no);
        if (!payment.ok() || !payment->has_value())
          return respond(Error(500, "SYSTEM_ERROR", "the payment could not be read back; query it"));
        respond(PaymentAnswer(**payment));
      },
      respond);
}

// The order waits on the code, which its customer's shard reserves for it; the order's expiry follows from
// the code's, so the merchant asking again sends the ledger the same command.
void MerchantApi::WaitForCustomer(const Call& call, const OrderRequest& order, const PaymentCodeView& code,
                                  Respond respond) {
  const int64_t expires_at_ns = code.expires_at_ns + options_.userpaying_expiry_s * 1'000'000'000;
  const json command = {{"type", "create_order"},
                        {"command_id", "gw:codepay-wait:" + call.mchid + ":" + order.order_no},
                        {"merchant", call.mchid},
                        {"merchant_order_no", order.order_no},
                        {"amount_minor", order.total},
                        {"channel", "qr_customer_presented"},
                        {"description", order.description},
                        {"expires_at", FormatIso8601(expires_at_ns, options_.timezone_offset_minutes)},
                        {"payment_code", order.body["payer"]["auth_code"]},
                        {"payment_code_customer", code.customer}};
  SubmitFor(
      call.mchid, command.dump(-1, ' ', false, json::error_handler_t::replace),
      [this, mchid = call.mchid, order_no = order.order_no](const CommandAnswer&) {
        return Signed(
            202, json{{"mchid", mchid}, {"out_trade_no", order_no}, {"trade_state", "USERPAYING"}}.dump());
      },
      std::move(respond));
}

void MerchantApi::CloseOrder(const Call& call, std::string_view order_no, Respond respond) {
  if (std::optional<HttpResponse> refused = RefuseOrderAction(call, order_no))
    return respond(std::move(*refused));
  const json command = {{"type", "close_order"},
                        {"command_id", "gw:close:" + call.mchid + ":" + std::string(order_no)},
                        {"merchant", call.mchid},
                        {"merchant_order_no", std::string(order_no)}};
  SubmitFor(
      call.mchid, command.dump(), [this](const CommandAnswer&) { return Signed(204, ""); },
      std::move(respond));
}

}  // namespace ledger::gateway
