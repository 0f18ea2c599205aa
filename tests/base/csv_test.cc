#include "base/csv.h"

#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace shortfall {
namespace {

using ::testing::ElementsAre;

TEST(SplitCsvRecord, SplitsPlainFieldsAtCommasAndKeepsEmptyOnes) {
  std::vector<std::string> fields;
  EXPECT_EQ(SplitCsvRecord("a,,b,", &fields), "");
  EXPECT_THAT(fields, ElementsAre("a", "", "b", ""));
}

TEST(SplitCsvRecord, QuotedFieldsHoldCommasAndDoubledQuotes) {
  std::vector<std::string> fields;
  EXPECT_EQ(SplitCsvRecord(R"(x,"chips, via ""Laredo""",y)", &fields), "");
  EXPECT_THAT(fields, ElementsAre("x", R"(chips, via "Laredo")", "y"));
}

TEST(SplitCsvRecord, NamesWhatIsWrong) {
  std::vector<std::string> fields;
  EXPECT_EQ(SplitCsvRecord(R"(a,"open)", &fields), "unterminated quote");
  EXPECT_EQ(SplitCsvRecord(R"("a"b,c)", &fields), "text after the closing quote of field 1");
  EXPECT_EQ(SplitCsvRecord(R"(a,b"c)", &fields), "quote inside unquoted field 2");
}

TEST(CsvLines, HandsOutLinesWithoutTheirEndingsAndCountsThem) {
  CsvLines lines("a,b\r\n\nlast");
  std::vector<std::pair<std::string, size_t>> seen;
  while (lines.Next()) seen.emplace_back(std::string(lines.line()), lines.number());
  EXPECT_THAT(seen, ElementsAre(std::pair<std::string, size_t>{"a,b", 1}, std::pair<std::string, size_t>{"", 2},
                                std::pair<std::string, size_t>{"last", 3}));
}

TEST(CsvLines, AFinalNewlineEndsTheLastLineAndStartsNoOther) {
  CsvLines lines("x\n");
  ASSERT_TRUE(lines.Next());
  EXPECT_EQ(lines.line(), "x");
  EXPECT_FALSE(lines.Next());
  EXPECT_EQ(lines.number(), 1u);
  EXPECT_FALSE(CsvLines("").Next());
}

}  // namespace
}  // namespace shortfall
