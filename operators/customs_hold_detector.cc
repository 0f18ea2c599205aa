#include "operators/customs_hold_detector.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_set>

#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr std::string_view kHoldNs = "customs_hold";
constexpr std::string_view kLayoutKey = "layout";
constexpr DurationMs kWeek = 7 * kMsPerDay;
constexpr int64_t kSecondsPerWeek = kWeek / kMsPerSecond;
constexpr size_t kFiled = v1::CUSTOMS_STATUS_FILED;
constexpr size_t kHold = v1::CUSTOMS_STATUS_HOLD;
constexpr size_t kExam = v1::CUSTOMS_STATUS_EXAM_SELECTED;
// The rate at or above which a firing episode is CRITICAL, in units of p0.
constexpr double kCriticalRatio = 4.0;

std::string Num(double x) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", x);
  return buffer;
}

void AppendSlotIndex(uint32_t index, std::string* key) {
  for (int shift = 24; shift >= 0; shift -= 8) key->push_back(static_cast<char>(index >> shift));
}

}  // namespace

Status CustomsHoldOptions::Validate(const WindowOptions& windows) const {
  SHORTFALL_RETURN_IF_ERROR(windows.Validate());
  if (std::find(windows.rolling.begin(), windows.rolling.end(), window) == windows.rolling.end()) {
    std::string list;
    for (DurationMs w : windows.rolling) list += (list.empty() ? "" : ", ") + FormatDuration(w);
    return InvalidArgumentError("customs_hold.window: " + FormatDuration(window) +
                                " is not one of the rolling windows (" + list + ")");
  }
  if (baseline_weeks < 1 || baseline_weeks > kMaxBaselineWeeks) {
    return InvalidArgumentError("customs_hold.baseline_weeks: " + std::to_string(baseline_weeks) +
                                " (want 1 to " + std::to_string(kMaxBaselineWeeks) + ")");
  }
  const int64_t slots = kWeek / windows.bucket * baseline_weeks;
  if (slots > kMaxBaselineSlots) {
    return InvalidArgumentError(
        "customs_hold.baseline_weeks: " + std::to_string(baseline_weeks) + " weeks of " +
        FormatDuration(windows.bucket) + " buckets are " + std::to_string(slots) +
        " slots per series, more than " + std::to_string(kMaxBaselineSlots) +
        " (use fewer weeks or a longer window.bucket)");
  }
  if (min_history_weeks < 1 || min_history_weeks > baseline_weeks) {
    return InvalidArgumentError("customs_hold.min_history_weeks: " + std::to_string(min_history_weeks) +
                                " (want 1 to baseline_weeks, " + std::to_string(baseline_weeks) + ")");
  }
  if (!std::isfinite(min_filings) || min_filings < 0) {
    return InvalidArgumentError("customs_hold.min_filings: " + Num(min_filings) + " (want >= 0)");
  }
  if (!std::isfinite(overdispersion) || overdispersion < 0) {
    return InvalidArgumentError("customs_hold.overdispersion: " + Num(overdispersion) + " (want >= 0)");
  }
  if (!std::isfinite(cusum_slack) || cusum_slack < 0) {
    return InvalidArgumentError("customs_hold.cusum_slack: " + Num(cusum_slack) + " (want >= 0)");
  }
  if (!std::isfinite(cusum_threshold) || cusum_threshold <= 0) {
    return InvalidArgumentError("customs_hold.cusum_threshold: " + Num(cusum_threshold) + " (want > 0)");
  }
  if (!std::isfinite(recover_z)) {
    return InvalidArgumentError("customs_hold.recover_z: " + Num(recover_z) + " (want a number)");
  }
  if (!std::isfinite(min_ratio) || min_ratio < 1) {
    return InvalidArgumentError("customs_hold.min_ratio: " + Num(min_ratio) + " (want >= 1)");
  }
  return OkStatus();
}

