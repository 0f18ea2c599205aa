// FlagParser: the command line of one subcommand. Accepts "--name value",
// "--name=value" and boolean "--name"; anything else is an error naming the
// argument, and so is a flag given twice or a value that looks like a flag
// ("--input --format": write "--input=--format" if you mean it). Every flag is declared with its help text, which Usage() prints.
//
// Thread-safety: not thread-safe; used once at start-up.
#ifndef SHORTFALL_PIPELINE_FLAGS_H_
#define SHORTFALL_PIPELINE_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace shortfall::pipeline {

class FlagParser {
 public:
  // A flag that takes a value; `value_name` shows in help ("FILE").
  void Add(std::string name, std::string value_name, std::string help,
           std::optional<std::string> default_value = std::nullopt);
  // A flag that takes no value.
  void AddBool(std::string name, std::string help);
  // A flag that takes a value and may be given many times (GetAll).
  void AddRepeated(std::string name, std::string value_name, std::string help);

  // Parses args (without the program and subcommand names).
  Status Parse(const std::vector<std::string>& args);

  bool Has(const std::string& name) const;
  // The value given, else the default, else "".
  std::string Get(const std::string& name) const;
  bool GetBool(const std::string& name) const { return Has(name); }
  // Every value of a repeated flag, in command-line order.
  std::vector<std::string> GetAll(const std::string& name) const;
  Result<uint64_t> GetUint(const std::string& name) const;
  Result<int64_t> GetInt(const std::string& name) const;

  // One line per flag: "  --name VALUE   help (default: x)".
  std::string Usage() const;

 private:
  struct Flag {
    std::string value_name;  // empty for boolean flags
    std::string help;
    std::optional<std::string> default_value;
    bool repeated = false;
  };
  std::vector<std::string> order_;
  std::map<std::string, Flag> flags_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> repeated_values_;
};

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_FLAGS_H_
