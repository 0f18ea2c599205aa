#include "operators/origin_concentration_detector.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <tuple>

#include "operators/catalog.h"
#include "operators/detector_options.h"
#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr DurationMs kWeek = 7 * kMsPerDay;
constexpr int64_t kSecondsPerWeek = kWeek / kMsPerSecond;
constexpr int kMaxContributors = 3;

bool IsCountryCode(std::string_view s) {
  return s.size() == 2 && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// "MX-US-2304" -> "MX" and "US" (codes from a CorridorTable always have both).
std::string_view OriginOf(std::string_view code) { return code.substr(0, 2); }
std::string_view DestinationOf(std::string_view code) { return code.substr(3, 2); }

// Shipments per origin country, in order of first sight; markets have a few.
class OriginCounts {
 public:
  void Clear() { counts_.clear(); }
  void Add(std::string_view origin, double n) {
    for (auto& [o, c] : counts_) {
      if (o == origin) {
        c += n;
        return;
      }
    }
    counts_.emplace_back(origin, n);
  }
  double Of(std::string_view origin) const {
    for (const auto& [o, c] : counts_) {
      if (o == origin) return c;
    }
    return 0;
  }
  double Total() const {
    double total = 0;
    for (const auto& [o, c] : counts_) total += c;
    return total;
  }
  // Largest first, ties by code: deterministic whatever the order of sight.
  void Sort() {
    std::sort(counts_.begin(), counts_.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
  }
  const std::vector<std::pair<std::string_view, double>>& items() const { return counts_; }

 private:
  std::vector<std::pair<std::string_view, double>> counts_;
};

// The settings an override can change too, checked alike in both places:
// kInvalidArgument "<prefix><name>: <value> (want ...)" when out of range.
Status CheckTunable(const std::string& prefix, std::string_view name, double v) {
  struct Range {
    std::string_view name;
    bool (*ok)(double);
    std::string_view want;
  };
  static constexpr Range kRanges[] = {
      {"share_threshold", [](double x) { return x > 0 && x <= 1; }, "> 0 and <= 1"},
      {"others_ratio", [](double x) { return x > 0 && x < 1; }, "> 0 and < 1"},
      {"min_shipments", [](double x) { return x >= 0; }, ">= 0"},
      {"relative_noise", [](double x) { return x >= 0; }, ">= 0"},
      {"z_threshold", [](double x) { return x > 0; }, "> 0"}};
  for (const Range& r : kRanges) {
    if (r.name != name) continue;
    if (std::isfinite(v) && r.ok(v)) return OkStatus();
    return InvalidArgumentError(prefix + std::string(name) + ": " + OptionNumber(v) + " (want " + std::string(r.want) + ")");
  }
  SHORTFALL_CHECK(false);  // a name from this file
  return OkStatus();
}

}  // namespace

Status OriginConcentrationOptions::Validate(const WindowOptions& windows) const {
  SHORTFALL_RETURN_IF_ERROR(
      ValidateSeasonalRing("origin_concentration", window, baseline_weeks, min_history_weeks, windows));
  const std::string prefix = "origin_concentration.";
  SHORTFALL_RETURN_IF_ERROR(CheckTunable(prefix, "share_threshold", share_threshold));
  SHORTFALL_RETURN_IF_ERROR(CheckTunable(prefix, "others_ratio", others_ratio));
  SHORTFALL_RETURN_IF_ERROR(CheckTunable(prefix, "min_shipments", min_shipments));
  SHORTFALL_RETURN_IF_ERROR(CheckTunable(prefix, "relative_noise", relative_noise));
  SHORTFALL_RETURN_IF_ERROR(CheckTunable(prefix, "z_threshold", z_threshold));
  if (!std::isfinite(recover_z) || recover_z >= z_threshold) {
    return InvalidArgumentError(prefix + "recover_z: " + OptionNumber(recover_z) + " (want a number below z_threshold, " +
                                OptionNumber(z_threshold) + ")");
  }
  return OkStatus();
}

Status ValidateOriginConcentrationOverrides(const std::vector<OriginConcentrationOverride>& overrides,
                                            const std::vector<std::string>& group_names) {
  for (size_t i = 0; i < overrides.size(); ++i) {
    const OriginConcentrationOverride& o = overrides[i];
    const std::string field = "origin_concentration.overrides[" + std::to_string(i) + "].";
    if (o.group != "*" && std::find(group_names.begin(), group_names.end(), o.group) == group_names.end()) {
      return InvalidArgumentError(field + "group: '" + o.group + "' is not a commodity group");
    }
    if (o.destination != "*" && !IsCountryCode(o.destination)) {
      return InvalidArgumentError(field + "destination: '" + o.destination + "' is not a country code like US, or *");
    }
    for (const auto& [name, value] : {std::pair{"share_threshold", o.share_threshold},
                                      std::pair{"others_ratio", o.others_ratio},
                                      std::pair{"min_shipments", o.min_shipments},
                                      std::pair{"z_threshold", o.z_threshold}}) {
      if (value) {
        SHORTFALL_RETURN_IF_ERROR(CheckTunable(field, name, *value));
      }
    }
  }
  return OkStatus();
}

OriginConcentrationDetector::OriginConcentrationDetector(OriginConcentrationOptions options,
                                                         std::vector<OriginConcentrationOverride> overrides,
                                                         const WindowOptions& windows,
                                                         std::vector<std::string> group_names,
                                                         CorridorTable* corridors)
    : options_(options),
      overrides_(std::move(overrides)),
      group_names_(std::move(group_names)),
      corridors_(corridors),
      table_({"origin_concentration", "origin_concentration.window"}, windows.bucket, options.baseline_weeks,
             options.window, &group_names_, corridors) {
  SHORTFALL_CHECK(windows.Validate().ok());
  SHORTFALL_CHECK(options_.Validate(windows).ok());
  SHORTFALL_CHECK(ValidateOriginConcentrationOverrides(overrides_, group_names_).ok());
  window_index_ = windows.RollingIndex(options_.window);
}

OriginConcentrationDetector::Tuning OriginConcentrationDetector::TuningFor(GroupId group,
                                                                            std::string_view destination) const {
  Tuning t;
  t.enabled = options_.enabled;
  t.share_threshold = options_.share_threshold;
  t.others_ratio = options_.others_ratio;
  t.min_shipments = options_.min_shipments;
  t.z_threshold = options_.z_threshold;
  const std::string& name = group_names_[group];
  // Goods outside the catalog are counted, not watched, unless an override
  // names the group.
  const bool unclassified = name == kUnclassifiedGroup;
  if (unclassified) t.enabled = false;
  for (const OriginConcentrationOverride& o : overrides_) {
    if ((o.group != "*" && o.group != name) || (o.destination != "*" && o.destination != destination)) continue;
    if (unclassified && o.group == "*") continue;
    t.enabled = o.enabled.value_or(t.enabled);
    t.share_threshold = o.share_threshold.value_or(t.share_threshold);
    t.others_ratio = o.others_ratio.value_or(t.others_ratio);
    t.min_shipments = o.min_shipments.value_or(t.min_shipments);
    t.z_threshold = o.z_threshold.value_or(t.z_threshold);
    break;
  }
  return t;
}

void OriginConcentrationDetector::Init(Series& fresh) {
  if (fresh.key.corridor == kAllCorridors) return;  // a group total says nothing about origins
  const std::string_view destination = DestinationOf(corridors_->Code(fresh.key.corridor));
  auto [it, inserted] = markets_.try_emplace(MarketKey(group_names_[fresh.key.group], destination));
  Market& m = it->second;
  if (inserted) {
    m.group = fresh.key.group;
    m.destination = std::string(destination);
    m.tuning = TuningFor(m.group, destination);
  }
  if (!m.tuning.enabled) return;
  // A series dropped as stale and seen again is already listed.
  if (std::find(m.corridors.begin(), m.corridors.end(), fresh.key.corridor) == m.corridors.end()) {
    m.corridors.push_back(fresh.key.corridor);
  }
  fresh.market = &m;
}

std::optional<double> OriginConcentrationDetector::BaselineShare(GroupId group, std::string_view destination) const {
  if (group >= group_names_.size()) return std::nullopt;
  const auto it = markets_.find(MarketKey(group_names_[group], std::string(destination)));
  return it == markets_.end() ? std::nullopt : it->second.baseline_share;
}

void OriginConcentrationDetector::Observe(const std::vector<WindowReport>& reports, std::vector<Signal>* out) {
  std::vector<const WindowReport*> market_reports;
  for (size_t begin = 0; begin < reports.size();) {
    const TimestampMs t = reports[begin].bucket_end;
    size_t end = begin;
    close_.clear();
    for (; end < reports.size() && reports[end].bucket_end == t; ++end) {
      const WindowReport& r = reports[end];
      Series& s = table_.For(r.series, [&](Series& fresh) { Init(fresh); });
      if (s.market == nullptr) continue;
      close_.emplace_back(s.market, &r);
    }
    begin = end;
    // Markets in (group id, destination) order, each with its reports.
    std::sort(close_.begin(), close_.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? std::tie(a.first->group, a.first->destination) <
                                      std::tie(b.first->group, b.first->destination)
                                : a.second->series.corridor < b.second->series.corridor;
    });
    for (size_t i = 0; i < close_.size();) {
      Market* m = close_[i].first;
      market_reports.clear();
      for (; i < close_.size() && close_[i].first == m; ++i) market_reports.push_back(close_[i].second);
      if (m->last_end != kMinTimestamp && t <= m->last_end) continue;
      Evaluate(t, m, market_reports, out);
    }
  }
}

