// Goal: ledger.toml is read as documented, and every kind of bad input is refused with the file, the line and
// what is wrong — the first problem in section order — never half-applied.
#include "core/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "schemas/events_generated.h"

namespace ledger {
namespace {

// Writes `text` to a fresh file and loads it.
Result<LedgerConfig> Load(const std::string& text) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("ledger-config-test-" + std::to_string(::getpid()) + ".toml"))
                               .string();
  std::ofstream(path) << text;
  Result<LedgerConfig> config = LoadConfig(path);
  std::filesystem::remove(path);
  return config;
}

// The error message without the file name that leads it.
std::string ErrorOf(const std::string& text) {
  const Result<LedgerConfig> config = Load(text);
  EXPECT_FALSE(config.ok()) << text;
  if (config.ok()) return "";
  const std::string message = config.status().message();
  const size_t after_path = message.find(".toml: ");
  return after_path == std::string::npos ? message : message.substr(after_path + 7);
}

TEST(Config, EverySectionIsReadIntoItsFields) {
  const Result<LedgerConfig> config = Load(R"(
[ledger]
shard = 3
point_value_minor = 2
refund_window_days = 30
[clock]
timezone_offset_minutes = 540
clearing_cutoff_minutes = 1320
max_skew_seconds = 60
[limits.sms]
per_payment_minor = 100
daily_count = 7
[limits.qr_static]
daily_minor = 5000
[group_commit]
commands_max = 64
bytes_max = 65536
[audit]
checkpoint_every = 1000
scrub_every = 2000
[reconciliation]
carry_over_minutes = 15
fee_tolerance_minor = 2
[kafka]
brokers = "127.0.0.1:9092"
ack = "local"
)");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->shard, 3u);
  EXPECT_EQ(config->point_value_minor, 2);
  EXPECT_EQ(config->refund_window_days, 30);
  EXPECT_EQ(config->timezone_offset_minutes, 540);
  EXPECT_EQ(config->clearing_cutoff_minutes, 1320);
  EXPECT_EQ(config->clock_skew_max_ns, 60'000'000'000);
  const MediumPolicy& sms = config->medium_policy[static_cast<int>(fb::Medium::sms)];
  EXPECT_EQ(sms.per_payment_minor, 100);
  EXPECT_EQ(sms.daily_count, 7);
  EXPECT_EQ(sms.daily_minor, LedgerConfig().medium_policy[static_cast<int>(fb::Medium::sms)].daily_minor)
      << "a key left out keeps the bank's default";
  EXPECT_EQ(config->qr_static_daily_minor, 5000);
  EXPECT_EQ(config->group_commands_max, 64u);
  EXPECT_EQ(config->group_bytes_max, 65536u);
  EXPECT_EQ(config->checkpoint_every_events, 1000u);
  EXPECT_EQ(config->scrub_every_events, 2000u);
  EXPECT_EQ(config->reconciliation_carry_over_minutes, 15);
  EXPECT_EQ(config->reconciliation_fee_tolerance_minor, 2);
  EXPECT_EQ(config->kafka_brokers, "127.0.0.1:9092");
  EXPECT_EQ(config->kafka_ack, "local");
}

TEST(Config, KafkaSecurityIsLibrdkafkasSettingsAndThePasswordOnlyAFileName) {
  const Result<LedgerConfig> config = Load(R"([kafka]
brokers = "127.0.0.1:9093"
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "shard-0"
sasl_password_file = "kafka.password"
ssl_ca_location = "kafka-ca.pem"
)");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const std::vector<std::pair<std::string, std::string>> expected = {{"security.protocol", "SASL_SSL"},
                                                                     {"sasl.mechanisms", "SCRAM-SHA-512"},
                                                                     {"sasl.username", "shard-0"},
                                                                     {"ssl.ca.location", "kafka-ca.pem"}};
  EXPECT_EQ(config->kafka_security, expected);
  EXPECT_EQ(config->kafka_sasl_password_file, "kafka.password");
}

TEST(Config, KeysInATokenAreUrisWithOneModuleAndOnlyThePinsFileName) {
  const Result<LedgerConfig> config = Load(R"([pkcs11]
module = "/usr/lib/softhsm/libsofthsm2.so"
pin_file = "hsm.pin"

[gateway]
platform_key = "pkcs11:token=ledger;object=platform"

[audit]
private_key = "pkcs11:token=ledger;object=checkpoints"
)");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->gateway_platform_key_uri, "pkcs11:token=ledger;object=platform");
  EXPECT_EQ(config->audit_private_key, "pkcs11:token=ledger;object=checkpoints");
  EXPECT_EQ(config->pkcs11_module, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(config->pkcs11_pin_file, "hsm.pin");
  EXPECT_EQ(LedgerConfig().gateway_platform_key_uri, "");            // none: the key file the gateway makes
  const Result<LedgerConfig> empty = Load("[gateway]\n[pkcs11]\n");  // empty sections: the same
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->gateway_platform_key_uri, "");
  EXPECT_EQ(empty->pkcs11_module, "");
  // A token with no key in it yet: the gateway's --producer-key may name one.
  EXPECT_TRUE(Load("[pkcs11]\nmodule = \"/m.so\"\npin_file = \"p\"\n").ok());
}

