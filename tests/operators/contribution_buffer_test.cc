#include "operators/contribution_buffer.h"

#include <gtest/gtest.h>

namespace shortfall::operators {
namespace {

VolumeDelta Shipments(uint64_t n) {
  VolumeDelta d;
  d.shipments = n;
  return d;
}

TEST(ContributionBuffer, CombinesPerSeriesAndBucketAndAlsoCountsTheGroupTotal) {
  // Given contributions on two corridors, three in the same bucket
  ContributionBuffer buffer(kMsPerHour);
  buffer.Add(0, 2, 10 * kMsPerMinute, Shipments(1));
  buffer.Add(0, 2, 50 * kMsPerMinute, Shipments(2));
  buffer.Add(0, 1, 30 * kMsPerMinute, Shipments(4));
  buffer.Add(0, 2, 70 * kMsPerMinute, Shipments(8));
  // When drained
  std::vector<ContributionBuffer::Entry> out;
  buffer.Drain(&out);
  // Then one partial sum per (series, bucket), in a fixed order, totals included
  ASSERT_EQ(out.size(), 5u);
  const auto is = [&](size_t i, CorridorId c, TimestampMs start, uint64_t n) {
    EXPECT_EQ(out[i].series.corridor, c) << i;
    EXPECT_EQ(out[i].bucket_start, start) << i;
    EXPECT_EQ(out[i].volume.shipments, n) << i;
  };
  is(0, kAllCorridors, 0, 7);
  is(1, kAllCorridors, kMsPerHour, 8);
  is(2, 1, 0, 4);
  is(3, 2, 0, 3);
  is(4, 2, kMsPerHour, 8);
  EXPECT_TRUE(buffer.empty());
}

TEST(ContributionBuffer, DrainAppendsAndLeavesTheBufferEmpty) {
  ContributionBuffer buffer(kMsPerHour);
  buffer.Add(3, kAllCorridors, 0, Shipments(1));
  std::vector<ContributionBuffer::Entry> out(2);
  buffer.Drain(&out);
  EXPECT_EQ(out.size(), 3u) << "one entry: the total series is not doubled";
  buffer.Drain(&out);
  EXPECT_EQ(out.size(), 3u);
}

TEST(ContributionBuffer, DwellMarkersRideWithTheirCorridorSeriesOnlyInOrder) {
  ContributionBuffer buffer(kMsPerHour);
  buffer.Add(0, 2, 10 * kMsPerMinute, Shipments(1));
  buffer.AddDwellMarker(0, 2, 10 * kMsPerMinute, DwellRole::kArrival, "B");
  buffer.AddDwellMarker(0, 2, 20 * kMsPerMinute, DwellRole::kRelease, "A");
  std::vector<ContributionBuffer::Entry> out;
  buffer.Drain(&out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].series.corridor, kAllCorridors);
  EXPECT_TRUE(out[0].markers.empty()) << "not on the group total";
  const std::vector<ContributionBuffer::Marker> want = {{"B", DwellRole::kArrival, 10 * kMsPerMinute},
                                                       {"A", DwellRole::kRelease, 20 * kMsPerMinute}};
  EXPECT_EQ(out[1].markers, want);
}

}  // namespace
}  // namespace shortfall::operators
