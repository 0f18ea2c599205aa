#include "operators/level_rise_detector.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "operators/catalog.h"
#include "operators/detector_options.h"
#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr std::string_view kLayoutKey = "layout";
// The index at or above which a firing episode is CRITICAL.
constexpr double kCriticalIndex = 2.0;
// Weight of LevelRiseOptions::sample_sd in the scatter, in samples.
constexpr double kPriorLines = 10;

// `minuend` - `subtrahend` by key (both sorted; the subtrahend's keys are in
// the minuend, as a shorter rolling window's are in a longer one), codes left
// with no lines dropped.
void SubtractPrices(const std::vector<PriceSum>& minuend, const std::vector<PriceSum>& subtrahend,
                    std::vector<PriceSum>* out) {
  out->clear();
  auto sub = subtrahend.begin();
  for (const PriceSum& m : minuend) {
    while (sub != subtrahend.end() && sub->key < m.key) ++sub;
    PriceSum d = m;
    if (sub != subtrahend.end() && sub->key == m.key) {
      d.lines -= std::min(d.lines, sub->lines);
      d.log_sum -= sub->log_sum;
      d.log_sq_sum -= sub->log_sq_sum;
    }
    if (d.lines > 0) out->push_back(d);
  }
}

}  // namespace

Status ValidateLevelRise(const LevelRiseOptions& o, const WindowOptions& windows, const LevelRiseProfile& p) {
  SHORTFALL_RETURN_IF_ERROR(windows.Validate());
  const std::string prefix = std::string(p.name) + ".";
  const auto bad = [&](std::string_view field, const std::string& what) {
    return InvalidArgumentError(prefix + std::string(field) + ": " + what);
  };
  SHORTFALL_RETURN_IF_ERROR(windows.CheckRolling(prefix + "window", o.window));
  SHORTFALL_RETURN_IF_ERROR(windows.CheckRolling(prefix + "baseline_window", o.baseline_window));
  if (o.baseline_window <= o.window) {
    return bad("baseline_window", FormatDuration(o.baseline_window) + " (want longer than " + prefix + "window, " +
                                      FormatDuration(o.window) + ")");
  }
  if (!std::isfinite(o.min_samples) || o.min_samples < 1) return bad(p.min_samples_name, OptionNumber(o.min_samples) + " (want >= 1)");
  if (!std::isfinite(o.min_reference_samples) || o.min_reference_samples < 1) {
    return bad(p.min_reference_samples_name, OptionNumber(o.min_reference_samples) + " (want >= 1)");
  }
  if (!std::isfinite(o.sample_sd) || o.sample_sd <= 0) return bad(p.sample_sd_name, OptionNumber(o.sample_sd) + " (want > 0)");
  if (!std::isfinite(o.relative_floor) || o.relative_floor < 0) {
    return bad("relative_floor", OptionNumber(o.relative_floor) + " (want >= 0)");
  }
  SHORTFALL_RETURN_IF_ERROR(ValidateCusum(p.name, o.cusum_slack, o.cusum_threshold, o.recover_z));
  if (!std::isfinite(o.min_ratio) || o.min_ratio < 1) return bad("min_ratio", OptionNumber(o.min_ratio) + " (want >= 1)");
  if (o.max_held < o.window) {
    return bad("max_held", FormatDuration(o.max_held) + " (want at least " + prefix + "window, " +
                               FormatDuration(o.window) + ")");
  }
  return OkStatus();
}

LevelRiseDetector::LevelRiseDetector(const LevelRiseProfile& profile, const LevelRiseOptions& options,
                                     const WindowOptions& windows, std::vector<std::string> group_names,
                                     CorridorTable* corridors)
    : profile_(profile),
      options_(options),
      bucket_(windows.bucket),
      group_names_(std::move(group_names)),
      corridors_(corridors) {
  SHORTFALL_CHECK(ValidateLevelRise(options_, windows, profile_).ok());
  window_index_ = windows.RollingIndex(options_.window);
  baseline_index_ = windows.RollingIndex(options_.baseline_window);
}

LevelRiseDetector::Series& LevelRiseDetector::SeriesFor(SeriesKey key) {
  auto [it, inserted] = series_.try_emplace(Pack(key));
  Series& s = it->second;
  if (inserted) {
    s.key = key;
    s.enabled = options_.enabled && group_names_[key.group] != kUnclassifiedGroup;
  }
  return s;
}

std::optional<double> LevelRiseDetector::Index(SeriesKey series) const {
  auto it = series_.find(Pack(series));
  return it == series_.end() ? std::nullopt : it->second.index;
}

void LevelRiseDetector::Observe(const WindowReport& report, std::vector<Signal>* out) {
  Series& s = SeriesFor(report.series);
  if (!s.enabled || report.bucket_end <= s.last_end) return;
  s.last_end = report.bucket_end;
  if (s.first_end == kMinTimestamp) {
    s.first_end = report.bucket_end;
    s.dirty = true;
  }
  Evaluate(report, &s, out);
}

