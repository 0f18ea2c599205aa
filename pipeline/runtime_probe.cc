#include "pipeline/runtime_probe.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <exception>
#include <map>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "base/status.h"

namespace shortfall::pipeline {
namespace {

// Orders label-value tuples whether held as strings (the cache's keys) or
// as views (a lookup), so a lookup never allocates.
struct LabelValuesLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(),
        [](std::string_view x, std::string_view y) { return x < y; });
  }
};

// The series of one family, by label values, created on first use. The
// pointers stay valid until Remove(): prometheus-cpp owns each metric in a
// unique_ptr inside its family.
template <typename Metric, size_t N>
class Series {
 public:
  using Values = std::array<std::string_view, N>;

  Series(prometheus::Family<Metric>& family, std::array<std::string, N> names)
      : family_(family), names_(std::move(names)) {}

  // `args` build the metric when the series is new (a histogram's buckets).
  template <typename... Args>
  Metric& Get(const Values& values, const Args&... args) {
    auto it = cache_.find(values);
    if (it != cache_.end()) return *it->second;
    Key key;
    prometheus::Labels labels;
    for (size_t i = 0; i < N; ++i) {
      key[i] = std::string(values[i]);
      labels.emplace(names_[i], key[i]);
    }
    Metric& metric = family_.Add(labels, args...);
    cache_.emplace(std::move(key), &metric);
    return metric;
  }

  void Remove(const Values& values) {
    auto it = cache_.find(values);
    if (it == cache_.end()) return;
    family_.Remove(it->second);
    cache_.erase(it);
  }

  // Removes every series whose first label values are `prefix`.
  template <size_t M>
  void RemovePrefix(const std::array<std::string_view, M>& prefix) {
    static_assert(M <= N);
    for (auto it = cache_.begin(); it != cache_.end();) {
      if (std::equal(prefix.begin(), prefix.end(), it->first.begin())) {
        family_.Remove(it->second);
        it = cache_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  using Key = std::array<std::string, N>;

  prometheus::Family<Metric>& family_;
  const std::array<std::string, N> names_;
  std::map<Key, Metric*, LabelValuesLess> cache_;
};

template <typename Metric>
prometheus::Family<Metric>& Register(prometheus::detail::Builder<Metric> builder,
                                     prometheus::Registry& registry, const std::string& name,
                                     const std::string& help) {
  return builder.Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& r, const std::string& name,
                                                       const std::string& help) {
  return Register(prometheus::BuildCounter(), r, name, help);
}
prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& r, const std::string& name,
                                                   const std::string& help) {
  return Register(prometheus::BuildGauge(), r, name, help);
}
prometheus::Family<prometheus::Histogram>& HistogramFamily(prometheus::Registry& r,
                                                           const std::string& name,
                                                           const std::string& help) {
  return Register(prometheus::BuildHistogram(), r, name, help);
}

// A commit flushes the producer and writes RocksDB: milliseconds when
// healthy, seconds when the broker is slow, the delivery timeout at worst.
const prometheus::Histogram::BucketBoundaries kCommitBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
// Live traffic lands in the sub-second buckets (bounded below by the commit
// interval); replays of a scenario run minutes to hours behind publish time.
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};

double AsDouble(uint64_t n) { return static_cast<double>(n); }
double AsDouble(int64_t n) { return static_cast<double>(n); }

}  // namespace

