// The merchant API: WeChat Pay API v3's paths, field names, states and error bodies over the ledger, so that
// a merchant's existing SDK works with only the base URL and keys changed. Every request is checked first
// (wechat_signature.h: CheckRequest; any failure is 401 SIGN_ERROR) and every answer is signed with the
// platform key (Wechatpay-Serial, -Signature, -Timestamp, -Nonce, -Signature-Type). Served today:
//   POST /v3/pay/transactions/native                               an order the customer pays by its code_url
//   POST /v3/pay/transactions/h5, /app                             the same by its h5_url, its prepay_id
//   POST /v3/pay/transactions/codepay                              a payment by the customer's payment code
//   POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close    close an unpaid order
//   GET  /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=   query by the merchant's order number
//   GET  /v3/pay/transactions/id/{transaction_id}?mchid=           query by the ledger's transaction id
//   POST /v3/pay/transactions/out-trade-no/{out_trade_no}/reverse  reversal (冲正)
//   POST /v3/refund/domestic/refunds                               refund (partial or full)
//   GET  /v3/refund/domestic/refunds/{out_refund_no}               query a refund
//   GET  /v3/bill/tradebill?bill_date=&bill_type=ALL[&tar_type=GZIP]  the trade bill's download_url and SHA1
//   GET  /v3/billdownload/file?bill_date=&tar_type=                 the bill itself (unsigned, as WeChat's)
// A merchant reaches only its own orders (403 NO_AUTH otherwise). Money requests are idempotent on (mchid,
// out_trade_no) and (mchid, out_refund_no) through the ledger's command ids: the same request again gets the
// same answer, the same number with other parameters is 400 INVALID_REQUEST. At most in_flight_per_merchant
// commands of one merchant wait for the ledger at once (429 FREQUENCY_LIMITED beyond).
// Thread-safety: Handle runs on the server's thread only; answers to commands are finished on the threads the
// port calls back on, several at once behind PooledAnswers: they touch only immutable or locked state.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/https_server.h"
#include "gateway/ledger_port.h"
#include "gateway/nonce_cache.h"
#include "gateway/wechat_signature.h"

namespace ledger::gateway {

struct OrderReference;  // gateway/src/api_common.h

struct MerchantApiOptions {
  std::shared_ptr<const ApiKey> platform_key;  // private: signs every answer
  std::string platform_key_id;                 // Wechatpay-Serial (the SDK's public_key_id)
  int timezone_offset_minutes = 480;           // of the times in answers (RFC 3339 with offset)
  int clearing_cutoff_minutes = 23 * 60;       // which clearing date is today's (bills of later ones: none)
  size_t nonce_capacity = 1'000'000;
  size_t nonce_per_merchant = 100'000;
  size_t in_flight_per_merchant = 64;
  size_t key_cache_max = 4096;                // parsed merchant keys kept (by PEM); cleared when full
  int64_t order_expiry_default_s = 2 * 3600;  // an order without time_expire waits this long (WeChat's 2 h)
  // A codepay above its code's medium limit waits this long after the code's own expiry for the customer to
  // confirm (USERPAYING); the merchant reverses it when its own timeout passes first.
  int64_t userpaying_expiry_s = 5 * 60;
  // A payment may be reversed this long after it was made (WeChat's 7 days); on its own clearing date the
  // reversal cancels it, later it refunds it (REVERSE_EXPIRE beyond).
  int64_t reversal_window_s = 7 * 24 * 3600;
  std::string payment_code_key;           // customer_kit.h: EnsureGatewayKey (media_proof.h: PaymentCodeId)
  std::function<int64_t()> clock_s = {};  // seconds since the epoch; the system clock when empty
};

class MerchantApi {
 public:
  MerchantApi(MerchantApiOptions options, LedgerPort& ledger);
  // Journals the nonces in `path` (NonceCache::Persist), before the first request. Errors: as Persist.
  Status PersistNonces(const std::string& path);
  // Answers one request whose path starts with /v3/.
  void Handle(const HttpRequest& request, Respond respond);

