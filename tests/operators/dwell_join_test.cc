#include "operators/dwell_join.h"

#include <gtest/gtest.h>

#include <cmath>

#include "operators/in_memory_state_store.h"

namespace shortfall::operators {
namespace {

constexpr DurationMs kHour = kMsPerHour;
constexpr DurationMs kDay = kMsPerDay;
const TimestampMs kMonday = *ParseUtc("2026-01-05T00:00:00Z");
const std::vector<std::string> kGroups = {"chips", "gloves", "unclassified"};
constexpr GroupId kChips = 0;
constexpr GroupId kGloves = 1;

class DwellJoinTest : public ::testing::Test {
 protected:
  DwellJoinTest()
      : laredo_(corridors_.Intern("MX", "US", "2304")),
        detroit_(corridors_.Intern("CA", "US", "3801")),
        aggregator_(WindowOptions{}, kGroups, &corridors_),
        join_(DwellJoinOptions{}, kGroups, &corridors_) {}

  void Offer(GroupId g, std::string_view id, DwellRole role, TimestampMs t, CorridorId c = kAllCorridors) {
    join_.Offer(g, id, role, t, c == kAllCorridors ? laredo_ : c, &aggregator_);
  }
  // Closes every bucket up to `t` and expires what the join may.
  void CloseUntil(TimestampMs t) {
    std::vector<WindowReport> reports;
    aggregator_.AdvanceTo(t, &reports);
    join_.Expire(aggregator_.closed_until());
  }
  // The dwell samples of a series' all-time total.
  std::vector<PriceSum> Dwell(GroupId g, CorridorId c) const {
    for (const SeriesSummary& s : aggregator_.Summaries()) {
      if (s.series.group == g && s.series.corridor == c) return s.total.dwell;
    }
    return {};
  }
  static double Seconds(const PriceSum& p) {
    return std::exp(static_cast<double>(p.log_sum) / kLogPriceScale / static_cast<double>(p.lines)) -
           kDwellOffsetSeconds;
  }

