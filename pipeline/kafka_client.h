// The Kafka client layer: thin, Status-returning wrappers over librdkafka
// (its C++ API, and its C API where a call is made per record: consuming
// and producing) for the three roles shortfall plays — producer, consumer (in a
// group or on a manual assignment) and topic admin. Everything above this
// file (the runtime, `gen --to-kafka`, `tail`) talks to Kafka through these
// classes only; nothing here knows about shortfall's records.
//
//   SHORTFALL_ASSIGN_OR_RETURN(auto producer, KafkaProducer::Create({{"bootstrap.servers", b}}));
//   SHORTFALL_RETURN_IF_ERROR(producer->Produce({.topic = "t", .key = k, .value = v}));
//   SHORTFALL_RETURN_IF_ERROR(producer->Flush(30 * kMsPerSecond));  // then commit input
//
//   SHORTFALL_ASSIGN_OR_RETURN(auto consumer, KafkaConsumer::Create(props, "my-group"));
//   SHORTFALL_RETURN_IF_ERROR(consumer->Subscribe({"t"}, &listener));
//   std::vector<KafkaMessage> batch;  // dies before `consumer`
//   SHORTFALL_ASSIGN_OR_RETURN(size_t n, consumer->ConsumeBatch(1000, 100, &batch));
//
// Properties: librdkafka's own names (CONFIGURATION.md), passed through
// unchanged. Each class sets a few defaults, listed at its Create(); a
// property the caller passes always wins over a default.
//
// Thread-safety: each object is meant for one thread at a time (the thread
// that polls it); the counters documented as such may be read from any
// thread. No class starts a thread of its own: librdkafka's internal threads
// do the network I/O, and callbacks (delivery reports, rebalances) run on the
// caller's thread inside Produce/Flush/ConsumeBatch/Close.
//
// Failure: nothing here throws or aborts on broker or network errors; they
// come back as Status. kInvalidArgument: bad configuration (names the
// property). kUnavailable: transient, retry later (broker down, timeouts,
// delivery failures). kFailedPrecondition: the client is unusable or the
// state does not allow the call (fatal producer error, commit after losing
// the partitions, a topic with too few partitions); recreate or reconfigure.
// kNotFound: unknown topic or partition. librdkafka's own log lines go to
// stderr in its usual "%level|time|facility| message" form (log_level and
// debug choose what is logged).
#ifndef SHORTFALL_PIPELINE_KAFKA_CLIENT_H_
#define SHORTFALL_PIPELINE_KAFKA_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include "base/status.h"
#include "base/time.h"

namespace shortfall::pipeline {

// librdkafka configuration as (name, value) pairs, applied in order.
using KafkaProperties = std::vector<std::pair<std::string, std::string>>;

// A global librdkafka configuration holding `props`. A property librdkafka
// rejects gives kInvalidArgument naming the property, its value (redacted
// when secret) and librdkafka's reason.
Result<std::unique_ptr<RdKafka::Conf>> MakeKafkaConf(const KafkaProperties& props);

// True when a property called `name` holds a secret: its name contains
// password, secret, sasl.jaas, token, ssl.key or oauthbearer.config, in any case.
bool IsSecretProperty(std::string_view name);

// `value`, or "[redacted]" when IsSecretProperty(name). Use it whenever a
// property value goes to a log or an error message.
std::string RedactProperty(std::string_view name, std::string_view value);

// True when `props` sets `name`.
bool HasProperty(const KafkaProperties& props, std::string_view name);

// Offsets with a meaning of their own (librdkafka's logical offsets), for
// TopicPartitionOffset::offset in KafkaConsumer::Assign.
// (RD_KAFKA_OFFSET_BEGINNING, _END and _STORED; checked in the .cc).
inline constexpr int64_t kOffsetBeginning = -2;
inline constexpr int64_t kOffsetEnd = -1;
// The group's committed offset (auto.offset.reset when there is none).
inline constexpr int64_t kOffsetStored = -1000;

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  friend bool operator==(const TopicPartition&, const TopicPartition&) = default;
  friend auto operator<=>(const TopicPartition&, const TopicPartition&) = default;
};

// A partition named by a view, and an ordering of both that finds a
// TopicPartition-keyed map entry from a view without building a string
// (std::map<TopicPartition, T, TopicPartitionLess>::find(TopicPartitionRef)).
struct TopicPartitionRef {
  std::string_view topic;
  int32_t partition = 0;
};
struct TopicPartitionLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return std::tie(a.topic, a.partition) < std::tie(b.topic, b.partition);
  }
};

