// Replay throughput against the protobuf-parse-only limit, in one run.
//
// Generates (or reads) an event file, then alternates, `--runs` times each:
//   parse   — read the file and parse every EventRecord, nothing else: the
//             cost any consumer of the file pays;
//   replay  — `shortfall replay` on the same file, in-memory state, no
//             printing: decode, validate, classify, windows, totals;
//   rocksdb — the same with --state-dir (RocksDB state, a commit every 10k
//             records), when --rocksdb is given.
// Prints medians of wall-clock events/s and of events per CPU-second, and the
// ratio replay/parse. Single-threaded: each pass runs on one core.
//
// Usage: replay_bench [--events N] [--input FILE] [--runs N] [--rocksdb]
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <ostream>
#include <streambuf>
#include <string>
#include <vector>

#include "operators/catalog.h"
#include "pipeline/event_file.h"
#include "pipeline/flags.h"
#include "pipeline/replay.h"
#include "scenario/generator.h"

namespace {

using shortfall::Status;
using namespace shortfall::pipeline;

struct Timing {
  double wall_s;
  double cpu_s;
};

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

Timing Measure(const std::function<void()>& f) {
  const double cpu0 = CpuSeconds();
  const auto wall0 = std::chrono::steady_clock::now();
  f();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return Timing{wall, CpuSeconds() - cpu0};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

class NullBuffer : public std::streambuf {
 protected:
  int overflow(int c) override { return c; }
};

void Die(const Status& s, const char* what) {
  std::cerr << "replay_bench: " << what << ": " << s.ToString() << "\n";
  std::exit(1);
}

uint64_t ParseOnly(const std::string& path) {
  auto reader = EventFileReader::Open(path, EventFileFormat::kProtobuf);
  if (!reader.ok()) Die(reader.status(), "open");
  EventFileEntry entry;
  uint64_t n = 0;
  while (true) {
    auto more = (*reader)->Next(&entry);
    if (!more.ok()) Die(more.status(), "read");
    if (!*more) break;
    ++n;
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  FlagParser flags;
  flags.Add("events", "N", "events to generate when --input is not given", "2000000");
  flags.Add("input", "FILE", "an existing protobuf event file to use instead");
  flags.Add("runs", "N", "runs of each pass; medians are reported", "5");
  flags.AddBool("rocksdb", "also measure replay with RocksDB state");
  if (Status s = flags.Parse(std::vector<std::string>(argv + 1, argv + argc)); !s.ok()) {
    std::cerr << "replay_bench: " << s.message() << "\n" << flags.Usage();
    return 2;
  }
  const uint64_t runs = flags.GetUint("runs").value_or(5);
  std::string path = flags.Get("input");
  const std::filesystem::path tmp = std::filesystem::temp_directory_path() /
                                    ("shortfall-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(tmp);
  if (path.empty()) {
    path = (tmp / "events.pb").string();
    shortfall::scenario::GeneratorOptions options;
    options.seed = 42;
    options.events = flags.GetUint("events").value_or(2000000);
    const Timing gen = Measure([&] {
      auto writer = EventFileWriter::Open(path, EventFileFormat::kProtobuf);
      if (!writer.ok()) Die(writer.status(), "create");
      shortfall::scenario::Generator generator(options);
      shortfall::v1::EventRecord record;
      while (generator.Next(&record)) {
        if (Status s = (*writer)->Write(record); !s.ok()) Die(s, "write");
      }
      if (Status s = (*writer)->Close(); !s.ok()) Die(s, "close");
    });
    std::printf("generated %llu events into %s in %.2f s\n",
                static_cast<unsigned long long>(options.events), path.c_str(), gen.wall_s);
  }

  const shortfall::operators::Catalog& catalog = shortfall::operators::Catalog::Default();
  NullBuffer null_buffer;
  std::ostream null_out(&null_buffer);
  const uint64_t events = ParseOnly(path);  // also warms the page cache

  std::map<std::string, std::vector<Timing>> timings;
  for (uint64_t run = 0; run < runs; ++run) {
    timings["parse"].push_back(Measure([&] { ParseOnly(path); }));
    timings["replay"].push_back(Measure([&] {
      ReplayOptions options;
      options.input = path;
      options.print_every = PrintEvery::kNone;
      if (Status s = RunReplay(options, catalog, null_out); !s.ok()) Die(s, "replay");
    }));
    if (flags.GetBool("rocksdb")) {
      const std::string dir = (tmp / ("state-" + std::to_string(run))).string();
      timings["rocksdb"].push_back(Measure([&] {
        ReplayOptions options;
        options.input = path;
        options.print_every = PrintEvery::kNone;
        options.state_dir = dir;
        if (Status s = RunReplay(options, catalog, null_out); !s.ok()) Die(s, "replay --state-dir");
      }));
      std::filesystem::remove_all(dir);
    }
  }
  std::filesystem::remove_all(tmp);

  std::printf("\n%llu events, %llu runs each, medians:\n", static_cast<unsigned long long>(events),
              static_cast<unsigned long long>(runs));
  std::printf("%-10s %14s %18s %12s\n", "pass", "events/s", "events/cpu-second", "wall s");
  std::map<std::string, double> rate, cpu_rate;
  for (const char* name : {"parse", "replay", "rocksdb"}) {
    if (!timings.count(name)) continue;
    std::vector<double> w, c;
    for (const Timing& t : timings[name]) {
      w.push_back(static_cast<double>(events) / t.wall_s);
      c.push_back(static_cast<double>(events) / t.cpu_s);
    }
    rate[name] = Median(w);
    cpu_rate[name] = Median(c);
    std::vector<double> walls;
    for (const Timing& t : timings[name]) walls.push_back(t.wall_s);
    std::printf("%-10s %14.0f %18.0f %12.3f\n", name, rate[name], cpu_rate[name], Median(walls));
  }
  std::printf("\nratio replay/parse: %.3f (wall)  %.3f (cpu)   aim >= 0.5; replay aim >= 1000000 events/s\n",
              rate["replay"] / rate["parse"], cpu_rate["replay"] / cpu_rate["parse"]);
  if (rate.count("rocksdb")) {
    std::printf("ratio rocksdb/parse: %.3f (wall)  %.3f (cpu)\n", rate["rocksdb"] / rate["parse"],
                cpu_rate["rocksdb"] / cpu_rate["parse"]);
  }
  return 0;
}
