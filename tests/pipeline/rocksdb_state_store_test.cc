#include "pipeline/rocksdb_state_store.h"

#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/io_status.h>

#include <atomic>
#include <thread>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/operators/state_store_contract_test.h"

namespace shortfall::pipeline {
namespace {

using operators::StateStore;
using operators::StateWriteBatch;
using operators::contract::CheckpointOf;
using operators::contract::IsOk;
using operators::contract::Rows;
using operators::contract::ScanRows;
using operators::contract::ScopedTempDir;
using operators::contract::ValueAt;

// Owns a temp dir holding one store directory; Open and Reopen both open it.
class RocksDbStateStoreFactory {
 public:
  static constexpr bool kDurable = true;

  std::unique_ptr<StateStore> Open() { return OpenStore(); }
  std::unique_ptr<StateStore> Reopen() { return OpenStore(); }

 private:
  std::unique_ptr<StateStore> OpenStore() {
    Result<std::unique_ptr<RocksDbStateStore>> store = RocksDbStateStore::Open(temp_.path() + "/store");
    if (!store.ok()) {
      ADD_FAILURE() << store.status().ToString();
      return nullptr;
    }
    return std::move(store).value();
  }

  ScopedTempDir temp_;
};

// Wraps a file system so that, while armed, every append to a file fails as
// a full disk would.
class DiskFullFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit DiskFullFileSystem(std::shared_ptr<rocksdb::FileSystem> target)
      : rocksdb::FileSystemWrapper(std::move(target)) {}

  const char* Name() const override { return "DiskFullFileSystem"; }
  void set_full(bool full) { full_->store(full); }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, result, dbg);
    if (s.ok()) *result = std::make_unique<File>(std::move(*result), full_);
    return s;
  }

 private:
  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> target, std::shared_ptr<std::atomic<bool>> full)
        : rocksdb::FSWritableFileOwnerWrapper(std::move(target)), full_(std::move(full)) {}

    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
      if (full_->load()) return rocksdb::IOStatus::NoSpace("injected: disk full");
      return FSWritableFileOwnerWrapper::Append(data, options, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* dbg) override {
      if (full_->load()) return rocksdb::IOStatus::NoSpace("injected: disk full");
      return FSWritableFileOwnerWrapper::Append(data, options, info, dbg);
    }

   private:
    std::shared_ptr<std::atomic<bool>> full_;
  };

  std::shared_ptr<std::atomic<bool>> full_ = std::make_shared<std::atomic<bool>>(false);
};

Status WriteFile(const std::string& path) {
  std::ofstream out(path);
  out << "not a directory";
  return out.good() ? OkStatus() : InternalError("cannot write " + path);
}

TEST(RocksDbStateStore, CreateCheckpointOpensWithSameStateAndCheckpoint) {
  ScopedTempDir temp;
  Result<std::unique_ptr<RocksDbStateStore>> store = RocksDbStateStore::Open(temp.path() + "/store");
  ASSERT_TRUE(IsOk(store.status()));
  StateWriteBatch batch;
  batch.Put("volumes", "a", "1");
  batch.Put("prices", "p", "9");
  ASSERT_TRUE(IsOk((*store)->Commit(batch, "cp1")));

  ASSERT_TRUE(IsOk((*store)->CreateCheckpoint(temp.path() + "/copy")));
  StateWriteBatch later;
  later.Put("volumes", "a", "2");
  ASSERT_TRUE(IsOk((*store)->Commit(later, "cp2")));

  Result<std::unique_ptr<RocksDbStateStore>> copy = RocksDbStateStore::Open(temp.path() + "/copy");
  ASSERT_TRUE(IsOk(copy.status()));
  EXPECT_EQ(CheckpointOf(**copy), "cp1");
  EXPECT_EQ(ScanRows(**copy, "volumes", ""), (Rows{{"a", "1"}}));
  EXPECT_EQ(ScanRows(**copy, "prices", ""), (Rows{{"p", "9"}}));
  EXPECT_EQ(ValueAt(**store, "volumes", "a"), "2");
}

TEST(RocksDbStateStore, CreateCheckpointIntoExistingDirFailsNamingIt) {
  ScopedTempDir temp;
  Result<std::unique_ptr<RocksDbStateStore>> store = RocksDbStateStore::Open(temp.path() + "/store");
  ASSERT_TRUE(IsOk(store.status()));

  Status status = (*store)->CreateCheckpoint(temp.path());

  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status.ToString();
  EXPECT_NE(status.message().find(temp.path()), std::string::npos) << status.ToString();
}