// In commits, `offset` is the NEXT offset to consume (last processed + 1),
// as Kafka defines committed offsets.
struct TopicPartitionOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  friend bool operator==(const TopicPartitionOffset&, const TopicPartitionOffset&) = default;
};

// One record to produce. The views are copied by Produce() and need not
// outlive the call. A view with data() == nullptr is a null key or value
// (a null value is a tombstone on a compacted topic); "" is an empty one.
// Every member has a default, so designated initializers may name only
// what they set: {.topic = "t", .key = k, .value = v}.
struct OutgoingRecord {
  std::string_view topic = {};
  int32_t partition = -1;  // -1: the partitioner chooses (murmur2 of the key by default)
  std::string_view key = {};
  std::string_view value = {};
  std::vector<std::pair<std::string, std::string>> headers = {};
  int64_t timestamp_ms = 0;  // record CreateTime; 0: now
};

class KafkaConsumer;

// ---------------------------------------------------------------------------
// KafkaProducer: an idempotent producer with a commit-friendly Flush.
//
// Delivery is asynchronous: Produce() queues, librdkafka's threads send, and
// delivery reports are served (counted, first error kept) whenever Produce()
// or Flush() polls. A caller that must not commit its input before its output
// is safe calls Flush() and commits only on OK.
//
// Thread-safety: Produce/Flush from one thread at a time; delivered() and
// failed() from any thread.
// Ownership: owns its librdkafka handle. Destroying it without Flush() drops
// what is still queued (those records count as neither delivered nor failed).
class KafkaProducer {
 public:
  // Defaults unless `props` sets them:
  //   enable.idempotence=true  no duplicates or reordering from retries
  //   acks=all                 (required by idempotence)
  //   linger.ms=5              batches for 5 ms: far fewer requests, little latency
  //   compression.type=lz4     cheap CPU, ~3-4x smaller batches of protobuf events
  //   partitioner=murmur2_random  the Java client's partitioner, so a key lands on
  //                            the same partition whichever client produced it
  //                            (librdkafka's own default is CRC32)
  // Needs bootstrap.servers. Errors: kInvalidArgument naming the property.
  static Result<std::unique_ptr<KafkaProducer>> Create(const KafkaProperties& props);

  ~KafkaProducer();
  KafkaProducer(const KafkaProducer&) = delete;
  KafkaProducer& operator=(const KafkaProducer&) = delete;

  // Copies the record into librdkafka's queue. When the queue is full
  // (queue.buffering.max.messages/kbytes) it serves delivery reports and
  // retries for up to queue_full_timeout(), then returns kUnavailable.
  // kNotFound: the topic or the explicit partition does not exist (known
  // from metadata); kInvalidArgument: the record is larger than
  // message.max.bytes; kFailedPrecondition: the producer hit a fatal error
  // (e.g. fenced) and must be recreated. A record that was queued can still
  // fail later: see Flush().
  Status Produce(const OutgoingRecord& record);

  // Waits until every queued record is delivered or has failed, for at most
  // `timeout`. Returns the first delivery error since the previous Flush (as
  // kAborted with librdkafka's reason, naming topic and partition: those
  // records are gone, so whatever they carried must be redone) and forgets
  // it, or kUnavailable when records are still in flight at the timeout
  // (call again), or kFailedPrecondition after a fatal error. OK means
  // everything produced so far has been acknowledged by the broker
  // (acks=all).
  Status Flush(DurationMs timeout);

  // Serves pending delivery reports without waiting.
  void Poll();

  // Records acknowledged by the broker / failed for good, since creation.
  uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  // Records queued and not yet reported.
  int outstanding() const { return producer_->outq_len(); }

  // How long Produce() waits for room in a full queue (default 30 s).
  void set_queue_full_timeout(DurationMs timeout) { queue_full_timeout_ = timeout; }
  DurationMs queue_full_timeout() const { return queue_full_timeout_; }

  // Transactions (a producer created with transactional.id). Each call maps
  // librdkafka's error: kUnavailable when it may be retried as is (a timeout:
  // call it again), kAborted when the transaction must be aborted
  // (AbortTransaction, then start over), kFailedPrecondition when the
  // producer is fatally broken (fenced by a newer instance with the same
  // transactional.id): destroy it and create a new one. A new producer's
  // InitTransactions aborts whatever an older one with its id left open.
  Status InitTransactions(DurationMs timeout);
  Status BeginTransaction();
  // Adds the consumer's offsets (next offset to read) to the open
  // transaction, fenced by the group generation of `consumer` (KIP-447).
  Status SendOffsetsToTransaction(const std::vector<TopicPartitionOffset>& offsets, KafkaConsumer& consumer,
                                  DurationMs timeout);
  // Flushes, then commits. OK: every record produced in the transaction and
  // its offsets are committed together.
  Status CommitTransaction(DurationMs timeout);
  Status AbortTransaction(DurationMs timeout);

