#include "pipeline/run_config.h"
#include "pipeline/kafka_client.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"

namespace shortfall::pipeline {
namespace {

const std::string kExampleFile = std::string(SHORTFALL_SOURCE_DIR) + "/deploy/shortfall.example.yaml";

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

RunConfig Parsed(const std::string& yaml) {
  Result<RunConfig> config = ParseRunConfig(yaml, "run.yaml");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.value_or(RunConfig{});
}

std::string ParseError(const std::string& yaml) {
  Result<RunConfig> config = ParseRunConfig(yaml, "run.yaml");
  if (config.ok()) return "(parsed without error)";
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  return config.status().message();
}

std::string OverrideError(const std::string& assignment, RunConfig* config) {
  Status s = ApplyOverride(assignment, config);
  if (s.ok()) return "(applied without error)";
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  return s.message();
}

RunConfig ValidDefaults() {
  RunConfig config;
  config.brokers = "127.0.0.1:9092";
  return config;
}

// Every map key of a YAML document as a dotted path, in document order.
void CollectKeys(const YAML::Node& node, const std::string& prefix, std::vector<std::string>* out) {
  if (!node.IsMap()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string path = prefix.empty() ? it->first.Scalar() : prefix + "." + it->first.Scalar();
    out->push_back(path);
    CollectKeys(it->second, path, out);
  }
}

// ---------------------------------------------------------------------------
// The example file

TEST(RunConfigExample, LoadsToExactlyTheDefaults) {
  // Given the shipped example file, when it is loaded,
  Result<RunConfig> config = LoadRunConfig(kExampleFile);
  // then it configures exactly what the defaults do.
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(*config == RunConfig{}) << DescribeRunConfig(*config);
}

TEST(RunConfigExample, SpellsOutEveryKeyInTheDescribedOrder) {
  // Given the example file and the description of the defaults,
  std::vector<std::string> example_keys, described_keys;
  try {
    CollectKeys(YAML::LoadFile(kExampleFile), "", &example_keys);
    CollectKeys(YAML::Load(DescribeRunConfig(RunConfig{})), "", &described_keys);
  } catch (const YAML::Exception& e) {
    FAIL() << e.what();
  }
  // then both hold the same keys in the same order: no field goes undocumented.
  EXPECT_EQ(example_keys, described_keys);
}

// ---------------------------------------------------------------------------
// ParseRunConfig and LoadRunConfig

TEST(ParseRunConfig, EmptyDocumentGivesDefaultsThatStillNeedBrokers) {
  // Given an empty document (or only comments), when it is parsed,
  RunConfig config = Parsed("");
  EXPECT_TRUE(config == RunConfig{});
  EXPECT_TRUE(Parsed("# nothing set\n") == RunConfig{});
  // then it gives the defaults, and validation asks for the brokers.
  EXPECT_EQ(ValidateRunConfig(config).message(), "kafka.bootstrap_servers: required (or --brokers)");
}

TEST(ParseRunConfig, ReadsEveryKey) {
  // Given a document that sets every key away from its default,
  const RunConfig config = Parsed(R"(
application_id: shortfall-eu
kafka:
  bootstrap_servers: k1:9092,k2:9092
  common: {security.protocol: SASL_SSL, sasl.mechanisms: SCRAM-SHA-512}
  consumer: {fetch.max.bytes: 52428800}
  producer: {linger.ms: 5, enable.idempotence: true}
topics: {shipments: s.v1, customs: c.v1, alerts: a.v1, dlq: d.v1, alerts_json: a.json.v1}
repartition: {partitions: 24, replication_factor: 3}
processing: {guarantee: exactly_once, commit_interval: 250ms, batch_size: 500, shutdown_timeout: 2m}
state: {dir: /data/shortfall}
catalog: /etc/shortfall/catalog.csv
window: {bucket: 15m, rolling: [6h, 24h, 7d], allowed_lateness: 2h}
validation:
  max_future_skew: 10m
  max_line_quantity: 5e8
  max_line_gross_weight_kg: 2000000
  max_line_value_usd: 1.5e10
  usd_rates: {USD: 1, BRL: 0.2}
metrics: {bind: 0.0.0.0:9100}
)");
  // then each lands in its field.
  EXPECT_EQ(config.application_id, "shortfall-eu");
  EXPECT_EQ(config.brokers, "k1:9092,k2:9092");
  using Props = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(config.kafka_common,
            (Props{{"security.protocol", "SASL_SSL"}, {"sasl.mechanisms", "SCRAM-SHA-512"}}));
  EXPECT_EQ(config.kafka_consumer, (Props{{"fetch.max.bytes", "52428800"}}));
  EXPECT_EQ(config.kafka_producer, (Props{{"linger.ms", "5"}, {"enable.idempotence", "true"}}));
  EXPECT_EQ(config.topics, (TopicNames{"s.v1", "c.v1", "a.v1", "d.v1", "a.json.v1"}));
  EXPECT_EQ(config.repartition_partitions, 24);
  EXPECT_EQ(config.replication_factor, 3);
  EXPECT_EQ(config.guarantee, ProcessingGuarantee::kExactlyOnce);
  EXPECT_EQ(config.commit_interval, 250);
  EXPECT_EQ(config.batch_size, 500);
  EXPECT_EQ(config.shutdown_timeout, 2 * kMsPerMinute);
  EXPECT_EQ(config.state_dir, "/data/shortfall");
  EXPECT_EQ(config.catalog_path, "/etc/shortfall/catalog.csv");
  EXPECT_EQ(config.pipeline.window.bucket, 15 * kMsPerMinute);
  EXPECT_EQ(config.pipeline.window.rolling,
            (std::vector<DurationMs>{6 * kMsPerHour, 24 * kMsPerHour, 7 * kMsPerDay}));
  EXPECT_EQ(config.pipeline.window.allowed_lateness, 2 * kMsPerHour);
  EXPECT_EQ(config.pipeline.normalizer.max_future_skew, 10 * kMsPerMinute);
  EXPECT_EQ(config.pipeline.normalizer.max_line_quantity, 5e8);
  EXPECT_EQ(config.pipeline.normalizer.max_line_gross_weight_kg, 2e6);
  EXPECT_EQ(config.pipeline.normalizer.max_line_value_usd, 1.5e10);
  EXPECT_EQ(config.pipeline.normalizer.usd_rates,
            (std::vector<std::pair<std::string, double>>{{"USD", 1.0}, {"BRL", 0.2}}));
  EXPECT_EQ(config.metrics_bind, "0.0.0.0:9100");
  EXPECT_TRUE(ValidateRunConfig(config).ok()) << ValidateRunConfig(config).ToString();
}

TEST(ParseRunConfig, EmptySectionsAndValuesKeepDefaultsOrClear) {
  // Given a section with nothing under it and an empty string value,
  const RunConfig config = Parsed("kafka:\nwindow:\ncatalog:\ntopics: {alerts_json: ''}\n");
  // then the section keeps its defaults and the string is empty.
  EXPECT_TRUE(config == RunConfig{});
}

TEST(ParseRunConfig, ErrorsNameTheSourceAndTheKeyPath) {
  struct Case {
    std::string yaml;
    std::string error;  // the whole message, or its beginning when it ends in "..."
  };
  const std::vector<Case> cases = {
      {"window:\n  bucket: 90x\n",
       "run.yaml: window.bucket: '90x' is not a duration (want e.g. 250ms, 90s, 15m, 6h, 7d)"},
      {"window: {rolling: [24h, 1w]}",
       "run.yaml: window.rolling: '1w' is not a duration (want e.g. 250ms, 90s, 15m, 6h, 7d)"},
      {"window: {rolling: 24h}", "run.yaml: window.rolling: want a list, e.g. [24h, 7d], got a single value"},
      {"window: {allowed_lateness: [6h]}",
       "run.yaml: window.allowed_lateness: want a single value, got a list"},
      {"processing: {commit_interval: 100}", "run.yaml: processing.commit_interval: '100' is not a duration..."},
      {"processing: {guarantee: exactly-once}",
       "run.yaml: processing.guarantee: 'exactly-once' is not a processing guarantee (want "
       "at_least_once or exactly_once)"},
      {"processing: {batch_size: 1e4}", "run.yaml: processing.batch_size: '1e4' is not an integer"},
      {"repartition: {partitions: eight}", "run.yaml: repartition.partitions: 'eight' is not an integer"},
      {"repartition: {partitions: 3000000000}",
       "run.yaml: repartition.partitions: '3000000000' is out of range (-2147483648 to 2147483647)"},
      {"repartition: {replication_factor: 40000}",
       "run.yaml: repartition.replication_factor: '40000' is out of range (-32768 to 32767)"},
      {"validation: {max_line_quantity: lots}",
       "run.yaml: validation.max_line_quantity: 'lots' is not a finite number (want e.g. 0.055, 1e9)"},
      {"validation: {max_line_value_usd: .inf}", "run.yaml: validation.max_line_value_usd: '.inf' is not..."},
      {"validation: {usd_rates: {MXN: cheap}}", "run.yaml: validation.usd_rates.MXN: 'cheap' is not..."},
      {"validation: {usd_rates: [USD]}", "run.yaml: validation.usd_rates: want a map of name: value, got a list"},
      {"application_id: {a: 1}", "run.yaml: application_id: want a single value, got a map"},
      {"topics: [a, b]", "run.yaml: topics: want a map (known keys under topics: shipments, customs, "
                         "alerts, dlq, alerts_json), got a list"},
      {"kafka: {common: {bootstrap.servers: 'k:9092'}}",
       "run.yaml: kafka.common.bootstrap.servers: set the brokers as kafka.bootstrap_servers (or "
       "--brokers): there is one place for them"},
      {"kafka: {consumer: {group.id: g}}",
       "run.yaml: kafka.consumer.group.id: application_id sets the consumer group id"},
      {"kafka: {producer: {linger.ms: [5]}}",
       "run.yaml: kafka.producer.linger.ms: want a string, number or boolean, got a list"},
      {"kafka: {producer: {'linger ms': 5}}", "run.yaml: kafka.producer.linger ms: not a librdkafka property name..."},
      {"kafka: {common: {a.b: 1, a.b: 2}}", "run.yaml: kafka.common.a.b: given twice"},
      {"processing: {batch_size: 1}\nprocessing: {batch_size: 2}\n", "run.yaml: processing: given twice"},
      {"- a\n- b\n", "run.yaml: want a map (known top-level keys: application_id, kafka, topics, "
                     "repartition, processing, state, catalog, window, validation, detection, metrics), got a list"},
      {"catalog: a\n---\ncatalog: b\n", "run.yaml: want one YAML document, found 2"},
  };
  for (const Case& c : cases) {
    // Given a document with one mistake, when it is parsed, then the error says where and what.
    const std::string error = ParseError(c.yaml);
    if (c.error.ends_with("...")) {
      EXPECT_TRUE(StartsWith(error, c.error.substr(0, c.error.size() - 3))) << c.yaml << "\n" << error;
    } else {
      EXPECT_EQ(error, c.error) << c.yaml;
    }
  }
}

TEST(ParseRunConfig, RejectsUnknownKeysListingTheKnownOnes) {
  // Given a typo at the top level and one in a section, when they are parsed,
  // then the error names the key and the keys known at that level.
  EXPECT_EQ(ParseError("windows: {bucket: 1h}"),
            "run.yaml: windows: unknown key (known top-level keys: application_id, kafka, topics, "
            "repartition, processing, state, catalog, window, validation, detection, metrics)");
  EXPECT_EQ(ParseError("window: {buckets: 1h}"),
            "run.yaml: window.buckets: unknown key (known keys under window: bucket, rolling, "
            "allowed_lateness)");
  EXPECT_EQ(ParseError("kafka: {consumers: {}}"),
            "run.yaml: kafka.consumers: unknown key (known keys under kafka: bootstrap_servers, "
            "common, consumer, producer)");
}

TEST(ParseRunConfig, YamlSyntaxErrorsGiveLineAndColumn) {
  // Given documents that are not YAML, when they are parsed, then the error
  // gives source:line:column and yaml-cpp's reason.
  EXPECT_EQ(ParseError("window:\n  rolling: [24h, 7d\n"),
            "run.yaml:3:1: end of sequence flow not found");
  EXPECT_EQ(ParseError("window:\n  bucket: 1h\n   rolling: 2\n"), "run.yaml:3:11: illegal map value");
}

TEST(ParseRunConfig, AMapReplacesTheDefaultMapAsAWhole) {
  // Given a document that lists one rate, when it is parsed,
  const RunConfig config = Parsed("validation: {usd_rates: {USD: 1.0}}");
  // then only that rate is left.
  EXPECT_EQ(config.pipeline.normalizer.usd_rates,
            (std::vector<std::pair<std::string, double>>{{"USD", 1.0}}));
}

TEST(LoadRunConfig, ReadsAFile) {
  // Given a config file on disk, when it is loaded, then its values are read.
  testing::ScopedTempDir dir;
  const std::string path = dir.Path("run.yaml");
  std::ofstream(path) << "kafka: {bootstrap_servers: 'k:9092'}\nwindow: {bucket: 30m}\n";
  Result<RunConfig> config = LoadRunConfig(path);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->brokers, "k:9092");
  EXPECT_EQ(config->pipeline.window.bucket, 30 * kMsPerMinute);
}

TEST(LoadRunConfig, ErrorsCarryThePathAsTheSource) {
  // Given a file with a bad value, when it is loaded, then the error starts with its path.
  testing::ScopedTempDir dir;
  const std::string path = dir.Path("run.yaml");
  std::ofstream(path) << "window: {bucket: 90x}\n";
  EXPECT_TRUE(StartsWith(LoadRunConfig(path).status().message(), path + ": window.bucket: '90x'"));
}

TEST(LoadRunConfig, MissingFileIsNotFoundNamingThePath) {
  // Given a path with no file, when it is loaded, then the error names the path.
  testing::ScopedTempDir dir;
  const std::string path = dir.Path("absent.yaml");
  Result<RunConfig> config = LoadRunConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(config.status().message(), "'" + path + "'")) << config.status().message();
}