void LevelRiseDetector::Evaluate(const WindowReport& report, Series* s, std::vector<Signal>* out) {
  const TimestampMs t = report.bucket_end;
  s->index.reset();
  // Warm-up: the reference span must have had the time to fill.
  if (t - s->first_end < options_.baseline_window) return;

  const std::vector<PriceSum>& window = profile_.sums(report.rolling[window_index_]);
  SubtractPrices(profile_.sums(report.rolling[baseline_index_]), window, &reference_);
  // The reference in use is one taken a window or two ago (see the header);
  // while an episode holds it, it stays.
  if (s->held_since == kMinTimestamp && (s->taken_at == kMinTimestamp || t - s->taken_at >= options_.window)) {
    s->in_use = std::move(s->taken);
    s->in_use_at = s->taken_at;
    s->taken = reference_;
    s->taken_at = t;
    s->dirty = true;
  }
  if (s->in_use_at == kMinTimestamp) return;  // the first reference taken is not a window old yet
  const std::vector<PriceSum>& reference = s->in_use;

  // Each window line's log price against its code's mean log price in the
  // reference, over the codes both have; the scatter of log prices within a
  // code, pooled over the reference's codes.
  double deviation = 0;         // sum over samples of ln(x) - their key's reference mean, in nats
  double window_log = 0;        // sum over samples of ln(x)
  double within = 0;            // reference: sum over codes of the squares about the code's mean
  double reference_error = 0;   // sum over codes of n_c^2 / reference lines_c
  uint64_t lines = 0;
  uint64_t reference_lines = 0;
  uint64_t codes = 0;
  auto r = reference.begin();
  for (const PriceSum& w : window) {
    while (r != reference.end() && r->key < w.key) ++r;
    if (r == reference.end()) break;
    if (r->key != w.key || r->lines == 0) continue;
    const double n_ref = static_cast<double>(r->lines);
    const double ref_sum = static_cast<double>(r->log_sum) / kLogPriceScale;
    const double n = static_cast<double>(w.lines);
    deviation += static_cast<double>(w.log_sum) / kLogPriceScale - n * ref_sum / n_ref;
    window_log += static_cast<double>(w.log_sum) / kLogPriceScale;
    within += std::max(0.0, static_cast<double>(r->log_sq_sum) / kLogPriceScale - ref_sum * ref_sum / n_ref);
    reference_error += n * n / n_ref;
    lines += w.lines;
    reference_lines += r->lines;
    ++codes;
  }
  if (static_cast<double>(lines) < options_.min_samples ||
      static_cast<double>(reference_lines) < options_.min_reference_samples) {
    return;  // thin: S stays as it was
  }

  const auto before = std::make_tuple(s->cusum, s->critical, s->in_episode, s->recovered_since, s->held_since);
  const double n = static_cast<double>(lines);
  const double d = deviation / n;  // mean log relative
  const double index = std::exp(d);
  s->index = index;
  // The scatter: the reference's own, shrunk towards sample_sd as if
  // kPriorLines lines had shown it (a thin reference says little).
  const double prior = options_.sample_sd * options_.sample_sd;
  const double df = static_cast<double>(reference_lines - codes);
  const double variance = (within + kPriorLines * prior) / (df + kPriorLines);
  const double se = std::sqrt(variance * (1 / n + reference_error / (n * n)) +
                              options_.relative_floor * options_.relative_floor);
  const double z = d / se;
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
  const bool firing = s->cusum >= options_.cusum_threshold && index >= options_.min_ratio;
  if (firing) s->in_episode = true;
  s->critical = firing && (s->critical || index >= kCriticalIndex || s->cusum >= 2 * options_.cusum_threshold);

  // An episode holds the reference in use (see the header), up to max_held:
  // then the live reference, which holds the new level, takes over.
  if (firing && s->held_since == kMinTimestamp) {
    s->held_since = t;
  } else if (s->held_since != kMinTimestamp && !s->in_episode && s->cusum == 0) {
    s->held_since = kMinTimestamp;
  } else if (s->held_since != kMinTimestamp && t - s->held_since >= options_.max_held) {
    s->held_since = kMinTimestamp;
    s->in_use = reference_;
    s->in_use_at = t;
    s->taken = reference_;
    s->taken_at = t;
    s->cusum = 0;
    s->dirty = true;
  }
  if (before != std::make_tuple(s->cusum, s->critical, s->in_episode, s->recovered_since, s->held_since)) {
    s->dirty = true;
  }

  Signal& signal = out->emplace_back();
  signal.kind = profile_.kind;
  signal.group = group_names_[s->key.group];
  signal.corridor = corridors_->Code(s->key.corridor);
  signal.window_start = t - options_.window;
  signal.window_end = t;
  signal.firing = firing;
  signal.recovered = recovered && !firing;
  signal.severity = !firing ? v1::SEVERITY_UNSPECIFIED : s->critical ? v1::SEVERITY_CRITICAL : v1::SEVERITY_WARNING;
  v1::Evidence& e = signal.evidence;
  e.set_measure(std::string(profile_.measure));
  if (profile_.level_evidence) {
    // The window's level and the reference's over the same mix of keys, as
    // geometric means back in the measure's units.
    const double level = window_log / n;
    e.set_observed(std::exp(level) - profile_.level_offset);
    e.set_expected(std::exp(level - d) - profile_.level_offset);
  } else {
    e.set_observed(index);
    e.set_expected(1.0);
  }
  e.set_statistic("cusum");
  e.set_statistic_value(s->cusum);
  e.set_threshold(options_.cusum_threshold);
  e.set_baseline_history_seconds((options_.baseline_window - options_.window) / kMsPerSecond);
}

