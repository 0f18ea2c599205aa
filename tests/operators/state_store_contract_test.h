// The StateStore contract as typed GoogleTest suites, run over every
// implementation (see operators/state_store.h for the contract in words).
//
// A factory type parameterises the suites:
//
//   struct MyStoreFactory {
//     static constexpr bool kDurable = true;  // state survives Reopen()
//     // A fresh, empty store; the factory owns whatever it lives in (a temp
//     // dir). On failure: ADD_FAILURE() and return nullptr.
//     std::unique_ptr<operators::StateStore> Open();
//     // Durable factories only: the store from Open() opened again.
//     // REQUIRES: the store returned before has been destroyed.
//     std::unique_ptr<operators::StateStore> Reopen();
//   };
//
// Every factory instantiates StateStoreContract; durable ones also
// DurableStateStoreContract (its fixture static_asserts kDurable), so no
// test is skipped or passes vacuously:
//
//   namespace shortfall::operators::contract {
//   INSTANTIATE_TYPED_TEST_SUITE_P(RocksDb, StateStoreContract,
//                                  ::testing::Types<RocksDbStateStoreFactory>);
//   INSTANTIATE_TYPED_TEST_SUITE_P(RocksDb, DurableStateStoreContract,
//                                  ::testing::Types<RocksDbStateStoreFactory>);
//   }
//
// Fixtures destroy the store before the factory, so a factory may remove
// its directory in its destructor. tests/testing/temp_dir.h has one (ScopedTempDir).
#ifndef SHORTFALL_TESTS_OPERATORS_STATE_STORE_CONTRACT_TEST_H_
#define SHORTFALL_TESTS_OPERATORS_STATE_STORE_CONTRACT_TEST_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "base/status.h"
#include "operators/state_store.h"
#include "tests/testing/temp_dir.h"

namespace shortfall::operators::contract {

using ::shortfall::testing::ScopedTempDir;

inline ::testing::AssertionResult IsOk(const Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status.ToString();
}

// The value at `key`, failing the test (and returning nullopt) on an error.
inline std::optional<std::string> ValueAt(const StateView& view, std::string_view ns,
                                          std::string_view key) {
  Result<std::optional<std::string>> value = view.Get(ns, key);
  EXPECT_TRUE(IsOk(value.status()));
  return value.ok() ? *value : std::nullopt;
}

using Rows = std::vector<std::pair<std::string, std::string>>;

// Every (key, value) a scan visits, in visiting order.
inline Rows ScanRows(const StateView& view, std::string_view ns, std::string_view prefix) {
  Rows rows;
  EXPECT_TRUE(IsOk(view.Scan(ns, prefix, [&](std::string_view k, std::string_view v) {
    rows.emplace_back(k, v);
    return true;
  })));
  return rows;
}

inline std::string CheckpointOf(const StateStore& store) {
  Result<std::string> checkpoint = store.LastCheckpoint();
  EXPECT_TRUE(IsOk(checkpoint.status()));
  return checkpoint.ok() ? *checkpoint : "<error>";
}

// Namespace names the contract says every store rejects.
inline std::vector<std::string> InvalidNamespaces() {
  return {"Bad", "", "default", "_x", "9lives", "has-dash", "has space",
          std::string(65, 'a')};
}

template <typename Factory>
class StateStoreContract : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = factory_.Open();
    ASSERT_NE(store_, nullptr);
  }

  StateStore& store() { return *store_; }

  // Declared before store_ so the store is destroyed first.
  Factory factory_;
  std::unique_ptr<StateStore> store_;
};

TYPED_TEST_SUITE_P(StateStoreContract);

TYPED_TEST_P(StateStoreContract, FreshStoreIsEmptyAndHasNoCheckpoint) {
  StateStore& store = this->store();

  EXPECT_EQ(ValueAt(store, "volumes", "k"), std::nullopt);
  EXPECT_TRUE(ScanRows(store, "volumes", "").empty());
  EXPECT_EQ(CheckpointOf(store), "");
  EXPECT_EQ(store.Stats().keys, 0u);
  EXPECT_EQ(store.Stats().bytes, 0u);
}

TYPED_TEST_P(StateStoreContract, CommittedPutIsReadBack) {
  StateWriteBatch batch;
  batch.Put("volumes", "k", "v");

  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  EXPECT_EQ(ValueAt(this->store(), "volumes", "k"), "v");
  EXPECT_EQ(CheckpointOf(this->store()), "cp1");
}

