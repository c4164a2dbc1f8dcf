#include "replay/replay.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "events/event.h"
#include "projections/projector.h"
#include "state/keys.h"
#include "storage/kv.h"

namespace ledger::replay {
namespace {

constexpr uint64_t kProgressEveryEvents = 100'000;
// Verified events travel to the fold workers in chunks of this many (one hand-off per chunk, not per event).
constexpr size_t kChunkEventsMax = 512;
// The rebuild commits when the fold workers' overlays hold this many distinct keys or the events waiting to
// be written this many bytes: large batches (a key written many times is written once), memory still bounded.
constexpr size_t kCommitKeysMax = 256 * 1024;
constexpr size_t kCommitEventBytesMax = 32 << 20;

bool SameBytes(const flatbuffers::Vector<uint8_t>* bytes, std::span<const uint8_t> expected) {
  return bytes != nullptr && bytes->size() == expected.size() &&
         std::memcmp(bytes->data(), expected.data(), expected.size()) == 0;
}

// ---- Folding on several threads ----
//
// Each projector reads and writes only its own keys (ProjectionSet::OwnerOf), so the projectors are split
// among fold workers: a worker folding every event through its own projectors, into its own overlay, computes
// exactly what one thread folding through all of them would, so the rebuilt records are byte-identical
// whatever the split. The verifying thread hands every worker the same chunks of verified events (a bounded
// queue per worker) and, now and then, a barrier: the worker folds what is queued before it, records its
// projectors' applied sequence in its overlay, updates their set digests from the overlay's writes and
// priors, and waits. The verifying thread commits the overlays while every worker waits, so the target is
// never written while it is read (a Store need not take reads concurrent with Commit).

// One verified event: the stored record (the projectors fold its body) and its hash.
struct VerifiedEvent {
  uint64_t sequence = 0;
  std::string record;
  Digest hash{};
};

// Consecutive verified events, folded by every worker.
struct EventChunk {
  Digest head_before{};  // the chain head before the first event
  std::vector<VerifiedEvent> events;
};

// Where a worker's projector could not fold the history.
struct FoldFailure {
  uint64_t sequence = 0;
  std::string problem;
  Digest head_before{};  // the chain head before `sequence`
};

// Relative cost of folding one event, per projector (tenths of a microsecond, from ledger_micro_bench's
// projector apply figures in docs/PERFORMANCE.md); only the balance between workers depends on it.
size_t FoldCost(std::string_view projector) {
  static const std::pair<std::string_view, size_t> kCosts[] = {
      {"clearing", 31}, {"limits", 12},   {"payments", 11},  {"commands", 11},
      {"balances", 8},  {"directory", 4}, {"checkpoints", 3}};
  for (const auto& [name, cost] : kCosts) {
    if (name == projector) return cost;
  }
  return 10;
}

// The target's state as one fold worker reads it, remembering its last few answers: a projector reads a key,
// then writes it, and the overlay (tracking priors for the set digests) reads the key's prior at that first
// write; this answers the second read without asking the store again. Forget() must follow every commit of
// the worker's overlay (its projectors' keys are written by nothing else).
class RecentReads final : public KvReader {
 public:
  explicit RecentReads(const KvReader& base) : base_(&base) {}
  bool Get(std::string_view key, std::string* value) const override {
    for (const Answer& answer : answers_) {
      if (!answer.valid || answer.key != key) continue;
      if (answer.value) *value = *answer.value;
      return answer.value.has_value();
    }
    Answer& slot = answers_[next_++ % kAnswers];
    slot.valid = true;
    slot.key.assign(key);
    std::string read;
    if (base_->Get(key, &read)) {
      slot.value = std::move(read);
      *value = *slot.value;
    } else {
      slot.value.reset();
    }
    return slot.value.has_value();
  }
  void Forget() {
    for (Answer& answer : answers_) answer.valid = false;
  }

