// Ledger's private parts, shared by its source files (ledger.cc: the command path and the commit; legs.cc:
// orders decided by other shards).
#pragma once

#include <future>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/signing.h"
#include "ledger/ledger.h"
#include "projections/folder.h"
#include "projections/projector.h"
#include "storage/kv.h"

namespace ledger {

// The writer's memory of the state (balances, merchants, usage windows, recent payments), bounded.
inline constexpr size_t kStateCacheBytes = 96 << 20;

// The projectors whose records decisions read (decide.cc, routing.cc, the idempotency check in Stage): the
// writer runs them to decide the next command on top of the last. The folder folds the others (clearing,
// checkpoints) from the events, behind the commit.
inline const std::vector<std::string> kDecisionProjectors = {"balances", "directory", "limits", "payments",
                                                             "commands"};

// A sealed group being written by the commit thread, which then hands its writes to the folder.
struct InFlightGroup {
  std::vector<GroupWrite> writes;
  CommitBatch batch;
  uint64_t last_sequence = 0;
  struct Outcome {
    Status committed;
    Status after_durable;
  };
  std::future<Outcome> done;  // last member: destroyed first, so destruction waits for the commit thread
};

struct Ledger::Impl {
  explicit Impl(const KvReader& base)
      : state(base, kStateCacheBytes),
        projections(SelectProjectors(MakeLedgerProjectors(), kDecisionProjectors, /*keep=*/true)) {}
  // What decisions read and the writer's projectors write: the open group, the groups sealed before it and
  // what was read from the store (only this ledger writes the store).
  WriterState state;
  ProjectionSet projections;  // the decision projectors, run by the writer
  // Where the stored records were last compared with the digests (0: never).
  uint64_t last_proven_sequence = 0;
  std::vector<std::pair<uint64_t, std::string>> events;
  // Producer keys' verifiers by key id (producers.cc), so a key's PEM is read once, not per command.
  std::unordered_map<std::string, std::shared_ptr<const SignatureVerifier>> producer_verifiers;
  std::vector<std::pair<std::string, std::string>> meta;
  size_t event_bytes = 0;
  // Folds durable groups into the store's records; outlives in_flight, whose commit thread pushes to it.
  std::unique_ptr<ProjectionFolder> folder;
  std::unique_ptr<InFlightGroup> in_flight;  // last member: waited for before anything above is destroyed
};

}  // namespace ledger
