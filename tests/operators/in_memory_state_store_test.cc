#include "operators/in_memory_state_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/operators/state_store_contract_test.h"

namespace shortfall::operators {
namespace {

struct InMemoryStateStoreFactory {
  static constexpr bool kDurable = false;
  std::unique_ptr<StateStore> Open() { return std::make_unique<InMemoryStateStore>(); }
};

using contract::IsOk;

TEST(InMemoryStateStore, StatsCountKeysAndBytesExactly) {
  InMemoryStateStore store;
  StateWriteBatch batch;
  batch.Put("a", "k1", "value");  // 2 + 5 bytes
  batch.Put("a", "k2", "v");      // 2 + 1
  batch.Put("b", "k1", "");       // 2 + 0
  batch.Put("b", "gone", "x");
  batch.Delete("b", "gone");

  ASSERT_TRUE(IsOk(store.Commit(batch, "cp1")));

  StateStoreStats stats = store.Stats();
  EXPECT_EQ(stats.keys, 3u);
  EXPECT_EQ(stats.bytes, 12u);
}

}  // namespace

namespace contract {
INSTANTIATE_TYPED_TEST_SUITE_P(InMemory, StateStoreContract,
                               ::testing::Types<InMemoryStateStoreFactory>);
// Nothing in memory survives a reopen; RocksDbStateStore runs this suite.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(DurableStateStoreContract);
}  // namespace contract

}  // namespace shortfall::operators
