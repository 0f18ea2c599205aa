#include "pipeline/replay.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <utility>
#include <sstream>
#include <string>

#include "scenario/generator.h"
#include "scenario/scenarios.h"
#include "tests/testing/temp_dir.h"

namespace shortfall::pipeline {
namespace {

// A 20k-record scenario with every kind of fault, written in `format`.
void WriteScenario(const std::string& path, EventFileFormat format, uint64_t events = 20000,
                   uint64_t seed = 5) {
  scenario::GeneratorOptions options;
  options.seed = seed;
  options.events = events;
  options.malformed_rate = 0.01;
  options.late_rate = 0.005;
  auto writer = EventFileWriter::Open(path, format);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  scenario::Generator generator(options);
  v1::EventRecord record;
  while (generator.Next(&record)) ASSERT_TRUE((*writer)->Write(record).ok());
  ASSERT_TRUE((*writer)->Close().ok());
}

class ReplayTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteScenario(events_, EventFileFormat::kProtobuf); }

  // Runs a replay; returns its output, failing the test on error.
  std::string Replay(ReplayOptions options) {
    if (options.input.empty()) options.input = events_;
    std::ostringstream out;
    Status s = RunReplay(options, operators::Catalog::Default(), out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out.str();
  }

  // The lines of `text` from the totals header on.
  static std::string Summary(const std::string& text) { return text.substr(text.find("\n== totals")); }

  testing::ScopedTempDir dir_;
  const std::string events_ = dir_.Path("events.pb");
};

TEST_F(ReplayTest, SameInputGivesByteIdenticalOutput) {
  ReplayOptions options;
  options.print_every = PrintEvery::kBucket;
  const std::string first = Replay(options);
  EXPECT_EQ(Replay(options), first);
  EXPECT_NE(first.find("records 20"), std::string::npos) << first.substr(0, 200);
  EXPECT_NE(first.find("invalid by reason:"), std::string::npos);
}

TEST_F(ReplayTest, RocksDbAndInMemoryStateGiveTheSameOutput) {
  ReplayOptions options;
  options.print_every = PrintEvery::kBucket;
  const std::string in_memory = Replay(options);
  options.state_dir = dir_.Path("state");
  options.commit_every = 997;
  EXPECT_EQ(Replay(options), in_memory);
}

TEST_F(ReplayTest, JsonAndProtobufFilesOfTheSameEventsGiveTheSameOutput) {
  const std::string json = dir_.Path("events.jsonl");
  WriteScenario(json, EventFileFormat::kJson);
  ReplayOptions options;
  const std::string from_pb = Replay(options);
  options.input = json;
  options.format = EventFileFormat::kJson;
  EXPECT_EQ(Replay(options), from_pb);
}

TEST_F(ReplayTest, AResumedReplayEndsWhereAnUninterruptedOneDoes) {
  // Given a full run, and a run stopped after 7,500 records with its state committed
  ReplayOptions options;
  options.print_every = PrintEvery::kBucket;
  const std::string full = Replay(options);
  options.state_dir = dir_.Path("state");
  options.commit_every = 1000;
  options.max_records = 7500;
  const std::string first_part = Replay(options);
  EXPECT_NE(first_part.find("stopped after 7500 records"), std::string::npos);
  // When the rest is replayed over the same state directory
  options.max_records = 0;
  const std::string second_part = Replay(options);
  // Then it resumes after record 7,500, and windows and totals come out as in the full run
  EXPECT_NE(second_part.find("resuming after record 7500"), std::string::npos);
  EXPECT_EQ(Summary(second_part), Summary(full));
  const std::string windows_full = full.substr(0, full.find("\n== totals"));
  const std::string windows_split = first_part.substr(0, first_part.find("stopped after")) +
                                    second_part.substr(second_part.find('\n') + 1,
                                                       second_part.find("\n== totals") -
                                                           second_part.find('\n') - 1);
  EXPECT_EQ(windows_split, windows_full);
}

TEST_F(ReplayTest, ResumingOverADifferentInputIsRefused) {
  ReplayOptions options;
  options.state_dir = dir_.Path("state");
  options.max_records = 5000;
  Replay(options);
  const std::string other = dir_.Path("other.pb");
  WriteScenario(other, EventFileFormat::kProtobuf, 20000, /*seed=*/6);
  options.input = other;
  options.max_records = 0;
  std::ostringstream out;
  Status s = RunReplay(options, operators::Catalog::Default(), out);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("--input differs"), std::string::npos) << s.ToString();
}

