#include "pipeline/demo_command.h"

#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <map>
#include <memory>
#include <sstream>

#include <prometheus/registry.h>

#include "operators/catalog.h"
#include "pipeline/alert_format.h"
#include "pipeline/embedded_broker.h"
#include "pipeline/flags.h"
#include "pipeline/metrics_server.h"
#include "pipeline/run_command.h"
#include "pipeline/run_config.h"
#include "pipeline/runtime.h"
#include "pipeline/runtime_probe.h"
#include "pipeline/scenario_producer.h"
#include "pipeline/version.h"
#include "scenario/scenarios.h"

namespace shortfall::pipeline {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr std::string_view kApplicationId = "shortfall-demo";

// A fresh directory for the demo's state, removed when the demo ends.
class DemoStateDir {
 public:
  static Result<DemoStateDir> Make() {
    std::string pattern = (std::filesystem::temp_directory_path() / "shortfall-demo-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return UnavailableError("cannot create a temporary state directory");
    return DemoStateDir(std::move(pattern));
  }
  DemoStateDir(DemoStateDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  DemoStateDir(const DemoStateDir&) = delete;
  ~DemoStateDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit DemoStateDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

std::string Percent(double observed, double expected) {
  if (expected <= 0) return "";
  std::ostringstream s;
  const double change = (observed - expected) / expected * 100;
  s << std::showpos << std::fixed << std::setprecision(0) << change << "%";
  return s.str();
}

// The closing table: every group total, then each corridor with an open
// alert, with its rolling windows and the baseline the detector expects.
void PrintSummary(const std::vector<SeriesRow>& rows, const std::vector<v1::ShortageAlert>& open,
                  const std::vector<DurationMs>& windows, std::ostream& out) {
  std::map<std::pair<std::string, std::string>, const v1::ShortageAlert*> alert_of;
  for (const v1::ShortageAlert& a : open) {
    alert_of[{a.commodity_group(), a.corridor().origin_country().empty() ? std::string("*") : FormatCorridor(a.corridor())}] = &a;
  }
  out << "\nRolling volumes at the end of the scenario (shipments; the baseline is the median of the same\n"
         "24 hours in earlier weeks):\n\n";
  out << std::left << std::setw(19) << "group" << std::setw(14) << "corridor";
  for (DurationMs w : windows) out << std::right << std::setw(9) << FormatDuration(w);
  out << std::right << std::setw(10) << "baseline" << std::setw(8) << "change" << "  alert\n";
  const auto print = [&](const SeriesRow& r) {
    out << std::left << std::setw(19) << r.group << std::setw(14) << r.corridor;
    for (size_t i = 0; i < windows.size(); ++i) out << std::right << std::setw(9) << r.rolling[i].shipments;
    if (r.expected_shipments) {
      out << std::right << std::setw(10) << std::fixed << std::setprecision(0) << *r.expected_shipments
          << std::setw(8) << Percent(static_cast<double>(r.rolling[0].shipments), *r.expected_shipments);
    } else {
      out << std::right << std::setw(10) << "warm-up" << std::setw(8) << "";
    }
    auto it = alert_of.find({r.group, r.corridor});
    if (it != alert_of.end()) {
      out << "  " << SeverityLabel(it->second->severity()) << " " << AlertKindLabel(it->second->kind());
    }
    out << "\n";
  };
  for (const SeriesRow& r : rows) {
    if (r.corridor == "*" && r.group != "unclassified") print(r);
  }
  for (const SeriesRow& r : rows) {
    if (r.corridor != "*" && alert_of.count({r.group, r.corridor})) print(r);
  }
}

}  // namespace

int DemoCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  FlagParser flags;
  flags.Add("scenario", "NAME", "the scenario to play (" + scenario::ScenarioNameList() + ")", "demo");
  flags.Add("seed", "N", "random seed of the scenario (default: the scenario's own)");
  flags.Add("partitions", "N",
            "partitions of each topic on the embedded broker (default: 4, more for big scenarios: it keeps "
            "about 5 MiB per partition)");
  flags.Add("metrics-bind", "HOST:PORT", "where to serve /metrics, /healthz and /readyz (port 0: any free port)",
            "127.0.0.1:9464");
  flags.Add("state-dir", "DIR", "keep the pipeline's RocksDB state here (default: a temporary directory, removed at exit)");
  flags.AddBool("follow", "keep running after the scenario (broker, pipeline, metrics) until Ctrl-C");
  flags.AddBool("help", "show this help");
  if (Status s = flags.Parse(args); !s.ok() || flags.GetBool("help")) {
    if (!s.ok()) err << "shortfall demo: " << s.message() << "\n\n";
    (s.ok() ? out : err) << "usage: shortfall demo [flags]\n\n"
                            "Plays a scenario with injected shortages through the whole pipeline on an\n"
                            "embedded Kafka broker in this process: events are produced to the input topics,\n"
                            "`shortfall run`'s runtime consumes them, alerts are printed as they reach the\n"
                            "alert topic, and a table of rolling volumes against their baselines closes the\n"
                            "run. Needs no Kafka, no configuration and no network beyond loopback.\n\n"
                         << flags.Usage();
    return s.ok() ? kExitOk : kExitUsage;
  }
  const auto usage_error = [&](const Status& s) {
    err << "shortfall demo: " << s.message() << "\n";
    return kExitUsage;
  };
  const auto failure = [&](const Status& s) {
    err << "shortfall demo: " << s.ToString() << "\n";
    return kExitFailure;
  };
  const scenario::NamedScenario* named = scenario::FindScenario(flags.Get("scenario"));
  if (named == nullptr) {
    return usage_error(InvalidArgumentError("--scenario: no scenario '" + flags.Get("scenario") + "' (have: " +
                                            scenario::ScenarioNameList() + ")"));
  }
  Result<uint64_t> seed = flags.Has("seed") ? flags.GetUint("seed") : Result<uint64_t>(named->options.seed);
  if (!seed.ok()) return usage_error(seed.status());
  // One partition per 40,000 events keeps each well under the embedded
  // broker's ~5 MiB (about 60 bytes an event, compressed).
  Result<int64_t> partitions =
      flags.Has("partitions")
          ? flags.GetInt("partitions")
          : Result<int64_t>(std::max<int64_t>(4, static_cast<int64_t>((named->options.events + 39999) / 40000)));
  if (!partitions.ok()) return usage_error(partitions.status());
  if (*partitions < 1 || *partitions > 64) return usage_error(InvalidArgumentError("--partitions: want 1 to 64"));
  Result<HostPort> bind = ParseHostPort(flags.Get("metrics-bind"));
  if (!bind.ok()) return usage_error(bind.status().WithContext("--metrics-bind"));

  RunConfig config;
  config.application_id = std::string(kApplicationId);
  config.repartition_partitions = static_cast<int32_t>(*partitions);
  config.topics.alerts_json = "shortfall.alerts.json.v1";
  config.metrics_bind = flags.Get("metrics-bind");
  // The embedded broker rebalances only after session.timeout.ms - 1 s.
  config.kafka_consumer = {{"session.timeout.ms", "2000"}, {"heartbeat.interval.ms", "250"}};
  // About 5 MiB are kept per partition: compressed batches keep the whole scenario.
  config.kafka_producer = {{"compression.type", "lz4"}};
  std::optional<DemoStateDir> temp_state;
  if (flags.Has("state-dir")) {
    config.state_dir = flags.Get("state-dir");
  } else {
    Result<DemoStateDir> dir = DemoStateDir::Make();
    if (!dir.ok()) return failure(dir.status());
    temp_state.emplace(std::move(*dir));
    config.state_dir = temp_state->path();
  }

  scenario::GeneratorOptions generator_options = named->options;
  generator_options.seed = *seed;
  generator_options.partitions = static_cast<int32_t>(*partitions);
  generator_options.shipments_topic = config.topics.shipments;
  generator_options.customs_topic = config.topics.customs;
  if (Status s = scenario::ValidateOptions(generator_options); !s.ok()) {
    return usage_error(s.WithContext("--scenario " + named->name + " with --partitions " +
                                     std::to_string(*partitions)));
  }

  // 1. The broker, with every topic the pipeline uses (the mock cluster has
  //    no admin API to create them later).
  std::vector<std::string> topics = {config.topics.shipments, config.topics.customs, config.topics.alerts,
                                     config.topics.alerts_json, config.topics.dlq, RepartitionTopicName(config)};
  EmbeddedBroker::Options broker_options;
  broker_options.partitions = static_cast<int32_t>(*partitions);
  broker_options.topics = topics;
  Result<std::unique_ptr<EmbeddedBroker>> broker = EmbeddedBroker::Start(broker_options);
  if (!broker.ok()) return failure(broker.status());
  config.brokers = (*broker)->bootstrap();
  if (Status s = ValidateRunConfig(config); !s.ok()) return failure(s);

  out << "shortfall demo: scenario '" << named->name << "': " << named->description << "\n";
  out << "shortfall demo: embedded Kafka broker on " << config.brokers << "\n";
  out.flush();

  // 2. The scenario, produced before the pipeline starts.
  {
    Result<std::unique_ptr<KafkaProducer>> producer = KafkaProducer::Create(
        {{"bootstrap.servers", config.brokers}, {"compression.type", "lz4"}, {"message.timeout.ms", "30000"},
         {"linger.ms", "20"}});
    if (!producer.ok()) return failure(producer.status());
    scenario::Generator generator(generator_options);
    std::ostringstream report;
    ProduceOptions produce;
    produce.keep_partitions = true;  // as the scenario placed them (an idle partition stays idle)
    if (Status s = ProduceScenario(generator, **producer, produce, "shortfall demo", report); !s.ok()) {
      err << report.str();
      return failure(s);
    }
    // The embedded broker drops the oldest batches of a partition past its
    // size limit without telling anyone: make sure it kept everything.
    Result<std::unique_ptr<KafkaAdmin>> admin = KafkaAdmin::Create({{"bootstrap.servers", config.brokers}});
    if (!admin.ok()) return failure(admin.status());
    for (const std::string& topic : {config.topics.shipments, config.topics.customs}) {
      for (int32_t p = 0; p < *partitions; ++p) {
        Result<std::pair<int64_t, int64_t>> offsets = (*admin)->WatermarkOffsets(topic, p);
        if (!offsets.ok()) return failure(offsets.status());
        if (offsets->first > 0) {
          return failure(DataLossError(
              "the embedded broker dropped the first " + std::to_string(offsets->first) + " records of " + topic +
              "[" + std::to_string(p) + "] (it keeps about 5 MiB per partition); run with more --partitions"));
        }
      }
    }
    out << "shortfall demo: produced " << generator.stats().records << " events ("
        << generator.stats().shipments << " shipments; "
        << generator.stats().records - generator.stats().shipment_events - generator.stats().customs_events
        << " malformed and " << generator.stats().late << " late on purpose, for the dead-letter topic)\n";
  }

  // 3. Metrics, then the pipeline.
  auto registry = std::make_shared<prometheus::Registry>();
  RuntimeProbe probe(registry, std::string(kVersion));
  probe.SetUp();
  Result<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(bind->host, bind->port, registry, {});
  if (!server.ok()) return failure(server.status().WithContext("--metrics-bind"));
  out << "shortfall demo: metrics on " << (*server)->url() << "/metrics\n";
  for (const scenario::TruthEntry& t : named->truth) {
    out << "shortfall demo: injected from " << FormatUtc(t.start) << ": " << t.what << "\n";
  }
  out << "shortfall demo: alerts as they are delivered to " << config.topics.alerts << ":\n";
  out.flush();

  Result<operators::Catalog> catalog = operators::Catalog::Default();
  if (!catalog.ok()) return failure(catalog.status());
  RuntimeOptions options;
  options.config = config;
  options.until_idle = !flags.GetBool("follow");
  options.probe = &probe;
  uint64_t alerts = 0;
  options.on_alert = [&](const v1::ShortageAlert& alert) {
    ++alerts;
    out << "  " << FormatAlertLine(alert) << "\n";
    out.flush();
  };
  std::ostringstream quiet_log;  // the runtime's own log goes to stderr only on failure
  std::ostream& log = flags.GetBool("follow") ? err : static_cast<std::ostream&>(quiet_log);
  const auto started = std::chrono::steady_clock::now();
  Result<std::unique_ptr<Runtime>> runtime = Runtime::Create(std::move(options), *catalog, log);
  if (!runtime.ok()) {
    err << quiet_log.str();
    return failure(runtime.status());
  }
  if (flags.GetBool("follow")) {
    out << "shortfall demo: following; read alerts with `shortfall tail --brokers " << config.brokers
        << " --from-beginning`; Ctrl-C stops\n";
    out.flush();
  }
  Status ran = RunUntilStopped(**runtime);
  if (!ran.ok()) {
    err << quiet_log.str();
    return failure(ran);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const RuntimeStats& stats = (*runtime)->stats();
  // Stage two reads the repartition topic while stage one writes it; had it
  // fallen more than the embedded broker's ~5 MiB per partition behind, the
  // broker would have dropped what it had not read. Run to idle, every
  // contribution produced is read before the run ends.
  if (!flags.GetBool("follow") && stats.contributions != stats.repartition_records) {
    err << quiet_log.str();
    return failure(DataLossError("stage two applied " + std::to_string(stats.contributions) + " of " +
                                 std::to_string(stats.repartition_records) +
                                 " repartition records (the embedded broker dropped the rest); run with more "
                                 "--partitions"));
  }
  PrintSummary((*runtime)->final_series(), (*runtime)->open_alerts(), config.pipeline.window.rolling, out);
  out << "\nshortfall demo: " << stats.records << " events in " << std::fixed << std::setprecision(1) << seconds
      << " s: " << stats.accepted << " accepted, " << stats.invalid << " invalid and " << stats.late
      << " late (in " << config.topics.dlq << " with their reasons), " << alerts << " alert records\n";
  return kExitOk;
}

}  // namespace shortfall::pipeline