TYPED_TEST_P(StateStoreContract, EmptyValueIsStoredNotDeleted) {
  StateWriteBatch batch;
  batch.Put("volumes", "k", "");

  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  EXPECT_EQ(ValueAt(this->store(), "volumes", "k"), "");
}

TYPED_TEST_P(StateStoreContract, DeleteRemovesCommittedKey) {
  StateWriteBatch put;
  put.Put("volumes", "k", "v");
  put.Put("volumes", "other", "o");
  ASSERT_TRUE(IsOk(this->store().Commit(put, "cp1")));

  StateWriteBatch del;
  del.Delete("volumes", "k");
  ASSERT_TRUE(IsOk(this->store().Commit(del, "cp2")));

  EXPECT_EQ(ValueAt(this->store(), "volumes", "k"), std::nullopt);
  EXPECT_EQ(ScanRows(this->store(), "volumes", ""), (Rows{{"other", "o"}}));
  EXPECT_EQ(CheckpointOf(this->store()), "cp2");
}

TYPED_TEST_P(StateStoreContract, DeleteOfMissingKeyInNewNamespaceCommits) {
  StateWriteBatch batch;
  batch.Delete("never_written", "k");

  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  EXPECT_EQ(ValueAt(this->store(), "never_written", "k"), std::nullopt);
  EXPECT_EQ(CheckpointOf(this->store()), "cp1");
}

TYPED_TEST_P(StateStoreContract, SecondPutOfKeyKeepsLastValue) {
  StateWriteBatch first;
  first.Put("volumes", "k", "v1");
  ASSERT_TRUE(IsOk(this->store().Commit(first, "cp1")));

  StateWriteBatch second;
  second.Put("volumes", "k", "v2");
  second.Put("volumes", "k", "v3");
  ASSERT_TRUE(IsOk(this->store().Commit(second, "cp2")));

  EXPECT_EQ(ValueAt(this->store(), "volumes", "k"), "v3");
  EXPECT_EQ(ScanRows(this->store(), "volumes", "").size(), 1u);
}

TYPED_TEST_P(StateStoreContract, MutationsInOneBatchApplyInOrder) {
  StateWriteBatch batch;
  batch.Put("volumes", "put_then_delete", "v");
  batch.Delete("volumes", "put_then_delete");
  batch.Delete("volumes", "delete_then_put");
  batch.Put("volumes", "delete_then_put", "w");

  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  EXPECT_EQ(ValueAt(this->store(), "volumes", "put_then_delete"), std::nullopt);
  EXPECT_EQ(ValueAt(this->store(), "volumes", "delete_then_put"), "w");
}

TYPED_TEST_P(StateStoreContract, EmptyBatchStillSetsCheckpoint) {
  StateWriteBatch put;
  put.Put("volumes", "k", "v");
  ASSERT_TRUE(IsOk(this->store().Commit(put, "cp1")));

  ASSERT_TRUE(IsOk(this->store().Commit(StateWriteBatch(), "cp2")));

  EXPECT_EQ(CheckpointOf(this->store()), "cp2");
  EXPECT_EQ(ValueAt(this->store(), "volumes", "k"), "v");
}

TYPED_TEST_P(StateStoreContract, InvalidNamespaceRejectsWholeBatchAndKeepsCheckpoint) {
  StateWriteBatch setup;
  setup.Put("volumes", "k", "before");
  ASSERT_TRUE(IsOk(this->store().Commit(setup, "cp1")));

  for (const std::string& bad : InvalidNamespaces()) {
    SCOPED_TRACE("namespace '" + bad + "'");
    StateWriteBatch batch;
    batch.Put("volumes", "k", "after");
    batch.Put("fresh_ns", "k", "v");
    batch.Put(bad, "k", "v");
    batch.Put("volumes", "later", "v");

    Status status = this->store().Commit(batch, "cp_bad");

    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    EXPECT_EQ(ValueAt(this->store(), "volumes", "k"), "before");
    EXPECT_EQ(ValueAt(this->store(), "volumes", "later"), std::nullopt);
    EXPECT_EQ(ValueAt(this->store(), "fresh_ns", "k"), std::nullopt);
    EXPECT_EQ(ValueAt(this->store(), bad, "k"), std::nullopt);
    EXPECT_EQ(CheckpointOf(this->store()), "cp1");
  }
}

TYPED_TEST_P(StateStoreContract, ReservedNamespaceShowsNoStoreMetadata) {
  StateWriteBatch batch;
  batch.Put("volumes", "k", "v");
  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  EXPECT_TRUE(ScanRows(this->store(), "default", "").empty());
  EXPECT_TRUE(ScanRows(this->store(), "", "").empty());
}

