// The test harness the detector tests share: a VolumeAggregator feeding one
// detector feeding an AlertLifecycle, with what each step produced kept, and
// the three committed together to a StateStore and restored from one.
//
//   class Chain : public testing::DetectorChain<CustomsHoldDetector> {
//    public:
//     explicit Chain(CustomsHoldOptions options = {}) : DetectorChain(kGroups, options) {}
//     void Feed(...) { ... aggregator_.Add(...); Close(hour_end); }
//   };
//
// The detector is built as Detector(args..., windows_, groups, &corridors_).
// Close() observes each report on its own; a detector that reads a close's
// reports together (or a test that keeps more per report) defines its own.
#ifndef SHORTFALL_TESTS_OPERATORS_DETECTOR_CHAIN_H_
#define SHORTFALL_TESTS_OPERATORS_DETECTOR_CHAIN_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/time.h"
#include "operators/alert_lifecycle.h"
#include "operators/corridor.h"
#include "operators/state_store.h"
#include "operators/volume_aggregator.h"

namespace shortfall::testing {

template <typename Detector>
class DetectorChain {
 public:
  template <typename... DetectorArgs>
  explicit DetectorChain(const std::vector<std::string>& groups, DetectorArgs&&... args)
      : aggregator_(windows_, groups, &corridors_),
        detector_(std::forward<DetectorArgs>(args)..., windows_, groups, &corridors_),
        lifecycle_(operators::LifecycleOptions{}) {}

  // Closes the buckets `watermark` passes; each report goes to the detector
  // and its signals to the lifecycle.
  void Close(TimestampMs watermark) {
    std::vector<operators::WindowReport> reports;
    aggregator_.AdvanceTo(watermark, &reports);
    for (const operators::WindowReport& r : reports) {
      const size_t before = signals_.size();
      detector_.Observe(r, &signals_);
      ApplyFrom(before);
    }
  }

  void Flush(operators::StateStore* store) {
    operators::StateWriteBatch batch;
    aggregator_.Flush(&batch);
    detector_.Flush(&batch);
    lifecycle_.Flush(&batch);
    ASSERT_TRUE(store->Commit(batch, "").ok());
  }

  void Restore(const operators::StateStore& store) {
    ASSERT_TRUE(aggregator_.Restore(store).ok());
    ASSERT_TRUE(detector_.Restore(store).ok());
    ASSERT_TRUE(lifecycle_.Restore(store).ok());
  }

  std::vector<const operators::Signal*> SignalsFor(std::string_view corridor) const {
    std::vector<const operators::Signal*> out;
    for (const operators::Signal& s : signals_) {
      if (s.corridor == corridor) out.push_back(&s);
    }
    return out;
  }
  std::vector<const v1::ShortageAlert*> AlertsFor(std::string_view port) const {
    std::vector<const v1::ShortageAlert*> out;
    for (const v1::ShortageAlert& a : alerts_) {
      if (a.corridor().port_of_entry() == port) out.push_back(&a);
    }
    return out;
  }
  // The largest statistic any signal carried.
  double PeakStatistic() const {
    double peak = 0;
    for (const operators::Signal& s : signals_) peak = std::max(peak, s.evidence.statistic_value());
    return peak;
  }

  operators::WindowOptions windows_;
  operators::CorridorTable corridors_;
  operators::VolumeAggregator aggregator_;
  Detector detector_;
  operators::AlertLifecycle lifecycle_;
  std::vector<operators::Signal> signals_;
  std::vector<v1::ShortageAlert> alerts_;

 protected:
  // Applies signals_[before, end) to the lifecycle.
  void ApplyFrom(size_t before) {
    for (size_t i = before; i < signals_.size(); ++i) lifecycle_.Apply(signals_[i], &alerts_);
  }
};

}  // namespace shortfall::testing

#endif  // SHORTFALL_TESTS_OPERATORS_DETECTOR_CHAIN_H_
