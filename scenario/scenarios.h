// Named scenarios: generator settings with a story and a ground truth, for
// `shortfall demo`, `shortfall gen --scenario NAME` and the detection tests.
//
//   const NamedScenario* s = FindScenario("demo");
//   Generator gen(s->options);
//   for (const TruthEntry& t : s->truth) { ... }  // what a detector should find
//
// Each truth entry labels one injected change: which group (and port) it
// touches, from when to when in event time, and whether it is a shortage an
// operator must be told about (a holiday dip or a demand surge is not).
//
// Thread-safety: the table is immutable; any thread may read it.
#ifndef SHORTFALL_SCENARIO_SCENARIOS_H_
#define SHORTFALL_SCENARIO_SCENARIOS_H_

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scenario/generator.h"

namespace shortfall::scenario {

struct TruthEntry {
  std::string group;          // a kScenarioGroups name
  std::string port_of_entry;  // empty: every port
  TimestampMs start = 0;      // event time, inclusive
  TimestampMs end = 0;        // exclusive
  bool shortage = true;       // false: a change that must NOT raise a shortage alert
  std::string what;           // "chip imports via Laredo fall by 75%"
};

struct NamedScenario {
  std::string name;
  std::string description;  // one paragraph for --help and the demo banner
  GeneratorOptions options;
  std::vector<TruthEntry> truth;
};

// Every named scenario, in a fixed order.
std::span<const NamedScenario> NamedScenarios();

// The scenario called `name`, or nullptr.
const NamedScenario* FindScenario(std::string_view name);

// "demo, ..." for help texts.
std::string ScenarioNameList();

}  // namespace shortfall::scenario

#endif  // SHORTFALL_SCENARIO_SCENARIOS_H_
