#include "operators/watermark.h"

#include <gtest/gtest.h>

#include "operators/in_memory_state_store.h"

namespace shortfall::operators {
namespace {

constexpr PartitionKey kP0{EventSource::kShipments, 0};
constexpr PartitionKey kP1{EventSource::kShipments, 1};
constexpr PartitionKey kC0{EventSource::kCustoms, 0};
constexpr DurationMs kLateness = 6 * kMsPerHour;

TEST(WatermarkTracker, PartitionWatermarkIsMaxEventTimeMinusLateness) {
  WatermarkTracker w(kLateness);
  EXPECT_EQ(w.Watermark(), kMinTimestamp);
  w.Admit(kP0, 10 * kMsPerHour);
  EXPECT_EQ(w.PartitionWatermark(kP0), 4 * kMsPerHour);
  EXPECT_EQ(w.Watermark(), 4 * kMsPerHour);
}

TEST(WatermarkTracker, NeverMovesBackwards) {
  WatermarkTracker w(kLateness);
  w.Admit(kP0, 10 * kMsPerHour);
  EXPECT_EQ(w.Admit(kP0, 8 * kMsPerHour), Admission::kOutOfOrder);
  EXPECT_EQ(w.PartitionWatermark(kP0), 4 * kMsPerHour);
}

TEST(WatermarkTracker, LateMeansOlderThanThePartitionWatermark) {
  WatermarkTracker w(kLateness);
  w.Admit(kP0, 10 * kMsPerHour);
  EXPECT_EQ(w.Admit(kP0, 4 * kMsPerHour - 1), Admission::kLate);       // one ms past it
  EXPECT_EQ(w.Admit(kP0, 4 * kMsPerHour), Admission::kOutOfOrder);     // exactly at the watermark
  EXPECT_EQ(w.Admit(kP1, kMsPerHour), Admission::kInOrder);            // its own watermark
}

TEST(WatermarkTracker, AdmitSortsEventsAndObservesAllButLateOnes) {
  WatermarkTracker w(kLateness);
  EXPECT_EQ(w.Admit(kP0, 10 * kMsPerHour), Admission::kInOrder);
  EXPECT_EQ(w.Admit(kP0, 10 * kMsPerHour), Admission::kInOrder);       // a tie is in order
  EXPECT_EQ(w.Admit(kP0, 4 * kMsPerHour), Admission::kOutOfOrder);     // at the watermark
  EXPECT_EQ(w.Admit(kP0, 4 * kMsPerHour - 1), Admission::kLate);
  EXPECT_EQ(w.Admit(kP0, 11 * kMsPerHour), Admission::kInOrder);
  EXPECT_EQ(w.PartitionWatermark(kP0), 5 * kMsPerHour);
  EXPECT_EQ(w.Admit(kP1, 0), Admission::kInOrder) << "a new partition starts its own watermark";
  EXPECT_EQ(w.Watermark(), -6 * kMsPerHour);
}

TEST(WatermarkTracker, CombinedWatermarkIsTheSlowestPartition) {
  WatermarkTracker w(kLateness);
  w.Admit(kP0, 20 * kMsPerHour);
  w.Admit(kC0, 12 * kMsPerHour);
  EXPECT_EQ(w.Watermark(), 6 * kMsPerHour);
  w.Admit(kC0, 30 * kMsPerHour);
  EXPECT_EQ(w.Watermark(), 14 * kMsPerHour);
}

TEST(WatermarkTracker, RestoresWhatWasFlushed) {
  WatermarkTracker w(kLateness);
  w.Admit(kP0, 20 * kMsPerHour);
  w.Admit(kC0, 12 * kMsPerHour);
  InMemoryStateStore store;
  StateWriteBatch batch;
  w.Flush(&batch);
  ASSERT_TRUE(store.Commit(batch, "").ok());
  batch.Clear();
  w.Flush(&batch);
  EXPECT_TRUE(batch.empty()) << "a second flush with no change writes nothing";

  WatermarkTracker restored(kLateness);
  ASSERT_TRUE(restored.Restore(store).ok());
  EXPECT_EQ(restored.Watermark(), 6 * kMsPerHour);
  EXPECT_EQ(restored.PartitionWatermark(kP0), 14 * kMsPerHour);
}

TEST(WatermarkTracker, RestoreRejectsCorruptEntries) {
  InMemoryStateStore store;
  StateWriteBatch batch;
  batch.Put("watermarks", "nonsense", "x");
  ASSERT_TRUE(store.Commit(batch, "").ok());
  WatermarkTracker w(kLateness);
  EXPECT_EQ(w.Restore(store).code(), StatusCode::kDataLoss);
}

TEST(WatermarkTracker, APartitionSilentForLongerThanIdleAfterHoldsNothingBackUntilItSendsAgain) {
  // Given two partitions, idleness after 1 h of stream time
  WatermarkTracker w(kLateness, kMsPerHour);
  w.Touch(kP0, 10 * kMsPerHour);
  ASSERT_EQ(w.Admit(kP0, 10 * kMsPerHour), Admission::kInOrder);
  w.Touch(kP1, 10 * kMsPerHour);
  ASSERT_EQ(w.Admit(kP1, 10 * kMsPerHour), Admission::kInOrder);
  // When P0 goes on for two more hours and P1 sends nothing
  w.Touch(kP0, 12 * kMsPerHour);
  ASSERT_EQ(w.Admit(kP0, 12 * kMsPerHour), Admission::kInOrder);
  // Then P1 is idle and P0 alone sets the watermark
  EXPECT_EQ(w.Watermark(), 12 * kMsPerHour - kLateness);
  // And when P1 sends again it holds windows back again
  w.Touch(kP1, 12 * kMsPerHour);
  EXPECT_EQ(w.Watermark(), 10 * kMsPerHour - kLateness);
  // And its newest record time survives a restore
  InMemoryStateStore store;
  StateWriteBatch batch;
  w.Flush(&batch);
  ASSERT_TRUE(store.Commit(batch, "").ok());
  WatermarkTracker restored(kLateness, kMsPerHour);
  ASSERT_TRUE(restored.Restore(store).ok());
  EXPECT_EQ(restored.Watermark(), w.Watermark());
}

TEST(WatermarkTracker, WithoutIdleAfterASilentPartitionHoldsWindowsBack) {
  WatermarkTracker w(kLateness);
  w.Touch(kP0, 10 * kMsPerHour);
  ASSERT_EQ(w.Admit(kP0, 10 * kMsPerHour), Admission::kInOrder);
  ASSERT_EQ(w.Admit(kP1, 10 * kMsPerHour), Admission::kInOrder);
  w.Touch(kP0, 40 * kMsPerHour);
  ASSERT_EQ(w.Admit(kP0, 40 * kMsPerHour), Admission::kInOrder);
  EXPECT_EQ(w.Watermark(), 10 * kMsPerHour - kLateness);
}

}  // namespace
}  // namespace shortfall::operators
