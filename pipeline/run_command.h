// The `shortfall run` command: flags and config to a RuntimeOptions, signal
// handling, and the exit code. Application::Run dispatches here.
#ifndef SHORTFALL_PIPELINE_RUN_COMMAND_H_
#define SHORTFALL_PIPELINE_RUN_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

namespace shortfall::pipeline {

// args excludes "run". Exit codes as Application's: 0, 1 runtime, 2 usage/config.
int RunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_RUN_COMMAND_H_
