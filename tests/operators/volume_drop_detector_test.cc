#include "operators/volume_drop_detector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "operators/alert_lifecycle.h"
#include "operators/in_memory_state_store.h"
#include "operators/volume_aggregator.h"
#include "tests/operators/restore_equivalence.h"
#include "tests/operators/detector_chain.h"
#include "tests/operators/weekly_series.h"

namespace shortfall::operators {
namespace {

constexpr DurationMs kHour = kMsPerHour;
constexpr DurationMs kDay = kMsPerDay;
constexpr DurationMs kWeek = 7 * kDay;
using testing::kMonday;
using testing::Rng;
using testing::WeeklyMean;
const std::vector<std::string> kGroups = {"semiconductors", "unclassified"};
constexpr std::string_view kLaredo = "MX-US-2304";
constexpr std::string_view kDetroit = "CA-US-3801";
constexpr std::string_view kAll = "*";

struct Flow {
  std::string_view corridor;
  double weekday_daily = 1000;
  std::function<double(TimestampMs)> factor = [](TimestampMs) { return 1.0; };
};

struct Arrivals {
  TimestampMs hour;
  std::string_view corridor;
  VolumeDelta volume;
};

// Hourly arrivals of every flow over [from, to), Poisson around the weekly
// pattern times the flow's factor; about 500 kg and 2,000 USD a shipment.
std::vector<Arrivals> Generate(const std::vector<Flow>& flows, TimestampMs from, TimestampMs to,
                               uint64_t seed = 42) {
  Rng rng(seed);
  std::vector<Arrivals> out;
  for (TimestampMs t = from; t < to; t += kHour) {
    for (const Flow& f : flows) {
      const uint64_t n = rng.Poisson(WeeklyMean(t, f.weekday_daily) * f.factor(t));
      Arrivals& a = out.emplace_back(Arrivals{t, f.corridor, {}});
      a.volume.shipments = n;
      const double shipments = static_cast<double>(n);
      a.volume.gross_weight = ToFixed(shipments * 500 * (0.9 + 0.2 * rng.Uniform()), kWeightScale);
      a.volume.declared_value = ToFixed(shipments * 2000 * (0.9 + 0.2 * rng.Uniform()), kValueScale);
    }
  }
  return out;
}

using testing::DescribeSignal;

// The operator chain of one task: aggregator -> detector -> lifecycle, with
// everything each step produced kept for the test to look at.
class Chain : public testing::DetectorChain<VolumeDropDetector> {
 public:
  explicit Chain(VolumeDropOptions options = {}, std::vector<VolumeDropOverride> overrides = {})
      : DetectorChain(kGroups, options, std::move(overrides)) {}

  // Feeds arrivals[from, to), closing each hour once the next begins.
  void Feed(const std::vector<Arrivals>& arrivals, size_t from = 0, size_t to = SIZE_MAX) {
    to = std::min(to, arrivals.size());
    for (size_t i = from; i < to; ++i) {
      const Arrivals& a = arrivals[i];
      const CorridorId corridor = *corridors_.InternCode(a.corridor);
      if (a.volume.shipments > 0) {  // an hour without arrivals has no events
        ASSERT_TRUE(aggregator_.Add(0, corridor, a.hour + 30 * kMsPerMinute, a.volume));
      }
      if (i + 1 == arrivals.size() || arrivals[i + 1].hour != a.hour) Close(a.hour + kHour);
    }
  }

  // Keeps each report and the detector's reading after it, too.
  void Close(TimestampMs watermark) {
    std::vector<WindowReport> reports;
    aggregator_.AdvanceTo(watermark, &reports);
    for (const WindowReport& r : reports) {
      reports_.push_back(r);
      const size_t before = signals_.size();
      detector_.Observe(r, &signals_);
      readings_.push_back(detector_.Reading(r.series));
      ApplyFrom(before);
    }
  }

