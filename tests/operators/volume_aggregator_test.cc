#include "operators/volume_aggregator.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "operators/in_memory_state_store.h"

namespace shortfall::operators {
namespace {

constexpr DurationMs kHour = kMsPerHour;

VolumeDelta Shipments(uint64_t n, double kg = 0) {
  VolumeDelta d;
  d.shipments = n;
  d.gross_weight = ToFixed(kg, kWeightScale);
  return d;
}

class VolumeAggregatorTest : public ::testing::Test {
 protected:
  VolumeAggregatorTest() {
    options_.rolling = {3 * kHour, 6 * kHour};
    laredo_ = corridors_.Intern("MX", "US", "2304");
    detroit_ = corridors_.Intern("CA", "US", "3801");
  }
  VolumeAggregator Make() { return VolumeAggregator(options_, {"chips", "ppe", "unclassified"}, &corridors_); }

  const WindowReport* Find(const std::vector<WindowReport>& reports, TimestampMs end, GroupId g,
                           CorridorId c) {
    for (const WindowReport& r : reports) {
      if (r.bucket_end == end && r.series == SeriesKey{g, c}) return &r;
    }
    return nullptr;
  }

  WindowOptions options_;
  CorridorTable corridors_;
  CorridorId laredo_, detroit_;
  std::vector<WindowReport> reports_;
};

TEST_F(VolumeAggregatorTest, AnEventExactlyOnABoundaryBelongsToTheBucketItStarts) {
  VolumeAggregator a = Make();
  ASSERT_TRUE(a.Add(0, laredo_, 2 * kHour, Shipments(1)));       // starts bucket [2h, 3h)
  ASSERT_TRUE(a.Add(0, laredo_, 2 * kHour - 1, Shipments(10)));  // last ms of [1h, 2h)
  a.AdvanceTo(3 * kHour, &reports_);
  const WindowReport* b1 = Find(reports_, 2 * kHour, 0, laredo_);
  const WindowReport* b2 = Find(reports_, 3 * kHour, 0, laredo_);
  ASSERT_NE(b1, nullptr);
  ASSERT_NE(b2, nullptr);
  EXPECT_EQ(b1->bucket.shipments, 10u);
  EXPECT_EQ(b2->bucket.shipments, 1u);
  EXPECT_EQ(b2->bucket_start, 2 * kHour);
}

TEST_F(VolumeAggregatorTest, ABucketClosesOnlyWhenTheWatermarkReachesItsEnd) {
  VolumeAggregator a = Make();
  ASSERT_TRUE(a.Add(0, laredo_, kHour + 5, Shipments(1)));
  a.AdvanceTo(2 * kHour - 1, &reports_);
  EXPECT_TRUE(reports_.empty());
  EXPECT_FALSE(a.IsClosed(kHour));
  a.AdvanceTo(2 * kHour, &reports_);
  ASSERT_FALSE(reports_.empty());
  EXPECT_TRUE(a.IsClosed(2 * kHour - 1));
  EXPECT_FALSE(a.IsClosed(2 * kHour));
  EXPECT_EQ(a.closed_until(), 2 * kHour);
}

TEST_F(VolumeAggregatorTest, AddingToAClosedBucketIsRefusedAndChangesNothing) {
  VolumeAggregator a = Make();
  ASSERT_TRUE(a.Add(0, laredo_, kHour, Shipments(1)));
  a.AdvanceTo(2 * kHour, &reports_);
  EXPECT_FALSE(a.Add(0, laredo_, 2 * kHour - 1, Shipments(5)));
  EXPECT_EQ(a.Summaries()[1].total.shipments, 1u);
}

TEST_F(VolumeAggregatorTest, EveryEventAlsoCountsInTheGroupTotal) {
  VolumeAggregator a = Make();
  ASSERT_TRUE(a.Add(0, laredo_, 0, Shipments(2)));
  ASSERT_TRUE(a.Add(0, detroit_, 0, Shipments(3)));
  a.AdvanceTo(kHour, &reports_);
  const WindowReport* total = Find(reports_, kHour, 0, kAllCorridors);
  ASSERT_NE(total, nullptr);
  EXPECT_EQ(total->bucket.shipments, 5u);
}

TEST_F(VolumeAggregatorTest, RollingWindowsSumTheBucketsTheyCover) {
  VolumeAggregator a = Make();
  for (int h = 0; h < 8; ++h) ASSERT_TRUE(a.Add(0, laredo_, h * kHour, Shipments(uint64_t{1} << h)));
  a.AdvanceTo(8 * kHour, &reports_);
  const WindowReport* r = Find(reports_, 8 * kHour, 0, laredo_);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->rolling[0].shipments, 32u + 64 + 128);                // hours 5, 6, 7
  EXPECT_EQ(r->rolling[1].shipments, 4u + 8 + 16 + 32 + 64 + 128);   // hours 2..7
}

TEST_F(VolumeAggregatorTest, AStoppedFlowReportsZerosUntilItLeavesTheLongestWindow) {
  VolumeAggregator a = Make();
  ASSERT_TRUE(a.Add(0, laredo_, 0, Shipments(7)));
  a.AdvanceTo(10 * kHour, &reports_);
  for (int end = 1; end <= 6; ++end) {
    const WindowReport* r = Find(reports_, end * kHour, 0, laredo_);
    ASSERT_NE(r, nullptr) << "no report at hour " << end;
    EXPECT_EQ(r->rolling[1].shipments, 7u);
    EXPECT_EQ(r->rolling[0].shipments, end <= 3 ? 7u : 0u);
  }
  EXPECT_EQ(Find(reports_, 7 * kHour, 0, laredo_), nullptr);
  EXPECT_EQ(a.bucket_count(), 0u) << "expired buckets are dropped";
}

TEST_F(VolumeAggregatorTest, ReportsComeInBucketThenGroupThenCorridorOrder) {
  VolumeAggregator a = Make();
  ASSERT_TRUE(a.Add(1, laredo_, 0, Shipments(1)));
  ASSERT_TRUE(a.Add(0, laredo_, 0, Shipments(1)));
  ASSERT_TRUE(a.Add(0, detroit_, 0, Shipments(1)));
  a.AdvanceTo(2 * kHour, &reports_);
  std::vector<std::string> order;
  for (const WindowReport& r : reports_) {
    order.push_back(std::to_string(r.bucket_end / kHour) + " " + a.group_name(r.series.group) + " " +
                    corridors_.Code(r.series.corridor));
  }
  EXPECT_EQ(order, (std::vector<std::string>{
                       "1 chips *", "1 chips CA-US-3801", "1 chips MX-US-2304", "1 ppe *",
                       "1 ppe MX-US-2304", "2 chips *", "2 chips CA-US-3801", "2 chips MX-US-2304",
                       "2 ppe *", "2 ppe MX-US-2304"}));
}

TEST_F(VolumeAggregatorTest, SumsDoNotDependOnTheOrderContributionsArrive) {
  // Given amounts whose floating-point sum depends on order
  std::vector<VolumeDelta> deltas;
  for (double kg : {1e9, 0.001, -0.0, 3.3333, 7e-3, 123456.789}) {
    VolumeDelta d = Shipments(1, kg < 0 ? 0 : kg);
    d.declared_value = ToFixed(kg * 0.055, kValueScale);
    deltas.push_back(d);
  }
  // When two aggregators receive them in opposite orders
  VolumeAggregator a = Make(), b = Make();
  for (size_t i = 0; i < deltas.size(); ++i) {
    ASSERT_TRUE(a.Add(0, laredo_, 0, deltas[i]));
    ASSERT_TRUE(b.Add(0, laredo_, 0, deltas[deltas.size() - 1 - i]));
  }
  // Then every sum is identical, bit for bit
  const auto sa = a.Summaries(), sb = b.Summaries();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_EQ(sa[i].total, sb[i].total);
  std::vector<WindowReport> ra, rb;
  a.CloseAll(&ra);
  b.CloseAll(&rb);
  ASSERT_EQ(ra.size(), rb.size());
  for (size_t i = 0; i < ra.size(); ++i) EXPECT_EQ(ra[i].rolling, rb[i].rolling);
}

TEST_F(VolumeAggregatorTest, TotalsOutliveExpiredBuckets) {
  VolumeAggregator a = Make();
  ASSERT_TRUE(a.Add(0, laredo_, 0, Shipments(7, 1.5)));
  ASSERT_TRUE(a.Add(0, laredo_, 20 * kHour, Shipments(1)));
  a.CloseAll(&reports_);
  auto summaries = a.Summaries();
  ASSERT_EQ(summaries.size(), 2u);
  EXPECT_EQ(summaries[1].series, (SeriesKey{0, laredo_}));
  EXPECT_EQ(summaries[1].total.shipments, 8u);
  EXPECT_EQ(summaries[1].total.gross_weight_kg(), 1.5);
  EXPECT_EQ(a.closed_until(), 21 * kHour);
}

TEST_F(VolumeAggregatorTest, RestoreGivesTheSameFutureReports) {
  // Given an aggregator that flushed mid-stream
  VolumeAggregator a = Make();
  InMemoryStateStore store;
  for (int h = 0; h < 5; ++h) ASSERT_TRUE(a.Add(0, laredo_, h * kHour, Shipments(h + 1)));
  a.AdvanceTo(3 * kHour, &reports_);
  StateWriteBatch batch;
  a.Flush(&batch);
  ASSERT_TRUE(store.Commit(batch, "").ok());
  // When a fresh one restores, with its own corridor table, and both go on alike
  CorridorTable other_corridors;
  other_corridors.Intern("US", "CA", "0901");  // ids differ between tables; codes do not
  VolumeAggregator b(options_, {"chips", "ppe", "unclassified"}, &other_corridors);
  ASSERT_TRUE(b.Restore(store).ok());
  EXPECT_EQ(b.closed_until(), 3 * kHour);
  EXPECT_TRUE(b.IsClosed(3 * kHour - 1));
  std::vector<WindowReport> ra, rb;
  ASSERT_TRUE(a.Add(0, laredo_, 6 * kHour, Shipments(100)));
  ASSERT_TRUE(b.Add(0, *other_corridors.InternCode("MX-US-2304"), 6 * kHour, Shipments(100)));
  a.CloseAll(&ra);
  b.CloseAll(&rb);
  ASSERT_EQ(ra.size(), rb.size());
  for (size_t i = 0; i < ra.size(); ++i) {
    EXPECT_EQ(ra[i].bucket_end, rb[i].bucket_end);
    EXPECT_EQ(corridors_.Code(ra[i].series.corridor), other_corridors.Code(rb[i].series.corridor));
    EXPECT_EQ(ra[i].rolling[1], rb[i].rolling[1]);
  }
  EXPECT_EQ(a.Summaries()[1].total, b.Summaries()[1].total);
}

TEST_F(VolumeAggregatorTest, RestoreRefusesStateOfAGroupTheCatalogLacks) {
  VolumeAggregator a = Make();
  ASSERT_TRUE(a.Add(1, laredo_, 0, Shipments(1)));
  InMemoryStateStore store;
  StateWriteBatch batch;
  a.Flush(&batch);
  ASSERT_TRUE(store.Commit(batch, "").ok());
  VolumeAggregator b(options_, {"chips", "unclassified"}, &corridors_);
  Status s = b.Restore(store);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("'ppe'"), std::string::npos) << s.message();
}

