// The replay report: one self-contained HTML page that shows, per commodity
// group and corridor (and each group's all-corridors total), why the
// volume-drop detector fired or stayed quiet. `shortfall replay --report
// FILE` collects the data (ReportPage) and writes RenderReportHtml's string.
//
//   ReportPage page;  page.input = "events.pb";  ...  // series, alerts, truth
//   std::string html = RenderReportHtml(page);
//
// Per series, one inline SVG chart over the replay's whole time range:
//   - the rolling volume the detector measures (shipments in its window,
//     24 h by default) at each judged bucket close;
//   - its baseline (the expected value, the median of past weeks) and the
//     normal band the detector really uses: from expected + recover_z x scale
//     (its "recovered" line, expected - 1 x scale by default) up to expected,
//     drawn only where the series was tested; the test is one-sided, so
//     anything above the lower edge counts as normal;
//   - a strip with the CUSUM statistic S and its threshold (the series fires
//     when S reaches it), which shows how near a quiet series came;
//   - every alert record on the series (any kind: volume drop, customs hold
//     spike, ...) as a marker with its kind, severity and state in an SVG
//     <title> tooltip, and a bar while an alert is open;
//   - the ground-truth windows that cover the series, shaded.
// Series with an alert record or a truth window come first; the rest sit in
// a closed <details> section. A header gives the input, the time range,
// alert records by kind and state, the truth entries, and a legend.
//
// The page has inline CSS and SVG only: no script, font, image or link to
// anything outside it. All text from the data (group and corridor names,
// truth descriptions, alert lines) is HTML-escaped. Size: path data in whole
// pixels, relative moves, at most four points per pixel column; about 20 KB
// per series of six weeks of hourly closes.
//
// Thread-safety: pure functions.
#ifndef SHORTFALL_PIPELINE_REPORT_HTML_H_
#define SHORTFALL_PIPELINE_REPORT_HTML_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/time.h"

namespace shortfall::pipeline {

// One judged bucket close of a series.
struct ReportPoint {
  TimestampMs end = 0;  // the bucket close
  double observed = 0;  // shipments in the detector's window ending here
  // The detector's expected value; nullopt while the series warms up.
  std::optional<double> expected;
  // expected + recover_z x scale and S, when the series was tested at this
  // close (not while warming up, not when thin).
  std::optional<double> normal_low;
  std::optional<double> cusum;
};

struct ReportSeries {
  std::string group;
  std::string corridor;  // "MX-US-2304"; "*" for the group's all-corridors total
  // False when the volume-drop detector does not watch the series (goods
  // outside the catalog, or switched off by an override): no baseline.
  bool watched = false;
  double cusum_threshold = 0;       // the series' threshold (after overrides)
  std::vector<ReportPoint> points;  // in order of end
};

// One alert record (OPEN, UPDATED or RESOLVED) of any kind.
struct ReportAlert {
  std::string group;
  std::string corridor;  // as in ReportSeries
  TimestampMs at = 0;    // the record's window end: the close that caused it
  std::string id;
  std::string kind;      // "volume_drop", "customs_hold_spike", ...
  std::string severity;  // "warning", "critical", ...
  std::string state;     // "open", "updated", "resolved"
  std::string line;      // the readable line (FormatAlertLine)
};

// One ground-truth entry of `shortfall gen --truth` (scenario/scenarios.h).
struct ReportTruth {
  std::string group;  // a group, or "*" for every group
  std::string port;   // a port of entry; empty: every corridor and the total
  TimestampMs start = 0;
  TimestampMs end = 0;  // exclusive
  bool shortage = true;
  std::string kind;  // the alert kind that should report it; "none" when !shortage
  std::string what;
};

struct ReportPage {
  std::string input;       // the replayed file, as given
  std::string truth_file;  // empty: no truth given
  DurationMs bucket = kMsPerHour;
  DurationMs window = 24 * kMsPerHour;  // the volume-drop detector's window
  double recover_z = -1;
  double relative_floor = 0.1;
  double min_expected_shipments = 5;
  std::vector<ReportSeries> series;
  std::vector<ReportAlert> alerts;  // in the order they were raised
  std::vector<ReportTruth> truth;
};

// How a truth entry covers a series.
enum class TruthCover {
  kNone,
  // The entry's group ("*": any) and port (empty: any corridor, and the total).
  kSeries,
  // A port-specific entry, seen in its group's all-corridors total.
  kInTotal,
};
TruthCover Covers(const ReportTruth& truth, std::string_view group, std::string_view corridor);

// Parses the truth CSV (`shortfall gen --truth`): a header naming at least
// group, port_of_entry, start, end, shortage, what and alert_kind (in any
// order; other columns are ignored), then one entry per line. kInvalidArgument
// as "SOURCE:LINE: what is wrong".
Result<std::vector<ReportTruth>> ParseTruthCsv(std::string_view csv, std::string_view source);

// "&" "<" ">" '"' "'" as character references.
std::string HtmlEscape(std::string_view text);

// The page. Never fails: an empty page says that nothing was judged.
std::string RenderReportHtml(const ReportPage& page);

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_REPORT_HTML_H_
