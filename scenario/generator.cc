// Fused multiply-add would change the last bits of a*b+c, and with them the
// output, between machines (GCC contracts whenever the target has FMA, e.g.
// -march=native, even in ISO mode). Off for this file, before any include so
// inline functions from headers agree with ours and still inline.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "scenario/generator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "operators/reference_data.h"

namespace shortfall::scenario {
namespace {

// ---------------------------------------------------------------------------
// Randomness. Everything that reaches the output comes from these helpers, so
// the output is the same wherever IEEE-754 binary64 basic operations are
// (see the header). std::frexp, std::ldexp, std::nearbyint, std::round,
// std::floor and std::sqrt are exact or correctly rounded by the standard;
// std::exp and std::log are not, hence Exp and Log below.

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman and Vigna), one independent stream per (seed, stream).
class Rng {
 public:
  Rng() = default;
  Rng(uint64_t seed, uint64_t stream) {
    uint64_t sm = seed;
    sm = SplitMix64(&sm) ^ (stream * 0xD1B54A32D192ED03ULL);
    for (uint64_t& word : s_) word = SplitMix64(&sm);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1), 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [0, n). REQUIRES: n > 0. The modulo bias is below 2^-40
  // for every n used here.
  uint64_t Below(uint64_t n) { return Next() % n; }
  // Uniform duration in [lo, hi]. REQUIRES: lo <= hi.
  DurationMs Duration(DurationMs lo, DurationMs hi) {
    return lo + static_cast<DurationMs>(Below(static_cast<uint64_t>(hi - lo) + 1));
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> s_{};
};

constexpr double kLn2 = 0.693147180559945309417232121458;
constexpr double kSqrtHalf = 0.707106781186547524400844362105;

// Natural logarithm. REQUIRES: x > 0 and finite.
double Log(double x) {
  int e = 0;
  double m = std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1)
  if (m < kSqrtHalf) {
    m *= 2.0;
    --e;
  }
  // log(m) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), |s| <= 0.172.
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double p = 1.0 / 23.0;
  for (int k = 10; k >= 0; --k) p = p * s2 + 1.0 / static_cast<double>(2 * k + 1);
  return static_cast<double>(e) * kLn2 + 2.0 * s * p;
}

// e^x, 0 below -745 and +inf above 709.
double Exp(double x) {
  if (x < -745.0) return 0.0;
  if (x > 709.0) return std::numeric_limits<double>::infinity();
  const double k = std::nearbyint(x / kLn2);
  const double r = x - k * kLn2;  // |r| <= 0.35
  double p = 1.0;
  for (int i = 14; i >= 1; --i) p = 1.0 + p * r / static_cast<double>(i);
  return std::ldexp(p, static_cast<int>(k));
}

// Standard normal (Marsaglia's polar method; the second value is dropped).
double Normal(Rng& rng) {
  for (;;) {
    const double u = 2.0 * rng.Uniform() - 1.0;
    const double v = 2.0 * rng.Uniform() - 1.0;
    const double s = u * u + v * v;
    if (s >= 1.0 || s == 0.0) continue;
    return u * std::sqrt(-2.0 * Log(s) / s);
  }
}

// Gamma(shape, 1) (Marsaglia and Tsang). REQUIRES: shape >= 1.
double Gamma(Rng& rng, double shape) {
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    const double x = Normal(rng);
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    const double u = rng.Uniform();
    if (u < 1.0 - 0.0331 * (x * x) * (x * x)) return d * v;
    if (u > 0.0 && Log(u) < 0.5 * x * x + d * (1.0 - v + Log(v))) return d * v;
  }
}

// Poisson(lambda): Knuth's product of uniforms, in chunks so e^-lambda never
// underflows. O(lambda) draws, i.e. O(events produced).
uint64_t Poisson(Rng& rng, double lambda) {
  uint64_t n = 0;
  while (lambda > 0.0) {
    const double chunk = std::min(lambda, 200.0);
    lambda -= chunk;
    const double limit = Exp(-chunk);
    double p = rng.Uniform();
    while (p > limit) {
      ++n;
      p *= rng.Uniform();
    }
  }
  return n;
}

// Log-uniform in [lo, hi] from a uniform u in [0, 1). REQUIRES: 0 < lo <= hi.
double LogUniform(double u, double lo, double hi) { return lo * Exp(u * Log(hi / lo)); }

// ---------------------------------------------------------------------------
// Reference tables.

constexpr int kCategories = 6;  // the five groups, then unclassified
constexpr int kUnclassified = 5;
constexpr int kPpe = 1;
constexpr int kPharmaceuticals = 3;

// Corridors. Ports: CBP port codes from data/SOURCES.md for entries into the
// US. For entries into Mexico and Canada the port is the UN/LOCODE of the
// town on the far side of the bridge: MXNLD Nuevo Laredo, MXCJS Ciudad
// Juarez, CAWND Windsor (Ontario). Those three are plausible UN/LOCODEs (two
// letters of ISO country, three of location, matching the towns' IATA-style
// abbreviations) written from memory of the UNECE list; data/ holds no copy
// of the list to check them against.
// Rates are per day, about 1/35 of real commercial crossings: Laredo sees
// some 8,000-10,000 northbound trucks a day, Detroit's Ambassador Bridge
// about 5,000 both ways; Port Huron's rail tunnel and the small corridors
// only a few shipments a day at this scale.
constexpr std::array<ScenarioCorridor, 9> kCorridors = {{
    // origin, destination, port, name, per day, rail, UTC offset,
    // {semiconductors, ppe, batteries, pharmaceuticals, critical_minerals, unclassified}
    {"MX", "US", "2304", "Laredo", 240, 0.12, -6, {0.07, 0.04, 0.04, 0.03, 0.02, 0.80}},
    {"MX", "US", "2402", "El Paso", 80, 0.05, -7, {0.09, 0.05, 0.03, 0.02, 0.01, 0.80}},
    {"MX", "US", "2506", "Otay Mesa", 70, 0.0, -8, {0.08, 0.07, 0.03, 0.03, 0.01, 0.78}},
    {"CA", "US", "3801", "Detroit", 110, 0.05, -5, {0.03, 0.02, 0.06, 0.04, 0.04, 0.81}},
    {"CA", "US", "0901", "Buffalo-Niagara Falls", 50, 0.03, -5,
     {0.02, 0.03, 0.03, 0.07, 0.03, 0.82}},
    {"CA", "US", "3802", "Port Huron", 5, 0.7, -5, {0.01, 0.01, 0.04, 0.02, 0.12, 0.80}},
    {"US", "MX", "MXNLD", "Nuevo Laredo", 100, 0.15, -6, {0.08, 0.03, 0.04, 0.03, 0.02, 0.80}},
    {"US", "CA", "CAWND", "Windsor", 55, 0.0, -5, {0.04, 0.03, 0.05, 0.05, 0.02, 0.81}},
    {"US", "MX", "MXCJS", "Ciudad Juarez", 3, 0.0, -7, {0.10, 0.02, 0.02, 0.02, 0.01, 0.83}},
}};
constexpr int kCorridorCount = static_cast<int>(kCorridors.size());

// Weekly profile, Monday first, and diurnal profile by local hour: commercial
// lanes are busiest late morning to afternoon on weekdays, quiet at night
// and on Sundays. Normalised to mean 1 where used.
constexpr std::array<double, 7> kWeekly = {1.12, 1.15, 1.15, 1.15, 1.12, 0.62, 0.38};
constexpr std::array<double, 24> kDiurnal = {0.25, 0.20, 0.15, 0.15, 0.20, 0.35, 0.70, 1.10,
                                             1.45, 1.60, 1.70, 1.70, 1.65, 1.60, 1.60, 1.55,
                                             1.45, 1.30, 1.10, 0.90, 0.70, 0.55, 0.40, 0.30};
template <size_t N>
constexpr double Mean(const std::array<double, N>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(N);
}
constexpr double kWeeklyMean = Mean(kWeekly);
constexpr double kDiurnalMean = Mean(kDiurnal);

