// The Kafka client layer against the embedded broker (librdkafka's mock
// cluster on a loopback port it picks). Every wait is bounded; group tests
// lower session.timeout.ms and heartbeat.interval.ms so rebalances on the
// mock take about a second (see GroupProps).
#include "pipeline/kafka_client.h"

#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "pipeline/embedded_broker.h"

namespace shortfall::pipeline {
namespace {

using Messages = std::vector<KafkaMessage>;
using SteadyClock = std::chrono::steady_clock;

constexpr int16_t kProduceApiKey = 0;  // Kafka protocol ApiKey of Produce

std::unique_ptr<EmbeddedBroker> StartBroker(int32_t partitions, const std::vector<std::string>& topics) {
  Result<std::unique_ptr<EmbeddedBroker>> broker = EmbeddedBroker::Start(partitions, topics);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

KafkaProperties Props(const EmbeddedBroker& broker, KafkaProperties extra = {}) {
  KafkaProperties props = {{"bootstrap.servers", broker.bootstrap()}};
  props.insert(props.end(), extra.begin(), extra.end());
  return props;
}

// Group members that rebalance quickly on the mock: after a member leaves,
// the mock waits session.timeout.ms - 1 s for the others to rejoin (5 s with
// 6000, the lowest a real broker accepts), so tests use 2 s here.
KafkaProperties GroupProps(const EmbeddedBroker& broker) {
  return Props(broker, {{"session.timeout.ms", "2000"}, {"heartbeat.interval.ms", "250"}});
}

std::unique_ptr<KafkaProducer> MakeProducer(const KafkaProperties& props) {
  Result<std::unique_ptr<KafkaProducer>> producer = KafkaProducer::Create(props);
  EXPECT_TRUE(producer.ok()) << producer.status().ToString();
  return producer.ok() ? std::move(producer).value() : nullptr;
}

std::unique_ptr<KafkaConsumer> MakeConsumer(const KafkaProperties& props, const std::string& group) {
  Result<std::unique_ptr<KafkaConsumer>> consumer = KafkaConsumer::Create(props, group);
  EXPECT_TRUE(consumer.ok()) << consumer.status().ToString();
  return consumer.ok() ? std::move(consumer).value() : nullptr;
}

// Consumes until `want` messages arrived or `timeout` passed; counts calls.
Messages ConsumeUntil(KafkaConsumer& consumer, size_t want, DurationMs timeout, int* calls = nullptr) {
  Messages got;
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout);
  while (got.size() < want && SteadyClock::now() < deadline) {
    Result<size_t> n = consumer.ConsumeBatch(want - got.size(), 200, &got);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (!n.ok()) break;
    if (calls != nullptr && *n > 0) ++*calls;
  }
  return got;
}

std::vector<TopicPartitionOffset> AllFromBeginning(const std::string& topic, int32_t partitions) {
  std::vector<TopicPartitionOffset> out;
  for (int32_t p = 0; p < partitions; ++p) out.push_back({topic, p, kOffsetBeginning});
  return out;
}

std::string Payload(const KafkaMessage& m) { return std::string(m.value()); }

std::string HeaderValue(const KafkaMessage& m, const std::string& name) {
  for (const auto& [key, value] : m.headers()) {
    if (key == name) return std::string(value);
  }
  return "<missing>";
}

// Records what a consumer-group member is told.
class RecordingListener : public RebalanceListener {
 public:
  void OnAssigned(const std::vector<TopicPartition>& partitions) override {
    assigned.insert(assigned.end(), partitions.begin(), partitions.end());
  }
  void OnRevoked(const std::vector<TopicPartition>& partitions, bool lost) override {
    revoked.insert(revoked.end(), partitions.begin(), partitions.end());
    any_lost = any_lost || lost;
  }
  std::vector<TopicPartition> assigned;
  std::vector<TopicPartition> revoked;
  bool any_lost = false;
};

// ---------------------------------------------------------------------------
// Configuration

TEST(MakeKafkaConf, NamesTheBadPropertyAndLibrdkafkasReason) {
  // Given a value librdkafka rejects, when the configuration is made,
  Result<std::unique_ptr<RdKafka::Conf>> conf =
      MakeKafkaConf({{"bootstrap.servers", "localhost:9092"}, {"acks", "sometimes"}});
  // then the error names the property, its value and librdkafka's reason.
  ASSERT_FALSE(conf.ok());
  EXPECT_EQ(conf.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(conf.status().message().find("'acks' = 'sometimes'"), std::string::npos)
      << conf.status().message();
  EXPECT_NE(conf.status().message().find("Invalid value"), std::string::npos) << conf.status().message();

  Result<std::unique_ptr<RdKafka::Conf>> unknown = MakeKafkaConf({{"no.such.property", "1"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("no.such.property"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("No such configuration property"), std::string::npos)
      << unknown.status().message();
}

TEST(MakeKafkaConf, NeverShowsASecretValue) {
  // Given a property whose name marks it secret, when librdkafka refuses
  // it, then the message shows the name but not the value.
  Result<std::unique_ptr<RdKafka::Conf>> conf = MakeKafkaConf({{"sasl.password.bad", "hunter2"}});
  ASSERT_FALSE(conf.ok());
  EXPECT_EQ(conf.status().message().find("hunter2"), std::string::npos) << conf.status().message();
  EXPECT_NE(conf.status().message().find("[redacted]"), std::string::npos) << conf.status().message();
}

TEST(RedactProperty, HidesSecretsAndKeepsTheRest) {
  EXPECT_EQ(RedactProperty("sasl.password", "hunter2"), "[redacted]");
  EXPECT_EQ(RedactProperty("SASL.JAAS.CONFIG", "x"), "[redacted]");
  EXPECT_EQ(RedactProperty("ssl.key.password", "x"), "[redacted]");
  EXPECT_EQ(RedactProperty("ssl.key.pem", "-----BEGIN"), "[redacted]");
  EXPECT_EQ(RedactProperty("sasl.oauthbearer.config", "principal=x"), "[redacted]");
  EXPECT_EQ(RedactProperty("sasl.oauthbearer.client.secret", "s"), "[redacted]");
  EXPECT_EQ(RedactProperty("sasl.oauthbearer.token.endpoint.url", "https://x"), "[redacted]");
  EXPECT_EQ(RedactProperty("bootstrap.servers", "a:9092"), "a:9092");
  EXPECT_EQ(RedactProperty("sasl.username", "alice"), "alice");
  EXPECT_EQ(RedactProperty("ssl.ca.location", "/etc/ca.pem"), "/etc/ca.pem");
}

TEST(KafkaClients, NeedBootstrapServers) {
  Result<std::unique_ptr<KafkaProducer>> producer = KafkaProducer::Create({{"linger.ms", "1"}});
  ASSERT_FALSE(producer.ok());
  EXPECT_NE(producer.status().message().find("bootstrap.servers"), std::string::npos);
  EXPECT_FALSE(KafkaConsumer::Create({}, "g").ok());
  EXPECT_FALSE(KafkaAdmin::Create({}).ok());
}

TEST(KafkaClients, CallerPropertiesOverrideTheDefaults) {
  // acks=1 conflicts with the default enable.idempotence=true, so this only
  // works if the caller's enable.idempotence=false replaces the default.
  Result<std::unique_ptr<KafkaProducer>> producer = KafkaProducer::Create(
      {{"bootstrap.servers", "127.0.0.1:1"}, {"enable.idempotence", "false"}, {"acks", "1"}});
  EXPECT_TRUE(producer.ok()) << producer.status().ToString();
  Result<std::unique_ptr<KafkaConsumer>> consumer =
      KafkaConsumer::Create({{"bootstrap.servers", "127.0.0.1:1"}, {"group.id", "x"}}, "g");
  ASSERT_FALSE(consumer.ok());
  EXPECT_NE(consumer.status().message().find("group.id"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Producer and consumer

TEST(KafkaClients, RecordsArriveWithTheirKeysValuesHeadersAndTimestamps) {
  // Given a topic on the embedded broker and a producer,
  auto broker = StartBroker(3, {"events"});
  ASSERT_NE(broker, nullptr);
  auto producer = MakeProducer(Props(*broker));
  ASSERT_NE(producer, nullptr);
  // when three records (one with a null key, one with an empty value) are
  // produced and flushed,
  ASSERT_TRUE(producer
                  ->Produce({.topic = "events",
                             .key = "SF-1",
                             .value = "first",
                             .headers = {{"content-type", "application/x-protobuf"}, {"trace", "t1"}},
                             .timestamp_ms = 1767571200000})
                  .ok());
  ASSERT_TRUE(producer->Produce({.topic = "events", .partition = 2, .value = "no key"}).ok());
  ASSERT_TRUE(producer->Produce({.topic = "events", .key = "SF-3", .value = ""}).ok());
  Status flushed = producer->Flush(10000);
  ASSERT_TRUE(flushed.ok()) << flushed.ToString();
  EXPECT_EQ(producer->delivered(), 3u);
  EXPECT_EQ(producer->failed(), 0u);
  EXPECT_EQ(producer->outstanding(), 0);

  // then a consumer reading every partition gets them as they were sent.
  auto consumer = MakeConsumer(Props(*broker), "");
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Assign(AllFromBeginning("events", 3)).ok());
  Messages got = ConsumeUntil(*consumer, 3, 10000);
  ASSERT_EQ(got.size(), 3u);
  std::map<std::string, KafkaMessage*> by_value;
  for (auto& m : got) by_value[Payload(m)] = &m;
  ASSERT_EQ(by_value.count("first"), 1u);
  KafkaMessage& first = *by_value["first"];
  ASSERT_FALSE(first.key_is_null());
  EXPECT_EQ(first.key(), "SF-1");
  EXPECT_EQ(HeaderValue(first, "content-type"), "application/x-protobuf");
  EXPECT_EQ(HeaderValue(first, "trace"), "t1");
  rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  EXPECT_EQ(first.timestamp(&type), 1767571200000);
  EXPECT_EQ(type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
  ASSERT_EQ(by_value.count("no key"), 1u);
  EXPECT_TRUE(by_value["no key"]->key_is_null());
  EXPECT_EQ(by_value["no key"]->partition(), 2);
  ASSERT_EQ(by_value.count(""), 1u);
  ASSERT_FALSE(by_value[""]->key_is_null());
  EXPECT_EQ(by_value[""]->key(), "SF-3");
}

TEST(KafkaClients, TheSameKeyAlwaysLandsOnTheSamePartition) {
  auto broker = StartBroker(8, {"keyed"});
  ASSERT_NE(broker, nullptr);
  auto producer = MakeProducer(Props(*broker));
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(producer->Produce({.topic = "keyed", .key = i % 2 ? "SF-A" : "SF-B", .value = "v"}).ok());
  }
  ASSERT_TRUE(producer->Flush(10000).ok());
  auto consumer = MakeConsumer(Props(*broker), "");
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Assign(AllFromBeginning("keyed", 8)).ok());
  Messages got = ConsumeUntil(*consumer, 20, 10000);
  ASSERT_EQ(got.size(), 20u);
  std::map<std::string, std::set<int32_t>> partitions_of;
  for (auto& m : got) partitions_of[std::string(m.key())].insert(m.partition());
  EXPECT_EQ(partitions_of["SF-A"].size(), 1u);
  EXPECT_EQ(partitions_of["SF-B"].size(), 1u);
}

TEST(KafkaProducer, FlushReportsADeliveryFailureOnceAndThenRecovers) {
  // Given a broker that refuses the next produce requests for good
  // (a non-retriable error injected into the mock cluster),
  auto broker = StartBroker(1, {"events"});
  ASSERT_NE(broker, nullptr);
  auto producer = MakeProducer(Props(*broker, {{"linger.ms", "0"}}));
  ASSERT_NE(producer, nullptr);
  ASSERT_TRUE(producer->Produce({.topic = "events", .key = "k", .value = "warm-up"}).ok());
  ASSERT_TRUE(producer->Flush(10000).ok());
  rd_kafka_mock_push_request_errors(broker->mock_cluster(), kProduceApiKey, 1,
                                    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  // when a record is produced and flushed,
  ASSERT_TRUE(producer->Produce({.topic = "events", .key = "k", .value = "refused"}).ok());
  Status flushed = producer->Flush(10000);
  // then Flush reports it (aborted: what the record carried must be redone),
  // with librdkafka's reason and where it was going,
  EXPECT_EQ(flushed.code(), StatusCode::kAborted) << flushed.ToString();
  EXPECT_NE(flushed.message().find("events[0]"), std::string::npos) << flushed.message();
  EXPECT_NE(flushed.message().find("too large"), std::string::npos) << flushed.message();
  EXPECT_EQ(producer->failed(), 1u);
  // and the next Flush, with nothing new failing, is OK again.
  Status accepted = producer->Produce({.topic = "events", .key = "k", .value = "accepted"});
  ASSERT_TRUE(accepted.ok()) << accepted.ToString();
  Status again = producer->Flush(10000);
  EXPECT_TRUE(again.ok()) << again.ToString();
  EXPECT_EQ(producer->delivered(), 2u);
}

TEST(KafkaProducer, FlushReportsRecordsForATopicThatDoesNotExist) {
  // Given a producer that may not create topics and gives up after 1 s,
  auto broker = StartBroker(1, {"events"});
  ASSERT_NE(broker, nullptr);
  auto producer =
      MakeProducer(Props(*broker, {{"allow.auto.create.topics", "false"}, {"message.timeout.ms", "1000"}}));
  ASSERT_NE(producer, nullptr);
  // when it produces to a topic nobody created,
  Status produced = producer->Produce({.topic = "no.such.topic", .key = "k", .value = "v"});
  Status flushed = producer->Flush(10000);
  // then the record is reported failed (at once if the topic is already
  // known to be missing, else when Flush collects the delivery report).
  if (produced.ok()) {
    EXPECT_EQ(flushed.code(), StatusCode::kAborted) << flushed.ToString();
    EXPECT_NE(flushed.message().find("no.such.topic"), std::string::npos) << flushed.message();
    EXPECT_EQ(producer->failed(), 1u);
  } else {
    EXPECT_EQ(produced.code(), StatusCode::kNotFound) << produced.ToString();
  }
  EXPECT_EQ(producer->delivered(), 0u);
}

TEST(KafkaProducer, ARecordForAPartitionThatDoesNotExistIsReported) {
  auto broker = StartBroker(2, {"events"});
  ASSERT_NE(broker, nullptr);
  auto producer = MakeProducer(Props(*broker, {{"message.timeout.ms", "2000"}}));
  ASSERT_NE(producer, nullptr);
  Status produced = producer->Produce({.topic = "events", .partition = 7, .key = "k", .value = "v"});
  Status flushed = producer->Flush(10000);
  if (produced.ok()) {
    EXPECT_FALSE(flushed.ok());
    EXPECT_EQ(producer->failed(), 1u);
  } else {
    EXPECT_EQ(produced.code(), StatusCode::kNotFound) << produced.ToString();
  }
  EXPECT_EQ(producer->delivered(), 0u);
}

TEST(KafkaProducer, AFullQueueGivesUnavailableAfterTheBoundedWait) {
  // Given a producer whose queue holds one record and whose broker is down,
  auto broker = StartBroker(1, {"events"});
  ASSERT_NE(broker, nullptr);
  ASSERT_EQ(rd_kafka_mock_broker_set_down(broker->mock_cluster(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  auto producer = MakeProducer(Props(*broker, {{"queue.buffering.max.messages", "1"}}));
  ASSERT_NE(producer, nullptr);
  producer->set_queue_full_timeout(300);
  ASSERT_TRUE(producer->Produce({.topic = "events", .partition = 0, .value = "1"}).ok());
  // when another record does not fit,
  const auto start = SteadyClock::now();
  Status s = producer->Produce({.topic = "events", .partition = 0, .value = "2"});
  // then Produce waits about the bounded time and says why.
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("queue stayed full"), std::string::npos) << s.message();
  EXPECT_GE(waited.count(), 250);
  EXPECT_LT(waited.count(), 5000);
}

TEST(KafkaConsumer, ConsumeBatchReturnsManyMessagesPerCall) {
  // Given 3000 records waiting on a 2-partition topic,
  auto broker = StartBroker(2, {"bulk"});
  ASSERT_NE(broker, nullptr);
  auto producer = MakeProducer(Props(*broker));
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(producer->Produce({.topic = "bulk", .key = std::to_string(i), .value = "payload"}).ok());
  }
  ASSERT_TRUE(producer->Flush(10000).ok());
  // when a consumer reads them in batches of up to 1000,
  auto consumer = MakeConsumer(Props(*broker), "");
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Assign(AllFromBeginning("bulk", 2)).ok());
  int calls = 0;
  Messages got = ConsumeUntil(*consumer, 3000, 10000, &calls);
  // then all arrive in a handful of calls, not one call per message.
  EXPECT_EQ(got.size(), 3000u);
  EXPECT_LE(calls, 30) << "calls that returned messages";
  EXPECT_EQ(consumer->transient_errors(), 0u) << consumer->last_transient_error();
}

TEST(KafkaConsumer, LagIsTheHighWatermarkMinusThePosition) {
  // Given 10 records on one partition,
  auto broker = StartBroker(1, {"lagging"});
  ASSERT_NE(broker, nullptr);
  auto producer = MakeProducer(Props(*broker));
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(producer->Produce({.topic = "lagging", .value = "v"}).ok());
  ASSERT_TRUE(producer->Flush(10000).ok());
  auto consumer = MakeConsumer(Props(*broker), "");
  ASSERT_NE(consumer, nullptr);
  // before anything was fetched, lag is not known yet;
  EXPECT_EQ(consumer->Lag({"lagging", 0}).status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(consumer->Assign(AllFromBeginning("lagging", 1)).ok());
  // when 4 of them have been consumed,
  Messages got = ConsumeUntil(*consumer, 4, 10000);
  ASSERT_EQ(got.size(), 4u);
  // then the lag is the 6 behind them, and 0 once all are read.
  Result<int64_t> lag = consumer->Lag({"lagging", 0});
  ASSERT_TRUE(lag.ok()) << lag.status().ToString();
  EXPECT_EQ(*lag, 6);
  ASSERT_EQ(ConsumeUntil(*consumer, 6, 10000).size(), 6u);
  EXPECT_EQ(consumer->Lag({"lagging", 0}).value_or(-1), 0);
}

TEST(KafkaConsumer, GroupMemberIsToldItsPartitionsAndASuccessorResumesAfterTheCommit) {
  // Given 5 records on each of 2 partitions,
  auto broker = StartBroker(2, {"orders"});
  ASSERT_NE(broker, nullptr);
  auto producer = MakeProducer(Props(*broker));
  ASSERT_NE(producer, nullptr);
  for (int32_t p = 0; p < 2; ++p) {
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(producer->Produce({.topic = "orders", .partition = p, .value = std::to_string(i)}).ok());
    }
  }
  ASSERT_TRUE(producer->Flush(10000).ok());

  // when a member of group "g" reads them all, is told its assignment,
  RecordingListener first_listener;
  {
    auto first = MakeConsumer(GroupProps(*broker), "g");
    ASSERT_NE(first, nullptr);
    ASSERT_TRUE(first->Subscribe({"orders"}, &first_listener).ok());
    Messages got = ConsumeUntil(*first, 10, 10000);
    ASSERT_EQ(got.size(), 10u);
    std::vector<TopicPartition> assigned = first_listener.assigned;
    std::sort(assigned.begin(), assigned.end());
    EXPECT_EQ(assigned, (std::vector<TopicPartition>{{"orders", 0}, {"orders", 1}}));
    Result<std::vector<TopicPartition>> assignment = first->Assignment();
    ASSERT_TRUE(assignment.ok());
    EXPECT_EQ(assignment->size(), 2u);
    // commits partition 0 up to offset 3 (records 0-2 done) and all of
    // partition 1, and closes,
    Status committed = first->CommitSync({{"orders", 0, 3}, {"orders", 1, 5}});
    ASSERT_TRUE(committed.ok()) << committed.ToString();
    ASSERT_TRUE(first->Close().ok());
  }
  EXPECT_EQ(first_listener.revoked.size(), 2u);
  EXPECT_FALSE(first_listener.any_lost);

  // then a new member of the same group starts right after the commit:
  // records 3 and 4 of partition 0, nothing of partition 1.
  RecordingListener second_listener;
  auto second = MakeConsumer(GroupProps(*broker), "g");
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(second->Subscribe({"orders"}, &second_listener).ok());
  Messages resumed = ConsumeUntil(*second, 2, 10000);
  ASSERT_EQ(resumed.size(), 2u);
  EXPECT_EQ(resumed[0].partition(), 0);
  EXPECT_EQ(resumed[0].offset(), 3);
  EXPECT_EQ(resumed[1].offset(), 4);
  Messages more;
  ASSERT_TRUE(second->ConsumeBatch(10, 300, &more).ok());
  EXPECT_TRUE(more.empty()) << "unexpected record at offset " << more[0].offset();
  EXPECT_EQ(second_listener.assigned.size(), 2u);
}

TEST(KafkaConsumer, EagerAssignorsGetTheWholeAssignmentToo) {
  auto broker = StartBroker(2, {"orders"});
  ASSERT_NE(broker, nullptr);
  auto producer = MakeProducer(Props(*broker));
  ASSERT_NE(producer, nullptr);
  ASSERT_TRUE(producer->Produce({.topic = "orders", .partition = 1, .value = "x"}).ok());
  ASSERT_TRUE(producer->Flush(10000).ok());
  KafkaProperties props = GroupProps(*broker);
  props.emplace_back("partition.assignment.strategy", "range");
  RecordingListener listener;
  auto consumer = MakeConsumer(props, "eager");
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Subscribe({"orders"}, &listener).ok());
  ASSERT_EQ(ConsumeUntil(*consumer, 1, 10000).size(), 1u);
  EXPECT_EQ(listener.assigned.size(), 2u);
  EXPECT_EQ(consumer->handle()->rebalance_protocol(), "EAGER");
  ASSERT_TRUE(consumer->Close().ok());
  EXPECT_EQ(listener.revoked.size(), 2u);
}

TEST(KafkaConsumer, GroupCallsNeedAGroup) {
  auto broker = StartBroker(1, {"t"});
  ASSERT_NE(broker, nullptr);
  auto consumer = MakeConsumer(Props(*broker), "");
  ASSERT_NE(consumer, nullptr);
  EXPECT_EQ(consumer->Subscribe({"t"}, nullptr).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(consumer->CommitSync({{"t", 0, 1}}).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(consumer->Close().ok());
  EXPECT_TRUE(consumer->Close().ok()) << "Close is idempotent";
  Messages none;
  EXPECT_EQ(consumer->ConsumeBatch(1, 0, &none).status().code(), StatusCode::kFailedPrecondition);
}

TEST(KafkaConsumer, PartitionCountComesFromMetadata) {
  auto broker = StartBroker(5, {"five"});
  ASSERT_NE(broker, nullptr);
  auto consumer = MakeConsumer(Props(*broker), "");
  ASSERT_NE(consumer, nullptr);
  EXPECT_EQ(consumer->PartitionCount("five", 5000).value_or(-1), 5);
  EXPECT_EQ(consumer->PartitionCount("missing", 5000).status().code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------
// Admin

TEST(KafkaAdmin, EnsureTopicPassesForATopicWithEnoughPartitions) {
  auto broker = StartBroker(8, {"shipments.events.v1"});
  ASSERT_NE(broker, nullptr);
  Result<std::unique_ptr<KafkaAdmin>> admin = KafkaAdmin::Create(Props(*broker));
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  Status same = (*admin)->EnsureTopic("shipments.events.v1", 8, 1, {}, 5000);
  EXPECT_TRUE(same.ok()) << same.ToString();
  Status fewer = (*admin)->EnsureTopic("shipments.events.v1", 4, 1, {{"cleanup.policy", "compact"}}, 5000);
  EXPECT_TRUE(fewer.ok()) << fewer.ToString();
  EXPECT_EQ((*admin)->PartitionCount("shipments.events.v1").value_or(-1), 8);
}

TEST(KafkaAdmin, EnsureTopicRefusesATopicWithTooFewPartitionsNamingBothCounts) {
  auto broker = StartBroker(2, {"small"});
  ASSERT_NE(broker, nullptr);
  Result<std::unique_ptr<KafkaAdmin>> admin = KafkaAdmin::Create(Props(*broker));
  ASSERT_TRUE(admin.ok());
  Status s = (*admin)->EnsureTopic("small", 8, 1, {}, 5000);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("'small' has 2 partitions"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("8"), std::string::npos) << s.message();
}

TEST(KafkaAdmin, EnsureTopicSaysAtOnceThatTheEmbeddedBrokerCannotCreateTopics) {
  // Given the mock cluster, which serves no CreateTopics,
  auto broker = StartBroker(1, {"existing"});
  ASSERT_NE(broker, nullptr);
  Result<std::unique_ptr<KafkaAdmin>> admin = KafkaAdmin::Create(Props(*broker));
  ASSERT_TRUE(admin.ok());
  // when a missing topic is ensured,
  const auto start = SteadyClock::now();
  Status s = (*admin)->EnsureTopic("app.repartition", 8, 1, {}, 20000);
  // then the error says why, without waiting for the timeout,
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("mock cluster"), std::string::npos) << s.message();
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(5));
  // and the check itself did not create the topic with some default count.
  EXPECT_EQ((*admin)->PartitionCount("app.repartition").status().code(), StatusCode::kNotFound);
  // Creating it on the broker makes EnsureTopic pass.
  ASSERT_TRUE(broker->CreateTopic("app.repartition", 8).ok());
  EXPECT_TRUE((*admin)->EnsureTopic("app.repartition", 8, 1, {}, 5000).ok());
}

}  // namespace
}  // namespace shortfall::pipeline
