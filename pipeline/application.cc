#include "pipeline/application.h"

#include "base/status.h"
#include "operators/catalog.h"
#include "pipeline/event_file.h"
#include "pipeline/flags.h"
#include "pipeline/replay.h"
#include "scenario/generator.h"

namespace shortfall::pipeline {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr std::string_view kVersion = "0.1.0";

constexpr std::string_view kOverview =
    "shortfall — watches cross-border shipment and customs events and tracks the\n"
    "flow of critical goods (semiconductors, PPE, batteries, pharmaceuticals,\n"
    "critical minerals) per corridor, to raise alerts when one starts to run short.\n"
    "\n"
    "usage: shortfall <command> [flags]\n"
    "\n"
    "commands:\n"
    "  gen       write a seeded scenario of shipment and customs events to a file\n"
    "  replay    run the operators over an event file (a backtest, no Kafka) and\n"
    "            print rolling volumes per commodity group and corridor\n"
    "  help      this text; `shortfall <command> --help` for a command's flags\n"
    "  version   print the version\n";

void AddCatalogFlag(FlagParser* flags) {
  flags->Add("catalog", "FILE",
             "commodity catalog CSV (see catalog/README.md); the built-in one when unset");
}

Result<operators::Catalog> LoadCatalog(const FlagParser& flags) {
  if (!flags.Has("catalog")) return operators::Catalog::Default();
  return operators::Catalog::LoadFile(flags.Get("catalog"));
}

}  // namespace

int Application::Run(const std::vector<std::string>& args) {
  if (args.empty()) {
    err_ << kOverview;
    return kExitUsage;
  }
  const std::string& command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "gen") return Gen(rest);
  if (command == "replay") return Replay(rest);
  if (command == "help" || command == "--help" || command == "-h") return Help();
  if (command == "version" || command == "--version") {
    out_ << "shortfall " << kVersion << "\n";
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
  flags.Add("seed", "N", "random seed; the same seed gives the same bytes", "1");
  flags.Add("events", "N", "number of records to write", "100000");
  flags.Add("partitions", "N", "partitions per input topic", "8");
  flags.Add("start", "TIME", "event time of the first shipments (UTC)", "2026-01-05T00:00:00Z");
  flags.Add("malformed-rate", "R", "extra malformed records per record", "0.001");
  flags.Add("late-rate", "R", "records delayed past the allowed lateness", "0.0005");
  flags.AddBool("help", "show this help");
  if (Status s = flags.Parse(args); !s.ok() || flags.GetBool("help")) {
    if (!s.ok()) err_ << "shortfall gen: " << s.message() << "\n\n";
    (s.ok() ? out_ : err_) << "usage: shortfall gen [flags]\n\n" << flags.Usage();
    return s.ok() ? kExitOk : kExitUsage;
  }
  scenario::GeneratorOptions options;
  const auto usage_error = [&](const Status& s) {
    err_ << "shortfall gen: " << s.message() << "\n";
    return kExitUsage;
  };
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
    (std::string_view(rate_flag) == "malformed-rate" ? options.malformed_rate : options.late_rate) = rate;
  }
  options.seed = *seed;
  options.events = *events;
  options.partitions = static_cast<int32_t>(*partitions);
  options.start = *start;
  if (Status s = scenario::ValidateOptions(options); !s.ok()) return usage_error(s);

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
  // What was made on purpose, so a replay's counts can be checked against it.
  const scenario::GeneratorStats& stats = generator.stats();
  uint64_t malformed = 0;
  std::string by_reason;
  for (const auto& [reason, n] : stats.malformed_by_reason) {
    malformed += n;
    if (n > 0) by_reason += " " + reason + "=" + std::to_string(n);
  }
  err_ << "shortfall gen: wrote " << stats.records << " records (" << stats.shipments
       << " shipments, " << stats.shipment_events << " shipment events, " << stats.customs_events
       << " customs events; " << stats.late << " late, " << stats.out_of_order
       << " out of order, " << malformed << " malformed" << (malformed > 0 ? ":" : "") << by_reason
       << ")\n";
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
  flags.Add("bucket", "DURATION", "tumbling bucket width", "1h");
  flags.Add("windows", "LIST", "rolling windows, comma-separated multiples of the bucket", "24h,7d");
  flags.Add("allowed-lateness", "DURATION", "how late an event may be and still count", "6h");
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
  Result<DurationMs> bucket = ParseDuration(flags.Get("bucket"));
  if (!bucket.ok()) return usage_error(bucket.status().WithContext("--bucket"));
  options.pipeline.window.bucket = *bucket;
  Result<DurationMs> lateness = ParseDuration(flags.Get("allowed-lateness"));
  if (!lateness.ok()) return usage_error(lateness.status().WithContext("--allowed-lateness"));
  options.pipeline.window.allowed_lateness = *lateness;
  options.pipeline.window.rolling.clear();
  const std::string windows_text = flags.Get("windows");
  std::string_view list = windows_text;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    Result<DurationMs> w = ParseDuration(list.substr(0, comma));
    if (!w.ok()) return usage_error(w.status().WithContext("--windows"));
    options.pipeline.window.rolling.push_back(*w);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  if (Status s = options.pipeline.Validate(); !s.ok()) {
    return usage_error(s.WithContext("--bucket, --windows or --allowed-lateness"));
  }

  Result<operators::Catalog> catalog = LoadCatalog(flags);
  if (!catalog.ok()) return usage_error(catalog.status());
  if (Status s = RunReplay(options, *catalog, out_); !s.ok()) {
    out_.flush();
    err_ << "shortfall replay: " << s.ToString() << "\n";
    // A state directory or output path that does not fit the flags is a
    // configuration error; anything else failed at run time.
    const bool config = s.code() == StatusCode::kFailedPrecondition ||
                        s.code() == StatusCode::kInvalidArgument;
    return config ? kExitUsage : kExitFailure;
  }
  return kExitOk;
}

}  // namespace shortfall::pipeline
