#include "pipeline/replay.h"

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <map>
#include <unordered_map>
#include <memory>

#include "operators/in_memory_state_store.h"
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

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// "shipments=41 lines=58 gross_kg=1234.5 value_usd=23456.78 pcs=1200 filed=40 held=2"
std::string DescribeVolume(const VolumeDelta& v) {
  std::string s = "shipments=" + std::to_string(v.shipments) +
                  " lines=" + std::to_string(v.goods_lines) +
                  " gross_kg=" + Fmt("%.1f", v.gross_weight_kg()) +
                  " value_usd=" + Fmt("%.2f", v.declared_value_usd());
  for (size_t u = 0; u < operators::kUnitCount; ++u) {
    const auto unit = static_cast<operators::Unit>(u);
    if (v.quantity[u] != 0) {
      s += " " + std::string(operators::UnitName(unit)) + "=" + Fmt("%.3f", v.quantity_in(unit));
    }
  }
  static constexpr std::string_view kCustomsNames[] = {
      "", "filed", "accepted", "held", "hold_released", "exams", "released", "refused"};
  for (size_t c = 1; c < operators::kCustomsStatusCount; ++c) {
    if (v.customs[c] != 0) s += " " + std::string(kCustomsNames[c]) + "=" + std::to_string(v.customs[c]);
  }
  return s;
}

class Reporter {
 public:
  Reporter(const ReplayOptions& options, const VolumePipeline& pipeline, std::ostream& out)
      : options_(options), pipeline_(pipeline), out_(out) {}

  void Print(const std::vector<WindowReport>& reports) {
    for (const WindowReport& r : reports) {
      auto& last = last_shipments_[Pack(r.series)];
      for (size_t w = 0; w < last.size(); ++w) last[w] = r.rolling[w].shipments;
      if (options_.print_every == PrintEvery::kNone) continue;
      if (options_.print_every == PrintEvery::kDay && r.bucket_end % kMsPerDay != 0) continue;
      if (!options_.print_corridors && r.series.corridor != operators::kAllCorridors) continue;
      out_ << FormatUtc(r.bucket_end) << "  " << pipeline_.GroupName(r.series.group) << "  "
           << pipeline_.corridors().Code(r.series.corridor);
      const auto& windows = pipeline_.aggregator().options().rolling;
      for (size_t w = 0; w < windows.size(); ++w) {
        out_ << "  [" << FormatDuration(windows[w]) << "] shipments=" << r.rolling[w].shipments
             << " gross_kg=" << Fmt("%.1f", r.rolling[w].gross_weight_kg())
             << " value_usd=" << Fmt("%.2f", r.rolling[w].declared_value_usd());
      }
      out_ << "\n";
    }
  }

  Status Summary() {
    const operators::PipelineCounters& c = pipeline_.counters();
    const auto& windows = pipeline_.aggregator().options().rolling;
    out_ << "\n== totals per group and corridor (all time; last windows at "
         << FormatUtc(pipeline_.aggregator().closed_until()) << ") ==\n";
    std::ofstream csv;
    if (!options_.totals_csv.empty()) {
      csv.open(options_.totals_csv, std::ios::trunc);
      if (!csv) return UnavailableError("cannot write --totals-csv " + options_.totals_csv);
      csv << "group,corridor,shipments,goods_lines,gross_weight_kg,declared_value_usd";
      for (size_t u = 0; u < operators::kUnitCount; ++u) {
        csv << ",quantity_" << operators::UnitName(static_cast<operators::Unit>(u));
      }
      csv << ",customs_filed,customs_accepted,customs_hold,customs_hold_released,"
             "customs_exam_selected,customs_released,customs_refused\n";
    }
    for (const auto& [key, total] : pipeline_.aggregator().Totals()) {
      const std::string group(pipeline_.GroupName(key.group));
      const std::string& corridor = pipeline_.corridors().Code(key.corridor);
      out_ << group << "  " << corridor << "  " << DescribeVolume(total);
      if (auto it = last_shipments_.find(Pack(key)); it != last_shipments_.end()) {
        for (size_t w = 0; w < windows.size(); ++w) {
          out_ << "  [last " << FormatDuration(windows[w]) << "] shipments=" << it->second[w];
        }
      }
      out_ << "\n";
      if (csv.is_open()) {
        csv << group << "," << corridor << "," << total.shipments << "," << total.goods_lines << ","
            << Fmt("%.3f", total.gross_weight_kg()) << "," << Fmt("%.4f", total.declared_value_usd());
        for (size_t u = 0; u < operators::kUnitCount; ++u) {
          csv << "," << Fmt("%.3f", total.quantity_in(static_cast<operators::Unit>(u)));
        }
        for (size_t s = 1; s < operators::kCustomsStatusCount; ++s) csv << "," << total.customs[s];
        csv << "\n";
      }
    }
    if (csv.is_open()) {
      csv.close();
      if (!csv) return UnavailableError("write failed for --totals-csv " + options_.totals_csv);
    }
    out_ << "\n== records ==\n"
         << "records " << c.records << "  accepted " << c.accepted << "  invalid "
         << c.invalid_total() << "  late " << c.late << "\n"
         << "out_of_order_accepted " << c.out_of_order << "  unclassified_goods_lines "
         << c.unclassified_lines << "\n";
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
  static uint64_t Pack(operators::SeriesKey k) { return (uint64_t{k.group} << 32) | k.corridor; }
  // Rolling shipments of each series at its last report, for the summary.
  std::unordered_map<uint64_t, std::array<uint64_t, operators::kMaxRollingWindows>> last_shipments_;
};

Result<uint64_t> ParseCheckpoint(const std::string& blob) {
  if (blob.empty()) return uint64_t{0};
  if (blob.rfind(kCheckpointPrefix, 0) != 0) {
    return FailedPreconditionError("state checkpoint '" + blob + "' is not a replay position");
  }
  uint64_t v = 0;
  const char* begin = blob.data() + kCheckpointPrefix.size();
  auto [p, ec] = std::from_chars(begin, blob.data() + blob.size(), v);
  if (ec != std::errc() || p != blob.data() + blob.size()) {
    return DataLossError("state checkpoint '" + blob + "' is malformed");
  }
  return v;
}

TimestampMs ToMs(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * kMsPerSecond + ts.nanos() / 1000000;
}

}  // namespace

