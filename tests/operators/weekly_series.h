// Test data for the seasonal detectors: a platform-independent PRNG with a
// Poisson sampler, and the weekly shape of a corridor's flow (weekends half,
// nights low), weeks starting on kMonday (test_events.h).
#ifndef SHORTFALL_TESTS_OPERATORS_WEEKLY_SERIES_H_
#define SHORTFALL_TESTS_OPERATORS_WEEKLY_SERIES_H_

#include <cmath>
#include <cstdint>

#include "base/time.h"
#include "tests/operators/test_events.h"  // kMonday

namespace shortfall::testing {

// splitmix64: the same stream on every platform, unlike std's distributions.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Inverse transform; fine for the means used here (< 300).
  uint64_t Poisson(double mean) {
    double p = std::exp(-mean);
    double cumulative = p;
    const double u = Uniform();
    uint64_t k = 0;
    while (u > cumulative && k < 10'000) {
      ++k;
      p *= mean / static_cast<double>(k);
      cumulative += p;
    }
    return k;
  }

 private:
  uint64_t state_;
};

// Mean count in the hour starting at `t` on a corridor carrying
// `weekday_daily` per weekday: weekends half, nights (0-7 h) low, days high.
inline double WeeklyMean(TimestampMs t, double weekday_daily) {
  const int64_t day = (t - kMonday) / kMsPerDay % 7;
  const int64_t hour = (t - kMonday) % kMsPerDay / kMsPerHour;
  const double day_factor = day >= 5 ? 0.5 : 1.0;
  const double hour_factor = hour < 7 ? 0.3 : hour < 19 ? 1.4 : 0.8;  // 22.9 over a day
  return weekday_daily * day_factor * hour_factor / 22.9;
}

}  // namespace shortfall::testing

#endif  // SHORTFALL_TESTS_OPERATORS_WEEKLY_SERIES_H_
