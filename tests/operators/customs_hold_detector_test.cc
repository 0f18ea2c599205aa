#include "operators/customs_hold_detector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
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
const std::vector<std::string> kGroups = {"ppe", "unclassified"};
constexpr std::string_view kLaredo = "MX-US-2304";
constexpr std::string_view kDetroit = "CA-US-3801";
constexpr std::string_view kAll = "*";
constexpr size_t kFiled = v1::CUSTOMS_STATUS_FILED;
constexpr size_t kHold = v1::CUSTOMS_STATUS_HOLD;
constexpr size_t kExam = v1::CUSTOMS_STATUS_EXAM_SELECTED;

using Factor = std::function<double(TimestampMs)>;
const Factor kOne = [](TimestampMs) { return 1.0; };

struct Flow {
  std::string_view corridor;
  double weekday_daily = 1000;  // filings (and arrivals) per weekday
  double inspection_rate = 0.07;  // PPE's rate in the scenario generator
  Factor volume = kOne;           // on filings
  Factor holds = kOne;            // on the inspection probability
};

struct Declarations {
  TimestampMs hour;
  std::string_view corridor;
  VolumeDelta volume;
};

// Hourly declarations of every flow over [from, to): Poisson filings around
// the weekly pattern; each filing inspected with the flow's rate, as the
// scenario generator does it: an inspected shipment is selected for an exam
// (55%), held (25%) or both (20%), so it counts once or twice in holds.
std::vector<Declarations> Generate(const std::vector<Flow>& flows, TimestampMs from, TimestampMs to,
                                   uint64_t seed = 42) {
  Rng rng(seed);
  std::vector<Declarations> out;
  for (TimestampMs t = from; t < to; t += kHour) {
    for (const Flow& f : flows) {
      const uint64_t filings = rng.Poisson(WeeklyMean(t, f.weekday_daily) * f.volume(t));
      Declarations& d = out.emplace_back(Declarations{t, f.corridor, {}});
      d.volume.shipments = filings;
      d.volume.customs[kFiled] = filings;
      const double rate = std::min(1.0, f.inspection_rate * f.holds(t));
      for (uint64_t i = 0; i < filings; ++i) {
        if (rng.Uniform() >= rate) continue;
        const double path = rng.Uniform();
        if (path < 0.55 || path >= 0.80) ++d.volume.customs[kExam];
        if (path >= 0.55) ++d.volume.customs[kHold];
      }
    }
  }
  return out;
}

using testing::DescribeSignal;

// aggregator -> detector -> lifecycle, keeping what each step produced.
class Chain : public testing::DetectorChain<CustomsHoldDetector> {
 public:
  explicit Chain(CustomsHoldOptions options = {}) : DetectorChain(kGroups, options) {}

  // Feeds declarations[from, to), closing each hour once the next begins.
  void Feed(const std::vector<Declarations>& declarations, size_t from = 0, size_t to = SIZE_MAX,
            GroupId group = 0) {
    to = std::min(to, declarations.size());
    for (size_t i = from; i < to; ++i) {
      const Declarations& d = declarations[i];
      const CorridorId corridor = *corridors_.InternCode(d.corridor);
      if (d.volume.shipments > 0) {
        ASSERT_TRUE(aggregator_.Add(group, corridor, d.hour + 30 * kMsPerMinute, d.volume));
      }
      if (i + 1 == declarations.size() || declarations[i + 1].hour != d.hour) Close(d.hour + kHour);
    }
  }

  SeriesKey Series(std::string_view corridor) { return SeriesKey{0, *corridors_.InternCode(corridor)}; }
};

Factor Step(TimestampMs from, DurationMs length, double level) {
  return [=](TimestampMs t) { return t >= from && t < from + length ? level : 1.0; };
}

// Four full weeks of history, then the event starts on a Wednesday at midnight.
const TimestampMs kEventStart = kMonday + 30 * kDay;

