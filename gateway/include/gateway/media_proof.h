// Proofs of a customer's authentication medium, as the gateway checks them before it lets a payment reach
// the ledger (docs/ARCHITECTURE.md, "The front door"). Every proof is bound to the payment it authorises
// through the payment digest (payee, order number, amount, payer, account):
//   u_shield, fingerprint, password_free  a signature over the digest (its 64 hex characters, as ASCII) by
//   the
//                                         enrolled key: ECDSA P-256 or RSA, SHA-256, DER/PKCS #1 v1.5,
//                                         base64;
//   otp_card                              a TOTP code (RFC 6238: SHA-1, 6 digits, 30 s steps) of the enrolled
//                                         secret, one step either way for clock drift; the ledger refuses a
//                                         step used before;
//   password_device                       an OCRA response (RFC 6287, suite OCRA-1:HOTP-SHA1-6:QN08) of the
//                                         enrolled key to the payment's challenge, 8 digits of its digest, as
//                                         a 密码器 answers a challenge typed from the screen;
//   sms                                   a code the gateway sent for this payment: 6 digits of HMAC-SHA256
//   of
//                                         the gateway's SMS key over customer and digest and the 5-minute
//                                         window (this one or the last), so any gateway with the key checks
//                                         it and none stores it.
// Codes are compared in constant time. Thread-safety: plain functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace ledger::gateway {

inline constexpr char kOcraSuite[] = "OCRA-1:HOTP-SHA1-6:QN08";
inline constexpr int64_t kTotpStepSeconds = 30;
inline constexpr int64_t kSmsWindowSeconds = 5 * 60;

// What a payment proof authorises.
struct PaymentToProve {
  std::string merchant;
  std::string order_no;
  int64_t amount_minor = 0;
  std::string customer;
  std::string account;
};

// Lower-case hex SHA-256 of "ledger-payment-v1\n" and the five fields, each followed by "\n".
std::string PaymentDigest(const PaymentToProve& payment);
// What a payment code's proof covers (its amount and payee are not known until it is scanned): lower-case hex
// SHA-256 of "ledger-payment-code-v1\n" customer, account and the request's timestamp (decimal seconds), each
// followed by "\n". The gateway takes a timestamp within kTimestampWindowSeconds of its clock.
std::string PaymentCodeDigest(std::string_view customer, std::string_view account, int64_t timestamp_s);
// A payment code's id, what the ledger records instead of the code (a bearer token): the first 32 hex digits
// of HMAC-SHA256 under the gateway's payment-code key.
std::string PaymentCodeId(std::string_view code_key, std::string_view auth_code);
// The OCRA question for a digest: its first 8 bytes as a big-endian number, modulo 10^8, as 8 digits.
std::string OcraChallenge(std::string_view payment_digest);

// HOTP (RFC 4226) of `counter` under `key` with HMAC-SHA1, `digits` decimal digits (6 to 8), zero-padded.
std::string Hotp(std::string_view key, uint64_t counter, int digits);
// OCRA (RFC 6287) for kOcraSuite: the 6-digit response of `key` to the numeric `question` (1 to 8 digits).
// Errors: InvalidArgument (a question that is not 1 to 8 digits).
Result<std::string> Ocra(std::string_view key, std::string_view question);
// The SMS code of a payment in `window` (seconds since the epoch / kSmsWindowSeconds).
std::string SmsCode(std::string_view sms_key, std::string_view customer, std::string_view payment_digest,
                    int64_t window);

// The TOTP step a code belongs to (the current one, the one before, the one after, in that order), or
// nullopt when it matches none.
std::optional<int64_t> MatchTotp(std::string_view secret, std::string_view code, int64_t now_s);
// True when `code` is the payment's SMS code of this window or the one before.
bool MatchSms(std::string_view sms_key, std::string_view customer, std::string_view payment_digest,
              std::string_view code, int64_t now_s);
// True when `signature_base64` is a signature of `message` by the PEM public key (EC P-256 or RSA 2048 to
// 4096 bits); false for anything else, an unreadable key included.
bool VerifyMediumSignature(std::string_view public_key_pem, std::string_view message,
                           std::string_view signature_base64);
// The customer's side of a signature proof (what the bank's app does with the device key, or the U-shield
// with its key): base64 of the SHA-256 signature of `message` by the PEM private key (ECDSA: DER). Errors:
// InvalidArgument (not a private key in PEM).
Result<std::string> SignMediumProof(std::string_view private_key_pem, std::string_view message);
// Equal in time that depends on the lengths only.
bool SameCode(std::string_view a, std::string_view b);

}  // namespace ledger::gateway
