#include "operators/source_watermarks.h"

#include <gtest/gtest.h>

#include "operators/in_memory_state_store.h"

namespace shortfall::operators {
namespace {

constexpr PartitionKey kS0{EventSource::kShipments, 0};
constexpr PartitionKey kS1{EventSource::kShipments, 1};
constexpr PartitionKey kC0{EventSource::kCustoms, 0};

TEST(SourceWatermarks, CombinedIsTheSlowestActiveSource) {
  SourceWatermarks w;
  EXPECT_EQ(w.Combined(), kMinTimestamp);
  w.Update(kS0, 100, false);
  w.Update(kS1, 40, false);
  EXPECT_EQ(w.Combined(), 40);
  w.Update(kS1, 30, false);  // never backwards
  EXPECT_EQ(w.Combined(), 40);
}

TEST(SourceWatermarks, AnExpectedSourceHoldsWindowsBackUntilItReports) {
  SourceWatermarks w;
  w.Expect(kS0);
  w.Expect(kC0);
  w.Update(kS0, 100, false);
  EXPECT_EQ(w.Combined(), kMinTimestamp);
  w.Update(kC0, 70, true);
  EXPECT_EQ(w.Combined(), 100);
}

TEST(SourceWatermarks, AnIdleSourceHoldsNothingBack) {
  SourceWatermarks w;
  w.Update(kS0, 100, false);
  w.Update(kS1, 40, true);
  EXPECT_EQ(w.Combined(), 100);
  w.Update(kS1, 45, false);  // it has data again
  EXPECT_EQ(w.Combined(), 45);
}

TEST(SourceWatermarks, WhenEverySourceIsIdleTheLargestCounts) {
  SourceWatermarks w;
  w.Update(kS0, 100, true);
  w.Update(kC0, 70, true);
  EXPECT_EQ(w.Combined(), 100);
}

TEST(SourceWatermarks, RestoresWhatWasFlushed) {
  SourceWatermarks w;
  w.Update(kS0, 100, false);
  w.Update(kC0, 70, true);
  InMemoryStateStore store;
  StateWriteBatch batch;
  w.Flush(&batch);
  ASSERT_TRUE(store.Commit(batch, "").ok());
  batch.Clear();
  w.Flush(&batch);
  EXPECT_TRUE(batch.empty());
  SourceWatermarks restored;
  ASSERT_TRUE(restored.Restore(store).ok());
  EXPECT_EQ(restored.source_count(), 2u);
  EXPECT_EQ(restored.Combined(), 100);
  restored.Update(kC0, 80, false);
  EXPECT_EQ(restored.Combined(), 80);
}

TEST(SourceWatermarks, RestoreRejectsCorruptEntries) {
  InMemoryStateStore store;
  StateWriteBatch batch;
  batch.Put("source_watermarks", "0:1", "garbage");
  ASSERT_TRUE(store.Commit(batch, "").ok());
  SourceWatermarks w;
  EXPECT_EQ(w.Restore(store).code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace shortfall::operators
