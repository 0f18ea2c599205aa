#include "operators/reference_data.h"

#include <algorithm>

namespace shortfall::operators {
namespace {

// ISO 3166-1 alpha-2, officially assigned codes, sorted.
constexpr std::array<std::string_view, 249> kCountries = {
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX",
    "AZ", "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ",
    "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK",
    "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM",
    "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR",
    "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS",
    "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN",
    "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN",
    "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV",
    "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ",
    "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI",
    "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM",
    "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC",
    "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV",
    "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR",
    "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW"};

struct UnitCode {
  std::string_view code;
  UnitConversion conversion;
};

constexpr std::array<UnitCode, 15> kUnitCodes = {{
    {"KGM", {Unit::kKilogram, 1.0}},
    {"GRM", {Unit::kKilogram, 0.001}},
    {"LBR", {Unit::kKilogram, 0.45359237}},
    {"TNE", {Unit::kKilogram, 1000.0}},
    {"NAR", {Unit::kPiece, 1.0}},
    {"PCE", {Unit::kPiece, 1.0}},
    {"C62", {Unit::kPiece, 1.0}},
    {"H87", {Unit::kPiece, 1.0}},
    {"DZN", {Unit::kPiece, 12.0}},
    {"PR", {Unit::kPair, 1.0}},
    {"NPR", {Unit::kPair, 1.0}},
    {"LTR", {Unit::kLitre, 1.0}},
    {"MLT", {Unit::kLitre, 0.001}},
    {"MTQ", {Unit::kCubicMetre, 1.0}},
    {"FTQ", {Unit::kCubicMetre, 0.028316846592}},
}};


constexpr std::array<std::pair<std::string_view, double>, 10> kDefaultRates = {{
    {"USD", 1.0},
    {"MXN", 0.055},
    {"CAD", 0.73},
    {"EUR", 1.08},
    {"GBP", 1.27},
    {"CNY", 0.14},
    {"JPY", 0.0067},
    {"KRW", 0.00074},
    {"TWD", 0.031},
    {"CHF", 1.12},
}};

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

}  // namespace

namespace {

// kCountries as a 26 x 26 bit table: one lookup per check on the hot path.
struct CountryTable {
  std::array<uint32_t, 26> rows{};  // bit (second letter) of row (first letter)
  CountryTable() {
    for (std::string_view c : kCountries) rows[static_cast<size_t>(c[0] - 'A')] |= 1u << (c[1] - 'A');
  }
};

}  // namespace

bool IsIsoCountry(std::string_view code) {
  static const CountryTable table;
  return code.size() == 2 && IsUpper(code[0]) && IsUpper(code[1]) &&
         ((table.rows[static_cast<size_t>(code[0] - 'A')] >> (code[1] - 'A')) & 1u) != 0;
}

bool IsPortCode(std::string_view code) {
  if (code.size() == 4) {
    return std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; });
  }
  if (code.size() == 5) {
    if (!IsIsoCountry(code.substr(0, 2))) return false;
    return std::all_of(code.begin() + 2, code.end(),
                       [](char c) { return IsUpper(c) || (c >= '2' && c <= '9'); });
  }
  return false;
}

std::string_view UnitName(Unit unit) {
  switch (unit) {
    case Unit::kKilogram: return "kg";
    case Unit::kPiece: return "pcs";
    case Unit::kPair: return "pairs";
    case Unit::kLitre: return "l";
    case Unit::kCubicMetre: return "m3";
    case Unit::kCount_: break;
  }
  return "?";
}

std::optional<UnitConversion> LookupUnitCode(std::string_view code) {
  for (const UnitCode& u : kUnitCodes) {
    if (u.code == code) return u.conversion;
  }
  return std::nullopt;
}

std::span<const std::string_view> SupportedUnitCodes() {
  static const std::array<std::string_view, kUnitCodes.size()> names = [] {
    std::array<std::string_view, kUnitCodes.size()> n{};
    for (size_t i = 0; i < kUnitCodes.size(); ++i) n[i] = kUnitCodes[i].code;
    return n;
  }();
  return names;
}

std::span<const std::pair<std::string_view, double>> DefaultUsdRates() { return kDefaultRates; }

}  // namespace shortfall::operators
