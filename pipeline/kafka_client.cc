#include "pipeline/kafka_client.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <limits>
#include <thread>

#include <librdkafka/rdkafka.h>

namespace shortfall::pipeline {

static_assert(kOffsetBeginning == RD_KAFKA_OFFSET_BEGINNING);
static_assert(kOffsetEnd == RD_KAFKA_OFFSET_END);
static_assert(kOffsetStored == RD_KAFKA_OFFSET_STORED);

namespace {

using Clock = std::chrono::steady_clock;

int ClampMs(DurationMs ms) {
  return static_cast<int>(std::clamp<DurationMs>(ms, 0, std::numeric_limits<int>::max()));
}

DurationMs MsUntil(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max<DurationMs>(0, left.count());
}

std::string ErrName(RdKafka::ErrorCode err) { return RdKafka::err2str(err); }

// "topic[3]", or "topic" when the partitioner has not chosen yet.
std::string PartitionName(std::string_view topic, int32_t partition) {
  if (partition < 0) return std::string(topic);
  return std::string(topic) + "[" + std::to_string(partition) + "]";
}

// Fills `defaults` in for the names `props` does not set, then appends
// `props`, so the caller's value always wins and librdkafka sees each name
// once.
KafkaProperties WithDefaults(const KafkaProperties& props, const KafkaProperties& defaults) {
  KafkaProperties all;
  for (const auto& d : defaults) {
    if (!HasProperty(props, d.first)) all.push_back(d);
  }
  all.insert(all.end(), props.begin(), props.end());
  return all;
}

Status RequireBootstrap(const KafkaProperties& props) {
  if (HasProperty(props, "bootstrap.servers") || HasProperty(props, "metadata.broker.list") ||
      HasProperty(props, "test.mock.num.brokers")) {
    return OkStatus();
  }
  return InvalidArgumentError("Kafka property 'bootstrap.servers' is required");
}

// librdkafka's logs go to stderr as its own default logger writes them (that
// logger is replaced once an event callback is set); log_level and debug
// choose what is logged. Log events can come from librdkafka's internal
// threads: one fprintf per line keeps lines whole.
void LogToStderr(const RdKafka::Event& event) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const double seconds = static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count()) / 1000.0;
  std::fprintf(stderr, "%%%d|%.3f|%s| %s\n", static_cast<int>(event.severity()), seconds,
               event.fac().c_str(), event.str().c_str());
}

// Owns a vector of librdkafka TopicPartition objects.
class PartitionList {
 public:
  PartitionList() = default;
  ~PartitionList() { RdKafka::TopicPartition::destroy(list_); }
  PartitionList(const PartitionList&) = delete;
  PartitionList& operator=(const PartitionList&) = delete;

  void Add(const std::string& topic, int32_t partition) {
    list_.push_back(RdKafka::TopicPartition::create(topic, partition));
  }
  void Add(const std::string& topic, int32_t partition, int64_t offset) {
    list_.push_back(RdKafka::TopicPartition::create(topic, partition, offset));
  }
  std::vector<RdKafka::TopicPartition*>& get() { return list_; }

 private:
  std::vector<RdKafka::TopicPartition*> list_;
};

std::vector<TopicPartition> ToTopicPartitions(const std::vector<RdKafka::TopicPartition*>& list) {
  std::vector<TopicPartition> out;
  out.reserve(list.size());
  for (const RdKafka::TopicPartition* tp : list) out.push_back({tp->topic(), tp->partition()});
  return out;
}

// Partition count from a metadata request for all topics. Asking for one
// topic by name would let a producer handle auto-create it on brokers that
// allow that (librdkafka's mock cluster always does, with 4 partitions).
Result<int32_t> PartitionCountOf(RdKafka::Handle* handle, const std::string& topic,
                                 DurationMs timeout) {
  RdKafka::Metadata* raw = nullptr;
  const RdKafka::ErrorCode err = handle->metadata(/*all_topics=*/true, nullptr, &raw, ClampMs(timeout));
  std::unique_ptr<RdKafka::Metadata> metadata(raw);
  if (err != RdKafka::ERR_NO_ERROR) {
    return UnavailableError("metadata request for topic '" + topic + "' failed: " + ErrName(err));
  }
  for (const RdKafka::TopicMetadata* t : *metadata->topics()) {
    if (t->topic() != topic) continue;
    if (t->err() == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART) break;
    if (t->err() != RdKafka::ERR_NO_ERROR) {
      return UnavailableError("metadata for topic '" + topic + "': " + ErrName(t->err()));
    }
    return static_cast<int32_t>(t->partitions()->size());
  }
  return NotFoundError("topic '" + topic + "' does not exist");
}

