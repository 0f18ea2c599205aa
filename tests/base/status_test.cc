#include "base/status.h"

#include <gtest/gtest.h>

namespace shortfall {
namespace {

Result<int> Half(int v) {
  if (v % 2 != 0) return InvalidArgumentError("odd: " + std::to_string(v));
  return v / 2;
}

Status QuarterInto(int v, int* out) {
  SHORTFALL_ASSIGN_OR_RETURN(int half, Half(v));
  SHORTFALL_ASSIGN_OR_RETURN(*out, Half(half));
  return OkStatus();
}

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(Status, CarriesCodeAndMessageWithContext) {
  Status s = NotFoundError("no such file").WithContext("catalog /x.csv");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: catalog /x.csv: no such file");
}

TEST(Result, HoldsValueOrStatus) {
  EXPECT_EQ(*Half(8), 4);
  Result<int> odd = Half(3);
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().message(), "odd: 3");
  EXPECT_EQ(odd.value_or(-1), -1);
}

TEST(Result, AssignOrReturnPropagatesTheFirstError) {
  int out = 0;
  EXPECT_TRUE(QuarterInto(8, &out).ok());
  EXPECT_EQ(out, 2);
  Status s = QuarterInto(6, &out);
  EXPECT_EQ(s.message(), "odd: 3");
}

TEST(ResultDeathTest, ValueOnErrorAbortsInEveryBuild) {
  EXPECT_DEATH({ (void)Half(1).value(); }, "Result::value\\(\\) on error");
}

}  // namespace
}  // namespace shortfall
