// RuntimeProbe: each verb shows up in the exposition text with the exact
// names and labels dashboards and alert rules query, and the whole text
// passes `promtool check metrics` (Prometheus's own linter).
#include "pipeline/runtime_probe.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "tests/testing/temp_dir.h"

namespace shortfall::pipeline {
namespace {

class RuntimeProbeTest : public ::testing::Test {
 protected:
  std::string Text() const { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

  // The sample lines of the exposition, for matching whole lines.
  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    std::istringstream in(Text());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  ::testing::AssertionResult HasLine(std::string_view line) const {
    for (const std::string& l : Lines()) {
      if (l == line) return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "no line \"" << line << "\" in:\n" << Text();
  }

  // Whether any sample of `name` carries `labels` (a substring of its label set).
  bool HasSeries(std::string_view name, std::string_view labels) const {
    for (const std::string& l : Lines()) {
      if (l.rfind(std::string(name) + "{", 0) == 0 && l.find(labels) != std::string::npos) return true;
    }
    return false;
  }

  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  RuntimeProbe probe_{registry_, "1.2.3"};
};

// Every verb at least once, with the label values the runtime uses.
void CallEveryVerb(RuntimeProbe& probe) {
  probe.SetUp();
  probe.SetReady(true);
  probe.AddConsumed("shipments.events.v1", 120);
  probe.AddConsumed("customs.events.v1", 80);
  probe.AddProduced("shortfall.alerts.v1", 2);
  probe.AddProduced("shortfall.dlq.v1", 3);
  probe.AddInvalid("missing_hs_code", 2);
  probe.AddLate("input", 1);
  probe.AddLate("repartition", 0);
  probe.SetConsumerLag("shipments.events.v1", 0, 42);
  probe.SetConsumerLag("shipments.events.v1", 1, 0);
  probe.ObserveCommit(0.012, true);
  probe.ObserveCommit(7.5, false);
  probe.ObserveLatency("state", 0.4);
  probe.ObserveLatency("alert", 5400);
  probe.SetWatermarkLag(12.5);
  probe.SetEventTimeWatermark(1773064800);
  probe.SetTasks("input", 8);
  probe.SetTasks("repartition", 4);
  probe.SetStateStore(1500, 1 << 20, 3 << 20);
  probe.AddRestored("app-volumes-changelog", 12);
  probe.AddDwellJoin("joined", 5);
  probe.SetDwellJoinWaiting(3);
  probe.AddAlert("semiconductors", "volume_drop", "critical", "open");
  probe.SetOpenAlerts("semiconductors", "volume_drop", 1);
  probe.SetVolume("semiconductors", "MX-US-2304", "7d", "shipments", 41);
  probe.SetVolume("semiconductors", "MX-US-2304", "7d", "gross_weight_kg", 12500.5);
  probe.SetVolume("semiconductors", "MX-US-2304", "24h", "declared_value_usd", 1.25e6);
  probe.SetBaseline("semiconductors", "MX-US-2304", "7d", "shipments", 180);
}

TEST_F(RuntimeProbeTest, CountsConsumedAndProducedRecordsByTopic) {
  probe_.AddConsumed("shipments.events.v1", 5);
  probe_.AddConsumed("shipments.events.v1", 7);
  probe_.AddProduced("shortfall.dlq.v1", 1);

  EXPECT_TRUE(HasLine("# TYPE shortfall_records_consumed_total counter"));
  EXPECT_TRUE(HasLine("shortfall_records_consumed_total{topic=\"shipments.events.v1\"} 12"));
  EXPECT_TRUE(HasLine("shortfall_records_produced_total{topic=\"shortfall.dlq.v1\"} 1"));
}

TEST_F(RuntimeProbeTest, CountsInvalidRecordsByReasonAndLateRecordsByStage) {
  probe_.AddInvalid("missing_hs_code", 3);
  probe_.AddInvalid("unparseable", 1);
  probe_.AddLate("input", 2);
  probe_.AddLate("repartition", 1);

  EXPECT_TRUE(HasLine("shortfall_records_invalid_total{reason=\"missing_hs_code\"} 3"));
  EXPECT_TRUE(HasLine("shortfall_records_invalid_total{reason=\"unparseable\"} 1"));
  EXPECT_TRUE(HasLine("shortfall_records_late_total{stage=\"input\"} 2"));
  EXPECT_TRUE(HasLine("shortfall_records_late_total{stage=\"repartition\"} 1"));
}

TEST_F(RuntimeProbeTest, ReportsConsumerLagPerPartition) {
  probe_.SetConsumerLag("customs.events.v1", 3, 100);
  probe_.SetConsumerLag("customs.events.v1", 3, 40);  // a gauge: the latest value

  EXPECT_TRUE(HasLine("# TYPE shortfall_consumer_lag_records gauge"));
  EXPECT_TRUE(HasLine("shortfall_consumer_lag_records{partition=\"3\",topic=\"customs.events.v1\"} 40"));
}

TEST_F(RuntimeProbeTest, RemovePartitionDropsOnlyThatPartitionsSeries) {
  // Given lag on two partitions
  probe_.SetConsumerLag("customs.events.v1", 3, 40);
  probe_.SetConsumerLag("customs.events.v1", 4, 7);

  // When partition 3 is revoked
  probe_.RemovePartition("customs.events.v1", 3);

  // Then its series is gone and the other stays
  EXPECT_FALSE(HasSeries("shortfall_consumer_lag_records", "partition=\"3\"")) << Text();
  EXPECT_TRUE(HasLine("shortfall_consumer_lag_records{partition=\"4\",topic=\"customs.events.v1\"} 7"));
  // and reassigning it brings the series back fresh
  probe_.SetConsumerLag("customs.events.v1", 3, 1);
  EXPECT_TRUE(HasLine("shortfall_consumer_lag_records{partition=\"3\",topic=\"customs.events.v1\"} 1"));
  probe_.RemovePartition("customs.events.v1", 9);  // never assigned: no effect
}

TEST_F(RuntimeProbeTest, ObservesCommitDurationsFromAMillisecondToTenSecondsAndCountsResults) {
  probe_.ObserveCommit(0.0005, true);
  probe_.ObserveCommit(0.2, true);
  probe_.ObserveCommit(12, false);

  EXPECT_TRUE(HasLine("# TYPE shortfall_commit_duration_seconds histogram"));
  EXPECT_TRUE(HasLine("shortfall_commit_duration_seconds_count 3"));
  EXPECT_TRUE(HasLine("shortfall_commit_duration_seconds_bucket{le=\"0.001\"} 1"));
  EXPECT_TRUE(HasLine("shortfall_commit_duration_seconds_bucket{le=\"0.25\"} 2"));
  EXPECT_TRUE(HasLine("shortfall_commit_duration_seconds_bucket{le=\"10\"} 2"));
  EXPECT_TRUE(HasLine("shortfall_commit_duration_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE(HasLine("shortfall_commits_total{result=\"ok\"} 2"));
  EXPECT_TRUE(HasLine("shortfall_commits_total{result=\"failed\"} 1"));
}

TEST_F(RuntimeProbeTest, ObservesLatencyPerStageWithBucketsFromTenMillisecondsToAnHour) {
  probe_.ObserveLatency("state", 0.005);
  probe_.ObserveLatency("alert", 1800);
  probe_.ObserveLatency("alert", -2);  // the producer's clock ahead of ours: counts as 0

  EXPECT_TRUE(HasLine("# TYPE shortfall_processing_latency_seconds histogram"));
  EXPECT_TRUE(HasLine("shortfall_processing_latency_seconds_bucket{stage=\"state\",le=\"0.01\"} 1"));
  EXPECT_TRUE(HasLine("shortfall_processing_latency_seconds_bucket{stage=\"alert\",le=\"0.01\"} 1"));
  EXPECT_TRUE(HasLine("shortfall_processing_latency_seconds_bucket{stage=\"alert\",le=\"1800\"} 2"));
  EXPECT_TRUE(HasLine("shortfall_processing_latency_seconds_bucket{stage=\"alert\",le=\"3600\"} 2"));
  EXPECT_TRUE(HasLine("shortfall_processing_latency_seconds_sum{stage=\"alert\"} 1800"));
  EXPECT_TRUE(HasLine("shortfall_processing_latency_seconds_count{stage=\"alert\"} 2"));
}

TEST_F(RuntimeProbeTest, ReportsNoWatermarkBeforeOneIsKnown) {
  const std::string text = Text();
  EXPECT_EQ(text.find("shortfall_event_time_watermark_seconds "), std::string::npos) << text;
  EXPECT_EQ(text.find("shortfall_watermark_lag_seconds "), std::string::npos) << text;
}

TEST_F(RuntimeProbeTest, ReportsWatermarksTasksAndStateSize) {
  probe_.SetWatermarkLag(90.5);
  probe_.SetEventTimeWatermark(1773064800);
  probe_.SetTasks("input", 8);
  probe_.SetTasks("repartition", 4);
  probe_.SetStateStore(1500, 4096, 65536);

  EXPECT_TRUE(HasLine("shortfall_watermark_lag_seconds 90.5"));
  EXPECT_TRUE(HasLine("shortfall_event_time_watermark_seconds 1773064800"));
  EXPECT_TRUE(HasLine("shortfall_tasks{stage=\"input\"} 8"));
  EXPECT_TRUE(HasLine("shortfall_tasks{stage=\"repartition\"} 4"));
  EXPECT_TRUE(HasLine("shortfall_state_keys 1500"));
  EXPECT_TRUE(HasLine("shortfall_state_bytes 4096"));
  EXPECT_TRUE(HasLine("shortfall_state_memory_bytes 65536"));
}

TEST_F(RuntimeProbeTest, CountsAlertsAndReportsOpenAlertsByGroupAndKind) {
  probe_.AddAlert("ppe", "customs_hold_spike", "warning", "open");
  probe_.AddAlert("ppe", "customs_hold_spike", "warning", "resolved");
  probe_.AddAlert("ppe", "customs_hold_spike", "warning", "open");
  probe_.SetOpenAlerts("ppe", "customs_hold_spike", 1);

  EXPECT_TRUE(HasLine("shortfall_alerts_total{group=\"ppe\",kind=\"customs_hold_spike\",severity=\"warning\","
                      "state=\"open\"} 2"));
  EXPECT_TRUE(HasLine("shortfall_alerts_total{group=\"ppe\",kind=\"customs_hold_spike\",severity=\"warning\","
                      "state=\"resolved\"} 1"));
  EXPECT_TRUE(HasLine("shortfall_open_alerts{group=\"ppe\",kind=\"customs_hold_spike\"} 1"));
}

TEST_F(RuntimeProbeTest, ReportsRollingVolumesAndTheirBaselines) {
  probe_.SetVolume("semiconductors", "MX-US-2304", "7d", "shipments", 41);
  probe_.SetVolume("semiconductors", "MX-US-2304", "24h", "gross_weight_kg", 12500.5);
  probe_.SetBaseline("semiconductors", "MX-US-2304", "7d", "shipments", 180);

  EXPECT_TRUE(HasLine("shortfall_volume{corridor=\"MX-US-2304\",group=\"semiconductors\",measure=\"shipments\","
                      "window=\"7d\"} 41"));
  EXPECT_TRUE(HasLine("shortfall_volume{corridor=\"MX-US-2304\",group=\"semiconductors\","
                      "measure=\"gross_weight_kg\",window=\"24h\"} 12500.5"));
  EXPECT_TRUE(HasLine("shortfall_volume_baseline{corridor=\"MX-US-2304\",group=\"semiconductors\","
                      "measure=\"shipments\",window=\"7d\"} 180"));
}

TEST_F(RuntimeProbeTest, RemoveSeriesDropsEveryWindowAndMeasureOfOneSeriesOnly) {
  // Given two series of one group with volumes and a baseline
  probe_.SetVolume("semiconductors", "MX-US-2304", "7d", "shipments", 41);
  probe_.SetVolume("semiconductors", "MX-US-2304", "24h", "gross_weight_kg", 12500.5);
  probe_.SetBaseline("semiconductors", "MX-US-2304", "24h", "shipments", 20);
  probe_.SetVolume("semiconductors", "MX-US-2402", "7d", "shipments", 30);
  // When the Laredo series moves to another instance
  probe_.RemoveSeries("semiconductors", "MX-US-2304");
  // Then none of its series is left, and El Paso's stays
  EXPECT_FALSE(HasSeries("shortfall_volume", "corridor=\"MX-US-2304\"")) << Text();
  EXPECT_FALSE(HasSeries("shortfall_volume_baseline", "corridor=\"MX-US-2304\"")) << Text();
  EXPECT_TRUE(HasLine("shortfall_volume{corridor=\"MX-US-2402\",group=\"semiconductors\",measure=\"shipments\","
                      "window=\"7d\"} 30"));
}

TEST_F(RuntimeProbeTest, CommitResultsExistAtZeroBeforeTheFirstCommit) {
  EXPECT_TRUE(HasLine("shortfall_commits_total{result=\"ok\"} 0")) << Text();
  EXPECT_TRUE(HasLine("shortfall_commits_total{result=\"failed\"} 0")) << Text();
}

TEST_F(RuntimeProbeTest, CountsRestoredRecordsByChangelogTopic) {
  probe_.AddRestored("app-volumes-changelog", 1000);
  probe_.AddRestored("app-volumes-changelog", 234);
  probe_.AddRestored("app-customs-watermarks-changelog", 2);

  EXPECT_TRUE(HasLine("shortfall_restored_records_total{topic=\"app-volumes-changelog\"} 1234"));
  EXPECT_TRUE(HasLine("shortfall_restored_records_total{topic=\"app-customs-watermarks-changelog\"} 2"));
}

TEST_F(RuntimeProbeTest, DwellJoinOutcomesExistAtZeroFromSetUpAndCount) {
  EXPECT_FALSE(HasSeries("shortfall_dwell_join_total", "outcome=\"joined\""));
  probe_.SetUp();
  for (std::string_view outcome : kDwellJoinOutcomes) {
    EXPECT_TRUE(HasLine("shortfall_dwell_join_total{outcome=\"" + std::string(outcome) + "\"} 0"));
  }
  probe_.AddDwellJoin("joined", 40);
  probe_.AddDwellJoin("joined", 2);
  probe_.AddDwellJoin("expired", 3);
  probe_.SetDwellJoinWaiting(17);
  EXPECT_TRUE(HasLine("shortfall_dwell_join_total{outcome=\"joined\"} 42"));
  EXPECT_TRUE(HasLine("shortfall_dwell_join_total{outcome=\"expired\"} 3"));
  EXPECT_TRUE(HasLine("shortfall_dwell_join_waiting 17"));
}

TEST_F(RuntimeProbeTest, ReportsReadinessAndBuildInfo) {
  EXPECT_TRUE(HasLine("shortfall_ready 0"));  // not ready until told

  probe_.SetReady(true);
  probe_.SetUp();

  EXPECT_TRUE(HasLine("shortfall_ready 1"));
  EXPECT_TRUE(HasLine("shortfall_build_info{version=\"1.2.3\"} 1"));
}

TEST_F(RuntimeProbeTest, EveryFamilyHasHelpAndType) {
  CallEveryVerb(probe_);
  const std::string text = Text();
  for (const char* name :
       {"shortfall_records_consumed_total", "shortfall_records_produced_total", "shortfall_records_invalid_total",
        "shortfall_records_late_total", "shortfall_consumer_lag_records", "shortfall_commit_duration_seconds",
        "shortfall_commits_total", "shortfall_processing_latency_seconds", "shortfall_watermark_lag_seconds",
        "shortfall_event_time_watermark_seconds", "shortfall_tasks", "shortfall_state_keys",
        "shortfall_state_bytes", "shortfall_alerts_total", "shortfall_open_alerts", "shortfall_volume",
        "shortfall_volume_baseline", "shortfall_restored_records_total", "shortfall_ready", "shortfall_build_info"}) {
    EXPECT_NE(text.find("# HELP " + std::string(name) + " "), std::string::npos) << name;
    EXPECT_NE(text.find("# TYPE " + std::string(name) + " "), std::string::npos) << name;
  }
}

TEST_F(RuntimeProbeTest, VerbsMayBeCalledFromSeveralThreadsWhileScraping) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 500; ++i) {
        probe_.AddConsumed("shipments.events.v1", 1);
        probe_.SetConsumerLag("shipments.events.v1", t, i);
        if (i % 2 == 1) probe_.RemovePartition("shipments.events.v1", t);
      }
    });
  }
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(Text().empty());
  for (std::thread& t : threads) t.join();

