#include "operators/unit_value_detector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "operators/alert_lifecycle.h"
#include "operators/in_memory_state_store.h"
#include "operators/volume_aggregator.h"
#include "shortfall/internal/state.pb.h"
#include "tests/operators/restore_equivalence.h"
#include "tests/operators/detector_chain.h"
#include "tests/operators/weekly_series.h"

namespace shortfall::operators {
namespace {

constexpr DurationMs kHour = kMsPerHour;
constexpr DurationMs kDay = kMsPerDay;
using testing::kMonday;
using testing::Rng;
using testing::WeeklyMean;
const std::vector<std::string> kGroups = {"batteries", "unclassified"};
constexpr std::string_view kDetroit = "CA-US-3801";
constexpr std::string_view kAll = "*";

using Factor = std::function<double(TimestampMs)>;
const Factor kOne = [](TimestampMs) { return 1.0; };

// A goods code as the scenario generator prices it: each line's unit price
// uniform in [low, high] USD.
struct Code {
  uint32_t hs6;
  double low, high;
};
const Code kModules{850760, 120, 1100};  // lithium-ion battery modules, per piece
const Code kCells{850650, 0.4, 3};       // lithium primary cells, per piece

struct Flow {
  double weekday_lines = 40;  // goods lines a weekday
  double modules_share = 0.75;
  Factor price = kOne;          // on every line's price
  Factor modules_share_at = nullptr;  // when set, replaces modules_share
};

struct Lines {
  TimestampMs hour;
  VolumeDelta volume;
};

// Hourly lines of one corridor over [from, to).
std::vector<Lines> Generate(const Flow& f, TimestampMs from, TimestampMs to, uint64_t seed = 7) {
  Rng rng(seed);
  std::vector<Lines> out;
  for (TimestampMs t = from; t < to; t += kHour) {
    const uint64_t n = rng.Poisson(WeeklyMean(t, f.weekday_lines));
    Lines& l = out.emplace_back(Lines{t, {}});
    const double share = f.modules_share_at ? f.modules_share_at(t) : f.modules_share;
    for (uint64_t i = 0; i < n; ++i) {
      const Code& code = rng.Uniform() < share ? kModules : kCells;
      const double price = (code.low + (code.high - code.low) * rng.Uniform()) * f.price(t);
      const double quantity = 10 + 1000 * rng.Uniform();
      l.volume.shipments += 1;
      l.volume.goods_lines += 1;
      l.volume.AddPrice(LinePrice(PriceKey(code.hs6, 2, Unit::kPiece), price * quantity, quantity));
    }
  }
  return out;
}

// aggregator -> detector -> lifecycle, keeping what each step produced.
class Chain : public testing::DetectorChain<UnitValueDetector> {
 public:
  explicit Chain(UnitValueOptions options = {}) : DetectorChain(kGroups, options) {}

  void Feed(const std::vector<Lines>& lines, size_t from = 0, size_t to = SIZE_MAX, GroupId group = 0) {
    const CorridorId corridor = *corridors_.InternCode(kDetroit);
    for (size_t i = from; i < std::min(to, lines.size()); ++i) {
      if (lines[i].volume.goods_lines > 0) {
        ASSERT_TRUE(aggregator_.Add(group, corridor, lines[i].hour + 30 * kMsPerMinute, lines[i].volume));
      }
      Close(lines[i].hour + kHour);
    }
  }

