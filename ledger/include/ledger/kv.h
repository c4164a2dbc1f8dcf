// Key-value views used by validation and projections, independent of RocksDB.
//
// KvReader answers point reads; Overlay buffers the writes of one commit group on top of a reader, so
// validation of command n+1 sees the effects of command n before the group is durable. The overlay keeps
// its writes in key order so a commit writes them in a deterministic order. Not thread-safe: one writer.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

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

// A reader with nothing in it (a fresh store).
class EmptyReader final : public KvReader {
 public:
  bool Get(std::string_view, std::string*) const override { return false; }
};

}  // namespace ledger
