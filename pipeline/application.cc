#include "pipeline/application.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <thread>

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/json_util.h>

#include "base/status.h"
#include "operators/catalog.h"
#include "operators/event_decoder.h"
#include "pipeline/alert_format.h"
#include "pipeline/demo_command.h"
#include "pipeline/embedded_broker.h"
#include "pipeline/event_file.h"
#include "pipeline/flags.h"
#include "pipeline/kafka_client.h"
#include "pipeline/replay.h"
#include "pipeline/run_command.h"
#include "pipeline/run_config.h"
#include "pipeline/scenario_producer.h"
#include "pipeline/version.h"
#include "scenario/generator.h"
#include "scenario/scenarios.h"
#include "shortfall/v1/shortage_alert.pb.h"

namespace shortfall::pipeline {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// The malloc the process really runs on: jemalloc when its mallctl entry
// point resolves (the build links it unless SHORTFALL_JEMALLOC=OFF), else
// the C library's.
std::string_view MallocInUse() {
  return dlsym(RTLD_DEFAULT, "mallctl") != nullptr ? "jemalloc" : "glibc";
}

constexpr std::string_view kOverview =
    "shortfall — watches cross-border shipment and customs events and tracks the\n"
    "flow of critical goods (semiconductors, PPE, batteries, pharmaceuticals,\n"
    "critical minerals) per corridor, to raise alerts when one starts to run short.\n"
    "\n"
    "usage: shortfall <command> [flags]\n"
    "\n"
    "commands:\n"
    "  demo      the whole pipeline on an embedded broker: a scenario with injected\n"
    "            shortages, alerts as they fire, metrics, a closing summary\n"
    "  run       the pipeline on Kafka: consume shipment and customs events, keep\n"
    "            windowed volumes per group and corridor, raise shortage alerts\n"
    "            (at_least_once or exactly_once)\n"
    "  gen       write a seeded scenario of shipment and customs events to a file,\n"
    "            or produce it to Kafka (--to-kafka)\n"
    "  replay    run the operators over an event file (a backtest, no Kafka):\n"
    "            rolling volumes per commodity group and corridor, and alerts\n"
    "  broker    run an embedded development Kafka broker on loopback (prints its\n"
    "            bootstrap address) with the default topics\n"
    "  tail      print the alerts on the alert topic as readable lines or JSON\n"
    "  help      this text; `shortfall <command> --help` for a command's flags\n"
    "  version   print the version\n";

void AddCatalogFlag(FlagParser* flags) {
  flags->Add("catalog", "FILE",
             "commodity catalog CSV (see catalog/README.md); the built-in one when unset");
}

// The topics of the design's contract, which `shortfall broker` creates.
const std::vector<std::string>& DefaultTopics() {
  static const std::vector<std::string> topics = {"shipments.events.v1", "customs.events.v1",
                                                  "shortfall.alerts.v1", "shortfall.dlq.v1"};
  return topics;
}

// The ground truth of a named scenario, one change per line.
Status WriteTruth(const scenario::NamedScenario& named, const std::string& path) {
  std::ofstream csv(path, std::ios::trunc);
  if (!csv) return InvalidArgumentError("--truth: cannot write '" + path + "'");
  csv << scenario::TruthCsv(named);
  csv.close();
  if (!csv) return UnavailableError("--truth: write failed for '" + path + "'");
  return OkStatus();
}

// What was made on purpose, so a replay's counts can be checked against it.
void PrintGeneratorStats(const scenario::GeneratorStats& stats, std::string_view verb, std::ostream& err) {
  uint64_t malformed = 0;
  std::string by_reason;
  for (const auto& [reason, n] : stats.malformed_by_reason) {
    malformed += n;
    if (n > 0) by_reason += " " + reason + "=" + std::to_string(n);
  }
  err << "shortfall gen: " << verb << " " << stats.records << " records (" << stats.shipments
      << " shipments, " << stats.shipment_events << " shipment events, " << stats.customs_events
      << " customs events; " << stats.late << " late, " << stats.out_of_order << " out of order, "
      << malformed << " malformed" << (malformed > 0 ? ":" : "") << by_reason << ")\n";
}

}  // namespace