  // Remembers the offset of every record delivered to `topic` (any
  // partition), for DeliveredOffset. Call before producing to it.
  void TrackOffsets(std::string topic) { tracked_topics_.push_back(std::move(topic)); }
  // The highest offset delivered to a tracked topic's partition since
  // creation, or -1 when none was.
  int64_t DeliveredOffset(const std::string& topic, int32_t partition) const;

  // The librdkafka handle, for what this class does not wrap. Owned here.
  RdKafka::Producer* handle() { return producer_.get(); }

 private:
  class Callbacks;
  KafkaProducer();
  Status FatalStatus();
  // Status of a transactional call's error (see InitTransactions); takes
  // ownership of `error`, OK when it is null.
  Status TransactionStatus(RdKafka::Error* error, std::string_view call);

  std::vector<std::string> tracked_topics_;
  std::map<std::pair<std::string, int32_t>, int64_t> delivered_offsets_;

  // librdkafka's handle of a topic, created on the first record to it and
  // released before producer_ (so a record does not look its topic up by
  // name).
  rd_kafka_topic_t* TopicHandle(std::string_view topic);

  std::unique_ptr<Callbacks> callbacks_;  // outlives producer_ (declared first)
  std::unique_ptr<RdKafka::Producer> producer_;
  std::map<std::string, rd_kafka_topic_t*, std::less<>> topics_;
  // Records produced since delivery reports were last served; Produce
  // serves them every kPollEvery records instead of after each one.
  int unpolled_ = 0;
  static constexpr int kPollEvery = 64;
  std::vector<rd_kafka_vu_t> produce_args_;  // Produce's scratch
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> failed_{0};
  DurationMs queue_full_timeout_ = 30 * kMsPerSecond;
};

// ---------------------------------------------------------------------------
// RebalanceListener: told about partition assignment changes of a
// KafkaConsumer. Called on the consumer's thread, from inside ConsumeBatch()
// or Close(). Implementations may call CommitSync() from OnRevoked (unless
// `lost`) to commit what they processed before the partitions go.
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  // `partitions` were added to this consumer's assignment (incrementally,
  // with the cooperative protocol: only the new ones). Fetching starts at the
  // group's committed offset, else auto.offset.reset.
  virtual void OnAssigned(const std::vector<TopicPartition>& partitions) = 0;
  // Where to start reading a partition about to be assigned: an absolute
  // offset, kOffsetBeginning, kOffsetEnd, or kOffsetStored (the group's
  // committed offset, else auto.offset.reset; the default). Asked for each
  // partition before it is assigned, so a listener whose own state records
  // a position (a task's store) can start there.
  virtual int64_t StartOffset(const TopicPartition& partition) {
    (void)partition;
    return kOffsetStored;
  }
  // `partitions` are about to be removed. lost = true: they were already
  // taken away (session timeout, fenced): do not commit for them, drop their
  // uncommitted work.
  virtual void OnRevoked(const std::vector<TopicPartition>& partitions, bool lost) = 0;
};

// ---------------------------------------------------------------------------
// KafkaMessage: one consumed record. Owns librdkafka's C message, with no
// C++ wrapper object per record. (Consuming through the C++ API, one call
// and one wrapper per record, was about 8% of `shortfall run`'s CPU in perf;
// batch pops into these, about 3%.) Move-only; the views it returns live as
// long as it does.
// REQUIRES: destroyed before the consumer it came from (see KafkaConsumer).
class KafkaMessage {
 public:
  explicit KafkaMessage(rd_kafka_message_t* message) : message_(message) {}

  std::string_view topic() const { return rd_kafka_topic_name(message_->rkt); }
  int32_t partition() const { return message_->partition; }
  int64_t offset() const { return message_->offset; }
  // The payload and key; empty when null.
  std::string_view value() const { return View(message_->payload, message_->len); }
  std::string_view key() const { return View(message_->key, message_->key_len); }
  // A null value (a tombstone) or key, as opposed to an empty one.
  bool value_is_null() const { return message_->payload == nullptr; }
  bool key_is_null() const { return message_->key == nullptr; }
  // The record's timestamp in ms and its type (create or log-append time);
  // -1 and RD_KAFKA_TIMESTAMP_NOT_AVAILABLE when it has none.
  int64_t timestamp(rd_kafka_timestamp_type_t* type = nullptr) const {
    rd_kafka_timestamp_type_t ignored;
    return rd_kafka_message_timestamp(message_.get(), type != nullptr ? type : &ignored);
  }
  // The last value of header `name`, "" when absent. The first header
  // lookup of a message parses all its headers (librdkafka).
  std::string_view header(std::string_view name) const;
  // Every header, in order, as (name, value).
  std::vector<std::pair<std::string_view, std::string_view>> headers() const;

