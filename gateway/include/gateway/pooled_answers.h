// A ledger port whose command answers are finished on a pool of threads instead of the port's own thread.
//
// Why: finishing an answer — reading the result back and signing the response with the platform key
// (RSA-2048: a few tenths of a millisecond to a millisecond per signature, most of a request's CPU) — runs in
// the `done` callback. On the port's one thread (the in-process ledger's worker, the Kafka port's follower)
// that caps a gateway at one core's signatures whatever cores it has, and the in-process ledger stages no
// next group while it signs. Here `done` is queued for the pool, so the port's thread goes straight back to
// the ledger and the signatures use every core the gateway is given.
//
// Bounded: at most `queue_max` answers wait; past that (or once stopped) an answer is finished on the
// calling thread, so none is ever dropped and the queue cannot grow without bound. Each waiting answer also
// holds a request on an open connection, which the server bounds.
// Reads go straight to the wrapped port. Thread-safety: every member may be called from any thread; `done`
// callbacks run on a pool thread, or on the port's thread when the queue is full. Stop drains the queue
// (every waiting answer is finished) and joins the threads; call it after the wrapped port stopped, so that
// no answer arrives afterwards, and before what the callbacks use goes.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/ledger_port.h"

namespace ledger::gateway {

class PooledAnswers final : public LedgerPort {
 public:
  // `threads` ≥ 1 pool threads; `queue_max` ≥ 1.
  PooledAnswers(LedgerPort& port, size_t threads, size_t queue_max);
  ~PooledAnswers() override;
  PooledAnswers(const PooledAnswers&) = delete;
  PooledAnswers& operator=(const PooledAnswers&) = delete;

  void Stop();
  // How many answers were finished on the calling thread because the queue was full (or stopped).
  size_t finished_inline() const;

  Result<std::optional<MerchantKeyRecordView>> MerchantKey(std::string_view serial_no) const override;
  Result<std::optional<PaymentView>> Payment(std::string_view merchant,
                                             std::string_view order_no) const override;
  Result<std::optional<PaymentView>> PaymentByTransaction(std::string_view transaction_id) const override;
  Result<std::optional<OrderView>> Order(std::string_view merchant, std::string_view order_no) const override;
  Result<std::optional<RefundView>> Refund(std::string_view merchant,
                                           std::string_view refund_no) const override;
  Result<std::optional<CustomerMediumView>> CustomerMedium(std::string_view customer,
                                                           std::string_view medium) const override;
  Result<std::optional<PaymentCodeView>> PaymentCode(std::string_view payment_code) const override;
  Result<std::string> TradeBill(std::string_view merchant, int date) const override;
  Result<NoticeBatch> NoticesAfter(uint64_t after, size_t events_max) const override;
  void Submit(std::string command_line, Done done) override;

 private:
  using Task = std::function<void()>;
  // Queues `task`; false when the queue is full or the pool stopped (the caller runs it).
  bool Queue(Task& task);
  void Work();

  LedgerPort& port_;
  const size_t queue_max_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queue_;      // mutex_
  bool stopping_ = false;       // mutex_
  size_t finished_inline_ = 0;  // mutex_
  std::vector<std::thread> threads_;
};

// The cores this process may run on (its CPU affinity), at least 1.
size_t UsableCores();

}  // namespace ledger::gateway
