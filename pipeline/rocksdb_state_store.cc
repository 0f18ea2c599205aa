#include "pipeline/rocksdb_state_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/iterator.h>
#include <rocksdb/listener.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <mutex>
#include <utility>
#include <vector>

namespace shortfall::pipeline {
namespace {

// Key of the checkpoint blob in the "default" column family. Namespaces can
// never be named "default", so this cannot collide with state.
constexpr std::string_view kCheckpointKey = "shortfall.checkpoint";

// Memtable arena block under a shared write-buffer manager (see
// MakeColumnFamilyOptions).
constexpr size_t kSharedArenaBlockBytes = size_t{64} << 10;

Status FromRocks(const rocksdb::Status& s, std::string_view operation, const std::string& dir) {
  std::string message = "rocksdb ";
  message += operation;
  message += " in '";
  message += dir;
  message += "': ";
  message += s.ToString();
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) {
    return UnavailableError(std::move(message));
  }
  if (s.IsCorruption()) return DataLossError(std::move(message));
  if (s.IsInvalidArgument()) return InvalidArgumentError(std::move(message));
  return InternalError(std::move(message));
}

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

// The smallest key greater than every key starting with `prefix`, or "" when
// there is none (the prefix is empty or all 0xff).
std::string PrefixSuccessor(std::string_view prefix) {
  std::string upper(prefix);
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  if (!upper.empty()) upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
  return upper;
}

// The options of a column family; `write_mostly` for the namespaces' families.
rocksdb::ColumnFamilyOptions MakeColumnFamilyOptions(const RocksDbStateStoreOptions& options,
                                                     const std::shared_ptr<rocksdb::Cache>& cache,
                                                     bool write_mostly) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  // Index and filter blocks go in the block cache so block_cache_bytes bounds
  // them too and MemoryUsageBytes sees them; L0's stay pinned so point reads
  // of fresh data do not miss on the index.
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = options.write_buffer_bytes;
  if (options.shared_cache && options.shared_cache->write_buffer_bytes() > 0) {
    // Every memtable holds at least one arena block from its first write
    // (by default an eighth of write_buffer_bytes, at most 1 MiB), and the
    // manager counts blocks, not data: with tens of namespaces over the
    // tasks' stores the first blocks alone would pass a bound of tens of
    // MiB. Small blocks make the bound about the data.
    cf.arena_block_size = kSharedArenaBlockBytes;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // The operators keep their state in memory and read a store only when a
  // task opens (Scan, and Get of a few layout keys); while they run, a
  // namespace's family is only written. A vector memtable appends a write
  // and sorts once when the memtable is flushed or read, where the default
  // skip list pays a sorted insert per write: that insert was 15% of
  // `shortfall run`'s CPU (perf, bench/kafka_bench.sh's data). A read of
  // an unflushed vector memtable sorts a copy of it, so the default family,
  // whose checkpoint key is read at every task start and standby step, keeps
  // the skip list.
  if (write_mostly) cf.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  return cf;
}

// Keeps RocksDB from resuming writes by itself after a background I/O error
// (disk full). librocksdb 7.8 as packaged is built with assertions, and a
// resume after a failed MANIFEST write trips one in DBImpl::ResumeImpl
// ("file_deletion_disabled") and aborts the process. Reopening the store is
// the recovery path instead; Commit refuses writes until then.
class NoAutoRecovery final : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    bg_error.PermitUncheckedError();
    *auto_recovery = false;
  }
};

// True for errors after which RocksDB stops accepting writes.
bool StopsWrites(const rocksdb::Status& s) { return s.IsIOError() || s.IsCorruption(); }

uint64_t IntProperty(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* cf, const std::string& name) {
  uint64_t value = 0;
  if (!db.GetIntProperty(cf, name, &value)) return 0;
  return value;
}

}  // namespace

