// Producing a generated scenario to Kafka, for `shortfall gen --to-kafka` and
// `shortfall demo`: each record goes to its topic with its key, its record
// time as the CreateTime, and a content-type header naming the encoding.
//
// Thread-safety: free functions; the producer is used from the calling thread.
// Failure: a record that cannot be encoded or queued stops production; the
// report says how many were delivered, failed and left undelivered.
#ifndef SHORTFALL_PIPELINE_SCENARIO_PRODUCER_H_
#define SHORTFALL_PIPELINE_SCENARIO_PRODUCER_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "base/status.h"
#include "pipeline/event_file.h"
#include "pipeline/kafka_client.h"
#include "scenario/generator.h"
#include "shortfall/v1/event_record.pb.h"

namespace shortfall::pipeline {

// The header naming a record value's encoding, and its two values.
inline constexpr std::string_view kContentTypeHeader = "content-type";
inline constexpr std::string_view kProtobufContentType = "application/x-protobuf";
inline constexpr std::string_view kJsonContentType = "application/json";

// The value of a generated record as it goes on its topic: the serialized
// ShipmentEvent or CustomsEvent (protobuf, or its JSON mapping), or
// raw_value's bytes as they are (the generator's malformed records).
Result<std::string> RecordValue(const v1::EventRecord& record, EventFileFormat format);

struct ProduceOptions {
  EventFileFormat format = EventFileFormat::kProtobuf;
  uint64_t rate = 0;             // records per second; 0 = as fast as the producer takes them
  bool keep_partitions = false;  // the generator's partition instead of the partitioner's
  // Kafka timestamps: the producer's clock at send time instead of the
  // scenario's record time.
  bool wall_clock_timestamps = false;
  uint64_t first = 0;            // produce records [first, last) of the scenario (0-based)
  uint64_t last = UINT64_MAX;
  DurationMs flush_timeout = 90 * kMsPerSecond;
};

// Produces the generator's records and waits until every one is delivered
// or failed. Writes one report line to `report` ("<who>: produced N records
// to Kafka: N delivered, N failed"). OK only when all were delivered.
Status ProduceScenario(scenario::Generator& generator, KafkaProducer& producer, const ProduceOptions& options,
                       std::string_view who, std::ostream& report);

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_SCENARIO_PRODUCER_H_
