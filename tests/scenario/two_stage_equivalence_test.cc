// The Kafka runtime splits the operator core across the repartition topic:
// stage one (per input partition) decodes, validates, checks lateness and
// pre-aggregates; stage two (per series) keeps the windows. This test runs
// that split in process, with the repartition protocol the runtime uses —
// contributions carry the watermark their source had at its previous drain,
// and a watermark-only record follows each drain — and checks it computes
// what VolumePipeline (replay) computes from the same records, border dwell
// included: its join sides reach stage two in the contributions and pair
// there (DwellJoin).
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "operators/catalog.h"
#include "operators/contribution_buffer.h"
#include "operators/dwell_join.h"
#include "operators/event_normalizer.h"
#include "operators/source_watermarks.h"
#include "operators/volume_aggregator.h"
#include "operators/volume_pipeline.h"
#include "operators/watermark.h"
#include "scenario/generator.h"

namespace shortfall::operators {
namespace {

// One stage-one task: the input partition's watermark and its combiner.
struct StageOneTask {
  explicit StageOneTask(DurationMs bucket) : buffer(bucket) {}
  ContributionBuffer buffer;
  TimestampMs sent_watermark = kMinTimestamp;  // what the last drain reported
};

TEST(TwoStageEquivalence, StageOneAndStageTwoOverTheRepartitionProtocolMatchReplay) {
  scenario::GeneratorOptions gen;
  gen.seed = 77;
  gen.events = 60000;
  gen.partitions = 4;
  gen.late_rate = 0.003;
  gen.malformed_rate = 0.005;
  scenario::Generator generator(gen);
  std::vector<v1::EventRecord> records;
  v1::EventRecord record;
  while (generator.Next(&record)) records.push_back(record);

  const Catalog& catalog = Catalog::Default();
  const PipelineOptions options;

  // Replay: the whole core in one piece.
  VolumePipeline replay(catalog, options);
  for (const v1::EventRecord& r : records) {
    if (r.has_shipment()) replay.Process(r.shipment(), r.partition(), 0);
    else if (r.has_customs()) replay.Process(r.customs(), r.partition(), 0);
    else replay.ProcessValue(r.topic() == gen.shipments_topic ? EventSource::kShipments : EventSource::kCustoms,
                             r.partition(), r.raw_value(), PayloadFormat::kAuto, 0);
    std::vector<WindowReport> ignored;
    replay.DrainClosedWindows(&ignored);
  }
  std::vector<WindowReport> ignored;
  replay.CloseAll(&ignored);

  // The split: stage one per input partition, stage two behind the "topic".
  CorridorTable corridors;
  EventNormalizer normalizer(catalog, options.normalizer, &corridors);
  WatermarkTracker watermarks(options.window.allowed_lateness);
  std::map<PartitionKey, std::unique_ptr<StageOneTask>> tasks;
  VolumeAggregator stage_two(options.window, CountedGroupNames(catalog), &corridors);
  DwellJoin join(options.detection.dwell_join, CountedGroupNames(catalog), &corridors);
  SourceWatermarks source_watermarks;
  for (int32_t p = 0; p < gen.partitions; ++p) {  // the runtime learns these from topic metadata
    source_watermarks.Expect(PartitionKey{EventSource::kShipments, p});
    source_watermarks.Expect(PartitionKey{EventSource::kCustoms, p});
  }
  uint64_t late_at_stage_one = 0, late_at_stage_two = 0;

  const auto drain = [&](const PartitionKey& source, StageOneTask& task) {
    std::vector<ContributionBuffer::Entry> entries;
    task.buffer.Drain(&entries);
    for (const ContributionBuffer::Entry& e : entries) {
      source_watermarks.Update(source, task.sent_watermark, false);
      if (!stage_two.AddToSeries(e.series, e.bucket_start, e.volume)) ++late_at_stage_two;
      for (const ContributionBuffer::Marker& m : e.markers) {
        join.Offer(e.series.group, m.shipment_id, m.role, m.event_time, e.series.corridor, &stage_two);
      }
    }
    task.sent_watermark = watermarks.PartitionWatermark(source);
    source_watermarks.Update(source, task.sent_watermark, false);  // the watermark-only record
    std::vector<WindowReport> reports;
    stage_two.AdvanceTo(source_watermarks.Combined(), &reports);
    join.Expire(stage_two.closed_until());
  };

  NormalizedEvent ev;
  v1::ShipmentEvent shipment;
  v1::CustomsEvent customs;
  for (size_t i = 0; i < records.size(); ++i) {
    const v1::EventRecord& r = records[i];
    const PartitionKey source{r.topic() == gen.shipments_topic ? EventSource::kShipments : EventSource::kCustoms,
                              r.partition()};
    auto& task = tasks[source];
    if (!task) task = std::make_unique<StageOneTask>(options.window.bucket);
    std::optional<Invalid> bad;
    if (r.has_shipment()) {
      bad = normalizer.Normalize(r.shipment(), 0, &ev);
    } else if (r.has_customs()) {
      bad = normalizer.Normalize(r.customs(), 0, &ev);
    } else if (source.source == EventSource::kShipments) {
      bad = DecodeShipmentEvent(r.raw_value(), PayloadFormat::kAuto, &shipment);
      if (!bad) bad = normalizer.Normalize(shipment, 0, &ev);
    } else {
      bad = DecodeCustomsEvent(r.raw_value(), PayloadFormat::kAuto, &customs);
      if (!bad) bad = normalizer.Normalize(customs, 0, &ev);
    }
    if (!bad) {
      if (ev.actual && watermarks.Admit(source, ev.event_time) == Admission::kLate) {
        ++late_at_stage_one;
      } else {
        for (const GroupContribution& c : ev.groups) {
          task->buffer.Add(c.group, ev.corridor, ev.event_time, c.delta);
          if (ev.dwell != DwellRole::kNone && c.group != normalizer.unclassified_group()) {
            task->buffer.AddDwellMarker(c.group, ev.corridor, ev.event_time, ev.dwell, ev.shipment_id);
          }
        }
      }
    }
    if (i % 1000 == 999) {  // a commit interval
      for (auto& [key, t] : tasks) drain(key, *t);
    }
  }
  for (auto& [key, t] : tasks) drain(key, *t);
  std::vector<WindowReport> reports;
  stage_two.CloseAll(&reports);

  // Then: the same lateness and the same totals and final windows
  EXPECT_EQ(late_at_stage_two, 0u) << "stage one's lateness check leaves nothing late for stage two";
  EXPECT_EQ(late_at_stage_one, replay.counters().late);
  EXPECT_GT(late_at_stage_one, 0u);
  const std::vector<SeriesSummary> a = replay.aggregator().Summaries();
  const std::vector<SeriesSummary> b = stage_two.Summaries();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(replay.corridors().Code(a[i].series.corridor), corridors.Code(b[i].series.corridor));
    EXPECT_EQ(a[i].total, b[i].total) << corridors.Code(b[i].series.corridor);
    EXPECT_EQ(a[i].rolling, b[i].rolling) << corridors.Code(b[i].series.corridor);
  }
  EXPECT_EQ(replay.aggregator().closed_until(), stage_two.closed_until());
  // Dwell: most shipments pair, and exactly as in replay (the samples are in
  // the totals and windows compared above; the pairs counted here)
  EXPECT_GT(join.counters().joined, 2000u);
  EXPECT_LT(join.counters().expired + join.waiting(), join.counters().joined / 100)
      << "sides left unpaired: the late records' shipments and the ones in flight at the end";
  EXPECT_EQ(join.counters().joined, replay.dwell_join().counters().joined);
  EXPECT_EQ(join.counters().late, 0u);
  EXPECT_EQ(replay.dwell_join().counters().late, 0u);
  uint64_t samples = 0;
  for (const SeriesSummary& s : b) {
    if (s.series.corridor == kAllCorridors) continue;
    for (const PriceSum& d : s.total.dwell) samples += d.lines;
  }
  EXPECT_EQ(samples, join.counters().joined) << "each pair is one sample of its corridor";
}

}  // namespace
}  // namespace shortfall::operators
