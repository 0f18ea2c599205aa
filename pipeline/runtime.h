// Runtime: `shortfall run` — the operator core on Kafka, at_least_once or
// exactly_once.
//
// One consumer in the group <application_id> reads the two input topics and
// the repartition topic; each assigned partition is a task with its own
// RocksDB store under <state_dir>/<application_id>/. Stage-one tasks (input
// partitions) decode, validate, check lateness, send bad and late records to
// the dead-letter topic and pre-aggregate the rest into the repartition
// topic; stage-two tasks (repartition partitions) keep the windowed volumes,
// run the detectors over each closed window and send the alert records
// (AlertLifecycle) to the alert topic, keyed by alert id, and to its JSON
// mirror when one is configured.
// docs/runtime.md describes the protocol and the commit order.
// at_least_once: outputs are flushed, then task state and offsets commit to
// the task's store, then the offsets commit to the group; a crash replays
// input since the last commit (duplicates possible, nothing lost).
// exactly_once: one Kafka transaction per commit holds the outputs, every
// state change (as records of the store's compacted changelog topic) and
// the input offsets; the RocksDB stores are written after it commits and
// remember the changelog offset they reflect, so a store that is behind or
// missing (another machine, an empty disk) catches up from the changelog
// before its task reads input.
//
// Thread-safety: Run() on one thread; RequestStop() from any thread or a
// signal handler (it only sets an atomic flag).
// Failure: configuration and topic problems fail Create(); a delivery that
// fails for good, an aborted transaction, a store that cannot commit, or a
// fatal consumer error end Run() with the error, without committing past
// what was stored. failed_on_state() tells a state-store failure (disk full:
// a new Runtime would fail again) from a Kafka one (a new Runtime, which
// restores from the stores and changelogs, resumes exactly where the last
// commit left off).
#ifndef SHORTFALL_PIPELINE_RUNTIME_H_
#define SHORTFALL_PIPELINE_RUNTIME_H_

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "operators/catalog.h"
#include "operators/invalid_reason.h"
#include "operators/volume.h"
#include "operators/volume_aggregator.h"
#include "pipeline/kafka_client.h"
#include "pipeline/rocksdb_state_store.h"
#include "pipeline/run_config.h"
#include "pipeline/runtime_probe.h"
#include "shortfall/v1/shortage_alert.pb.h"

namespace shortfall::pipeline {

struct RuntimeOptions {
  RunConfig config;
  // Stop once every assigned partition has been read to its end and the
  // results are committed (for backfills, tests and the demo).
  bool until_idle = false;
  // With until_idle: write this instance's all-time totals per series here
  // (the same CSV as `replay --totals-csv`).
  std::string totals_csv;
  // Called on the Run() thread with each alert record once the commit that
  // delivered it to the alert topic is done (for the demo and tests).
  std::function<void(const v1::ShortageAlert&)> on_alert;
  // Where the runtime reports its metrics (about once a second); null for
  // none. Must outlive the runtime.
  RuntimeProbe* probe = nullptr;
};

// One series of a stage-two task as of the end of Run(): what the demo's
// closing table shows.
struct SeriesRow {
  std::string group;
  std::string corridor;  // "MX-US-2304", or "*" for the group's total
  operators::VolumeDelta total;
  std::array<operators::VolumeDelta, operators::kMaxRollingWindows> rolling{};  // per window.rolling
  // The volume-drop detector's expected shipments over its window; nullopt
  // while it warms up.
  std::optional<double> expected_shipments;
};

// Counts since start, for the log and tests.
struct RuntimeStats {
  uint64_t records = 0;             // input records read by stage one
  std::array<uint64_t, 2> records_by_source{};  // by operators::EventSource
  uint64_t accepted = 0;
  uint64_t invalid = 0;             // sent to the DLQ with an InvalidReason
  std::array<uint64_t, operators::kInvalidReasonCount> invalid_by_reason{};
  uint64_t late = 0;                // sent to the DLQ as "late"
  uint64_t repartition_records = 0; // contribution records produced
  uint64_t watermark_records = 0;   // watermark records produced (one per repartition partition)
  uint64_t repartition_read = 0;    // records read by stage two
  uint64_t contributions = 0;       // contribution records applied by stage two
  uint64_t late_after_repartition = 0;
  uint64_t commits = 0;
  uint64_t windows_closed = 0;      // window reports from stage two
  uint64_t alerts = 0;              // alert records produced
  uint64_t restored_records = 0;    // changelog records applied to stores (exactly_once)
  uint64_t transactions = 0;        // transactions committed (exactly_once)
};

class Runtime : public RebalanceListener {
 public:
  // Connects, checks or creates the internal and output topics, subscribes.
  static Result<std::unique_ptr<Runtime>> Create(RuntimeOptions options,
                                                 const operators::Catalog& catalog, std::ostream& log);
  ~Runtime() override;

