// What the gateway reads of one shard's store: the in-process shard's own store, or a replica the Kafka port
// folds from the shard's ledger.events partition (the same events give the same records). Reads only
// committed records, so any thread may call it (storage/store.h: reads from any thread).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/ledger_port.h"
#include "reconcile/reconcile.h"
#include "storage/store.h"

namespace ledger::fb {
struct EventBody;
}  // namespace ledger::fb

namespace ledger::cli {

class ShardReads {
 public:
  // `store` must outlive this.
  ShardReads(const Store& store, int timezone_offset_minutes);

  // As gateway::LedgerPort's members of the same names, on this shard's records.
  Result<std::optional<gateway::MerchantKeyRecordView>> MerchantKey(std::string_view serial_no) const;
  Result<std::optional<gateway::PaymentView>> Payment(std::string_view merchant,
                                                      std::string_view order_no) const;
  Result<std::optional<gateway::PaymentView>> PaymentByTransaction(std::string_view transaction_id) const;
  Result<std::optional<gateway::OrderView>> Order(std::string_view merchant, std::string_view order_no) const;
  Result<std::optional<gateway::RefundView>> Refund(std::string_view merchant,
                                                    std::string_view refund_no) const;
  Result<std::optional<gateway::CustomerMediumView>> CustomerMedium(std::string_view customer,
                                                                    std::string_view medium) const;
  Result<std::optional<gateway::PaymentCodeView>> PaymentCode(std::string_view payment_code) const;
  Result<std::string> TradeBill(std::string_view merchant, int date) const;
  Result<gateway::NoticeBatch> NoticesAfter(uint64_t after, size_t events_max) const;
  // The shard that holds the payment of an order of this shard whose commands another shard decides (the
  // customer's: docs/ARCHITECTURE.md, Shards); nullopt for an order that has no route.
  Result<std::optional<uint32_t>> OrderRoutedTo(std::string_view merchant, std::string_view order_no) const;
  // The reconciliation lines of `merchant` on clearing date `date` this shard holds (a line lives on its
  // order's shard), which TradeBill writes. Errors: as recon::LedgerLines.
  Result<std::vector<recon::Line>> TradeLines(std::string_view merchant, int date) const;

 private:
  // The events of transaction `transaction_id` ("<shard>-<first sequence>"), payload by payload, until fn
  // returns true.
  Status ScanTransaction(std::string_view transaction_id,
                         const std::function<bool(const fb::EventBody&)>& fn) const;

  const Store& store_;
  const int timezone_offset_minutes_;
};

}  // namespace ledger::cli
