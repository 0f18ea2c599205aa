#include "operators/shortage_detection.h"

#include <gtest/gtest.h>

#include "operators/in_memory_state_store.h"

#include <string>
#include <vector>

namespace shortfall::operators {
namespace {

constexpr DurationMs kHour = kMsPerHour;
constexpr DurationMs kDay = kMsPerDay;
const TimestampMs kMonday = *ParseUtc("2026-01-05T00:00:00Z");
const std::vector<std::string> kGroups = {"semiconductors", "unclassified"};

VolumeDelta Shipments(uint64_t n) {
  VolumeDelta v;
  v.shipments = n;
  return v;
}

// Three corridors of one group, steady (every hour the same count, so the
// baseline is exact), until `drop_at`; then Laredo loses most of its flow
// and El Paso a little.
struct ThreeCorridors {
  ThreeCorridors()
      : aggregator_(windows_, kGroups, &corridors_),
        detection_(DetectionOptions{}, windows_, kGroups, &corridors_) {}

  // Windows close every `close_every` (one Detect call each), as a runtime
  // that reads a backlog closes many hours at once.
  // weekly: Laredo carries 8 more an hour on weekdays, so the expected 24 h
  // volume changes hour by hour around each weekend.
  void Flow(TimestampMs drop_at, TimestampMs until, DurationMs close_every = kHour, bool weekly = false) {
    const CorridorId laredo = *corridors_.InternCode("MX-US-2304");
    const CorridorId el_paso = *corridors_.InternCode("MX-US-2402");
    const CorridorId detroit = *corridors_.InternCode("CA-US-3801");
    std::vector<WindowReport> reports;
    for (TimestampMs t = kMonday; t < until; t += kHour) {
      const bool dropped = t >= drop_at;
      const uint64_t extra = weekly && (t - kMonday) % (7 * kDay) < 5 * kDay ? 8 : 0;
      ASSERT_TRUE(aggregator_.Add(0, laredo, t, Shipments(dropped ? 2 : 10 + extra)));
      ASSERT_TRUE(aggregator_.Add(0, el_paso, t, Shipments(dropped ? 5 : 6)));
      ASSERT_TRUE(aggregator_.Add(0, detroit, t, Shipments(4)));
      if ((t + kHour - kMonday) % close_every != 0 && t + kHour < until) continue;
      reports.clear();
      aggregator_.AdvanceTo(t + kHour, &reports);
      detection_.Detect(reports, &alerts_);
    }
  }

