#include "pipeline/replay.h"

#include <cerrno>
#include <cstring>
#include <cinttypes>
#include <cstdio>
#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <unordered_map>
#include <memory>

#include "operators/in_memory_state_store.h"
#include "pipeline/alert_format.h"
#include "pipeline/report_html.h"
#include "pipeline/totals_csv.h"
#include "pipeline/rocksdb_state_store.h"

namespace shortfall::pipeline {
namespace {

using operators::EventSource;
using operators::Invalid;
using operators::InvalidReason;
using operators::VolumeDelta;
using operators::VolumePipeline;
using operators::WindowReport;

constexpr std::string_view kCheckpointPrefix = "record=";

std::string Kg(const VolumeDelta& v) { return FormatFixed(v.gross_weight, operators::kWeightScale); }
std::string Usd(const VolumeDelta& v) { return FormatFixed(v.declared_value, operators::kValueScale); }

// "shipments=41 lines=58 gross_kg=1234.500 value_usd=23456.7800 pcs=1200.000 filed=40 hold=2"
std::string DescribeVolume(const VolumeDelta& v) {
  std::string s = "shipments=" + std::to_string(v.shipments) + " lines=" + std::to_string(v.goods_lines) +
                  " gross_kg=" + Kg(v) + " value_usd=" + Usd(v);
  for (size_t u = 0; u < operators::kUnitCount; ++u) {
    if (v.quantity[u] != 0) {
      s += " " + std::string(operators::UnitName(static_cast<operators::Unit>(u))) + "=" +
           FormatFixed(v.quantity[u], operators::kQuantityScale);
    }
  }
  for (size_t c = 1; c < operators::kCustomsStatusCount; ++c) {
    if (v.customs[c] != 0) {
      s += " " + std::string(operators::CustomsStatusName(c)) + "=" + std::to_string(v.customs[c]);
    }
  }
  return s;
}

class Reporter {
 public:
  Reporter(const ReplayOptions& options, const VolumePipeline& pipeline, std::ostream& out)
      : options_(options), pipeline_(pipeline), out_(out) {}

  // Opens --totals-csv now, so a path that cannot be written stops the
  // replay before it starts rather than after it has run.
  Status Open() {
    if (!options_.totals_csv.empty()) {
      csv_.open(options_.totals_csv, std::ios::trunc);
      if (!csv_) {
        return InvalidArgumentError("--totals-csv: cannot write '" + options_.totals_csv +
                                    "': " + std::strerror(errno));
      }
    }
    if (!options_.alerts_json.empty()) {
      alerts_json_.open(options_.alerts_json, std::ios::trunc);
      if (!alerts_json_) {
        return InvalidArgumentError("--alerts-json: cannot write '" + options_.alerts_json +
                                    "': " + std::strerror(errno));
      }
    }
    return OkStatus();
  }

  Status PrintAlerts(const std::vector<v1::ShortageAlert>& alerts) {
    for (const v1::ShortageAlert& alert : alerts) {
      ++alert_records_;
      out_ << "alert " << FormatAlertLine(alert) << "\n";
      if (alerts_json_.is_open()) {
        SHORTFALL_ASSIGN_OR_RETURN(std::string json, FormatAlertJson(alert));
        alerts_json_ << json << "\n";
      }
    }
    return OkStatus();
  }

  void Print(const std::vector<WindowReport>& reports) {
    if (options_.print_every == PrintEvery::kNone) return;
    for (const WindowReport& r : reports) {
      if (options_.print_every == PrintEvery::kDay && r.bucket_end % kMsPerDay != 0) continue;
      if (!options_.print_corridors && r.series.corridor != operators::kAllCorridors) continue;
      out_ << FormatUtc(r.bucket_end) << "  " << pipeline_.GroupName(r.series.group) << "  "
           << pipeline_.corridors().Code(r.series.corridor);
      const auto& windows = pipeline_.aggregator().options().rolling;
      for (size_t w = 0; w < windows.size(); ++w) {
        out_ << "  [" << FormatDuration(windows[w]) << "] shipments=" << r.rolling[w].shipments
             << " gross_kg=" << Kg(r.rolling[w]) << " value_usd=" << Usd(r.rolling[w]);
      }
      out_ << "\n";
    }
  }

