#include "gateway_ledger.h"

#include <charconv>

#include "events/event.h"
#include "ledger/command.h"
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

gateway::CommandAnswer AnswerOf(const CommandResult& result) {
  gateway::CommandAnswer answer;
  switch (result.kind) {
    case CommandResult::Kind::kAccepted:
      answer.kind = gateway::CommandAnswer::Kind::kAccepted;
      break;
    case CommandResult::Kind::kDuplicate:
      answer.kind = gateway::CommandAnswer::Kind::kDuplicate;
      break;
    default:  // kPending cannot happen on a single shard
      answer.kind = gateway::CommandAnswer::Kind::kRejected;
  }
  answer.reason = result.reason;
  answer.detail = result.detail;
  answer.transaction_id = result.transaction_id;
  return answer;
}

}  // namespace

Result<std::unique_ptr<InProcessLedger>> InProcessLedger::Open(const LedgerOptions& options,
                                                               size_t queue_max) {
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options);
  if (!ledger.ok()) return ledger.status();
  return std::unique_ptr<InProcessLedger>(new InProcessLedger(std::move(ledger).value(), queue_max));
}

InProcessLedger::InProcessLedger(std::unique_ptr<Ledger> ledger, size_t queue_max)
    : ledger_(std::move(ledger)), queue_max_(queue_max) {
  worker_ = std::thread([this] { Work(); });
}

InProcessLedger::~InProcessLedger() { Stop(); }

void InProcessLedger::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::deque<Waiting> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(queue_);
  }
  for (Waiting& waiting : left) waiting.done(Status::Aborted("the gateway is stopping"));
}

Status InProcessLedger::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

void InProcessLedger::Submit(std::string command_line, Done done) {
  Status refused;
  {
    std::lock_guard lock(mutex_);
    if (!failure_.ok() || stopping_) {
      refused = Status::Aborted("the ledger stopped");
    } else if (queue_.size() >= queue_max_) {
      refused = Status::Aborted("the ledger's queue is full");
    } else {
      queue_.push_back({std::move(command_line), std::move(done)});
    }
  }
  // Answered outside the lock: an answer may submit the next command (a codepay waiting for its customer).
  if (!refused.ok()) return done(refused);
  wake_.notify_one();
}

void InProcessLedger::Work() {
  while (true) {
    std::deque<Waiting> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      batch.swap(queue_);
    }
    if (CommitAndAnswer(batch)) continue;
    std::deque<Waiting> left;
    Status failure;
    {
      std::lock_guard lock(mutex_);
      left.swap(queue_);
      failure = failure_;
    }
    for (Waiting& waiting : left) waiting.done(failure);
    return;
  }
}

bool InProcessLedger::CommitAndAnswer(std::deque<Waiting>& batch) {
  std::vector<std::pair<Done, Result<gateway::CommandAnswer>>> staged;
  auto commit = [&]() {
    const Status committed = ledger_->CommitGroup();
    for (auto& [done, answer] : staged) done(committed.ok() ? std::move(answer) : committed);
    staged.clear();
    if (committed.ok()) return true;
    std::lock_guard lock(mutex_);
    failure_ = committed;
    return false;
  };
  for (size_t i = 0; i < batch.size(); ++i) {
    Result<ParsedCommand> parsed = ParseCommandJson(batch[i].line);
    if (!parsed.ok()) {
      batch[i].done(parsed.status());  // the gateway built a line the ledger cannot read
      continue;
    }
    staged.emplace_back(std::move(batch[i].done), AnswerOf(ledger_->Stage(*parsed)));
    if (ledger_->GroupFull() && !commit()) {
      // The rest of the batch was never staged: each still gets its answer.
      for (size_t rest = i + 1; rest < batch.size(); ++rest) batch[rest].done(failure());
      return false;
    }
  }
  return staged.empty() || commit();
}

Result<std::optional<gateway::MerchantKeyRecordView>> InProcessLedger::MerchantKey(
    std::string_view serial_no) const {
  fb::MerchantKeyRecordT record;
  if (!LoadRecord(ledger_->store().state(), keys::MerchantKey(serial_no), &record))
    return std::optional<gateway::MerchantKeyRecordView>();
  return std::optional<gateway::MerchantKeyRecordView>(
      gateway::MerchantKeyRecordView{record.merchant, record.public_key_pem, record.revoked});
}

