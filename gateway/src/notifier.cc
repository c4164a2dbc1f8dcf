#include "gateway/notifier.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "api_common.h"
#include "base64.h"
#include "core/assert.h"
#include "core/sha256.h"
#include "gateway/merchant_kit.h"
#include "https_client.h"
#include "new_file.h"
#include "openssl_handles.h"
#include "wechat_resources.h"

namespace ledger::gateway {

using nlohmann::json;

struct Notifier::Delivery {
  uint64_t sequence = 0;
  Notice::Kind kind = Notice::Kind::kTransaction;
  std::string merchant;
  std::string order_no;
  std::string refund_no;
  std::string url;
  int64_t attempts = 0;
  int64_t due_s = 0;
};

namespace {

constexpr char kExtraCaFile[] = "notify-ca.pem";
constexpr int kStateVersion = 1;
constexpr size_t kGcmNonceBytes = 12;
constexpr size_t kGcmTagBytes = 16;

const char* KindName(Notice::Kind kind) { return kind == Notice::Kind::kRefund ? "refund" : "transaction"; }

// The notification's id: the same for every attempt and every gateway of this platform key (a UUID's shape,
// from the event, its history and the key, so that another ledger's or shard's notification of the same
// sequence has another id).
std::string NotificationId(std::string_view platform_key_id, std::string_view history, uint64_t sequence) {
  const std::string named = history.empty() ? std::string() : std::string(history) + " ";
  const std::string hex = ToHex(Sha256Of("ledger notification " + std::string(platform_key_id) + " " + named +
                                         std::to_string(sequence)))
                              .substr(0, 32);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20, 12);
}

// WeChat's nonce for the resource: 12 letters and digits (the GCM nonce is these bytes).
std::string ResourceNonce() { return WeChatNonce().substr(0, kGcmNonceBytes); }

// AEAD_AES_256_GCM as WeChat uses it: the key is the APIv3 key's 32 bytes, the nonce and associated data
// are text, the ciphertext is base64 of the encrypted bytes followed by the 16-byte tag.
Result<std::string> SealResource(std::string_view apiv3_key, std::string_view nonce,
                                 std::string_view associated_data, std::string_view plaintext) {
  if (apiv3_key.size() != 32) return Status::InvalidArgument("an APIv3 key is 32 bytes");
  const std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> context(EVP_CIPHER_CTX_new(),
                                                                                &EVP_CIPHER_CTX_free);
  LEDGER_ASSERT(context != nullptr);
  const auto* key = reinterpret_cast<const unsigned char*>(apiv3_key.data());
  const auto* iv = reinterpret_cast<const unsigned char*>(nonce.data());
  std::string sealed(plaintext.size() + kGcmTagBytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(sealed.data());
  int length = 0;
  int finished = 0;
  const bool ok =
      EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()), nullptr) ==
          1 &&
      EVP_EncryptInit_ex(context.get(), nullptr, nullptr, key, iv) == 1 &&
      EVP_EncryptUpdate(context.get(), nullptr, &length,
                        reinterpret_cast<const unsigned char*>(associated_data.data()),
                        static_cast<int>(associated_data.size())) == 1 &&
      EVP_EncryptUpdate(context.get(), out, &length, reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(context.get(), out + length, &finished) == 1 &&
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagBytes, out + length + finished) == 1;
  LEDGER_ASSERT(ok);
  LEDGER_ASSERT(static_cast<size_t>(length + finished) == plaintext.size());
  return Base64(out, sealed.size());
}

json DeliveryJson(const Notifier::Delivery& delivery) {
  return {{"sequence", delivery.sequence}, {"kind", KindName(delivery.kind)}, {"merchant", delivery.merchant},
          {"order_no", delivery.order_no}, {"refund_no", delivery.refund_no}, {"url", delivery.url},
          {"attempts", delivery.attempts}, {"due_s", delivery.due_s}};
}

std::optional<Notifier::Delivery> DeliveryFrom(const json& entry) {
  const auto text = [&entry](const char* name) {
    return entry.contains(name) && entry[name].is_string() ? entry[name].get<std::string>() : std::string();
  };
  const auto number = [&entry](const char* name) -> std::optional<int64_t> {
    if (!entry.contains(name) || !entry[name].is_number_integer()) return std::nullopt;
    return entry[name].get<int64_t>();
  };
  if (!entry.is_object() || !number("sequence") || !number("attempts") || !number("due_s"))
    return std::nullopt;
  Notifier::Delivery delivery;
  delivery.sequence = static_cast<uint64_t>(*number("sequence"));
  const std::string kind = text("kind");
  if (kind != "transaction" && kind != "refund") return std::nullopt;
  delivery.kind = kind == "refund" ? Notice::Kind::kRefund : Notice::Kind::kTransaction;
  delivery.merchant = text("merchant");
  delivery.order_no = text("order_no");
  delivery.refund_no = text("refund_no");
  delivery.url = text("url");
  delivery.attempts = *number("attempts");
  delivery.due_s = *number("due_s");
  if (delivery.merchant.empty() || delivery.order_no.empty() || delivery.url.empty() ||
      (delivery.kind == Notice::Kind::kRefund) == delivery.refund_no.empty() || delivery.attempts < 0)
    return std::nullopt;
  return delivery;
}

}  // namespace

