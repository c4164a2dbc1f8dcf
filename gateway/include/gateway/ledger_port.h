// What the gateway asks of the ledger, whichever way it reaches it (in-process today; through ledger.commands
// and ledger.results with several shards): a merchant's keys, an order's payment and its refunds as the
// ledger recorded them, and commands whose answers come once they are durable. The gateway keeps nothing of
// its own that must survive: orders and their idempotency live in the ledger (docs/ARCHITECTURE.md, "The
// front door").
// Thread-safety: every member may be called from any thread; `done` callbacks run on the port's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ledger::gateway {

// A merchant's request-signing key as the ledger registered it (events.fbs: MerchantKeyAdded).
struct MerchantKeyRecordView {
  std::string merchant;
  std::string public_key_pem;
  bool revoked = false;
};

enum class PaymentState { kSuccess, kReversed, kPartiallyRefunded, kRefunded };

// A captured payment (state.fbs: PaymentRecord), in the terms the merchant API answers with.
struct PaymentView {
  std::string merchant;
  std::string order_no;
  std::string transaction_id;
  std::string account;  // the account or scheme receivable charged
  std::string channel;  // the ledger's channel name (events.fbs: Channel)
  PaymentState state = PaymentState::kSuccess;
  int64_t order_amount_minor = 0;  // the order's total
  int64_t payer_amount_minor = 0;  // what the payer's account paid (the rest: points, coupon, discount)
  int64_t refunded_amount_minor = 0;
  int64_t paid_at_ns = 0;  // when the ledger recorded it
};

// An order waiting for its customer (events.fbs: OrderCreated) and whether the merchant closed it.
struct OrderView {
  int64_t amount_minor = 0;
  std::string channel;
  int64_t expires_at_ns = 0;
  bool closed = false;
  std::string payment_code;  // the payment code it waits on (a codepay waiting for its customer: USERPAYING)
  std::string notify_url;    // where its payment is notified (empty: nowhere)
};

// A payment code by its id (events.fbs: PaymentCodeIssued, PaymentCodeUsed).
struct PaymentCodeView {
  std::string customer;
  std::string account;
  std::string medium;
  int64_t expires_at_ns = 0;
  bool used = false;
  std::string waiting_merchant;  // the order it waits on, if any
  std::string waiting_order;
};

// A refund (events.fbs: PaymentRefunded).
struct RefundView {
  std::string merchant;
  std::string refund_no;
  std::string order_no;
  std::string refund_transaction_id;
  int64_t amount_minor = 0;        // of the order's total
  int64_t payer_amount_minor = 0;  // back to the payer's account
  int64_t refunded_at_ns = 0;
};

// A customer's enrolled authentication medium (events.fbs: MediumEnrolled, MediumProofFailed,
// MediumProofUsed).
struct CustomerMediumView {
  std::string public_part;  // a PEM public key, a phone number, or empty
  int failures = 0;         // failed proofs in a row
  bool locked = false;
  int64_t last_step = 0;  // the last otp_card step a payment used
};

// What the notifier tells a merchant of: a payment or a refund whose order or refund request named a
// notify_url (events.fbs: PaymentCaptured, PaymentRefunded).
struct Notice {
  enum class Kind { kTransaction, kRefund };
  uint64_t sequence = 0;  // the event's
  Kind kind = Kind::kTransaction;
  std::string merchant;
  std::string order_no;
  std::string refund_no;  // for a refund
  std::string notify_url;
};
struct NoticeBatch {
  std::vector<Notice> notices;
  uint64_t through = 0;  // every event through this sequence was read
};

// A command's answer once it is durable (ledger/ledger.h: CommandResult).
struct CommandAnswer {
  enum class Kind { kAccepted, kRejected, kDuplicate };
  Kind kind = Kind::kRejected;
  std::string reason;  // the rejection's reason code (also for a duplicate of a rejected command)
  std::string detail;
  std::string transaction_id;
};

class LedgerPort {
 public:
  virtual ~LedgerPort() = default;
  // Reads of what is durable. nullopt when there is none. Errors: IoError, Corruption (a record the store
  // cannot give back).
  virtual Result<std::optional<MerchantKeyRecordView>> MerchantKey(std::string_view serial_no) const = 0;
  virtual Result<std::optional<PaymentView>> Payment(std::string_view merchant,
                                                     std::string_view order_no) const = 0;
  virtual Result<std::optional<PaymentView>> PaymentByTransaction(std::string_view transaction_id) const = 0;
  virtual Result<std::optional<OrderView>> Order(std::string_view merchant,
                                                 std::string_view order_no) const = 0;
  virtual Result<std::optional<RefundView>> Refund(std::string_view merchant,
                                                   std::string_view refund_no) const = 0;
  // `medium` by its name (u_shield, otp_card, …); nullopt also for a name that is no medium.
  virtual Result<std::optional<CustomerMediumView>> CustomerMedium(std::string_view customer,
                                                                   std::string_view medium) const = 0;
  virtual Result<std::optional<PaymentCodeView>> PaymentCode(std::string_view payment_code) const = 0;
  // The merchant's WeChat trade bill (bill type ALL) of clearing date `date` (yyyymmdd) so far: every payment
  // and refund of that date, as `ledger reconcile --format wechat` reads it back. Errors: as the reads, and
  // InvalidArgument (a number the format cannot hold).
  virtual Result<std::string> TradeBill(std::string_view merchant, int date) const = 0;
  // The notices among the durable events after sequence `after`, reading at most `events_max` events.
  // Errors: as the reads; Corruption when `after` is beyond the last durable event (whoever read that far
  // read another history: a store restored from a backup, or another ledger's).
  virtual Result<NoticeBatch> NoticesAfter(uint64_t after, size_t events_max) const = 0;
  // Sends one command line (README: command format). `done` runs once with its answer when it is durable,
  // or an error: Aborted when the port's bounded queue is full or the port stopped, IoError when the commit
  // failed (the command may or may not be recorded; asking again with the same command id tells).
  using Done = std::function<void(Result<CommandAnswer>)>;
  virtual void Submit(std::string command_line, Done done) = 0;
};

}  // namespace ledger::gateway
