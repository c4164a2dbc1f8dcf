#include "gateway/customer_api.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "api_common.h"
#include "core/assert.h"
#include "core/sha256.h"
#include "core/time.h"
#include "gateway/customer_kit.h"
#include "gateway/media_proof.h"
#include "wechat_resources.h"

namespace ledger::gateway {

using nlohmann::json;

struct CustomerApi::Target {
  std::string mchid;
  std::string order_no;
  OrderView order;
  std::string customer;
  std::string account;
  std::string digest;        // media_proof.h: PaymentDigest
  std::string payment_code;  // the payment code the order waits on (a codepay to confirm), if any
};

namespace {

constexpr size_t kIdentifierMax = 128;  // the ledger's identifiers (ledger/command.h)
constexpr size_t kProofFieldMax = 1024;
constexpr int64_t kPaymentCodeSeconds = 60;  // a payment code pays within this long of its issue
// A payment code request's timestamp may be this far from the gateway's clock: its proof is good that long.
constexpr int64_t kCodeRequestWindowSeconds = 60;
constexpr std::string_view kPaymentsPrefix = "/customer/v1/payments/";
// SMS messages to one customer in one code window, per gateway instance: the outbox (a real SMS provider's
// bill) is not an attacker's to fill.
constexpr int kSmsPerWindow = 5;
constexpr size_t kSmsCustomersTracked = 100'000;
constexpr std::string_view kConfirmSuffix = "/confirm";

const char* const kMedia[] = {"u_shield", "password_device", "otp_card",
                              "sms",      "fingerprint",     "password_free"};

HttpResponse Error(int status, std::string_view code, std::string_view message) {
  return {status, json{{"code", code}, {"message", message}}.dump()};
}

// A string field of 1..max printable ASCII characters other than '/', ':' excepted where `colon` allows it
// (accounts are `<customer>:<name>`); empty when it is not one.
std::string IdField(const json& body, const char* name, bool colon = false) {
  const auto field = body.find(name);
  if (field == body.end() || !field->is_string()) return {};
  const std::string& value = field->get_ref<const std::string&>();
  if (value.empty() || value.size() > kIdentifierMax) return {};
  for (char c : value) {
    if (c <= 0x20 || c > 0x7e || c == '/' || (c == ':' && !colon)) return {};
  }
  return value;
}

// The proof's text field `name`, bounded; empty when absent or not text.
std::string ProofField(const json& body, const char* name) {
  const auto proof = body.find("proof");
  if (proof == body.end() || !proof->is_object()) return {};
  const auto field = proof->find(name);
  if (field == proof->end() || !field->is_string() ||
      field->get_ref<const std::string&>().size() > kProofFieldMax)
    return {};
  return field->get<std::string>();
}

bool MobileChannel(std::string_view channel) {
  return channel == "b2c_h5" || channel == "b2c_sdk" || channel == "qr_dynamic" || channel == "qr_static" ||
         channel == "qr_customer_presented" || channel == "nfc";
}

// What an event may say of a signature: a digest of it, never the bytes a replay would need.
std::string SignatureMark(std::string_view signature) {
  return "signature sha256:" + ToHex(Sha256Of(signature)).substr(0, 16);
}

// 18 digits, "62" and 16 from the CSPRNG (rejection-sampled, so every digit is uniform).
std::string NewAuthCode() {
  std::string code = "62";
  while (code.size() < 18) {
    unsigned char byte = 0;
    LEDGER_ASSERT(RAND_bytes(&byte, 1) == 1);
    if (byte < 250) code.push_back(static_cast<char>('0' + byte % 10));
  }
  return code;
}

bool IsPaymentCodeId(std::string_view id) {
  return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

HttpResponse Paid(const std::string& mchid, const std::string& order_no, const std::string& transaction_id) {
  return {200, json{{"trade_state", "SUCCESS"},
                    {"transaction_id", transaction_id},
                    {"mchid", mchid},
                    {"out_trade_no", order_no}}
                   .dump()};
}

std::string MaskedPhone(std::string_view phone) {
  if (phone.size() <= 7) return std::string(phone.size(), '*');
  return std::string(phone.substr(0, 3)) + std::string(phone.size() - 7, '*') +
         std::string(phone.substr(phone.size() - 4));
}

}  // namespace

CustomerApi::CustomerApi(CustomerApiOptions options, LedgerPort& ledger)
    : options_(std::move(options)), ledger_(ledger) {}

int64_t CustomerApi::Now() const { return options_.clock_s ? options_.clock_s() : SystemSeconds(); }

void CustomerApi::Handle(const HttpRequest& request, Respond respond) {
  if (!request.channel_client) {
    return respond(Error(401, "CHANNEL_CERTIFICATE_REQUIRED",
                         "the customer API answers the bank's channels only (mutual TLS)"));
  }
  const std::string_view path = request.target;
  const bool lookup = path == "/customer/v1/orders/lookup";
  const bool sms = path == "/customer/v1/sms-challenge";
  const bool pay = path == "/customer/v1/orders/pay";
  const bool code = path == "/customer/v1/payment-codes";
  const bool confirm = path.starts_with(kPaymentsPrefix) && path.ends_with(kConfirmSuffix);
  if (!lookup && !sms && !pay && !code && !confirm) return respond(Error(404, "NOT_FOUND", "no such path"));
  if (request.method != "POST") return respond(Error(405, "METHOD_NOT_ALLOWED", "POST only"));
  json body = json::parse(request.body, nullptr, false);
  if (!body.is_object()) return respond(Error(400, "PARAM_ERROR", "the body is not a JSON object"));
  if (code) return IssuePaymentCode(body, std::move(respond));
  if (confirm) {
    // POST /customer/v1/payments/{payment_id}/confirm: the order a payment code waits on.
    const std::string_view id =
        path.substr(kPaymentsPrefix.size(), path.size() - kPaymentsPrefix.size() - kConfirmSuffix.size());
    if (!IsPaymentCodeId(id)) return respond(Error(404, "NOT_FOUND", "no such payment"));
    body["payment_id"] = std::string(id);
  }
  Target target;
  if (std::optional<HttpResponse> refused = Resolve(body, target)) return respond(std::move(*refused));
  if (lookup) return respond(Lookup(target));
  if (sms) return respond(SmsChallenge(target));
  Pay(body, target, std::move(respond));
}

std::optional<HttpResponse> CustomerApi::Resolve(const json& body, Target& target) const {
  target.customer = IdField(body, "customer");
  target.account = IdField(body, "account", true);
  if (target.customer.empty() || !target.account.starts_with(target.customer + ":"))
    return Error(400, "PARAM_ERROR", "customer and account (<customer>:<name>) are required");
  if (body.contains("payment_id")) {
    if (std::optional<HttpResponse> refused = ResolvePaymentCode(body, target)) return refused;
  }
  const OrderReference* named_by = nullptr;
  for (const OrderReference& kind : kOrderReferences) {
    const auto link = body.find(kind.field);
    if (link == body.end() || target.payment_code.size() > 0) continue;
    std::optional<std::pair<std::string, std::string>> order;
    if (link->is_string()) order = ParseOrderLink(kind, link->get_ref<const std::string&>());
    if (!order || named_by != nullptr)
      return Error(400, "PARAM_ERROR",
                   "one of code_url, h5_url and prepay_id, as the merchant's order gave it");
    named_by = &kind;
    target.mchid = order->first;
    target.order_no = order->second;
  }
  if (named_by == nullptr && target.payment_code.empty())
    return Error(400, "PARAM_ERROR", "code_url, h5_url, prepay_id or payment_id names the order");
  Result<std::optional<OrderView>> found = ledger_.Order(target.mchid, target.order_no);
  if (!found.ok()) return Error(500, "SYSTEM_ERROR", "the ledger could not be read");
  // A link of another kind than the order's names no order (an app's prepay_id is not a QR code).
  if (!found->has_value() || (named_by != nullptr && (*found)->channel != named_by->channel))
    return Error(404, "ORDER_NOT_EXIST", "no such order");
  target.order = **found;
  target.digest = PaymentDigest(
      {target.mchid, target.order_no, target.order.amount_minor, target.customer, target.account});
  return std::nullopt;
}

std::optional<HttpResponse> CustomerApi::ResolvePaymentCode(const json& body, Target& target) const {
  const json& id = body["payment_id"];
  if (!id.is_string() || !IsPaymentCodeId(id.get_ref<const std::string&>()))
    return Error(400, "PARAM_ERROR", "payment_id must be 32 hex digits");
  Result<std::optional<PaymentCodeView>> code = ledger_.PaymentCode(id.get_ref<const std::string&>());
  if (!code.ok()) return Error(500, "SYSTEM_ERROR", "the ledger could not be read");
  // Another customer's code reads as none: a payment id tells nothing to anyone but its customer.
  if (!code->has_value() || (*code)->customer != target.customer || (*code)->account != target.account ||
      (*code)->waiting_order.empty()) {
    return Error(404, "PAYMENT_NOT_FOUND", "no payment of this customer waits on this payment code");
  }
  target.mchid = (*code)->waiting_merchant;
  target.order_no = (*code)->waiting_order;
  target.payment_code = id.get<std::string>();
  return std::nullopt;
}

HttpResponse CustomerApi::Lookup(const Target& target) const {
  Result<std::optional<PaymentView>> paid = ledger_.Payment(target.mchid, target.order_no);
  if (!paid.ok()) return Error(500, "SYSTEM_ERROR", "the ledger could not be read");
  std::string state = "NOTPAY";
  if (paid->has_value()) {
    state = "SUCCESS";
  } else if (target.order.closed) {
    state = "CLOSED";
  }
  return {200, json{{"mchid", target.mchid},
                    {"out_trade_no", target.order_no},
                    {"amount", {{"total", target.order.amount_minor}, {"currency", "CNY"}}},
                    {"channel", target.order.channel},
                    {"expires_at", target.order.expires_at_ns / 1'000'000'000},
                    {"trade_state", state},
                    {"payment_digest", target.digest},
                    {"ocra_challenge", OcraChallenge(target.digest)}}
                   .dump()};
}

HttpResponse CustomerApi::SmsChallenge(const Target& target) {
  Result<std::optional<CustomerMediumView>> enrolled = ledger_.CustomerMedium(target.customer, "sms");
  if (!enrolled.ok()) return Error(500, "SYSTEM_ERROR", "the ledger could not be read");
  if (!enrolled->has_value()) return Error(400, "MEDIUM_NOT_ENROLLED", "the customer has no phone enrolled");
  if ((*enrolled)->locked) return Error(403, "MEDIUM_LOCKED", "sms is locked after failed proofs");
  const int64_t now = Now();
  if (!AdmitSms(target.customer, now / kSmsWindowSeconds))
    return Error(429, "FREQUENCY_LIMITED", "too many messages to this customer; wait for the next window");
  const std::string code = SmsCode(options_.sms_key, target.customer, target.digest, now / kSmsWindowSeconds);
  const std::string& phone = (*enrolled)->public_part;
  const std::string line =
      json{{"at", now},
           {"phone", phone},
           {"text", "Code " + code + " pays " + std::to_string(target.order.amount_minor) + " fen to " +
                        target.mchid + " order " + target.order_no + ". Never tell anyone."}}
          .dump() +
      "\n";
  std::lock_guard lock(outbox_mutex_);
  const int fd =
      ::open(options_.sms_outbox.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  const bool sent = fd >= 0 && ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  if (fd >= 0) ::close(fd);
  if (!sent) {
    spdlog::error("gateway: cannot write the SMS outbox {}: {}", options_.sms_outbox, std::strerror(errno));
    return Error(500, "SYSTEM_ERROR", "the message could not be sent");
  }
  return {200, json{{"phone", MaskedPhone(phone)}, {"expires_in", kSmsWindowSeconds}}.dump()};
}

bool CustomerApi::AdmitSms(const std::string& customer, int64_t window) {
  std::lock_guard lock(outbox_mutex_);
  if (sms_sent_.size() >= kSmsCustomersTracked) sms_sent_.clear();  // a bound, not a memory: forget all
  auto& [sent_window, count] = sms_sent_[customer];
  if (sent_window != window) {
    sent_window = window;
    count = 0;
  }
  return ++count <= kSmsPerWindow;
}

void CustomerApi::Pay(const json& body, const Target& target, Respond respond) {
  // Paid already: the payer asking again gets the payment, anyone else ORDERPAID; no proof is spent on it.
  if (std::optional<HttpResponse> paid = PaidBefore(target, /*only_if_paid=*/true))
    return respond(std::move(*paid));
  std::string medium;
  CustomerMediumView enrolled;
  if (std::optional<HttpResponse> refused = EnrolledMedium(body, target.customer, &medium, &enrolled))
    return respond(std::move(*refused));
  if ((medium == "fingerprint" || medium == "password_free") && !MobileChannel(target.order.channel))
    return respond(Error(400, "MEDIUM_NOT_ALLOWED", medium + " is for mobile channels only"));
  int64_t step = 0;
  std::string why;
  const std::string proven = Verify(body, target.customer, target.digest, medium, enrolled, &step, &why);
  if (proven.empty()) return RecordFailure(target.customer, medium, std::move(why), std::move(respond));
  SubmitPay(body, target, medium, proven, step, std::move(respond));
}

std::optional<HttpResponse> CustomerApi::PaidBefore(const Target& target, bool only_if_paid) const {
  Result<std::optional<PaymentView>> paid = ledger_.Payment(target.mchid, target.order_no);
  if (!paid.ok()) return Error(500, "SYSTEM_ERROR", "the ledger could not be read");
  if (!paid->has_value()) {
    if (only_if_paid) return std::nullopt;
    return Error(500, "SYSTEM_ERROR", "the order is taken but its payment cannot be read; ask again");
  }
  if ((*paid)->account != target.account) return Error(400, "ORDERPAID", "the order is paid");
  return Paid(target.mchid, target.order_no, (*paid)->transaction_id);
}

std::optional<HttpResponse> CustomerApi::EnrolledMedium(const json& body, const std::string& customer,
                                                        std::string* medium,
                                                        CustomerMediumView* enrolled) const {
  const auto medium_field = body.find("medium");
  for (const char* name : kMedia) {
    if (medium_field != body.end() && medium_field->is_string() && *medium_field == name) *medium = name;
  }
  if (medium->empty()) return Error(400, "PARAM_ERROR", "medium must name an authentication medium");
  const auto funding = body.find("funding");
  if (funding != body.end() && *funding != "own_account")
    return Error(400, "PARAM_ERROR", "the customer side pays from the customer's own account");
  Result<std::optional<CustomerMediumView>> found = ledger_.CustomerMedium(customer, *medium);
  if (!found.ok()) return Error(500, "SYSTEM_ERROR", "the ledger could not be read");
  if (!found->has_value())
    return Error(400, "MEDIUM_NOT_ENROLLED", "the customer has no " + *medium + " enrolled");
  if ((*found)->locked)
    return Error(403, "MEDIUM_LOCKED", *medium + " is locked after failed proofs; enrol it again");
  *enrolled = **found;
  return std::nullopt;
}

// A payment code: the medium proven over the customer, account and the request's timestamp (within a minute),
// the code issued for 60 s. The command id names what the proof covers, so the same proof again issues no
// second code (the ledger answers it as a duplicate).
void CustomerApi::IssuePaymentCode(const json& body, Respond respond) {
  const std::string customer = IdField(body, "customer");
  const std::string account = IdField(body, "account", true);
  if (customer.empty() || !account.starts_with(customer + ":"))
    return respond(Error(400, "PARAM_ERROR", "customer and account (<customer>:<name>) are required"));
  const auto timestamp = body.find("timestamp");
  const int64_t now = Now();
  if (timestamp == body.end() || !timestamp->is_number_integer() ||
      std::llabs(timestamp->get<int64_t>() - now) > kCodeRequestWindowSeconds)
    return respond(Error(400, "PARAM_ERROR", "timestamp must be the request's time in epoch seconds"));
  std::string medium;
  CustomerMediumView enrolled;
  if (std::optional<HttpResponse> refused = EnrolledMedium(body, customer, &medium, &enrolled))
    return respond(std::move(*refused));
  if (medium == "sms")
    return respond(
        Error(400, "MEDIUM_NOT_ALLOWED", "a payment code is shown on the phone an SMS would go to"));
  const std::string digest = PaymentCodeDigest(customer, account, timestamp->get<int64_t>());
  int64_t step = 0;
  std::string why;
  const std::string proven = Verify(body, customer, digest, medium, enrolled, &step, &why);
  if (proven.empty()) return RecordFailure(customer, medium, std::move(why), std::move(respond));
  const std::string auth_code = NewAuthCode();
  const int64_t expires_at = now + kPaymentCodeSeconds;
  json command = {{"type", "issue_payment_code"},
                  {"command_id", "gw:code:" + digest.substr(0, 32) + ":" + medium},
                  {"customer", customer},
                  {"account", account},
                  {"medium", medium},
                  {"proof", proven},
                  {"payment_code", PaymentCodeId(options_.payment_code_key, auth_code)},
                  {"expires_at", FormatIso8601(expires_at * 1'000'000'000, 0)}};
  if (step > 0) command["proof_step"] = step;
  SubmitCommand(
      command.dump(),
      [respond, auth_code, expires_at,
       id = command["payment_code"].get<std::string>()](const CommandAnswer& answer) {
        // The same proof again: its command id is taken (by the same code request, or by this one with the
        // new code it would get).
        if (answer.kind == CommandAnswer::Kind::kDuplicate || answer.reason == "DUPLICATE_COMMAND_MISMATCH")
          return respond(Error(403, "MEDIUM_PROOF_INVALID", "this proof issued a payment code already"));
        if (answer.kind != CommandAnswer::Kind::kAccepted)
          return respond(Error(403, answer.reason, answer.detail));
        respond({200, json{{"auth_code", auth_code}, {"expires_at", expires_at}, {"payment_id", id}}.dump()});
      },
      respond);
}

std::string CustomerApi::Verify(const json& body, const std::string& customer, const std::string& digest,
                                std::string_view medium, const CustomerMediumView& enrolled, int64_t* step,
                                std::string* why) const {
  if (medium == "u_shield" || medium == "fingerprint" || medium == "password_free") {
    const std::string signature =
        medium == "password_free" ? (body.contains("device_signature") && body["device_signature"].is_string()
                                         ? body["device_signature"].get<std::string>()
                                         : std::string())
                                  : ProofField(body, "signature");
    if (VerifyMediumSignature(enrolled.public_part, digest, signature)) return SignatureMark(signature);
    *why = "the signature does not verify over this request's digest";
    return {};
  }
  const std::string code = ProofField(body, "code");
  if (medium == "sms") {
    if (MatchSms(options_.sms_key, customer, digest, code, Now()))
      return "sms code for payment " + digest.substr(0, 16);
    *why = "the code is not the one sent for this payment";
    return {};
  }
  Result<std::string> secret = LoadMediumSecret(options_.gateway_dir, customer, medium);
  if (!secret.ok()) {
    spdlog::error("gateway: the {} secret of a customer: {}", medium, secret.status().ToString());
    *why = "the medium cannot be checked here";
    return {};
  }
  if (medium == "otp_card") {
    if (const std::optional<int64_t> matched = MatchTotp(*secret, code, Now())) {
      *step = *matched;
      return "totp step " + std::to_string(*matched);
    }
    *why = "the code is not the card's for this time";
    return {};
  }
  const std::string challenge = OcraChallenge(digest);
  Result<std::string> expected = Ocra(*secret, challenge);
  if (expected.ok() && SameCode(*expected, code)) return "ocra response to challenge " + challenge;
  *why = "the response does not answer this payment's challenge";
  return {};
}

void CustomerApi::RecordFailure(const std::string& customer, const std::string& medium, std::string why,
                                Respond respond) {
  // A random command id: every failure counts, however alike two requests are.
  const std::string line = json{
      {"type", "record_proof_failure"},
      {"command_id", "gw:proof-failed:" + RandomHex(16)},
      {"customer", customer},
      {"medium", medium}}.dump();
  SubmitCommand(
      line,
      [respond, why = std::move(why), medium](const CommandAnswer& answer) {
        const std::string message =
            answer.kind == CommandAnswer::Kind::kAccepted ? why : why + " (" + answer.reason + ")";
        respond(Error(403, "MEDIUM_PROOF_INVALID", medium + ": " + message));
      },
      respond);
}

void CustomerApi::SubmitPay(const json& body, const Target& target, const std::string& medium,
                            const std::string& proven, int64_t step, Respond respond) {
  // A command id of its own for every request: a refused attempt (funds, limits, points) never stands in
  // for the next one — a proof can be the same again (an RSA signature of the same digest, an OCRA response
  // to the order's challenge) — and the ledger, not the id, pays an order once (DUPLICATE_ORDER). An
  // attacker's review made an order unpayable when the id was a hash of the proof.
  const std::string attempt = RandomHex(8);
  json pay = {{"type", "pay"},
              {"command_id", "gw:pay:" + target.mchid + ":" + target.order_no + ":" + attempt},
              {"merchant", target.mchid},
              {"merchant_order_no", target.order_no},
              {"customer", target.customer},
              {"funding", "own_account"},
              {"account", target.account},
              {"channel", target.order.channel},
              {"medium", medium},
              {"order_amount_minor", target.order.amount_minor},
              {"proof", proven}};
  if (step > 0) pay["proof_step"] = step;
  if (const auto points = body.find("points"); points != body.end() && points->is_number_integer())
    pay["points"] = *points;
  if (const std::string coupon = IdField(body, "coupon"); !coupon.empty()) pay["coupon"] = coupon;
  if (!target.payment_code.empty()) pay["payment_code"] = target.payment_code;
  SubmitCommand(
      pay.dump(),
      [this, respond, target](const CommandAnswer& answer) {
        if (answer.reason == "DUPLICATE_ORDER") return respond(*PaidBefore(target));
        if (answer.kind == CommandAnswer::Kind::kRejected || !answer.reason.empty())
          return respond(Error(403, answer.reason, answer.detail));
        respond(Paid(target.mchid, target.order_no, answer.transaction_id));
      },
      respond);
}

void CustomerApi::SubmitCommand(std::string line, std::function<void(const CommandAnswer&)> done,
                                Respond respond) {
  if (in_flight_.fetch_add(1) >= options_.in_flight_max) {
    in_flight_.fetch_sub(1);
    return respond(Error(429, "FREQUENCY_LIMITED", "too many requests in flight"));
  }
  ledger_.Submit(std::move(line), [this, done = std::move(done), respond](Result<CommandAnswer> result) {
    in_flight_.fetch_sub(1);
    if (!result.ok()) {
      spdlog::error("gateway: customer command: {}", result.status().ToString());
      return respond(Error(500, "SYSTEM_ERROR", "the ledger did not answer; ask again"));
    }
    done(*result);
  });
}

}  // namespace ledger::gateway
