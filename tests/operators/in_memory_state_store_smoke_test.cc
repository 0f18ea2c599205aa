#include "operators/in_memory_state_store.h"

#include <gtest/gtest.h>

TEST(InMemoryStateStoreSmoke, CommitsAndReads) {
  shortfall::operators::InMemoryStateStore store;
  shortfall::operators::StateWriteBatch b;
  b.Put("volumes", "k", "v");
  ASSERT_TRUE(store.Commit(b, "cp").ok());
  EXPECT_EQ(**store.Get("volumes", "k"), "v");
}