// ---------------------------------------------------------------------------
// ApplyOverride

TEST(ApplyOverride, SetsScalarsWithTheYamlValueSyntax) {
  RunConfig config;
  // When scalars are overridden,
  ASSERT_TRUE(ApplyOverride("processing.commit_interval=250ms", &config).ok());
  ASSERT_TRUE(ApplyOverride("repartition.partitions=16", &config).ok());
  ASSERT_TRUE(ApplyOverride("processing.guarantee=exactly_once", &config).ok());
  ASSERT_TRUE(ApplyOverride("kafka.bootstrap_servers=k:9092", &config).ok());
  ASSERT_TRUE(ApplyOverride("validation.max_line_value_usd=2e11", &config).ok());
  // then each field holds its new value.
  EXPECT_EQ(config.commit_interval, 250);
  EXPECT_EQ(config.repartition_partitions, 16);
  EXPECT_EQ(config.guarantee, ProcessingGuarantee::kExactlyOnce);
  EXPECT_EQ(config.brokers, "k:9092");
  EXPECT_EQ(config.pipeline.normalizer.max_line_value_usd, 2e11);
}

TEST(ApplyOverride, AnEmptyValueSetsAnEmptyString) {
  // Given a config with a JSON mirror, when it is overridden with nothing, then there is none.
  RunConfig config;
  config.topics.alerts_json = "alerts.json";
  ASSERT_TRUE(ApplyOverride("topics.alerts_json=", &config).ok());
  EXPECT_EQ(config.topics.alerts_json, "");
}