  CorridorTable corridors_;
  CorridorId laredo_, detroit_;
  VolumeAggregator aggregator_;
  DwellJoin join_;
};

TEST_F(DwellJoinTest, ArrivalThenReleaseAddsTheDwellToTheCorridorAndTheGroupTotal) {
  Offer(kChips, "SHP-1", DwellRole::kArrival, kMonday + 10 * kHour);
  EXPECT_EQ(join_.waiting(), 1u);
  Offer(kChips, "SHP-1", DwellRole::kRelease, kMonday + 12 * kHour + 30 * kMsPerMinute);
  EXPECT_EQ(join_.waiting(), 0u) << "a pair leaves nothing behind";
  EXPECT_EQ(join_.counters().joined, 1u);
  for (CorridorId c : {laredo_, kAllCorridors}) {
    const std::vector<PriceSum> d = Dwell(kChips, c);
    ASSERT_EQ(d.size(), 1u) << corridors_.Code(c);
    EXPECT_EQ(d[0].key, DwellKey("MX-US-2304"));
    EXPECT_EQ(d[0].lines, 1u);
    EXPECT_NEAR(Seconds(d[0]), 2.5 * 3600, 0.01);
  }
}

TEST_F(DwellJoinTest, ReleaseSeenFirstGivesTheSameSampleInTheLaterSidesBucket) {
  // Given the same shipment joined in both orders, by two joins
  Offer(kChips, "SHP-1", DwellRole::kArrival, kMonday + 10 * kHour);
  Offer(kChips, "SHP-1", DwellRole::kRelease, kMonday + 12 * kHour);
  CorridorTable corridors;
  const CorridorId laredo = corridors.Intern("MX", "US", "2304");
  VolumeAggregator aggregator(WindowOptions{}, kGroups, &corridors);
  DwellJoin reversed(DwellJoinOptions{}, kGroups, &corridors);
  reversed.Offer(kChips, "SHP-1", DwellRole::kRelease, kMonday + 12 * kHour, laredo, &aggregator);
  reversed.Offer(kChips, "SHP-1", DwellRole::kArrival, kMonday + 10 * kHour, laredo, &aggregator);
  // Then the totals agree, and the sample sits in the release's bucket (12:00), not the arrival's
  ASSERT_EQ(aggregator.Summaries().size(), aggregator_.Summaries().size());
  for (size_t i = 0; i < aggregator.Summaries().size(); ++i) {
    EXPECT_EQ(aggregator.Summaries()[i].total, aggregator_.Summaries()[i].total);
  }
  std::vector<WindowReport> reports;
  aggregator.AdvanceTo(kMonday + 13 * kHour, &reports);
  size_t samples = 0;
  for (const WindowReport& r : reports) {
    if (!r.bucket.dwell.empty()) {
      EXPECT_EQ(r.bucket_start, kMonday + 12 * kHour);
      ++samples;
    }
  }
  EXPECT_EQ(samples, 2u) << "the corridor and the group total";
}

TEST_F(DwellJoinTest, AShipmentOfTwoGroupsIsJoinedOncePerGroup) {
  for (GroupId g : {kChips, kGloves}) Offer(g, "SHP-1", DwellRole::kArrival, kMonday + kHour);
  Offer(kChips, "SHP-1", DwellRole::kRelease, kMonday + 2 * kHour);
  EXPECT_EQ(join_.waiting(), 1u) << "gloves still wait for their own release side";
  Offer(kGloves, "SHP-1", DwellRole::kRelease, kMonday + 2 * kHour);
  EXPECT_EQ(join_.counters().joined, 2u);
  EXPECT_EQ(Dwell(kChips, kAllCorridors).size(), 1u);
  EXPECT_EQ(Dwell(kGloves, kAllCorridors).size(), 1u);
}

TEST_F(DwellJoinTest, TheArrivalsCorridorGetsTheSampleAndTheGroupTotalKeepsCorridorsApart) {
  Offer(kChips, "A", DwellRole::kArrival, kMonday, laredo_);
  Offer(kChips, "A", DwellRole::kRelease, kMonday + kHour, detroit_);
  Offer(kChips, "B", DwellRole::kArrival, kMonday, detroit_);
  Offer(kChips, "B", DwellRole::kRelease, kMonday + kHour, detroit_);
  EXPECT_EQ(Dwell(kChips, laredo_).size(), 1u);
  EXPECT_EQ(Dwell(kChips, detroit_).size(), 1u);
  EXPECT_EQ(Dwell(kChips, kAllCorridors).size(), 2u) << "one entry per corridor key";
}

TEST_F(DwellJoinTest, NegativeDwellIsClampedToZeroAndCounted) {
  Offer(kChips, "SHP-1", DwellRole::kRelease, kMonday + kHour);
  Offer(kChips, "SHP-1", DwellRole::kArrival, kMonday + 2 * kHour);
  EXPECT_EQ(join_.counters().negative, 1u);
  EXPECT_EQ(join_.counters().joined, 1u);
  const std::vector<PriceSum> d = Dwell(kChips, laredo_);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NEAR(Seconds(d[0]), 0, 0.01);
}

TEST_F(DwellJoinTest, SidesFurtherApartThanTheBoundAreNotPaired) {
  Offer(kChips, "SHP-1", DwellRole::kArrival, kMonday);
  Offer(kChips, "SHP-1", DwellRole::kRelease, kMonday + 7 * kDay + kHour);
  EXPECT_EQ(join_.counters().out_of_bound, 1u);
  EXPECT_EQ(join_.counters().joined, 0u);
  EXPECT_EQ(join_.waiting(), 0u);
  EXPECT_TRUE(Dwell(kChips, laredo_).empty());
}

TEST_F(DwellJoinTest, ARepeatedSideIsIgnoredAndTheFirstWaitsOn) {
  Offer(kChips, "SHP-1", DwellRole::kArrival, kMonday);
  Offer(kChips, "SHP-1", DwellRole::kArrival, kMonday + kHour);
  EXPECT_EQ(join_.counters().repeated_sides, 1u);
  Offer(kChips, "SHP-1", DwellRole::kRelease, kMonday + 2 * kHour);
  const std::vector<PriceSum> d = Dwell(kChips, laredo_);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NEAR(Seconds(d[0]), 2 * 3600, 0.01) << "from the first arrival";
}

TEST_F(DwellJoinTest, AbandonedSidesExpireOnceNoPairCouldCountAndAreCounted) {
  // Given an arrival never released, and one released after expiry would have come
  Offer(kChips, "LOST", DwellRole::kArrival, kMonday);
  Offer(kChips, "KEPT", DwellRole::kArrival, kMonday + 2 * kDay);
  // When windows close to just past the bound of the first
  CloseUntil(kMonday + 7 * kDay);
  EXPECT_EQ(join_.waiting(), 2u) << "a pair at exactly the bound could still count";
  CloseUntil(kMonday + 7 * kDay + kHour);
  // Then only the first is gone
  EXPECT_EQ(join_.waiting(), 1u);
  EXPECT_EQ(join_.counters().expired, 1u);
  Offer(kChips, "KEPT", DwellRole::kRelease, kMonday + 7 * kDay + 2 * kHour);
  EXPECT_EQ(join_.counters().joined, 1u);
}

TEST_F(DwellJoinTest, ASideForAClosedBucketIsLateNotStored) {
  CloseUntil(kMonday + kDay);
  Offer(kChips, "SHP-1", DwellRole::kRelease, kMonday + 3 * kHour);
  EXPECT_EQ(join_.counters().late, 1u);
  EXPECT_EQ(join_.waiting(), 0u);
}

TEST_F(DwellJoinTest, RestoreGivesTheSameJoinAsGoingOn) {
  // Given sides waiting, one paired and one expired, flushed to a store
  InMemoryStateStore store;
  Offer(kChips, "A", DwellRole::kArrival, kMonday);
  Offer(kChips, "B", DwellRole::kRelease, kMonday + kHour);
  Offer(kGloves, "A", DwellRole::kArrival, kMonday + kHour, detroit_);
  StateWriteBatch batch;
  aggregator_.Flush(&batch);
  join_.Flush(&batch);
  ASSERT_TRUE(store.Commit(batch, "").ok());
  Offer(kChips, "A", DwellRole::kRelease, kMonday + 3 * kHour);  // pairs A: its key must go
  Offer(kChips, "C", DwellRole::kArrival, kMonday + 3 * kHour);
  batch.Clear();
  aggregator_.Flush(&batch);
  join_.Flush(&batch);
  ASSERT_TRUE(store.Commit(batch, "").ok());

  // When another join restores from the store
  CorridorTable corridors;
  VolumeAggregator aggregator(WindowOptions{}, kGroups, &corridors);
  DwellJoin restored(DwellJoinOptions{}, kGroups, &corridors);
  ASSERT_TRUE(aggregator.Restore(store).ok());
  ASSERT_TRUE(restored.Restore(store).ok());
  EXPECT_EQ(restored.waiting(), 3u) << "B, gloves A and C";
  EXPECT_EQ(restored.counters(), join_.counters());

  // Then both pair the rest alike
  const CorridorId laredo = *corridors.InternCode("MX-US-2304");
  const CorridorId detroit = *corridors.InternCode("CA-US-3801");
  restored.Offer(kChips, "B", DwellRole::kArrival, kMonday + 30 * kMsPerMinute, laredo, &aggregator);
  restored.Offer(kGloves, "A", DwellRole::kRelease, kMonday + 5 * kHour, detroit, &aggregator);
  Offer(kChips, "B", DwellRole::kArrival, kMonday + 30 * kMsPerMinute);
  Offer(kGloves, "A", DwellRole::kRelease, kMonday + 5 * kHour, detroit_);
  EXPECT_EQ(restored.counters(), join_.counters());
  ASSERT_EQ(aggregator.Summaries().size(), aggregator_.Summaries().size());
  for (size_t i = 0; i < aggregator.Summaries().size(); ++i) {
    EXPECT_EQ(aggregator.Summaries()[i].total, aggregator_.Summaries()[i].total);
  }
}

TEST_F(DwellJoinTest, FlushWritesOnlyTheSidesChangedSinceTheLastFlushEachOnce) {
  // Given a thousand sides waiting, flushed
  for (int i = 0; i < 1000; ++i) Offer(kChips, "W" + std::to_string(i), DwellRole::kArrival, kMonday);
  StateWriteBatch batch;
  join_.Flush(&batch);
  EXPECT_EQ(batch.size(), 1001u) << "the sides and the counters";
  // When one new side pairs before the next flush, another is added, paired
  // and added again, and one old side pairs
  Offer(kChips, "N1", DwellRole::kArrival, kMonday + kHour);
  Offer(kChips, "N1", DwellRole::kRelease, kMonday + 2 * kHour);
  Offer(kChips, "N2", DwellRole::kArrival, kMonday + kHour);
  Offer(kChips, "N2", DwellRole::kRelease, kMonday + 2 * kHour);
  Offer(kChips, "N2", DwellRole::kArrival, kMonday + 3 * kHour);
  Offer(kChips, "W7", DwellRole::kRelease, kMonday + 2 * kHour);
  batch.Clear();
  join_.Flush(&batch);
  // Then the batch deletes the old one, writes N2 once and the counters, nothing else
  std::vector<std::pair<std::string, bool>> written;  // key, put
  for (const StateMutation& m : batch.mutations()) written.emplace_back(m.key, m.value.has_value());
  const std::vector<std::pair<std::string, bool>> expected = {
      {std::string("chips\0W7", 8), false}, {std::string("chips\0N2", 8), true}, {"#counters", true}};
  EXPECT_EQ(written, expected);
  EXPECT_EQ(join_.waiting(), 1000u);
}

TEST_F(DwellJoinTest, RestoreRefusesAGroupTheCatalogLacks) {
  InMemoryStateStore store;
  Offer(kGloves, "A", DwellRole::kArrival, kMonday);
  StateWriteBatch batch;
  join_.Flush(&batch);
  ASSERT_TRUE(store.Commit(batch, "").ok());
  DwellJoin other(DwellJoinOptions{}, {"chips", "unclassified"}, &corridors_);
  const Status s = other.Restore(store);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(other.waiting(), 0u);
}

TEST(DwellJoinOptions, ValidationNamesTheField) {
  DwellJoinOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.time_bound = 0;
  EXPECT_EQ(o.Validate().message(), "dwell.time_bound: 0s (want 1h to 90d)");
}

}  // namespace
}  // namespace shortfall::operators
