// SeasonalSeriesTable: the bookkeeping the seasonal detectors share
// (VolumeDropDetector, CustomsHoldDetector, OriginConcentrationDetector).
// Each keeps, per series — a (group, corridor) pair or a group's
// all-corridors total — a ring of slots,
// one per bucket close over `baseline_weeks` weeks, and a little detector
// state; this table owns the series, the ring geometry and the persistence:
// one key per series and chunk of a day's slots (group '\0' corridor code
// '\0' 4-byte chunk index) whose value is the chunk's written slots (each a
// 4-byte big-endian length and the slot message), rewritten when one of its
// slots closes, the newest slot also carrying the detector state, plus one
// layout key. A chunk rather than a key per slot: a backlog closes many
// hours of a series per commit, and they land in one or two chunks — one
// write each instead of one per hour (measured: 601k state writes per 1M
// events with a key per slot).
//
// A detector supplies its Series type, which must have:
//   SeriesKey key;
//   std::vector<Slot> ring;            // Slot has `TimestampMs end` (kMinTimestamp: never written)
//   TimestampMs last_end, flushed_end;  // newest report, newest written by Flush (kMinTimestamp: none)
//   bool watched() const;              // false: ignored, and its stored state deleted on Restore
//   void SaveSlot(const Slot& slot, bool newest, SlotProto* out) const;  // newest: add the state
//   void LoadSlot(size_t index, const SlotProto& in);                    // into ring[index]
//   bool LoadState(const SlotProto& in);  // the state the proto carries; false when it carries none
// and SlotProto is the detector's slot message (with `bucket_end_ms`).
//
//   SeasonalSeriesTable<Series, internal::VolumeDropSlotState> table(
//       {"volume_drop", "volume_drop.window"}, bucket, weeks, window, &group_names, corridors);
//   Series& s = table.For(key, [&](Series& fresh) { fresh.tuning = TuningFor(key); });
//   if (!table.Advance(s, t)) return;  // not newer than the last report
//
// Thread-safety: not thread-safe; one per detector.
// Failure: Restore returns kFailedPrecondition for state of another layout
// or naming a group the catalog lacks, kDataLoss for state it cannot read;
// on error the table is left empty.
#ifndef SHORTFALL_OPERATORS_SEASONAL_SERIES_H_
#define SHORTFALL_OPERATORS_SEASONAL_SERIES_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "operators/catalog.h"
#include "operators/corridor.h"
#include "operators/state_store.h"
#include "operators/volume_aggregator.h"

namespace shortfall::operators {

// Most weeks of history a seasonal baseline may keep.
inline constexpr int kMaxBaselineWeeks = 12;
// Bound on (7 d / bucket) x baseline_weeks: slots per series.
inline constexpr int64_t kMaxBaselineSlots = 8192;

// The ring settings every seasonal detector has, checked alike: `window` is
// one of windows.rolling; baseline_weeks is 1 to kMaxBaselineWeeks and its
// weeks of buckets fit in kMaxBaselineSlots; min_history_weeks is 1 to
// baseline_weeks. Errors name "<prefix>.<field>" ("volume_drop.window: 12h is
// not one of the rolling windows (24h, 7d)"), or are windows.Validate()'s.
inline Status ValidateSeasonalRing(std::string_view prefix, DurationMs window, int baseline_weeks,
                                   int min_history_weeks, const WindowOptions& windows) {
  SHORTFALL_RETURN_IF_ERROR(windows.Validate());
  const std::string p(prefix);
  SHORTFALL_RETURN_IF_ERROR(windows.CheckRolling(p + ".window", window));
  if (baseline_weeks < 1 || baseline_weeks > kMaxBaselineWeeks) {
    return InvalidArgumentError(p + ".baseline_weeks: " + std::to_string(baseline_weeks) + " (want 1 to " +
                                std::to_string(kMaxBaselineWeeks) + ")");
  }
  const int64_t slots = 7 * kMsPerDay / windows.bucket * baseline_weeks;
  if (slots > kMaxBaselineSlots) {
    return InvalidArgumentError(p + ".baseline_weeks: " + std::to_string(baseline_weeks) + " weeks of " +
                                FormatDuration(windows.bucket) + " buckets are " + std::to_string(slots) +
                                " slots per series, more than " + std::to_string(kMaxBaselineSlots) +
                                " (use fewer weeks or a longer window.bucket)");
  }
  if (min_history_weeks < 1 || min_history_weeks > baseline_weeks) {
    return InvalidArgumentError(p + ".min_history_weeks: " + std::to_string(min_history_weeks) +
                                " (want 1 to baseline_weeks, " + std::to_string(baseline_weeks) + ")");
  }
  return OkStatus();
}

template <typename Series, typename SlotProto>
class SeasonalSeriesTable {
 public:
  struct Names {
    std::string ns;          // state namespace and the prefix of error messages: "volume_drop"
    std::string window_key;  // the config key of the detector's window: "volume_drop.window"
  };