TEST(ApplyOverride, SetsAListFromCommaSeparatedValues) {
  RunConfig config;
  ASSERT_TRUE(ApplyOverride("window.rolling=6h, 24h,7d", &config).ok());
  EXPECT_EQ(config.pipeline.window.rolling,
            (std::vector<DurationMs>{6 * kMsPerHour, 24 * kMsPerHour, 7 * kMsPerDay}));
}

TEST(ApplyOverride, SetsOneMapEntryAndKeepsTheOthers) {
  RunConfig config;
  const size_t rates = config.pipeline.normalizer.usd_rates.size();
  // When one rate is replaced and one added,
  ASSERT_TRUE(ApplyOverride("validation.usd_rates.MXN=0.06", &config).ok());
  ASSERT_TRUE(ApplyOverride("validation.usd_rates.BRL=0.2", &config).ok());
  // then the replaced one keeps its place and the new one comes last.
  const auto& r = config.pipeline.normalizer.usd_rates;
  ASSERT_EQ(r.size(), rates + 1);
  EXPECT_EQ(r[1], (std::pair<std::string, double>{"MXN", 0.06}));
  EXPECT_EQ(r.back(), (std::pair<std::string, double>{"BRL", 0.2}));
}

TEST(ApplyOverride, PassesLibrdkafkaPropertiesThrough) {
  RunConfig config;
  // When librdkafka properties with dotted names are set, one twice,
  ASSERT_TRUE(ApplyOverride("kafka.consumer.fetch.max.bytes=52428800", &config).ok());
  ASSERT_TRUE(ApplyOverride("kafka.common.security.protocol=SASL_SSL", &config).ok());
  ASSERT_TRUE(ApplyOverride("kafka.producer.linger.ms=5", &config).ok());
  ASSERT_TRUE(ApplyOverride("kafka.producer.linger.ms=20", &config).ok());
  ASSERT_TRUE(ApplyOverride("kafka.common.sasl.jaas.config=a=b c=d", &config).ok());
  // then each sits in its map by its full name, the last value winning, the value kept whole.
  using Props = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(config.kafka_consumer, (Props{{"fetch.max.bytes", "52428800"}}));
  EXPECT_EQ(config.kafka_common,
            (Props{{"security.protocol", "SASL_SSL"}, {"sasl.jaas.config", "a=b c=d"}}));
  EXPECT_EQ(config.kafka_producer, (Props{{"linger.ms", "20"}}));
}