namespace {

// Protobuf logs an ERROR for every string field with invalid UTF-8 it meets
// while parsing. For shortfall such a record is bad input, already counted
// and sent to the dead-letter topic with its reason: the log line would only
// repeat that, once per poison record. Everything else protobuf logs goes to
// stderr as before.
void ProtobufLog(google::protobuf::LogLevel level, const char* filename, int line, const std::string& message) {
  if (message.find("invalid UTF-8") != std::string::npos) return;
  static const char* const kLevels[] = {"INFO", "WARNING", "ERROR", "FATAL"};
  const int index = static_cast<int>(level);
  std::cerr << "[libprotobuf " << (index >= 0 && index < 4 ? kLevels[index] : "?") << " " << filename << ":" << line
            << "] " << message << "\n";
}

}  // namespace

int Application::Run(const std::vector<std::string>& args) {
  google::protobuf::SetLogHandler(&ProtobufLog);
  if (args.empty()) {
    err_ << kOverview;
    return kExitUsage;
  }
  const std::string& command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "gen") return Gen(rest);
  if (command == "replay") return Replay(rest);
  if (command == "broker") return Broker(rest);
  if (command == "run") return RunCommand(rest, out_, err_);
  if (command == "demo") return DemoCommand(rest, out_, err_);
  if (command == "tail") return Tail(rest);
  if (command == "help" || command == "--help" || command == "-h") return Help();
  if (command == "version" || command == "--version") {
    out_ << "shortfall " << kVersion << "\n" << "malloc: " << MallocInUse() << "\n";
    return kExitOk;
  }
  err_ << "shortfall: unknown command '" << command << "'\n\n" << kOverview;
  return kExitUsage;
}

int Application::Help() {
  out_ << kOverview;
  return kExitOk;
}