void OriginConcentrationDetector::Market::Reset() {
  first_start = kMinTimestamp;
  last_end = kMinTimestamp;
  in_episode = false;
  critical = false;
  recovered_since = kMinTimestamp;
  rising_since = kMinTimestamp;
  baseline_share.reset();
}

void OriginConcentrationDetector::Evaluate(TimestampMs t, Market* m, const std::vector<const WindowReport*>& reports,
                                           std::vector<Signal>* out) {
  const DurationMs bucket = table_.bucket();
  const DurationMs window = options_.window;
  // Back after more than the whole baseline span: its episode says nothing
  // about now (and its series' state may have expired from the store).
  if (m->last_end != kMinTimestamp && t - m->last_end > kWeek * options_.baseline_weeks) m->Reset();
  if (m->first_start == kMinTimestamp) m->first_start = t - bucket;

  // The lagged windows of every corridor of the market, read before this
  // close's slots are written (T - baseline_weeks x 7 d is the same slot).
  std::array<OriginCounts, kMaxBaselineWeeks> lagged;
  std::array<bool, kMaxBaselineWeeks> present{};
  std::array<bool, kMaxBaselineWeeks> anomalous{};
  for (CorridorId corridor : m->corridors) {
    const Series* s = table_.Find(SeriesKey{m->group, corridor});
    if (s == nullptr || s->ring.empty()) continue;  // expired, or no report yet
    const std::string_view origin = OriginOf(corridors_->Code(corridor));
    for (int k = 1; k <= options_.baseline_weeks; ++k) {
      const Slot* slot = table_.Lagged(s->ring, t, k);
      // Absent, or a window that began before the market's first data.
      if (slot == nullptr || slot->end - window < m->first_start) continue;
      const auto i = static_cast<size_t>(k - 1);
      present[i] = true;
      anomalous[i] = anomalous[i] || slot->anomalous;
      lagged[i].Add(origin, static_cast<double>(slot->shipments));
    }
  }
  // This close's slots and counts.
  std::vector<Slot*> written;
  written.reserve(reports.size());
  OriginCounts now;
  for (const WindowReport* r : reports) {
    Series& s = *table_.Find(r->series);
    bool stale = false;
    if (!table_.Advance(s, t, &stale)) continue;
    const uint64_t shipments = r->rolling[window_index_].shipments;
    Slot& slot = s.ring[table_.SlotIndex(t)];
    slot = Slot{t, shipments, false};
    s.last_end = t;
    written.push_back(&slot);
    now.Add(OriginOf(corridors_->Code(r->series.corridor)), static_cast<double>(shipments));
  }
  if (written.empty()) return;
  m->last_end = t;
  const auto mark = [&] {
    for (Slot* slot : written) slot->anomalous = m->in_episode;
  };

  int clean = 0;
  for (int k = 0; k < options_.baseline_weeks; ++k) {
    const auto i = static_cast<size_t>(k);
    if (present[i] && !anomalous[i]) ++clean;
  }
  // Skip the weeks of an episode while enough clean ones remain.
  const bool skip_anomalous = clean >= options_.min_history_weeks;
  OriginCounts base;
  int n = 0;
  for (int k = 0; k < options_.baseline_weeks; ++k) {
    const auto i = static_cast<size_t>(k);
    if (!present[i] || (skip_anomalous && anomalous[i])) continue;
    ++n;
    for (const auto& [origin, count] : lagged[i].items()) base.Add(origin, count);
  }
  if (n < options_.min_history_weeks) {
    m->baseline_share.reset();
    mark();
    return;
  }
  now.Sort();
  const double total = now.Total();
  const double base_total = base.Total();
  const Tuning& tuning = m->tuning;
  if (total < tuning.min_shipments || total <= 0 || base_total <= 0) {
    m->baseline_share.reset();
    mark();
    return;
  }
  const std::string_view top_origin = now.items().front().first;
  const double top = now.items().front().second;
  const double others = total - top;
  const double base_top = base.Of(top_origin);
  const double base_others = base_total - base_top;
  const double p0 = base_top / base_total;
  m->baseline_share = p0;
  if (base_others <= 0) {  // one origin all along: nothing to concentrate
    mark();
    return;
  }

  const double share = top / total;
  const double r0 = 1 - p0;
  // The others' count against the baseline share: the signed root of the
  // binomial deviance, scaled by the variance the baseline's own sampling
  // and the week-to-week noise add (see the header).
  const double expected_others = total * r0;
  const auto x_log_x_over = [](double x, double mean) { return x > 0 ? x * std::log(x / mean) : 0.0; };
  const double deviance =
      2 * (x_log_x_over(others, expected_others) + x_log_x_over(top, total - expected_others));
  const double noise = options_.relative_noise * options_.relative_noise;
  const double inflation = 1 + total / base_total + 2 * noise * r0 * p0 * total * (1 + 1.0 / n);
  const double z = std::copysign(std::sqrt(std::max(0.0, deviance) / inflation), expected_others - others);
  const bool firing = share >= tuning.share_threshold && (1 - share) <= tuning.others_ratio * r0 &&
                      z >= tuning.z_threshold;
  const bool recovered = !firing && (share < tuning.share_threshold || z <= options_.recover_z);
  if (recovered) {
    if (m->recovered_since == kMinTimestamp) m->recovered_since = t;
    if (t - m->recovered_since >= window) m->in_episode = false;
  } else {
    m->recovered_since = kMinTimestamp;
  }
  if (z <= options_.recover_z) {
    m->rising_since = kMinTimestamp;
  } else if (m->rising_since == kMinTimestamp) {
    m->rising_since = t;
  }
  if (firing && !m->in_episode) MarkRise(t, m);
  if (firing) m->in_episode = true;
  mark();
  m->critical = firing && (m->critical || (1 - share) <= 0.5 * tuning.others_ratio * r0);

  Signal& signal = out->emplace_back();
  signal.kind = v1::ALERT_KIND_ORIGIN_CONCENTRATION;
  signal.group = group_names_[m->group];
  signal.corridor = "*-" + m->destination + "-*";
  signal.window_start = t - window;
  signal.window_end = t;
  signal.firing = firing;
  signal.recovered = recovered;
  signal.severity = !firing ? v1::SEVERITY_UNSPECIFIED : m->critical ? v1::SEVERITY_CRITICAL : v1::SEVERITY_WARNING;
  v1::Evidence& e = signal.evidence;
  e.set_measure("origin_share");
  e.set_observed(share);
  e.set_expected(p0);
  e.set_statistic("share");
  e.set_statistic_value(share);
  e.set_threshold(tuning.share_threshold);
  e.set_baseline_history_seconds(int64_t{n} * kSecondsPerWeek);
  for (const auto& [origin, count] : now.items()) {
    if (e.top_contributors_size() == kMaxContributors || count <= 0) break;
    v1::Contributor* c = e.add_top_contributors();
    c->mutable_corridor()->set_origin_country(std::string(origin));
    c->mutable_corridor()->set_destination_country(m->destination);
    c->set_share(count / total);
  }
}

