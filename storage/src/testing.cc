#include "storage/testing.h"

namespace ledger::testing {

// Store's raw writes are private; this friend (declared in store.h) is the one door to them.
struct RawStoreWrites {
  static Status PutEvent(Store& store, uint64_t key_sequence, std::string_view record) {
    return store.PutEventRaw(key_sequence, record);
  }
  static Status DeleteEvent(Store& store, uint64_t key_sequence) {
    return store.DeleteEventRaw(key_sequence);
  }
  static Status PutState(Store& store, std::string_view key, std::string_view value) {
    return store.PutStateRaw(key, value);
  }
};

Status TEST_PutEventRaw(Store& store, uint64_t key_sequence, std::string_view record) {
  return RawStoreWrites::PutEvent(store, key_sequence, record);
}

Status TEST_DeleteEventRaw(Store& store, uint64_t key_sequence) {
  return RawStoreWrites::DeleteEvent(store, key_sequence);
}

Status TEST_PutStateRaw(Store& store, std::string_view key, std::string_view value) {
  return RawStoreWrites::PutState(store, key, value);
}

}  // namespace ledger::testing