CustomsHoldDetector::CustomsHoldDetector(CustomsHoldOptions options, const WindowOptions& windows,
                                         std::vector<std::string> group_names, CorridorTable* corridors)
    : options_(options), bucket_(windows.bucket), group_names_(std::move(group_names)), corridors_(corridors) {
  SHORTFALL_CHECK(windows.Validate().ok());
  SHORTFALL_CHECK(options_.Validate(windows).ok());
  window_index_ = static_cast<size_t>(
      std::find(windows.rolling.begin(), windows.rolling.end(), options_.window) - windows.rolling.begin());
  slots_per_week_ = static_cast<size_t>(kWeek / bucket_);
  ring_size_ = slots_per_week_ * static_cast<size_t>(options_.baseline_weeks);
}

CustomsHoldDetector::Series& CustomsHoldDetector::SeriesFor(SeriesKey key) {
  SHORTFALL_CHECK(key.group < group_names_.size() && key.corridor < corridors_->size());
  const size_t index = size_t{key.corridor} * kMaxGroupIds + key.group;
  if (index < series_index_.size() && series_index_[index] != nullptr) return *series_index_[index];
  auto [it, inserted] = series_.try_emplace(Pack(key));
  if (inserted) {
    it->second.key = key;
    // Goods outside the catalog are counted, not watched: a hold on them
    // says nothing about a critical good.
    it->second.enabled = options_.enabled && group_names_[key.group] != kUnclassifiedGroup;
  }
  if (index >= series_index_.size()) series_index_.resize(index + kMaxGroupIds, nullptr);
  series_index_[index] = &it->second;
  return it->second;
}

CustomsHoldDetector::Series* CustomsHoldDetector::FindSeries(SeriesKey key) const {
  const size_t index = size_t{key.corridor} * kMaxGroupIds + key.group;
  return index < series_index_.size() ? series_index_[index] : nullptr;
}

size_t CustomsHoldDetector::SlotIndex(TimestampMs bucket_end) const {
  const int64_t n = static_cast<int64_t>(ring_size_);
  const int64_t r = AlignDown(bucket_end, bucket_) / bucket_ % n;
  return static_cast<size_t>(r < 0 ? r + n : r);
}

std::optional<double> CustomsHoldDetector::BaselineRate(SeriesKey series) const {
  const Series* s = FindSeries(series);
  return s == nullptr ? std::nullopt : s->baseline_rate;
}

void CustomsHoldDetector::Observe(const WindowReport& report, std::vector<Signal>* out) {
  Series& s = SeriesFor(report.series);
  if (!s.enabled) return;
  const TimestampMs t = report.bucket_end;
  if (s.last_end != kMinTimestamp && t <= s.last_end) return;
  newest_end_ = std::max(newest_end_, t);
  if (s.ring.empty()) s.ring.resize(ring_size_);
  // Back after more than the whole baseline span: every slot is stale, and
  // so is the evidence in the CUSUM.
  const DurationMs span = kWeek * options_.baseline_weeks;
  if (s.last_end != kMinTimestamp && t - s.last_end > span) {
    s.cusum = 0;
    s.critical = false;
    s.in_episode = false;
    s.recovered_since = kMinTimestamp;
    s.rising_since = kMinTimestamp;
    s.baseline_rate.reset();
  }
  Evaluate(report, &s, out);
}