TYPED_TEST_P(StateStoreContract, NamespacesAreIsolated) {
  StateWriteBatch batch;
  batch.Put("volumes", "k", "in_volumes");
  batch.Put("prices", "k", "in_prices");
  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  StateWriteBatch del;
  del.Delete("prices", "k");
  ASSERT_TRUE(IsOk(this->store().Commit(del, "cp2")));

  EXPECT_EQ(ValueAt(this->store(), "volumes", "k"), "in_volumes");
  EXPECT_EQ(ValueAt(this->store(), "prices", "k"), std::nullopt);
  EXPECT_EQ(ScanRows(this->store(), "volumes", ""), (Rows{{"k", "in_volumes"}}));
  EXPECT_TRUE(ScanRows(this->store(), "prices", "").empty());
}

TYPED_TEST_P(StateStoreContract, ScanVisitsPrefixedKeysInBytewiseOrder) {
  using std::string_literals::operator""s;
  StateWriteBatch batch;
  // Added out of order, with keys just outside the prefix on both sides.
  for (const std::string& key : {"p\xff"s, "q"s, "pa"s, "p"s, "p\x00"s, "o\xff"s, "p\x80"s,
                                 "p\xff\xff"s, "p\x00\x01"s, ""s, "P"s, "p\x7f"s}) {
    batch.Put("ns", key, "v:" + key);
  }
  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  Rows rows = ScanRows(this->store(), "ns", "p");

  std::vector<std::string> keys;
  for (const auto& [key, value] : rows) {
    EXPECT_EQ(value, "v:" + key);
    keys.push_back(key);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"p"s, "p\x00"s, "p\x00\x01"s, "pa"s, "p\x7f"s,
                                            "p\x80"s, "p\xff"s, "p\xff\xff"s}));
}

TYPED_TEST_P(StateStoreContract, ScanWithAllFfPrefixVisitsOnlyItsKeys) {
  using std::string_literals::operator""s;
  StateWriteBatch batch;
  for (const std::string& key : {"\xfe\xff"s, "\xff"s, "\xff\x00"s, "\xff\xff"s, "\xff\xff\x01"s}) {
    batch.Put("ns", key, "v");
  }
  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  Rows ff = ScanRows(this->store(), "ns", "\xff\xff"s);
  Rows single = ScanRows(this->store(), "ns", "\xff"s);

  ASSERT_EQ(ff.size(), 2u);
  EXPECT_EQ(ff[0].first, "\xff\xff"s);
  EXPECT_EQ(ff[1].first, "\xff\xff\x01"s);
  ASSERT_EQ(single.size(), 4u);
  EXPECT_EQ(single[0].first, "\xff"s);
  EXPECT_EQ(single[3].first, "\xff\xff\x01"s);
}

TYPED_TEST_P(StateStoreContract, ScanWithEmptyPrefixVisitsWholeNamespaceOnly) {
  StateWriteBatch batch;
  batch.Put("a", "2", "x");
  batch.Put("a", "1", "y");
  batch.Put("b", "0", "z");
  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  EXPECT_EQ(ScanRows(this->store(), "a", ""), (Rows{{"1", "y"}, {"2", "x"}}));
}

TYPED_TEST_P(StateStoreContract, ScanStopsWhenVisitorReturnsFalse) {
  StateWriteBatch batch;
  for (char c = 'a'; c <= 'j'; ++c) batch.Put("ns", std::string(1, c), "v");
  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  std::vector<std::string> seen;
  Status status = this->store().Scan("ns", "", [&](std::string_view key, std::string_view) {
    seen.emplace_back(key);
    return seen.size() < 3;
  });

  EXPECT_TRUE(IsOk(status));
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c"}));
}

TYPED_TEST_P(StateStoreContract, ScanOfUnknownNamespaceVisitsNothing) {
  StateWriteBatch batch;
  batch.Put("known", "k", "v");
  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  EXPECT_TRUE(ScanRows(this->store(), "unknown", "").empty());
  EXPECT_TRUE(ScanRows(this->store(), "unknown", "k").empty());
}

TYPED_TEST_P(StateStoreContract, ScanVisitorMayReadTheStore) {
  StateWriteBatch batch;
  batch.Put("ns", "a", "1");
  batch.Put("ns", "b", "2");
  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  std::vector<std::optional<std::string>> reread;
  Status status = this->store().Scan("ns", "", [&](std::string_view key, std::string_view) {
    reread.push_back(ValueAt(this->store(), "ns", key));
    return true;
  });

  EXPECT_TRUE(IsOk(status));
  EXPECT_EQ(reread, (std::vector<std::optional<std::string>>{"1", "2"}));
}

