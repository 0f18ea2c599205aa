// kafka_limit: the speed at which Kafka hands this machine the records of
// some topics — the limit a stream processor reading them can approach. A
// minimal librdkafka consumer: assigns every partition from the beginning,
// consumes in batches (rd_kafka_consume_batch_queue) with large fetch and
// queue sizes, counts, and stops when every partition is read to the high
// watermark it had at the start. Prints one line:
//
//   kafka_limit: records=5000000 wall_s=9.81 cpu_s=6.02 records_per_s=509684 records_per_cpu_s=830564
//
// usage: kafka_limit --brokers HOST:PORT --topic T [--topic T2 ...]
#include <sys/resource.h>

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "kafka_limit: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string brokers;
  std::vector<std::string> topics;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--brokers") == 0) {
      brokers = argv[i + 1];
    } else if (std::strcmp(argv[i], "--topic") == 0) {
      topics.emplace_back(argv[i + 1]);
    } else {
      return Fail(std::string("unknown flag ") + argv[i]);
    }
  }
  if (brokers.empty() || topics.empty()) return Fail("usage: kafka_limit --brokers HOST:PORT --topic T [--topic T2 ...]");

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::vector<std::pair<const char*, std::string>> props = {
      {"bootstrap.servers", brokers},
      {"group.id", "kafka-limit"},  // assign() only: no group membership, no commits
      {"enable.auto.commit", "false"},
      {"enable.partition.eof", "false"},
      // Large fetches and a deep prefetch queue: the consumer should never wait for the broker.
      {"fetch.max.bytes", "104857600"},
      {"max.partition.fetch.bytes", "10485760"},
      {"queued.min.messages", "1000000"},
      {"queued.max.messages.kbytes", "1048576"},
      {"fetch.wait.max.ms", "100"},
  };
  for (const auto& [name, value] : props) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) return Fail(err);
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) return Fail(err);

  // Every partition of every topic, from the beginning, up to its high watermark now.
  rd_kafka_topic_partition_list_t* assignment = rd_kafka_topic_partition_list_new(64);
  std::map<std::pair<std::string, int32_t>, int64_t> end;  // -> high watermark
  uint64_t expected = 0;
  for (const std::string& topic : topics) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
        md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Fail("no metadata for topic " + topic);
    }
    for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
      const int32_t partition = md->topics[0].partitions[p].id;
      int64_t low = 0;
      int64_t high = 0;
      if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &low, &high, 10000) !=
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        return Fail("no watermarks for " + topic);
      }
      if (high > low) {
        end[{topic, partition}] = high;
        expected += static_cast<uint64_t>(high - low);
        rd_kafka_topic_partition_list_add(assignment, topic.c_str(), partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
      }
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
  }

  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = CpuSeconds();
  if (rd_kafka_assign(rk, assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) return Fail("assign failed");
  rd_kafka_topic_partition_list_destroy(assignment);
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(rk);
  std::vector<rd_kafka_message_t*> batch(10000);
  uint64_t records = 0;
  size_t done = 0;
  std::map<std::pair<std::string, int32_t>, bool> finished;
  while (done < end.size()) {
    const ssize_t n = rd_kafka_consume_batch_queue(queue, 1000, batch.data(), batch.size());
    if (n < 0) return Fail("consume failed");
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = batch[static_cast<size_t>(i)];
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ++records;
        const std::pair<std::string, int32_t> tp{rd_kafka_topic_name(m->rkt), m->partition};
        auto it = end.find(tp);
        if (it != end.end() && m->offset + 1 >= it->second && !finished[tp]) {
          finished[tp] = true;
          ++done;
        }
      }
      rd_kafka_message_destroy(m);
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = CpuSeconds() - cpu_start;
  rd_kafka_queue_destroy(queue);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  std::printf("kafka_limit: records=%llu wall_s=%.2f cpu_s=%.2f records_per_s=%.0f records_per_cpu_s=%.0f\n",
              static_cast<unsigned long long>(records), wall, cpu, static_cast<double>(records) / wall,
              static_cast<double>(records) / cpu);
  return records >= expected ? 0 : Fail("read fewer records than the watermarks promised");
}