  SeriesKey Series(std::string_view corridor) { return SeriesKey{0, *corridors_.InternCode(corridor)}; }

  std::vector<WindowReport> reports_;
  std::vector<std::optional<VolumeDropReading>> readings_;  // right after each of reports_
};

// A factor of `level` over [from, from + length), 1 elsewhere.
std::function<double(TimestampMs)> Step(TimestampMs from, DurationMs length, double level) {
  return [=](TimestampMs t) { return t >= from && t < from + length ? level : 1.0; };
}

// Four full weeks of history, then the event starts on a Wednesday at midnight.
const TimestampMs kEventStart = kMonday + 30 * kDay;

TEST(VolumeDropOptions, ValidationNamesTheField) {
  const WindowOptions windows;
  EXPECT_TRUE(VolumeDropOptions().Validate(windows).ok());
  VolumeDropOptions o;
  o.window = 12 * kHour;
  EXPECT_EQ(o.Validate(windows),
            InvalidArgumentError("volume_drop.window: 12h is not one of the rolling windows (24h, 7d)"));
  o = {};
  o.min_history_weeks = 5;
  EXPECT_NE(o.Validate(windows).message().find("volume_drop.min_history_weeks"), std::string::npos);
  o = {};
  o.baseline_weeks = 13;
  EXPECT_NE(o.Validate(windows).message().find("volume_drop.baseline_weeks"), std::string::npos);
  o = {};
  o.relative_floor = 0;
  EXPECT_NE(o.Validate(windows).message().find("volume_drop.relative_floor"), std::string::npos);
  o = {};
  o.cusum_threshold = -1;
  EXPECT_NE(o.Validate(windows).message().find("volume_drop.cusum_threshold"), std::string::npos);
  WindowOptions minutes;
  minutes.bucket = kMsPerMinute;
  EXPECT_NE(VolumeDropOptions().Validate(minutes).message().find("40320 slots"), std::string::npos)
      << VolumeDropOptions().Validate(minutes).message();
}

TEST(VolumeDropOverride, ValidationNamesTheOverrideAndField) {
  EXPECT_TRUE(ValidateVolumeDropOverrides({VolumeDropOverride{}}, kGroups).ok());
  VolumeDropOverride chip;
  chip.group = "chip";
  EXPECT_EQ(ValidateVolumeDropOverrides({VolumeDropOverride{}, chip}, kGroups),
            InvalidArgumentError("volume_drop.overrides[1].group: 'chip' is not a commodity group"));
  VolumeDropOverride corridor;
  corridor.corridor = "Laredo";
  EXPECT_NE(ValidateVolumeDropOverrides({corridor}, kGroups).message().find("overrides[0].corridor"),
            std::string::npos);
  VolumeDropOverride threshold;
  threshold.cusum_threshold = 0;
  EXPECT_NE(ValidateVolumeDropOverrides({threshold}, kGroups).message().find("overrides[0].cusum_threshold"),
            std::string::npos);
}

TEST(VolumeDropDetector, EvaluatesNothingUntilTwoWeeksOfHistoryExist) {
  // Given two weeks of a corridor that falls by 60% on day 8
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 1000, Step(kMonday + 8 * kDay, kWeek, 0.4)}}, kMonday, kMonday + 2 * kWeek);
  Chain chain;
  // When the first two weeks close
  chain.Feed(arrivals);
  // Then there is no signal, hence no alert, and no expectation yet
  EXPECT_TRUE(chain.signals_.empty());
  EXPECT_TRUE(chain.alerts_.empty());
  EXPECT_FALSE(chain.detector_.ExpectedShipments(chain.Series(kLaredo)).has_value());
  // And the next hour, with two lagged weeks, is evaluated on both series
  chain.Feed(Generate({{kLaredo, 1000, Step(kMonday, 3 * kWeek, 0.4)}}, kMonday + 2 * kWeek,
                      kMonday + 2 * kWeek + kHour));
  ASSERT_EQ(chain.signals_.size(), 2u);
  EXPECT_EQ(chain.signals_[0].evidence.baseline_history_seconds(), 2 * 7 * 86400);
  EXPECT_TRUE(chain.detector_.ExpectedShipments(chain.Series(kLaredo)).has_value());
}

