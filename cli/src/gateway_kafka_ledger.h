// The gateway's ledger when it runs with brokers: commands go through ledger.commands to the shard that owns
// each (ledger/routing.h), signed with the gateway's producer key, and are answered from ledger.results;
// reads come from replicas the port folds from each shard's ledger.events partition into stores of its own
// (`<replica_dir>/shard-K`: the events, chain-checked, and the ledger's projections of them). An answer waits
// until the shard's replica holds the events it reports, so whatever the API reads next after an answer is
// there. The replicas can be deleted at any time: they are rebuilt from Kafka at the next start, which is why
// the gateway stays stateless (docs/ARCHITECTURE.md, "The front door").
// Thread-safety: every member from any thread; `done` callbacks run on the port's thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/signing.h"
#include "gateway/ledger_port.h"

namespace ledger::cli {

struct KafkaLedgerOptions {
  std::string brokers;
  uint32_t shards = 1;
  // Signs every command (a key registered with role gateway). Null: the port only reads (a notifier): every
  // command is answered Aborted.
  std::shared_ptr<const Signer> producer_key;
  // The ledger's checkpoint key ([audit] public_key): every checkpoint the replicas fold must be signed by it
  // over the chain they hold, or the replica stops (Corruption). Null: checkpoints are not checked (a warning
  // at start).
  std::shared_ptr<const SignatureVerifier> checkpoint_key;
  std::string replica_dir;
  int timezone_offset_minutes = 480;
  size_t waiting_max = 4096;  // commands waiting for their results at once (Aborted beyond)
  // A command whose result has not come by then is answered IoError (it may still be applied: asking again
  // with the same command id tells).
  int64_t answer_timeout_ms = 30'000;
};

class KafkaLedger final : public gateway::LedgerPort {
 public:
  // Opens the replicas, folds each up to its partition's end as it is now (progress on stderr), starts the
  // results readers at their ends and the port's thread. Errors: IoError (Kafka unreachable, a store),
  // Corruption (a partition whose events do not chain: another history than the replica's).
  static Result<std::unique_ptr<KafkaLedger>> Open(const KafkaLedgerOptions& options);
  // Stops the port's thread and answers every waiting command Aborted; later Submits are answered Aborted.
  // Idempotent.
  void Stop();
  ~KafkaLedger() override;

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
  // Every shard's lines of the merchant (an order's lines live on its shard).
  Result<std::string> TradeBill(std::string_view merchant, int date) const override;
  // Shard 0's notices (sequences are per shard: with several shards, one notifier per shard reads
  // NoticesOf(K)).
  Result<gateway::NoticeBatch> NoticesAfter(uint64_t after, size_t events_max) const override;
  void Submit(std::string command_line, Done done) override;

  uint32_t shards() const;
  // A port whose NoticesAfter reads shard `shard`'s events and whose other members are this port's; it must
  // not outlive this.
  std::unique_ptr<gateway::LedgerPort> NoticesOf(uint32_t shard) const;
  // Ok while the port's thread runs; what stopped it otherwise (a replica that cannot follow its partition).
  Status failure() const;

 private:
  KafkaLedger();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledger::cli