bool IsAuthError(RdKafka::ErrorCode err) {
  switch (err) {
    case RdKafka::ERR__AUTHENTICATION:
    case RdKafka::ERR_SASL_AUTHENTICATION_FAILED:
    case RdKafka::ERR_TOPIC_AUTHORIZATION_FAILED:
    case RdKafka::ERR_GROUP_AUTHORIZATION_FAILED:
    case RdKafka::ERR_CLUSTER_AUTHORIZATION_FAILED:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Configuration

Result<std::unique_ptr<RdKafka::Conf>> MakeKafkaConf(const KafkaProperties& props) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  for (const auto& [name, value] : props) {
    std::string errstr;
    if (conf->set(name, value, errstr) == RdKafka::Conf::CONF_OK) continue;
    const std::string shown = RedactProperty(name, value);
    // librdkafka quotes bad values in its message; keep secrets out of it.
    if (shown != value && !value.empty()) {
      for (size_t at = errstr.find(value); at != std::string::npos; at = errstr.find(value, at)) {
        errstr.replace(at, value.size(), shown);
        at += shown.size();
      }
    }
    return InvalidArgumentError("Kafka property '" + name + "' = '" + shown + "': " + errstr);
  }
  return conf;
}

bool IsSecretProperty(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view secret :
       {"password", "secret", "sasl.jaas", "token", "ssl.key", "oauthbearer.config"}) {
    if (lower.find(secret) != std::string::npos) return true;
  }
  return false;
}

std::string RedactProperty(std::string_view name, std::string_view value) {
  return IsSecretProperty(name) ? "[redacted]" : std::string(value);
}

bool HasProperty(const KafkaProperties& props, std::string_view name) {
  return std::any_of(props.begin(), props.end(), [&](const auto& p) { return p.first == name; });
}

// ---------------------------------------------------------------------------
// KafkaProducer

// Delivery reports and errors. Both run on the thread that polls (Produce,
// Flush, Poll), except log events, which librdkafka may emit from its own
// threads (LogToStderr is safe there).
class KafkaProducer::Callbacks final : public RdKafka::DeliveryReportCb, public RdKafka::EventCb {
 public:
  explicit Callbacks(KafkaProducer* owner) : owner_(owner) {}

  void dr_cb(RdKafka::Message& message) override {
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      owner_->delivered_.fetch_add(1, std::memory_order_relaxed);
      if (!owner_->tracked_topics_.empty()) Track(message);
      return;
    }
    owner_->failed_.fetch_add(1, std::memory_order_relaxed);
    if (failed_since_flush++ == 0) {
      first_error = "delivery to " + PartitionName(message.topic_name(), message.partition()) +
                    " failed: " + message.errstr();
    }
  }

  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR:
        if (event.fatal()) fatal = true;
        last_error = ErrName(event.err()) + ": " + event.str();
        break;
      case RdKafka::Event::EVENT_LOG:
        LogToStderr(event);
        break;
      default:
        break;
    }
  }

  void Track(RdKafka::Message& message) {
    // The C name: topic_name() would build a std::string per delivered record.
    const std::string_view topic = rd_kafka_topic_name(static_cast<rd_kafka_message_t*>(message.c_ptr())->rkt);
    const auto& tracked = owner_->tracked_topics_;
    if (std::find(tracked.begin(), tracked.end(), topic) == tracked.end()) return;
    int64_t& offset = owner_->delivered_offsets_[{std::string(topic), message.partition()}];
    offset = std::max(offset, message.offset());
  }

  KafkaProducer* owner_;
  bool fatal = false;
  std::string first_error;  // the first delivery error since the last Flush
  uint64_t failed_since_flush = 0;
  std::string last_error;   // the latest client-level error (e.g. all brokers down)
};

KafkaProducer::KafkaProducer() : callbacks_(std::make_unique<Callbacks>(this)) {}

KafkaProducer::~KafkaProducer() {
  for (auto& [name, handle] : topics_) rd_kafka_topic_destroy(handle);
  // librdkafka calls back into callbacks_ until the handle is gone.
  producer_.reset();
}

rd_kafka_topic_t* KafkaProducer::TopicHandle(std::string_view topic) {
  auto it = topics_.find(topic);
  if (it != topics_.end()) return it->second;
  std::string name(topic);
  rd_kafka_topic_t* handle = rd_kafka_topic_new(producer_->c_ptr(), name.c_str(), nullptr);
  if (handle == nullptr) return nullptr;
  return topics_.emplace(std::move(name), handle).first->second;
}

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::Create(const KafkaProperties& props) {
  SHORTFALL_RETURN_IF_ERROR(RequireBootstrap(props));
  const KafkaProperties defaults = {
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "5"},
      {"compression.type", "lz4"},
      {"partitioner", "murmur2_random"},
  };
  SHORTFALL_ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf,
                             MakeKafkaConf(WithDefaults(props, defaults)));
  std::unique_ptr<KafkaProducer> producer(new KafkaProducer());
  std::string errstr;
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(producer->callbacks_.get()),
                errstr) != RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(producer->callbacks_.get()), errstr) !=
          RdKafka::Conf::CONF_OK) {
    return InternalError("cannot install producer callbacks: " + errstr);
  }
  producer->producer_.reset(RdKafka::Producer::create(conf.get(), errstr));
  if (producer->producer_ == nullptr) {
    return InvalidArgumentError("cannot create Kafka producer: " + errstr);
  }
  return producer;
}

Status KafkaProducer::FatalStatus() {
  std::string reason;
  const RdKafka::ErrorCode err = producer_->fatal_error(reason);
  return FailedPreconditionError("Kafka producer hit a fatal error and must be recreated: " +
                                 ErrName(err) + ": " + reason);
}

