#include "operators/volume_pipeline.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr std::string_view kCountersNs = "pipeline_counters";
constexpr std::string_view kCountersKey = "counters";


}  // namespace

Status PipelineOptions::Validate() const {
  SHORTFALL_RETURN_IF_ERROR(normalizer.Validate());
  SHORTFALL_RETURN_IF_ERROR(window.Validate());
  return detection.Validate(window);
}

Status PipelineOptions::ValidateFor(const Catalog& catalog) const {
  SHORTFALL_RETURN_IF_ERROR(Validate());
  return detection.Validate(window, CountedGroupNames(catalog));
}

uint64_t PipelineCounters::invalid_total() const {
  uint64_t total = 0;
  for (uint64_t n : invalid) total += n;
  return total;
}

VolumePipeline::VolumePipeline(const Catalog& catalog, const PipelineOptions& options)
    : options_(options),
      normalizer_(catalog, options.normalizer, &corridors_),
      // Idle after the allowed lateness of stream time (see the header).
      watermarks_(options.window.allowed_lateness, options.window.allowed_lateness),
      aggregator_(options.window, CountedGroupNames(catalog), &corridors_),
      dwell_join_(options.detection.dwell_join, CountedGroupNames(catalog), &corridors_),
      detection_(options.detection, options.window, CountedGroupNames(catalog), &corridors_) {}

Result<std::string> VolumePipeline::Restore(const StateStore& store) {
  SHORTFALL_ASSIGN_OR_RETURN(std::unique_ptr<StateView> snapshot, store.Snapshot());
  SHORTFALL_ASSIGN_OR_RETURN(std::string checkpoint, store.LastCheckpoint());
  SHORTFALL_RETURN_IF_ERROR(watermarks_.Restore(*snapshot));
  SHORTFALL_RETURN_IF_ERROR(aggregator_.Restore(*snapshot));
  SHORTFALL_RETURN_IF_ERROR(dwell_join_.Restore(*snapshot));
  SHORTFALL_RETURN_IF_ERROR(detection_.Restore(*snapshot));
  counters_ = PipelineCounters{};
  SHORTFALL_ASSIGN_OR_RETURN(std::optional<std::string> blob, snapshot->Get(kCountersNs, kCountersKey));
  if (blob) {
    internal::CountersState s;
    if (!s.ParseFromString(*blob)) return DataLossError("pipeline counters: malformed");
    const auto get = [&](const std::string& name) {
      auto it = s.counts().find(name);
      return it == s.counts().end() ? uint64_t{0} : it->second;
    };
    counters_.records = get("records");
    counters_.accepted = get("accepted");
    counters_.late = get("late");
    counters_.out_of_order = get("out_of_order");
    counters_.unclassified_lines = get("unclassified_lines");
    for (size_t i = 0; i < kInvalidReasonCount; ++i) {
      counters_.invalid[i] =
          get("invalid." + std::string(InvalidReasonName(static_cast<InvalidReason>(i))));
    }
  }
  return checkpoint;
}

void VolumePipeline::Count(const RecordResult& result) {
  ++counters_.records;
  counters_dirty_ = true;
  switch (result.outcome) {
    case Outcome::kAccepted: ++counters_.accepted; break;
    case Outcome::kLate: ++counters_.late; break;
    case Outcome::kInvalid: ++counters_.invalid[static_cast<size_t>(result.invalid.reason)]; break;
  }
}

RecordResult VolumePipeline::Reject(Invalid invalid) {
  RecordResult r;
  r.outcome = Outcome::kInvalid;
  r.invalid = std::move(invalid);
  Count(r);
  return r;
}

RecordResult VolumePipeline::ProcessValue(EventSource source, int32_t partition,
                                          std::string_view value, PayloadFormat format,
                                          TimestampMs record_time) {
  if (source == EventSource::kShipments) {
    if (auto bad = DecodeShipmentEvent(value, format, &shipment_)) return Reject(std::move(*bad));
    return Process(shipment_, partition, record_time);
  }
  if (auto bad = DecodeCustomsEvent(value, format, &customs_)) return Reject(std::move(*bad));
  return Process(customs_, partition, record_time);
}

RecordResult VolumePipeline::Process(const v1::ShipmentEvent& event, int32_t partition,
                                     TimestampMs record_time) {
  watermarks_.Touch(PartitionKey{EventSource::kShipments, partition}, record_time);
  if (auto bad = normalizer_.Normalize(event, record_time, &normalized_)) return Reject(std::move(*bad));
  return Accept(PartitionKey{EventSource::kShipments, partition});
}

