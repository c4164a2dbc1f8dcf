// One reconciliation run, as `ledger reconcile` makes it (README: Reconciliation): the statement file read
// and parsed, the ledger's lines of the clearing date read from the reconciliation index, every line
// classified (reconcile.h), the report and breaks.csv written, and the run recorded as a
// ReconciliationRecorded event. Each step is its own call so that the caller reports each step's failure its
// own way; publishing the recorded event is the caller's. Thread-safety: functions take the ledger and store
// exclusively for the call.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/sha256.h"
#include "core/status.h"
#include "ledger/ledger.h"
#include "reconcile/reconcile.h"
#include "storage/store.h"

namespace ledger::recon {

// A statement file read and parsed.
struct StatementFile {
  std::string path;
  Format format = Format::kLedgerCsv;
  std::string merchant;    // the --merchant the statement was parsed for ("" = all)
  Digest sha256{};         // of the file's bytes
  std::string sha256_hex;  // the same, in hex
  Statement statement;
};

// Reads and parses `path` (ParseStatement). Errors: InvalidArgument, its message naming the file ("PATH:
// cannot read the statement", "PATH: <the parser's reason>").
Result<StatementFile> ReadStatementFile(const std::string& path, Format format, const std::string& merchant,
                                        int timezone_offset_minutes);

// The ledger's lines of `date` (one merchant when not empty), from the reconciliation index by date.
// Errors: Corruption (an index key that does not parse or names a missing line), IoError.
Result<std::vector<Line>> LedgerLines(const Store& store, int date, const std::string& merchant);

// A classified run and its report.
struct RunReport {
  int date = 0;
  const StatementFile* statement = nullptr;  // the statement reconciled; outlives the report
  Outcome outcome;
  // report.json's object (README: Reconciliation); "recorded_sequence" is the caller's to add once recorded.
  nlohmann::ordered_json json;
  bool clean = false;  // no breaks, no malformed lines, no summary disagreement
};

// Classifies the ledger's lines of `date` against `statement`, with the reconciliation policy of `config`,
// and builds the report. The lines are read from every store given: one per shard of the ledger (a line lives
// on its order's shard only). Errors: as LedgerLines.
Result<RunReport> ReconcileStatement(const std::vector<const Store*>& stores, const LedgerConfig& config,
                                     int date, const StatementFile& statement);

// breaks.csv: one row per line that is neither matched nor carried over.
std::string BreaksCsv(const Outcome& outcome);

// Creates `out_dir` and writes breaks.csv and report.json into it, each whole or not at all (a reader never
// sees half a file). Errors: IoError with the message to print.
Status WriteRunFiles(const RunReport& report, const std::string& out_dir);

// Records the run as a ReconciliationRecorded event (committed). Returns its sequence. Errors: as
// Ledger::RecordFact.
Result<uint64_t> RecordRun(Ledger& ledger, const RunReport& report);

}  // namespace ledger::recon