struct RuntimeProbe::Families {
  explicit Families(prometheus::Registry& r)
      : consumed(CounterFamily(r, "shortfall_records_consumed_total",
                               "Input records read, in records, by topic."),
                 {"topic"}),
        produced(CounterFamily(r, "shortfall_records_produced_total",
                               "Records produced (alerts, dead letters, repartition), in records, "
                               "by topic."),
                 {"topic"}),
        invalid(CounterFamily(r, "shortfall_records_invalid_total",
                              "Input records rejected and sent to the dead-letter topic, in "
                              "records, by reason."),
                {"reason"}),
        late(CounterFamily(r, "shortfall_records_late_total",
                           "Late arrivals by the stage that found them: stage input counts input "
                           "records past the allowed lateness (sent to the dead-letter topic); "
                           "stage repartition counts pre-aggregated contributions for windows "
                           "already closed (counted, not dead-lettered)."),
             {"stage"}),
        consumer_lag(GaugeFamily(r, "shortfall_consumer_lag_records",
                                 "Records between a partition's high watermark and this "
                                 "consumer's position, in records."),
                     {"topic", "partition"}),
        commit_duration(HistogramFamily(r, "shortfall_commit_duration_seconds",
                                        "Time to commit (flush outputs, commit stores, commit "
                                        "offsets), in seconds.")
                            .Add({}, kCommitBuckets)),
        commits(CounterFamily(r, "shortfall_commits_total",
                              "Commits attempted, in commits, by result (ok or failed)."),
                {"result"}),
        latency(HistogramFamily(r, "shortfall_processing_latency_seconds",
                                "Time from a record's timestamp to its result, in seconds, by "
                                "stage (state: committed; observed once per task and commit, for "
                                "the oldest record the commit covers)."),
                {"stage"}),
        watermark_lag(GaugeFamily(r, "shortfall_watermark_lag_seconds",
                                  "Wall clock minus the combined event-time watermark, in "
                                  "seconds."),
                      {}),
        watermark(GaugeFamily(r, "shortfall_event_time_watermark_seconds",
                              "The combined event-time watermark, in seconds since the Unix "
                              "epoch."),
                  {}),
        tasks(GaugeFamily(r, "shortfall_tasks",
                          "Tasks (assigned partitions) this instance runs, in tasks, by stage."),
              {"stage"}),
        state_keys(GaugeFamily(r, "shortfall_state_keys",
                               "Keys in the local state stores, in keys (an estimate).")
                       .Add({})),
        state_bytes(GaugeFamily(r, "shortfall_state_bytes",
                                "Live data in the local state stores, in bytes (an estimate).")
                        .Add({})),
        state_memory(GaugeFamily(r, "shortfall_state_memory_bytes",
                                 "Memory RocksDB uses for the local state stores now (memtables and "
                                 "block cache), in bytes.")
                         .Add({})),
        alerts(CounterFamily(r, "shortfall_alerts_total",
                             "Alert records produced, in alerts, by commodity group, kind, "
                             "severity and lifecycle state."),
               {"group", "kind", "severity", "state"}),
        open_alerts(GaugeFamily(r, "shortfall_open_alerts",
                                "Alerts currently open, in alerts, by commodity group and kind."),
                    {"group", "kind"}),
        volume(GaugeFamily(r, "shortfall_volume",
                           "Rolling volume of a commodity group on a corridor over a window, in "
                           "the unit its measure names (shipments, kilograms, US dollars)."),
               {"group", "corridor", "window", "measure"}),
        baseline(GaugeFamily(r, "shortfall_volume_baseline",
                             "Expected rolling volume the detectors compare shortfall_volume "
                             "with, in the unit its measure names."),
                 {"group", "corridor", "window", "measure"}),
        restored(CounterFamily(r, "shortfall_restored_records_total",
                               "State records read back from a changelog topic into a local "
                               "store (exactly_once restore), in records, by changelog topic."),
                 {"topic"}),
        dwell_join(CounterFamily(r, "shortfall_dwell_join_total",
                                 "Outcomes of the border dwell join (arrival at the border with "
                                 "customs release, per group and shipment), by outcome: joined "
                                 "(pairs that made a dwell sample), expired (sides dropped unpaired "
                                 "after detection.dwell.time_bound), negative (releases stamped "
                                 "before their arrival, counted as 0), late, out_of_bound, "
                                 "repeated_sides."),
                   {"outcome"}),
        dwell_join_waiting(GaugeFamily(r, "shortfall_dwell_join_waiting",
                                       "Shipment sides waiting in the border dwell join for their "
                                       "other side, in sides.")
                               .Add({})),
        ready(GaugeFamily(r, "shortfall_ready",
                          "1 when this instance is ready (processing, with partitions "
                          "assigned), else 0.")
                  .Add({})),
        build_info(GaugeFamily(r, "shortfall_build_info",
                               "Always 1; the version label names the running build."),
                   {"version"}) {}

  Series<prometheus::Counter, 1> consumed;
  Series<prometheus::Counter, 1> produced;
  Series<prometheus::Counter, 1> invalid;
  Series<prometheus::Counter, 1> late;
  Series<prometheus::Gauge, 2> consumer_lag;
  prometheus::Histogram& commit_duration;
  Series<prometheus::Counter, 1> commits;
  Series<prometheus::Histogram, 1> latency;
  // No sample until a watermark is known: 0 would read as "1970, no lag".
  Series<prometheus::Gauge, 0> watermark_lag;
  Series<prometheus::Gauge, 0> watermark;
  Series<prometheus::Gauge, 1> tasks;
  prometheus::Gauge& state_keys;
  prometheus::Gauge& state_bytes;
  prometheus::Gauge& state_memory;
  Series<prometheus::Counter, 4> alerts;
  Series<prometheus::Gauge, 2> open_alerts;
  Series<prometheus::Gauge, 4> volume;
  Series<prometheus::Gauge, 4> baseline;
  Series<prometheus::Counter, 1> restored;
  Series<prometheus::Counter, 1> dwell_join;
  prometheus::Gauge& dwell_join_waiting;
  prometheus::Gauge& ready;
  Series<prometheus::Gauge, 1> build_info;
};