TEST(VolumeDropDetector, ASustainedSixtyPercentDropFiresWithin48HoursAndTurnsCritical) {
  // Given four quiet weeks on two corridors, then Laredo falls by 60% for good
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 1000, Step(kEventStart, 30 * kDay, 0.4)}, {kDetroit, 1000}}, kMonday,
               kEventStart + 3 * kDay);
  Chain chain;
  // When it all closes
  chain.Feed(arrivals);
  // Then nothing fires before the drop, and Laredo fires within 48 hours
  const Signal* first_firing = nullptr;
  double peak_before = 0;
  for (const Signal* s : chain.SignalsFor(kLaredo)) {
    if (s->window_end <= kEventStart) peak_before = std::max(peak_before, s->evidence.statistic_value());
    if (s->firing && first_firing == nullptr) first_firing = s;
  }
  ASSERT_NE(first_firing, nullptr);
  const double hours = static_cast<double>(first_firing->window_end - kEventStart) / kHour;
  RecordProperty("hours_to_fire", std::to_string(hours));
  std::printf("[ tuning   ] 60%% drop: fires %.0f h after it starts (S %.2f, observed/expected %.2f); "
              "peak S over the two quiet weeks before: %.2f\n",
              hours, first_firing->evidence.statistic_value(),
              first_firing->evidence.observed() / first_firing->evidence.expected(), peak_before);
  EXPECT_GT(first_firing->window_end, kEventStart);
  EXPECT_LE(hours, 48);
  EXPECT_LT(peak_before, 2.0);
  // And the alert opens there and reaches CRITICAL
  const std::vector<const v1::ShortageAlert*> alerts = chain.AlertsFor("2304");
  ASSERT_FALSE(alerts.empty());
  EXPECT_EQ(alerts[0]->state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(alerts[0]->opened_at().seconds() * 1000, first_firing->window_end);
  EXPECT_EQ(alerts.back()->severity(), v1::SEVERITY_CRITICAL);
  EXPECT_EQ(alerts.back()->evidence().statistic(), "cusum");
  EXPECT_LT(alerts.back()->evidence().observed(), 0.6 * alerts.back()->evidence().expected());
  // And the healthy corridor stays quiet
  EXPECT_TRUE(chain.AlertsFor("3801").empty());
  for (const Signal* s : chain.SignalsFor(kDetroit)) EXPECT_FALSE(s->firing) << DescribeSignal(*s);
}

TEST(VolumeDropDetector, AOneDayDipOfFortyPercentDoesNotFire) {
  // Given a corridor that loses 40% for one day, then returns to normal
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 1000, Step(kEventStart, kDay, 0.6)}}, kMonday, kEventStart + 5 * kDay);
  Chain chain;
  // When it all closes
  chain.Feed(arrivals);
  // Then the CUSUM rises but stays under its threshold, and nothing opens
  double peak = 0;
  TimestampMs peak_at = 0;
  for (const Signal* s : chain.SignalsFor(kLaredo)) {
    EXPECT_FALSE(s->firing) << DescribeSignal(*s);
    if (s->evidence.statistic_value() > peak) {
      peak = s->evidence.statistic_value();
      peak_at = s->window_end;
    }
  }
  std::printf("[ tuning   ] one-day 40%% dip: peak S %.2f (threshold %.1f) %.0f h after it starts\n", peak,
              VolumeDropOptions().cusum_threshold, static_cast<double>(peak_at - kEventStart) / kHour);
  RecordProperty("dip_peak_cusum", std::to_string(peak));
  EXPECT_GT(peak, 1.0) << "the dip is seen";
  // With a margin below the default threshold: other seeds peak up to 4.1.
  EXPECT_LT(peak, 4.0);
  EXPECT_TRUE(chain.alerts_.empty());
  // And the series is back to recovered once the dip has left the window
  ASSERT_FALSE(chain.SignalsFor(kLaredo).empty());
  EXPECT_TRUE(chain.SignalsFor(kLaredo).back()->recovered);
}

