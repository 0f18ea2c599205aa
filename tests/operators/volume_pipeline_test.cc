#include "operators/volume_pipeline.h"

#include <gtest/gtest.h>

#include "operators/in_memory_state_store.h"
#include "tests/operators/test_events.h"

namespace shortfall::operators {
namespace {

using testing::Arrival;
using testing::Customs;
using testing::kMonday;

class VolumePipelineTest : public ::testing::Test {
 protected:
  VolumePipelineTest() : catalog_(testing::TestCatalog()) {}

  RecordResult Ship(VolumePipeline& p, TimestampMs t, int32_t partition = 0) {
    return p.Process(Arrival(t, "SHP-" + std::to_string(++n_)), partition, 0);
  }
  uint64_t ChipTotal(const VolumePipeline& p) {
    for (const SeriesSummary& s : p.aggregator().Summaries()) {
      if (p.GroupName(s.series.group) == "chips" && s.series.corridor == kAllCorridors) return s.total.shipments;
    }
    return 0;
  }

  Catalog catalog_;
  PipelineOptions options_;
  int n_ = 0;
};

TEST_F(VolumePipelineTest, LateWithinAllowedLatenessUpdatesItsBucket) {
  VolumePipeline p(catalog_, options_);
  EXPECT_EQ(Ship(p, kMonday + 10 * kMsPerHour).outcome, Outcome::kAccepted);
  // 6 h behind the newest event on its partition: exactly at the watermark
  EXPECT_EQ(Ship(p, kMonday + 4 * kMsPerHour).outcome, Outcome::kAccepted);
  EXPECT_EQ(p.counters().out_of_order, 1u);
  EXPECT_EQ(ChipTotal(p), 2u);
}

TEST_F(VolumePipelineTest, EventsPastAllowedLatenessAreLateAndCountNothing) {
  VolumePipeline p(catalog_, options_);
  Ship(p, kMonday + 10 * kMsPerHour);
  RecordResult r = Ship(p, kMonday + 4 * kMsPerHour - 1);
  EXPECT_EQ(r.outcome, Outcome::kLate);
  EXPECT_NE(r.late_detail.find("partition watermark"), std::string::npos) << r.late_detail;
  EXPECT_EQ(p.counters().late, 1u);
  EXPECT_EQ(ChipTotal(p), 1u);
}

TEST_F(VolumePipelineTest, AnEventForAnAlreadyClosedWindowIsLateEvenOnAFreshPartition) {
  VolumePipeline p(catalog_, options_);
  std::vector<WindowReport> reports;
  Ship(p, kMonday + 1 * kMsPerHour, /*partition=*/0);
  Ship(p, kMonday + 20 * kMsPerHour, /*partition=*/0);
  p.DrainClosedWindows(&reports);  // closes buckets up to 14h
  ASSERT_FALSE(reports.empty());
  RecordResult r = Ship(p, kMonday + 13 * kMsPerHour, /*partition=*/5);
  EXPECT_EQ(r.outcome, Outcome::kLate);
  EXPECT_NE(r.late_detail.find("closed window"), std::string::npos) << r.late_detail;
}

TEST_F(VolumePipelineTest, EveryRecordEndsInExactlyOneOutcome) {
  VolumePipeline p(catalog_, options_);
  Ship(p, kMonday + 10 * kMsPerHour);
  Ship(p, kMonday);  // late
  v1::ShipmentEvent bad = Arrival(kMonday + 10 * kMsPerHour);
  bad.mutable_goods(0)->set_unit("XYZ");
  EXPECT_EQ(p.Process(bad, 0, 0).invalid.reason, InvalidReason::kUnknownUnit);
  EXPECT_EQ(p.ProcessValue(EventSource::kCustoms, 0, "\xff\xfe", PayloadFormat::kAuto, 0).outcome,
            Outcome::kInvalid);
  EXPECT_EQ(p.Process(Customs(kMonday + 9 * kMsPerHour, v1::CUSTOMS_STATUS_RELEASED), 0, 0).outcome,
            Outcome::kAccepted);
  const PipelineCounters& c = p.counters();
  EXPECT_EQ(c.records, 5u);
  EXPECT_EQ(c.accepted, 2u);
  EXPECT_EQ(c.late, 1u);
  EXPECT_EQ(c.invalid_total(), 2u);
  EXPECT_EQ(c.invalid[static_cast<size_t>(InvalidReason::kUnparseable)], 1u);
  EXPECT_EQ(c.records, c.accepted + c.late + c.invalid_total());
}

TEST_F(VolumePipelineTest, DecodesValuesByTheirSource) {
  VolumePipeline p(catalog_, options_);
  const std::string shipment = Arrival(kMonday).SerializeAsString();
  EXPECT_EQ(p.ProcessValue(EventSource::kShipments, 0, shipment, PayloadFormat::kAuto, 0).outcome,
            Outcome::kAccepted);
  // The same bytes read as a customs event lack a declaration id
  RecordResult r = p.ProcessValue(EventSource::kCustoms, 0, shipment, PayloadFormat::kAuto, 0);
  EXPECT_EQ(r.outcome, Outcome::kInvalid);
}

TEST_F(VolumePipelineTest, RestoreResumesCountersWatermarksAndVolumes) {
  InMemoryStateStore store;
  VolumePipeline a(catalog_, options_);
  Ship(a, kMonday + 10 * kMsPerHour);
  Ship(a, kMonday + 11 * kMsPerHour);
  StateWriteBatch batch;
  a.Flush(&batch);
  ASSERT_TRUE(store.Commit(batch, "offsets").ok());

  VolumePipeline b(catalog_, options_);
  Result<std::string> checkpoint = b.Restore(store);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_EQ(*checkpoint, "offsets");
  EXPECT_EQ(b.counters().records, 2u);
  EXPECT_EQ(ChipTotal(b), 2u);
  EXPECT_EQ(Ship(b, kMonday + 4 * kMsPerHour).outcome, Outcome::kLate)
      << "the restored watermark still applies";
}

}  // namespace
}  // namespace shortfall::operators
