// VolumePipeline: the operator core end to end for one task — decode,
// validate and normalise (EventNormalizer), lateness against per-partition
// watermarks (WatermarkTracker), windowed volumes (VolumeAggregator) with
// the border-dwell join feeding them (DwellJoin), and the detectors with their alert lifecycle (ShortageDetection) — with record
// counters and state through a StateStore.
//
// `shortfall replay` runs it over an event file. The Kafka runtime runs the
// same pieces split across the repartition topic: EventNormalizer and the
// lateness check in stage one (where the original record is, for the DLQ),
// VolumeAggregator and DwellJoin in stage two (which must then also treat a contribution
// for a closed bucket as late: VolumeAggregator::Add reports it).
//
//   VolumePipeline pipeline(catalog, options);
//   SHORTFALL_ASSIGN_OR_RETURN(std::string checkpoint, pipeline.Restore(store));
//   RecordResult r = pipeline.ProcessValue(EventSource::kShipments, partition, bytes,
//                                          PayloadFormat::kAuto, record_time);
//   pipeline.DrainClosedWindows(&reports);
//   pipeline.Flush(&batch);  store.Commit(batch, new_checkpoint);
//
// Idle partitions: a partition with no record for the allowed lateness of
// stream (record) time while others go on is idle and holds no window back
// until it sends again (WatermarkTracker's idleness). A replay has no wall
// clock; the Kafka runtime's stage one judges idleness by wall clock
// instead (processing.idle_after).
//
// Every record ends in exactly one outcome: accepted (counted in state),
// invalid (with its reason) or late. Counters add up:
// records == accepted + invalid + late.
//
// Thread-safety: not thread-safe; one pipeline per task. The catalog must
// outlive it.
#ifndef SHORTFALL_OPERATORS_VOLUME_PIPELINE_H_
#define SHORTFALL_OPERATORS_VOLUME_PIPELINE_H_

#include <array>
#include <string>
#include <vector>

#include "operators/catalog.h"
#include "operators/corridor.h"
#include "operators/dwell_join.h"
#include "operators/event_decoder.h"
#include "operators/event_normalizer.h"
#include "operators/invalid_reason.h"
#include "operators/state_store.h"
#include "operators/shortage_detection.h"
#include "operators/volume_aggregator.h"
#include "operators/watermark.h"

namespace shortfall::operators {

struct PipelineOptions {
  NormalizerOptions normalizer;
  WindowOptions window;
  DetectionOptions detection;
  Status Validate() const;
  // Validate(), and the overrides' group names against the catalog.
  Status ValidateFor(const Catalog& catalog) const;
};

enum class Outcome : uint8_t { kAccepted, kInvalid, kLate };

struct RecordResult {
  Outcome outcome = Outcome::kAccepted;
  Invalid invalid{InvalidReason::kUnparseable, ""};  // when kInvalid
  std::string late_detail;                          // when kLate
  TimestampMs event_time = 0;                       // when decoded
};

struct PipelineCounters {
  uint64_t records = 0;
  uint64_t accepted = 0;
  uint64_t late = 0;
  uint64_t out_of_order = 0;        // accepted, but older than its partition's newest event
  uint64_t unclassified_lines = 0;  // goods lines outside the catalog, in accepted events
  std::array<uint64_t, kInvalidReasonCount> invalid{};
  uint64_t invalid_total() const;
};

class VolumePipeline {
 public:
  // REQUIRES: options.Validate().ok().
  VolumePipeline(const Catalog& catalog, const PipelineOptions& options);
  // Not copyable or movable: its parts point at its corridor table.
  VolumePipeline(const VolumePipeline&) = delete;
  VolumePipeline& operator=(const VolumePipeline&) = delete;

  // Loads the committed state of `store`; returns its checkpoint blob.
  // REQUIRES: nothing commits to `store` meanwhile (the checkpoint is read
  // apart from the snapshot the state is read from).
  Result<std::string> Restore(const StateStore& store);

  // Decodes `value` as the event type of `source` and processes it.
  RecordResult ProcessValue(EventSource source, int32_t partition, std::string_view value,
                            PayloadFormat format, TimestampMs record_time);
  // Processes an already decoded event.
  RecordResult Process(const v1::ShipmentEvent& event, int32_t partition, TimestampMs record_time);
  RecordResult Process(const v1::CustomsEvent& event, int32_t partition, TimestampMs record_time);
  // Counts a record rejected before decoding (e.g. from an unknown topic).
  RecordResult Reject(Invalid invalid);

  // Closes the windows the combined watermark has passed.
  void DrainClosedWindows(std::vector<WindowReport>* out);
  // Closes every window holding data (end of input).
  void CloseAll(std::vector<WindowReport>* out);
  // Runs the detectors over closed windows (in the order they closed) and
  // appends the alert records their signals cause.
  void Detect(const std::vector<WindowReport>& reports, std::vector<v1::ShortageAlert>* alerts);
  // See ShortageDetection::KeepReadings; detection().readings() then holds
  // the readings of the last Detect call's reports.
  void KeepDetectorReadings(bool keep) { detection_.KeepReadings(keep); }

  // Writes everything changed since the last Flush and marks it clean. If
  // the Commit of that batch fails, Restore before processing more.
  void Flush(StateWriteBatch* batch);

  const PipelineCounters& counters() const { return counters_; }
  const VolumeAggregator& aggregator() const { return aggregator_; }
  const DwellJoin& dwell_join() const { return dwell_join_; }
  const ShortageDetection& detection() const { return detection_; }
  const CorridorTable& corridors() const { return corridors_; }
  const WatermarkTracker& watermarks() const { return watermarks_; }
  std::string_view GroupName(GroupId id) const { return normalizer_.GroupName(id); }

 private:
  RecordResult Accept(PartitionKey partition);
  void Count(const RecordResult& result);

  PipelineOptions options_;
  CorridorTable corridors_;
  EventNormalizer normalizer_;
  WatermarkTracker watermarks_;
  VolumeAggregator aggregator_;
  DwellJoin dwell_join_;
  ShortageDetection detection_;
  PipelineCounters counters_;
  bool counters_dirty_ = false;
  NormalizedEvent normalized_;  // scratch, reused
  v1::ShipmentEvent shipment_;  // scratch, reused
  v1::CustomsEvent customs_;    // scratch, reused
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_VOLUME_PIPELINE_H_
