// The gateway's ledger when it runs without brokers: the shard's Ledger in this process, owned by one worker
// thread that stages the commands queued since its last commit and commits them as one group (so concurrent
// requests share an fsync), then answers each. Reads go to the store's committed records from the caller's
// thread (storage/store.h: reads from any thread).
// Thread-safety: every member from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gateway/ledger_port.h"
#include "gateway_store_reads.h"
#include "ledger/ledger.h"

namespace ledger::cli {

class InProcessLedger final : public gateway::LedgerPort {
 public:
  // Opens the shard and starts the worker; at most `queue_max` commands wait for it (Aborted beyond).
  // Errors: as Ledger::Open.
  static Result<std::unique_ptr<InProcessLedger>> Open(const LedgerOptions& options, size_t queue_max);
  // Stops the worker (after the group it is committing, whose commands it answers) and answers every
  // command still waiting Aborted; later Submits are answered Aborted at once. Idempotent. Call it while
  // whatever the answers reach (the server, the API) still exists.
  void Stop();
  ~InProcessLedger() override;  // Stop()

  Result<std::optional<gateway::MerchantKeyRecordView>> MerchantKey(
      std::string_view serial_no) const override;
  Result<std::optional<gateway::PaymentView>> Payment(std::string_view merchant,
                                                      std::string_view order_no) const override;
  Result<std::optional<gateway::PaymentView>> PaymentByTransaction(
      std::string_view transaction_id) const override;
  Result<std::optional<gateway::OrderView>> Order(std::string_view merchant,
                                                  std::string_view order_no) const override;
  Result<std::optional<gateway::RefundView>> Refund(std::string_view merchant,
                                                    std::string_view refund_no) const override;
  Result<std::optional<gateway::CustomerMediumView>> CustomerMedium(std::string_view customer,
                                                                    std::string_view medium) const override;
  Result<std::optional<gateway::PaymentCodeView>> PaymentCode(std::string_view payment_code) const override;
  Result<std::string> TradeBill(std::string_view merchant, int date) const override;
  Result<gateway::NoticeBatch> NoticesAfter(uint64_t after, size_t events_max) const override;
  void Submit(std::string command_line, Done done) override;

  // Ok while the worker runs; the commit error that stopped it otherwise (nothing is accepted after it).
  Status failure() const;

 private:
  struct Waiting {
    std::string line;
    Done done;
  };
  InProcessLedger(std::unique_ptr<Ledger> ledger, size_t queue_max);
  void Work();
  // Stages `batch` (committing whenever a group is full) and answers it. False when a commit failed.
  bool CommitAndAnswer(std::deque<Waiting>& batch);
  std::unique_ptr<Ledger> ledger_;
  const ShardReads reads_;
  const size_t queue_max_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Waiting> queue_;
  bool stopping_ = false;
  Status failure_;
  std::thread worker_;
};

}  // namespace ledger::cli
