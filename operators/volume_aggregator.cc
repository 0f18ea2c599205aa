#include "operators/volume_aggregator.h"

#include <algorithm>

#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr std::string_view kBucketsNs = "volume_buckets";
constexpr std::string_view kTotalsNs = "volume_totals";
constexpr std::string_view kWindowsNs = "volume_windows";
constexpr std::string_view kClosedUntilKey = "closed_until";
constexpr std::string_view kLayoutKey = "layout";

// Big-endian with the sign bit flipped, so byte order is time order.
std::string EncodeTime(TimestampMs t) {
  const uint64_t u = static_cast<uint64_t>(t) ^ (uint64_t{1} << 63);
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(u >> (56 - 8 * i));
  return out;
}

TimestampMs DecodeTime(std::string_view bytes) {
  uint64_t u = 0;
  for (char c : bytes) u = (u << 8) | static_cast<uint8_t>(c);
  return static_cast<TimestampMs>(u ^ (uint64_t{1} << 63));
}

std::string EncodeVolume(const VolumeDelta& v) {
  internal::VolumeBucketState s;
  ToState(v, &s);
  return s.SerializeAsString();
}

bool DecodeVolume(std::string_view bytes, VolumeDelta* v) {
  internal::VolumeBucketState s;
  if (!s.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return false;
  *v = FromState(s);
  return true;
}

}  // namespace

Status WindowOptions::Validate() const {
  if (bucket <= 0 || bucket > kMsPerDay || kMsPerDay % bucket != 0) {
    return InvalidArgumentError("window.bucket: " + FormatDuration(bucket) +
                                " (want a divisor of 24h, e.g. 15m, 1h, 6h, 24h)");
  }
  if (rolling.empty() || rolling.size() > kMaxRollingWindows) {
    return InvalidArgumentError("window.rolling: want 1 to " + std::to_string(kMaxRollingWindows) +
                                " windows");
  }
  for (DurationMs w : rolling) {
    if (w <= 0 || w % bucket != 0 || w > 366 * kMsPerDay) {
      return InvalidArgumentError("window.rolling: " + FormatDuration(w) +
                                  " is not a positive multiple of the bucket " +
                                  FormatDuration(bucket) + " of at most 366d");
    }
  }
  if (allowed_lateness < 0 || allowed_lateness > 30 * kMsPerDay) {
    return InvalidArgumentError("window.allowed_lateness: " + FormatDuration(allowed_lateness) +
                                " (want 0 to 30d)");
  }
  return OkStatus();
}

DurationMs WindowOptions::retention() const {
  return *std::max_element(rolling.begin(), rolling.end());
}

size_t WindowOptions::RollingIndex(DurationMs window) const {
  return static_cast<size_t>(std::find(rolling.begin(), rolling.end(), window) - rolling.begin());
}

Status WindowOptions::CheckRolling(std::string_view key, DurationMs window) const {
  if (RollingIndex(window) < rolling.size()) return OkStatus();
  std::string list;
  for (DurationMs w : rolling) list += (list.empty() ? "" : ", ") + FormatDuration(w);
  return InvalidArgumentError(std::string(key) + ": " + FormatDuration(window) + " is not one of the rolling windows (" +
                              list + ")");
}

VolumeAggregator::VolumeAggregator(const WindowOptions& options,
                                   std::vector<std::string> group_names, CorridorTable* corridors)
    : options_(options), group_names_(std::move(group_names)), corridors_(corridors) {
  SHORTFALL_CHECK(options_.Validate().ok());
}

VolumeAggregator::Series& VolumeAggregator::SeriesFor(SeriesKey key) {
  const size_t slot = size_t{key.corridor} * kMaxGroupIds + key.group;
  if (slot < series_index_.size() && series_index_[slot] != nullptr) return *series_index_[slot];
  auto [it, inserted] = series_.try_emplace(Pack(key));
  if (slot >= series_index_.size()) series_index_.resize(slot + kMaxGroupIds, nullptr);
  series_index_[slot] = &it->second;
  if (inserted) {
    Series& s = it->second;
    s.key = key;
    s.next_to_close = s.buckets.end();
    s.window_tail.fill(s.buckets.end());
    sorted_stale_ = true;
  }
  return it->second;
}