int Application::Gen(const std::vector<std::string>& args) {
  FlagParser flags;
  flags.Add("out", "FILE", "where to write the events; - for stdout", "-");
  flags.Add("format", "pb|json", "length-delimited protobuf or JSON lines", "pb");
  flags.Add("scenario", "NAME",
            "start from a named scenario (" + scenario::ScenarioNameList() +
                "); the flags below given explicitly override its settings");
  flags.Add("truth", "FILE", "with --scenario: write its ground truth as CSV (what changes, where, when, shortage or not, "
            "the alert kind that should report it)");
  flags.Add("seed", "N", "random seed; the same seed gives the same bytes", "1");
  flags.Add("events", "N", "number of records to write", "100000");
  flags.Add("partitions", "N", "partitions per input topic", "8");
  flags.Add("start", "TIME", "event time of the first shipments (UTC)", "2026-01-05T00:00:00Z");
  flags.Add("malformed-rate", "R", "extra malformed records per record", "0.001");
  flags.Add("late-rate", "R", "records delayed past the allowed lateness", "0.0005");
  flags.Add("rate-scale", "R", "multiplies every corridor's shipments per day, above 0 and up to 100", "1");
  flags.AddBool("to-kafka",
                "produce to Kafka at --brokers instead of writing a file (value: the event as pb or "
                "json, with a content-type header; the partitioner picks partitions, not --partitions)");
  flags.Add("brokers", "LIST", "Kafka bootstrap servers, host:port[,host:port] (with --to-kafka)");
  flags.Add("rate", "N", "records per second to Kafka; 0 for as fast as possible", "0");
  flags.AddBool("keep-partitions",
                "with --to-kafka: produce each record to the partition the generator gave it (the topics "
                "need --partitions partitions), so a replay of the same seed sees the same partitions");
  flags.AddBool("wall-clock-timestamps",
                "with --to-kafka: give each record the time it is produced as its Kafka timestamp "
                "instead of the scenario's record time (for measuring publish -> committed latency)");
  flags.Add("from-record", "N", "with --to-kafka: produce only records N onwards (0-based)", "0");
  flags.Add("to-record", "N", "with --to-kafka: produce only records before N (0: to the end)", "0");
  flags.Add("shipments-topic", "TOPIC", "topic of shipment events", "shipments.events.v1");
  flags.Add("customs-topic", "TOPIC", "topic of customs events", "customs.events.v1");
  flags.AddBool("help", "show this help");
  if (Status s = flags.Parse(args); !s.ok() || flags.GetBool("help")) {
    if (!s.ok()) err_ << "shortfall gen: " << s.message() << "\n\n";
    (s.ok() ? out_ : err_) << "usage: shortfall gen [--out FILE | --to-kafka --brokers LIST] [flags]\n\n"
                           << flags.Usage();
    return s.ok() ? kExitOk : kExitUsage;
  }
  const auto usage_error = [&](const Status& s) {
    err_ << "shortfall gen: " << s.message() << "\n";
    return kExitUsage;
  };
  const scenario::NamedScenario* named = nullptr;
  if (flags.Has("scenario")) {
    named = scenario::FindScenario(flags.Get("scenario"));
    if (named == nullptr) {
      return usage_error(InvalidArgumentError("--scenario: no scenario '" + flags.Get("scenario") +
                                              "' (have: " + scenario::ScenarioNameList() + ")"));
    }
  }
  if (flags.Has("truth") && named == nullptr) return usage_error(InvalidArgumentError("--truth needs --scenario"));
  scenario::GeneratorOptions options = named != nullptr ? named->options : scenario::GeneratorOptions();
  // A named scenario's settings hold unless a flag is given explicitly.
  const auto given = [&](const char* flag) { return named == nullptr || flags.Has(flag); };
  Result<uint64_t> seed = flags.GetUint("seed");
  if (!seed.ok()) return usage_error(seed.status());
  Result<uint64_t> events = flags.GetUint("events");
  if (!events.ok()) return usage_error(events.status());
  Result<int64_t> partitions = flags.GetInt("partitions");
  if (!partitions.ok()) return usage_error(partitions.status());
  if (*partitions < 1 || *partitions > 10000) {
    return usage_error(InvalidArgumentError("--partitions: want 1 to 10000"));
  }
  Result<TimestampMs> start = ParseUtc(flags.Get("start"));
  if (!start.ok()) return usage_error(start.status().WithContext("--start"));
  Result<EventFileFormat> format = ParseEventFileFormat(flags.Get("format"));
  if (!format.ok()) return usage_error(format.status().WithContext("--format"));
  for (const char* rate_flag : {"malformed-rate", "late-rate"}) {
    char* end = nullptr;
    const std::string text = flags.Get(rate_flag);
    const double rate = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0' || !(rate >= 0 && rate <= 0.5)) {
      return usage_error(InvalidArgumentError("--" + std::string(rate_flag) + ": '" + text +
                                              "' is not a rate from 0 to 0.5"));
    }
    if (given(rate_flag)) {
      (std::string_view(rate_flag) == "malformed-rate" ? options.malformed_rate : options.late_rate) = rate;
    }
  }
  {
    char* end = nullptr;
    const std::string text = flags.Get("rate-scale");
    const double scale = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0' || !(scale > 0 && scale <= 100)) {
      return usage_error(InvalidArgumentError("--rate-scale: '" + text + "' is not a factor above 0 and up to 100"));
    }
    if (given("rate-scale")) options.rate_scale = scale;
  }
  if (given("seed")) options.seed = *seed;
  if (given("events")) options.events = *events;
  if (given("partitions")) options.partitions = static_cast<int32_t>(*partitions);
  if (given("start")) {
    if (named != nullptr && *start != options.start) {
      return usage_error(InvalidArgumentError("--start: a named scenario's dates are part of its truth"));
    }
    options.start = *start;
  }
  options.shipments_topic = flags.Get("shipments-topic");
  options.customs_topic = flags.Get("customs-topic");
  if (Status s = scenario::ValidateOptions(options); !s.ok()) return usage_error(s);
  if (flags.Has("truth")) {
    if (Status s = WriteTruth(*named, flags.Get("truth")); !s.ok()) {
      err_ << "shortfall gen: " << s.message() << "\n";
      return kExitFailure;
    }
  }

  const bool to_kafka = flags.GetBool("to-kafka");
  if (to_kafka && flags.Has("out")) {
    return usage_error(InvalidArgumentError("--out and --to-kafka exclude each other"));
  }
  if (to_kafka && flags.Get("brokers").empty()) {
    return usage_error(InvalidArgumentError("--brokers LIST is required with --to-kafka"));
  }
  for (const char* kafka_flag : {"brokers", "rate", "keep-partitions", "wall-clock-timestamps"}) {
    if (!to_kafka && flags.Has(kafka_flag)) {
      return usage_error(InvalidArgumentError("--" + std::string(kafka_flag) + " needs --to-kafka"));
    }
  }
  Result<uint64_t> rate = flags.GetUint("rate");
  if (!rate.ok()) return usage_error(rate.status());
  if (to_kafka) {
    // A delivery that cannot succeed fails within 30 s instead of librdkafka's
    // default 5 min, so gen ends with a full account of what was delivered.
    Result<std::unique_ptr<KafkaProducer>> producer = KafkaProducer::Create(
        {{"bootstrap.servers", flags.Get("brokers")}, {"message.timeout.ms", "30000"}});
    if (!producer.ok()) return usage_error(producer.status().WithContext("--brokers"));
    scenario::Generator generator(options);
    Result<uint64_t> first = flags.GetUint("from-record");
    if (!first.ok()) return usage_error(first.status());
    Result<uint64_t> last = flags.GetUint("to-record");
    if (!last.ok()) return usage_error(last.status());
    ProduceOptions produce;
    produce.format = *format;
    produce.rate = *rate;
    produce.keep_partitions = flags.GetBool("keep-partitions");
    produce.wall_clock_timestamps = flags.GetBool("wall-clock-timestamps");
    produce.first = *first;
    produce.last = *last == 0 ? UINT64_MAX : *last;
    const Status produced = ProduceScenario(generator, **producer, produce, "shortfall gen", err_);
    if (!produced.ok()) err_ << "shortfall gen: " << produced.ToString() << "\n";
    PrintGeneratorStats(generator.stats(), "generated", err_);
    return produced.ok() ? kExitOk : kExitFailure;
  }

  Result<std::unique_ptr<EventFileWriter>> writer = EventFileWriter::Open(flags.Get("out"), *format);
  if (!writer.ok()) {
    err_ << "shortfall gen: " << writer.status().message() << "\n";
    return kExitFailure;
  }
  scenario::Generator generator(options);
  v1::EventRecord record;
  while (generator.Next(&record)) {
    if (Status s = (*writer)->Write(record); !s.ok()) {
      err_ << "shortfall gen: " << s.message() << "\n";
      return kExitFailure;
    }
  }
  if (Status s = (*writer)->Close(); !s.ok()) {
    err_ << "shortfall gen: " << s.message() << "\n";
    return kExitFailure;
  }
  PrintGeneratorStats(generator.stats(), "wrote", err_);
  return kExitOk;
}

