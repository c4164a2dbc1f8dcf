#include "projections/folder.h"

#include "core/assert.h"
#include "events/event.h"
#include "state/keys.h"

namespace ledger {
namespace {

// CatchUp folds this many events per batch at most (besides the byte bound).
constexpr uint64_t kCatchUpEventsPerBatch = 100'000;

// Folds `store`'s events from..to through `projections` into `view`, stopping after the event that takes
// `view` to `bytes_max` bytes. Errors: IoError, Corruption (an event that does not decode or fold).
Status FoldStoredEvents(const Store& store, uint64_t from, uint64_t to, ProjectionSet& projections,
                        Overlay& view, size_t bytes_max) {
  Status folded;
  LEDGER_RETURN_IF_ERROR(store.ScanEvents(from, to, [&](uint64_t sequence, std::string_view record) {
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    folded =
        decoded.ok()
            ? projections.ApplyUnrecorded(*decoded->body, view)
            : Status::Corruption("event " + std::to_string(sequence) + ": " + decoded.status().message());
    return folded.ok() && view.bytes() < bytes_max;
  }));
  return folded;
}

}  // namespace

ProjectionFolder::ProjectionFolder(Store& store, uint64_t folded_sequence, std::vector<SetDigest> digests,
                                   const std::vector<std::string>& folded_by_writer)
    : store_(store),
      all_(MakeLedgerProjectors()),
      behind_(SelectProjectors(MakeLedgerProjectors(), folded_by_writer, /*keep=*/false)),
      pushed_sequence_(folded_sequence),
      folded_sequence_(folded_sequence),
      digests_(std::move(digests)) {
  LEDGER_ASSERT(digests_.size() == all_.projectors().size());
}

ProjectionFolder::~ProjectionFolder() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status ProjectionFolder::CatchUp(uint64_t last_sequence, const std::function<void(uint64_t)>& progress) {
  LEDGER_ASSERT(!thread_.joinable());
  LEDGER_RETURN_IF_ERROR(all_.Load(store_.state()));
  LEDGER_ASSERT(all_.LastApplied() == folded_sequence_);
  while (folded_sequence_ < last_sequence) {
    Overlay records(store_.state(), /*track_priors=*/true);
    const uint64_t from = folded_sequence_ + 1;
    const uint64_t to = std::min(last_sequence, folded_sequence_ + kCatchUpEventsPerBatch);
    LEDGER_RETURN_IF_ERROR(FoldStoredEvents(store_, from, to, all_, records, kBatchBytesMax));
    if (all_.LastApplied() == folded_sequence_)
      return Status::Corruption("event " + std::to_string(from) + " is missing from the store");
    LEDGER_RETURN_IF_ERROR(WriteFold(records, all_.LastApplied()));
    if (progress) progress(folded_sequence_);
  }
  pushed_sequence_ = folded_sequence_;
  return behind_.Load(store_.state());
}

void ProjectionFolder::Start() {
  LEDGER_ASSERT(!thread_.joinable());
  thread_ = std::thread([this] { Run(); });
}

Status ProjectionFolder::Push(FoldGroup group) {
  LEDGER_ASSERT(!group.events.empty());
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock,
                [&] { return !error_.ok() || waiting_.size() < kGroupsWaitingMax || hold_for_testing_; });
  if (!error_.ok()) return error_;
  LEDGER_ASSERT(group.events.front().first == pushed_sequence_ + 1);
  pushed_sequence_ = group.events.back().first;
  if (hold_for_testing_) return Status::Ok();  // dropped: never folded, as if the process had died
  waiting_.push_back(std::move(group));
  changed_.notify_all();
  return Status::Ok();
}

Status ProjectionFolder::AwaitFolded(uint64_t sequence) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (hold_for_testing_) return Status::Ok();  // nothing will be folded
  if (!error_.ok()) return error_;
  LEDGER_ASSERT(sequence <= pushed_sequence_ || sequence <= folded_sequence_);
  changed_.wait(lock, [&] { return !error_.ok() || folded_sequence_ >= sequence; });
  return error_;
}

Status ProjectionFolder::status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

uint64_t ProjectionFolder::folded_sequence() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return folded_sequence_;
}

std::vector<SetDigest> ProjectionFolder::digests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return digests_;
}

void ProjectionFolder::Run() {
  for (;;) {
    std::vector<FoldGroup> groups;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
      if (waiting_.empty()) return;  // stopping, and everything pushed is folded
      size_t bytes = 0;
      while (!waiting_.empty() && bytes < kBatchBytesMax) {
        for (const GroupWrite& write : waiting_.front().writes)
          bytes += write.key.size() + (write.value ? write.value->size() : 0);
        groups.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
      changed_.notify_all();  // room in the queue
    }
    const Status folded = Fold(groups);
    if (!folded.ok()) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = folded;
      waiting_.clear();
      changed_.notify_all();
      return;
    }
  }
}

Status ProjectionFolder::Fold(std::vector<FoldGroup>& groups) {
  // The decision projectors' final writes are absorbed before the events are folded through the others: right
  // only because no projector reads another's records (projections/projector.h).
  Overlay records(store_.state(), /*track_priors=*/true);
  for (FoldGroup& group : groups) {
    records.Absorb(std::move(group.writes));
    for (const auto& [sequence, record] : group.events) {
      Result<DecodedEvent> decoded = DecodeEventRecord(record);
      if (!decoded.ok())
        return Status::Corruption("event " + std::to_string(sequence) + ": " + decoded.status().message());
      LEDGER_RETURN_IF_ERROR(behind_.ApplyUnrecorded(*decoded->body, records));
    }
  }
  return WriteFold(records, behind_.LastApplied());
}