  WindowOptions windows_;
  CorridorTable corridors_;
  VolumeAggregator aggregator_;
  ShortageDetection detection_;
  std::vector<v1::ShortageAlert> alerts_;
};

class GroupOfThree : public ::testing::Test, public ThreeCorridors {};

TEST_F(GroupOfThree, ADropOfTheGroupTotalNamesTheCorridorsThatMakeItUp) {
  // Given three weeks of steady flow, then Laredo down 80% and El Paso 17%
  const TimestampMs drop_at = kMonday + 21 * kDay;
  Flow(drop_at, drop_at + 4 * kDay);
  // Then the group total's alert names Laredo first, with its share of the
  // summed shortfall (8 of 9 shipments an hour), then El Paso; not Detroit
  const v1::ShortageAlert* total = nullptr;
  for (const v1::ShortageAlert& a : alerts_) {
    if (a.state() == v1::ALERT_STATE_OPEN && a.corridor().port_of_entry().empty()) total = &a;
  }
  ASSERT_NE(total, nullptr) << "no OPEN alert on the group total";
  const auto& top = total->evidence().top_contributors();
  ASSERT_EQ(top.size(), 2);
  EXPECT_EQ(top[0].corridor().port_of_entry(), "2304");
  EXPECT_NEAR(top[0].share(), 8.0 / 9.0, 1e-9);
  EXPECT_EQ(top[1].corridor().port_of_entry(), "2402");
  EXPECT_NEAR(top[1].share(), 1.0 / 9.0, 1e-9);
  // And corridor alerts name no contributors (they are their own)
  for (const v1::ShortageAlert& a : alerts_) {
    if (!a.corridor().port_of_entry().empty()) {
      EXPECT_EQ(a.evidence().top_contributors_size(), 0);
    }
  }
}

TEST(ShortageDetection, AlertsDoNotDependOnHowManyWindowsOneCallCloses) {
  // Given the same flow, whose expectations change hour by hour, closed an
  // hour at a time and a day at a time, with the drop on a Saturday
  const TimestampMs drop_at = kMonday + 26 * kDay;
  std::vector<std::string> per_hour;
  std::vector<std::string> per_day;
  for (auto [close_every, out] : {std::pair{kHour, &per_hour}, std::pair{kDay, &per_day}}) {
    ThreeCorridors probe;
    probe.Flow(drop_at, drop_at + 4 * kDay, close_every, /*weekly=*/true);
    for (const v1::ShortageAlert& a : probe.alerts_) out->push_back(a.SerializeAsString());
  }
  // Then every alert record is the same, evidence and contributors included
  ASSERT_FALSE(per_hour.empty());
  EXPECT_EQ(per_hour, per_day);
}

TEST(ShortageDetection, KeptReadingsFollowEachReportOfACallThatClosesManyWindows) {
  // Given readings kept, and windows closed six hours at a time
  ThreeCorridors probe;
  probe.detection_.KeepReadings(true);
  std::vector<WindowReport> reports;
  std::vector<v1::ShortageAlert> alerts;
  const CorridorId laredo = *probe.corridors_.InternCode("MX-US-2304");
  for (TimestampMs t = kMonday; t < kMonday + 15 * kDay; t += kHour) {
    ASSERT_TRUE(probe.aggregator_.Add(0, laredo, t, Shipments(10 + static_cast<uint64_t>((t / kHour) % 5))));
  }
  // When the last six hours close in one call
  probe.aggregator_.AdvanceTo(kMonday + 15 * kDay - 6 * kHour, &reports);
  probe.detection_.Detect(reports, &alerts);
  reports.clear();
  probe.aggregator_.AdvanceTo(kMonday + 15 * kDay, &reports);
  probe.detection_.Detect(reports, &alerts);
  // Then there is one reading per report, of that report's close, not the call's last
  ASSERT_EQ(reports.size(), 12u) << "Laredo and the total, six closes each";
  ASSERT_EQ(probe.detection_.readings().size(), reports.size());
  for (size_t i = 0; i < reports.size(); ++i) {
    const std::optional<VolumeDropReading>& r = probe.detection_.readings()[i];
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->bucket_end, reports[i].bucket_end);
    EXPECT_TRUE(r->evaluated);
  }
  // And none are kept when not asked for
  probe.detection_.KeepReadings(false);
  probe.detection_.Detect(reports, &alerts);
  EXPECT_TRUE(probe.detection_.readings().empty());
}

TEST_F(GroupOfThree, FlushAndRestoreCarryTheDetectorsAndTheLifecycle) {
  const TimestampMs drop_at = kMonday + 21 * kDay;
  Flow(drop_at, drop_at + 3 * kDay);
  ASSERT_GT(detection_.lifecycle().open_count(), 0u);
  InMemoryStateStore store;
  StateWriteBatch batch;
  aggregator_.Flush(&batch);
  detection_.Flush(&batch);
  ASSERT_TRUE(store.Commit(batch, "").ok());
  CorridorTable corridors;
  ShortageDetection restored(DetectionOptions{}, windows_, kGroups, &corridors);
  ASSERT_TRUE(restored.Restore(store).ok());
  EXPECT_EQ(restored.lifecycle().open_count(), detection_.lifecycle().open_count());
  const CorridorId laredo = *corridors.InternCode("MX-US-2304");
  EXPECT_EQ(restored.volume_drop().ExpectedShipments(SeriesKey{0, laredo}),
            detection_.volume_drop().ExpectedShipments(SeriesKey{0, *corridors_.InternCode("MX-US-2304")}));
  ASSERT_TRUE(detection_.origin_concentration().BaselineShare(0, "US").has_value());
  EXPECT_EQ(restored.origin_concentration().BaselineShare(0, "US"),
            detection_.origin_concentration().BaselineShare(0, "US"));
}

TEST(ShortageDetection, AShiftBetweenOriginsRaisesAnOriginConcentrationAlertOnTheDestination) {
  // Given three weeks of 80% from Mexico, then Canada's flow moving to Laredo
  WindowOptions windows;
  CorridorTable corridors;
  VolumeAggregator aggregator(windows, kGroups, &corridors);
  ShortageDetection detection(DetectionOptions{}, windows, kGroups, &corridors);
  const CorridorId laredo = *corridors.InternCode("MX-US-2304");
  const CorridorId detroit = *corridors.InternCode("CA-US-3801");
  const TimestampMs shift_at = kMonday + 22 * kDay;
  std::vector<WindowReport> reports;
  std::vector<v1::ShortageAlert> alerts;
  for (TimestampMs t = kMonday; t < shift_at + 4 * kDay; t += kHour) {
    ASSERT_TRUE(aggregator.Add(0, laredo, t, Shipments(t < shift_at ? 16 : 20)));
    if (t < shift_at) {
      ASSERT_TRUE(aggregator.Add(0, detroit, t, Shipments(4)));
    }
    reports.clear();
    aggregator.AdvanceTo(t + kHour, &reports);
    detection.Detect(reports, &alerts);
  }
  // Then one origin-concentration alert opens on imports into the US (and
  // Detroit, whose flow stopped, has its volume drop)
  std::vector<const v1::ShortageAlert*> origin;
  for (const v1::ShortageAlert& a : alerts) {
    if (a.kind() == v1::ALERT_KIND_ORIGIN_CONCENTRATION) {
      origin.push_back(&a);
    } else {
      EXPECT_EQ(a.kind(), v1::ALERT_KIND_VOLUME_DROP);
      EXPECT_EQ(a.corridor().port_of_entry(), "3801");
    }
  }
  ASSERT_EQ(origin.size(), 1u);
  EXPECT_EQ(origin[0]->state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(origin[0]->corridor().destination_country(), "US");
  EXPECT_TRUE(origin[0]->corridor().origin_country().empty());
  EXPECT_NEAR(origin[0]->evidence().expected(), 0.8, 1e-12);
}

}  // namespace
}  // namespace shortfall::operators
