// The embedded broker, and the commands built on it: `shortfall broker`,
// `shortfall gen --to-kafka`, `shortfall tail`. Ports are picked by the mock
// cluster; every wait is bounded.
#include "pipeline/embedded_broker.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "pipeline/alert_format.h"
#include "pipeline/application.h"
#include "pipeline/kafka_client.h"
#include "scenario/generator.h"
#include "shortfall/v1/shortage_alert.pb.h"
#include "tests/testing/sample_alert.h"
#include "tests/testing/temp_dir.h"

namespace shortfall::pipeline {
namespace {

using Messages = std::vector<KafkaMessage>;
using SteadyClock = std::chrono::steady_clock;

const std::vector<std::string> kDefaultTopics = {"shipments.events.v1", "customs.events.v1",
                                                 "shortfall.alerts.v1", "shortfall.dlq.v1"};

struct Outcome {
  int exit_code;
  std::string out;
  std::string err;
};

Outcome Shortfall(std::vector<std::string> args) {
  std::ostringstream out, err;
  Application app(out, err);
  const int code = app.Run(args);
  return Outcome{code, out.str(), err.str()};
}

std::unique_ptr<EmbeddedBroker> StartBroker(int32_t partitions, const std::vector<std::string>& topics) {
  Result<std::unique_ptr<EmbeddedBroker>> broker = EmbeddedBroker::Start(partitions, topics);
  EXPECT_TRUE(broker.ok()) << broker.status().ToString();
  return broker.ok() ? std::move(broker).value() : nullptr;
}

KafkaProperties Props(const std::string& bootstrap) { return {{"bootstrap.servers", bootstrap}}; }

// A consumed record, copied out of librdkafka's message (messages must not
// outlive their consumer).
struct Record {
  std::string topic;
  int32_t partition = 0;
  std::string key;
  std::string value;
  int64_t timestamp_ms = 0;
  std::map<std::string, std::string> headers;
};

// Reads every partition of `topics` from the beginning until `want` records
// arrived or `timeout` passed; then for `settle` more, to catch any extra.
std::vector<Record> ReadAll(const std::string& bootstrap, const std::vector<std::string>& topics,
                            int32_t partitions, size_t want, DurationMs timeout, DurationMs settle = 0) {
  std::vector<Record> records;
  Result<std::unique_ptr<KafkaConsumer>> consumer = KafkaConsumer::Create(Props(bootstrap), "");
  EXPECT_TRUE(consumer.ok()) << consumer.status().ToString();
  if (!consumer.ok()) return records;
  std::vector<TopicPartitionOffset> assignment;
  for (const std::string& topic : topics) {
    for (int32_t p = 0; p < partitions; ++p) assignment.push_back({topic, p, kOffsetBeginning});
  }
  EXPECT_TRUE((*consumer)->Assign(assignment).ok());
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout);
  Messages batch;
  std::optional<SteadyClock::time_point> settled;
  for (;;) {
    const auto now = SteadyClock::now();
    if (now >= deadline) break;
    if (records.size() >= want) {
      if (!settled) settled = now + std::chrono::milliseconds(settle);
      if (now >= *settled) break;
    }
    batch.clear();
    Result<size_t> n = (*consumer)->ConsumeBatch(1000, 100, &batch);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (!n.ok()) break;
    for (auto& m : batch) {
      Record r;
      r.topic = m.topic();
      r.partition = m.partition();
      r.key = m.key();
      r.value = m.value();
      r.timestamp_ms = m.timestamp();
      for (const auto& [name, value] : m.headers()) r.headers[std::string(name)] = value;
      records.push_back(std::move(r));
    }
  }
  return records;
}

v1::ShortageAlert HandMadeAlert() { return testing::SampleVolumeDropAlert(); }

// ---------------------------------------------------------------------------
// EmbeddedBroker

TEST(EmbeddedBroker, StartsOnALoopbackPortWithTheTopicsAndPartitionsAsked) {
  auto broker = StartBroker(6, kDefaultTopics);
  ASSERT_NE(broker, nullptr);
  EXPECT_EQ(broker->bootstrap().rfind("127.0.0.1:", 0), 0u) << broker->bootstrap();
  Result<std::unique_ptr<KafkaAdmin>> admin = KafkaAdmin::Create(Props(broker->bootstrap()));
  ASSERT_TRUE(admin.ok());
  for (const std::string& topic : kDefaultTopics) {
    EXPECT_EQ((*admin)->PartitionCount(topic).value_or(-1), 6) << topic;
  }
}

TEST(EmbeddedBroker, TwoBrokersRunSideBySideOnTheirOwnPorts) {
  auto a = StartBroker(1, {"t"});
  auto b = StartBroker(1, {"t"});
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->bootstrap(), b->bootstrap());
}

