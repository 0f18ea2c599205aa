// Application: the `shortfall` command line. Parses the subcommand and its
// flags, validates them (errors name the flag), builds what the subcommand
// needs and runs it. main() only hands over argv and returns the exit code.
//
// Exit codes: 0 success, 1 runtime failure (I/O, corrupt input framing,
// Kafka errors), 2 usage or configuration error.
//
// Thread-safety: one Application per process. `broker` blocks SIGINT and
// SIGTERM in the calling thread (and so in the broker threads it starts)
// and waits for one of them with sigwait(); it restores the mask on return.
#ifndef SHORTFALL_PIPELINE_APPLICATION_H_
#define SHORTFALL_PIPELINE_APPLICATION_H_

#include <ostream>
#include <string>
#include <vector>

namespace shortfall::pipeline {

class Application {
 public:
  Application(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}

  // args excludes the program name: {"replay", "--input", "x.pb"}.
  int Run(const std::vector<std::string>& args);

 private:
  int Gen(const std::vector<std::string>& args);
  int Replay(const std::vector<std::string>& args);
  int Broker(const std::vector<std::string>& args);
  int Tail(const std::vector<std::string>& args);
  int Help();

  std::ostream& out_;
  std::ostream& err_;
};

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_APPLICATION_H_