  // Processes until RequestStop() (or idle, with until_idle); commits and
  // leaves the group before returning.
  Status Run();
  void RequestStop() { stop_.store(true); }

  const RuntimeStats& stats() const { return stats_; }
  // After Run(): this instance's series and open alerts when it stopped.
  const std::vector<SeriesRow>& final_series() const { return final_series_; }
  const std::vector<v1::ShortageAlert>& open_alerts() const { return final_open_alerts_; }

  // {ready, reason} for /readyz: ready while Run() processes with partitions
  // assigned, their state restored, the brokers reachable and commits
  // going through. Thread-safe (reads atomics).
  std::pair<bool, std::string> Readiness() const;

  // After Run() failed: true when a state store could not be written (disk
  // full, unwritable directory), false for Kafka failures.
  bool failed_on_state() const { return state_failed_; }

  void OnAssigned(const std::vector<TopicPartition>& partitions) override;
  // Stage two starts where its store says (its state covers everything
  // before); with no local state, from the beginning of the repartition
  // topic, rebuilding the state from it. Stage one starts at the group's
  // offset (its store only holds a watermark; records the store already
  // covers are skipped).
  int64_t StartOffset(const TopicPartition& partition) override;
  void OnRevoked(const std::vector<TopicPartition>& partitions, bool lost) override;

 private:
  struct StageOneTask;
  struct StageTwoTask;

  Runtime(RuntimeOptions options, const operators::Catalog& catalog, std::ostream& log);
  Status Start();
  Status Process(const KafkaMessage& message);
  Status ProcessInput(StageOneTask& task, const KafkaMessage& message);
  Status ProcessRepartition(StageTwoTask& task, const KafkaMessage& message);
  // Runs the detectors over the windows just closed; produces alert records.
  Status Detect(StageTwoTask& task);
  Status DeadLetter(const KafkaMessage& message, std::string_view reason, std::string_view detail);
  // Drains stage one, flushes outputs, commits stores, then group offsets.
  // Only the tasks of `only` when given (a revocation).
  // `flush_timeout` bounds the wait for outputs to be delivered.
  Status Commit(const std::vector<TopicPartition>* only = nullptr, DurationMs flush_timeout = kCommitFlushTimeout);
  // Opens a task's store (creating its directory) and reads its checkpoint;
  // with exactly_once, first brings the store up to date from `changelog`.
  // Every store of this runtime shares block_cache_shared_.
  RocksDbStateStoreOptions StoreOptions() const;
  Status OpenStore(const TopicPartition& tp, const TopicPartition& changelog,
                   std::unique_ptr<RocksDbStateStore>* store, int64_t* restored_offset);
  // Applies `changelog` from offset `from` (-1: its beginning) to its end to
  // `store` (exactly_once).
  Status RestoreFromChangelog(const TopicPartition& changelog, RocksDbStateStore& store, int64_t from);
  // Produces, opening a transaction first under exactly_once.
  Status Send(const OutgoingRecord& record);
  // A task's part of a commit: its state changes and the offset they cover.
  struct PendingCommit {
    TopicPartition tp;
    RocksDbStateStore* store = nullptr;
    operators::StateWriteBatch batch;
    int64_t offset = -1;             // the next input offset
    int64_t* committed = nullptr;    // the task's offset as of its last commit
    const std::string* changelog = nullptr;  // the task's changelog topic (partition tp.partition)
  };
  // The last step of Commit: the outputs, the stores, the offsets.
  Status CommitAtLeastOnce(std::vector<PendingCommit>& pending, DurationMs flush_timeout);
  Status CommitTransaction(std::vector<PendingCommit>& pending, DurationMs flush_timeout);
  // Calls `step` (given a wait of at most 1 s) until it stops returning
  // kUnavailable; while it does the runtime reads not ready. While running
  // it waits for good (the transaction or record timeouts end a step that
  // cannot succeed); after a stop it gives up at `deadline` or
  // processing.shutdown_timeout after the stop, whichever comes first.
  Status RetryUnavailable(const std::function<Status(DurationMs)>& step,
                          std::chrono::steady_clock::time_point deadline);
  // Standby copies (processing.num_standby_replicas): UpdateStandbys opens a
  // store for each stage-two task not running here and points the standby
  // consumer at their changelog partitions, from each copy's checkpoint;
  // PollStandbys applies what has arrived, without waiting. A task assigned
  // here takes over its copy's store (OpenStageTwo) and restores the rest.
  Status UpdateStandbys();
  Status PollStandbys();
  // Marks a state-store failure for failed_on_state().
  Status StateFailure(Status s);
  bool exactly_once() const { return options_.config.guarantee == ProcessingGuarantee::kExactlyOnce; }
  Status OpenStageOne(const TopicPartition& tp);
  Status OpenStageTwo(const TopicPartition& tp);
  Result<bool> CaughtUp();
  Status WriteTotals();
  // Commit(), timed for the commit-duration metric.
  Status TimedCommit(DurationMs flush_timeout = kCommitFlushTimeout);

