// Key-value views used by validation and projections, independent of RocksDB.
//
// KvReader answers point reads; Overlay buffers the writes of one commit group on top of a reader, so
// validation of command n+1 sees the effects of command n before the group is durable. A commit walks its
// writes in key order (ForEach), so it writes them in a deterministic order. Not thread-safe: one writer.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ledger {

class KvReader {
 public:
  virtual ~KvReader() = default;
  // Returns true and sets *value when `key` exists. Storage faults abort (fail-stop; see store.h).
  virtual bool Get(std::string_view key, std::string* value) const = 0;
};

// A reader that also takes writes: what projectors fold into.
class KvWriter : public KvReader {
 public:
  virtual void Put(std::string_view key, std::string_view value) = 0;
  virtual void Delete(std::string_view key) = 0;
};

// One key a group wrote: its value after the group (nullopt: deleted) and before it (nullopt: absent).
struct GroupWrite {
  std::string key;
  std::optional<std::string> value;
  std::optional<std::string> prior;
};

// Hashes std::string keys and std::string_view probes alike (heterogeneous look-up, no temporary strings).
struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view key) const { return std::hash<std::string_view>()(key); }
};

class Overlay final : public KvWriter {
 public:
  // With `track_priors`, the first write of each key also reads the key's value in `base` at that moment (the
  // record as it was before this overlay), so a commit can update set digests with old and new values.
  explicit Overlay(const KvReader& base, bool track_priors = false)
      : base_(&base), track_priors_(track_priors) {}
  // Not copyable: `Overlay(other_overlay)` must not silently copy the writes when a layer on top is meant.
  Overlay(const Overlay&) = delete;
  Overlay& operator=(const Overlay&) = delete;

  bool Get(std::string_view key, std::string* value) const override;
  void Put(std::string_view key, std::string_view value) override;
  void Delete(std::string_view key) override;

  // Calls fn(key, value) for every buffered write in key order; value is nullopt for a delete.
  void ForEach(const std::function<void(const std::string&, const std::optional<std::string>&)>& fn) const;
  // Every buffered write with the key's value before this overlay (nullopt: absent), in no particular order.
  // Requires track_priors.
  using PriorFn = std::function<void(const std::string& key, const std::optional<std::string>& value,
                                     const std::optional<std::string>& prior)>;
  void ForEachWithPrior(const PriorFn& fn) const;
  // Stacks `later` (a group's writes after this overlay's) onto this overlay, as if they had been written
  // here: a key new to this overlay keeps its prior from `later`, a key already here takes `later`'s value
  // and keeps its own prior. Requires track_priors.
  void Absorb(std::vector<GroupWrite>&& later);
  size_t size() const { return writes_.size(); }
  size_t bytes() const { return bytes_; }
  void Clear();

 private:
  struct Write {
    std::optional<std::string> value;  // nullopt: deleted
    std::optional<std::string> prior;  // with track_priors: the value before this overlay
  };
  // Adds an entry for a key written for the first time, reading its prior when tracked.
  Write& NewWrite(std::string_view key);

  const KvReader* base_;
  bool track_priors_;
  // Hashed, not ordered: a group holds tens of thousands of keys with long shared prefixes, and look-ups far
  // outnumber the one ordered walk at commit (done on the commit thread).
  std::unordered_map<std::string, Write, KeyHash, std::equal_to<>> writes_;
  size_t bytes_ = 0;
};

// WriterState: the writer's memory of the state, the one structure decisions read and the writer's
// projectors write. It holds what was read from the store (present or absent: a customer without limit
// overrides is asked about them at every payment) and every key written since; the store's records lag it
// (the projections are folded into them behind the commit, docs/ARCHITECTURE.md: Projections behind the
// commit), so a written key is pinned: it stays while its group is open and, once sealed at a sequence, until
// Folded passes that sequence. Unpinned keys leave by second-chance FIFO, so keys asked once (a new command
// id, a new order) leave first. `capacity_bytes` bounds keys and values held with their bookkeeping (hash
// nodes, heap blocks, the eviction queue); pinned keys may exceed it for as long as the fold lags, which the
// bound on groups waiting to be folded limits. One hash look-up per read, no layer per group. Not
// thread-safe: the writer's thread only.
class WriterState final : public KvWriter {
 public:
  WriterState(const KvReader& base, size_t capacity_bytes) : base_(&base), capacity_bytes_(capacity_bytes) {}

  bool Get(std::string_view key, std::string* value) const override;
  void Put(std::string_view key, std::string_view value) override;
  void Delete(std::string_view key) override;
  // Ends the open group, whose last event is `sequence`: returns each key it wrote once, with its value
  // before the group, and pins the keys until Folded(s) with s >= sequence.
  std::vector<GroupWrite> SealGroup(uint64_t sequence);
  // The base holds every group up to `sequence` now.
  void Folded(uint64_t sequence);
  size_t bytes() const { return bytes_; }
  // Bytes of the keys and values the open group wrote.
  size_t open_group_bytes() const { return open_group_bytes_; }

 private:
  static constexpr uint64_t kInOpenGroup = UINT64_MAX;
  struct Entry {
    std::optional<std::string> value;  // nullopt: the key is absent
    bool referenced = false;
    uint64_t pinned_until = 0;  // the last sequence that changed the key and is not in the base yet
  };
  using Entries = std::unordered_map<std::string, Entry, KeyHash, std::equal_to<>>;
  // Finds or loads `key` and, the first time the open group touches it, records its value before the group.
  Entries::iterator Touch(std::string_view key);
  void Insert(std::string_view key, std::optional<std::string_view> value) const;
  // Evicts unpinned entries until the bound holds or no entry can leave.
  void Evict() const;

  const KvReader* base_;
  size_t capacity_bytes_;
  uint64_t folded_ = 0;
  // Set when a full round found nothing that may leave: retrying before the fold moves would only cycle.
  mutable bool eviction_blocked_ = false;
  mutable Entries entries_;
  // Entries are addressed by their hash node, which stays put until the entry is erased (only Evict erases,
  // through the entry's one queue slot, and never a pinned entry): no second copy of the key, no look-up.
  using Held = Entries::value_type;
  mutable std::deque<Held*> order_;  // insertion order: every held entry once, nothing else
  mutable size_t bytes_ = 0;
  // The entries the open group wrote, in first-write order, each with its value before the group.
  std::vector<std::pair<Held*, std::optional<std::string>>> open_group_;
  size_t open_group_bytes_ = 0;
};

// A reader with nothing in it (a fresh store).
class EmptyReader final : public KvReader {
 public:
  bool Get(std::string_view, std::string*) const override { return false; }
};

}  // namespace ledger