Notifier::Notifier(NotifierOptions options, const LedgerPort& ledger)
    : options_(std::move(options)),
      ledger_(ledger),
      state_path_(options_.gateway_dir + "/" + options_.state_file) {
  if (!options_.clock_s) options_.clock_s = SystemSeconds;
  LEDGER_ASSERT(options_.platform_key != nullptr && options_.platform_key->is_private());
}

Notifier::~Notifier() { Stop(); }

Result<std::unique_ptr<Notifier>> Notifier::Open(NotifierOptions options, const LedgerPort& ledger) {
  std::unique_ptr<Notifier> notifier(new Notifier(std::move(options), ledger));
  LEDGER_RETURN_IF_ERROR(notifier->Load());
  // A state ahead of the ledger would skip the notices of events it never read: refuse to start.
  Result<NoticeBatch> ahead = ledger.NoticesAfter(notifier->through_, 1);
  if (ahead.status().code() == StatusCode::kCorruption)
    return Status::Corruption(notifier->state_path_ + ": " + ahead.status().message());
  if (!ahead.ok()) return ahead.status();
  return notifier;
}

Status Notifier::Load() {
  Result<std::string> bytes = ReadWhole(state_path_, O_NOFOLLOW);
  if (bytes.status().code() == StatusCode::kNotFound) return Status::Ok();
  if (!bytes.ok()) return bytes.status();
  const json state = json::parse(*bytes, nullptr, false);
  const auto corrupt = [this](const std::string& what) {
    return Status::Corruption(state_path_ + ": " + what);
  };
  if (!state.is_object() || state.value("version", 0) != kStateVersion || !state.contains("through") ||
      !state["through"].is_number_unsigned() || !state.contains("deliveries") ||
      !state["deliveries"].is_array())
    return corrupt("not a notifier state of version 1");
  through_ = state["through"].get<uint64_t>();
  std::set<std::pair<uint64_t, std::string>> seen;  // (sequence, refund number): one delivery per notice
  for (const json& entry : state["deliveries"]) {
    std::optional<Delivery> delivery = DeliveryFrom(entry);
    const bool valid = delivery && delivery->sequence > 0 && delivery->sequence <= through_ &&
                       seen.emplace(delivery->sequence, delivery->refund_no).second &&
                       ParseHttpsUrl(delivery->url).ok();
    if (!valid) return corrupt("delivery " + std::to_string(deliveries_.size() + 1) + " is malformed");
    // A shorter schedule than the last run's: such a delivery has its last attempt left.
    delivery->attempts =
        std::min<int64_t>(delivery->attempts, static_cast<int64_t>(options_.retry_seconds.size()));
    deliveries_.push_back(std::move(*delivery));
  }
  return Status::Ok();
}

Status Notifier::Save() const {
  json deliveries = json::array();
  std::lock_guard lock(mutex_);
  for (const Delivery& delivery : deliveries_) deliveries.push_back(DeliveryJson(delivery));
  const json state = {{"version", kStateVersion}, {"through", through_}, {"deliveries", deliveries}};
  return ReplaceFile(state_path_, state.dump(), 0600);
}

