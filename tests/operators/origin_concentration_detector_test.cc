#include "operators/origin_concentration_detector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "operators/alert_lifecycle.h"
#include "operators/in_memory_state_store.h"
#include "operators/volume_aggregator.h"
#include "tests/operators/detector_chain.h"
#include "tests/operators/restore_equivalence.h"
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
constexpr std::string_view kElPaso = "MX-US-2402";
constexpr std::string_view kDetroit = "CA-US-3801";
constexpr std::string_view kNuevoLaredo = "US-MX-MXNLD";
constexpr std::string_view kIntoUs = "*-US-*";

using Factor = std::function<double(TimestampMs)>;
const Factor kOne = [](TimestampMs) { return 1.0; };

// 1 before `from`, then linearly to `level` over `length`, then `level`
// until `until` (and 1 again from there).
Factor Ramp(TimestampMs from, DurationMs length, double level, TimestampMs until = kMaxTimestamp) {
  return [=](TimestampMs t) {
    if (t < from || t >= until) return 1.0;
    if (t >= from + length) return level;
    return 1.0 + (level - 1.0) * static_cast<double>(t - from) / static_cast<double>(length);
  };
}

struct Flow {
  std::string_view corridor;
  double weekday_daily = 100;  // arrivals per weekday (weekends half)
  Factor volume = kOne;
  GroupId group = 0;
};

struct Arrivals {
  TimestampMs hour;
  std::string_view corridor;
  GroupId group;
  uint64_t shipments;
};

// Hourly Poisson arrivals of every flow over [from, to).
std::vector<Arrivals> Generate(const std::vector<Flow>& flows, TimestampMs from, TimestampMs to, uint64_t seed = 7) {
  Rng rng(seed);
  std::vector<Arrivals> out;
  for (TimestampMs t = from; t < to; t += kHour) {
    for (const Flow& f : flows) {
      out.push_back({t, f.corridor, f.group, rng.Poisson(WeeklyMean(t, f.weekday_daily) * f.volume(t))});
    }
  }
  return out;
}

using testing::DescribeSignal;

// aggregator -> detector -> lifecycle, keeping what each step produced.
class Chain : public testing::DetectorChain<OriginConcentrationDetector> {
 public:
  explicit Chain(OriginConcentrationOptions options = {}, std::vector<OriginConcentrationOverride> overrides = {})
      : DetectorChain(kGroups, options, std::move(overrides)) {}

  // Feeds arrivals[from, to), closing each hour once the next begins (or,
  // with close_every > 1, every that many hours: a backlog).
  void Feed(const std::vector<Arrivals>& arrivals, size_t from = 0, size_t to = SIZE_MAX, int close_every = 1) {
    to = std::min(to, arrivals.size());
    int hours = 0;
    for (size_t i = from; i < to; ++i) {
      const Arrivals& a = arrivals[i];
      if (a.shipments > 0) {
        VolumeDelta delta;
        delta.shipments = a.shipments;
        ASSERT_TRUE(aggregator_.Add(a.group, *corridors_.InternCode(a.corridor), a.hour + 30 * kMsPerMinute, delta));
      }
      const bool hour_ends = i + 1 == arrivals.size() || arrivals[i + 1].hour != a.hour;
      if (hour_ends && (++hours % close_every == 0 || i + 1 == to)) Close(a.hour + kHour);
    }
  }

  // The detector reads a close's reports together.
  void Close(TimestampMs watermark) {
    std::vector<WindowReport> reports;
    aggregator_.AdvanceTo(watermark, &reports);
    const size_t before = signals_.size();
    detector_.Observe(reports, &signals_);
    ApplyFrom(before);
  }

  std::vector<const Signal*> Firing() const {
    std::vector<const Signal*> out;
    for (const Signal& s : signals_) {
      if (s.firing) out.push_back(&s);
    }
    return out;
  }
};

TimestampMs Ms(const google::protobuf::Timestamp& t) { return t.seconds() * kMsPerSecond; }

// Five full weeks of history, then the change starts on a Wednesday at midnight.
const TimestampMs kShiftStart = kMonday + 37 * kDay;