Result<PrintEvery> ParsePrintEvery(std::string_view text) {
  if (text == "none") return PrintEvery::kNone;
  if (text == "hour") return PrintEvery::kHour;
  if (text == "day") return PrintEvery::kDay;
  return InvalidArgumentError("--print: '" + std::string(text) + "' (want none, hour or day)");
}

Status RunReplay(const ReplayOptions& options, const operators::Catalog& catalog,
                 std::ostream& out) {
  SHORTFALL_RETURN_IF_ERROR(options.pipeline.Validate());
  std::unique_ptr<operators::StateStore> store;
  if (options.state_dir.empty()) {
    store = std::make_unique<operators::InMemoryStateStore>();
  } else {
    SHORTFALL_ASSIGN_OR_RETURN(store, RocksDbStateStore::Open(options.state_dir));
  }
  VolumePipeline pipeline(catalog, options.pipeline);
  SHORTFALL_ASSIGN_OR_RETURN(std::string checkpoint, pipeline.Restore(*store));
  SHORTFALL_ASSIGN_OR_RETURN(const uint64_t resume_from, ParseCheckpoint(checkpoint));
  SHORTFALL_ASSIGN_OR_RETURN(std::unique_ptr<EventFileReader> reader,
                             EventFileReader::Open(options.input, options.format));
  if (resume_from > 0) out << "resuming after record " << resume_from << " from " << options.state_dir << "\n";

  Reporter reporter(options, pipeline, out);
  std::vector<WindowReport> reports;
  operators::StateWriteBatch batch;
  const auto commit = [&](uint64_t position) -> Status {
    if (options.state_dir.empty()) return OkStatus();
    batch.Clear();
    pipeline.Flush(&batch);
    return store->Commit(batch, std::string(kCheckpointPrefix) + std::to_string(position));
  };

  EventFileEntry entry;
  uint64_t processed = 0;
  bool stopped_early = false;
  while (true) {
    SHORTFALL_ASSIGN_OR_RETURN(const bool more, reader->Next(&entry));
    if (!more) break;
    if (entry.index < resume_from) continue;
    if (options.max_records > 0 && processed == options.max_records) {
      stopped_early = true;
      break;
    }
    ++processed;
    if (!entry.parsed) {
      pipeline.Reject(Invalid{InvalidReason::kUnparseable, entry.error});
    } else {
      const v1::EventRecord& r = entry.record();
      const TimestampMs record_time = r.has_record_time() ? ToMs(r.record_time()) : 0;
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
    reports.clear();
    pipeline.DrainClosedWindows(&reports);
    reporter.Print(reports);
    if (processed % options.commit_every == 0) SHORTFALL_RETURN_IF_ERROR(commit(entry.index + 1));
  }
  const uint64_t position = resume_from + processed;
  if (!stopped_early) {
    reports.clear();
    pipeline.CloseAll(&reports);
    reporter.Print(reports);
  }
  SHORTFALL_RETURN_IF_ERROR(commit(position));
  if (stopped_early) {
    out << "stopped after " << processed << " records (--max-records); state committed at record "
        << position << "\n";
  }
  return reporter.Summary();
}

}  // namespace shortfall::pipeline