void CustomsHoldDetector::Evaluate(const WindowReport& report, Series* s, std::vector<Signal>* out) {
  const TimestampMs t = report.bucket_end;
  const size_t here = SlotIndex(t);

  // Read the lagged slots before `here` is overwritten (T - baseline_weeks
  // x 7 d is the slot itself).
  std::array<const Slot*, kMaxBaselineWeeks> present{};
  int found = 0;
  int clean = 0;
  for (int k = 1; k <= options_.baseline_weeks; ++k) {
    const size_t back = static_cast<size_t>(k) * slots_per_week_;
    const Slot& slot = s->ring[(here + ring_size_ - back % ring_size_) % ring_size_];
    if (slot.end != t - k * kWeek) continue;
    present[static_cast<size_t>(found++)] = &slot;
    if (!slot.anomalous) ++clean;
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
  const double step = static_cast<double>(bucket_) / static_cast<double>(options_.window);
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
  const TimestampMs from = std::max(s->rising_since, t - kWeek + bucket_);
  TimestampMs earliest = t;
  for (TimestampMs end = from; end < t; end += bucket_) {
    Slot& slot = s->ring[SlotIndex(end)];
    if (slot.end != end || slot.anomalous) continue;
    slot.anomalous = true;
    earliest = std::min(earliest, end);
  }
  // Flush writes the slots after flushed_end: make it write these again.
  if (earliest < t && s->flushed_end != kMinTimestamp && s->flushed_end >= earliest) {
    s->flushed_end = earliest - bucket_;
  }
}

std::string CustomsHoldDetector::SeriesPrefix(SeriesKey key) const {
  std::string prefix = group_names_[key.group];
  prefix.push_back('\0');
  prefix += corridors_->Code(key.corridor);
  prefix.push_back('\0');
  return prefix;
}

std::string CustomsHoldDetector::Layout() const {
  return "bucket=" + FormatDuration(bucket_) + " window=" + FormatDuration(options_.window) +
         " baseline_weeks=" + std::to_string(options_.baseline_weeks);
}

void CustomsHoldDetector::EraseSeries(Series* s, bool delete_persisted) {
  if (delete_persisted) {
    const std::string prefix = SeriesPrefix(s->key);
    for (size_t i = 0; i < s->ring.size(); ++i) {
      if (s->ring[i].end == kMinTimestamp) continue;
      std::string key = prefix;
      AppendSlotIndex(static_cast<uint32_t>(i), &key);
      deleted_keys_.push_back(std::move(key));
    }
  }
  const SeriesKey key = s->key;
  series_index_[size_t{key.corridor} * kMaxGroupIds + key.group] = nullptr;
  series_.erase(Pack(key));
}

void CustomsHoldDetector::Flush(StateWriteBatch* batch) {
  if (!layout_persisted_) {
    batch->Put(kHoldNs, kLayoutKey, Layout());
    layout_persisted_ = true;
  }
  const DurationMs span = kWeek * options_.baseline_weeks;
  std::vector<Series*> expired;
  for (auto& [packed, s] : series_) {
    if (s.last_end != kMinTimestamp && newest_end_ - s.last_end > span) expired.push_back(&s);
  }
  for (Series* s : expired) EraseSeries(s, /*delete_persisted=*/true);
  for (const std::string& key : deleted_keys_) batch->Delete(kHoldNs, key);
  deleted_keys_.clear();

  internal::CustomsHoldSlotState state;
  std::string key;
  for (auto& [packed, s] : series_) {
    if (s.last_end == kMinTimestamp || s.last_end <= s.flushed_end) continue;
    const size_t steps =
        s.flushed_end == kMinTimestamp
            ? ring_size_
            : static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(ring_size_),
                                                    (s.last_end - s.flushed_end) / bucket_));
    const std::string prefix = SeriesPrefix(s.key);
    for (size_t i = 0; i < steps; ++i) {
      const TimestampMs end = s.last_end - static_cast<TimestampMs>(i) * bucket_;
      const size_t index = SlotIndex(end);
      const Slot& slot = s.ring[index];
      if (slot.end != end) continue;
      state.Clear();
      state.set_bucket_end_ms(slot.end);
      state.set_holds(slot.holds);
      state.set_filings(slot.filings);
      state.set_anomalous(slot.anomalous);
      if (i == 0) {
        state.set_cusum(s.cusum);
        if (s.baseline_rate) state.set_baseline_rate(*s.baseline_rate);
        state.set_critical(s.critical);
        state.set_in_episode(s.in_episode);
        if (s.recovered_since != kMinTimestamp) state.set_recovered_since_ms(s.recovered_since);
        if (s.rising_since != kMinTimestamp) state.set_rising_since_ms(s.rising_since);
      }
      key = prefix;
      AppendSlotIndex(static_cast<uint32_t>(index), &key);
      batch->Put(kHoldNs, key, state.SerializeAsString());
    }
    s.flushed_end = s.last_end;
  }
}

Status CustomsHoldDetector::Restore(const StateView& state) {
  Status status = RestoreFrom(state);
  if (!status.ok()) {
    series_.clear();
    series_index_.clear();
    deleted_keys_.clear();
    newest_end_ = kMinTimestamp;
    layout_persisted_ = false;
  }
  return status;
}

