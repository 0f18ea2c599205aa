#include "operators/customs_hold_detector.h"

#include <algorithm>
#include <cmath>

#include "operators/detector_options.h"
#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr DurationMs kWeek = 7 * kMsPerDay;
constexpr int64_t kSecondsPerWeek = kWeek / kMsPerSecond;
constexpr size_t kFiled = v1::CUSTOMS_STATUS_FILED;
constexpr size_t kHold = v1::CUSTOMS_STATUS_HOLD;
constexpr size_t kExam = v1::CUSTOMS_STATUS_EXAM_SELECTED;
// The rate at or above which a firing episode is CRITICAL, in units of p0.
constexpr double kCriticalRatio = 4.0;

}  // namespace

Status CustomsHoldOptions::Validate(const WindowOptions& windows) const {
  SHORTFALL_RETURN_IF_ERROR(ValidateSeasonalRing("customs_hold", window, baseline_weeks, min_history_weeks, windows));
  if (!std::isfinite(min_filings) || min_filings < 0) {
    return InvalidArgumentError("customs_hold.min_filings: " + OptionNumber(min_filings) + " (want >= 0)");
  }
  if (!std::isfinite(overdispersion) || overdispersion < 0) {
    return InvalidArgumentError("customs_hold.overdispersion: " + OptionNumber(overdispersion) + " (want >= 0)");
  }
  SHORTFALL_RETURN_IF_ERROR(ValidateCusum("customs_hold", cusum_slack, cusum_threshold, recover_z));
  if (!std::isfinite(min_ratio) || min_ratio < 1) {
    return InvalidArgumentError("customs_hold.min_ratio: " + OptionNumber(min_ratio) + " (want >= 1)");
  }
  return OkStatus();
}

CustomsHoldDetector::CustomsHoldDetector(CustomsHoldOptions options, const WindowOptions& windows,
                                         std::vector<std::string> group_names, CorridorTable* corridors)
    : options_(options),
      group_names_(std::move(group_names)),
      corridors_(corridors),
      table_({"customs_hold", "customs_hold.window"}, windows.bucket, options.baseline_weeks, options.window,
             &group_names_, corridors) {
  SHORTFALL_CHECK(windows.Validate().ok());
  SHORTFALL_CHECK(options_.Validate(windows).ok());
  window_index_ = windows.RollingIndex(options_.window);
}

void CustomsHoldDetector::Init(Series& fresh) const {
  fresh.enabled = options_.enabled && group_names_[fresh.key.group] != kUnclassifiedGroup;
}

std::optional<double> CustomsHoldDetector::BaselineRate(SeriesKey series) const {
  const Series* s = table_.Find(series);
  return s == nullptr ? std::nullopt : s->baseline_rate;
}

void CustomsHoldDetector::Observe(const WindowReport& report, std::vector<Signal>* out) {
  Series& s = table_.For(report.series, [&](Series& fresh) { Init(fresh); });
  if (!s.enabled) return;
  bool stale = false;
  if (!table_.Advance(s, report.bucket_end, &stale)) return;
  // Back after more than the whole baseline span: every slot is stale, and
  // so is the evidence in the CUSUM.
  if (stale) s.ResetState();
  Evaluate(report, &s, out);
}

void CustomsHoldDetector::Series::ResetState() {
  cusum = 0;
  critical = false;
  in_episode = false;
  recovered_since = kMinTimestamp;
  rising_since = kMinTimestamp;
  baseline_rate.reset();
}