 private:
  static constexpr size_t kAnswers = 16;
  struct Answer {
    bool valid = false;
    std::string key;
    std::optional<std::string> value;  // nullopt: absent
  };
  const KvReader* base_;
  mutable std::array<Answer, kAnswers> answers_;
  mutable size_t next_ = 0;
};

// One fold thread and its projectors. Push, PushBarrier and AwaitBarrier are for the verifying thread;
// failure() once every worker has reached the barrier's first phase (see ReachBarrier), commit_status() and
// Digests() between AwaitBarrier and the next Push.
class FoldWorker {
 public:
  // `projectors` are this worker's; `positions` their places in MakeLedgerProjectors' order.
  // `target` is written under `commit_mutex`; `all_folded` holds every worker and the verifying thread at a
  // barrier until all have folded.
  FoldWorker(Store& target, std::mutex& commit_mutex, std::barrier<>& all_folded,
             std::vector<std::unique_ptr<Projector>> projectors, std::vector<size_t> positions)
      : target_(target),
        commit_mutex_(commit_mutex),
        all_folded_(all_folded),
        projectors_(std::move(projectors)),
        positions_(std::move(positions)),
        reads_(target.state()),
        overlay_(reads_, /*track_priors=*/true),
        digests_(projectors_.projectors().size()),
        thread_(&FoldWorker::Run, this) {}

  // Stops the thread; what is still queued is dropped.
  ~FoldWorker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  FoldWorker(const FoldWorker&) = delete;
  FoldWorker& operator=(const FoldWorker&) = delete;

  // Queues a chunk (or, when null, a barrier); blocks while the queue is full.
  void Push(std::shared_ptr<const EventChunk> chunk) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return queue_.size() < kQueuedChunksMax; });
    if (chunk == nullptr) barriers_pushed_ += 1;
    queue_.push_back(std::move(chunk));
    changed_.notify_all();
  }
  void PushBarrier() { Push(nullptr); }
  // Waits until the worker has reached every barrier pushed.
  void AwaitBarrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return barriers_reached_ == barriers_pushed_; });
  }

  const std::optional<FoldFailure>& failure() const { return failure_; }
  const Status& commit_status() const { return commit_status_; }
  // Each projector's set digest as (its place in MakeLedgerProjectors' order, digest).
  std::vector<std::pair<size_t, SetDigest>> Digests() const {
    std::vector<std::pair<size_t, SetDigest>> digests;
    for (size_t i = 0; i < digests_.size(); ++i) digests.emplace_back(positions_[i], digests_[i]);
    return digests;
  }

  // At any time: whether a fold failed, and how many distinct keys the overlay holds.
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  size_t pending_keys() const { return pending_keys_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kQueuedChunksMax = 4;

  void Run() {
    for (;;) {
      std::shared_ptr<const EventChunk> chunk;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        chunk = std::move(queue_.front());
        queue_.pop_front();
      }
      changed_.notify_all();
      if (chunk != nullptr) {
        Fold(*chunk);
        continue;
      }
      ReachBarrier();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        barriers_reached_ += 1;
      }
      changed_.notify_all();
    }
  }

  void Fold(const EventChunk& chunk) {
    if (failure_) return;
    for (size_t i = 0; i < chunk.events.size(); ++i) {
      const VerifiedEvent& event = chunk.events[i];
      // Verified before it was queued: the body is where the record says.
      const fb::EventBody& body =
          *flatbuffers::GetRoot<fb::EventBody>(fb::GetEvent(event.record.data())->body()->data());
      for (const std::unique_ptr<Projector>& projector : projectors_.projectors()) {
        const Status applied = projector->Apply(body, overlay_);
        if (applied.ok()) continue;
        failure_ = FoldFailure{event.sequence, applied.message(),
                               i == 0 ? chunk.head_before : chunk.events[i - 1].hash};
        failed_.store(true, std::memory_order_release);
        return;
      }
      last_folded_ = event.sequence;
    }
    // The applied sequence once per chunk instead of once per event (what ProjectionSet::Apply writes at
    // every event ends the same).
    const std::string sequence_bytes = SequenceKey(last_folded_);
    for (const std::unique_ptr<Projector>& projector : projectors_.projectors())
      overlay_.Put(keys::Applied(projector->name()), sequence_bytes);
    pending_keys_.store(overlay_.size(), std::memory_order_relaxed);
  }

  // Moves the set digests by the overlay's old and new records, waits until every worker has folded (so no
  // fold reads the target while it is written), then commits the overlay.
  void ReachBarrier() {
    const bool commit = !failure_ && overlay_.size() > 0;
    if (commit) {
      overlay_.ForEachWithPrior([&](const std::string& key, const std::optional<std::string>& value,
                                    const std::optional<std::string>& prior) {
        const std::optional<size_t> owner = projectors_.OwnerOf(key);
        if (!owner || value == prior) return;
        if (prior) digests_[*owner].Remove(key, *prior);
        if (value) digests_[*owner].Add(key, *value);
      });
    }
    all_folded_.arrive_and_wait();
    if (!commit) return;
    CommitBatch batch;
    batch.state = &overlay_;
    {
      std::lock_guard<std::mutex> lock(commit_mutex_);
      commit_status_ = target_.Commit(batch);
    }
    overlay_.Clear();
    reads_.Forget();
    pending_keys_.store(0, std::memory_order_relaxed);
  }

  Store& target_;
  std::mutex& commit_mutex_;
  std::barrier<>& all_folded_;
  // For its projectors and OwnerOf; events are folded without ProjectionSet::Apply.
  ProjectionSet projectors_;
  std::vector<size_t> positions_;
  RecentReads reads_;
  Overlay overlay_;
  std::vector<SetDigest> digests_;  // one per projector of projectors_, as of the last barrier
  uint64_t last_folded_ = 0;
  Status commit_status_;
  std::optional<FoldFailure> failure_;
  std::atomic<bool> failed_{false};
  std::atomic<size_t> pending_keys_{0};

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<const EventChunk>> queue_;  // null: a barrier
  uint64_t barriers_pushed_ = 0;
  uint64_t barriers_reached_ = 0;
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything above exists
};

