#include "scenario/scenarios.h"

#include <string>
#include <utility>
#include <vector>

#include "base/time.h"

namespace shortfall::scenario {
namespace {

constexpr TimestampMs Day(int n) { return kDefaultStart + n * kMsPerDay; }

constexpr uint64_t kStateScaleEvents = 4300000;

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
                           .what = "chip imports via Laredo fall by 75%",
                           .alert = ExpectedAlert::kVolumeDrop};
    const TruthEntry ppe{.group = "ppe",
                         .port_of_entry = "",
                         .start = Day(31),
                         .end = Day(90),
                         .shortage = true,
                         .what = "PPE arrivals fall by 65% on every corridor",
                         .alert = ExpectedAlert::kVolumeDrop};
    s.options.disruptions = {From(chips, 0.25), From(ppe, 0.35)};
    s.truth = {chips, ppe};
    all.push_back(std::move(s));
  }

  // The scenarios below share a shape: at least three normal weeks (the
  // volume-drop detector judges nothing before two weeks of history), then
  // the change, then records to a week past its end (or past its first week,
  // for a change that lasts): at the default rates a day is about 3,700
  // records. Each has its own seed, so no two share their noise. The truth's
  // `end` is Day(90) where the change lasts past the end of the records.

  {
    NamedScenario s;
    s.name = "sudden_drop";
    s.description =
        "Chip imports via Laredo (port 2304) fall by 85% from Tuesday 2026-02-03 09:00 local "
        "time and stay down, after four normal weeks; about 45 days of trade.";
    s.options.seed = 101;
    s.options.events = 162000;
    const TruthEntry drop{.group = "semiconductors",
                          .port_of_entry = "2304",
                          .start = Day(29) + 15 * kMsPerHour,
                          .end = Day(90),
                          .shortage = true,
                          .what = "chip imports via Laredo fall by 85% and stay down",
                          .alert = ExpectedAlert::kVolumeDrop};
    s.options.disruptions = {From(drop, 0.15)};
    s.truth = {drop};
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "gradual_decline";
    s.description =
        "PPE arrivals on every corridor decline steadily over two weeks from 2026-01-29 to a "
        "quarter of normal (2026-02-12), then stay there; about 46 days of trade.";
    s.options.seed = 102;
    s.options.events = 170000;
    // Labelled from the first day of the decline: the flow is then barely
    // below normal, so a detector sees it days later (the delay says how many).
    const TruthEntry decline{.group = "ppe",
                             .port_of_entry = "",
                             .start = Day(24),
                             .end = Day(90),
                             .shortage = true,
                             .what = "PPE arrivals decline linearly to 25% over two weeks, then stay",
                             .alert = ExpectedAlert::kVolumeDrop,
                             // Before the decline is complete.
                             .detect_within = 14 * kMsPerDay};
    Disruption ramp = From(decline, 0.25);
    ramp.end = Day(38);
    ramp.shape = DisruptionShape::kRamp;
    Disruption after = From(decline, 0.25);
    after.start = Day(38);
    s.options.disruptions = {ramp, after};
    s.truth = {decline};
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "port_closure";
    s.description =
        "The Laredo crossing (port 2304) closes to all freight for four days from 2026-02-03 "
        "06:00 local time (a bridge closure), then reopens; about 43 days of trade.";
    s.options.seed = 103;
    s.options.events = 150000;
    const TruthEntry closure{.group = std::string(kAllGoods),
                             .port_of_entry = "2304",
                             .start = Day(29) + 12 * kMsPerHour,
                             .end = Day(33) + 12 * kMsPerHour,
                             .shortage = true,
                             .what = "Laredo closed to all goods for four days",
                             .alert = ExpectedAlert::kVolumeDrop};
    // While Laredo is closed, every group's imports into the US lean on
    // Canada (critical minerals, half Canadian, to about 60% over a week and
    // 80% on the closed days). That is the same disruption seen from the
    // other side, already a volume drop, not a change of sources: no
    // origin-concentration alert is wanted, and the scorer counts one as a
    // false alarm.
    const TruthEntry shares{.group = std::string(kAllGoods),
                            .port_of_entry = "",
                            .start = closure.start,
                            .end = closure.end,
                            .shortage = false,
                            .what = "origin shares of US imports lean on Canada while Laredo is closed: "
                                    "no origin_concentration alert wanted",
                            .alert = ExpectedAlert::kNone};
    s.options.disruptions = {From(closure, 0.0)};
    s.truth = {closure, shares};
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "hold_wave";
    s.description =
        "At four times the default rates (Laredo about 1,000 shipments a day), customs at "
        "Laredo (port 2304) examines or holds six times as many PPE shipments for a week from "
        "2026-02-02 (an enforcement wave on gloves and masks); arrivals are unchanged; about "
        "44 days of trade.";
    s.options.seed = 104;
    s.options.rate_scale = 4;
    s.options.events = 640000;
    const TruthEntry wave{.group = "ppe",
                          .port_of_entry = "2304",
                          .start = Day(28),
                          .end = Day(35),
                          .shortage = true,
                          .what = "PPE exams and holds at Laredo x6 for a week",
                          .alert = ExpectedAlert::kCustomsHoldSpike};
    Disruption d = From(wave, 1.0);
    d.hold_factor = 6;
    s.options.disruptions = {d};
    // Six times the exams and holds keep six times the shipments hours
    // instead of minutes at the border: the typical PPE stay at Laredo is
    // several times longer that week. A dwell alert says so truly.
    TruthEntry dwell = wave;
    dwell.what = "PPE at Laredo held at the border far longer that week (the same wave, seen in dwell)";
    dwell.alert = ExpectedAlert::kDwellTimeRise;
    s.truth = {wave, dwell};
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "price_spike";
    s.description =
        "Batteries cost 80% more per unit on every corridor from 2026-02-02 (declared value per "
        "unit x1.8, same quantities and shipments) and stay dear; about 44 days of trade.";
    s.options.seed = 105;
    s.options.events = 162000;
    const TruthEntry spike{.group = "batteries",
                           .port_of_entry = "",
                           .start = Day(28),
                           .end = Day(90),
                           .shortage = true,
                           .what = "battery unit values x1.8 on every corridor",
                           .alert = ExpectedAlert::kUnitValueSpike};
    Disruption d = From(spike, 1.0);
    d.value_factor = 1.8;
    s.options.disruptions = {d};
    s.truth = {spike};
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "origin_shift";
    s.description =
        "US chip imports, 87% from Mexico, lose their Canadian source: arrivals from Canada "
        "fade to a tenth over two weeks from 2026-02-02 while arrivals from Mexico grow by 13% "
        "to keep the total, then stay there; no corridor or total falls enough for a volume "
        "alert, but the alternative supply is gone; about 52 days of trade.";
    s.options.seed = 111;
    s.options.events = 192000;
    // Labelled from the first day of the fade, like the gradual decline; a
    // week's Canadian chips are a few dozen shipments, so the shift stands
    // out of their noise only as the fade nears its end.
    const TruthEntry shift{.group = "semiconductors",
                           .port_of_entry = "",
                           .start = Day(28),
                           .end = Day(90),
                           .shortage = true,
                           .what = "chip imports from Canada fade to 10% over two weeks, Mexico makes up the total",
                           .alert = ExpectedAlert::kOriginConcentration,
                           .detect_within = 21 * kMsPerDay};
    // Canada's chip flow (4.35 shipments a day over its three ports) loses
    // 90%; Mexico's (29.6 a day) gains 0.9 x 4.35 / 29.6 = 13.2%.
    for (const auto& [origin, factor] : {std::pair{"CA", 0.1}, std::pair{"MX", 1.132}}) {
      Disruption ramp = From(shift, factor);
      ramp.origin_country = origin;
      ramp.end = Day(42);
      ramp.shape = DisruptionShape::kRamp;
      Disruption after = From(shift, factor);
      after.origin_country = origin;
      after.start = Day(42);
      s.options.disruptions.push_back(ramp);
      s.options.disruptions.push_back(after);
    }
    s.truth = {shift};
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "border_slowdown";
    s.description =
        "Releases of semiconductors at Laredo (port 2304) take four times as long after arrival for a week "
        "from 2026-02-02 (a customs system outage, short staffing); arrivals, exams and holds are "
        "unchanged; about 44 days of trade.";
    s.options.seed = 111;
    s.options.events = 162000;
    const TruthEntry slowdown{.group = "semiconductors",
                              .port_of_entry = "2304",
                              .start = Day(28),
                              .end = Day(35),
                              .shortage = true,
                              .what = "chip releases at Laredo take four times as long for a week",
                              .alert = ExpectedAlert::kDwellTimeRise};
    Disruption d = From(slowdown, 1.0);
    d.dwell_factor = 4;
    s.options.disruptions = {d};
    s.truth = {slowdown};
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "holiday_dip";
    s.description =
        "A public holiday (Monday 2026-02-16, Presidents' Day) cuts every good on every corridor "
        "by 45% for a day; not a shortage, no alert wanted; about 51 days of trade.";
    s.options.seed = 106;
    s.options.events = 185000;
    const TruthEntry holiday{.group = std::string(kAllGoods),
                             .port_of_entry = "",
                             .start = Day(42) + 6 * kMsPerHour,
                             .end = Day(43) + 6 * kMsPerHour,
                             .shortage = false,
                             .what = "holiday: every good on every corridor -45% for a day",
                             .alert = ExpectedAlert::kNone};
    s.options.disruptions = {From(holiday, 0.55)};
    s.truth = {holiday};
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "demand_surge";
    s.description =
        "Chip arrivals on every corridor run at 2.5 times normal for a week from 2026-02-02 "
        "(a restocking rush), then return to normal; not a shortage; about 45 days of trade.";
    s.options.seed = 107;
    s.options.events = 165000;
    const TruthEntry surge{.group = "semiconductors",
                           .port_of_entry = "",
                           .start = Day(28),
                           .end = Day(35),
                           .shortage = false,
                           .what = "chip arrivals x2.5 for a week, then back to normal",
                           .alert = ExpectedAlert::kNone};
    s.options.disruptions = {From(surge, 2.5)};
    s.truth = {surge};
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "low_volume_noise";
    s.description =
        "Six weeks of normal trade at 30% of the default rates: every corridor is thin and "
        "noisy (Laredo 72 shipments a day, Ciudad Juarez one every day or two). Nothing "
        "happens: any alert is a false alarm.";
    s.options.seed = 108;
    s.options.rate_scale = 0.3;
    s.options.events = 47000;
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "late_burst";
    s.description =
        "For two days from 2026-02-02, 3% of records arrive after the allowed lateness and 25% "
        "out of order (a broker backlog); trade itself is normal; not a shortage; about 39 days.";
    s.options.seed = 109;
    s.options.events = 140000;
    const TruthEntry burst{.group = std::string(kAllGoods),
                           .port_of_entry = "",
                           .start = Day(28),
                           .end = Day(30),
                           .shortage = false,
                           .what = "3% of records late, 25% out of order, for two days",
                           .alert = ExpectedAlert::kNone};
    s.options.delivery_bursts = {
        DeliveryBurst{.start = burst.start, .end = burst.end, .late_rate = 0.03, .out_of_order_rate = 0.25}};
    s.truth = {burst};
    all.push_back(std::move(s));
  }
  {
    NamedScenario s;
    s.name = "idle_partition";
    s.description =
        "From 2026-02-02 09:00 UTC nothing more is written to partition 1 of the shipments topic "
        "(its records go to partition 2); trade itself is normal, so windows must keep closing "
        "and nothing may alert; about 44 days.";
    s.options.seed = 110;
    s.options.events = 160000;
    const TruthEntry idle{.group = std::string(kAllGoods),
                          .port_of_entry = "",
                          .start = Day(28) + 9 * kMsPerHour,
                          .end = Day(90),
                          .shortage = false,
                          .what = "shipments partition 1 idle for good (its records go to partition 2)",
                          .alert = ExpectedAlert::kNone};
    s.options.idle_partition = IdlePartition{.partition = 1, .from = idle.start};
    s.truth = {idle};
    all.push_back(std::move(s));
  }
  {
    // For bench/state_scale.sh: state that stays. A month of trade at ten
    // times the default rates fills an hourly bucket of nearly every
    // (group, corridor); then a day in which customs releases nothing while
    // arrivals of every critical group run at 670 times that, so about a million
    // arrivals wait in the dwell join for releases that never come (the
    // records end two days later, before any of them expires). Scale both
    // with `gen --rate-scale` and --events in proportion.
    NamedScenario s;
    s.name = "state_scale";
    s.description =
        "A month of trade at ten times the default rates from 2026-01-05, then on 2026-02-05 a day in "
        "which customs releases nothing while arrivals of every critical group run at 670 times that "
        "(about a million shipments, all left waiting for a release), then two days of normal trade; "
        "for sizing state, not detection.";
    s.options.seed = 112;
    s.options.rate_scale = 10;
    s.options.events = kStateScaleEvents;
    for (std::string_view group : kScenarioGroups) {
      Disruption d{.group = std::string(group), .port_of_entry = "", .start = Day(31), .end = Day(32), .rate_factor = 670};
      d.release_withheld = true;
      s.options.disruptions.push_back(d);
    }
    all.push_back(std::move(s));
  }
  return all;
}