TEST(VolumeDropDetector, ASurgeInDemandNeverFires) {
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 1000, Step(kEventStart, 3 * kDay, 3.0)}}, kMonday, kEventStart + 5 * kDay);
  Chain chain;
  chain.Feed(arrivals);
  double peak_during = 0;
  for (const Signal* s : chain.SignalsFor(kLaredo)) {
    EXPECT_FALSE(s->firing) << DescribeSignal(*s);
    if (s->window_end > kEventStart) peak_during = std::max(peak_during, s->evidence.statistic_value());
  }
  EXPECT_EQ(peak_during, 0.0);
  EXPECT_TRUE(chain.alerts_.empty());
}

TEST(VolumeDropDetector, AThinSeriesNeverFiresEvenWhenItStops) {
  // Given a corridor with 2 shipments a weekday that stops entirely, next to a busy one
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 2, Step(kEventStart, 30 * kDay, 0.0)}, {kDetroit, 1000}}, kMonday,
               kEventStart + 5 * kDay);
  Chain chain;
  chain.Feed(arrivals);
  // Then the thin corridor is never evaluated, and nothing alerts
  EXPECT_TRUE(chain.SignalsFor(kLaredo).empty());
  EXPECT_FALSE(chain.SignalsFor(kAll).empty());
  EXPECT_TRUE(chain.alerts_.empty());
  const std::optional<double> expected = chain.detector_.ExpectedShipments(chain.Series(kLaredo));
  ASSERT_TRUE(expected.has_value()) << "warmed up, only too thin";
  EXPECT_LT(*expected, 5);
}

TEST(VolumeDropDetector, ExpectedShipmentsFollowTheWeeklyBaseline) {
  const std::vector<Arrivals> arrivals = Generate({{kLaredo, 1000}}, kMonday, kEventStart);
  Chain chain;
  chain.Feed(arrivals);
  // kEventStart is a Wednesday midnight: the window is all of Tuesday, 1,000 expected
  const std::optional<double> expected = chain.detector_.ExpectedShipments(chain.Series(kLaredo));
  ASSERT_TRUE(expected.has_value());
  EXPECT_NEAR(*expected, 1000, 60);
}

TEST(VolumeDropDetector, TheReadingIsWhatTheTestUsedAtEachClose) {
  // Given four quiet weeks, then Laredo falls by 60% for three days
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 1000, Step(kEventStart, 30 * kDay, 0.4)}}, kMonday, kEventStart + 3 * kDay);
  VolumeDropOptions options;
  options.cusum_threshold = 4;
  Chain chain(options);
  // When it all closes, with the reading taken right after each report
  chain.Feed(arrivals);
  ASSERT_EQ(chain.readings_.size(), chain.reports_.size());
  const SeriesKey laredo = chain.Series(kLaredo);
  size_t checked = 0;
  size_t warming = 0;
  bool fired = false;
  for (size_t i = 0; i < chain.reports_.size(); ++i) {
    const WindowReport& r = chain.reports_[i];
    if (!(r.series == laredo)) continue;
    const std::optional<VolumeDropReading>& reading = chain.readings_[i];
    ASSERT_TRUE(reading.has_value());
    EXPECT_EQ(reading->bucket_end, r.bucket_end);
    EXPECT_EQ(reading->threshold, 4);
    if (!reading->expected) {
      EXPECT_FALSE(reading->evaluated);
      ++warming;
      continue;
    }
    // Then it matches that close's signal: the same expectation and S, and
    // "recovered" exactly when observed is at or above expected + recover_z x scale
    const auto signal = std::find_if(chain.signals_.begin(), chain.signals_.end(), [&](const Signal& s) {
      return s.corridor == kLaredo && s.window_end == r.bucket_end;
    });
    ASSERT_NE(signal, chain.signals_.end());
    ASSERT_TRUE(reading->evaluated);
    EXPECT_EQ(*reading->expected, signal->evidence.expected());
    EXPECT_EQ(reading->cusum, signal->evidence.statistic_value());
    EXPECT_GE(reading->scale, 0.1 * *reading->expected);
    const double observed = static_cast<double>(r.rolling[0].shipments);
    EXPECT_EQ(signal->recovered, observed >= *reading->expected + options.recover_z * reading->scale)
        << "at " << FormatUtc(r.bucket_end);
    fired = fired || signal->firing;
    ++checked;
  }
  EXPECT_EQ(warming, 2u * 7 * 24) << "two weeks of warm-up";
  EXPECT_GT(checked, 300u);
  EXPECT_TRUE(fired);
}

