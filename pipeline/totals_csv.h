// The all-time totals per series as CSV: one format for `shortfall replay
// --totals-csv` and `shortfall run --totals-csv`, so the two can be compared
// line by line.
//
//   group,corridor,shipments,goods_lines,gross_weight_kg,declared_value_usd,
//   quantity_<unit>...,customs_<status>...
//
// Amounts are the exact decimals of the fixed-point sums (operators/volume.h):
// kilograms with 3 decimals, USD with 4, quantities with 3; counts are
// integers.
//
// Thread-safety: pure functions.
#ifndef SHORTFALL_PIPELINE_TOTALS_CSV_H_
#define SHORTFALL_PIPELINE_TOTALS_CSV_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "operators/volume.h"

namespace shortfall::pipeline {

// `v` / `scale` as an exact decimal with as many fraction digits as `scale`
// has zeros: FormatFixed(-12345, 1000) == "-12.345". REQUIRES: scale is a
// power of ten >= 1.
std::string FormatFixed(int64_t v, int64_t scale);

void WriteTotalsCsvHeader(std::ostream& out);
void WriteTotalsCsvRow(std::ostream& out, std::string_view group, std::string_view corridor,
                       const operators::VolumeDelta& total);

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_TOTALS_CSV_H_
