#include "operators/volume_drop_detector.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_set>

#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr std::string_view kDropNs = "volume_drop";
constexpr std::string_view kLayoutKey = "layout";
constexpr DurationMs kWeek = 7 * kMsPerDay;
constexpr int64_t kSecondsPerWeek = kWeek / kMsPerSecond;
// 1.4826 x MAD estimates the standard deviation of normal data.
constexpr double kMadToSigma = 1.4826;
constexpr std::array<std::string_view, 3> kMeasureNames = {"shipments", "gross_weight_kg",
                                                           "declared_value_usd"};

std::string Num(double x) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", x);
  return buffer;
}

// Median of values[0, n), which it reorders. REQUIRES: n > 0.
template <size_t N>
double MedianOf(std::array<double, N>& values, int n) {
  const auto first = values.begin();
  const auto last = first + n;
  std::sort(first, last);
  return n % 2 == 1 ? values[static_cast<size_t>(n / 2)]
                    : 0.5 * (values[static_cast<size_t>(n / 2 - 1)] + values[static_cast<size_t>(n / 2)]);
}

void AppendSlotIndex(uint32_t index, std::string* key) {
  for (int shift = 24; shift >= 0; shift -= 8) key->push_back(static_cast<char>(index >> shift));
}

}  // namespace

