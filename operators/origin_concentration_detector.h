// OriginConcentrationDetector: raises a Signal when a commodity group's
// imports into a destination country come to depend on one origin country
// much more than they used to — the top origin's share crossing a
// configurable threshold while the other origins' share falls to a fraction
// of its own past level. Concentration is what turns a disruption into a
// shortage: with one source left, the next closure on its corridors has no
// alternative. It reads the WindowReports of a VolumeAggregator, all the
// reports of a bucket close together (ShortageDetection passes each batch
// whole; the runtime keys stage two by group, so every series of a group is
// in the same task), and writes Signals for an AlertLifecycle.
//
//   OriginConcentrationDetector detector(options, overrides, windows, group_names, &corridors);
//   detector.Observe(reports, &signals);   // every report of some bucket closes
//   for (const Signal& s : signals) lifecycle.Apply(s, &alerts);
//   detector.Flush(&batch);  store.Commit(batch, checkpoint);
//
// What it measures. A market is (group, destination country). At each
// bucket close T, its shipments in the rolling window of length `window`
// ending at T (default 7 d) are summed per origin country over the
// corridor series of the group into that destination ("MX-US-2304",
// "MX-US-2402", ... all count for origin MX); no aggregation beyond the
// VolumeAggregator's. The top origin is the one with the most shipments;
// its share s is the evidence measure "origin_share", and the alert's
// corridor is "*-US-*" (every origin and port into US).
//   - Shipments, not declared value: value is dominated by a few dear
//     shipments (one truck more or less swings a week's value by tens of
//     percent, see VolumeDropDetector), while counts have a known noise
//     (Poisson with some overdispersion) that the test below can model;
//     a share of shipments is also what "where do our trucks come from"
//     means to an operator.
//   - A week, not a day: a share is a ratio of two flows, each noisy; a 7 d
//     window has seven times the counts of a day, spans every weekday (the
//     origins' ports have different weekly and daily rhythms, so a daily
//     share swings with the hour), and sourcing changes over weeks. A
//     closure of a few days moves it less than it moves a daily share, and
//     is a volume drop anyway.
//
// Baseline. For every corridor series the detector keeps its window's
// shipments at each bucket close of the last `baseline_weeks` weeks (a
// SeasonalSeriesTable ring, as VolumeDropDetector). The baseline at T pools
// the lagged windows ending T - k x 7 d, k = 1..baseline_weeks, that are
// present and complete (began after the market's first data): with a 7 d
// window these tile the weeks before the current window, so the baseline
// share is the origin's share of [T - 7 d - n weeks, T - 7 d). p0 is the
// top origin's baseline share, r0 = 1 - p0 the other origins' together.
//
// Test. The other origins' shipments R = N - top in the window, against
// what the baseline share expects of them, e = N x r0: the signed root of
// the binomial deviance (the likelihood-ratio statistic for a proportion),
//   D = 2 (R ln(R / e) + top ln(top / (N - e)))      (0 ln 0 = 0)
//   z = sign(e - R) sqrt(D / (1 + N / B + 2 relative_noise² p0 r0 N (1 + 1/n)))
// where B is the baseline's shipments and n its weeks. 1 + N / B is the
// baseline share's own sampling error; the last term is the week-to-week
// variation of each origin's shipments beyond binomial (the share of two
// flows whose weekly totals each vary by relative_noise), for the window
// and, over n weeks pooled, for the baseline. Why the deviance: the others
// are a handful to a few dozen shipments a week, where its tails stay close
// to normal (as in CustomsHoldDetector), and its variance comes from the
// baseline's expectation, so it keeps its power when the others collapse
// to a few shipments; a log odds ratio with Woolf's variance (from the
// observed counts) loses it just then. The market is
//   - firing    when s >= share_threshold, the others' share r = 1 - s is
//               at most others_ratio x r0, and z >= z_threshold: the top
//               origin is dominant now, the alternative supply has shrunk
//               to a fraction of its usual share (by default half), and
//               the change is beyond noise;
//   - recovered when s < share_threshold or z <= recover_z;
//   - otherwise in between.
// Why not the share threshold alone: natural concentration is high (US
// chip imports in the scenario generator are 87% from Mexico, and real
// trade is similar), so a fixed threshold alone alerts forever on clean
// data. Why not the share's rise alone: 87% to 90% is significant on a busy
// market but changes nothing an operator would act on, while the others
// falling from 13% to 6% halves the alternative supply. The rule covers
// both a share crossing the threshold from below (batteries from 63% to
// 85%) and the second source collapsing under a share already above it;
// the top origin need not be the baseline's (a switch from one dominant
// origin to another fires too when the new one is dominant enough).
// Severity while firing: CRITICAL when the others' share is at most
// others_ratio / 2 x r0 (a quarter by default), else WARNING; once
// CRITICAL, an episode stays CRITICAL until it stops firing.
//
// Tuning (defaults; 1 h buckets, 7 d window). Measured on the scenario
// generator's data, the detector run by `shortfall replay`:
//   - dispersion: over 24 clean runs (`shortfall gen --seed 1..24 --events
//     250000`, nine weeks each, 5,700 market-days judged), the variance of
//     z is 0.91 (semiconductors), 1.06 (ppe) and 0.94 (batteries) with
//     relative_noise 0.08, and 1.22, 1.35, 1.38 without it. The generator's
//     day factors (CV 20% per corridor) predict 5 to 8% per origin and
//     week. (Pharmaceuticals and critical minerals, near half and half,
//     show 0.75 and 0.49: the top origin is whichever leads this week.
//     They never come near the threshold.);
//   - clean data: where the share and the others' ratio conditions held,
//     z peaked at 3.2 over those 24 runs (seed 1: Canada's chips ran at 40%
//     of their share for two days by chance; the named scenarios at seeds
//     1 to 3 show the same peak), so z_threshold is 3.5. With 3.0 the 24
//     runs give 3 false alarms (0.05 per market and quarter); with 3.5,
//     none;
//   - the origin_shift scenario (Canada's 13% of US chip imports fading to
//     a tenth over two weeks, about 26 Canadian shipments a week before):
//     fires 9.8 to 17.7 days after the fade starts over its own seed and
//     seeds 2 to 12 (median 14: about when the fade completes; the 7 d
//     window lags a change by half a week, and a few dozen shipments leave
//     little room below the noise), and 4.0 days on seed 1, where the chance
//     dip above met the start of the fade. No corridor of it is busy enough
//     for a volume drop;
//   - port_closure (Laredo closed four days): the top origin's 7 d share
//     peaks at 61% (critical minerals, Canadian), below the threshold. A
//     closure tilts the shares for its duration only and is a volume drop
//     already; a 24 h window would see 80% on the closed days;
//   - hand-made series (tests/operators): a second source falling to a
//     fifth over a week fires 8 days in; a two-week collapse to a tenth
//     opens 3.5 days in and resolves 6.6 days after it ends.
//
// Baseline freeze. As in the other detectors: a close inside an episode
// (from the first firing close until the market has been recovered for a
// whole `window`) is marked anomalous on every corridor of the market, and
// the baseline skips anomalous weeks while at least min_history_weeks
// clean ones remain, so a shift lasting a few weeks does not become its own
// baseline and resolve itself. A shift that lasts becomes the new normal
// once every pooled week has seen it (the baseline pools, so three weeks
// of the new level and one of the old still show a deficit): with the
// defaults the alert resolves about five weeks after the shift began
// (measured: 35 days on the tests' series). As in CustomsHoldDetector, the first firing close
// also marks the closes since z last rose above recover_z (at most two
// windows back): the 7 d window that fires holds a week or more of the
// change, and counted clean it would soften the baseline a week later.
//
// Evidence: measure "origin_share" (of the top origin), observed s,
// expected p0, statistic "share" = s against threshold share_threshold,
// baseline_history_seconds = n weeks, and as top contributors the origins
// (corridor with origin and destination, no port) with their shares of the
// market's shipments, largest first, at most three.
//
// What is not evaluated (no Signal, so an open alert is neither resolved
// nor updated from it): the "unclassified" group; the all-corridors series
// (they are not per origin); a market with fewer than min_history_weeks
// complete lagged weeks (warm-up); a market with fewer than min_shipments
// shipments in the window; a market whose baseline has no other origin
// than the top one (nothing to concentrate: US exports into Mexico come
// from the US). Every other market yields exactly one Signal per close.
//
// Configuration per market: OriginConcentrationOverride, by group and
// destination country, as VolumeDropOverride is by group and corridor.
//
// Cost: O(corridors of the market x baseline_weeks) per market and close,
// and one slot write per corridor report. Memory: 24 bytes per slot, 672
// slots (16 KB) per corridor series with the defaults, plus a few dozen
// bytes per market.
//
// Thread-safety: not thread-safe; one detector per task.
// Failure: Observe never fails. Restore returns kFailedPrecondition for
// state built with another bucket, window or baseline_weeks (naming both),
// or naming a group the catalog lacks; kDataLoss for state it cannot read;
// on any error it leaves the detector empty.
#ifndef SHORTFALL_OPERATORS_ORIGIN_CONCENTRATION_DETECTOR_H_
#define SHORTFALL_OPERATORS_ORIGIN_CONCENTRATION_DETECTOR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "operators/alert_lifecycle.h"
#include "operators/corridor.h"
#include "operators/seasonal_series.h"
#include "operators/state_store.h"
#include "operators/volume_aggregator.h"

