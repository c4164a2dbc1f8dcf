// The RocksDB adapter. See store.h for the column families and the error contract.
#include "storage/store.h"

#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/backup_engine.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

namespace ledger {
namespace {

constexpr char kEventsFamily[] = "events";
constexpr char kStateFamily[] = "state";
constexpr char kMetaFamily[] = "meta";
// Memory bounds, so the process stays flat however long the history is: one block cache for all families that
// also holds the tables' index and filter blocks (they grow with the data), and one budget for all memtables.
constexpr size_t kBlockCacheBytes = 128 << 20;
constexpr int kBlockCacheShardBits = 2;
constexpr size_t kMemtableBudgetBytes = 128 << 20;
constexpr size_t kWriteBufferBytes = 32 << 20;
// The last event sequence of the last group known durable, beside the database (store.h).
constexpr char kDurableSequenceFile[] = "DURABLE_SEQUENCE";
// Fixed width, so each update overwrites the whole previous value in place.
constexpr size_t kDurableSequenceDigits = 20;
// `meta` key: the RocksDB sequence number the store's own last commit left (store.h: WriterCheck).
constexpr char kWriterSequenceKey[] = "writer_sequence";

std::string DecimalOf(uint64_t value) { return std::to_string(value); }

Result<uint64_t> ParseDecimal(std::string_view text, std::string_view what) {
  uint64_t value = 0;
  if (text.empty() || text.size() > kDurableSequenceDigits)
    return Status::Corruption(std::string(what) + " is not a number");
  for (char c : text) {
    if (c < '0' || c > '9') return Status::Corruption(std::string(what) + " is not a number");
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

// The acknowledged high-water mark (0 when the file does not exist yet: a new store, or one from an older
// version). Errors: Corruption (unreadable contents).
Result<uint64_t> ReadDurableSequence(const std::string& dir) {
  std::ifstream in(dir + "/" + kDurableSequenceFile);
  if (!in) return uint64_t{0};
  std::string text;
  std::getline(in, text);
  if (text.empty()) return uint64_t{0};  // created, nothing durable recorded yet
  return ParseDecimal(text, dir + "/" + kDurableSequenceFile);
}

Status FromRocks(const rocksdb::Status& status, std::string_view what) {
  if (status.ok()) return Status::Ok();
  const std::string message = std::string(what) + ": " + status.ToString();
  if (status.IsCorruption()) return Status::Corruption(message);
  if (status.IsInvalidArgument()) return Status::InvalidArgument(message);
  if (status.IsNotFound()) return Status::NotFound(message);
  if (status.IsNoSpace() || message.find("No space left") != std::string::npos) {
    return Status::IoError(std::string(what) + ": no space left on device (" + status.ToString() + ")");
  }
  return Status::IoError(message);
}

[[noreturn]] void StorageFault(const rocksdb::Status& status) {
  std::fprintf(stderr, "ledger: storage fault reading state: %s\n", status.ToString().c_str());
  std::abort();
}

class StateReader final : public KvReader {
 public:
  StateReader(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family) : db_(db), family_(family) {}
  bool Get(std::string_view key, std::string* value) const override {
    const rocksdb::Status status =
        db_->Get(rocksdb::ReadOptions(), family_, rocksdb::Slice(key.data(), key.size()), value);
    if (status.IsNotFound()) return false;
    if (!status.ok()) StorageFault(status);
    return true;
  }

 private:
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* family_;
};

// Opens (creating) the backup folder `backup_dir`. Errors: IoError.
Result<std::unique_ptr<rocksdb::BackupEngine>> OpenBackupEngine(const std::string& backup_dir) {
  rocksdb::BackupEngineOptions options(backup_dir);
  options.sync = true;               // a backup that a power loss can take back is no backup
  options.share_table_files = true;  // a table file is copied once, whatever number of backups hold it
  options.share_files_with_checksum = true;
  rocksdb::BackupEngine* engine = nullptr;
  LEDGER_RETURN_IF_ERROR(FromRocks(rocksdb::BackupEngine::Open(options, rocksdb::Env::Default(), &engine),
                                   "open backups " + backup_dir));
  return std::unique_ptr<rocksdb::BackupEngine>(engine);
}

BackupSummary SummaryOf(const rocksdb::BackupInfo& info) {
  BackupSummary summary;
  summary.id = info.backup_id;
  summary.created_at_s = info.timestamp;
  summary.size_bytes = info.size;
  summary.files = info.number_files;
  summary.label = info.app_metadata;
  return summary;
}

class RocksStore final : public Store {
 public:
  RocksStore(std::unique_ptr<rocksdb::DB> db, std::vector<rocksdb::ColumnFamilyHandle*> handles, bool sync,
             int durable_sequence_fd)
      : db_(std::move(db)),
        handles_(std::move(handles)),
        sync_(sync),
        durable_sequence_fd_(durable_sequence_fd),
        state_reader_(db_.get(), handles_[2]) {}

  ~RocksStore() override {
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    if (durable_sequence_fd_ >= 0) ::close(durable_sequence_fd_);
  }

  // Records `sequence` as durable. Not synced (an fsync costs as much as the commit's own): it is exact after
  // a process crash and tampering, and may lag by the last seconds' groups after a power loss.
  Status RecordDurableSequence(uint64_t sequence) {
    if (durable_sequence_fd_ < 0) return Status::Ok();
    char text[kDurableSequenceDigits + 2];
    std::snprintf(text, sizeof text, "%020llu\n", static_cast<unsigned long long>(sequence));
    const ssize_t written = ::pwrite(durable_sequence_fd_, text, kDurableSequenceDigits + 1, 0);
    if (written != static_cast<ssize_t>(kDurableSequenceDigits + 1)) {
      return Status::IoError(std::string("write ") + kDurableSequenceFile + ": " + std::strerror(errno));
    }
    return Status::Ok();
  }

  const KvReader& state() const override { return state_reader_; }

  Status Commit(const CommitBatch& batch) override {
    rocksdb::WriteBatch write_batch;
    for (const auto& [sequence, record] : batch.events) {
      const std::string key = SequenceKey(sequence);
      LEDGER_RETURN_IF_ERROR(FromRocks(write_batch.Put(events(), key, record), "batch put event"));
    }
    if (batch.state != nullptr) {
      Status status;
      batch.state->ForEach([&](const std::string& key, const std::optional<std::string>& value) {
        if (!status.ok()) return;
        status = value ? FromRocks(write_batch.Put(state_family(), key, *value), "batch put state")
                       : FromRocks(write_batch.Delete(state_family(), key), "batch delete state");
      });
      LEDGER_RETURN_IF_ERROR(status);
    }
    for (const auto& [key, value] : batch.meta) {
      LEDGER_RETURN_IF_ERROR(FromRocks(write_batch.Put(meta(), key, value), "batch put meta"));
    }
    // One commit at a time from here: the writer sequence recorded below must be the database's after this
    // write. (The batch above is built outside the lock: a fold's sort must not hold up an event commit.)
    std::lock_guard<std::mutex> one_commit_at_a_time(commit_mutex_);
    // Every key of a batch takes one RocksDB sequence number: after this write the database's number is this
    // one, unless something else writes the database before the next commit (CheckWriters).
    const uint64_t writer_sequence = db_->GetLatestSequenceNumber() + write_batch.Count() + 1;
    LEDGER_RETURN_IF_ERROR(
        FromRocks(write_batch.Put(meta(), kWriterSequenceKey, DecimalOf(writer_sequence)), "batch put meta"));
    rocksdb::WriteOptions options;
    options.sync = sync_ && batch.sync;
    LEDGER_RETURN_IF_ERROR(FromRocks(db_->Write(options, &write_batch), "commit"));
    LEDGER_ASSERT(db_->GetLatestSequenceNumber() == writer_sequence);  // serialized: nothing came in between
    if (options.sync && !batch.events.empty()) return RecordDurableSequence(batch.events.back().first);
    return Status::Ok();
  }

  Result<WriterCheck> CheckWriters() const override {
    WriterCheck check;
    check.actual = db_->GetLatestSequenceNumber();
    Result<std::optional<std::string>> recorded = GetMeta(kWriterSequenceKey);
    if (!recorded.ok()) return recorded.status();
    if (recorded->has_value()) {
      Result<uint64_t> expected = ParseDecimal(**recorded, "meta writer_sequence");
      if (!expected.ok()) return expected.status();
      check.expected = *expected;
    }
    return check;
  }

  Status AdoptWriters() override {
    rocksdb::WriteOptions options;
    options.sync = true;
    const uint64_t writer_sequence = db_->GetLatestSequenceNumber() + 1;
    return FromRocks(db_->Put(options, meta(), kWriterSequenceKey, DecimalOf(writer_sequence)),
                     "adopt writers");
  }

  Result<std::optional<std::pair<uint64_t, std::string>>> LastEvent() const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), events()));
    it->SeekToLast();
    if (!it->Valid()) {
      LEDGER_RETURN_IF_ERROR(FromRocks(it->status(), "read last event"));
      return std::optional<std::pair<uint64_t, std::string>>();
    }
    if (it->key().size() != 8) return Status::Corruption("event key is not 8 bytes");
    return std::optional<std::pair<uint64_t, std::string>>(
        std::make_pair(DecodeSequenceKey(it->key().ToStringView()), it->value().ToString()));
  }