Status VolumeDropOptions::Validate(const WindowOptions& windows) const {
  SHORTFALL_RETURN_IF_ERROR(windows.Validate());
  if (std::find(windows.rolling.begin(), windows.rolling.end(), window) == windows.rolling.end()) {
    std::string list;
    for (DurationMs w : windows.rolling) list += (list.empty() ? "" : ", ") + FormatDuration(w);
    return InvalidArgumentError("volume_drop.window: " + FormatDuration(window) +
                                " is not one of the rolling windows (" + list + ")");
  }
  if (baseline_weeks < 1 || baseline_weeks > kMaxBaselineWeeks) {
    return InvalidArgumentError("volume_drop.baseline_weeks: " + std::to_string(baseline_weeks) +
                                " (want 1 to " + std::to_string(kMaxBaselineWeeks) + ")");
  }
  const int64_t slots = kWeek / windows.bucket * baseline_weeks;
  if (slots > kMaxBaselineSlots) {
    return InvalidArgumentError(
        "volume_drop.baseline_weeks: " + std::to_string(baseline_weeks) + " weeks of " +
        FormatDuration(windows.bucket) + " buckets are " + std::to_string(slots) +
        " slots per series, more than " + std::to_string(kMaxBaselineSlots) +
        " (use fewer weeks or a longer window.bucket)");
  }
  if (min_history_weeks < 1 || min_history_weeks > baseline_weeks) {
    return InvalidArgumentError("volume_drop.min_history_weeks: " + std::to_string(min_history_weeks) +
                                " (want 1 to baseline_weeks, " + std::to_string(baseline_weeks) + ")");
  }
  if (!std::isfinite(min_expected_shipments) || min_expected_shipments < 0) {
    return InvalidArgumentError("volume_drop.min_expected_shipments: " + Num(min_expected_shipments) +
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
    return InvalidArgumentError("volume_drop.relative_floor: " + Num(relative_floor) + " (want > 0)");
  }
  if (!std::isfinite(cusum_slack) || cusum_slack < 0) {
    return InvalidArgumentError("volume_drop.cusum_slack: " + Num(cusum_slack) + " (want >= 0)");
  }
  if (!std::isfinite(cusum_threshold) || cusum_threshold <= 0) {
    return InvalidArgumentError("volume_drop.cusum_threshold: " + Num(cusum_threshold) +
                                " (want > 0)");
  }
  if (!std::isfinite(recover_z)) {
    return InvalidArgumentError("volume_drop.recover_z: " + Num(recover_z) + " (want a number)");
  }
  return OkStatus();
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
      return InvalidArgumentError(field + "cusum_threshold: " + Num(*o.cusum_threshold) + " (want > 0)");
    }
    if (o.cusum_slack && (!std::isfinite(*o.cusum_slack) || *o.cusum_slack < 0)) {
      return InvalidArgumentError(field + "cusum_slack: " + Num(*o.cusum_slack) + " (want >= 0)");
    }
    if (o.min_expected_shipments &&
        (!std::isfinite(*o.min_expected_shipments) || *o.min_expected_shipments < 0)) {
      return InvalidArgumentError(field + "min_expected_shipments: " +
                                  Num(*o.min_expected_shipments) + " (want >= 0)");
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
      bucket_(windows.bucket),
      group_names_(std::move(group_names)),
      corridors_(corridors) {
  SHORTFALL_CHECK(windows.Validate().ok());
  SHORTFALL_CHECK(options_.Validate(windows).ok());
  SHORTFALL_CHECK(ValidateVolumeDropOverrides(overrides_, group_names_).ok());
  for (size_t m = 0; m < kMeasures; ++m) {
    measure_enabled_[m] =
        std::find(options_.measures.begin(), options_.measures.end(), kMeasureNames[m]) != options_.measures.end();
  }
  window_index_ = static_cast<size_t>(
      std::find(windows.rolling.begin(), windows.rolling.end(), options_.window) -
      windows.rolling.begin());
  slots_per_week_ = static_cast<size_t>(kWeek / bucket_);
  ring_size_ = slots_per_week_ * static_cast<size_t>(options_.baseline_weeks);
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

VolumeDropDetector::Series& VolumeDropDetector::SeriesFor(SeriesKey key) {
  SHORTFALL_CHECK(key.group < group_names_.size() && key.corridor < corridors_->size());
  const size_t index = size_t{key.corridor} * kMaxGroupIds + key.group;
  if (index < series_index_.size() && series_index_[index] != nullptr) return *series_index_[index];
  auto [it, inserted] = series_.try_emplace(Pack(key));
  if (inserted) {
    it->second.key = key;
    it->second.tuning = TuningFor(key);
  }
  if (index >= series_index_.size()) series_index_.resize(index + kMaxGroupIds, nullptr);
  series_index_[index] = &it->second;
  return it->second;
}

VolumeDropDetector::Series* VolumeDropDetector::FindSeries(SeriesKey key) const {
  const size_t index = size_t{key.corridor} * kMaxGroupIds + key.group;
  return index < series_index_.size() ? series_index_[index] : nullptr;
}

size_t VolumeDropDetector::SlotIndex(TimestampMs bucket_end) const {
  const int64_t n = static_cast<int64_t>(ring_size_);
  const int64_t r = AlignDown(bucket_end, bucket_) / bucket_ % n;
  return static_cast<size_t>(r < 0 ? r + n : r);
}

std::optional<double> VolumeDropDetector::ExpectedShipments(SeriesKey series) const {
  const Series* s = FindSeries(series);
  return s == nullptr ? std::nullopt : s->expected_shipments;
}

void VolumeDropDetector::Observe(const WindowReport& report, std::vector<Signal>* out) {
  Series& s = SeriesFor(report.series);
  if (!s.tuning.enabled) return;
  const TimestampMs t = report.bucket_end;
  if (s.last_end != kMinTimestamp && t <= s.last_end) return;
  newest_end_ = std::max(newest_end_, t);
  if (s.ring.empty()) s.ring.resize(ring_size_);
  // A series back after more than the whole baseline span starts afresh:
  // every slot is stale, and so is the evidence in its CUSUM. (Flush may
  // have dropped such a series already; this makes that invisible.)
  const DurationMs span = kWeek * options_.baseline_weeks;
  if (s.last_end != kMinTimestamp && t - s.last_end > span) {
    s.cusum = {};
    s.critical = false;
    s.in_episode = false;
    s.recovered_since = kMinTimestamp;
    s.expected_shipments.reset();
  }
  Evaluate(report, &s, out);
}

void VolumeDropDetector::Evaluate(const WindowReport& report, Series* s, std::vector<Signal>* out) {
  const TimestampMs t = report.bucket_end;
  const size_t here = SlotIndex(t);

  // The lagged values must be read before `here` is overwritten: with
  // baseline_weeks weeks in the ring, T - baseline_weeks x 7 d is in it.
  std::array<std::array<double, kMaxBaselineWeeks>, kMeasures> lagged;
  std::array<const Slot*, kMaxBaselineWeeks> present{};
  int found = 0;
  int clean = 0;
  for (int k = 1; k <= options_.baseline_weeks; ++k) {
    const size_t back = static_cast<size_t>(k) * slots_per_week_;
    const Slot& slot = s->ring[(here + ring_size_ - back % ring_size_) % ring_size_];
    if (slot.end != t - k * kWeek) continue;  // stale or never written: not present
    present[static_cast<size_t>(found++)] = &slot;
    if (!slot.anomalous) ++clean;
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

  const double step = static_cast<double>(bucket_) / static_cast<double>(options_.window);
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

std::string VolumeDropDetector::SeriesPrefix(SeriesKey key) const {
  std::string prefix = group_names_[key.group];
  prefix.push_back('\0');
  prefix += corridors_->Code(key.corridor);
  prefix.push_back('\0');
  return prefix;
}

std::string VolumeDropDetector::Layout() const {
  return "bucket=" + FormatDuration(bucket_) + " window=" + FormatDuration(options_.window) +
         " baseline_weeks=" + std::to_string(options_.baseline_weeks);
}

void VolumeDropDetector::EraseSeries(Series* s, bool delete_persisted) {
  if (delete_persisted) {
    const std::string prefix = SeriesPrefix(s->key);
    for (size_t i = 0; i < s->ring.size(); ++i) {
      // A slot ever written may be in the store; deleting one that is not is harmless.
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

void VolumeDropDetector::Flush(StateWriteBatch* batch) {
  if (!layout_persisted_) {
    batch->Put(kDropNs, kLayoutKey, Layout());
    layout_persisted_ = true;
  }
  // Series whose newest slot is older than the whole baseline span hold
  // nothing a later report could use (Observe resets such a series anyway).
  const DurationMs span = kWeek * options_.baseline_weeks;
  std::vector<Series*> expired;
  for (auto& [packed, s] : series_) {
    if (s.last_end != kMinTimestamp && newest_end_ - s.last_end > span) expired.push_back(&s);
  }
  for (Series* s : expired) EraseSeries(s, /*delete_persisted=*/true);
  for (const std::string& key : deleted_keys_) batch->Delete(kDropNs, key);
  deleted_keys_.clear();

  internal::VolumeDropSlotState state;
  std::string key;
  for (auto& [packed, s] : series_) {
    if (s.last_end == kMinTimestamp || s.last_end <= s.flushed_end) continue;
    // The slots closed since the last Flush are those ending in
    // (flushed_end, last_end]; a slot holding another end was not written.
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
      state.set_shipments(slot.shipments);
      state.set_gross_weight_g(slot.gross_weight);
      state.set_declared_value(slot.declared_value);
      state.set_anomalous(slot.anomalous);
      if (i == 0) {
        for (double c : s.cusum) state.add_cusum(c);
        if (s.expected_shipments) state.set_expected_shipments(*s.expected_shipments);
        state.set_critical(s.critical);
        state.set_in_episode(s.in_episode);
        if (s.recovered_since != kMinTimestamp) state.set_recovered_since_ms(s.recovered_since);
      }
      key = prefix;
      AppendSlotIndex(static_cast<uint32_t>(index), &key);
      batch->Put(kDropNs, key, state.SerializeAsString());
    }
    s.flushed_end = s.last_end;
  }
}

Status VolumeDropDetector::Restore(const StateView& state) {
  Status status = RestoreFrom(state);
  if (!status.ok()) {  // leave nothing half-loaded behind
    series_.clear();
    series_index_.clear();
    deleted_keys_.clear();
    newest_end_ = kMinTimestamp;
    layout_persisted_ = false;
  }
  return status;
}

Status VolumeDropDetector::RestoreFrom(const StateView& state) {
  series_.clear();
  series_index_.clear();
  deleted_keys_.clear();
  newest_end_ = kMinTimestamp;
  layout_persisted_ = false;

  SHORTFALL_ASSIGN_OR_RETURN(std::optional<std::string> layout, state.Get(kDropNs, kLayoutKey));
  if (layout && *layout != Layout()) {
    return FailedPreconditionError(
        "volume_drop state was built with " + *layout + ", not " + Layout() +
        "; use the same window.bucket, volume_drop.window and volume_drop.baseline_weeks, or an "
        "empty state directory");
  }
  layout_persisted_ = layout.has_value();

  // Key layout: group '\0' corridor '\0' [4-byte slot index].
  Status error;
  std::unordered_set<const Series*> newest_has_state;
  internal::VolumeDropSlotState slot_state;
  SHORTFALL_RETURN_IF_ERROR(state.Scan(kDropNs, "", [&](std::string_view key, std::string_view value) {
    if (key == kLayoutKey) return true;
    if (!layout) {
      error = DataLossError("volume_drop state: slots without a layout");
      return false;
    }
    const size_t g_end = key.find('\0');
    const size_t c_end = g_end == std::string_view::npos ? g_end : key.find('\0', g_end + 1);
    if (c_end == std::string_view::npos || key.size() != c_end + 5) {
      error = DataLossError("volume_drop state: malformed key");
      return false;
    }
    const std::string_view group = key.substr(0, g_end);
    const auto gid = std::find(group_names_.begin(), group_names_.end(), group);
    if (gid == group_names_.end()) {
      error = FailedPreconditionError(
          "volume_drop state names group '" + std::string(group) +
          "' that the catalog does not have; restore with the catalog the state was built "
          "with, or start from an empty state directory");
      return false;
    }
    const std::optional<CorridorId> corridor =
        corridors_->InternCode(key.substr(g_end + 1, c_end - g_end - 1));
    if (!corridor) {
      error = DataLossError("volume_drop state: malformed corridor in key");
      return false;
    }
    uint32_t index = 0;
    for (char c : key.substr(c_end + 1)) index = (index << 8) | static_cast<uint8_t>(c);
    if (!slot_state.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
        index >= ring_size_ || AlignDown(slot_state.bucket_end_ms(), bucket_) != slot_state.bucket_end_ms() ||
        SlotIndex(slot_state.bucket_end_ms()) != index ||
        (slot_state.cusum_size() != 0 && slot_state.cusum_size() != static_cast<int>(kMeasures))) {
      error = DataLossError("volume_drop state: malformed slot");
      return false;
    }
    Series& s = SeriesFor(SeriesKey{static_cast<GroupId>(gid - group_names_.begin()), *corridor});
    if (!s.tuning.enabled) {  // switched off since: its state goes
      deleted_keys_.emplace_back(key);
      return true;
    }
    if (s.ring.empty()) s.ring.resize(ring_size_);
    s.ring[index] = Slot{slot_state.bucket_end_ms(), slot_state.shipments(), slot_state.gross_weight_g(),
                         slot_state.declared_value(), slot_state.anomalous()};
    if (s.last_end == kMinTimestamp || slot_state.bucket_end_ms() > s.last_end) {
      s.last_end = slot_state.bucket_end_ms();
      if (slot_state.cusum_size() == static_cast<int>(kMeasures)) {
        newest_has_state.insert(&s);
        for (size_t m = 0; m < kMeasures; ++m) s.cusum[m] = slot_state.cusum(static_cast<int>(m));
        s.critical = slot_state.critical();
        s.in_episode = slot_state.in_episode();
        s.recovered_since = slot_state.has_recovered_since_ms() ? slot_state.recovered_since_ms() : kMinTimestamp;
        s.expected_shipments.reset();
        if (slot_state.has_expected_shipments()) s.expected_shipments = slot_state.expected_shipments();
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
      return DataLossError("volume_drop state: the newest slot of " + group_names_[s.key.group] +
                           " " + corridors_->Code(s.key.corridor) + " has no detector state");
    }
    s.flushed_end = s.last_end;
    newest_end_ = std::max(newest_end_, s.last_end);
  }
  return OkStatus();
}

}  // namespace shortfall::operators
