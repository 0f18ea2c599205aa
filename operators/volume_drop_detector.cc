#include "operators/volume_drop_detector.h"

#include <algorithm>
#include <cmath>

#include "operators/detector_options.h"
#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr DurationMs kWeek = 7 * kMsPerDay;
constexpr int64_t kSecondsPerWeek = kWeek / kMsPerSecond;
// 1.4826 x MAD estimates the standard deviation of normal data.
constexpr double kMadToSigma = 1.4826;
constexpr std::array<std::string_view, 3> kMeasureNames = {"shipments", "gross_weight_kg",
                                                           "declared_value_usd"};

// Median of values[0, n), which it reorders. REQUIRES: n > 0.
template <size_t N>
double MedianOf(std::array<double, N>& values, int n) {
  const auto first = values.begin();
  const auto last = first + n;
  std::sort(first, last);
  return n % 2 == 1 ? values[static_cast<size_t>(n / 2)]
                    : 0.5 * (values[static_cast<size_t>(n / 2 - 1)] + values[static_cast<size_t>(n / 2)]);
}

}  // namespace

Status VolumeDropOptions::Validate(const WindowOptions& windows) const {
  SHORTFALL_RETURN_IF_ERROR(ValidateSeasonalRing("volume_drop", window, baseline_weeks, min_history_weeks, windows));
  if (!std::isfinite(min_expected_shipments) || min_expected_shipments < 0) {
    return InvalidArgumentError("volume_drop.min_expected_shipments: " + OptionNumber(min_expected_shipments) +
                                " (want >= 0)");
  }
  if (measures.empty()) return InvalidArgumentError("volume_drop.measures: empty (want shipments, gross_weight_kg or declared_value_usd)");
  for (const std::string& m : measures) {
    if (std::find(kMeasureNames.begin(), kMeasureNames.end(), m) == kMeasureNames.end()) {
      return InvalidArgumentError("volume_drop.measures: '" + m +
                                  "' is not a measure (want shipments, gross_weight_kg or declared_value_usd)");
    }
  }
  if (!std::isfinite(relative_floor) || relative_floor <= 0) {
    return InvalidArgumentError("volume_drop.relative_floor: " + OptionNumber(relative_floor) + " (want > 0)");
  }
  return ValidateCusum("volume_drop", cusum_slack, cusum_threshold, recover_z);
}

Status ValidateVolumeDropOverrides(const std::vector<VolumeDropOverride>& overrides,
                                   const std::vector<std::string>& group_names) {
  CorridorTable scratch;  // only to check codes
  for (size_t i = 0; i < overrides.size(); ++i) {
    const VolumeDropOverride& o = overrides[i];
    const std::string field = "volume_drop.overrides[" + std::to_string(i) + "].";
    if (o.group != "*" &&
        std::find(group_names.begin(), group_names.end(), o.group) == group_names.end()) {
      return InvalidArgumentError(field + "group: '" + o.group + "' is not a commodity group");
    }
    if (!scratch.InternCode(o.corridor)) {
      return InvalidArgumentError(field + "corridor: '" + o.corridor +
                                  "' is not a corridor code like MX-US-2304, or *");
    }
    if (o.cusum_threshold && (!std::isfinite(*o.cusum_threshold) || *o.cusum_threshold <= 0)) {
      return InvalidArgumentError(field + "cusum_threshold: " + OptionNumber(*o.cusum_threshold) + " (want > 0)");
    }
    if (o.cusum_slack && (!std::isfinite(*o.cusum_slack) || *o.cusum_slack < 0)) {
      return InvalidArgumentError(field + "cusum_slack: " + OptionNumber(*o.cusum_slack) + " (want >= 0)");
    }
    if (o.min_expected_shipments &&
        (!std::isfinite(*o.min_expected_shipments) || *o.min_expected_shipments < 0)) {
      return InvalidArgumentError(field + "min_expected_shipments: " +
                                  OptionNumber(*o.min_expected_shipments) + " (want >= 0)");
    }
  }
  return OkStatus();
}

VolumeDropDetector::VolumeDropDetector(VolumeDropOptions options,
                                       std::vector<VolumeDropOverride> overrides,
                                       const WindowOptions& windows,
                                       std::vector<std::string> group_names,
                                       CorridorTable* corridors)
    : options_(options),
      overrides_(std::move(overrides)),
      group_names_(std::move(group_names)),
      corridors_(corridors),
      table_({"volume_drop", "volume_drop.window"}, windows.bucket, options.baseline_weeks, options.window,
             &group_names_, corridors) {
  SHORTFALL_CHECK(windows.Validate().ok());
  SHORTFALL_CHECK(options_.Validate(windows).ok());
  SHORTFALL_CHECK(ValidateVolumeDropOverrides(overrides_, group_names_).ok());
  for (size_t m = 0; m < kMeasures; ++m) {
    measure_enabled_[m] =
        std::find(options_.measures.begin(), options_.measures.end(), kMeasureNames[m]) != options_.measures.end();
  }
  window_index_ = windows.RollingIndex(options_.window);
}