// A RocksDB snapshot plus the store to read it through.
class RocksDbStateStore::SnapshotView final : public operators::StateView {
 public:
  SnapshotView(const RocksDbStateStore* store, const rocksdb::Snapshot* snapshot)
      : store_(store), snapshot_(snapshot) {}
  ~SnapshotView() override { store_->db_->ReleaseSnapshot(snapshot_); }
  SnapshotView(const SnapshotView&) = delete;
  SnapshotView& operator=(const SnapshotView&) = delete;

  Result<std::optional<std::string>> Get(std::string_view ns,
                                         std::string_view key) const override {
    return store_->GetAt(snapshot_, ns, key);
  }
  Status Scan(std::string_view ns, std::string_view prefix,
              const operators::ScanVisitor& visit) const override {
    return store_->ScanAt(snapshot_, ns, prefix, visit);
  }

 private:
  const RocksDbStateStore* const store_;
  const rocksdb::Snapshot* const snapshot_;
};

Result<std::unique_ptr<RocksDbStateStore>> RocksDbStateStore::Open(
    const std::string& dir, RocksDbStateStoreOptions options) {
  if (dir.empty()) return InvalidArgumentError("rocksdb state store: empty directory path");
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.keep_log_file_num = 5;  // RocksDB's own info LOG files, not the WAL
  if (options.env != nullptr) db_options.env = options.env;
  if (options.shared_cache && options.shared_cache->write_buffers_) {
    db_options.write_buffer_manager = options.shared_cache->write_buffers_;
  }
  db_options.listeners.push_back(std::make_shared<NoAutoRecovery>());
  db_options.max_bgerror_resume_count = 0;  // same reason, for retryable errors
  db_options.allow_concurrent_memtable_write = false;  // vector memtables (below) do not support it

  std::shared_ptr<rocksdb::Cache> cache =
      options.shared_cache ? options.shared_cache->cache_ : rocksdb::NewLRUCache(options.block_cache_bytes);
  const rocksdb::ColumnFamilyOptions default_options = MakeColumnFamilyOptions(options, cache, false);
  const rocksdb::ColumnFamilyOptions ns_options = MakeColumnFamilyOptions(options, cache, true);

  // RocksDB must be told every column family on disk; a missing CURRENT file
  // means there is no store yet and only "default" will exist.
  std::vector<std::string> names;
  rocksdb::Status exists = db_options.env->FileExists(dir + "/CURRENT");
  if (exists.ok()) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, dir, &names);
    if (!s.ok()) return FromRocks(s, "list column families", dir);
  } else if (exists.IsNotFound()) {
    names.push_back(rocksdb::kDefaultColumnFamilyName);
  } else {
    return FromRocks(exists, "open", dir);
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.reserve(names.size());
  for (const std::string& name : names) {
    descriptors.emplace_back(name, name == rocksdb::kDefaultColumnFamilyName ? default_options : ns_options);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, descriptors, &handles, &raw_db);
  if (!s.ok()) return FromRocks(s, "open", dir);

  std::unique_ptr<RocksDbStateStore> store(
      new RocksDbStateStore(dir, options, std::move(cache)));
  store->db_.reset(raw_db);
  SHORTFALL_CHECK(handles.size() == names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == rocksdb::kDefaultColumnFamilyName) {
      store->default_cf_ = handles[i];
    } else {
      store->column_families_.emplace(names[i], handles[i]);
    }
  }
  SHORTFALL_CHECK(store->default_cf_ != nullptr);
  return store;
}

RocksDbStateStore::RocksDbStateStore(std::string dir, RocksDbStateStoreOptions options,
                                     std::shared_ptr<rocksdb::Cache> block_cache)
    : dir_(std::move(dir)), options_(options), block_cache_(std::move(block_cache)) {}