Status CustomsHoldDetector::RestoreFrom(const StateView& state) {
  series_.clear();
  series_index_.clear();
  deleted_keys_.clear();
  newest_end_ = kMinTimestamp;
  layout_persisted_ = false;

  SHORTFALL_ASSIGN_OR_RETURN(std::optional<std::string> layout, state.Get(kHoldNs, kLayoutKey));
  if (layout && *layout != Layout()) {
    return FailedPreconditionError(
        "customs_hold state was built with " + *layout + ", not " + Layout() +
        "; use the same window.bucket, customs_hold.window and customs_hold.baseline_weeks, or an "
        "empty state directory");
  }
  layout_persisted_ = layout.has_value();

  Status error;
  std::unordered_set<const Series*> newest_has_state;
  internal::CustomsHoldSlotState slot_state;
  SHORTFALL_RETURN_IF_ERROR(state.Scan(kHoldNs, "", [&](std::string_view key, std::string_view value) {
    if (key == kLayoutKey) return true;
    if (!layout) {
      error = DataLossError("customs_hold state: slots without a layout");
      return false;
    }
    const size_t g_end = key.find('\0');
    const size_t c_end = g_end == std::string_view::npos ? g_end : key.find('\0', g_end + 1);
    if (c_end == std::string_view::npos || key.size() != c_end + 5) {
      error = DataLossError("customs_hold state: malformed key");
      return false;
    }
    const std::string_view group = key.substr(0, g_end);
    const auto gid = std::find(group_names_.begin(), group_names_.end(), group);
    if (gid == group_names_.end()) {
      error = FailedPreconditionError(
          "customs_hold state names group '" + std::string(group) +
          "' that the catalog does not have; restore with the catalog the state was built "
          "with, or start from an empty state directory");
      return false;
    }
    const std::optional<CorridorId> corridor = corridors_->InternCode(key.substr(g_end + 1, c_end - g_end - 1));
    if (!corridor) {
      error = DataLossError("customs_hold state: malformed corridor in key");
      return false;
    }
    uint32_t index = 0;
    for (char c : key.substr(c_end + 1)) index = (index << 8) | static_cast<uint8_t>(c);
    if (!slot_state.ParseFromArray(value.data(), static_cast<int>(value.size())) || index >= ring_size_ ||
        AlignDown(slot_state.bucket_end_ms(), bucket_) != slot_state.bucket_end_ms() ||
        SlotIndex(slot_state.bucket_end_ms()) != index) {
      error = DataLossError("customs_hold state: malformed slot");
      return false;
    }
    Series& s = SeriesFor(SeriesKey{static_cast<GroupId>(gid - group_names_.begin()), *corridor});
    if (!s.enabled) {  // switched off since: its state goes
      deleted_keys_.emplace_back(key);
      return true;
    }
    if (s.ring.empty()) s.ring.resize(ring_size_);
    s.ring[index] = Slot{slot_state.bucket_end_ms(), slot_state.holds(), slot_state.filings(), slot_state.anomalous()};
    if (s.last_end == kMinTimestamp || slot_state.bucket_end_ms() > s.last_end) {
      s.last_end = slot_state.bucket_end_ms();
      if (slot_state.has_cusum()) {
        newest_has_state.insert(&s);
        s.cusum = slot_state.cusum();
        s.critical = slot_state.critical();
        s.in_episode = slot_state.in_episode();
        s.recovered_since = slot_state.has_recovered_since_ms() ? slot_state.recovered_since_ms() : kMinTimestamp;
        s.rising_since = slot_state.has_rising_since_ms() ? slot_state.rising_since_ms() : kMinTimestamp;
        s.baseline_rate.reset();
        if (slot_state.has_baseline_rate()) s.baseline_rate = slot_state.baseline_rate();
      } else {
        newest_has_state.erase(&s);
      }
    }
    return true;
  }));
  SHORTFALL_RETURN_IF_ERROR(error);
  for (auto& [packed, s] : series_) {
    if (s.last_end == kMinTimestamp) continue;
    if (!newest_has_state.contains(&s)) {
      return DataLossError("customs_hold state: the newest slot of " + group_names_[s.key.group] + " " +
                           corridors_->Code(s.key.corridor) + " has no detector state");
    }
    s.flushed_end = s.last_end;
    newest_end_ = std::max(newest_end_, s.last_end);
  }
  return OkStatus();
}

}  // namespace shortfall::operators