TEST(VolumeDropDetector, AThinOrUnwatchedSeriesReadsAsNotEvaluated) {
  // Given a thin corridor of 2 shipments a weekday, and unclassified goods (not watched)
  const std::vector<Arrivals> arrivals = Generate({{kLaredo, 2}, {kDetroit, 1000}}, kMonday, kEventStart);
  Chain chain;
  chain.Feed(arrivals);
  // Then the thin one has an expectation but was not tested
  const std::optional<VolumeDropReading> thin = chain.detector_.Reading(chain.Series(kLaredo));
  ASSERT_TRUE(thin.has_value());
  ASSERT_TRUE(thin->expected.has_value());
  EXPECT_FALSE(thin->evaluated);
  EXPECT_EQ(thin->scale, 0);
  // And a busy one was
  const std::optional<VolumeDropReading> busy = chain.detector_.Reading(chain.Series(kDetroit));
  ASSERT_TRUE(busy.has_value());
  EXPECT_TRUE(busy->evaluated);
  // And a series never seen, or not watched, has no reading
  std::vector<Signal> ignored;
  WindowReport unclassified = chain.reports_.back();
  unclassified.series.group = 1;
  unclassified.bucket_end += kHour;
  chain.detector_.Observe(unclassified, &ignored);
  EXPECT_FALSE(chain.detector_.Reading(unclassified.series).has_value());
  EXPECT_FALSE(chain.detector_.Reading(SeriesKey{0, *chain.corridors_.InternCode("US-CA-CAWND")}).has_value());
}

TEST(VolumeDropDetector, AnOverrideTunesOneCorridor) {
  // Given Laredo switched off, and the group total given a threshold it cannot reach
  VolumeDropOverride off;
  off.corridor = kLaredo;
  off.enabled = false;
  VolumeDropOverride deaf;
  deaf.group = "semiconductors";
  deaf.cusum_threshold = 1000;
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 1000, Step(kEventStart, 30 * kDay, 0.0)}}, kMonday, kEventStart + 3 * kDay);
  Chain chain({}, {off, deaf});
  // When Laredo stops
  chain.Feed(arrivals);
  // Then Laredo is not watched and the total does not fire
  EXPECT_TRUE(chain.SignalsFor(kLaredo).empty());
  ASSERT_FALSE(chain.SignalsFor(kAll).empty());
  EXPECT_EQ(chain.SignalsFor(kAll).back()->evidence.threshold(), 1000);
  EXPECT_TRUE(chain.alerts_.empty());
}