Result<std::string> Notifier::Body(const Delivery& delivery, int64_t now_s) const {
  Result<std::optional<PaymentView>> payment = ledger_.Payment(delivery.merchant, delivery.order_no);
  if (!payment.ok()) return payment.status();
  if (!payment->has_value()) return Status::NotFound("no payment of order " + delivery.order_no);
  json resource;
  if (delivery.kind == Notice::Kind::kTransaction) {
    PaymentView paid = **payment;
    paid.state =
        PaymentState::kSuccess;  // what it told of: the payment succeeded (a query tells what followed)
    resource = TransactionResource(paid, options_.timezone_offset_minutes);
  } else {
    Result<std::optional<RefundView>> refund = ledger_.Refund(delivery.merchant, delivery.refund_no);
    if (!refund.ok()) return refund.status();
    if (!refund->has_value()) return Status::NotFound("no refund " + delivery.refund_no);
    resource = RefundResource(**refund, **payment, options_.timezone_offset_minutes);
    resource["mchid"] = delivery.merchant;
    resource["refund_status"] = "SUCCESS";
  }
  Result<std::string> apiv3_key = LoadApiV3Key(options_.gateway_dir, delivery.merchant);
  if (!apiv3_key.ok()) return apiv3_key.status();
  const std::string nonce = ResourceNonce();
  const char* associated_data = KindName(delivery.kind);
  Result<std::string> ciphertext = SealResource(*apiv3_key, nonce, associated_data, resource.dump());
  if (!ciphertext.ok()) return ciphertext.status();
  const bool refund = delivery.kind == Notice::Kind::kRefund;
  const json body = {
      {"id", NotificationId(options_.platform_key_id, options_.history, delivery.sequence)},
      {"create_time", WeChatTime(now_s * 1'000'000'000, options_.timezone_offset_minutes)},
      {"resource_type", "encrypt-resource"},
      {"event_type", refund ? "REFUND.SUCCESS" : "TRANSACTION.SUCCESS"},
      {"summary", refund ? "退款成功" : "支付成功"},
      {"resource",
       {{"original_type", associated_data},
        {"algorithm", "AEAD_AES_256_GCM"},
        {"ciphertext", *ciphertext},
        {"associated_data", associated_data},
        {"nonce", nonce}}},
  };
  return body.dump();
}

Notifier::Attempt Notifier::Deliver(const Delivery& delivery, int64_t now_s) const {
  const std::string id = NotificationId(options_.platform_key_id, options_.history, delivery.sequence);
  Result<std::string> body = Body(delivery, now_s);
  if (!body.ok()) {
    spdlog::warn("notifier: notification {} to merchant {} cannot be made yet: {}", id, delivery.merchant,
                 body.status().ToString());
    return Attempt::kFailed;
  }
  HttpsPost post;
  post.url = delivery.url;
  post.body = *body;
  Result<std::vector<std::pair<std::string, std::string>>> headers =
      PlatformSignatureHeaders(*options_.platform_key, options_.platform_key_id, now_s, post.body);
  if (!headers.ok()) {
    return Attempt::kUnsigned;  // logged once per pass (RunOnce)
  }
  post.headers = std::move(headers).value();
  post.headers.emplace_back("Content-Type", "application/json");
  const std::string extra_ca = options_.gateway_dir + "/" + kExtraCaFile;
  if (::access(extra_ca.c_str(), R_OK) == 0) post.extra_ca_file = extra_ca;
  post.deadline = options_.delivery_deadline;
  Result<int> status = PostOnce(post);
  if (status.ok() && *status >= 200 && *status < 300) return Attempt::kDelivered;
  spdlog::info("notifier: notification {} to merchant {} attempt {} failed: {}", id, delivery.merchant,
               delivery.attempts + 1,
               status.ok() ? "HTTP " + std::to_string(*status) : status.status().ToString());
  return Attempt::kFailed;
}

Status Notifier::ReadNotices(int64_t now_s) {
  const size_t waiting = pending();
  if (waiting >= options_.pending_max) return Status::Ok();
  Result<NoticeBatch> batch =
      ledger_.NoticesAfter(through(), std::min(options_.events_per_pass, options_.pending_max - waiting));
  if (!batch.ok()) return batch.status();
  std::lock_guard lock(mutex_);
  std::map<std::string, size_t, std::less<>> per_merchant;
  for (const Delivery& delivery : deliveries_) per_merchant[delivery.merchant] += 1;
  for (Notice& notice : batch->notices) {
    // One merchant's deliveries that no one takes must not crowd out the others': beyond its share the
    // notice is given up at once, said in the log (the merchant's query still answers).
    if (per_merchant[notice.merchant]++ >= options_.pending_per_merchant) {
      spdlog::warn("notifier: notification {} to merchant {} given up: {} of its notifications wait already",
                   NotificationId(options_.platform_key_id, options_.history, notice.sequence),
                   notice.merchant, options_.pending_per_merchant);
      continue;
    }
    deliveries_.push_back(Delivery{notice.sequence, notice.kind, std::move(notice.merchant),
                                   std::move(notice.order_no), std::move(notice.refund_no),
                                   std::move(notice.notify_url), 0, now_s});
  }
  through_ = batch->through;
  return Status::Ok();
}

std::vector<size_t> Notifier::DueDeliveries(int64_t now_s) const {
  std::lock_guard lock(mutex_);
  std::vector<size_t> due;
  std::map<std::string_view, size_t, std::less<>> per_merchant;
  for (size_t i = 0; i < deliveries_.size() && due.size() < options_.deliveries_per_pass; ++i) {
    const Delivery& delivery = deliveries_[i];
    // A few per merchant per pass, so that one merchant's silent server cannot hold every slot.
    if (delivery.due_s <= now_s &&
        per_merchant[delivery.merchant]++ < options_.attempts_per_merchant_per_pass)
      due.push_back(i);
  }
  return due;
}

Status Notifier::RunOnce() {
  const int64_t now_s = options_.clock_s();
  const uint64_t through_before = through();
  // While the platform key cannot sign, no more notices are read: those waiting would fill the bounds and
  // the next ones be given up; read later, none is lost.
  if (!signing_failed_) LEDGER_RETURN_IF_ERROR(ReadNotices(now_s));
  // The due deliveries, a few at a time in parallel (each bounded by its deadline).
  const std::vector<size_t> due = DueDeliveries(now_s);
  std::vector<Attempt> outcome(due.size(), Attempt::kFailed);
  size_t tried = 0;  // due[0, tried) were attempted; a stop leaves the rest as they were
  for (size_t start = 0; start < due.size() && !stop_requested_.load();
       start += options_.parallel_deliveries) {
    std::vector<std::future<Attempt>> attempts;
    const size_t end = std::min(due.size(), start + options_.parallel_deliveries);
    for (size_t k = start; k < end; ++k) {
      attempts.push_back(std::async(std::launch::async,
                                    [this, &due, k, now_s] { return Deliver(deliveries_[due[k]], now_s); }));
    }
    for (size_t k = start; k < end; ++k) outcome[k] = attempts[k - start].get();
    tried = end;
  }
  const size_t unsigned_count =
      static_cast<size_t>(std::count(outcome.begin(), outcome.begin() + tried, Attempt::kUnsigned));
  signing_failed_ = unsigned_count > 0;
  if (signing_failed_)
    spdlog::error(
        "notifier: the platform key did not sign {} notifications; they wait, and no new notices are "
        "read until it signs again",
        unsigned_count);
  // The clock reads whole seconds: counting from the next one, a wait is never cut short.
  const int64_t retry_base_s = options_.clock_s() + 1;
  {
    std::lock_guard lock(mutex_);
    std::vector<char> remove(deliveries_.size(), 0);
    for (size_t k = 0; k < tried; ++k) {
      Delivery& delivery = deliveries_[due[k]];
      if (outcome[k] == Attempt::kUnsigned) {
        delivery.due_s = retry_base_s + (options_.retry_seconds.empty() ? 0 : options_.retry_seconds.front());
        continue;
      }
      const bool done = outcome[k] == Attempt::kDelivered;
      delivery.attempts += 1;
      const bool given_up = !done && static_cast<size_t>(delivery.attempts) > options_.retry_seconds.size();
      if (given_up) {
        spdlog::warn("notifier: notification {} to merchant {} given up after {} attempts",
                     NotificationId(options_.platform_key_id, options_.history, delivery.sequence),
                     delivery.merchant, delivery.attempts);
      }
      if (done || given_up) {
        remove[due[k]] = 1;
      } else {
        delivery.due_s = retry_base_s + options_.retry_seconds[static_cast<size_t>(delivery.attempts) - 1];
      }
    }
    size_t kept = 0;
    for (size_t i = 0; i < deliveries_.size(); ++i) {
      if (remove[i]) continue;
      if (kept != i) deliveries_[kept] = std::move(deliveries_[i]);  // never onto itself: that empties it
      ++kept;
    }
    deliveries_.resize(kept);
  }
  // Nothing read and nothing tried: the file already says so.
  if (through() == through_before && tried == 0) return Status::Ok();
  return Save();
}

void Notifier::Start(std::chrono::milliseconds interval) {
  LEDGER_ASSERT(!thread_.joinable());
  thread_ = std::thread([this, interval] {
    std::unique_lock lock(wake_mutex_);
    while (!stopping_) {
      lock.unlock();
      const Status pass = RunOnce();
      if (!pass.ok()) spdlog::warn("notifier: {}", pass.ToString());
      lock.lock();
      wake_.wait_for(lock, interval, [this] { return stopping_; });
    }
  });
}

void Notifier::Stop() {
  stop_requested_.store(true);
  {
    std::lock_guard lock(wake_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t Notifier::through() const {
  std::lock_guard lock(mutex_);
  return through_;
}

size_t Notifier::pending() const {
  std::lock_guard lock(mutex_);
  return deliveries_.size();
}

}  // namespace ledger::gateway
