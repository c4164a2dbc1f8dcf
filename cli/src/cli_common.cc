#include "cli_common.h"

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "core/pkcs11_token.h"
#include "core/secret_file.h"
#include "core/time.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"

namespace ledger::cli {

int Fail(int code, const std::string& message) {
  std::string line = message;
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  std::fprintf(stderr, "ledger: %s\n", line.c_str());
  return code;
}

int ExitCodeFor(const Status& status) {
  if (status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kNotFound)
    return kExitBadInput;
  return kExitFailure;
}

CLI::Validator SequenceNumber() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        uint64_t value = 0;
        const char* end = input.data() + input.size();
        const auto [last, error] = std::from_chars(input.data(), end, value);  // no sign accepted
        if (input.empty() || error != std::errc() || last != end) {
          return "must be a sequence number (a whole number, 0 or more), not '" + input + "'";
        }
        return std::string();
      },
      "SEQUENCE");
}

std::string UnderDataDir(const std::string& data_dir, const std::string& path) {
  return path.starts_with("/") ? path : data_dir + "/" + path;
}

Result<Pkcs11KeyRef> TokenKeyRef(const std::string& data_dir, const LedgerConfig& config,
                                 const std::string& uri) {
  if (config.pkcs11_module.empty())
    // The URI is not repeated: one given on a command line could hold a PIN.
    return Status::InvalidArgument(
        "a pkcs11: key is in a PKCS #11 token: give [pkcs11] module and pin_file in " + data_dir +
        "/ledger.toml");
  Result<std::string> pin =
      ReadSecretFile("[pkcs11] pin_file", UnderDataDir(data_dir, config.pkcs11_pin_file));
  if (!pin.ok()) return pin.status();
  return Pkcs11KeyRef{uri, config.pkcs11_module, std::move(pin).value()};
}

Result<std::unique_ptr<Signer>> LoadSigner(const std::string& data_dir, const LedgerConfig& config,
                                           const std::string& location) {
  if (!IsPkcs11Uri(location)) return Signer::FromPemFile(UnderDataDir(data_dir, location));
  Result<Pkcs11KeyRef> ref = TokenKeyRef(data_dir, config, location);
  if (!ref.ok()) return ref.status();
  Result<std::unique_ptr<TokenKey>> key = TokenKey::Open(*ref);
  if (!key.ok()) return key.status();
  return Signer::FromToken(std::move(key).value());
}

Result<std::unique_ptr<Signer>> LoadProducerKey(const std::string& data_dir, const LedgerConfig& config,
                                                const std::string& flag) {
  return IsPkcs11Uri(flag) ? LoadSigner(data_dir, config, flag) : Signer::FromPemFile(flag);
}

Status UseKafkaSecurity(const LedgerConfig& config, const std::string& data_dir) {
  std::vector<std::pair<std::string, std::string>> security = config.kafka_security;
  for (auto& [name, value] : security) {
    // Files under the data folder like the keys; "probe" is librdkafka's: the system's CA store.
    if (name.ends_with(".location") && value != "probe") value = UnderDataDir(data_dir, value);
  }
  const std::string password_file = config.kafka_sasl_password_file.empty()
                                        ? std::string()
                                        : UnderDataDir(data_dir, config.kafka_sasl_password_file);
  return kafka::SetClientSecurity(security, password_file);
}

void AddKafkaConfigOption(CLI::App& app, std::string& path) {
  app.add_option(
      "--kafka-config", path,
      "a ledger.toml whose [kafka] TLS and SASL settings to connect with (files relative to its folder)");
}

Status UseKafkaConfigFile(const std::string& path, const std::string& brokers) {
  if (path.empty()) return Status::Ok();
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    return Status::InvalidArgument("--kafka-config: " + path + " is not a readable file");
  Result<LedgerConfig> config = LoadConfig(path);
  if (!config.ok()) return config.status();
  if (config->kafka_brokers != brokers)
    return Status::InvalidArgument("--kafka-config: " + path + " is for brokers \"" + config->kafka_brokers +
                                   "\", not --brokers \"" + brokers + "\"");
  const std::string folder = std::filesystem::path(path).parent_path().string();
  return UseKafkaSecurity(*config, folder.empty() ? "." : folder);
}

