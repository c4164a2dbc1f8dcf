// `ledger serve` as a child process against an in-process embedded broker, and the reads the serve tests
// make of topics and of the stopped serve's store. Every wait is bounded in time.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kafka/kafka.h"
#include "support/test_support.h"

namespace ledger::testing {

// How long a child process gets to start, to answer, or to exit after SIGTERM.
inline constexpr auto kServeDeadline = std::chrono::seconds(60);

// One `ledger serve` run, its output in files under `dir` (serveN.out, serveN.err).
class ServeProcess {
 public:
  // Starts `ledger serve` with `args`; `run` numbers the output files.
  ServeProcess(const std::string& dir, int run, const std::vector<std::string>& args);
  Child& child() { return child_; }
  std::string out() const { return ReadFile(out_path_); }
  std::string err() const { return ReadFile(err_path_); }
  // Waits until serve consumes commands (its "serve: shard" line). False when it exits first or time runs
  // out.
  bool WaitReady(std::chrono::steady_clock::duration timeout);
  // Waits for serve to exit on its own; its exit code, or -1 when it was still running at `timeout`.
  int WaitExit(std::chrono::steady_clock::duration timeout);
  // SIGTERM, then waits for the exit; its exit code (-1: did not exit in time).
  int Stop();

 private:
  std::string out_path_;
  std::string err_path_;
  Child child_;
};

// The watermarks of `topic` partition `partition` (a failed query is a test failure and reads as {-1, -1}).
kafka::Watermarks TopicWatermarks(const std::string& brokers, const std::string& topic,
                                  uint32_t partition = 0);

// Every record of `topic` partition `partition` still kept (low..high-1), read in offset order.
std::vector<kafka::Record> ReadTopic(const std::string& brokers, const std::string& topic,
                                     uint32_t partition = 0);

// Waits until `topic` partition 0 holds at least `high` records in all (its high watermark), as long as
// `serve` runs. True when it does.
bool WaitForHighWatermark(const std::string& brokers, const std::string& topic, int64_t high,
                          ServeProcess& serve, std::chrono::steady_clock::duration timeout);

// Produces `values` to ledger.commands partition `partition` in order (keys: the command id when the value
// has one) and waits for the acknowledgements.
// With `producer_key`, each value that is a command is signed with it (kafka::CommandSignatureHeaders).
Status SendCommands(const std::string& brokers, const std::vector<std::string>& values,
                    uint32_t partition = 0, const Signer* producer_key = nullptr);

// What the stopped serve's store holds: the last sequence and the stored commands offset of partition 0.
struct StoreState {
  uint64_t last_sequence = 0;
  std::optional<int64_t> commands_offset;
  bool operator==(const StoreState&) const = default;
};
StoreState ReadStoreState(const std::string& data_dir);

// The balance of `account` in the stopped serve's store (0 when never posted; a store that does not open is a
// test failure and reads as -1).
int64_t StoredBalance(const std::string& data_dir, const std::string& account);

// `ledger events --json` of `data_dir`, one parsed object per event (a failed run is a test failure).
std::vector<nlohmann::json> LedgerEvents(const std::string& scratch, const std::string& data_dir);

// One key pair for the ledger (`ledger keygen` into `scratch`/keys), configured in the ledger.toml of every
// folder of `data_dirs` (created when missing): each shard signs its legs and checkpoints with it and applies
// only legs it verifies. A failure is a test failure.
void ConfigureLedgerKey(const std::string& scratch, const std::vector<std::string>& data_dirs);

// The results on ledger.results, by key (command id), values parsed.
std::vector<std::pair<std::string, nlohmann::json>> ParsedResults(const std::vector<kafka::Record>& records);

}  // namespace ledger::testing