  rd_kafka_message_t* c_ptr() const { return message_.get(); }

 private:
  static std::string_view View(const void* data, size_t size) {
    return data == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(data), size);
  }
  struct Destroy {
    void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
  };
  std::unique_ptr<rd_kafka_message_t, Destroy> message_;
};

// ---------------------------------------------------------------------------
// KafkaConsumer: a consumer-group member (Subscribe) or a consumer on a
// fixed assignment (Assign), reading in batches, committing explicitly.
//
// Offsets are never committed behind the caller's back: enable.auto.commit
// and enable.auto.offset.store are off, so what is committed is exactly what
// CommitSync was given.
//
// Thread-safety: one thread at a time (the one that calls ConsumeBatch);
// listener callbacks run on it.
// Ownership: owns its librdkafka handle; the messages ConsumeBatch hands out
// are the caller's, but each holds references into the handle, so
// REQUIRES: every message is destroyed before the consumer is (librdkafka's
// destroy waits for them: a message kept past its consumer hangs the
// destructor for good). Declare the message vector after the consumer, or
// copy out what must live longer. The listener is borrowed and must outlive
// Close() (or the consumer).
class KafkaConsumer {
 public:
  // `group_id` names the consumer group for Subscribe() and CommitSync().
  // Empty: no group; only Assign() works (e.g. `tail`), nothing is committed.
  // Defaults unless `props` sets them:
  //   partition.assignment.strategy=cooperative-sticky  rebalances move only
  //       the partitions that change owner; the others keep being processed
  //   enable.auto.commit=false, enable.auto.offset.store=false  see above
  //   auto.offset.reset=earliest   a new group starts at the oldest record
  //   isolation.level=read_committed  no records of aborted transactions
  //   fetch.queue.backoff.ms=10, queued.min.messages=20000,
  //   fetch.wait.max.ms=100, fetch.min.bytes=1  prefetch tuning: with
  //       librdkafka's 1000 ms backoff a fast consumer stalls ~0.7 s each
  //       time its prefetch queue drains (2.4x slower when catching up, as
  //       measured in the .cc)
  //   enable.partition.eof=true   for Lag(); the events never reach the caller
  // Needs bootstrap.servers. Errors: kInvalidArgument naming the property.
  static Result<std::unique_ptr<KafkaConsumer>> Create(const KafkaProperties& props,
                                                       std::string group_id);

  // Closes (leaving the group) if Close() was not called; errors then are lost.
  ~KafkaConsumer();
  KafkaConsumer(const KafkaConsumer&) = delete;
  KafkaConsumer& operator=(const KafkaConsumer&) = delete;

  // Joins the group for `topics`. Assignment changes reach `listener` (may be
  // null) from inside ConsumeBatch(). Topics that do not exist yet are
  // picked up when they appear. REQUIRES: a non-empty group_id.
  Status Subscribe(std::vector<std::string> topics, RebalanceListener* listener);

  // Reads exactly these partitions from these offsets (kOffsetBeginning,
  // kOffsetEnd, kOffsetStored or an absolute offset), replacing any previous
  // assignment; no group membership. Not with Subscribe().
  Status Assign(const std::vector<TopicPartitionOffset>& partitions);

  // Appends up to `max` messages to *out. Waits at most `timeout` for the
  // first one, then takes only what is already prefetched (no further
  // waiting), so a call returns a whole batch when the consumer is behind and
  // one message promptly when it is caught up. Returns how many it appended
  // (0 on timeout). Serves rebalance callbacks. Messages carry no error:
  // partition EOF and transient errors (broker down, transport, unknown
  // topic, max.poll.interval exceeded) are skipped and counted in
  // transient_errors(), with the latest in last_transient_error(). Fatal
  // errors (ERR__FATAL, authentication/authorization failures, a failed
  // assignment) return kFailedPrecondition; messages already appended stay.
  // Messages are popped from librdkafka's queue many at a time
  // (rd_kafka_consume_batch_queue), not one call per record.
  Result<size_t> ConsumeBatch(size_t max, DurationMs timeout, std::vector<KafkaMessage>* out);

  // Commits these offsets (next offset to read) for the group and waits for
  // the answer. kFailedPrecondition when the group moved on (rebalance in
  // progress, fenced, unknown member: the partitions are no longer ours, or
  // the consumer has no group); kUnavailable for transient failures (retry).
  // Empty `offsets`: OK, nothing sent.
  Status CommitSync(const std::vector<TopicPartitionOffset>& offsets);

