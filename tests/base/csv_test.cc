#include "base/csv.h"

#include <string>
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

}  // namespace
}  // namespace shortfall