TEST(RocksDbStateStore, OpenUnderARegularFileFailsNamingThePath) {
  ScopedTempDir temp;
  const std::string file = temp.path() + "/file";
  ASSERT_TRUE(IsOk(WriteFile(file)));

  Result<std::unique_ptr<RocksDbStateStore>> store = RocksDbStateStore::Open(file + "/sub");

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  EXPECT_NE(store.status().message().find(file + "/sub"), std::string::npos)
      << store.status().ToString();
}

TEST(RocksDbStateStore, OpenOnARegularFileFailsNamingThePath) {
  ScopedTempDir temp;
  const std::string file = temp.path() + "/file";
  ASSERT_TRUE(IsOk(WriteFile(file)));

  Result<std::unique_ptr<RocksDbStateStore>> store = RocksDbStateStore::Open(file);

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  EXPECT_NE(store.status().message().find(file), std::string::npos) << store.status().ToString();
}

TEST(RocksDbStateStore, SecondOpenOfAnOpenStoreFailsUnavailable) {
  ScopedTempDir temp;
  Result<std::unique_ptr<RocksDbStateStore>> first = RocksDbStateStore::Open(temp.path() + "/s");
  ASSERT_TRUE(IsOk(first.status()));

  Result<std::unique_ptr<RocksDbStateStore>> second = RocksDbStateStore::Open(temp.path() + "/s");

  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
}

