#include "storage/kv.h"

#include <algorithm>
#include <vector>

#include "core/assert.h"

namespace ledger {
namespace {

// What a cache entry really costs the heap, so the byte bound bounds memory and not only payload: the hash
// node (next pointer, two std::string headers, the flag, the cached hash), its bucket, the eviction queue's
// pointer to it, and glibc's chunk for every string too long for the small-string buffer (15 characters).
size_t EntryCharge(size_t key_size, size_t value_size) {
  constexpr size_t kNodeBucketAndQueueSlot = 96 + 16 + 8;
  auto heap_block = [](size_t size) -> size_t { return size > 15 ? (size + 1 + 8 + 15) / 16 * 16 : 0; };
  return kNodeBucketAndQueueSlot + heap_block(key_size) + heap_block(value_size);
}

size_t ValueSize(const std::optional<std::string>& value) { return value ? value->size() : 0; }

}  // namespace

bool Overlay::Get(std::string_view key, std::string* value) const {
  auto it = writes_.find(key);
  if (it != writes_.end()) {
    if (!it->second.value.has_value()) return false;
    *value = *it->second.value;
    return true;
  }
  return base_->Get(key, value);
}

Overlay::Write& Overlay::NewWrite(std::string_view key) {
  Write write;
  if (track_priors_) {
    std::string prior;
    if (base_->Get(key, &prior)) {
      bytes_ += prior.size();
      write.prior = std::move(prior);
    }
  }
  bytes_ += key.size();
  return writes_.emplace(std::string(key), std::move(write)).first->second;
}

void Overlay::Put(std::string_view key, std::string_view value) {
  auto it = writes_.find(key);
  Write& write = it == writes_.end() ? NewWrite(key) : it->second;
  bytes_ += value.size();
  write.value = std::string(value);
}

void Overlay::Delete(std::string_view key) {
  auto it = writes_.find(key);
  Write& write = it == writes_.end() ? NewWrite(key) : it->second;
  write.value.reset();
}

void Overlay::ForEach(
    const std::function<void(const std::string&, const std::optional<std::string>&)>& fn) const {
  std::vector<const std::pair<const std::string, Write>*> ordered;
  ordered.reserve(writes_.size());
  for (const auto& write : writes_) ordered.push_back(&write);
  std::sort(ordered.begin(), ordered.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  for (const auto* write : ordered) fn(write->first, write->second.value);
}

void Overlay::ForEachWithPrior(const PriorFn& fn) const {
  LEDGER_ASSERT(track_priors_);
  for (const auto& [key, write] : writes_) fn(key, write.value, write.prior);
}

void Overlay::Absorb(std::vector<GroupWrite>&& later) {
  LEDGER_ASSERT(track_priors_);
  // No reserve(size + later): most keys are already here, and a reserve to a new count rehashes every node.
  for (GroupWrite& write : later) {
    const size_t key_size = write.key.size(), value_size = ValueSize(write.value);
    const size_t prior_size = ValueSize(write.prior);
    auto [it, inserted] = writes_.try_emplace(std::move(write.key), Write{});
    if (inserted) {
      it->second.prior = std::move(write.prior);
      bytes_ += key_size + prior_size;
    }
    it->second.value = std::move(write.value);
    bytes_ += value_size;
  }
}

void Overlay::Clear() {
  writes_.clear();
  bytes_ = 0;
}

bool WriterState::Get(std::string_view key, std::string* value) const {
  if (auto it = entries_.find(key); it != entries_.end()) {
    it->second.referenced = true;
    if (!it->second.value) return false;
    *value = *it->second.value;
    return true;
  }
  const bool present = base_->Get(key, value);
  Insert(key, present ? std::optional<std::string_view>(*value) : std::nullopt);
  return present;
}

WriterState::Entries::iterator WriterState::Touch(std::string_view key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    // Not held, so not written since the last fold: the base has its current value.
    std::string base_value;
    const bool present = base_->Get(key, &base_value);
    std::optional<std::string> prior =
        present ? std::optional<std::string>(std::move(base_value)) : std::nullopt;
    it = entries_.try_emplace(std::string(key), Entry{prior, false, kInOpenGroup}).first;
    order_.push_back(&*it);
    bytes_ += EntryCharge(key.size(), ValueSize(prior));
    open_group_bytes_ += key.size() + ValueSize(prior);
    open_group_.emplace_back(&*it, std::move(prior));
    return it;
  }
  if (it->second.pinned_until != kInOpenGroup) {
    open_group_bytes_ += key.size() + ValueSize(it->second.value);
    open_group_.emplace_back(&*it, it->second.value);
    it->second.pinned_until = kInOpenGroup;
  }
  return it;
}

void WriterState::Put(std::string_view key, std::string_view value) {
  auto it = Touch(key);
  bytes_ =
      bytes_ - EntryCharge(key.size(), ValueSize(it->second.value)) + EntryCharge(key.size(), value.size());
  open_group_bytes_ += value.size();
  if (it->second.value) {
    it->second.value->assign(value);  // reuses the buffer
  } else {
    it->second.value.emplace(value);
  }
  Evict();
}

void WriterState::Delete(std::string_view key) {
  auto it = Touch(key);
  bytes_ = bytes_ - EntryCharge(key.size(), ValueSize(it->second.value)) + EntryCharge(key.size(), 0);
  it->second.value.reset();
}

std::vector<GroupWrite> WriterState::SealGroup(uint64_t sequence) {
  std::vector<GroupWrite> writes;
  writes.reserve(open_group_.size());
  for (auto& [held, prior] : open_group_) {
    LEDGER_ASSERT(held->second.pinned_until == kInOpenGroup);
    held->second.pinned_until = sequence;
    writes.push_back(GroupWrite{held->first, held->second.value, std::move(prior)});
  }
  open_group_.clear();
  open_group_bytes_ = 0;
  return writes;
}

void WriterState::Folded(uint64_t sequence) {
  folded_ = sequence;
  eviction_blocked_ = false;
}

void WriterState::Insert(std::string_view key, std::optional<std::string_view> value) const {
  const size_t value_size = value ? value->size() : 0;
  if (EntryCharge(key.size(), value_size) > capacity_bytes_ / 16)
    return;  // a huge value would flush the working set
  const auto [it, inserted] = entries_.try_emplace(
      std::string(key), Entry{value ? std::optional<std::string>(*value) : std::nullopt, false, 0});
  LEDGER_ASSERT(inserted);  // only a miss inserts
  order_.push_back(&*it);
  bytes_ += EntryCharge(key.size(), value_size);
  Evict();
}

void WriterState::Evict() const {
  // Second chance: a key read since it was queued goes round once more, and a pinned key goes round until the
  // fold passes it. Every pass over a referenced key clears its bit, so two rounds of the queue find every
  // entry that can leave; past that, the pinned keys stay over the bound until the fold catches up.
  if (eviction_blocked_) return;
  size_t passes_left = 2 * order_.size();
  while (bytes_ > capacity_bytes_) {
    if (passes_left-- == 0) {
      eviction_blocked_ = true;
      return;
    }
    Held* oldest = order_.front();
    order_.pop_front();
    if (oldest->second.referenced || oldest->second.pinned_until > folded_) {
      oldest->second.referenced = false;
      order_.push_back(oldest);
      continue;
    }
    bytes_ -= EntryCharge(oldest->first.size(), ValueSize(oldest->second.value));
    auto it = entries_.find(oldest->first);  // entries leave only here, with their queue slot
    LEDGER_ASSERT(&*it == oldest);
    entries_.erase(it);
  }
}

}  // namespace ledger