  // `group_names` and `corridors` must outlive the table. REQUIRES:
  // bucket > 0, baseline_weeks >= 1, a week a whole number of buckets.
  SeasonalSeriesTable(Names names, DurationMs bucket, int baseline_weeks, DurationMs window,
                      const std::vector<std::string>* group_names, CorridorTable* corridors)
      : names_(std::move(names)),
        bucket_(bucket),
        baseline_weeks_(baseline_weeks),
        window_(window),
        slots_per_week_(static_cast<size_t>(kWeek / bucket)),
        ring_size_(slots_per_week_ * static_cast<size_t>(baseline_weeks)),
        chunk_slots_(std::max<size_t>(1, slots_per_week_ / 7)),
        group_names_(group_names),
        corridors_(corridors) {}
  SeasonalSeriesTable(const SeasonalSeriesTable&) = delete;
  SeasonalSeriesTable& operator=(const SeasonalSeriesTable&) = delete;

  // The series of `key`; a new one is passed to `init` first.
  template <typename Init>
  Series& For(SeriesKey key, Init&& init) {
    SHORTFALL_CHECK(key.group < group_names_->size() && key.corridor < corridors_->size());
    const size_t index = Index(key);
    if (index < index_.size() && index_[index] != nullptr) return *index_[index];
    auto [it, inserted] = series_.try_emplace(Pack(key));
    if (inserted) {
      it->second.key = key;
      init(it->second);
    }
    if (index >= index_.size()) index_.resize(index + kMaxGroupIds, nullptr);
    index_[index] = &it->second;
    return it->second;
  }
  Series* Find(SeriesKey key) const {
    const size_t index = Index(key);
    return index < index_.size() ? index_[index] : nullptr;
  }

  // A report of `s` closing at `t`: false when it is not newer than the
  // series' last one (ignore it). Otherwise sizes the ring and sets
  // *stale when the series was silent for longer than the whole ring (its
  // slots and state say nothing about now).
  bool Advance(Series& s, TimestampMs t, bool* stale) {
    if (s.last_end != kMinTimestamp && t <= s.last_end) return false;
    newest_end_ = std::max(newest_end_, t);
    if (s.ring.empty()) s.ring.resize(ring_size_);
    *stale = s.last_end != kMinTimestamp && t - s.last_end > span();
    return true;
  }

  // The ring slot of the bucket ending at `bucket_end`.
  size_t SlotIndex(TimestampMs bucket_end) const {
    const int64_t n = static_cast<int64_t>(ring_size_);
    const int64_t r = AlignDown(bucket_end, bucket_) / bucket_ % n;
    return static_cast<size_t>(r < 0 ? r + n : r);
  }
  // The slot of the same bucket close `weeks_back` weeks earlier, when it
  // holds that close (and not an older or no one).
  template <typename Slot>
  const Slot* Lagged(const std::vector<Slot>& ring, TimestampMs t, int weeks_back) const {
    const Slot& slot = ring[SlotIndex(t - weeks_back * kWeek)];
    return slot.end == t - weeks_back * kWeek ? &slot : nullptr;
  }

  // Marks the slots of `s` closed in [from, to) anomalous (those the ring
  // still holds) and has the next Flush write them again: for a detector
  // whose episode is found to have begun before its first firing close.
  // REQUIRES: the Slot type has `bool anomalous`.
  void MarkAnomalous(Series& s, TimestampMs from, TimestampMs to) {
    if (s.ring.empty()) return;
    TimestampMs earliest = to;
    for (TimestampMs end = std::max(from, to - span() + bucket_); end < to; end += bucket_) {
      auto& slot = s.ring[SlotIndex(end)];
      if (slot.end != end || slot.anomalous) continue;
      slot.anomalous = true;
      earliest = std::min(earliest, end);
    }
    // Flush writes the slots after flushed_end: make it write these again.
    if (earliest < to && s.flushed_end != kMinTimestamp && s.flushed_end >= earliest) {
      s.flushed_end = earliest - bucket_;
    }
  }

  size_t ring_size() const { return ring_size_; }
  DurationMs bucket() const { return bucket_; }
  size_t size() const { return series_.size(); }
  const std::string& group_name(GroupId id) const { return (*group_names_)[id]; }
  const std::string& corridor_code(CorridorId id) const { return corridors_->Code(id); }