  Status ScanEvents(uint64_t from, uint64_t to,
                    const std::function<bool(uint64_t, std::string_view)>& fn) const override {
    rocksdb::ReadOptions options;
    options.fill_cache = false;  // a long scan must not evict the working set
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, events()));
    for (it->Seek(SequenceKey(from)); it->Valid(); it->Next()) {
      if (it->key().size() != 8) return Status::Corruption("event key is not 8 bytes");
      const uint64_t sequence = DecodeSequenceKey(it->key().ToStringView());
      if (sequence > to) break;
      // RocksDB's memory is not aligned; FlatBuffers readers need it to be. Hand out an aligned copy.
      const std::string value = it->value().ToString();
      if (!fn(sequence, value)) break;
    }
    return FromRocks(it->status(), "scan events");
  }

  Status ScanState(std::string_view prefix,
                   const std::function<bool(std::string_view, std::string_view)>& fn) const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), state_family()));
    for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
      const std::string_view key = it->key().ToStringView();
      if (!key.starts_with(prefix)) break;
      const std::string value = it->value().ToString();  // aligned for FlatBuffers readers (see ScanEvents)
      if (!fn(key, value)) break;
    }
    return FromRocks(it->status(), "scan state");
  }

  Result<std::optional<std::string>> GetMeta(std::string_view key) const override {
    std::string value;
    const rocksdb::Status status =
        db_->Get(rocksdb::ReadOptions(), meta(), rocksdb::Slice(key.data(), key.size()), &value);
    if (status.IsNotFound()) return std::optional<std::string>();
    LEDGER_RETURN_IF_ERROR(FromRocks(status, "read meta"));
    return std::optional<std::string>(std::move(value));
  }

  Result<BackupSummary> Backup(const std::string& backup_dir, uint32_t keep,
                               const std::string& label) override {
    LEDGER_ASSERT(keep >= 1);
    Result<std::unique_ptr<rocksdb::BackupEngine>> engine = OpenBackupEngine(backup_dir);
    if (!engine.ok()) return engine.status();
    rocksdb::CreateBackupOptions options;
    options.flush_before_backup = true;  // the image holds no WAL: every committed group is in its tables
    LEDGER_RETURN_IF_ERROR(
        FromRocks((*engine)->CreateNewBackupWithMetadata(options, db_.get(), label), "backup"));
    LEDGER_RETURN_IF_ERROR(FromRocks((*engine)->PurgeOldBackups(keep), "purge old backups"));
    std::vector<rocksdb::BackupInfo> backups;
    (*engine)->GetBackupInfo(&backups);
    if (backups.empty()) return Status::IoError("backup: the engine lists no backup after creating one");
    return SummaryOf(backups.back());
  }

  StoreMemory Memory() const override {
    StoreMemory memory;
    auto property = [&](const std::string& name) {
      uint64_t sum = 0;
      for (rocksdb::ColumnFamilyHandle* handle : handles_) {
        uint64_t value = 0;
        if (db_->GetIntProperty(handle, name, &value)) sum += value;
      }
      return sum;
    };
    memory.memtables = property(rocksdb::DB::Properties::kSizeAllMemTables);
    memory.table_readers = property(rocksdb::DB::Properties::kEstimateTableReadersMem);
    // The cache is shared: read it once, not per family.
    db_->GetIntProperty(handles_[0], rocksdb::DB::Properties::kBlockCacheUsage, &memory.block_cache);
    db_->GetIntProperty(handles_[0], rocksdb::DB::Properties::kBlockCachePinnedUsage,
                        &memory.block_cache_pinned);
    return memory;
  }

 private:
  // The test seam (storage/testing.h): synced single writes, each past the ledger.
  Status PutEventRaw(uint64_t key_sequence, std::string_view record) override {
    rocksdb::WriteOptions options;
    options.sync = true;
    return FromRocks(
        db_->Put(options, events(), SequenceKey(key_sequence), rocksdb::Slice(record.data(), record.size())),
        "put event");
  }

  Status PutStateRaw(std::string_view key, std::string_view value) override {
    rocksdb::WriteOptions options;
    options.sync = true;
    return FromRocks(db_->Put(options, state_family(), rocksdb::Slice(key.data(), key.size()),
                              rocksdb::Slice(value.data(), value.size())),
                     "put state");
  }

  Status DeleteEventRaw(uint64_t key_sequence) override {
    rocksdb::WriteOptions options;
    options.sync = true;
    return FromRocks(db_->Delete(options, events(), SequenceKey(key_sequence)), "delete event");
  }

  rocksdb::ColumnFamilyHandle* events() const { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* state_family() const { return handles_[2]; }
  rocksdb::ColumnFamilyHandle* meta() const { return handles_[3]; }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  bool sync_;
  std::mutex commit_mutex_;
  int durable_sequence_fd_;  // -1 when read-only
  StateReader state_reader_;
};

}  // namespace