namespace shortfall::internal {
class OriginConcentrationSlotState;
}  // namespace shortfall::internal

namespace shortfall::operators {

struct OriginConcentrationOptions {
  // Whether markets are watched at all. Default on; an override can switch
  // single groups or destinations off (or on, when this is off).
  bool enabled = true;
  // The rolling window the shares are measured over; one of
  // WindowOptions::rolling. Default 7 d: see "A week, not a day" above.
  DurationMs window = 7 * kMsPerDay;
  // Weeks of history the baseline share is pooled over (1 to 12). Default
  // 4: more weeks give a steadier share, cost memory and adapt more slowly.
  int baseline_weeks = 4;
  // Complete lagged weeks needed before a market is evaluated (1 to
  // baseline_weeks). Default 2.
  int min_history_weeks = 2;
  // The top origin's share at or above which concentration can alert, in
  // (0, 1]. Default 0.8.
  double share_threshold = 0.8;
  // The other origins' share, as a fraction of its baseline, at or below
  // which the change is material, in (0, 1). Default 0.5: the alternative
  // supply has halved.
  double others_ratio = 0.5;
  // Shipments of the market in the window below which it is not evaluated
  // (>= 0). Default 50: on fewer, a handful of trucks swings the shares.
  double min_shipments = 50;
  // Week-to-week variation of an origin's shipments beyond Poisson, as a
  // fraction (>= 0). Default 0.08, measured (see Tuning): lower lets noise
  // through on busy markets, higher fires later.
  double relative_noise = 0.08;
  // z (the others' deficit, see Test) at or above which the change is
  // beyond noise (> 0). Default 3.5: clean data peaks at 3.2 where the
  // share conditions hold (see Tuning); lower fires sooner on a slow shift.
  double z_threshold = 3.5;
  // z at or below which the market is back in its normal band. Default 1.
  double recover_z = 1.0;

