// RuntimeProbe: the runtime's Prometheus metrics, behind verbs.
//
// The runtime counts in plain integers on its hot path (RuntimeStats) and,
// about once per commit interval, hands the probe deltas and current
// values; the probe owns the metric families and turns those calls into
// series. Nothing else in the runtime sees a Prometheus type.
//
//   auto registry = std::make_shared<prometheus::Registry>();
//   RuntimeProbe probe(registry, "0.1.0");
//   probe.SetUp();
//   ...                                          // every commit interval:
//   probe.AddConsumed("shipments.events.v1", consumed_since_last);
//   probe.ObserveCommit(elapsed_seconds, status.ok());
//
// Families (docs: DESIGN.md "Metrics"; names are a user-visible contract):
//   shortfall_records_consumed_total{topic}             counter
//   shortfall_records_produced_total{topic}             counter
//   shortfall_records_invalid_total{reason}             counter
//   shortfall_records_late_total{stage}                 counter
//   shortfall_consumer_lag_records{topic,partition}     gauge
//   shortfall_commit_duration_seconds                   histogram, 1 ms .. 10 s
//   shortfall_commits_total{result}                     counter, "ok" | "failed"
//   shortfall_processing_latency_seconds{stage}         histogram, 10 ms .. 1 h
//   shortfall_watermark_lag_seconds                     gauge
//   shortfall_event_time_watermark_seconds              gauge, unix seconds
//   shortfall_tasks{stage}                              gauge
//   shortfall_state_keys, shortfall_state_bytes         gauges, estimates
//   shortfall_state_memory_bytes                        gauge, RocksDB memtables + the shared block cache
//   shortfall_alerts_total{group,kind,severity,state}   counter
//   shortfall_open_alerts{group,kind}                   gauge
//   shortfall_volume{group,corridor,window,measure}     gauge
//   shortfall_volume_baseline{group,corridor,window,measure}  gauge
//   shortfall_restored_records_total{topic}             counter
//   shortfall_dwell_join_total{outcome}                 counter, kDwellJoinOutcomes (at 0 from SetUp)
//   shortfall_dwell_join_waiting                        gauge, sides
//   shortfall_ready                                     gauge, 1 | 0
//   shortfall_build_info{version}                       gauge, always 1
// A labelled family, and each watermark gauge, has no sample until its verb
// is first called (a watermark of 0 would read as 1970); the other
// unlabelled ones start at 0.
//
// Label values are bounded by construction, and callers must keep them so:
// topics come from the configuration, partitions from the topics' partition
// counts, reasons from operators' fixed list of invalid-record reasons,
// stages from the constants documented at each verb, groups from the
// catalog, corridors from the fixed corridor table, kinds, severities and
// states from the alert schema's enums, windows and measures from the
// detector configuration. Never pass a record's key, id or free text.
//
// Cost: each verb is one map lookup (no allocation once the series exists)
// plus an atomic update, under the probe's mutex; call verbs per batch or
// per commit interval, not per record.
//
// Thread-safety: every verb may be called from any thread. Scraping (the
// registry's Collect(), on the metrics server's thread) may run at the same
// time: prometheus-cpp's families and metrics are thread-safe.
// Ownership: the probe shares ownership of the registry and registers its
// families in it for good (a registry cannot unregister them); create one
// probe per registry, at start-up.
// Failure: the verbs do not fail. The constructor aborts (a programming
// error, "cannot happen" once wired) if the registry already holds a family
// of one of these names with another type or labels.
#ifndef SHORTFALL_PIPELINE_RUNTIME_PROBE_H_
#define SHORTFALL_PIPELINE_RUNTIME_PROBE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace shortfall::pipeline {

// The outcome labels of shortfall_dwell_join_total, as
// operators::DwellJoinCounters names its fields.
inline constexpr std::array<std::string_view, 6> kDwellJoinOutcomes = {
    "joined", "expired", "negative", "late", "out_of_bound", "repeated_sides"};

