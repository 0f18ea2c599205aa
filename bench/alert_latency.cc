// alert_latency: publish -> alert visible to a read_committed consumer, for
// bench/latency_bench.sh. Two steps around one `shortfall run` that follows
// a stream produced with `gen --to-kafka --wall-clock-timestamps` (so each
// input record's Kafka timestamp is the moment it was published):
//
//   alert_latency watch --brokers B --topic ALERTS --out FILE
//     A read_committed consumer of every partition of the alert topic, from
//     the beginning, until SIGTERM or SIGINT. For each alert record it
//     writes "<receive ms> <window_end ms> <state> <revision> <alert_id>" to
//     FILE, the receive time taken (system clock) when the consumer hands the
//     record over. It fetches with fetch.wait.max.ms=10, so its own polling
//     adds little to what it measures.
//
//   alert_latency measure --brokers B --shipments-topic S --customs-topic C --receipts FILE
//     Reads both input topics to their ends, decodes and validates every
//     record as stage one does (the built-in catalog and `shortfall run`'s
//     default validation and allowed lateness), and rebuilds the combined
//     watermark as a function of publish time (bench/publish_watermarks.h).
//     Each alert record's latency is its receive time minus the publish time
//     of the first event after which the watermark reached its window_end:
//     the event whose publication closed the window that raised it. Prints
//
//       publish -> alert visible (read_committed): alert records 6   p50 310 ms   p99 820 ms   max 820 ms
//
//     (nearest-rank quantiles, so every number is a measured latency) and,
//     with --list, one line per alert record. Alert records whose window the
//     events never closed (closed by the runtime's idleness after the
//     stream stopped) are counted apart and left out. Exits 1 when no alert
//     record is left to measure, or when a latency comes out negative (the
//     clocks or the attribution are wrong).
//
// Both steps must run on the machine that produced the stream: the latencies
// subtract timestamps of one system clock.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "bench/publish_watermarks.h"
#include "operators/catalog.h"
#include "operators/corridor.h"
#include "operators/event_decoder.h"
#include "operators/event_normalizer.h"
#include "pipeline/flags.h"
#include "pipeline/kafka_client.h"
#include "pipeline/run_config.h"
#include "shortfall/v1/customs_event.pb.h"
#include "shortfall/v1/shipment_event.pb.h"
#include "shortfall/v1/shortage_alert.pb.h"