VolumeDropDetector::Tuning VolumeDropDetector::TuningFor(SeriesKey key) const {
  Tuning t;
  t.enabled = options_.enabled;
  t.cusum_threshold = options_.cusum_threshold;
  t.cusum_slack = options_.cusum_slack;
  t.min_expected_shipments = options_.min_expected_shipments;
  const std::string& group = group_names_[key.group];
  const std::string& corridor = corridors_->Code(key.corridor);
  // Goods outside the catalog are counted, not watched: their flow is most
  // of a corridor's trucks and says nothing about a critical good. Only an
  // override that names the group can switch it on.
  const bool unclassified = group == kUnclassifiedGroup;
  if (unclassified) t.enabled = false;
  for (const VolumeDropOverride& o : overrides_) {
    if ((o.group != "*" && o.group != group) || (o.corridor != "*" && o.corridor != corridor)) {
      continue;
    }
    if (unclassified && o.group == "*") continue;
    t.enabled = o.enabled.value_or(t.enabled);
    t.cusum_threshold = o.cusum_threshold.value_or(t.cusum_threshold);
    t.cusum_slack = o.cusum_slack.value_or(t.cusum_slack);
    t.min_expected_shipments = o.min_expected_shipments.value_or(t.min_expected_shipments);
    break;
  }
  return t;
}

std::optional<double> VolumeDropDetector::ExpectedShipments(SeriesKey series) const {
  const Series* s = table_.Find(series);
  return s == nullptr ? std::nullopt : s->expected_shipments;
}

std::optional<VolumeDropReading> VolumeDropDetector::Reading(SeriesKey series) const {
  const Series* s = table_.Find(series);
  if (s == nullptr || !s->tuning.enabled) return std::nullopt;
  VolumeDropReading r;
  r.bucket_end = s->last_end;
  r.expected = s->expected_shipments;
  r.evaluated = s->shipments_scale > 0;
  r.scale = s->shipments_scale;
  r.cusum = s->cusum[0];
  r.threshold = s->tuning.cusum_threshold;
  return r;
}

void VolumeDropDetector::Observe(const WindowReport& report, std::vector<Signal>* out) {
  Series& s = table_.For(report.series, [&](Series& fresh) { fresh.tuning = TuningFor(fresh.key); });
  if (!s.tuning.enabled) return;
  bool stale = false;
  if (!table_.Advance(s, report.bucket_end, &stale)) return;
  // A series back after more than the whole baseline span starts afresh:
  // every slot is stale, and so is the evidence in its CUSUM. (Flush may
  // have dropped such a series already; this makes that invisible.)
  if (stale) s.ResetState();
  Evaluate(report, &s, out);
}

void VolumeDropDetector::Series::ResetState() {
  cusum = {};
  critical = false;
  in_episode = false;
  recovered_since = kMinTimestamp;
  expected_shipments.reset();
  shipments_scale = 0;
}