void OriginConcentrationDetector::MarkRise(TimestampMs t, Market* m) {
  // The 7 d window that fires holds a week or more of the change; the
  // closes since z rose, counted clean, would soften next week's baseline.
  const TimestampMs from = std::max(m->rising_since, t - 2 * options_.window + table_.bucket());
  for (CorridorId corridor : m->corridors) {
    if (Series* s = table_.Find(SeriesKey{m->group, corridor})) table_.MarkAnomalous(*s, from, t);
  }
}

void OriginConcentrationDetector::Market::Save(internal::OriginConcentrationSlotState* out) const {
  out->set_market_last_end_ms(last_end);
  out->set_market_first_start_ms(first_start);
  out->set_in_episode(in_episode);
  out->set_critical(critical);
  if (recovered_since != kMinTimestamp) out->set_recovered_since_ms(recovered_since);
  if (rising_since != kMinTimestamp) out->set_rising_since_ms(rising_since);
  if (baseline_share) out->set_baseline_share(*baseline_share);
}

void OriginConcentrationDetector::Market::Load(const internal::OriginConcentrationSlotState& in) {
  if (last_end != kMinTimestamp && in.market_last_end_ms() < last_end) return;
  last_end = in.market_last_end_ms();
  first_start = in.has_market_first_start_ms() ? in.market_first_start_ms() : kMinTimestamp;
  in_episode = in.in_episode();
  critical = in.critical();
  recovered_since = in.has_recovered_since_ms() ? in.recovered_since_ms() : kMinTimestamp;
  rising_since = in.has_rising_since_ms() ? in.rising_since_ms() : kMinTimestamp;
  baseline_share.reset();
  if (in.has_baseline_share()) baseline_share = in.baseline_share();
}

void OriginConcentrationDetector::Series::SaveSlot(const Slot& slot, bool newest,
                                                   internal::OriginConcentrationSlotState* out) const {
  out->set_bucket_end_ms(slot.end);
  out->set_shipments(slot.shipments);
  out->set_anomalous(slot.anomalous);
  if (newest) market->Save(out);
}

void OriginConcentrationDetector::Series::LoadSlot(size_t index, const internal::OriginConcentrationSlotState& in) {
  ring[index] = Slot{in.bucket_end_ms(), in.shipments(), in.anomalous()};
}

bool OriginConcentrationDetector::Series::LoadState(const internal::OriginConcentrationSlotState& in) {
  if (!in.has_market_last_end_ms()) return false;
  market->Load(in);
  return true;
}

void OriginConcentrationDetector::Flush(StateWriteBatch* batch) { table_.Flush(batch); }

Status OriginConcentrationDetector::Restore(const StateView& state) {
  markets_.clear();
  Status status = table_.Restore(state, [&](Series& fresh) { Init(fresh); });
  if (!status.ok()) markets_.clear();
  return status;
}

}  // namespace shortfall::operators