namespace {

using namespace shortfall;
using namespace shortfall::pipeline;
using operators::EventSource;
using operators::PartitionKey;

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

int Fail(const std::string& what) {
  std::cerr << "alert_latency: " << what << "\n";
  return 1;
}

TimestampMs NowMs() { return SystemClock().NowMs(); }

// Every partition of `topics` from the beginning, with its end offset now.
Result<std::map<TopicPartition, int64_t>> AssignAll(KafkaConsumer& consumer, const std::vector<std::string>& topics) {
  std::map<TopicPartition, int64_t> ends;
  std::vector<TopicPartitionOffset> assignment;
  for (const std::string& topic : topics) {
    SHORTFALL_ASSIGN_OR_RETURN(int32_t n, consumer.PartitionCount(topic, 10 * kMsPerSecond));
    for (int32_t p = 0; p < n; ++p) {
      int64_t low = 0;
      int64_t high = 0;
      if (consumer.handle()->query_watermark_offsets(topic, p, &low, &high, 10000) != RdKafka::ERR_NO_ERROR) {
        return UnavailableError("no watermarks for " + topic + "-" + std::to_string(p));
      }
      ends[{topic, p}] = high;
      assignment.push_back({topic, p, kOffsetBeginning});
    }
  }
  SHORTFALL_RETURN_IF_ERROR(consumer.Assign(assignment));
  return ends;
}

int Watch(const FlagParser& flags) {
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::ofstream out(flags.Get("out"), std::ios::trunc);
  if (!out) return Fail("cannot write " + flags.Get("out"));
  Result<std::unique_ptr<KafkaConsumer>> consumer =
      KafkaConsumer::Create({{"bootstrap.servers", flags.Get("brokers")}, {"fetch.wait.max.ms", "10"}}, "");
  if (!consumer.ok()) return Fail(consumer.status().ToString());
  if (Result<std::map<TopicPartition, int64_t>> ends = AssignAll(**consumer, {flags.Get("topic")}); !ends.ok()) {
    return Fail(ends.status().ToString());
  }
  uint64_t received = 0;
  v1::ShortageAlert alert;
  {
    std::vector<KafkaMessage> batch;  // dies before the consumer
    while (!g_stop.load()) {
      batch.clear();
      Result<size_t> n = (*consumer)->ConsumeBatch(1000, 50, &batch);
      const TimestampMs now = NowMs();
      if (!n.ok()) return Fail(n.status().ToString());
      for (const KafkaMessage& m : batch) {
        const std::string_view value = m.value();
        if (!alert.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          return Fail("undecodable alert record at offset " + std::to_string(m.offset()));
        }
        const std::optional<TimestampMs> end = operators::TimestampToMs(alert.window_end());
        out << now << " " << end.value_or(kMinTimestamp) << " " << v1::AlertState_Name(alert.state()) << " "
            << alert.revision() << " " << alert.alert_id() << "\n";
        ++received;
      }
      out.flush();
    }
  }
  (*consumer)->Close().IgnoreError();
  std::cerr << "alert_latency: received " << received << " alert records\n";
  return out ? 0 : Fail("writing " + flags.Get("out") + " failed");
}

struct Published {
  TimestampMs publish_ms;
  PartitionKey partition;
  TimestampMs event_time;
};

struct Receipt {
  TimestampMs received_ms;
  TimestampMs window_end;
  std::string state;
  std::string alert_id;
};

int Measure(const FlagParser& flags) {
  // The events, as stage one sees them.
  const RunConfig defaults;
  const std::string shipments = flags.Get("shipments-topic");
  const std::string customs = flags.Get("customs-topic");
  Result<std::unique_ptr<KafkaConsumer>> consumer =
      KafkaConsumer::Create({{"bootstrap.servers", flags.Get("brokers")}}, "");
  if (!consumer.ok()) return Fail(consumer.status().ToString());
  Result<std::map<TopicPartition, int64_t>> ends = AssignAll(**consumer, {shipments, customs});
  if (!ends.ok()) return Fail(ends.status().ToString());
  std::vector<PartitionKey> expected;
  size_t left = 0;
  for (const auto& [tp, end] : *ends) {
    expected.push_back({tp.topic == shipments ? EventSource::kShipments : EventSource::kCustoms, tp.partition});
    if (end > 0) ++left;
  }
  operators::CorridorTable corridors;
  operators::EventNormalizer normalizer(operators::Catalog::Default(), defaults.pipeline.normalizer, &corridors);
  v1::ShipmentEvent shipment;
  v1::CustomsEvent customs_event;
  operators::NormalizedEvent event;
  std::vector<Published> events;
  std::map<PartitionKey, TimestampMs> last_publish;
  uint64_t records = 0;
  uint64_t invalid = 0;
  uint64_t out_of_order_publish = 0;
  {
    std::vector<KafkaMessage> batch;  // dies before the consumer
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (left > 0) {
      if (std::chrono::steady_clock::now() > deadline) return Fail("input topics not read to their ends in 5 min");
      batch.clear();
      Result<size_t> n = (*consumer)->ConsumeBatch(10000, 500, &batch);
      if (!n.ok()) return Fail(n.status().ToString());
      for (const KafkaMessage& m : batch) {
        ++records;
        const TopicPartition tp{std::string(m.topic()), m.partition()};
        const auto end = ends->find(tp);
        if (end != ends->end() && m.offset() + 1 == end->second) --left;
        const PartitionKey key{tp.topic == shipments ? EventSource::kShipments : EventSource::kCustoms, tp.partition};
        const TimestampMs publish = m.timestamp();
        const operators::PayloadFormat format = operators::PayloadFormatFromContentType(m.header("content-type"));
        std::optional<operators::Invalid> bad;
        if (key.source == EventSource::kShipments) {
          bad = operators::DecodeShipmentEvent(m.value(), format, &shipment);
          if (!bad) bad = normalizer.Normalize(shipment, publish, &event);
        } else {
          bad = operators::DecodeCustomsEvent(m.value(), format, &customs_event);
          if (!bad) bad = normalizer.Normalize(customs_event, publish, &event);
        }
        if (bad) {
          ++invalid;
          continue;
        }
        if (!event.actual) continue;
        auto [it, first] = last_publish.try_emplace(key, publish);
        if (!first && publish < it->second) ++out_of_order_publish;
        it->second = std::max(it->second, publish);
        events.push_back({publish, key, event.event_time});
      }
    }
  }
  (*consumer)->Close().IgnoreError();
  if (out_of_order_publish > 0) {
    // Then offset order and publish order disagree within a partition (the
    // clock stepped back while producing): the attribution would be a guess.
    return Fail(std::to_string(out_of_order_publish) + " records were published before the previous record of their "
                "partition; the publish clock is not monotonic");
  }
  // Within a partition this keeps offset order (publish times never drop, checked above).
  std::stable_sort(events.begin(), events.end(),
                   [](const Published& a, const Published& b) { return a.publish_ms < b.publish_ms; });
  bench::PublishWatermarks watermarks(defaults.pipeline.window.allowed_lateness, expected);
  for (const Published& e : events) {
    if (Status s = watermarks.Add(e.publish_ms, e.partition, e.event_time); !s.ok()) return Fail(s.ToString());
  }

  // The alert records, as the read_committed consumer received them.
  std::ifstream in(flags.Get("receipts"));
  if (!in) return Fail("cannot read " + flags.Get("receipts"));
  std::vector<int64_t> latencies;
  uint64_t by_idleness = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Receipt r;
    int revision = 0;
    if (!(fields >> r.received_ms >> r.window_end >> r.state >> revision >> r.alert_id)) {
      return Fail("bad receipt line: " + line);
    }
    const std::optional<TimestampMs> trigger = watermarks.FirstPublishReaching(r.window_end);
    if (!trigger) {
      ++by_idleness;
      if (flags.GetBool("list")) {
        std::printf("  %-16s %-22s window_end %s  closed by idleness, not by an event\n", r.alert_id.c_str(),
                    r.state.c_str(), FormatUtc(r.window_end).c_str());
      }
      continue;
    }
    const int64_t latency = r.received_ms - *trigger;
    if (latency < 0) {
      return Fail("alert " + r.alert_id + " received " + std::to_string(-latency) +
                  " ms before the event that closed its window was published: clocks or attribution wrong");
    }
    latencies.push_back(latency);
    if (flags.GetBool("list")) {
      std::printf("  %-16s %-22s window_end %s  published %s  received %s  %lld ms\n", r.alert_id.c_str(),
                  r.state.c_str(), FormatUtc(r.window_end).c_str(), FormatUtc(*trigger).c_str(),
                  FormatUtc(r.received_ms).c_str(), static_cast<long long>(latency));
    }
  }
  std::fprintf(stderr, "alert_latency: %llu input records, %llu invalid, %zu actual events; watermark reached %s\n",
               static_cast<unsigned long long>(records), static_cast<unsigned long long>(invalid), events.size(),
               watermarks.watermark() == kMinTimestamp ? "nothing" : FormatUtc(watermarks.watermark()).c_str());
  if (latencies.empty()) {
    return Fail("no alert record to measure (" + std::to_string(by_idleness) +
                " closed by idleness): the stream raised no alert while it flowed");
  }
  std::printf("publish -> alert visible (read_committed): alert records %zu   p50 %lld ms   p99 %lld ms   max %lld ms\n",
              latencies.size(), static_cast<long long>(bench::NearestRank(latencies, 0.5)),
              static_cast<long long>(bench::NearestRank(latencies, 0.99)),
              static_cast<long long>(*std::max_element(latencies.begin(), latencies.end())));
  if (by_idleness > 0) {
    std::printf("  (%llu more alert records came from windows closed by idleness after the stream stopped: not counted)\n",
                static_cast<unsigned long long>(by_idleness));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  FlagParser flags;
  flags.Add("brokers", "HOST:PORT", "Kafka bootstrap servers");
  std::vector<std::string> required = {"brokers"};
  if (mode == "watch") {
    flags.Add("topic", "TOPIC", "the alert topic");
    flags.Add("out", "FILE", "where to write one line per alert record received");
    required.insert(required.end(), {"topic", "out"});
  } else if (mode == "measure") {
    required.insert(required.end(), {"shipments-topic", "customs-topic", "receipts"});
    flags.Add("shipments-topic", "TOPIC", "the input topic of shipment events");
    flags.Add("customs-topic", "TOPIC", "the input topic of customs events");
    flags.Add("receipts", "FILE", "what `alert_latency watch` wrote");
    flags.AddBool("list", "also print one line per alert record");
  } else {
    std::cerr << "usage: alert_latency watch|measure [flags] (see bench/alert_latency.cc)\n";
    return 2;
  }
  if (Status s = flags.Parse(std::vector<std::string>(argv + 2, argv + argc)); !s.ok()) {
    std::cerr << "alert_latency: " << s.message() << "\n" << flags.Usage();
    return 2;
  }
  for (const std::string& name : required) {
    if (flags.Get(name).empty()) {
      std::cerr << "alert_latency: --" << name << " is required\n" << flags.Usage();
      return 2;
    }
  }
  return mode == "watch" ? Watch(flags) : Measure(flags);
}