std::string SequenceKey(uint64_t sequence) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[i] = static_cast<char>(sequence & 0xff);
    sequence >>= 8;
  }
  return key;
}

uint64_t DecodeSequenceKey(std::string_view key) {
  LEDGER_ASSERT(key.size() == 8);
  uint64_t sequence = 0;
  for (char c : key) sequence = (sequence << 8) | static_cast<uint8_t>(c);
  return sequence;
}

namespace {

// RocksDB's own diagnostics go to stderr, not to a LOG file in the data folder: on a full disk a LOG file
// that failed once makes RocksDB's next log line abort the process (a debug assertion left on in Debian's
// build).
class StderrLogger final : public rocksdb::Logger {
 public:
  StderrLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list arguments) override {
    char line[1024];
    std::vsnprintf(line, sizeof line, format, arguments);
    std::fprintf(stderr, "ledger: rocksdb: %s\n", line);
  }
};

struct OpenedDb {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
};

rocksdb::Status OpenDb(const std::string& dir, const StoreOptions& options, bool read_only,
                       rocksdb::WALRecoveryMode recovery, OpenedDb* opened) {
  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing && !read_only;
  db_options.create_missing_column_families = options.create_if_missing && !read_only;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 4;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.info_log = std::make_shared<StderrLogger>();
  // Damage before the end of a log is Corruption; only a record torn at the very end is tolerated (and then
  // only when it cannot hold an acknowledged group: Store::Open). The manifest tracks closed logs and their
  // synced sizes, so a missing or shortened older log is Corruption too.
  db_options.wal_recovery_mode = recovery;
  db_options.track_and_verify_wals_in_manifest = true;
  // Few cache shards: a shard holds capacity / 2^bits, and a block larger than its shard is dropped right
  // after use. High-priority room keeps index and filter partitions from being pushed out by data blocks.
  const std::shared_ptr<rocksdb::Cache> block_cache = rocksdb::NewLRUCache(
      kBlockCacheBytes, kBlockCacheShardBits, /*strict_capacity_limit=*/false, /*high_pri_pool_ratio=*/0.5);
  db_options.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(kMemtableBudgetBytes);
  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = block_cache;
  // Index and filters live in the block cache, so memory stays bounded however large the tables grow. They
  // are partitioned (two-level index, 4 KiB partitions): an unpartitioned filter of a large table is
  // megabytes, does not stay in a cache shard, and was read from the file on every point read (a long run
  // fell from 11,000 to 570 commands/s, 54% of its time reading and checksumming filter blocks).
  table_options.cache_index_and_filter_blocks = true;
  table_options.cache_index_and_filter_blocks_with_high_priority = true;
  table_options.pin_l0_filter_and_index_blocks_in_cache = true;
  table_options.pin_top_level_index_and_filter = true;
  table_options.index_type = rocksdb::BlockBasedTableOptions::IndexType::kTwoLevelIndexSearch;
  table_options.partition_filters = true;
  table_options.metadata_block_size = 4096;
  rocksdb::ColumnFamilyOptions family_options;
  family_options.write_buffer_size = kWriteBufferBytes;
  family_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  // The state family takes a dozen point reads per command, most for keys that do not exist yet (a new
  // command id, a new order, a new usage window): bloom filters in the memtable and the tables answer those
  // without a skip-list or block search.
  rocksdb::BlockBasedTableOptions state_table_options = table_options;
  state_table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions state_options = family_options;
  state_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(state_table_options));
  state_options.memtable_prefix_bloom_size_ratio = 0.1;
  state_options.memtable_whole_key_filtering = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, family_options},
      {kEventsFamily, family_options},
      {kStateFamily, state_options},
      {kMetaFamily, family_options},
  };
  rocksdb::DB* raw = nullptr;
  opened->handles.clear();
  const rocksdb::Status status =
      read_only ? rocksdb::DB::OpenForReadOnly(db_options, dir, families, &opened->handles, &raw)
                : rocksdb::DB::Open(db_options, dir, families, &opened->handles, &raw);
  if (status.ok()) {
    opened->db.reset(raw);
    LEDGER_ASSERT(opened->handles.size() == 4);
  }
  return status;
}

