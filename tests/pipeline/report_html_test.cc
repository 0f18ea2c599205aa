#include "pipeline/report_html.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "scenario/scenarios.h"

namespace shortfall::pipeline {
namespace {

constexpr DurationMs kHour = kMsPerHour;
const TimestampMs kStart = *ParseUtc("2026-01-05T00:00:00Z");

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// The chart of the series whose heading is `title` (HTML-escaped), or "".
std::string ChartOf(const std::string& page, const std::string& title) {
  const size_t heading = page.find("<h3>" + title + "</h3>");
  if (heading == std::string::npos) return "";
  const size_t begin = page.find("<svg class=\"chart\"", heading);
  return page.substr(begin, page.find("</svg>", begin) - begin);
}

// `hours` hourly closes: 20 shipments a window, expected 20 with a band to
// 16, S 0; from `drop_hour` on the flow falls to 5 and S climbs by 0.5 an hour.
ReportSeries Series(std::string group, std::string corridor, int hours, int drop_hour, int warm_up = 0) {
  ReportSeries s;
  s.group = std::move(group);
  s.corridor = std::move(corridor);
  s.watched = true;
  s.cusum_threshold = 5;
  double cusum = 0;
  for (int h = 0; h < hours; ++h) {
    ReportPoint& p = s.points.emplace_back();
    p.end = kStart + (h + 1) * kHour;
    const bool dropped = h >= drop_hour;
    p.observed = dropped ? 5 : 20;
    if (h < warm_up) continue;
    p.expected = 20;
    p.normal_low = 16;
    if (dropped) cusum += 0.5;
    p.cusum = cusum;
  }
  return s;
}

ReportPage HandMadePage() {
  ReportPage page;
  page.input = "events <1>.pb";
  page.truth_file = "truth.csv";
  // An odd group name: everything from the data must be escaped.
  page.series.push_back(Series("chips<b>&\"x'", "MX-US-2304", 200, 100, /*warm_up=*/24));
  page.series.push_back(Series("ppe", "CA-US-3801", 200, 1000));
  ReportAlert open;
  open.group = "chips<b>&\"x'";
  open.corridor = "MX-US-2304";
  open.at = kStart + 111 * kHour;
  open.id = "a1";
  open.kind = "volume_drop";
  open.severity = "critical";
  open.state = "open";
  open.line = "OPEN CRITICAL volume_drop: shipments 5 vs expected 20 <script>";
  page.alerts.push_back(open);
  ReportAlert resolved = open;
  resolved.at = kStart + 190 * kHour;
  resolved.state = "resolved";
  resolved.severity = "unspecified";
  page.alerts.push_back(resolved);
  ReportTruth truth;
  truth.group = "chips<b>&\"x'";
  truth.port = "2304";
  truth.start = kStart + 100 * kHour;
  truth.end = kStart + 180 * kHour;
  truth.kind = "volume_drop";
  truth.what = "chips via Laredo fall & stay <down>";
  page.truth.push_back(truth);
  return page;
}

TEST(ReportHtml, DrawsOneChartPerSeriesWithTheAlertAndTheTruthWindow) {
  // Given two series, one with an alert (opened, resolved) and a truth window
  const std::string html = RenderReportHtml(HandMadePage());
  // Then there is one chart per series
  EXPECT_EQ(Count(html, "<svg class=\"chart\""), 2u);
  const std::string chips = ChartOf(html, "chips&lt;b&gt;&amp;&quot;x&#39; \xC2\xB7 MX-US-2304");
  const std::string ppe = ChartOf(html, "ppe \xC2\xB7 CA-US-3801");
  ASSERT_FALSE(chips.empty());
  ASSERT_FALSE(ppe.empty());
  // And the alert's markers, with kind and severity in their tooltips, are on its series only
  EXPECT_EQ(Count(chips, "<g class=\"alert open critical\" data-kind=\"volume_drop\"><title>volume_drop \xC2\xB7 "
                         "critical \xC2\xB7 open"),
            1u);
  EXPECT_EQ(Count(chips, "<g class=\"alert resolved resolved\" data-kind=\"volume_drop\">"), 1u);
  EXPECT_EQ(Count(chips, "<rect class=\"bar critical\""), 1u) << "the open stretch";
  EXPECT_EQ(Count(ppe, "class=\"alert"), 0u);
  // And the truth window is shaded on it, from its start to its end
  EXPECT_EQ(Count(chips, "<rect class=\"truth shortage\""), 1u);
  EXPECT_EQ(Count(ppe, "class=\"truth"), 0u);
  // And the series with an alert comes first, the other in the closed section
  EXPECT_LT(html.find("<h3>chips&lt;b&gt;"), html.find("<details>"));
  EXPECT_GT(html.find("<h3>ppe"), html.find("<details>"));
  // And the header counts the records by kind
  EXPECT_NE(html.find("<tr><td>volume_drop</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">0</td>"
                      "<td class=\"n\">1</td><td class=\"n\">0</td></tr>"),
            std::string::npos);
}

TEST(ReportHtml, EscapesEveryTextFromTheData) {
  const std::string html = RenderReportHtml(HandMadePage());
  EXPECT_EQ(html.find("chips<b>"), std::string::npos);
  EXPECT_EQ(html.find("<down>"), std::string::npos);
  EXPECT_EQ(html.find("events <1>"), std::string::npos);
  EXPECT_NE(html.find("chips via Laredo fall &amp; stay &lt;down&gt;"), std::string::npos);
  EXPECT_NE(html.find("events &lt;1&gt;.pb"), std::string::npos);
  EXPECT_NE(html.find("vs expected 20 &lt;script&gt;"), std::string::npos);
}

TEST(ReportHtml, IsSelfContained) {
  const std::string html = RenderReportHtml(HandMadePage());
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
}

TEST(ReportHtml, DrawsTheBandOnlyWhereTheSeriesWasTested) {
  // Given a series that was never tested (thin: expected but no S), and an unwatched one
  ReportPage page;
  ReportSeries thin = Series("ppe", "CA-US-3801", 100, 1000);
  for (ReportPoint& p : thin.points) {
    p.normal_low.reset();
    p.cusum.reset();
  }
  ReportSeries unwatched = Series("unclassified", "*", 100, 1000);
  unwatched.watched = false;
  for (ReportPoint& p : unwatched.points) p = ReportPoint{p.end, p.observed, {}, {}, {}};
  page.series = {thin, unwatched};
  const std::string html = RenderReportHtml(page);
  const std::string thin_chart = ChartOf(html, "ppe \xC2\xB7 CA-US-3801");
  const std::string unwatched_chart = ChartOf(html, "unclassified \xC2\xB7 all corridors");
  // Then the thin one has a baseline, no band and no S; the unwatched one only its volume
  EXPECT_EQ(Count(thin_chart, "<path class=\"expected\""), 1u);
  EXPECT_EQ(Count(thin_chart, "<path class=\"band\""), 0u);
  EXPECT_EQ(Count(thin_chart, "<path class=\"cusum\""), 0u);
  EXPECT_EQ(Count(unwatched_chart, "<path class=\"expected\""), 0u);
  EXPECT_EQ(Count(unwatched_chart, "<path class=\"observed\""), 1u);
  EXPECT_NE(unwatched_chart.find("not watched by the volume-drop detector"), std::string::npos);
  EXPECT_NE(html.find("Tested at 0 of 100 closes (0 warming up, 100 thin"), std::string::npos);
}

TEST(ReportHtml, ALongSeriesStaysSmall) {
  // Given a year of hourly closes on one series, noisy
  ReportPage page;
  ReportSeries s = Series("ppe", "CA-US-3801", 365 * 24, 200 * 24);
  for (size_t i = 0; i < s.points.size(); ++i) s.points[i].observed += static_cast<double>((i * 7919) % 13);
  page.series = {s};
  const std::string html = RenderReportHtml(page);
  // Then its chart holds at most about four points per pixel column per line
  // (892 columns; five lines), not 8,760
  const std::string chart = ChartOf(html, "ppe \xC2\xB7 CA-US-3801");
  EXPECT_LT(chart.size(), 60u * 1024) << "a year of closes: " << chart.size() << " bytes";
  EXPECT_GT(chart.size(), 3u * 1024);
  RecordProperty("chart_bytes", std::to_string(chart.size()));
}

TEST(ReportHtml, AnEmptyPageSaysNothingWasJudged) {
  const std::string html = RenderReportHtml(ReportPage{});
  EXPECT_EQ(Count(html, "<svg class=\"chart\""), 0u);
  EXPECT_NE(html.find("<td>none</td>"), std::string::npos);
  EXPECT_NE(html.find("No alert records."), std::string::npos);
}

TEST(TruthCover, MatchesGroupsAndPortsAsTheScorerDoes) {
  ReportTruth every_group;
  every_group.group = "*";
  ReportTruth laredo;
  laredo.group = "semiconductors";
  laredo.port = "2304";
  // "*" and an empty port: every corridor of every group, and the totals
  EXPECT_EQ(Covers(every_group, "ppe", "CA-US-3801"), TruthCover::kSeries);
  EXPECT_EQ(Covers(every_group, "ppe", "*"), TruthCover::kSeries);
  // A port: its corridors, and the group's total as an echo
  EXPECT_EQ(Covers(laredo, "semiconductors", "MX-US-2304"), TruthCover::kSeries);
  EXPECT_EQ(Covers(laredo, "semiconductors", "US-MX-2304"), TruthCover::kSeries);
  EXPECT_EQ(Covers(laredo, "semiconductors", "*"), TruthCover::kInTotal);
  EXPECT_EQ(Covers(laredo, "semiconductors", "MX-US-2402"), TruthCover::kNone);
  EXPECT_EQ(Covers(laredo, "ppe", "MX-US-2304"), TruthCover::kNone);
}

TEST(ParseTruthCsv, ReadsWhatGenWrites) {
  const scenario::NamedScenario* named = scenario::FindScenario("sudden_drop");
  ASSERT_NE(named, nullptr);
  Result<std::vector<ReportTruth>> truth = ParseTruthCsv(scenario::TruthCsv(*named), "t.csv");
  ASSERT_TRUE(truth.ok()) << truth.status().ToString();
  ASSERT_EQ(truth->size(), named->truth.size());
  const ReportTruth& t = (*truth)[0];
  EXPECT_EQ(t.group, named->truth[0].group);
  EXPECT_EQ(t.port, named->truth[0].port_of_entry);
  EXPECT_EQ(t.start, named->truth[0].start);
  EXPECT_EQ(t.end, named->truth[0].end);
  EXPECT_EQ(t.shortage, named->truth[0].shortage);
  EXPECT_EQ(t.what, named->truth[0].what);
  EXPECT_EQ(t.kind, "volume_drop");
}

TEST(ParseTruthCsv, NamesTheLineOfABadEntry) {
  const std::string header = "scenario,group,port_of_entry,start,end,shortage,what,alert_kind\n";
  EXPECT_EQ(ParseTruthCsv("group,start\n", "t.csv").status().message(),
            "t.csv:1: the header has no column 'port_of_entry' (want the CSV of `shortfall gen --scenario NAME "
            "--truth FILE`)");
  EXPECT_EQ(ParseTruthCsv(header + "s,ppe,,2026-01-05T00:00:00Z,2026-01-06T00:00:00Z,maybe,\"x\",none\n", "t.csv")
                .status()
                .message(),
            "t.csv:2: shortage: 'maybe' (want true or false)");
  EXPECT_EQ(ParseTruthCsv(header + "s,ppe,,yesterday,2026-01-06T00:00:00Z,true,\"x\",volume_drop\n", "t.csv")
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTruthCsv("", "t.csv").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shortfall::pipeline
