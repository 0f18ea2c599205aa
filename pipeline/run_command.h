// The `shortfall run` command: flags and config to a RuntimeOptions, signal
// handling, and the exit code. Application::Run dispatches here.
#ifndef SHORTFALL_PIPELINE_RUN_COMMAND_H_
#define SHORTFALL_PIPELINE_RUN_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

#include "base/status.h"
#include "pipeline/runtime.h"

namespace shortfall::pipeline {

// Runs `runtime` until it returns, with SIGINT and SIGTERM asking it to stop
// cleanly (a second signal exits the process at once, status 130). Restores
// the previous handlers afterwards.
Status RunUntilStopped(Runtime& runtime);

// args excludes "run". Exit codes as Application's: 0, 1 runtime, 2 usage/config.
int RunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_RUN_COMMAND_H_