// Splits the ledger projectors among `count` workers, each next most costly projector to the least loaded.
// `count` must not exceed the number of projectors.
std::vector<std::unique_ptr<FoldWorker>> MakeFoldWorkers(Store& target, std::mutex& commit_mutex,
                                                         std::barrier<>& all_folded, size_t count) {
  std::vector<std::unique_ptr<Projector>> all = MakeLedgerProjectors();
  std::vector<size_t> order(all.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return FoldCost(all[a]->name()) > FoldCost(all[b]->name()); });
  std::vector<size_t> load(count, 0);
  std::vector<std::vector<size_t>> assigned(count);
  for (const size_t position : order) {
    const size_t least = std::min_element(load.begin(), load.end()) - load.begin();
    load[least] += FoldCost(all[position]->name());
    assigned[least].push_back(position);
  }
  std::vector<std::unique_ptr<FoldWorker>> workers;
  for (std::vector<size_t>& positions : assigned) {
    std::sort(positions.begin(), positions.end());  // fold in the ledger's order
    std::vector<std::unique_ptr<Projector>> mine;
    for (const size_t position : positions) mine.push_back(std::move(all[position]));
    workers.push_back(std::make_unique<FoldWorker>(target, commit_mutex, all_folded, std::move(mine),
                                                   std::move(positions)));
  }
  return workers;
}

// ---- The replay ----

// The rebuilt state's digest of each projection, in the format a checkpoint signed: the set digests the
// workers keep, or (the older ordered format) a scan of the committed state. Errors: IoError, Corruption (a
// format this version does not know).
Result<std::vector<NamedDigest>> RebuiltDigests(const Store& target, const ProjectionSet& all,
                                                const std::vector<SetDigest>& kept, uint16_t digest_format) {
  if (digest_format == kDigestFormatOrdered) return ProjectionDigests(target, all.projectors());
  if (digest_format != kDigestFormatSet) {
    return Status::Corruption("checkpoint digest format " + std::to_string(digest_format) + " is unknown");
  }
  std::vector<NamedDigest> digests;
  for (size_t i = 0; i < all.projectors().size(); ++i) {
    digests.push_back(NamedDigest{std::string(all.projectors()[i]->name()), kept[i].Summary()});
  }
  return digests;
}

}  // namespace

EventSource StoreSource(const Store& store) {
  return [&store](const std::function<bool(uint64_t, std::string_view)>& fn) {
    return store.ScanEvents(0, UINT64_MAX, fn);
  };
}

namespace {

// One replay: the report so far, and (with a target) the fold workers rebuilding the projections and the
// verified events not yet committed to the target. Runs on the caller's thread; only folding is elsewhere.
class Replayer {
 public:
  Replayer(Store* target, const ReplayOptions& options) : target_(target), options_(options) {
    report_.chain_head = kGenesisHash;
    report_.signatures_checked = options.verifier != nullptr;
  }

