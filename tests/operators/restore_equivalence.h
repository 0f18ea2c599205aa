// The restore check the seasonal detectors share: a chain of aggregator,
// detector and lifecycle run with a commit every few hours and a restart
// into new objects (a new corridor table too) at `cut` must give exactly
// the signals and alert records of the same chain run uninterrupted.
//
//   Chain uninterrupted;
//   uninterrupted.Feed(records);
//   for (TimestampMs cut : {...}) ExpectRestoreMatchesUninterrupted(records, cut, 2 * 5, uninterrupted);
//
// Chain: default-constructible, with Feed(records, from, to), Flush(StateStore*),
// Restore(const StateStore&), and the members signals_ and alerts_ it
// appends to; Record: a member `hour` (records in order of it).
#ifndef SHORTFALL_TESTS_OPERATORS_RESTORE_EQUIVALENCE_H_
#define SHORTFALL_TESTS_OPERATORS_RESTORE_EQUIVALENCE_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/time.h"
#include "operators/alert_lifecycle.h"
#include "operators/in_memory_state_store.h"

namespace shortfall::testing {

// A signal as comparable text: everything it carries.
inline std::string DescribeSignal(const operators::Signal& s) {
  return s.group + " " + s.corridor + " " + std::to_string(s.window_start) + "-" + std::to_string(s.window_end) +
         (s.firing ? " firing" : "") + (s.recovered ? " recovered" : "") + " " + std::to_string(s.severity) + " " +
         s.evidence.SerializeAsString();
}

// Feeds records[0, cut) committing after every `commit_every` records,
// restores new objects from the store, feeds the rest, and compares.
template <typename Chain, typename Record>
void ExpectRestoreMatchesUninterrupted(const std::vector<Record>& records, TimestampMs cut, size_t commit_every,
                                       const Chain& uninterrupted) {
  SCOPED_TRACE("restart at " + FormatUtc(cut));
  operators::InMemoryStateStore store;
  const size_t cut_index = static_cast<size_t>(
      std::find_if(records.begin(), records.end(), [&](const Record& r) { return r.hour >= cut; }) - records.begin());
  std::vector<operators::Signal> signals;
  std::vector<v1::ShortageAlert> alerts;
  {
    Chain before;
    for (size_t i = 0; i < cut_index; i += commit_every) {
      before.Feed(records, i, std::min(i + commit_every, cut_index));
      before.Flush(&store);
    }
    signals = before.signals_;
    alerts = before.alerts_;
  }
  Chain after;
  after.Restore(store);
  after.Feed(records, cut_index);
  signals.insert(signals.end(), after.signals_.begin(), after.signals_.end());
  alerts.insert(alerts.end(), after.alerts_.begin(), after.alerts_.end());

  ASSERT_EQ(signals.size(), uninterrupted.signals_.size());
  for (size_t i = 0; i < signals.size(); ++i) {
    ASSERT_EQ(DescribeSignal(signals[i]), DescribeSignal(uninterrupted.signals_[i])) << "signal #" << i;
  }
  ASSERT_EQ(alerts.size(), uninterrupted.alerts_.size());
  for (size_t i = 0; i < alerts.size(); ++i) {
    EXPECT_EQ(alerts[i].SerializeAsString(), uninterrupted.alerts_[i].SerializeAsString()) << "alert #" << i;
  }
}

}  // namespace shortfall::testing

#endif  // SHORTFALL_TESTS_OPERATORS_RESTORE_EQUIVALENCE_H_