  // High watermark minus the position of the next message to hand out, from
  // the watermark that came with the latest fetch response: no network round
  // trip. kUnavailable until the partition has been fetched and consumed
  // from (position known). With read_committed input the high watermark
  // includes transaction markers, so lag can read a little high.
  Result<int64_t> Lag(const TopicPartition& partition);

  // Stops fetching / resumes these partitions (assignment unchanged), for
  // back pressure.
  Status Pause(const std::vector<TopicPartition>& partitions);
  Status Resume(const std::vector<TopicPartition>& partitions);

  // The current assignment.
  Result<std::vector<TopicPartition>> Assignment();

  // Partition count of `topic` from a metadata request (waits up to
  // `timeout`). kNotFound when the topic does not exist.
  Result<int32_t> PartitionCount(const std::string& topic, DurationMs timeout);

  // Leaves the group (the listener sees the final revocation) and closes.
  // Idempotent; later calls return OK, other methods kFailedPrecondition.
  Status Close();

  uint64_t transient_errors() const { return transient_errors_; }
  const std::string& last_transient_error() const { return last_transient_error_; }
  const std::string& group_id() const { return group_id_; }

  // The librdkafka handle, for what this class does not wrap. Owned here.
  RdKafka::KafkaConsumer* handle() { return consumer_.get(); }

 private:
  class Callbacks;
  KafkaConsumer();

  std::unique_ptr<Callbacks> callbacks_;  // outlives consumer_ (declared first)
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  // The consumer's queue (messages, rebalances, errors), for batch pops;
  // released before consumer_ is destroyed.
  struct QueueRelease {
    void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
  };
  std::unique_ptr<rd_kafka_queue_t, QueueRelease> queue_;
  std::vector<rd_kafka_message_t*> popped_;  // ConsumeBatch's scratch
  std::string group_id_;
  bool closed_ = false;
  // Offset of each partition's latest end-of-partition event (Lag).
  std::map<TopicPartition, int64_t> end_seen_;
  uint64_t transient_errors_ = 0;
  std::string last_transient_error_;
};

// ---------------------------------------------------------------------------
// KafkaAdmin: creates and inspects topics.
//
// Thread-safety: one thread at a time. Ownership: owns its librdkafka handle.
class KafkaAdmin {
 public:
  // Needs bootstrap.servers. Errors: kInvalidArgument naming the property.
  static Result<std::unique_ptr<KafkaAdmin>> Create(const KafkaProperties& props);
  ~KafkaAdmin();
  KafkaAdmin(const KafkaAdmin&) = delete;
  KafkaAdmin& operator=(const KafkaAdmin&) = delete;

  // Makes sure `name` exists with at least `partitions` partitions: creates
  // it when missing with `replication_factor` (-1: the broker's default) and
  // `configs` (e.g. {"cleanup.policy", "compact"}); a concurrent creation
  // (TOPIC_ALREADY_EXISTS) is fine. Returns once the topic shows in
  // metadata (a new topic takes a moment). An existing topic with fewer partitions
  // gives kFailedPrecondition naming both counts; more are fine. The configs
  // of an existing topic are not checked. Against librdkafka's mock cluster
  // (EmbeddedBroker), which has no CreateTopics, a missing topic gives
  // kFailedPrecondition saying so at once (existing topics pass as usual).
  // kUnavailable when the broker does not answer within `timeout`.
  Status EnsureTopic(const std::string& name, int32_t partitions, int32_t replication_factor,
                     const KafkaProperties& configs, DurationMs timeout);

  // Partition count of `topic` from metadata. kNotFound when missing.
  Result<int32_t> PartitionCount(const std::string& topic, DurationMs timeout = 10000);

  // Whether a metadata request is answered within `timeout` (blocks that
  // long at most). For readiness probes.
  bool BrokersReachable(DurationMs timeout);

  // True when the cluster is librdkafka's mock cluster (EmbeddedBroker),
  // known by its cluster id; false when it is not or does not answer in time.
  bool IsEmbeddedBroker(DurationMs timeout);

  // The partition's low and high watermark offsets (the first offset still
  // kept, and the next offset to be written), asked of the broker.
  Result<std::pair<int64_t, int64_t>> WatermarkOffsets(const std::string& topic, int32_t partition,
                                                      DurationMs timeout = 10000);

 private:
  KafkaAdmin() = default;
  std::unique_ptr<RdKafka::Producer> handle_;
};

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_KAFKA_CLIENT_H_
