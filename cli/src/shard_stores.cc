#include "shard_stores.h"

#include <algorithm>
#include <filesystem>

#include "cli_common.h"
#include "core/sha256.h"
#include "core/signing.h"
#include "core/time.h"
#include "ledger/ledger.h"
#include "projections/clearing_file.h"
#include "projections/folder.h"

namespace ledger::cli {

std::vector<const Store*> ShardStores::Views() const {
  std::vector<const Store*> views;
  for (const auto& store : stores) views.push_back(store.get());
  return views;
}

namespace {

// The id of the ledger key `dir`'s configuration names (the private key's, else the public key's); "" when
// it names none. Errors: InvalidArgument (a key that cannot be read).
Result<std::string> LedgerKeyOf(const std::string& dir, const LedgerConfig& config) {
  if (!config.audit_private_key.empty()) {
    Result<std::unique_ptr<Signer>> key = LoadSigner(dir, config, config.audit_private_key);
    if (!key.ok()) return Status::InvalidArgument(dir + ": [audit] private_key: " + key.status().message());
    return ToHex((*key)->public_key_id());
  }
  if (!config.audit_public_key.empty()) {
    Result<std::unique_ptr<SignatureVerifier>> key =
        SignatureVerifier::FromPemFile(UnderDataDir(dir, config.audit_public_key));
    if (!key.ok()) return Status::InvalidArgument(dir + ": [audit] public_key: " + key.status().message());
    return ToHex((*key)->public_key_id());
  }
  return std::string();
}

// Refuses a folder whose configuration is not the first folder's ledger's. Errors: InvalidArgument.
Status SameLedger(const std::string& dir, const LedgerConfig& config, const std::string& key,
                  const ShardStores& opened, const std::string& first_key) {
  if (config.timezone_offset_minutes != opened.config.timezone_offset_minutes ||
      config.clearing_cutoff_minutes != opened.config.clearing_cutoff_minutes) {
    return Status::InvalidArgument(dir + " has another time zone or clearing cut-off than " +
                                   opened.dirs.front() + ": not one ledger's shards");
  }
  if (!key.empty() && !first_key.empty() && key != first_key) {
    return Status::InvalidArgument(dir + " names another ledger key than " + opened.dirs.front() +
                                   ": not one ledger's shards");
  }
  return Status::Ok();
}

}  // namespace

Result<ShardStores> OpenShardStores(const std::vector<std::string>& dirs, int date) {
  ShardStores opened;
  std::vector<bool> seen(dirs.size(), false);
  std::string first_key;
  bool counts_agree = true;
  for (const std::string& dir : dirs) {
    Result<LedgerConfig> config = LoadConfig(dir + "/ledger.toml");
    if (!config.ok()) return config.status();
    std::error_code error;
    if (!std::filesystem::exists(dir + "/CURRENT", error))
      return Status::InvalidArgument("no ledger data in " + dir);
    Result<std::string> key = LedgerKeyOf(dir, *config);
    if (!key.ok()) return key.status();
    if (opened.stores.empty()) {
      opened.config = *config;
      first_key = *key;
    } else {
      LEDGER_RETURN_IF_ERROR(SameLedger(dir, *config, *key, opened, first_key));
    }
    if (first_key.empty()) first_key = *key;
    StoreOptions options;
    options.read_only = true;
    options.create_if_missing = false;
    Result<std::unique_ptr<Store>> store = Store::Open(dir, options);
    if (!store.ok()) return store.status();
    Result<std::unique_ptr<Store>> view = ViewAsOfLastEvent(std::move(store).value());
    if (!view.ok()) return view.status();
    Result<clearing::ShardDays> days = clearing::ShardDaysOf(**view, date);
    if (!days.ok()) return days.status();
    if (days->shards && *days->shards != dirs.size()) {
      return Status::InvalidArgument(dir + " is a shard of a ledger of " + std::to_string(*days->shards) +
                                     " shards: every shard's folder is needed (--data once per shard), got " +
                                     std::to_string(dirs.size()));
    }
    // One folder is one ledger's (or a clearing job's views of one partition, which hold no events).
    if (dirs.size() > 1 && (!days->shard || *days->shard >= dirs.size() || seen[*days->shard])) {
      return Status::InvalidArgument(
          dir +
          (days->shard ? " holds shard " + std::to_string(*days->shard) : std::string(" holds no events")) +
          ": " + std::to_string(dirs.size()) + " folders must hold shards 0 to " +
          std::to_string(dirs.size() - 1) + ", each once (--data once per shard)");
    }
    if (days->shard && *days->shard < dirs.size()) seen[*days->shard] = true;
    counts_agree = counts_agree && (!days->shards || *days->shards == dirs.size());
    if (days->shard == 0u) opened.first_shard = opened.stores.size();
    opened.stores.push_back(std::move(view).value());
    opened.dirs.push_back(dir);
  }
  opened.whole_ledger =
      counts_agree && std::all_of(seen.begin(), seen.end(), [](bool shard) { return shard; });
  return opened;
}

Result<std::string> ShardsStillOpen(const ShardStores& opened, int date) {
  std::string open;
  for (size_t i = 0; i < opened.stores.size(); ++i) {
    Result<clearing::ShardDays> days = clearing::ShardDaysOf(*opened.stores[i], date);
    if (!days.ok()) return days.status();
    if (days->date_closed_sequence > 0) continue;
    open += (open.empty() ? "" : ", ") + std::string("shard ") +
            (days->shard ? std::to_string(*days->shard) : "?") + " (closed through " +
            (days->closed_through > 0 ? FormatDate(days->closed_through) : std::string("none")) + ")";
  }
  return open;
}

}  // namespace ledger::cli
