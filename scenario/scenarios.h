// Named scenarios: generator settings with a story and a ground truth, for
// `shortfall demo`, `shortfall gen --scenario NAME` and the detection tests.
//
//   const NamedScenario* s = FindScenario("demo");
//   Generator gen(s->options);
//   for (const TruthEntry& t : s->truth) { ... }  // what a detector should find
//
// Each truth entry labels one injected change: which group (and port) it
// touches, from when to when in event time, whether it is a shortage an
// operator must be told about (a holiday dip or a demand surge is not), and
// which kind of alert should tell them. A scorer matches an OPEN alert to an
// entry by kind, group and port (see TruthEntry) and by its window_end
// falling in [start, end + a grace period).
//
// Thread-safety: the table is immutable; any thread may read it.
#ifndef SHORTFALL_SCENARIO_SCENARIOS_H_
#define SHORTFALL_SCENARIO_SCENARIOS_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scenario/generator.h"

namespace shortfall::scenario {

// The alert a truth entry should raise. Names as in the alert schema's
// AlertKind, lower case without the prefix (ALERT_KIND_VOLUME_DROP ->
// "volume_drop").
enum class ExpectedAlert : uint8_t {
  kNone,              // nothing to alert on: not a shortage
  kVolumeDrop,        // ALERT_KIND_VOLUME_DROP
  kCustomsHoldSpike,  // ALERT_KIND_CUSTOMS_HOLD_SPIKE
  kUnitValueSpike,    // ALERT_KIND_UNIT_VALUE_SPIKE
  kOriginConcentration,  // ALERT_KIND_ORIGIN_CONCENTRATION
  kDwellTimeRise,        // ALERT_KIND_DWELL_TIME_RISE
};
// "none", "volume_drop", "customs_hold_spike", "unit_value_spike",
// "origin_concentration", "dwell_time_rise".
std::string_view ExpectedAlertName(ExpectedAlert alert);

struct TruthEntry {
  // A kScenarioGroups name, or "*" (kAllGoods): every group, e.g. a port
  // closure; an alert on any group then matches.
  std::string group;
  // The port the change is on, and so the corridor an alert should show on;
  // empty: every port, and an alert on any corridor or the group total
  // (all corridors) matches.
  std::string port_of_entry;
  TimestampMs start = 0;      // event time, inclusive
  TimestampMs end = 0;        // exclusive
  bool shortage = true;       // false: a change that must NOT raise a shortage alert
  std::string what;           // "chip imports via Laredo fall by 75%"
  // The alert kind that should report it: kNone exactly when !shortage.
  ExpectedAlert alert = ExpectedAlert::kNone;
  // How long after `start` a detector may take to report it. Default 96 h;
  // a slow change may be given longer (a decline over two weeks should be
  // reported before it is complete, not within four days of its first day).
  DurationMs detect_within = 96 * kMsPerHour;
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

// The truth as CSV (`shortfall gen --truth`), a header and one line per
// entry, times in RFC 3339 UTC, `what` quoted:
//   scenario,group,port_of_entry,start,end,shortage,what,alert_kind
// Columns are only ever added at the end.
std::string TruthCsv(const NamedScenario& scenario);

}  // namespace shortfall::scenario

#endif  // SHORTFALL_SCENARIO_SCENARIOS_H_