// Overdispersion: gamma factors with mean 1, CV 1/sqrt(shape).
constexpr double kDayNoiseShape = 25.0;   // CV 20%
constexpr double kHourNoiseShape = 12.0;  // CV 29%

// One kind of goods. Quantities are drawn log-uniform in the base unit; a
// fifth of the lines of goods with an alternative unit use that unit.
struct Item {
  std::string_view hs;           // HS 2022 subheading
  std::string_view hs2017;       // HS 2017 code when it differs, else empty
  std::string_view description;  // as a broker might declare it
  std::string_view unit;         // UN/ECE Rec 20 base unit
  std::string_view alt_unit;     // alternative unit, or empty
  double alt_factor;             // base units in one alt unit
  double qty_lo, qty_hi;         // base-unit quantity of a one-line shipment
  double kg_per_unit;            // net kg per base unit
  double usd_lo, usd_hi;         // USD per base unit
  double weight;                 // how often, within its category
};

// HS codes checked against data/harmonized-system.csv (HS 2022) and
// data/critical_goods_hs2022_map.csv. Each critical code maps to exactly one
// group there (codes in two groups, such as 300215 in ppe and under 3002 in
// pharmaceuticals, or 260500 in batteries and critical_minerals, are not
// used), and no unclassified code falls under any group's prefix.
constexpr Item kSemiconductors[] = {
    {"854231", "", "Integrated circuits: processors and controllers", "PCE", "NAR", 1, 200, 20000,
     0.012, 12, 350, 3},
    {"854232", "", "Integrated circuits: memories", "PCE", "H87", 1, 1000, 60000, 0.006, 2, 25, 3},
    {"854239", "", "Integrated circuits, other", "PCE", "C62", 1, 2000, 150000, 0.003, 0.3, 6, 2},
    {"854110", "", "Diodes", "PCE", "C62", 1, 10000, 800000, 0.0004, 0.01, 0.2, 1},
    {"854129", "", "Transistors", "PCE", "H87", 1, 5000, 300000, 0.001, 0.05, 2.5, 1},
};
constexpr Item kPpeItems[] = {
    {"401512", "401511", "Medical examination gloves, nitrile", "PR", "NPR", 1, 20000, 600000,
     0.011, 0.04, 0.12, 3},
    {"630790", "", "Face masks, textile", "PCE", "DZN", 12, 10000, 500000, 0.004, 0.04, 0.6, 3},
    {"621010", "", "Protective garments of nonwovens", "PCE", "DZN", 12, 500, 30000, 0.16, 0.8, 6,
     2},
    {"900490", "", "Protective goggles", "PCE", "DZN", 12, 500, 20000, 0.07, 0.9, 9, 1},
    {"382219", "382200", "Diagnostic reagent test kits", "PCE", "", 1, 500, 50000, 0.05, 2, 15, 2},
};
constexpr Item kBatteries[] = {
    {"850760", "", "Lithium-ion battery modules", "PCE", "C62", 1, 20, 800, 14, 120, 1100, 3},
    {"850650", "", "Lithium primary cells", "PCE", "C62", 1, 5000, 200000, 0.02, 0.4, 3, 1},
};
constexpr Item kPharmaceuticalItems[] = {
    {"300490", "", "Medicaments in measured doses", "KGM", "LBR", 0.45359237, 100, 9000, 1, 15,
     350, 4},
    {"294110", "", "Penicillins (active ingredient)", "KGM", "TNE", 1000, 50, 5000, 1, 25, 120, 2},
    {"300241", "", "Vaccines for human medicine", "LTR", "MLT", 0.001, 20, 1500, 1.6, 150, 4000,
     1},
};
constexpr Item kCriticalMinerals[] = {
    {"284690", "", "Rare-earth compounds (excluding cerium)", "KGM", "TNE", 1000, 300, 20000, 1, 8,
     250, 2},
    {"850511", "", "Permanent magnets of metal (NdFeB)", "KGM", "LBR", 0.45359237, 100, 12000, 1,
     25, 130, 3},
    {"811292", "", "Gallium and germanium, unwrought", "KGM", "GRM", 0.001, 5, 800, 1, 250, 1800,
     1},
};
constexpr Item kUnclassifiedItems[] = {
    {"870323", "", "Passenger cars, 1500-3000 cc", "PCE", "C62", 1, 1, 9, 1450, 17000, 48000, 2},
    {"870899", "", "Vehicle parts", "KGM", "LBR", 0.45359237, 500, 18000, 1, 3, 25, 5},
    {"940360", "", "Wooden furniture", "PCE", "", 1, 10, 300, 28, 40, 450, 2},
    {"080390", "", "Bananas, fresh", "KGM", "TNE", 1000, 8000, 21000, 1.05, 0.5, 1.1, 1},
    {"070200", "", "Tomatoes, fresh", "KGM", "LBR", 0.45359237, 6000, 20000, 1.08, 0.8, 2.2, 2},
    {"220300", "", "Beer made from malt", "LTR", "", 1, 8000, 17000, 1.25, 0.9, 2.6, 1},
    {"440711", "", "Pine lumber, sawn", "MTQ", "FTQ", 0.028316846592, 20, 40, 520, 180, 420, 1},
    {"847130", "", "Portable computers", "PCE", "", 1, 100, 4000, 2.6, 220, 1300, 1},
    {"851713", "851712", "Smartphones", "PCE", "", 1, 500, 20000, 0.45, 90, 700, 1.5},
    {"730890", "", "Steel structures and parts", "KGM", "TNE", 1000, 2000, 20000, 1, 1.2, 4, 2},
};

struct Category {
  const Item* items;
  size_t count;
  double total_weight;
};

template <size_t N>
constexpr Category MakeCategory(const Item (&items)[N]) {
  double total = 0;
  for (const Item& item : items) total += item.weight;
  return Category{items, N, total};
}

constexpr std::array<Category, kCategories> kCategoryItems = {
    MakeCategory(kSemiconductors), MakeCategory(kPpeItems),         MakeCategory(kBatteries),
    MakeCategory(kPharmaceuticalItems), MakeCategory(kCriticalMinerals), MakeCategory(kUnclassifiedItems),
};

constexpr double kHs2017Share = 0.25;     // of lines whose goods changed code in HS 2022
constexpr double kAltUnitShare = 0.2;     // of lines with an alternative unit
constexpr std::array<std::string_view, 7> kOtherCurrencies = {"EUR", "CNY", "JPY", "KRW",
                                                              "TWD", "CHF", "GBP"};

enum class Kind : uint8_t {
  kDepa,
  kFiled,
  kArri,
  kExamSelected,
  kHold,
  kHoldReleased,
  kReleased,
  kGtot,
};
constexpr int kKindCount = 8;

bool IsCustoms(Kind kind) { return kind != Kind::kDepa && kind != Kind::kArri && kind != Kind::kGtot; }

std::string_view ShipmentCode(Kind kind) {
  switch (kind) {
    case Kind::kDepa: return "DEPA";
    case Kind::kArri: return "ARRI";
    default: return "GTOT";
  }
}

v1::CustomsStatus CustomsStatusOf(Kind kind) {
  switch (kind) {
    case Kind::kFiled: return v1::CUSTOMS_STATUS_FILED;
    case Kind::kExamSelected: return v1::CUSTOMS_STATUS_EXAM_SELECTED;
    case Kind::kHold: return v1::CUSTOMS_STATUS_HOLD;
    case Kind::kHoldReleased: return v1::CUSTOMS_STATUS_HOLD_RELEASED;
    default: return v1::CUSTOMS_STATUS_RELEASED;
  }
}

std::string_view CustomsStatusWord(Kind kind) {
  switch (kind) {
    case Kind::kFiled: return "FILED";
    case Kind::kExamSelected: return "EXAM";
    case Kind::kHold: return "HOLD";
    case Kind::kHoldReleased: return "HOLDREL";
    default: return "RELEASED";
  }
}