  // kInvalidArgument naming the field, e.g. "origin_concentration.window:
  // 12h is not one of the rolling windows (24h, 7d)".
  Status Validate(const WindowOptions& windows) const;
};

// Per group and destination configuration: the first override whose group
// and destination match ("*" matches any) replaces the fields it sets. The
// "unclassified" group is not watched unless an override names it; group
// "*" does not match it.
struct OriginConcentrationOverride {
  std::string group = "*";
  std::string destination = "*";  // ISO 3166 alpha-2 ("US"), or "*"
  std::optional<double> share_threshold = std::nullopt;
  std::optional<double> others_ratio = std::nullopt;
  std::optional<double> min_shipments = std::nullopt;
  std::optional<double> z_threshold = std::nullopt;
  std::optional<bool> enabled = std::nullopt;
};

// kInvalidArgument naming the override and field, e.g.
// "origin_concentration.overrides[0].destination: 'USA' is not a country
// code like US, or *".
Status ValidateOriginConcentrationOverrides(const std::vector<OriginConcentrationOverride>& overrides,
                                            const std::vector<std::string>& group_names);

class OriginConcentrationDetector {
 public:
  // `group_names[id]` names group id, as for the VolumeAggregator.
  // REQUIRES: options.Validate(windows).ok() and the overrides valid
  // (aborts otherwise). `corridors` must outlive this; Restore interns the
  // codes it reads.
  OriginConcentrationDetector(OriginConcentrationOptions options,
                              std::vector<OriginConcentrationOverride> overrides, const WindowOptions& windows,
                              std::vector<std::string> group_names, CorridorTable* corridors);
  OriginConcentrationDetector(const OriginConcentrationDetector&) = delete;
  OriginConcentrationDetector& operator=(const OriginConcentrationDetector&) = delete;

