#include "pipeline/embedded_broker.h"

#include <algorithm>
#include <limits>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace shortfall::pipeline {

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(int32_t partitions,
                                                              const std::vector<std::string>& topics) {
  Options options;
  options.partitions = partitions;
  options.topics = topics;
  return Start(options);
}

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(const Options& options) {
  if (options.brokers < 1 || options.brokers > 16) {
    return InvalidArgumentError("embedded broker: brokers must be 1 to 16, not " +
                                std::to_string(options.brokers));
  }
  if (options.partitions < 1 || options.partitions > 10000) {
    return InvalidArgumentError("embedded broker: partitions must be 1 to 10000, not " +
                                std::to_string(options.partitions));
  }
  if (options.initial_rebalance_delay < 0 ||
      options.initial_rebalance_delay > std::numeric_limits<int32_t>::max()) {
    return InvalidArgumentError("embedded broker: initial_rebalance_delay out of range");
  }
  // The mock cluster needs a librdkafka handle for its bookkeeping and logs.
  // It never connects anywhere; log_level 4 keeps its "no bootstrap.servers"
  // notice out of the output while warnings and errors still show.
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512] = {0};
  if (rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "client.id", "shortfall-embedded-broker", errstr, sizeof errstr) !=
          RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return InternalError(std::string("embedded broker: ") + errstr);
  }
  rd_kafka_t* handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (handle == nullptr) {
    rd_kafka_conf_destroy(conf);
    return UnavailableError(std::string("embedded broker: cannot create its librdkafka handle: ") + errstr);
  }
  std::unique_ptr<EmbeddedBroker> broker(new EmbeddedBroker());
  broker->handle_ = handle;
  broker->brokers_ = options.brokers;
  broker->cluster_ = rd_kafka_mock_cluster_new(handle, options.brokers);
  if (broker->cluster_ == nullptr) {
    return UnavailableError("embedded broker: librdkafka could not start the mock cluster "
                            "(no loopback listener? see the log above)");
  }
  rd_kafka_mock_group_initial_rebalance_delay_ms(broker->cluster_,
                                                 static_cast<int32_t>(options.initial_rebalance_delay));
  broker->bootstrap_ = rd_kafka_mock_cluster_bootstraps(broker->cluster_);
  for (const std::string& topic : options.topics) {
    if (Status s = broker->CreateTopic(topic, options.partitions);
        !s.ok() && s.code() != StatusCode::kAlreadyExists) {
      return s;
    }
  }
  return broker;
}

EmbeddedBroker::~EmbeddedBroker() {
  // The cluster must go before the handle it was created on.
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  if (handle_ != nullptr) rd_kafka_destroy(handle_);
}

Status EmbeddedBroker::CreateTopic(const std::string& name, int32_t partitions) {
  if (name.empty() || name.size() > 249 ||
      !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
      })) {
    return InvalidArgumentError("embedded broker: '" + name +
                                "' is not a valid topic name (1-249 of [a-zA-Z0-9._-])");
  }
  if (partitions < 1 || partitions > 10000) {
    return InvalidArgumentError("embedded broker: topic '" + name + "': partitions must be 1 to 10000");
  }
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, std::min(brokers_, 3));
  if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    return AlreadyExistsError("embedded broker: topic '" + name + "' already exists");
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return UnavailableError("embedded broker: creating topic '" + name + "': " + rd_kafka_err2str(err));
  }
  return OkStatus();
}

}  // namespace shortfall::pipeline