// The last event sequence a log replay can prove: the history read up to the first bad record, without
// changing anything on disk. nullopt when even that cannot be read.
std::optional<uint64_t> ProvableLastEvent(const std::string& dir, const StoreOptions& options) {
  OpenedDb probe;
  if (!OpenDb(dir, options, /*read_only=*/true, rocksdb::WALRecoveryMode::kPointInTimeRecovery, &probe)
           .ok()) {
    return std::nullopt;
  }
  uint64_t last = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(probe.db->NewIterator(rocksdb::ReadOptions(), probe.handles[1]));
    it->SeekToLast();
    if (it->Valid() && it->key().size() == 8) last = DecodeSequenceKey(it->key().ToStringView());
  }
  for (auto* handle : probe.handles) probe.db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  return last;
}

std::string WriteAheadLogs(const std::string& dir) {
  std::vector<std::string> logs;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() == ".log") logs.push_back(entry.path().string());
  }
  std::sort(logs.begin(), logs.end());
  if (logs.empty()) return "the write-ahead log";
  std::string text = "write-ahead log " + logs.front();
  for (size_t i = 1; i < logs.size(); ++i) text += ", " + logs[i];
  return text;
}

std::string RecoveryAdvice(const std::string& dir) {
  return "the ledger will not continue from a shorter history. Recover from ledger.events when brokers hold "
         "the "
         "history (ledger replay --source kafka --brokers LIST --out NEW_DIR, then put NEW_DIR in place of " +
         dir + "), else from a backup";
}

