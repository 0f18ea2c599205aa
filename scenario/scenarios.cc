#include "scenario/scenarios.h"

#include <vector>

namespace shortfall::scenario {
namespace {

constexpr TimestampMs Day(int n) { return kDefaultStart + n * kMsPerDay; }

Disruption From(const TruthEntry& t, double rate_factor) {
  return Disruption{.group = t.group, .port_of_entry = t.port_of_entry, .start = t.start, .end = t.end,
                    .rate_factor = rate_factor};
}

std::vector<NamedScenario> Build() {
  std::vector<NamedScenario> all;

  // Four weeks of normal trade give the baselines two to four weeks of
  // history; then two shortages start a few days apart and last to the end.
  {
    NamedScenario s;
    s.name = "demo";
    s.description =
        "Six and a half weeks of trade on nine North American corridors from "
        "2026-01-05: four normal weeks, then chip imports from Mexico via Laredo "
        "(port 2304) fall by 75% from 2026-02-02, and PPE arrivals on every "
        "corridor fall by 65% from 2026-02-05.";
    s.options.events = 170000;
    const TruthEntry chips{.group = "semiconductors",
                           .port_of_entry = "2304",
                           .start = Day(28),
                           .end = Day(90),
                           .shortage = true,
                           .what = "chip imports via Laredo fall by 75%"};
    const TruthEntry ppe{.group = "ppe",
                         .port_of_entry = "",
                         .start = Day(31),
                         .end = Day(90),
                         .shortage = true,
                         .what = "PPE arrivals fall by 65% on every corridor"};
    s.options.disruptions = {From(chips, 0.25), From(ppe, 0.35)};
    s.truth = {chips, ppe};
    all.push_back(std::move(s));
  }
  return all;
}

}  // namespace

std::span<const NamedScenario> NamedScenarios() {
  static const std::vector<NamedScenario>* const kAll = new std::vector<NamedScenario>(Build());
  return *kAll;
}

const NamedScenario* FindScenario(std::string_view name) {
  for (const NamedScenario& s : NamedScenarios()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string ScenarioNameList() {
  std::string out;
  for (const NamedScenario& s : NamedScenarios()) {
    if (!out.empty()) out += ", ";
    out += s.name;
  }
  return out;
}

}  // namespace shortfall::scenario
