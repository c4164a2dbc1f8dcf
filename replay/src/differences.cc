// Naming where a rebuilt state and a live one part: the first differing key of each projector. See replay.h.
#include <optional>

#include "projections/projector.h"
#include "replay/replay.h"
#include "state/records.h"

namespace ledger::replay {
namespace {

constexpr char kAbsent[] = "(absent)";

// A record as people read it: a balance by its amount; anything else by its size and the start of its
// SHA-256.
std::string DescribeValue(std::string_view key, const std::optional<std::string>& value) {
  if (!value) return kAbsent;
  if (key.starts_with(keys::kBalancePrefix)) {
    flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(value->data()), value->size());
    if (verifier.VerifyBuffer<fb::BalanceRecord>(nullptr)) {
      return std::to_string(flatbuffers::GetRoot<fb::BalanceRecord>(value->data())->balance_minor());
    }
  }
  return std::to_string(value->size()) + " bytes, sha256 " + ToHex(Sha256Of(*value)).substr(0, 16);
}

std::optional<std::string> Read(const Store& store, std::string_view key) {
  std::string value;
  if (!store.state().Get(key, &value)) return std::nullopt;
  return value;
}

// The first key under `prefix`, in key order, whose value in `from` is not the same in `other` (absent there
// included). Errors: IoError.
Result<std::optional<std::string>> FirstKeyNotIn(const Store& from, const Store& other,
                                                 std::string_view prefix) {
  std::optional<std::string> first;
  const Status scanned = from.ScanState(prefix, [&](std::string_view key, std::string_view value) {
    const std::optional<std::string> there = Read(other, key);
    if (there && *there == value) return true;
    first = std::string(key);
    return false;
  });
  if (!scanned.ok()) return scanned;
  return first;
}

}  // namespace

Result<std::vector<StateDifference>> FirstDifferences(const Store& live, const Store& rebuilt) {
  std::vector<StateDifference> differences;
  for (const std::unique_ptr<Projector>& projector : MakeLedgerProjectors()) {
    std::optional<std::string> first;
    for (const std::string& prefix : projector->KeyPrefixes()) {
      // A key differs when live has it otherwise than rebuilt, or rebuilt has it and live does not.
      for (const auto& [a, b] : {std::pair<const Store*, const Store*>{&live, &rebuilt}, {&rebuilt, &live}}) {
        Result<std::optional<std::string>> candidate = FirstKeyNotIn(*a, *b, prefix);
        if (!candidate.ok()) return candidate.status();
        if (*candidate && (!first || **candidate < *first)) first = **candidate;
      }
    }
    if (!first) continue;
    differences.push_back(StateDifference{std::string(projector->name()), *first,
                                          DescribeValue(*first, Read(live, *first)),
                                          DescribeValue(*first, Read(rebuilt, *first))});
  }
  return differences;
}

}  // namespace ledger::replay
