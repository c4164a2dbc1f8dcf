// Shared pieces of the `ledger` subcommands: exit codes, error printing, option parsing helpers.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/pkcs11_token.h"
#include "core/signing.h"
#include "core/status.h"
#include "ledger/ledger.h"

namespace ledger::cli {

// Exit codes (README: Command-line reference).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // storage or internal failure
inline constexpr int kExitBadInput = 2;  // bad arguments or input; nothing was written
// `replay` and `restore`: everything it could check verified, but the history holds checkpoints whose
// signatures it could not check (no public key), or (restore) events no signed checkpoint covers that no
// operator accepted. Not 0, so no script takes unchecked signatures for a verified history.
inline constexpr int kExitSignaturesNotChecked = 4;
// `replay` and `restore`: the history, a checkpoint, a backup or the rebuilt state does not verify.
inline constexpr int kExitNotVerified = 5;
// `clearing` of several shards: a shard has not closed the clearing date yet (nothing written; try later).
inline constexpr int kExitDayOpen = 6;

// Prints "ledger: <message>" on one line to stderr and returns `code`.
int Fail(int code, const std::string& message);
// The exit code for a Status: InvalidArgument/NotFound -> 2, anything else -> 1.
int ExitCodeFor(const Status& status);

// Checks that an option is a sequence number: a whole number, 0 or more. Without it CLI11 reads "-1" into a
// uint64_t as 2^64 - 1 ("to the end") instead of refusing it.
CLI::Validator SequenceNumber();

// A path from ledger.toml: absolute as given, relative under the data folder.
std::string UnderDataDir(const std::string& data_dir, const std::string& path);

// The key `uri` names in the token of `data_dir`'s ledger.toml ([pkcs11] module, and the PIN read from
// pin_file). Errors: InvalidArgument (no [pkcs11], a PIN file that is unreadable or others may read).
Result<Pkcs11KeyRef> TokenKeyRef(const std::string& data_dir, const LedgerConfig& config,
                                 const std::string& uri);

// An Ed25519 signing key at `location`: a PKCS #11 URI (the key stays in the token: TokenKeyRef) or a PEM
// file (relative paths under `data_dir`). Errors: InvalidArgument (no such key, a token refusing the PIN, not
// Ed25519), naming the location, never the PIN.
Result<std::unique_ptr<Signer>> LoadSigner(const std::string& data_dir, const LedgerConfig& config,
                                           const std::string& location);

// A --producer-key: a PEM file as named on the command line (relative to the working folder), or a PKCS #11
// URI of a key in the token `data_dir`'s ledger.toml names (LoadSigner). Errors: InvalidArgument.
Result<std::unique_ptr<Signer>> LoadProducerKey(const std::string& data_dir, const LedgerConfig& config,
                                                const std::string& flag);

// The key checkpoint signatures are checked with, and where it came from.
struct TrustAnchor {
  std::unique_ptr<SignatureVerifier> verifier;  // null: no key
  std::string path;
};

// `pubkey` when given, else [audit] public_key of `data_dir`'s ledger.toml, else no key. The configuration is
// read only when `pubkey` is empty, so an auditor's own key never depends on the audited folder.
// Errors: InvalidArgument (a bad ledger.toml, a key that is not an Ed25519 public key).
Result<TrustAnchor> LoadTrustAnchor(const std::string& pubkey, const std::string& data_dir);

// Progress of a replay on stderr, one line rewritten in place: "<label>: N events, R events/s, P%" (P when
// `total` is known, i.e. not 0). For a terminal only.
std::function<void(uint64_t)> ProgressPrinter(const char* label,
                                              std::chrono::steady_clock::time_point started, uint64_t total);

// Options common to commands that write.
struct WriteOptions {
  std::string data_dir = "./ledger-data";
  std::string clock = "system";
  std::string now;  // ISO 8601, empty: the system clock
  bool no_sync = false;
  bool json = false;
};

// Builds LedgerOptions from the command line and <data>/ledger.toml. Errors: InvalidArgument.
Result<LedgerOptions> MakeLedgerOptions(const WriteOptions& options);
// Makes every Kafka client of this program connect with the TLS and SASL settings of `config` ([kafka]; files
// under `data_dir`). MakeLedgerOptions does it; a command that reads ledger.toml itself calls it. Errors:
// InvalidArgument (kafka.h: SetClientSecurity).
Status UseKafkaSecurity(const LedgerConfig& config, const std::string& data_dir);
// For the programs that read no data folder (tail, cluster-status, project, clearing-job): --kafka-config
// FILE names a ledger.toml whose [kafka] TLS and SASL settings they connect with (files relative to FILE's
// folder).
void AddKafkaConfigOption(CLI::App& app, std::string& path);
// UseKafkaSecurity with the file --kafka-config named; nothing when `path` is empty. The file's [kafka]
// brokers must be `brokers` (the credentials go only to the cluster they are for). Errors: InvalidArgument
// (no such file, a bad file, other brokers, settings librdkafka refuses).
Status UseKafkaConfigFile(const std::string& path, const std::string& brokers);

// Publishes the committed events through `through` to the Kafka brokers of `options.config` (nothing when
// none is configured), waiting for the acknowledgements; legs among them (a stopped shard's, which serve had
// not published yet) are signed with `options.signer`, as serve signs them. Used by commands that record
// facts outside `serve`. Errors: InvalidArgument (bad settings), IoError (not acknowledged in time),
// Corruption.
Status PublishCommitted(Ledger& ledger, const LedgerOptions& options, uint64_t through);

// Stages one command line and commits it (the operator's tools that write to a stopped shard's store); its
// result. Errors: InvalidArgument (not a command), the commit's.
Result<CommandResult> SubmitOne(Ledger& ledger, const std::string& line);

// A whole file's bytes. Errors: IoError.
Result<std::string> ReadWholeFile(const std::string& path);

}  // namespace ledger::cli
