#include "base/time.h"

#include <chrono>
#include <cstdio>

namespace shortfall {
namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
// (Howard Hinnant's days_from_civil).
constexpr int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

struct Civil {
  int64_t year;
  unsigned month;
  unsigned day;
};

constexpr Civil CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

bool ReadDigits(std::string_view text, size_t pos, size_t count, int64_t* out) {
  if (pos + count > text.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    v = v * 10 + (text[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string FormatUtc(TimestampMs t) {
  const int64_t days = AlignDown(t, kMsPerDay) / kMsPerDay;
  const int64_t ms_of_day = t - days * kMsPerDay;
  const Civil c = CivilFromDays(days);
  const int64_t h = ms_of_day / kMsPerHour;
  const int64_t mi = ms_of_day % kMsPerHour / kMsPerMinute;
  const int64_t s = ms_of_day % kMsPerMinute / kMsPerSecond;
  const int64_t ms = ms_of_day % kMsPerSecond;
  char buf[96];
  if (ms == 0) {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ",
                  static_cast<long long>(c.year), c.month, c.day, static_cast<long long>(h),
                  static_cast<long long>(mi), static_cast<long long>(s));
  } else {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                  static_cast<long long>(c.year), c.month, c.day, static_cast<long long>(h),
                  static_cast<long long>(mi), static_cast<long long>(s),
                  static_cast<long long>(ms));
  }
  return buf;
}

Result<TimestampMs> ParseUtc(std::string_view text) {
  int64_t y, mo, d, h = 0, mi = 0, s = 0, ms = 0;
  const auto bad = [&] {
    return InvalidArgumentError("not a UTC time (want YYYY-MM-DDTHH:MM:SSZ): '" +
                                std::string(text) + "'");
  };
  if (!ReadDigits(text, 0, 4, &y) || text.size() < 10 || text[4] != '-' ||
      !ReadDigits(text, 5, 2, &mo) || text[7] != '-' || !ReadDigits(text, 8, 2, &d)) {
    return bad();
  }
  size_t pos = 10;
  if (text.size() > 10) {
    if (text[10] != 'T' || !ReadDigits(text, 11, 2, &h) ||
        text.size() < 19 || text[13] != ':' || !ReadDigits(text, 14, 2, &mi) ||
        text[16] != ':' || !ReadDigits(text, 17, 2, &s)) {
      return bad();
    }
    pos = 19;
    if (pos < text.size() && text[pos] == '.') {
      size_t digits = 0;
      ++pos;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
        if (digits < 3) ms = ms * 10 + (text[pos] - '0');
        ++digits;
        ++pos;
      }
      if (digits == 0) return bad();
      for (; digits < 3; ++digits) ms *= 10;
    }
    if (pos + 1 != text.size() || text[pos] != 'Z') return bad();
  }
  static constexpr int64_t kDaysInMonth[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > kDaysInMonth[mo - 1] || (mo == 2 && d == 29 && !leap) ||
      h > 23 || mi > 59 || s > 59) {
    return bad();
  }
  const int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return days * kMsPerDay + h * kMsPerHour + mi * kMsPerMinute + s * kMsPerSecond + ms;
}

Result<DurationMs> ParseDuration(std::string_view text) {
  size_t i = 0;
  int64_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (v > (std::numeric_limits<int64_t>::max() / 10 - 9)) break;
    v = v * 10 + (text[i] - '0');
    ++i;
  }
  const std::string_view unit = text.substr(i);
  DurationMs scale = 0;
  if (unit == "ms") scale = 1;
  else if (unit == "s") scale = kMsPerSecond;
  else if (unit == "m") scale = kMsPerMinute;
  else if (unit == "h") scale = kMsPerHour;
  else if (unit == "d") scale = kMsPerDay;
  if (i == 0 || scale == 0 || v > std::numeric_limits<int64_t>::max() / scale) {
    return InvalidArgumentError("not a duration (want e.g. 250ms, 90s, 15m, 6h, 7d): '" +
                                std::string(text) + "'");
  }
  return v * scale;
}

std::string FormatDuration(DurationMs d) {
  // Whole days from two days up ("7d"); a day reads better as "24h".
  if (d != 0 && d % kMsPerDay == 0 && d / kMsPerDay >= 2) return std::to_string(d / kMsPerDay) + "d";
  if (d != 0 && d % kMsPerHour == 0) return std::to_string(d / kMsPerHour) + "h";
  if (d != 0 && d % kMsPerMinute == 0) return std::to_string(d / kMsPerMinute) + "m";
  if (d % kMsPerSecond == 0) return std::to_string(d / kMsPerSecond) + "s";
  return std::to_string(d) + "ms";
}

TimestampMs SystemClock::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace shortfall
