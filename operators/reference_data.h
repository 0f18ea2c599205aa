// Reference data the validators and normalisers check against: ISO 3166-1
// alpha-2 countries, UN/ECE Recommendation 20 units of measure (the subset
// trade data uses for goods lines) and their canonical units, and the default
// currency rate table.
//
// Thread-safety: immutable, safe from any thread.
#ifndef SHORTFALL_OPERATORS_REFERENCE_DATA_H_
#define SHORTFALL_OPERATORS_REFERENCE_DATA_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

namespace shortfall::operators {

// True for an officially assigned ISO 3166-1 alpha-2 code (upper case).
bool IsIsoCountry(std::string_view code);

// True for a US CBP port code (4 digits, "2304") or a UN/LOCODE (country +
// 3 of [A-Z2-9], "CAWND").
bool IsPortCode(std::string_view code);

// The canonical units quantities are summed in. Quantities in different
// canonical units are never added together.
enum class Unit : uint8_t { kKilogram = 0, kPiece, kPair, kLitre, kCubicMetre, kCount_ };
inline constexpr size_t kUnitCount = static_cast<size_t>(Unit::kCount_);

// "kg", "pcs", "pairs", "l", "m3".
std::string_view UnitName(Unit unit);

// A UN/ECE Rec 20 code and how it converts: quantity_in_code * factor =
// quantity in `unit`.
struct UnitConversion {
  Unit unit;
  double factor;
};

// KGM, GRM, LBR, TNE, NAR, PCE, C62, H87, DZN, PR, NPR, LTR, MLT, MTQ, FTQ.
std::optional<UnitConversion> LookupUnitCode(std::string_view code);
// Every supported code, for help texts and generators.
std::span<const std::string_view> SupportedUnitCodes();

// Default rates to USD (1 unit of currency = rate USD). Illustrative values;
// production configs set their own table.
std::span<const std::pair<std::string_view, double>> DefaultUsdRates();

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_REFERENCE_DATA_H_
