#include "pipeline/report_html.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "base/csv.h"
#include "base/number_format.h"

namespace shortfall::pipeline {
namespace {

// Chart geometry, in SVG user units (CSS pixels at full width).
constexpr int kWidth = 960;
constexpr int kHeight = 250;
constexpr int kLeft = 56;    // y-axis labels left of it
constexpr int kRight = 948;  // plot area [kLeft, kRight]
constexpr int kBarTop = 2;   // alert-open bars
constexpr int kBarHeight = 7;
constexpr int kPlotTop = 14;  // main plot: volume, baseline, band, truth
constexpr int kPlotBottom = 164;
constexpr int kAxisLabelY = 177;  // dates under the main plot
constexpr int kStripTop = 196;    // CUSUM strip
constexpr int kStripBottom = 244;

constexpr std::string_view kStyle = R"(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2937;margin:24px auto;max-width:1000px;padding:0 12px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb}
h3{font-size:15px;margin:0 0 2px}
table{border-collapse:collapse;margin:4px 0 8px}td,th{border:1px solid #e5e7eb;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f9fafb}td.n{text-align:right}
.series{margin:18px 0;padding-top:6px;border-top:1px solid #f3f4f6}
.why{margin:0 0 4px;color:#374151;font-size:13px}
svg.chart{width:100%;height:auto;max-width:960px;display:block;background:#fff}
svg text{font:10px system-ui,sans-serif;fill:#4b5563}
.legend td{border:none;padding:1px 6px}
details>summary{cursor:pointer;font-weight:600;margin:16px 0}
.grid{stroke:#eef0f3}.week{stroke:#d1d5db}.axis{stroke:#9ca3af}
.band{fill:#93c5fd;fill-opacity:.45;stroke:none}
.expected{fill:none;stroke:#2563eb;stroke-width:1.2;stroke-dasharray:5 3}
.observed{fill:none;stroke:#111827;stroke-width:1.3}
.cusum{fill:none;stroke:#7c3aed;stroke-width:1.2}
.threshold{stroke:#dc2626;stroke-dasharray:4 3}
.truth.shortage{fill:#f97316;fill-opacity:.16}
.truth.benign{fill:#64748b;fill-opacity:.14}
.truth.in-total{fill:#f97316;fill-opacity:.07;stroke:#f97316;stroke-opacity:.5;stroke-dasharray:3 3}
.critical{fill:#dc2626;stroke:#dc2626}.warning{fill:#f59e0b;stroke:#f59e0b}.info{fill:#0ea5e9;stroke:#0ea5e9}
.other{fill:#6b7280;stroke:#6b7280}.resolved{fill:#16a34a;stroke:#16a34a}
.alert line{stroke-width:1.2}.alert.resolved line{stroke-dasharray:3 2}
.bar{stroke:none;fill-opacity:.75}
)";

std::string Px(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.0f", v);
  return buffer;
}

// "2026-02-05 19:00" (UTC).
std::string When(TimestampMs t) {
  std::string s = FormatUtc(t);
  if (s.size() >= 16) s = s.substr(0, 10) + " " + s.substr(11, 5);
  return s;
}

std::string Plural(size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

// The x-coordinate of a time over [t0, t1].
struct TimeAxis {
  TimestampMs t0 = 0;
  TimestampMs t1 = 0;
  double X(TimestampMs t) const {
    if (t1 <= t0) return kLeft;
    const double f = static_cast<double>(t - t0) / static_cast<double>(t1 - t0);
    return kLeft + std::clamp(f, 0.0, 1.0) * (kRight - kLeft);
  }
};

// A linear y-scale from [0, top] onto [bottom, top_px].
struct ValueAxis {
  double top = 1;
  int top_px = kPlotTop;
  int bottom_px = kPlotBottom;
  double Y(double v) const {
    const double f = std::clamp(v / top, 0.0, 1.0);
    return bottom_px - f * (bottom_px - top_px);
  }
};

// A round step near max / 3 (1, 2 or 5 times a power of ten), at least 1.
double NiceStep(double max) {
  const double raw = std::max(max / 3, 1.0);
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

// Compact SVG path data: whole pixels, one absolute move per run, relative
// lines after it ("M56 120l1-3 1 0 ..."), repeated points left out.
class PathData {
 public:
  void MoveTo(int x, int y) {
    text_ += 'M';
    Number(x);
    Number(y);
    x_ = x;
    y_ = y;
    in_line_ = false;
  }
  void LineTo(int x, int y) {
    if (x == x_ && y == y_) return;
    if (!in_line_) {
      text_ += 'l';
      in_line_ = true;
    }
    Number(x - x_);
    Number(y - y_);
    x_ = x;
    y_ = y;
  }
  void Close() {
    text_ += 'Z';
    in_line_ = false;
  }
  bool empty() const { return text_.empty(); }
  const std::string& str() const { return text_; }

 private:
  void Number(int v) {
    if (v >= 0 && !text_.empty() && text_.back() >= '0' && text_.back() <= '9') text_ += ' ';
    text_ += std::to_string(v);
  }
  std::string text_;
  int x_ = 0;
  int y_ = 0;
  bool in_line_ = false;
};

using PixelPoints = std::vector<std::pair<int, int>>;

// Rounds to pixels and keeps, per pixel column, the first, lowest, highest
// and last point in time order: a line of more points than columns keeps
// its extremes and loses nothing visible.
PixelPoints Decimate(const std::vector<std::pair<double, double>>& points) {
  PixelPoints out;
  size_t i = 0;
  while (i < points.size()) {
    const int column = static_cast<int>(std::lround(points[i].first));
    size_t j = i;
    size_t lo = i;
    size_t hi = i;
    while (j < points.size() && std::lround(points[j].first) == column) {
      if (points[j].second < points[lo].second) lo = j;
      if (points[j].second > points[hi].second) hi = j;
      ++j;
    }
    std::array<size_t, 4> keep = {i, std::min(lo, hi), std::max(lo, hi), j - 1};
    for (size_t k : keep) {
      const std::pair<int, int> p{column, static_cast<int>(std::lround(points[k].second))};
      if (out.empty() || out.back() != p) out.push_back(p);
    }
    i = j;
  }
  return out;
}

// Splits a series into runs of consecutive closes (one bucket apart) where
// `value` has a value, as pixel points.
template <typename ValueOf>
std::vector<std::vector<std::pair<double, double>>> Runs(const ReportSeries& s, DurationMs bucket,
                                                         const TimeAxis& time, const ValueAxis& axis,
                                                         ValueOf value) {
  std::vector<std::vector<std::pair<double, double>>> runs;
  TimestampMs last = kMinTimestamp;
  for (const ReportPoint& p : s.points) {
    const std::optional<double> v = value(p);
    if (!v) {
      last = kMinTimestamp;
      continue;
    }
    if (last == kMinTimestamp || p.end - last > bucket) runs.emplace_back();
    runs.back().emplace_back(time.X(p.end), axis.Y(*v));
    last = p.end;
  }
  return runs;
}

template <typename ValueOf>
std::string LinePath(const ReportSeries& s, DurationMs bucket, const TimeAxis& time, const ValueAxis& axis,
                     ValueOf value) {
  PathData path;
  for (const auto& run : Runs(s, bucket, time, axis, value)) {
    const PixelPoints points = Decimate(run);
    path.MoveTo(points[0].first, points[0].second);
    for (size_t i = 1; i < points.size(); ++i) path.LineTo(points[i].first, points[i].second);
    if (points.size() == 1) path.LineTo(points[0].first + 1, points[0].second);  // a lone close shows as a dot
  }
  return path.str();
}

// The band: expected on top, expected + recover_z x scale below, where tested.
std::string BandPath(const ReportSeries& s, DurationMs bucket, const TimeAxis& time, const ValueAxis& axis) {
  PathData path;
  const auto upper_runs = Runs(s, bucket, time, axis, [](const ReportPoint& p) {
    return p.normal_low ? p.expected : std::nullopt;
  });
  const auto lower_runs = Runs(s, bucket, time, axis, [](const ReportPoint& p) {
    return p.expected ? p.normal_low : std::nullopt;
  });
  for (size_t r = 0; r < upper_runs.size() && r < lower_runs.size(); ++r) {
    const PixelPoints upper = Decimate(upper_runs[r]);
    const PixelPoints lower = Decimate(lower_runs[r]);
    path.MoveTo(upper[0].first, upper[0].second);
    for (size_t i = 1; i < upper.size(); ++i) path.LineTo(upper[i].first, upper[i].second);
    if (upper.size() == 1) path.LineTo(upper[0].first + 1, upper[0].second);
    if (lower.size() == 1) path.LineTo(lower[0].first + 1, lower[0].second);
    for (size_t i = lower.size(); i-- > 0;) path.LineTo(lower[i].first, lower[i].second);
    path.Close();
  }
  return path.str();
}

std::string SeverityClass(std::string_view severity) {
  if (severity == "critical" || severity == "warning" || severity == "info") return std::string(severity);
  return "other";
}

int SeverityRank(std::string_view severity) {
  return severity == "critical" ? 3 : severity == "warning" ? 2 : severity == "info" ? 1 : 0;
}

// A short label for a kind, drawn beside its OPEN markers.
std::string KindLabel(std::string_view kind) {
  if (kind == "volume_drop") return "drop";
  if (kind == "customs_hold_spike") return "holds";
  if (kind == "unit_value_spike") return "value";
  if (kind == "dwell_time_rise") return "dwell";
  if (kind == "origin_concentration") return "origin";
  return std::string(kind);
}

std::string SeriesTitle(const ReportSeries& s) {
  return s.group + " \xC2\xB7 " + (s.corridor == "*" ? std::string("all corridors") : s.corridor);
}

struct SeriesView {
  const ReportSeries* series;
  std::vector<const ReportAlert*> alerts;
  std::vector<std::pair<const ReportTruth*, TruthCover>> truth;
  bool flagged() const { return !alerts.empty() || !truth.empty(); }
};

// The sentences above a chart: what the detector did with the series.
std::string Explain(const SeriesView& v, const ReportPage& page) {
  const ReportSeries& s = *v.series;
  std::string out;
  if (!s.watched) {
    out = "Not watched by the volume-drop detector (goods outside the catalog, or switched off by an override): "
          "no baseline. ";
  } else {
    size_t warming = 0, thin = 0, tested = 0;
    const ReportPoint* peak = nullptr;
    const ReportPoint* lowest = nullptr;
    for (const ReportPoint& p : s.points) {
      if (!p.expected) {
        ++warming;
      } else if (!p.cusum) {
        ++thin;
      } else {
        ++tested;
        if (peak == nullptr || *p.cusum > *peak->cusum) peak = &p;
        if (*p.expected > 0 && (lowest == nullptr || p.observed / *p.expected < lowest->observed / *lowest->expected)) {
          lowest = &p;
        }
      }
    }
    out = "Tested at " + std::to_string(tested) + " of " + Plural(s.points.size(), "close", "closes") + " (" +
          std::to_string(warming) + " warming up, " + std::to_string(thin) + " thin: expected below " +
          FormatNumber(page.min_expected_shipments) + " shipments). ";
    if (peak != nullptr) {
      out += "Peak S " + FormatNumber(*peak->cusum) + " (fires at " + FormatNumber(s.cusum_threshold) + ") at " +
             When(peak->end) + ". ";
    }
    if (lowest != nullptr) {
      out += "Lowest observed / expected " + FormatNumber(lowest->observed / *lowest->expected) + " (" +
             FormatNumber(lowest->observed) + " vs " + FormatNumber(*lowest->expected) + ") at " +
             When(lowest->end) + ". ";
    }
  }
  if (v.alerts.empty()) {
    out += "No alert record.";
  } else {
    std::map<std::string, size_t> by;
    for (const ReportAlert* a : v.alerts) ++by[a->kind + " " + a->state];
    out += "Alert records:";
    bool first = true;
    for (const auto& [what, n] : by) {
      out += (first ? " " : ", ") + std::to_string(n) + " " + what;
      first = false;
    }
    out += ".";
  }
  for (const auto& [t, cover] : v.truth) {
    out += " Truth: " + t->what + " (" + (t->shortage ? t->kind : std::string("not a shortage")) + ", " +
           When(t->start) + " to " + When(t->end) + (cover == TruthCover::kInTotal ? ", on port " + t->port : "") +
           ").";
  }
  return out;
}

void RenderChart(const SeriesView& v, const ReportPage& page, const TimeAxis& time, std::string* out) {
  const ReportSeries& s = *v.series;
  double max_value = 0;
  double max_cusum = s.cusum_threshold;
  for (const ReportPoint& p : s.points) {
    max_value = std::max(max_value, p.observed);
    if (p.expected) max_value = std::max(max_value, *p.expected);
    if (p.cusum) max_cusum = std::max(max_cusum, *p.cusum);
  }
  const double step = NiceStep(max_value);
  ValueAxis values;
  values.top = std::max(step, std::ceil(max_value * 1.05 / step) * step);
  ValueAxis strip{max_cusum > 0 ? max_cusum * 1.1 : 1, kStripTop, kStripBottom};

  std::string& o = *out;
  o += "<svg class=\"chart\" viewBox=\"0 0 " + std::to_string(kWidth) + " " +
       std::to_string(kHeight) + "\" width=\"" + std::to_string(kWidth) + "\" height=\"" +
       std::to_string(kHeight) + "\" role=\"img\" aria-label=\"" + HtmlEscape(SeriesTitle(s)) + "\">\n";

  // Truth windows under everything else.
  for (const auto& [t, cover] : v.truth) {
    if (t->end <= time.t0 || t->start > time.t1) continue;
    const double x0 = time.X(t->start);
    const double x1 = std::max(time.X(t->end), x0 + 1);
    const std::string cls = cover == TruthCover::kInTotal ? "in-total" : t->shortage ? "shortage" : "benign";
    o += "<rect class=\"truth " + cls + "\" x=\"" + Px(x0) + "\" y=\"" + std::to_string(kPlotTop) + "\" width=\"" +
         Px(x1 - x0) + "\" height=\"" + std::to_string(kPlotBottom - kPlotTop) + "\"><title>" +
         HtmlEscape("truth: " + t->what + " (" + (t->shortage ? t->kind : std::string("not a shortage")) + "; " +
                    (t->group == "*" ? std::string("every group") : t->group) + " at " +
                    (t->port.empty() ? std::string("every port") : "port " + t->port) + "; " + When(t->start) +
                    " to " + When(t->end) + ")") +
         "</title></rect>\n";
  }

  // Grid: a line each midnight (when days are wider than 4 px), darker on Mondays with a date.
  const DurationMs day = kMsPerDay;
  const bool daily = time.t1 > time.t0 && (kRight - kLeft) * day / (time.t1 - time.t0) >= 4;
  PathData days, weeks;
  std::string labels;
  const TimestampMs first_day = AlignDown(time.t0, day) + (AlignDown(time.t0, day) < time.t0 ? day : 0);
  const int64_t week_count = (time.t1 - time.t0) / (7 * day) + 1;
  const int64_t label_every = std::max<int64_t>(1, week_count / 12);
  int64_t monday_index = 0;
  for (TimestampMs t = first_day; t <= time.t1; t += day) {
    const int x = static_cast<int>(std::lround(time.X(t)));
    // 1970-01-05 was a Monday.
    const bool monday = ((t / day) - 4) % 7 == 0;
    if (monday) {
      weeks.MoveTo(x, kPlotTop);
      weeks.LineTo(x, kPlotBottom);
      if (monday_index++ % label_every == 0) {
        labels += "<text x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(kAxisLabelY) +
                  "\" text-anchor=\"middle\">" + FormatUtc(t).substr(5, 5) + "</text>";
      }
    } else if (daily) {
      days.MoveTo(x, kPlotTop);
      days.LineTo(x, kPlotBottom);
    }
  }
  if (!days.empty()) o += "<path class=\"grid\" d=\"" + days.str() + "\"/>\n";
  if (!weeks.empty()) o += "<path class=\"week\" d=\"" + weeks.str() + "\"/>\n";
  o += labels + "\n";
  // Value axis: gridlines and labels at each step.
  PathData ticks;
  for (double tick = 0; tick <= values.top + step / 2; tick += step) {
    const int y = static_cast<int>(std::lround(values.Y(tick)));
    ticks.MoveTo(kLeft, y);
    ticks.LineTo(kRight, y);
    o += "<text x=\"" + std::to_string(kLeft - 4) + "\" y=\"" + std::to_string(y + 3) + "\" text-anchor=\"end\">" +
         FormatNumber(tick) + "</text>";
  }
  o += "\n<path class=\"grid\" d=\"" + ticks.str() + "\"/>\n";
  o += "<text x=\"" + std::to_string(kLeft) + "\" y=\"" + std::to_string(kPlotTop - 4) +
       "\">shipments per " + FormatDuration(page.window) + "</text>\n";

  const std::string band = BandPath(s, page.bucket, time, values);
  if (!band.empty()) o += "<path class=\"band\" d=\"" + band + "\"/>\n";
  const std::string expected =
      LinePath(s, page.bucket, time, values, [](const ReportPoint& p) { return p.expected; });
  if (!expected.empty()) o += "<path class=\"expected\" d=\"" + expected + "\"/>\n";
  const std::string observed = LinePath(s, page.bucket, time, values,
                                        [](const ReportPoint& p) { return std::optional<double>(p.observed); });
  if (!observed.empty()) o += "<path class=\"observed\" d=\"" + observed + "\"/>\n";

  // CUSUM strip.
  o += "<text x=\"" + std::to_string(kLeft) + "\" y=\"" + std::to_string(kStripTop - 6) +
       "\">S: the volume-drop CUSUM</text>";
  o += "<line class=\"axis\" x1=\"" + std::to_string(kLeft) + "\" y1=\"" + std::to_string(kStripBottom) + "\" x2=\"" +
       std::to_string(kRight) + "\" y2=\"" + std::to_string(kStripBottom) + "\"/>";
  if (s.watched) {
    const std::string y = Px(strip.Y(s.cusum_threshold));
    o += "<line class=\"threshold\" x1=\"" + std::to_string(kLeft) + "\" y1=\"" + y + "\" x2=\"" +
         std::to_string(kRight) + "\" y2=\"" + y + "\"><title>threshold " + FormatNumber(s.cusum_threshold) +
         "</title></line><text x=\"" + std::to_string(kLeft - 4) + "\" y=\"" + y + "\" text-anchor=\"end\">" +
         FormatNumber(s.cusum_threshold) + "</text>";
    const std::string cusum = LinePath(s, page.bucket, time, strip, [](const ReportPoint& p) { return p.cusum; });
    if (!cusum.empty()) o += "\n<path class=\"cusum\" d=\"" + cusum + "\"/>";
  } else {
    o += "<text x=\"" + std::to_string(kLeft + 4) + "\" y=\"" + std::to_string(kStripBottom - 6) +
         "\">not watched by the volume-drop detector</text>";
  }
  o += "\n";

  // Alerts: a bar while open, then a marker per record.
  struct Episode {
    TimestampMs from = kMinTimestamp;
    TimestampMs to = kMaxTimestamp;
    std::string severity;
    std::string kind;
  };
  std::map<std::string, Episode> open;  // by id
  std::vector<Episode> episodes;
  for (const ReportAlert* a : v.alerts) {
    if (a->state == "open") {
      open[a->id] = Episode{a->at, kMaxTimestamp, a->severity, a->kind};
      continue;
    }
    auto it = open.find(a->id);
    if (it == open.end()) continue;
    if (SeverityRank(a->severity) > SeverityRank(it->second.severity)) it->second.severity = a->severity;
    if (a->state == "resolved") {
      it->second.to = a->at;
      episodes.push_back(it->second);
      open.erase(it);
    }
  }
  for (auto& [id, e] : open) episodes.push_back(e);
  for (const Episode& e : episodes) {
    const double x0 = time.X(e.from);
    const double x1 = e.to == kMaxTimestamp ? kRight : time.X(e.to);
    o += "<rect class=\"bar " + SeverityClass(e.severity) + "\" x=\"" + Px(x0) + "\" y=\"" +
         std::to_string(kBarTop) + "\" width=\"" + Px(std::max(x1 - x0, 1.0)) + "\" height=\"" +
         std::to_string(kBarHeight) + "\"><title>" +
         HtmlEscape(e.kind + " open from " + When(e.from) +
                    (e.to == kMaxTimestamp ? std::string(" to the end") : " to " + When(e.to))) +
         "</title></rect>\n";
  }
  for (const ReportAlert* a : v.alerts) {
    const int x = static_cast<int>(std::lround(time.X(a->at)));
    const std::string cls = a->state == "resolved" ? "resolved" : SeverityClass(a->severity);
    o += "<g class=\"alert " + HtmlEscape(a->state) + " " + cls + "\" data-kind=\"" + HtmlEscape(a->kind) +
         "\"><title>" + HtmlEscape(a->kind + " \xC2\xB7 " + a->severity + " \xC2\xB7 " + a->state + "\n" + a->line) +
         "</title>";
    const std::string xs = std::to_string(x);
    if (a->state == "open") {
      o += "<line x1=\"" + xs + "\" y1=\"" + std::to_string(kPlotTop) + "\" x2=\"" + xs + "\" y2=\"" +
           std::to_string(kStripBottom) + "\"/><path d=\"M" + std::to_string(x - 6) + " " +
           std::to_string(kPlotTop) + "h12l-6 9Z\"/><text x=\"" + std::to_string(x + 8) + "\" y=\"" +
           std::to_string(kPlotTop + 9) + "\">" + HtmlEscape(KindLabel(a->kind)) + "</text>";
    } else if (a->state == "resolved") {
      o += "<line x1=\"" + xs + "\" y1=\"" + std::to_string(kPlotTop) + "\" x2=\"" + xs + "\" y2=\"" +
           std::to_string(kStripBottom) + "\"/><circle cx=\"" + xs + "\" cy=\"" + std::to_string(kPlotTop + 4) +
           "\" r=\"4\"/>";
    } else {
      o += "<path d=\"M" + xs + " " + std::to_string(kPlotTop) + "l4 4-4 4-4-4Z\"/>";
    }
    o += "</g>\n";
  }
  o += "</svg>\n";
}

// The legend: one small SVG of samples, and what each means.
void RenderLegend(const ReportPage& page, std::string* out) {
  std::string& o = *out;
  const std::string low = "expected " + std::string(page.recover_z < 0 ? "\xE2\x88\x92 " : "+ ") +
                          FormatNumber(std::fabs(page.recover_z)) + " \xC3\x97 scale";
  struct Row {
    std::string sample;  // SVG content in a 36 x 14 box
    std::string text;
  };
  const std::vector<Row> rows = {
      {"<path class=\"observed\" d=\"M2 9l8-4 8 3 8-5 8 4\"/>",
       "observed: shipments in the volume-drop detector's " + FormatDuration(page.window) +
           " window, at each bucket close (every " + FormatDuration(page.bucket) + ") it judged"},
      {"<path class=\"expected\" d=\"M2 6h32\"/>",
       "expected: the detector's baseline, the median of the same hours of past weeks"},
      {"<rect class=\"band\" x=\"2\" y=\"3\" width=\"32\" height=\"8\"/>",
       "normal band as the detector uses it: from " + low +
           " (its recovered line: at or above it a close counts as back to normal) up to expected; the test is "
           "one-sided, nothing above counts against a series. scale = max(1.4826 \xC3\x97 MAD of past weeks, " +
           FormatNumber(page.relative_floor) + " \xC3\x97 expected, \xE2\x88\x9A(expected + (" +
           FormatNumber(page.relative_floor) +
           " \xC3\x97 expected)\xC2\xB2)). Drawn only where the series was tested (not while warming up, not when "
           "expected is below " +
           FormatNumber(page.min_expected_shipments) + ")"},
      {"<path class=\"cusum\" d=\"M2 12l10-2 10-5 12-3\"/><path class=\"threshold\" d=\"M2 4h32\"/>",
       "lower strip: the CUSUM statistic S of the shipments test and its threshold. A drop fires when S "
       "reaches the threshold, not when the volume leaves the band; S grows while z = (observed \xE2\x88\x92 "
       "expected) / scale stays below minus the slack, and is reset once a close is back in the band"},
      {"<rect class=\"truth shortage\" x=\"2\" y=\"1\" width=\"32\" height=\"12\"/>",
       "truth window of a shortage (--truth) on this series"},
      {"<rect class=\"truth benign\" x=\"2\" y=\"1\" width=\"32\" height=\"12\"/>",
       "truth window of a change that is not a shortage (a holiday, a surge): must not alert"},
      {"<rect class=\"truth in-total\" x=\"2\" y=\"1\" width=\"32\" height=\"12\"/>",
       "a shortage on one port of the group, as seen in the group's all-corridors total"},
      {"<g class=\"alert open critical\"><path d=\"M5 1h12l-6 9Z\"/></g><g class=\"alert open warning\"><path "
       "d=\"M21 1h12l-6 9Z\"/></g>",
       "alert OPEN, critical or warning (every kind; label: drop = volume_drop, holds = customs_hold_spike, "
       "value = unit_value_spike, dwell = dwell_time_rise); hover a marker for the alert record"},
      {"<g class=\"alert updated warning\"><path d=\"M9 3l4 4-4 4-4-4Z\"/></g><g class=\"alert resolved "
       "resolved\"><circle cx=\"26\" cy=\"7\" r=\"4\"/></g>",
       "alert UPDATED (severity or evidence changed); RESOLVED"},
      {"<rect class=\"bar critical\" x=\"2\" y=\"4\" width=\"32\" height=\"7\"/>",
       "bar above a chart: an alert open, coloured by its highest severity"},
  };
  o += "<table class=\"legend\">\n";
  for (const Row& r : rows) {
    o += "<tr><td><svg class=\"legend-sample\" width=\"36\" height=\"14\" "
         "viewBox=\"0 0 36 14\">" +
         r.sample + "</svg></td><td>" + HtmlEscape(r.text) + "</td></tr>\n";
  }
  o += "</table>\n";
}

void RenderHeader(const ReportPage& page, const TimeAxis& time, size_t closes, std::string* out) {
  std::string& o = *out;
  o += "<h1>shortfall replay report</h1>\n<table>\n";
  o += "<tr><th>input</th><td>" + HtmlEscape(page.input) + "</td></tr>\n";
  o += "<tr><th>bucket closes judged</th><td>" +
       (closes == 0 ? std::string("none")
                    : When(time.t0) + " to " + When(time.t1) + " UTC (" + std::to_string(closes) + " closes, every " +
                          FormatDuration(page.bucket) + ")") +
       "</td></tr>\n";
  o += "<tr><th>series</th><td>" + std::to_string(page.series.size()) + "</td></tr>\n";
  o += "<tr><th>truth</th><td>" +
       (page.truth_file.empty() ? std::string("none given (--truth)")
                                : HtmlEscape(page.truth_file) + " (" + Plural(page.truth.size(), "entry", "entries") +
                                      ")") +
       "</td></tr>\n</table>\n";

  // Alert records by kind and state; alerts open at the end by id.
  struct Counts {
    size_t open = 0, updated = 0, resolved = 0;
    std::set<std::string> ids;
    std::map<std::string, std::string> last_state;
  };
  std::map<std::string, Counts> by_kind;
  for (const ReportAlert& a : page.alerts) {
    Counts& c = by_kind[a.kind];
    (a.state == "open" ? c.open : a.state == "resolved" ? c.resolved : c.updated) += 1;
    c.ids.insert(a.id);
    c.last_state[a.id] = a.state;
  }
  o += "<h2>Alerts</h2>\n";
  if (by_kind.empty()) {
    o += "<p>No alert records.</p>\n";
  } else {
    o += "<table><tr><th>kind</th><th>alerts</th><th>OPEN</th><th>UPDATED</th><th>RESOLVED</th><th>open at the "
         "end</th></tr>\n";
    for (const auto& [kind, c] : by_kind) {
      size_t still_open = 0;
      for (const auto& [id, state] : c.last_state) still_open += state != "resolved";
      o += "<tr><td>" + HtmlEscape(kind) + "</td><td class=\"n\">" + std::to_string(c.ids.size()) +
           "</td><td class=\"n\">" + std::to_string(c.open) + "</td><td class=\"n\">" + std::to_string(c.updated) +
           "</td><td class=\"n\">" + std::to_string(c.resolved) + "</td><td class=\"n\">" +
           std::to_string(still_open) + "</td></tr>\n";
    }
    o += "</table>\n";
  }
  if (!page.truth_file.empty()) {
    o += "<h2>Truth</h2>\n";
    if (page.truth.empty()) {
      o += "<p>The truth file has no entries.</p>\n";
    } else {
      o += "<table><tr><th>group</th><th>port</th><th>from</th><th>to</th><th>shortage</th><th>should "
           "raise</th><th>what</th><th>series</th></tr>\n";
      for (const ReportTruth& t : page.truth) {
        size_t covered = 0;
        for (const ReportSeries& s : page.series) covered += Covers(t, s.group, s.corridor) == TruthCover::kSeries;
        o += "<tr><td>" + HtmlEscape(t.group == "*" ? "every group" : t.group) + "</td><td>" +
             HtmlEscape(t.port.empty() ? "every port" : t.port) + "</td><td>" + When(t.start) + "</td><td>" +
             When(t.end) + "</td><td>" + (t.shortage ? "yes" : "no") + "</td><td>" + HtmlEscape(t.kind) +
             "</td><td>" + HtmlEscape(t.what) + "</td><td class=\"n\">" + std::to_string(covered) + "</td></tr>\n";
      }
      o += "</table>\n";
    }
  }
  o += "<h2>Legend</h2>\n";
  RenderLegend(page, out);
}

void RenderSeries(const SeriesView& v, const ReportPage& page, const TimeAxis& time, std::string* out) {
  *out += "<section class=\"series\"><h3>" + HtmlEscape(SeriesTitle(*v.series)) + "</h3>\n<p class=\"why\">" +
          HtmlEscape(Explain(v, page)) + "</p>\n";
  RenderChart(v, page, time, out);
  *out += "</section>\n";
}

bool ParseBool(std::string_view text, bool* out) {
  if (text == "true") *out = true;
  else if (text == "false") *out = false;
  else return false;
  return true;
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

TruthCover Covers(const ReportTruth& truth, std::string_view group, std::string_view corridor) {
  if (truth.group != "*" && truth.group != group) return TruthCover::kNone;
  if (truth.port.empty()) return TruthCover::kSeries;
  if (corridor == "*") return TruthCover::kInTotal;
  const size_t dash = corridor.rfind('-');
  const std::string_view port = dash == std::string_view::npos ? corridor : corridor.substr(dash + 1);
  return port == truth.port ? TruthCover::kSeries : TruthCover::kNone;
}

Result<std::vector<ReportTruth>> ParseTruthCsv(std::string_view csv, std::string_view source) {
  const auto error = [&](size_t line, const std::string& what) {
    return InvalidArgumentError(std::string(source) + ":" + std::to_string(line) + ": " + what);
  };
  constexpr std::array<std::string_view, 7> kColumns = {"group", "port_of_entry", "start", "end",
                                                        "shortage", "what",  "alert_kind"};
  std::array<size_t, kColumns.size()> at{};
  std::vector<ReportTruth> out;
  std::vector<std::string> fields;
  size_t header_fields = 0;
  CsvLines lines(csv);
  while (lines.Next()) {
    const std::string_view line = lines.line();
    const size_t line_number = lines.number();
    if (line.empty()) continue;
    if (std::string bad = SplitCsvRecord(line, &fields); !bad.empty()) return error(line_number, bad);
    if (header_fields == 0) {
      for (size_t c = 0; c < kColumns.size(); ++c) {
        const auto it = std::find(fields.begin(), fields.end(), kColumns[c]);
        if (it == fields.end()) {
          return error(line_number, "the header has no column '" + std::string(kColumns[c]) +
                                        "' (want the CSV of `shortfall gen --scenario NAME --truth FILE`)");
        }
        at[c] = static_cast<size_t>(it - fields.begin());
      }
      header_fields = fields.size();
      continue;
    }
    if (fields.size() != header_fields) {
      return error(line_number, std::to_string(fields.size()) + " fields, the header has " +
                                    std::to_string(header_fields));
    }
    ReportTruth t;
    t.group = fields[at[0]];
    t.port = fields[at[1]];
    Result<TimestampMs> start = ParseUtc(fields[at[2]]);
    if (!start.ok()) return error(line_number, "start: " + start.status().message());
    Result<TimestampMs> stop = ParseUtc(fields[at[3]]);
    if (!stop.ok()) return error(line_number, "end: " + stop.status().message());
    t.start = *start;
    t.end = *stop;
    if (t.end < t.start) return error(line_number, "end is before start");
    if (!ParseBool(fields[at[4]], &t.shortage)) {
      return error(line_number, "shortage: '" + fields[at[4]] + "' (want true or false)");
    }
    t.what = fields[at[5]];
    t.kind = fields[at[6]];
    if (t.group.empty()) return error(line_number, "group: empty (want a group or *)");
    out.push_back(std::move(t));
  }
  if (header_fields == 0) return error(lines.number(), "no header (want the CSV of `shortfall gen --truth`)");
  return out;
}

std::string RenderReportHtml(const ReportPage& page) {
  // Order: group, then its total before its corridors.
  std::vector<SeriesView> views;
  views.reserve(page.series.size());
  for (const ReportSeries& s : page.series) views.push_back(SeriesView{&s, {}, {}});
  std::sort(views.begin(), views.end(), [](const SeriesView& a, const SeriesView& b) {
    const ReportSeries& x = *a.series;
    const ReportSeries& y = *b.series;
    if (x.group != y.group) return x.group < y.group;
    if ((x.corridor == "*") != (y.corridor == "*")) return x.corridor == "*";
    return x.corridor < y.corridor;
  });
  std::map<std::pair<std::string_view, std::string_view>, SeriesView*> by_key;
  for (SeriesView& v : views) by_key[{v.series->group, v.series->corridor}] = &v;
  for (const ReportAlert& a : page.alerts) {
    const auto it = by_key.find({a.group, a.corridor});
    if (it != by_key.end()) it->second->alerts.push_back(&a);
  }
  for (SeriesView& v : views) {
    for (const ReportTruth& t : page.truth) {
      const TruthCover cover = Covers(t, v.series->group, v.series->corridor);
      if (cover != TruthCover::kNone) v.truth.emplace_back(&t, cover);
    }
  }

  TimeAxis time{std::numeric_limits<TimestampMs>::max(), std::numeric_limits<TimestampMs>::min()};
  std::set<TimestampMs> closes;
  for (const ReportSeries& s : page.series) {
    for (const ReportPoint& p : s.points) closes.insert(p.end);
  }
  if (closes.empty()) {
    time = TimeAxis{0, 0};
  } else {
    time = TimeAxis{*closes.begin(), *closes.rbegin()};
  }

  std::string o;
  o.reserve(page.series.size() * 24 * 1024 + 16 * 1024);
  o += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>shortfall replay report: " +
       HtmlEscape(page.input) + "</title>\n<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n";
  RenderHeader(page, time, closes.size(), &o);

  std::vector<const SeriesView*> flagged, rest;
  for (const SeriesView& v : views) (v.flagged() ? flagged : rest).push_back(&v);
  o += "<h2>Series with alerts or truth windows (" + std::to_string(flagged.size()) + ")</h2>\n";
  if (flagged.empty()) o += "<p>None.</p>\n";
  for (const SeriesView* v : flagged) RenderSeries(*v, page, time, &o);
  if (!rest.empty()) {
    o += "<details><summary>Other series (" + std::to_string(rest.size()) +
         "): no alert record, no truth window</summary>\n";
    for (const SeriesView* v : rest) RenderSeries(*v, page, time, &o);
    o += "</details>\n";
  }
  o += "</body>\n</html>\n";
  return o;
}

}  // namespace shortfall::pipeline