TEST(ApplyOverride, RejectsMistakesNamingTheKeyAndLeavesTheConfigAlone) {
  struct Case {
    std::string assignment;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"window.buckets=1h",
       "window.buckets: unknown key (known keys under window: bucket, rolling, allowed_lateness)"},
      {"windows.bucket=1h",
       "windows.bucket: unknown key (known top-level keys: application_id, kafka, topics, repartition, "
       "processing, state, catalog, window, validation, detection, metrics)"},
      {"window.bucket.x=1h", "window.bucket.x: unknown key (window.bucket is a value, not a section)"},
      {"window.bucket", "'window.bucket': want key.path=value, e.g. processing.commit_interval=250ms"},
      {"=1h", "no key before '=' (want key.path=value)"},
      {"window.bucket=90x",
       "window.bucket: '90x' is not a duration (want e.g. 250ms, 90s, 15m, 6h, 7d)"},
      {"window.rolling=24h,,7d",
       "window.rolling: '' is not a duration (want e.g. 250ms, 90s, 15m, 6h, 7d)"},
      {"repartition.partitions=many", "repartition.partitions: 'many' is not an integer"},
      {"window=1h",
       "window: a section, not a value; set one of its keys (known keys under window: bucket, "
       "rolling, allowed_lateness)"},
      {"kafka.common=x", "kafka.common: a map; set one entry as kafka.common.<name>=value"},
      {"kafka.common.bootstrap.servers=k:9092",
       "kafka.common.bootstrap.servers: set the brokers as kafka.bootstrap_servers (or --brokers): "
       "there is one place for them"},
      {"validation.usd_rates.MXN=free", "validation.usd_rates.MXN: 'free' is not a finite number (want e.g. 0.055, 1e9)"},
  };
  for (const Case& c : cases) {
    // Given the defaults, when a bad override is applied,
    RunConfig config;
    EXPECT_EQ(OverrideError(c.assignment, &config), c.error) << c.assignment;
    // then the error says what is wrong and nothing changed.
    EXPECT_TRUE(config == RunConfig{}) << c.assignment;
  }
}

TEST(ApplyOverride, NeverEchoesWhatMayBeASecret) {
  // Given a secret written with ':' instead of '=', when it is applied,
  RunConfig config;
  const std::string error = OverrideError("kafka.common.sasl.password:hunter2", &config);
  // then the error does not repeat it.
  EXPECT_FALSE(Contains(error, "hunter2")) << error;
  EXPECT_TRUE(Contains(error, "want key.path=value")) << error;
}

TEST(ApplyOverride, LaterOverridesWinOverEarlierOnesAndTheFile) {
  RunConfig config = Parsed("processing: {batch_size: 100}");
  ASSERT_TRUE(ApplyOverride("processing.batch_size=200", &config).ok());
  ASSERT_TRUE(ApplyOverride("processing.batch_size=300", &config).ok());
  EXPECT_EQ(config.batch_size, 300);
}

// ---------------------------------------------------------------------------
// ValidateRunConfig

TEST(ValidateRunConfig, AcceptsTheDefaultsOnceBrokersAreSet) {
  EXPECT_TRUE(ValidateRunConfig(ValidDefaults()).ok()) << ValidateRunConfig(ValidDefaults()).ToString();
}

