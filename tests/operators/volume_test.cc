#include "operators/volume.h"

#include <gtest/gtest.h>

#include <cmath>

#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

TEST(DwellSums, KeyedByCorridorCodeTheSameInEveryProcess) {
  EXPECT_EQ(DwellKey("MX-US-2304"), DwellKey(std::string("MX-US-") + "2304"));
  EXPECT_NE(DwellKey("MX-US-2304"), DwellKey("MX-US-2402"));
  EXPECT_EQ(DwellKey(""), 2166136261u) << "FNV-1a 32 offset basis";
}

TEST(DwellSums, SampleIsLogOfSecondsPlusAMinute) {
  const PriceSum s = DwellSample(7, 2 * kMsPerHour);
  EXPECT_EQ(s.key, 7u);
  EXPECT_EQ(s.lines, 1u);
  EXPECT_EQ(s.log_sum, ToFixed(std::log(7260.0), kLogPriceScale));
  EXPECT_EQ(s.log_sq_sum, ToFixed(std::log(7260.0) * std::log(7260.0), kLogPriceScale));
  EXPECT_EQ(DwellSample(7, 0).log_sum, ToFixed(std::log(60.0), kLogPriceScale)) << "a zero dwell has a finite log";
}

TEST(DwellSums, AddSubtractAndSurviveTheStoredForm) {
  VolumeDelta a;
  a.AddDwell(DwellSample(DwellKey("MX-US-2304"), 40 * kMsPerMinute));
  a.AddDwell(DwellSample(DwellKey("CA-US-3801"), 10 * kMsPerMinute));
  a.AddDwell(DwellSample(DwellKey("MX-US-2304"), 3 * kMsPerHour));
  ASSERT_EQ(a.dwell.size(), 2u);
  EXPECT_LT(a.dwell[0].key, a.dwell[1].key) << "sorted by key";
  EXPECT_TRUE(a.prices.empty()) << "dwell is apart from unit prices";

  VolumeDelta window;
  window.Add(a);
  VolumeDelta detroit;
  detroit.AddDwell(DwellSample(DwellKey("CA-US-3801"), 10 * kMsPerMinute));
  window.Subtract(detroit);
  ASSERT_EQ(window.dwell.size(), 1u) << "Detroit has no samples left";
  EXPECT_EQ(window.dwell[0].key, DwellKey("MX-US-2304"));
  EXPECT_EQ(window.dwell[0].lines, 2u);

  internal::VolumeBucketState state;
  ToState(a, &state);
  EXPECT_EQ(state.dwell_size(), 2);
  EXPECT_EQ(FromState(state), a);
}

}  // namespace
}  // namespace shortfall::operators