void VolumeAggregator::AddTo(SeriesKey key, TimestampMs bucket_start, const VolumeDelta& delta) {
  Series& s = SeriesFor(key);
  if (s.last_bucket == nullptr || s.last_start != bucket_start) {
    const auto emplaced = s.buckets.try_emplace(bucket_start);
    const BucketMap::iterator it = emplaced.first;
    if (emplaced.second) {
      const auto move_back = [&](BucketMap::iterator& cursor) {
        if (cursor == s.buckets.end() || cursor->first > bucket_start) cursor = it;
      };
      move_back(s.next_to_close);
      for (size_t w = 0; w < options_.rolling.size(); ++w) move_back(s.window_tail[w]);
    }
    s.last_bucket = &it->second;
    s.last_start = bucket_start;
  }
  Bucket& b = *s.last_bucket;
  b.volume.Add(delta);
  b.dirty = true;
  s.total.Add(delta);
  s.total_dirty = true;
}

bool VolumeAggregator::IsClosed(TimestampMs event_time) const {
  return closed_until_ != kMinTimestamp && event_time < closed_until_;
}

bool VolumeAggregator::AddToSeries(SeriesKey series, TimestampMs event_time,
                                   const VolumeDelta& delta) {
  if (IsClosed(event_time)) return false;
  AddTo(series, AlignDown(event_time, options_.bucket), delta);
  return true;
}

bool VolumeAggregator::Add(GroupId group, CorridorId corridor, TimestampMs event_time,
                           const VolumeDelta& delta) {
  if (IsClosed(event_time)) return false;
  const TimestampMs start = AlignDown(event_time, options_.bucket);
  AddTo(SeriesKey{group, corridor}, start, delta);
  if (corridor != kAllCorridors) AddTo(SeriesKey{group, kAllCorridors}, start, delta);
  return true;
}

const std::vector<VolumeAggregator::Series*>& VolumeAggregator::SortedSeries() const {
  if (sorted_stale_) {
    sorted_.clear();
    for (auto& [packed, s] : series_) sorted_.push_back(const_cast<Series*>(&s));
    std::sort(sorted_.begin(), sorted_.end(), [&](const Series* a, const Series* b) {
      const std::string& ga = group_names_[a->key.group];
      const std::string& gb = group_names_[b->key.group];
      if (ga != gb) return ga < gb;
      return corridors_->Code(a->key.corridor) < corridors_->Code(b->key.corridor);
    });
    sorted_stale_ = false;
  }
  return sorted_;
}

std::string VolumeAggregator::SeriesPrefix(SeriesKey key) const {
  std::string prefix = group_names_[key.group];
  prefix.push_back('\0');
  prefix += corridors_->Code(key.corridor);
  prefix.push_back('\0');
  return prefix;
}

void VolumeAggregator::CloseBucket(TimestampMs start, std::vector<WindowReport>* out) {
  const TimestampMs end = start + options_.bucket;
  const TimestampMs oldest_kept = end - options_.retention();
  for (Series* s : SortedSeries()) {
    if (s->buckets.empty()) continue;
    // Each window moves one bucket on: `start` comes in, `start - w` goes out.
    // Both are closed, so neither changes again.
    const auto none = s->buckets.end();
    const auto closing = s->next_to_close != none && s->next_to_close->first == start
                             ? s->next_to_close++
                             : none;
    for (size_t w = 0; w < options_.rolling.size(); ++w) {
      if (closing != none) s->rolling[w].Add(closing->second.volume);
      auto& leaving = s->window_tail[w];
      if (leaving != none && leaving->first == start - options_.rolling[w]) {
        s->rolling[w].Subtract(leaving->second.volume);
        ++leaving;
      }
    }
    // Expire buckets the longest window ending here no longer covers.
    while (!s->buckets.empty() && s->buckets.begin()->first < oldest_kept) {
      auto oldest = s->buckets.begin();
      if (oldest->second.persisted) {
        deleted_keys_.push_back(SeriesPrefix(s->key) + EncodeTime(oldest->first));
      }
      if (s->last_bucket == &oldest->second) s->last_bucket = nullptr;
      s->buckets.erase(oldest);
    }
    if (s->buckets.empty() || s->buckets.begin()->first >= end) continue;
    WindowReport& r = out->emplace_back();
    r.bucket_start = start;
    r.bucket_end = end;
    r.series = s->key;
    if (closing != none) r.bucket = closing->second.volume;
    r.rolling = s->rolling;
  }
  closed_until_ = end;
  closed_until_dirty_ = true;
}

