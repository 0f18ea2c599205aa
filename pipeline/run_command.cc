#include "pipeline/run_command.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include <prometheus/registry.h>

#include "operators/catalog.h"
#include "pipeline/flags.h"
#include "pipeline/metrics_server.h"
#include "pipeline/run_config.h"
#include "pipeline/runtime.h"
#include "pipeline/runtime_probe.h"
#include "pipeline/version.h"

namespace shortfall::pipeline {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// The runtime a signal should stop; set while Run() runs.
std::atomic<Runtime*> g_running{nullptr};
std::atomic<int> g_signals{0};

extern "C" void OnSignal(int) {
  // A second signal exits at once; the first asks for a clean stop.
  if (g_signals.fetch_add(1) > 0) std::_Exit(130);
  if (Runtime* r = g_running.load()) r->RequestStop();
}

}  // namespace

namespace {

// Installs OnSignal for SIGINT and SIGTERM for its lifetime.
class StopSignals {
 public:
  StopSignals() {
    g_signals.store(0);
    previous_int_ = std::signal(SIGINT, OnSignal);
    previous_term_ = std::signal(SIGTERM, OnSignal);
  }
  ~StopSignals() {
    g_running.store(nullptr);
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  bool requested() const { return g_signals.load() > 0; }
  // Runs `runtime` with the signals asking it to stop.
  Status Run(Runtime& runtime) {
    g_running.store(&runtime);
    if (requested()) runtime.RequestStop();  // a signal that came before
    Status s = runtime.Run();
    g_running.store(nullptr);
    return s;
  }

 private:
  void (*previous_int_)(int) = nullptr;
  void (*previous_term_)(int) = nullptr;
};

// Waits `seconds`, or less when a stop is requested.
void Backoff(const StopSignals& signals, int seconds) {
  for (int i = 0; i < seconds * 10 && !signals.requested(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// Failures a new Runtime can get past: the brokers unreachable, a
// transaction aborted, a producer fenced. The new one starts from the last
// commit (the stores, the changelogs and the group's offsets).
bool Recoverable(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kAborted ||
         s.code() == StatusCode::kFailedPrecondition;
}

}  // namespace

Status RunUntilStopped(Runtime& runtime) {
  StopSignals signals;
  return signals.Run(runtime);
}

int RunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  FlagParser flags;
  flags.Add("config", "FILE", "YAML configuration (deploy/shortfall.example.yaml documents every key)");
  flags.Add("brokers", "LIST", "bootstrap servers; overrides kafka.bootstrap_servers");
  flags.AddRepeated("set", "KEY=VALUE", "override one config key, e.g. --set window.bucket=30m (repeatable)");
  flags.AddBool("until-idle", "stop once all input is processed and committed (backfills, tests)");
  flags.Add("totals-csv", "FILE", "with --until-idle: write this instance's totals per series (the same CSV as replay --totals-csv)");
  flags.AddBool("print-config", "print the effective configuration (secrets redacted) and exit");
  flags.AddBool("help", "show this help");
  if (Status s = flags.Parse(args); !s.ok() || flags.GetBool("help")) {
    if (!s.ok()) err << "shortfall run: " << s.message() << "\n\n";
    (s.ok() ? out : err) << "usage: shortfall run [--config FILE] [--brokers LIST] [--set key=value ...]\n\n"
                         << flags.Usage();
    return s.ok() ? kExitOk : kExitUsage;
  }
  const auto usage_error = [&](const Status& s) {
    err << "shortfall run: " << s.message() << "\n";
    return kExitUsage;
  };
  RunConfig config;
  if (flags.Has("config")) {
    Result<RunConfig> loaded = LoadRunConfig(flags.Get("config"));
    if (!loaded.ok()) return usage_error(loaded.status());
    config = std::move(loaded).value();
  }
  if (flags.Has("brokers")) config.brokers = flags.Get("brokers");
  for (const std::string& assignment : flags.GetAll("set")) {
    if (Status s = ApplyOverride(assignment, &config); !s.ok()) return usage_error(s.WithContext("--set"));
  }
  if (Status s = ValidateRunConfig(config); !s.ok()) return usage_error(s);
  if (flags.GetBool("print-config")) {
    out << DescribeRunConfig(config);
    return kExitOk;
  }
  Result<operators::Catalog> catalog = config.catalog_path.empty()
                                           ? Result<operators::Catalog>(operators::Catalog::Default())
                                           : operators::Catalog::LoadFile(config.catalog_path);
  if (!catalog.ok()) return usage_error(catalog.status());

  err << "shortfall run: configuration\n" << DescribeRunConfig(config);
  // The endpoint is up before the runtime connects: /healthz answers while
  // start-up waits for the broker, and /readyz says why it is not ready yet.
  Result<HostPort> bind = ParseHostPort(config.metrics_bind);
  if (!bind.ok()) return usage_error(bind.status().WithContext("metrics.bind"));
  auto registry = std::make_shared<prometheus::Registry>();
  RuntimeProbe probe(registry, std::string(kVersion));
  probe.SetUp();
  std::atomic<Runtime*> live{nullptr};
  Result<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start(bind->host, bind->port, registry, [&live]() -> std::pair<bool, std::string> {
        Runtime* r = live.load();
        return r != nullptr ? r->Readiness() : std::pair<bool, std::string>{false, "starting"};
      });
  if (!server.ok()) {
    err << "shortfall run: " << server.status().message() << "\n";
    return kExitFailure;
  }
  err << "shortfall run: metrics on " << (*server)->url() << "/metrics\n";
  RuntimeOptions options;
  options.probe = &probe;
  options.config = std::move(config);
  options.until_idle = flags.GetBool("until-idle");
  options.totals_csv = flags.Get("totals-csv");
  // A runtime that fails on Kafka is replaced by a new one, which resumes
  // from the last commit; the process ends only on a stop, when
  // --until-idle is done, or on a failure a restart cannot fix (the
  // configuration, a state directory that cannot be written).
  StopSignals signals;
  int backoff = 1;
  for (;;) {
    Result<std::unique_ptr<Runtime>> runtime = Runtime::Create(options, *catalog, err);
    if (!runtime.ok()) {
      const StatusCode code = runtime.status().code();
      if ((code == StatusCode::kUnavailable || code == StatusCode::kAborted) && !signals.requested()) {
        err << "shortfall run: " << runtime.status().ToString() << "; retrying in " << backoff << " s\n";
        Backoff(signals, backoff);
        backoff = std::min(backoff * 2, 30);
        if (!signals.requested()) continue;
      }
      if (signals.requested()) return kExitOk;
      err << "shortfall run: " << runtime.status().ToString() << "\n";
      return code == StatusCode::kInvalidArgument || code == StatusCode::kFailedPrecondition ||
                     code == StatusCode::kNotFound
                 ? kExitUsage
                 : kExitFailure;
    }
    backoff = 1;
    live.store(runtime->get());
    Status s = signals.Run(**runtime);
    live.store(nullptr);
    if (s.ok()) return kExitOk;
    const bool recover = Recoverable(s) && !(*runtime)->failed_on_state() && !signals.requested();
    runtime->reset();  // releases the state directory for the next one
    if (!recover) {
      err << "shortfall run: " << s.ToString() << "\n";
      return kExitFailure;
    }
    err << "shortfall run: " << s.ToString() << "; starting again from the last commit in " << backoff << " s\n";
    Backoff(signals, backoff);
    backoff = std::min(backoff * 2, 30);
    if (signals.requested()) return kExitOk;
  }
}

}  // namespace shortfall::pipeline
