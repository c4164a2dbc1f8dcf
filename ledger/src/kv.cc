#include "ledger/kv.h"

namespace ledger {

bool Overlay::Get(std::string_view key, std::string* value) const {
  auto it = writes_.find(key);
  if (it != writes_.end()) {
    if (!it->second.has_value()) return false;
    *value = *it->second;
    return true;
  }
  return base_->Get(key, value);
}

void Overlay::Put(std::string_view key, std::string_view value) {
  auto it = writes_.find(key);
  if (it == writes_.end()) {
    bytes_ += key.size() + value.size();
    writes_.emplace(std::string(key), std::string(value));
  } else {
    bytes_ += value.size();
    it->second = std::string(value);
  }
}

void Overlay::Delete(std::string_view key) {
  auto it = writes_.find(key);
  if (it == writes_.end()) {
    bytes_ += key.size();
    writes_.emplace(std::string(key), std::nullopt);
  } else {
    it->second.reset();
  }
}

void Overlay::ForEach(
    const std::function<void(const std::string&, const std::optional<std::string>&)>& fn) const {
  for (const auto& [key, value] : writes_) fn(key, value);
}

void Overlay::Clear() {
  writes_.clear();
  bytes_ = 0;
}

}  // namespace ledger
