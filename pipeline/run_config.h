// RunConfig: the typed configuration of `shortfall run`, read from YAML
// (deploy/shortfall.example.yaml documents every key with its default, unit
// and trade-off) and adjusted by command-line overrides.
//
//   SHORTFALL_ASSIGN_OR_RETURN(RunConfig config, LoadRunConfig(flags.Get("config")));
//   if (flags.Has("brokers")) config.brokers = flags.Get("brokers");
//   for (const std::string& kv : set_flags) {
//     SHORTFALL_RETURN_IF_ERROR(ApplyOverride(kv, &config).WithContext("--set"));
//   }
//   SHORTFALL_RETURN_IF_ERROR(ValidateRunConfig(config));
//   log << DescribeRunConfig(config);   // secrets redacted
//
// Key paths are the YAML keys joined by '.', the same in files, overrides and
// error messages: "processing.commit_interval", "window.rolling",
// "validation.usd_rates.MXN", "kafka.consumer.fetch.max.bytes". Values have
// one syntax everywhere: durations "250ms", "90s", "15m", "6h", "7d"; decimal
// integers; numbers as C's strtod reads them ("1e9", "0.055"); guarantees
// "at_least_once" | "exactly_once"; lists as YAML sequences, or "24h,7d" in
// an override.
//
// Parsing checks the shape of the document and the syntax of each value;
// ValidateRunConfig checks ranges and cross-field rules. A YAML map given for
// kafka.common/consumer/producer or validation.usd_rates replaces the
// default map as a whole; an override sets one entry.
//
// Thread-safety: plain values and free functions; no shared state.
// Failure: every error is a Status (yaml-cpp's exceptions never escape), of
// code kInvalidArgument unless said otherwise, whose message names the key
// path. The values of librdkafka properties never appear in error messages.
#ifndef SHORTFALL_PIPELINE_RUN_CONFIG_H_
#define SHORTFALL_PIPELINE_RUN_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "operators/volume_pipeline.h"

