// EmbeddedBroker: a Kafka broker inside this process, for `shortfall demo`,
// `shortfall broker` and the fast tests. It is librdkafka's mock cluster
// (rdkafka_mock.h): it speaks the real Kafka protocol on a loopback port the
// OS picks, so any Kafka client — ours, kcat, a Java consumer — can use it
// with bootstrap.servers = bootstrap().
//
//   SHORTFALL_ASSIGN_OR_RETURN(auto broker, EmbeddedBroker::Start(8, {"in", "out"}));
//   KafkaProperties props = {{"bootstrap.servers", broker->bootstrap()}};
//
// Limits, and what callers must do about them:
//   * No real transactions. Transactional producers work (init, begin,
//     commit, abort all succeed), but aborted records are NOT hidden from
//     read_committed consumers. Exactly-once can be exercised, not proven,
//     here: crash/abort tests belong on a real broker (tools/kafka.sh).
//   * Bounded logs: each partition keeps about 5 MiB of record batches (and
//     at most 100,000 batches); older batches are dropped without notice and
//     a consumer that falls that far behind skips ahead (auto.offset.reset).
//     Keep demo volumes small or consume while producing.
//   * No admin APIs: CreateTopics, DeleteTopics, DescribeConfigs are not
//     served. Create every topic here (Start's list, CreateTopic()).
//     KafkaAdmin::EnsureTopic passes for topics that exist with enough
//     partitions and reports kFailedPrecondition at once for missing ones.
//     Beware: a metadata request naming an unknown topic with auto-creation
//     allowed (producers allow it by default) creates it with 4 partitions.
//   * Slow rebalances: after a member joins a running group or leaves it
//     (even cleanly, on Close), the mock waits session.timeout.ms - 1 s for
//     the members to (re)join before it assigns, and a member that died is
//     only dropped after its session timeout. Start() sets the first-join
//     delay to 0 (the mock's default is 3 s, like a real broker's
//     group.initial.rebalance.delay.ms). Members that rebalance here should
//     lower session.timeout.ms (2000; the mock has no 6 s minimum as real
//     brokers do) and heartbeat.interval.ms (250): a rebalance then takes
//     about a second instead of five.
//   * Nothing is persisted: the data is gone when the broker stops. One
//     process; broker ids start at 1; loopback only (127.0.0.1).
//
// Thread-safety: bootstrap() and the accessors may be called from any
// thread; CreateTopic() is safe while clients are connected (the mock
// cluster runs on its own thread and serializes changes to it).
// Ownership: owns the mock cluster and the librdkafka handle it needs.
// Destroying the broker closes its listeners: connected clients see
// connection errors (they retry, as with any broker that went away).
// Failure: Start() returns kInvalidArgument for bad arguments and
// kUnavailable when librdkafka cannot open the listeners.
#ifndef SHORTFALL_PIPELINE_EMBEDDED_BROKER_H_
#define SHORTFALL_PIPELINE_EMBEDDED_BROKER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/time.h"

// librdkafka's C types (rdkafka.h, rdkafka_mock.h), without the headers.
struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace shortfall::pipeline {

class EmbeddedBroker {
 public:
  struct Options {
    int32_t brokers = 1;                 // 1 to 16
    int32_t partitions = 8;              // of each topic in `topics`, 1 to 10000
    std::vector<std::string> topics;     // created at start
    DurationMs initial_rebalance_delay = 0;  // the mock's own default is 3 s
  };

  // Starts a one-broker cluster holding `topics`, each with `partitions`
  // partitions (replication factor 1).
  static Result<std::unique_ptr<EmbeddedBroker>> Start(int32_t partitions,
                                                       const std::vector<std::string>& topics);
  static Result<std::unique_ptr<EmbeddedBroker>> Start(const Options& options);

  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  // "127.0.0.1:PORT[,...]" for bootstrap.servers.
  const std::string& bootstrap() const { return bootstrap_; }

  // Creates a topic. kAlreadyExists if it exists (whatever its partitions).
  Status CreateTopic(const std::string& name, int32_t partitions);

  // The mock cluster, for fault injection in tests (rd_kafka_mock_* in
  // <librdkafka/rdkafka_mock.h>: push request errors, set a broker down,
  // add latency). Owned here.
  rd_kafka_mock_cluster_s* mock_cluster() const { return cluster_; }

 private:
  EmbeddedBroker() = default;

  rd_kafka_s* handle_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  int32_t brokers_ = 1;
  std::string bootstrap_;
};

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_EMBEDDED_BROKER_H_