  Status Summary() {
    const operators::PipelineCounters& c = pipeline_.counters();
    const operators::VolumeAggregator& aggregator = pipeline_.aggregator();
    const auto& windows = aggregator.options().rolling;
    out_ << "\n== totals per group and corridor (all time; last windows end "
         << (aggregator.closed_until() == kMinTimestamp ? std::string("nowhere: none closed")
                                                        : FormatUtc(aggregator.closed_until()))
         << ") ==\n";
    if (csv_.is_open()) WriteTotalsCsvHeader(csv_);
    for (const operators::SeriesSummary& summary : aggregator.Summaries()) {
      const VolumeDelta& total = summary.total;
      const std::string group(pipeline_.GroupName(summary.series.group));
      const std::string& corridor = pipeline_.corridors().Code(summary.series.corridor);
      out_ << group << "  " << corridor << "  " << DescribeVolume(total);
      for (size_t w = 0; w < windows.size(); ++w) {
        out_ << "  [last " << FormatDuration(windows[w]) << "] shipments=" << summary.rolling[w].shipments;
      }
      out_ << "\n";
      if (csv_.is_open()) WriteTotalsCsvRow(csv_, group, corridor, total);
    }
    if (csv_.is_open()) {
      csv_.close();
      if (!csv_) return UnavailableError("--totals-csv: write failed for '" + options_.totals_csv + "'");
    }
    if (alerts_json_.is_open()) {
      alerts_json_.close();
      if (!alerts_json_) return UnavailableError("--alerts-json: write failed for '" + options_.alerts_json + "'");
    }
    out_ << "\n== alerts ==\n"
         << "alert records " << alert_records_ << "  open at the end " << pipeline_.detection().lifecycle().open_count()
         << "\n";
    out_ << "\n== records ==\n"
         << "records " << c.records << "  accepted " << c.accepted << "  invalid "
         << c.invalid_total() << "  late " << c.late << "\n"
         << "out_of_order_accepted " << c.out_of_order << "  unclassified_goods_lines "
         << c.unclassified_lines << "\n";
    const operators::DwellJoinCounters& d = pipeline_.dwell_join().counters();
    out_ << "dwell_pairs " << d.joined << "  unpaired_expired " << d.expired << "  waiting "
         << pipeline_.dwell_join().waiting() << "  negative " << d.negative << "  late " << d.late
         << "  out_of_bound " << d.out_of_bound << "  repeated_sides " << d.repeated_sides << "\n";
    if (c.invalid_total() > 0) {
      out_ << "invalid by reason:\n";
      for (size_t i = 0; i < operators::kInvalidReasonCount; ++i) {
        if (c.invalid[i] == 0) continue;
        out_ << "  " << operators::InvalidReasonName(static_cast<InvalidReason>(i)) << " "
             << c.invalid[i] << "\n";
      }
    }
    return OkStatus();
  }

 private:
  const ReplayOptions& options_;
  const VolumePipeline& pipeline_;
  std::ostream& out_;
  std::ofstream csv_;
  std::ofstream alerts_json_;
  uint64_t alert_records_ = 0;
};

// Collects what --report draws: per series, each judged close with the
// volume-drop detector's reading of it, and every alert record. Created only
// when a report is asked for.
class ReportCollector {
 public:
  ReportCollector(const ReplayOptions& options, const VolumePipeline& pipeline)
      : options_(options), pipeline_(pipeline) {
    const operators::VolumeDropOptions& drop = options.pipeline.detection.volume_drop;
    window_index_ = options.pipeline.window.RollingIndex(drop.window);
    page_.input = options.input;
    page_.truth_file = options.truth_csv;
    page_.bucket = options.pipeline.window.bucket;
    page_.window = drop.window;
    page_.recover_z = drop.recover_z;
    page_.relative_floor = drop.relative_floor;
    page_.min_expected_shipments = drop.min_expected_shipments;
  }

  // Reads the truth and opens the report now, so a bad truth file or a path
  // that cannot be written stops the replay before it starts.
  Status Open() {
    if (!options_.truth_csv.empty()) {
      std::ifstream in(options_.truth_csv, std::ios::binary);
      if (!in) {
        return InvalidArgumentError("--truth: cannot read '" + options_.truth_csv + "': " + std::strerror(errno));
      }
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      SHORTFALL_ASSIGN_OR_RETURN(page_.truth, ParseTruthCsv(text, options_.truth_csv));
    }
    file_.open(options_.report_html, std::ios::trunc | std::ios::binary);
    if (!file_) {
      return InvalidArgumentError("--report: cannot write '" + options_.report_html + "': " + std::strerror(errno));
    }
    return OkStatus();
  }

  // reports[i] was judged; readings[i] is the detector's reading right after it.
  void Add(const std::vector<WindowReport>& reports,
           const std::vector<std::optional<operators::VolumeDropReading>>& readings) {
    for (size_t i = 0; i < reports.size(); ++i) {
      const WindowReport& r = reports[i];
      ReportSeries& s = SeriesFor(r.series);
      ReportPoint& p = s.points.emplace_back();
      p.end = r.bucket_end;
      p.observed = static_cast<double>(r.rolling[window_index_].shipments);
      const std::optional<operators::VolumeDropReading>& reading = i < readings.size() ? readings[i] : std::nullopt;
      // A report the detector skipped (not newer than its last) has no reading of its own.
      if (!reading || reading->bucket_end != r.bucket_end) continue;
      s.watched = true;
      s.cusum_threshold = reading->threshold;
      p.expected = reading->expected;
      if (reading->evaluated) {
        p.normal_low = *reading->expected + page_.recover_z * reading->scale;
        p.cusum = reading->cusum;
      }
    }
  }

