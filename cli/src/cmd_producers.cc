// ledger producer-key: registers (or revokes) a producer's command-signing key in a stopped shard's store.
// Serve applies a record of ledger.commands only when a registered key signed it (README: Producers).
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli_common.h"
#include "core/signing.h"

namespace ledger::cli {
namespace {

// The file names of a key pair `ledger producer-key --out` makes.
constexpr char kProducerKeyBase[] = "producer";

struct ProducerKeyArgs {
  WriteOptions write;
  std::string producer;
  std::string role = "operator";
  std::string out;
  std::string public_key;
  std::string revoke;
};

// Stages `line`, commits it and publishes it; exit 0, or 2 with the ledger's reason when it refused it.
int Record(Ledger& ledger, const LedgerOptions& options, const std::string& line) {
  Result<CommandResult> result = SubmitOne(ledger, line);
  if (!result.ok()) return Fail(kExitFailure, result.status().ToString());
  if (result->kind != CommandResult::Kind::kAccepted) {
    if (result->kind == CommandResult::Kind::kDuplicate && result->reason.empty()) return kExitOk;
    return Fail(kExitBadInput, result->reason + ": " + result->detail);
  }
  const Status published = PublishCommitted(ledger, options, ledger.durable_sequence());
  if (!published.ok()) return Fail(kExitFailure, published.ToString());
  return kExitOk;
}

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument("cannot read " + path);
  std::string text(SignatureVerifier::kPublicKeyPemMax + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > SignatureVerifier::kPublicKeyPemMax)
    return Status::InvalidArgument(path + " is longer than a PEM public key");
  return text;
}

// Registers the public key in `pem_path`; with `made_dir`, a key pair this run made there, removed when the
// ledger refuses it (so that no unregistered key is left looking usable).
int AddProducerKey(Ledger& ledger, const LedgerOptions& options, const ProducerKeyArgs& args,
                   const std::string& pem_path, const std::string& made_dir) {
  auto undo = [&] {
    if (made_dir.empty()) return;
    std::error_code ignored;
    std::filesystem::remove(made_dir + "/" + kProducerKeyBase + ".key", ignored);
    std::filesystem::remove(made_dir + "/" + kProducerKeyBase + ".pub", ignored);
  };
  Result<std::string> pem = ReadSmallFile(pem_path);
  Result<std::unique_ptr<SignatureVerifier>> key =
      pem.ok() ? SignatureVerifier::FromPem(*pem) : Result<std::unique_ptr<SignatureVerifier>>(pem.status());
  if (!key.ok()) {
    undo();
    return Fail(kExitBadInput, pem_path + ": " + key.status().message());
  }
  const std::string key_id = ToHex((*key)->public_key_id());
  const std::string line = nlohmann::json{
      {"type", "add_producer_key"},
      {"command_id", "producer-key-added:" + args.producer + ":" + key_id},
      {"producer", args.producer},
      {"role", args.role},
      {"public_key_pem", *pem}}.dump();
  const int recorded = Record(ledger, options, line);
  if (recorded != kExitOk) {
    undo();
    return recorded;
  }
  std::printf("producer=%s\nrole=%s\nkey_id=%s\n", args.producer.c_str(), args.role.c_str(), key_id.c_str());
  if (!made_dir.empty()) std::printf("private_key=%s/%s.key\n", made_dir.c_str(), kProducerKeyBase);
  return kExitOk;
}

int RunProducerKey(const ProducerKeyArgs& args) {
  if ((args.out.empty() ? 0 : 1) + (args.public_key.empty() ? 0 : 1) + (args.revoke.empty() ? 0 : 1) != 1)
    return Fail(kExitBadInput,
                "give one of --out DIR (a new key pair), --public-key FILE or --revoke KEY_ID");
  Result<LedgerOptions> options = MakeLedgerOptions(args.write);
  if (!options.ok()) return Fail(kExitBadInput, options.status().message());
  if (!args.out.empty()) {
    const Status made = GenerateKeyPair(args.out, kProducerKeyBase);
    if (!made.ok()) return Fail(ExitCodeFor(made), made.message());
  }
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(*options);
  if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
  if (!args.revoke.empty()) {
    const std::string line = nlohmann::json{
        {"type", "revoke_producer_key"},
        {"command_id", "producer-key-revoked:" + args.producer + ":" + args.revoke},
        {"producer", args.producer},
        {"key_id", args.revoke}}.dump();
    const int recorded = Record(**ledger, *options, line);
    if (recorded == kExitOk) std::printf("revoked=%s\n", args.revoke.c_str());
    return recorded;
  }
  if (!args.out.empty())
    return AddProducerKey(**ledger, *options, args, args.out + "/" + kProducerKeyBase + ".pub", args.out);
  return AddProducerKey(**ledger, *options, args, args.public_key, "");
}

}  // namespace

Runner AddProducerKeyCommand(CLI::App& app) {
  auto args = std::make_shared<ProducerKeyArgs>();
  app.add_option("--data", args->write.data_dir, "data folder (of a stopped shard)")->capture_default_str();
  app.add_option("--producer", args->producer, "who signs with the key (a gateway, an operator)")->required();
  app.add_option("--role", args->role, "gateway: orders, payments, reversals, refunds; operator: everything")
      ->check(CLI::IsMember({"gateway", "operator"}))
      ->capture_default_str();
  app.add_option("--out", args->out, "make a new key pair here (producer.key 0600, producer.pub)");
  app.add_option("--public-key", args->public_key, "register this Ed25519 public key (PEM) instead");
  app.add_option("--revoke", args->revoke, "revoke the producer's key with this id instead");
  return [args]() { return RunProducerKey(*args); };
}

}  // namespace ledger::cli
