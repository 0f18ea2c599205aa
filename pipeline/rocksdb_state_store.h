// RocksDbStateStore: the durable StateStore, one RocksDB database per
// directory.
//
// Each state namespace is a RocksDB column family, created by the first
// Commit that writes to it. The checkpoint blob lives in the "default" column
// family under a fixed key and is written in the same rocksdb::WriteBatch as
// the mutations, so state and checkpoint survive a crash together or not at
// all. Reopening a directory restores exactly the last committed state.
//
//   SHORTFALL_ASSIGN_OR_RETURN(std::unique_ptr<RocksDbStateStore> store,
//                              RocksDbStateStore::Open("/var/lib/shortfall/task-0"));
//   StateWriteBatch batch;
//   batch.Put("volumes", key, value);
//   SHORTFALL_RETURN_IF_ERROR(store->Commit(batch, offsets_blob));
//
// Thread-safety: safe for concurrent readers (Get, Scan, Snapshot, Stats,
// LastCheckpoint, CreateCheckpoint, MemoryUsageBytes) with one writer
// (Commit). Two Commit calls must not run at the same time.
// Ownership: the caller owns the store; views returned by Snapshot() hold a
// RocksDB snapshot and a pointer to the store, and must be destroyed before
// it. One process may open a directory once at a time (RocksDB's LOCK file).
// Failure: every RocksDB error comes back as a Status naming the directory
// and the operation: I/O errors (unwritable directory, disk full, lock held)
// as kUnavailable, corruption as kDataLoss, bad arguments as
// kInvalidArgument, anything else as kInternal. Nothing throws or aborts on
// I/O errors. A failed Commit leaves the last committed state and checkpoint
// in place. After an I/O error or corruption on a write, RocksDB stops taking
// writes, so Commit and CreateCheckpoint fail with kFailedPrecondition until
// the store is destroyed and opened again (reads keep working); a retry loop
// on kUnavailable should reopen rather than retry Commit alone.
#ifndef SHORTFALL_PIPELINE_ROCKSDB_STATE_STORE_H_
#define SHORTFALL_PIPELINE_ROCKSDB_STATE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "base/status.h"
#include "operators/state_store.h"

namespace rocksdb {
class Cache;
class ColumnFamilyHandle;
class DB;
class Env;
class Snapshot;
class Status;
class WriteBufferManager;
}  // namespace rocksdb

namespace shortfall::pipeline {

// The RocksDB memory shared by every store of a process: one LRU cache of
// `cache_bytes` for the data, index and filter blocks of all tasks' stores,
// instead of one per store, and, when write_buffer_bytes > 0, one
// rocksdb::WriteBufferManager bounding the memtables of all of them
// together, charged to that cache. So the cache's capacity bounds RocksDB's
// memory whatever the number of tasks and however large the state grows.
//
// How the memtable bound works: when the active memtables of all stores
// exceed 7/8 of write_buffer_bytes, the next write to any store first
// switches that store's oldest memtable to a flush (RocksDB flushes the
// store being written, not the largest one). Flushed memtables count until
// their flush ends; when all of them together pass write_buffer_bytes
// (flushes lagging behind the writes), a commit then flushes its own store
// and waits for that flush. The manager itself never stalls writes
// (allow_stall = false): its stall waits until the total drops, which an
// idle store's memtable can prevent for good, and with one writer thread
// for every store that is a deadlock. Waiting for the writing store's own
// flush depends on no other store. A store that goes idle keeps its
// memtable (under 7/8 of the bound, or it would have flushed) until it
// writes again. The memtables' share of the cache comes out of the blocks'
// share (LRU evicts blocks to make room for the reservation).
//
//   auto memory = std::make_shared<SharedBlockCache>(size_t{256} << 20, size_t{64} << 20);
//   RocksDbStateStoreOptions options;
//   options.shared_cache = memory;   // for every store of the process
//
// Thread-safety: safe to share between stores and threads (RocksDB's cache
// and write-buffer manager are).
class SharedBlockCache {
 public:
  // REQUIRES: cache_bytes > 0, write_buffer_bytes < cache_bytes.
  explicit SharedBlockCache(size_t cache_bytes, size_t write_buffer_bytes = 0);
  ~SharedBlockCache();
  // Bytes of blocks cached (the memtables' reservation in the cache left out).
  uint64_t UsageBytes() const;
  // Bytes of the memtables of every store using this, or 0 without a
  // write-buffer manager.
  uint64_t WriteBufferUsageBytes() const;
  size_t capacity_bytes() const { return capacity_; }
  size_t write_buffer_bytes() const { return write_buffer_bytes_; }