class RuntimeProbe {
 public:
  // Registers every family in `registry`. `version` labels build_info.
  // REQUIRES: registry != nullptr.
  RuntimeProbe(std::shared_ptr<prometheus::Registry> registry, std::string version);
  ~RuntimeProbe();
  RuntimeProbe(const RuntimeProbe&) = delete;
  RuntimeProbe& operator=(const RuntimeProbe&) = delete;

  // Throughput. `n`: records since the last call.
  void AddConsumed(std::string_view topic, uint64_t n);
  void AddProduced(std::string_view topic, uint64_t n);
  // `reason`: operators::InvalidReasonName(), e.g. "missing_hs_code".
  void AddInvalid(std::string_view reason, uint64_t n);
  // Records past the allowed lateness. `stage`: "input" (checked by stage
  // one against its watermark) or "repartition" (by stage two).
  void AddLate(std::string_view stage, uint64_t n);

  // Records between the partition's high watermark and our position.
  void SetConsumerLag(std::string_view topic, int32_t partition, int64_t lag);
  // Drops the partition's lag series, on revocation: a partition that moved
  // to another instance must not keep reporting its last lag from here.
  void RemovePartition(std::string_view topic, int32_t partition);

  // One commit (flush, store commit, offset commit) that took `seconds`.
  void ObserveCommit(double seconds, bool ok);
  // Record time to the result: `stage` "state" (state committed; the only
  // stage recorded so far). Negative values (clock skew between the
  // producer and this host) count as 0; NaN is ignored.
  void ObserveLatency(std::string_view stage, double seconds);

  // Wall clock minus the combined event-time watermark.
  void SetWatermarkLag(double seconds);
  // The combined event-time watermark, unix seconds.
  void SetEventTimeWatermark(double seconds);

  // Tasks this instance runs; `stage` "input" or "repartition".
  void SetTasks(std::string_view stage, int64_t n);
  // Estimates over all local stores (RocksDB's estimate-num-keys and
  // live data size), and the memory RocksDB uses for them now (memtables
  // and block cache, which holds index and filter blocks too).
  void SetStateStore(uint64_t keys, uint64_t bytes, uint64_t memory_bytes);

  // `n` alert records produced (lifecycle transitions), `state` "open",
  // "updated" or "resolved".
  void AddAlert(std::string_view group, std::string_view kind, std::string_view severity,
                std::string_view state, uint64_t n = 1);
  void SetOpenAlerts(std::string_view group, std::string_view kind, int64_t n);

  // The rolling volume of (group, corridor) over `window` ("24h", "7d") in
  // `measure` ("shipments", "gross_weight_kg", "declared_value_usd"), and
  // the baseline the detectors compare it with.
  void SetVolume(std::string_view group, std::string_view corridor, std::string_view window,
                 std::string_view measure, double value);
  void SetBaseline(std::string_view group, std::string_view corridor, std::string_view window,
                   std::string_view measure, double value);
  // Drops the volume and baseline series of (group, corridor), every window
  // and measure: a series whose task moved to another instance must not
  // keep reporting its last values from here.
  void RemoveSeries(std::string_view group, std::string_view corridor);

  // `n` state records restored from `changelog_topic` into a local store
  // (exactly_once). Called from the restoring thread while it restores, so
  // progress shows before the task starts.
  void AddRestored(std::string_view changelog_topic, uint64_t n);

  // `n` more border dwell join outcomes; `outcome` one of kDwellJoinOutcomes.
  void AddDwellJoin(std::string_view outcome, uint64_t n);
  // Sides waiting in the dwell join of every task of this instance.
  void SetDwellJoinWaiting(uint64_t sides);

  // shortfall_ready: 1 when /readyz would answer ready.
  void SetReady(bool ready);
  // shortfall_build_info{version} = 1. Call once at start.
  void SetUp();

 private:
  struct Families;

  std::shared_ptr<prometheus::Registry> registry_;
  const std::string version_;
  std::mutex mu_;  // guards the series caches in *families_
  std::unique_ptr<Families> families_;
};

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_RUNTIME_PROBE_H_
