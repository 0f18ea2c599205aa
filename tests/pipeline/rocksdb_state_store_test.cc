#include "pipeline/rocksdb_state_store.h"

#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/io_status.h>

#include <atomic>
#include <thread>
#include <chrono>
#include <fstream>
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
