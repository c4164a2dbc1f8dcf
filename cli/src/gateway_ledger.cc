#include "gateway_ledger.h"

#include "ledger/command.h"

namespace ledger::cli {
namespace {

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
    : ledger_(std::move(ledger)),
      reads_(ledger_->store(), ledger_->config().timezone_offset_minutes),
      queue_max_(queue_max) {
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
  return reads_.MerchantKey(serial_no);
}

Result<std::optional<gateway::PaymentView>> InProcessLedger::Payment(std::string_view merchant,
                                                                     std::string_view order_no) const {
  return reads_.Payment(merchant, order_no);
}

Result<std::optional<gateway::PaymentView>> InProcessLedger::PaymentByTransaction(
    std::string_view transaction_id) const {
  return reads_.PaymentByTransaction(transaction_id);
}

Result<std::optional<gateway::OrderView>> InProcessLedger::Order(std::string_view merchant,
                                                                 std::string_view order_no) const {
  return reads_.Order(merchant, order_no);
}

Result<std::optional<gateway::RefundView>> InProcessLedger::Refund(std::string_view merchant,
                                                                   std::string_view refund_no) const {
  return reads_.Refund(merchant, refund_no);
}

Result<std::optional<gateway::CustomerMediumView>> InProcessLedger::CustomerMedium(
    std::string_view customer, std::string_view medium) const {
  return reads_.CustomerMedium(customer, medium);
}

Result<std::optional<gateway::PaymentCodeView>> InProcessLedger::PaymentCode(
    std::string_view payment_code) const {
  return reads_.PaymentCode(payment_code);
}

Result<std::string> InProcessLedger::TradeBill(std::string_view merchant, int date) const {
  return reads_.TradeBill(merchant, date);
}

Result<gateway::NoticeBatch> InProcessLedger::NoticesAfter(uint64_t after, size_t events_max) const {
  return reads_.NoticesAfter(after, events_max);
}

}  // namespace ledger::cli