  // Writes the layout once, deletes the keys of series whose newest slot is
  // older than the whole ring (they hold nothing a later report could use),
  // and writes the slots each series closed since the last Flush, the
  // newest carrying the detector state. If the Commit of that batch fails,
  // Restore before going on.
  void Flush(StateWriteBatch* batch) {
    if (!layout_persisted_) {
      batch->Put(names_.ns, kLayoutKey, Layout());
      layout_persisted_ = true;
    }
    std::vector<Series*> expired;
    for (auto& [packed, s] : series_) {
      if (s.last_end != kMinTimestamp && newest_end_ - s.last_end > span()) expired.push_back(&s);
    }
    for (Series* s : expired) Erase(s);
    for (const std::string& key : deleted_keys_) batch->Delete(names_.ns, key);
    deleted_keys_.clear();

    SlotProto proto;
    std::string key;
    std::string value;
    std::vector<size_t> chunks;
    for (auto& [packed, s] : series_) {
      if (s.last_end == kMinTimestamp || s.last_end <= s.flushed_end) continue;
      // The slots closed since the last Flush end in (flushed_end, last_end];
      // their chunks are written whole.
      const size_t steps =
          s.flushed_end == kMinTimestamp
              ? ring_size_
              : static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(ring_size_),
                                                      (s.last_end - s.flushed_end) / bucket_));
      chunks.clear();
      for (size_t i = 0; i < steps; ++i) {
        const size_t index = SlotIndex(s.last_end - static_cast<TimestampMs>(i) * bucket_);
        if (s.ring[index].end != kMinTimestamp) chunks.push_back(index / chunk_slots_);
      }
      std::sort(chunks.begin(), chunks.end());
      chunks.erase(std::unique(chunks.begin(), chunks.end()), chunks.end());
      const std::string prefix = SeriesPrefix(s.key);
      for (size_t chunk : chunks) {
        value.clear();
        for (size_t index = chunk * chunk_slots_; index < std::min(ring_size_, (chunk + 1) * chunk_slots_); ++index) {
          if (s.ring[index].end == kMinTimestamp) continue;
          proto.Clear();
          s.SaveSlot(s.ring[index], /*newest=*/s.ring[index].end == s.last_end, &proto);
          const std::string bytes = proto.SerializeAsString();
          AppendUint32(static_cast<uint32_t>(bytes.size()), &value);
          value += bytes;
        }
        key = prefix;
        AppendUint32(static_cast<uint32_t>(chunk), &key);
        batch->Put(names_.ns, key, value);
      }
      s.flushed_end = s.last_end;
    }
  }

  // Replaces the table with the committed state. `init` prepares each
  // series as For() does.
  template <typename Init>
  Status Restore(const StateView& state, Init&& init) {
    Status status = RestoreFrom(state, init);
    if (!status.ok()) Clear();  // nothing half-loaded stays behind
    return status;
  }

 private:
  static constexpr std::string_view kLayoutKey = "layout";
  static constexpr DurationMs kWeek = 7 * kMsPerDay;
  static constexpr size_t kMaxGroupIds = kMaxGroups + 1;  // + unclassified

  static uint64_t Pack(SeriesKey k) { return (uint64_t{k.group} << 32) | k.corridor; }
  static size_t Index(SeriesKey k) { return size_t{k.corridor} * kMaxGroupIds + k.group; }
  static void AppendUint32(uint32_t n, std::string* out) {
    for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>((n >> shift) & 0xff));
  }
  static uint32_t ReadUint32(std::string_view four) {
    uint32_t n = 0;
    for (char c : four) n = (n << 8) | static_cast<uint8_t>(c);
    return n;
  }

  DurationMs span() const { return kWeek * baseline_weeks_; }
  // "bucket=1h window=24h baseline_weeks=4 chunk=24"
  std::string Layout() const {
    return "bucket=" + FormatDuration(bucket_) + " window=" + FormatDuration(window_) +
           " baseline_weeks=" + std::to_string(baseline_weeks_) + " chunk=" + std::to_string(chunk_slots_);
  }
  std::string SeriesPrefix(SeriesKey key) const {
    std::string prefix = group_name(key.group);
    prefix.push_back('\0');
    prefix += corridor_code(key.corridor);
    prefix.push_back('\0');
    return prefix;
  }
  // Drops a series, deleting every key it may have in the store (deleting
  // one that is not there is harmless).
  void Erase(Series* s) {
    const std::string prefix = SeriesPrefix(s->key);
    for (size_t chunk = 0; chunk * chunk_slots_ < s->ring.size(); ++chunk) {
      bool written = false;
      for (size_t i = chunk * chunk_slots_; i < std::min(s->ring.size(), (chunk + 1) * chunk_slots_); ++i) {
        written = written || s->ring[i].end != kMinTimestamp;
      }
      if (!written) continue;
      std::string key = prefix;
      AppendUint32(static_cast<uint32_t>(chunk), &key);
      deleted_keys_.push_back(std::move(key));
    }
    const SeriesKey key = s->key;
    index_[Index(key)] = nullptr;
    series_.erase(Pack(key));
  }
  void Clear() {
    series_.clear();
    index_.clear();
    deleted_keys_.clear();
    newest_end_ = kMinTimestamp;
    layout_persisted_ = false;
  }

  template <typename Init>
  Status RestoreFrom(const StateView& state, Init& init) {
    Clear();
    const std::string& ns = names_.ns;
    SHORTFALL_ASSIGN_OR_RETURN(std::optional<std::string> layout, state.Get(ns, kLayoutKey));
    if (layout && *layout != Layout()) {
      return FailedPreconditionError(ns + " state was built with " + *layout + ", not " + Layout() +
                                     "; use the same window.bucket, " + names_.window_key + " and " + ns +
                                     ".baseline_weeks, or an empty state directory");
    }
    layout_persisted_ = layout.has_value();

    Status error;
    std::unordered_set<const Series*> newest_has_state;
    SlotProto proto;
    SHORTFALL_RETURN_IF_ERROR(state.Scan(ns, "", [&](std::string_view key, std::string_view value) {
      if (key == kLayoutKey) return true;
      if (!layout) {
        error = DataLossError(ns + " state: slots without a layout");
        return false;
      }
      const size_t g_end = key.find('\0');
      const size_t c_end = g_end == std::string_view::npos ? g_end : key.find('\0', g_end + 1);
      if (c_end == std::string_view::npos || key.size() != c_end + 5) {
        error = DataLossError(ns + " state: malformed key");
        return false;
      }
      const std::string_view group = key.substr(0, g_end);
      const auto gid = std::find(group_names_->begin(), group_names_->end(), group);
      if (gid == group_names_->end()) {
        error = FailedPreconditionError(ns + " state names group '" + std::string(group) +
                                        "' that the catalog does not have; restore with the catalog the state "
                                        "was built with, or start from an empty state directory");
        return false;
      }
      const std::optional<CorridorId> corridor = corridors_->InternCode(key.substr(g_end + 1, c_end - g_end - 1));
      if (!corridor) {
        error = DataLossError(ns + " state: malformed corridor in key");
        return false;
      }
      const uint32_t chunk = ReadUint32(key.substr(c_end + 1));
      Series& s = For(SeriesKey{static_cast<GroupId>(gid - group_names_->begin()), *corridor}, init);
      if (!s.watched()) {  // switched off since: its state goes
        deleted_keys_.emplace_back(key);
        return true;
      }
      if (s.ring.empty()) s.ring.resize(ring_size_);
      for (std::string_view rest = value; !rest.empty();) {
        const uint32_t size = rest.size() >= 4 ? ReadUint32(rest.substr(0, 4)) : 0;
        if (rest.size() < 4 || rest.size() - 4 < size ||
            !proto.ParseFromArray(rest.data() + 4, static_cast<int>(size)) ||
            AlignDown(proto.bucket_end_ms(), bucket_) != proto.bucket_end_ms() ||
            SlotIndex(proto.bucket_end_ms()) / chunk_slots_ != chunk) {
          error = DataLossError(ns + " state: malformed slot");
          return false;
        }
        rest.remove_prefix(4 + size);
        s.LoadSlot(SlotIndex(proto.bucket_end_ms()), proto);
        if (s.last_end == kMinTimestamp || proto.bucket_end_ms() > s.last_end) {
          s.last_end = proto.bucket_end_ms();
          if (s.LoadState(proto)) {
            newest_has_state.insert(&s);
          } else {
            newest_has_state.erase(&s);
          }
        }
      }
      return true;
    }));
    SHORTFALL_RETURN_IF_ERROR(error);
    for (auto& [packed, s] : series_) {
      if (s.last_end == kMinTimestamp) continue;
      if (!newest_has_state.contains(&s)) {
        return DataLossError(ns + " state: the newest slot of " + group_name(s.key.group) + " " +
                             corridor_code(s.key.corridor) + " has no detector state");
      }
      s.flushed_end = s.last_end;
      newest_end_ = std::max(newest_end_, s.last_end);
    }
    return OkStatus();
  }

  const Names names_;
  const DurationMs bucket_;
  const int baseline_weeks_;
  const DurationMs window_;
  const size_t slots_per_week_;
  const size_t ring_size_;
  const size_t chunk_slots_;  // slots per stored chunk: a day's, or 1
  const std::vector<std::string>* group_names_;
  CorridorTable* corridors_;
  std::unordered_map<uint64_t, Series> series_;  // owns the series; node addresses are stable
  std::vector<Series*> index_;                   // by corridor id * kMaxGroupIds + group id
  TimestampMs newest_end_ = kMinTimestamp;       // newest bucket end of any series
  bool layout_persisted_ = false;
  std::vector<std::string> deleted_keys_;  // state keys to delete on Flush
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_SEASONAL_SERIES_H_