// The authority's own status code. Illustrative but modelled on the real
// vocabularies: CBP ACE disposition codes (CATAIR Appendix N: 02 entry
// advisory, 1A intensive exam required, 1H/1I hold placed/removed at the port
// of arrival, 1B released after exam, 1C entered and released); CBSA Release
// Notification System messages; Mexican customs (ANAM) pedimento states
// (VALIDADO, the red light of the "semaforo fiscal" RECONOCIMIENTO, the
// green light DESADUANAMIENTO LIBRE).
std::string_view AuthorityCode(std::string_view destination, Kind kind, bool examined) {
  if (destination == "US") {
    switch (kind) {
      case Kind::kFiled: return "02";
      case Kind::kExamSelected: return "1A";
      case Kind::kHold: return "1H";
      case Kind::kHoldReleased: return "1I";
      default: return examined ? "1B" : "1C";
    }
  }
  if (destination == "CA") {
    switch (kind) {
      case Kind::kFiled: return "DECLARATION_ACCEPTED_AWAITING_ARRIVAL";
      case Kind::kExamSelected: return "GOODS_REFERRED";
      case Kind::kHold: return "GOODS_DETAINED";
      case Kind::kHoldReleased: return "DETENTION_REMOVED";
      default: return "GOODS_RELEASED";
    }
  }
  switch (kind) {
    case Kind::kFiled: return "VALIDADO";
    case Kind::kExamSelected: return "RECONOCIMIENTO_ADUANERO";
    case Kind::kHold: return "RETENIDO";
    case Kind::kHoldReleased: return "LIBERADO";
    default: return examined ? "RECONOCIMIENTO_CONCLUIDO" : "DESADUANAMIENTO_LIBRE";
  }
}

std::string_view AuthorityOf(std::string_view destination) {
  if (destination == "US") return "CBP";
  if (destination == "CA") return "CBSA";
  return "ANAM";
}

// DCSA filing systems: ACE for the US, ACI for Canada. The DCSA list has no
// Mexican import system (pedimentos go through SAT/ANAM's SAAI), so it stays
// empty rather than carry a code outside the list.
std::string_view FilingSystemOf(std::string_view destination) {
  if (destination == "US") return "ACE";
  if (destination == "CA") return "ACI";
  return "";
}

std::string_view LocalCurrencyOf(const ScenarioCorridor& c) {
  if (c.origin_country == "MX" || c.destination_country == "MX") return "MXN";
  return "CAD";
}

double UsdRate(std::string_view currency) {
  for (const auto& [code, rate] : operators::DefaultUsdRates()) {
    if (code == currency) return rate;
  }
  SHORTFALL_CHECK(false && "currency missing from DefaultUsdRates");
  return 1.0;
}

bool IsCountUnit(std::string_view unit) {
  return unit == "PCE" || unit == "NAR" || unit == "C62" || unit == "H87" || unit == "DZN" ||
         unit == "PR" || unit == "NPR";
}

// Rounds to `scale` steps per unit (10 = one decimal); dividing last gives
// the double nearest the decimal, so JSON shows 1574.1, not 1574.1000000000001.
double RoundTo(double value, double scale) { return std::round(value * scale) / scale; }

uint64_t Fnv1a64(std::string_view bytes) {
  uint64_t h = 14695981039346656037ULL;
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

void AppendDigits(std::string* out, uint64_t value, int width) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && n < 20);
  for (int i = n; i < width; ++i) out->push_back('0');
  while (n > 0) out->push_back(buf[--n]);
}

// Luhn check digit over the digits of `digits` (other characters skipped).
char LuhnDigit(std::string_view digits) {
  int sum = 0;
  bool twice = true;  // the rightmost payload digit is doubled
  for (size_t i = digits.size(); i-- > 0;) {
    if (digits[i] < '0' || digits[i] > '9') continue;
    int d = digits[i] - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return static_cast<char>('0' + (10 - sum % 10) % 10);
}

// ISO 6346 container check digit of the first 10 characters.
char Iso6346CheckDigit(std::string_view code) {
  int64_t sum = 0;
  for (size_t i = 0; i < 10 && i < code.size(); ++i) {
    const char c = code[i];
    int value;
    if (c >= '0' && c <= '9') {
      value = c - '0';
    } else {
      value = 10;  // A = 10, skipping multiples of 11
      for (char l = 'A'; l < c; ++l) {
        ++value;
        if (value % 11 == 0) ++value;
      }
    }
    sum += static_cast<int64_t>(value) << i;
  }
  return static_cast<char>('0' + sum % 11 % 10);
}

void Assign(std::string_view value, std::string* out) { out->assign(value.data(), value.size()); }

void SetTimestamp(TimestampMs ms, google::protobuf::Timestamp* ts) {
  const TimestampMs seconds = AlignDown(ms, kMsPerSecond) / kMsPerSecond;
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>((ms - seconds * kMsPerSecond) * 1000000));
}

// ---------------------------------------------------------------------------
// Shipments and their events.

struct Line {
  const Item* item = nullptr;
  bool hs2017 = false;
  std::string_view unit;
  double quantity = 0;
  double gross_weight_kg = 0;
  double declared_value = 0;
};

struct Shipment {
  int corridor = 0;
  int category = 0;
  bool rail = false;
  bool examined = false;
  std::string_view currency;
  std::string shipment_id;
  std::string declaration_id;
  std::string equipment;
  int32_t shipment_partition = 0;
  int32_t customs_partition = 0;
  std::array<Line, 3> lines;
  int line_count = 0;
  uint32_t pending = 0;  // scheduled events not yet emitted
  // Bit k: event kind k exists only because a hold wave selected the
  // shipment; its delivery is drawn from the wave stream.
  uint8_t wave_kinds = 0;
};

// Event times of one shipment; kMinTimestamp for events it does not have.
using Timeline = std::array<TimestampMs, kKindCount>;

enum class Delivery : uint8_t { kNormal, kOutOfOrder, kLate };

struct Pending {
  TimestampMs publish;
  uint64_t seq;  // tie-break: generation order, so the order is total
  TimestampMs event_time;
  uint32_t slot;
  Kind kind;
  Delivery delivery;
};

struct PublishesLater {
  bool operator()(const Pending& a, const Pending& b) const {
    return a.publish != b.publish ? a.publish > b.publish : a.seq > b.seq;
  }
};

// Transit and customs timings (see the header). Trucks must file their ACE
// e-manifest at least an hour before arrival, trains two.
constexpr DurationMs kTruckTransitMin = 90 * kMsPerMinute;
constexpr DurationMs kTruckTransitMax = 9 * kMsPerHour;
constexpr DurationMs kRailTransitMin = 10 * kMsPerHour;
constexpr DurationMs kRailTransitMax = 30 * kMsPerHour;
// No event precedes its shipment's ARRI by more than this.
constexpr DurationMs kMaxLead = kRailTransitMax;
constexpr double kInspectionRate = 0.035;  // doubled for ppe and pharmaceuticals
constexpr DurationMs kMaxPublishDelay = 10 * kMsPerMinute;
constexpr DurationMs kFutureSkew = 3 * kMsPerDay;
constexpr DurationMs kLateMargin = kMsPerHour;

size_t StreamIndex(int corridor, int category) {
  return static_cast<size_t>(corridor * kCategories + category);
}

}  // namespace

struct Generator::State {
  std::vector<Rng> noise;     // per corridor: day and hour factors
  std::vector<Rng> traffic;   // per (corridor, category): counts, contents, event times
  std::vector<Rng> delivery;  // per (corridor, category): publish delays, late, out of order
  std::vector<Rng> wave;      // per (corridor, category): a hold wave's extra inspections
  Rng malformed;              // malformed records and how many

  std::vector<int64_t> day_index;  // per corridor: local day of day_factor
  std::vector<double> day_factor;
  std::vector<uint64_t> shipment_counter;  // per (corridor, category)
  uint64_t malformed_counter = 0;
  // Disruptions per (corridor, category).
  std::vector<std::vector<const Disruption*>> disruptions;

  TimestampMs next_hour = 0;  // ARRI hours before this are generated
  uint64_t seq = 0;
  std::priority_queue<Pending, std::vector<Pending>, PublishesLater> pending;
  std::deque<Shipment> shipments;  // slots; deque keeps references stable
  std::vector<uint32_t> free_slots;

