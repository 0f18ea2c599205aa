#include "operators/dwell_detector.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "operators/alert_lifecycle.h"
#include "operators/volume_aggregator.h"
#include "tests/operators/detector_chain.h"
#include "tests/operators/weekly_series.h"

namespace shortfall::operators {
namespace {

constexpr DurationMs kHour = kMsPerHour;
constexpr DurationMs kDay = kMsPerDay;
using testing::kMonday;
using testing::Rng;
using testing::WeeklyMean;
const std::vector<std::string> kGroups = {"chips", "unclassified"};
constexpr std::string_view kLaredo = "MX-US-2304";
const TimestampMs kEventStart = kMonday + 16 * kDay;  // a Wednesday, two weeks and a bit in

// Releases per hour on one corridor, each dwell as the scenario generator
// draws it: 3 min + an exponential of mean 22 min (at most 3 h), or, for 5%
// inspected, 1 to 30 h; times `factor(t)`.
struct Flow {
  double weekday_releases = 40;
  std::function<double(TimestampMs)> factor = [](TimestampMs) { return 1.0; };
};

class Chain : public testing::DetectorChain<DwellDetector> {
 public:
  explicit Chain(DwellOptions options = {}) : DetectorChain(kGroups, options) {}

  void Feed(const Flow& f, TimestampMs from, TimestampMs to, uint64_t seed = 7) {
    Rng rng(seed);
    const CorridorId laredo = *corridors_.InternCode(kLaredo);
    for (TimestampMs t = from; t < to; t += kHour) {
      const uint64_t n = rng.Poisson(WeeklyMean(t, f.weekday_releases));
      VolumeDelta d;
      for (uint64_t i = 0; i < n; ++i) {
        const double minutes = rng.Uniform() < 0.05 ? 60 + 29 * 60 * rng.Uniform()
                                                    : std::min(180.0, 3 - 22 * std::log(1 - rng.Uniform()));
        d.AddDwell(DwellSample(DwellKey(kLaredo), static_cast<DurationMs>(minutes * f.factor(t) * kMsPerMinute)));
      }
      if (n > 0) {
        ASSERT_TRUE(aggregator_.Add(0, laredo, t + 30 * kMsPerMinute, d));
      }
      Close(t + kHour);
    }
  }
  const Signal* FirstFiring() const {
    for (const Signal& s : signals_) {
      if (s.firing && s.corridor == kLaredo) return &s;
    }
    return nullptr;
  }
};

std::function<double(TimestampMs)> Step(TimestampMs from, DurationMs length, double level) {
  return [=](TimestampMs t) { return t >= from && t < from + length ? level : 1.0; };
}

TEST(DwellDetector, ReleasesThreeTimesSlowerFireWithinThreeDaysWithTheDwellInTheEvidence) {
  Chain chain;
  chain.Feed({.factor = Step(kEventStart, 30 * kDay, 3)}, kMonday, kEventStart + 3 * kDay);
  const Signal* first = chain.FirstFiring();
  ASSERT_NE(first, nullptr);
  EXPECT_GT(first->window_end, kEventStart + 6 * kHour);
  EXPECT_LE(first->window_end, kEventStart + 72 * kHour);
  EXPECT_EQ(first->kind, v1::ALERT_KIND_DWELL_TIME_RISE);
  EXPECT_EQ(first->evidence.measure(), "dwell_seconds");
  EXPECT_GT(first->evidence.observed(), 2 * first->evidence.expected()) << "seconds, in the window vs the reference";
  EXPECT_GT(first->evidence.expected(), 10 * 60) << "a typical stay of tens of minutes";
  EXPECT_LT(first->evidence.expected(), 60 * 60);
  ASSERT_FALSE(chain.alerts_.empty());
  EXPECT_EQ(chain.alerts_.front().kind(), v1::ALERT_KIND_DWELL_TIME_RISE);
}

TEST(DwellDetector, NormalDwellNeverFiresOverSeveralSeeds) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    Chain chain;
    chain.Feed({}, kMonday, kMonday + 35 * kDay, seed);
    EXPECT_EQ(chain.FirstFiring(), nullptr) << "seed " << seed;
    EXPECT_LT(chain.PeakStatistic(), DwellOptions{}.cusum_threshold) << "seed " << seed;
  }
}

TEST(DwellDetector, AModestSlowdownDoesNotFireBelowTheRatioGuard) {
  DwellOptions busy;
  busy.relative_floor = 0;
  Chain chain(busy);
  chain.Feed({.weekday_releases = 2000, .factor = Step(kEventStart, 10 * kDay, 1.2)}, kMonday, kEventStart + 5 * kDay);
  EXPECT_GT(chain.PeakStatistic(), busy.cusum_threshold) << "significant";
  EXPECT_EQ(chain.FirstFiring(), nullptr) << "but stays 20% longer are not a rise to alert on";
}

TEST(DwellDetector, AnAlertResolvesOnceReleasesAreBackToNormal) {
  Chain chain;
  const TimestampMs end = kEventStart + 7 * kDay;
  chain.Feed({.factor = Step(kEventStart, 7 * kDay, 4)}, kMonday, end + 5 * kDay);
  int opened = 0, resolved = 0;
  for (const v1::ShortageAlert& a : chain.alerts_) {
    if (a.corridor().port_of_entry() != "2304") continue;
    opened += a.state() == v1::ALERT_STATE_OPEN;
    if (a.state() == v1::ALERT_STATE_RESOLVED) {
      ++resolved;
      EXPECT_GT(a.window_end().seconds() * 1000, end + 24 * kHour) << "normal for a day first";
      EXPECT_LT(a.window_end().seconds() * 1000, end + 4 * kDay);
    }
  }
  EXPECT_EQ(opened, 1) << "the reference is held through the week";
  EXPECT_EQ(resolved, 1);
}

TEST(DwellOptions, ValidationNamesTheDwellFields) {
  const WindowOptions windows;
  EXPECT_TRUE(DwellOptions{}.Validate(windows).ok());
  DwellOptions o;
  o.sample_sd = 0;
  EXPECT_EQ(o.Validate(windows).message(), "dwell.dwell_sd: 0 (want > 0)");
  o = {};
  o.min_reference_samples = 0;
  EXPECT_EQ(o.Validate(windows).message(), "dwell.min_reference_releases: 0 (want >= 1)");
  o = {};
  o.window = 12 * kHour;
  EXPECT_EQ(o.Validate(windows).message(), "dwell.window: 12h is not one of the rolling windows (24h, 7d)");
}

}  // namespace
}  // namespace shortfall::operators