Status KafkaProducer::Produce(const OutgoingRecord& record) {
  if (callbacks_->fatal) return FatalStatus();
  rd_kafka_topic_t* rkt = TopicHandle(record.topic);
  if (rkt == nullptr) {
    return InvalidArgumentError("produce to topic '" + std::string(record.topic) + "': " +
                                rd_kafka_err2str(rd_kafka_last_error()));
  }
  // Through the C API: one call, the record and its headers copied into
  // librdkafka's queue, no C++ Headers object.
  std::vector<rd_kafka_vu_t>& args = produce_args_;
  args.clear();
  const auto add = [&args](rd_kafka_vtype_t type) -> rd_kafka_vu_t& {
    args.push_back(rd_kafka_vu_t{});
    args.back().vtype = type;
    return args.back();
  };
  add(RD_KAFKA_VTYPE_RKT).u.rkt = rkt;
  add(RD_KAFKA_VTYPE_PARTITION).u.i32 = record.partition;
  add(RD_KAFKA_VTYPE_MSGFLAGS).u.i = RD_KAFKA_MSG_F_COPY;
  rd_kafka_vu_t& value = add(RD_KAFKA_VTYPE_VALUE);
  value.u.mem.ptr = const_cast<char*>(record.value.data());
  value.u.mem.size = record.value.size();
  rd_kafka_vu_t& key = add(RD_KAFKA_VTYPE_KEY);
  key.u.mem.ptr = const_cast<char*>(record.key.data());
  key.u.mem.size = record.key.size();
  add(RD_KAFKA_VTYPE_TIMESTAMP).u.i64 = record.timestamp_ms;
  for (const auto& [name, header_value] : record.headers) {
    rd_kafka_vu_t& h = add(RD_KAFKA_VTYPE_HEADER);
    h.u.header.name = name.c_str();
    h.u.header.val = header_value.data();
    h.u.header.size = static_cast<ssize_t>(header_value.size());
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(queue_full_timeout_);
  for (;;) {
    rd_kafka_error_t* error = rd_kafka_produceva(producer_->c_ptr(), args.data(), args.size());
    const auto err = static_cast<RdKafka::ErrorCode>(error == nullptr ? RD_KAFKA_RESP_ERR_NO_ERROR
                                                                     : rd_kafka_error_code(error));
    if (error != nullptr) rd_kafka_error_destroy(error);
    if (err == RdKafka::ERR_NO_ERROR) {
      if (++unpolled_ >= kPollEvery) {
        unpolled_ = 0;
        producer_->poll(0);
      }
      return OkStatus();
    }
    const std::string topic(record.topic);
    const std::string what = "produce to " + PartitionName(topic, record.partition) + ": ";
    switch (err) {
      case RdKafka::ERR__QUEUE_FULL:
        if (Clock::now() >= deadline) {
          return UnavailableError(what + "the producer queue stayed full for " +
                                  FormatDuration(queue_full_timeout_) + " with " +
                                  std::to_string(producer_->outq_len()) +
                                  " records waiting (broker unreachable or too slow" +
                                  (callbacks_->last_error.empty() ? "" : "; last error: " + callbacks_->last_error) +
                                  ")");
        }
        // Deliveries free room; serve their reports while waiting.
        producer_->poll(static_cast<int>(std::min<DurationMs>(100, MsUntil(deadline) + 1)));
        continue;
      case RdKafka::ERR__UNKNOWN_PARTITION:
      case RdKafka::ERR__UNKNOWN_TOPIC:
      case RdKafka::ERR_UNKNOWN_TOPIC_OR_PART:
        return NotFoundError(what + ErrName(err));
      case RdKafka::ERR_MSG_SIZE_TOO_LARGE:
      case RdKafka::ERR__INVALID_ARG:
        return InvalidArgumentError(what + ErrName(err));
      case RdKafka::ERR__FATAL:
        return FatalStatus();
      default:
        // Authorization failures stay until someone changes the ACLs.
        if (IsAuthError(err)) return FailedPreconditionError(what + ErrName(err));
        return UnavailableError(what + ErrName(err));
    }
  }
}

void KafkaProducer::Poll() { producer_->poll(0); }

Status KafkaProducer::Flush(DurationMs timeout) {
  const RdKafka::ErrorCode err = producer_->flush(ClampMs(timeout));
  if (callbacks_->fatal) return FatalStatus();
  Status result;
  if (callbacks_->failed_since_flush > 0) {
    const uint64_t n = callbacks_->failed_since_flush;
    result = AbortedError(std::to_string(n) + (n == 1 ? " record" : " records") +
                          " failed since the last flush; the first: " + callbacks_->first_error);
    callbacks_->failed_since_flush = 0;
    callbacks_->first_error.clear();
  } else if (err != RdKafka::ERR_NO_ERROR) {
    result = UnavailableError("flush: " + std::to_string(producer_->outq_len()) +
                              " records still undelivered after " + FormatDuration(timeout) +
                              (callbacks_->last_error.empty() ? "" : " (last error: " + callbacks_->last_error + ")"));
  }
  return result;
}

int64_t KafkaProducer::DeliveredOffset(const std::string& topic, int32_t partition) const {
  auto it = delivered_offsets_.find({topic, partition});
  return it == delivered_offsets_.end() ? -1 : it->second;
}

Status KafkaProducer::TransactionStatus(RdKafka::Error* raw, std::string_view call) {
  std::unique_ptr<RdKafka::Error> error(raw);
  if (error == nullptr) return OkStatus();
  std::string message = std::string(call) + ": " + error->name() + ": " + error->str();
  if (error->is_fatal()) {
    return FailedPreconditionError(message + " (fatal: the producer must be recreated)");
  }
  if (error->txn_requires_abort()) return AbortedError(message + " (the transaction must be aborted)");
  if (error->is_retriable()) return UnavailableError(message);
  // Neither retriable nor abortable (e.g. a wrong state): treat as abortable.
  return AbortedError(message);
}

Status KafkaProducer::InitTransactions(DurationMs timeout) {
  return TransactionStatus(producer_->init_transactions(ClampMs(timeout)), "init_transactions");
}

Status KafkaProducer::BeginTransaction() {
  return TransactionStatus(producer_->begin_transaction(), "begin_transaction");
}

Status KafkaProducer::SendOffsetsToTransaction(const std::vector<TopicPartitionOffset>& offsets,
                                               KafkaConsumer& consumer, DurationMs timeout) {
  PartitionList list;
  for (const TopicPartitionOffset& o : offsets) list.Add(o.topic, o.partition, o.offset);
  std::unique_ptr<RdKafka::ConsumerGroupMetadata> group(consumer.handle()->groupMetadata());
  if (group == nullptr) return FailedPreconditionError("send_offsets_to_transaction: the consumer has no group");
  return TransactionStatus(producer_->send_offsets_to_transaction(list.get(), group.get(), ClampMs(timeout)),
                           "send_offsets_to_transaction");
}

Status KafkaProducer::CommitTransaction(DurationMs timeout) {
  Status s = TransactionStatus(producer_->commit_transaction(ClampMs(timeout)), "commit_transaction");
  // Delivery failures inside a transaction surface here, not in Flush.
  callbacks_->failed_since_flush = 0;
  callbacks_->first_error.clear();
  return s;
}

Status KafkaProducer::AbortTransaction(DurationMs timeout) {
  Status s = TransactionStatus(producer_->abort_transaction(ClampMs(timeout)), "abort_transaction");
  callbacks_->failed_since_flush = 0;
  callbacks_->first_error.clear();
  return s;
}

// ---------------------------------------------------------------------------
// KafkaConsumer

// Rebalances and errors; run on the consumer's thread inside consume() and
// close(), except log events (see LogToStderr).
class KafkaConsumer::Callbacks final : public RdKafka::RebalanceCb, public RdKafka::EventCb {
 public:
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
    const std::vector<TopicPartition> changed = ToTopicPartitions(partitions);
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      if (listener != nullptr) {
        for (RdKafka::TopicPartition* p : partitions) {
          const int64_t start = listener->StartOffset(TopicPartition{p->topic(), p->partition()});
          p->set_offset(start == kOffsetStored ? RdKafka::Topic::OFFSET_STORED : start);
        }
      }
      std::string failure;
      if (cooperative) {
        std::unique_ptr<RdKafka::Error> error(consumer->incremental_assign(partitions));
        if (error != nullptr) failure = error->str();
      } else if (RdKafka::ErrorCode e = consumer->assign(partitions); e != RdKafka::ERR_NO_ERROR) {
        failure = ErrName(e);
      }
      if (!failure.empty()) {
        if (fatal.empty()) fatal = "cannot take the assigned partitions: " + failure;
        return;
      }
      if (listener != nullptr) listener->OnAssigned(changed);
      return;
    }
    if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
      // Tell the listener first: it may still commit for partitions not lost.
      if (listener != nullptr) listener->OnRevoked(changed, consumer->assignment_lost());
    } else {
      // A failed rebalance: librdkafka wants the whole assignment dropped.
      transient_error = "rebalance failed: " + ErrName(err);
      if (listener != nullptr) listener->OnRevoked(changed, /*lost=*/true);
    }
    if (cooperative && err == RdKafka::ERR__REVOKE_PARTITIONS) {
      std::unique_ptr<RdKafka::Error> error(consumer->incremental_unassign(partitions));
      if (error != nullptr && fatal.empty()) fatal = "cannot give up revoked partitions: " + error->str();
    } else {
      consumer->unassign();
    }
  }

  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR:
        if (event.fatal()) {
          if (fatal.empty()) fatal = ErrName(event.err()) + ": " + event.str();
        } else if (IsAuthError(event.err())) {
          if (fatal.empty()) fatal = ErrName(event.err()) + ": " + event.str();
        } else {
          transient_error = ErrName(event.err()) + ": " + event.str();
        }
        break;
      case RdKafka::Event::EVENT_LOG:
        LogToStderr(event);
        break;
      default:
        break;
    }
  }

  RebalanceListener* listener = nullptr;
  std::string fatal;            // set once; ConsumeBatch reports it
  std::string transient_error;  // latest, taken by ConsumeBatch
};