// US imports: 89% from Mexico (two ports), 11% from Canada.
std::vector<Flow> HighConcentration(Factor canada = kOne, Factor mexico = kOne) {
  return {{kLaredo, 150, mexico}, {kElPaso, 50, mexico}, {kDetroit, 25, canada}};
}

TEST(OriginConcentrationOptions, ValidationNamesTheField) {
  const WindowOptions windows;
  EXPECT_TRUE(OriginConcentrationOptions().Validate(windows).ok());
  OriginConcentrationOptions o;
  o.window = 12 * kHour;
  EXPECT_EQ(o.Validate(windows),
            InvalidArgumentError("origin_concentration.window: 12h is not one of the rolling windows (24h, 7d)"));
  const auto message = [&](const std::function<void(OriginConcentrationOptions*)>& change) {
    OriginConcentrationOptions bad;
    change(&bad);
    return std::string(bad.Validate(windows).message());
  };
  EXPECT_NE(message([](auto* b) { b->baseline_weeks = 13; }).find("origin_concentration.baseline_weeks"),
            std::string::npos);
  EXPECT_NE(message([](auto* b) { b->min_history_weeks = 5; }).find("origin_concentration.min_history_weeks"),
            std::string::npos);
  EXPECT_NE(message([](auto* b) { b->share_threshold = 1.5; }).find("origin_concentration.share_threshold"),
            std::string::npos);
  EXPECT_NE(message([](auto* b) { b->share_threshold = 0; }).find("origin_concentration.share_threshold"),
            std::string::npos);
  EXPECT_NE(message([](auto* b) { b->others_ratio = 1; }).find("origin_concentration.others_ratio"),
            std::string::npos);
  EXPECT_NE(message([](auto* b) { b->min_shipments = -1; }).find("origin_concentration.min_shipments"),
            std::string::npos);
  EXPECT_NE(message([](auto* b) { b->relative_noise = -0.1; }).find("origin_concentration.relative_noise"),
            std::string::npos);
  EXPECT_NE(message([](auto* b) { b->z_threshold = 0; }).find("origin_concentration.z_threshold"),
            std::string::npos);
  EXPECT_EQ(message([](auto* b) { b->recover_z = 4; }),
            "origin_concentration.recover_z: 4 (want a number below z_threshold, 3.5)");
}

TEST(OriginConcentrationOverride, ValidationNamesTheOverrideAndField) {
  EXPECT_TRUE(
      ValidateOriginConcentrationOverrides({{.group = "semiconductors", .destination = "US"}, {}}, kGroups).ok());
  EXPECT_EQ(ValidateOriginConcentrationOverrides({{}, {.group = "chips"}}, kGroups),
            InvalidArgumentError("origin_concentration.overrides[1].group: 'chips' is not a commodity group"));
  EXPECT_EQ(ValidateOriginConcentrationOverrides({{.destination = "USA"}}, kGroups),
            InvalidArgumentError(
                "origin_concentration.overrides[0].destination: 'USA' is not a country code like US, or *"));
  EXPECT_NE(ValidateOriginConcentrationOverrides({{.share_threshold = 2.0}}, kGroups)
                .message()
                .find("overrides[0].share_threshold"),
            std::string::npos);
  EXPECT_NE(ValidateOriginConcentrationOverrides({{.z_threshold = -1.0}}, kGroups).message().find("z_threshold"),
            std::string::npos);
}

TEST(OriginConcentrationDetector, SaysNothingUntilTwoCompleteWeeksOfHistoryAndThenSaysHowMuch) {
  // Given three and a half weeks of steady imports from two origins
  Chain chain;
  chain.Feed(Generate(HighConcentration(), kMonday, kMonday + 25 * kDay));
  // Then nothing is judged before the current week and two complete weeks
  // before it exist (data from kMonday 00:00: the first full window ends
  // on day 7, so the first judged close is day 21)
  ASSERT_FALSE(chain.signals_.empty());
  EXPECT_GE(chain.signals_.front().window_end, kMonday + 21 * kDay);
  EXPECT_LE(chain.signals_.front().window_end, kMonday + 21 * kDay + kHour);
  // And each signal says how much history it rests on: two weeks at first
  const Signal& first = chain.signals_.front();
  EXPECT_EQ(first.evidence.baseline_history_seconds(), 2 * kWeek / kMsPerSecond);
  EXPECT_EQ(first.corridor, kIntoUs);
  EXPECT_EQ(first.window_end - first.window_start, kWeek);
  EXPECT_TRUE(chain.detector_.BaselineShare(0, "US").has_value());
  EXPECT_FALSE(chain.detector_.BaselineShare(0, "CA").has_value());
  // And the group totals make no market of their own: one signal per close
  EXPECT_EQ(chain.signals_.size(),
            static_cast<size_t>((chain.signals_.back().window_end - first.window_end) / kHour + 1));
}

