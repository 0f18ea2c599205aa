// VolumeAggregator: stage two of the volume pipeline. It sums contributions
// into tumbling event-time buckets per series — a (group, corridor) pair, and
// (group, kAllCorridors) for the group's total — and, when the watermark
// passes a bucket's end, closes it and reports the bucket and the rolling
// windows that end with it (default 24 h and 7 d).
//
//   aggregator.Add(group, corridor, event_time, delta);   // accepted events only
//   aggregator.AdvanceTo(watermarks.Watermark(), &reports);
//   aggregator.Flush(&batch);  store.Commit(batch, checkpoint);
//
// Buckets are [start, start + bucket). When bucket B closes, every series that
// has a bucket within the longest rolling window ending at B's end is
// reported, so a series whose flow stops reports zeros until its history
// leaves the window: a stopped flow is what shortfall exists to see. Buckets
// older than the longest window are expired (deleted from state). All-time
// totals per series are kept apart from the buckets and never expire.
//
// Reports come in order of bucket end, then group name, then corridor code,
// so output is deterministic for a given input order.
//
// Thread-safety: not thread-safe; one aggregator per task.
// Failure: Restore returns kDataLoss for state it cannot read, and
// kFailedPrecondition for state that names a group the catalog lacks.
#ifndef SHORTFALL_OPERATORS_VOLUME_AGGREGATOR_H_
#define SHORTFALL_OPERATORS_VOLUME_AGGREGATOR_H_

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "operators/catalog.h"
#include "operators/corridor.h"
#include "operators/state_store.h"
#include "operators/volume.h"

namespace shortfall::operators {

inline constexpr size_t kMaxRollingWindows = 4;

struct WindowOptions {
  // Tumbling bucket width. Default 1 h; smaller buckets react sooner and cost
  // more state (one entry per series and bucket).
  DurationMs bucket = kMsPerHour;
  // Rolling windows reported at each bucket close, each a multiple of
  // `bucket`, at most kMaxRollingWindows. Default 24 h and 7 d. The longest
  // sets how long buckets are kept.
  std::vector<DurationMs> rolling = {24 * kMsPerHour, 7 * kMsPerDay};
  // How far behind its partition's newest event an event may be and still
  // count. Default 6 h: border data arrives in bursts hours late; more delays
  // every window close by as much.
  DurationMs allowed_lateness = 6 * kMsPerHour;

  Status Validate() const;
  DurationMs retention() const;  // the longest rolling window
  // The index of `window` in `rolling`, or rolling.size() when it is not one.
  size_t RollingIndex(DurationMs window) const;
  // kInvalidArgument "<key>: 12h is not one of the rolling windows (24h, 7d)"
  // unless `window` is one of `rolling`.
  Status CheckRolling(std::string_view key, DurationMs window) const;
};

struct SeriesKey {
  GroupId group;
  CorridorId corridor;
  friend bool operator==(const SeriesKey&, const SeriesKey&) = default;
};

// A series' all-time total and its rolling windows as of closed_until().
struct SeriesSummary {
  SeriesKey series;
  VolumeDelta total;
  std::array<VolumeDelta, kMaxRollingWindows> rolling{};
};

// One series at one bucket close.
struct WindowReport {
  TimestampMs bucket_start = 0;
  TimestampMs bucket_end = 0;
  SeriesKey series{};
  VolumeDelta bucket;  // the bucket just closed
  std::array<VolumeDelta, kMaxRollingWindows> rolling{};  // per WindowOptions::rolling
};

class VolumeAggregator {
 public:
  // `group_names[id]` names group id (catalog groups, then "unclassified").
  // REQUIRES: options.Validate().ok(). `corridors` must outlive this.
  VolumeAggregator(const WindowOptions& options, std::vector<std::string> group_names,
                   CorridorTable* corridors);
  // Not copyable or movable: series keep iterators into their own maps.
  VolumeAggregator(const VolumeAggregator&) = delete;
  VolumeAggregator& operator=(const VolumeAggregator&) = delete;

  // Adds `delta` to series (group, corridor) and (group, kAllCorridors) in
  // the bucket of `event_time`. Returns false, adding nothing, when that
  // bucket has closed already (the caller counts the event as late).
  [[nodiscard]] bool Add(GroupId group, CorridorId corridor, TimestampMs event_time,
                         const VolumeDelta& delta);

