#include "pipeline/scenario_producer.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include "operators/event_decoder.h"

namespace shortfall::pipeline {

Result<std::string> RecordValue(const v1::EventRecord& record, EventFileFormat format) {
  const google::protobuf::Message* event = nullptr;
  switch (record.payload_case()) {
    case v1::EventRecord::kShipment:
      event = &record.shipment();
      break;
    case v1::EventRecord::kCustoms:
      event = &record.customs();
      break;
    case v1::EventRecord::kRawValue:
      return record.raw_value();
    case v1::EventRecord::PAYLOAD_NOT_SET:
      return std::string();
  }
  std::string value;
  if (format == EventFileFormat::kProtobuf) {
    if (!event->SerializeToString(&value)) return InternalError("cannot serialize record for " + record.key());
    return value;
  }
  const auto status = google::protobuf::util::MessageToJsonString(*event, &value);
  if (!status.ok()) return InternalError("record for " + record.key() + " as JSON: " + status.ToString());
  return value;
}

Status ProduceScenario(scenario::Generator& generator, KafkaProducer& producer, const ProduceOptions& options,
                       std::string_view who, std::ostream& report) {
  const std::string content_type(options.format == EventFileFormat::kJson ? kJsonContentType
                                                                          : kProtobufContentType);
  const auto start = std::chrono::steady_clock::now();
  v1::EventRecord record;
  uint64_t produced = 0;
  Status failure;
  for (uint64_t index = 0; index < options.last && generator.Next(&record); ++index) {
    if (index < options.first) continue;
    Result<std::string> value = RecordValue(record, options.format);
    if (!value.ok()) {
      failure = value.status();
      break;
    }
    OutgoingRecord out;
    out.topic = record.topic();
    out.key = record.key();
    out.value = *value;
    out.headers.emplace_back(kContentTypeHeader, content_type);
    if (options.keep_partitions) out.partition = record.partition();
    if (record.has_record_time() && !options.wall_clock_timestamps) out.timestamp_ms = operators::TimestampToMs(record.record_time()).value_or(0);
    if (Status s = producer.Produce(out); !s.ok()) {
      failure = s;
      break;
    }
    ++produced;
    if (options.rate > 0) {
      // Paced against the start, not the previous record, so the rate holds
      // on average whatever each Produce() cost.
      const auto due = start + std::chrono::microseconds(produced * 1000000 / options.rate);
      while (std::chrono::steady_clock::now() < due) {
        producer.Poll();
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            due - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
      }
    }
  }
  // Every queued record is delivered or has failed by message.timeout.ms
  // (callers set it below the flush timeout), so this ends with a full account.
  Status flushed = producer.Flush(options.flush_timeout);
  const uint64_t undelivered = produced - std::min(produced, producer.delivered() + producer.failed());
  report << who << ": produced " << produced << " records to Kafka: " << producer.delivered() << " delivered, "
         << producer.failed() << " failed";
  if (undelivered > 0) report << ", " << undelivered << " undelivered";
  report << "\n";
  if (!failure.ok()) return failure;
  if (!flushed.ok()) return flushed;
  if (producer.failed() > 0) {
    return UnavailableError(std::to_string(producer.failed()) + " records could not be delivered");
  }
  return OkStatus();
}

}  // namespace shortfall::pipeline