RuntimeProbe::RuntimeProbe(std::shared_ptr<prometheus::Registry> registry, std::string version)
    : registry_(std::move(registry)), version_(std::move(version)) {
  SHORTFALL_CHECK(registry_ != nullptr);
  // prometheus-cpp throws when a name is taken by a family of another type
  // or labels: a wiring bug, caught by the first test that starts a runtime.
  try {
    families_ = std::make_unique<Families>(*registry_);
  } catch (const std::exception& e) {
    internal::CheckFailed(__FILE__, __LINE__, "RuntimeProbe registers its metric families", e.what());
  }
  // Both results exist from the start, so rate() sees the first failure
  // (a series born at its first increment shows no increase).
  families_->commits.Get({"ok"});
  families_->commits.Get({"failed"});
}

RuntimeProbe::~RuntimeProbe() = default;

void RuntimeProbe::AddConsumed(std::string_view topic, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->consumed.Get({topic}).Increment(AsDouble(n));
}

void RuntimeProbe::AddProduced(std::string_view topic, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->produced.Get({topic}).Increment(AsDouble(n));
}

void RuntimeProbe::AddInvalid(std::string_view reason, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->invalid.Get({reason}).Increment(AsDouble(n));
}

void RuntimeProbe::AddLate(std::string_view stage, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->late.Get({stage}).Increment(AsDouble(n));
}

void RuntimeProbe::AddRestored(std::string_view changelog_topic, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->restored.Get({changelog_topic}).Increment(AsDouble(n));
}

void RuntimeProbe::AddDwellJoin(std::string_view outcome, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->dwell_join.Get({outcome}).Increment(AsDouble(n));
}

void RuntimeProbe::SetDwellJoinWaiting(uint64_t sides) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->dwell_join_waiting.Set(AsDouble(sides));
}

void RuntimeProbe::SetConsumerLag(std::string_view topic, int32_t partition, int64_t lag) {
  const std::string p = std::to_string(partition);
  std::lock_guard<std::mutex> lock(mu_);
  families_->consumer_lag.Get({topic, p}).Set(AsDouble(lag));
}

void RuntimeProbe::RemovePartition(std::string_view topic, int32_t partition) {
  const std::string p = std::to_string(partition);
  std::lock_guard<std::mutex> lock(mu_);
  families_->consumer_lag.Remove({topic, p});
}

void RuntimeProbe::ObserveCommit(double seconds, bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!std::isnan(seconds)) families_->commit_duration.Observe(std::max(seconds, 0.0));
  families_->commits.Get({ok ? "ok" : "failed"}).Increment();
}

void RuntimeProbe::ObserveLatency(std::string_view stage, double seconds) {
  if (std::isnan(seconds)) return;
  std::lock_guard<std::mutex> lock(mu_);
  families_->latency.Get({stage}, kLatencyBuckets).Observe(std::max(seconds, 0.0));
}

void RuntimeProbe::SetWatermarkLag(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->watermark_lag.Get({}).Set(seconds);
}

void RuntimeProbe::SetEventTimeWatermark(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->watermark.Get({}).Set(seconds);
}

void RuntimeProbe::SetTasks(std::string_view stage, int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->tasks.Get({stage}).Set(AsDouble(n));
}

void RuntimeProbe::SetStateStore(uint64_t keys, uint64_t bytes, uint64_t memory_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->state_keys.Set(AsDouble(keys));
  families_->state_bytes.Set(AsDouble(bytes));
  families_->state_memory.Set(AsDouble(memory_bytes));
}

void RuntimeProbe::AddAlert(std::string_view group, std::string_view kind, std::string_view severity,
                            std::string_view state, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->alerts.Get({group, kind, severity, state}).Increment(AsDouble(n));
}

void RuntimeProbe::SetOpenAlerts(std::string_view group, std::string_view kind, int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->open_alerts.Get({group, kind}).Set(AsDouble(n));
}

void RuntimeProbe::SetVolume(std::string_view group, std::string_view corridor,
                             std::string_view window, std::string_view measure, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->volume.Get({group, corridor, window, measure}).Set(value);
}

void RuntimeProbe::SetBaseline(std::string_view group, std::string_view corridor,
                               std::string_view window, std::string_view measure, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->baseline.Get({group, corridor, window, measure}).Set(value);
}

void RuntimeProbe::RemoveSeries(std::string_view group, std::string_view corridor) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->volume.RemovePrefix(std::array<std::string_view, 2>{group, corridor});
  families_->baseline.RemovePrefix(std::array<std::string_view, 2>{group, corridor});
}

void RuntimeProbe::SetReady(bool ready) {
  std::lock_guard<std::mutex> lock(mu_);
  families_->ready.Set(ready ? 1 : 0);
}

void RuntimeProbe::SetUp() {
  std::lock_guard<std::mutex> lock(mu_);
  families_->build_info.Get({version_}).Set(1);
  for (std::string_view outcome : kDwellJoinOutcomes) families_->dwell_join.Get({outcome});
}

}  // namespace shortfall::pipeline
