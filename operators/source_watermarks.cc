#include "operators/source_watermarks.h"

#include <algorithm>
#include <charconv>
#include <string>

namespace shortfall::operators {
namespace {

constexpr std::string_view kNamespace = "source_watermarks";

// "<source>:<partition>" -> "<watermark>:<idle 0|1>"
std::string EncodeKey(PartitionKey p) {
  return std::to_string(static_cast<int>(p.source)) + ":" + std::to_string(p.partition);
}

bool ParseInt(std::string_view text, int64_t* out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

void SourceWatermarks::Expect(PartitionKey source) { sources_.try_emplace(source); }

void SourceWatermarks::Update(PartitionKey source, TimestampMs watermark, bool idle) {
  Source& s = sources_[source];
  const TimestampMs raised = std::max(s.watermark, watermark);
  if (raised != s.watermark || idle != s.idle || !s.dirty) {
    s.watermark = raised;
    s.idle = idle;
    s.dirty = true;
  }
}

TimestampMs SourceWatermarks::Combined() const {
  TimestampMs active_min = kMaxTimestamp;
  TimestampMs all_max = kMinTimestamp;
  bool any_active = false;
  for (const auto& [key, s] : sources_) {
    all_max = std::max(all_max, s.watermark);
    if (!s.idle) {
      any_active = true;
      active_min = std::min(active_min, s.watermark);
    }
  }
  return any_active ? active_min : all_max;
}

void SourceWatermarks::Flush(StateWriteBatch* batch) {
  for (auto& [key, s] : sources_) {
    if (!s.dirty) continue;
    batch->Put(kNamespace, EncodeKey(key), std::to_string(s.watermark) + ":" + (s.idle ? "1" : "0"));
    s.dirty = false;
  }
}

Status SourceWatermarks::Restore(const StateView& state) {
  sources_.clear();
  Status error;
  SHORTFALL_RETURN_IF_ERROR(state.Scan(kNamespace, "", [&](std::string_view key, std::string_view value) {
    const size_t kc = key.find(':'), vc = value.find(':');
    int64_t source = 0, partition = 0, watermark = 0, idle = 0;
    if (kc == std::string_view::npos || vc == std::string_view::npos ||
        !ParseInt(key.substr(0, kc), &source) || !ParseInt(key.substr(kc + 1), &partition) ||
        !ParseInt(value.substr(0, vc), &watermark) || !ParseInt(value.substr(vc + 1), &idle) ||
        source < 0 || source > 1 || idle < 0 || idle > 1) {
      error = DataLossError("source_watermarks: bad entry '" + std::string(key) + "'");
      return false;
    }
    sources_[PartitionKey{static_cast<EventSource>(source), static_cast<int32_t>(partition)}] =
        Source{watermark, idle == 1, false};
    return true;
  }));
  return error;
}

}  // namespace shortfall::operators
