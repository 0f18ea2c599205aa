#include "pipeline/flags.h"

#include <charconv>

namespace shortfall::pipeline {

void FlagParser::Add(std::string name, std::string value_name, std::string help,
                     std::optional<std::string> default_value) {
  order_.push_back(name);
  flags_[std::move(name)] = Flag{std::move(value_name), std::move(help), std::move(default_value)};
}

void FlagParser::AddRepeated(std::string name, std::string value_name, std::string help) {
  order_.push_back(name);
  flags_[std::move(name)] = Flag{std::move(value_name), std::move(help), std::nullopt, true};
}

std::vector<std::string> FlagParser::GetAll(const std::string& name) const {
  auto it = repeated_values_.find(name);
  return it == repeated_values_.end() ? std::vector<std::string>() : it->second;
}

void FlagParser::AddBool(std::string name, std::string help) {
  order_.push_back(name);
  flags_[std::move(name)] = Flag{"", std::move(help), std::nullopt};
}

Status FlagParser::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      return InvalidArgumentError("unexpected argument '" + arg + "'");
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    auto it = flags_.find(name);
    if (it == flags_.end()) return InvalidArgumentError("unknown flag --" + name);
    if (it->second.value_name.empty()) {
      if (value) return InvalidArgumentError("--" + name + " takes no value");
      if (!values_.emplace(name, "true").second) return InvalidArgumentError("--" + name + " given twice");
      continue;
    }
    if (!value) {
      if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0) {
        return InvalidArgumentError("--" + name + " needs a value (" + it->second.value_name + ")");
      }
      value = args[++i];
    }
    if (it->second.repeated) {
      repeated_values_[name].push_back(*value);
      values_[name] = *value;
      continue;
    }
    if (!values_.emplace(name, *value).second) return InvalidArgumentError("--" + name + " given twice");
  }
  return OkStatus();
}

bool FlagParser::Has(const std::string& name) const { return values_.count(name) > 0; }

std::string FlagParser::Get(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  if (auto it = flags_.find(name); it != flags_.end() && it->second.default_value) {
    return *it->second.default_value;
  }
  return "";
}

Result<uint64_t> FlagParser::GetUint(const std::string& name) const {
  const std::string text = Get(name);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    return InvalidArgumentError("--" + name + ": '" + text + "' is not a non-negative integer");
  }
  return v;
}

Result<int64_t> FlagParser::GetInt(const std::string& name) const {
  const std::string text = Get(name);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    return InvalidArgumentError("--" + name + ": '" + text + "' is not an integer");
  }
  return v;
}

std::string FlagParser::Usage() const {
  std::string out;
  for (const std::string& name : order_) {
    const Flag& f = flags_.at(name);
    std::string left = "  --" + name + (f.value_name.empty() ? "" : " " + f.value_name);
    if (left.size() < 26) left.resize(26, ' ');
    else left += "  ";
    out += left + f.help;
    if (f.default_value && !f.default_value->empty()) out += " (default: " + *f.default_value + ")";
    out += "\n";
  }
  return out;
}

}  // namespace shortfall::pipeline