RocksDbStateStore::~RocksDbStateStore() {
  if (db_ == nullptr) return;
  // Handles must go before the DB. Every commit is already in the WAL, so a
  // failed close loses nothing that was acknowledged.
  for (auto& [name, handle] : column_families_) {
    db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  if (default_cf_ != nullptr) db_->DestroyColumnFamilyHandle(default_cf_).PermitUncheckedError();
  db_->Close().PermitUncheckedError();
}

rocksdb::ColumnFamilyHandle* RocksDbStateStore::FindColumnFamily(std::string_view ns) const {
  std::shared_lock lock(cf_mu_);
  auto it = column_families_.find(ns);
  return it == column_families_.end() ? nullptr : it->second;
}

Result<rocksdb::ColumnFamilyHandle*> RocksDbStateStore::CreateColumnFamily(const std::string& ns) {
  // Held across the RocksDB call (a MANIFEST write) so that a lookup never
  // sees a half-registered family; this happens once per namespace.
  std::unique_lock lock(cf_mu_);
  auto it = column_families_.find(ns);
  if (it != column_families_.end()) return it->second;
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  rocksdb::Status s =
      db_->CreateColumnFamily(MakeColumnFamilyOptions(options_, block_cache_, true), ns, &handle);
  if (!s.ok()) {
    Status status = FromRocks(s, "create column family '" + ns + "'", dir_);
    if (StopsWrites(s)) write_error_ = status;
    return status;
  }
  column_families_.emplace(ns, handle);
  return handle;
}

Result<std::optional<std::string>> RocksDbStateStore::GetAt(const rocksdb::Snapshot* snapshot,
                                                            std::string_view ns,
                                                            std::string_view key) const {
  rocksdb::ColumnFamilyHandle* cf = FindColumnFamily(ns);
  if (cf == nullptr) return std::optional<std::string>();
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  std::string value;
  rocksdb::Status s = db_->Get(read, cf, ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, "get from '" + std::string(ns) + "'", dir_);
  return std::optional<std::string>(std::move(value));
}

Status RocksDbStateStore::ScanAt(const rocksdb::Snapshot* snapshot, std::string_view ns,
                                 std::string_view prefix,
                                 const operators::ScanVisitor& visit) const {
  rocksdb::ColumnFamilyHandle* cf = FindColumnFamily(ns);
  if (cf == nullptr) return OkStatus();
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  // The upper bound lets RocksDB stop at the end of the prefix without
  // stepping over tombstones beyond it; the prefix check below stays as the
  // rule when there is no bound.
  const std::string upper = PrefixSuccessor(prefix);
  const rocksdb::Slice upper_slice(upper);
  if (!upper.empty()) read.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, cf));
  for (it->Seek(ToSlice(prefix)); it->Valid(); it->Next()) {
    const std::string_view key = ToView(it->key());
    if (key.substr(0, prefix.size()) != prefix) break;
    if (!visit(key, ToView(it->value()))) break;
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "scan of '" + std::string(ns) + "'", dir_);
  }
  return OkStatus();
}

Result<std::optional<std::string>> RocksDbStateStore::Get(std::string_view ns,
                                                          std::string_view key) const {
  return GetAt(nullptr, ns, key);
}

Status RocksDbStateStore::Scan(std::string_view ns, std::string_view prefix,
                               const operators::ScanVisitor& visit) const {
  return ScanAt(nullptr, ns, prefix, visit);
}

Status RocksDbStateStore::Commit(const operators::StateWriteBatch& batch,
                                 std::string_view checkpoint) {
  return Write(batch, &checkpoint, /*logged=*/true);
}

Status RocksDbStateStore::ApplyUnlogged(const operators::StateWriteBatch& batch) {
  return Write(batch, nullptr, /*logged=*/false);
}

Status RocksDbStateStore::FlushAll() {
  SHORTFALL_RETURN_IF_ERROR(CheckWritable("flush"));
  std::vector<rocksdb::ColumnFamilyHandle*> families{default_cf_};
  {
    std::shared_lock lock(cf_mu_);
    for (const auto& [name, cf] : column_families_) families.push_back(cf);
  }
  rocksdb::FlushOptions flush;
  flush.wait = true;
  flush.allow_write_stall = true;
  rocksdb::Status s = db_->Flush(flush, families);
  if (!s.ok()) return WriteFailed(s, "flush");
  return OkStatus();
}

