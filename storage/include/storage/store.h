// Store: the RocksDB adapter (the only file that includes RocksDB headers). One RocksDB database per shard
// with column families:
//   events  key = big-endian sequence (8 bytes), value = one Event record (schemas/events.fbs)
//   state   projection records (keys in state/keys.h); all a pure function of `events`
//   meta    offsets and settings that are not part of the event history (e.g. the commands-topic offset), the
//           projections' set digests, and the RocksDB sequence number the store's own last commit left
// Beside the database, the file DURABLE_SEQUENCE holds the last event sequence of the last group known
// durable (written after each synced commit, not itself synced): opening never continues from a history
// shorter than it (docs/DECISIONS.md: Write-ahead log damage). Errors: RocksDB statuses become ledger::Status
// here. Point reads of `state` abort on a storage fault (fail-stop: nothing of the open group is written, and
// a restart recovers from the synced WAL). Thread-safety: a Store opened for writing is written by the
// ledger; reads may come from any thread. Commit may be called from two threads (the event commit and the
// projection fold): commits are serialized.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "storage/kv.h"

namespace ledger {
namespace testing {
struct RawStoreWrites;  // storage/testing.h
}  // namespace testing

struct StoreOptions {
  bool read_only = false;
  bool create_if_missing = true;
  // Per-commit fsync of the WAL; off only for benchmarks that say so.
  bool sync = true;
};

// Everything one commit writes, applied atomically in one WriteBatch.
struct CommitBatch {
  std::vector<std::pair<uint64_t, std::string>> events;  // (sequence, record), ascending
  const Overlay* state = nullptr;
  std::vector<std::pair<std::string, std::string>> meta;
  // False for what the events can rebuild (the projections' records): written to the log without waiting for
  // the disk; the next synced commit makes it durable, and a crash before that loses only a fold that
  // recovery redoes from the events.
  bool sync = true;
};

// Where the store's memory is, in bytes (RocksDB's own accounting).
struct StoreMemory {
  uint64_t memtables = 0;    // all column families' memtables, flushing ones included
  uint64_t block_cache = 0;  // data, index and filter blocks in the shared cache
  uint64_t block_cache_pinned = 0;
  uint64_t table_readers = 0;  // table reader memory outside the block cache
};

// What the RocksDB sequence number says about writers: the number the store's own last commit left in `meta`,
// and the database's number now. They differ when something else (a tool such as `ldb`) wrote the database.
struct WriterCheck {
  std::optional<uint64_t> expected;  // nullopt: no commit recorded one yet (a store from an older version)
  uint64_t actual = 0;
  bool foreign_writes() const { return expected.has_value() && *expected != actual; }
};

// One backup in a backup folder (Store::Backup).
struct BackupSummary {
  uint32_t id = 0;
  int64_t created_at_s = 0;  // Unix seconds
  uint64_t size_bytes = 0;   // this backup's files, shared ones included
  uint32_t files = 0;
  std::string label;  // what the writer said of it (the ledger: "shard K sequence N")
};

class Store {
 public:
  virtual ~Store() = default;

  // Opens (creating when allowed) the database in `dir`. A write-ahead log whose last record was torn by a
  // crash opens, losing only that unacknowledged group; a log damaged before its end, or a history shorter
  // than DURABLE_SEQUENCE, is Corruption naming the file and the sequences that can no longer be proven, with
  // how to recover. Errors: IoError (also "no space left"), Corruption, InvalidArgument.
  static Result<std::unique_ptr<Store>> Open(const std::string& dir, const StoreOptions& options);

  // Reader over the `state` column family.
  virtual const KvReader& state() const = 0;

  // Writes the batch atomically (synced WAL when options.sync and batch.sync). Errors: IoError.
  virtual Status Commit(const CommitBatch& batch) = 0;

  // The last stored event (sequence, record), or nullopt when there is none. Errors: IoError.
  virtual Result<std::optional<std::pair<uint64_t, std::string>>> LastEvent() const = 0;
  // Calls fn(key_sequence, record) for events with from <= sequence <= to in key order until fn returns
  // false. Errors: IoError.
  virtual Status ScanEvents(uint64_t from, uint64_t to,
                            const std::function<bool(uint64_t, std::string_view)>& fn) const = 0;
  // Calls fn(key, value) for `state` keys starting with `prefix`, in key order, until fn returns false.
  virtual Status ScanState(std::string_view prefix,
                           const std::function<bool(std::string_view, std::string_view)>& fn) const = 0;
  virtual Result<std::optional<std::string>> GetMeta(std::string_view key) const = 0;
  // Compares the sequence number the last commit recorded with the database's.
  virtual Result<WriterCheck> CheckWriters() const = 0;
  // Records the database's current sequence number as the store's own (after the state was verified).
  virtual Status AdoptWriters() = 0;
  virtual StoreMemory Memory() const = 0;
  // Copies a consistent image of the store (memtables flushed first) into the backup folder `backup_dir` with
  // RocksDB's BackupEngine: files shared with earlier backups are copied once, each file's checksum is kept,
  // and only the newest `keep` backups stay (keep >= 1). Errors: IoError; InvalidArgument for a store that is
  // not a database of its own (a view; the default).
  virtual Result<BackupSummary> Backup(const std::string& backup_dir, uint32_t keep,
                                       const std::string& label) {
    (void)backup_dir, (void)keep, (void)label;
    return Status::InvalidArgument("this store is a view, not a database: it cannot be backed up");
  }

 private:
  // Writes past the ledger (what a person with disk access, or `ldb put`, does), for tamper tests only. They
  // are not part of the interface: tests reach them through the seam in storage/testing.h; an implementation
  // overrides them to take such writes.
  friend struct testing::RawStoreWrites;
  virtual Status PutEventRaw(uint64_t key_sequence, std::string_view record) = 0;
  virtual Status DeleteEventRaw(uint64_t key_sequence) = 0;
  virtual Status PutStateRaw(std::string_view key, std::string_view value) = 0;
};

// Restores the newest backup of `backup_dir` into `dir` (which must hold no store), checking every file's
// checksum; returns what was restored. Errors: NotFound (no backup there), Corruption (a file does not match
// its checksum), IoError.
Result<BackupSummary> RestoreLatestBackup(const std::string& backup_dir, const std::string& dir);

// Encodes a sequence as 8 big-endian bytes (so key order is sequence order).
std::string SequenceKey(uint64_t sequence);
uint64_t DecodeSequenceKey(std::string_view key);

}  // namespace ledger