TEST(VolumeDropDetector, AFlowThatStopsFiresCriticalAndResolvesWhenItComesBack) {
  // Given Laredo stopping for three days, then flowing normally again for four
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 1000, Step(kEventStart, 3 * kDay, 0.0)}}, kMonday, kEventStart + 7 * kDay);
  Chain chain;
  chain.Feed(arrivals);
  // Then one alert opens CRITICAL and resolves, under one id
  const std::vector<const v1::ShortageAlert*> alerts = chain.AlertsFor("2304");
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_EQ(alerts[0]->state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(alerts[0]->severity(), v1::SEVERITY_CRITICAL);
  EXPECT_EQ(alerts[1]->state(), v1::ALERT_STATE_RESOLVED);
  EXPECT_EQ(alerts[1]->alert_id(), alerts[0]->alert_id());
  EXPECT_EQ(alerts[1]->revision(), 2u);
  std::printf("[ tuning   ] flow stops for 3 days: opens %.0f h after, resolves %.0f h after it returns\n",
              static_cast<double>(alerts[0]->opened_at().seconds() * 1000 - kEventStart) / kHour,
              static_cast<double>(alerts[1]->window_end().seconds() * 1000 - kEventStart - 3 * kDay) /
                  kHour);
}

TEST(VolumeDropDetector, ADropLastingThreeWeeksStaysOpenUntilTheFlowReturns) {
  // Given Laredo at a third of its flow for three weeks (more than half of
  // the four baseline weeks), then back to normal for ten days (after three
  // weeks only one clean baseline week is left, so the drop level then
  // counts: by design a drop longer than two weeks becomes the new normal)
  const TimestampMs back = kEventStart + 3 * kWeek;
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 1000, Step(kEventStart, 3 * kWeek, 0.33)}}, kMonday, back + 10 * kDay);
  Chain chain;
  // When the drop is thirteen days old (a Tuesday: about 1,000 a day normally)
  const TimestampMs tuesday = kEventStart + 13 * kDay;
  size_t split = 0;
  while (arrivals[split].hour < tuesday) ++split;
  chain.Feed(arrivals, 0, split);
  // Then the baseline is still the level before the drop, not the drop's
  const std::optional<double> expected = chain.detector_.ExpectedShipments(chain.Series(kLaredo));
  ASSERT_TRUE(expected.has_value());
  EXPECT_GT(*expected, 800.0);
  chain.Feed(arrivals, split);
  // And the alert opened in the first days and resolves only after the flow
  // is back: the drop weeks never become the baseline it is judged against
  const std::vector<const v1::ShortageAlert*> alerts = chain.AlertsFor("2304");
  ASSERT_GE(alerts.size(), 2u);
  EXPECT_EQ(alerts[0]->state(), v1::ALERT_STATE_OPEN);
  EXPECT_LT(alerts[0]->opened_at().seconds() * 1000, kEventStart + 3 * kDay);
  for (size_t i = 1; i < alerts.size(); ++i) {
    if (alerts[i]->state() == v1::ALERT_STATE_RESOLVED) {
      EXPECT_GT(alerts[i]->window_end().seconds() * 1000, back) << "resolved during the drop";
    }
  }
  EXPECT_EQ(alerts.back()->state(), v1::ALERT_STATE_RESOLVED);
}

TEST(VolumeDropDetector, UnclassifiedGoodsAreWatchedOnlyWhenAnOverrideNamesThem) {
  // Given a big unclassified flow through Laredo that stops for three days
  WindowOptions windows;
  const auto run = [&](std::vector<VolumeDropOverride> overrides) {
    CorridorTable corridors;
    VolumeAggregator aggregator(windows, kGroups, &corridors);
    VolumeDropDetector detector(VolumeDropOptions{}, std::move(overrides), windows, kGroups, &corridors);
    const CorridorId laredo = *corridors.InternCode(kLaredo);
    std::vector<WindowReport> reports;
    std::vector<Signal> signals;
    for (const Arrivals& a :
         Generate({{kLaredo, 1000, Step(kEventStart, 3 * kDay, 0.0)}}, kMonday, kEventStart + 4 * kDay)) {
      if (a.volume.shipments > 0) {
        EXPECT_TRUE(aggregator.Add(1, laredo, a.hour, a.volume));  // group 1: unclassified
      }
      reports.clear();
      aggregator.AdvanceTo(a.hour + kHour, &reports);
      for (const WindowReport& r : reports) detector.Observe(r, &signals);
    }
    return signals;
  };
  // Then by default it raises no signal at all, not even with a "*" override
  VolumeDropOverride every_group;
  every_group.enabled = true;
  EXPECT_TRUE(run({}).empty());
  EXPECT_TRUE(run({every_group}).empty());
  // And an override naming the group switches it on: the stop fires
  VolumeDropOverride named;
  named.group = "unclassified";
  named.enabled = true;
  const std::vector<Signal> signals = run({named});
  EXPECT_TRUE(std::any_of(signals.begin(), signals.end(), [](const Signal& s) { return s.firing; }));
}

