// Time in shortfall: event time and publish time are UTC instants held as
// int64 milliseconds since the Unix epoch (TimestampMs). A Clock gives the
// current time and is injected wherever "now" matters, so tests use a
// FakeClock and replays are deterministic.
//
// Thread-safety: SystemClock is thread-safe; FakeClock is not.
#ifndef SHORTFALL_BASE_TIME_H_
#define SHORTFALL_BASE_TIME_H_

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "base/status.h"

namespace shortfall {

using TimestampMs = int64_t;
using DurationMs = int64_t;

inline constexpr DurationMs kMsPerSecond = 1000;
inline constexpr DurationMs kMsPerMinute = 60 * kMsPerSecond;
inline constexpr DurationMs kMsPerHour = 60 * kMsPerMinute;
inline constexpr DurationMs kMsPerDay = 24 * kMsPerHour;
inline constexpr TimestampMs kMinTimestamp = std::numeric_limits<TimestampMs>::min();
inline constexpr TimestampMs kMaxTimestamp = std::numeric_limits<TimestampMs>::max();

// Largest multiple of `width` that is <= t (floor, also for negative t).
// REQUIRES: width > 0.
constexpr TimestampMs AlignDown(TimestampMs t, DurationMs width) {
  TimestampMs r = t % width;
  return r < 0 ? t - r - width : t - r;
}

// RFC 3339 UTC with millisecond precision when not whole seconds:
// "2026-03-02T14:00:00Z", "2026-03-02T14:00:00.250Z".
std::string FormatUtc(TimestampMs t);

// Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (or a date "YYYY-MM-DD" as midnight UTC).
Result<TimestampMs> ParseUtc(std::string_view text);

// Parses a duration like "90s", "15m", "6h", "7d", "250ms".
Result<DurationMs> ParseDuration(std::string_view text);
// The shortest exact form: "6h", "90m", "1500ms".
std::string FormatDuration(DurationMs d);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimestampMs NowMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimestampMs NowMs() const override;
};

// A clock that only moves when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimestampMs now = 0) : now_(now) {}
  TimestampMs NowMs() const override { return now_; }
  void Set(TimestampMs now) { now_ = now; }
  void Advance(DurationMs d) { now_ += d; }

 private:
  TimestampMs now_;
};

}  // namespace shortfall

#endif  // SHORTFALL_BASE_TIME_H_