Status RocksDbStateStore::Write(const operators::StateWriteBatch& batch, const std::string_view* checkpoint,
                                bool logged) {
  // Validate everything before touching the database, so a bad batch
  // creates no column family and writes nothing.
  for (const operators::StateMutation& m : batch.mutations()) {
    if (!operators::IsValidNamespace(m.ns)) {
      return InvalidArgumentError("commit to '" + dir_ + "': state namespace '" + m.ns +
                                  "' is not 1-64 of [a-z0-9_] starting with a letter, or is "
                                  "reserved");
    }
  }
  SHORTFALL_RETURN_IF_ERROR(CheckWritable("commit"));
  // Column families are created before the write: an empty family left by a
  // failed write reads the same as a missing one.
  std::map<std::string_view, rocksdb::ColumnFamilyHandle*> handles;
  for (const operators::StateMutation& m : batch.mutations()) {
    auto [it, inserted] = handles.try_emplace(m.ns, nullptr);
    if (!inserted) continue;
    it->second = FindColumnFamily(m.ns);
    if (it->second == nullptr) {
      SHORTFALL_ASSIGN_OR_RETURN(it->second, CreateColumnFamily(m.ns));
    }
  }

  // Mutations and checkpoint in one WriteBatch: RocksDB applies it
  // atomically across column families, which is what keeps state and input
  // offsets in step after a crash.
  rocksdb::WriteBatch write;
  for (const operators::StateMutation& m : batch.mutations()) {
    rocksdb::ColumnFamilyHandle* cf = handles.at(m.ns);
    rocksdb::Status s = m.value ? write.Put(cf, ToSlice(m.key), ToSlice(*m.value))
                                : write.Delete(cf, ToSlice(m.key));
    if (!s.ok()) return FromRocks(s, "build commit batch", dir_);
  }
  if (checkpoint != nullptr) {
    rocksdb::Status s = write.Put(default_cf_, ToSlice(kCheckpointKey), ToSlice(*checkpoint));
    if (!s.ok()) return FromRocks(s, "build commit batch", dir_);
  }

  rocksdb::WriteOptions write_options;
  write_options.sync = logged && options_.sync_commits;
  write_options.disableWAL = !logged;
  rocksdb::Status s = db_->Write(write_options, &write);
  if (!s.ok()) return WriteFailed(s, "commit");
  FlushIfOverSharedBound();
  return OkStatus();
}

void RocksDbStateStore::FlushIfOverSharedBound() {
  const rocksdb::WriteBufferManager* manager =
      options_.shared_cache ? options_.shared_cache->write_buffers_.get() : nullptr;
  if (manager == nullptr || manager->memory_usage() <= manager->buffer_size()) return;
  // The manager has switched memtables to flushes already (at 7/8 of its
  // bound); over the bound, those flushes lag behind the writes. Waiting for
  // this store's own flush holds the writer back without depending on any
  // other store, so it cannot wait for good. The write before stands; a
  // flush error stops the writes after it (FlushAll records it).
  FlushAll().IgnoreError();
}

Result<std::string> RocksDbStateStore::LastCheckpoint() const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), default_cf_, ToSlice(kCheckpointKey), &value);
  if (s.IsNotFound()) return std::string();
  if (!s.ok()) return FromRocks(s, "read checkpoint", dir_);
  return value;
}

Result<std::unique_ptr<operators::StateView>> RocksDbStateStore::Snapshot() const {
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  if (snapshot == nullptr) return InternalError("rocksdb snapshot in '" + dir_ + "': not supported");
  return std::unique_ptr<operators::StateView>(std::make_unique<SnapshotView>(this, snapshot));
}