// The chain run uninterrupted, and run with commits every few hours and a
// restart into new objects (new corridor table too) at several points.
TEST(VolumeDropDetector, RestoringMidStreamGivesByteIdenticalAlertsToAnUninterruptedRun) {
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 2000, Step(kEventStart, 3 * kDay, 0.4)}, {kDetroit, 300}}, kMonday,
               kEventStart + 7 * kDay);
  Chain uninterrupted;
  uninterrupted.Feed(arrivals);
  ASSERT_GE(uninterrupted.AlertsFor("2304").size(), 2u) << "the stream should open and resolve";

  const size_t five_hours = 2 * 5;  // two flows an hour: a commit every 5 hours
  for (TimestampMs cut : {kMonday + 16 * kDay + 5 * kHour, kEventStart + 20 * kHour,
                          kEventStart + 40 * kHour, kEventStart + 4 * kDay + 7 * kHour}) {
    testing::ExpectRestoreMatchesUninterrupted(arrivals, cut, five_hours, uninterrupted);
  }
}

TEST(VolumeDropDetector, FlushWritesOneKeyPerSeriesAndDayOfCloses) {
  // Given a detector flushed after three weeks of one corridor (two series)
  const std::vector<Arrivals> arrivals = Generate({{kLaredo, 1000}}, kMonday, kMonday + 3 * kWeek + 3 * kHour);
  Chain chain;
  const size_t three_weeks = 3 * 7 * 24;
  chain.Feed(arrivals, 0, three_weeks);
  StateWriteBatch batch;
  chain.detector_.Flush(&batch);
  // (layout + the day-long chunks written so far: 21 days, over 22 chunks
  // as chunks follow the ring's slot numbering, not Monday midnight)
  EXPECT_EQ(batch.size(), 1 + 2 * 22u);
  // When one more hour closes
  batch.Clear();
  chain.Feed(arrivals, three_weeks, three_weeks + 1);
  chain.detector_.Flush(&batch);
  // Then one key per series is written: its chunk, at most a day of slots
  ASSERT_EQ(batch.size(), 2u);
  for (const StateMutation& m : batch.mutations()) {
    EXPECT_EQ(m.ns, "volume_drop");
    ASSERT_TRUE(m.value.has_value());
    EXPECT_LT(m.value->size(), 24 * 48u);
  }
  // And two more hours of that day rewrite the same chunk: still one key per series
  batch.Clear();
  chain.Feed(arrivals, three_weeks + 1);
  chain.detector_.Flush(&batch);
  EXPECT_EQ(batch.size(), 2u);
}

