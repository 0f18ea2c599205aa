#include "operators/alert_lifecycle.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "operators/in_memory_state_store.h"

namespace shortfall::operators {
namespace {

constexpr DurationMs kHour = kMsPerHour;
const TimestampMs kStart = *ParseUtc("2026-03-07T00:00:00Z");

TimestampMs Ms(const google::protobuf::Timestamp& t) { return t.seconds() * 1000 + t.nanos() / 1'000'000; }

Signal Base(TimestampMs end, std::string corridor = "MX-US-2304") {
  Signal s;
  s.kind = v1::ALERT_KIND_VOLUME_DROP;
  s.group = "semiconductors";
  s.corridor = std::move(corridor);
  s.window_start = end - 24 * kHour;
  s.window_end = end;
  s.evidence.set_measure("shipments");
  s.evidence.set_statistic("cusum");
  s.evidence.set_threshold(4);
  s.evidence.set_baseline_history_seconds(4 * 7 * 86400);
  return s;
}

Signal Firing(TimestampMs end, v1::Severity severity, double observed = 41, double expected = 180,
              double cusum = 5.5) {
  Signal s = Base(end);
  s.firing = true;
  s.severity = severity;
  s.evidence.set_observed(observed);
  s.evidence.set_expected(expected);
  s.evidence.set_statistic_value(cusum);
  return s;
}

Signal Recovered(TimestampMs end) {
  Signal s = Base(end);
  s.recovered = true;
  s.evidence.set_observed(178);
  s.evidence.set_expected(180);
  return s;
}

Signal InBetween(TimestampMs end) {
  Signal s = Base(end);
  s.evidence.set_observed(150);
  s.evidence.set_expected(180);
  s.evidence.set_statistic_value(2.5);
  return s;
}

LifecycleOptions Options(DurationMs resolve_after = 24 * kHour, DurationMs cooldown = 24 * kHour) {
  LifecycleOptions o;
  o.resolve_after = resolve_after;
  o.cooldown = cooldown;
  return o;
}

TEST(AlertLifecycle, AlertIdIsTheFnv1aOfGroupCorridorKindAndWindowStartInHex) {
  EXPECT_EQ(AlertId("semiconductors", "MX-US-2304", v1::ALERT_KIND_VOLUME_DROP, 1772841600000),
            "e19198d28235b2f6");
  EXPECT_NE(AlertId("semiconductors", "MX-US-2304", v1::ALERT_KIND_VOLUME_DROP, 1772841600000 + 1),
            "e19198d28235b2f6");
  EXPECT_NE(AlertId("semiconductors", "*", v1::ALERT_KIND_VOLUME_DROP, 1772841600000),
            "e19198d28235b2f6");
}

TEST(AlertLifecycle, OptionValidationNamesTheField) {
  EXPECT_TRUE(LifecycleOptions().Validate().ok());
  Status bad = Options(-kHour).Validate();
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("alert_lifecycle.resolve_after"), std::string::npos) << bad.message();
  bad = Options(kHour, 400 * kMsPerDay).Validate();
  EXPECT_NE(bad.message().find("alert_lifecycle.cooldown"), std::string::npos) << bad.message();
}

TEST(AlertLifecycle, AnOpenRecordFillsEveryField) {
  // Given a quiet lifecycle
  AlertLifecycle lifecycle(Options());
  std::vector<v1::ShortageAlert> out;
  // When a series starts firing
  const TimestampMs end = kStart + 24 * kHour;
  lifecycle.Apply(Firing(end, v1::SEVERITY_CRITICAL), &out);
  // Then one OPEN record says what, where, how much and since when
  ASSERT_EQ(out.size(), 1u);
  const v1::ShortageAlert& a = out[0];
  EXPECT_EQ(a.alert_id(), AlertId("semiconductors", "MX-US-2304", v1::ALERT_KIND_VOLUME_DROP, kStart));
  EXPECT_EQ(a.alert_id(), "e19198d28235b2f6");
  EXPECT_EQ(a.commodity_group(), "semiconductors");
  EXPECT_EQ(a.corridor().origin_country(), "MX");
  EXPECT_EQ(a.corridor().destination_country(), "US");
  EXPECT_EQ(a.corridor().port_of_entry(), "2304");
  EXPECT_EQ(a.kind(), v1::ALERT_KIND_VOLUME_DROP);
  EXPECT_EQ(a.severity(), v1::SEVERITY_CRITICAL);
  EXPECT_EQ(a.state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(Ms(a.window_start()), kStart);
  EXPECT_EQ(Ms(a.window_end()), end);
  EXPECT_EQ(Ms(a.opened_at()), end);
  EXPECT_EQ(a.evidence().measure(), "shipments");
  EXPECT_EQ(a.evidence().observed(), 41);
  EXPECT_EQ(a.evidence().expected(), 180);
  EXPECT_EQ(a.evidence().statistic(), "cusum");
  EXPECT_EQ(a.evidence().statistic_value(), 5.5);
  EXPECT_EQ(a.evidence().threshold(), 4);
  EXPECT_EQ(a.evidence().baseline_history_seconds(), 4 * 7 * 86400);
  EXPECT_EQ(a.revision(), 1u);
  EXPECT_EQ(a.summary(),
            "semiconductors MX-US-2304: shipments 41 vs expected 180 (-77%) over 24h since "
            "2026-03-08T00:00:00Z");
  EXPECT_EQ(lifecycle.open_count(), 1u);
}

TEST(AlertLifecycle, TheAllCorridorsSeriesHasAnEmptyCorridor) {
  AlertLifecycle lifecycle(Options());
  std::vector<v1::ShortageAlert> out;
  Signal s = Firing(kStart, v1::SEVERITY_WARNING);
  s.corridor = "*";
  lifecycle.Apply(s, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].has_corridor());
  EXPECT_EQ(out[0].corridor().origin_country(), "");
  EXPECT_EQ(out[0].corridor().destination_country(), "");
  EXPECT_EQ(out[0].corridor().port_of_entry(), "");
  EXPECT_EQ(out[0].summary().rfind("semiconductors all corridors: shipments 41", 0), 0u) << out[0].summary();
}

TEST(AlertLifecycle, OpensUpdatesAndResolvesUnderOneIdWithRevisionsOneTwoThree) {
  // Given an alert that opens as WARNING and escalates to CRITICAL
  AlertLifecycle lifecycle(Options());
  std::vector<v1::ShortageAlert> out;
  TimestampMs t = kStart;
  lifecycle.Apply(Firing(t, v1::SEVERITY_WARNING), &out);
  t += kHour;
  lifecycle.Apply(Firing(t, v1::SEVERITY_CRITICAL, 30, 180, 8.5), &out);
  const TimestampMs updated_at = t;
  // When the signal is recovered every hour for 24 hours
  const TimestampMs first_recovered = t + kHour;
  for (t = first_recovered; t < first_recovered + 24 * kHour; t += kHour) {
    lifecycle.Apply(Recovered(t), &out);
  }
  EXPECT_EQ(out.size(), 2u) << "24 h not reached yet";
  lifecycle.Apply(Recovered(t), &out);  // exactly 24 h after the first recovered signal
  // Then OPEN, UPDATED, RESOLVED share the id and count revisions 1, 2, 3
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(out[1].state(), v1::ALERT_STATE_UPDATED);
  EXPECT_EQ(out[2].state(), v1::ALERT_STATE_RESOLVED);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out[i].alert_id(), out[0].alert_id());
    EXPECT_EQ(out[i].revision(), i + 1);
    EXPECT_EQ(Ms(out[i].opened_at()), kStart);
  }
  EXPECT_EQ(out[1].severity(), v1::SEVERITY_CRITICAL);
  EXPECT_EQ(Ms(out[1].window_end()), updated_at);
  EXPECT_EQ(out[1].evidence().observed(), 30);
  // The resolution keeps the alert's severity and carries the last signal's evidence
  EXPECT_EQ(out[2].severity(), v1::SEVERITY_CRITICAL);
  EXPECT_EQ(out[2].evidence().observed(), 178);
  EXPECT_EQ(Ms(out[2].window_end()), first_recovered + 24 * kHour);
  EXPECT_NE(out[2].summary().find("back to normal"), std::string::npos) << out[2].summary();
  EXPECT_EQ(lifecycle.open_count(), 0u);
  EXPECT_TRUE(lifecycle.OpenAlerts().empty());
}

