#include "gateway_store_reads.h"

#include <charconv>

#include "events/event.h"
#include "ledger/routing.h"
#include "reconcile/run.h"
#include "state/keys.h"
#include "state/records.h"

namespace ledger::cli {
namespace {

// A transaction's events: a payment takes at most a handful (points, coupon, capture), never this many.
constexpr uint64_t kTransactionEventsMax = 16;

gateway::PaymentState StateOf(fb::PaymentStatus status) {
  switch (status) {
    case fb::PaymentStatus::reversed:
      return gateway::PaymentState::kReversed;
    case fb::PaymentStatus::partially_refunded:
      return gateway::PaymentState::kPartiallyRefunded;
    case fb::PaymentStatus::refunded:
      return gateway::PaymentState::kRefunded;
    default:
      return gateway::PaymentState::kSuccess;
  }
}

}  // namespace

ShardReads::ShardReads(const Store& store, int timezone_offset_minutes)
    : store_(store), timezone_offset_minutes_(timezone_offset_minutes) {}

Result<std::optional<gateway::MerchantKeyRecordView>> ShardReads::MerchantKey(
    std::string_view serial_no) const {
  fb::MerchantKeyRecordT record;
  if (!LoadRecord(store_.state(), keys::MerchantKey(serial_no), &record))
    return std::optional<gateway::MerchantKeyRecordView>();
  return std::optional<gateway::MerchantKeyRecordView>(
      gateway::MerchantKeyRecordView{record.merchant, record.public_key_pem, record.revoked});
}

Result<std::optional<gateway::PaymentView>> ShardReads::Payment(std::string_view merchant,
                                                                std::string_view order_no) const {
  fb::PaymentRecordT record;
  if (!LoadRecord(store_.state(), keys::Payment(merchant, order_no), &record))
    return std::optional<gateway::PaymentView>();
  gateway::PaymentView view;
  view.merchant = std::string(merchant);
  view.order_no = std::string(order_no);
  view.transaction_id = record.transaction_id;
  view.account = record.account;
  view.channel = fb::EnumNameChannel(record.channel);
  view.state = StateOf(record.status);
  view.order_amount_minor = record.order_amount_minor;
  view.payer_amount_minor = record.card_amount_minor;
  view.refunded_amount_minor = record.refunded_amount_minor;
  view.paid_at_ns = record.occurred_at_ns;
  return std::optional<gateway::PaymentView>(std::move(view));
}

Result<std::optional<gateway::OrderView>> ShardReads::Order(std::string_view merchant,
                                                            std::string_view order_no) const {
  fb::OrderRecordT record;
  if (!LoadRecord(store_.state(), keys::Order(merchant, order_no), &record))
    return std::optional<gateway::OrderView>();
  fb::ClosedOrderRecordT closed;
  const bool was_closed = LoadRecord(store_.state(), keys::ClosedOrder(merchant, order_no), &closed);
  return std::optional<gateway::OrderView>(
      gateway::OrderView{record.amount_minor, fb::EnumNameChannel(record.channel), record.expires_at_ns,
                         was_closed, record.payment_code, record.notify_url});
}

Result<std::optional<gateway::CustomerMediumView>> ShardReads::CustomerMedium(std::string_view customer,
                                                                              std::string_view medium) const {
  const char* const* names = fb::EnumNamesMedium();
  for (int value = 0; value <= static_cast<int>(fb::Medium::MAX); ++value) {
    const auto candidate = static_cast<fb::Medium>(value);
    if (candidate == fb::Medium::none || medium != names[value]) continue;
    fb::CustomerMediumRecordT record;
    if (!LoadRecord(store_.state(), keys::CustomerMedium(customer, candidate), &record)) break;
    return std::optional<gateway::CustomerMediumView>(
        gateway::CustomerMediumView{record.public_part, record.failures, record.locked, record.last_step});
  }
  return std::optional<gateway::CustomerMediumView>();
}

Result<std::optional<gateway::PaymentCodeView>> ShardReads::PaymentCode(std::string_view payment_code) const {
  fb::PaymentCodeRecordT record;
  if (!LoadRecord(store_.state(), keys::PaymentCode(payment_code), &record))
    return std::optional<gateway::PaymentCodeView>();
  return std::optional<gateway::PaymentCodeView>(gateway::PaymentCodeView{
      record.customer, record.account, fb::EnumNameMedium(record.medium), record.expires_at_ns, record.used,
      record.waiting_merchant, record.waiting_order});
}

Status ShardReads::ScanTransaction(std::string_view transaction_id,
                                   const std::function<bool(const fb::EventBody&)>& fn) const {
  const size_t dash = transaction_id.find('-');
  uint64_t first = 0;
  if (dash == std::string_view::npos) return Status::Ok();
  const std::string_view number = transaction_id.substr(dash + 1);
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), first);
  if (error != std::errc() || end != number.data() + number.size() || first == 0) return Status::Ok();
  Status problem;
  const Status scanned =
      store_.ScanEvents(first, first + kTransactionEventsMax - 1, [&](uint64_t, std::string_view record) {
        Result<DecodedEvent> event = DecodeEventRecord(record);
        if (!event.ok()) {
          problem = event.status();
          return false;
        }
        const flatbuffers::String* id = event->body->transaction_id();
        if (id == nullptr || id->string_view() != transaction_id) return false;
        return !fn(*event->body);
      });
  return scanned.ok() ? problem : scanned;
}