Result<LedgerOptions> MakeLedgerOptions(const WriteOptions& options) {
  LedgerOptions out;
  out.data_dir = options.data_dir;
  Result<LedgerConfig> config = LoadConfig(options.data_dir + "/ledger.toml");
  if (!config.ok()) return config.status();
  out.config = *config;
  if (options.clock == "system") {
    out.clock = ClockMode::kSystem;
  } else if (options.clock == "occurred") {
    out.clock = ClockMode::kOccurred;
  } else {
    return Status::InvalidArgument("--clock must be 'system' or 'occurred'");
  }
  if (!options.now.empty()) {
    Result<int64_t> now = ParseIso8601(options.now);
    if (!now.ok()) return Status::InvalidArgument("--now: " + now.status().message());
    out.fixed_now_ns = *now;
  }
  out.sync = !options.no_sync;
  if (!out.config.audit_private_key.empty()) {
    Result<std::unique_ptr<Signer>> signer =
        LoadSigner(options.data_dir, out.config, out.config.audit_private_key);
    if (!signer.ok()) return signer.status();
    out.signer = std::move(signer).value();
  }
  LEDGER_RETURN_IF_ERROR(UseKafkaSecurity(out.config, options.data_dir));
  // A state that does not match its digests is described key by key (a rebuild from the events).
  out.describe_state_differences = DescribeStateDifferences;
  return out;
}

Status PublishCommitted(Ledger& ledger, const LedgerOptions& options, uint64_t through) {
  const LedgerConfig& config = options.config;
  if (config.kafka_brokers.empty()) return Status::Ok();
  Result<std::unique_ptr<kafka::Publisher>> publisher = kafka::Publisher::Create(
      ledger.store(),
      kafka::ProducerSettings{config.kafka_brokers, config.shard, kafka::kAckTimeoutMs, {}, options.signer});
  if (!publisher.ok()) return publisher.status();
  return (*publisher)->PublishThrough(through, kafka::kPublishDeadlineMs);
}

Result<CommandResult> SubmitOne(Ledger& ledger, const std::string& line) {
  Result<ParsedCommand> parsed = ParseCommandJson(line);
  if (!parsed.ok()) return parsed.status();
  CommandResult result = ledger.Stage(*parsed);
  const Status committed = ledger.CommitGroup();
  if (!committed.ok()) return committed;
  return result;
}

Result<TrustAnchor> LoadTrustAnchor(const std::string& pubkey, const std::string& data_dir) {
  TrustAnchor anchor;
  anchor.path = pubkey;
  if (anchor.path.empty()) {
    Result<LedgerConfig> config = LoadConfig(data_dir + "/ledger.toml");
    if (!config.ok()) return config.status();
    if (!config->audit_public_key.empty()) anchor.path = UnderDataDir(data_dir, config->audit_public_key);
  }
  if (anchor.path.empty()) return anchor;
  Result<std::unique_ptr<SignatureVerifier>> loaded = SignatureVerifier::FromPemFile(anchor.path);
  if (!loaded.ok()) return loaded.status();
  anchor.verifier = std::move(loaded).value();
  return anchor;
}

std::function<void(uint64_t)> ProgressPrinter(const char* label,
                                              std::chrono::steady_clock::time_point started, uint64_t total) {
  return [label, started, total](uint64_t events) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "\r%s: %llu events, %.0f events/s%s", label, static_cast<unsigned long long>(events),
                 seconds > 0 ? events / seconds : 0.0,
                 total > 0 ? (", " + std::to_string(events * 100 / total) + "%").c_str() : "");
  };
}

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace ledger::cli