TEST(ValidateRunConfig, RejectsEachBrokenRuleNamingItsKeyPath) {
  struct Case {
    std::string name;
    std::function<void(RunConfig*)> change;
    std::string error_prefix;
  };
  using Props = std::vector<std::pair<std::string, std::string>>;
  const std::vector<Case> cases = {
      {"no brokers", [](RunConfig* c) { c->brokers = " "; }, "kafka.bootstrap_servers: required (or --brokers)"},
      {"empty broker", [](RunConfig* c) { c->brokers = "a:1,,b:2"; }, "kafka.bootstrap_servers: 'a:1,,b:2'"},
      {"no application id", [](RunConfig* c) { c->application_id = ""; }, "application_id: required"},
      {"application id charset", [](RunConfig* c) { c->application_id = "my app"; }, "application_id: 'my app'"},
      {"application id length", [](RunConfig* c) { c->application_id = std::string(201, 'a'); }, "application_id: "},
      {"no shipments topic", [](RunConfig* c) { c->topics.shipments = ""; }, "topics.shipments: required"},
      {"topic charset", [](RunConfig* c) { c->topics.customs = "customs/v1"; }, "topics.customs: 'customs/v1' is not a legal Kafka topic name"},
      {"topic '.'", [](RunConfig* c) { c->topics.alerts = "."; }, "topics.alerts: '.' is not a legal"},
      {"topic '..'", [](RunConfig* c) { c->topics.dlq = ".."; }, "topics.dlq: '..' is not a legal"},
      {"topic length", [](RunConfig* c) { c->topics.dlq = std::string(250, 'd'); }, "topics.dlq: "},
      {"json mirror charset", [](RunConfig* c) { c->topics.alerts_json = "alerts json"; }, "topics.alerts_json: "},
      {"topic reused", [](RunConfig* c) { c->topics.dlq = c->topics.alerts; },
       "topics.dlq: 'shortfall.alerts.v1' is also topics.alerts"},
      {"json mirror is the input", [](RunConfig* c) { c->topics.alerts_json = c->topics.shipments; },
       "topics.alerts_json: 'shipments.events.v1' is also topics.shipments"},
      {"topic is the repartition topic", [](RunConfig* c) { c->topics.alerts = "shortfall-volumes-repartition"; },
       "topics.alerts: 'shortfall-volumes-repartition' is the internal repartition topic"},
      {"no partitions", [](RunConfig* c) { c->repartition_partitions = 0; }, "repartition.partitions: 0 (want >= 1)"},
      {"no replicas", [](RunConfig* c) { c->replication_factor = 0; }, "repartition.replication_factor: 0 (want >= 1)"},
      {"guarantee out of enum", [](RunConfig* c) { c->guarantee = static_cast<ProcessingGuarantee>(7); },
       "processing.guarantee: "},
      {"zero commit interval", [](RunConfig* c) { c->commit_interval = 0; }, "processing.commit_interval: 0s (want > 0)"},
      {"commit interval beyond the transaction timeout",
       [](RunConfig* c) {
         c->guarantee = ProcessingGuarantee::kExactlyOnce;
         c->commit_interval = 10 * kMsPerSecond;
       },
       "processing.commit_interval: 10s with exactly_once must be below the producer's "
       "transaction.timeout.ms (10000 ms)"},
      {"commit interval beyond a configured transaction timeout",
       [](RunConfig* c) {
         c->guarantee = ProcessingGuarantee::kExactlyOnce;
         c->commit_interval = 10 * kMsPerSecond;
         c->kafka_producer = {{"transaction.timeout.ms", "5000"}};
       },
       "processing.commit_interval: 10s with exactly_once must be below the producer's "
       "transaction.timeout.ms (5000 ms)"},
      {"zero batch", [](RunConfig* c) { c->batch_size = 0; }, "processing.batch_size: 0 (want 1 to 1000000)"},
      {"two standby replicas",
       [](RunConfig* c) {
         c->guarantee = ProcessingGuarantee::kExactlyOnce;
         c->num_standby_replicas = 2;
       },
       "processing.num_standby_replicas: 2 (want 0 or 1"},
      {"standby replicas without changelogs", [](RunConfig* c) { c->num_standby_replicas = 1; },
       "processing.num_standby_replicas: standby replicas follow the changelog topics"},
      {"huge batch", [](RunConfig* c) { c->batch_size = 1'000'001; }, "processing.batch_size: 1000001"},
      {"negative shutdown timeout", [](RunConfig* c) { c->shutdown_timeout = -1; }, "processing.shutdown_timeout: "},
      {"no state dir", [](RunConfig* c) { c->state_dir = ""; }, "state.dir: required"},
      {"tiny block cache", [](RunConfig* c) { c->state_block_cache_mb = 8; },
       "state.block_cache_mb: 8 (want 16 to 1048576)"},
      {"write buffers over half the cache", [](RunConfig* c) { c->state_write_buffer_mb = 129; },
       "state.write_buffer_mb: 129 (want 1 to 128, half of state.block_cache_mb, or 0 for a quarter)"},
      {"negative write buffers", [](RunConfig* c) { c->state_write_buffer_mb = -1; }, "state.write_buffer_mb: -1"},
      {"bucket", [](RunConfig* c) { c->pipeline.window.bucket = 7 * kMsPerHour; }, "window.bucket: 7h"},
      {"no rolling windows", [](RunConfig* c) { c->pipeline.window.rolling.clear(); }, "window.rolling: "},
      {"lateness", [](RunConfig* c) { c->pipeline.window.allowed_lateness = 31 * kMsPerDay; },
       "window.allowed_lateness: "},
      {"future skew", [](RunConfig* c) { c->pipeline.normalizer.max_future_skew = -1; },
       "validation.max_future_skew: "},
      {"quantity limit", [](RunConfig* c) { c->pipeline.normalizer.max_line_quantity = 0; },
       "validation.max_line_quantity: "},
      {"weight limit", [](RunConfig* c) { c->pipeline.normalizer.max_line_gross_weight_kg = -1; },
       "validation.max_line_gross_weight_kg: "},
      {"value limit", [](RunConfig* c) { c->pipeline.normalizer.max_line_value_usd = 0; },
       "validation.max_line_value_usd: "},
      {"currency code", [](RunConfig* c) { c->pipeline.normalizer.usd_rates = {{"mxn", 0.05}}; },
       "validation.usd_rates[mxn]: "},
      {"no rates", [](RunConfig* c) { c->pipeline.normalizer.usd_rates.clear(); }, "validation.usd_rates: empty"},
      {"bind without port", [](RunConfig* c) { c->metrics_bind = "9464"; }, "metrics.bind: '9464' is not host:port"},
      {"bind without host", [](RunConfig* c) { c->metrics_bind = ":9464"; }, "metrics.bind: "},
      {"bind with bare IPv6", [](RunConfig* c) { c->metrics_bind = "::1:9464"; }, "metrics.bind: "},
      {"bind port range", [](RunConfig* c) { c->metrics_bind = "localhost:65536"; }, "metrics.bind: "},
      {"brokers in kafka.common", [](RunConfig* c) { c->kafka_common = {{"bootstrap.servers", "k:1"}}; },
       "kafka.common.bootstrap.servers: "},
      {"group id in kafka.consumer", [](RunConfig* c) { c->kafka_consumer = {{"group.id", "g"}}; },
       "kafka.consumer.group.id: "},
      {"property twice", [](RunConfig* c) { c->kafka_producer = Props{{"linger.ms", "1"}, {"linger.ms", "2"}}; },
       "kafka.producer.linger.ms: given twice"},
      {"redacted value pasted back", [](RunConfig* c) { c->kafka_common = {{"sasl.password", "[redacted]"}}; },
       "kafka.common.sasl.password: is [redacted]"},
  };
  for (const Case& c : cases) {
    // Given a valid config with one thing broken, when it is validated,
    RunConfig config = ValidDefaults();
    c.change(&config);
    const Status s = ValidateRunConfig(config);
    // then the error names the key path.
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_TRUE(StartsWith(s.message(), c.error_prefix)) << c.name << ": " << s.message();
  }
}

