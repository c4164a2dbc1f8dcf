// ProjectionFolder: the projections' records, folded behind the commit. The ledger's commit writes only the
// events (and the offsets beside them); once a group is durable it is handed here, and a thread of its own
// writes the group's projection records into the store, several groups coalesced into one unsynced batch (a
// key written by many commands is written once), with each projector's applied sequence and set digest in the
// same batch. The store's records are therefore "as of" folded_sequence(), which may trail the last event;
// AwaitFolded waits for a sequence. A crash loses at most an unsynced fold, which Open redoes from the events
// (CatchUp): projections are pure functions of the events (docs/ARCHITECTURE.md: Projections behind the
// commit).
//
// A group arrives with the records its decision projectors already produced on the writer thread (each key
// with its value before the group: the folder absorbs them instead of folding those events again) and with
// its event records,
// which the folder folds through the projectors the writer does not run (clearing, checkpoints).
//
// Bounded: at most kGroupsWaitingMax groups wait; Push blocks while the queue is full, which holds the writer
// back instead of growing memory. Fail-stop: the first fold error is kept and returned by every later call;
// nothing after it is folded (a restart folds again from the events).
// Thread-safety: Push, AwaitFolded, folded_sequence and digests may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/set_digest.h"
#include "core/status.h"
#include "projections/projector.h"
#include "storage/kv.h"
#include "storage/store.h"

namespace ledger {

// One durable group.
struct FoldGroup {
  // The records the writer's projectors wrote for this group, with their priors.
  std::vector<GroupWrite> writes;
  std::vector<std::pair<uint64_t, std::string>> events;  // (sequence, record), ascending, not empty
};

class ProjectionFolder {
 public:
  static constexpr size_t kGroupsWaitingMax = 4;
  // A fold batch closes at this many bytes of records, so one batch stays bounded however far it lags.
  static constexpr size_t kBatchBytesMax = 16 << 20;

  // `store`'s projection records are at `folded_sequence` with set digests `digests` (one per projector of
  // MakeLedgerProjectors, in its order). `folded_by_writer` names the projectors whose records arrive in
  // FoldGroup::writes; the folder folds the others from the events.
  ProjectionFolder(Store& store, uint64_t folded_sequence, std::vector<SetDigest> digests,
                   const std::vector<std::string>& folded_by_writer);
  // Folds what is queued, then stops the thread.
  ~ProjectionFolder();
  ProjectionFolder(const ProjectionFolder&) = delete;
  ProjectionFolder& operator=(const ProjectionFolder&) = delete;

  // Folds the store's own events from folded_sequence()+1 to `last_sequence` through every projector, on the
  // caller's thread, in bounded batches (`progress` is called after each with the sequence reached). Used at
  // open, before Start, when a crash left the projections behind the events. Errors: IoError, Corruption.
  Status CatchUp(uint64_t last_sequence, const std::function<void(uint64_t)>& progress = nullptr);
  // Starts the folding thread.
  void Start();
  // Holds every pushed group unfolded until the folder is destroyed, which then drops them: what a crash
  // right after each commit leaves (for crash tests).
  void HoldForTesting() { hold_for_testing_ = true; }

  // Queues a durable group; its first event follows the last pushed one. Blocks while kGroupsWaitingMax
  // groups wait. Errors: the folder's first error.
  Status Push(FoldGroup group);
  // Waits until folded_sequence() >= sequence. Errors: the folder's first error.
  Status AwaitFolded(uint64_t sequence);
  uint64_t folded_sequence() const;
  // The folder's first error (Ok while it folds).
  Status status() const;
  // Each projector's set digest as of folded_sequence().
  std::vector<SetDigest> digests() const;
  const ProjectionSet& projections() const { return all_; }

 private:
  void Run();
  // Folds `groups` into the store as one batch.
  Status Fold(std::vector<FoldGroup>& groups);
  // Writes `records` (tracking priors against the store) with the applied sequence and the digests it
  // changes.
  Status WriteFold(Overlay& records, uint64_t last_sequence);

  Store& store_;
  ProjectionSet all_;     // every projector: CatchUp, the applied-sequence keys, digest ownership
  ProjectionSet behind_;  // the projectors the folder folds from events
  bool hold_for_testing_ = false;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<FoldGroup> waiting_;
  uint64_t pushed_sequence_;
  uint64_t folded_sequence_;
  std::vector<SetDigest> digests_;
  Status error_;
  bool stopping_ = false;
  std::thread thread_;  // last member: joined in the destructor before anything above goes
};

// A read-only view of `store` as of its last event: when a crash left the projections behind the events (the
// fold runs behind the commit), the missing events are folded in memory through every projector, nothing is
// written, and the view's state reads and scans include them. Everything else reads `store` itself; the view
// takes no writes. Readers of a stopped ledger (queries, clearing files, replay's comparison) use it, so they
// see every acknowledged event. Memory: the records of the unfolded events, which the folder's queue bound
// limits. Errors: IoError, Corruption (an event that does not decode or fold).
Result<std::unique_ptr<Store>> ViewAsOfLastEvent(std::unique_ptr<Store> store);

}  // namespace ledger
