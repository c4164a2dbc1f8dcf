// TEST SEAM — production code must not include this header. Raw writes to a store past the ledger: what a
// person with disk access (or `ldb put`) does, so tamper and schema-evolution tests can damage or hand-load a
// history. Nothing here keeps the hash chain, the projections or their set digests in step.
// Errors: what the store's write returns (IoError). Thread-safety: as any write to the store (its one
// writer).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"
#include "storage/store.h"

namespace ledger::testing {

// Stores `record` as the event at `key_sequence`, replacing what is there (synced).
Status TEST_PutEventRaw(Store& store, uint64_t key_sequence, std::string_view record);
// Removes the event at `key_sequence` (synced; absent is not an error).
Status TEST_DeleteEventRaw(Store& store, uint64_t key_sequence);
// Stores `value` at `key` of the `state` column family (synced), past the set digests.
Status TEST_PutStateRaw(Store& store, std::string_view key, std::string_view value);

}  // namespace ledger::testing