  const Signal* FirstFiring(std::string_view corridor) const {
    for (const Signal* s : SignalsFor(corridor)) {
      if (s->firing) return s;
    }
    return nullptr;
  }
};

Factor Step(TimestampMs from, DurationMs length, double level) {
  return [=](TimestampMs t) { return t >= from && t < from + length ? level : 1.0; };
}

const TimestampMs kEventStart = kMonday + 16 * kDay;  // a Wednesday, two weeks and a bit in

TEST(PriceSums, AddAndSubtractByCodeAndDropCodesLeftWithoutLines) {
  VolumeDelta a;
  a.AddPrice(LinePrice(PriceKey(850760, 2, Unit::kPiece), 500, 1));
  a.AddPrice(LinePrice(PriceKey(850650, 2, Unit::kPiece), 2, 1));
  a.AddPrice(LinePrice(PriceKey(850760, 2, Unit::kPiece), 300, 1));
  ASSERT_EQ(a.prices.size(), 2u);
  EXPECT_LT(a.prices[0].key, a.prices[1].key) << "sorted by key";
  EXPECT_EQ(a.prices[1].lines, 2u);
  EXPECT_EQ(a.prices[1].log_sum, ToFixed(std::log(500.0), kLogPriceScale) + ToFixed(std::log(300.0), kLogPriceScale));

  VolumeDelta window;
  window.Add(a);
  VolumeDelta cells;
  cells.AddPrice(LinePrice(PriceKey(850650, 2, Unit::kPiece), 2, 1));
  window.Subtract(cells);
  ASSERT_EQ(window.prices.size(), 1u) << "the cells' code has no lines left";
  EXPECT_EQ(window.prices[0], a.prices[1]);

  internal::VolumeBucketState state;
  ToState(a, &state);
  EXPECT_EQ(FromState(state), a) << "prices survive the stored form";
}

TEST(UnitValueOptions, ValidationNamesTheField) {
  const WindowOptions windows;
  EXPECT_TRUE(UnitValueOptions{}.Validate(windows).ok());
  UnitValueOptions o;
  o.window = 12 * kHour;
  EXPECT_EQ(o.Validate(windows).message(), "unit_value.window: 12h is not one of the rolling windows (24h, 7d)");
  o = {};
  o.baseline_window = 24 * kHour;
  EXPECT_EQ(o.Validate(windows).message(), "unit_value.baseline_window: 24h (want longer than unit_value.window, 24h)");
  o = {};
  o.sample_sd = 0;
  EXPECT_EQ(o.Validate(windows).message(), "unit_value.price_sd: 0 (want > 0)");
  o = {};
  o.min_ratio = 0.9;
  EXPECT_EQ(o.Validate(windows).message(), "unit_value.min_ratio: 0.9 (want >= 1)");
  o = {};
  o.max_held = kHour;
  EXPECT_EQ(o.Validate(windows).message(), "unit_value.max_held: 1h (want at least unit_value.window, 24h)");
}

TEST(UnitValueDetector, SaysNothingUntilAReferenceAWindowOldExists) {
  Chain chain;
  chain.Feed(Generate({}, kMonday, kMonday + 8 * kDay - kHour));
  EXPECT_TRUE(chain.SignalsFor(kDetroit).empty()) << "7 d to fill the reference span, then a window";
  chain.Feed(Generate({}, kMonday + 8 * kDay - kHour, kMonday + 8 * kDay + 6 * kHour, 8));
  ASSERT_FALSE(chain.SignalsFor(kDetroit).empty()) << "the first lines came in the first night's hours";
  EXPECT_EQ(chain.SignalsFor(kDetroit).back()->evidence.baseline_history_seconds(), 6 * 24 * 3600);
}

TEST(UnitValueDetector, PricesUpEightyPercentFireWithinTwoDaysAndTurnCritical) {
  Chain chain;
  chain.Feed(Generate({.price = Step(kEventStart, 30 * kDay, 1.8)}, kMonday, kEventStart + 4 * kDay));
  const Signal* first = chain.FirstFiring(kDetroit);
  ASSERT_NE(first, nullptr);
  EXPECT_GT(first->window_end, kEventStart + 12 * kHour) << "the window must fill with dear goods first";
  EXPECT_LE(first->window_end, kEventStart + 48 * kHour);
  EXPECT_EQ(first->kind, v1::ALERT_KIND_UNIT_VALUE_SPIKE);
  EXPECT_EQ(first->evidence.measure(), "unit_value_index");
  EXPECT_NEAR(std::log(first->evidence.observed()), std::log(1.8), 0.2) << first->evidence.observed();
  EXPECT_EQ(first->evidence.expected(), 1.0);
  ASSERT_FALSE(chain.alerts_.empty());
  EXPECT_EQ(chain.alerts_.front().state(), v1::ALERT_STATE_OPEN);
  bool critical = false;
  for (const v1::ShortageAlert& a : chain.alerts_) critical = critical || a.severity() == v1::SEVERITY_CRITICAL;
  EXPECT_TRUE(critical) << "S reaches twice its threshold within four days";
}

TEST(UnitValueDetector, AShiftInTheMixOfGoodsDoesNotFire) {
  // The modules cost 300 times what the cells do; their share of lines goes
  // from 30% to 90% for a week. The value per piece of the whole group
  // jumps, no price moves.
  Chain chain;
  chain.Feed(Generate({.modules_share_at = [](TimestampMs t) { return Step(kEventStart, 7 * kDay, 3)(t) * 0.3; }},
                      kMonday, kEventStart + 10 * kDay));
  EXPECT_EQ(chain.FirstFiring(kDetroit), nullptr);
  EXPECT_LT(chain.PeakStatistic(), 3.0);
}

TEST(UnitValueDetector, NormalNoiseNeverFiresOverSeveralSeeds) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    Chain chain;
    chain.Feed(Generate({}, kMonday, kMonday + 35 * kDay, seed));
    EXPECT_EQ(chain.FirstFiring(kDetroit), nullptr) << "seed " << seed;
    EXPECT_LT(chain.PeakStatistic(), 5.0) << "seed " << seed;
  }
}

