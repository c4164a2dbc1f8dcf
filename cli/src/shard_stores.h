// The stores of every shard of one ledger, for the commands that read a clearing date across shards
// (`clearing`, `reconcile`): opened read-only as of their last events, checked to be shards 0..N-1 of one
// ledger, and which of them have not closed the date.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "storage/store.h"

namespace ledger::cli {

struct ShardStores {
  std::vector<std::unique_ptr<Store>> stores;  // in the order of the folders given
  std::vector<std::string> dirs;               // the same order
  LedgerConfig config;                         // the first folder's
  size_t first_shard = 0;                      // the index of the folder holding shard 0 (or the only one)
  // Proven to be the whole ledger: every folder's events name its shard, the shards are 0..N-1, and every
  // shard count recorded (serve records it) is N. Not so for a clearing job's views (no events) or one
  // shard's folder alone. A folder `submit` wrote records no count: shard 0 of it alone passes as a ledger
  // of one shard.
  bool whole_ledger = false;

  std::vector<const Store*> Views() const;
};

// Opens each folder: N > 1 folders must hold the histories of shards 0..N-1, each once (by the shard their
// events name), a folder serve wrote must be one of as many shards as it recorded, and the folders must be
// one ledger's: the same clearing policy (time zone, cut-off) and the same ledger key where one is
// configured. Errors: InvalidArgument (naming the folder), and the store's own.
Result<ShardStores> OpenShardStores(const std::vector<std::string>& dirs, int date);

// The shards that have not closed `date` (each line of the date may still be decided there), as "shard K
// (closed through D)" joined by commas; empty when all have.
Result<std::string> ShardsStillOpen(const ShardStores& opened, int date);

}  // namespace ledger::cli
