#include "pipeline/runtime.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include <librdkafka/rdkafka.h>

#include "base/time.h"
#include "operators/contribution_buffer.h"
#include "operators/event_decoder.h"
#include "operators/event_normalizer.h"
#include "operators/source_watermarks.h"
#include "operators/volume_aggregator.h"
#include "operators/shortage_detection.h"
#include "operators/watermark.h"
#include "pipeline/alert_format.h"
#include "pipeline/rocksdb_state_store.h"
#include "pipeline/scenario_producer.h"
#include "pipeline/totals_csv.h"
#include "shortfall/internal/repartition.pb.h"

namespace shortfall::pipeline {
namespace {

using operators::EventSource;
using operators::PartitionKey;

constexpr DurationMs kPollTimeout = 100;
constexpr auto kMetricsEvery = std::chrono::seconds(1);
constexpr std::string_view kAlertSchema = "shortfall.v1.ShortageAlert";

// Checkpoint blob of a task's store. at_least_once: "offset=N", the next
// input offset to read. exactly_once: "changelog=N", the next changelog
// offset the store has not applied.
constexpr std::string_view kOffsetCheckpoint = "offset=";
constexpr std::string_view kChangelogCheckpoint = "changelog=";

std::string EncodeCheckpoint(std::string_view kind, int64_t offset) {
  return std::string(kind) + std::to_string(offset);
}

// The offset of a checkpoint of `kind`; -1 for none. A checkpoint of the
// other kind means the store was written under the other guarantee.
Result<int64_t> DecodeCheckpoint(const std::string& blob, std::string_view kind, const std::string& dir) {
  if (blob.empty()) return int64_t{-1};
  int64_t v = 0;
  const bool prefixed = blob.rfind(kind, 0) == 0;
  auto [p, ec] = std::from_chars(blob.data() + (prefixed ? kind.size() : 0), blob.data() + blob.size(), v);
  if (prefixed && ec == std::errc() && p == blob.data() + blob.size()) return v;
  const bool other = blob.rfind(kind == kOffsetCheckpoint ? kChangelogCheckpoint : kOffsetCheckpoint, 0) == 0;
  if (other) {
    return FailedPreconditionError(
        "the state in '" + dir + "' was written under processing.guarantee " +
        (kind == kOffsetCheckpoint ? "exactly_once" : "at_least_once") +
        " (checkpoint '" + blob + "'); run with that guarantee, or use a new application_id to switch");
  }
  return DataLossError("task checkpoint '" + blob + "' in '" + dir + "' is not an offset");
}

// Changelog record key: "<namespace>/<key>" ('/' never occurs in a namespace).
std::string ChangelogKey(const operators::StateMutation& m) { return m.ns + "/" + m.key; }

// Store names: the changelog topic of each is <application_id>-<name>-changelog.
constexpr std::string_view kVolumesStore = "volumes";
std::string_view WatermarkStore(EventSource source) {
  return source == EventSource::kShipments ? "shipments-watermarks" : "customs-watermarks";
}

// A DLQ record must fit the producer's message.max.bytes (librdkafka's
// default 1,000,000): longer keys and values are cut, and a
// shortfall.*.truncated_from header gives the original size; original
// headers past 64 KiB are left out (shortfall.headers.dropped_bytes). The
// source headers point to the whole record in its input topic.
constexpr size_t kMaxDeadLetterValue = 512 * 1024;
constexpr size_t kMaxDeadLetterKey = 64 * 1024;
constexpr size_t kMaxDeadLetterHeaders = 64 * 1024;  // original headers kept, names and values

// This instance's id: a random hex string kept in the state directory, so
// a restart on the same state keeps its transactional.id (and so fences
// and aborts what its previous run left open).
Result<std::string> InstanceId(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / "instance.id";
  std::string id;
  if (std::ifstream in(file); in && std::getline(in, id) && !id.empty()) return id;
  std::random_device random;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%08x%08x", random(), random());
  id = hex;
  std::ofstream out(file, std::ios::trunc);
  out << id << "\n";
  out.close();
  if (!out) return UnavailableError("cannot write '" + file.string() + "'");
  return id;
}

// The state change a changelog record carries (ChangelogKey; a null value is
// a delete), added to *writes.
Status AddChangelogRecord(const KafkaMessage& m, operators::StateWriteBatch* writes) {
  const std::string_view key = m.key();
  const size_t slash = key.find('/');
  if (slash == std::string_view::npos || !operators::IsValidNamespace(key.substr(0, slash))) {
    return DataLossError(std::string(m.topic()) + "[" + std::to_string(m.partition()) + "]@" + std::to_string(m.offset()) +
                         " is not a state record");
  }
  if (m.value_is_null()) {
    writes->Delete(key.substr(0, slash), key.substr(slash + 1));
  } else {
    writes->Put(key.substr(0, slash), key.substr(slash + 1), m.value());
  }
  return OkStatus();
}

KafkaProperties ClientProperties(const RunConfig& config, const KafkaProperties& role) {
  KafkaProperties props = {{"bootstrap.servers", config.brokers}};
  props.insert(props.end(), config.kafka_common.begin(), config.kafka_common.end());
  props.insert(props.end(), role.begin(), role.end());
  return props;
}

std::string TaskDir(const RunConfig& config, const TopicPartition& tp) {
  return (std::filesystem::path(config.state_dir) / config.application_id /
          (tp.topic + "-" + std::to_string(tp.partition)))
      .string();
}

}  // namespace

struct Runtime::StageOneTask {
  StageOneTask(const operators::Catalog& catalog, const RunConfig& config, EventSource src)
      : source(src),
        normalizer(catalog, config.pipeline.normalizer, &corridors),
        watermarks(config.pipeline.window.allowed_lateness),
        buffer(config.pipeline.window.bucket) {}
  EventSource source;
  std::unique_ptr<RocksDbStateStore> store;
  std::string changelog;          // the store's changelog topic (exactly_once), partition = the task's
  int64_t committed_offset = -1;  // the offset of the last commit
  operators::CorridorTable corridors;
  operators::EventNormalizer normalizer;
  operators::WatermarkTracker watermarks;
  operators::ContributionBuffer buffer;
  int64_t next_offset = -1;      // to commit; -1 before the first record
  int64_t restored_offset = -1;  // records below it were processed before a restart
  TimestampMs sent_watermark = kMinTimestamp;
  bool sent_idle = false;
  std::optional<std::chrono::steady_clock::time_point> caught_up_since;
  bool sent_any = false;         // a watermark record has gone out since the task opened
  // Record time of the first record read since the last commit: the oldest
  // the commit covers, for the publish -> state-committed latency.
  TimestampMs oldest_uncommitted_record = 0;
  operators::NormalizedEvent event;
  v1::ShipmentEvent shipment;
  v1::CustomsEvent customs;
};

struct Runtime::StageTwoTask {
  StageTwoTask(const RunConfig& config, const std::vector<std::string>& group_names)
      : aggregator(config.pipeline.window, group_names, &corridors),
        dwell_join(config.pipeline.detection.dwell_join, group_names, &corridors),
        detection(config.pipeline.detection, config.pipeline.window, group_names, &corridors) {}
  std::unique_ptr<RocksDbStateStore> store;
  std::string changelog;  // as StageOneTask's
  int64_t committed_offset = -1;
  operators::CorridorTable corridors;
  operators::VolumeAggregator aggregator;
  operators::DwellJoin dwell_join;
  operators::DwellJoinCounters published_join;  // dwell_join's counters as last published
  operators::ShortageDetection detection;
  operators::SourceWatermarks sources;
  std::vector<v1::ShortageAlert> alerts;
  int64_t next_offset = -1;
  int64_t restored_offset = -1;
  std::vector<operators::WindowReport> reports;
  internal::RepartitionRecord record;
};

Runtime::Runtime(RuntimeOptions options, const operators::Catalog& catalog, std::ostream& log)
    : options_(std::move(options)),
      catalog_(catalog),
      log_(log),
      block_cache_shared_(std::make_shared<SharedBlockCache>(static_cast<size_t>(options_.config.state_block_cache_mb) << 20,
                                                             static_cast<size_t>(options_.config.WriteBufferMb()) << 20)) {}

Runtime::~Runtime() {
  if (consumer_) consumer_->Close().IgnoreError();  // Run() closes; this is the error path
  // Tasks (and their RocksDB stores) go before the lock that guards them.
  stage_one_.clear();
  stage_two_.clear();
  standbys_.clear();
  if (state_lock_fd_ >= 0) ::close(state_lock_fd_);
}

Result<std::unique_ptr<Runtime>> Runtime::Create(RuntimeOptions options,
                                                 const operators::Catalog& catalog,
                                                 std::ostream& log) {
  SHORTFALL_RETURN_IF_ERROR(ValidateRunConfig(options.config));
  if (Status s = options.config.pipeline.detection.Validate(options.config.pipeline.window,
                                                            operators::CountedGroupNames(catalog));
      !s.ok()) {
    return InvalidArgumentError("detection." + s.message());
  }
  std::unique_ptr<Runtime> runtime(new Runtime(std::move(options), catalog, log));
  SHORTFALL_RETURN_IF_ERROR(runtime->Start());
  return runtime;
}

Status Runtime::Start() {
  const RunConfig& c = options_.config;
  repartition_topic_ = RepartitionTopicName(c);
  // One process per state directory: two would share stores and, under
  // exactly_once, a transactional.id, and fence each other.
  const std::filesystem::path app_dir = std::filesystem::path(c.state_dir) / c.application_id;
  std::error_code ec;
  std::filesystem::create_directories(app_dir, ec);
  // Failures here are not retried (FailedPrecondition): the directory needs a person.
  if (ec) return FailedPreconditionError("state.dir: cannot create '" + app_dir.string() + "': " + ec.message());
  const std::string lock_path = (app_dir / ".lock").string();
  state_lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (state_lock_fd_ < 0) {
    return FailedPreconditionError("state.dir: cannot open '" + lock_path + "': " + std::strerror(errno));
  }
  if (::flock(state_lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return FailedPreconditionError("state.dir: '" + app_dir.string() +
                                   "' is in use by another shortfall process; give each instance its own");
  }
  SHORTFALL_ASSIGN_OR_RETURN(admin_, KafkaAdmin::Create(ClientProperties(c, c.kafka_common)));
  KafkaAdmin* admin = admin_.get();
  if (exactly_once() && admin->IsEmbeddedBroker(10 * kMsPerSecond)) {
    return FailedPreconditionError(
        "processing.guarantee: exactly_once needs a real Kafka broker; the embedded broker (librdkafka's mock "
        "cluster) only imitates transactions (read_committed readers see aborted records)");
  }
  // Inputs must exist: their partition counts are the sources stage two waits for.
  for (const auto& [topic, source] : {std::pair{c.topics.shipments, EventSource::kShipments},
                                      std::pair{c.topics.customs, EventSource::kCustoms}}) {
    Result<int32_t> n = admin->PartitionCount(topic, 30 * kMsPerSecond);
    if (!n.ok()) return n.status().WithContext("input topic '" + topic + "'");
    for (int32_t p = 0; p < *n; ++p) input_partitions_.emplace_back(source, p);
  }
  SHORTFALL_RETURN_IF_ERROR(admin->EnsureTopic(repartition_topic_, c.repartition_partitions,
                                               c.replication_factor, {}, 30 * kMsPerSecond));
  SHORTFALL_ASSIGN_OR_RETURN(repartition_partitions_, admin->PartitionCount(repartition_topic_));
  for (const std::string& topic : {c.topics.dlq, c.topics.alerts}) {
    SHORTFALL_RETURN_IF_ERROR(
        admin->EnsureTopic(topic, c.repartition_partitions, c.replication_factor, {}, 30 * kMsPerSecond));
  }
  KafkaProperties producer_props = ClientProperties(c, c.kafka_producer);
  // exactly_once: each store's changelog topic, with its partition count.
  std::vector<std::pair<std::string, int32_t>> changelogs;
  if (exactly_once()) {
    changelogs.emplace_back(ChangelogTopicName(c, kVolumesStore), repartition_partitions_);
    for (EventSource source : {EventSource::kShipments, EventSource::kCustoms}) {
      const auto n = std::count_if(input_partitions_.begin(), input_partitions_.end(),
                                   [&](const auto& p) { return p.first == source; });
      changelogs.emplace_back(ChangelogTopicName(c, WatermarkStore(source)), static_cast<int32_t>(n));
    }
    for (const auto& [topic, partitions] : changelogs) {
      SHORTFALL_RETURN_IF_ERROR(admin->EnsureTopic(topic, partitions, c.replication_factor,
                                                   {{"cleanup.policy", "compact"}}, 30 * kMsPerSecond));
    }
    Result<std::string> instance = InstanceId(app_dir);
    if (!instance.ok()) return FailedPreconditionError("state.dir: " + instance.status().message());
    const std::string timeout = std::to_string(TransactionTimeout(c));
    for (const auto& [name, value] :
         {std::pair<std::string, std::string>{"transactional.id", c.application_id + "-" + *instance},
          {"transaction.timeout.ms", timeout},
          // A record not delivered within the transaction's life fails it.
          {"message.timeout.ms", timeout}}) {
      if (!HasProperty(producer_props, name)) producer_props.emplace_back(name, value);
    }
  }
  SHORTFALL_ASSIGN_OR_RETURN(producer_, KafkaProducer::Create(producer_props));
  if (exactly_once()) {
    for (const auto& [topic, partitions] : changelogs) {
      producer_->TrackOffsets(topic);
      // At 0 from the start: a series born at its first increment shows no rate().
      if (options_.probe != nullptr) options_.probe->AddRestored(topic, 0);
    }
    // Fences an older run with this transactional.id and aborts what it left open.
    SHORTFALL_RETURN_IF_ERROR(producer_->InitTransactions(30 * kMsPerSecond));
  }
  SHORTFALL_ASSIGN_OR_RETURN(consumer_,
                             KafkaConsumer::Create(ClientProperties(c, c.kafka_consumer), c.application_id));
  SHORTFALL_RETURN_IF_ERROR(
      consumer_->Subscribe({c.topics.shipments, c.topics.customs, repartition_topic_}, this));
  log_ << "shortfall run: group " << c.application_id << ", " << input_partitions_.size()
       << " input partitions, " << repartition_partitions_ << " repartition partitions ("
       << repartition_topic_ << "), guarantee " << GuaranteeName(c.guarantee) << "\n";
  return OkStatus();
}

RocksDbStateStoreOptions Runtime::StoreOptions() const {
  RocksDbStateStoreOptions store;
  store.shared_cache = block_cache_shared_;
  return store;
}

Status Runtime::OpenStore(const TopicPartition& tp, const TopicPartition& changelog,
                          std::unique_ptr<RocksDbStateStore>* store, int64_t* restored_offset) {
  const std::string dir = TaskDir(options_.config, tp);
  Result<std::unique_ptr<RocksDbStateStore>> opened = RocksDbStateStore::Open(dir, StoreOptions());
  if (!opened.ok()) return StateFailure(opened.status());
  *store = std::move(opened).value();
  SHORTFALL_ASSIGN_OR_RETURN(std::string checkpoint, (*store)->LastCheckpoint());
  if (!exactly_once()) {
    SHORTFALL_ASSIGN_OR_RETURN(*restored_offset, DecodeCheckpoint(checkpoint, kOffsetCheckpoint, dir));
    return OkStatus();
  }
  // The group's offsets commit with the changelog: the task starts there.
  *restored_offset = -1;
  SHORTFALL_ASSIGN_OR_RETURN(int64_t applied, DecodeCheckpoint(checkpoint, kChangelogCheckpoint, dir));
  return RestoreFromChangelog(changelog, **store, applied);
}

Status Runtime::RestoreFromChangelog(const TopicPartition& changelog, RocksDbStateStore& store, int64_t from) {
  const RunConfig& c = options_.config;
  if (restore_consumer_ == nullptr) {
    SHORTFALL_ASSIGN_OR_RETURN(restore_consumer_, KafkaConsumer::Create(ClientProperties(c, c.kafka_consumer), ""));
  }
  int64_t low = 0;
  int64_t high = 0;
  const RdKafka::ErrorCode err = restore_consumer_->handle()->query_watermark_offsets(
      changelog.topic, changelog.partition, &low, &high, 30 * kMsPerSecond);
  const std::string name = changelog.topic + "[" + std::to_string(changelog.partition) + "]";
  if (err != RdKafka::ERR_NO_ERROR) {
    return UnavailableError("restore: offsets of " + name + ": " + RdKafka::err2str(err));
  }
  if (from > high) {
    return DataLossError("the store in '" + store.dir() + "' has applied " + name + " up to offset " +
                         std::to_string(from) + " but the changelog ends at " + std::to_string(high) +
                         " (was the topic deleted?); remove the directory to rebuild it from the changelog");
  }
  const int64_t start = std::max(from, low);
  if (start >= high) return OkStatus();  // current
  const auto began = std::chrono::steady_clock::now();
  log_ << "shortfall run: restoring " << store.dir() << " from " << name << " offsets " << start << " to " << high
       << "\n";
  restoring_tasks_.fetch_add(1);
  struct Done {
    std::atomic<int>& n;
    ~Done() { n.fetch_sub(1); }
  } done{restoring_tasks_};
  SHORTFALL_RETURN_IF_ERROR(restore_consumer_->Assign({{changelog.topic, changelog.partition, start}}));
  std::vector<KafkaMessage> batch;
  operators::StateWriteBatch writes;
  uint64_t applied = 0;
  int64_t restored_to = -1;  // the next changelog offset, once something is applied
  auto last_progress = began;
  for (;;) {
    if (stop_.load()) return AbortedError("stopped while restoring " + store.dir());
    if (const auto now = std::chrono::steady_clock::now(); now - last_progress >= std::chrono::seconds(5)) {
      log_ << "shortfall run: restoring " << store.dir() << ": " << applied << " records so far\n";
      last_progress = now;
    }
    batch.clear();
    SHORTFALL_ASSIGN_OR_RETURN(size_t n, restore_consumer_->ConsumeBatch(10000, 200, &batch));
    writes.Clear();
    int64_t next = -1;
    for (const KafkaMessage& m : batch) {
      SHORTFALL_RETURN_IF_ERROR(AddChangelogRecord(m, &writes));
      next = m.offset() + 1;
    }
    if (next >= 0) {
      // Unlogged, checkpoint at the end: a crash before it restores again
      // from `from`, and the changelog applied again in order gives the same.
      if (Status s = store.ApplyUnlogged(writes); !s.ok()) return StateFailure(s);
      applied += n;
      restored_to = next;
      if (options_.probe != nullptr) options_.probe->AddRestored(changelog.topic, n);
    }
    Result<int64_t> lag = restore_consumer_->Lag(changelog);
    if (lag.ok() && *lag == 0) break;
  }
  if (restored_to >= 0) {
    if (Status s = store.FlushAll(); !s.ok()) return StateFailure(s);
    writes.Clear();
    if (Status s = store.Commit(writes, EncodeCheckpoint(kChangelogCheckpoint, restored_to)); !s.ok()) {
      return StateFailure(s);
    }
  }
  SHORTFALL_RETURN_IF_ERROR(restore_consumer_->Assign({}));
  stats_.restored_records += applied;
  log_ << "shortfall run: restored " << applied << " records into " << store.dir() << " in "
       << std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count() << " s\n";
  return OkStatus();
}

Status Runtime::UpdateStandbys() {
  const RunConfig& c = options_.config;
  if (c.num_standby_replicas == 0) return OkStatus();
  const std::string changelog = ChangelogTopicName(c, kVolumesStore);
  std::vector<TopicPartitionOffset> follow;
  for (int32_t p = 0; p < repartition_partitions_; ++p) {
    const TopicPartition tp{repartition_topic_, p};
    if (stage_two_.count(tp)) {
      standbys_.erase(p);  // active here
      continue;
    }
    auto it = standbys_.find(p);
    if (it == standbys_.end()) {
      Result<std::unique_ptr<RocksDbStateStore>> opened = RocksDbStateStore::Open(TaskDir(c, tp), StoreOptions());
      if (!opened.ok()) return StateFailure(opened.status());
      it = standbys_.emplace(p, std::move(opened).value()).first;
    }
    SHORTFALL_ASSIGN_OR_RETURN(std::string checkpoint, it->second->LastCheckpoint());
    SHORTFALL_ASSIGN_OR_RETURN(int64_t next, DecodeCheckpoint(checkpoint, kChangelogCheckpoint, it->second->dir()));
    follow.push_back({changelog, p, next >= 0 ? next : kOffsetBeginning});
  }
  if (standby_consumer_ == nullptr) {
    SHORTFALL_ASSIGN_OR_RETURN(standby_consumer_, KafkaConsumer::Create(ClientProperties(c, c.kafka_consumer), ""));
  }
  log_ << "shortfall run: standby copies of " << follow.size() << " stage-two tasks\n";
  return standby_consumer_->Assign(follow);
}

Status Runtime::PollStandbys() {
  if (standby_consumer_ == nullptr || standbys_.empty()) return OkStatus();
  std::vector<KafkaMessage> batch;
  SHORTFALL_ASSIGN_OR_RETURN(size_t n, standby_consumer_->ConsumeBatch(10000, 0, &batch));
  if (n == 0) return OkStatus();
  std::map<int32_t, std::pair<operators::StateWriteBatch, int64_t>> writes;  // partition -> (batch, next offset)
  for (const KafkaMessage& m : batch) {
    auto& [w, next] = writes[m.partition()];
    SHORTFALL_RETURN_IF_ERROR(AddChangelogRecord(m, &w));
    next = m.offset() + 1;
  }
  for (auto& [p, w] : writes) {
    auto it = standbys_.find(p);
    if (it == standbys_.end()) continue;  // became active meanwhile; its restore reads these again
    SHORTFALL_RETURN_IF_ERROR(StateFailure(it->second->Commit(w.first, EncodeCheckpoint(kChangelogCheckpoint, w.second))));
  }
  return OkStatus();
}

Status Runtime::StateFailure(Status s) {
  if (!s.ok()) state_failed_ = true;
  return s;
}

Status Runtime::Send(const OutgoingRecord& record) {
  if (exactly_once() && !in_transaction_) {
    SHORTFALL_RETURN_IF_ERROR(producer_->BeginTransaction());
    in_transaction_ = true;
  }
  return producer_->Produce(record);
}

Status Runtime::OpenStageOne(const TopicPartition& tp) {
  const RunConfig& c = options_.config;
  const EventSource source = tp.topic == c.topics.shipments ? EventSource::kShipments : EventSource::kCustoms;
  auto task = std::make_unique<StageOneTask>(catalog_, c, source);
  task->changelog = ChangelogTopicName(c, WatermarkStore(source));
  SHORTFALL_RETURN_IF_ERROR(OpenStore(tp, {task->changelog, tp.partition}, &task->store, &task->restored_offset));
  SHORTFALL_RETURN_IF_ERROR(task->watermarks.Restore(*task->store));
  task->sent_watermark = task->watermarks.PartitionWatermark(PartitionKey{source, tp.partition});
  stage_one_[tp] = std::move(task);
  return OkStatus();
}

Status Runtime::OpenStageTwo(const TopicPartition& tp) {
  standbys_.erase(tp.partition);  // its store becomes the task's (and catches up from where it is)
  auto task = std::make_unique<StageTwoTask>(options_.config, operators::CountedGroupNames(catalog_));
  task->changelog = ChangelogTopicName(options_.config, kVolumesStore);
  SHORTFALL_RETURN_IF_ERROR(OpenStore(tp, {task->changelog, tp.partition}, &task->store, &task->restored_offset));
  SHORTFALL_RETURN_IF_ERROR(task->aggregator.Restore(*task->store));
  SHORTFALL_RETURN_IF_ERROR(task->dwell_join.Restore(*task->store));
  task->published_join = task->dwell_join.counters();  // earlier counts were published where they happened
  SHORTFALL_RETURN_IF_ERROR(task->detection.Restore(*task->store));
  SHORTFALL_RETURN_IF_ERROR(task->sources.Restore(*task->store));
  for (const auto& [source, partition] : input_partitions_) task->sources.Expect(PartitionKey{source, partition});
  stage_two_[tp] = std::move(task);
  return OkStatus();
}

int64_t Runtime::StartOffset(const TopicPartition& tp) {
  // exactly_once: the group's offsets commit with the changelog.
  if (tp.topic != repartition_topic_ || exactly_once()) return kOffsetStored;
  if (!stage_two_.count(tp)) {
    Status s = OpenStageTwo(tp);
    if (!s.ok()) {
      if (callback_error_.ok()) callback_error_ = s.WithContext("opening task " + tp.topic + "-" + std::to_string(tp.partition));
      return kOffsetStored;
    }
  }
  const int64_t restored = stage_two_[tp]->restored_offset;
  return restored >= 0 ? restored : kOffsetBeginning;
}

void Runtime::OnAssigned(const std::vector<TopicPartition>& partitions) {
  for (const TopicPartition& tp : partitions) {
    if (stage_one_.count(tp) || stage_two_.count(tp)) continue;  // opened by StartOffset
    Status s = tp.topic == repartition_topic_ ? OpenStageTwo(tp) : OpenStageOne(tp);
    if (!s.ok() && callback_error_.ok()) callback_error_ = s.WithContext("opening task " + tp.topic + "-" + std::to_string(tp.partition));
  }
  assigned_tasks_.store(static_cast<int>(stage_one_.size() + stage_two_.size()));
  log_ << "shortfall run: assigned " << partitions.size() << " partitions (" << stage_one_.size()
       << " input, " << stage_two_.size() << " repartition tasks)\n";
  if (Status s = UpdateStandbys(); !s.ok() && callback_error_.ok()) callback_error_ = s.WithContext("standby copies");
}

void Runtime::OnRevoked(const std::vector<TopicPartition>& partitions, bool lost) {
  if (lost && exactly_once() && callback_error_.ok()) {
    // The open transaction holds work of the lost tasks; it must not commit.
    callback_error_ = AbortedError("partitions lost (session timeout?); the open transaction is abandoned");
  }
  // Never after a failure: the in-memory state and offsets are then ahead of
  // outputs that may not have been delivered (or were aborted).
  if (!lost && callback_error_.ok() && !failed_) {
    Status s = Commit(&partitions);
    if (!s.ok()) callback_error_ = s.WithContext("committing revoked partitions");
  }
  for (const TopicPartition& tp : partitions) {
    if (options_.probe != nullptr) {
      options_.probe->RemovePartition(tp.topic, tp.partition);
      // The task's series now report from their new owner.
      if (auto it = stage_two_.find(tp); it != stage_two_.end()) {
        for (const operators::SeriesSummary& summary : it->second->aggregator.Summaries()) {
          options_.probe->RemoveSeries(it->second->aggregator.group_name(summary.series.group),
                                       it->second->corridors.Code(summary.series.corridor));
        }
      }
    }
    stage_one_.erase(tp);
    stage_two_.erase(tp);
  }
  assigned_tasks_.store(static_cast<int>(stage_one_.size() + stage_two_.size()));
  log_ << "shortfall run: " << (lost ? "lost " : "revoked ") << partitions.size() << " partitions\n";
  // A task given away stays here as a standby copy (when configured).
  if (running_.load()) {
    if (Status s = UpdateStandbys(); !s.ok() && callback_error_.ok()) callback_error_ = s.WithContext("standby copies");
  }
}

Status Runtime::DeadLetter(const KafkaMessage& message, std::string_view reason, std::string_view detail) {
  OutgoingRecord r;
  r.topic = options_.config.topics.dlq;
  r.key = message.key();
  r.value = message.value();
  if (r.key.size() > kMaxDeadLetterKey) {
    r.headers.emplace_back("shortfall.key.truncated_from", std::to_string(r.key.size()));
    r.key = r.key.substr(0, kMaxDeadLetterKey);
  }
  if (r.value.size() > kMaxDeadLetterValue) {
    r.headers.emplace_back("shortfall.value.truncated_from", std::to_string(r.value.size()));
    r.value = r.value.substr(0, kMaxDeadLetterValue);
  }
  size_t kept = 0;
  size_t dropped = 0;
  for (const auto& [name, value] : message.headers()) {
    const size_t size = name.size() + value.size();
    if (kept + size > kMaxDeadLetterHeaders) {
      dropped += size;
      continue;
    }
    kept += size;
    r.headers.emplace_back(name, value);
  }
  if (dropped > 0) r.headers.emplace_back("shortfall.headers.dropped_bytes", std::to_string(dropped));
  r.headers.emplace_back("shortfall.reason", std::string(reason));
  r.headers.emplace_back("shortfall.detail", operators::PrintableDetail(detail));
  r.headers.emplace_back("shortfall.source.topic", message.topic());
  r.headers.emplace_back("shortfall.source.partition", std::to_string(message.partition()));
  r.headers.emplace_back("shortfall.source.offset", std::to_string(message.offset()));
  return Send(r);
}

Status Runtime::ProcessInput(StageOneTask& task, const KafkaMessage& message) {
  ++stats_.records;
  ++stats_.records_by_source[static_cast<size_t>(task.source)];
  const operators::PayloadFormat format =
      operators::PayloadFormatFromContentType(message.header(kContentTypeHeader));
  rd_kafka_timestamp_type_t ts_type;
  const int64_t ts = message.timestamp(&ts_type);
  const TimestampMs record_time = ts_type != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? ts : 0;
  if (task.oldest_uncommitted_record == 0) task.oldest_uncommitted_record = record_time;
  std::optional<operators::Invalid> bad;
  if (task.source == EventSource::kShipments) {
    bad = operators::DecodeShipmentEvent(message.value(), format, &task.shipment);
    if (!bad) bad = task.normalizer.Normalize(task.shipment, record_time, &task.event);
  } else {
    bad = operators::DecodeCustomsEvent(message.value(), format, &task.customs);
    if (!bad) bad = task.normalizer.Normalize(task.customs, record_time, &task.event);
  }
  if (bad) {
    ++stats_.invalid;
    ++stats_.invalid_by_reason[static_cast<size_t>(bad->reason)];
    return DeadLetter(message, operators::InvalidReasonName(bad->reason), bad->detail);
  }
  const PartitionKey key{task.source, message.partition()};
  if (task.event.actual && task.watermarks.Admit(key, task.event.event_time) == operators::Admission::kLate) {
    ++stats_.late;
    return DeadLetter(message, operators::kLateReasonName,
                      "event_time " + FormatUtc(task.event.event_time) + " is before the partition watermark " +
                          FormatUtc(task.watermarks.PartitionWatermark(key)));
  }
  ++stats_.accepted;
  for (const operators::GroupContribution& c : task.event.groups) {
    task.buffer.Add(c.group, task.event.corridor, task.event.event_time, c.delta);
    if (task.event.dwell != operators::DwellRole::kNone && c.group != task.normalizer.unclassified_group()) {
      task.buffer.AddDwellMarker(c.group, task.event.corridor, task.event.event_time, task.event.dwell,
                                 task.event.shipment_id);
    }
  }
  return OkStatus();
}

Status Runtime::ProcessRepartition(StageTwoTask& task, const KafkaMessage& message) {
  ++stats_.repartition_read;
  const std::string_view value = message.value();
  if (!task.record.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
      task.record.source_topic() > 1) {
    // Only shortfall writes this topic; a bad record here is a bug or a
    // foreign writer. Count it and go on rather than stall the partition.
    log_ << "shortfall run: skipping undecodable repartition record at " << message.topic() << "-"
         << message.partition() << "@" << message.offset() << "\n";
    return OkStatus();
  }
  const internal::RepartitionRecord& r = task.record;
  const PartitionKey source{static_cast<EventSource>(r.source_topic()), r.source_partition()};
  if (r.has_contribution()) {
    const internal::VolumeContribution& c = r.contribution();
    const std::optional<operators::GroupId> group = operators::FindCountedGroup(catalog_, c.group());
    std::optional<operators::CorridorId> corridor = task.corridors.InternCode(c.corridor());
    if (!group || !corridor) {
      log_ << "shortfall run: repartition record for unknown group or corridor '" << c.group() << "' '"
           << c.corridor() << "' (another catalog?); skipped\n";
      return OkStatus();
    }
    const operators::VolumeDelta delta = operators::FromState(c.volume());
    ++stats_.contributions;
    if (!task.aggregator.AddToSeries(operators::SeriesKey{*group, *corridor}, c.bucket_start_ms(), delta)) {
      ++stats_.late_after_repartition;
    }
    for (const internal::DwellMarker& m : c.dwell_markers()) {
      const auto role = static_cast<operators::DwellRole>(m.role());
      if (*corridor == operators::kAllCorridors ||
          (role != operators::DwellRole::kArrival && role != operators::DwellRole::kRelease)) {
        continue;  // not written by this version's stage one
      }
      task.dwell_join.Offer(*group, m.shipment_id(), role, m.event_time_ms(), *corridor, &task.aggregator);
    }
  }
  task.sources.Update(source, r.source_watermark_ms(), r.source_idle());
  task.reports.clear();
  task.aggregator.AdvanceTo(task.sources.Combined(), &task.reports);
  task.dwell_join.Expire(task.aggregator.closed_until());
  stats_.windows_closed += task.reports.size();
  return Detect(task);
}

Status Runtime::Detect(StageTwoTask& task) {
  task.alerts.clear();
  task.detection.Detect(task.reports, &task.alerts);
  const TopicNames& topics = options_.config.topics;
  for (v1::ShortageAlert& alert : task.alerts) {
    alert.SerializeToString(&alert_bytes_);
    // The alert id as key: every record of one alert lands on one partition,
    // in order, and a compacted topic keeps each alert's latest state.
    SHORTFALL_RETURN_IF_ERROR(Send(
        {.topic = topics.alerts,
         .key = alert.alert_id(),
         .value = alert_bytes_,
         .headers = {{std::string(kContentTypeHeader), std::string(kProtobufContentType)},
                     {"shortfall.schema", std::string(kAlertSchema)}}}));
    if (!topics.alerts_json.empty()) {
      SHORTFALL_ASSIGN_OR_RETURN(std::string json, FormatAlertJson(alert));
      SHORTFALL_RETURN_IF_ERROR(Send(
          {.topic = topics.alerts_json,
           .key = alert.alert_id(),
           .value = json,
           .headers = {{std::string(kContentTypeHeader), std::string(kJsonContentType)},
                       {"shortfall.schema", std::string(kAlertSchema)}}}));
    }
    ++stats_.alerts;
    uncommitted_alerts_.push_back(std::move(alert));
  }
  return OkStatus();
}

Status Runtime::Process(const KafkaMessage& message) {
  const TopicPartitionRef tp{message.topic(), message.partition()};
  if (auto it = stage_one_.find(tp); it != stage_one_.end()) {
    StageOneTask& task = *it->second;
    // Below restored_offset: in the store already (a crash after the store's
    // commit and before the group's); skipped, but the group's offset moves.
    if (message.offset() >= task.restored_offset) SHORTFALL_RETURN_IF_ERROR(ProcessInput(task, message));
    task.next_offset = message.offset() + 1;
    return OkStatus();
  }
  if (auto it = stage_two_.find(tp); it != stage_two_.end()) {
    StageTwoTask& task = *it->second;
    if (message.offset() >= task.restored_offset) SHORTFALL_RETURN_IF_ERROR(ProcessRepartition(task, message));
    task.next_offset = message.offset() + 1;
    return OkStatus();
  }
  return OkStatus();  // a partition revoked while its messages were in the batch
}

Status Runtime::Commit(const std::vector<TopicPartition>* only, DurationMs flush_timeout) {
  // exactly_once commits every task: one transaction holds all their outputs.
  if (exactly_once()) only = nullptr;
  const auto selected = [&](const TopicPartition& tp) {
    return only == nullptr || std::find(only->begin(), only->end(), tp) != only->end();
  };
  // 1. Stage one: partial sums, then each source's watermark to every
  //    repartition partition (after its contributions: docs/runtime.md).
  std::vector<operators::ContributionBuffer::Entry> entries;
  internal::RepartitionRecord record;
  std::string bytes;
  for (auto& [tp, task_ptr] : stage_one_) {
    if (!selected(tp)) continue;
    StageOneTask& task = *task_ptr;
    const PartitionKey key{task.source, tp.partition};
    entries.clear();
    task.buffer.Drain(&entries);
    record.Clear();
    record.set_source_topic(static_cast<uint32_t>(task.source));
    record.set_source_partition(tp.partition);
    record.set_source_watermark_ms(task.sent_watermark);
    for (const auto& e : entries) {
      internal::VolumeContribution* c = record.mutable_contribution();
      c->set_group(std::string(task.normalizer.GroupName(e.series.group)));
      c->set_corridor(task.corridors.Code(e.series.corridor));
      c->set_bucket_start_ms(e.bucket_start);
      operators::ToState(e.volume, c->mutable_volume());
      c->clear_dwell_markers();
      for (const operators::ContributionBuffer::Marker& m : e.markers) {
        internal::DwellMarker* out = c->add_dwell_markers();
        out->set_shipment_id(m.shipment_id);
        out->set_role(static_cast<uint32_t>(m.role));
        out->set_event_time_ms(m.event_time);
      }
      record.SerializeToString(&bytes);
      // Keyed by group: all series of a group meet in one stage-two task (docs/runtime.md).
      SHORTFALL_RETURN_IF_ERROR(Send({.topic = repartition_topic_, .key = c->group(), .value = bytes}));
      ++stats_.repartition_records;
    }
    Result<int64_t> lag = consumer_->Lag(tp);
    const auto now = std::chrono::steady_clock::now();
    if (!lag.ok() || *lag > 0) {
      task.caught_up_since.reset();
    } else if (!task.caught_up_since) {
      task.caught_up_since = now;
    }
    const bool idle = task.caught_up_since &&
                      now - *task.caught_up_since >= std::chrono::milliseconds(options_.config.idle_after);
    const TimestampMs watermark = task.watermarks.PartitionWatermark(key);
    // A watermark record only when something changed: stage two learns
    // nothing from a repeat, and an idle pipeline must go quiet.
    if (task.sent_any && watermark == task.sent_watermark && idle == task.sent_idle) continue;
    task.sent_any = true;
    task.sent_watermark = watermark;
    task.sent_idle = idle;
    record.Clear();
    record.set_source_topic(static_cast<uint32_t>(task.source));
    record.set_source_partition(tp.partition);
    record.set_source_watermark_ms(task.sent_watermark);
    record.set_source_idle(idle);
    record.SerializeToString(&bytes);
    for (int32_t p = 0; p < repartition_partitions_; ++p) {
      SHORTFALL_RETURN_IF_ERROR(Send({.topic = repartition_topic_, .partition = p, .value = bytes}));
    }
    stats_.watermark_records += static_cast<uint64_t>(repartition_partitions_);
  }
  // 2. Each task's state changes since its last commit, with its offset.
  //    A task with neither is left alone (its store is not written).
  std::vector<PendingCommit> pending;
  const auto collect = [&](const TopicPartition& tp, auto& task) -> PendingCommit* {
    if (!selected(tp) || task.next_offset < 0) return nullptr;
    PendingCommit& p = pending.emplace_back();
    p.tp = tp;
    p.store = task.store.get();
    p.offset = task.next_offset;
    p.committed = &task.committed_offset;
    p.changelog = &task.changelog;
    return &p;
  };
  for (auto& [tp, task] : stage_one_) {
    if (PendingCommit* p = collect(tp, *task)) task->watermarks.Flush(&p->batch);
  }
  for (auto& [tp, task] : stage_two_) {
    if (PendingCommit* p = collect(tp, *task)) {
      task->aggregator.Flush(&p->batch);
      task->dwell_join.Flush(&p->batch);
      task->detection.Flush(&p->batch);
      task->sources.Flush(&p->batch);
    }
  }
  std::erase_if(pending, [](const PendingCommit& p) { return p.batch.empty() && p.offset == *p.committed; });
  SHORTFALL_RETURN_IF_ERROR(exactly_once() ? CommitTransaction(pending, flush_timeout)
                                           : CommitAtLeastOnce(pending, flush_timeout));
  for (PendingCommit& p : pending) *p.committed = p.offset;
  ++stats_.commits;
  const TimestampMs now_ms = SystemClock().NowMs();
  for (auto& [tp, task] : stage_one_) {
    if (!selected(tp) || task->oldest_uncommitted_record == 0) continue;
    if (options_.probe != nullptr) {
      options_.probe->ObserveLatency("state", static_cast<double>(now_ms - task->oldest_uncommitted_record) / 1000);
    }
    task->oldest_uncommitted_record = 0;
  }
  // Every alert produced so far was delivered by the flush above.
  for (const v1::ShortageAlert& alert : uncommitted_alerts_) {
    if (options_.probe != nullptr) {
      options_.probe->AddAlert(alert.commodity_group(), AlertKindLabel(alert.kind()), SeverityLabel(alert.severity()),
                               AlertStateLabel(alert.state()));
    }
    if (options_.on_alert) options_.on_alert(alert);
  }
  uncommitted_alerts_.clear();
  return OkStatus();
}

Status Runtime::CommitAtLeastOnce(std::vector<PendingCommit>& pending, DurationMs flush_timeout) {
  // Every output acknowledged before anything commits; then task state with
  // its offset; then the offsets to the group.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(flush_timeout);
  SHORTFALL_RETURN_IF_ERROR(
      RetryUnavailable([&](DurationMs wait) { return producer_->Flush(wait); }, deadline)
          .WithContext("delivering outputs"));
  std::vector<TopicPartitionOffset> offsets;
  for (PendingCommit& p : pending) {
    SHORTFALL_RETURN_IF_ERROR(StateFailure(p.store->Commit(p.batch, EncodeCheckpoint(kOffsetCheckpoint, p.offset))));
    offsets.push_back({p.tp.topic, p.tp.partition, p.offset});
  }
  Status committed =
      RetryUnavailable([&](DurationMs) { return consumer_->CommitSync(offsets); }, deadline);
  // kFailedPrecondition: the group moved on; the stores hold the offsets, and
  // the next owner starts from the group's older offset (at_least_once).
  if (!committed.ok() && committed.code() != StatusCode::kFailedPrecondition) return committed;
  return OkStatus();
}

Status Runtime::CommitTransaction(std::vector<PendingCommit>& pending, DurationMs flush_timeout) {
  // Outputs are in the open transaction already; add every state change as
  // a changelog record, on the task's partition, and the input offsets.
  std::vector<TopicPartitionOffset> offsets;
  for (const PendingCommit& p : pending) {
    for (const operators::StateMutation& m : p.batch.mutations()) {
      const std::string key = ChangelogKey(m);
      SHORTFALL_RETURN_IF_ERROR(Send({.topic = *p.changelog,
                                      .partition = p.tp.partition,
                                      .key = key,
                                      .value = m.value ? std::string_view(*m.value) : std::string_view()}));
    }
    if (p.offset != *p.committed) offsets.push_back({p.tp.topic, p.tp.partition, p.offset});
  }
  if (!in_transaction_) {
    if (offsets.empty()) return OkStatus();  // nothing to commit
    SHORTFALL_RETURN_IF_ERROR(producer_->BeginTransaction());
    in_transaction_ = true;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(flush_timeout);
  Status s;
  if (!offsets.empty()) {
    s = RetryUnavailable([&](DurationMs wait) { return producer_->SendOffsetsToTransaction(offsets, *consumer_, wait); },
                         deadline);
  }
  if (s.ok()) s = RetryUnavailable([&](DurationMs wait) { return producer_->CommitTransaction(wait); }, deadline);
  if (!s.ok()) {
    // Not committed: nothing of it will be seen (read_committed), and the
    // caller starts over from the stores and the group's offsets.
    if (s.code() != StatusCode::kFailedPrecondition) producer_->AbortTransaction(5 * kMsPerSecond).IgnoreError();
    in_transaction_ = false;
    return s.WithContext("committing the transaction");
  }
  in_transaction_ = false;
  ++stats_.transactions;
  // Committed: the stores follow, each recording the changelog offset it
  // now reflects. A crash before this point leaves a store behind its
  // changelog, and the next open catches up from it.
  for (PendingCommit& p : pending) {
    if (p.batch.empty()) continue;
    const int64_t last = producer_->DeliveredOffset(*p.changelog, p.tp.partition);
    SHORTFALL_RETURN_IF_ERROR(
        StateFailure(p.store->Commit(p.batch, EncodeCheckpoint(kChangelogCheckpoint, last + 1))));
  }
  return OkStatus();
}

Status Runtime::RetryUnavailable(const std::function<Status(DurationMs)>& step,
                                 std::chrono::steady_clock::time_point deadline) {
  std::optional<std::chrono::steady_clock::time_point> stalled_since;
  std::optional<std::chrono::steady_clock::time_point> stop_by;
  for (;;) {
    const auto began = std::chrono::steady_clock::now();
    Status s = step(kMsPerSecond);
    auto now = std::chrono::steady_clock::now();
    if (s.code() == StatusCode::kUnavailable && now - began < std::chrono::milliseconds(100)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a step that fails at once
      now = std::chrono::steady_clock::now();
    }
    if (s.code() != StatusCode::kUnavailable) {
      if (stalled_since) {
        log_ << "shortfall run: commit went through after waiting "
             << std::chrono::duration<double>(now - *stalled_since).count() << " s\n";
      }
      commit_stalled_.store(false);
      return s;
    }
    if (!stalled_since) {
      stalled_since = now;
      log_ << "shortfall run: commit waiting for the brokers: " << s.message() << "\n";
    }
    commit_stalled_.store(true);
    // While running, wait until the step fails for good (the coordinator
    // aborts a transaction at transaction.timeout.ms, librdkafka fails a
    // record at message.timeout.ms); a stop waits until `deadline`, and at
    // most processing.shutdown_timeout from when it is seen.
    if (stop_.load()) {
      if (!stop_by) stop_by = now + std::chrono::milliseconds(options_.config.shutdown_timeout);
      if (now >= std::min(deadline, *stop_by)) return s;
    }
  }
}

Result<bool> Runtime::CaughtUp() {
  if (stage_one_.empty() && stage_two_.empty()) return false;
  for (const auto& [tp, task] : stage_one_) {
    if (!task->buffer.empty()) return false;
  }
  // Lag comes from the latest fetch responses (no network round trip); a
  // partition not fetched yet has none and is not caught up.
  for (const auto& [tp, task] : stage_one_) {
    Result<int64_t> lag = consumer_->Lag(tp);
    if (!lag.ok() || *lag > 0) return false;
  }
  for (const auto& [tp, task] : stage_two_) {
    Result<int64_t> lag = consumer_->Lag(tp);
    if (!lag.ok() || *lag > 0) return false;
  }
  return true;
}

Status Runtime::WriteTotals() {
  if (options_.totals_csv.empty()) return OkStatus();
  std::ofstream csv(options_.totals_csv, std::ios::trunc);
  if (!csv) return InvalidArgumentError("--totals-csv: cannot write '" + options_.totals_csv + "'");
  WriteTotalsCsvHeader(csv);
  for (auto& [tp, task] : stage_two_) {
    for (const operators::SeriesSummary& s : task->aggregator.Summaries()) {
      WriteTotalsCsvRow(csv, task->aggregator.group_name(s.series.group), task->corridors.Code(s.series.corridor),
                        s.total);
    }
  }
  csv.close();
  if (!csv) return UnavailableError("--totals-csv: write failed for '" + options_.totals_csv + "'");
  return OkStatus();
}

std::pair<bool, std::string> Runtime::Readiness() const {
  if (!running_.load()) return {false, "not running"};
  if (assigned_tasks_.load() == 0) return {false, "no partitions assigned yet"};
  if (const int n = restoring_tasks_.load(); n > 0) return {false, "restoring state from the changelog"};
  if (brokers_down_.load()) return {false, "Kafka brokers unreachable"};
  if (commit_stalled_.load()) return {false, "commit waiting for the Kafka brokers"};
  return {true, ""};
}

void Runtime::PublishDwellJoin(RuntimeProbe* probe, StageTwoTask* task) {
  const operators::DwellJoinCounters& now = task->dwell_join.counters();
  operators::DwellJoinCounters& then = task->published_join;
  const std::array<std::pair<uint64_t, uint64_t*>, kDwellJoinOutcomes.size()> counts = {{
      {now.joined, &then.joined},
      {now.expired, &then.expired},
      {now.negative, &then.negative},
      {now.late, &then.late},
      {now.out_of_bound, &then.out_of_bound},
      {now.repeated_sides, &then.repeated_sides},
  }};
  for (size_t i = 0; i < counts.size(); ++i) {
    const auto [current, published] = counts[i];
    // Lower after a restore that went back to the last commit: those counts
    // were published already and come again.
    if (current > *published) probe->AddDwellJoin(kDwellJoinOutcomes[i], current - *published);
    *published = current;
  }
}

void Runtime::PublishMetrics() {
  RuntimeProbe* probe = options_.probe;
  if (probe == nullptr) return;
  const RunConfig& c = options_.config;
  const auto delta = [](uint64_t now, uint64_t before) { return now - before; };
  probe->AddConsumed(c.topics.shipments, delta(stats_.records_by_source[0], published_.records_by_source[0]));
  probe->AddConsumed(c.topics.customs, delta(stats_.records_by_source[1], published_.records_by_source[1]));
  probe->AddConsumed(repartition_topic_, delta(stats_.repartition_read, published_.repartition_read));
  probe->AddProduced(repartition_topic_, delta(stats_.repartition_records + stats_.watermark_records,
                                               published_.repartition_records + published_.watermark_records));
  probe->AddProduced(c.topics.dlq, delta(stats_.invalid + stats_.late, published_.invalid + published_.late));
  probe->AddProduced(c.topics.alerts, delta(stats_.alerts, published_.alerts));
  if (!c.topics.alerts_json.empty()) probe->AddProduced(c.topics.alerts_json, delta(stats_.alerts, published_.alerts));
  // Every reason, even at 0: a series that appears at its first increment
  // shows no increase to rate().
  for (size_t r = 0; r < operators::kInvalidReasonCount; ++r) {
    const uint64_t n = delta(stats_.invalid_by_reason[r], published_.invalid_by_reason[r]);
    probe->AddInvalid(operators::InvalidReasonName(static_cast<operators::InvalidReason>(r)), n);
  }
  probe->AddLate("input", delta(stats_.late, published_.late));
  probe->AddLate("repartition", delta(stats_.late_after_repartition, published_.late_after_repartition));
  published_ = stats_;

  probe->SetTasks("input", static_cast<int64_t>(stage_one_.size()));
  probe->SetTasks("repartition", static_cast<int64_t>(stage_two_.size()));
  uint64_t keys = 0;
  uint64_t bytes = 0;
  uint64_t memory = block_cache_shared_->UsageBytes();  // every store's cached blocks; memtables below
  const auto count_store = [&](const RocksDbStateStore& store) {
    const operators::StateStoreStats st = store.Stats();
    keys += st.keys;
    bytes += st.bytes;
    memory += store.MemoryUsageBytes();
  };
  for (const auto& [tp, task] : stage_one_) {
    Result<int64_t> lag = consumer_->Lag(tp);
    if (lag.ok()) probe->SetConsumerLag(tp.topic, tp.partition, *lag);
    count_store(*task->store);
  }
  std::optional<TimestampMs> watermark;
  uint64_t waiting_sides = 0;
  std::map<std::pair<std::string, std::string>, int64_t> open;  // (group, kind) -> open alerts
  for (const auto& [tp, task] : stage_two_) {
    Result<int64_t> lag = consumer_->Lag(tp);
    if (lag.ok()) probe->SetConsumerLag(tp.topic, tp.partition, *lag);
    count_store(*task->store);
    PublishDwellJoin(probe, task.get());
    waiting_sides += task->dwell_join.waiting();
    const TimestampMs closed = task->aggregator.closed_until();
    if (closed != kMinTimestamp) watermark = watermark ? std::min(*watermark, closed) : closed;
    const operators::WindowOptions& w = task->aggregator.options();
    for (const operators::SeriesSummary& summary : task->aggregator.Summaries()) {
      const std::string& group = task->aggregator.group_name(summary.series.group);
      const std::string& corridor = task->corridors.Code(summary.series.corridor);
      for (size_t i = 0; i < w.rolling.size(); ++i) {
        const std::string window = FormatDuration(w.rolling[i]);
        const operators::VolumeDelta& v = summary.rolling[i];
        probe->SetVolume(group, corridor, window, "shipments", static_cast<double>(v.shipments));
        probe->SetVolume(group, corridor, window, "gross_weight_kg", v.gross_weight_kg());
        probe->SetVolume(group, corridor, window, "declared_value_usd", v.declared_value_usd());
      }
      if (std::optional<double> expected = task->detection.volume_drop().ExpectedShipments(summary.series)) {
        probe->SetBaseline(group, corridor, FormatDuration(c.pipeline.detection.volume_drop.window), "shipments",
                           *expected);
      }
    }
    for (const v1::ShortageAlert& alert : task->detection.lifecycle().OpenAlerts()) {
      ++open[{alert.commodity_group(), AlertKindLabel(alert.kind())}];
    }
  }
  for (const auto& [key, n] : open) probe->SetOpenAlerts(key.first, key.second, n);
  // Kinds that had open alerts before and have none now read 0.
  for (const auto& key : open_alert_keys_) {
    if (!open.count(key)) probe->SetOpenAlerts(key.first, key.second, 0);
  }
  for (const auto& [key, n] : open) open_alert_keys_.insert(key);
  probe->SetStateStore(keys, bytes, memory);
  probe->SetDwellJoinWaiting(waiting_sides);
  if (watermark) {
    const TimestampMs now_ms = SystemClock().NowMs();
    probe->SetEventTimeWatermark(static_cast<double>(*watermark) / 1000);
    probe->SetWatermarkLag(static_cast<double>(now_ms - *watermark) / 1000);
  }
  probe->SetReady(Readiness().first);
}

void Runtime::CaptureFinalState() {
  final_series_.clear();
  final_open_alerts_.clear();
  for (const auto& [tp, task] : stage_two_) {
    for (const operators::SeriesSummary& summary : task->aggregator.Summaries()) {
      SeriesRow row;
      row.group = task->aggregator.group_name(summary.series.group);
      row.corridor = task->corridors.Code(summary.series.corridor);
      row.total = summary.total;
      row.rolling = summary.rolling;
      row.expected_shipments = task->detection.volume_drop().ExpectedShipments(summary.series);
      final_series_.push_back(std::move(row));
    }
    for (v1::ShortageAlert& alert : task->detection.lifecycle().OpenAlerts()) final_open_alerts_.push_back(std::move(alert));
  }
  std::sort(final_series_.begin(), final_series_.end(), [](const SeriesRow& a, const SeriesRow& b) {
    return std::tie(a.group, a.corridor) < std::tie(b.group, b.corridor);
  });
}

void Runtime::WatchBrokers() {
  std::unique_lock lock(watch_mu_);
  while (!watch_stop_) {
    lock.unlock();
    // Its own handle: the main loop may be blocked in a commit meanwhile.
    brokers_down_.store(!admin_->BrokersReachable(kMsPerSecond));
    lock.lock();
    watch_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return watch_stop_; });
  }
}

Status Runtime::Run() {
  std::thread watcher([this] { WatchBrokers(); });
  struct StopWatcher {
    Runtime* r;
    std::thread& t;
    ~StopWatcher() {
      {
        std::lock_guard lock(r->watch_mu_);
        r->watch_stop_ = true;
      }
      r->watch_cv_.notify_all();
      t.join();
    }
  } stop_watcher{this, watcher};
  std::vector<KafkaMessage> batch;
  auto last_commit = std::chrono::steady_clock::now();
  int idle_polls = 0;
  Status result;
  running_.store(true);
  while (!stop_.load()) {
    batch.clear();
    Result<size_t> n = consumer_->ConsumeBatch(static_cast<size_t>(options_.config.batch_size), kPollTimeout, &batch);
    if (!callback_error_.ok()) {
      result = callback_error_;
      break;
    }
    if (!n.ok()) {
      result = n.status();
      break;
    }
    for (const KafkaMessage& message : batch) {
      result = Process(message);
      if (!result.ok()) break;
    }
    if (!result.ok()) break;
    result = PollStandbys();
    if (!result.ok()) break;
    const auto now = std::chrono::steady_clock::now();
    // Commit each interval, and as soon as input pauses, but only after reading something.
    if (*n > 0) uncommitted_ = true;
    // While nothing arrives, still commit once a second: that is how a quiet
    // partition's watermark and idleness reach stage two.
    const bool quiet_tick = !uncommitted_ && now - last_commit >= std::chrono::seconds(1);
    if ((uncommitted_ && (*n == 0 || now - last_commit >= std::chrono::milliseconds(options_.config.commit_interval))) ||
        quiet_tick) {
      result = TimedCommit();
      if (!result.ok()) break;
      last_commit = now;
      uncommitted_ = false;
    }
    if (now - last_publish_ >= kMetricsEvery) {
      if (const bool down = brokers_down_.load(); down != reported_brokers_down_) {
        log_ << "shortfall run: Kafka brokers " << (down ? "unreachable" : "reachable again") << "\n";
        reported_brokers_down_ = down;
      }
      PublishMetrics();
      last_publish_ = now;
    }
    if (options_.until_idle && *n == 0) {
      Result<bool> caught_up = CaughtUp();
      idle_polls = caught_up.ok() && *caught_up ? idle_polls + 1 : 0;
      // Twice in a row: the last commit's repartition records were read too.
      if (idle_polls >= 3) break;
    }
  }
  // A stop (signal) must end within processing.shutdown_timeout: the last
  // commit waits that long for its outputs at most.
  if (result.ok()) result = TimedCommit(std::min<DurationMs>(options_.config.shutdown_timeout, kCommitFlushTimeout));
  failed_ = !result.ok();  // no commit on the revocation Close() brings
  if (result.ok()) result = WriteTotals();
  CaptureFinalState();
  PublishMetrics();
  running_.store(false);
  log_ << "shortfall run: " << stats_.records << " input records (" << stats_.accepted << " accepted, "
       << stats_.invalid << " invalid, " << stats_.late << " late), " << stats_.repartition_records
       << " repartition records sent, " << stats_.contributions << " applied ("
       << stats_.late_after_repartition << " too late for their window), " << stats_.alerts << " alert records, "
       << stats_.commits << " commits";
  if (exactly_once()) log_ << " (" << stats_.transactions << " transactions, " << stats_.restored_records << " state records restored)";
  log_ << "\n";
  size_t waiting_sides = 0;
  size_t buckets = 0;
  for (const auto& [tp, task] : stage_two_) {
    waiting_sides += task->dwell_join.waiting();
    buckets += task->aggregator.bucket_count();
  }
  log_ << "shortfall run: state at exit: " << waiting_sides << " dwell join sides waiting, " << buckets
       << " window buckets\n";
  Status closed = consumer_->Close();
  return result.ok() ? closed : result;
}

Status Runtime::TimedCommit(DurationMs flush_timeout) {
  const auto start = std::chrono::steady_clock::now();
  Status s = Commit(nullptr, flush_timeout);
  if (options_.probe != nullptr) {
    options_.probe->ObserveCommit(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                                  s.ok());
  }
  return s;
}

}  // namespace shortfall::pipeline