  // Prepares the target. Errors: InvalidArgument (the target is not empty), IoError.
  Status Begin() {
    if (target_ == nullptr) return Status::Ok();
    all_.emplace(MakeLedgerProjectors());
    LEDGER_RETURN_IF_ERROR(all_->Load(target_->state()));
    if (all_->LastApplied() != 0) return Status::InvalidArgument("replay target is not empty");
    size_t threads = options_.fold_threads;
    if (threads == 0) threads = std::thread::hardware_concurrency();
    threads = std::clamp<size_t>(threads, 1, all_->projectors().size());
    all_folded_.emplace(static_cast<ptrdiff_t>(threads + 1));  // the workers and this thread
    workers_ = MakeFoldWorkers(*target_, commit_mutex_, *all_folded_, threads);
    kept_digests_.resize(all_->projectors().size());
    chunk_ = std::make_shared<EventChunk>();
    return Status::Ok();
  }

  // Verifies one record the source keeps at `key_sequence` and hands it to the fold workers. False stops the
  // scan: the end was reached, verification or a fold failed (in the report), or the target could not be
  // written.
  bool Visit(uint64_t key_sequence, std::string_view record);

  // Folds and commits what is pending, and stops the workers. Errors: IoError from the target.
  Result<ReplayReport> Finish() {
    if (target_ != nullptr && io_status_.ok()) Commit();
    workers_.clear();
    LEDGER_RETURN_IF_ERROR(io_status_);
    return report_;
  }

 private:
  // Checks the record's place, hashes and envelope. Returns the decoded event, or nullopt after Fail.
  std::optional<DecodedEvent> VerifyChain(uint64_t expected, uint64_t key_sequence, std::string_view record);
  // Checks a checkpoint event against the replayed history just before it.
  bool CheckCheckpoint(uint64_t sequence, const fb::EventBody& body,
                       const fb::CheckpointRecorded& checkpoint);
  bool CheckRebuiltDigests(uint64_t sequence, const fb::CheckpointRecorded& checkpoint,
                           const std::vector<NamedDigest>& signed_digests);
  // Queues a verified event for the workers, committing when the batch is full. False after a failure.
  bool Rebuild(uint64_t sequence, std::string_view record, const Digest& hash);
  // Hands the open chunk to every worker.
  void Dispatch();
  // Brings every worker to a barrier and commits what they folded and the events folded, in one batch per
  // worker. A fold failure becomes the report's first bad event. False after a failure (report or IoError).
  bool Commit();
  // Takes the first fold failure, if any, into the report: the history is good only up to the event before.
  bool TakeFoldFailure();

  bool Fail(uint64_t sequence, std::string problem) {
    report_.first_bad_sequence = sequence;
    report_.problem = std::move(problem);
    return false;
  }