  // The parts of a request past its signature check, for the route handlers.
  struct Call;

 private:
  std::optional<MerchantKey> LookupKey(std::string_view serial_no);
  // Logs a refused request: at most 10 a second, each cut to 200 bytes (refusals cost an attacker nothing).
  void LogRefusal(const HttpRequest& request, const Status& why);
  HttpResponse Signed(int status, std::string body) const;
  HttpResponse Error(int status, std::string_view code, std::string_view message) const;
  void Route(const Call& call, Respond respond);
  void QueryPayment(const Call& call, std::string_view order_no, Respond respond);
  // A native, H5 or app order (the kind of link the customer's front end gets).
  void CreateWaitingOrder(const Call& call, const OrderReference& kind, Respond respond);
  // The fields a native or codepay order carries; or the error answer.
  struct OrderRequest;
  std::optional<HttpResponse> ReadOrderRequest(const Call& call, OrderRequest& order) const;
  void CodePay(const Call& call, Respond respond);
  // A codepay the code's medium limit refused: an order that waits for the customer to confirm it.
  void WaitForCustomer(const Call& call, const OrderRequest& order, const PaymentCodeView& code,
                       Respond respond);
  void CloseOrder(const Call& call, std::string_view order_no, Respond respond);
  HttpResponse OrderAnswer(const std::string& mchid, const std::string& order_no,
                           const OrderView& order) const;
  void QueryByTransaction(const Call& call, std::string_view transaction_id, Respond respond);
  // Copies the request's notify_url into its command; the refusal when it is there but not text.
  std::optional<HttpResponse> CopyNotifyUrl(const nlohmann::json& body, nlohmann::json& command) const;
  // The refusal of a reverse or close whose body does not name the caller as mchid, or whose order number is
  // not one; nullopt when it may go on.
  std::optional<HttpResponse> RefuseOrderAction(const Call& call, std::string_view order_no) const;
  void Reverse(const Call& call, std::string_view order_no, Respond respond);
  // The reversal of a payment whose clearing date has ended (`refusal`: the reverse command's): a full
  // refund.
  void RefundForReversal(const std::string& mchid, const PaymentView& paid, const CommandAnswer& refusal,
                         Respond respond);
  void RefundOrder(const Call& call, Respond respond);
  void QueryRefund(const Call& call, std::string_view refund_no, Respond respond);
  void TradeBill(const Call& call, Respond respond);
  void DownloadBill(const Call& call, Respond respond);
  // The bill a tradebill or billdownload request names, as it is downloaded (gzip when tar_type is GZIP), or
  // the error answer.
  Result<std::string> BillBytes(const Call& call, int* status, std::string* code);
  // Sends a command for the merchant and answers with `answer` once it is durable and accepted (or its
  // rejection reason is `success_reason`), with the rejection otherwise (429 when the merchant has too many
  // waiting, 500 when the ledger failed).
  using OnAnswer = std::function<HttpResponse(const CommandAnswer&)>;
  void SubmitFor(const std::string& mchid, std::string command_line, OnAnswer answer, Respond respond,
                 std::string_view success_reason = {});
  // Sends a command for the merchant; `then` gets every answer, accepted or not (429 and 500 as SubmitFor).
  void SubmitThen(const std::string& mchid, std::string command_line,
                  std::function<void(const CommandAnswer&)> then, Respond respond);
  HttpResponse PaymentAnswer(const PaymentView& payment) const;
  HttpResponse RefundAnswer(const RefundView& refund, const PaymentView& payment) const;
  HttpResponse Rejection(const CommandAnswer& answer) const;

  MerchantApiOptions options_;
  LedgerPort& ledger_;
  NonceCache nonces_;
  std::map<std::string, std::shared_ptr<const ApiKey>, std::less<>> keys_by_pem_;
  int64_t refusal_log_second_ = 0;
  size_t refusals_logged_ = 0;
  size_t refusals_unlogged_ = 0;
  std::mutex in_flight_mutex_;
  std::map<std::string, size_t, std::less<>> in_flight_;
};

}  // namespace ledger::gateway