Status ProjectionFolder::WriteFold(Overlay& records, uint64_t last_sequence) {
  std::vector<SetDigest> digests = this->digests();
  const auto& projectors = all_.projectors();
  std::vector<bool> changed(projectors.size(), false);
  records.ForEachWithPrior([&](const std::string& key, const std::optional<std::string>& value,
                               const std::optional<std::string>& prior) {
    const std::optional<size_t> owner = all_.OwnerOf(key);
    if (!owner || value == prior) return;
    if (prior) digests[*owner].Remove(key, *prior);
    if (value) digests[*owner].Add(key, *value);
    changed[*owner] = true;
  });
  // Every projector's applied sequence, also of those the batch left unchanged: they all follow the events.
  const std::string sequence_bytes = SequenceKey(last_sequence);
  for (const auto& projector : projectors) records.Put(keys::Applied(projector->name()), sequence_bytes);
  CommitBatch batch;
  batch.state = &records;
  batch.sync = false;
  for (size_t i = 0; i < projectors.size(); ++i) {
    if (changed[i]) batch.meta.emplace_back(SetDigestMetaKey(projectors[i]->name()), digests[i].Serialize());
  }
  LEDGER_RETURN_IF_ERROR(store_.Commit(batch));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    folded_sequence_ = last_sequence;
    digests_ = std::move(digests);
  }
  changed_.notify_all();
  return Status::Ok();
}

namespace {

class CaughtUpView final : public Store {
 public:
  explicit CaughtUpView(std::unique_ptr<Store> base)
      : base_(std::move(base)), folded_(base_->state(), /*track_priors=*/false) {}

  // Folds the events the stored projections trail by into the in-memory layer.
  Status CatchUp() {
    ProjectionSet all(MakeLedgerProjectors());
    LEDGER_RETURN_IF_ERROR(all.Load(base_->state()));
    Result<std::optional<std::pair<uint64_t, std::string>>> last = base_->LastEvent();
    if (!last.ok()) return last.status();
    if (!last->has_value() || (*last)->first <= all.LastApplied()) return Status::Ok();
    LEDGER_RETURN_IF_ERROR(
        FoldStoredEvents(*base_, all.LastApplied() + 1, (*last)->first, all, folded_, SIZE_MAX));
    all.RecordApplied(folded_);
    return Status::Ok();
  }

  const KvReader& state() const override { return folded_; }
  Status Commit(const CommitBatch&) override {
    return Status::InvalidArgument("a read-only view takes no writes");
  }
  Result<std::optional<std::pair<uint64_t, std::string>>> LastEvent() const override {
    return base_->LastEvent();
  }
  Status ScanEvents(uint64_t from, uint64_t to,
                    const std::function<bool(uint64_t, std::string_view)>& fn) const override {
    return base_->ScanEvents(from, to, fn);
  }
  // The stored records under `prefix` merged, in key order, with the folded layer's (which wins).
  Status ScanState(std::string_view prefix,
                   const std::function<bool(std::string_view, std::string_view)>& fn) const override {
    std::vector<std::pair<const std::string*, const std::optional<std::string>*>> layer;
    folded_.ForEach([&](const std::string& key, const std::optional<std::string>& value) {
      if (std::string_view(key).starts_with(prefix)) layer.emplace_back(&key, &value);
    });
    size_t next = 0;
    bool stopped = false;
    // Emits the layer's records before `bound` (all of them when bound is null); false once fn stops.
    auto emit_layer_before = [&](const std::string_view* bound) {
      for (; next < layer.size() && (bound == nullptr || *layer[next].first < *bound); ++next) {
        if (*layer[next].second && !fn(*layer[next].first, **layer[next].second)) return false;
      }
      return true;
    };
    LEDGER_RETURN_IF_ERROR(base_->ScanState(prefix, [&](std::string_view key, std::string_view value) {
      if (!emit_layer_before(&key)) return !(stopped = true);
      if (next < layer.size() && *layer[next].first == key) {
        const std::optional<std::string>& newer = *layer[next++].second;
        if (newer && !fn(key, *newer)) return !(stopped = true);
        return true;
      }
      if (!fn(key, value)) return !(stopped = true);
      return true;
    }));
    if (!stopped) emit_layer_before(nullptr);
    return Status::Ok();
  }
  Result<std::optional<std::string>> GetMeta(std::string_view key) const override {
    return base_->GetMeta(key);
  }
  Result<WriterCheck> CheckWriters() const override { return base_->CheckWriters(); }
  Status AdoptWriters() override { return Status::InvalidArgument("a read-only view takes no writes"); }
  StoreMemory Memory() const override { return base_->Memory(); }

 private:
  Status PutEventRaw(uint64_t, std::string_view) override {
    return Status::InvalidArgument("read-only view");
  }
  Status DeleteEventRaw(uint64_t) override { return Status::InvalidArgument("read-only view"); }
  Status PutStateRaw(std::string_view, std::string_view) override {
    return Status::InvalidArgument("read-only view");
  }

  std::unique_ptr<Store> base_;
  Overlay folded_;
};

}  // namespace

Result<std::unique_ptr<Store>> ViewAsOfLastEvent(std::unique_ptr<Store> store) {
  auto view = std::make_unique<CaughtUpView>(std::move(store));
  LEDGER_RETURN_IF_ERROR(view->CatchUp());
  return std::unique_ptr<Store>(std::move(view));
}

}  // namespace ledger
