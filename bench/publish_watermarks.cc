#include "bench/publish_watermarks.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace shortfall::bench {

PublishWatermarks::PublishWatermarks(DurationMs allowed_lateness, std::vector<operators::PartitionKey> expected)
    : tracker_(allowed_lateness), waiting_(expected.begin(), expected.end()), expected_(waiting_) {}

Status PublishWatermarks::Add(TimestampMs publish_ms, operators::PartitionKey partition, TimestampMs event_time) {
  if (publish_ms < last_publish_) {
    return InvalidArgumentError("publish time " + std::to_string(publish_ms) + " ms is before the previous one, " +
                                std::to_string(last_publish_) + " ms: events must come in publish order");
  }
  if (!expected_.contains(partition)) {
    return InvalidArgumentError("partition " + std::to_string(partition.partition) + " of source " +
                                std::to_string(static_cast<int>(partition.source)) + " is not expected");
  }
  last_publish_ = publish_ms;
  tracker_.Admit(partition, event_time);  // a late event changes nothing
  waiting_.erase(partition);
  if (!waiting_.empty()) return OkStatus();  // stage two closes nothing yet
  const TimestampMs combined = tracker_.Watermark();
  if (steps_.empty() || combined > steps_.back().second) steps_.emplace_back(publish_ms, combined);
  return OkStatus();
}

std::optional<TimestampMs> PublishWatermarks::FirstPublishReaching(TimestampMs watermark) const {
  const auto it = std::lower_bound(steps_.begin(), steps_.end(), watermark,
                                   [](const auto& step, TimestampMs w) { return step.second < w; });
  if (it == steps_.end()) return std::nullopt;
  return it->first;
}

int64_t NearestRank(std::vector<int64_t> values, double q) {
  SHORTFALL_CHECK(!values.empty() && q > 0 && q <= 1);
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::max<size_t>(rank, 1) - 1];
}

}  // namespace shortfall::bench