TEST(CustomsHoldOptions, ValidationNamesTheField) {
  const WindowOptions windows;
  EXPECT_TRUE(CustomsHoldOptions().Validate(windows).ok());
  CustomsHoldOptions o;
  o.window = 12 * kHour;
  EXPECT_EQ(o.Validate(windows),
            InvalidArgumentError("customs_hold.window: 12h is not one of the rolling windows (24h, 7d)"));
  const auto message = [&](const std::function<void(CustomsHoldOptions*)>& change) {
    CustomsHoldOptions bad;
    change(&bad);
    return bad.Validate(windows).message();
  };
  EXPECT_NE(message([](auto* b) { b->baseline_weeks = 13; }).find("customs_hold.baseline_weeks"), std::string::npos);
  EXPECT_NE(message([](auto* b) { b->min_history_weeks = 5; }).find("customs_hold.min_history_weeks"),
            std::string::npos);
  EXPECT_NE(message([](auto* b) { b->min_filings = -1; }).find("customs_hold.min_filings"), std::string::npos);
  EXPECT_NE(message([](auto* b) { b->overdispersion = -0.1; }).find("customs_hold.overdispersion"),
            std::string::npos);
  EXPECT_NE(message([](auto* b) { b->cusum_slack = NAN; }).find("customs_hold.cusum_slack"), std::string::npos);
  EXPECT_NE(message([](auto* b) { b->cusum_threshold = 0; }).find("customs_hold.cusum_threshold"),
            std::string::npos);
  EXPECT_NE(message([](auto* b) { b->recover_z = INFINITY; }).find("customs_hold.recover_z"), std::string::npos);
  EXPECT_NE(message([](auto* b) { b->min_ratio = 0.5; }).find("customs_hold.min_ratio"), std::string::npos);
}

TEST(CustomsHoldDetector, EvaluatesNothingUntilTwoWeeksOfHistoryExist) {
  // Given two weeks of a corridor whose holds rise five-fold on day 8
  const std::vector<Declarations> declarations =
      Generate({{kLaredo, 1000, 0.07, kOne, Step(kMonday + 8 * kDay, kWeek, 5)}}, kMonday, kMonday + 2 * kWeek);
  Chain chain;
  // When the first two weeks close
  chain.Feed(declarations);
  // Then there is no signal, hence no alert, and no baseline yet
  EXPECT_TRUE(chain.signals_.empty());
  EXPECT_TRUE(chain.alerts_.empty());
  EXPECT_FALSE(chain.detector_.BaselineRate(chain.Series(kLaredo)).has_value());
  // And the next hour, with two lagged weeks, is evaluated on both series
  chain.Feed(Generate({{kLaredo}}, kMonday + 2 * kWeek, kMonday + 2 * kWeek + kHour));
  ASSERT_EQ(chain.signals_.size(), 2u);
  EXPECT_EQ(chain.signals_[0].kind, v1::ALERT_KIND_CUSTOMS_HOLD_SPIKE);
  EXPECT_EQ(chain.signals_[0].evidence.baseline_history_seconds(), 2 * 7 * 86400);
  EXPECT_TRUE(chain.detector_.BaselineRate(chain.Series(kLaredo)).has_value());
}

TEST(CustomsHoldDetector, BaselineRateIsHoldsAndExamsPerFilingOfTheSameHoursOfPastWeeks) {
  // Given four weeks at a 7% inspection rate (1.2 holds and exams per inspection)
  Chain chain;
  chain.Feed(Generate({{kLaredo}}, kMonday, kEventStart));
  // Then the baseline is about 0.084 holds per filing
  const std::optional<double> p0 = chain.detector_.BaselineRate(chain.Series(kLaredo));
  ASSERT_TRUE(p0.has_value());
  EXPECT_NEAR(*p0, 0.084, 0.012);
}