  // Adds `delta` to one series only: stage two, where stage one has already
  // split a contribution into its corridor and group-total series. Returns
  // false, adding nothing, when the bucket has closed already.
  [[nodiscard]] bool AddToSeries(SeriesKey series, TimestampMs event_time, const VolumeDelta& delta);

  // True when the bucket holding `event_time` has been closed already.
  bool IsClosed(TimestampMs event_time) const;

  // Closes every bucket whose end is <= `watermark`, oldest first, appending
  // reports to *out. A watermark that goes backwards does nothing.
  void AdvanceTo(TimestampMs watermark, std::vector<WindowReport>* out);
  // Closes every bucket that holds data (end of input).
  void CloseAll(std::vector<WindowReport>* out);

  // End of the newest closed bucket; kMinTimestamp before the first close.
  TimestampMs closed_until() const { return closed_until_; }

  // Every series' all-time total and current rolling windows, in report order.
  std::vector<SeriesSummary> Summaries() const;

  // Persistence, namespaces "volume_buckets", "volume_totals" and
  // "volume_windows": Flush writes what changed since the last Flush and
  // marks it clean, so a batch whose Commit fails cannot be rebuilt: after a
  // failed commit, Restore from the store before going on. Restore refuses
  // state built with another bucket or window list (kFailedPrecondition); on
  // any error it leaves the aggregator empty.
  void Flush(StateWriteBatch* batch);
  Status Restore(const StateView& state);

  const std::string& group_name(GroupId id) const { return group_names_[id]; }
  const WindowOptions& options() const { return options_; }
  size_t series_count() const { return series_.size(); }
  size_t bucket_count() const;

 private:
  struct Bucket {
    VolumeDelta volume;
    bool dirty = false;      // changed since the last Flush
    bool persisted = false;  // written by some Flush: expiring it must delete it
  };
  using BucketMap = std::map<TimestampMs, Bucket>;  // by start
  struct Series {
    SeriesKey key;
    BucketMap buckets;
    // Cursors that make a close O(1) per series: the first bucket starting at
    // or after closed_until_, and per window w the first starting at or after
    // closed_until_ - w (end() when there is none). A new bucket never starts
    // before closed_until_, so inserting one only ever moves a cursor back to it.
    BucketMap::iterator next_to_close;
    std::array<BucketMap::iterator, kMaxRollingWindows> window_tail;
    // The bucket the last Add went to: most events land in the newest bucket,
    // and map nodes stay put, so this skips the tree walk.
    TimestampMs last_start = kMinTimestamp;
    Bucket* last_bucket = nullptr;
    // Per rolling window w: the sum of the buckets starting in
    // [closed_until_ - w, closed_until_). Moved one bucket per close; exact
    // because amounts are integers. Not persisted: Restore recomputes it.
    std::array<VolumeDelta, kMaxRollingWindows> rolling{};
    VolumeDelta total;
    bool total_dirty = false;
  };
  static uint64_t Pack(SeriesKey k) { return (uint64_t{k.group} << 32) | k.corridor; }
  Series& SeriesFor(SeriesKey key);
  void AddTo(SeriesKey key, TimestampMs bucket_start, const VolumeDelta& delta);
  void CloseBucket(TimestampMs start, std::vector<WindowReport>* out);
  // Rebuilds a series' rolling sums and cursors from its buckets.
  void RecomputeRolling(Series* s) const;
  void SkipEmptySpan(TimestampMs watermark);
  Status RestoreFrom(const StateView& state);
  std::string Layout() const;  // "bucket=1h windows=24h,7d"
  const std::vector<Series*>& SortedSeries() const;
  std::string SeriesPrefix(SeriesKey key) const;

  WindowOptions options_;
  std::vector<std::string> group_names_;
  CorridorTable* corridors_;
  std::unordered_map<uint64_t, Series> series_;  // owns the series; node addresses are stable
  // Series by corridor id * kMaxGroupIds + group id: the per-event lookup,
  // an array index instead of a hash. Grows with the corridor table.
  static constexpr size_t kMaxGroupIds = kMaxGroups + 1;  // + unclassified
  std::vector<Series*> series_index_;
  mutable std::vector<Series*> sorted_;  // by (group name, corridor code); rebuilt when stale
  mutable bool sorted_stale_ = true;
  TimestampMs closed_until_ = kMinTimestamp;
  bool closed_until_dirty_ = false;
  std::vector<std::string> deleted_keys_;  // bucket keys to delete on Flush
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_VOLUME_AGGREGATOR_H_
