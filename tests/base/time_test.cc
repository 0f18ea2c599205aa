#include "base/time.h"

#include <gtest/gtest.h>

namespace shortfall {
namespace {

TEST(Time, FormatsAndParsesUtcRoundTrip) {
  const TimestampMs t = *ParseUtc("2026-03-02T14:05:09Z");
  EXPECT_EQ(FormatUtc(t), "2026-03-02T14:05:09Z");
  EXPECT_EQ(FormatUtc(t + 250), "2026-03-02T14:05:09.250Z");
  EXPECT_EQ(*ParseUtc("2026-03-02T14:05:09.25Z"), t + 250);
  EXPECT_EQ(*ParseUtc("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseUtc("2024-02-29"), *ParseUtc("2024-02-29T00:00:00Z"));
  EXPECT_EQ(FormatUtc(-1), "1969-12-31T23:59:59.999Z");
}

TEST(Time, RejectsMalformedTimes) {
  EXPECT_FALSE(ParseUtc("2026-13-01T00:00:00Z").ok());
  EXPECT_FALSE(ParseUtc("2026-03-02T14:05:09").ok());
  EXPECT_FALSE(ParseUtc("yesterday").ok());
  EXPECT_FALSE(ParseUtc("2026-02-31").ok());
  EXPECT_FALSE(ParseUtc("2026-02-29").ok());
  EXPECT_TRUE(ParseUtc("2028-02-29").ok());
  EXPECT_FALSE(ParseUtc("2026-03-02 14:05:09Z").ok());
}

TEST(Time, AlignDownFloorsNegativeTimesToo) {
  EXPECT_EQ(AlignDown(3 * kMsPerHour + 5, kMsPerHour), 3 * kMsPerHour);
  EXPECT_EQ(AlignDown(3 * kMsPerHour, kMsPerHour), 3 * kMsPerHour);
  EXPECT_EQ(AlignDown(-1, kMsPerHour), -kMsPerHour);
}

TEST(Time, ParsesAndFormatsDurations) {
  EXPECT_EQ(*ParseDuration("6h"), 6 * kMsPerHour);
  EXPECT_EQ(*ParseDuration("250ms"), 250);
  EXPECT_EQ(*ParseDuration("7d"), 7 * kMsPerDay);
  EXPECT_FALSE(ParseDuration("6 hours").ok());
  EXPECT_FALSE(ParseDuration("h").ok());
  EXPECT_EQ(FormatDuration(6 * kMsPerHour), "6h");
  EXPECT_EQ(FormatDuration(90 * kMsPerMinute), "90m");
  EXPECT_EQ(FormatDuration(1500), "1500ms");
  EXPECT_EQ(FormatDuration(kMsPerDay), "24h");
  EXPECT_EQ(FormatDuration(7 * kMsPerDay), "7d");
}

TEST(FakeClock, MovesOnlyWhenTold) {
  FakeClock clock(100);
  EXPECT_EQ(clock.NowMs(), 100);
  clock.Advance(50);
  EXPECT_EQ(clock.NowMs(), 150);
}

}  // namespace
}  // namespace shortfall