  // Records the corridor reports in their series' baselines and appends at
  // most one Signal (kind ALERT_KIND_ORIGIN_CONCENTRATION) per market and
  // bucket close to *out, closes in order, markets in (group id,
  // destination) order. REQUIRES: `reports` hold every report of each bucket close they
  // touch (as one VolumeAggregator::AdvanceTo gives them), in order of
  // bucket_end. A close not newer than a market's last is ignored.
  void Observe(const std::vector<WindowReport>& reports, std::vector<Signal>* out);

  // Persistence, namespace "origin_concentration": one key per corridor
  // series and day of slots, as the other seasonal detectors (see
  // SeasonalSeriesTable), the newest slot also carrying its market's state;
  // Restore refuses state of another layout (kFailedPrecondition naming
  // both).
  void Flush(StateWriteBatch* batch);
  Status Restore(const StateView& state);

  // The baseline share of the top origin at the market's latest close;
  // nullopt while it warms up or is too thin, or for a market never seen.
  std::optional<double> BaselineShare(GroupId group, std::string_view destination) const;

  size_t market_count() const { return markets_.size(); }
  size_t series_count() const { return table_.size(); }
  const OriginConcentrationOptions& options() const { return options_; }

 private:
  struct Slot {
    TimestampMs end = kMinTimestamp;  // kMinTimestamp: never written
    uint64_t shipments = 0;
    bool anomalous = false;  // closed inside an episode of its market
  };
  // Options after the market's override.
  struct Tuning {
    bool enabled = true;
    double share_threshold = 0;
    double others_ratio = 0;
    double min_shipments = 0;
    double z_threshold = 0;
  };
  struct Market {
    GroupId group = 0;
    std::string destination;
    Tuning tuning;
    std::vector<CorridorId> corridors;  // its corridor series, in order of first sight
    TimestampMs first_start = kMinTimestamp;  // start of its first bucket
    TimestampMs last_end = kMinTimestamp;     // newest close evaluated
    bool in_episode = false;
    bool critical = false;
    TimestampMs recovered_since = kMinTimestamp;
    TimestampMs rising_since = kMinTimestamp;
    std::optional<double> baseline_share;

    void Save(internal::OriginConcentrationSlotState* out) const;
    // Takes the state in `in` when it is newer than what the market holds.
    void Load(const internal::OriginConcentrationSlotState& in);
    // Forgets the episode (the corridors stay).
    void Reset();
  };
  struct Series {
    SeriesKey key;
    Market* market = nullptr;  // nullptr: not watched
    std::vector<Slot> ring;
    TimestampMs last_end = kMinTimestamp;
    TimestampMs flushed_end = kMinTimestamp;

    // For SeasonalSeriesTable (persistence).
    bool watched() const { return market != nullptr; }
    void SaveSlot(const Slot& slot, bool newest, internal::OriginConcentrationSlotState* out) const;
    void LoadSlot(size_t index, const internal::OriginConcentrationSlotState& in);
    bool LoadState(const internal::OriginConcentrationSlotState& in);
  };
  using MarketKey = std::pair<std::string, std::string>;  // group name, destination

  Tuning TuningFor(GroupId group, std::string_view destination) const;
  // Links a new series to its market (creating it), or leaves it unwatched.
  void Init(Series& fresh);
  // The close at `t` of one market, from its corridor reports at `t`.
  void Evaluate(TimestampMs t, Market* m, const std::vector<const WindowReport*>& reports,
                std::vector<Signal>* out);
  // On the first firing close of an episode: marks the market's closes
  // since z rose (at most two windows back) anomalous, for Flush to rewrite.
  void MarkRise(TimestampMs t, Market* m);

  OriginConcentrationOptions options_;
  std::vector<OriginConcentrationOverride> overrides_;
  size_t window_index_;  // of options_.window in WindowOptions::rolling
  std::vector<std::string> group_names_;
  CorridorTable* corridors_;
  std::map<MarketKey, Market> markets_;  // node addresses are stable: series point at them
  SeasonalSeriesTable<Series, internal::OriginConcentrationSlotState> table_;  // after group_names_, corridors_
  // Scratch, reused: the (market, report) pairs of one close.
  std::vector<std::pair<Market*, const WindowReport*>> close_;
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_ORIGIN_CONCENTRATION_DETECTOR_H_