  TimestampMs stream_time = kMinTimestamp;  // publish time of the latest record
  std::vector<TimestampMs> partition_max;   // per (topic, partition): max emitted event time
  std::vector<std::vector<Pending>> held;   // per (topic, partition): late records held back
  std::deque<Pending> ready;                // late records due for emission
  uint64_t owed_malformed = 0;

  Shipment malformed_shipment;
  std::string scratch;
};

namespace {

bool InForce(const Disruption& d, TimestampMs t) { return t >= d.start && t < d.end; }

// Disruption rate factor for (corridor, category) at `t`.
double FactorAt(const std::vector<const Disruption*>& list, TimestampMs t) {
  double factor = 1.0;
  for (const Disruption* d : list) {
    if (!InForce(*d, t)) continue;
    if (d->shape == DisruptionShape::kRamp) {
      const double done =
          static_cast<double>(t - d->start) / static_cast<double>(d->end - d->start);
      factor *= 1.0 + (d->rate_factor - 1.0) * done;
    } else {
      factor *= d->rate_factor;
    }
  }
  return factor;
}

// The product of the disruptions' `factor` (hold_factor, value_factor,
// dwell_factor) over those in force at `t`.
double FactorAt(const std::vector<const Disruption*>& list, TimestampMs t, double Disruption::*factor) {
  double product = 1.0;
  for (const Disruption* d : list) {
    if (InForce(*d, t)) product *= d->*factor;
  }
  return product;
}
bool ReleaseWithheldAt(const std::vector<const Disruption*>& list, TimestampMs t) {
  for (const Disruption* d : list) {
    if (InForce(*d, t) && d->release_withheld) return true;
  }
  return false;
}

// A bound on the rate factor over [from, to), at least 1: the rate to draw at
// before thinning (a ramp's rate_factor bounds it, reached or not).
double MaxBoost(const std::vector<const Disruption*>& list, TimestampMs from, TimestampMs to) {
  double boost = 1.0;
  for (const Disruption* d : list) {
    if (d->start < to && d->end > from && d->rate_factor > 1.0) boost *= d->rate_factor;
  }
  return boost;
}

const Item& PickItem(int category, Rng& rng) {
  const Category& cat = kCategoryItems[static_cast<size_t>(category)];
  double u = rng.Uniform() * cat.total_weight;
  for (size_t i = 0; i < cat.count; ++i) {
    u -= cat.items[i].weight;
    if (u < 0) return cat.items[i];
  }
  return cat.items[cat.count - 1];
}

int PickWeighted(Rng& rng, const double* weights, int count) {
  double total = 0;
  for (int i = 0; i < count; ++i) total += weights[i];
  double u = rng.Uniform() * total;
  for (int i = 0; i < count; ++i) {
    u -= weights[i];
    if (u < 0) return i;
  }
  return count - 1;
}

void MakeLine(const Item& item, int line_count, std::string_view currency, double value_factor,
              Rng& rng, Line* line) {
  // Fixed number of draws per line.
  const double u_quantity = rng.Uniform();
  const double u_alt = rng.Uniform();
  const double u_hs2017 = rng.Uniform();
  const double price = rng.Uniform(item.usd_lo, item.usd_hi);
  const double packaging = rng.Uniform(1.02, 1.12);

  const double hi = std::max(item.qty_lo, item.qty_hi / static_cast<double>(line_count));
  double base = LogUniform(u_quantity, item.qty_lo, hi);
  line->item = &item;
  line->hs2017 = !item.hs2017.empty() && u_hs2017 < kHs2017Share;
  const bool alt = !item.alt_unit.empty() && u_alt < kAltUnitShare;
  line->unit = alt ? item.alt_unit : item.unit;
  double quantity = alt ? base / item.alt_factor : base;
  if (IsCountUnit(line->unit)) {
    quantity = std::max(1.0, std::round(quantity));
  } else if (line->unit == "TNE" || line->unit == "MTQ") {
    quantity = std::max(0.001, RoundTo(quantity, 1000));
  } else {
    quantity = std::max(0.1, RoundTo(quantity, 10));
  }
  line->quantity = quantity;
  base = alt ? quantity * item.alt_factor : quantity;
  line->gross_weight_kg = std::max(0.1, RoundTo(base * item.kg_per_unit * packaging, 10));
  double value = base * price / UsdRate(currency);
  if (value_factor != 1.0) value *= value_factor;  // a price spike (Disruption::value_factor)
  const bool whole_units = currency == "JPY" || currency == "KRW";  // no minor unit in use
  line->declared_value = whole_units ? std::max(1.0, std::round(value))
                                     : std::max(0.01, RoundTo(value, 100));
}

// What the disruptions in force at a shipment's arrival do to it besides
// its rate. The defaults change nothing and draw nothing.
struct Tweaks {
  double value_factor = 1.0;               // lines of the shipment's own category
  double unclassified_value_factor = 1.0;  // unclassified lines riding along
  double hold_factor = 1.0;                // on the inspection probability
  double dwell_factor = 1.0;               // on the time from arrival to release (StretchDwell)
  bool release_withheld = false;           // RELEASED and GTOT not written (Disruption::release_withheld)
  Rng* wave = nullptr;                     // draws of the extra inspections; set when hold_factor > 1
};

// Fills *s and *t for a shipment of `category` on `corridor` arriving at
// `arri`. `id_space` and `number` make the ids (unique per pair).
void BuildShipment(int corridor, int category, int id_space, uint64_t number, TimestampMs arri,
                   int32_t partitions, const Tweaks& tweaks, Rng& rng, Shipment* s, Timeline* t) {
  const ScenarioCorridor& c = kCorridors[static_cast<size_t>(corridor)];
  s->corridor = corridor;
  s->category = category;
  s->rail = rng.Uniform() < c.rail_share;

  // Ids. shipment "SF<space><category><8 digits>", declarations in the
  // declaring country's format (illustrative, with check digits):
  //   US CBP entry number   "<filer code>-<7 digits>-<check>"
  //   CA CBSA transaction   14 digits: account (5), sequence (8), check
  //   MX pedimento          15 digits: year (2), aduana (2), patente (4), number (7)
  s->shipment_id.assign("SF");
  AppendDigits(&s->shipment_id, static_cast<uint64_t>(id_space), 1);
  AppendDigits(&s->shipment_id, static_cast<uint64_t>(category), 1);
  AppendDigits(&s->shipment_id, number % 100000000, 8);
  std::string& d = s->declaration_id;
  d.clear();
  if (c.destination_country == "US") {
    d.push_back(static_cast<char>('A' + id_space));
    d.push_back(static_cast<char>('A' + category));
    d.push_back(static_cast<char>('0' + number / 10000000 % 10));
    d.push_back('-');
    AppendDigits(&d, number % 10000000, 7);
    d.push_back('-');
    d.push_back(LuhnDigit(d));
  } else if (c.destination_country == "CA") {
    AppendDigits(&d, 20000 + static_cast<uint64_t>(id_space) * 100 +
                         static_cast<uint64_t>(category) * 10 + number / 100000000 % 10,
                 5);
    AppendDigits(&d, number % 100000000, 8);
    d.push_back(LuhnDigit(d));
  } else {
    const int64_t days = AlignDown(arri, kMsPerDay) / kMsPerDay;
    const int64_t year = 1970 + (days * 400) / 146097;  // within a day of the truth; ids only
    AppendDigits(&d, static_cast<uint64_t>(year % 100), 2);
    AppendDigits(&d, c.port_of_entry == "MXCJS" ? 7 : 24, 2);  // aduanas Cd. Juarez, Nuevo Laredo
    AppendDigits(&d,
                 3000 + static_cast<uint64_t>(id_space * kCategories + category) * 10 +
                     number / 1000000 % 10,
                 4);
    AppendDigits(&d, static_cast<uint64_t>(year % 10) * 1000000 + number % 1000000, 7);
  }
  s->equipment.assign(s->rail ? "SFRU" : "SFTU");
  AppendDigits(&s->equipment, rng.Below(1000000), 6);
  s->equipment.push_back(Iso6346CheckDigit(s->equipment));
  s->shipment_partition = PartitionForKey(s->shipment_id, partitions);
  s->customs_partition = PartitionForKey(s->declaration_id, partitions);

  // Invoice currency: mostly USD, some local, a few others.
  const double u_currency = rng.Uniform();
  const uint64_t other = rng.Below(kOtherCurrencies.size());
  const double local_share = c.origin_country == "CA" || c.destination_country == "CA" ? 0.10 : 0.09;
  if (u_currency < local_share) {
    s->currency = LocalCurrencyOf(c);
  } else if (u_currency < local_share + 0.03) {
    s->currency = kOtherCurrencies[other];
  } else {
    s->currency = "USD";
  }

  // Goods.
  const double u_lines = rng.Uniform();
  s->line_count = u_lines < 0.55 ? 1 : (u_lines < 0.85 ? 2 : 3);
  for (int i = 0; i < s->line_count; ++i) {
    const bool same = rng.Uniform() < 0.65;
    const int line_category = i == 0 || same ? category : kUnclassified;
    MakeLine(PickItem(line_category, rng), s->line_count, s->currency,
             line_category == category ? tweaks.value_factor : tweaks.unclassified_value_factor,
             rng, &s->lines[static_cast<size_t>(i)]);
  }

  // Timeline.
  t->fill(kMinTimestamp);
  const DurationMs transit = s->rail ? rng.Duration(kRailTransitMin, kRailTransitMax)
                                     : rng.Duration(kTruckTransitMin, kTruckTransitMax);
  const DurationMs filing_lead = s->rail ? 2 * kMsPerHour : kMsPerHour;
  auto at = [t](Kind kind) -> TimestampMs& { return (*t)[static_cast<size_t>(kind)]; };
  at(Kind::kArri) = arri;
  at(Kind::kDepa) = arri - transit;
  at(Kind::kFiled) = at(Kind::kDepa) + rng.Duration(kMsPerSecond, transit - filing_lead);

  const double inspection_rate =
      kInspectionRate * (category == kPpe || category == kPharmaceuticals ? 2.0 : 1.0);
  const double u_inspect = rng.Uniform();
  const double u_path = rng.Uniform();
  const bool inspected = u_inspect < inspection_rate;
  // An inspected shipment's path (exam and/or hold by `path`), then its
  // release and gate-out: sets `examined` and the times, drawing from `r`
  // in a fixed order.
  const auto inspect = [&](Rng& r, double path) {
    const bool exam = path < 0.55 || path >= 0.80;
    const bool hold = path >= 0.55;
    s->examined = exam;
    TimestampMs released = 0;
    if (exam) {
      at(Kind::kExamSelected) = arri + r.Duration(2 * kMsPerMinute, 20 * kMsPerMinute);
      released = at(Kind::kExamSelected) + r.Duration(kMsPerHour, 6 * kMsPerHour);
    }
    if (hold) {
      const TimestampMs from = exam ? at(Kind::kExamSelected) : arri;
      at(Kind::kHold) = from + r.Duration(5 * kMsPerMinute, 45 * kMsPerMinute);
      at(Kind::kHoldReleased) = at(Kind::kHold) + r.Duration(2 * kMsPerHour, 30 * kMsPerHour);
      released = std::max(released, at(Kind::kHoldReleased) +
                                        r.Duration(5 * kMsPerMinute, 45 * kMsPerMinute));
    }
    at(Kind::kReleased) = released;
    at(Kind::kGtot) = released + r.Duration(5 * kMsPerMinute, 40 * kMsPerMinute);
  };
  s->wave_kinds = 0;
  if (inspected) {
    inspect(rng, u_path);
    return;
  }
  s->examined = false;
  // Most pre-filed crossings clear primary inspection in minutes.
  const double minutes = std::min(180.0, 3.0 - 22.0 * Log(1.0 - rng.Uniform()));
  const TimestampMs released =
      arri + static_cast<DurationMs>(minutes * static_cast<double>(kMsPerMinute));
  at(Kind::kReleased) = released;
  at(Kind::kGtot) = released + rng.Duration(5 * kMsPerMinute, 40 * kMsPerMinute);

  // A hold wave: of the shipments the usual rate let through, select as many
  // more as make the rate hold_factor x inspection_rate (at most all). Drawn
  // after, and apart from, the shipment's own draws, so `rng` moves exactly
  // as without the wave.
  if (tweaks.hold_factor > 1.0) {
    SHORTFALL_CHECK(tweaks.wave != nullptr);
    const double raised = std::min(1.0, inspection_rate * tweaks.hold_factor);
    const double extra = (raised - inspection_rate) / (1.0 - inspection_rate);
    if (tweaks.wave->Uniform() < extra) {
      inspect(*tweaks.wave, tweaks.wave->Uniform());
      for (Kind kind : {Kind::kExamSelected, Kind::kHold, Kind::kHoldReleased}) {
        if (at(kind) == kMinTimestamp) continue;
        s->wave_kinds |= static_cast<uint8_t>(1u << static_cast<int>(kind));
      }
    }
  }
}

// Disruption::dwell_factor: the release comes `factor` times as long after
// the arrival, and the gate-out as long after the release as before; the
// inspection events keep their times. Draws nothing.
void StretchDwell(double factor, Timeline* t) {
  auto at = [t](Kind kind) -> TimestampMs& { return (*t)[static_cast<size_t>(kind)]; };
  const TimestampMs arri = at(Kind::kArri);
  const TimestampMs released = at(Kind::kReleased);
  const DurationMs after_release = at(Kind::kGtot) - released;
  TimestampMs stretched = arri + static_cast<DurationMs>(static_cast<double>(released - arri) * factor);
  // Never before an inspection event it followed (a factor below 1).
  for (Kind kind : {Kind::kExamSelected, Kind::kHoldReleased}) {
    if (at(kind) != kMinTimestamp) stretched = std::max(stretched, at(kind));
  }
  at(Kind::kReleased) = stretched;
  at(Kind::kGtot) = stretched + after_release;
}

void FillGoods(const Shipment& s, google::protobuf::RepeatedPtrField<v1::GoodsLine>* goods) {
  for (int i = 0; i < s.line_count; ++i) {
    const Line& line = s.lines[static_cast<size_t>(i)];
    v1::GoodsLine* g = goods->Add();
    Assign(line.hs2017 ? line.item->hs2017 : line.item->hs, g->mutable_hs_code());
    g->set_hs_version(line.hs2017 ? v1::HS_VERSION_2017 : v1::HS_VERSION_2022);
    g->set_quantity(line.quantity);
    Assign(line.unit, g->mutable_unit());
    g->set_gross_weight_kg(line.gross_weight_kg);
    g->set_declared_value(line.declared_value);
    Assign(s.currency, g->mutable_currency());
    Assign(line.item->description, g->mutable_description());
  }
}

void FillCorridor(const ScenarioCorridor& c, v1::Corridor* out) {
  Assign(c.origin_country, out->mutable_origin_country());
  Assign(c.destination_country, out->mutable_destination_country());
  Assign(c.port_of_entry, out->mutable_port_of_entry());
}

void FillShipmentEvent(const Shipment& s, Kind kind, TimestampMs event_time, TimestampMs publish,
                       v1::ShipmentEvent* e) {
  const ScenarioCorridor& c = kCorridors[static_cast<size_t>(s.corridor)];
  const std::string_view code = ShipmentCode(kind);
  std::string* id = e->mutable_event_id();
  id->assign(s.shipment_id);
  id->push_back('-');
  id->append(code);
  e->set_shipment_id(s.shipment_id);
  e->set_event_class(kind == Kind::kGtot ? v1::EVENT_CLASS_EQUIPMENT : v1::EVENT_CLASS_TRANSPORT);
  Assign(code, e->mutable_event_type_code());
  e->set_event_classifier(v1::EVENT_CLASSIFIER_ACTUAL);
  SetTimestamp(event_time, e->mutable_event_time());
  SetTimestamp(publish, e->mutable_publish_time());
  FillCorridor(c, e->mutable_corridor());
  e->set_facility_type(kind == Kind::kDepa ? (s.rail ? "RAMP" : "CLOC") : "BOCR");
  e->set_mode_of_transport(s.rail ? "RAIL" : "TRUCK");
  if (kind == Kind::kGtot) e->set_equipment_reference(s.equipment);
  if (kind == Kind::kArri) FillGoods(s, e->mutable_goods());
}

void FillCustomsEvent(const Shipment& s, Kind kind, TimestampMs event_time, TimestampMs publish,
                      v1::CustomsEvent* e) {
  const ScenarioCorridor& c = kCorridors[static_cast<size_t>(s.corridor)];
  std::string* id = e->mutable_event_id();
  id->assign(s.declaration_id);
  id->push_back('-');
  id->append(CustomsStatusWord(kind));
  e->set_declaration_id(s.declaration_id);
  e->set_shipment_id(s.shipment_id);
  e->set_status(CustomsStatusOf(kind));
  Assign(AuthorityCode(c.destination_country, kind, s.examined), e->mutable_authority_status_code());
  Assign(AuthorityOf(c.destination_country), e->mutable_authority());
  Assign(FilingSystemOf(c.destination_country), e->mutable_filing_system());
  SetTimestamp(event_time, e->mutable_event_time());
  SetTimestamp(publish, e->mutable_publish_time());
  FillCorridor(c, e->mutable_corridor());
  FillGoods(s, e->mutable_goods());
}

}  // namespace

