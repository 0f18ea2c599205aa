#include "operators/watermark.h"

#include <algorithm>
#include <charconv>

#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr std::string_view kNamespace = "watermarks";

std::string EncodeKey(PartitionKey p) {
  return std::to_string(static_cast<int>(p.source)) + ":" + std::to_string(p.partition);
}

bool DecodeKey(std::string_view key, PartitionKey* out) {
  const size_t colon = key.find(':');
  if (colon == std::string_view::npos) return false;
  int source = -1;
  const char* end = key.data() + key.size();
  auto [p1, e1] = std::from_chars(key.data(), key.data() + colon, source);
  auto [p2, e2] = std::from_chars(key.data() + colon + 1, end, out->partition);
  if (e1 != std::errc() || e2 != std::errc() || p1 != key.data() + colon || p2 != end ||
      source < 0 || source > 1) {
    return false;
  }
  out->source = static_cast<EventSource>(source);
  return true;
}

}  // namespace

WatermarkTracker::WatermarkTracker(DurationMs allowed_lateness, DurationMs idle_after)
    : allowed_lateness_(allowed_lateness), idle_after_(idle_after) {
  SHORTFALL_CHECK(allowed_lateness >= 0 && idle_after >= 0);
}

void WatermarkTracker::Touch(PartitionKey partition, TimestampMs record_time) {
  if (idle_after_ == 0) return;
  Partition& p = partitions_[Pack(partition)];
  if (record_time > p.last_record_time) {
    p.last_record_time = record_time;
    p.dirty = true;
  }
  stream_time_ = std::max(stream_time_, record_time);
}

Admission WatermarkTracker::Admit(PartitionKey partition, TimestampMs event_time) {
  Partition& p = partitions_[Pack(partition)];
  if (p.max_event_time == kMinTimestamp) {
    p.max_event_time = event_time;
    p.dirty = true;
    min_valid_ = false;
    return Admission::kInOrder;
  }
  if (event_time < p.max_event_time - allowed_lateness_) return Admission::kLate;
  if (event_time < p.max_event_time) return Admission::kOutOfOrder;
  if (event_time > p.max_event_time) {
    if (p.max_event_time == cached_min_max_) min_valid_ = false;
    p.max_event_time = event_time;
    p.dirty = true;
  }
  return Admission::kInOrder;
}

TimestampMs WatermarkTracker::PartitionWatermark(PartitionKey partition) const {
  auto it = partitions_.find(Pack(partition));
  return it == partitions_.end() || it->second.max_event_time == kMinTimestamp
             ? kMinTimestamp
             : it->second.max_event_time - allowed_lateness_;
}

TimestampMs WatermarkTracker::Watermark() const {
  if (idle_after_ > 0) {
    // Depends on stream time too: computed each time (partitions are few).
    TimestampMs active_min = kMaxTimestamp;
    TimestampMs any_max = kMinTimestamp;
    for (const auto& [key, p] : partitions_) {
      if (p.max_event_time == kMinTimestamp) continue;
      any_max = std::max(any_max, p.max_event_time);
      const bool idle = p.last_record_time != kMinTimestamp && p.last_record_time < stream_time_ - idle_after_;
      if (!idle) active_min = std::min(active_min, p.max_event_time);
    }
    if (any_max == kMinTimestamp) return kMinTimestamp;
    return (active_min != kMaxTimestamp ? active_min : any_max) - allowed_lateness_;
  }
  if (!min_valid_) {
    cached_min_max_ = kMaxTimestamp;
    for (const auto& [key, p] : partitions_) {
      if (p.max_event_time != kMinTimestamp) cached_min_max_ = std::min(cached_min_max_, p.max_event_time);
    }
    min_valid_ = true;
  }
  return cached_min_max_ == kMaxTimestamp ? kMinTimestamp : cached_min_max_ - allowed_lateness_;
}

void WatermarkTracker::Flush(StateWriteBatch* batch) {
  std::vector<uint64_t> dirty;  // sorted, so equal states write equal batches
  for (const auto& [key, p] : partitions_) {
    if (p.dirty) dirty.push_back(key);
  }
  std::sort(dirty.begin(), dirty.end());
  internal::PartitionWatermarkState state;
  for (uint64_t key : dirty) {
    Partition& p = partitions_[key];
    state.Clear();
    state.set_max_event_time_ms(p.max_event_time);
    if (p.last_record_time != kMinTimestamp) state.set_last_record_time_ms(p.last_record_time);
    batch->Put(kNamespace, EncodeKey(Unpack(key)), state.SerializeAsString());
    p.dirty = false;
  }
}

Status WatermarkTracker::Restore(const StateView& state) {
  partitions_.clear();
  min_valid_ = false;
  stream_time_ = kMinTimestamp;
  Status error;
  SHORTFALL_RETURN_IF_ERROR(state.Scan(kNamespace, "", [&](std::string_view key, std::string_view value) {
    PartitionKey p{};
    internal::PartitionWatermarkState s;
    if (!DecodeKey(key, &p) || !s.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      error = DataLossError("watermarks: bad entry '" + std::string(key) + "'");
      return false;
    }
    Partition& partition = partitions_[Pack(p)];
    partition.max_event_time = s.max_event_time_ms();
    if (s.has_last_record_time_ms()) {
      partition.last_record_time = s.last_record_time_ms();
      stream_time_ = std::max(stream_time_, partition.last_record_time);
    }
    return true;
  }));
  return error;
}

}  // namespace shortfall::operators