// RFC 4180: a field with a quote, comma or line break is quoted, quotes doubled.
std::string CsvField(std::string_view text, bool always_quote) {
  if (!always_quote && text.find_first_of("\",\r\n") == std::string_view::npos) {
    return std::string(text);
  }
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
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

std::string_view ExpectedAlertName(ExpectedAlert alert) {
  switch (alert) {
    case ExpectedAlert::kNone: return "none";
    case ExpectedAlert::kVolumeDrop: return "volume_drop";
    case ExpectedAlert::kCustomsHoldSpike: return "customs_hold_spike";
    case ExpectedAlert::kUnitValueSpike: return "unit_value_spike";
    case ExpectedAlert::kOriginConcentration: return "origin_concentration";
    case ExpectedAlert::kDwellTimeRise: return "dwell_time_rise";
  }
  return "none";
}

std::string TruthCsv(const NamedScenario& scenario) {
  std::string out = "scenario,group,port_of_entry,start,end,shortage,what,alert_kind,detect_within_hours\n";
  for (const TruthEntry& t : scenario.truth) {
    out += CsvField(scenario.name, false) + "," + CsvField(t.group, false) + "," +
           CsvField(t.port_of_entry, false) + "," + FormatUtc(t.start) + "," + FormatUtc(t.end) + "," +
           (t.shortage ? "true" : "false") + "," + CsvField(t.what, true) + "," +
           std::string(ExpectedAlertName(t.alert)) + "," + std::to_string(t.detect_within / kMsPerHour) + "\n";
  }
  return out;
}

}  // namespace shortfall::scenario