Result<std::optional<gateway::PaymentView>> InProcessLedger::Payment(std::string_view merchant,
                                                                     std::string_view order_no) const {
  fb::PaymentRecordT record;
  if (!LoadRecord(ledger_->store().state(), keys::Payment(merchant, order_no), &record))
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

Result<std::optional<gateway::OrderView>> InProcessLedger::Order(std::string_view merchant,
                                                                 std::string_view order_no) const {
  fb::OrderRecordT record;
  if (!LoadRecord(ledger_->store().state(), keys::Order(merchant, order_no), &record))
    return std::optional<gateway::OrderView>();
  fb::ClosedOrderRecordT closed;
  const bool was_closed =
      LoadRecord(ledger_->store().state(), keys::ClosedOrder(merchant, order_no), &closed);
  return std::optional<gateway::OrderView>(
      gateway::OrderView{record.amount_minor, fb::EnumNameChannel(record.channel), record.expires_at_ns,
                         was_closed, record.payment_code});
}

Result<std::optional<gateway::CustomerMediumView>> InProcessLedger::CustomerMedium(
    std::string_view customer, std::string_view medium) const {
  const char* const* names = fb::EnumNamesMedium();
  for (int value = 0; value <= static_cast<int>(fb::Medium::MAX); ++value) {
    const auto candidate = static_cast<fb::Medium>(value);
    if (candidate == fb::Medium::none || medium != names[value]) continue;
    fb::CustomerMediumRecordT record;
    if (!LoadRecord(ledger_->store().state(), keys::CustomerMedium(customer, candidate), &record)) break;
    return std::optional<gateway::CustomerMediumView>(
        gateway::CustomerMediumView{record.public_part, record.failures, record.locked, record.last_step});
  }
  return std::optional<gateway::CustomerMediumView>();
}

Result<std::optional<gateway::PaymentCodeView>> InProcessLedger::PaymentCode(
    std::string_view payment_code) const {
  fb::PaymentCodeRecordT record;
  if (!LoadRecord(ledger_->store().state(), keys::PaymentCode(payment_code), &record))
    return std::optional<gateway::PaymentCodeView>();
  return std::optional<gateway::PaymentCodeView>(gateway::PaymentCodeView{
      record.customer, record.account, fb::EnumNameMedium(record.medium), record.expires_at_ns, record.used,
      record.waiting_merchant, record.waiting_order});
}

Status InProcessLedger::ScanTransaction(std::string_view transaction_id,
                                        const std::function<bool(const fb::EventBody&)>& fn) const {
  const size_t dash = transaction_id.find('-');
  uint64_t first = 0;
  if (dash == std::string_view::npos) return Status::Ok();
  const std::string_view number = transaction_id.substr(dash + 1);
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), first);
  if (error != std::errc() || end != number.data() + number.size() || first == 0) return Status::Ok();
  Status problem;
  const Status scanned = ledger_->store().ScanEvents(
      first, first + kTransactionEventsMax - 1, [&](uint64_t, std::string_view record) {
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

Result<gateway::NoticeBatch> InProcessLedger::NoticesAfter(uint64_t after, size_t events_max) const {
  Result<std::optional<std::pair<uint64_t, std::string>>> last = ledger_->store().LastEvent();
  if (!last.ok()) return last.status();
  const uint64_t last_sequence = last->has_value() ? (*last)->first : 0;
  if (after > last_sequence) {
    return Status::Corruption("read through event " + std::to_string(after) + " but the ledger ends at " +
                              std::to_string(last_sequence));
  }
  gateway::NoticeBatch batch;
  batch.through = after;
  Status problem;
  const Status scanned = ledger_->store().ScanEvents(
      after + 1, after + events_max, [&](uint64_t sequence, std::string_view record) {
        Result<DecodedEvent> event = DecodeEventRecord(record);
        if (!event.ok()) {
          problem = event.status();
          return false;
        }
        batch.through = sequence;
        if (const fb::PaymentCaptured* paid = event->body->payload_as_PaymentCaptured()) {
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
        return true;
      });
  if (!scanned.ok()) return scanned;
  if (!problem.ok()) return problem;
  return batch;
}

Result<std::optional<gateway::PaymentView>> InProcessLedger::PaymentByTransaction(
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

Result<std::optional<gateway::RefundView>> InProcessLedger::Refund(std::string_view merchant,
                                                                   std::string_view refund_no) const {
  fb::RefundRecordT record;
  if (!LoadRecord(ledger_->store().state(), keys::Refund(merchant, refund_no), &record))
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

Result<std::string> InProcessLedger::TradeBill(std::string_view merchant, int date) const {
  Result<std::vector<recon::Line>> lines = recon::LedgerLines(ledger_->store(), date, std::string(merchant));
  if (!lines.ok()) return lines.status();
  return recon::WeChatTradeBill(*lines, merchant, ledger_->config().timezone_offset_minutes);
}

}  // namespace ledger::cli