TEST(OriginConcentrationDetector, SteadyHighConcentrationNeverFires) {
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    // Given ten weeks of imports 89% from one origin, above the 80% threshold
    Chain chain;
    chain.Feed(Generate(HighConcentration(), kMonday, kMonday + 10 * kWeek, seed));
    // Then every close is judged, above the threshold, and none fires
    ASSERT_GT(chain.signals_.size(), 1000u) << seed;
    const double min_share = std::min_element(chain.signals_.begin(), chain.signals_.end(), [](auto& a, auto& b) {
                               return a.evidence.observed() < b.evidence.observed();
                             })->evidence.observed();
    EXPECT_GT(min_share, 0.8) << seed;
    EXPECT_TRUE(chain.Firing().empty()) << seed << ": " << DescribeSignal(*chain.Firing().front());
    EXPECT_TRUE(chain.alerts_.empty()) << seed;
  }
}

TEST(OriginConcentrationDetector, ASecondSourceThatCollapsesFiresWithItsEvidenceAndTurnsCritical) {
  // Given Canada's share fading to a fifth over a week while Mexico grows to
  // keep the total (89% -> 98% from Mexico)
  const double mexico_growth = 1 + 0.8 * 25.0 / 200.0;
  Chain chain;
  chain.Feed(Generate(HighConcentration(Ramp(kShiftStart, kWeek, 0.2), Ramp(kShiftStart, kWeek, mexico_growth)),
                      kMonday, kShiftStart + 3 * kWeek));
  // Then an alert opens within ten days, on every origin into the US
  ASSERT_FALSE(chain.alerts_.empty());
  const v1::ShortageAlert& open = chain.alerts_.front();
  EXPECT_EQ(open.state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(open.kind(), v1::ALERT_KIND_ORIGIN_CONCENTRATION);
  EXPECT_EQ(open.commodity_group(), "semiconductors");
  EXPECT_EQ(open.corridor().origin_country(), "");
  EXPECT_EQ(open.corridor().destination_country(), "US");
  EXPECT_EQ(open.corridor().port_of_entry(), "");
  const TimestampMs opened = Ms(open.window_end());
  EXPECT_GT(opened, kShiftStart);
  EXPECT_LT(opened, kShiftStart + 10 * kDay);
  std::printf("[ tuning   ] second source to 20%% over a week: fires %.1f days in\n",
              static_cast<double>(opened - kShiftStart) / kDay);
  // With the evidence: Mexico's share now, as it was, the threshold, the window, the history
  const v1::Evidence& e = open.evidence();
  EXPECT_EQ(e.measure(), "origin_share");
  EXPECT_EQ(e.statistic(), "share");
  EXPECT_GE(e.observed(), 0.8);
  EXPECT_EQ(e.statistic_value(), e.observed());
  EXPECT_NEAR(e.expected(), 200.0 / 225, 0.02);
  EXPECT_EQ(e.threshold(), 0.8);
  EXPECT_EQ(Ms(open.window_end()) - Ms(open.window_start()), kWeek);
  EXPECT_EQ(e.baseline_history_seconds(), 4 * kWeek / kMsPerSecond);
  // And the origins as contributors, largest first, with their shares
  ASSERT_EQ(e.top_contributors_size(), 2);
  EXPECT_EQ(e.top_contributors(0).corridor().origin_country(), "MX");
  EXPECT_EQ(e.top_contributors(0).corridor().destination_country(), "US");
  EXPECT_DOUBLE_EQ(e.top_contributors(0).share(), e.observed());
  EXPECT_EQ(e.top_contributors(1).corridor().origin_country(), "CA");
  EXPECT_NEAR(e.top_contributors(0).share() + e.top_contributors(1).share(), 1.0, 1e-12);
  // And it turns CRITICAL once the others are down to a quarter of their share
  const auto critical = std::find_if(chain.alerts_.begin(), chain.alerts_.end(),
                                     [](const auto& a) { return a.severity() == v1::SEVERITY_CRITICAL; });
  ASSERT_NE(critical, chain.alerts_.end());
  EXPECT_LE(1 - critical->evidence().observed(), 0.25 * (1 - critical->evidence().expected()) + 1e-9);
  // And the alert stays open while the shift lasts (two more weeks)
  EXPECT_EQ(chain.lifecycle_.open_count(), 1u);
}

TEST(OriginConcentrationDetector, AShareCrossingTheThresholdFromBelowFires) {
  // Given 60% from Mexico, then Canada falling to 15% over a week while
  // Mexico makes up the total (-> 94%)
  const std::vector<Flow> flows = {
      {kLaredo, 120, Ramp(kShiftStart, kWeek, 1 + 0.85 * 80.0 / 120.0)},
      {kDetroit, 80, Ramp(kShiftStart, kWeek, 0.15)}};
  Chain chain;
  chain.Feed(Generate(flows, kMonday, kShiftStart + 2 * kWeek));
  // Then it was judged below the threshold before and fires after
  ASSERT_FALSE(chain.signals_.empty());
  EXPECT_LT(chain.signals_.front().evidence.observed(), 0.7);
  ASSERT_FALSE(chain.alerts_.empty());
  EXPECT_LT(Ms(chain.alerts_.front().window_end()), kShiftStart + 10 * kDay);
  EXPECT_NEAR(chain.alerts_.front().evidence().expected(), 0.6, 0.03);
}

TEST(OriginConcentrationDetector, ATopOriginThatChangesIsJudgedAgainstItsOwnPastShare) {
  // Given Canada taking over from Mexico (70/30 -> 9/91)
  const std::vector<Flow> flows = {{kLaredo, 140, Ramp(kShiftStart, 3 * kDay, 0.1)},
                                   {kDetroit, 60, Ramp(kShiftStart, 3 * kDay, 1 + 0.9 * 140.0 / 60.0)}};
  Chain chain;
  chain.Feed(Generate(flows, kMonday, kShiftStart + 2 * kWeek));
  // Then it fires naming Canada's share now against Canada's 30%
  const std::vector<const Signal*> firing = chain.Firing();
  ASSERT_FALSE(firing.empty());
  EXPECT_EQ(firing.front()->evidence.top_contributors(0).corridor().origin_country(), "CA");
  EXPECT_NEAR(firing.front()->evidence.expected(), 0.3, 0.03);
}

TEST(OriginConcentrationDetector, AFewShipmentsLessFromAThinSecondSourceAreNotBeyondNoise) {
  // Given 12 a week from Canada against 120 from Mexico, Canada falling to
  // 40% and staying there: the share and ratio conditions hold, but five
  // trucks instead of twelve is what chance does often enough
  const std::vector<Flow> flows = {{kLaredo, 20}, {kDetroit, 2, Ramp(kShiftStart, kDay, 0.4)}};
  for (uint64_t seed : {1, 2, 3}) {
    Chain chain;
    chain.Feed(Generate(flows, kMonday, kShiftStart + 3 * kWeek, seed));
    const bool conditions = std::any_of(chain.signals_.begin(), chain.signals_.end(), [](const Signal& s) {
      return s.evidence.observed() >= 0.8 && 1 - s.evidence.observed() <= 0.5 * (1 - s.evidence.expected());
    });
    EXPECT_TRUE(conditions) << seed;
    EXPECT_TRUE(chain.Firing().empty()) << seed;
  }
}

TEST(OriginConcentrationDetector, TheSameChangeOnEveryOriginDoesNotFire) {
  // Given every origin falling to 40% (a volume drop, the shares unchanged), then surging
  const Factor down = Ramp(kShiftStart, kDay, 0.4, kShiftStart + 2 * kWeek);
  Chain chain;
  chain.Feed(Generate(HighConcentration(down, down), kMonday, kShiftStart + 3 * kWeek));
  EXPECT_TRUE(chain.Firing().empty());
}

TEST(OriginConcentrationDetector, AnAlertResolvesAfterTheSecondSourceReturnsAndDoesNotReopen) {
  // Given Canada's flow down to 10% for two weeks, then back
  const TimestampMs back = kShiftStart + 2 * kWeek;
  Chain chain;
  chain.Feed(Generate(HighConcentration(Ramp(kShiftStart, kHour, 0.1, back)), kMonday, back + 3 * kWeek));
  // Then one alert opened during the shift and resolved after it ended
  std::vector<const v1::ShortageAlert*> lifecycle;
  for (const auto& a : chain.alerts_) {
    if (a.state() != v1::ALERT_STATE_UPDATED) lifecycle.push_back(&a);
  }
  ASSERT_EQ(lifecycle.size(), 2u);
  EXPECT_EQ(lifecycle[0]->state(), v1::ALERT_STATE_OPEN);
  EXPECT_LT(Ms(lifecycle[0]->window_end()), back);
  EXPECT_EQ(lifecycle[1]->state(), v1::ALERT_STATE_RESOLVED);
  EXPECT_EQ(lifecycle[1]->alert_id(), lifecycle[0]->alert_id());
  const TimestampMs resolved = Ms(lifecycle[1]->window_end());
  EXPECT_GT(resolved, back);
  EXPECT_LT(resolved, back + 10 * kDay);
  std::printf("[ tuning   ] two-week collapse to 10%%: opens %.1f days in, resolves %.1f days after it ends\n",
              static_cast<double>(Ms(lifecycle[0]->window_end()) - kShiftStart) / kDay,
              static_cast<double>(resolved - back) / kDay);
  // And the baseline it was judged against was the share before the shift
  EXPECT_NEAR(lifecycle[1]->evidence().expected(), 200.0 / 225, 0.02);
}

TEST(OriginConcentrationDetector, AShiftLastingLongerThanThreeWeeksBecomesTheNewNormal) {
  Chain chain;
  chain.Feed(Generate(HighConcentration(Ramp(kShiftStart, kHour, 0.1)), kMonday, kShiftStart + 7 * kWeek));
  ASSERT_GE(chain.alerts_.size(), 2u);
  EXPECT_EQ(chain.alerts_.front().state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(chain.alerts_.back().state(), v1::ALERT_STATE_RESOLVED);
  EXPECT_GT(Ms(chain.alerts_.back().window_end()), kShiftStart + 3 * kWeek);
  EXPECT_GT(chain.alerts_.back().evidence().expected(), 0.95);  // the baseline took the new level
  std::printf("[ tuning   ] lasting collapse to 10%%: opens %.1f days in, resolves as the new normal %.1f days in\n",
              static_cast<double>(Ms(chain.alerts_.front().window_end()) - kShiftStart) / kDay,
              static_cast<double>(Ms(chain.alerts_.back().window_end()) - kShiftStart) / kDay);
}

TEST(OriginConcentrationDetector, AMarketWithOneOriginOnlyIsNotJudged) {
  Chain chain;
  chain.Feed(Generate({{kNuevoLaredo, 200}}, kMonday, kMonday + 6 * kWeek));
  EXPECT_TRUE(chain.signals_.empty());
  // (its baseline share is known: 100%)
  EXPECT_EQ(chain.detector_.BaselineShare(0, "MX"), 1.0);
}

TEST(OriginConcentrationDetector, AThinMarketIsNotJudged) {
  OriginConcentrationOptions options;
  options.min_shipments = 2000;  // more than a week brings
  Chain chain(options);
  chain.Feed(Generate(HighConcentration(Ramp(kShiftStart, kHour, 0.0)), kMonday, kShiftStart + 2 * kWeek));
  EXPECT_TRUE(chain.signals_.empty());
}

TEST(OriginConcentrationDetector, UnclassifiedGoodsAreWatchedOnlyWhenAnOverrideNamesThem) {
  std::vector<Flow> flows = HighConcentration(Ramp(kShiftStart, kHour, 0.1));
  for (Flow& f : flows) f.group = 1;  // unclassified
  const std::vector<Arrivals> arrivals = Generate(flows, kMonday, kShiftStart + 2 * kWeek);
  Chain plain({}, {{.group = "*", .destination = "*", .share_threshold = 0.5}});
  plain.Feed(arrivals);
  EXPECT_TRUE(plain.signals_.empty());
  Chain named({}, {{.group = "unclassified", .destination = "*", .enabled = true}});
  named.Feed(arrivals);
  EXPECT_FALSE(named.Firing().empty());
}

TEST(OriginConcentrationDetector, AnOverrideTunesOrSilencesOneDestination) {
  const std::vector<Arrivals> arrivals =
      Generate(HighConcentration(Ramp(kShiftStart, kHour, 0.1)), kMonday, kShiftStart + 2 * kWeek);
  Chain off({}, {{.group = "semiconductors", .destination = "US", .enabled = false}});
  off.Feed(arrivals);
  EXPECT_TRUE(off.signals_.empty());
  EXPECT_EQ(off.detector_.market_count(), 1u);  // known, switched off
  Chain strict({}, {{.group = "*", .destination = "CA", .share_threshold = 0.5},
                    {.group = "semiconductors", .destination = "US", .share_threshold = 0.999}});
  strict.Feed(arrivals);
  ASSERT_FALSE(strict.signals_.empty());
  EXPECT_TRUE(strict.Firing().empty());
  EXPECT_EQ(strict.signals_.back().evidence.threshold(), 0.999);
}

TEST(OriginConcentrationDetector, ABacklogOfClosesInOneBatchGivesTheSameSignals) {
  const std::vector<Arrivals> arrivals = Generate(
      HighConcentration(Ramp(kShiftStart, 3 * kDay, 0.1, kShiftStart + 2 * kWeek)), kMonday, kShiftStart + 4 * kWeek);
  Chain hourly;
  hourly.Feed(arrivals);
  Chain backlog;
  backlog.Feed(arrivals, 0, SIZE_MAX, 29);  // 29 hours of closes per batch
  ASSERT_FALSE(hourly.Firing().empty());
  ASSERT_EQ(backlog.signals_.size(), hourly.signals_.size());
  for (size_t i = 0; i < hourly.signals_.size(); ++i) {
    ASSERT_EQ(DescribeSignal(backlog.signals_[i]), DescribeSignal(hourly.signals_[i])) << i;
  }
}

TEST(OriginConcentrationDetector, TheClosesBeforeTheFirstFiringStayOutOfTheBaseline) {
  for (uint64_t seed : {1, 2, 3}) {
    // Given Canada's share fading to nothing over ten days: the windows
    // closed before the alert fires hold days of the fade already
    const std::vector<Arrivals> arrivals =
        Generate(HighConcentration(Ramp(kShiftStart, 10 * kDay, 0.0)), kMonday, kShiftStart + 3 * kWeek, seed);
    Chain chain;
    std::optional<double> before;
    TimestampMs fired = kMaxTimestamp;
    double highest = 0;
    for (size_t i = 0; i < arrivals.size(); i += 3) {  // hour by hour
      chain.Feed(arrivals, i, i + 3);
      const std::optional<double> p0 = chain.detector_.BaselineShare(0, "US");
      if (arrivals[i].hour < kShiftStart) before = p0;
      if (fired == kMaxTimestamp && !chain.Firing().empty()) fired = chain.Firing().front()->window_end;
      if (arrivals[i].hour >= fired && arrivals[i].hour < fired + kWeek) highest = std::max(highest, p0.value_or(0));
    }
    // Then in the week after it fires, when those closes are a week old,
    // the baseline share stays near the share before the fade (measured:
    // within 0.004; without marking those closes, 0.014 above on seeds 1
    // and 2)
    ASSERT_TRUE(before.has_value());
    ASSERT_NE(fired, kMaxTimestamp);
    EXPECT_LT(highest - *before, 0.008) << seed;
  }
}

// The chain run uninterrupted, and run with commits every few hours and a
// restart into new objects (new corridor table too) at several points:
// warm-up, rising, inside the episode (after closes were marked anomalous
// that had already been flushed), after it.
TEST(OriginConcentrationDetector, RestoringMidStreamGivesByteIdenticalAlertsToAnUninterruptedRun) {
  const TimestampMs back = kShiftStart + 2 * kWeek;
  const std::vector<Arrivals> arrivals =
      Generate(HighConcentration(Ramp(kShiftStart, 2 * kDay, 0.1, back)), kMonday, back + 3 * kWeek);
  Chain uninterrupted;
  uninterrupted.Feed(arrivals);
  ASSERT_GE(uninterrupted.alerts_.size(), 2u) << "the stream should open and resolve";
  ASSERT_EQ(uninterrupted.alerts_.back().state(), v1::ALERT_STATE_RESOLVED);

  const size_t five_hours = 3 * 5;  // three flows an hour: a commit every 5 hours
  for (TimestampMs cut : {kMonday + 20 * kDay + 5 * kHour, kShiftStart + 3 * kDay + 7 * kHour,
                          kShiftStart + 9 * kDay + 2 * kHour, back + 3 * kDay + 11 * kHour, back + 12 * kDay}) {
    testing::ExpectRestoreMatchesUninterrupted(arrivals, cut, five_hours, uninterrupted);
  }
}

TEST(OriginConcentrationDetector, FlushWritesOneKeyPerCorridorSeriesAndDayOfCloses) {
  const std::vector<Arrivals> arrivals = Generate(HighConcentration(), kMonday, kMonday + 3 * kWeek + 3 * kHour);
  Chain chain;
  const size_t three_weeks = 3 * 7 * 24 * 3;  // three flows an hour
  chain.Feed(arrivals, 0, three_weeks);
  StateWriteBatch batch;
  chain.detector_.Flush(&batch);
  EXPECT_EQ(batch.size(), 1 + 3 * 22u);  // layout + 22 day-chunks of each corridor (none for the total)
  batch.Clear();
  chain.Feed(arrivals, three_weeks, three_weeks + 3);
  chain.detector_.Flush(&batch);
  ASSERT_EQ(batch.size(), 3u);
  for (const StateMutation& m : batch.mutations()) EXPECT_EQ(m.ns, "origin_concentration");
}

TEST(OriginConcentrationDetector, RestoreRefusesStateOfAnotherLayout) {
  InMemoryStateStore store;
  {
    Chain chain;
    chain.Feed(Generate(HighConcentration(), kMonday, kMonday + 2 * kDay));
    chain.Flush(&store);
  }
  OriginConcentrationOptions two;
  two.baseline_weeks = 2;
  Chain chain(two);
  const Status status = chain.detector_.Restore(store);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("bucket=1h window=7d baseline_weeks=4"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("bucket=1h window=7d baseline_weeks=2"), std::string::npos) << status.message();
  EXPECT_EQ(chain.detector_.series_count(), 0u);
  EXPECT_EQ(chain.detector_.market_count(), 0u);
}

TEST(OriginConcentrationDetector, UnreadableStateIsDataLoss) {
  InMemoryStateStore store;
  StateWriteBatch batch;
  batch.Put("origin_concentration", "layout", "bucket=1h window=7d baseline_weeks=4 chunk=24");
  batch.Put("origin_concentration", std::string("semiconductors\0MX-US-2304\0\0\0\0\1", 30), "\xff\xff");
  ASSERT_TRUE(store.Commit(batch, "").ok());
  Chain chain;
  EXPECT_EQ(chain.detector_.Restore(store).code(), StatusCode::kDataLoss);
  EXPECT_EQ(chain.detector_.series_count(), 0u);
  EXPECT_EQ(chain.detector_.market_count(), 0u);
}

TEST(OriginConcentrationDetector, StateOfAGroupTheCatalogLacksIsRefused) {
  InMemoryStateStore store;
  {
    Chain chain;
    chain.Feed(Generate(HighConcentration(), kMonday, kMonday + kDay));
    chain.Flush(&store);
  }
  WindowOptions windows;
  CorridorTable corridors;
  OriginConcentrationDetector other({}, {}, windows, {"batteries", "unclassified"}, &corridors);
  const Status status = other.Restore(store);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("'semiconductors'"), std::string::npos) << status.message();
  EXPECT_EQ(other.series_count(), 0u);
}

}  // namespace
}  // namespace shortfall::operators
