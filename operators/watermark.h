// WatermarkTracker: event-time progress per input partition.
//
// Each input partition's watermark is the largest actual event time seen on
// it minus the allowed lateness; it never moves backwards. An actual event
// older than its partition's watermark is late. The combined watermark, the
// one that closes windows, is the smallest partition watermark: a window
// closes only when every partition has moved past it.
//
// Partitions are identified by a PartitionKey (input source and partition
// number). A partition counts from its first observed event on; one that is
// silent forever holds nothing back.
//
// Idleness in stream time (for replays; the Kafka runtime judges idleness by
// wall clock itself and leaves idle_after at 0). With idle_after > 0, a
// partition whose newest record (Touch) is more than idle_after older than
// the newest record of any partition is idle: it holds no window back until
// it sends again. When every partition with events is idle, the largest
// watermark counts.
//
// Thread-safety: not thread-safe; one tracker per task.
#ifndef SHORTFALL_OPERATORS_WATERMARK_H_
#define SHORTFALL_OPERATORS_WATERMARK_H_

#include <cstdint>
#include <unordered_map>
#include <string>

#include "base/status.h"
#include "base/time.h"
#include "operators/state_store.h"

namespace shortfall::operators {

// The input topics the operators know.
enum class EventSource : uint8_t { kShipments = 0, kCustoms = 1 };

struct PartitionKey {
  EventSource source;
  int32_t partition;
  friend auto operator<=>(const PartitionKey&, const PartitionKey&) = default;
};

// What Admit() made of an actual event.
enum class Admission : uint8_t {
  kInOrder,     // at or after the partition's newest event
  kOutOfOrder,  // older than the newest, within the allowed lateness
  kLate,        // older than the partition watermark: not observed
};

class WatermarkTracker {
 public:
  // REQUIRES: allowed_lateness >= 0, idle_after >= 0 (0: never idle).
  explicit WatermarkTracker(DurationMs allowed_lateness, DurationMs idle_after = 0);

  // Notes a record of `partition` with record (stream) time `record_time`,
  // valid or not: the partition is alive. Only matters with idle_after > 0.
  void Touch(PartitionKey partition, TimestampMs record_time);

  // Classifies an actual event against its partition's watermark and, unless
  // it is late, records it (raising the partition's newest event time).
  Admission Admit(PartitionKey partition, TimestampMs event_time);

  // The partition's watermark; kMinTimestamp before its first event.
  TimestampMs PartitionWatermark(PartitionKey partition) const;
  // The smallest watermark of the partitions that are not idle (see above);
  // kMinTimestamp before any event.
  TimestampMs Watermark() const;

  // Persistence, namespace "watermarks": Flush writes partitions changed
  // since the last Flush; Restore replaces the tracker's state.
  void Flush(StateWriteBatch* batch);
  Status Restore(const StateView& state);

 private:
  struct Partition {
    TimestampMs max_event_time = kMinTimestamp;  // kMinTimestamp: touched, no event yet
    TimestampMs last_record_time = kMinTimestamp;
    bool dirty = false;
  };
  static uint64_t Pack(PartitionKey p) {
    return (uint64_t{static_cast<uint8_t>(p.source)} << 32) | static_cast<uint32_t>(p.partition);
  }
  static PartitionKey Unpack(uint64_t packed) {
    return PartitionKey{static_cast<EventSource>(packed >> 32), static_cast<int32_t>(packed & 0xffffffffu)};
  }

  DurationMs allowed_lateness_;
  DurationMs idle_after_;
  TimestampMs stream_time_ = kMinTimestamp;  // newest record time of any partition
  std::unordered_map<uint64_t, Partition> partitions_;
  mutable TimestampMs cached_min_max_ = kMinTimestamp;
  mutable bool min_valid_ = false;
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_WATERMARK_H_
