#include "bench/publish_watermarks.h"

#include <gtest/gtest.h>

#include <vector>

namespace shortfall::bench {
namespace {

using operators::EventSource;
using operators::PartitionKey;

constexpr PartitionKey kS0{EventSource::kShipments, 0};
constexpr PartitionKey kC0{EventSource::kCustoms, 0};
constexpr DurationMs kLateness = 6 * kMsPerHour;
constexpr TimestampMs kH = kMsPerHour;

TEST(PublishWatermarks, NothingClosesBeforeEveryExpectedPartitionHasAnEvent) {
  PublishWatermarks w(kLateness, {kS0, kC0});
  ASSERT_TRUE(w.Add(100, kS0, 20 * kH).ok());
  EXPECT_EQ(w.FirstPublishReaching(1 * kH), std::nullopt);
  EXPECT_EQ(w.watermark(), kMinTimestamp);
  ASSERT_TRUE(w.Add(200, kC0, 8 * kH).ok());
  // min(20h, 8h) - 6h = 2h, reached by the event published at 200.
  EXPECT_EQ(w.watermark(), 2 * kH);
  EXPECT_EQ(w.FirstPublishReaching(1 * kH), 200);
  EXPECT_EQ(w.FirstPublishReaching(2 * kH), 200);
  EXPECT_EQ(w.FirstPublishReaching(2 * kH + 1), std::nullopt);
}

TEST(PublishWatermarks, TheSlowestPartitionDecides) {
  PublishWatermarks w(kLateness, {kS0, kC0});
  ASSERT_TRUE(w.Add(100, kS0, 10 * kH).ok());
  ASSERT_TRUE(w.Add(200, kC0, 10 * kH).ok());  // 4h
  ASSERT_TRUE(w.Add(300, kS0, 30 * kH).ok());  // still 4h: customs is at 10h
  EXPECT_EQ(w.FirstPublishReaching(5 * kH), std::nullopt);
  ASSERT_TRUE(w.Add(400, kC0, 12 * kH).ok());  // 6h
  ASSERT_TRUE(w.Add(500, kC0, 40 * kH).ok());  // 24h
  EXPECT_EQ(w.FirstPublishReaching(4 * kH), 200);
  EXPECT_EQ(w.FirstPublishReaching(5 * kH), 400);
  EXPECT_EQ(w.FirstPublishReaching(6 * kH), 400);
  EXPECT_EQ(w.FirstPublishReaching(7 * kH), 500);
  EXPECT_EQ(w.FirstPublishReaching(24 * kH), 500);
  EXPECT_EQ(w.FirstPublishReaching(25 * kH), std::nullopt);
}

TEST(PublishWatermarks, OlderAndLateEventsMoveNothing) {
  PublishWatermarks w(kLateness, {kS0, kC0});
  ASSERT_TRUE(w.Add(100, kS0, 10 * kH).ok());
  ASSERT_TRUE(w.Add(100, kC0, 10 * kH).ok());  // 4h
  ASSERT_TRUE(w.Add(200, kS0, 9 * kH).ok());   // out of order
  ASSERT_TRUE(w.Add(300, kC0, 1 * kH).ok());   // late
  EXPECT_EQ(w.watermark(), 4 * kH);
  EXPECT_EQ(w.FirstPublishReaching(4 * kH), 100);
}

TEST(PublishWatermarks, RejectsEventsOutOfPublishOrderOrFromUnexpectedPartitions) {
  PublishWatermarks w(kLateness, {kS0});
  ASSERT_TRUE(w.Add(100, kS0, 10 * kH).ok());
  EXPECT_EQ(w.Add(99, kS0, 11 * kH).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.Add(200, kC0, 11 * kH).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.watermark(), 4 * kH);
}

TEST(NearestRank, IsAlwaysAMeasuredValue) {
  EXPECT_EQ(NearestRank({7}, 0.5), 7);
  EXPECT_EQ(NearestRank({7}, 0.99), 7);
  EXPECT_EQ(NearestRank({30, 10, 20}, 0.5), 20);
  EXPECT_EQ(NearestRank({30, 10, 20}, 0.99), 30);
  std::vector<int64_t> hundred;
  for (int64_t i = 100; i >= 1; --i) hundred.push_back(i);
  EXPECT_EQ(NearestRank(hundred, 0.5), 50);
  EXPECT_EQ(NearestRank(hundred, 0.99), 99);
  EXPECT_EQ(NearestRank(hundred, 1.0), 100);
}

}  // namespace
}  // namespace shortfall::bench