int32_t PartitionForKey(std::string_view key, int32_t partitions) {
  return static_cast<int32_t>(Fnv1a64(key) % static_cast<uint64_t>(partitions));
}

std::span<const ScenarioCorridor> ScenarioCorridors() { return kCorridors; }

Status ValidateOptions(const GeneratorOptions& options) {
  if (options.partitions < 1) return InvalidArgumentError("partitions: must be >= 1");
  if (!(options.malformed_rate >= 0) || !(options.malformed_rate <= 100)) {
    return InvalidArgumentError("malformed_rate: must be in [0, 100]");
  }
  if (!(options.late_rate >= 0) || !(options.late_rate <= 1)) {
    return InvalidArgumentError("late_rate: must be in [0, 1]");
  }
  if (!(options.out_of_order_rate >= 0) || !(options.out_of_order_rate <= 1)) {
    return InvalidArgumentError("out_of_order_rate: must be in [0, 1]");
  }
  if (options.allowed_lateness < 0 || options.allowed_lateness > 365 * kMsPerDay) {
    return InvalidArgumentError("allowed_lateness: must be in [0, 365d]");
  }
  // Generated times stay well inside the validators' 2000..2100 range.
  if (options.start < 946684800000 + 10 * kMsPerDay || options.start > 3786912000000) {
    return InvalidArgumentError("start: must be between 2000-01-11 and 2090-01-01");
  }
  if (options.shipments_topic.empty() || options.customs_topic.empty() ||
      options.shipments_topic == options.customs_topic) {
    return InvalidArgumentError("shipments_topic, customs_topic: must be two different names");
  }
  for (size_t i = 0; i < options.disruptions.size(); ++i) {
    const Disruption& d = options.disruptions[i];
    const std::string field = "disruptions[" + std::to_string(i) + "].";
    if (d.group != kAllGoods && std::find(kScenarioGroups.begin(), kScenarioGroups.end(),
                                          d.group) == kScenarioGroups.end()) {
      return InvalidArgumentError(field + "group: '" + d.group +
                                  "' is not one of semiconductors, ppe, batteries, "
                                  "pharmaceuticals, critical_minerals, * (every good)");
    }
    if (!d.port_of_entry.empty() &&
        std::none_of(kCorridors.begin(), kCorridors.end(), [&](const ScenarioCorridor& c) {
          return c.port_of_entry == d.port_of_entry;
        })) {
      std::string ports;
      for (const ScenarioCorridor& c : kCorridors) {
        if (ports.find(c.port_of_entry) != std::string::npos) continue;
        if (!ports.empty()) ports += ", ";
        ports += c.port_of_entry;
      }
      return InvalidArgumentError(field + "port_of_entry: '" + d.port_of_entry +
                                  "' is not a scenario port (" + ports + ")");
    }
    if (!d.origin_country.empty() &&
        std::none_of(kCorridors.begin(), kCorridors.end(), [&](const ScenarioCorridor& c) {
          return c.origin_country == d.origin_country;
        })) {
      return InvalidArgumentError(field + "origin_country: '" + d.origin_country +
                                  "' is not the origin of a scenario corridor (MX, CA, US)");
    }
    if (d.start >= d.end) return InvalidArgumentError(field + "start: must be before end");
    if (!(d.rate_factor >= 0) || !(d.rate_factor <= 1000)) {
      return InvalidArgumentError(field + "rate_factor: must be in [0, 1000]");
    }
    if (d.shape != DisruptionShape::kStep && d.shape != DisruptionShape::kRamp) {
      return InvalidArgumentError(field + "shape: not a DisruptionShape");
    }
    if (!(d.hold_factor >= 1) || !(d.hold_factor <= 1000)) {
      return InvalidArgumentError(field + "hold_factor: must be in [1, 1000]");
    }
    if (!(d.value_factor > 0) || !(d.value_factor <= 1000)) {
      return InvalidArgumentError(field + "value_factor: must be in (0, 1000]");
    }
    if (!(d.dwell_factor > 0) || !(d.dwell_factor <= 100)) {
      return InvalidArgumentError(field + "dwell_factor: must be in (0, 100]");
    }
  }
  if (!(options.rate_scale > 0) || !(options.rate_scale <= 100)) {
    return InvalidArgumentError("rate_scale: must be in (0, 100]");
  }
  for (size_t i = 0; i < options.delivery_bursts.size(); ++i) {
    const DeliveryBurst& b = options.delivery_bursts[i];
    const std::string field = "delivery_bursts[" + std::to_string(i) + "].";
    if (b.start >= b.end) return InvalidArgumentError(field + "start: must be before end");
    if (b.late_rate.has_value() && (!(*b.late_rate >= 0) || !(*b.late_rate <= 1))) {
      return InvalidArgumentError(field + "late_rate: must be in [0, 1]");
    }
    if (b.out_of_order_rate.has_value() &&
        (!(*b.out_of_order_rate >= 0) || !(*b.out_of_order_rate <= 1))) {
      return InvalidArgumentError(field + "out_of_order_rate: must be in [0, 1]");
    }
  }
  if (options.idle_partition.has_value()) {
    if (options.partitions < 2) {
      return InvalidArgumentError("idle_partition: needs partitions >= 2 (somewhere to move records to)");
    }
    if (options.idle_partition->partition < 0 ||
        options.idle_partition->partition >= options.partitions) {
      return InvalidArgumentError("idle_partition.partition: must be in [0, partitions)");
    }
  }
  return OkStatus();
}