KafkaConsumer::KafkaConsumer() : callbacks_(std::make_unique<Callbacks>()) {}

KafkaConsumer::~KafkaConsumer() {
  Close().IgnoreError();
  queue_.reset();
  consumer_.reset();
}

Result<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Create(const KafkaProperties& props,
                                                             std::string group_id) {
  SHORTFALL_RETURN_IF_ERROR(RequireBootstrap(props));
  if (HasProperty(props, "group.id")) {
    return InvalidArgumentError("Kafka property 'group.id': pass the group to KafkaConsumer::Create");
  }
  // Prefetch tuning. librdkafka fetches ahead into a local queue until a
  // partition holds queued.min.messages (or the consumer queue holds
  // queued.max.messages.kbytes); then it stops fetching that partition and
  // looks again only after fetch.queue.backoff.ms. That backoff was a fixed
  // 1 s up to 2.1 (the ~1 s stalls seen with Debian's 2.0.2) and is still
  // 1000 ms by default: a consumer that drains its queue faster than that
  // sits idle for the rest of the second, again and again.
  // Measured (a 1 us/record consumer in ConsumeBatch(5000) calls, 4
  // partitions of 600k 120-byte records, Kafka 4.4 on loopback): the
  // librdkafka defaults read 290k records/s with 7 stalls of ~700 ms; these
  // settings read 680k/s and never waited more than 17 ms. Same picture on
  // the mock cluster (123k/s with 4 stalls vs 316k/s, max wait 10 ms).
  // queued.min.messages from 5000 to 100000 made no difference once the
  // backoff is short, so it is set to bound memory.
  //   fetch.queue.backoff.ms=10  re-check the queue 100x a second: cheap, and
  //       fetching resumes as soon as the application has made room.
  //   queued.min.messages=20000  per partition: ~6 MB of 300-byte events,
  //       more than arrives in one backoff at any rate this pipeline sees;
  //       the default 100000 x 48 partitions would be ~1.4 GB but for the
  //       64 MiB queued.max.messages.kbytes cap.
  //   fetch.wait.max.ms=100      when caught up, the broker holds an empty
  //       fetch at most 100 ms (default 500): new events reach the pipeline
  //       within 0.1 s even if fetch.min.bytes is raised; ~10 idle
  //       requests/s per broker.
  //   fetch.min.bytes=1          answer as soon as there is anything: latency
  //       over request count (the default; named to keep it a decision).
  //   enable.partition.eof=true  Lag() knows a read_committed partition is
  //       read to its end even though the position stops before the last
  //       transaction marker (ConsumeBatch skips the events).
  const KafkaProperties defaults = {
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"isolation.level", "read_committed"},
      {"fetch.queue.backoff.ms", "10"},
      {"queued.min.messages", "20000"},
      {"fetch.wait.max.ms", "100"},
      {"fetch.min.bytes", "1"},
      {"enable.partition.eof", "true"},
  };
  KafkaProperties all = WithDefaults(props, defaults);
  // librdkafka's KafkaConsumer needs a group.id even when it never joins a
  // group; without one (Assign only) it gets a name that is never used for
  // a join or a commit.
  all.emplace_back("group.id", group_id.empty() ? "shortfall-unjoined" : group_id);
  SHORTFALL_ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf, MakeKafkaConf(all));
  std::unique_ptr<KafkaConsumer> consumer(new KafkaConsumer());
  consumer->group_id_ = std::move(group_id);
  std::string errstr;
  if (conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(consumer->callbacks_.get()),
                errstr) != RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(consumer->callbacks_.get()), errstr) !=
          RdKafka::Conf::CONF_OK) {
    return InternalError("cannot install consumer callbacks: " + errstr);
  }
  consumer->consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), errstr));
  if (consumer->consumer_ == nullptr) {
    return InvalidArgumentError("cannot create Kafka consumer: " + errstr);
  }
  consumer->queue_.reset(rd_kafka_queue_get_consumer(consumer->consumer_->c_ptr()));
  if (consumer->queue_ == nullptr) return InternalError("cannot get the Kafka consumer's queue");
  return consumer;
}

