// Commands: parsing the public JSON Lines format (README: Command format) into fb::CommandT.
// Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/sha256.h"
#include "core/status.h"
#include "schemas/commands_generated.h"

namespace ledger {

// Bounds on input, so one bad line cannot exhaust memory.
inline constexpr size_t kCommandLineBytesMax = 64 * 1024;
inline constexpr size_t kIdentifierBytesMax = 128;
inline constexpr size_t kTextBytesMax = 512;
inline constexpr size_t kNotifyUrlBytesMax = 256;  // WeChat's notify_url limit
// A merchant key's serial (add_merchant_key): letters, digits, '-' and '_', as in an Authorization header.
inline constexpr size_t kSerialBytesMax = 64;
inline constexpr char kSerialCharacters[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// A merchant's public key in PEM: an RSA-4096 key takes about 800 bytes.
inline constexpr size_t kPublicKeyPemBytesMax = 2048;
// An enrolled medium locks at this many failed proofs in a row (record_proof_failure).
inline constexpr int kMediumProofFailuresMax = 5;

// set_customer_limit: an explicitly given negative limit, kept apart from an absent one (kNoLimit, -1), so
// validation rejects it with INVALID_AMOUNT.
inline constexpr int64_t kNegativeLimitGiven = INT64_MIN;

// Stable rejection reason codes (README lists them; scripts match on them).
namespace reason {
inline constexpr char kMalformedCommand[] = "MALFORMED_COMMAND";
inline constexpr char kInvalidAmount[] = "INVALID_AMOUNT";
inline constexpr char kUnknownAccount[] = "UNKNOWN_ACCOUNT";
inline constexpr char kUnknownMerchant[] = "UNKNOWN_MERCHANT";
inline constexpr char kAlreadyExists[] = "ALREADY_EXISTS";
inline constexpr char kDuplicateOrder[] = "DUPLICATE_ORDER";
inline constexpr char kDuplicateCommandMismatch[] = "DUPLICATE_COMMAND_MISMATCH";
inline constexpr char kInsufficientFunds[] = "INSUFFICIENT_FUNDS";
inline constexpr char kCreditLimitExceeded[] = "CREDIT_LIMIT_EXCEEDED";
inline constexpr char kInsufficientPoints[] = "INSUFFICIENT_POINTS";
inline constexpr char kCouponNotFound[] = "COUPON_NOT_FOUND";
inline constexpr char kCouponAlreadyUsed[] = "COUPON_ALREADY_USED";
inline constexpr char kCouponExpired[] = "COUPON_EXPIRED";
inline constexpr char kCouponNotApplicable[] = "COUPON_NOT_APPLICABLE";
inline constexpr char kLimitAbovePolicy[] = "LIMIT_ABOVE_POLICY";
inline constexpr char kLimitPerPaymentExceeded[] = "LIMIT_PER_PAYMENT_EXCEEDED";
inline constexpr char kLimitDailyExceeded[] = "LIMIT_DAILY_EXCEEDED";
inline constexpr char kLimitMonthlyExceeded[] = "LIMIT_MONTHLY_EXCEEDED";
inline constexpr char kLimitCountExceeded[] = "LIMIT_COUNT_EXCEEDED";
inline constexpr char kChannelLimitExceeded[] = "CHANNEL_LIMIT_EXCEEDED";
inline constexpr char kReversalWindowClosed[] = "REVERSAL_WINDOW_CLOSED";
inline constexpr char kRefundWindowClosed[] = "REFUND_WINDOW_CLOSED";
inline constexpr char kAlreadyRefunded[] = "ALREADY_REFUNDED";
inline constexpr char kAlreadyReversed[] = "ALREADY_REVERSED";
inline constexpr char kOriginalNotFound[] = "ORIGINAL_NOT_FOUND";
inline constexpr char kRefundExceedsRemaining[] = "REFUND_EXCEEDS_REMAINING";
inline constexpr char kClockSkew[] = "CLOCK_SKEW";
inline constexpr char kWrongShard[] = "WRONG_SHARD";
inline constexpr char kOrderBusy[] = "ORDER_BUSY";
inline constexpr char kOrderClosed[] = "ORDER_CLOSED";
inline constexpr char kUnknownMerchantKey[] = "UNKNOWN_MERCHANT_KEY";
inline constexpr char kMerchantKeyRevoked[] = "MERCHANT_KEY_REVOKED";
inline constexpr char kUnknownProducerKey[] = "UNKNOWN_PRODUCER_KEY";
inline constexpr char kProducerKeyRevoked[] = "PRODUCER_KEY_REVOKED";
// A record of ledger.commands that no registered, unrevoked producer key signed for its type (recorded under
// kafka:<partition>:<offset>: the command id it names stays free for the genuine command).
inline constexpr char kUnauthenticatedCommand[] = "UNAUTHENTICATED_COMMAND";
inline constexpr char kOrderPaid[] = "ORDER_PAID";
inline constexpr char kOrderExpired[] = "ORDER_EXPIRED";
inline constexpr char kMediumNotEnrolled[] = "MEDIUM_NOT_ENROLLED";
inline constexpr char kMediumLocked[] = "MEDIUM_LOCKED";
inline constexpr char kMediumProofInvalid[] = "MEDIUM_PROOF_INVALID";
inline constexpr char kPaymentCodeInvalid[] = "PAYMENT_CODE_INVALID";
inline constexpr char kPaymentCodeExpired[] = "PAYMENT_CODE_EXPIRED";
}  // namespace reason

struct ParsedCommand {
  std::string command_id;
  std::string type;
  // SHA-256 of the command's canonical JSON (keys sorted, no spaces): same content, same fingerprint.
  Digest fingerprint{};
  // Set when the command is well-formed JSON but not a valid command (unknown enum value, missing field):
  // it is recorded as rejected with MALFORMED_COMMAND and this detail.
  std::optional<std::string> malformed;
  // With `malformed`: the record was refused because no producer may send it (UNAUTHENTICATED_COMMAND), not
  // because of what it says.
  bool unauthenticated = false;
  fb::CommandT command;
  // Bytes of the original line (for group byte bounds).
  size_t line_bytes = 0;
  // The ledger.commands offset the command was read at (-1: not from the commands topic). Recorded on its
  // events.
  int64_t commands_offset = -1;
};

// `text` for a one-line message: printable ASCII as is, every other byte as \xNN, cut to `max_bytes` (then
// "..."). Input quoted in a message, an event or a log line can hold anything.
std::string PrintableText(std::string_view text, size_t max_bytes);

// Whether a producer of `role` may sign commands of `type` for ledger.commands: an operator every command, a
// gateway only those merchants' and customers' requests cause (orders, payments, reversals, refunds, payment
// codes, failed proofs).
bool ProducerRoleMaySend(fb::ProducerRole role, std::string_view type);
// A role's name in commands and messages ("gateway", "operator"), and the role a name names.
const char* ProducerRoleName(fb::ProducerRole role);
std::optional<fb::ProducerRole> ProducerRoleNamed(std::string_view name);

// Parses one JSON command line. Never throws. Errors (InvalidArgument, one line, no line number: the caller
// adds it): not JSON (including a number beyond double range, invalid UTF-8, a NUL byte anywhere in the line,
// a key twice in one object, nesting deeper than 16 levels), not an object, a field of the wrong JSON type,
// an unknown field, a missing command_id or type. Everything else that is wrong (unknown enum value, missing
// field, an id that breaks the naming rules of README: Accounts and postings) comes back as a ParsedCommand
// with `malformed` set.
Result<ParsedCommand> ParseCommandJson(std::string_view line);

}  // namespace ledger