 private:
  friend class RocksDbStateStore;
  size_t capacity_;
  size_t write_buffer_bytes_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers_;  // null when write_buffer_bytes is 0
};

struct RocksDbStateStoreOptions {
  // Default true: every Commit fsyncs the write-ahead log before returning,
  // so a committed batch survives power loss; costs one fsync (~0.1-10 ms)
  // per Commit. False: the log is written to the OS but not synced, which
  // survives a process crash but may lose the last commits on power loss.
  bool sync_commits = true;

  // Default nullptr: the store has its own block cache of
  // block_cache_bytes. Set: it uses this process-wide cache (and
  // write-buffer manager) instead, and block_cache_bytes is not used.
  std::shared_ptr<SharedBlockCache> shared_cache;

  // Default 32 MiB, in bytes. LRU cache of data, index and filter blocks,
  // shared by all column families of this store. Larger: fewer disk reads
  // for state that does not fit in memtables; more resident memory.
  size_t block_cache_bytes = size_t{32} << 20;

  // Default 16 MiB, in bytes, per column family. Size of a memtable before
  // it is flushed to an SST file (sooner when the shared write-buffer
  // manager's bound is reached; Commit may then wait for that flush). Larger: fewer, bigger flushes and less
  // write amplification; more memory per namespace and a longer log replay
  // on reopen.
  size_t write_buffer_bytes = size_t{16} << 20;

  // Default nullptr (rocksdb::Env::Default()). The environment through
  // which RocksDB does all file I/O; tests pass one that injects faults.
  // Not owned; must outlive the store.
  rocksdb::Env* env = nullptr;
};

class RocksDbStateStore final : public operators::StateStore {
 public:
  // Opens the store in `dir`, creating the directory (not its parents) and
  // an empty store if missing, and opens every column family already in it. Fails with
  // kUnavailable when `dir` cannot be created or locked (a path under a
  // regular file, a store already open in this process), kDataLoss when the
  // store is corrupt.
  static Result<std::unique_ptr<RocksDbStateStore>> Open(const std::string& dir,
                                                         RocksDbStateStoreOptions options = {});

  RocksDbStateStore(const RocksDbStateStore&) = delete;
  RocksDbStateStore& operator=(const RocksDbStateStore&) = delete;

  // Closes the database. Committed state is already in the log, so nothing
  // is lost if closing fails.
  ~RocksDbStateStore() override;

  Result<std::optional<std::string>> Get(std::string_view ns,
                                         std::string_view key) const override;
  // The visitor runs while a RocksDB iterator is open; it may call back into
  // the store (even Commit), and those writes do not show in this scan.
  Status Scan(std::string_view ns, std::string_view prefix,
              const operators::ScanVisitor& visit) const override;
  Status Commit(const operators::StateWriteBatch& batch, std::string_view checkpoint) override;
  Result<std::string> LastCheckpoint() const override;