  EXPECT_TRUE(HasLine("shortfall_records_consumed_total{topic=\"shipments.events.v1\"} 2000"));
  EXPECT_FALSE(HasSeries("shortfall_consumer_lag_records", "topic=\"shipments.events.v1\""));
}

// The absolute path of `program` on $PATH, or "".
std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

TEST_F(RuntimeProbeTest, PassesPromtoolCheckMetrics) {
  // Given the text of a probe on which every verb was called
  CallEveryVerb(probe_);
  const std::string promtool = FindOnPath("promtool");
  ASSERT_FALSE(promtool.empty())
      << "promtool is not on PATH: run tools/install-deps.sh (it installs Debian's prometheus "
         "package, which ships promtool)";
  testing::ScopedTempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string file = dir.Path("metrics.txt");
  {
    std::ofstream out(file);
    out << Text();
    ASSERT_TRUE(out.good());
  }

  // When promtool lints it
  const std::string command = "'" + promtool + "' check metrics < '" + file + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr) << command;
  std::string output;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  const int status = ::pclose(pipe);

  // Then it reports no problem
  ASSERT_TRUE(WIFEXITED(status)) << command;
  EXPECT_EQ(WEXITSTATUS(status), 0) << output;
  EXPECT_EQ(output, "") << "promtool check metrics on:\n" << Text();
}

}  // namespace
}  // namespace shortfall::pipeline