  void Add(const std::vector<v1::ShortageAlert>& alerts) {
    for (const v1::ShortageAlert& a : alerts) {
      ReportAlert& r = page_.alerts.emplace_back();
      r.group = a.commodity_group();
      const v1::Corridor& c = a.corridor();
      r.corridor = c.origin_country().empty() && c.destination_country().empty() && c.port_of_entry().empty()
                       ? std::string(operators::kAllCorridorsCode)
                       : FormatCorridor(c);
      r.at = operators::TimestampToMs(a.window_end()).value_or(0);
      r.id = a.alert_id();
      r.kind = AlertKindLabel(a.kind());
      r.severity = SeverityLabel(a.severity());
      r.state = AlertStateLabel(a.state());
      r.line = FormatAlertLine(a);
    }
  }

  Status Write() {
    file_ << RenderReportHtml(page_);
    file_.close();
    if (!file_) return UnavailableError("--report: write failed for '" + options_.report_html + "'");
    return OkStatus();
  }

 private:
  ReportSeries& SeriesFor(operators::SeriesKey key) {
    const uint64_t packed = (uint64_t{key.group} << 32) | key.corridor;
    const auto [it, added] = index_.try_emplace(packed, page_.series.size());
    if (added) {
      ReportSeries& s = page_.series.emplace_back();
      s.group = std::string(pipeline_.GroupName(key.group));
      s.corridor = pipeline_.corridors().Code(key.corridor);
    }
    return page_.series[it->second];
  }