void VolumeAggregator::RecomputeRolling(Series* s) const {
  s->rolling = {};
  s->last_bucket = nullptr;
  s->window_tail.fill(s->buckets.begin());
  s->next_to_close = s->buckets.begin();
  if (closed_until_ == kMinTimestamp) return;
  s->next_to_close = s->buckets.lower_bound(closed_until_);
  for (size_t w = 0; w < options_.rolling.size(); ++w) {
    s->window_tail[w] = s->buckets.lower_bound(closed_until_ - options_.rolling[w]);
    for (auto it = s->window_tail[w]; it != s->buckets.end() && it->first < closed_until_; ++it) {
      s->rolling[w].Add(it->second.volume);
    }
  }
}

void VolumeAggregator::AdvanceTo(TimestampMs watermark, std::vector<WindowReport>* out) {
  if (watermark == kMinTimestamp) return;
  if (closed_until_ == kMinTimestamp) {
    // First close: start from the oldest bucket holding data.
    TimestampMs oldest = AlignDown(watermark, options_.bucket);
    for (const auto& [packed, s] : series_) {
      if (!s.buckets.empty()) oldest = std::min(oldest, s.buckets.begin()->first);
    }
    closed_until_ = oldest;
    closed_until_dirty_ = true;
  }
  while (closed_until_ + options_.bucket <= watermark) {
    const size_t before = out->size();
    CloseBucket(closed_until_, out);
    if (out->size() == before) SkipEmptySpan(watermark);
  }
}

void VolumeAggregator::SkipEmptySpan(TimestampMs watermark) {
  // Nothing was reported, so no series has a bucket in any window: jump to
  // the next bucket holding data (or to the watermark) instead of closing
  // empty buckets one by one across a gap — after a quiet weekend, or an
  // event far ahead of the rest.
  TimestampMs next = AlignDown(watermark, options_.bucket);
  for (const auto& [packed, s] : series_) {
    if (s.next_to_close != s.buckets.end()) next = std::min(next, s.next_to_close->first);
  }
  if (next <= closed_until_) return;
  closed_until_ = next;
  closed_until_dirty_ = true;
  for (auto& [packed, s] : series_) RecomputeRolling(&s);
}

void VolumeAggregator::CloseAll(std::vector<WindowReport>* out) {
  TimestampMs newest = kMinTimestamp;
  for (const auto& [packed, s] : series_) {
    if (!s.buckets.empty()) newest = std::max(newest, s.buckets.rbegin()->first);
  }
  if (newest != kMinTimestamp) AdvanceTo(newest + options_.bucket, out);
}

std::vector<SeriesSummary> VolumeAggregator::Summaries() const {
  std::vector<SeriesSummary> summaries;
  for (const Series* s : SortedSeries()) summaries.push_back({s->key, s->total, s->rolling});
  return summaries;
}

size_t VolumeAggregator::bucket_count() const {
  size_t n = 0;
  for (const auto& [packed, s] : series_) n += s.buckets.size();
  return n;
}

void VolumeAggregator::Flush(StateWriteBatch* batch) {
  for (const std::string& key : deleted_keys_) batch->Delete(kBucketsNs, key);
  deleted_keys_.clear();
  for (Series* s : SortedSeries()) {
    std::string prefix;
    for (auto& [start, b] : s->buckets) {
      if (!b.dirty) continue;
      if (prefix.empty()) prefix = SeriesPrefix(s->key);
      batch->Put(kBucketsNs, prefix + EncodeTime(start), EncodeVolume(b.volume));
      b.dirty = false;
      b.persisted = true;
    }
    if (s->total_dirty) {
      batch->Put(kTotalsNs, SeriesPrefix(s->key), EncodeVolume(s->total));
      s->total_dirty = false;
    }
  }
  // The layout goes with every flush: buckets mean nothing without it.
  batch->Put(kWindowsNs, kLayoutKey, Layout());
  if (closed_until_dirty_) {
    batch->Put(kWindowsNs, kClosedUntilKey, EncodeTime(closed_until_));
    closed_until_dirty_ = false;
  }
}

