#include "pipeline/alert_format.h"

#include <gtest/gtest.h>

#include <string>

#include <google/protobuf/util/json_util.h>

#include "tests/testing/sample_alert.h"

namespace shortfall::pipeline {
namespace {

v1::ShortageAlert VolumeDrop() { return testing::SampleVolumeDropAlert(); }

TEST(FormatAlertLine, SaysWhatWhereHowMuchWhyAndSinceWhen) {
  EXPECT_EQ(FormatAlertLine(VolumeDrop()),
            "2026-03-09T14:00:00Z OPEN CRITICAL volume_drop semiconductors MX-US-2304: shipments 41 vs "
            "expected 180 (-77%) over 7d (cusum 7.2 > 5.0) since 2026-03-07T00:00:00Z [id a1b2c3]");
}

TEST(FormatAlertLine, RatesReadAsPercentagesAndDwellTimesAsHours) {
  v1::ShortageAlert hold = VolumeDrop();
  hold.set_kind(v1::ALERT_KIND_CUSTOMS_HOLD_SPIKE);
  hold.set_severity(v1::SEVERITY_WARNING);
  hold.mutable_evidence()->set_measure("hold_rate");
  hold.mutable_evidence()->set_observed(0.083);
  hold.mutable_evidence()->set_expected(0.02);
  hold.mutable_evidence()->set_statistic("ewma_z");
  hold.mutable_evidence()->set_statistic_value(4.25);
  hold.mutable_evidence()->set_threshold(3);
  EXPECT_NE(FormatAlertLine(hold).find(
                "WARNING customs_hold_spike semiconductors MX-US-2304: hold_rate 8.3% vs expected 2% (+315%)"),
            std::string::npos)
      << FormatAlertLine(hold);
  EXPECT_NE(FormatAlertLine(hold).find("(ewma_z 4.2 > 3.0)"), std::string::npos) << FormatAlertLine(hold);

  v1::ShortageAlert dwell = VolumeDrop();
  dwell.set_kind(v1::ALERT_KIND_DWELL_TIME_RISE);
  dwell.mutable_evidence()->set_measure("dwell_seconds");
  dwell.mutable_evidence()->set_observed(30.5 * 3600);
  dwell.mutable_evidence()->set_expected(6 * 3600);
  EXPECT_NE(FormatAlertLine(dwell).find("dwell_time_rise semiconductors MX-US-2304: dwell 30.5h vs expected 6h (+408%)"),
            std::string::npos)
      << FormatAlertLine(dwell);
}

TEST(FormatAlertLine, AResolvedAlertShowsTheStatisticBackBelowItsThreshold) {
  v1::ShortageAlert alert = VolumeDrop();
  alert.set_state(v1::ALERT_STATE_RESOLVED);
  alert.mutable_evidence()->set_statistic_value(1.5);
  alert.set_revision(4);
  const std::string line = FormatAlertLine(alert);
  EXPECT_NE(line.find(" RESOLVED CRITICAL "), std::string::npos) << line;
  EXPECT_NE(line.find("(cusum 1.5 < 5.0)"), std::string::npos) << line;
  EXPECT_NE(line.find("[id a1b2c3 rev 4]"), std::string::npos) << line;
}

TEST(FormatAlertLine, AGroupWideAlertNamesItsTopContributors) {
  v1::ShortageAlert alert = VolumeDrop();
  alert.clear_corridor();
  for (auto [port, share] : {std::pair{"2304", 0.62}, {"2402", 0.2}, {"2506", 0.1}, {"3801", 0.08}}) {
    v1::Contributor* c = alert.mutable_evidence()->add_top_contributors();
    c->mutable_corridor()->set_origin_country("MX");
    c->mutable_corridor()->set_destination_country("US");
    c->mutable_corridor()->set_port_of_entry(port);
    c->set_share(share);
  }
  const std::string line = FormatAlertLine(alert);
  EXPECT_NE(line.find("semiconductors all corridors:"), std::string::npos) << line;
  EXPECT_NE(line.find("top MX-US-2304 62%, MX-US-2402 20%, MX-US-2506 10% since"), std::string::npos) << line;
}

TEST(FormatAlertLine, MissingFieldsLeaveAReadableLine) {
  EXPECT_EQ(FormatAlertLine(v1::ShortageAlert()),
            "- UNSPECIFIED UNSPECIFIED unspecified - all corridors: no evidence [id -]");
  v1::ShortageAlert unknown_kind = VolumeDrop();
  unknown_kind.set_kind(static_cast<v1::AlertKind>(42));
  EXPECT_NE(FormatAlertLine(unknown_kind).find(" alert_kind_42 "), std::string::npos)
      << FormatAlertLine(unknown_kind);
}

TEST(FormatCorridor, StarsStandForAllAndEmptyMeansAllCorridors) {
  v1::Corridor c;
  EXPECT_EQ(FormatCorridor(c), "all corridors");
  c.set_origin_country("CA");
  c.set_destination_country("US");
  EXPECT_EQ(FormatCorridor(c), "CA-US-*");
  c.set_port_of_entry("3801");
  EXPECT_EQ(FormatCorridor(c), "CA-US-3801");
}

TEST(FormatAlertJson, IsOneLineOfProtobufsJsonMappingThatParsesBack) {
  Result<std::string> json = FormatAlertJson(VolumeDrop());
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(json->find('\n'), std::string::npos);
  EXPECT_NE(json->find("\"alertId\":\"a1b2c3\""), std::string::npos) << *json;
  EXPECT_NE(json->find("\"kind\":\"ALERT_KIND_VOLUME_DROP\""), std::string::npos) << *json;
  EXPECT_NE(json->find("\"windowEnd\":\"2026-03-09T14:00:00Z\""), std::string::npos) << *json;
  v1::ShortageAlert back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &back).ok());
  EXPECT_EQ(back.SerializeAsString(), VolumeDrop().SerializeAsString());
}

}  // namespace
}  // namespace shortfall::pipeline