int Application::Replay(const std::vector<std::string>& args) {
  FlagParser flags;
  flags.Add("input", "FILE", "event file to replay; - for stdin");
  flags.Add("format", "pb|json", "length-delimited protobuf or JSON lines", "pb");
  flags.Add("state-dir", "DIR", "keep state in RocksDB here (resumes from its checkpoint); in memory when unset");
  flags.Add("print", "none|bucket|day", "which window closes to print: every bucket's, or midnight UTC's", "day");
  flags.Add("series", "all|groups", "print every (group, corridor) or only group totals", "all");
  flags.Add("commit-every", "N", "records between state commits (with --state-dir)", "10000");
  flags.Add("max-records", "N", "stop after N records (0: all); with --state-dir, a later replay resumes there", "0");
  flags.Add("totals-csv", "FILE", "also write the final totals as CSV");
  flags.Add("alerts-json", "FILE", "also write every alert record as a line of JSON (as `tail --json` prints them)");
  flags.Add("report", "FILE",
            "also write an HTML page (inline SVG, no scripts) charting per group and corridor the volume-drop "
            "detector's rolling volume, baseline, normal band and CUSUM at each judged close, with every alert "
            "record marked");
  flags.Add("truth", "FILE", "with --report: shade these ground-truth windows (the CSV of `gen --scenario NAME --truth`)");
  flags.Add("config", "FILE",
            "take windows, validation, detection and catalog from a `shortfall run` config (Kafka keys are ignored)");
  flags.AddRepeated("set", "KEY=VALUE", "override one config key, e.g. --set detection.volume_drop.cusum_threshold=4");
  flags.Add("bucket", "DURATION", "tumbling bucket width (window.bucket)", "1h");
  flags.Add("windows", "LIST", "rolling windows, comma-separated multiples of the bucket (window.rolling)", "24h,7d");
  flags.Add("allowed-lateness", "DURATION", "how late an event may be and still count (window.allowed_lateness)",
            "6h");
  AddCatalogFlag(&flags);
  flags.AddBool("help", "show this help");
  if (Status s = flags.Parse(args); !s.ok() || flags.GetBool("help")) {
    if (!s.ok()) err_ << "shortfall replay: " << s.message() << "\n\n";
    (s.ok() ? out_ : err_) << "usage: shortfall replay --input FILE [flags]\n\n" << flags.Usage();
    return s.ok() ? kExitOk : kExitUsage;
  }
  const auto usage_error = [&](const Status& s) {
    err_ << "shortfall replay: " << s.message() << "\n";
    return kExitUsage;
  };
  if (!flags.Has("input")) return usage_error(InvalidArgumentError("--input FILE is required"));
  ReplayOptions options;
  options.input = flags.Get("input");
  options.state_dir = flags.Get("state-dir");
  options.totals_csv = flags.Get("totals-csv");
  options.alerts_json = flags.Get("alerts-json");
  options.report_html = flags.Get("report");
  options.truth_csv = flags.Get("truth");
  if (flags.Has("report") && options.report_html.empty()) return usage_error(InvalidArgumentError("--report: empty path"));
  if (flags.Has("truth") && !flags.Has("report")) return usage_error(InvalidArgumentError("--truth needs --report FILE"));
  Result<EventFileFormat> format = ParseEventFileFormat(flags.Get("format"));
  if (!format.ok()) return usage_error(format.status().WithContext("--format"));
  options.format = *format;
  Result<PrintEvery> print = ParsePrintEvery(flags.Get("print"));
  if (!print.ok()) return usage_error(print.status());
  options.print_every = *print;
  const std::string series = flags.Get("series");
  if (series != "all" && series != "groups") {
    return usage_error(InvalidArgumentError("--series: '" + series + "' (want all or groups)"));
  }
  options.print_corridors = series == "all";
  Result<uint64_t> commit_every = flags.GetUint("commit-every");
  if (!commit_every.ok()) return usage_error(commit_every.status());
  if (*commit_every == 0) return usage_error(InvalidArgumentError("--commit-every: must be > 0"));
  options.commit_every = *commit_every;
  Result<uint64_t> max_records = flags.GetUint("max-records");
  if (!max_records.ok()) return usage_error(max_records.status());
  options.max_records = *max_records;
  // The pipeline part of a run config: the same settings as `shortfall run`.
  RunConfig config;
  if (flags.Has("config")) {
    Result<RunConfig> loaded = LoadRunConfig(flags.Get("config"));
    if (!loaded.ok()) return usage_error(loaded.status());
    config = std::move(loaded).value();
  }
  for (const std::string& assignment : flags.GetAll("set")) {
    if (Status s = ApplyOverride(assignment, &config); !s.ok()) return usage_error(s.WithContext("--set"));
  }
  options.pipeline = config.pipeline;
  operators::WindowOptions& window = options.pipeline.window;
  if (flags.Has("bucket")) {
    Result<DurationMs> bucket = ParseDuration(flags.Get("bucket"));
    if (!bucket.ok()) return usage_error(bucket.status().WithContext("--bucket"));
    window.bucket = *bucket;
  }
  if (flags.Has("allowed-lateness")) {
    Result<DurationMs> lateness = ParseDuration(flags.Get("allowed-lateness"));
    if (!lateness.ok()) return usage_error(lateness.status().WithContext("--allowed-lateness"));
    window.allowed_lateness = *lateness;
  }
  if (flags.Has("windows")) {
    window.rolling.clear();
    const std::string windows_text = flags.Get("windows");
    std::string_view list = windows_text;
    while (!list.empty()) {
      const size_t comma = list.find(',');
      Result<DurationMs> w = ParseDuration(list.substr(0, comma));
      if (!w.ok()) return usage_error(w.status().WithContext("--windows"));
      window.rolling.push_back(*w);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  if (Status s = window.Validate(); !s.ok()) {
    return usage_error(s.WithContext("--bucket, --windows or --allowed-lateness"));
  }
  const std::string catalog_path = flags.Has("catalog") ? flags.Get("catalog") : config.catalog_path;
  Result<operators::Catalog> catalog =
      catalog_path.empty() ? operators::Catalog::Default() : operators::Catalog::LoadFile(catalog_path);
  if (!catalog.ok()) return usage_error(catalog.status());
  if (Status s = options.pipeline.normalizer.Validate(); !s.ok()) {
    return usage_error(InvalidArgumentError("validation." + s.message()));
  }
  if (Status s = options.pipeline.detection.Validate(window, operators::CountedGroupNames(*catalog)); !s.ok()) {
    return usage_error(InvalidArgumentError("detection." + s.message()));
  }
  if (Status s = RunReplay(options, *catalog, out_); !s.ok()) {
    out_.flush();
    err_ << "shortfall replay: " << s.ToString() << "\n";
    // A state directory or output path that does not fit the flags is a
    // configuration error; anything else failed at run time.
    const bool usage = s.code() == StatusCode::kFailedPrecondition || s.code() == StatusCode::kInvalidArgument;
    return usage ? kExitUsage : kExitFailure;
  }
  return kExitOk;
}


int Application::Broker(const std::vector<std::string>& args) {
  FlagParser flags;
  flags.Add("partitions", "N", "partitions of each topic", "8");
  flags.Add("bootstrap-file", "FILE",
            "also write the bootstrap address to FILE (replaced atomically; removed on exit)");
  flags.AddBool("help", "show this help");
  if (Status s = flags.Parse(args); !s.ok() || flags.GetBool("help")) {
    if (!s.ok()) err_ << "shortfall broker: " << s.message() << "\n\n";
    (s.ok() ? out_ : err_)
        << "usage: shortfall broker [flags]\n\n"
           "Runs an embedded Kafka broker (librdkafka's mock cluster) on 127.0.0.1 with the\n"
           "topics shipments.events.v1, customs.events.v1, shortfall.alerts.v1 and\n"
           "shortfall.dlq.v1, prints its bootstrap address as the first line of stdout and\n"
           "serves until SIGINT or SIGTERM. For development and demos only: it keeps about\n"
           "5 MiB per partition in memory, has no real transactions (read_committed\n"
           "consumers see aborted records) and cannot create topics through the admin API.\n\n"
        << flags.Usage();
    return s.ok() ? kExitOk : kExitUsage;
  }
  const auto usage_error = [&](const Status& s) {
    err_ << "shortfall broker: " << s.message() << "\n";
    return kExitUsage;
  };
  Result<int64_t> partitions = flags.GetInt("partitions");
  if (!partitions.ok()) return usage_error(partitions.status());
  if (*partitions < 1 || *partitions > 10000) {
    return usage_error(InvalidArgumentError("--partitions: want 1 to 10000"));
  }
  const std::string bootstrap_file = flags.Get("bootstrap-file");
  if (flags.Has("bootstrap-file") && bootstrap_file.empty()) {
    return usage_error(InvalidArgumentError("--bootstrap-file: empty path"));
  }

  // Stop signals are taken with sigwait(): blocked here before the broker
  // starts its threads (they inherit the mask), so SIGINT/SIGTERM stay
  // pending until this thread asks for them instead of killing the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  struct MaskRestorer {
    const sigset_t* mask;
    ~MaskRestorer() { pthread_sigmask(SIG_SETMASK, mask, nullptr); }
  } restore_mask{&old_mask};

  Result<std::unique_ptr<EmbeddedBroker>> broker =
      EmbeddedBroker::Start(static_cast<int32_t>(*partitions), DefaultTopics());
  if (!broker.ok()) {
    err_ << "shortfall broker: " << broker.status().message() << "\n";
    return kExitFailure;
  }
  const std::string bootstrap = (*broker)->bootstrap();
  out_ << bootstrap << "\n";
  out_.flush();
  if (!bootstrap_file.empty()) {
    // Written whole, then renamed into place: a script polling for the file
    // never reads half an address.
    const std::string tmp = bootstrap_file + ".tmp." + std::to_string(::getpid());
    std::ofstream file(tmp, std::ios::trunc);
    file << bootstrap << "\n";
    file.close();
    if (!file || std::rename(tmp.c_str(), bootstrap_file.c_str()) != 0) {
      std::remove(tmp.c_str());
      err_ << "shortfall broker: cannot write --bootstrap-file '" << bootstrap_file << "'\n";
      return kExitFailure;
    }
  }
  err_ << "shortfall broker: serving on " << bootstrap << " with topics";
  for (const std::string& topic : DefaultTopics()) err_ << " " << topic;
  err_ << " (" << *partitions << " partitions each); stop with Ctrl-C or SIGTERM\n";
  err_.flush();

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  broker->reset();
  // The address is dead now; a stale file would send clients nowhere.
  if (!bootstrap_file.empty()) std::remove(bootstrap_file.c_str());
  err_ << "shortfall broker: stopped on " << (signal_number == SIGINT ? "SIGINT" : "SIGTERM") << "\n";
  return kExitOk;
}

namespace {

// Decodes one record of the alert topic: protobuf, or protobuf's JSON
// mapping when its content-type header says so. An empty value, or one
// without an alert_id (protobuf parses many a stray byte string), is not an
// alert.
Status DecodeAlert(const KafkaMessage& message, v1::ShortageAlert* alert) {
  const char* data = message.value().data();
  const size_t size = message.value().size();
  if (size == 0) return InvalidArgumentError("empty value");
  const bool json = message.header(kContentTypeHeader).starts_with(kJsonContentType);
  if (json) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    const auto status = google::protobuf::util::JsonStringToMessage(std::string(data, size), alert, options);
    if (!status.ok()) return InvalidArgumentError("not a ShortageAlert in JSON: " + status.ToString());
  } else if (size > static_cast<size_t>(std::numeric_limits<int>::max()) ||
             !alert->ParseFromArray(data, static_cast<int>(size))) {
    return InvalidArgumentError("not a ShortageAlert (protobuf does not parse)");
  }
  if (alert->alert_id().empty()) return InvalidArgumentError("not a ShortageAlert (no alert_id)");
  return OkStatus();
}

}  // namespace

