// ledger submit: JSON Lines commands in, one JSON result per line out, printed as each group becomes durable.
// The whole input is parsed before anything is written, so a malformed line writes nothing (exit 2).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli_common.h"
#include "commands.h"
#include "ledger/command.h"
#include "ledger/ledger.h"

namespace ledger::cli {
namespace {

// Bounds the input held in memory at once.
constexpr size_t kSubmitLinesMax = 10'000'000;

}  // namespace

// Reads and parses every command of `in`. Errors: InvalidArgument "line N: ...".
Result<std::vector<ParsedCommand>> ReadCommands(std::istream& in) {
  std::vector<ParsedCommand> commands;
  std::string line;
  size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (commands.size() >= kSubmitLinesMax) {
      return Status::InvalidArgument("line " + std::to_string(line_number) + ": more than 10,000,000 commands in one input");
    }
    Result<ParsedCommand> parsed = ParseCommandJson(line);
    if (!parsed.ok()) return Status::InvalidArgument("line " + std::to_string(line_number) + ": " + parsed.status().message());
    commands.push_back(std::move(parsed).value());
  }
  if (in.bad()) return Status::IoError("read error after line " + std::to_string(line_number));
  return commands;
}

Runner AddSubmit(CLI::App& app) {
  auto options = std::make_shared<WriteOptions>();
  auto input = std::make_shared<std::string>();
  app.add_option("--data", options->data_dir, "data folder")->capture_default_str();
  app.add_option("--clock", options->clock, "system: occurred_at must be within 5 minutes of now; occurred: trust it")
      ->capture_default_str();
  app.add_option("--now", options->now, "fix the ledger clock (ISO 8601 with offset)");
  app.add_flag("--no-sync", options->no_sync, "do not fsync the WAL per group (benchmarks only)");
  app.add_flag("--json", options->json, "results are always JSON Lines; accepted for uniformity");
  app.add_option("input", *input, "FILE, or - for standard input")->required();
  return [options, input]() {
    Result<LedgerOptions> ledger_options = MakeLedgerOptions(*options);
    if (!ledger_options.ok()) return Fail(kExitBadInput, ledger_options.status().message());
    Result<std::vector<ParsedCommand>> commands = Status::Internal("unread");
    if (*input == "-") {
      commands = ReadCommands(std::cin);
    } else {
      std::ifstream file(*input);
      if (!file) return Fail(kExitBadInput, "cannot open " + *input);
      commands = ReadCommands(file);
    }
    if (!commands.ok()) return Fail(ExitCodeFor(commands.status()), *input + ": " + commands.status().message());
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*ledger_options);
    if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
    const Status status = (*ledger)->SubmitAll(*commands, [](std::span<const CommandResult> results) {
      // Printed only once durable: a line on stdout is an acknowledgement.
      for (const CommandResult& result : results) std::fputs((result.ToJson() + "\n").c_str(), stdout);
      std::fflush(stdout);
    });
    if (!status.ok()) return Fail(kExitFailure, status.ToString());
    return kExitOk;
  };
}

}  // namespace ledger::cli
