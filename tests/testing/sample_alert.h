// A hand-made volume-drop alert with every field set, for the tests of
// formatting, the alert topic and `shortfall tail`:
//   2026-03-09T14:00:00Z OPEN CRITICAL volume_drop semiconductors MX-US-2304:
//   shipments 41 vs expected 180 (-77%) over 7d (cusum 7.2 > 5.0)
//   since 2026-03-07T00:00:00Z [id a1b2c3]
#ifndef SHORTFALL_TESTS_TESTING_SAMPLE_ALERT_H_
#define SHORTFALL_TESTS_TESTING_SAMPLE_ALERT_H_

#include <cstdint>

#include "shortfall/v1/shortage_alert.pb.h"

namespace shortfall::testing {

inline google::protobuf::Timestamp Seconds(int64_t seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  return t;
}

inline constexpr int64_t kSampleOpenedAt = 1772841600;   // 2026-03-07T00:00:00Z
inline constexpr int64_t kSampleWindowEnd = 1773064800;  // 2026-03-09T14:00:00Z

inline v1::ShortageAlert SampleVolumeDropAlert() {
  v1::ShortageAlert alert;
  alert.set_alert_id("a1b2c3");
  alert.set_commodity_group("semiconductors");
  alert.mutable_corridor()->set_origin_country("MX");
  alert.mutable_corridor()->set_destination_country("US");
  alert.mutable_corridor()->set_port_of_entry("2304");
  alert.set_kind(v1::ALERT_KIND_VOLUME_DROP);
  alert.set_severity(v1::SEVERITY_CRITICAL);
  alert.set_state(v1::ALERT_STATE_OPEN);
  *alert.mutable_window_start() = Seconds(kSampleWindowEnd - 7 * 86400);
  *alert.mutable_window_end() = Seconds(kSampleWindowEnd);
  *alert.mutable_opened_at() = Seconds(kSampleOpenedAt);
  v1::Evidence* e = alert.mutable_evidence();
  e->set_measure("shipments");
  e->set_observed(41);
  e->set_expected(180);
  e->set_statistic("cusum");
  e->set_statistic_value(7.2);
  e->set_threshold(5.0);
  alert.set_revision(1);
  return alert;
}

}  // namespace shortfall::testing

#endif  // SHORTFALL_TESTS_TESTING_SAMPLE_ALERT_H_
