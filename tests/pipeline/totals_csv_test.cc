#include "pipeline/totals_csv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

namespace shortfall::pipeline {
namespace {

TEST(FormatFixed, WritesExactDecimalsWithTheScalesDigits) {
  EXPECT_EQ(FormatFixed(12345, 1000), "12.345");
  EXPECT_EQ(FormatFixed(-12345, 1000), "-12.345");
  EXPECT_EQ(FormatFixed(5, 10000), "0.0005");
  EXPECT_EQ(FormatFixed(0, 1000), "0.000");
  EXPECT_EQ(FormatFixed(42, 1), "42");
}

TEST(TotalsCsv, OneRowHasAColumnForEveryHeaderField) {
  operators::VolumeDelta v;
  v.shipments = 3;
  v.goods_lines = 4;
  v.gross_weight = 1500250;                 // 1500.250 kg
  v.declared_value = 123456789;             // 12345.6789 USD
  v.quantity[0] = 7000;                     // 7.000 of the first unit
  v.customs[v1::CUSTOMS_STATUS_FILED] = 2;
  std::ostringstream out;
  WriteTotalsCsvHeader(out);
  WriteTotalsCsvRow(out, "semiconductors", "MX-US-2304", v);
  const std::string text = out.str();
  const std::string header = text.substr(0, text.find('\n'));
  const std::string row = text.substr(text.find('\n') + 1);
  EXPECT_EQ(header.rfind("group,corridor,shipments,goods_lines,gross_weight_kg,declared_value_usd,quantity_", 0), 0u)
      << header;
  EXPECT_EQ(row.rfind("semiconductors,MX-US-2304,3,4,1500.250,12345.6789,7.000,", 0), 0u) << row;
  const auto commas = [](const std::string& s) { return std::count(s.begin(), s.end(), ','); };
  EXPECT_EQ(commas(header), commas(row));
}

}  // namespace
}  // namespace shortfall::pipeline
