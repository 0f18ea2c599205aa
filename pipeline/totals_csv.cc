#include "pipeline/totals_csv.h"

namespace shortfall::pipeline {

std::string FormatFixed(int64_t v, int64_t scale) {
  const bool negative = v < 0;
  const uint64_t magnitude = negative ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  const uint64_t unit = static_cast<uint64_t>(scale);
  const std::string whole = (negative ? "-" : "") + std::to_string(magnitude / unit);
  const size_t digits = std::to_string(unit).size() - 1;
  if (digits == 0) return whole;
  std::string fraction = std::to_string(magnitude % unit);
  fraction.insert(0, digits - fraction.size(), '0');
  return whole + "." + fraction;
}

void WriteTotalsCsvHeader(std::ostream& out) {
  out << "group,corridor,shipments,goods_lines,gross_weight_kg,declared_value_usd";
  for (size_t u = 0; u < operators::kUnitCount; ++u) {
    out << ",quantity_" << operators::UnitName(static_cast<operators::Unit>(u));
  }
  for (size_t s = 1; s < operators::kCustomsStatusCount; ++s) out << ",customs_" << operators::CustomsStatusName(s);
  out << "\n";
}

void WriteTotalsCsvRow(std::ostream& out, std::string_view group, std::string_view corridor,
                       const operators::VolumeDelta& total) {
  out << group << "," << corridor << "," << total.shipments << "," << total.goods_lines << ","
      << FormatFixed(total.gross_weight, operators::kWeightScale) << ","
      << FormatFixed(total.declared_value, operators::kValueScale);
  for (int64_t q : total.quantity) out << "," << FormatFixed(q, operators::kQuantityScale);
  for (size_t s = 1; s < operators::kCustomsStatusCount; ++s) out << "," << total.customs[s];
  out << "\n";
}

}  // namespace shortfall::pipeline