std::string VolumeAggregator::Layout() const {
  std::string layout = "bucket=" + FormatDuration(options_.bucket) + " windows=";
  for (size_t w = 0; w < options_.rolling.size(); ++w) {
    layout += (w > 0 ? "," : "") + FormatDuration(options_.rolling[w]);
  }
  return layout;
}

Status VolumeAggregator::Restore(const StateView& state) {
  Status s = RestoreFrom(state);
  if (!s.ok()) {  // leave nothing half-loaded behind
    series_.clear();
    series_index_.clear();
    sorted_stale_ = true;
    closed_until_ = kMinTimestamp;
  }
  return s;
}

Status VolumeAggregator::RestoreFrom(const StateView& state) {
  series_.clear();
  series_index_.clear();
  sorted_stale_ = true;
  deleted_keys_.clear();
  closed_until_ = kMinTimestamp;
  closed_until_dirty_ = false;

  // Key layout: group '\0' corridor '\0' [8-byte time].
  Status error;
  const auto parse_series = [&](std::string_view key, std::string_view* rest) -> Series* {
    const size_t g_end = key.find('\0');
    const size_t c_end = g_end == std::string_view::npos ? g_end : key.find('\0', g_end + 1);
    if (c_end == std::string_view::npos) {
      error = DataLossError("volume state: malformed key");
      return nullptr;
    }
    const std::string_view group = key.substr(0, g_end);
    auto gid = std::find(group_names_.begin(), group_names_.end(), group);
    if (gid == group_names_.end()) {
      error = FailedPreconditionError(
          "volume state names group '" + std::string(group) +
          "' that the catalog does not have; restore with the catalog the state was built "
          "with, or start from an empty state directory");
      return nullptr;
    }
    std::optional<CorridorId> corridor =
        corridors_->InternCode(key.substr(g_end + 1, c_end - g_end - 1));
    if (!corridor) {
      error = DataLossError("volume state: malformed corridor in key");
      return nullptr;
    }
    *rest = key.substr(c_end + 1);
    return &SeriesFor(SeriesKey{static_cast<GroupId>(gid - group_names_.begin()), *corridor});
  };

  SHORTFALL_RETURN_IF_ERROR(state.Scan(kBucketsNs, "", [&](std::string_view key, std::string_view value) {
    std::string_view rest;
    Series* s = parse_series(key, &rest);
    if (s == nullptr) return false;
    Bucket b;
    b.persisted = true;
    if (rest.size() != 8 || !DecodeVolume(value, &b.volume)) {
      error = DataLossError("volume state: malformed bucket");
      return false;
    }
    s->buckets.emplace(DecodeTime(rest), b);
    return true;
  }));
  SHORTFALL_RETURN_IF_ERROR(error);
  SHORTFALL_RETURN_IF_ERROR(state.Scan(kTotalsNs, "", [&](std::string_view key, std::string_view value) {
    std::string_view rest;
    Series* s = parse_series(key, &rest);
    if (s == nullptr) return false;
    if (!rest.empty() || !DecodeVolume(value, &s->total)) {
      error = DataLossError("volume state: malformed total");
      return false;
    }
    return true;
  }));
  SHORTFALL_RETURN_IF_ERROR(error);
  SHORTFALL_ASSIGN_OR_RETURN(std::optional<std::string> layout, state.Get(kWindowsNs, kLayoutKey));
  if (layout && *layout != Layout()) {
    return FailedPreconditionError("the state was built with " + *layout + ", not " + Layout() +
                                   "; use the same --bucket and --windows, or an empty state directory");
  }
  SHORTFALL_ASSIGN_OR_RETURN(std::optional<std::string> closed, state.Get(kWindowsNs, kClosedUntilKey));
  if (closed) {
    if (closed->size() != 8) return DataLossError("volume state: malformed closed_until");
    closed_until_ = DecodeTime(*closed);
    if (AlignDown(closed_until_, options_.bucket) != closed_until_) {
      return DataLossError("volume state: closed_until is not on a bucket boundary");
    }
  }
  for (auto& [packed, s] : series_) RecomputeRolling(&s);
  return OkStatus();
}

}  // namespace shortfall::operators
