#include "base/number_format.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace shortfall {
namespace {

TEST(FormatNumber, PrintsCountsAndLargeValuesAsIntegers) {
  EXPECT_EQ(FormatNumber(180), "180");
  EXPECT_EQ(FormatNumber(1234.5), "1234");  // %.0f rounds half to even
  EXPECT_EQ(FormatNumber(-41), "-41");
  EXPECT_EQ(FormatNumber(0), "0");
}

TEST(FormatNumber, KeepsThreeSignificantDigitsOfSmallValues) {
  EXPECT_EQ(FormatNumber(7.25), "7.25");
  EXPECT_EQ(FormatNumber(0.08342), "0.0834");
  EXPECT_EQ(FormatNumber(9.5), "9.5");
  EXPECT_EQ(FormatNumber(26.50), "26.5");
}

TEST(FormatNumber, NamesValuesThatAreNotFinite) {
  EXPECT_EQ(FormatNumber(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(FormatNumber(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(FormatNumber(-std::numeric_limits<double>::infinity()), "-inf");
}

}  // namespace
}  // namespace shortfall
