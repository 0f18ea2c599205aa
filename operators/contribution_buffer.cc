#include "operators/contribution_buffer.h"

#include <algorithm>

#include "base/status.h"

namespace shortfall::operators {

ContributionBuffer::ContributionBuffer(DurationMs bucket) : bucket_(bucket) {
  SHORTFALL_CHECK(bucket > 0);
}

void ContributionBuffer::AddOne(SeriesKey series, TimestampMs bucket_start, const VolumeDelta& delta) {
  const Key key{(uint64_t{series.group} << 32) | series.corridor, bucket_start};
  entries_[key].volume.Add(delta);
}

void ContributionBuffer::AddDwellMarker(GroupId group, CorridorId corridor, TimestampMs event_time, DwellRole role,
                                        std::string_view shipment_id) {
  SHORTFALL_CHECK(corridor != kAllCorridors);
  const Key key{(uint64_t{group} << 32) | corridor, AlignDown(event_time, bucket_)};
  entries_[key].markers.push_back(Marker{std::string(shipment_id), role, event_time});
}

void ContributionBuffer::Add(GroupId group, CorridorId corridor, TimestampMs event_time,
                             const VolumeDelta& delta) {
  const TimestampMs start = AlignDown(event_time, bucket_);
  AddOne(SeriesKey{group, corridor}, start, delta);
  if (corridor != kAllCorridors) AddOne(SeriesKey{group, kAllCorridors}, start, delta);
}

void ContributionBuffer::Drain(std::vector<Entry>* out) {
  const size_t first = out->size();
  for (auto& [key, sums] : entries_) {
    out->push_back(Entry{SeriesKey{static_cast<GroupId>(key.series >> 32),
                                   static_cast<CorridorId>(key.series & 0xffffffffu)},
                         key.bucket_start, std::move(sums.volume), std::move(sums.markers)});
  }
  // Hash order is not deterministic; the records sent must be.
  std::sort(out->begin() + static_cast<std::ptrdiff_t>(first), out->end(), [](const Entry& a, const Entry& b) {
    if (a.series.group != b.series.group) return a.series.group < b.series.group;
    if (a.series.corridor != b.series.corridor) return a.series.corridor < b.series.corridor;
    return a.bucket_start < b.bucket_start;
  });
  entries_.clear();
}

}  // namespace shortfall::operators