void CustomsHoldDetector::Evaluate(const WindowReport& report, Series* s, std::vector<Signal>* out) {
  const TimestampMs t = report.bucket_end;
  const size_t here = table_.SlotIndex(t);

  // Read the lagged slots before `here` is overwritten (T - baseline_weeks
  // x 7 d is the slot itself).
  std::array<const Slot*, kMaxBaselineWeeks> present{};
  int found = 0;
  int clean = 0;
  for (int k = 1; k <= options_.baseline_weeks; ++k) {
    const Slot* slot = table_.Lagged(s->ring, t, k);
    if (slot == nullptr) continue;
    present[static_cast<size_t>(found++)] = slot;
    if (!slot->anomalous) ++clean;
  }
  const bool skip_anomalous = clean >= options_.min_history_weeks;
  int n = 0;
  uint64_t base_holds = 0;
  uint64_t base_filings = 0;
  for (int i = 0; i < found; ++i) {
    const Slot& slot = *present[static_cast<size_t>(i)];
    if (skip_anomalous && slot.anomalous) continue;
    ++n;
    base_holds += slot.holds;
    base_filings += slot.filings;
  }
  const VolumeDelta& window = report.rolling[window_index_];
  const uint64_t holds = window.customs[kHold] + window.customs[kExam];
  const uint64_t filings = window.customs[kFiled];
  Slot& slot_here = s->ring[here];
  slot_here = Slot{t, holds, filings, s->in_episode};
  s->last_end = t;

  if (n < options_.min_history_weeks || base_filings == 0) {
    s->baseline_rate.reset();
    return;
  }
  const double sum_filings = static_cast<double>(base_filings);
  const double p0 = std::max(static_cast<double>(base_holds), 0.5) / sum_filings;
  s->baseline_rate = p0;
  const double observed_filings = static_cast<double>(filings);
  if (observed_filings < options_.min_filings || filings == 0) return;  // thin: S stays as it was

  const double observed_holds = static_cast<double>(holds);
  const double expected = observed_filings * p0;
  // Signed root of the Poisson deviance, scaled quasi-Poisson style by the
  // variance inflation: its tails stay close to normal at a handful of
  // holds, where (holds - expected) / sqrt(expected) puts 6 holds against 1
  // expected at z = 5 (deviance: 2.9). The inflation adds the baseline's
  // own sampling error, filings / sum_filings of the Poisson variance, so
  // a baseline of two thin weeks does not make noise look significant.
  const double deviance = observed_holds > 0
                              ? 2 * (observed_holds * std::log(observed_holds / expected) - (observed_holds - expected))
                              : 2 * expected;
  const double inflation = (1 + options_.overdispersion) * (1 + observed_filings / sum_filings);
  const double z = std::copysign(std::sqrt(std::max(0.0, deviance) / inflation), observed_holds - expected);
  const double step = static_cast<double>(table_.bucket()) / static_cast<double>(options_.window);
  s->cusum = std::max(0.0, s->cusum + (z - options_.cusum_slack) * step);
  const bool recovered = z <= options_.recover_z;
  if (recovered) {
    s->cusum = 0;
    if (s->recovered_since == kMinTimestamp) s->recovered_since = t;
    if (t - s->recovered_since >= options_.window) s->in_episode = false;
  } else {
    s->recovered_since = kMinTimestamp;
  }
  const double rate = observed_holds / observed_filings;
  const bool firing = s->cusum >= options_.cusum_threshold && rate >= options_.min_ratio * p0;
  if (s->cusum == 0) {
    s->rising_since = kMinTimestamp;
  } else if (s->rising_since == kMinTimestamp) {
    s->rising_since = t;
  }
  if (firing && !s->in_episode) MarkRise(t, s);
  if (firing) s->in_episode = true;
  slot_here.anomalous = s->in_episode;
  s->critical = firing && (s->critical || rate >= kCriticalRatio * p0 ||
                           s->cusum >= 2 * options_.cusum_threshold);

  Signal& signal = out->emplace_back();
  signal.kind = v1::ALERT_KIND_CUSTOMS_HOLD_SPIKE;
  signal.group = group_names_[s->key.group];
  signal.corridor = corridors_->Code(s->key.corridor);
  signal.window_start = t - options_.window;
  signal.window_end = t;
  signal.firing = firing;
  signal.recovered = recovered && !firing;
  signal.severity = !firing ? v1::SEVERITY_UNSPECIFIED : s->critical ? v1::SEVERITY_CRITICAL : v1::SEVERITY_WARNING;
  v1::Evidence& e = signal.evidence;
  e.set_measure("hold_rate");
  e.set_observed(rate);
  e.set_expected(p0);
  e.set_statistic("cusum");
  e.set_statistic_value(s->cusum);
  e.set_threshold(options_.cusum_threshold);
  e.set_baseline_history_seconds(int64_t{n} * kSecondsPerWeek);
}

void CustomsHoldDetector::MarkRise(TimestampMs t, Series* s) {
  // The CUSUM fires a day or two into a wave; the closes since it started
  // rising hold the wave too, and would inflate next week's baseline (and
  // hide a second wave then) if they counted as clean. At most a week back.
  table_.MarkAnomalous(*s, std::max(s->rising_since, t - kWeek + table_.bucket()), t);
}

void CustomsHoldDetector::Series::SaveSlot(const Slot& slot, bool newest, internal::CustomsHoldSlotState* out) const {
  out->set_bucket_end_ms(slot.end);
  out->set_holds(slot.holds);
  out->set_filings(slot.filings);
  out->set_anomalous(slot.anomalous);
  if (!newest) return;
  out->set_cusum(cusum);
  if (baseline_rate) out->set_baseline_rate(*baseline_rate);
  out->set_critical(critical);
  out->set_in_episode(in_episode);
  if (recovered_since != kMinTimestamp) out->set_recovered_since_ms(recovered_since);
  if (rising_since != kMinTimestamp) out->set_rising_since_ms(rising_since);
}

void CustomsHoldDetector::Series::LoadSlot(size_t index, const internal::CustomsHoldSlotState& in) {
  ring[index] = Slot{in.bucket_end_ms(), in.holds(), in.filings(), in.anomalous()};
}

bool CustomsHoldDetector::Series::LoadState(const internal::CustomsHoldSlotState& in) {
  if (!in.has_cusum()) return false;
  cusum = in.cusum();
  critical = in.critical();
  in_episode = in.in_episode();
  recovered_since = in.has_recovered_since_ms() ? in.recovered_since_ms() : kMinTimestamp;
  rising_since = in.has_rising_since_ms() ? in.rising_since_ms() : kMinTimestamp;
  baseline_rate.reset();
  if (in.has_baseline_rate()) baseline_rate = in.baseline_rate();
  return true;
}

void CustomsHoldDetector::Flush(StateWriteBatch* batch) { table_.Flush(batch); }

Status CustomsHoldDetector::Restore(const StateView& state) {
  return table_.Restore(state, [&](Series& fresh) { Init(fresh); });
}

}  // namespace shortfall::operators
