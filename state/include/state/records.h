// Record codecs of the `state` column family (keys: state/keys.h). Values are FlatBuffers tables from
// schemas/state.fbs (object API), so each record's bytes depend only on its contents. Thread-safe (pure
// functions).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "schemas/state_generated.h"
#include "state/keys.h"
#include "storage/kv.h"

namespace ledger {

// The text of an optional FlatBuffers string ("" when absent).
inline std::string StringOf(const flatbuffers::String* text) {
  return text == nullptr ? std::string() : text->str();
}

// Null-safe view of an optional string field (a forged record may leave out what the write side always sets).
inline std::string_view ViewOf(const flatbuffers::String* text) {
  return text == nullptr ? std::string_view() : text->string_view();
}

// What makes an event impossible to fold: an amount that would overflow, a reference to a record that does
// not exist. The write side never lets such an event through (the ledger asserts the fold succeeded); replay
// and downstream runners meet forged or foreign histories and report the first problem as Corruption.
class FoldErrors {
 public:
  // a + b; on overflow returns a and records the error.
  int64_t Add(int64_t a, int64_t b);
  // Records `what` unless `condition` holds.
  void Require(bool condition, std::string_view what);
  // Ok, or Corruption naming the first problem.
  Status status() const;

 private:
  std::string first_;
};

// Reads the record at `key` into *out. Returns false (leaving *out untouched) when absent.
template <typename NativeT>
bool LoadRecord(const KvReader& reader, std::string_view key, NativeT* out) {
  std::string bytes;
  if (!reader.Get(key, &bytes)) return false;
  flatbuffers::GetRoot<typename NativeT::TableType>(bytes.data())->UnPackTo(out);
  return true;
}

// Encodes `record` and writes it at `key`.
template <typename NativeT>
void SaveRecord(KvWriter& writer, std::string_view key, const NativeT& record) {
  flatbuffers::FlatBufferBuilder builder(128);
  builder.Finish(NativeT::TableType::Pack(builder, &record));
  writer.Put(key,
             std::string_view(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize()));
}

}  // namespace ledger
