// Key-value views used by validation and projections, independent of RocksDB.
//
// KvReader answers point reads; Overlay buffers the writes of one commit group on top of a reader, so
// validation of command n+1 sees the effects of command n before the group is durable. The overlay keeps
// its writes in key order so a commit writes them in a deterministic order. Not thread-safe: one writer.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ledger {

class KvReader {
 public:
  virtual ~KvReader() = default;
  // Returns true and sets *value when `key` exists. Storage faults abort (fail-stop; see store.h).
  virtual bool Get(std::string_view key, std::string* value) const = 0;
};

class Overlay final : public KvReader {
 public:
  explicit Overlay(const KvReader& base) : base_(&base) {}
  // Not copyable: `Overlay(other_overlay)` must not silently copy the writes when a layer on top is meant.
  Overlay(const Overlay&) = delete;
  Overlay& operator=(const Overlay&) = delete;
  // Reads that miss this overlay go to `base` from now on (a pipelined group, once the group under it is durable).
  void Rebase(const KvReader& base) { base_ = &base; }

  bool Get(std::string_view key, std::string* value) const override;
  void Put(std::string_view key, std::string_view value);
  void Delete(std::string_view key);

  // Calls fn(key, value) for every buffered write in key order; value is nullopt for a delete.
  void ForEach(const std::function<void(const std::string&, const std::optional<std::string>&)>& fn) const;
  size_t size() const { return writes_.size(); }
  size_t bytes() const { return bytes_; }
  void Clear();

 private:
  const KvReader* base_;
  std::map<std::string, std::optional<std::string>, std::less<>> writes_;
  size_t bytes_ = 0;
};

// A bounded cache over a reader, for the single writer of that reader's store: it caches keys that exist
// (absent keys are left to the store's bloom filters: most are never asked twice), and the writer hands it every
// committed group so it never serves a stale value (cached keys take their new values; others stay out). Eviction is second-chance FIFO; `capacity_bytes` bounds keys
// and values held with their bookkeeping (hash nodes, heap blocks, the eviction queue). Not thread-safe.
class CachedReader final : public KvReader {
 public:
  CachedReader(const KvReader& base, size_t capacity_bytes) : base_(&base), capacity_bytes_(capacity_bytes) {}

  bool Get(std::string_view key, std::string* value) const override;
  // Applies the writes of a group that is now durable in the base.
  void Committed(const Overlay& writes);
  size_t bytes() const { return bytes_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>()(key); }
  };
  struct Entry {
    std::string value;
    bool referenced = false;
  };
  void Insert(std::string_view key, std::string_view value) const;
  void Erase(std::string_view key) const;

  const KvReader* base_;
  size_t capacity_bytes_;
  mutable std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
  mutable std::deque<std::string> order_;  // insertion order; may name keys erased since
  mutable size_t bytes_ = 0;
};

// A reader with nothing in it (a fresh store).
class EmptyReader final : public KvReader {
 public:
  bool Get(std::string_view, std::string*) const override { return false; }
};

}  // namespace ledger