Generator::Generator(GeneratorOptions options)
    : options_(std::move(options)), state_(std::make_unique<State>()) {
  const Status valid = ValidateOptions(options_);
  if (!valid.ok()) internal::CheckFailed(__FILE__, __LINE__, "ValidateOptions", valid.ToString());
  State& st = *state_;
  const uint64_t seed = options_.seed;
  for (int c = 0; c < kCorridorCount; ++c) {
    st.noise.emplace_back(seed, 1000 + static_cast<uint64_t>(c));
    for (int k = 0; k < kCategories; ++k) {
      st.traffic.emplace_back(seed, 2000 + StreamIndex(c, k));
      st.delivery.emplace_back(seed, 3000 + StreamIndex(c, k));
      st.wave.emplace_back(seed, 5000 + StreamIndex(c, k));
      std::vector<const Disruption*> list;
      for (const Disruption& d : options_.disruptions) {
        const bool group = d.group == kAllGoods ||
                           (k < kUnclassified && d.group == kScenarioGroups[static_cast<size_t>(k)]);
        const ScenarioCorridor& corridor = kCorridors[static_cast<size_t>(c)];
        if (group && (d.port_of_entry.empty() || d.port_of_entry == corridor.port_of_entry) &&
            (d.origin_country.empty() || d.origin_country == corridor.origin_country)) {
          list.push_back(&d);
        }
      }
      st.disruptions.push_back(std::move(list));
    }
  }
  st.malformed = Rng(seed, 4000);
  st.day_index.assign(kCorridorCount, std::numeric_limits<int64_t>::min());
  st.day_factor.assign(kCorridorCount, 1.0);
  st.shipment_counter.assign(static_cast<size_t>(kCorridorCount * kCategories), 0);
  st.next_hour = options_.start;
  const size_t topic_partitions = 2 * static_cast<size_t>(options_.partitions);
  st.partition_max.assign(topic_partitions, kMinTimestamp);
  st.held.resize(topic_partitions);
  for (std::string_view reason : kMalformedReasons) {
    stats_.malformed_by_reason.emplace(std::string(reason), 0);
  }
}

