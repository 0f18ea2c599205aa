#include "pipeline/alert_format.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <string_view>

#include <google/protobuf/util/json_util.h>

#include "base/number_format.h"
#include "base/time.h"

namespace shortfall::pipeline {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string Printf(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

// Statistics and thresholds keep one decimal ("7.2 > 5.0") so the two read
// alike; values below 1 keep two significant digits.
std::string FormatStatistic(double x) {
  if (!std::isfinite(x)) return FormatNumber(x);
  if (std::fabs(x) >= 1000) return Printf("%.0f", x);
  if (std::fabs(x) >= 1 || x == 0) return Printf("%.1f", x);
  return Printf("%.2g", x);
}

enum class Unit { kPlain, kPercent, kHours };

Unit UnitOf(std::string_view measure) {
  if (EndsWith(measure, "_rate") || EndsWith(measure, "share")) return Unit::kPercent;
  if (EndsWith(measure, "_seconds")) return Unit::kHours;
  return Unit::kPlain;
}

std::string FormatMeasured(double x, Unit unit) {
  switch (unit) {
    case Unit::kPercent:
      return FormatNumber(x * 100) + "%";
    case Unit::kHours:
      return FormatNumber(std::round(x / 360.0) / 10.0) + "h";
    case Unit::kPlain:
      break;
  }
  return FormatNumber(x);
}

std::string MeasureLabel(std::string_view measure) {
  if (measure.empty()) return "value";
  if (EndsWith(measure, "_seconds")) measure.remove_suffix(8);
  return std::string(measure);
}

// "ALERT_KIND_VOLUME_DROP" -> "VOLUME_DROP"; an unknown number -> prefix+n.
std::string EnumName(const std::string& name, std::string_view prefix, int number) {
  if (name.empty()) return std::string(prefix) + std::to_string(number);
  if (name.size() > prefix.size() && std::string_view(name).substr(0, prefix.size()) == prefix) {
    return name.substr(prefix.size());
  }
  return name;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

TimestampMs ToMs(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

}  // namespace

std::string FormatCorridor(const v1::Corridor& corridor) {
  if (corridor.origin_country().empty() && corridor.destination_country().empty() &&
      corridor.port_of_entry().empty()) {
    return "all corridors";
  }
  const auto part = [](const std::string& s) { return s.empty() ? std::string("*") : s; };
  return part(corridor.origin_country()) + "-" + part(corridor.destination_country()) + "-" +
         part(corridor.port_of_entry());
}

std::string AlertKindLabel(v1::AlertKind kind) {
  return Lower(EnumName(v1::AlertKind_Name(kind), "ALERT_KIND_", kind));
}
std::string SeverityLabel(v1::Severity severity) {
  return Lower(EnumName(v1::Severity_Name(severity), "SEVERITY_", severity));
}
std::string AlertStateLabel(v1::AlertState state) {
  return Lower(EnumName(v1::AlertState_Name(state), "ALERT_STATE_", state));
}

std::string FormatAlertLine(const v1::ShortageAlert& alert) {
  std::string line;
  if (alert.has_window_end()) {
    line = FormatUtc(ToMs(alert.window_end()));
  } else if (alert.has_opened_at()) {
    line = FormatUtc(ToMs(alert.opened_at()));
  } else {
    line = "-";
  }
  line += " " + EnumName(v1::AlertState_Name(alert.state()), "ALERT_STATE_", alert.state());
  line += " " + EnumName(v1::Severity_Name(alert.severity()), "SEVERITY_", alert.severity());
  line += " " + AlertKindLabel(alert.kind());
  line += " " + (alert.commodity_group().empty() ? std::string("-") : alert.commodity_group());
  line += " " + FormatCorridor(alert.corridor()) + ":";

  if (alert.has_evidence()) {
    const v1::Evidence& e = alert.evidence();
    const Unit unit = UnitOf(e.measure());
    line += " " + MeasureLabel(e.measure()) + " " + FormatMeasured(e.observed(), unit) +
            " vs expected " + FormatMeasured(e.expected(), unit);
    if (e.expected() != 0 && std::isfinite(e.observed()) && std::isfinite(e.expected())) {
      const double change = std::round((e.observed() - e.expected()) / std::fabs(e.expected()) * 100);
      line += " (" + std::string(change > 0 ? "+" : "") + Printf("%.0f", change) + "%)";
    }
    if (alert.has_window_start() && alert.has_window_end()) {
      const DurationMs width = ToMs(alert.window_end()) - ToMs(alert.window_start());
      if (width > 0) line += " over " + FormatDuration(width);
    }
    if (!e.statistic().empty()) {
      const double v = e.statistic_value();
      const double t = e.threshold();
      line += " (" + e.statistic() + " " + FormatStatistic(v) + " " +
              (v > t ? ">" : v < t ? "<" : "=") + " " + FormatStatistic(t) + ")";
    }
    if (e.top_contributors_size() > 0) {
      line += " top";
      const int shown = std::min(e.top_contributors_size(), 3);
      for (int i = 0; i < shown; ++i) {
        const v1::Contributor& c = e.top_contributors(i);
        line += std::string(i > 0 ? "," : "") + " " + FormatCorridor(c.corridor()) + " " +
                Printf("%.0f", c.share() * 100) + "%";
      }
    }
  } else {
    line += " no evidence";
  }
  if (alert.has_opened_at()) line += " since " + FormatUtc(ToMs(alert.opened_at()));
  line += " [id " + (alert.alert_id().empty() ? std::string("-") : alert.alert_id());
  if (alert.revision() > 1) line += " rev " + std::to_string(alert.revision());
  line += "]";
  return line;
}

Result<std::string> FormatAlertJson(const v1::ShortageAlert& alert) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  const auto status = google::protobuf::util::MessageToJsonString(alert, &json, options);
  if (!status.ok()) return InternalError("alert as JSON: " + status.ToString());
  return json;
}

}  // namespace shortfall::pipeline