TEST(AlertLifecycle, EvidenceThatMovesAtTheSameSeverityWritesNoRecord) {
  AlertLifecycle lifecycle(Options());
  std::vector<v1::ShortageAlert> out;
  lifecycle.Apply(Firing(kStart, v1::SEVERITY_WARNING, 100, 180, 4.1), &out);
  for (int h = 1; h <= 48; ++h) {
    lifecycle.Apply(Firing(kStart + h * kHour, v1::SEVERITY_WARNING, 100 - h, 180, 4.1 + h), &out);
  }
  EXPECT_EQ(out.size(), 1u);
  // The open alert still shows its latest record, the OPEN one
  ASSERT_EQ(lifecycle.OpenAlerts().size(), 1u);
  EXPECT_EQ(lifecycle.OpenAlerts()[0].SerializeAsString(), out[0].SerializeAsString());
}

TEST(AlertLifecycle, ASignalThatIsNotRecoveredRestartsTheResolveClock) {
  AlertLifecycle lifecycle(Options());
  std::vector<v1::ShortageAlert> out;
  lifecycle.Apply(Firing(kStart, v1::SEVERITY_WARNING), &out);
  TimestampMs t = kStart + kHour;
  for (int h = 0; h < 20; ++h, t += kHour) lifecycle.Apply(Recovered(t), &out);
  lifecycle.Apply(InBetween(t), &out);  // the clock starts over
  t += kHour;
  const TimestampMs restart = t;
  for (; t < restart + 24 * kHour; t += kHour) lifecycle.Apply(Recovered(t), &out);
  EXPECT_EQ(out.size(), 1u);
  lifecycle.Apply(Recovered(t), &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].state(), v1::ALERT_STATE_RESOLVED);
  EXPECT_EQ(Ms(out[1].window_end()), restart + 24 * kHour);
}