TEST(ValidateRunConfig, ExactlyOnceTakesACommitIntervalBelowTheTransactionTimeout) {
  RunConfig config = ValidDefaults();
  config.guarantee = ProcessingGuarantee::kExactlyOnce;
  config.commit_interval = 9 * kMsPerSecond;  // the default timeout is 10 s
  EXPECT_TRUE(ValidateRunConfig(config).ok());
  config.commit_interval = 90 * kMsPerSecond;
  config.kafka_producer = {{"transaction.timeout.ms", "120000"}};
  EXPECT_TRUE(ValidateRunConfig(config).ok()) << ValidateRunConfig(config).ToString();
}

TEST(ValidateRunConfig, MetricsBindTakesIPv6InBracketsAndPortZero) {
  RunConfig config = ValidDefaults();
  config.metrics_bind = "[::1]:0";
  EXPECT_TRUE(ValidateRunConfig(config).ok());
  Result<HostPort> hp = ParseHostPort("[::1]:9464");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 9464);
  hp = ParseHostPort("0.0.0.0:80");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "0.0.0.0");
  EXPECT_EQ(hp->port, 80);
}

// ---------------------------------------------------------------------------
// DescribeRunConfig

TEST(DescribeRunConfig, RedactsEverySecretPattern) {
  // Given properties whose names match each secret pattern, in any case,
  RunConfig config = ValidDefaults();
  config.kafka_common = {{"sasl.password", "hunter2-a"},
                         {"SSL.Key.Password", "hunter2-b"},
                         {"sasl.jaas.config", "hunter2-c"},
                         {"sasl.oauthbearer.client.secret", "hunter2-d"},
                         {"sasl.oauthbearer.token.endpoint.url", "hunter2-e"},
                         {"ssl.key.pem", "hunter2-f"},
                         {"sasl.oauthbearer.config", "hunter2-g"},
                         {"sasl.username", "shortfall-user"}};
  config.kafka_producer = {{"my.SECRET.thing", "hunter2-h"}};
  config.kafka_consumer = {{"api.Token", "hunter2-i"}};
  // when the config is described,
  const std::string text = DescribeRunConfig(config);
  // then no secret shows, each shows as [redacted], and the rest shows as is.
  EXPECT_FALSE(Contains(text, "hunter2")) << text;
  size_t redacted = 0;
  for (size_t at = text.find("\"[redacted]\""); at != std::string::npos;
       at = text.find("\"[redacted]\"", at + 1)) {
    ++redacted;
  }
  EXPECT_EQ(redacted, 9u) << text;
  EXPECT_TRUE(Contains(text, "    sasl.username: \"shortfall-user\"\n")) << text;
  EXPECT_TRUE(IsSecretProperty("ssl.keystore.password"));
  EXPECT_FALSE(IsSecretProperty("ssl.ca.location"));
}

TEST(DescribeRunConfig, ReadsBackAsTheSameConfigExceptRedactedValues) {
  // Given a config with every field away from its default, tricky strings included,
  RunConfig config;
  config.application_id = "true";
  config.brokers = "k1:9092, k2:9092";
  config.topics = TopicNames{"null", "1.5", "a-b_c.d", "dlq", "alerts.json"};
  config.repartition_partitions = 3;
  config.replication_factor = 2;
  config.guarantee = ProcessingGuarantee::kExactlyOnce;
  config.commit_interval = 1500;
  config.batch_size = 7;
  config.shutdown_timeout = 0;
  config.state_dir = "/tmp/dir with \"quotes\" and \\ and: colon # hash";
  config.catalog_path = "";
  config.pipeline.window.bucket = 15 * kMsPerMinute;
  config.pipeline.window.rolling = {15 * kMsPerMinute, 24 * kMsPerHour};
  config.pipeline.window.allowed_lateness = 0;
  config.pipeline.normalizer.max_future_skew = 90 * kMsPerSecond;
  config.pipeline.normalizer.max_line_quantity = 0.1;
  config.pipeline.normalizer.max_line_gross_weight_kg = 123456789.125;
  config.pipeline.normalizer.max_line_value_usd = 1.0 / 3.0;
  config.pipeline.normalizer.usd_rates = {{"USD", 1.0}, {"NOK", 0.093}, {"YES", 1e-7}};
  config.metrics_bind = "[::]:0";
  config.kafka_common = {{"security.protocol", "SASL_SSL"}, {"sasl.password", "s3cret"}};
  config.kafka_consumer = {{"isolation.level", "read_committed"}, {"fetch.max.bytes", "1"}};
  config.kafka_producer = {{"enable.idempotence", "true"}, {"client.id", "tab\there, newline\n"}};
  // when it is described and the description parsed,
  const std::string text = DescribeRunConfig(config);
  Result<RunConfig> back = ParseRunConfig(text, "described");
  // then the result equals it, with the secret as "[redacted]".
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  RunConfig expected = config;
  expected.kafka_common[1].second = "[redacted]";
  EXPECT_TRUE(*back == expected) << text << "\n---\n" << DescribeRunConfig(*back);
  // and describing again gives the same bytes.
  EXPECT_EQ(DescribeRunConfig(*back), text);
}