  Store* target_;
  const ReplayOptions& options_;
  ReplayReport report_;
  std::optional<ProjectionSet> all_;  // every ledger projector: emptiness check and the ordered digests
  std::mutex commit_mutex_;           // one Commit at a time
  std::optional<std::barrier<>> all_folded_;
  std::vector<std::unique_ptr<FoldWorker>> workers_;  // after what they refer to: destroyed (joined) first
  std::vector<SetDigest> kept_digests_;  // per projector (MakeLedgerProjectors' order), as of the last commit
  std::shared_ptr<EventChunk> chunk_;
  // The verified events themselves go into the target too, so a rebuilt store is a whole ledger store (a
  // shard restored from Kafka can serve on), not only its projections.
  std::vector<std::pair<uint64_t, std::string>> pending_events_;
  size_t pending_event_bytes_ = 0;
  Status io_status_;
};

void Replayer::Dispatch() {
  if (chunk_->events.empty()) return;
  std::shared_ptr<const EventChunk> chunk = std::move(chunk_);
  for (const std::unique_ptr<FoldWorker>& worker : workers_) worker->Push(chunk);
  chunk_ = std::make_shared<EventChunk>();
  chunk_->head_before = chunk->events.back().hash;
}

bool Replayer::TakeFoldFailure() {
  const FoldFailure* first = nullptr;
  for (const std::unique_ptr<FoldWorker>& worker : workers_) {
    const std::optional<FoldFailure>& failure = worker->failure();
    if (failure && (first == nullptr || failure->sequence < first->sequence)) first = &*failure;
  }
  if (first == nullptr) return false;
  // Events at and after the failure were verified but are not part of a history that folds.
  report_.events_read = first->sequence - 1;
  report_.last_sequence = first->sequence - 1;
  report_.chain_head = first->head_before;
  Fail(first->sequence, first->problem);
  while (!pending_events_.empty() && pending_events_.back().first >= first->sequence)
    pending_events_.pop_back();
  return true;
}

bool Replayer::Commit() {
  Dispatch();
  for (const std::unique_ptr<FoldWorker>& worker : workers_) worker->PushBarrier();
  all_folded_->arrive_and_wait();
  const bool folded = !TakeFoldFailure();
  if (!pending_events_.empty()) {
    CommitBatch events;
    events.events = std::move(pending_events_);
    std::lock_guard<std::mutex> lock(commit_mutex_);
    io_status_ = target_->Commit(events);
  }
  pending_events_.clear();
  pending_event_bytes_ = 0;
  for (const std::unique_ptr<FoldWorker>& worker : workers_) {
    worker->AwaitBarrier();
    if (io_status_.ok()) io_status_ = worker->commit_status();
    // A failed worker's overlay holds part of an event that cannot be folded: it is not committed.
    if (!worker->failure()) {
      for (const auto& [position, digest] : worker->Digests()) kept_digests_[position] = digest;
    }
  }
  return folded && io_status_.ok();
}

bool Replayer::Rebuild(uint64_t sequence, std::string_view record, const Digest& hash) {
  if (target_ == nullptr) return true;
  chunk_->events.push_back(VerifiedEvent{sequence, std::string(record), hash});
  pending_events_.emplace_back(sequence, std::string(record));
  pending_event_bytes_ += record.size();
  if (chunk_->events.size() < kChunkEventsMax) return true;
  Dispatch();
  size_t pending_keys = 0;
  for (const std::unique_ptr<FoldWorker>& worker : workers_) {
    if (worker->failed()) return Commit();  // reports the failure
    pending_keys += worker->pending_keys();
  }
  if (pending_keys >= kCommitKeysMax || pending_event_bytes_ >= kCommitEventBytesMax) return Commit();
  return true;
}

bool Replayer::CheckCheckpoint(uint64_t sequence, const fb::EventBody& body,
                               const fb::CheckpointRecorded& checkpoint) {
  // Everything before the checkpoint folded and committed first: a fold failure there comes first.
  if (target_ != nullptr && !Commit()) return false;
  report_.checkpoints_seen += 1;
  if (checkpoint.sequence() != report_.last_sequence) {
    return Fail(sequence, "checkpoint covers sequence " + std::to_string(checkpoint.sequence()) +
                              " but follows " + std::to_string(report_.last_sequence));
  }
  if (!SameBytes(checkpoint.chain_head(), report_.chain_head)) {
    return Fail(sequence, "checkpoint's chain head differs from the replayed chain at " +
                              std::to_string(report_.last_sequence));
  }
  Result<std::vector<NamedDigest>> signed_digests = SignedDigestsOf(checkpoint);
  if (!signed_digests.ok()) return Fail(sequence, signed_digests.status().message());
  if (options_.verifier != nullptr) {
    const Status signature = CheckCheckpointSignature(checkpoint, report_.chain_head, *options_.verifier);
    if (!signature.ok()) return Fail(sequence, signature.message());
  }
  if (!CheckRebuiltDigests(sequence, checkpoint, *signed_digests)) return false;
  report_.checkpoints_verified += 1;
  // The signature covers the checkpoint's payload, not its event's envelope: the checkpoint vouches for the
  // history through it only when the envelope is the one the ledger writes (a forged command id or commands
  // offset on it would change what a restored shard answers as a duplicate and where it reads commands).
  if (report_.signatures_checked && IsLedgerCheckpointEnvelope(body, checkpoint))
    report_.signed_through = sequence;
  return true;
}

// Runs after CheckCheckpoint's Commit: the target and kept_digests_ are as of the sequence before.
bool Replayer::CheckRebuiltDigests(uint64_t sequence, const fb::CheckpointRecorded& checkpoint,
                                   const std::vector<NamedDigest>& signed_digests) {
  if (target_ == nullptr) return true;
  Result<std::vector<NamedDigest>> rebuilt =
      RebuiltDigests(*target_, *all_, kept_digests_, checkpoint.digest_format());
  if (!rebuilt.ok()) {
    io_status_ = rebuilt.status();
    return false;
  }
  if (rebuilt->size() != signed_digests.size())
    return Fail(sequence, "checkpoint names another set of projections");
  for (size_t i = 0; i < rebuilt->size(); ++i) {
    if ((*rebuilt)[i].name != signed_digests[i].name || (*rebuilt)[i].digest != signed_digests[i].digest) {
      return Fail(sequence, "digest differs: projection '" + (*rebuilt)[i].name + "' rebuilt to sequence " +
                                std::to_string(report_.last_sequence) + " is not what the checkpoint signed");
    }
  }
  return true;
}

std::optional<DecodedEvent> Replayer::VerifyChain(uint64_t expected, uint64_t key_sequence,
                                                  std::string_view record) {
  if (key_sequence != expected) {
    Fail(expected, key_sequence > expected ? "gap: sequence " + std::to_string(expected) + " is missing"
                                           : "sequence " + std::to_string(key_sequence) + " out of order");
    return std::nullopt;
  }
  Result<DecodedEvent> decoded = DecodeEventRecord(record);
  if (!decoded.ok()) {
    Fail(expected, decoded.status().message());
    return std::nullopt;
  }
  const fb::EventBody& body = *decoded->body;
  if (body.sequence() != expected) {
    Fail(expected, "event says sequence " + std::to_string(body.sequence()) + " (reordered)");
  } else if (decoded->prev_hash != report_.chain_head) {
    Fail(expected, "prev_hash does not match the previous event's hash");
  } else if (ChainHash(report_.chain_head, decoded->body_bytes) != decoded->hash) {
    Fail(expected, "hash mismatch");
  } else if (EncodeEnvelope(decoded->body_bytes, decoded->prev_hash, decoded->hash) != record) {
    Fail(expected, "record altered outside its hashed body");
  } else {
    return std::move(decoded).value();
  }
  return std::nullopt;
}

bool Replayer::Visit(uint64_t key_sequence, std::string_view record) {
  const uint64_t expected = report_.last_sequence + 1;
  if (expected > options_.to_sequence) return false;
  std::optional<DecodedEvent> decoded = VerifyChain(expected, key_sequence, record);
  if (!decoded) return false;
  const fb::EventBody& body = *decoded->body;
  if (options_.as_of_ns && body.recorded_at_ns() > *options_.as_of_ns) return false;
  if (body.payload_type() == fb::Payload::CheckpointRecorded &&
      !CheckCheckpoint(expected, body, *body.payload_as_CheckpointRecorded())) {
    return false;
  }
  // A forged but re-chained event must be reported, never trusted: its postings must balance per unit
  // before any projector folds them (the projectors assert it, as the write side guarantees it).
  if (!PostingsBalanced(body)) return Fail(expected, "postings malformed or not summing to zero per unit");
  if (!Rebuild(expected, record, decoded->hash)) return false;
  report_.events_read += 1;
  report_.last_sequence = expected;
  report_.chain_head = decoded->hash;
  if (options_.progress && report_.events_read % kProgressEveryEvents == 0)
    options_.progress(report_.events_read);
  return true;
}

}  // namespace

Result<ReplayReport> Replay(const EventSource& source, Store* target, const ReplayOptions& options) {
  Replayer replayer(target, options);
  LEDGER_RETURN_IF_ERROR(replayer.Begin());
  LEDGER_RETURN_IF_ERROR(source([&replayer](uint64_t key_sequence, std::string_view record) {
    return replayer.Visit(key_sequence, record);
  }));
  return replayer.Finish();
}

Result<ReplayReport> Replay(const Store& source, Store* target, uint64_t to_sequence) {
  ReplayOptions options;
  options.to_sequence = to_sequence;
  return Replay(StoreSource(source), target, options);
}

Result<Digest> StateDigest(const Store& store) { return DigestOfPrefixes(store, {""}); }

}  // namespace ledger::replay