TEST(CustomsHoldDetector, AFiveFoldHoldWaveFiresWithin48HoursAndTurnsCritical) {
  // Given four quiet weeks on two corridors, then Laredo holds five times as often for a week
  const std::vector<Declarations> declarations =
      Generate({{kLaredo, 1000, 0.07, kOne, Step(kEventStart, kWeek, 5)}, {kDetroit, 300, 0.035}}, kMonday,
               kEventStart + 3 * kDay);
  Chain chain;
  // When it all closes
  chain.Feed(declarations);
  // Then nothing fires before the wave, and Laredo fires within 48 hours
  const Signal* first_firing = nullptr;
  double peak_before = 0;
  for (const Signal* s : chain.SignalsFor(kLaredo)) {
    if (s->window_end <= kEventStart) peak_before = std::max(peak_before, s->evidence.statistic_value());
    if (s->firing && first_firing == nullptr) first_firing = s;
  }
  ASSERT_NE(first_firing, nullptr);
  const double hours = static_cast<double>(first_firing->window_end - kEventStart) / kHour;
  std::printf("[ tuning   ] 5x hold wave: fires %.0f h after it starts (S %.2f, rate %.3f vs %.3f); "
              "peak S over the two quiet weeks before: %.2f\n",
              hours, first_firing->evidence.statistic_value(), first_firing->evidence.observed(),
              first_firing->evidence.expected(), peak_before);
  EXPECT_GT(first_firing->window_end, kEventStart);
  EXPECT_LE(hours, 48);
  EXPECT_LT(peak_before, 2.5);
  // And the alert opens with the hold-rate evidence and reaches CRITICAL
  const std::vector<const v1::ShortageAlert*> alerts = chain.AlertsFor("2304");
  ASSERT_FALSE(alerts.empty());
  EXPECT_EQ(alerts[0]->state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(alerts[0]->kind(), v1::ALERT_KIND_CUSTOMS_HOLD_SPIKE);
  EXPECT_EQ(alerts[0]->opened_at().seconds() * 1000, first_firing->window_end);
  EXPECT_EQ(alerts.back()->severity(), v1::SEVERITY_CRITICAL);
  const v1::Evidence& e = alerts.back()->evidence();
  EXPECT_EQ(e.measure(), "hold_rate");
  EXPECT_EQ(e.statistic(), "cusum");
  EXPECT_EQ(e.threshold(), CustomsHoldOptions().cusum_threshold);
  EXPECT_EQ(e.baseline_history_seconds(), 4 * 7 * 86400);
  EXPECT_GT(e.observed(), 3 * e.expected());
  EXPECT_NEAR(e.expected(), 0.084, 0.015);
  // And the healthy corridor stays quiet
  EXPECT_TRUE(chain.AlertsFor("3801").empty());
  for (const Signal* s : chain.SignalsFor(kDetroit)) EXPECT_FALSE(s->firing) << DescribeSignal(*s);
}

TEST(CustomsHoldDetector, NormalNoiseNeverFiresOverSeveralSeeds) {
  // Given six weeks of unchanged inspection rates on a busy and a modest corridor, eight seeds
  double peak = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    Chain chain;
    chain.Feed(Generate({{kLaredo, 1000, 0.07}, {kDetroit, 150, 0.035}}, kMonday, kMonday + 6 * kWeek, seed));
    // Then no series ever fires
    ASSERT_FALSE(chain.signals_.empty());
    for (const Signal& s : chain.signals_) EXPECT_FALSE(s.firing) << "seed " << seed << ": " << DescribeSignal(s);
    EXPECT_TRUE(chain.alerts_.empty()) << "seed " << seed;
    peak = std::max(peak, chain.PeakStatistic());
  }
  // And the CUSUM stays well under its threshold
  std::printf("[ tuning   ] four weeks of normal noise, 8 seeds: peak S %.2f (threshold %.1f)\n", peak,
              CustomsHoldOptions().cusum_threshold);
  EXPECT_LT(peak, 0.7 * CustomsHoldOptions().cusum_threshold);
}

TEST(CustomsHoldDetector, AVolumeSurgeWithoutARateChangeDoesNotFire) {
  // Given filings tripling for three days at the same inspection rate
  const std::vector<Declarations> declarations =
      Generate({{kLaredo, 1000, 0.07, Step(kEventStart, 3 * kDay, 3.0)}}, kMonday, kEventStart + 5 * kDay);
  Chain chain;
  chain.Feed(declarations);
  // Then nothing fires: holds rise with filings, the rate does not
  for (const Signal* s : chain.SignalsFor(kLaredo)) EXPECT_FALSE(s->firing) << DescribeSignal(*s);
  EXPECT_TRUE(chain.alerts_.empty());
  EXPECT_LT(chain.PeakStatistic(), 2.5);
}

TEST(CustomsHoldDetector, AModestRiseInChecksDoesNotFireBelowTheRatioGuard) {
  // Given a busy corridor whose inspection rate rises by 60% for a week:
  // significant at these counts, but no doubling
  const std::vector<Declarations> declarations =
      Generate({{kLaredo, 3000, 0.07, kOne, Step(kEventStart, kWeek, 1.6)}}, kMonday, kEventStart + kWeek);
  Chain chain;
  chain.Feed(declarations);
  // Then the CUSUM passes its threshold, yet nothing fires
  EXPECT_GT(chain.PeakStatistic(), CustomsHoldOptions().cusum_threshold);
  for (const Signal& s : chain.signals_) EXPECT_FALSE(s.firing) << DescribeSignal(s);
  EXPECT_TRUE(chain.alerts_.empty());
}