TEST(DescribeRunConfig, DescribesTheDefaultsInTheExampleLayout) {
  const std::string text = DescribeRunConfig(RunConfig{});
  EXPECT_TRUE(StartsWith(text, "application_id: \"shortfall\"\nkafka:\n  bootstrap_servers: \"\"\n"
                               "  common: {}\n")) << text;
  EXPECT_TRUE(Contains(text, "window:\n  bucket: 1h\n  rolling: [24h, 7d]\n  allowed_lateness: 6h\n"))
      << text;
  EXPECT_TRUE(Contains(text, "  usd_rates:\n    USD: 1\n    MXN: 0.055\n")) << text;
  Result<RunConfig> back = ParseRunConfig(text, "described");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == RunConfig{});
}

TEST(ParseRunConfig, ReadsTheCustomsHoldKeysAndValidationNamesThem) {
  // Given every detection.customs_hold key set away from its default,
  RunConfig config = Parsed(R"(
detection:
  customs_hold: {enabled: false, window: 7d, baseline_weeks: 6, min_history_weeks: 3, min_filings: 50,
                 overdispersion: 0.8, cusum_slack: 2, cusum_threshold: 7, recover_z: 0.5, min_ratio: 3}
)");
  // then each lands in its field,
  const operators::CustomsHoldOptions& h = config.pipeline.detection.customs_hold;
  EXPECT_FALSE(h.enabled);
  EXPECT_EQ(h.window, 7 * kMsPerDay);
  EXPECT_EQ(h.baseline_weeks, 6);
  EXPECT_EQ(h.min_history_weeks, 3);
  EXPECT_EQ(h.min_filings, 50);
  EXPECT_EQ(h.overdispersion, 0.8);
  EXPECT_EQ(h.cusum_slack, 2);
  EXPECT_EQ(h.cusum_threshold, 7);
  EXPECT_EQ(h.recover_z, 0.5);
  EXPECT_EQ(h.min_ratio, 3);
  EXPECT_FALSE(config == RunConfig{}) << "operator== compares them";
  config.brokers = "k:9092";
  EXPECT_TRUE(ValidateRunConfig(config).ok()) << ValidateRunConfig(config).ToString();
  // and a value out of range is refused naming its key path.
  ASSERT_TRUE(ApplyOverride("detection.customs_hold.min_ratio=0.5", &config).ok());
  EXPECT_EQ(ValidateRunConfig(config).message(), "detection.customs_hold.min_ratio: 0.5 (want >= 1)");
}

TEST(ParseRunConfig, ReadsTheUnitValueKeysAndValidationNamesThem) {
  // Given every detection.unit_value key set away from its default,
  RunConfig config = Parsed(R"(
window: {rolling: [24h, 72h, 7d]}
detection:
  unit_value: {enabled: false, window: 72h, baseline_window: 7d, min_lines: 5, min_reference_lines: 8,
               price_sd: 0.7, relative_floor: 0.1, cusum_slack: 2, cusum_threshold: 7, recover_z: 0.5,
               min_ratio: 1.5, max_held: 14d}
)");
  // then each lands in its field,
  const operators::UnitValueOptions& u = config.pipeline.detection.unit_value;
  EXPECT_FALSE(u.enabled);
  EXPECT_EQ(u.window, 72 * kMsPerHour);
  EXPECT_EQ(u.baseline_window, 7 * kMsPerDay);
  EXPECT_EQ(u.min_samples, 5);
  EXPECT_EQ(u.min_reference_samples, 8);
  EXPECT_EQ(u.sample_sd, 0.7);
  EXPECT_EQ(u.relative_floor, 0.1);
  EXPECT_EQ(u.cusum_slack, 2);
  EXPECT_EQ(u.cusum_threshold, 7);
  EXPECT_EQ(u.recover_z, 0.5);
  EXPECT_EQ(u.min_ratio, 1.5);
  EXPECT_EQ(u.max_held, 14 * kMsPerDay);
  RunConfig defaults;
  defaults.pipeline.window.rolling = config.pipeline.window.rolling;
  EXPECT_FALSE(config == defaults) << "operator== compares them";
  config.brokers = "k:9092";
  EXPECT_TRUE(ValidateRunConfig(config).ok()) << ValidateRunConfig(config).ToString();
  // and a value out of range is refused naming its key path.
  ASSERT_TRUE(ApplyOverride("detection.unit_value.baseline_window=24h", &config).ok());
  EXPECT_EQ(ValidateRunConfig(config).message(),
            "detection.unit_value.baseline_window: 24h (want longer than unit_value.window, 3d)");
}