std::string LevelRiseDetector::Layout() const {
  return "window=" + FormatDuration(options_.window) + " baseline_window=" + FormatDuration(options_.baseline_window);
}

std::string LevelRiseDetector::Key(const Series& s) const {
  std::string key = group_names_[s.key.group];
  key.push_back('\0');
  key += corridors_->Code(s.key.corridor);
  return key;
}

void LevelRiseDetector::Flush(StateWriteBatch* batch) {
  if (!layout_persisted_ && !series_.empty()) {
    batch->Put(profile_.name, kLayoutKey, Layout());
    layout_persisted_ = true;
  }
  internal::UnitValueState proto;
  for (auto& [packed, s] : series_) {
    if (!s.dirty) continue;
    proto.Clear();
    proto.set_first_end_ms(s.first_end);
    proto.set_cusum(s.cusum);
    proto.set_critical(s.critical);
    proto.set_in_episode(s.in_episode);
    if (s.recovered_since != kMinTimestamp) proto.set_recovered_since_ms(s.recovered_since);
    if (s.held_since != kMinTimestamp) proto.set_held_since_ms(s.held_since);
    proto.set_in_use_at_ms(s.in_use_at);
    SumsToState(s.in_use, proto.mutable_in_use());
    proto.set_taken_at_ms(s.taken_at);
    SumsToState(s.taken, proto.mutable_taken());
    batch->Put(profile_.name, Key(s), proto.SerializeAsString());
    s.dirty = false;
  }
}

Status LevelRiseDetector::Restore(const StateView& state) {
  Status status = RestoreFrom(state);
  if (!status.ok()) {
    series_.clear();
    layout_persisted_ = false;
  }
  return status;
}

Status LevelRiseDetector::RestoreFrom(const StateView& state) {
  series_.clear();
  SHORTFALL_ASSIGN_OR_RETURN(std::optional<std::string> layout, state.Get(profile_.name, kLayoutKey));
  const std::string name(profile_.name);
  if (layout && *layout != Layout()) {
    return FailedPreconditionError(name + " state was built with " + *layout + ", not " + Layout() + "; use the same " +
                                   name + ".window and " + name + ".baseline_window, or an empty state directory");
  }
  layout_persisted_ = layout.has_value();
  Status error = OkStatus();
  internal::UnitValueState proto;
  SHORTFALL_RETURN_IF_ERROR(state.Scan(profile_.name, "", [&](std::string_view key, std::string_view value) {
    if (key == kLayoutKey) return true;
    const size_t split = key.find('\0');
    const auto group = std::find(group_names_.begin(), group_names_.end(),
                                 split == std::string_view::npos ? key : key.substr(0, split));
    if (split == std::string_view::npos || !proto.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      error = DataLossError(name + " state: cannot read the key of " + std::string(key.substr(0, split)));
      return false;
    }
    if (group == group_names_.end()) {
      error = FailedPreconditionError(name + " state names group '" + std::string(key.substr(0, split)) +
                                      "', which the catalog does not have");
      return false;
    }
    const std::optional<CorridorId> corridor = corridors_->InternCode(key.substr(split + 1));
    if (!corridor) {
      error = DataLossError(name + " state: bad corridor code in a key of " + std::string(key.substr(0, split)));
      return false;
    }
    Series& s = SeriesFor(SeriesKey{static_cast<GroupId>(group - group_names_.begin()), *corridor});
    s.first_end = proto.first_end_ms();
    s.cusum = proto.cusum();
    s.critical = proto.critical();
    s.in_episode = proto.in_episode();
    s.recovered_since = proto.has_recovered_since_ms() ? proto.recovered_since_ms() : kMinTimestamp;
    s.held_since = proto.has_held_since_ms() ? proto.held_since_ms() : kMinTimestamp;
    s.in_use_at = proto.in_use_at_ms();
    SumsFromState(proto.in_use(), &s.in_use);
    s.taken_at = proto.taken_at_ms();
    SumsFromState(proto.taken(), &s.taken);
    return true;
  }));
  return error;
}

}  // namespace shortfall::operators