TEST_F(VolumeAggregatorTest, RollingSumsMatchABruteForceSumUnderRandomTraffic) {
  // Given random contributions on two series, arriving up to 5 h out of order,
  // with gaps, and random watermark steps (some backwards)
  std::mt19937_64 rng(20261130);
  VolumeAggregator a = Make();
  std::map<std::pair<CorridorId, TimestampMs>, uint64_t> added;  // (corridor, bucket) -> shipments
  TimestampMs clock = 100 * kHour;
  std::vector<WindowReport> reports;
  for (int step = 0; step < 3000; ++step) {
    clock += static_cast<TimestampMs>(rng() % (kHour / 2));
    if (rng() % 50 == 0) clock += static_cast<TimestampMs>(rng() % (30 * kHour));  // a gap
    const TimestampMs t = clock - static_cast<TimestampMs>(rng() % (5 * kHour));
    const CorridorId c = rng() % 2 ? laredo_ : detroit_;
    const uint64_t n = 1 + rng() % 9;
    if (a.Add(0, c, t, Shipments(n))) added[{c, AlignDown(t, kHour)}] += n;
    const TimestampMs watermark = clock - 5 * kHour - static_cast<TimestampMs>(rng() % kHour);
    a.AdvanceTo(watermark, &reports);
  }
  a.CloseAll(&reports);
  // Then every reported window equals the sum of what went into its buckets
  ASSERT_GT(reports.size(), 500u);
  for (const WindowReport& r : reports) {
    if (r.series.corridor == kAllCorridors) continue;
    for (size_t w = 0; w < options_.rolling.size(); ++w) {
      uint64_t want = 0;
      for (auto it = added.lower_bound({r.series.corridor, r.bucket_end - options_.rolling[w]});
           it != added.end() && it->first.first == r.series.corridor && it->first.second < r.bucket_end;
           ++it) {
        want += it->second;
      }
      ASSERT_EQ(r.rolling[w].shipments, want)
          << "window " << w << " ending " << r.bucket_end / kHour << "h on " << corridors_.Code(r.series.corridor);
    }
  }
}

TEST(WindowOptions, RejectsWindowsThatAreNotBucketMultiples) {
  WindowOptions o;
  o.rolling = {90 * kMsPerMinute};
  EXPECT_EQ(o.Validate().message(), "window.rolling: 90m is not a positive multiple of the bucket 1h of at most 366d");
  o.rolling = {};
  EXPECT_FALSE(o.Validate().ok());
  o.rolling = {kHour};
  o.allowed_lateness = -1;
  EXPECT_FALSE(o.Validate().ok());
}

}  // namespace
}  // namespace shortfall::operators