std::string UnprovenRange(std::optional<uint64_t> provable, uint64_t acknowledged) {
  if (!provable) return "no event can be proven";
  std::string text = "the history can be proven only through sequence " + std::to_string(*provable);
  if (acknowledged > *provable) {
    text += ", but " + std::to_string(acknowledged) + " was acknowledged: sequences " +
            std::to_string(*provable + 1) + ".." + std::to_string(acknowledged) + " can no longer be proven";
  } else {
    text += "; later events can no longer be proven";
  }
  return text;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir, const StoreOptions& options) {
  if (options.create_if_missing && !options.read_only) {
    std::error_code error;  // RocksDB would create it too, after logging an error about reading it
    std::filesystem::create_directories(dir, error);
  }
  Result<uint64_t> acknowledged = ReadDurableSequence(dir);
  if (!acknowledged.ok()) return acknowledged.status();
  OpenedDb opened;
  rocksdb::Status status = OpenDb(dir, options, options.read_only,
                                  rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords, &opened);
  if (status.IsCorruption()) {
    // Either the final, unacknowledged group was torn by a crash (power loss mid-append), or the log is
    // damaged where acknowledged groups live. Only the first may open, losing nothing that was acknowledged.
    const std::optional<uint64_t> provable = ProvableLastEvent(dir, options);
    if (!provable || *acknowledged == 0 || *provable < *acknowledged) {
      return Status::Corruption("storage corruption: " + WriteAheadLogs(dir) + " is damaged (" +
                                status.ToString() + "); " + UnprovenRange(provable, *acknowledged) + "; " +
                                RecoveryAdvice(dir));
    }
    std::fprintf(
        stderr,
        "ledger: warning: the last write-ahead log record of %s was torn by a crash; it held no acknowledged "
        "event (acknowledged through %llu, history proven through %llu): opening without it\n",
        dir.c_str(), static_cast<unsigned long long>(*acknowledged),
        static_cast<unsigned long long>(*provable));
    status = OpenDb(dir, options, options.read_only, rocksdb::WALRecoveryMode::kPointInTimeRecovery, &opened);
  }
  if (!status.ok()) return FromRocks(status, "open " + dir);
  int durable_sequence_fd = -1;
  if (!options.read_only) {
    durable_sequence_fd =
        ::open((dir + "/" + kDurableSequenceFile).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (durable_sequence_fd < 0) {
      for (auto* handle : opened.handles) opened.db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
      return Status::IoError("open " + dir + "/" + kDurableSequenceFile + ": " + std::strerror(errno));
    }
  }
  auto store = std::make_unique<RocksStore>(std::move(opened.db), std::move(opened.handles), options.sync,
                                            durable_sequence_fd);
  Result<std::optional<std::pair<uint64_t, std::string>>> last = store->LastEvent();
  if (!last.ok()) return last.status();
  const uint64_t last_sequence = last->has_value() ? (*last)->first : 0;
  if (last_sequence < *acknowledged) {
    const std::string problem =
        "the history in " + dir + " ends at sequence " + std::to_string(last_sequence) + " but " +
        std::to_string(*acknowledged) + " was acknowledged (" + kDurableSequenceFile + "): sequences " +
        std::to_string(last_sequence + 1) + ".." + std::to_string(*acknowledged) +
        " can no longer be proven (" + WriteAheadLogs(dir) + " shortened, or events deleted?)";
    // Appending would make the loss permanent; reading (an audit, a balance) may go on, saying so.
    if (!options.read_only)
      return Status::Corruption("storage corruption: " + problem + "; " + RecoveryAdvice(dir));
    std::fprintf(stderr, "ledger: warning: %s\n", problem.c_str());
  }
  if (!options.read_only && last_sequence > *acknowledged) {
    LEDGER_RETURN_IF_ERROR(store->RecordDurableSequence(last_sequence));
  }
  return std::unique_ptr<Store>(std::move(store));
}

Result<BackupSummary> RestoreLatestBackup(const std::string& backup_dir, const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::is_directory(backup_dir, error))
    return Status::NotFound("no backup folder " + backup_dir);
  rocksdb::BackupEngineOptions options(backup_dir);
  rocksdb::BackupEngineReadOnly* opened = nullptr;
  LEDGER_RETURN_IF_ERROR(
      FromRocks(rocksdb::BackupEngineReadOnly::Open(options, rocksdb::Env::Default(), &opened),
                "open backups " + backup_dir));
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(opened);
  std::vector<rocksdb::BackupInfo> backups;
  engine->GetBackupInfo(&backups);
  if (backups.empty()) return Status::NotFound(backup_dir + " holds no backup");
  const rocksdb::BackupInfo& latest = backups.back();
  // Every file against its recorded checksum first: a damaged backup is refused before anything is written.
  LEDGER_RETURN_IF_ERROR(FromRocks(engine->VerifyBackup(latest.backup_id, /*verify_with_checksum=*/true),
                                   "verify backup " + std::to_string(latest.backup_id)));
  LEDGER_RETURN_IF_ERROR(
      FromRocks(engine->RestoreDBFromBackup(latest.backup_id, dir, dir), "restore backup"));
  return SummaryOf(latest);
}

}  // namespace ledger
