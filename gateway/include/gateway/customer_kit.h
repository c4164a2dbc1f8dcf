// Enrolment of a customer's authentication medium (`ledger customer-enroll`): the material the customer's
// card, device or phone holds, the public part the ledger records (events.fbs: MediumEnrolled), and the
// secret the gateway keeps for the media it checks by a shared secret. Per medium:
//   u_shield                 RSA-2048 key (u_shield_key.pem, PKCS #8); the ledger records its public key
//   fingerprint, password_free  ECDSA P-256 device key (device_key.pem); the ledger records its public key
//   otp_card                 20-byte TOTP secret: totp_secret (base32) and otpauth_uri; the gateway keeps it
//   password_device          20-byte OCRA key: ocra_key (hex) and ocra_suite; the gateway keeps it
//   sms                      the phone number (phone); the ledger records it
// Secrets never go into an event, a log or Kafka. Kit files holding a secret are 0600.
// Thread-safety: plain functions; do not run two on one folder at once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "gateway/merchant_kit.h"

namespace ledger::gateway {

struct MediumEnrolment {
  std::string public_part;     // what the ledger records (enroll_medium's public_part); may be empty
  std::string gateway_secret;  // raw bytes the gateway keeps; empty for media checked by a public part
  std::vector<KitFile> kit;    // what the customer holds
};

// Errors: InvalidArgument (an unknown medium; a phone number that is not 6 to 15 digits after an optional
// '+', or one given for another medium than sms).
Result<MediumEnrolment> MakeMediumEnrolment(std::string_view customer, std::string_view medium,
                                            std::string_view phone);

// The gateway's copy of a medium's secret: <gateway_dir>/media/<SHA-256 hex of the customer>.<medium>, 0600
// (hex and a line break), in a 0700 folder. Enrolling again replaces it (written aside, then renamed).
// Errors: IoError.
Status StoreMediumSecret(const std::string& gateway_dir, std::string_view customer, std::string_view medium,
                         std::string_view secret);
// Errors: NotFound (none stored), Corruption (the file holds no secret), IoError.
Result<std::string> LoadMediumSecret(const std::string& gateway_dir, std::string_view customer,
                                     std::string_view medium);

// A key of the gateway's own: <gateway_dir>/<name>, 32 random bytes in hex, 0600, made on first use — sms.key
// (media_proof.h: SmsCode) and payment_code.key (PaymentCodeId). Every gateway of a ledger needs the same
// ones. Errors: Corruption (the file holds no key), IoError.
Result<std::string> EnsureGatewayKey(const std::string& gateway_dir, std::string_view name);

}  // namespace ledger::gateway