TYPED_TEST_P(StateStoreContract, SnapshotDoesNotSeeLaterCommits) {
  StateWriteBatch first;
  first.Put("volumes", "k", "old");
  first.Put("volumes", "gone", "g");
  ASSERT_TRUE(IsOk(this->store().Commit(first, "cp1")));
  Result<std::unique_ptr<StateView>> snapshot = this->store().Snapshot();
  ASSERT_TRUE(IsOk(snapshot.status()));

  StateWriteBatch second;
  second.Put("volumes", "k", "new");
  second.Put("volumes", "added", "a");
  second.Delete("volumes", "gone");
  second.Put("new_ns", "k", "v");
  ASSERT_TRUE(IsOk(this->store().Commit(second, "cp2")));

  const StateView& old_view = **snapshot;
  EXPECT_EQ(ValueAt(old_view, "volumes", "k"), "old");
  EXPECT_EQ(ValueAt(old_view, "volumes", "added"), std::nullopt);
  EXPECT_EQ(ValueAt(old_view, "new_ns", "k"), std::nullopt);
  EXPECT_EQ(ScanRows(old_view, "volumes", ""), (Rows{{"gone", "g"}, {"k", "old"}}));
  EXPECT_TRUE(ScanRows(old_view, "new_ns", "").empty());
  EXPECT_EQ(ValueAt(this->store(), "volumes", "k"), "new");
  EXPECT_EQ(ValueAt(this->store(), "new_ns", "k"), "v");
  EXPECT_EQ(ScanRows(this->store(), "volumes", ""), (Rows{{"added", "a"}, {"k", "new"}}));
}

TYPED_TEST_P(StateStoreContract, KeysAndValuesWithNulBytesSurvive) {
  const std::string key("k\0ey", 4);
  const std::string value("\0va\0lue\0", 8);
  StateWriteBatch batch;
  batch.Put("ns", key, value);
  batch.Put("ns", "k", "short");
  const std::string checkpoint("cp\0blob", 7);
  ASSERT_TRUE(IsOk(this->store().Commit(batch, checkpoint)));

  EXPECT_EQ(ValueAt(this->store(), "ns", key), value);
  EXPECT_EQ(ValueAt(this->store(), "ns", "k"), "short");
  EXPECT_EQ(CheckpointOf(this->store()), checkpoint);
}

TYPED_TEST_P(StateStoreContract, LargeValueSurvives) {
  std::string value(size_t{1} << 20, '\0');
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>(i * 7919 % 251);
  StateWriteBatch batch;
  batch.Put("ns", "big", value);

  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  std::optional<std::string> read = ValueAt(this->store(), "ns", "big");
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->size(), value.size());
  EXPECT_TRUE(*read == value);  // not EXPECT_EQ: a failure would print 2 MiB
}

TYPED_TEST_P(StateStoreContract, StatsCountCommittedKeys) {
  StateWriteBatch batch;
  for (int i = 0; i < 100; ++i) batch.Put("ns", "key" + std::to_string(i), "value");

  ASSERT_TRUE(IsOk(this->store().Commit(batch, "cp1")));

  // RocksDB gives estimates: bounds loose enough for those, tight enough to
  // catch a count of nothing or of everything twice.
  StateStoreStats stats = this->store().Stats();
  EXPECT_GE(stats.keys, 1u);
  EXPECT_LE(stats.keys, 150u);
  EXPECT_GE(stats.bytes, 1u);
}

REGISTER_TYPED_TEST_SUITE_P(StateStoreContract, FreshStoreIsEmptyAndHasNoCheckpoint,
                            CommittedPutIsReadBack, EmptyValueIsStoredNotDeleted,
                            DeleteRemovesCommittedKey, DeleteOfMissingKeyInNewNamespaceCommits,
                            SecondPutOfKeyKeepsLastValue, MutationsInOneBatchApplyInOrder,
                            EmptyBatchStillSetsCheckpoint,
                            InvalidNamespaceRejectsWholeBatchAndKeepsCheckpoint,
                            ReservedNamespaceShowsNoStoreMetadata, NamespacesAreIsolated,
                            ScanVisitsPrefixedKeysInBytewiseOrder,
                            ScanWithAllFfPrefixVisitsOnlyItsKeys,
                            ScanWithEmptyPrefixVisitsWholeNamespaceOnly,
                            ScanStopsWhenVisitorReturnsFalse, ScanOfUnknownNamespaceVisitsNothing,
                            ScanVisitorMayReadTheStore, SnapshotDoesNotSeeLaterCommits,
                            KeysAndValuesWithNulBytesSurvive, LargeValueSurvives,
                            StatsCountCommittedKeys);

