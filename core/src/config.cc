// ledger.toml loading with toml++. Unknown keys and wrong types are errors with their line number.
#include "core/config.h"

#include <toml++/toml.h>

#include <filesystem>
#include <string_view>
#include <utility>

#include "core/pkcs11_token.h"
#include "schemas/events_generated.h"

namespace ledger {
namespace {

std::string Where(const toml::node& node) { return "line " + std::to_string(node.source().begin.line); }

// Reads an integer at table[key] into *out when present. Errors: a non-integer or out of [min, max].
Status ReadInteger(const toml::table& table, std::string_view key, int64_t min, int64_t max, int64_t* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return Status::Ok();
  const auto value = node->value<int64_t>();
  if (!node->is_integer() || !value)
    return Status::InvalidArgument(Where(*node) + ": '" + std::string(key) + "' must be an integer");
  if (*value < min || *value > max) {
    return Status::InvalidArgument(Where(*node) + ": '" + std::string(key) + "' must be " +
                                   std::to_string(min) + " to " + std::to_string(max));
  }
  *out = *value;
  return Status::Ok();
}

// Reads a string at table[key] into *out when present. Errors: not a string.
Status ReadString(const toml::table& table, std::string_view key, std::string* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return Status::Ok();
  if (!node->is_string()) {
    return Status::InvalidArgument(Where(*node) + ": '" + std::string(key) + "' must be a string");
  }
  *out = *node->value<std::string>();
  return Status::Ok();
}

Status CheckKeys(const toml::table& table, std::initializer_list<std::string_view> allowed,
                 std::string_view section) {
  for (const auto& [key, node] : table) {
    bool known = false;
    for (std::string_view name : allowed) known = known || key.str() == name;
    if (!known)
      return Status::InvalidArgument(Where(node) + ": unknown key '" + std::string(key.str()) + "' in [" +
                                     std::string(section) + "]");
  }
  return Status::Ok();
}

const toml::table* Section(const toml::table& root, std::string_view name, Status* status) {
  const toml::node* node = root.get(name);
  if (node == nullptr) return nullptr;
  if (!node->is_table())
    *status = Status::InvalidArgument(Where(*node) + ": '" + std::string(name) + "' must be a table");
  return node->as_table();
}

Status ReadLedgerSection(const toml::table& ledger, LedgerConfig* config) {
  LEDGER_RETURN_IF_ERROR(CheckKeys(
      ledger, {"shard", "point_value_minor", "refund_window_days", "closed_order_keep_days"}, "ledger"));
  int64_t shard = config->shard, point_value = config->point_value_minor,
          refund_days = config->refund_window_days, closed_days = config->closed_order_keep_days;
  LEDGER_RETURN_IF_ERROR(ReadInteger(ledger, "shard", 0, 65535, &shard));
  LEDGER_RETURN_IF_ERROR(ReadInteger(ledger, "point_value_minor", 1, 1'000'000, &point_value));
  LEDGER_RETURN_IF_ERROR(ReadInteger(ledger, "refund_window_days", 0, 3650, &refund_days));
  LEDGER_RETURN_IF_ERROR(ReadInteger(ledger, "closed_order_keep_days", 1, 3650, &closed_days));
  config->shard = static_cast<uint32_t>(shard);
  config->point_value_minor = point_value;
  config->refund_window_days = static_cast<int>(refund_days);
  config->closed_order_keep_days = static_cast<int>(closed_days);
  return Status::Ok();
}

Status ReadClockSection(const toml::table& clock, LedgerConfig* config) {
  LEDGER_RETURN_IF_ERROR(
      CheckKeys(clock, {"timezone_offset_minutes", "clearing_cutoff_minutes", "max_skew_seconds"}, "clock"));
  int64_t offset = config->timezone_offset_minutes, cutoff = config->clearing_cutoff_minutes;
  int64_t skew_seconds = config->clock_skew_max_ns / 1'000'000'000;
  LEDGER_RETURN_IF_ERROR(ReadInteger(clock, "timezone_offset_minutes", -14 * 60, 14 * 60, &offset));
  LEDGER_RETURN_IF_ERROR(ReadInteger(clock, "clearing_cutoff_minutes", 0, 24 * 60, &cutoff));
  LEDGER_RETURN_IF_ERROR(ReadInteger(clock, "max_skew_seconds", 0, 86400, &skew_seconds));
  config->timezone_offset_minutes = static_cast<int>(offset);
  config->clearing_cutoff_minutes = static_cast<int>(cutoff);
  config->clock_skew_max_ns = skew_seconds * 1'000'000'000;
  return Status::Ok();
}

// One [limits.<medium>] table (or [limits.qr_static], the one channel limit).
Status ReadLimitTable(const std::string& name, const toml::node& node, LedgerConfig* config) {
  if (!node.is_table())
    return Status::InvalidArgument(Where(node) + ": [limits." + name + "] must be a table");
  const toml::table& table = *node.as_table();
  if (name == "qr_static") {
    LEDGER_RETURN_IF_ERROR(CheckKeys(table, {"daily_minor"}, "limits.qr_static"));
    return ReadInteger(table, "daily_minor", -1, INT64_MAX, &config->qr_static_daily_minor);
  }
  int medium = -1;
  for (int i = 0; i < kMediumCount; ++i) {
    if (name == fb::EnumNamesMedium()[i]) medium = i;
  }
  if (medium < 0) {
    return Status::InvalidArgument(Where(node) + ": unknown medium or channel '" + name + "' in [limits]");
  }
  MediumPolicy& policy = config->medium_policy[medium];
  LEDGER_RETURN_IF_ERROR(CheckKeys(
      table, {"per_payment_minor", "daily_minor", "monthly_minor", "daily_count"}, "limits." + name));
  LEDGER_RETURN_IF_ERROR(ReadInteger(table, "per_payment_minor", -1, INT64_MAX, &policy.per_payment_minor));
  LEDGER_RETURN_IF_ERROR(ReadInteger(table, "daily_minor", -1, INT64_MAX, &policy.daily_minor));
  LEDGER_RETURN_IF_ERROR(ReadInteger(table, "monthly_minor", -1, INT64_MAX, &policy.monthly_minor));
  return ReadInteger(table, "daily_count", -1, INT64_MAX, &policy.daily_count);
}

Status ReadLimitsSection(const toml::table& limits, LedgerConfig* config) {
  for (const auto& [key, node] : limits)
    LEDGER_RETURN_IF_ERROR(ReadLimitTable(std::string(key.str()), node, config));
  return Status::Ok();
}

Status ReadGroupCommitSection(const toml::table& group, LedgerConfig* config) {
  LEDGER_RETURN_IF_ERROR(CheckKeys(group, {"commands_max", "bytes_max"}, "group_commit"));
  int64_t commands = static_cast<int64_t>(config->group_commands_max),
          bytes = static_cast<int64_t>(config->group_bytes_max);
  LEDGER_RETURN_IF_ERROR(ReadInteger(group, "commands_max", 1, 1'000'000, &commands));
  LEDGER_RETURN_IF_ERROR(ReadInteger(group, "bytes_max", 4096, int64_t{1} << 30, &bytes));
  config->group_commands_max = static_cast<size_t>(commands);
  config->group_bytes_max = static_cast<size_t>(bytes);
  return Status::Ok();
}

Status ReadAuditSection(const toml::table& audit, LedgerConfig* config) {
  LEDGER_RETURN_IF_ERROR(
      CheckKeys(audit, {"private_key", "public_key", "checkpoint_every", "scrub_every"}, "audit"));
  LEDGER_RETURN_IF_ERROR(ReadString(audit, "private_key", &config->audit_private_key));
  LEDGER_RETURN_IF_ERROR(ReadString(audit, "public_key", &config->audit_public_key));
  int64_t every = static_cast<int64_t>(config->checkpoint_every_events);
  LEDGER_RETURN_IF_ERROR(ReadInteger(audit, "checkpoint_every", 1, int64_t{1} << 40, &every));
  config->checkpoint_every_events = static_cast<uint64_t>(every);
  int64_t scrub_every = static_cast<int64_t>(config->scrub_every_events);
  LEDGER_RETURN_IF_ERROR(ReadInteger(audit, "scrub_every", 1, int64_t{1} << 40, &scrub_every));
  config->scrub_every_events = static_cast<uint64_t>(scrub_every);
  return Status::Ok();
}

Status ReadReconciliationSection(const toml::table& reconciliation, LedgerConfig* config) {
  LEDGER_RETURN_IF_ERROR(
      CheckKeys(reconciliation, {"carry_over_minutes", "fee_tolerance_minor"}, "reconciliation"));
  LEDGER_RETURN_IF_ERROR(ReadInteger(reconciliation, "carry_over_minutes", 0, 24 * 60,
                                     &config->reconciliation_carry_over_minutes));
  return ReadInteger(reconciliation, "fee_tolerance_minor", 0, 1'000'000,
                     &config->reconciliation_fee_tolerance_minor);
}

// [kafka]'s TLS and SASL keys and the librdkafka settings they stand for.
constexpr std::pair<std::string_view, std::string_view> kKafkaSecurityKeys[] = {
    {"security_protocol", "security.protocol"},
    {"sasl_mechanism", "sasl.mechanisms"},
    {"sasl_username", "sasl.username"},
    {"ssl_ca_location", "ssl.ca.location"},
    {"ssl_certificate_location", "ssl.certificate.location"},
    {"ssl_key_location", "ssl.key.location"},
};

Status ReadKafkaSection(const toml::table& kafka, LedgerConfig* config) {
  LEDGER_RETURN_IF_ERROR(
      CheckKeys(kafka,
                {"brokers", "ack", "security_protocol", "sasl_mechanism", "sasl_username",
                 "sasl_password_file", "ssl_ca_location", "ssl_certificate_location", "ssl_key_location"},
                "kafka"));
  for (const auto& [key, node] : kafka) {
    if (!node.is_string()) {
      return Status::InvalidArgument(Where(node) + ": '" + std::string(key.str()) + "' must be a string");
    }
  }
  config->kafka_brokers = kafka.get("brokers") ? *kafka.get("brokers")->value<std::string>() : "";
  config->kafka_ack = kafka.get("ack") ? *kafka.get("ack")->value<std::string>() : "kafka";
  if (config->kafka_ack != "kafka" && config->kafka_ack != "local") {
    return Status::InvalidArgument(Where(*kafka.get("ack")) + ": ack must be \"kafka\" or \"local\"");
  }
  for (const auto& [key, setting] : kKafkaSecurityKeys) {
    if (const toml::node* node = kafka.get(key))
      config->kafka_security.emplace_back(setting, *node->value<std::string>());
  }
  if (const toml::node* node = kafka.get("sasl_password_file"))
    config->kafka_sasl_password_file = *node->value<std::string>();
  // The embedded broker (no brokers) speaks plaintext only.
  if ((!config->kafka_security.empty() || !config->kafka_sasl_password_file.empty()) &&
      config->kafka_brokers.empty())
    return Status::InvalidArgument(
        "[kafka]: TLS and SASL settings need brokers (the embedded broker is plaintext)");
  return Status::Ok();
}

// [pkcs11]: the token that holds the keys given as PKCS #11 URIs (its library and its PIN's file, together).
Status ReadPkcs11Section(const toml::table& pkcs11, LedgerConfig* config) {
  LEDGER_RETURN_IF_ERROR(CheckKeys(pkcs11, {"module", "pin_file"}, "pkcs11"));
  if (pkcs11.empty()) return Status::Ok();
  for (const auto& [key, field] :
       {std::pair{"module", &config->pkcs11_module}, {"pin_file", &config->pkcs11_pin_file}}) {
    const toml::node* node = pkcs11.get(key);
    if (node == nullptr)
      return Status::InvalidArgument("[pkcs11]: module and pin_file go together; '" + std::string(key) +
                                     "' is missing");
    if (!node->is_string() || node->value<std::string>()->empty())
      return Status::InvalidArgument(Where(*node) + ": '" + std::string(key) +
                                     "' must be a non-empty string");
    *field = *node->value<std::string>();
  }
  if (!config->pkcs11_module.starts_with("/"))
    return Status::InvalidArgument(Where(*pkcs11.get("module")) +
                                   ": module must be an absolute path (the library is loaded as named)");
  return Status::Ok();
}

// [gateway]: the platform key in a PKCS #11 token (none: the key file the gateway makes).
Status ReadGatewaySection(const toml::table& gateway, LedgerConfig* config) {
  LEDGER_RETURN_IF_ERROR(CheckKeys(gateway, {"platform_key"}, "gateway"));
  LEDGER_RETURN_IF_ERROR(ReadString(gateway, "platform_key", &config->gateway_platform_key_uri));
  if (!config->gateway_platform_key_uri.empty() && !IsPkcs11Uri(config->gateway_platform_key_uri))
    return Status::InvalidArgument(Where(*gateway.get("platform_key")) +
                                   ": platform_key must be a PKCS #11 URI (pkcs11:token=…;object=…)");
  return Status::Ok();
}

// A key given as a PKCS #11 URI needs [pkcs11], and its PIN is never in the URI.
Status CheckTokenKey(const toml::table& root, std::string_view section, std::string_view key,
                     const std::string& location, const LedgerConfig& config) {
  if (!IsPkcs11Uri(location)) return Status::Ok();
  const std::string where = Where(*root.at_path(std::string(section) + "." + std::string(key)).node());
  if (location.find("pin-value") != std::string::npos || location.find("pin-source") != std::string::npos)
    return Status::InvalidArgument(where +
                                   ": the PIN is never in ledger.toml: name its file in [pkcs11] pin_file");
  if (config.pkcs11_module.empty())
    return Status::InvalidArgument(where + ": " + std::string(key) +
                                   " is in a PKCS #11 token: give [pkcs11] module and pin_file");
  return Status::Ok();
}

// The sections in the order they are read (an error names the first problem in this order).
using SectionReader = Status (*)(const toml::table&, LedgerConfig*);
constexpr std::pair<std::string_view, SectionReader> kSections[] = {
    {"ledger", ReadLedgerSection},   {"clock", ReadClockSection},
    {"limits", ReadLimitsSection},   {"group_commit", ReadGroupCommitSection},
    {"audit", ReadAuditSection},     {"reconciliation", ReadReconciliationSection},
    {"kafka", ReadKafkaSection},     {"pkcs11", ReadPkcs11Section},
    {"gateway", ReadGatewaySection},
};

}  // namespace

Result<LedgerConfig> LoadConfig(const std::string& path) {
  LedgerConfig config;
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return config;
  toml::table root;
  try {
    root = toml::parse_file(path);  // Debian's toml++ is built with exceptions: contained here
  } catch (const toml::parse_error& failure) {
    return Status::InvalidArgument(path + ": line " + std::to_string(failure.source().begin.line) + ": " +
                                   std::string(failure.description()));
  }
  auto prefix = [&](Status s) { return s.ok() ? s : Status::InvalidArgument(path + ": " + s.message()); };
  LEDGER_RETURN_IF_ERROR(prefix(CheckKeys(
      root,
      {"ledger", "clock", "limits", "group_commit", "kafka", "audit", "reconciliation", "pkcs11", "gateway"},
      "top level")));
  Status not_a_table;  // a section that is not a table: reported after the others, as before
  for (const auto& [name, read] : kSections) {
    if (const toml::table* section = Section(root, name, &not_a_table)) {
      LEDGER_RETURN_IF_ERROR(prefix(read(*section, &config)));
    }
  }
  if (!not_a_table.ok()) return Status::InvalidArgument(path + ": " + not_a_table.message());
  LEDGER_RETURN_IF_ERROR(
      prefix(CheckTokenKey(root, "audit", "private_key", config.audit_private_key, config)));
  LEDGER_RETURN_IF_ERROR(
      prefix(CheckTokenKey(root, "gateway", "platform_key", config.gateway_platform_key_uri, config)));
  return config;
}

}  // namespace ledger
