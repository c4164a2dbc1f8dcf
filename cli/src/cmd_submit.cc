// ledger submit: JSON Lines commands in, one JSON result per line out, printed as each group becomes durable.
// The whole input is parsed before anything is written, so a malformed line writes nothing (exit 2).
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "cli_common.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"
#include "kafka_submit.h"
#include "ledger/command.h"
#include "ledger/ledger.h"

namespace ledger::cli {
namespace {

// Bounds the input held in memory at once.
constexpr size_t kSubmitLinesMax = 10'000'000;

// Sends commands through ledger.commands and prints each result as it arrives on ledger.results.
int SubmitThroughKafka(const std::string& brokers, uint32_t shards, int64_t timeout_ms,
                       const Signer* producer_key, const std::vector<ParsedCommand>& commands,
                       const std::vector<std::string>& lines) {
  const Status sent = SendThroughKafka({brokers, shards, timeout_ms, producer_key}, commands, lines,
                                       [](const std::string& result) {
                                         std::fputs((result + "\n").c_str(), stdout);
                                         std::fflush(stdout);
                                       });
  if (!sent.ok()) return Fail(kExitFailure, sent.ToString());
  return kExitOk;
}

}  // namespace

// Reads and parses every command of `in` (keeping the raw lines in *raw when given).
// Errors: InvalidArgument "line N: ...".
Result<std::vector<ParsedCommand>> ReadCommands(std::istream& in, std::vector<std::string>* raw) {
  std::vector<ParsedCommand> commands;
  std::string line;
  size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (commands.size() >= kSubmitLinesMax) {
      return Status::InvalidArgument("line " + std::to_string(line_number) +
                                     ": more than 10,000,000 commands in one input");
    }
    // The whole line, NUL bytes included (std::getline keeps them): the parser refuses a NUL instead of the
    // line ending there.
    Result<ParsedCommand> parsed = ParseCommandJson(line);
    if (!parsed.ok())
      return Status::InvalidArgument("line " + std::to_string(line_number) + ": " +
                                     parsed.status().message());
    commands.push_back(std::move(parsed).value());
    if (raw != nullptr) raw->push_back(line);
  }
  if (in.bad()) return Status::IoError("read error after line " + std::to_string(line_number));
  return commands;
}

Runner AddSubmit(CLI::App& app) {
  auto options = std::make_shared<WriteOptions>();
  auto input = std::make_shared<std::string>();
  app.add_option("--data", options->data_dir, "data folder")->capture_default_str();
  app.add_option("--clock", options->clock,
                 "system: occurred_at must be within 5 minutes of now; occurred: trust it")
      ->capture_default_str();
  app.add_option("--now", options->now, "fix the ledger clock (ISO 8601 with offset)");
  app.add_flag("--no-sync", options->no_sync, "do not fsync the WAL per group (benchmarks only)");
  app.add_flag("--json", options->json, "results are always JSON Lines; accepted for uniformity");
  auto brokers = std::make_shared<std::string>();
  auto shards = std::make_shared<uint32_t>(1);
  auto timeout_ms = std::make_shared<int64_t>(120'000);
  app.add_option("--brokers", *brokers, "send through Kafka (ledger.commands) to a running `ledger serve`");
  app.add_option("--shards", *shards,
                 "with --brokers: the number of shards (each command goes to the shard that owns it)")
      ->capture_default_str();
  app.add_option("--timeout-ms", *timeout_ms, "with --brokers: how long to wait for all results")
      ->capture_default_str();
  auto producer_key = std::make_shared<std::string>();
  app.add_option(
      "--producer-key", *producer_key,
      "with --brokers: sign each command with this producer's private key (ledger producer-key): a "
      "PEM file, or a PKCS #11 URI of a key in the token --data's ledger.toml names in [pkcs11]");
  app.add_option("input", *input, "FILE, or - for standard input")->required();
  return [options, input, brokers, shards, timeout_ms, producer_key]() {
    Result<LedgerOptions> ledger_options = MakeLedgerOptions(*options);
    if (!ledger_options.ok()) return Fail(kExitBadInput, ledger_options.status().message());
    Result<std::vector<ParsedCommand>> commands = Status::Internal("unread");
    std::vector<std::string> lines;
    if (*input == "-") {
      commands = ReadCommands(std::cin, &lines);
    } else {
      std::ifstream file(*input);
      if (!file) return Fail(kExitBadInput, "cannot open " + *input);
      commands = ReadCommands(file, &lines);
    }
    if (!commands.ok())
      return Fail(ExitCodeFor(commands.status()), *input + ": " + commands.status().message());
    std::unique_ptr<Signer> signer;
    if (!producer_key->empty()) {
      if (brokers->empty())
        return Fail(kExitBadInput, "--producer-key signs what --brokers sends: give both");
      Result<std::unique_ptr<Signer>> loaded =
          LoadProducerKey(options->data_dir, ledger_options->config, *producer_key);
      if (!loaded.ok()) return Fail(kExitBadInput, "--producer-key: " + loaded.status().message());
      signer = std::move(loaded).value();
    }
    if (!brokers->empty()) {
      return SubmitThroughKafka(*brokers, std::max<uint32_t>(1, *shards), *timeout_ms, signer.get(),
                                *commands, lines);
    }
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*ledger_options);
    if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
    // With a broker in the data folder's config, a result is printed only after Kafka acknowledged its
    // events.
    std::unique_ptr<kafka::Publisher> publisher;
    if (!ledger_options->config.kafka_brokers.empty()) {
      Result<std::unique_ptr<kafka::Publisher>> created = kafka::Publisher::Create(
          (*ledger)->store(), kafka::ProducerSettings{ledger_options->config.kafka_brokers,
                                                      ledger_options->config.shard,
                                                      kafka::kAckTimeoutMs,
                                                      {},
                                                      ledger_options->signer});
      if (!created.ok()) return Fail(kExitBadInput, created.status().ToString());
      publisher = std::move(created).value();
    }
    Status publish_status;
    Ledger* ledger_ptr = ledger->get();
    const Status status = (*ledger)->SubmitAll(*commands, [&](std::span<const CommandResult> results) {
      if (publisher && publish_status.ok()) {
        publish_status = publisher->PublishThrough(ledger_ptr->durable_sequence(), 120'000);
        if (!publish_status.ok()) spdlog::error("submit: publishing: {}", publish_status.message());
      }
      if (publisher && !publish_status.ok() && ledger_options->config.kafka_ack == "kafka") return;
      // Printed only once durable: a line on stdout is an acknowledgement.
      for (const CommandResult& result : results) std::fputs((result.ToJson() + "\n").c_str(), stdout);
      std::fflush(stdout);
    });
    if (!status.ok()) return Fail(kExitFailure, status.ToString());
    if (!publish_status.ok())
      return Fail(kExitFailure,
                  "committed locally but not acknowledged by Kafka: " + publish_status.message());
    return kExitOk;
  };
}

}  // namespace ledger::cli
