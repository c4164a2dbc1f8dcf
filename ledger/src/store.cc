// The RocksDB adapter. See store.h for the column families and the error contract.
#include "ledger/store.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <cstdio>
#include <cstdlib>

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

Status FromRocks(const rocksdb::Status& status, std::string_view what) {
  if (status.ok()) return Status::Ok();
  const std::string message = std::string(what) + ": " + status.ToString();
  if (status.IsCorruption()) return Status::Corruption(message);
  if (status.IsInvalidArgument()) return Status::InvalidArgument(message);
  if (status.IsNotFound()) return Status::NotFound(message);
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
    const rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), family_, rocksdb::Slice(key.data(), key.size()), value);
    if (status.IsNotFound()) return false;
    if (!status.ok()) StorageFault(status);
    return true;
  }

 private:
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* family_;
};

class RocksStore final : public Store {
 public:
  RocksStore(std::unique_ptr<rocksdb::DB> db, std::vector<rocksdb::ColumnFamilyHandle*> handles, bool sync)
      : db_(std::move(db)), handles_(std::move(handles)), sync_(sync), state_reader_(db_.get(), handles_[2]) {}

  ~RocksStore() override {
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
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
    rocksdb::WriteOptions options;
    options.sync = sync_;
    return FromRocks(db_->Write(options, &write_batch), "commit");
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
    const rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), meta(), rocksdb::Slice(key.data(), key.size()), &value);
    if (status.IsNotFound()) return std::optional<std::string>();
    LEDGER_RETURN_IF_ERROR(FromRocks(status, "read meta"));
    return std::optional<std::string>(std::move(value));
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
    db_->GetIntProperty(handles_[0], rocksdb::DB::Properties::kBlockCachePinnedUsage, &memory.block_cache_pinned);
    return memory;
  }

  Status PutEventRaw(uint64_t key_sequence, std::string_view record) override {
    rocksdb::WriteOptions options;
    options.sync = true;
    return FromRocks(db_->Put(options, events(), SequenceKey(key_sequence), rocksdb::Slice(record.data(), record.size())),
                     "put event");
  }

  Status DeleteEventRaw(uint64_t key_sequence) override {
    rocksdb::WriteOptions options;
    options.sync = true;
    return FromRocks(db_->Delete(options, events(), SequenceKey(key_sequence)), "delete event");
  }

 private:
  rocksdb::ColumnFamilyHandle* events() const { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* state_family() const { return handles_[2]; }
  rocksdb::ColumnFamilyHandle* meta() const { return handles_[3]; }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  bool sync_;
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

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir, const StoreOptions& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = options.create_if_missing;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 4;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  // Few cache shards: a shard holds capacity / 2^bits, and a block larger than its shard is dropped right after
  // use. High-priority room keeps index and filter partitions from being pushed out by data blocks.
  const std::shared_ptr<rocksdb::Cache> block_cache =
      rocksdb::NewLRUCache(kBlockCacheBytes, kBlockCacheShardBits, /*strict_capacity_limit=*/false, /*high_pri_pool_ratio=*/0.5);
  db_options.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(kMemtableBudgetBytes);
  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = block_cache;
  // Index and filters live in the block cache, so memory stays bounded however large the tables grow. They are
  // partitioned (two-level index, 4 KiB partitions): an unpartitioned filter of a large table is megabytes,
  // does not stay in a cache shard, and was read from the file on every point read (a long run fell from
  // 11,000 to 570 commands/s, 54% of its time reading and checksumming filter blocks).
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
  // The state family takes a dozen point reads per command, most for keys that do not exist yet (a new command
  // id, a new order, a new usage window): bloom filters in the memtable and the tables answer those without a
  // skip-list or block search.
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
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status status =
      options.read_only ? rocksdb::DB::OpenForReadOnly(db_options, dir, families, &handles, &raw)
                        : rocksdb::DB::Open(db_options, dir, families, &handles, &raw);
  if (!status.ok()) {
    return FromRocks(status, "open " + dir);
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  LEDGER_ASSERT(handles.size() == 4);
  return std::unique_ptr<Store>(new RocksStore(std::move(db), std::move(handles), options.sync));
}

}  // namespace ledger