TEST(ParseRunConfig, ReadsTheOriginConcentrationKeysAndOverridesAndValidationNamesThem) {
  // Given every detection.origin_concentration key set away from its default,
  RunConfig config = Parsed(R"(
detection:
  origin_concentration:
    enabled: false
    window: 24h
    baseline_weeks: 6
    min_history_weeks: 3
    share_threshold: 0.9
    others_ratio: 0.4
    min_shipments: 80
    relative_noise: 0.12
    z_threshold: 4
    recover_z: 0.5
    overrides: {"semiconductors/US": "share_threshold=0.95, z_threshold=5", "*/MX": enabled=false}
)");
  // then each lands in its field,
  const operators::OriginConcentrationOptions& o = config.pipeline.detection.origin_concentration;
  EXPECT_FALSE(o.enabled);
  EXPECT_EQ(o.window, 24 * kMsPerHour);
  EXPECT_EQ(o.baseline_weeks, 6);
  EXPECT_EQ(o.min_history_weeks, 3);
  EXPECT_EQ(o.share_threshold, 0.9);
  EXPECT_EQ(o.others_ratio, 0.4);
  EXPECT_EQ(o.min_shipments, 80);
  EXPECT_EQ(o.relative_noise, 0.12);
  EXPECT_EQ(o.z_threshold, 4);
  EXPECT_EQ(o.recover_z, 0.5);
  const auto& overrides = config.pipeline.detection.origin_concentration_overrides;
  ASSERT_EQ(overrides.size(), 2u);
  EXPECT_EQ(overrides[0].group, "semiconductors");
  EXPECT_EQ(overrides[0].destination, "US");
  EXPECT_EQ(overrides[0].share_threshold, 0.95);
  EXPECT_EQ(overrides[0].z_threshold, 5);
  EXPECT_FALSE(overrides[0].enabled.has_value());
  EXPECT_EQ(overrides[1].group, "*");
  EXPECT_EQ(overrides[1].destination, "MX");
  EXPECT_EQ(overrides[1].enabled, false);
  EXPECT_FALSE(config == RunConfig{}) << "operator== compares them";
  config.brokers = "k:9092";
  EXPECT_TRUE(ValidateRunConfig(config).ok()) << ValidateRunConfig(config).ToString();
  // and the description reads back as the same config,
  Result<RunConfig> back = ParseRunConfig(DescribeRunConfig(config), "described");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == config) << DescribeRunConfig(config);
  // and an override replaces the entry of the same group and destination,
  ASSERT_TRUE(ApplyOverride("detection.origin_concentration.overrides.semiconductors/US=others_ratio=0.3", &config)
                  .ok());
  ASSERT_EQ(overrides.size(), 2u);
  EXPECT_EQ(overrides[0].others_ratio, 0.3);
  EXPECT_FALSE(overrides[0].share_threshold.has_value());
  // and mistakes are refused naming the key,
  RunConfig scratch;
  const Status bad_field = ApplyOverride("detection.origin_concentration.overrides.ppe/US=threshold=1", &scratch);
  EXPECT_NE(bad_field.message().find("detection.origin_concentration.overrides"), std::string::npos)
      << bad_field.ToString();
  EXPECT_NE(bad_field.message().find("share_threshold, others_ratio"), std::string::npos) << bad_field.ToString();
  EXPECT_FALSE(ApplyOverride("detection.origin_concentration.overrides.ppe=enabled=false", &scratch).ok());
  EXPECT_FALSE(ApplyOverride("detection.origin_concentration.overrides.ppe/US=z_threshold=x", &scratch).ok());
  // and a value out of range is refused naming its key path.
  ASSERT_TRUE(ApplyOverride("detection.origin_concentration.others_ratio=1", &config).ok());
  EXPECT_EQ(ValidateRunConfig(config).message(),
            "detection.origin_concentration.others_ratio: 1 (want > 0 and < 1)");
}

TEST(ParseRunConfig, ReadsTheDwellKeysAndValidationNamesThem) {
  // Given every detection.dwell key set away from its default,
  RunConfig config = Parsed(R"(
window: {rolling: [24h, 72h, 7d]}
detection:
  dwell: {enabled: false, window: 72h, baseline_window: 7d, min_releases: 5, min_reference_releases: 8,
          dwell_sd: 0.7, relative_floor: 0.1, cusum_slack: 2, cusum_threshold: 7, recover_z: 0.5,
          min_ratio: 1.8, max_held: 10d, time_bound: 3d}
)");
  // then each lands in its field,
  const operators::DwellOptions& d = config.pipeline.detection.dwell;
  EXPECT_FALSE(d.enabled);
  EXPECT_EQ(d.window, 72 * kMsPerHour);
  EXPECT_EQ(d.baseline_window, 7 * kMsPerDay);
  EXPECT_EQ(d.min_samples, 5);
  EXPECT_EQ(d.min_reference_samples, 8);
  EXPECT_EQ(d.sample_sd, 0.7);
  EXPECT_EQ(d.relative_floor, 0.1);
  EXPECT_EQ(d.cusum_slack, 2);
  EXPECT_EQ(d.cusum_threshold, 7);
  EXPECT_EQ(d.recover_z, 0.5);
  EXPECT_EQ(d.min_ratio, 1.8);
  EXPECT_EQ(d.max_held, 10 * kMsPerDay);
  EXPECT_EQ(config.pipeline.detection.dwell_join.time_bound, 3 * kMsPerDay);
  RunConfig defaults;
  defaults.pipeline.window.rolling = config.pipeline.window.rolling;
  EXPECT_FALSE(config == defaults) << "operator== compares them";
  config.brokers = "k:9092";
  EXPECT_TRUE(ValidateRunConfig(config).ok()) << ValidateRunConfig(config).ToString();
  // and a value out of range is refused naming its key path.
  ASSERT_TRUE(ApplyOverride("detection.dwell.min_releases=0", &config).ok());
  EXPECT_EQ(ValidateRunConfig(config).message(), "detection.dwell.min_releases: 0 (want >= 1)");
  ASSERT_TRUE(ApplyOverride("detection.dwell.min_releases=5", &config).ok());
  ASSERT_TRUE(ApplyOverride("detection.dwell.time_bound=10m", &config).ok());
  EXPECT_EQ(ValidateRunConfig(config).message(), "detection.dwell.time_bound: 10m (want 1h to 90d)");
}

TEST(GuaranteeName, ReadsBackThroughParseGuarantee) {
  for (ProcessingGuarantee g : {ProcessingGuarantee::kAtLeastOnce, ProcessingGuarantee::kExactlyOnce}) {
    Result<ProcessingGuarantee> back = ParseGuarantee(GuaranteeName(g));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, g);
  }
  EXPECT_EQ(GuaranteeName(ProcessingGuarantee::kExactlyOnce), "exactly_once");
}

}  // namespace
}  // namespace shortfall::pipeline
