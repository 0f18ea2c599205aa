// The `shortfall demo` command: the whole product on one machine with
// nothing installed. It starts the embedded broker in this process, produces
// a named scenario with injected shortages to it, runs the pipeline
// (`shortfall run`'s Runtime) with the metrics endpoint up, prints each alert
// as it is delivered to the alert topic, and ends with a table of rolling
// volumes against their baselines. With --follow it keeps running (broker,
// pipeline and metrics) until Ctrl-C, so other tools can connect.
//
// Application::Run dispatches here. Exit codes as Application's: 0, 1
// runtime failure, 2 usage.
#ifndef SHORTFALL_PIPELINE_DEMO_COMMAND_H_
#define SHORTFALL_PIPELINE_DEMO_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

namespace shortfall::pipeline {

// args excludes "demo".
int DemoCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_DEMO_COMMAND_H_