TEST(CustomsHoldDetector, AThinSeriesNeverFiresEvenWhenEveryShipmentIsHeld) {
  // Given a corridor with 10 filings a weekday whose every shipment is held
  // from the event on, next to a busy one
  const std::vector<Declarations> declarations =
      Generate({{kLaredo, 10, 0.07, kOne, Step(kEventStart, 30 * kDay, 100)}, {kDetroit, 1000, 0.035}}, kMonday,
               kEventStart + 5 * kDay);
  Chain chain;
  chain.Feed(declarations);
  // Then the thin corridor is never evaluated, and nothing alerts
  EXPECT_TRUE(chain.SignalsFor(kLaredo).empty());
  EXPECT_FALSE(chain.SignalsFor(kDetroit).empty());
  EXPECT_TRUE(chain.alerts_.empty());
  EXPECT_TRUE(chain.detector_.BaselineRate(chain.Series(kLaredo)).has_value()) << "warmed up, only too thin";
}

TEST(CustomsHoldDetector, UnclassifiedGoodsAreNotWatched) {
  // Given a hold wave on goods outside the catalog
  Chain chain;
  chain.Feed(Generate({{kLaredo, 1000, 0.07, kOne, Step(kEventStart, kWeek, 5)}}, kMonday, kEventStart + 3 * kDay),
             0, SIZE_MAX, /*group=*/1);
  // Then it raises no signal at all
  EXPECT_TRUE(chain.signals_.empty());
}