TEST_F(ReplayTest, ResumingWithOtherWindowsIsRefused) {
  ReplayOptions options;
  options.state_dir = dir_.Path("state");
  options.max_records = 5000;
  Replay(options);
  options.pipeline.window.bucket = 2 * kMsPerHour;
  std::ostringstream out;
  Status s = RunReplay(options, operators::Catalog::Default(), out);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("bucket=1h windows=24h,7d"), std::string::npos) << s.ToString();
}

TEST_F(ReplayTest, AnEmptyFileReplaysToEmptyTotals) {
  const std::string empty = dir_.Path("empty.pb");
  std::ofstream(empty, std::ios::binary).flush();
  ReplayOptions options;
  options.input = empty;
  const std::string out = Replay(options);
  EXPECT_NE(out.find("none closed"), std::string::npos) << out;
  EXPECT_NE(out.find("records 0  accepted 0  invalid 0  late 0"), std::string::npos) << out;
}

TEST_F(ReplayTest, AnUnwritableTotalsCsvStopsBeforeReplaying) {
  ReplayOptions options;
  options.input = events_;
  options.totals_csv = dir_.Path("no/such/dir/totals.csv");
  std::ostringstream out;
  Status s = RunReplay(options, operators::Catalog::Default(), out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(out.str().find("records"), std::string::npos) << "nothing was replayed";
}

TEST_F(ReplayTest, TotalsCsvHasARowPerSeries) {
  ReplayOptions options;
  options.totals_csv = dir_.Path("totals.csv");
  const std::string out = Replay(options);
  std::ifstream csv(options.totals_csv);
  std::string header, row;
  ASSERT_TRUE(std::getline(csv, header));
  EXPECT_EQ(header.rfind("group,corridor,shipments,goods_lines,gross_weight_kg,declared_value_usd", 0), 0u);
  int rows = 0;
  bool has_laredo_chips = false;
  while (std::getline(csv, row)) {
    ++rows;
    has_laredo_chips |= row.rfind("semiconductors,MX-US-2304,", 0) == 0;
  }
  EXPECT_GT(rows, 30);
  EXPECT_TRUE(has_laredo_chips);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

TEST_F(ReplayTest, AReportChangesNothingElseAndDrawsEveryJudgedSeries) {
  // Given the same replay with and without a report
  ReplayOptions options;
  options.print_every = PrintEvery::kBucket;
  const std::string plain = Replay(options);
  options.report_html = dir_.Path("report.html");
  options.totals_csv = dir_.Path("totals.csv");
  // Then the printed output is the same
  EXPECT_EQ(Replay(options), plain);
  // And the page has a chart per series (those the end of the file first
  // closed are not judged, so at most one per row of the totals)
  const std::string html = ReadFile(options.report_html);
  const size_t charts = Count(html, "<svg class=\"chart\"");
  const size_t series = Count(ReadFile(options.totals_csv), "\n") - 1;
  EXPECT_GT(charts, series / 2);
  EXPECT_LE(charts, series);
  EXPECT_NE(html.find("<td>" + events_ + "</td>"), std::string::npos);
}

TEST_F(ReplayTest, AReportOfASuddenDropMarksTheAlertInsideTheTruthWindow) {
  // Given the sudden_drop scenario and its truth
  const scenario::NamedScenario* named = scenario::FindScenario("sudden_drop");
  ASSERT_NE(named, nullptr);
  const std::string events = dir_.Path("drop.pb");
  {
    auto writer = EventFileWriter::Open(events, EventFileFormat::kProtobuf);
    ASSERT_TRUE(writer.ok());
    scenario::Generator generator(named->options);
    v1::EventRecord record;
    while (generator.Next(&record)) ASSERT_TRUE((*writer)->Write(record).ok());
    ASSERT_TRUE((*writer)->Close().ok());
  }
  std::ofstream(dir_.Path("truth.csv")) << scenario::TruthCsv(*named);
  // When it is replayed with a report
  ReplayOptions options;
  options.input = events;
  options.print_every = PrintEvery::kNone;
  options.report_html = dir_.Path("report.html");
  options.truth_csv = dir_.Path("truth.csv");
  options.alerts_json = dir_.Path("alerts.jsonl");
  Replay(options);
  const std::string html = ReadFile(options.report_html);
  // Then every alert record is marked once, the OPEN ones on Laredo's chips chart
  const size_t records = Count(ReadFile(options.alerts_json), "\n");
  ASSERT_GT(records, 0u);
  EXPECT_EQ(Count(html, "\" data-kind=\""), records);
  const size_t heading = html.find("<h3>semiconductors \xC2\xB7 MX-US-2304</h3>");
  ASSERT_NE(heading, std::string::npos);
  const std::string chart = html.substr(heading, html.find("</svg>", heading) - heading);
  EXPECT_NE(chart.find("<g class=\"alert open "), std::string::npos);
  EXPECT_EQ(Count(chart, "<rect class=\"truth shortage\""), 1u);
  EXPECT_NE(chart.find("<path class=\"band\""), std::string::npos);
  EXPECT_NE(chart.find("<path class=\"cusum\""), std::string::npos);
  // And the group total shows the port's shortage as seen in the total
  const size_t total = html.find("<h3>semiconductors \xC2\xB7 all corridors</h3>");
  ASSERT_NE(total, std::string::npos);
  EXPECT_NE(html.find("<rect class=\"truth in-total\"", total), std::string::npos);
}

TEST_F(ReplayTest, ABadTruthFileOrReportPathStopsBeforeReplaying) {
  std::ofstream(dir_.Path("truth.csv")) << "group,what\nppe,x\n";
  for (auto [report, truth] : {std::pair{dir_.Path("no/such/dir/r.html"), std::string()},
                               std::pair{dir_.Path("r.html"), dir_.Path("truth.csv")},
                               std::pair{dir_.Path("r.html"), dir_.Path("missing.csv")},
                               std::pair{std::string(), dir_.Path("truth.csv")}}) {
    ReplayOptions options;
    options.input = events_;
    options.report_html = report;
    options.truth_csv = truth;
    std::ostringstream out;
    Status s = RunReplay(options, operators::Catalog::Default(), out);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << report << " " << truth << ": " << s.ToString();
    EXPECT_EQ(out.str().find("records"), std::string::npos) << "nothing was replayed";
  }
}

TEST_F(ReplayTest, ATruncatedFileStopsWithDataLoss) {
  const std::string truncated = dir_.Path("truncated.pb");
  {
    std::ifstream in(events_, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2 + 3);
  }
  ReplayOptions options;
  options.input = truncated;
  std::ostringstream out;
  Status s = RunReplay(options, operators::Catalog::Default(), out);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
}

TEST_F(ReplayTest, AMissingInputIsAnErrorNamingThePath) {
  ReplayOptions options;
  options.input = dir_.Path("nope.pb");
  std::ostringstream out;
  Status s = RunReplay(options, operators::Catalog::Default(), out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nope.pb"), std::string::npos) << s.ToString();
}

TEST(ParsePrintEvery, AcceptsTheThreeChoices) {
  EXPECT_EQ(*ParsePrintEvery("day"), PrintEvery::kDay);
  EXPECT_EQ(*ParsePrintEvery("bucket"), PrintEvery::kBucket);
  EXPECT_EQ(*ParsePrintEvery("none"), PrintEvery::kNone);
  EXPECT_FALSE(ParsePrintEvery("week").ok());
}

}  // namespace
}  // namespace shortfall::pipeline