Generator::~Generator() = default;

int32_t Generator::Route(bool customs, int32_t partition, TimestampMs publish) const {
  const std::optional<IdlePartition>& idle = options_.idle_partition;
  if (customs || !idle.has_value() || partition != idle->partition || publish < idle->from) {
    return partition;
  }
  return (partition + 1) % options_.partitions;
}

bool Generator::Next(v1::EventRecord* out) {
  if (stats_.records >= options_.events) return false;
  State& st = *state_;
  const int32_t partitions = options_.partitions;
  const DurationMs lateness = options_.allowed_lateness;

  auto emit_valid = [&](const Pending& p, bool late) {
    Shipment& s = st.shipments[p.slot];
    const bool customs = IsCustoms(p.kind);
    const TimestampMs publish = late ? std::max(st.stream_time, p.publish) : p.publish;
    const int32_t partition =
        Route(customs, customs ? s.customs_partition : s.shipment_partition, publish);
    out->Clear();
    out->set_topic(customs ? options_.customs_topic : options_.shipments_topic);
    out->set_partition(partition);
    out->set_key(customs ? s.declaration_id : s.shipment_id);
    SetTimestamp(publish, out->mutable_record_time());
    if (customs) {
      FillCustomsEvent(s, p.kind, p.event_time, publish, out->mutable_customs());
      ++stats_.customs_events;
    } else {
      FillShipmentEvent(s, p.kind, p.event_time, publish, out->mutable_shipment());
      ++stats_.shipment_events;
      if (p.kind == Kind::kArri) ++stats_.shipments;
    }
    ++stats_.records;
    if (late) ++stats_.late;
    if (p.delivery == Delivery::kOutOfOrder) ++stats_.out_of_order;
    st.stream_time = std::max(st.stream_time, publish);

    const size_t tp = static_cast<size_t>((customs ? partitions : 0) + partition);
    if (p.event_time > st.partition_max[tp]) {
      st.partition_max[tp] = p.event_time;
      std::vector<Pending>& held = st.held[tp];
      if (!held.empty()) {
        auto due = [&](const Pending& h) {
          return st.partition_max[tp] > h.event_time + lateness + kLateMargin;
        };
        for (const Pending& h : held) {
          if (due(h)) st.ready.push_back(h);
        }
        held.erase(std::remove_if(held.begin(), held.end(), due), held.end());
      }
    }
    if (--s.pending == 0) st.free_slots.push_back(p.slot);

    // Malformed records owed after this one: one draw per valid record.
    const double whole = std::floor(options_.malformed_rate);
    st.owed_malformed += static_cast<uint64_t>(whole) +
                         (st.malformed.Uniform() < options_.malformed_rate - whole ? 1 : 0);
  };

  for (;;) {
    if (!st.ready.empty()) {
      const Pending p = st.ready.front();
      st.ready.pop_front();
      emit_valid(p, /*late=*/true);
      return true;
    }
    if (st.owed_malformed > 0 && MakeMalformed(out)) {
      --st.owed_malformed;
      return true;
    }
    while (st.pending.empty() || st.pending.top().publish >= st.next_hour - kMaxLead) {
      GenerateHour();
    }
    const Pending p = st.pending.top();
    st.pending.pop();
    if (p.delivery == Delivery::kLate) {
      const Shipment& s = st.shipments[p.slot];
      const bool customs = IsCustoms(p.kind);
      const size_t tp = static_cast<size_t>(
          customs ? partitions + s.customs_partition : Route(false, s.shipment_partition, p.publish));
      st.held[tp].push_back(p);
      continue;
    }
    emit_valid(p, /*late=*/false);
    return true;
  }
}

void Generator::GenerateHour() {
  const GeneratorOptions& options = options_;
  State& st = *state_;
  const TimestampMs hour = st.next_hour;
  st.next_hour += kMsPerHour;
  const DurationMs lateness = options.allowed_lateness;
  const DurationMs delay_cap = std::min(kMaxPublishDelay, lateness / 4);

  for (int c = 0; c < kCorridorCount; ++c) {
    const ScenarioCorridor& corridor = kCorridors[static_cast<size_t>(c)];
    const TimestampMs local = hour + corridor.utc_offset_hours * kMsPerHour;
    const int64_t day = AlignDown(local, kMsPerDay) / kMsPerDay;
    const int64_t hour_of_day = (local - day * kMsPerDay) / kMsPerHour;
    const int64_t weekday = ((day + 3) % 7 + 7) % 7;  // 1970-01-01 was a Thursday; Monday = 0
    Rng& noise = st.noise[static_cast<size_t>(c)];
    if (st.day_index[static_cast<size_t>(c)] != day) {
      st.day_index[static_cast<size_t>(c)] = day;
      st.day_factor[static_cast<size_t>(c)] = Gamma(noise, kDayNoiseShape) / kDayNoiseShape;
    }
    const double hour_factor = Gamma(noise, kHourNoiseShape) / kHourNoiseShape;
    const double base = corridor.shipments_per_day / 24.0 *
                        (kWeekly[static_cast<size_t>(weekday)] / kWeeklyMean) *
                        (kDiurnal[static_cast<size_t>(hour_of_day)] / kDiurnalMean) *
                        st.day_factor[static_cast<size_t>(c)] * hour_factor * options.rate_scale;

    for (int k = 0; k < kCategories; ++k) {
      const size_t stream = StreamIndex(c, k);
      Rng& rng = st.traffic[stream];
      const std::vector<const Disruption*>& disruptions = st.disruptions[stream];
      const double boost = MaxBoost(disruptions, hour, hour + kMsPerHour);
      const uint64_t n =
          Poisson(rng, base * corridor.category_share[static_cast<size_t>(k)] * boost);
      for (uint64_t i = 0; i < n; ++i) {
        const TimestampMs arri = hour + static_cast<TimestampMs>(rng.Below(kMsPerHour));
        // Thinning: keep with probability factor / boost (always one draw).
        if (rng.Uniform() * boost >= FactorAt(disruptions, arri)) continue;

        uint32_t slot;
        if (!st.free_slots.empty()) {
          slot = st.free_slots.back();
          st.free_slots.pop_back();
        } else {
          slot = static_cast<uint32_t>(st.shipments.size());
          st.shipments.emplace_back();
        }
        Shipment& s = st.shipments[slot];
        Timeline timeline;
        Tweaks tweaks;
        if (!disruptions.empty()) {
          tweaks.value_factor = FactorAt(disruptions, arri, &Disruption::value_factor);
          tweaks.unclassified_value_factor =
              FactorAt(st.disruptions[StreamIndex(c, kUnclassified)], arri, &Disruption::value_factor);
          tweaks.hold_factor = FactorAt(disruptions, arri, &Disruption::hold_factor);
          tweaks.dwell_factor = FactorAt(disruptions, arri, &Disruption::dwell_factor);
          tweaks.release_withheld = ReleaseWithheldAt(disruptions, arri);
          tweaks.wave = &st.wave[stream];
        }
        BuildShipment(c, k, c, st.shipment_counter[stream]++, arri, options.partitions, tweaks, rng,
                      &s, &timeline);
        if (tweaks.dwell_factor != 1.0) StretchDwell(tweaks.dwell_factor, &timeline);
        s.pending = 0;

        for (int kind = 0; kind < kKindCount; ++kind) {
          const TimestampMs event_time = timeline[static_cast<size_t>(kind)];
          if (event_time == kMinTimestamp) continue;
          // Events a hold wave added draw from the wave stream, so the
          // delivery of every other event stays as without the wave.
          Rng& delivery = (s.wave_kinds >> kind) & 1u ? st.wave[stream] : st.delivery[stream];
          double late_rate = options.late_rate;
          double out_of_order_rate = options.out_of_order_rate;
          for (const DeliveryBurst& burst : options.delivery_bursts) {
            if (event_time < burst.start || event_time >= burst.end) continue;
            late_rate = burst.late_rate.value_or(late_rate);
            out_of_order_rate = burst.out_of_order_rate.value_or(out_of_order_rate);
          }
          // Fixed number of draws per event.
          const double u_late = delivery.Uniform();
          const double u_order = delivery.Uniform();
          const double u_slow = delivery.Uniform();
          const double u_delay = delivery.Uniform();
          const double u_extra = delivery.Uniform();
          DurationMs delay = u_slow < 0.85
                                 ? kMsPerSecond + static_cast<DurationMs>(u_delay * 59000.0)
                                 : kMsPerMinute + static_cast<DurationMs>(u_delay * 540000.0);
          delay = std::min(delay, delay_cap);
          Delivery how = Delivery::kNormal;
          if (u_late < late_rate) {
            how = Delivery::kLate;
          } else if (u_order < out_of_order_rate) {
            how = Delivery::kOutOfOrder;
            const double extra = static_cast<double>(lateness / 2);
            delay += static_cast<DurationMs>(extra * (0.25 + 0.75 * u_extra));
          }
          if (tweaks.release_withheld &&
              (static_cast<Kind>(kind) == Kind::kReleased || static_cast<Kind>(kind) == Kind::kGtot)) {
            continue;  // after its draws, so the other records' delivery stays the same
          }
          st.pending.push(Pending{event_time + delay, st.seq++, event_time, slot,
                                  static_cast<Kind>(kind), how});
          ++s.pending;
        }
      }
    }
  }
}