RecordResult VolumePipeline::Process(const v1::CustomsEvent& event, int32_t partition,
                                     TimestampMs record_time) {
  watermarks_.Touch(PartitionKey{EventSource::kCustoms, partition}, record_time);
  if (auto bad = normalizer_.Normalize(event, record_time, &normalized_)) return Reject(std::move(*bad));
  return Accept(PartitionKey{EventSource::kCustoms, partition});
}

RecordResult VolumePipeline::Accept(PartitionKey partition) {
  RecordResult r;
  r.event_time = normalized_.event_time;
  if (normalized_.actual) {
    const TimestampMs t = normalized_.event_time;
    // A window closed under another partition's watermark counts too: its
    // report is out and cannot change. Windows the combined watermark has
    // passed count as closed even before DrainClosedWindows closes them, so
    // the outcome does not depend on how often the caller drains.
    const TimestampMs combined = watermarks_.Watermark();
    const bool window_closed =
        aggregator_.IsClosed(t) ||
        (combined != kMinTimestamp && t < AlignDown(combined, options_.window.bucket));
    const Admission admission =
        window_closed ? Admission::kLate : watermarks_.Admit(partition, t);
    if (admission == Admission::kLate) {
      r.outcome = Outcome::kLate;
      const TimestampMs partition_watermark = watermarks_.PartitionWatermark(partition);
      r.late_detail = "event_time " + FormatUtc(t) + " is before " +
                      (t < partition_watermark
                           ? "the partition watermark " + FormatUtc(partition_watermark)
                           : "the end of the last closed window " +
                                 FormatUtc(std::max(aggregator_.closed_until(),
                                                    AlignDown(combined, options_.window.bucket)))) +
                      " (allowed lateness " + FormatDuration(options_.window.allowed_lateness) + ")";
      Count(r);
      return r;
    }
    if (admission == Admission::kOutOfOrder) ++counters_.out_of_order;
  }
  for (const GroupContribution& c : normalized_.groups) {
    // Cannot fail: non-actual events carry no groups, and lateness was checked.
    SHORTFALL_CHECK(aggregator_.Add(c.group, normalized_.corridor, normalized_.event_time, c.delta));
  }
  if (normalized_.dwell != DwellRole::kNone) {
    for (const GroupContribution& c : normalized_.groups) {
      if (c.group == normalizer_.unclassified_group()) continue;
      dwell_join_.Offer(c.group, normalized_.shipment_id, normalized_.dwell, normalized_.event_time,
                        normalized_.corridor, &aggregator_);
    }
  }
  counters_.unclassified_lines += normalized_.unclassified_lines;
  Count(r);
  return r;
}

void VolumePipeline::DrainClosedWindows(std::vector<WindowReport>* out) {
  aggregator_.AdvanceTo(watermarks_.Watermark(), out);
  dwell_join_.Expire(aggregator_.closed_until());
}

void VolumePipeline::CloseAll(std::vector<WindowReport>* out) {
  aggregator_.CloseAll(out);
  dwell_join_.Expire(aggregator_.closed_until());
}

void VolumePipeline::Detect(const std::vector<WindowReport>& reports, std::vector<v1::ShortageAlert>* alerts) {
  detection_.Detect(reports, alerts);
}

void VolumePipeline::Flush(StateWriteBatch* batch) {
  watermarks_.Flush(batch);
  aggregator_.Flush(batch);
  dwell_join_.Flush(batch);
  detection_.Flush(batch);
  if (counters_dirty_) {
    internal::CountersState s;
    auto& m = *s.mutable_counts();
    m["records"] = counters_.records;
    m["accepted"] = counters_.accepted;
    m["late"] = counters_.late;
    m["out_of_order"] = counters_.out_of_order;
    m["unclassified_lines"] = counters_.unclassified_lines;
    for (size_t i = 0; i < kInvalidReasonCount; ++i) {
      m["invalid." + std::string(InvalidReasonName(static_cast<InvalidReason>(i)))] = counters_.invalid[i];
    }
    std::string bytes;
    // Deterministic so equal states write equal bytes.
    {
      google::protobuf::io::StringOutputStream stream(&bytes);
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.SetSerializationDeterministic(true);
      s.SerializeToCodedStream(&coded);
    }
    batch->Put(kCountersNs, kCountersKey, bytes);
    counters_dirty_ = false;
  }
}

}  // namespace shortfall::operators