  // How long a commit waits for its outputs before giving up (and failing
  // the run without committing): librdkafka retries within it.
  static constexpr DurationMs kCommitFlushTimeout = 60 * kMsPerSecond;
  void CaptureFinalState();
  void PublishMetrics();
  // Adds what the task's dwell join counted since the last call to probe.
  void PublishDwellJoin(RuntimeProbe* probe, StageTwoTask* task);

  RuntimeOptions options_;
  const operators::Catalog& catalog_;
  std::ostream& log_;
  std::string repartition_topic_;
  int32_t repartition_partitions_ = 0;
  std::vector<std::pair<operators::EventSource, int32_t>> input_partitions_;  // expected sources
  std::unique_ptr<KafkaAdmin> admin_;  // topic checks at start; the brokers watch
  // RocksDB memory of every store of this runtime (state.block_cache_mb, state.write_buffer_mb).
  std::shared_ptr<SharedBlockCache> block_cache_shared_;
  std::unique_ptr<KafkaProducer> producer_;
  std::unique_ptr<KafkaConsumer> consumer_;
  std::unique_ptr<KafkaConsumer> restore_consumer_;  // exactly_once; made at the first restore
  std::unique_ptr<KafkaConsumer> standby_consumer_;  // with standby replicas
  std::map<int32_t, std::unique_ptr<RocksDbStateStore>> standbys_;  // by repartition partition
  bool in_transaction_ = false;
  bool failed_ = false;  // Run() is ending with an error: commit nothing more
  bool state_failed_ = false;
  int state_lock_fd_ = -1;  // flock on <state_dir>/<application_id>/.lock
  // Looked up per record by TopicPartitionRef (no string built).
  std::map<TopicPartition, std::unique_ptr<StageOneTask>, TopicPartitionLess> stage_one_;
  std::map<TopicPartition, std::unique_ptr<StageTwoTask>, TopicPartitionLess> stage_two_;
  bool uncommitted_ = false;  // records read since the last commit
  Status callback_error_;  // an error inside a rebalance callback, reported by Run()
  std::atomic<bool> stop_{false};
  RuntimeStats stats_;
  RuntimeStats published_;  // stats_ as of the last PublishMetrics()
  std::chrono::steady_clock::time_point last_publish_{};
  // Alert records produced since the last commit, for on_alert and metrics.
  std::vector<v1::ShortageAlert> uncommitted_alerts_;
  std::string alert_bytes_;  // scratch
  std::vector<SeriesRow> final_series_;
  std::vector<v1::ShortageAlert> final_open_alerts_;
  std::set<std::pair<std::string, std::string>> open_alert_keys_;  // (group, kind) ever reported open
  std::atomic<bool> running_{false};
  std::atomic<int> assigned_tasks_{0};
  std::atomic<int> restoring_tasks_{0};
  std::atomic<bool> commit_stalled_{false};
  std::atomic<bool> brokers_down_{false};  // set by WatchBrokers
  bool reported_brokers_down_ = false;      // as last logged
  // WatchBrokers runs on its own thread while Run() does: a metadata
  // request each second on admin_, for readiness.
  void WatchBrokers();
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;  // guarded by watch_mu_
};

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_RUNTIME_H_