TEST(VolumeDropDetector, ASeriesSilentForLongerThanTheBaselineIsDropped) {
  // Given Laredo stopping after a week next to a busy Detroit, and state committed
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 1000, Step(kMonday + kWeek, 100 * kDay, 0.0)}, {kDetroit, 1000}}, kMonday,
               kMonday + 44 * kDay);
  const size_t day_20 = 20 * 24 * 2;  // two flows an hour
  InMemoryStateStore store;
  Chain chain;
  chain.Feed(arrivals, 0, day_20);
  chain.Flush(&store);
  const std::string laredo_prefix = std::string("semiconductors\0MX-US-2304\0", 26);
  const auto laredo_keys = [&] {
    size_t n = 0;
    EXPECT_TRUE(store.Scan("volume_drop", laredo_prefix, [&](std::string_view, std::string_view) {
      ++n;
      return true;
    }).ok());
    return n;
  };
  ASSERT_GT(laredo_keys(), 0u);
  ASSERT_EQ(chain.detector_.series_count(), 3u);
  // When more than four weeks pass after its last report (a week after it stopped)
  chain.Feed(arrivals, day_20);
  chain.Flush(&store);
  // Then its state is gone from memory and from the store
  EXPECT_EQ(chain.detector_.series_count(), 2u);
  EXPECT_EQ(laredo_keys(), 0u);
  EXPECT_FALSE(chain.detector_.ExpectedShipments(chain.Series(kLaredo)).has_value());
}

TEST(VolumeDropDetector, RestoreRefusesStateOfAnotherLayout) {
  // Given state written with four baseline weeks
  InMemoryStateStore store;
  {
    Chain chain;
    chain.Feed(Generate({{kLaredo, 1000}}, kMonday, kMonday + 2 * kDay));
    chain.Flush(&store);
  }
  // When a detector with two baseline weeks restores it
  VolumeDropOptions two;
  two.baseline_weeks = 2;
  Chain chain(two);
  const Status status = chain.detector_.Restore(store);
  // Then it is refused, naming both layouts, and the detector holds nothing
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("bucket=1h window=24h baseline_weeks=4"), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("bucket=1h window=24h baseline_weeks=2"), std::string::npos)
      << status.message();
  EXPECT_EQ(chain.detector_.series_count(), 0u);
}

TEST(VolumeDropDetector, UnreadableStateIsDataLoss) {
  InMemoryStateStore store;
  StateWriteBatch batch;
  batch.Put("volume_drop", "layout", "bucket=1h window=24h baseline_weeks=4 chunk=24");
  batch.Put("volume_drop", std::string("semiconductors\0*\0\0\0\0\1", 21), "\xff\xff");
  ASSERT_TRUE(store.Commit(batch, "").ok());
  Chain chain;
  EXPECT_EQ(chain.detector_.Restore(store).code(), StatusCode::kDataLoss);
  EXPECT_EQ(chain.detector_.series_count(), 0u);
}

TEST(VolumeDropDetector, ReportsOfDifferentSeriesMayComeInAnyOrder) {
  // Given the reports of three series (two corridors and the total), in order
  const std::vector<Arrivals> arrivals =
      Generate({{kLaredo, 1000, Step(kEventStart, 3 * kDay, 0.3)}, {kDetroit, 500}}, kMonday,
               kEventStart + 4 * kDay);
  Chain chain;
  chain.Feed(arrivals);
  std::vector<WindowReport> by_series = chain.reports_;
  // When another detector gets them one series after the other
  std::stable_sort(by_series.begin(), by_series.end(), [](const WindowReport& a, const WindowReport& b) {
    return a.series.corridor > b.series.corridor;
  });
  VolumeDropDetector other({}, {}, chain.windows_, kGroups, &chain.corridors_);
  std::vector<Signal> signals;
  for (const WindowReport& r : by_series) other.Observe(r, &signals);
  // Then each series gets the same signals as in order
  ASSERT_EQ(signals.size(), chain.signals_.size());
  for (std::string_view corridor : {kLaredo, kDetroit, kAll}) {
    std::vector<std::string> in_order, reordered;
    for (const Signal* s : chain.SignalsFor(corridor)) in_order.push_back(DescribeSignal(*s));
    for (const Signal& s : signals) {
      if (s.corridor == corridor) reordered.push_back(DescribeSignal(s));
    }
    EXPECT_EQ(reordered, in_order) << corridor;
  }
  EXPECT_FALSE(chain.AlertsFor("2304").empty());
}

}  // namespace
}  // namespace shortfall::operators