  const ReplayOptions& options_;
  const VolumePipeline& pipeline_;
  size_t window_index_ = 0;
  ReportPage page_;
  std::unordered_map<uint64_t, size_t> index_;  // (group << 32 | corridor) -> page_.series
  std::ofstream file_;
};

// Where a replay stands in its input: records consumed and the byte offset
// after them, so a resume over a different file is caught, not silently
// skipped into. Kept as the state store's checkpoint: "record=N offset=B".
struct Position {
  uint64_t record = 0;
  uint64_t offset = 0;
  std::string Encode() const {
    return std::string(kCheckpointPrefix) + std::to_string(record) + " offset=" + std::to_string(offset);
  }
};

Result<Position> ParseCheckpoint(const std::string& blob) {
  Position p;
  if (blob.empty()) return p;
  char tail = 0;
  unsigned long long record = 0, offset = 0;
  if (std::sscanf(blob.c_str(), "record=%llu offset=%llu%c", &record, &offset, &tail) != 2) {
    return FailedPreconditionError("the state's checkpoint '" + blob +
                                   "' is not a replay position; was the directory made by "
                                   "something other than replay?");
  }
  p.record = record;
  p.offset = offset;
  return p;
}

}  // namespace

Result<PrintEvery> ParsePrintEvery(std::string_view text) {
  if (text == "none") return PrintEvery::kNone;
  if (text == "bucket") return PrintEvery::kBucket;
  if (text == "day") return PrintEvery::kDay;
  return InvalidArgumentError("--print: '" + std::string(text) + "' (want none, bucket or day)");
}

Status RunReplay(const ReplayOptions& options, const operators::Catalog& catalog,
                 std::ostream& out) {
  SHORTFALL_RETURN_IF_ERROR(options.pipeline.Validate());
  if (options.commit_every == 0) return InvalidArgumentError("--commit-every: must be > 0");
  if (!options.truth_csv.empty() && options.report_html.empty()) {
    return InvalidArgumentError("--truth: only the report uses it; give --report FILE too");
  }
  std::unique_ptr<operators::StateStore> store;
  if (options.state_dir.empty()) {
    store = std::make_unique<operators::InMemoryStateStore>();
  } else {
    SHORTFALL_ASSIGN_OR_RETURN(store, RocksDbStateStore::Open(options.state_dir));
  }
  VolumePipeline pipeline(catalog, options.pipeline);
  SHORTFALL_ASSIGN_OR_RETURN(std::string checkpoint, pipeline.Restore(*store));
  SHORTFALL_ASSIGN_OR_RETURN(const Position resume, ParseCheckpoint(checkpoint));
  SHORTFALL_ASSIGN_OR_RETURN(std::unique_ptr<EventFileReader> reader,
                             EventFileReader::Open(options.input, options.format));
  Reporter reporter(options, pipeline, out);
  SHORTFALL_RETURN_IF_ERROR(reporter.Open());
  std::unique_ptr<ReportCollector> report;
  if (!options.report_html.empty()) {
    report = std::make_unique<ReportCollector>(options, pipeline);
    SHORTFALL_RETURN_IF_ERROR(report->Open());
    pipeline.KeepDetectorReadings(true);
  }
  if (resume.record > 0) {
    out << "resuming after record " << resume.record << " from " << options.state_dir << "\n";
  }

  std::vector<WindowReport> reports;
  std::vector<v1::ShortageAlert> alerts;
  const auto close_windows = [&](bool all) -> Status {
    reports.clear();
    if (all) {
      pipeline.CloseAll(&reports);
    } else {
      pipeline.DrainClosedWindows(&reports);
    }
    reporter.Print(reports);
    // Windows closed by the end of the file are printed, not judged: its
    // last hours are cut short mid-stream, which reads as a drop.
    if (all) return OkStatus();
    alerts.clear();
    pipeline.Detect(reports, &alerts);
    if (report != nullptr) {
      report->Add(reports, pipeline.detection().readings());
      report->Add(alerts);
    }
    return reporter.PrintAlerts(alerts);
  };
  operators::StateWriteBatch batch;
  const auto commit = [&](const Position& position) -> Status {
    if (options.state_dir.empty()) return OkStatus();
    batch.Clear();
    pipeline.Flush(&batch);
    return store->Commit(batch, position.Encode());
  };
  const auto input_differs = [&](uint64_t offset) {
    return FailedPreconditionError(
        "--input differs from the file the state in " + options.state_dir + " was built from: "
        "record " + std::to_string(resume.record) + " should start at byte " +
        std::to_string(resume.offset) + ", it starts at " + std::to_string(offset));
  };

  EventFileEntry entry;
  uint64_t processed = 0;
  uint64_t offset = 0;  // where the entry being read starts
  bool stopped_early = false;
  while (true) {
    offset = reader->bytes_read();
    SHORTFALL_ASSIGN_OR_RETURN(const bool more, reader->Next(&entry));
    if (!more) {
      if (resume.record > 0 && processed == 0 && offset != resume.offset) return input_differs(offset);
      break;
    }
    if (entry.index < resume.record) continue;
    if (entry.index == resume.record && resume.record > 0 && offset != resume.offset) {
      return input_differs(offset);
    }
    if (options.max_records > 0 && processed == options.max_records) {
      stopped_early = true;
      break;
    }
    ++processed;
    if (!entry.parsed) {
      pipeline.Reject(Invalid{InvalidReason::kUnparseable, entry.error});
    } else {
      const v1::EventRecord& r = entry.record();
      const TimestampMs record_time =
          r.has_record_time() ? operators::TimestampToMs(r.record_time()).value_or(0) : 0;
      switch (r.payload_case()) {
        case v1::EventRecord::kShipment:
          pipeline.Process(r.shipment(), r.partition(), record_time);
          break;
        case v1::EventRecord::kCustoms:
          pipeline.Process(r.customs(), r.partition(), record_time);
          break;
        case v1::EventRecord::kRawValue:
          if (r.topic() == options.shipments_topic || r.topic() == options.customs_topic) {
            pipeline.ProcessValue(r.topic() == options.shipments_topic ? EventSource::kShipments
                                                                       : EventSource::kCustoms,
                                  r.partition(), r.raw_value(), operators::PayloadFormat::kAuto,
                                  record_time);
          } else {
            pipeline.Reject(Invalid{InvalidReason::kUnknownTopic, "topic '" + r.topic() + "'"});
          }
          break;
        default:
          pipeline.Reject(Invalid{InvalidReason::kUnparseable, "record without payload"});
          break;
      }
    }
    SHORTFALL_RETURN_IF_ERROR(close_windows(/*all=*/false));
    if (processed % options.commit_every == 0) {
      SHORTFALL_RETURN_IF_ERROR(commit(Position{entry.index + 1, reader->bytes_read()}));
    }
  }
  // Stopped early, the entry at `offset` was read but not processed.
  const Position end{resume.record + processed, stopped_early ? offset : reader->bytes_read()};
  if (!stopped_early) SHORTFALL_RETURN_IF_ERROR(close_windows(/*all=*/true));
  if (stopped_early) {
    out << "stopped after " << processed << " records (--max-records)";
    if (!options.state_dir.empty()) out << "; state committed at record " << end.record;
    out << "\n";
  }
  SHORTFALL_RETURN_IF_ERROR(commit(end));
  if (report != nullptr) SHORTFALL_RETURN_IF_ERROR(report->Write());
  return reporter.Summary();
}

}  // namespace shortfall::pipeline
