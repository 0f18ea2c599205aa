#include "pipeline/rocksdb_state_store.h"

#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/io_status.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <utility>

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