bool Generator::MakeMalformed(v1::EventRecord* out) {
  State& st = *state_;
  if (st.stream_time == kMinTimestamp) return false;  // no partition has a maximum yet
  Rng& rng = st.malformed;
  const size_t reason = static_cast<size_t>(rng.Below(kMalformedReasons.size()));
  const std::string_view name = kMalformedReasons[reason];
  double corridor_weights[kCorridorCount];
  for (int c = 0; c < kCorridorCount; ++c) {
    corridor_weights[c] = kCorridors[static_cast<size_t>(c)].shipments_per_day;
  }
  const int corridor = PickWeighted(rng, corridor_weights, kCorridorCount);
  const int category = PickWeighted(
      rng, kCorridors[static_cast<size_t>(corridor)].category_share.data(), kCategories);
  Shipment& s = st.malformed_shipment;
  Timeline timeline;
  BuildShipment(corridor, category, 9, st.malformed_counter++, st.stream_time,
                options_.partitions, Tweaks(), rng, &s, &timeline);

  const bool needs_goods = name == "missing_hs_code" || name == "malformed_hs_code" ||
                           name == "unknown_unit" || name == "negative_quantity" ||
                           name == "absurd_quantity" || name == "unknown_currency";
  const double u_topic = rng.Uniform();
  const double u_kind = rng.Uniform();
  const double u_bytes = rng.Uniform();
  const size_t line = static_cast<size_t>(rng.Below(static_cast<uint64_t>(s.line_count)));
  bool customs = u_topic < 0.5;
  Kind kind;
  if (name == "future_timestamp") {
    customs = false;
    kind = Kind::kArri;
  } else if (customs) {
    kind = u_kind < 0.5 ? Kind::kFiled : Kind::kReleased;
  } else if (needs_goods || name == "unparseable") {
    kind = Kind::kArri;  // unparseable: a truncated event needs goods to cut into
  } else {
    kind = u_kind < 0.6 ? Kind::kArri : (u_kind < 0.8 ? Kind::kDepa : Kind::kGtot);
  }
  const bool missing_id = name == "missing_id";
  const std::string_view key =
      missing_id ? std::string_view() : (customs ? s.declaration_id : s.shipment_id);
  const int32_t partition =
      Route(customs, PartitionForKey(key, options_.partitions), st.stream_time);
  const size_t tp = static_cast<size_t>((customs ? options_.partitions : 0) + partition);
  if (st.partition_max[tp] == kMinTimestamp) return false;  // nothing to stay below yet

  // At or just below the partition's maximum: never late, never moving it.
  const DurationMs below_cap = std::min(options_.allowed_lateness / 4, 30 * kMsPerMinute);
  const TimestampMs event_time = std::min(st.partition_max[tp], st.stream_time) -
                                 rng.Duration(0, below_cap);
  const TimestampMs publish =
      name == "future_timestamp" ? event_time - kFutureSkew : st.stream_time;

  out->Clear();
  out->set_topic(customs ? options_.customs_topic : options_.shipments_topic);
  out->set_partition(partition);
  Assign(key, out->mutable_key());
  SetTimestamp(st.stream_time, out->mutable_record_time());
  v1::GoodsLine* goods = nullptr;
  v1::Corridor* corridor_field = nullptr;
  if (customs) {
    v1::CustomsEvent* e = out->mutable_customs();
    FillCustomsEvent(s, kind, event_time, publish, e);
    if (missing_id) e->clear_declaration_id();
    goods = e->mutable_goods(static_cast<int>(line));
    corridor_field = e->mutable_corridor();
  } else {
    v1::ShipmentEvent* e = out->mutable_shipment();
    FillShipmentEvent(s, kind, event_time, publish, e);
    if (missing_id) e->clear_shipment_id();
    if (e->goods_size() > 0) goods = e->mutable_goods(static_cast<int>(line));
    corridor_field = e->mutable_corridor();
  }
  if (name == "missing_hs_code") {
    goods->clear_hs_code();
  } else if (name == "malformed_hs_code") {
    goods->set_hs_code("85A231");
  } else if (name == "unknown_unit") {
    goods->set_unit("XYZ");
  } else if (name == "negative_quantity") {
    goods->set_quantity(-goods->quantity());
  } else if (name == "absurd_quantity") {
    goods->set_quantity(1e15);
  } else if (name == "unknown_country") {
    corridor_field->set_origin_country("ZZ");
  } else if (name == "malformed_port") {
    corridor_field->set_port_of_entry("LAREDO");
  } else if (name == "unknown_currency") {
    goods->set_currency("ZZZ");
  } else if (name == "unparseable") {
    std::string& bytes = st.scratch;
    if (u_bytes < 0.5) {
      // Random bytes whose first tag has wire type 6 or 7, which no protobuf
      // parser accepts, and which cannot start JSON.
      const size_t length = 8 + static_cast<size_t>(rng.Below(120));
      bytes.resize(length);
      bytes[0] = static_cast<char>(((1 + rng.Below(15)) << 3) | (6 + rng.Below(2)));
      for (size_t i = 1; i < length; ++i) bytes[i] = static_cast<char>(rng.Below(256));
    } else {
      // A real event cut inside its last goods line: the line's length prefix
      // promises more bytes than are left.
      int last_size;
      if (customs) {
        out->customs().SerializeToString(&bytes);
        last_size = static_cast<int>(
            out->customs().goods(out->customs().goods_size() - 1).ByteSizeLong());
      } else {
        out->shipment().SerializeToString(&bytes);
        last_size = static_cast<int>(
            out->shipment().goods(out->shipment().goods_size() - 1).ByteSizeLong());
      }
      const size_t cut = 1 + static_cast<size_t>(rng.Below(static_cast<uint64_t>(last_size)));
      bytes.resize(bytes.size() - cut);
    }
    out->set_raw_value(bytes);
  }
  // future_timestamp: publish_time was set 3 days before event_time above.

  ++stats_.records;
  ++stats_.malformed_by_reason[std::string(name)];
  return true;
}

}  // namespace shortfall::scenario