operators::StateStoreStats RocksDbStateStore::Stats() const {
  operators::StateStoreStats stats;
  std::shared_lock lock(cf_mu_);
  for (const auto& [name, cf] : column_families_) {
    stats.keys += IntProperty(*db_, cf, "rocksdb.estimate-num-keys");
    stats.bytes += IntProperty(*db_, cf, "rocksdb.estimate-live-data-size") +
                   IntProperty(*db_, cf, "rocksdb.cur-size-all-mem-tables");
  }
  return stats;
}

Status RocksDbStateStore::WriteFailed(const rocksdb::Status& s, std::string_view operation) {
  Status status = FromRocks(s, operation, dir_);
  if (StopsWrites(s)) {
    std::unique_lock lock(cf_mu_);
    write_error_ = status;
  }
  return status;
}

Status RocksDbStateStore::CheckWritable(std::string_view operation) const {
  std::shared_lock lock(cf_mu_);
  if (write_error_.ok()) return OkStatus();
  return FailedPreconditionError("rocksdb " + std::string(operation) + " in '" + dir_ +
                                 "': refused until the store is reopened, after: " +
                                 write_error_.ToString());
}

Status RocksDbStateStore::CreateCheckpoint(const std::string& dir) const {
  // A checkpoint flushes memtables, a write this state must not attempt.
  SHORTFALL_RETURN_IF_ERROR(CheckWritable("checkpoint into '" + dir + "'"));
  // RocksDB reports an existing target as InvalidArgument; checking first
  // gives the caller the precise code.
  rocksdb::Status exists = db_->GetEnv()->FileExists(dir);
  if (exists.ok()) {
    return AlreadyExistsError("rocksdb checkpoint of '" + dir_ + "' into '" + dir +
                              "': target already exists");
  }
  if (!exists.IsNotFound()) return FromRocks(exists, "checkpoint into '" + dir + "'", dir_);
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  if (!s.ok()) return FromRocks(s, "checkpoint into '" + dir + "'", dir_);
  s = checkpoint->CreateCheckpoint(dir);
  if (!s.ok()) return FromRocks(s, "checkpoint into '" + dir + "'", dir_);
  return OkStatus();
}

SharedBlockCache::SharedBlockCache(size_t cache_bytes, size_t write_buffer_bytes)
    : capacity_(cache_bytes), write_buffer_bytes_(write_buffer_bytes), cache_(rocksdb::NewLRUCache(cache_bytes)) {
  SHORTFALL_CHECK(cache_bytes > 0);
  SHORTFALL_CHECK(write_buffer_bytes < cache_bytes);
  if (write_buffer_bytes > 0) {
    // allow_stall = false: see the class comment.
    write_buffers_ = std::make_shared<rocksdb::WriteBufferManager>(write_buffer_bytes, cache_, /*allow_stall=*/false);
  }
}

SharedBlockCache::~SharedBlockCache() = default;

uint64_t SharedBlockCache::UsageBytes() const {
  const uint64_t usage = cache_->GetUsage();
  const uint64_t reserved = write_buffers_ ? write_buffers_->dummy_entries_in_cache_usage() : 0;
  return usage > reserved ? usage - reserved : 0;
}

uint64_t SharedBlockCache::WriteBufferUsageBytes() const {
  return write_buffers_ ? write_buffers_->memory_usage() : 0;
}

uint64_t RocksDbStateStore::MemoryUsageBytes() const {
  uint64_t bytes = options_.shared_cache ? 0 : block_cache_->GetUsage();
  bytes += IntProperty(*db_, default_cf_, "rocksdb.cur-size-all-mem-tables");
  std::shared_lock lock(cf_mu_);
  for (const auto& [name, cf] : column_families_) {
    bytes += IntProperty(*db_, cf, "rocksdb.cur-size-all-mem-tables");
  }
  return bytes;
}

}  // namespace shortfall::pipeline