TEST(AlertLifecycle, CooldownSuppressesAReopenUntilItHasPassed) {
  // Given an alert resolved at `resolved_at`
  AlertLifecycle lifecycle(Options(0, 24 * kHour));
  std::vector<v1::ShortageAlert> out;
  lifecycle.Apply(Firing(kStart, v1::SEVERITY_WARNING), &out);
  const TimestampMs resolved_at = kStart + kHour;
  lifecycle.Apply(Recovered(resolved_at), &out);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(out[1].state(), v1::ALERT_STATE_RESOLVED);
  // When the series fires again within the cooldown
  for (TimestampMs t = resolved_at + kHour; t < resolved_at + 24 * kHour; t += kHour) {
    lifecycle.Apply(Firing(t, v1::SEVERITY_CRITICAL), &out);
  }
  // Then nothing opens
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(lifecycle.open_count(), 0u);
  // And once the cooldown is over a new alert opens, with a new id
  lifecycle.Apply(Firing(resolved_at + 24 * kHour, v1::SEVERITY_CRITICAL), &out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(out[2].revision(), 1u);
  EXPECT_NE(out[2].alert_id(), out[0].alert_id());
}

TEST(AlertLifecycle, AFlappingSignalWritesOnlyTheOpenRecord) {
  // Given a signal that goes firing, in between, recovered, firing, ... every hour
  AlertLifecycle lifecycle(Options());
  std::vector<v1::ShortageAlert> out;
  for (int h = 0; h < 24 * 7; ++h) {
    const TimestampMs t = kStart + h * kHour;
    switch (h % 3) {
      case 0: lifecycle.Apply(Firing(t, v1::SEVERITY_WARNING), &out); break;
      case 1: lifecycle.Apply(InBetween(t), &out); break;
      default: lifecycle.Apply(Recovered(t), &out); break;
    }
  }
  // Then a week of it makes one record
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].state(), v1::ALERT_STATE_OPEN);
  EXPECT_EQ(lifecycle.open_count(), 1u);
}

TEST(AlertLifecycle, SignalsThatDoNotFireOpenNothing) {
  AlertLifecycle lifecycle(Options());
  std::vector<v1::ShortageAlert> out;
  for (int h = 0; h < 48; ++h) {
    lifecycle.Apply(h % 2 ? InBetween(kStart + h * kHour) : Recovered(kStart + h * kHour), &out);
  }
  EXPECT_TRUE(out.empty());
  StateWriteBatch batch;
  lifecycle.Flush(&batch);
  EXPECT_TRUE(batch.empty()) << "a quiet series keeps no state";
}

TEST(AlertLifecycle, OpenAlertsAreInGroupCorridorKindOrder) {
  AlertLifecycle lifecycle(Options());
  std::vector<v1::ShortageAlert> out;
  for (std::string corridor : {"MX-US-2304", "*", "CA-US-3801"}) {
    Signal s = Firing(kStart, v1::SEVERITY_WARNING);
    s.corridor = corridor;
    lifecycle.Apply(s, &out);
    s.kind = v1::ALERT_KIND_CUSTOMS_HOLD_SPIKE;
    lifecycle.Apply(s, &out);
  }
  Signal ppe = Firing(kStart, v1::SEVERITY_WARNING);
  ppe.group = "ppe";
  lifecycle.Apply(ppe, &out);
  std::vector<std::string> order;
  for (const v1::ShortageAlert& a : lifecycle.OpenAlerts()) {
    order.push_back(a.commodity_group() + " " + a.corridor().port_of_entry() + " " +
                    std::to_string(a.kind()));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"ppe 2304 1", "semiconductors  1", "semiconductors  2",
                                             "semiconductors 3801 1", "semiconductors 3801 2",
                                             "semiconductors 2304 1", "semiconductors 2304 2"}));
  EXPECT_EQ(lifecycle.open_count(), 7u);
}

