#include "gateway/pooled_answers.h"

#include <sched.h>

#include "core/assert.h"

namespace ledger::gateway {

PooledAnswers::PooledAnswers(LedgerPort& port, size_t threads, size_t queue_max)
    : port_(port), queue_max_(queue_max) {
  LEDGER_ASSERT(threads >= 1 && queue_max >= 1);
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

PooledAnswers::~PooledAnswers() { Stop(); }

void PooledAnswers::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& thread : threads_)
    if (thread.joinable()) thread.join();
}

size_t PooledAnswers::finished_inline() const {
  std::lock_guard lock(mutex_);
  return finished_inline_;
}

bool PooledAnswers::Queue(Task& task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= queue_max_) {
      ++finished_inline_;
      return false;
    }
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
  return true;
}

// Until stopped and the queue is empty: a stop lets every answer already queued be finished.
void PooledAnswers::Work() {
  while (true) {
    Task task;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void PooledAnswers::Submit(std::string command_line, Done done) {
  port_.Submit(std::move(command_line), [this, done = std::move(done)](Result<CommandAnswer> answer) mutable {
    Task task = [done = std::move(done), answer = std::move(answer)]() mutable { done(std::move(answer)); };
    if (!Queue(task)) task();
  });
}

Result<std::optional<MerchantKeyRecordView>> PooledAnswers::MerchantKey(std::string_view serial_no) const {
  return port_.MerchantKey(serial_no);
}

Result<std::optional<PaymentView>> PooledAnswers::Payment(std::string_view merchant,
                                                          std::string_view order_no) const {
  return port_.Payment(merchant, order_no);
}

Result<std::optional<PaymentView>> PooledAnswers::PaymentByTransaction(
    std::string_view transaction_id) const {
  return port_.PaymentByTransaction(transaction_id);
}

Result<std::optional<OrderView>> PooledAnswers::Order(std::string_view merchant,
                                                      std::string_view order_no) const {
  return port_.Order(merchant, order_no);
}

Result<std::optional<RefundView>> PooledAnswers::Refund(std::string_view merchant,
                                                        std::string_view refund_no) const {
  return port_.Refund(merchant, refund_no);
}

Result<std::optional<CustomerMediumView>> PooledAnswers::CustomerMedium(std::string_view customer,
                                                                        std::string_view medium) const {
  return port_.CustomerMedium(customer, medium);
}

Result<std::optional<PaymentCodeView>> PooledAnswers::PaymentCode(std::string_view payment_code) const {
  return port_.PaymentCode(payment_code);
}

Result<std::string> PooledAnswers::TradeBill(std::string_view merchant, int date) const {
  return port_.TradeBill(merchant, date);
}

Result<NoticeBatch> PooledAnswers::NoticesAfter(uint64_t after, size_t events_max) const {
  return port_.NoticesAfter(after, events_max);
}

size_t UsableCores() {
  cpu_set_t cores;
  CPU_ZERO(&cores);
  if (sched_getaffinity(0, sizeof(cores), &cores) != 0) return 1;
  const int count = CPU_COUNT(&cores);
  return count > 0 ? static_cast<size_t>(count) : 1;
}

}  // namespace ledger::gateway