Status KafkaConsumer::Subscribe(std::vector<std::string> topics, RebalanceListener* listener) {
  if (closed_) return FailedPreconditionError("Subscribe on a closed consumer");
  if (group_id_.empty()) {
    return FailedPreconditionError("Subscribe needs a consumer group: create the consumer with a group id");
  }
  if (topics.empty()) return InvalidArgumentError("Subscribe: no topics");
  callbacks_->listener = listener;
  const RdKafka::ErrorCode err = consumer_->subscribe(topics);
  if (err != RdKafka::ERR_NO_ERROR) {
    return InvalidArgumentError("subscribe: " + ErrName(err));
  }
  return OkStatus();
}

Status KafkaConsumer::Assign(const std::vector<TopicPartitionOffset>& partitions) {
  if (closed_) return FailedPreconditionError("Assign on a closed consumer");
  PartitionList list;
  for (const TopicPartitionOffset& p : partitions) {
    list.Add(p.topic, p.partition, p.offset);
    end_seen_.erase({p.topic, p.partition});
  }
  const RdKafka::ErrorCode err = consumer_->assign(list.get());
  if (err != RdKafka::ERR_NO_ERROR) return FailedPreconditionError("assign: " + ErrName(err));
  return OkStatus();
}

std::string_view KafkaMessage::header(std::string_view name) const {
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(message_.get(), &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  const void* value = nullptr;
  size_t size = 0;
  const std::string c_name(name);  // a C string for librdkafka; no allocation for short names like content-type
  if (rd_kafka_header_get_last(headers, c_name.c_str(), &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  return View(value, size);
}

std::vector<std::pair<std::string_view, std::string_view>> KafkaMessage::headers() const {
  std::vector<std::pair<std::string_view, std::string_view>> all;
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(message_.get(), &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return all;
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
    all.emplace_back(name, View(value, size));
  }
  return all;
}

Result<size_t> KafkaConsumer::ConsumeBatch(size_t max, DurationMs timeout, std::vector<KafkaMessage>* out) {
  if (closed_) return FailedPreconditionError("ConsumeBatch on a closed consumer");
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max<DurationMs>(0, timeout));
  size_t appended = 0;
  while (appended < max) {
    // First what is already prefetched, without waiting. Only when that is
    // nothing and nothing was appended yet, wait (until the deadline) for
    // one message: a batch pop with a timeout would wait for a full batch.
    popped_.resize(std::min<size_t>(max - appended, 1000));
    ssize_t n = rd_kafka_consume_batch_queue(queue_.get(), 0, popped_.data(), popped_.size());
    if (n == 0 && appended == 0) {
      const int wait = ClampMs(MsUntil(deadline));
      if (wait > 0) n = rd_kafka_consume_batch_queue(queue_.get(), wait, popped_.data(), 1);
    }
    if (n < 0) return FailedPreconditionError("Kafka consumer: " + ErrName(static_cast<RdKafka::ErrorCode>(rd_kafka_last_error())));
    if (!callbacks_->transient_error.empty()) {
      ++transient_errors_;
      last_transient_error_ = std::move(callbacks_->transient_error);
      callbacks_->transient_error.clear();
    }
    Status failed = callbacks_->fatal.empty() ? OkStatus() : FailedPreconditionError("Kafka consumer: " + callbacks_->fatal);
    bool transient = false;
    for (ssize_t i = 0; i < n; ++i) {
      KafkaMessage message(popped_[i]);
      const auto err = static_cast<RdKafka::ErrorCode>(popped_[i]->err);
      if (!failed.ok()) continue;  // destroyed: the consumer is unusable now
      switch (err) {
        case RdKafka::ERR_NO_ERROR:
          out->push_back(std::move(message));
          ++appended;
          break;
        case RdKafka::ERR__PARTITION_EOF:
          end_seen_[{std::string(message.topic()), message.partition()}] = message.offset();
          break;
        case RdKafka::ERR__FATAL: {
          std::string reason;
          const RdKafka::ErrorCode code = consumer_->fatal_error(reason);
          failed = FailedPreconditionError("Kafka consumer hit a fatal error: " + ErrName(code) + ": " + reason);
          break;
        }
        case RdKafka::ERR__AUTO_OFFSET_RESET:
          failed = DataLossError("Kafka consumer: " + std::string(rd_kafka_message_errstr(popped_[i])));
          break;
        default:
          if (IsAuthError(err)) {
            failed = FailedPreconditionError("Kafka consumer: " + ErrName(err) + ": " +
                                             rd_kafka_message_errstr(popped_[i]));
            break;
          }
          ++transient_errors_;
          last_transient_error_ = ErrName(err) + ": " + rd_kafka_message_errstr(popped_[i]);
          transient = true;
          break;
      }
    }
    SHORTFALL_RETURN_IF_ERROR(failed);
    if (appended > 0 && (n == 0 || transient)) return appended;  // drained what was prefetched
    if (appended == 0 && MsUntil(deadline) == 0) return appended;
    // Otherwise: woke early (a callback was served, or only events came): go on.
  }
  return appended;
}

Status KafkaConsumer::CommitSync(const std::vector<TopicPartitionOffset>& offsets) {
  if (closed_) return FailedPreconditionError("CommitSync on a closed consumer");
  if (group_id_.empty()) return FailedPreconditionError("CommitSync without a consumer group");
  if (offsets.empty()) return OkStatus();
  PartitionList list;
  for (const TopicPartitionOffset& o : offsets) list.Add(o.topic, o.partition, o.offset);
  RdKafka::ErrorCode err = consumer_->commitSync(list.get());
  std::string where;
  if (err == RdKafka::ERR_NO_ERROR) {
    for (const RdKafka::TopicPartition* tp : list.get()) {
      if (tp->err() != RdKafka::ERR_NO_ERROR) {
        err = tp->err();
        where = " for " + PartitionName(tp->topic(), tp->partition());
        break;
      }
    }
  }
  switch (err) {
    case RdKafka::ERR_NO_ERROR:
      return OkStatus();
    case RdKafka::ERR_REBALANCE_IN_PROGRESS:
    case RdKafka::ERR_ILLEGAL_GENERATION:
    case RdKafka::ERR_UNKNOWN_MEMBER_ID:
    case RdKafka::ERR_FENCED_INSTANCE_ID:
    case RdKafka::ERR__STATE:
      return FailedPreconditionError("commit" + where + ": " + ErrName(err) +
                                     " (the group has moved on: these partitions may belong to another member now)");
    default:
      if (IsAuthError(err)) return FailedPreconditionError("commit" + where + ": " + ErrName(err));
      return UnavailableError("commit" + where + ": " + ErrName(err));
  }
}

Result<int64_t> KafkaConsumer::Lag(const TopicPartition& partition) {
  if (closed_) return FailedPreconditionError("Lag on a closed consumer");
  int64_t low = -1;
  int64_t high = -1;
  const RdKafka::ErrorCode err =
      consumer_->get_watermark_offsets(partition.topic, partition.partition, &low, &high);
  const std::string name = PartitionName(partition.topic, partition.partition);
  if (err != RdKafka::ERR_NO_ERROR || high < 0) {
    return UnavailableError("lag of " + name + ": no watermark fetched yet");
  }
  // read_committed: a transaction's commit marker sits after its last
  // record, so the position stays one short of the high watermark; the end
  // of partition event says the consumer has seen everything up to `high`.
  if (auto it = end_seen_.find(partition); it != end_seen_.end() && it->second >= high) return int64_t{0};
  PartitionList list;
  list.Add(partition.topic, partition.partition);
  if (consumer_->position(list.get()) != RdKafka::ERR_NO_ERROR || list.get()[0]->offset() < 0) {
    if (low >= 0 && low == high) return int64_t{0};  // empty partition: nothing to lag behind
    return UnavailableError("lag of " + name + ": nothing consumed yet");
  }
  return std::max<int64_t>(0, high - list.get()[0]->offset());
}


Status KafkaConsumer::Pause(const std::vector<TopicPartition>& partitions) {
  if (closed_) return FailedPreconditionError("Pause on a closed consumer");
  PartitionList list;
  for (const TopicPartition& p : partitions) list.Add(p.topic, p.partition);
  const RdKafka::ErrorCode err = consumer_->pause(list.get());
  if (err != RdKafka::ERR_NO_ERROR) return UnavailableError("pause: " + ErrName(err));
  return OkStatus();
}

Status KafkaConsumer::Resume(const std::vector<TopicPartition>& partitions) {
  if (closed_) return FailedPreconditionError("Resume on a closed consumer");
  PartitionList list;
  for (const TopicPartition& p : partitions) list.Add(p.topic, p.partition);
  const RdKafka::ErrorCode err = consumer_->resume(list.get());
  if (err != RdKafka::ERR_NO_ERROR) return UnavailableError("resume: " + ErrName(err));
  return OkStatus();
}

Result<std::vector<TopicPartition>> KafkaConsumer::Assignment() {
  if (closed_) return FailedPreconditionError("Assignment on a closed consumer");
  PartitionList list;
  const RdKafka::ErrorCode err = consumer_->assignment(list.get());
  if (err != RdKafka::ERR_NO_ERROR) return UnavailableError("assignment: " + ErrName(err));
  return ToTopicPartitions(list.get());
}

Result<int32_t> KafkaConsumer::PartitionCount(const std::string& topic, DurationMs timeout) {
  if (closed_) return FailedPreconditionError("PartitionCount on a closed consumer");
  return PartitionCountOf(consumer_.get(), topic, timeout);
}

Status KafkaConsumer::Close() {
  if (closed_ || consumer_ == nullptr) return OkStatus();
  closed_ = true;
  // close() serves the final revocation through rebalance_cb, then leaves.
  const RdKafka::ErrorCode err = consumer_->close();
  callbacks_->listener = nullptr;
  if (err != RdKafka::ERR_NO_ERROR) return UnavailableError("closing the consumer: " + ErrName(err));
  return OkStatus();
}

// ---------------------------------------------------------------------------
// KafkaAdmin

namespace {

template <typename T, void (*Destroy)(T*)>
struct CDeleter {
  void operator()(T* p) const {
    if (p != nullptr) Destroy(p);
  }
};
using NewTopicPtr = std::unique_ptr<rd_kafka_NewTopic_t, CDeleter<rd_kafka_NewTopic_t, rd_kafka_NewTopic_destroy>>;
using AdminOptionsPtr =
    std::unique_ptr<rd_kafka_AdminOptions_t, CDeleter<rd_kafka_AdminOptions_t, rd_kafka_AdminOptions_destroy>>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, CDeleter<rd_kafka_queue_t, rd_kafka_queue_destroy>>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, CDeleter<rd_kafka_event_t, rd_kafka_event_destroy>>;

// librdkafka's mock cluster names itself "mockCluster<address>".
bool IsMockCluster(rd_kafka_t* rk, DurationMs timeout) {
  char* id = rd_kafka_clusterid(rk, ClampMs(timeout));
  if (id == nullptr) return false;
  const bool mock = std::string_view(id).starts_with("mockCluster");
  rd_kafka_mem_free(rk, id);
  return mock;
}

}  // namespace

KafkaAdmin::~KafkaAdmin() = default;

Result<std::unique_ptr<KafkaAdmin>> KafkaAdmin::Create(const KafkaProperties& props) {
  SHORTFALL_RETURN_IF_ERROR(RequireBootstrap(props));
  SHORTFALL_ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf, MakeKafkaConf(props));
  std::string errstr;
  std::unique_ptr<KafkaAdmin> admin(new KafkaAdmin());
  // Admin requests go through a producer handle: it never auto-creates
  // anything unless it produces, and it needs no group.
  admin->handle_.reset(RdKafka::Producer::create(conf.get(), errstr));
  if (admin->handle_ == nullptr) return InvalidArgumentError("cannot create Kafka admin client: " + errstr);
  return admin;
}

bool KafkaAdmin::IsEmbeddedBroker(DurationMs timeout) { return IsMockCluster(handle_->c_ptr(), timeout); }

bool KafkaAdmin::BrokersReachable(DurationMs timeout) {
  // All topics: a request for none may be answered from librdkafka's cache.
  RdKafka::Metadata* raw = nullptr;
  const RdKafka::ErrorCode err = handle_->metadata(/*all_topics=*/true, nullptr, &raw, ClampMs(timeout));
  std::unique_ptr<RdKafka::Metadata> metadata(raw);
  return err == RdKafka::ERR_NO_ERROR;
}

Result<int32_t> KafkaAdmin::PartitionCount(const std::string& topic, DurationMs timeout) {
  return PartitionCountOf(handle_.get(), topic, timeout);
}

Result<std::pair<int64_t, int64_t>> KafkaAdmin::WatermarkOffsets(const std::string& topic, int32_t partition,
                                                                 DurationMs timeout) {
  int64_t low = 0;
  int64_t high = 0;
  const RdKafka::ErrorCode err =
      handle_->query_watermark_offsets(topic, partition, &low, &high, static_cast<int>(timeout));
  if (err != RdKafka::ERR_NO_ERROR) {
    return UnavailableError("watermark offsets of " + topic + "[" + std::to_string(partition) +
                            "]: " + RdKafka::err2str(err));
  }
  return std::pair<int64_t, int64_t>{low, high};
}

Status KafkaAdmin::EnsureTopic(const std::string& name, int32_t partitions, int32_t replication_factor,
                               const KafkaProperties& configs, DurationMs timeout) {
  if (name.empty()) return InvalidArgumentError("EnsureTopic: empty topic name");
  if (partitions < 1) return InvalidArgumentError("EnsureTopic '" + name + "': partitions must be >= 1");
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max<DurationMs>(0, timeout));
  const auto check_existing = [&](int32_t have) -> Status {
    if (have >= partitions) return OkStatus();
    return FailedPreconditionError("topic '" + name + "' has " + std::to_string(have) +
                                   " partitions, fewer than the " + std::to_string(partitions) +
                                   " asked for; add partitions to it (kafka-topics.sh --alter "
                                   "--partitions " + std::to_string(partitions) +
                                   ") or ask for no more than " + std::to_string(have));
  };
  Result<int32_t> existing = PartitionCount(name, timeout);
  if (existing.ok()) return check_existing(*existing);
  if (existing.status().code() != StatusCode::kNotFound) return existing.status();

  rd_kafka_t* rk = handle_->c_ptr();
  if (IsMockCluster(rk, MsUntil(deadline))) {
    return FailedPreconditionError(
        "topic '" + name + "' does not exist, and the broker is librdkafka's mock cluster (the "
        "embedded broker), which cannot create topics through the admin API; create it when "
        "starting the broker (EmbeddedBroker::Start or CreateTopic)");
  }

  char errstr[512] = {0};
  NewTopicPtr topic(rd_kafka_NewTopic_new(name.c_str(), partitions, replication_factor, errstr, sizeof errstr));
  if (topic == nullptr) return InvalidArgumentError("topic '" + name + "': " + errstr);
  for (const auto& [key, value] : configs) {
    if (rd_kafka_resp_err_t e = rd_kafka_NewTopic_set_config(topic.get(), key.c_str(), value.c_str()); e) {
      return InvalidArgumentError("topic '" + name + "' config '" + key + "': " + rd_kafka_err2str(e));
    }
  }
  AdminOptionsPtr options(rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  const int wait_ms = std::max(1, ClampMs(MsUntil(deadline)));
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), wait_ms, errstr, sizeof errstr) ||
      rd_kafka_AdminOptions_set_operation_timeout(options.get(), wait_ms, errstr, sizeof errstr)) {
    return InternalError(std::string("CreateTopics options: ") + errstr);
  }
  QueuePtr queue(rd_kafka_queue_new(rk));
  rd_kafka_NewTopic_t* topics[] = {topic.get()};
  rd_kafka_CreateTopics(rk, topics, 1, options.get(), queue.get());
  // The request times out by itself; the extra second only covers delivery
  // of that timeout result.
  EventPtr event(rd_kafka_queue_poll(queue.get(), wait_ms + 1000));
  if (event == nullptr) {
    return UnavailableError("creating topic '" + name + "': no answer within " + FormatDuration(timeout));
  }
  if (rd_kafka_resp_err_t e = rd_kafka_event_error(event.get()); e) {
    return UnavailableError("creating topic '" + name + "': " + rd_kafka_event_error_string(event.get()));
  }
  size_t count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event.get()), &count);
  for (size_t i = 0; i < count; ++i) {
    const rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
    const char* message = rd_kafka_topic_result_error_string(results[i]);
    const std::string why = std::string(rd_kafka_err2name(e)) + (message != nullptr ? std::string(": ") + message : "");
    switch (e) {
      case RD_KAFKA_RESP_ERR_NO_ERROR:
      case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: {
        // Created, by us or by someone else meanwhile (it must still have
        // enough partitions). A new topic takes a moment to show in
        // metadata; callers may produce to it as soon as this returns.
        for (;;) {
          Result<int32_t> have = PartitionCount(name, std::max<DurationMs>(MsUntil(deadline), 1000));
          if (have.ok()) return check_existing(*have);
          if (have.status().code() != StatusCode::kNotFound || MsUntil(deadline) == 0) return have.status();
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
      }
      case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
      case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
      case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
      case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
      case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        return InvalidArgumentError("creating topic '" + name + "': " + why);
      case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
      case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return FailedPreconditionError("creating topic '" + name + "': " + why);
      default:
        return UnavailableError("creating topic '" + name + "': " + why);
    }
  }
  return InternalError("creating topic '" + name + "': the broker returned no result for it");
}

}  // namespace shortfall::pipeline
