#include "pipeline/application.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"

namespace shortfall::pipeline {
namespace {

struct Outcome {
  int exit_code;
  std::string out;
  std::string err;
};

Outcome Shortfall(std::vector<std::string> args) {
  std::ostringstream out, err;
  Application app(out, err);
  const int code = app.Run(args);
  return Outcome{code, out.str(), err.str()};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(Application, WithoutACommandPrintsUsageAndExits2) {
  Outcome r = Shortfall({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("usage: shortfall <command>"), std::string::npos);
}

TEST(Application, UnknownCommandsAndFlagsAreUsageErrors) {
  Outcome r = Shortfall({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos);
  r = Shortfall({"replay", "--input", "x", "--speed", "11"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown flag --speed"), std::string::npos) << r.err;
  r = Shortfall({"replay"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--input FILE is required"), std::string::npos) << r.err;
  r = Shortfall({"replay", "--input", "--format", "json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--input needs a value"), std::string::npos) << r.err;
  r = Shortfall({"gen", "--seed", "1", "--seed", "2"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--seed given twice"), std::string::npos) << r.err;
}

TEST(Application, HelpListsEveryFlagWithItsDefault) {
  Outcome r = Shortfall({"replay", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--input", "--state-dir", "--allowed-lateness", "--catalog", "--windows"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
  EXPECT_NE(r.out.find("(default: 6h)"), std::string::npos) << r.out;
  EXPECT_EQ(Shortfall({"gen", "--help"}).exit_code, 0);
  EXPECT_EQ(Shortfall({"help"}).exit_code, 0);
}

TEST(Application, BadFlagValuesNameTheFlag) {
  EXPECT_NE(Shortfall({"gen", "--events", "many"}).err.find("--events: 'many' is not a non-negative integer"),
            std::string::npos);
  EXPECT_NE(Shortfall({"gen", "--format", "xml"}).err.find("--format"), std::string::npos);
  const std::string windows_error = Shortfall({"replay", "--input", "x", "--windows", "24h,90m"}).err;
  EXPECT_NE(windows_error.find("--windows"), std::string::npos) << windows_error;
  EXPECT_NE(windows_error.find("90m"), std::string::npos) << windows_error;
  EXPECT_NE(Shortfall({"replay", "--input", "x", "--bucket", "1 hour"}).err.find("--bucket"),
            std::string::npos);
}

TEST(Application, ALongWindowListIsReadWhole) {
  testing::ScopedTempDir dir;
  ASSERT_EQ(Shortfall({"gen", "--events", "2000", "--out", dir.Path("e.pb")}).exit_code, 0);
  Outcome r = Shortfall({"replay", "--input", dir.Path("e.pb"), "--print", "none", "--windows",
                         "1h,24h,168h,720h"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("[last 1h] shipments="), std::string::npos);
  EXPECT_NE(r.out.find("[last 30d] shipments="), std::string::npos) << r.out.substr(0, 2000);
}

TEST(Application, APoisonRecordWithInvalidUtf8IsCountedWithoutLogNoise) {
  // Given a record whose event_id (a string field) holds bytes that are not UTF-8
  testing::ScopedTempDir dir;
  {
    std::ofstream f(dir.Path("bad.jsonl"));
    // rawValue: base64 of 0a 02 ff fe (field 1, length 2, bytes ff fe)
    f << R"({"topic":"shipments.events.v1","key":"k","partition":0,"rawValue":"CgL//g=="})" << "\n";
  }
  // When it is replayed
  ::testing::internal::CaptureStderr();
  Outcome r = Shortfall({"replay", "--input", dir.Path("bad.jsonl"), "--format", "json", "--print", "none"});
  const std::string process_stderr = ::testing::internal::GetCapturedStderr();
  // Then it is counted as unparseable, and protobuf's log line is not printed
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("unparseable 1"), std::string::npos) << r.out;
  EXPECT_EQ(process_stderr.find("invalid UTF-8"), std::string::npos) << process_stderr;
}

TEST(Application, TheSameSeedWritesTheSameBytes) {
  testing::ScopedTempDir dir;
  for (const char* name : {"a.pb", "b.pb"}) {
    Outcome r = Shortfall({"gen", "--seed", "3", "--events", "5000", "--out", dir.Path(name)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("wrote 5000 records"), std::string::npos) << r.err;
  }
  const std::string a = ReadFile(dir.Path("a.pb"));
  EXPECT_GT(a.size(), 100000u);
  EXPECT_EQ(a, ReadFile(dir.Path("b.pb")));
  ASSERT_EQ(Shortfall({"gen", "--seed", "4", "--events", "5000", "--out", dir.Path("c.pb")}).exit_code, 0);
  EXPECT_NE(a, ReadFile(dir.Path("c.pb")));
}

TEST(Application, GenRateScaleCoversLessTimeWithTheSameRecordsAndIsChecked) {
  // The same number of records at twice the rates ends earlier in event time
  testing::ScopedTempDir dir;
  std::vector<std::string> ends;
  for (const char* scale : {"1", "2"}) {
    const std::string file = dir.Path(std::string("s") + scale + ".pb");
    ASSERT_EQ(Shortfall({"gen", "--events", "20000", "--rate-scale", scale, "--out", file}).exit_code, 0);
    Outcome r = Shortfall({"replay", "--input", file, "--print", "none", "--series", "groups"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const size_t at = r.out.find("last windows end ");
    ASSERT_NE(at, std::string::npos) << r.out.substr(0, 2000);
    ends.push_back(r.out.substr(at + 17, 20));
  }
  EXPECT_LT(ends[1], ends[0]);
  EXPECT_NE(Shortfall({"gen", "--rate-scale", "0"}).err.find("--rate-scale: '0' is not a factor above 0"),
            std::string::npos);
  EXPECT_NE(Shortfall({"gen", "--rate-scale", "101"}).err.find("--rate-scale"), std::string::npos);
}

TEST(Application, AMalformedCatalogStopsStartUpWithFileAndLine) {
  testing::ScopedTempDir dir;
  ASSERT_EQ(Shortfall({"gen", "--events", "100", "--out", dir.Path("e.pb")}).exit_code, 0);
  std::ofstream(dir.Path("bad.csv")) << "group,hs_prefix,hs_revision,rule,note\n"
                                        "chips,8542,any,include,\n"
                                        "chips,85A2,any,include,\n";
  Outcome r = Shortfall({"replay", "--input", dir.Path("e.pb"), "--catalog", dir.Path("bad.csv")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(dir.Path("bad.csv") + ":3: hs_prefix '85A2'"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "") << "nothing is processed with a bad catalog";
}

TEST(Application, AUserCatalogReplacesTheDefaultGroups) {
  testing::ScopedTempDir dir;
  ASSERT_EQ(Shortfall({"gen", "--events", "3000", "--out", dir.Path("e.pb")}).exit_code, 0);
  std::ofstream(dir.Path("chips.csv")) << "group,hs_prefix,hs_revision,rule,note\n"
                                          "chips,8542,any,include,integrated circuits only\n";
  Outcome r = Shortfall({"replay", "--input", dir.Path("e.pb"), "--catalog", dir.Path("chips.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\nchips  MX-US-2304  shipments="), std::string::npos);
  EXPECT_EQ(r.out.find("semiconductors"), std::string::npos);
}

TEST(Application, AnUnreadableInputFailsWithExit1) {
  Outcome r = Shortfall({"replay", "--input", "/nonexistent/events.pb"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/events.pb"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace shortfall::pipeline
