// PublishWatermarks: which published event made each window close, for
// measuring publish -> alert visible (bench/alert_latency.cc).
//
// Stage two closes the event-time bucket ending at E, and so emits the alert
// records of that close (ShortageAlert.window_end == E), when the combined
// watermark reaches E: the smallest, over every input partition, of the
// partition's newest actual event time minus the allowed lateness
// (operators/watermark.h, docs/runtime.md "Event time across the hop"), and
// nothing closes before every expected partition has reported. So the event
// that caused a close is the first one, in publish order, after which that
// minimum is >= E; its publish time is where the alert's latency starts.
//
//   PublishWatermarks w(6 * kMsPerHour, expected_partitions);
//   for (each accepted actual event, in publish order) w.Add(publish_ms, partition, event_time);
//   std::optional<TimestampMs> t = w.FirstPublishReaching(alert_window_end);
//
// A close the events never reach (nullopt) was made by something else: the
// runtime's idleness (every source read to its end for processing.idle_after
// closes windows up to the largest watermark), which is no publish.
//
// Thread-safety: not thread-safe. Failure: Add returns kInvalidArgument for a
// publish time older than the previous one (the events must come in publish
// order) and for a partition not in the expected set.
#ifndef SHORTFALL_BENCH_PUBLISH_WATERMARKS_H_
#define SHORTFALL_BENCH_PUBLISH_WATERMARKS_H_

#include <cstdint>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "operators/watermark.h"

namespace shortfall::bench {

class PublishWatermarks {
 public:
  // REQUIRES: allowed_lateness >= 0; `expected` the input partitions stage
  // two waits for (every partition of both input topics).
  PublishWatermarks(DurationMs allowed_lateness, std::vector<operators::PartitionKey> expected);

  // An actual event that stage one accepted (or would classify as late: a
  // late event raises no watermark, so it changes nothing here either).
  Status Add(TimestampMs publish_ms, operators::PartitionKey partition, TimestampMs event_time);

  // Publish time of the first event after which the combined watermark is
  // >= `watermark`; nullopt when it never got there.
  std::optional<TimestampMs> FirstPublishReaching(TimestampMs watermark) const;

  // The combined watermark after every event added so far (kMinTimestamp
  // while some expected partition has had no event).
  TimestampMs watermark() const { return steps_.empty() ? kMinTimestamp : steps_.back().second; }

 private:
  operators::WatermarkTracker tracker_;
  std::set<operators::PartitionKey> waiting_;  // expected, no event yet
  std::set<operators::PartitionKey> expected_;
  TimestampMs last_publish_ = kMinTimestamp;
  // (publish time, combined watermark from then on), watermark increasing.
  std::vector<std::pair<TimestampMs, TimestampMs>> steps_;
};

// The q-quantile of `values` by nearest rank (the smallest value with at
// least q of the values at or below it), so it is always a measured value:
// with few values p99 is the largest. REQUIRES: values not empty, 0 < q <= 1.
int64_t NearestRank(std::vector<int64_t> values, double q);

}  // namespace shortfall::bench

#endif  // SHORTFALL_BENCH_PUBLISH_WATERMARKS_H_
