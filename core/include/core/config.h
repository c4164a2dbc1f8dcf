// LedgerConfig: policy and tuning with the bank's defaults, overridable by `ledger.toml` in the data
// folder (see README: Configuration). Plain value; thread-safe to copy.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace ledger {

inline constexpr int64_t kNoLimit = -1;
inline constexpr int kMediumCount = 6;  // u_shield .. password_free (schemas/events.fbs Medium)

struct MediumPolicy {
  int64_t per_payment_minor = kNoLimit;
  int64_t daily_minor = kNoLimit;
  int64_t monthly_minor = kNoLimit;
  int64_t daily_count = kNoLimit;
};

struct LedgerConfig {
  uint32_t shard = 0;
  // How many shards the ledger has (ledger/routing.h): with more than one, shard `shard` refuses a command
  // another shard owns (WRONG_SHARD). Set by `serve --shards`; 1 (a store written locally, `submit --data`)
  // checks no ownership, whatever `shard` numbers the store.
  uint32_t shards = 1;
  // Value of one loyalty point in fen.
  int64_t point_value_minor = 1;
  // The bank's time zone (UTC+8) for limit windows and clearing dates.
  int timezone_offset_minutes = 8 * 60;
  // Clearing cut-off after local midnight: payments at or after it clear the next day.
  int clearing_cutoff_minutes = 23 * 60;
  // How far a command's occurred_at may be from the ledger clock (CLOCK_SKEW).
  int64_t clock_skew_max_ns = 5LL * 60 * 1'000'000'000;
  int refund_window_days = 365;
  // How long a reversal of an order with no payment keeps the order closed: a payment that arrives later (it
  // was delayed, the merchant timed out and reversed) is refused ORDER_CLOSED until then.
  int closed_order_keep_days = 7;
  // Indexed by fb::Medium (u_shield, password_device, otp_card, sms, fingerprint, password_free).
  std::array<MediumPolicy, kMediumCount> medium_policy = {{
      {100'000'000, 100'000'000, kNoLimit, kNoLimit},  // u_shield: 1,000,000.00 / day
      {50'000'000, 100'000'000, kNoLimit, kNoLimit},   // password_device: 500,000.00 / 1,000,000.00 a day
      {100'000, 500'000, kNoLimit, kNoLimit},          // otp_card: 1,000.00 / 5,000.00 a day
      {500'000, 500'000, 5'000'000, kNoLimit},         // sms: 5,000.00 / 5,000.00 a day / 50,000.00 a month
      {500'000, 500'000, kNoLimit, kNoLimit},          // fingerprint: 5,000.00 / 5,000.00 a day
      {100'000, 100'000, kNoLimit, 10},                // password_free: 1,000.00 / 1,000.00 a day, 10 a day
  }};
  // Channel qr_static: per customer per day.
  int64_t qr_static_daily_minor = 50'000;

  // Kafka: brokers to publish to ("" = none configured; `ledger serve` then starts the embedded broker),
  // and when a command is acknowledged: "kafka" (durable locally and acknowledged by Kafka) or "local".
  std::string kafka_brokers;
  std::string kafka_ack = "kafka";
  // TLS and SASL for every Kafka client, by librdkafka's names (security.protocol, sasl.mechanisms,
  // sasl.username, ssl.ca.location, ssl.certificate.location, ssl.key.location) from [kafka]'s
  // security_protocol, sasl_mechanism, sasl_username, ssl_ca_location, ssl_certificate_location,
  // ssl_key_location; empty: plaintext, no SASL. The SASL password is never in ledger.toml: it is read from
  // the file `sasl_password_file` names (relative paths under the data folder, like the keys).
  std::vector<std::pair<std::string, std::string>> kafka_security;
  std::string kafka_sasl_password_file;

  // The PKCS #11 token that holds the keys given as URIs ("pkcs11:token=…;object=…"): [pkcs11]'s module (the
  // token's library, an absolute path) and pin_file (the user PIN, in a file only its owner may read;
  // relative paths under the data folder). Both or neither; a key given as a URI needs them.
  std::string pkcs11_module;
  std::string pkcs11_pin_file;
  // The gateway's platform key (it signs every answer and notification) in the token instead of
  // <data>/gateway/platform_key.pem: [gateway]'s platform_key, a PKCS #11 URI. Empty: the file.
  std::string gateway_platform_key_uri;

  // Audit: the Ed25519 private key that signs checkpoints (a PEM file, relative paths under the data folder,
  // or a PKCS #11 URI: the key in the token), and how many events lie between two checkpoints. No key: no
  // checkpoints.
  std::string audit_private_key;
  // The Ed25519 public key (PEM, same path rule) `replay` checks checkpoint signatures with when no --pubkey
  // is given. Empty: none configured.
  std::string audit_public_key;
  uint64_t checkpoint_every_events = 100'000;
  // A checkpoint first compares every stored projection record with the set digests (a full scan, the scrub)
  // when this many events passed since the last comparison; the digests themselves are kept by every commit.
  uint64_t scrub_every_events = 1'000'000;

  // Reconciliation: a line this close to a cut-off may sit on the neighbouring date's side (CARRIED_OVER);
  // fee differences up to the tolerance (fen) are not FEE_MISMATCH.
  int64_t reconciliation_carry_over_minutes = 60;
  int64_t reconciliation_fee_tolerance_minor = 0;

  // Group commit bounds: a group closes at whichever comes first. Count and bytes bound the memory of the
  // open overlay and the size of one WriteBatch.
  size_t group_commands_max = 2048;
  size_t group_bytes_max = 8 << 20;
};

// Loads `path` (TOML) over the defaults. A missing file yields the defaults. Errors: InvalidArgument naming
// the line and the key (unknown keys and wrong types are errors, never ignored).
Result<LedgerConfig> LoadConfig(const std::string& path);

}  // namespace ledger