namespace shortfall::pipeline {

// The topics shortfall reads and writes. Each must be a legal Kafka topic
// name ([A-Za-z0-9._-]{1,249}, not "." or ".."), and all must differ.
struct TopicNames {
  std::string shipments = "shipments.events.v1";  // input: ShipmentEvent
  std::string customs = "customs.events.v1";      // input: CustomsEvent
  std::string alerts = "shortfall.alerts.v1";     // output: ShortageAlert, protobuf
  std::string dlq = "shortfall.dlq.v1";           // output: bad and late records with reason
  std::string alerts_json;                        // "" = no JSON mirror of the alerts
  friend bool operator==(const TopicNames&, const TopicNames&) = default;
};

// As Kafka Streams names them (processing.guarantee).
enum class ProcessingGuarantee { kAtLeastOnce, kExactlyOnce };

// "at_least_once" / "exactly_once".
std::string_view GuaranteeName(ProcessingGuarantee g);
Result<ProcessingGuarantee> ParseGuarantee(std::string_view text);

struct RunConfig {
  // Consumer group id, transactional id prefix, and the prefix of internal
  // topics and of state. Changing it starts from scratch (new group, new
  // state). [A-Za-z0-9._-], at most 200 characters.
  std::string application_id = "shortfall";
  // Bootstrap servers, "host:port[,host:port...]". Required: from YAML
  // kafka.bootstrap_servers or --brokers. Never set in kafka_common.
  std::string brokers;
  TopicNames topics;
  // Partitions of RepartitionTopicName() when shortfall creates it: the upper
  // bound on stage-two parallelism. An existing topic keeps its own count.
  int32_t repartition_partitions = 8;
  // Replication factor of the internal topics shortfall creates. 1 suits a
  // development broker; use 3 on a production cluster.
  int16_t replication_factor = 1;
  ProcessingGuarantee guarantee = ProcessingGuarantee::kAtLeastOnce;
  // How often state, outputs and offsets commit. Shorter: fewer records
  // reprocessed (at-least-once) or sooner visible (exactly-once); longer:
  // fewer, bigger commits. With exactly_once it must stay below the
  // producer's transaction.timeout.ms (TransactionTimeout(), 10 s by default).
  DurationMs commit_interval = 100;
  // Max records per consume batch, 1 to 1,000,000. Bigger batches amortise
  // per-batch work; smaller ones bound memory and commit latency.
  int32_t batch_size = 10000;
  // How long a graceful shutdown may wait for its last commit's outputs to
  // be delivered; past it the run ends with an error and without committing
  // (the input is read again on restart). Default 30 s.
  DurationMs shutdown_timeout = 30 * kMsPerSecond;
  // How long an input partition must have been read to its end before it
  // declares itself idle and stops holding windows back. Default 30 s:
  // shorter closes windows sooner on a quiet partition; too short, and a
  // partition between two bursts is skipped and its next records come too
  // late for the windows the others closed.
  DurationMs idle_after = 30 * kMsPerSecond;
  // 0 or 1 (exactly_once only). 1: this instance keeps a warm copy of every
  // stage-two task it does not run, following the task's changelog, so a
  // task that fails over to it restores only the tail. librdkafka's group
  // protocol gives an instance no say in where copies go, so it is "all
  // other tasks" rather than a count: one copy per task with two instances,
  // more with more. Costs a consumer and the disk of the copies.
  int32_t num_standby_replicas = 0;
  // Where the RocksDB state lives. On a volume that outlives the process,
  // restarts resume from it; otherwise state is rebuilt from Kafka.
  std::string state_dir = "/var/lib/shortfall";
  // The RocksDB block cache of the whole process, in MiB, shared by every
  // task's store (SharedBlockCache). Default 256. With state_write_buffer_mb
  // the memtables are charged to it as well, so it bounds both.
  int64_t state_block_cache_mb = 256;
  // The memtables of every store of the process together, in MiB: past it
  // the store being written flushes (one RocksDB WriteBufferManager for the
  // process, charged to the block cache); a commit that finds the flushes
  // lagging waits for its own store's, never another's. 1 to
  // half of state_block_cache_mb; default 0: a quarter of it (64 MiB of the
  // default 256). Each store and namespace still flushes at 16 MiB.
  int64_t state_write_buffer_mb = 0;
  // state_write_buffer_mb, or its default when 0.
  int64_t WriteBufferMb() const {
    return state_write_buffer_mb > 0 ? state_write_buffer_mb : state_block_cache_mb / 4;
  }
  // Commodity catalog CSV; "" = the built-in catalog.
  std::string catalog_path;
  // Windows (window.*) and record validation (validation.*).
  operators::PipelineOptions pipeline;
  // host:port of the Prometheus /metrics endpoint; port 0 picks a free port.
  std::string metrics_bind = "127.0.0.1:9464";
  // librdkafka properties, passed through as is (SASL, mTLS, cloud Kafka):
  // for every client, consumers only, producers only. Names are unique within
  // each list, in the order given. bootstrap.servers and group.id are refused
  // here (kafka.bootstrap_servers and application_id set them).
  std::vector<std::pair<std::string, std::string>> kafka_common;
  std::vector<std::pair<std::string, std::string>> kafka_consumer;
  std::vector<std::pair<std::string, std::string>> kafka_producer;
};

// Field by field, including every pipeline option.
bool operator==(const RunConfig& a, const RunConfig& b);

// Reads a YAML document; `source` names it in errors. The empty document
// gives the defaults. Errors: "<source>: <key.path>: <what>", e.g.
// "run.yaml: window.bucket: '90x' is not a duration (want e.g. 250ms, 90s,
// 15m, 6h, 7d)"; unknown keys (a typo is never ignored) name the key and
// list the known keys at that level; keys given twice are errors; YAML
// syntax errors read "<source>:<line>:<col>: <yaml-cpp message>" (1-based).
// Does not call ValidateRunConfig.
Result<RunConfig> ParseRunConfig(std::string_view yaml, std::string_view source);

// ParseRunConfig of a file's contents, `path` as the source. A missing file
// is kNotFound naming the path; an unreadable one kInvalidArgument.
Result<RunConfig> LoadRunConfig(const std::string& path);

// Applies one "key.path=value" override (the first '=' splits; the value may
// be empty, e.g. "topics.alerts_json=" turns the JSON mirror off). Lists are
// comma-separated ("window.rolling=24h,7d"); map entries are addressed below
// the map ("validation.usd_rates.MXN=0.055",
// "kafka.consumer.fetch.max.bytes=52428800", likewise kafka.common. and
// kafka.producer.) and replace an entry of the same name or add one.
// Errors: "<key.path>: <what>" (the caller adds where it came from); on
// error *config is unchanged.
Status ApplyOverride(std::string_view assignment, RunConfig* config);

// Checks ranges and cross-field rules, returning the first problem as
// "<key.path>: <what>": brokers set; application_id and topic names legal
// and distinct (also from the repartition topic); partitions and replication
// factor >= 1; commit interval, batch size, shutdown timeout in range;
// state dir set; metrics_bind host:port; librdkafka property names legal,
// unique, and no value left "[redacted]"; pipeline.Validate() (normalizer
// errors prefixed "validation."); usd_rates not empty; with exactly_once,
// commit_interval < the producer's transaction.timeout.ms.
Status ValidateRunConfig(const RunConfig& config);

// The effective configuration as YAML, in the layout and key order of the
// example file, for the start-up log. ParseRunConfig reads it back to an
// equal config, except that the value of every librdkafka property for which
// IsSecretProperty() (pipeline/kafka_client.h) holds shows as "[redacted]".
std::string DescribeRunConfig(const RunConfig& config);

// "<application_id>-volumes-repartition": the internal topic between the
// two stages.
std::string RepartitionTopicName(const RunConfig& config);

// "<application_id>-<store>-changelog": the compacted topic holding a
// store's state under exactly_once, one partition per task.
std::string ChangelogTopicName(const RunConfig& config, std::string_view store);

// The producer's transaction timeout under exactly_once: the coordinator
// aborts a transaction open longer than this, and a crashed instance's open
// transaction holds read_committed readers back at most this long. Default
// 10 s (as Kafka Streams); kafka.producer.transaction.timeout.ms overrides.
inline constexpr DurationMs kDefaultTransactionTimeout = 10 * kMsPerSecond;
DurationMs TransactionTimeout(const RunConfig& config);

struct HostPort {
  std::string host;  // without brackets for IPv6: "::1"
  uint16_t port = 0;
};
// Splits "host:port" or "[v6addr]:port"; port 0 to 65535.
Result<HostPort> ParseHostPort(std::string_view text);

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_RUN_CONFIG_H_