// The same signals through an uninterrupted lifecycle and through one that
// is flushed, committed and restored into a new object part way.
TEST(AlertLifecycle, RestoringFromAFlushGivesTheSameRecordsAsAnUninterruptedRun) {
  std::vector<Signal> signals;
  TimestampMs t = kStart;
  signals.push_back(Firing(t, v1::SEVERITY_WARNING));
  for (int h = 0; h < 10; ++h) signals.push_back(Recovered(t += kHour));  // mid-recovery...
  signals.push_back(Firing(t += kHour, v1::SEVERITY_CRITICAL, 20, 180, 9));
  for (int h = 0; h < 30; ++h) signals.push_back(Recovered(t += kHour));  // ...resolves, cooldown
  for (int h = 0; h < 30; ++h) signals.push_back(Firing(t += kHour, v1::SEVERITY_WARNING));

  std::vector<v1::ShortageAlert> expected;
  AlertLifecycle uninterrupted(Options());
  for (const Signal& s : signals) uninterrupted.Apply(s, &expected);
  ASSERT_EQ(expected.size(), 4u);  // OPEN, UPDATED, RESOLVED, OPEN

  for (size_t cut : {size_t{1}, size_t{5}, size_t{11}, size_t{20}, size_t{45}, size_t{60}}) {
    InMemoryStateStore store;
    std::vector<v1::ShortageAlert> got;
    AlertLifecycle first(Options());
    for (size_t i = 0; i < cut; ++i) {
      first.Apply(signals[i], &got);
      if (i % 4 == 0) {  // commit part way too: the state is the sum of many flushes
        StateWriteBatch batch;
        first.Flush(&batch);
        ASSERT_TRUE(store.Commit(batch, "").ok());
      }
    }
    StateWriteBatch batch;
    first.Flush(&batch);
    ASSERT_TRUE(store.Commit(batch, "").ok());
    AlertLifecycle second(Options());
    ASSERT_TRUE(second.Restore(store).ok());
    EXPECT_EQ(second.open_count(), first.open_count());
    ASSERT_EQ(second.OpenAlerts().size(), first.OpenAlerts().size());
    for (size_t i = 0; i < first.OpenAlerts().size(); ++i) {
      EXPECT_EQ(second.OpenAlerts()[i].SerializeAsString(), first.OpenAlerts()[i].SerializeAsString());
    }
    for (size_t i = cut; i < signals.size(); ++i) second.Apply(signals[i], &got);
    ASSERT_EQ(got.size(), expected.size()) << "cut at " << cut;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].SerializeAsString(), expected[i].SerializeAsString()) << "cut at " << cut;
    }
  }
}

TEST(AlertLifecycle, FlushWritesOnlyWhatChangedAndForgetsAnExpiredCooldown) {
  AlertLifecycle lifecycle(Options(0, 2 * kHour));
  std::vector<v1::ShortageAlert> out;
  lifecycle.Apply(Firing(kStart, v1::SEVERITY_WARNING), &out);
  StateWriteBatch batch;
  lifecycle.Flush(&batch);
  EXPECT_EQ(batch.size(), 1u);
  // Same severity, new evidence: nothing to write
  batch.Clear();
  lifecycle.Apply(Firing(kStart + kHour, v1::SEVERITY_WARNING, 10, 180, 9), &out);
  lifecycle.Flush(&batch);
  EXPECT_TRUE(batch.empty());
  // Resolved: the entry shrinks to its cooldown
  lifecycle.Apply(Recovered(kStart + 2 * kHour), &out);
  lifecycle.Flush(&batch);
  ASSERT_EQ(batch.size(), 1u);
  ASSERT_TRUE(batch.mutations()[0].value.has_value());
  EXPECT_LT(batch.mutations()[0].value->size(), 16u);
  // A quiet signal after the cooldown deletes it
  batch.Clear();
  lifecycle.Apply(Recovered(kStart + 4 * kHour), &out);
  lifecycle.Flush(&batch);
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_FALSE(batch.mutations()[0].value.has_value());
}

TEST(AlertLifecycle, UnreadableStateIsDataLossAndLeavesTheLifecycleEmpty) {
  // Given a store with one good entry and one that does not parse
  InMemoryStateStore store;
  {
    AlertLifecycle lifecycle(Options());
    std::vector<v1::ShortageAlert> out;
    lifecycle.Apply(Firing(kStart, v1::SEVERITY_WARNING), &out);
    StateWriteBatch batch;
    lifecycle.Flush(&batch);
    batch.Put("alert_lifecycle", std::string("ppe\0*\0" "1", 7), "\xff\xff\xff");
    ASSERT_TRUE(store.Commit(batch, "").ok());
  }
  // When it is restored
  AlertLifecycle lifecycle(Options());
  const Status status = lifecycle.Restore(store);
  // Then it is kDataLoss and nothing stays loaded
  EXPECT_EQ(status.code(), StatusCode::kDataLoss) << status.ToString();
  EXPECT_EQ(lifecycle.open_count(), 0u);
}

}  // namespace
}  // namespace shortfall::operators