TEST(UnitValueDetector, AModestRiseDoesNotFireBelowTheRatioGuard) {
  UnitValueOptions busy;
  busy.relative_floor = 0;  // let a busy series make a 12% rise significant
  Chain chain(busy);
  chain.Feed(Generate({.weekday_lines = 2000, .price = Step(kEventStart, 10 * kDay, 1.12)}, kMonday,
                      kEventStart + 5 * kDay));
  EXPECT_GT(chain.PeakStatistic(), busy.cusum_threshold) << "significant";
  EXPECT_EQ(chain.FirstFiring(kDetroit), nullptr) << "but prices up 12% are not scarcity";
}

TEST(UnitValueDetector, ThinSeriesAreNotJudged) {
  Chain chain;
  chain.Feed(Generate({.weekday_lines = 3, .price = Step(kEventStart, 10 * kDay, 3)}, kMonday, kEventStart + 6 * kDay));
  EXPECT_TRUE(chain.SignalsFor(kDetroit).empty()) << "fewer than min_lines priced lines a window";
}

TEST(UnitValueDetector, UnclassifiedGoodsAreNotWatched) {
  Chain chain;
  chain.Feed(Generate({.price = Step(kEventStart, 10 * kDay, 3)}, kMonday, kEventStart + 4 * kDay), 0, SIZE_MAX,
             /*group=*/1);
  EXPECT_TRUE(chain.signals_.empty());
}

TEST(UnitValueDetector, AnAlertStaysOpenWhilePricesStayUpAndResolvesWhenTheyFall) {
  Chain chain;
  const TimestampMs end = kEventStart + 12 * kDay;
  chain.Feed(Generate({.price = Step(kEventStart, 12 * kDay, 2)}, kMonday, end + 5 * kDay));
  std::vector<const v1::ShortageAlert*> opened, resolved;
  for (const v1::ShortageAlert& a : chain.alerts_) {
    if (a.corridor().port_of_entry() != "3801") continue;
    if (a.state() == v1::ALERT_STATE_OPEN) opened.push_back(&a);
    if (a.state() == v1::ALERT_STATE_RESOLVED) resolved.push_back(&a);
  }
  ASSERT_EQ(opened.size(), 1u) << "the reference is held: twelve dear days do not become normal";
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_GT(resolved[0]->window_end().seconds() * 1000, end + 24 * kHour) << "back to normal for a day first";
  EXPECT_LT(resolved[0]->window_end().seconds() * 1000, end + 4 * kDay);
}

TEST(UnitValueDetector, PricesUpLongerThanMaxHeldBecomeTheNewNormal) {
  UnitValueOptions options;
  options.max_held = 5 * kDay;
  Chain chain(options);
  chain.Feed(Generate({.price = Step(kEventStart, 60 * kDay, 2)}, kMonday, kEventStart + 12 * kDay));
  int opened = 0, resolved = 0;
  for (const v1::ShortageAlert& a : chain.alerts_) {
    if (a.corridor().port_of_entry() != "3801") continue;
    opened += a.state() == v1::ALERT_STATE_OPEN;
    resolved += a.state() == v1::ALERT_STATE_RESOLVED;
  }
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(resolved, 1) << "five days after it opened the new price level is the reference";
}

TEST(UnitValueDetector, RestoringMidStreamGivesByteIdenticalSignalsToAnUninterruptedRun) {
  const std::vector<Lines> lines = Generate({.price = Step(kEventStart, 6 * kDay, 1.8)}, kMonday, kEventStart + 10 * kDay);
  Chain uninterrupted;
  uninterrupted.Feed(lines);
  ASSERT_GE(uninterrupted.alerts_.size(), 2u) << "the stream should open and resolve";
  for (TimestampMs cut : {kMonday + 7 * kDay + 5 * kHour, kEventStart + 20 * kHour, kEventStart + 40 * kHour,
                          kEventStart + 7 * kDay + 3 * kHour}) {
    testing::ExpectRestoreMatchesUninterrupted(lines, cut, 5, uninterrupted);  // commit every 5 hours
  }
}

TEST(UnitValueDetector, RestoreRefusesStateOfAnotherLayoutOrGroup) {
  InMemoryStateStore store;
  {
    Chain chain;
    chain.Feed(Generate({}, kMonday, kMonday + 9 * kDay));
    chain.Flush(&store);
  }
  const WindowOptions windows;
  CorridorTable corridors;
  UnitValueOptions other;
  other.window = 7 * kDay;
  other.baseline_window = 7 * kDay;
  WindowOptions longer;
  longer.rolling = {24 * kHour, 7 * kDay, 14 * kDay};
  other.baseline_window = 14 * kDay;
  UnitValueDetector detector(other, longer, kGroups, &corridors);
  EXPECT_EQ(detector.Restore(store).message(),
            "unit_value state was built with window=24h baseline_window=7d, not window=7d baseline_window=14d; use "
            "the same unit_value.window and unit_value.baseline_window, or an empty state directory");
  UnitValueDetector no_batteries({}, windows, {"ppe", "unclassified"}, &corridors);
  EXPECT_EQ(no_batteries.Restore(store).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(no_batteries.series_count(), 0u);
}

}  // namespace
}  // namespace shortfall::operators
