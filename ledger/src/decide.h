// Decide: validates one command against the current state and turns it into event payloads, or into a
// rejection reason. Pure: reads state, writes nothing; the caller sequences and applies the events.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "schemas/commands_generated.h"
#include "schemas/events_generated.h"
#include "schemas/state_generated.h"
#include "storage/kv.h"

namespace ledger {

struct DecideContext {
  const LedgerConfig& config;
  const KvReader& state;
  // The ledger time that decides clearing dates, limit days, coupon expiry and the reversal and refund
  // windows: the ledger's clock (with --clock occurred it follows the command's occurred_at; see ClockMode).
  int64_t now_ns;
  // What the order's shard says of a forwarded payment's created order, which the customer's shard cannot see
  // (legs.cc; events.fbs OrderForwarded). Empty for every other decision.
  struct OrderShardWord {
    std::string_view waiting_payment_code;  // the payment code the order waits on
    std::string_view notify_url;            // where its payment is notified
  } order_shard;
};

struct Decision {
  std::string reason;  // empty when accepted
  std::string detail;  // one line for people, when rejected
  std::vector<fb::PayloadUnion> payloads;
  bool accepted() const { return reason.empty(); }
};

// Decides a command this shard owns. A transfer whose payee lives on another shard is decided on the payer's
// side only: its one payload is a TransferSent leg to the payee's shard (events.fbs: transfers).
Decision Decide(const fb::CommandT& command, const DecideContext& context);

// The payee's side of a transfer another shard (`payer_shard`) sent: an accepted decision's one payload is
// the TransferReceived (its leg address left for the caller to fill); a refused one carries the reason only.
Decision DecideTransferIn(const fb::TransferSent& sent, uint32_t payer_shard, const DecideContext& context);

// The number of the next leg this shard sends to shard `destination` (1 for the first).
uint64_t NextLegNumber(const KvReader& state, uint32_t destination);

// Whether the unpaid order `merchant`/`merchant_order_no` is closed at `at_ns` (events.fbs: OrderClosed, by a
// reversal or close_order).
bool OrderClosedAt(const KvReader& state, const std::string& merchant, const std::string& merchant_order_no,
                   int64_t at_ns);

// The order created to wait for its customer (create_order) as `merchant`/`merchant_order_no`, or nullopt.
std::optional<fb::OrderRecordT> CreatedOrder(const KvReader& state, const std::string& merchant,
                                             const std::string& merchant_order_no);

// Why a payment of an order created to wait for its customer (create_order) is refused at `at_ns`: another
// amount, past its expiry, another payment code; nullopt when it may go on (also for an order never created).
// The order's shard asks before it forwards a payment to its customer's shard, which cannot see the order.
std::optional<Decision> CreatedOrderRefuses(const KvReader& state, const fb::PayT& command, int64_t at_ns);

// What the order's shard checks of an order created to wait for its customer, but its payment code: the
// amount, merchant, order number (unused, not closed) and expiry. Accepted: no payloads.
Decision CheckOrderCanWait(const fb::CreateOrderT& command, const DecideContext& context);

// The event that creates the order `command` describes (its checks passed).
fb::OrderCreatedT OrderCreatedOf(const fb::CreateOrderT& command);

// The payment code's shard reserves the code for the order of another shard that waits on it (create_order
// forwarded with OrderForwarded.reserves_code): a code of its customer, unused, waiting on no order, before
// it expires. Accepted: one PaymentCodeReserved.
Decision DecideReservePaymentCode(const fb::CreateOrderT& command, const DecideContext& context);

}  // namespace ledger