// A store on a file system that can be made to fail every append.
struct FaultyStore {
  ScopedTempDir temp;
  std::string dir = temp.path() + "/store";
  std::shared_ptr<DiskFullFileSystem> fs =
      std::make_shared<DiskFullFileSystem>(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  std::unique_ptr<RocksDbStateStore> store;

  Status Open() {
    RocksDbStateStoreOptions options;
    options.env = env.get();
    Result<std::unique_ptr<RocksDbStateStore>> opened = RocksDbStateStore::Open(dir, options);
    if (!opened.ok()) return opened.status();
    store = std::move(opened).value();
    return OkStatus();
  }
  // Closes the store (RocksDB allows one open per directory) and opens it again.
  Status Reopen() {
    store.reset();
    return Open();
  }
};

TEST(RocksDbStateStore, CommitFailingOnFullDiskLeavesStateAndCheckpointIntact) {
  FaultyStore faulty;
  ASSERT_TRUE(IsOk(faulty.Open()));
  StateWriteBatch batch;
  batch.Put("volumes", "k", "before");
  ASSERT_TRUE(IsOk(faulty.store->Commit(batch, "cp1")));

  faulty.fs->set_full(true);
  StateWriteBatch overwrite;
  overwrite.Put("volumes", "k", "after");
  Status failed = faulty.store->Commit(overwrite, "cp2");
  faulty.fs->set_full(false);

  EXPECT_EQ(failed.code(), StatusCode::kUnavailable) << failed.ToString();
  EXPECT_NE(failed.message().find(faulty.dir), std::string::npos) << failed.ToString();
  EXPECT_EQ(ValueAt(*faulty.store, "volumes", "k"), "before");
  EXPECT_EQ(CheckpointOf(*faulty.store), "cp1");
  ASSERT_TRUE(IsOk(faulty.Reopen()));
  EXPECT_EQ(ValueAt(*faulty.store, "volumes", "k"), "before");
  EXPECT_EQ(CheckpointOf(*faulty.store), "cp1");
}

TEST(RocksDbStateStore, CommitFailingToCreateNamespaceAppliesNothing) {
  FaultyStore faulty;
  ASSERT_TRUE(IsOk(faulty.Open()));
  StateWriteBatch batch;
  batch.Put("volumes", "k", "before");
  ASSERT_TRUE(IsOk(faulty.store->Commit(batch, "cp1")));

  faulty.fs->set_full(true);
  StateWriteBatch with_new_ns;
  with_new_ns.Put("volumes", "k", "after");
  with_new_ns.Put("fresh_ns", "k", "v");
  Status failed = faulty.store->Commit(with_new_ns, "cp2");
  faulty.fs->set_full(false);

  EXPECT_EQ(failed.code(), StatusCode::kUnavailable) << failed.ToString();
  EXPECT_EQ(ValueAt(*faulty.store, "volumes", "k"), "before");
  EXPECT_EQ(ValueAt(*faulty.store, "fresh_ns", "k"), std::nullopt);
  EXPECT_EQ(CheckpointOf(*faulty.store), "cp1");
  ASSERT_TRUE(IsOk(faulty.Reopen()));
  EXPECT_EQ(ValueAt(*faulty.store, "volumes", "k"), "before");
  EXPECT_EQ(ValueAt(*faulty.store, "fresh_ns", "k"), std::nullopt);
  EXPECT_EQ(CheckpointOf(*faulty.store), "cp1");
}

TEST(RocksDbStateStore, AfterWriteErrorCommitsAreRefusedUntilReopen) {
  FaultyStore faulty;
  ASSERT_TRUE(IsOk(faulty.Open()));
  StateWriteBatch batch;
  batch.Put("volumes", "k", "v1");
  faulty.fs->set_full(true);
  ASSERT_FALSE(faulty.store->Commit(batch, "cp1").ok());
  faulty.fs->set_full(false);

  // Also a namespace the store has not seen: creating it now must not be tried.
  StateWriteBatch retry;
  retry.Put("volumes", "k", "v2");
  retry.Put("fresh_ns", "k", "v");
  Status refused = faulty.store->Commit(retry, "cp2");
  Status checkpoint_refused = faulty.store->CreateCheckpoint(faulty.temp.path() + "/copy");

  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_EQ(checkpoint_refused.code(), StatusCode::kFailedPrecondition)
      << checkpoint_refused.ToString();
  ASSERT_TRUE(IsOk(faulty.Reopen()));
  EXPECT_TRUE(IsOk(faulty.store->Commit(retry, "cp2")));
  EXPECT_EQ(ValueAt(*faulty.store, "volumes", "k"), "v2");
  EXPECT_EQ(CheckpointOf(*faulty.store), "cp2");
}

TEST(RocksDbStateStore, MemoryUsageGrowsWithCommittedData) {
  ScopedTempDir temp;
  Result<std::unique_ptr<RocksDbStateStore>> store = RocksDbStateStore::Open(temp.path() + "/s");
  ASSERT_TRUE(IsOk(store.status()));
  const uint64_t before = (*store)->MemoryUsageBytes();

  StateWriteBatch batch;
  batch.Put("volumes", "k", std::string(size_t{256} << 10, 'x'));
  ASSERT_TRUE(IsOk((*store)->Commit(batch, "cp1")));

  EXPECT_GE((*store)->MemoryUsageBytes(), before + (size_t{256} << 10));
}

// Opens `count` stores at `dir`0, `dir`1, ... and, as a runtime's tasks do, has each
// commit in turn (64 KiB a commit) until each holds `megabytes`, then reads
// every key back. Returns the stores; *peak: the most `memory()` returned
// after any commit.
std::vector<std::unique_ptr<RocksDbStateStore>> FillInTurn(const std::string& dir, int count, int megabytes,
                                                           const RocksDbStateStoreOptions& options,
                                                           const std::function<uint64_t()>& memory,
                                                           uint64_t* peak) {
  std::vector<std::unique_ptr<RocksDbStateStore>> stores;
  for (int i = 0; i < count; ++i) {
    Result<std::unique_ptr<RocksDbStateStore>> store = RocksDbStateStore::Open(dir + std::to_string(i), options);
    EXPECT_TRUE(IsOk(store.status()));
    if (!store.ok()) return {};
    stores.push_back(std::move(store).value());
  }
  uint64_t x = 88172645463325252ull;
  const auto next = [&] { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; };
  *peak = 0;
  for (int k = 0; k < megabytes * 16; ++k) {
    for (auto& store : stores) {
      StateWriteBatch batch;
      std::string value;
      while (value.size() < (size_t{64} << 10)) value += std::to_string(next());
      batch.Put("volumes", "k" + std::to_string(k), value);
      EXPECT_TRUE(IsOk(store->Commit(batch, "cp")));
      *peak = std::max(*peak, memory());
    }
  }
  for (auto& store : stores) {
    for (int k = 0; k < megabytes * 16; ++k) {
      Result<std::optional<std::string>> v = store->Get("volumes", "k" + std::to_string(k));
      EXPECT_TRUE(IsOk(v.status()) && v->has_value());
    }
  }
  return stores;
}

TEST(RocksDbStateStore, StoresSharingABlockCacheKeepTheirCachedBlocksWithinIt) {
  // Ten stores writing and reading back 24 MiB each: on their own, each
  // caches up to its 32 MiB of blocks,
  ScopedTempDir temp;
  constexpr int kStores = 10;
  RocksDbStateStoreOptions own;
  own.sync_commits = false;
  own.write_buffer_bytes = size_t{1} << 20;  // flush early: the blocks are what is measured
  std::vector<std::unique_ptr<RocksDbStateStore>> stores;
  uint64_t peak = 0;
  stores = FillInTurn(temp.path() + "/own-", kStores, 24, own, [] { return uint64_t{0}; }, &peak);
  uint64_t own_cached = 0;
  for (const auto& s : stores) own_cached += s->MemoryUsageBytes();
  EXPECT_GT(own_cached, uint64_t{64} << 20) << "the shared cache below would not bind";
  stores.clear();

  // while sharing an 8 MiB cache they keep their blocks within it together
  // (and each store's MemoryUsageBytes then counts its memtables only).
  auto cache = std::make_shared<SharedBlockCache>(size_t{8} << 20);
  RocksDbStateStoreOptions shared = own;
  shared.shared_cache = cache;
  stores = FillInTurn(temp.path() + "/shared-", kStores, 24, shared, [&] { return cache->UsageBytes(); }, &peak);
  EXPECT_GT(cache->UsageBytes(), uint64_t{4} << 20) << "the reads filled it";
  EXPECT_LE(std::max(peak, cache->UsageBytes()), (uint64_t{8} << 20) * 9 / 8)
      << "an LRU cache may overshoot by the blocks in use";
  for (const auto& s : stores) EXPECT_LE(s->MemoryUsageBytes(), uint64_t{4} << 20);
}

// Writes `total_mb` MiB in 64 KiB commits spread over three namespaces: first
// into stores[0] alone (`solo_mb` of it), then into the others in turn, as a
// runtime's single writer thread does, and returns the most memtable memory
// of all stores together seen after any commit (each store's
// MemoryUsageBytes is its memtables when the cache is shared). Aborts the
// process when the writes take longer than two minutes: a write stalled on
// the write-buffer manager never comes back, and a hung test would say less.
uint64_t PeakMemtablesWhileWriting(const std::vector<std::unique_ptr<RocksDbStateStore>>& stores, int solo_mb,
                                   int total_mb) {
  auto peak = std::make_shared<std::atomic<uint64_t>>(0);
  std::future<void> writes = std::async(std::launch::async, [&stores, solo_mb, total_mb, peak] {
    uint64_t x = 88172645463325252ull;
    const auto next = [&] { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; };
    const char* const namespaces[] = {"volume_buckets", "dwell_join", "watermarks"};
    size_t turn = 0;
    for (int k = 0; k < total_mb * 16; ++k) {
      RocksDbStateStore& store = k < solo_mb * 16 ? *stores[0] : *stores[1 + turn++ % (stores.size() - 1)];
      StateWriteBatch batch;
      for (int i = 0; i < 16; ++i) {  // 16 values of 4 KiB
        std::string value;
        while (value.size() < 4096) value += std::to_string(next());
        value.resize(4096);
        batch.Put(namespaces[i % 3], "k" + std::to_string(k) + "-" + std::to_string(i), value);
      }
      EXPECT_TRUE(IsOk(store.Commit(batch, "cp")));
      uint64_t memtables = 0;
      for (const auto& s : stores) memtables += s->MemoryUsageBytes();
      peak->store(std::max(peak->load(), memtables));
    }
  });
  if (writes.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
    std::fprintf(stderr, "writes blocked for 120 s: a write stall that never ends\n");
    std::abort();
  }
  writes.get();
  return peak->load();
}

TEST(RocksDbStateStore, SharedWriteBufferManagerBoundsEveryStoresMemtablesTogetherAndWritesComplete) {
  // Eight stores, 16 MiB memtables each per namespace (the default), 48 MiB
  // written: on their own no memtable fills, so all of it stays in memory,
  ScopedTempDir temp;
  constexpr int kStores = 8;
  const auto open_all = [&](const std::string& prefix, const RocksDbStateStoreOptions& options) {
    std::vector<std::unique_ptr<RocksDbStateStore>> stores;
    for (int i = 0; i < kStores; ++i) {
      Result<std::unique_ptr<RocksDbStateStore>> store =
          RocksDbStateStore::Open(temp.path() + "/" + prefix + std::to_string(i), options);
      EXPECT_TRUE(IsOk(store.status()));
      if (store.ok()) stores.push_back(std::move(store).value());
    }
    return stores;
  };
  RocksDbStateStoreOptions options;
  options.sync_commits = false;
  options.shared_cache = std::make_shared<SharedBlockCache>(size_t{64} << 20);  // no write-buffer manager
  std::vector<std::unique_ptr<RocksDbStateStore>> stores = open_all("unbounded-", options);
  ASSERT_EQ(stores.size(), size_t{kStores});
  EXPECT_GT(PeakMemtablesWhileWriting(stores, 6, 48), uint64_t{40} << 20) << "the bound below would not bind";
  stores.clear();

  // while with an 8 MiB write-buffer manager shared by all of them, the
  // memtables stay within about 8 MiB together (a commit's worth over it at
  // most), one store filling up first and then idling included, and the
  // writes all complete: none waits on another store.
  constexpr uint64_t kBound = uint64_t{8} << 20;
  auto memory = std::make_shared<SharedBlockCache>(size_t{64} << 20, kBound);
  options.shared_cache = memory;
  stores = open_all("bounded-", options);
  ASSERT_EQ(stores.size(), size_t{kStores});
  const uint64_t peak = PeakMemtablesWhileWriting(stores, 6, 48);
  EXPECT_GT(peak, kBound / 2) << "the writes reached the bound";
  EXPECT_LE(peak, kBound * 5 / 4);
  EXPECT_LE(memory->WriteBufferUsageBytes(), kBound * 5 / 4);
  EXPECT_GT(memory->WriteBufferUsageBytes(), 0u);
  // The memtables are charged to the cache, and UsageBytes leaves them out.
  EXPECT_LE(memory->UsageBytes(), uint64_t{64} << 20);
  // Flushed writes read back: the first of the solo phase, the first after it.
  Result<std::optional<std::string>> first = stores[0]->Get("volume_buckets", "k0-0");
  EXPECT_TRUE(IsOk(first.status()) && first->has_value());
  Result<std::optional<std::string>> after = stores[1]->Get("dwell_join", "k96-1");
  EXPECT_TRUE(IsOk(after.status()) && after->has_value());
}

TEST(RocksDbStateStore, UnloggedWritesReadAtOnceAndFlushAllMakesThemDurableWithoutACheckpoint) {
  // Given a store with a commit, then writes applied without the log
  ScopedTempDir temp;
  const std::string dir = temp.path() + "/s";
  {
    Result<std::unique_ptr<RocksDbStateStore>> store = RocksDbStateStore::Open(dir);
    ASSERT_TRUE(IsOk(store.status()));
    StateWriteBatch batch;
    batch.Put("volumes", "a", "1");
    ASSERT_TRUE(IsOk((*store)->Commit(batch, "cp1")));
    batch.Clear();
    batch.Put("volumes", "b", "2");
    batch.Delete("volumes", "a");
    batch.Put("dwell_join", "c", "3");
    ASSERT_TRUE(IsOk((*store)->ApplyUnlogged(batch)));
    // Then they read at once, and the checkpoint stays the last commit's
    EXPECT_EQ(ValueAt(**store, "volumes", "b"), "2");
    EXPECT_EQ(ValueAt(**store, "volumes", "a"), std::nullopt);
    EXPECT_EQ(CheckpointOf(**store), "cp1");
    ASSERT_TRUE(IsOk((*store)->FlushAll()));
  }
  // and after FlushAll they are on disk
  Result<std::unique_ptr<RocksDbStateStore>> reopened = RocksDbStateStore::Open(dir);
  ASSERT_TRUE(IsOk(reopened.status()));
  EXPECT_EQ(ValueAt(**reopened, "volumes", "b"), "2");
  EXPECT_EQ(ValueAt(**reopened, "volumes", "a"), std::nullopt);
  EXPECT_EQ(ValueAt(**reopened, "dwell_join", "c"), "3");
  EXPECT_EQ(CheckpointOf(**reopened), "cp1");
}

TEST(RocksDbStateStore, UnsyncedCommitsSurviveCleanClose) {
  ScopedTempDir temp;
  RocksDbStateStoreOptions options;
  options.sync_commits = false;
  {
    Result<std::unique_ptr<RocksDbStateStore>> store = RocksDbStateStore::Open(temp.path() + "/s", options);
    ASSERT_TRUE(IsOk(store.status()));
    StateWriteBatch batch;
    batch.Put("volumes", "k", "v");
    ASSERT_TRUE(IsOk((*store)->Commit(batch, "cp1")));
  }

  Result<std::unique_ptr<RocksDbStateStore>> store = RocksDbStateStore::Open(temp.path() + "/s", options);

  ASSERT_TRUE(IsOk(store.status()));
  EXPECT_EQ(ValueAt(**store, "volumes", "k"), "v");
  EXPECT_EQ(CheckpointOf(**store), "cp1");
}

}  // namespace
}  // namespace shortfall::pipeline

namespace shortfall::operators::contract {
INSTANTIATE_TYPED_TEST_SUITE_P(RocksDb, StateStoreContract,
                               ::testing::Types<pipeline::RocksDbStateStoreFactory>);
INSTANTIATE_TYPED_TEST_SUITE_P(RocksDb, DurableStateStoreContract,
                               ::testing::Types<pipeline::RocksDbStateStoreFactory>);
}  // namespace shortfall::operators::contract
