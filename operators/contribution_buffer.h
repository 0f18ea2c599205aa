// ContributionBuffer: stage one's combiner. Accepted events add their
// per-group contributions here; at each commit the buffer is drained into
// one partial sum per (series, bucket) for the repartition topic, instead of
// one record per goods line — the same idea as Flink's local aggregation or
// Kafka Streams' record cache, and most of what keeps the hop cheap.
//
// Each contribution counts for its (group, corridor) series and for the
// group's total (group, kAllCorridors), which may live on another stage-two
// partition, so both are buffered.
//
// Dwell markers (a side of DwellJoin's join: the counting arrival or a
// release) travel with the partial sum of their (group, corridor) series and
// bucket, in the order they were added; never with the group total, where
// the join would see them twice. Stage two offers them to its DwellJoin.
//
// Thread-safety: not thread-safe; one buffer per stage-one task.
#ifndef SHORTFALL_OPERATORS_CONTRIBUTION_BUFFER_H_
#define SHORTFALL_OPERATORS_CONTRIBUTION_BUFFER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/time.h"
#include "operators/corridor.h"
#include "operators/event_normalizer.h"
#include "operators/volume.h"
#include "operators/volume_aggregator.h"

namespace shortfall::operators {

class ContributionBuffer {
 public:
  // REQUIRES: bucket > 0.
  explicit ContributionBuffer(DurationMs bucket);

  // Buffers `delta` for (group, corridor) and (group, kAllCorridors) in the
  // bucket of `event_time`.
  void Add(GroupId group, CorridorId corridor, TimestampMs event_time, const VolumeDelta& delta);

  // Buffers one side of `shipment_id`'s dwell join in (group, corridor)'s
  // bucket of `event_time`. REQUIRES: corridor != kAllCorridors.
  void AddDwellMarker(GroupId group, CorridorId corridor, TimestampMs event_time, DwellRole role,
                      std::string_view shipment_id);

  struct Marker {
    std::string shipment_id;
    DwellRole role;
    TimestampMs event_time;
    friend bool operator==(const Marker&, const Marker&) = default;
  };
  struct Entry {
    SeriesKey series;
    TimestampMs bucket_start;
    VolumeDelta volume;
    std::vector<Marker> markers;  // dwell markers, on corridor series only
  };
  // Moves every partial sum to *out, ordered by (group, corridor id, bucket),
  // and empties the buffer.
  void Drain(std::vector<Entry>* out);

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  struct Key {
    uint64_t series;  // group << 32 | corridor
    TimestampMs bucket_start;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<uint64_t>()(k.series * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(k.bucket_start));
    }
  };
  struct Sums {
    VolumeDelta volume;
    std::vector<Marker> markers;
  };
  void AddOne(SeriesKey series, TimestampMs bucket_start, const VolumeDelta& delta);

  DurationMs bucket_;
  std::unordered_map<Key, Sums, KeyHash> entries_;
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_CONTRIBUTION_BUFFER_H_