// Durability: only for factories with kDurable.
template <typename Factory>
class DurableStateStoreContract : public StateStoreContract<Factory> {
 protected:
  static_assert(Factory::kDurable, "instantiate DurableStateStoreContract for durable stores only");

  // Closes the store and opens it again from what it persisted.
  void Reopen() {
    this->store_.reset();
    this->store_ = this->factory_.Reopen();
    ASSERT_NE(this->store_, nullptr);
  }
};

TYPED_TEST_SUITE_P(DurableStateStoreContract);

TYPED_TEST_P(DurableStateStoreContract, ReopenOfFreshStoreIsEmpty) {
  ASSERT_NO_FATAL_FAILURE(this->Reopen());

  EXPECT_EQ(CheckpointOf(this->store()), "");
  EXPECT_TRUE(ScanRows(this->store(), "volumes", "").empty());
}

TYPED_TEST_P(DurableStateStoreContract, ReopenRestoresLastCommittedStateAndCheckpoint) {
  StateWriteBatch first;
  first.Put("volumes", "a", "1");
  first.Put("volumes", "b", "2");
  first.Put("prices", "p", "9");
  ASSERT_TRUE(IsOk(this->store().Commit(first, "cp1")));
  StateWriteBatch last;
  last.Put("volumes", "a", "1b");
  last.Delete("volumes", "b");
  last.Delete("prices", "p");
  last.Put("created_last", std::string("k\0", 2), std::string("v\0", 2));
  ASSERT_TRUE(IsOk(this->store().Commit(last, "cp2")));

  ASSERT_NO_FATAL_FAILURE(this->Reopen());

  EXPECT_EQ(CheckpointOf(this->store()), "cp2");
  EXPECT_EQ(ScanRows(this->store(), "volumes", ""), (Rows{{"a", "1b"}}));
  EXPECT_TRUE(ScanRows(this->store(), "prices", "").empty());
  EXPECT_EQ(ScanRows(this->store(), "created_last", ""),
            (Rows{{std::string("k\0", 2), std::string("v\0", 2)}}));
}

TYPED_TEST_P(DurableStateStoreContract, ReopenAfterRejectedCommitShowsOnlyEarlierCommit) {
  StateWriteBatch good;
  good.Put("volumes", "k", "v");
  ASSERT_TRUE(IsOk(this->store().Commit(good, "cp1")));
  StateWriteBatch bad;
  bad.Put("volumes", "k", "overwritten");
  bad.Put("fresh_ns", "k", "v");
  bad.Put("Bad", "k", "v");
  ASSERT_EQ(this->store().Commit(bad, "cp2").code(), StatusCode::kInvalidArgument);

  ASSERT_NO_FATAL_FAILURE(this->Reopen());

  EXPECT_EQ(CheckpointOf(this->store()), "cp1");
  EXPECT_EQ(ValueAt(this->store(), "volumes", "k"), "v");
  EXPECT_TRUE(ScanRows(this->store(), "fresh_ns", "").empty());
}

TYPED_TEST_P(DurableStateStoreContract, CommitsAfterReopenExtendReopenedState) {
  StateWriteBatch first;
  first.Put("volumes", "a", "1");
  ASSERT_TRUE(IsOk(this->store().Commit(first, "cp1")));
  ASSERT_NO_FATAL_FAILURE(this->Reopen());

  StateWriteBatch second;
  second.Put("volumes", "b", "2");
  ASSERT_TRUE(IsOk(this->store().Commit(second, "cp2")));
  ASSERT_NO_FATAL_FAILURE(this->Reopen());

  EXPECT_EQ(CheckpointOf(this->store()), "cp2");
  EXPECT_EQ(ScanRows(this->store(), "volumes", ""), (Rows{{"a", "1"}, {"b", "2"}}));
}

REGISTER_TYPED_TEST_SUITE_P(DurableStateStoreContract, ReopenOfFreshStoreIsEmpty,
                            ReopenRestoresLastCommittedStateAndCheckpoint,
                            ReopenAfterRejectedCommitShowsOnlyEarlierCommit,
                            CommitsAfterReopenExtendReopenedState);

}  // namespace shortfall::operators::contract

#endif  // SHORTFALL_TESTS_OPERATORS_STATE_STORE_CONTRACT_TEST_H_