Result<gateway::NoticeBatch> ShardReads::NoticesAfter(uint64_t after, size_t events_max) const {
  Result<std::optional<std::pair<uint64_t, std::string>>> last = store_.LastEvent();
  if (!last.ok()) return last.status();
  const uint64_t last_sequence = last->has_value() ? (*last)->first : 0;
  if (after > last_sequence) {
    return Status::Corruption("read through event " + std::to_string(after) + " but the ledger ends at " +
                              std::to_string(last_sequence));
  }
  gateway::NoticeBatch batch;
  batch.through = after;
  Status problem;
  const Status scanned =
      store_.ScanEvents(after + 1, after + events_max, [&](uint64_t sequence, std::string_view record) {
        Result<DecodedEvent> event = DecodeEventRecord(record);
        if (!event.ok()) {
          problem = event.status();
          return false;
        }
        if (const fb::PaymentCaptured* paid = event->body->payload_as_PaymentCaptured()) {
          // A payment of another shard's created order carries the order's notify_url too (the leg that
          // brought it here did: events.fbs OrderForwarded).
          if (!StringOf(paid->notify_url()).empty()) {
            batch.notices.push_back({sequence, gateway::Notice::Kind::kTransaction,
                                     StringOf(paid->merchant()), StringOf(paid->merchant_order_no()), "",
                                     StringOf(paid->notify_url())});
          }
        } else if (const fb::PaymentRefunded* refunded = event->body->payload_as_PaymentRefunded()) {
          if (!StringOf(refunded->notify_url()).empty()) {
            batch.notices.push_back({sequence, gateway::Notice::Kind::kRefund, StringOf(refunded->merchant()),
                                     StringOf(refunded->merchant_order_no()), StringOf(refunded->refund_no()),
                                     StringOf(refunded->notify_url())});
          }
        }
        batch.through = sequence;
        return true;
      });
  if (!scanned.ok()) return scanned;
  if (!problem.ok()) return problem;
  return batch;
}

Result<std::optional<gateway::PaymentView>> ShardReads::PaymentByTransaction(
    std::string_view transaction_id) const {
  std::string merchant;
  std::string order_no;
  const Status scanned = ScanTransaction(transaction_id, [&](const fb::EventBody& body) {
    const fb::PaymentCaptured* captured = body.payload_as_PaymentCaptured();
    if (captured == nullptr) return false;
    merchant = StringOf(captured->merchant());
    order_no = StringOf(captured->merchant_order_no());
    return true;
  });
  if (!scanned.ok()) return scanned;
  if (merchant.empty()) return std::optional<gateway::PaymentView>();
  return Payment(merchant, order_no);
}

Result<std::optional<gateway::RefundView>> ShardReads::Refund(std::string_view merchant,
                                                              std::string_view refund_no) const {
  fb::RefundRecordT record;
  if (!LoadRecord(store_.state(), keys::Refund(merchant, refund_no), &record))
    return std::optional<gateway::RefundView>();
  gateway::RefundView view;
  view.merchant = std::string(merchant);
  view.refund_no = std::string(refund_no);
  view.order_no = record.merchant_order_no;
  view.refund_transaction_id = record.transaction_id;
  const Status scanned = ScanTransaction(record.transaction_id, [&](const fb::EventBody& body) {
    const fb::PaymentRefunded* refunded = body.payload_as_PaymentRefunded();
    if (refunded == nullptr) return false;
    view.amount_minor = refunded->amount_minor();
    view.payer_amount_minor = refunded->card_amount_minor();
    view.refunded_at_ns = body.recorded_at_ns();
    return true;
  });
  if (!scanned.ok()) return scanned;
  return std::optional<gateway::RefundView>(std::move(view));
}

Result<std::optional<uint32_t>> ShardReads::OrderRoutedTo(std::string_view merchant,
                                                          std::string_view order_no) const {
  fb::OrderRouteRecordT route;
  if (!LoadRecord(store_.state(), keys::OrderRoute(std::string(merchant) + "/" + std::string(order_no)),
                  &route))
    return std::optional<uint32_t>();
  return std::optional<uint32_t>(route.shard);
}

Result<std::vector<recon::Line>> ShardReads::TradeLines(std::string_view merchant, int date) const {
  return recon::LedgerLines(store_, date, std::string(merchant));
}

Result<std::string> ShardReads::TradeBill(std::string_view merchant, int date) const {
  Result<std::vector<recon::Line>> lines = TradeLines(merchant, date);
  if (!lines.ok()) return lines.status();
  return recon::WeChatTradeBill(*lines, merchant, timezone_offset_minutes_);
}

}  // namespace ledger::cli