TEST(Config, AMissingFileIsTheDefaults) {
  const Result<LedgerConfig> config = LoadConfig("/nonexistent/ledger.toml");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->shard, LedgerConfig().shard);
  EXPECT_EQ(config->kafka_ack, LedgerConfig().kafka_ack);
}

TEST(Config, BadInputNamesTheLineAndWhatIsWrong) {
  struct Case {
    const char* toml;
    const char* error;
  };
  const Case cases[] = {
      {"[ledger]\nshard = \"x\"\n", "line 2: 'shard' must be an integer"},
      {"[ledger]\nshard = 70000\n", "line 2: 'shard' must be 0 to 65535"},
      {"[ledger]\nname = 1\n", "line 2: unknown key 'name' in [ledger]"},
      {"[clock]\nmax_skew_seconds = 90000\n", "line 2: 'max_skew_seconds' must be 0 to 86400"},
      {"[limits]\nsms = 5\n", "line 2: [limits.sms] must be a table"},
      {"[limits.carrier_pigeon]\ndaily_minor = 1\n",
       "unknown medium or channel 'carrier_pigeon' in [limits]"},
      {"[limits.sms]\nyearly_minor = 1\n", "line 2: unknown key 'yearly_minor' in [limits.sms]"},
      {"[limits.qr_static]\nper_payment_minor = 1\n",
       "line 2: unknown key 'per_payment_minor' in [limits.qr_static]"},
      {"[group_commit]\nwait_us_max = 1000\n", "line 2: unknown key 'wait_us_max' in [group_commit]"},
      {"[group_commit]\nbytes_max = 10\n", "line 2: 'bytes_max' must be 4096 to 1073741824"},
      {"[audit]\nprivate_key = 5\n", "line 2: 'private_key' must be a string"},
      {"[reconciliation]\nfee_tolerance_minor = -1\n", "line 2: 'fee_tolerance_minor' must be 0 to 1000000"},
      {"[kafka]\nbrokers = 9092\n", "line 2: 'brokers' must be a string"},
      {"[kafka]\nack = \"maybe\"\n", "line 2: ack must be \"kafka\" or \"local\""},
      {"kafka = 1\n", "line 1: 'kafka' must be a table"},
      // The embedded broker speaks plaintext: security settings need brokers of their own.
      {"[kafka]\nsecurity_protocol = \"SASL_SSL\"\n", "TLS and SASL settings need brokers"},
      {"[kafka]\nsasl_password = \"x\"\n", "unknown key 'sasl_password' in [kafka]"},
      {"[surprise]\n", "unknown key 'surprise' in [top level]"},
      // Keys in a token: the module and the PIN's file together, a PKCS #11 URI, never the PIN itself.
      {"[pkcs11]\nmodule = \"/m.so\"\n", "'pin_file' is missing"},
      {"[pkcs11]\nmodule = \"/m.so\"\npin_file = \"p\"\n[gateway]\nplatform_key = \"/keys/platform.pem\"\n",
       "line 5: platform_key must be a PKCS #11 URI"},
      {"[pkcs11]\nmodule = \"/m.so\"\npin_file = \"p\"\n[gateway]\nplatform_key = "
       "\"pkcs11:object=p;pin-value=1\"\n",
       "line 5: the PIN is never in ledger.toml"},
      {"[pkcs11]\nmodule = \"/m.so\"\npin_file = \"p\"\n[audit]\nprivate_key = "
       "\"pkcs11:object=p;pin-source=f\"\n",
       "line 5: the PIN is never in ledger.toml"},
      {"[pkcs11]\nmodule = 5\npin_file = \"p\"\n", "line 2: 'module' must be a non-empty string"},
      {"[pkcs11]\npin = \"1234\"\n", "unknown key 'pin' in [pkcs11]"},
      {"[pkcs11]\nmodule = \"libsofthsm2.so\"\npin_file = \"p\"\n",
       "line 2: module must be an absolute path"},
      {"[gateway]\nplatform_key = \"pkcs11:object=p\"\n",
       "line 2: platform_key is in a PKCS #11 token: give [pkcs11] module and pin_file"},
      {"[audit]\nprivate_key = \"pkcs11:object=p\"\n",
       "line 2: private_key is in a PKCS #11 token: give [pkcs11] module and pin_file"},
      // The first problem in section order wins: [ledger] is read before [kafka].
      {"[kafka]\nack = \"maybe\"\n[ledger]\nshard = -1\n", "line 4: 'shard' must be 0 to 65535"},
  };
  for (const Case& c : cases)
    EXPECT_NE(ErrorOf(c.toml).find(c.error), std::string::npos) << c.toml << " -> " << ErrorOf(c.toml);
}

}  // namespace
}  // namespace ledger