TEST(EmbeddedBroker, CreateTopicRefusesDuplicatesAndBadNames) {
  auto broker = StartBroker(2, {"existing"});
  ASSERT_NE(broker, nullptr);
  EXPECT_EQ(broker->CreateTopic("existing", 4).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(broker->CreateTopic("bad name", 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker->CreateTopic("ok", 0).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(broker->CreateTopic("app.changelog", 3).ok());
}

TEST(EmbeddedBroker, StartRejectsBadArguments) {
  EXPECT_EQ(EmbeddedBroker::Start(0, {"t"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EmbeddedBroker::Start(1, {"no spaces"}).status().code(), StatusCode::kInvalidArgument);
  EmbeddedBroker::Options options;
  options.brokers = 0;
  EXPECT_EQ(EmbeddedBroker::Start(options).status().code(), StatusCode::kInvalidArgument);
}

TEST(EmbeddedBroker, ReadCommittedConsumersStillSeeAbortedRecords) {
  // Documents the mock's main limit (see embedded_broker.h): if this starts
  // failing, librdkafka's mock has learnt transactions and the header (and
  // what tests may rely on) should change.
  auto broker = StartBroker(1, {"txn"});
  ASSERT_NE(broker, nullptr);
  std::unique_ptr<RdKafka::Conf> conf =
      std::move(MakeKafkaConf({{"bootstrap.servers", broker->bootstrap()}, {"transactional.id", "t1"}}))
          .value();
  std::string errstr;
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), errstr));
  ASSERT_NE(producer, nullptr) << errstr;
  std::unique_ptr<RdKafka::Error> error(producer->init_transactions(10000));
  ASSERT_EQ(error, nullptr) << error->str();
  error.reset(producer->begin_transaction());
  ASSERT_EQ(error, nullptr) << error->str();
  char value[] = "aborted";
  ASSERT_EQ(producer->produce("txn", 0, RdKafka::Producer::RK_MSG_COPY, value, sizeof value - 1, nullptr,
                              0, 0, nullptr),
            RdKafka::ERR_NO_ERROR);
  ASSERT_EQ(producer->flush(10000), RdKafka::ERR_NO_ERROR);
  error.reset(producer->abort_transaction(10000));
  ASSERT_EQ(error, nullptr) << error->str();

  std::vector<Record> got = ReadAll(broker->bootstrap(), {"txn"}, 1, 1, 3000);  // read_committed by default
  ASSERT_EQ(got.size(), 1u) << "the mock now hides aborted records";
  EXPECT_EQ(got[0].value, "aborted");
}

// ---------------------------------------------------------------------------
// shortfall broker

TEST(BrokerCommand, PrintsTheBootstrapFirstServesAndStopsOnSigterm) {
  testing::ScopedTempDir dir;
  const std::string file = dir.Path("bootstrap");
  std::ostringstream out, err;
  int exit_code = -1;
  // Given `shortfall broker` running on its own thread,
  std::thread runner([&] {
    Application app(out, err);
    exit_code = app.Run({"broker", "--partitions", "2", "--bootstrap-file", file});
  });
  // when its bootstrap file appears (written after SIGTERM was blocked),
  const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
  while (!std::filesystem::exists(file) && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a file, not ordering
  }
  ASSERT_TRUE(std::filesystem::exists(file)) << "no bootstrap file within 10 s";
  std::string bootstrap;
  std::getline(std::ifstream(file) >> std::ws, bootstrap);
  // then clients can use the four topics there,
  Result<std::unique_ptr<KafkaAdmin>> admin = KafkaAdmin::Create(Props(bootstrap));
  ASSERT_TRUE(admin.ok());
  for (const std::string& topic : kDefaultTopics) {
    EXPECT_EQ((*admin)->PartitionCount(topic).value_or(-1), 2) << topic;
  }
  // and SIGTERM stops it with exit 0, the address as the first line of
  // stdout and the file removed.
  pthread_kill(runner.native_handle(), SIGTERM);
  runner.join();
  EXPECT_EQ(exit_code, 0) << err.str();
  EXPECT_EQ(out.str(), bootstrap + "\n");
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_NE(err.str().find("stopped on SIGTERM"), std::string::npos) << err.str();
}

TEST(BrokerCommand, BadFlagsAreUsageErrors) {
  Outcome r = Shortfall({"broker", "--partitions", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--partitions"), std::string::npos) << r.err;
  EXPECT_EQ(Shortfall({"broker", "--help"}).exit_code, 0);
}

// ---------------------------------------------------------------------------
// shortfall run

TEST(RunCommand, RefusesExactlyOnceOnTheEmbeddedBroker) {
  // Given the embedded broker, whose transactions are only imitated,
  auto broker = StartBroker(2, kDefaultTopics);
  ASSERT_NE(broker, nullptr);
  testing::ScopedTempDir state;
  // when `run` is asked for exactly_once against it,
  Outcome r = Shortfall({"run", "--brokers", broker->bootstrap(), "--set", "processing.guarantee=exactly_once",
                         "--set", "state.dir=" + state.path(), "--set", "metrics.bind=127.0.0.1:0"});
  // then it refuses at once, saying why, as a configuration error.
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("exactly_once needs a real Kafka broker"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------
// shortfall gen --to-kafka

TEST(GenToKafka, ProducesExactlyTheGeneratedRecords) {
  // Given an embedded broker with the default topics,
  auto broker = StartBroker(4, kDefaultTopics);
  ASSERT_NE(broker, nullptr);
  // when `gen --to-kafka` produces a 3000-record scenario,
  Outcome r = Shortfall({"gen", "--to-kafka", "--brokers", broker->bootstrap(), "--events", "3000",
                         "--seed", "7", "--malformed-rate", "0.01"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("3000 delivered, 0 failed"), std::string::npos) << r.err;

  // then the topics hold exactly the generator's records: same topic, key,
  // value bytes and timestamp, each once, with the protobuf content type.
  scenario::GeneratorOptions options;
  options.seed = 7;
  options.events = 3000;
  options.malformed_rate = 0.01;
  scenario::Generator generator(options);
  std::map<std::tuple<std::string, std::string, std::string, int64_t>, int> expected;
  v1::EventRecord record;
  size_t records = 0;
  while (generator.Next(&record)) {
    std::string value;
    if (record.has_shipment()) {
      value = record.shipment().SerializeAsString();
    } else if (record.has_customs()) {
      value = record.customs().SerializeAsString();
    } else {
      value = record.raw_value();
    }
    const int64_t ts = record.record_time().seconds() * 1000 + record.record_time().nanos() / 1000000;
    ++expected[{record.topic(), record.key(), value, ts}];
    ++records;
  }
  ASSERT_EQ(records, 3000u);
  std::vector<Record> got = ReadAll(broker->bootstrap(), {"shipments.events.v1", "customs.events.v1"}, 4,
                                    records, 8000, /*settle=*/500);
  EXPECT_EQ(got.size(), records);
  std::map<std::tuple<std::string, std::string, std::string, int64_t>, int> actual;
  size_t with_content_type = 0;
  for (const Record& rec : got) {
    ++actual[{rec.topic, rec.key, rec.value, rec.timestamp_ms}];
    with_content_type += rec.headers.count("content-type") && rec.headers.at("content-type") == "application/x-protobuf";
  }
  EXPECT_TRUE(actual == expected) << "consumed records differ from the generated ones";
  EXPECT_EQ(with_content_type, got.size());
}

TEST(GenToKafka, WallClockTimestampsStampRecordsWithTheTimeTheyAreProduced) {
  auto broker = StartBroker(1, kDefaultTopics);
  ASSERT_NE(broker, nullptr);
  const int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  Outcome r = Shortfall({"gen", "--to-kafka", "--brokers", broker->bootstrap(), "--events", "200",
                         "--wall-clock-timestamps"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const int64_t after = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  std::vector<Record> got =
      ReadAll(broker->bootstrap(), {"shipments.events.v1", "customs.events.v1"}, 4, 200, 8000, /*settle=*/500);
  ASSERT_EQ(got.size(), 200u);
  for (const Record& rec : got) {
    EXPECT_GE(rec.timestamp_ms, before);
    EXPECT_LE(rec.timestamp_ms, after);
  }
  // and without --to-kafka the flag is refused.
  EXPECT_EQ(Shortfall({"gen", "--events", "10", "--wall-clock-timestamps"}).exit_code, 2);
}

TEST(GenToKafka, JsonFormatSendsTheJsonMappingWithItsContentType) {
  auto broker = StartBroker(1, kDefaultTopics);
  ASSERT_NE(broker, nullptr);
  Outcome r = Shortfall({"gen", "--to-kafka", "--brokers", broker->bootstrap(), "--events", "40",
                         "--format", "json", "--malformed-rate", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<Record> got = ReadAll(broker->bootstrap(), {"shipments.events.v1", "customs.events.v1"}, 1, 40, 5000);
  ASSERT_EQ(got.size(), 40u);
  for (const Record& rec : got) {
    EXPECT_EQ(rec.headers.count("content-type") ? rec.headers.at("content-type") : "", "application/json");
    const std::string& value = rec.value;
    ASSERT_FALSE(value.empty());
    EXPECT_EQ(value.front(), '{') << value;
    google::protobuf::Struct parsed;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(value, &parsed).ok()) << value;
  }
}

TEST(GenToKafka, RatePacesTheRecords) {
  auto broker = StartBroker(1, kDefaultTopics);
  ASSERT_NE(broker, nullptr);
  const auto start = SteadyClock::now();
  Outcome r = Shortfall({"gen", "--to-kafka", "--brokers", broker->bootstrap(), "--events", "20",
                         "--rate", "40"});
  const auto took = SteadyClock::now() - start;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(took, std::chrono::milliseconds(400));  // 20 records at 40/s: 0.5 s
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(GenToKafka, KafkaFlagsNeedEachOther) {
  Outcome r = Shortfall({"gen", "--to-kafka"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--brokers LIST is required with --to-kafka"), std::string::npos) << r.err;
  r = Shortfall({"gen", "--brokers", "127.0.0.1:9092"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--brokers needs --to-kafka"), std::string::npos) << r.err;
  r = Shortfall({"gen", "--to-kafka", "--brokers", "127.0.0.1:9092", "--out", "x.pb"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--out and --to-kafka"), std::string::npos) << r.err;
  r = Shortfall({"gen", "--to-kafka", "--brokers", "127.0.0.1:9092", "--rate", "fast"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--rate"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------
// shortfall tail

class TailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = StartBroker(3, kDefaultTopics);
    ASSERT_NE(broker_, nullptr);
    Result<std::unique_ptr<KafkaProducer>> producer = KafkaProducer::Create(Props(broker_->bootstrap()));
    ASSERT_TRUE(producer.ok());
    producer_ = std::move(producer).value();
  }

  void ProduceAlert(const v1::ShortageAlert& alert, int32_t partition = 0) {
    const std::string value = alert.SerializeAsString();
    ASSERT_TRUE(producer_
                    ->Produce({.topic = "shortfall.alerts.v1",
                               .partition = partition,
                               .key = alert.alert_id(),
                               .value = value})
                    .ok());
  }
  void Flush() { ASSERT_TRUE(producer_->Flush(10000).ok()); }

  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<KafkaProducer> producer_;
};

TEST_F(TailTest, PrintsTheReadableLineOfAnAlertSkipsWhatIsNotOneAndStopsAtMax) {
  // Given a record that is not an alert, then a hand-made alert, on the
  // alert topic,
  ASSERT_TRUE(producer_->Produce({.topic = "shortfall.alerts.v1", .partition = 0, .value = "\xff\xfe garbage"}).ok());
  ProduceAlert(HandMadeAlert());
  Flush();
  // when tail reads from the beginning until one alert,
  Outcome r = Shortfall({"tail", "--brokers", broker_->bootstrap(), "--from-beginning", "--max", "1",
                         "--timeout", "10s"});
  // then it prints the alert's line, warns once about the other record and
  // exits 0.
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "2026-03-09T14:00:00Z OPEN CRITICAL volume_drop semiconductors MX-US-2304: shipments 41 vs "
            "expected 180 (-77%) over 7d (cusum 7.2 > 5.0) since 2026-03-07T00:00:00Z [id a1b2c3]\n");
  EXPECT_NE(r.err.find("warning: skipped shortfall.alerts.v1[0]@0"), std::string::npos) << r.err;
}

TEST_F(TailTest, JsonPrintsOneObjectPerLine) {
  v1::ShortageAlert second = HandMadeAlert();
  second.set_alert_id("d4e5f6");
  second.set_state(v1::ALERT_STATE_RESOLVED);
  ProduceAlert(HandMadeAlert(), 0);
  ProduceAlert(second, 0);
  Flush();
  Outcome r = Shortfall({"tail", "--brokers", broker_->bootstrap(), "--from-beginning", "--json", "--max",
                         "2", "--timeout", "10s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<v1::ShortageAlert> parsed;
  while (std::getline(lines, line)) {
    v1::ShortageAlert alert;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &alert).ok()) << line;
    parsed.push_back(alert);
  }
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[0].alert_id(), "a1b2c3");
  EXPECT_EQ(parsed[1].state(), v1::ALERT_STATE_RESOLVED);
}

TEST_F(TailTest, ReadsAnAlertWrittenAsJsonWhenItsContentTypeSaysSo) {
  // Given an empty record, then an alert typed in by hand as JSON,
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(HandMadeAlert(), &json).ok());
  ASSERT_TRUE(producer_->Produce({.topic = "shortfall.alerts.v1", .partition = 1, .value = ""}).ok());
  ASSERT_TRUE(producer_
                  ->Produce({.topic = "shortfall.alerts.v1",
                             .partition = 1,
                             .value = json,
                             .headers = {{"content-type", "application/json"}}})
                  .ok());
  Flush();
  // when tail reads them, then the JSON one prints like any other and the
  // empty one is skipped with a warning.
  Outcome r = Shortfall({"tail", "--brokers", broker_->bootstrap(), "--from-beginning", "--max", "1",
                         "--timeout", "10s"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, FormatAlertLine(HandMadeAlert()) + "\n");
  EXPECT_NE(r.err.find("shortfall.alerts.v1[1]@0 (0 bytes): empty value"), std::string::npos) << r.err;
}

TEST_F(TailTest, ReadsAlertsFromEveryPartition) {
  for (int32_t p = 0; p < 3; ++p) {
    v1::ShortageAlert alert = HandMadeAlert();
    alert.set_alert_id("p" + std::to_string(p));
    ProduceAlert(alert, p);
  }
  Flush();
  Outcome r = Shortfall({"tail", "--brokers", broker_->bootstrap(), "--from-beginning", "--max", "3",
                         "--timeout", "10s"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* id : {"[id p0]", "[id p1]", "[id p2]"}) EXPECT_NE(r.out.find(id), std::string::npos) << id;
}

TEST_F(TailTest, TimingOutShortOfMaxExits1) {
  ProduceAlert(HandMadeAlert());
  Flush();
  Outcome r = Shortfall({"tail", "--brokers", broker_->bootstrap(), "--from-beginning", "--max", "2",
                         "--timeout", "1500ms"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("[id a1b2c3]"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("with 1 of 2 alerts"), std::string::npos) << r.err;
}

TEST_F(TailTest, WithoutFromBeginningOnlyNewAlertsShow) {
  ProduceAlert(HandMadeAlert());
  Flush();
  Outcome r = Shortfall({"tail", "--brokers", broker_->bootstrap(), "--timeout", "1500ms"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(TailTest, AMissingTopicIsARuntimeFailureAndBadFlagsAreUsageErrors) {
  Outcome r = Shortfall({"tail", "--brokers", broker_->bootstrap(), "--topic", "nope", "--timeout", "5s"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'nope' does not exist"), std::string::npos) << r.err;
  r = Shortfall({"tail"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--brokers LIST is required"), std::string::npos) << r.err;
  r = Shortfall({"tail", "--brokers", "x:1", "--timeout", "soon"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--timeout"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace shortfall::pipeline