TEST(CustomsHoldDetector, AWaveResolvesAfterItEndsAndNeverBecomesItsOwnBaseline) {
  // Given Laredo holding five times as often for two weeks, then back to normal
  const TimestampMs back = kEventStart + 2 * kWeek;
  const std::vector<Declarations> declarations =
      Generate({{kLaredo, 1000, 0.07, kOne, Step(kEventStart, 2 * kWeek, 5)}}, kMonday, back + 5 * kDay);
  Chain chain;
  size_t split = 0;
  while (declarations[split].hour < back - kDay) ++split;
  chain.Feed(declarations, 0, split);
  // When the wave is 13 days old, the baseline is still the rate before it
  const std::optional<double> p0 = chain.detector_.BaselineRate(chain.Series(kLaredo));
  ASSERT_TRUE(p0.has_value());
  EXPECT_LT(*p0, 0.11);
  chain.Feed(declarations, split);
  // Then one alert opened during the wave and resolved only after it ended
  const std::vector<const v1::ShortageAlert*> alerts = chain.AlertsFor("2304");
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_EQ(alerts[0]->state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(alerts[1]->state(), v1::ALERT_STATE_RESOLVED);
  EXPECT_EQ(alerts[1]->alert_id(), alerts[0]->alert_id());
  EXPECT_GT(alerts[1]->window_end().seconds() * 1000, back);
  std::printf("[ tuning   ] two-week 5x wave: resolves %.0f h after it ends\n",
              static_cast<double>(alerts[1]->window_end().seconds() * 1000 - back) / kHour);
}

// The chain run uninterrupted, and run with commits every few hours and a
// restart into new objects (new corridor table too) at several points. The
// stream runs on for more than a week after the wave, so the closes marked
// anomalous (some of them after they were first flushed) are read back.
TEST(CustomsHoldDetector, RestoringMidStreamGivesByteIdenticalAlertsToAnUninterruptedRun) {
  const std::vector<Declarations> declarations =
      Generate({{kLaredo, 1000, 0.07, kOne, Step(kEventStart, 3 * kDay, 6)}, {kDetroit, 300, 0.035}}, kMonday,
               kEventStart + 11 * kDay);
  Chain uninterrupted;
  uninterrupted.Feed(declarations);
  ASSERT_GE(uninterrupted.AlertsFor("2304").size(), 2u) << "the stream should open and resolve";

  const size_t five_hours = 2 * 5;  // two flows an hour: a commit every 5 hours
  for (TimestampMs cut : {kMonday + 16 * kDay + 5 * kHour, kEventStart + 20 * kHour, kEventStart + 40 * kHour,
                          kEventStart + 4 * kDay + 7 * kHour, kEventStart + 8 * kDay + 3 * kHour}) {
    testing::ExpectRestoreMatchesUninterrupted(declarations, cut, five_hours, uninterrupted);
  }
}

TEST(CustomsHoldDetector, FlushWritesOneKeyPerSeriesAndDayOfCloses) {
  // Given a detector flushed after three weeks of one corridor (two series)
  const std::vector<Declarations> declarations = Generate({{kLaredo}}, kMonday, kMonday + 3 * kWeek + 3 * kHour);
  Chain chain;
  const size_t three_weeks = 3 * 7 * 24;
  chain.Feed(declarations, 0, three_weeks);
  StateWriteBatch batch;
  chain.detector_.Flush(&batch);
  // (layout + the day-long chunks written so far: 21 days, over 22 chunks
  // as chunks follow the ring's slot numbering, not Monday midnight)
  EXPECT_EQ(batch.size(), 1 + 2 * 22u);
  // When one more hour closes
  batch.Clear();
  chain.Feed(declarations, three_weeks, three_weeks + 1);
  chain.detector_.Flush(&batch);
  // Then one key per series is written: its chunk, at most a day of slots
  ASSERT_EQ(batch.size(), 2u);
  for (const StateMutation& m : batch.mutations()) {
    EXPECT_EQ(m.ns, "customs_hold");
    ASSERT_TRUE(m.value.has_value());
    EXPECT_LT(m.value->size(), 24 * 48u);
  }
  // And two more hours of that day rewrite the same chunk: still one key per series
  batch.Clear();
  chain.Feed(declarations, three_weeks + 1);
  chain.detector_.Flush(&batch);
  EXPECT_EQ(batch.size(), 2u);
}

TEST(CustomsHoldDetector, ASeriesSilentForLongerThanTheBaselineIsDropped) {
  // Given Laredo stopping after a week next to a busy Detroit, and state committed
  const std::vector<Declarations> declarations =
      Generate({{kLaredo, 1000, 0.07, Step(kMonday + kWeek, 100 * kDay, 0.0)}, {kDetroit, 1000, 0.035}}, kMonday,
               kMonday + 44 * kDay);
  const size_t day_20 = 20 * 24 * 2;  // two flows an hour
  InMemoryStateStore store;
  Chain chain;
  chain.Feed(declarations, 0, day_20);
  chain.Flush(&store);
  const std::string laredo_prefix = std::string("ppe\0MX-US-2304\0", 15);
  const auto laredo_keys = [&] {
    size_t n = 0;
    EXPECT_TRUE(store.Scan("customs_hold", laredo_prefix, [&](std::string_view, std::string_view) {
      ++n;
      return true;
    }).ok());
    return n;
  };
  ASSERT_GT(laredo_keys(), 0u);
  ASSERT_EQ(chain.detector_.series_count(), 3u);
  // When more than four weeks pass after its last report
  chain.Feed(declarations, day_20);
  chain.Flush(&store);
  // Then its state is gone from memory and from the store
  EXPECT_EQ(chain.detector_.series_count(), 2u);
  EXPECT_EQ(laredo_keys(), 0u);
  EXPECT_FALSE(chain.detector_.BaselineRate(chain.Series(kLaredo)).has_value());
}

TEST(CustomsHoldDetector, RestoreRefusesStateOfAnotherLayout) {
  // Given state written with four baseline weeks
  InMemoryStateStore store;
  {
    Chain chain;
    chain.Feed(Generate({{kLaredo}}, kMonday, kMonday + 2 * kDay));
    chain.Flush(&store);
  }
  // When a detector with two baseline weeks restores it
  CustomsHoldOptions two;
  two.baseline_weeks = 2;
  Chain chain(two);
  const Status status = chain.detector_.Restore(store);
  // Then it is refused, naming both layouts, and the detector holds nothing
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("bucket=1h window=24h baseline_weeks=4"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("bucket=1h window=24h baseline_weeks=2"), std::string::npos) << status.message();
  EXPECT_EQ(chain.detector_.series_count(), 0u);
}

TEST(CustomsHoldDetector, UnreadableStateIsDataLoss) {
  InMemoryStateStore store;
  StateWriteBatch batch;
  batch.Put("customs_hold", "layout", "bucket=1h window=24h baseline_weeks=4 chunk=24");
  batch.Put("customs_hold", std::string("ppe\0*\0\0\0\0\1", 10), "\xff\xff");
  ASSERT_TRUE(store.Commit(batch, "").ok());
  Chain chain;
  EXPECT_EQ(chain.detector_.Restore(store).code(), StatusCode::kDataLoss);
  EXPECT_EQ(chain.detector_.series_count(), 0u);
}

TEST(CustomsHoldDetector, StateOfAGroupTheCatalogLacksIsRefused) {
  InMemoryStateStore store;
  {
    Chain chain;
    chain.Feed(Generate({{kLaredo}}, kMonday, kMonday + kDay));
    chain.Flush(&store);
  }
  WindowOptions windows;
  CorridorTable corridors;
  CustomsHoldDetector other(CustomsHoldOptions{}, windows, {"batteries", "unclassified"}, &corridors);
  const Status status = other.Restore(store);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("'ppe'"), std::string::npos) << status.message();
  EXPECT_EQ(other.series_count(), 0u);
}

}  // namespace
}  // namespace shortfall::operators