  // Rebuilding a store from its changelog, where a crash is repaired by
  // applying the changelog again from the last checkpoint (puts and deletes
  // in order come out the same however often applied): ApplyUnlogged
  // writes `batch` without the write-ahead log and without a checkpoint —
  // readable at once, on disk only once flushed, lost on a crash before
  // that — and FlushAll makes everything written so far durable, after
  // which a Commit (an empty batch will do) records the checkpoint. Skips
  // the log's write and fsync, most of a commit's cost besides the memtable
  // insert. Errors and the refusal after a write error as for Commit.
  Status ApplyUnlogged(const operators::StateWriteBatch& batch);
  Status FlushAll();
  // REQUIRES: the returned view is destroyed before this store.
  Result<std::unique_ptr<operators::StateView>> Snapshot() const override;
  // Estimates: keys sums "rocksdb.estimate-num-keys" and bytes sums
  // "rocksdb.estimate-live-data-size" + "rocksdb.cur-size-all-mem-tables"
  // over the namespaces (not the metadata). Overwrites and deletes not yet
  // compacted away make them drift; a property RocksDB cannot give counts 0.
  operators::StateStoreStats Stats() const override;

  // Writes a RocksDB checkpoint of the committed state into `dir`, hard
  // linking SST files where `dir` is on the same file system and copying
  // otherwise; the result opens with Open(). Fails with kAlreadyExists when
  // `dir` exists, kUnavailable on I/O errors (a partial `dir` may remain),
  // kFailedPrecondition after a write error (see above).
  Status CreateCheckpoint(const std::string& dir) const;

  // Bytes of memory RocksDB uses now: memtables of all column families plus
  // block cache usage (which holds index and filter blocks too). For metrics.
  // With a shared SharedBlockCache, the memtables of this store only (its blocks
  // are in the shared cache: SharedBlockCache::UsageBytes counts those).
  uint64_t MemoryUsageBytes() const;

  const std::string& dir() const { return dir_; }

 private:
  class SnapshotView;

  RocksDbStateStore(std::string dir, RocksDbStateStoreOptions options,
                    std::shared_ptr<rocksdb::Cache> block_cache);

  // The column family of `ns`, or nullptr when it does not exist yet.
  // Handles stay valid until the store is destroyed.
  rocksdb::ColumnFamilyHandle* FindColumnFamily(std::string_view ns) const;
  // Creates the column family of `ns` unless it exists.
  Result<rocksdb::ColumnFamilyHandle*> CreateColumnFamily(const std::string& ns);
  // kFailedPrecondition once a write has failed with an I/O error.
  Status CheckWritable(std::string_view operation) const;
  // The Status of a failed write; remembers it (write_error_) when RocksDB
  // stops taking writes after it. REQUIRES: cf_mu_ not held.
  Status WriteFailed(const rocksdb::Status& s, std::string_view operation);
  // Writes `batch` (validated, column families created), and `checkpoint`
  // unless it is null, in one RocksDB write batch.
  Status Write(const operators::StateWriteBatch& batch, const std::string_view* checkpoint, bool logged);
  // After a commit: when the memtables under the shared write-buffer
  // manager exceed its bound (their flushes lag behind the writes), flushes
  // this store and waits for it. A flush error stops later writes
  // (write_error_); the write before it stands.
  void FlushIfOverSharedBound();

  // Reads at `snapshot`, or at the latest commit when it is nullptr.
  Result<std::optional<std::string>> GetAt(const rocksdb::Snapshot* snapshot,
                                           std::string_view ns, std::string_view key) const;
  Status ScanAt(const rocksdb::Snapshot* snapshot, std::string_view ns,
                std::string_view prefix, const operators::ScanVisitor& visit) const;

  const std::string dir_;
  const RocksDbStateStoreOptions options_;
  const std::shared_ptr<rocksdb::Cache> block_cache_;
  std::unique_ptr<rocksdb::DB> db_;
  // Owned; holds the checkpoint blob. Set once by Open.
  rocksdb::ColumnFamilyHandle* default_cf_ = nullptr;

  // Guards the map, not the handles: Commit adds column families while
  // readers look theirs up. Handles are owned and destroyed in ~RocksDbStateStore.
  mutable std::shared_mutex cf_mu_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> column_families_;
  // The first write error that stopped RocksDB's writes; OK while writable.
  // Guarded by cf_mu_.
  Status write_error_;
};

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_ROCKSDB_STATE_STORE_H_
