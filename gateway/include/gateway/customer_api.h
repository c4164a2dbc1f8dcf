// The customer API: the bank's own front ends (app, H5 and SDK backends) act for an authenticated customer,
// who proves the authentication medium of each payment (media_proof.h); the ledger's per-medium limits then
// apply to the proven medium. Reachable only over mutual TLS with the channel client certificate (401
// CHANNEL_CERTIFICATE_REQUIRED otherwise). JSON in, JSON out; errors as {"code","message"}. Served:
//   POST /customer/v1/orders/lookup   {"customer","account","code_url"}: the order, its payment digest and
//                                     OCRA challenge (what the customer's medium signs or answers)
//   POST /customer/v1/sms-challenge   {"customer","account","code_url"}: sends the payment's SMS code to the
//                                     enrolled phone (an outbox file: one JSON line per message)
//   POST /customer/v1/orders/pay      {"customer","account","funding","medium","proof","code_url",
//                                     "points","coupon"[,"device_signature"]}: pays the order; proof is
//                                     {"code"} (otp_card, password_device, sms), {"signature"} (u_shield,
//                                     fingerprint), {} (password_free, with device_signature by the device
//                                     key)
//   POST /customer/v1/payment-codes   {"customer","account","funding","medium","proof","timestamp"}: a
//   payment
//                                     code (auth_code: 18 digits, single use, 60 s) the merchant scans
//                                     (codepay), its medium proven over media_proof.h's PaymentCodeDigest
//   POST /customer/v1/payments/{payment_id}/confirm  {"customer","account","medium","proof"}: pays the order
//                                     a payment code waits on (a codepay above the code's medium limit) with
//                                     a medium whose limit takes it; lookup and sms-challenge take
//                                     "payment_id" instead of "code_url" for it
// A failed proof is recorded in the ledger (record_proof_failure; the fifth in a row locks the medium) and
// answered 403 MEDIUM_PROOF_INVALID; nothing moves. A payment's command id is one per attempt, and the ledger
// pays an order once. At most in_flight_max commands wait for the ledger at once (429 beyond).
// Thread-safety: Handle runs on the server's thread only; answers to commands are finished on the threads the
// port calls back on, several at once behind PooledAnswers: they touch only immutable or locked state.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/https_server.h"
#include "gateway/ledger_port.h"

namespace ledger::gateway {

struct CustomerApiOptions {
  std::string gateway_dir;       // the secrets of otp_card and password_device (customer_kit.h)
  std::string sms_key;           // customer_kit.h: EnsureSmsKey
  std::string sms_outbox;        // where SMS messages go (appended, 0600)
  std::string payment_code_key;  // customer_kit.h: EnsureGatewayKey (media_proof.h: PaymentCodeId)
  size_t in_flight_max = 1024;
  std::function<int64_t()> clock_s = {};  // seconds since the epoch; the system clock when empty
};

class CustomerApi {
 public:
  CustomerApi(CustomerApiOptions options, LedgerPort& ledger);
  // Answers one request whose path starts with /customer/.
  void Handle(const HttpRequest& request, Respond respond);

  // A request's payment: its order as the ledger holds it, payer and digest.
  struct Target;

 private:
  int64_t Now() const;
  // The order a request's code_url names, for its customer and account; or the error answer.
  std::optional<HttpResponse> Resolve(const nlohmann::json& body, Target& target) const;
  // The order the body's payment_id (a payment code of the body's customer and account) waits on.
  std::optional<HttpResponse> ResolvePaymentCode(const nlohmann::json& body, Target& target) const;
  // The body's medium, enrolled and unlocked, for the customer; or the refusal.
  std::optional<HttpResponse> EnrolledMedium(const nlohmann::json& body, const std::string& customer,
                                             std::string* medium, CustomerMediumView* enrolled) const;
  void IssuePaymentCode(const nlohmann::json& body, Respond respond);
  // The answer for an order paid already: its payment to its payer, ORDERPAID to anyone else. nullopt when
  // it is not paid and only_if_paid (else an error: the ledger said it was).
  std::optional<HttpResponse> PaidBefore(const Target& target, bool only_if_paid = false) const;
  HttpResponse Lookup(const Target& target) const;
  HttpResponse SmsChallenge(const Target& target);
  void Pay(const nlohmann::json& body, const Target& target, Respond respond);
  // What the body's proof shows over `digest` ("" and `why` when it shows nothing), and the TOTP step it
  // used.
  std::string Verify(const nlohmann::json& body, const std::string& customer, const std::string& digest,
                     std::string_view medium, const CustomerMediumView& enrolled, int64_t* step,
                     std::string* why) const;
  void RecordFailure(const std::string& customer, const std::string& medium, std::string why,
                     Respond respond);
  void SubmitPay(const nlohmann::json& body, const Target& target, const std::string& medium,
                 const std::string& proven, int64_t step, Respond respond);
  // Sends a command; `done` gets its answer (or the error answer when the queue is full or the ledger
  // failed).
  void SubmitCommand(std::string line, std::function<void(const CommandAnswer&)> done, Respond respond);

  CustomerApiOptions options_;
  LedgerPort& ledger_;
  // True while the customer has had fewer than kSmsPerWindow messages in this window.
  bool AdmitSms(const std::string& customer, int64_t window);

  std::atomic<size_t> in_flight_{0};
  std::mutex outbox_mutex_;
  std::map<std::string, std::pair<int64_t, int>> sms_sent_;  // customer -> (window, messages); outbox_mutex_
};

}  // namespace ledger::gateway