void VolumeDropDetector::Evaluate(const WindowReport& report, Series* s, std::vector<Signal>* out) {
  const TimestampMs t = report.bucket_end;
  const size_t here = table_.SlotIndex(t);

  // The lagged values must be read before `here` is overwritten: with
  // baseline_weeks weeks in the ring, T - baseline_weeks x 7 d is in it.
  std::array<std::array<double, kMaxBaselineWeeks>, kMeasures> lagged;
  std::array<const Slot*, kMaxBaselineWeeks> present{};
  int found = 0;
  int clean = 0;
  for (int k = 1; k <= options_.baseline_weeks; ++k) {
    const Slot* slot = table_.Lagged(s->ring, t, k);
    if (slot == nullptr) continue;  // stale or never written: not present
    present[static_cast<size_t>(found++)] = slot;
    if (!slot->anomalous) ++clean;
  }
  // Skip the weeks of a drop episode while enough clean ones remain.
  const bool skip_anomalous = clean >= options_.min_history_weeks;
  int n = 0;
  for (int i = 0; i < found; ++i) {
    const Slot& slot = *present[static_cast<size_t>(i)];
    if (skip_anomalous && slot.anomalous) continue;
    const auto j = static_cast<size_t>(n++);
    lagged[0][j] = static_cast<double>(slot.shipments);
    lagged[1][j] = static_cast<double>(slot.gross_weight) / kWeightScale;
    lagged[2][j] = static_cast<double>(slot.declared_value) / kValueScale;
  }
  const VolumeDelta& window = report.rolling[window_index_];
  Slot& slot_here = s->ring[here];
  slot_here = Slot{t, window.shipments, window.gross_weight, window.declared_value, s->in_episode};
  s->last_end = t;
  s->shipments_scale = 0;

  if (n < options_.min_history_weeks) {
    s->expected_shipments.reset();
    return;
  }
  const std::array<double, kMeasures> observed = {static_cast<double>(window.shipments),
                                                  window.gross_weight_kg(),
                                                  window.declared_value_usd()};
  std::array<double, kMeasures> expected{};
  std::array<double, kMeasures> z{};
  std::array<bool, kMeasures> evaluated{};
  for (size_t m = 0; m < kMeasures; ++m) {
    expected[m] = MedianOf(lagged[m], n);
  }
  s->expected_shipments = expected[0];
  const Tuning& tuning = s->tuning;
  if (expected[0] < tuning.min_expected_shipments) return;  // thin: S stays as it was

  const double step = static_cast<double>(table_.bucket()) / static_cast<double>(options_.window);
  bool any = false;
  bool recovered = true;
  for (size_t m = 0; m < kMeasures; ++m) {
    if (!measure_enabled_[m] || !(expected[m] > 0)) {
      s->cusum[m] = 0;
      continue;
    }
    std::array<double, kMaxBaselineWeeks>& deviation = lagged[m];
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      deviation[i] = std::fabs(deviation[i] - expected[m]);
    }
    double scale = std::max(kMadToSigma * MedianOf(deviation, n), options_.relative_floor * expected[m]);
    if (m == 0) {
      const double spread = options_.relative_floor * expected[m];
      scale = std::max(scale, std::sqrt(expected[m] + spread * spread));
    }
    z[m] = (observed[m] - expected[m]) / scale;
    if (m == 0) s->shipments_scale = scale;
    s->cusum[m] = std::max(0.0, s->cusum[m] + (-z[m] - tuning.cusum_slack) * step);
    evaluated[m] = true;
    any = true;
    recovered = recovered && z[m] >= options_.recover_z;
  }
  if (!any) return;
  if (recovered) {
    s->cusum = {};
    if (s->recovered_since == kMinTimestamp) s->recovered_since = t;
    if (t - s->recovered_since >= options_.window) s->in_episode = false;
  } else {
    s->recovered_since = kMinTimestamp;
  }

  size_t strongest = kMeasures;
  for (size_t m = 0; m < kMeasures; ++m) {
    if (!evaluated[m]) continue;
    if (strongest == kMeasures || s->cusum[m] > s->cusum[strongest] ||
        (s->cusum[m] == s->cusum[strongest] && z[m] < z[strongest])) {
      strongest = m;
    }
  }
  const double statistic = s->cusum[strongest];
  const bool firing = statistic >= tuning.cusum_threshold;
  if (firing) s->in_episode = true;
  slot_here.anomalous = s->in_episode;
  s->critical = firing && (s->critical || observed[strongest] <= 0.5 * expected[strongest] ||
                           statistic >= 2 * tuning.cusum_threshold);

  Signal& signal = out->emplace_back();
  signal.kind = v1::ALERT_KIND_VOLUME_DROP;
  signal.group = group_names_[s->key.group];
  signal.corridor = corridors_->Code(s->key.corridor);
  signal.window_start = t - options_.window;
  signal.window_end = t;
  signal.firing = firing;
  signal.recovered = recovered;
  signal.severity = !firing        ? v1::SEVERITY_UNSPECIFIED
                    : s->critical ? v1::SEVERITY_CRITICAL
                                  : v1::SEVERITY_WARNING;
  v1::Evidence& e = signal.evidence;
  e.set_measure(std::string(kMeasureNames[strongest]));
  e.set_observed(observed[strongest]);
  e.set_expected(expected[strongest]);
  e.set_statistic("cusum");
  e.set_statistic_value(statistic);
  e.set_threshold(tuning.cusum_threshold);
  e.set_baseline_history_seconds(int64_t{n} * kSecondsPerWeek);
}

void VolumeDropDetector::Series::SaveSlot(const Slot& slot, bool newest, internal::VolumeDropSlotState* out) const {
  out->set_bucket_end_ms(slot.end);
  out->set_shipments(slot.shipments);
  out->set_gross_weight_g(slot.gross_weight);
  out->set_declared_value(slot.declared_value);
  out->set_anomalous(slot.anomalous);
  if (!newest) return;
  for (double c : cusum) out->add_cusum(c);
  if (expected_shipments) out->set_expected_shipments(*expected_shipments);
  out->set_critical(critical);
  out->set_in_episode(in_episode);
  if (recovered_since != kMinTimestamp) out->set_recovered_since_ms(recovered_since);
}

void VolumeDropDetector::Series::LoadSlot(size_t index, const internal::VolumeDropSlotState& in) {
  ring[index] = Slot{in.bucket_end_ms(), in.shipments(), in.gross_weight_g(), in.declared_value(), in.anomalous()};
}

bool VolumeDropDetector::Series::LoadState(const internal::VolumeDropSlotState& in) {
  if (in.cusum_size() != static_cast<int>(kMeasures)) return false;
  for (size_t m = 0; m < kMeasures; ++m) cusum[m] = in.cusum(static_cast<int>(m));
  critical = in.critical();
  in_episode = in.in_episode();
  recovered_since = in.has_recovered_since_ms() ? in.recovered_since_ms() : kMinTimestamp;
  expected_shipments.reset();
  if (in.has_expected_shipments()) expected_shipments = in.expected_shipments();
  return true;
}

void VolumeDropDetector::Flush(StateWriteBatch* batch) { table_.Flush(batch); }

Status VolumeDropDetector::Restore(const StateView& state) {
  return table_.Restore(state, [&](Series& fresh) { fresh.tuning = TuningFor(fresh.key); });
}

}  // namespace shortfall::operators