int Application::Tail(const std::vector<std::string>& args) {
  FlagParser flags;
  flags.Add("brokers", "LIST", "Kafka bootstrap servers, host:port[,host:port]");
  flags.Add("topic", "NAME", "alert topic", "shortfall.alerts.v1");
  flags.AddBool("from-beginning", "start at the oldest alert kept (default: only new ones)");
  flags.AddBool("json", "one JSON object per line (protobuf's JSON mapping) instead of readable lines");
  flags.Add("max", "N", "exit after N alerts (0: no limit)", "0");
  flags.Add("timeout", "DURATION",
            "exit after DURATION (e.g. 30s); with --max, fewer than N alerts by then exits 1");
  flags.AddBool("help", "show this help");
  if (Status s = flags.Parse(args); !s.ok() || flags.GetBool("help")) {
    if (!s.ok()) err_ << "shortfall tail: " << s.message() << "\n\n";
    (s.ok() ? out_ : err_)
        << "usage: shortfall tail --brokers LIST [flags]\n\n"
           "Prints ShortageAlert records as they arrive, one per line. Reads every partition\n"
           "of the topic without joining a consumer group (nothing is committed) and only\n"
           "committed transactions (isolation.level=read_committed). Records that are not\n"
           "alerts are skipped with a warning on stderr.\n\n"
        << flags.Usage();
    return s.ok() ? kExitOk : kExitUsage;
  }
  const auto usage_error = [&](const Status& s) {
    err_ << "shortfall tail: " << s.message() << "\n";
    return kExitUsage;
  };
  const auto failure = [&](const Status& s) {
    out_.flush();
    err_ << "shortfall tail: " << s.message() << "\n";
    return kExitFailure;
  };
  if (flags.Get("brokers").empty()) return usage_error(InvalidArgumentError("--brokers LIST is required"));
  const std::string topic = flags.Get("topic");
  if (topic.empty()) return usage_error(InvalidArgumentError("--topic: empty name"));
  Result<uint64_t> max = flags.GetUint("max");
  if (!max.ok()) return usage_error(max.status());
  std::optional<std::chrono::steady_clock::time_point> deadline;
  DurationMs timeout = 0;
  if (flags.Has("timeout")) {
    Result<DurationMs> t = ParseDuration(flags.Get("timeout"));
    if (!t.ok()) return usage_error(t.status().WithContext("--timeout"));
    timeout = *t;
    deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout);
  }
  const bool json = flags.GetBool("json");

  Result<std::unique_ptr<KafkaConsumer>> consumer = KafkaConsumer::Create(
      {{"bootstrap.servers", flags.Get("brokers")}, {"isolation.level", "read_committed"}},
      /*group_id=*/"");
  if (!consumer.ok()) return usage_error(consumer.status().WithContext("--brokers"));
  const DurationMs metadata_timeout =
      deadline ? std::clamp<DurationMs>(timeout, 1, 10 * kMsPerSecond) : 10 * kMsPerSecond;
  Result<int32_t> partitions = (*consumer)->PartitionCount(topic, metadata_timeout);
  if (!partitions.ok()) return failure(partitions.status());
  std::vector<TopicPartitionOffset> assignment;
  for (int32_t p = 0; p < *partitions; ++p) {
    assignment.push_back({topic, p, flags.GetBool("from-beginning") ? kOffsetBeginning : kOffsetEnd});
  }
  if (Status s = (*consumer)->Assign(assignment); !s.ok()) return failure(s);

  constexpr uint64_t kMaxSkipWarnings = 10;
  uint64_t shown = 0;
  uint64_t skipped = 0;
  const auto report_skipped = [&] {
    if (skipped > kMaxSkipWarnings) {
      err_ << "shortfall tail: skipped " << skipped << " records that are not alerts\n";
    }
  };
  std::vector<KafkaMessage> batch;
  v1::ShortageAlert alert;
  for (;;) {
    DurationMs wait = 500;
    if (deadline) {
      wait = std::min<DurationMs>(wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                                            *deadline - std::chrono::steady_clock::now())
                                            .count());
      if (wait <= 0) break;
    }
    batch.clear();
    Result<size_t> n = (*consumer)->ConsumeBatch(500, wait, &batch);
    if (!n.ok()) return failure(n.status());
    for (const KafkaMessage& message : batch) {
      alert.Clear();
      if (Status s = DecodeAlert(message, &alert); !s.ok()) {
        // A wrong --topic would flood the terminal: the first few are shown,
        // the rest counted.
        if (++skipped <= kMaxSkipWarnings) {
          err_ << "shortfall tail: warning: skipped " << message.topic() << "["
               << message.partition() << "]@" << message.offset() << " (" << message.value().size()
               << " bytes): " << s.message() << "\n";
          if (skipped == kMaxSkipWarnings) {
            err_ << "shortfall tail: warning: further records that are not alerts are skipped silently\n";
          }
        }
        continue;
      }
      if (json) {
        Result<std::string> line = FormatAlertJson(alert);
        if (!line.ok()) return failure(line.status());
        out_ << *line << "\n";
      } else {
        out_ << FormatAlertLine(alert) << "\n";
      }
      if (++shown == *max) {
        out_.flush();
        report_skipped();
        return kExitOk;
      }
    }
    out_.flush();
  }
  out_.flush();
  report_skipped();
  if (*max > 0) {
    err_ << "shortfall tail: timed out after " << FormatDuration(timeout) << " with " << shown
         << " of " << *max << " alerts\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace shortfall::pipeline
