#include "pipeline/run_config.h"

#include "pipeline/kafka_client.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iterator>
#include <limits>
#include <set>
#include <system_error>

namespace shortfall::pipeline {
namespace {

using Properties = std::vector<std::pair<std::string, std::string>>;

constexpr std::string_view kRedacted = "[redacted]";
constexpr int32_t kMaxBatchSize = 1'000'000;
constexpr size_t kMaxApplicationIdLength = 200;
constexpr size_t kMaxTopicLength = 249;

// ---------------------------------------------------------------------------
// Text helpers.

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string Join(const std::vector<std::string_view>& items, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    out += items[i];
  }
  return out;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (;;) {
    const size_t at = s.find(sep);
    parts.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool AllNameChars(std::string_view s) { return std::all_of(s.begin(), s.end(), IsNameChar); }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// "path: what", or the OK status.
Status AtPath(std::string_view path, const Status& status) {
  if (status.ok()) return status;
  return Status(status.code(), std::string(path) + ": " + status.message());
}

// YAML output: strings always double-quoted, so no value can change type on
// the way back (a topic named "true", an empty string).
std::string YamlString(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A map key as YAML: plain when it cannot be read as anything but a string.
std::string YamlKey(std::string_view key) {
  static constexpr std::string_view kReserved[] = {"null", "true", "false", "yes", "no",
                                                   "on",   "off",  "y",     "n",   "~"};
  const bool reserved = std::any_of(std::begin(kReserved), std::end(kReserved),
                                    [&](std::string_view r) { return EqualsIgnoreCase(key, r); });
  const bool plain = !key.empty() && AllNameChars(key) && key.front() != '-' &&
                     key.front() != '.' && !(key.front() >= '0' && key.front() <= '9') && !reserved;
  return plain ? std::string(key) : YamlString(key);
}

// The shortest text that reads back as the same double.
std::string FormatDouble(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  SHORTFALL_CHECK(ec == std::errc());
  return std::string(buf, end);
}

// ---------------------------------------------------------------------------
// Value parsers: on success they write *out, on error they leave it alone and
// say what is wrong with the text (the caller adds the key path).

Status SetString(std::string_view text, std::string* out) {
  *out = std::string(text);
  return OkStatus();
}

template <typename Int>
Status SetInt(std::string_view text, Int* out) {
  int64_t v = 0;
  const char* const last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(text.data(), last, v);
  constexpr int64_t kMin = std::numeric_limits<Int>::min();
  constexpr int64_t kMax = std::numeric_limits<Int>::max();
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && end == last && (v < kMin || v > kMax))) {
    return InvalidArgumentError(Quote(text) + " is out of range (" + std::to_string(kMin) + " to " +
                                std::to_string(kMax) + ")");
  }
  if (ec != std::errc() || end != last || text.empty()) {
    return InvalidArgumentError(Quote(text) + " is not an integer");
  }
  *out = static_cast<Int>(v);
  return OkStatus();
}

Status SetDouble(std::string_view text, double* out) {
  double v = 0;
  const char* const last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(text.data(), last, v);
  if (ec != std::errc() || end != last || text.empty() || !std::isfinite(v)) {
    return InvalidArgumentError(Quote(text) + " is not a finite number (want e.g. 0.055, 1e9)");
  }
  *out = v;
  return OkStatus();
}

Status SetBool(std::string_view text, bool* out) {
  if (text == "true") {
    *out = true;
  } else if (text == "false") {
    *out = false;
  } else {
    return InvalidArgumentError(Quote(text) + " is not a boolean (want true or false)");
  }
  return OkStatus();
}

std::string FormatBool(bool b) { return b ? "true" : "false"; }

// One numeric field of a detector override, for PutOverride.
template <typename Override>
struct OverrideNumber {
  std::string_view field;
  std::optional<double> Override::*member;
};

// Puts one detector override: the entry name is "<group>/<key>" ("*" for
// any; `key` names the second part: the corridor or destination), the value
// "field=value" pairs separated by blanks or commas, each field one of
// `numbers` or "enabled". An entry for the same group and key is replaced in
// place. `usage` says what the name should be, `example` what a value sets.
template <typename Override, size_t N>
Status PutOverride(std::string_view name, std::string_view spec, std::string Override::*key,
                   const OverrideNumber<Override> (&numbers)[N], std::string_view usage, std::string_view example,
                   std::vector<Override>* overrides) {
  const size_t slash = name.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == name.size()) {
    return InvalidArgumentError(Quote(name) + " is not " + std::string(usage));
  }
  Override o;
  o.group = std::string(name.substr(0, slash));
  o.*key = std::string(name.substr(slash + 1));
  std::string text(spec);
  std::replace(text.begin(), text.end(), ',', ' ');
  size_t fields = 0;
  for (std::string_view item : Split(text, ' ')) {
    item = Trim(item);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string_view field = item.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    const auto* number =
        std::find_if(std::begin(numbers), std::end(numbers), [&](const auto& n) { return n.field == field; });
    Status st;
    if (number != std::end(numbers)) {
      double v = 0;
      st = SetDouble(value, &v);
      o.*(number->member) = v;
    } else if (field == "enabled") {
      bool flag = false;
      st = SetBool(value, &flag);
      o.enabled = flag;
    } else {
      std::string known;
      for (const auto& n : numbers) known += std::string(n.field) + ", ";
      return InvalidArgumentError(Quote(item) + " is not field=value with a field of " + known + "enabled");
    }
    if (!st.ok()) return InvalidArgumentError(std::string(field) + ": " + st.message());
    ++fields;
  }
  if (fields == 0) return InvalidArgumentError("sets nothing (want e.g. " + std::string(example) + ")");
  for (Override& existing : *overrides) {
    if (existing.group == o.group && existing.*key == o.*key) {
      existing = std::move(o);
      return OkStatus();
    }
  }
  overrides->push_back(std::move(o));
  return OkStatus();
}

// A volume-drop override: "<group>/<corridor>" to e.g.
// "cusum_threshold=6 min_expected_shipments=20" or "enabled=false".
Status PutVolumeDropOverride(std::string_view name, std::string_view spec,
                             std::vector<operators::VolumeDropOverride>* overrides) {
  using O = operators::VolumeDropOverride;
  static constexpr OverrideNumber<O> kNumbers[] = {{"cusum_threshold", &O::cusum_threshold},
                                                   {"cusum_slack", &O::cusum_slack},
                                                   {"min_expected_shipments", &O::min_expected_shipments}};
  return PutOverride(name, spec, &O::corridor, kNumbers,
                     "<group>/<corridor> (e.g. ppe/*, semiconductors/MX-US-2304)", "cusum_threshold=6", overrides);
}

std::string FormatVolumeDropOverride(const operators::VolumeDropOverride& o) {
  std::string out;
  const auto add = [&](std::string_view field, const std::string& value) {
    if (!out.empty()) out += " ";
    out += std::string(field) + "=" + value;
  };
  if (o.cusum_threshold) add("cusum_threshold", FormatDouble(*o.cusum_threshold));
  if (o.cusum_slack) add("cusum_slack", FormatDouble(*o.cusum_slack));
  if (o.min_expected_shipments) add("min_expected_shipments", FormatDouble(*o.min_expected_shipments));
  if (o.enabled) add("enabled", FormatBool(*o.enabled));
  return out;
}

// An origin-concentration override: "<group>/<destination country>" to
// e.g. "share_threshold=0.9 z_threshold=4" or "enabled=false".
Status PutOriginConcentrationOverride(std::string_view name, std::string_view spec,
                                      std::vector<operators::OriginConcentrationOverride>* overrides) {
  using O = operators::OriginConcentrationOverride;
  static constexpr OverrideNumber<O> kNumbers[] = {{"share_threshold", &O::share_threshold},
                                                   {"others_ratio", &O::others_ratio},
                                                   {"min_shipments", &O::min_shipments},
                                                   {"z_threshold", &O::z_threshold}};
  return PutOverride(name, spec, &O::destination, kNumbers, "<group>/<destination> (e.g. ppe/*, semiconductors/US)",
                     "share_threshold=0.9", overrides);
}

std::string FormatOriginConcentrationOverride(const operators::OriginConcentrationOverride& o) {
  std::string out;
  const auto add = [&](std::string_view field, const std::string& value) {
    out += (out.empty() ? "" : " ") + std::string(field) + "=" + value;
  };
  if (o.share_threshold) add("share_threshold", FormatDouble(*o.share_threshold));
  if (o.others_ratio) add("others_ratio", FormatDouble(*o.others_ratio));
  if (o.min_shipments) add("min_shipments", FormatDouble(*o.min_shipments));
  if (o.z_threshold) add("z_threshold", FormatDouble(*o.z_threshold));
  if (o.enabled) add("enabled", FormatBool(*o.enabled));
  return out;
}

Result<DurationMs> ToDuration(std::string_view text) {
  Result<DurationMs> d = ParseDuration(text);
  if (!d.ok()) {
    return InvalidArgumentError(Quote(text) +
                                " is not a duration (want e.g. 250ms, 90s, 15m, 6h, 7d)");
  }
  return d;
}

Status SetDuration(std::string_view text, DurationMs* out) {
  SHORTFALL_ASSIGN_OR_RETURN(*out, ToDuration(text));
  return OkStatus();
}

Status SetDurationList(const std::vector<std::string>& items, std::vector<DurationMs>* out) {
  std::vector<DurationMs> parsed;
  for (const std::string& item : items) {
    SHORTFALL_ASSIGN_OR_RETURN(DurationMs d, ToDuration(item));
    parsed.push_back(d);
  }
  *out = std::move(parsed);
  return OkStatus();
}

std::string FormatDurationList(const std::vector<DurationMs>& list) {
  std::string out = "[";
  for (size_t i = 0; i < list.size(); ++i) {
    if (i > 0) out += ", ";
    out += FormatDuration(list[i]);
  }
  return out + "]";
}

// Why `name` cannot be a librdkafka property in kafka.*, or OK.
Status CheckPropertyName(std::string_view name) {
  if (name.empty() || !AllNameChars(name)) {
    return InvalidArgumentError("not a librdkafka property name (want [A-Za-z0-9._-]+)");
  }
  if (EqualsIgnoreCase(name, "bootstrap.servers")) {
    return InvalidArgumentError(
        "set the brokers as kafka.bootstrap_servers (or --brokers): there is one place for them");
  }
  if (EqualsIgnoreCase(name, "group.id")) {
    return InvalidArgumentError("application_id sets the consumer group id");
  }
  return OkStatus();
}

template <typename V>
void Put(std::vector<std::pair<std::string, V>>* map, std::string_view key, V value) {
  for (auto& [k, v] : *map) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  map->emplace_back(std::string(key), std::move(value));
}

Status PutProperty(std::string_view name, std::string_view value, Properties* props) {
  SHORTFALL_RETURN_IF_ERROR(CheckPropertyName(name));
  Put(props, name, std::string(value));
  return OkStatus();
}

std::vector<std::pair<std::string, std::string>> ShowProperties(const Properties& props) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : props) {
    out.emplace_back(name, IsSecretProperty(name) ? YamlString(kRedacted) : YamlString(value));
  }
  return out;
}

// ---------------------------------------------------------------------------
// The schema: every settable key path, in the order of the example file. It
// drives the YAML reader, overrides, the lists of known keys and Describe,
// so the four cannot disagree.

enum class Shape { kScalar, kList, kMap };

struct Leaf {
  std::string_view path;
  Shape shape = Shape::kScalar;
  // kScalar
  Status (*set)(std::string_view text, RunConfig* c) = nullptr;
  std::string (*show)(const RunConfig& c) = nullptr;  // kScalar and kList: YAML text
  // kList
  Status (*set_list)(const std::vector<std::string>& items, RunConfig* c) = nullptr;
  // kMap: a YAML map clears, then puts each entry; an override only puts.
  void (*clear)(RunConfig* c) = nullptr;
  Status (*put)(std::string_view key, std::string_view value, RunConfig* c) = nullptr;
  std::vector<std::pair<std::string, std::string>> (*entries)(const RunConfig& c) = nullptr;
};

const std::vector<Leaf>& Leaves() {
  static const std::vector<Leaf> kLeaves = {
      {.path = "application_id",
       .set = [](std::string_view t, RunConfig* c) { return SetString(t, &c->application_id); },
       .show = [](const RunConfig& c) { return YamlString(c.application_id); }},
      {.path = "kafka.bootstrap_servers",
       .set = [](std::string_view t, RunConfig* c) { return SetString(t, &c->brokers); },
       .show = [](const RunConfig& c) { return YamlString(c.brokers); }},
      {.path = "kafka.common",
       .shape = Shape::kMap,
       .clear = [](RunConfig* c) { c->kafka_common.clear(); },
       .put = [](std::string_view k, std::string_view v,
                 RunConfig* c) { return PutProperty(k, v, &c->kafka_common); },
       .entries = [](const RunConfig& c) { return ShowProperties(c.kafka_common); }},
      {.path = "kafka.consumer",
       .shape = Shape::kMap,
       .clear = [](RunConfig* c) { c->kafka_consumer.clear(); },
       .put = [](std::string_view k, std::string_view v,
                 RunConfig* c) { return PutProperty(k, v, &c->kafka_consumer); },
       .entries = [](const RunConfig& c) { return ShowProperties(c.kafka_consumer); }},
      {.path = "kafka.producer",
       .shape = Shape::kMap,
       .clear = [](RunConfig* c) { c->kafka_producer.clear(); },
       .put = [](std::string_view k, std::string_view v,
                 RunConfig* c) { return PutProperty(k, v, &c->kafka_producer); },
       .entries = [](const RunConfig& c) { return ShowProperties(c.kafka_producer); }},
      {.path = "topics.shipments",
       .set = [](std::string_view t, RunConfig* c) { return SetString(t, &c->topics.shipments); },
       .show = [](const RunConfig& c) { return YamlString(c.topics.shipments); }},
      {.path = "topics.customs",
       .set = [](std::string_view t, RunConfig* c) { return SetString(t, &c->topics.customs); },
       .show = [](const RunConfig& c) { return YamlString(c.topics.customs); }},
      {.path = "topics.alerts",
       .set = [](std::string_view t, RunConfig* c) { return SetString(t, &c->topics.alerts); },
       .show = [](const RunConfig& c) { return YamlString(c.topics.alerts); }},
      {.path = "topics.dlq",
       .set = [](std::string_view t, RunConfig* c) { return SetString(t, &c->topics.dlq); },
       .show = [](const RunConfig& c) { return YamlString(c.topics.dlq); }},
      {.path = "topics.alerts_json",
       .set = [](std::string_view t, RunConfig* c) { return SetString(t, &c->topics.alerts_json); },
       .show = [](const RunConfig& c) { return YamlString(c.topics.alerts_json); }},
      {.path = "repartition.partitions",
       .set = [](std::string_view t, RunConfig* c) { return SetInt(t, &c->repartition_partitions); },
       .show = [](const RunConfig& c) { return std::to_string(c.repartition_partitions); }},
      {.path = "repartition.replication_factor",
       .set = [](std::string_view t, RunConfig* c) { return SetInt(t, &c->replication_factor); },
       .show = [](const RunConfig& c) { return std::to_string(c.replication_factor); }},
      {.path = "processing.guarantee",
       .set =
           [](std::string_view t, RunConfig* c) {
             SHORTFALL_ASSIGN_OR_RETURN(c->guarantee, ParseGuarantee(t));
             return OkStatus();
           },
       .show = [](const RunConfig& c) { return std::string(GuaranteeName(c.guarantee)); }},
      {.path = "processing.commit_interval",
       .set = [](std::string_view t, RunConfig* c) { return SetDuration(t, &c->commit_interval); },
       .show = [](const RunConfig& c) { return FormatDuration(c.commit_interval); }},
      {.path = "processing.batch_size",
       .set = [](std::string_view t, RunConfig* c) { return SetInt(t, &c->batch_size); },
       .show = [](const RunConfig& c) { return std::to_string(c.batch_size); }},
      {.path = "processing.shutdown_timeout",
       .set = [](std::string_view t, RunConfig* c) { return SetDuration(t, &c->shutdown_timeout); },
       .show = [](const RunConfig& c) { return FormatDuration(c.shutdown_timeout); }},
      {.path = "processing.idle_after",
       .set = [](std::string_view t, RunConfig* c) { return SetDuration(t, &c->idle_after); },
       .show = [](const RunConfig& c) { return FormatDuration(c.idle_after); }},
      {.path = "processing.num_standby_replicas",
       .set = [](std::string_view t, RunConfig* c) { return SetInt(t, &c->num_standby_replicas); },
       .show = [](const RunConfig& c) { return std::to_string(c.num_standby_replicas); }},
      {.path = "state.dir",
       .set = [](std::string_view t, RunConfig* c) { return SetString(t, &c->state_dir); },
       .show = [](const RunConfig& c) { return YamlString(c.state_dir); }},
      {.path = "state.block_cache_mb",
       .set = [](std::string_view t, RunConfig* c) { return SetInt(t, &c->state_block_cache_mb); },
       .show = [](const RunConfig& c) { return std::to_string(c.state_block_cache_mb); }},
      {.path = "state.write_buffer_mb",
       .set = [](std::string_view t, RunConfig* c) { return SetInt(t, &c->state_write_buffer_mb); },
       .show = [](const RunConfig& c) { return std::to_string(c.state_write_buffer_mb); }},
      {.path = "catalog",
       .set = [](std::string_view t, RunConfig* c) { return SetString(t, &c->catalog_path); },
       .show = [](const RunConfig& c) { return YamlString(c.catalog_path); }},
      {.path = "window.bucket",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.window.bucket); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.window.bucket); }},
      {.path = "window.rolling",
       .shape = Shape::kList,
       .show = [](const RunConfig& c) { return FormatDurationList(c.pipeline.window.rolling); },
       .set_list = [](const std::vector<std::string>& items,
                      RunConfig* c) { return SetDurationList(items, &c->pipeline.window.rolling); }},
      {.path = "window.allowed_lateness",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.window.allowed_lateness); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.window.allowed_lateness); }},
      {.path = "validation.max_future_skew",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.normalizer.max_future_skew); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.normalizer.max_future_skew); }},
      {.path = "validation.max_line_quantity",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.normalizer.max_line_quantity); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.normalizer.max_line_quantity); }},
      {.path = "validation.max_line_gross_weight_kg",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.normalizer.max_line_gross_weight_kg); },
       .show = [](const RunConfig& c) {
         return FormatDouble(c.pipeline.normalizer.max_line_gross_weight_kg);
       }},
      {.path = "validation.max_line_value_usd",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.normalizer.max_line_value_usd); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.normalizer.max_line_value_usd); }},
      {.path = "validation.usd_rates",
       .shape = Shape::kMap,
       .clear = [](RunConfig* c) { c->pipeline.normalizer.usd_rates.clear(); },
       .put =
           [](std::string_view k, std::string_view v, RunConfig* c) {
             double rate = 0;
             SHORTFALL_RETURN_IF_ERROR(SetDouble(v, &rate));
             Put(&c->pipeline.normalizer.usd_rates, k, rate);
             return OkStatus();
           },
       .entries =
           [](const RunConfig& c) {
             std::vector<std::pair<std::string, std::string>> out;
             for (const auto& [code, rate] : c.pipeline.normalizer.usd_rates) {
               out.emplace_back(code, FormatDouble(rate));
             }
             return out;
           }},
      {.path = "detection.volume_drop.enabled",
       .set = [](std::string_view t, RunConfig* c) { return SetBool(t, &c->pipeline.detection.volume_drop.enabled); },
       .show = [](const RunConfig& c) { return FormatBool(c.pipeline.detection.volume_drop.enabled); }},
      {.path = "detection.volume_drop.window",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.volume_drop.window); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.volume_drop.window); }},
      {.path = "detection.volume_drop.baseline_weeks",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetInt(t, &c->pipeline.detection.volume_drop.baseline_weeks); },
       .show = [](const RunConfig& c) { return std::to_string(c.pipeline.detection.volume_drop.baseline_weeks); }},
      {.path = "detection.volume_drop.min_history_weeks",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetInt(t, &c->pipeline.detection.volume_drop.min_history_weeks); },
       .show =
           [](const RunConfig& c) { return std::to_string(c.pipeline.detection.volume_drop.min_history_weeks); }},
      {.path = "detection.volume_drop.measures",
       .shape = Shape::kList,
       .show =
           [](const RunConfig& c) {
             std::string out = "[";
             for (const std::string& m : c.pipeline.detection.volume_drop.measures) {
               out += (out.size() > 1 ? ", " : "") + m;
             }
             return out + "]";
           },
       .set_list =
           [](const std::vector<std::string>& items, RunConfig* c) {
             c->pipeline.detection.volume_drop.measures = items;
             return OkStatus();
           }},
      {.path = "detection.volume_drop.min_expected_shipments",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.volume_drop.min_expected_shipments); },
       .show =
           [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.volume_drop.min_expected_shipments); }},
      {.path = "detection.volume_drop.relative_floor",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.volume_drop.relative_floor); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.volume_drop.relative_floor); }},
      {.path = "detection.volume_drop.cusum_slack",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.volume_drop.cusum_slack); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.volume_drop.cusum_slack); }},
      {.path = "detection.volume_drop.cusum_threshold",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.volume_drop.cusum_threshold); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.volume_drop.cusum_threshold); }},
      {.path = "detection.volume_drop.recover_z",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.volume_drop.recover_z); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.volume_drop.recover_z); }},
      {.path = "detection.volume_drop.overrides",
       .shape = Shape::kMap,
       .clear = [](RunConfig* c) { c->pipeline.detection.volume_drop_overrides.clear(); },
       .put =
           [](std::string_view k, std::string_view v, RunConfig* c) {
             return PutVolumeDropOverride(k, v, &c->pipeline.detection.volume_drop_overrides);
           },
       .entries =
           [](const RunConfig& c) {
             std::vector<std::pair<std::string, std::string>> out;
             for (const operators::VolumeDropOverride& o : c.pipeline.detection.volume_drop_overrides) {
               out.emplace_back(o.group + "/" + o.corridor, YamlString(FormatVolumeDropOverride(o)));
             }
             return out;
           }},
      {.path = "detection.customs_hold.enabled",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetBool(t, &c->pipeline.detection.customs_hold.enabled); },
       .show = [](const RunConfig& c) { return FormatBool(c.pipeline.detection.customs_hold.enabled); }},
      {.path = "detection.customs_hold.window",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.customs_hold.window); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.customs_hold.window); }},
      {.path = "detection.customs_hold.baseline_weeks",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetInt(t, &c->pipeline.detection.customs_hold.baseline_weeks); },
       .show = [](const RunConfig& c) { return std::to_string(c.pipeline.detection.customs_hold.baseline_weeks); }},
      {.path = "detection.customs_hold.min_history_weeks",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetInt(t, &c->pipeline.detection.customs_hold.min_history_weeks); },
       .show = [](const RunConfig& c) { return std::to_string(c.pipeline.detection.customs_hold.min_history_weeks); }},
      {.path = "detection.customs_hold.min_filings",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.customs_hold.min_filings); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.customs_hold.min_filings); }},
      {.path = "detection.customs_hold.overdispersion",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.customs_hold.overdispersion); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.customs_hold.overdispersion); }},
      {.path = "detection.customs_hold.cusum_slack",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.customs_hold.cusum_slack); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.customs_hold.cusum_slack); }},
      {.path = "detection.customs_hold.cusum_threshold",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.customs_hold.cusum_threshold); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.customs_hold.cusum_threshold); }},
      {.path = "detection.customs_hold.recover_z",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.customs_hold.recover_z); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.customs_hold.recover_z); }},
      {.path = "detection.customs_hold.min_ratio",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.customs_hold.min_ratio); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.customs_hold.min_ratio); }},
      {.path = "detection.unit_value.enabled",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetBool(t, &c->pipeline.detection.unit_value.enabled); },
       .show = [](const RunConfig& c) { return FormatBool(c.pipeline.detection.unit_value.enabled); }},
      {.path = "detection.unit_value.window",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.unit_value.window); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.unit_value.window); }},
      {.path = "detection.unit_value.baseline_window",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.unit_value.baseline_window); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.unit_value.baseline_window); }},
      {.path = "detection.unit_value.min_lines",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.unit_value.min_samples); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.unit_value.min_samples); }},
      {.path = "detection.unit_value.min_reference_lines",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.unit_value.min_reference_samples); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.unit_value.min_reference_samples); }},
      {.path = "detection.unit_value.price_sd",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.unit_value.sample_sd); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.unit_value.sample_sd); }},
      {.path = "detection.unit_value.relative_floor",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.unit_value.relative_floor); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.unit_value.relative_floor); }},
      {.path = "detection.unit_value.cusum_slack",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.unit_value.cusum_slack); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.unit_value.cusum_slack); }},
      {.path = "detection.unit_value.cusum_threshold",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.unit_value.cusum_threshold); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.unit_value.cusum_threshold); }},
      {.path = "detection.unit_value.recover_z",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.unit_value.recover_z); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.unit_value.recover_z); }},
      {.path = "detection.unit_value.min_ratio",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.unit_value.min_ratio); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.unit_value.min_ratio); }},
      {.path = "detection.unit_value.max_held",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.unit_value.max_held); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.unit_value.max_held); }},
      {.path = "detection.origin_concentration.enabled",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetBool(t, &c->pipeline.detection.origin_concentration.enabled); },
       .show = [](const RunConfig& c) { return FormatBool(c.pipeline.detection.origin_concentration.enabled); }},
      {.path = "detection.origin_concentration.window",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.origin_concentration.window); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.origin_concentration.window); }},
      {.path = "detection.origin_concentration.baseline_weeks",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetInt(t, &c->pipeline.detection.origin_concentration.baseline_weeks); },
       .show =
           [](const RunConfig& c) { return std::to_string(c.pipeline.detection.origin_concentration.baseline_weeks); }},
      {.path = "detection.origin_concentration.min_history_weeks",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetInt(t, &c->pipeline.detection.origin_concentration.min_history_weeks); },
       .show =
           [](const RunConfig& c) { return std::to_string(c.pipeline.detection.origin_concentration.min_history_weeks); }},
      {.path = "detection.origin_concentration.share_threshold",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.origin_concentration.share_threshold); },
       .show =
           [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.origin_concentration.share_threshold); }},
      {.path = "detection.origin_concentration.others_ratio",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.origin_concentration.others_ratio); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.origin_concentration.others_ratio); }},
      {.path = "detection.origin_concentration.min_shipments",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.origin_concentration.min_shipments); },
       .show =
           [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.origin_concentration.min_shipments); }},
      {.path = "detection.origin_concentration.relative_noise",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.origin_concentration.relative_noise); },
       .show =
           [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.origin_concentration.relative_noise); }},
      {.path = "detection.origin_concentration.z_threshold",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.origin_concentration.z_threshold); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.origin_concentration.z_threshold); }},
      {.path = "detection.origin_concentration.recover_z",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.origin_concentration.recover_z); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.origin_concentration.recover_z); }},
      {.path = "detection.origin_concentration.overrides",
       .shape = Shape::kMap,
       .clear = [](RunConfig* c) { c->pipeline.detection.origin_concentration_overrides.clear(); },
       .put =
           [](std::string_view k, std::string_view v, RunConfig* c) {
             return PutOriginConcentrationOverride(k, v, &c->pipeline.detection.origin_concentration_overrides);
           },
       .entries =
           [](const RunConfig& c) {
             std::vector<std::pair<std::string, std::string>> out;
             for (const auto& o : c.pipeline.detection.origin_concentration_overrides) {
               out.emplace_back(o.group + "/" + o.destination, YamlString(FormatOriginConcentrationOverride(o)));
             }
             return out;
           }},
      {.path = "detection.dwell.enabled",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetBool(t, &c->pipeline.detection.dwell.enabled); },
       .show = [](const RunConfig& c) { return FormatBool(c.pipeline.detection.dwell.enabled); }},
      {.path = "detection.dwell.window",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.dwell.window); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.dwell.window); }},
      {.path = "detection.dwell.baseline_window",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.dwell.baseline_window); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.dwell.baseline_window); }},
      {.path = "detection.dwell.min_releases",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.dwell.min_samples); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.dwell.min_samples); }},
      {.path = "detection.dwell.min_reference_releases",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.dwell.min_reference_samples); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.dwell.min_reference_samples); }},
      {.path = "detection.dwell.dwell_sd",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.dwell.sample_sd); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.dwell.sample_sd); }},
      {.path = "detection.dwell.relative_floor",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.dwell.relative_floor); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.dwell.relative_floor); }},
      {.path = "detection.dwell.cusum_slack",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.dwell.cusum_slack); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.dwell.cusum_slack); }},
      {.path = "detection.dwell.cusum_threshold",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.dwell.cusum_threshold); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.dwell.cusum_threshold); }},
      {.path = "detection.dwell.recover_z",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.dwell.recover_z); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.dwell.recover_z); }},
      {.path = "detection.dwell.min_ratio",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDouble(t, &c->pipeline.detection.dwell.min_ratio); },
       .show = [](const RunConfig& c) { return FormatDouble(c.pipeline.detection.dwell.min_ratio); }},
      {.path = "detection.dwell.max_held",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.dwell.max_held); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.dwell.max_held); }},
      {.path = "detection.dwell.time_bound",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.dwell_join.time_bound); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.dwell_join.time_bound); }},
      {.path = "detection.alert_lifecycle.resolve_after",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.lifecycle.resolve_after); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.lifecycle.resolve_after); }},
      {.path = "detection.alert_lifecycle.cooldown",
       .set = [](std::string_view t,
                 RunConfig* c) { return SetDuration(t, &c->pipeline.detection.lifecycle.cooldown); },
       .show = [](const RunConfig& c) { return FormatDuration(c.pipeline.detection.lifecycle.cooldown); }},
      {.path = "metrics.bind",
       .set = [](std::string_view t, RunConfig* c) { return SetString(t, &c->metrics_bind); },
       .show = [](const RunConfig& c) { return YamlString(c.metrics_bind); }},
  };
  return kLeaves;
}

const Leaf* FindLeaf(std::string_view path) {
  for (const Leaf& leaf : Leaves()) {
    if (leaf.path == path) return &leaf;
  }
  return nullptr;
}

bool StartsWithSection(std::string_view path, std::string_view section) {
  return path.size() > section.size() && path.substr(0, section.size()) == section &&
         path[section.size()] == '.';
}

// True when some leaf lies below `path` ("" is the root).
bool IsSection(std::string_view path) {
  if (path.empty()) return true;
  return std::any_of(Leaves().begin(), Leaves().end(),
                     [&](const Leaf& leaf) { return StartsWithSection(leaf.path, path); });
}

std::string JoinPath(std::string_view section, std::string_view key) {
  return section.empty() ? std::string(key) : std::string(section) + "." + std::string(key);
}

// "known keys under window: bucket, rolling, allowed_lateness".
std::string KnownKeys(std::string_view section) {
  std::vector<std::string_view> keys;
  for (const Leaf& leaf : Leaves()) {
    std::string_view rest = leaf.path;
    if (!section.empty()) {
      if (!StartsWithSection(rest, section)) continue;
      rest.remove_prefix(section.size() + 1);
    }
    const std::string_view key = rest.substr(0, rest.find('.'));
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  return (section.empty() ? std::string("known top-level keys: ")
                          : "known keys under " + std::string(section) + ": ") +
         Join(keys, ", ");
}

// The deepest section that `path` lies in.
std::string_view EnclosingSection(std::string_view path) {
  for (size_t dot = path.rfind('.'); dot != std::string_view::npos; dot = path.rfind('.', dot - 1)) {
    if (IsSection(path.substr(0, dot))) return path.substr(0, dot);
    if (dot == 0) break;
  }
  return "";
}

Status UnknownKey(std::string_view path, std::string_view section) {
  return InvalidArgumentError(std::string(path) + ": unknown key (" + KnownKeys(section) + ")");
}

// ---------------------------------------------------------------------------
// YAML reading. yaml-cpp reports problems by throwing; ParseRunConfig catches.

std::string_view Kind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a single value";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

class YamlReader {
 public:
  YamlReader(std::string_view source, RunConfig* config) : source_(source), config_(config) {}

  // Reads the keys of `node`, a map (or nothing) at key path `section`.
  Status ReadSection(const YAML::Node& node, const std::string& section) {
    if (node.IsNull()) return OkStatus();
    if (!node.IsMap()) {
      return Error(section, "want a map (" + KnownKeys(section) + "), got " + std::string(Kind(node)));
    }
    std::set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar() || it->first.Scalar().empty()) {
        return Error(section, "a key is not plain text (or is empty)");
      }
      const std::string& key = it->first.Scalar();
      const std::string path = JoinPath(section, key);
      if (!seen.insert(key).second) return Error(path, "given twice");
      if (const Leaf* leaf = FindLeaf(path)) {
        SHORTFALL_RETURN_IF_ERROR(ReadLeaf(*leaf, it->second));
      } else if (IsSection(path)) {
        SHORTFALL_RETURN_IF_ERROR(ReadSection(it->second, path));
      } else {
        return Error(path, "unknown key (" + KnownKeys(section) + ")");
      }
    }
    return OkStatus();
  }

 private:
  Status ReadLeaf(const Leaf& leaf, const YAML::Node& node) {
    switch (leaf.shape) {
      case Shape::kScalar:
        if (!node.IsScalar() && !node.IsNull()) {
          return Error(leaf.path, "want a single value, got " + std::string(Kind(node)));
        }
        return AtKey(leaf.path, leaf.set(node.Scalar(), config_));
      case Shape::kList: {
        std::vector<std::string> items;
        if (node.IsSequence()) {
          for (const YAML::Node& item : node) {
            if (!item.IsScalar() && !item.IsNull()) {
              return Error(leaf.path, "want a list of single values, got " +
                                          std::string(Kind(item)) + " in it");
            }
            items.push_back(item.Scalar());
          }
        } else if (!node.IsNull()) {
          return Error(leaf.path, "want a list, e.g. [24h, 7d], got " + std::string(Kind(node)));
        }
        return AtKey(leaf.path, leaf.set_list(items, config_));
      }
      case Shape::kMap: {
        if (!node.IsMap() && !node.IsNull()) {
          return Error(leaf.path, "want a map of name: value, got " + std::string(Kind(node)));
        }
        leaf.clear(config_);
        if (node.IsNull()) return OkStatus();
        std::set<std::string> seen;
        for (auto it = node.begin(); it != node.end(); ++it) {
          if (!it->first.IsScalar() || it->first.Scalar().empty()) {
            return Error(leaf.path, "a key is not plain text (or is empty)");
          }
          const std::string& key = it->first.Scalar();
          const std::string path = JoinPath(leaf.path, key);
          if (!seen.insert(key).second) return Error(path, "given twice");
          if (!it->second.IsScalar() && !it->second.IsNull()) {
            return Error(path, "want a string, number or boolean, got " +
                                   std::string(Kind(it->second)));
          }
          SHORTFALL_RETURN_IF_ERROR(AtKey(path, leaf.put(key, it->second.Scalar(), config_)));
        }
        return OkStatus();
      }
    }
    return InternalError("unhandled shape");
  }

  // "<source>: <path>: <what>", or "<source>: <what>" at the root.
  Status Error(std::string_view path, const std::string& what) const {
    std::string message = std::string(source_) + ": ";
    if (!path.empty()) message += std::string(path) + ": ";
    return InvalidArgumentError(message + what);
  }
  Status AtKey(std::string_view path, const Status& status) const {
    return status.ok() ? status : Error(path, status.message());
  }

  std::string_view source_;
  RunConfig* config_;
};

}  // namespace

std::string_view GuaranteeName(ProcessingGuarantee g) {
  switch (g) {
    case ProcessingGuarantee::kAtLeastOnce: return "at_least_once";
    case ProcessingGuarantee::kExactlyOnce: return "exactly_once";
  }
  return "?";
}

Result<ProcessingGuarantee> ParseGuarantee(std::string_view text) {
  if (text == "at_least_once") return ProcessingGuarantee::kAtLeastOnce;
  if (text == "exactly_once") return ProcessingGuarantee::kExactlyOnce;
  return InvalidArgumentError(Quote(text) +
                              " is not a processing guarantee (want at_least_once or exactly_once)");
}

namespace {

bool CustomsHoldEqual(const operators::CustomsHoldOptions& a, const operators::CustomsHoldOptions& b) {
  return a.enabled == b.enabled && a.window == b.window && a.baseline_weeks == b.baseline_weeks &&
         a.min_history_weeks == b.min_history_weeks && a.min_filings == b.min_filings &&
         a.overdispersion == b.overdispersion && a.cusum_slack == b.cusum_slack &&
         a.cusum_threshold == b.cusum_threshold && a.recover_z == b.recover_z && a.min_ratio == b.min_ratio;
}

bool OriginConcentrationEqual(const operators::DetectionOptions& a, const operators::DetectionOptions& b) {
  const operators::OriginConcentrationOptions& x = a.origin_concentration;
  const operators::OriginConcentrationOptions& y = b.origin_concentration;
  const auto same_override = [](const operators::OriginConcentrationOverride& p,
                                const operators::OriginConcentrationOverride& q) {
    return p.group == q.group && p.destination == q.destination && p.share_threshold == q.share_threshold &&
           p.others_ratio == q.others_ratio && p.min_shipments == q.min_shipments &&
           p.z_threshold == q.z_threshold && p.enabled == q.enabled;
  };
  return x.enabled == y.enabled && x.window == y.window && x.baseline_weeks == y.baseline_weeks &&
         x.min_history_weeks == y.min_history_weeks && x.share_threshold == y.share_threshold &&
         x.others_ratio == y.others_ratio && x.min_shipments == y.min_shipments &&
         x.relative_noise == y.relative_noise && x.z_threshold == y.z_threshold && x.recover_z == y.recover_z &&
         std::equal(a.origin_concentration_overrides.begin(), a.origin_concentration_overrides.end(),
                    b.origin_concentration_overrides.begin(), b.origin_concentration_overrides.end(), same_override);
}

bool DetectionEqual(const operators::DetectionOptions& a, const operators::DetectionOptions& b) {
  const operators::VolumeDropOptions& va = a.volume_drop;
  const operators::VolumeDropOptions& vb = b.volume_drop;
  const auto same_overrides = [](const operators::VolumeDropOverride& x, const operators::VolumeDropOverride& y) {
    return x.group == y.group && x.corridor == y.corridor && x.cusum_threshold == y.cusum_threshold &&
           x.cusum_slack == y.cusum_slack && x.min_expected_shipments == y.min_expected_shipments &&
           x.enabled == y.enabled;
  };
  return va.enabled == vb.enabled && va.window == vb.window && va.baseline_weeks == vb.baseline_weeks &&
         va.min_history_weeks == vb.min_history_weeks && va.min_expected_shipments == vb.min_expected_shipments &&
         va.measures == vb.measures && va.relative_floor == vb.relative_floor && va.cusum_slack == vb.cusum_slack &&
         va.cusum_threshold == vb.cusum_threshold && va.recover_z == vb.recover_z &&
         std::equal(a.volume_drop_overrides.begin(), a.volume_drop_overrides.end(), b.volume_drop_overrides.begin(),
                    b.volume_drop_overrides.end(), same_overrides) &&
         CustomsHoldEqual(a.customs_hold, b.customs_hold) && a.unit_value == b.unit_value && a.dwell == b.dwell &&
         a.dwell_join == b.dwell_join && OriginConcentrationEqual(a, b) &&
         a.lifecycle.resolve_after == b.lifecycle.resolve_after &&
         a.lifecycle.cooldown == b.lifecycle.cooldown;
}

}  // namespace

bool operator==(const RunConfig& a, const RunConfig& b) {
  const operators::WindowOptions& wa = a.pipeline.window;
  const operators::WindowOptions& wb = b.pipeline.window;
  const operators::NormalizerOptions& na = a.pipeline.normalizer;
  const operators::NormalizerOptions& nb = b.pipeline.normalizer;
  return a.application_id == b.application_id && a.brokers == b.brokers && a.topics == b.topics &&
         a.repartition_partitions == b.repartition_partitions &&
         a.replication_factor == b.replication_factor && a.guarantee == b.guarantee &&
         a.commit_interval == b.commit_interval && a.batch_size == b.batch_size &&
         a.shutdown_timeout == b.shutdown_timeout && a.idle_after == b.idle_after &&
         a.num_standby_replicas == b.num_standby_replicas && a.state_dir == b.state_dir &&
         a.state_block_cache_mb == b.state_block_cache_mb &&
         a.state_write_buffer_mb == b.state_write_buffer_mb &&
         a.catalog_path == b.catalog_path && wa.bucket == wb.bucket && wa.rolling == wb.rolling &&
         wa.allowed_lateness == wb.allowed_lateness && na.max_future_skew == nb.max_future_skew &&
         na.max_line_quantity == nb.max_line_quantity &&
         na.max_line_gross_weight_kg == nb.max_line_gross_weight_kg &&
         na.max_line_value_usd == nb.max_line_value_usd && na.usd_rates == nb.usd_rates &&
         DetectionEqual(a.pipeline.detection, b.pipeline.detection) && a.metrics_bind == b.metrics_bind &&
         a.kafka_common == b.kafka_common &&
         a.kafka_consumer == b.kafka_consumer && a.kafka_producer == b.kafka_producer;
}

Result<RunConfig> ParseRunConfig(std::string_view yaml, std::string_view source) {
  const std::string src(source);
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml));
    RunConfig config;
    if (documents.empty()) return config;
    if (documents.size() > 1) {
      return InvalidArgumentError(src + ": want one YAML document, found " +
                                  std::to_string(documents.size()));
    }
    YamlReader reader(source, &config);
    SHORTFALL_RETURN_IF_ERROR(reader.ReadSection(documents.front(), ""));
    return config;
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return InvalidArgumentError(src + ": " + e.msg);
    return InvalidArgumentError(src + ":" + std::to_string(e.mark.line + 1) + ":" +
                                std::to_string(e.mark.column + 1) + ": " + e.msg);
  } catch (const std::exception& e) {
    return InvalidArgumentError(src + ": " + e.what());
  }
}

Result<RunConfig> LoadRunConfig(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int error = errno;
    std::string message = "cannot open config file '" + path + "': " + std::strerror(error);
    return error == ENOENT ? NotFoundError(std::move(message))
                           : InvalidArgumentError(std::move(message));
  }
  std::string text;
  char buffer[1 << 14];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int error = errno;
  std::fclose(file);
  if (failed) {
    return InvalidArgumentError("cannot read config file '" + path + "': " + std::strerror(error));
  }
  return ParseRunConfig(text, path);
}

Status ApplyOverride(std::string_view assignment, RunConfig* config) {
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos) {
    // Never echo what may be a secret.
    const std::string shown = IsSecretProperty(assignment) ? std::string(kRedacted) : Quote(assignment);
    return InvalidArgumentError(shown +
                                ": want key.path=value, e.g. processing.commit_interval=250ms");
  }
  const std::string_view key = Trim(assignment.substr(0, eq));
  const std::string_view value = assignment.substr(eq + 1);
  if (key.empty()) return InvalidArgumentError("no key before '=' (want key.path=value)");

  RunConfig updated = *config;  // *config stays as it was on any error
  Status status;
  if (const Leaf* leaf = FindLeaf(key)) {
    switch (leaf->shape) {
      case Shape::kScalar:
        status = leaf->set(value, &updated);
        break;
      case Shape::kList: {
        std::vector<std::string> items;
        if (!Trim(value).empty()) {
          for (std::string_view item : Split(value, ',')) items.emplace_back(Trim(item));
        }
        status = leaf->set_list(items, &updated);
        break;
      }
      case Shape::kMap:
        return InvalidArgumentError(std::string(key) + ": a map; set one entry as " +
                                    std::string(key) + ".<name>=value");
    }
  } else {
    const auto owner = std::find_if(Leaves().begin(), Leaves().end(), [&](const Leaf& l) {
      return StartsWithSection(key, l.path);
    });
    if (owner != Leaves().end()) {
      if (owner->shape != Shape::kMap) {
        return InvalidArgumentError(std::string(key) + ": unknown key (" + std::string(owner->path) +
                                    " is a value, not a section)");
      }
      status = owner->put(key.substr(owner->path.size() + 1), value, &updated);
    } else if (IsSection(key)) {
      return InvalidArgumentError(std::string(key) + ": a section, not a value; set one of its keys (" +
                                  KnownKeys(key) + ")");
    } else {
      return UnknownKey(key, EnclosingSection(key));
    }
  }
  SHORTFALL_RETURN_IF_ERROR(AtPath(key, status));
  *config = std::move(updated);
  return OkStatus();
}

std::string RepartitionTopicName(const RunConfig& config) {
  return config.application_id + "-volumes-repartition";
}

std::string ChangelogTopicName(const RunConfig& config, std::string_view store) {
  return config.application_id + "-" + std::string(store) + "-changelog";
}

Result<HostPort> ParseHostPort(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return InvalidArgumentError(Quote(text) + " is not host:port (" + std::string(why) + ")");
  };
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("an IPv6 address reads [::1]:9464");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("an IPv6 address reads [::1]:9464");
  }
  if (host.empty()) return bad("no host; 0.0.0.0 listens on every interface");
  if (std::any_of(host.begin(), host.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) != 0;
      })) {
    return bad("space in the host");
  }
  uint16_t p = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size()) {
    return bad("the port is a number from 0 to 65535");
  }
  return HostPort{std::string(host), p};
}

namespace {

Status CheckTopicName(std::string_view path, const std::string& name) {
  if (name.empty()) return InvalidArgumentError(std::string(path) + ": required");
  if (name.size() > kMaxTopicLength || name == "." || name == ".." || !AllNameChars(name)) {
    return InvalidArgumentError(std::string(path) + ": " + Quote(name) +
                                " is not a legal Kafka topic name ([A-Za-z0-9._-], 1 to 249 "
                                "characters, not '.' or '..')");
  }
  return OkStatus();
}

Status CheckProperties(std::string_view path, const Properties& props) {
  std::set<std::string> seen;
  for (const auto& [name, value] : props) {
    const std::string at = JoinPath(path, name);
    SHORTFALL_RETURN_IF_ERROR(AtPath(at, CheckPropertyName(name)));
    if (!seen.insert(name).second) return InvalidArgumentError(at + ": given twice");
    if (value == kRedacted) {
      return InvalidArgumentError(at + ": is " + std::string(kRedacted) +
                                  " (copied from a start-up log?); give the real value");
    }
  }
  return OkStatus();
}

}  // namespace

DurationMs TransactionTimeout(const RunConfig& c) {
  for (const Properties* props : {&c.kafka_producer, &c.kafka_common}) {
    for (const auto& [name, value] : *props) {
      int64_t ms = 0;
      if (name == "transaction.timeout.ms" && SetInt(value, &ms).ok()) return ms;
    }
  }
  return kDefaultTransactionTimeout;
}

Status ValidateRunConfig(const RunConfig& c) {
  const auto error = [](std::string_view path, const std::string& what) {
    return InvalidArgumentError(std::string(path) + ": " + what);
  };

  if (c.application_id.empty()) return error("application_id", "required");
  if (c.application_id.size() > kMaxApplicationIdLength || !AllNameChars(c.application_id)) {
    return error("application_id",
                 Quote(c.application_id) + " is not [A-Za-z0-9._-]{1,200} (it prefixes topic names)");
  }

  if (Trim(c.brokers).empty()) return error("kafka.bootstrap_servers", "required (or --brokers)");
  for (std::string_view broker : Split(c.brokers, ',')) {
    broker = Trim(broker);
    if (broker.empty() || std::any_of(broker.begin(), broker.end(), [](char ch) {
          return std::isspace(static_cast<unsigned char>(ch)) != 0;
        })) {
      return error("kafka.bootstrap_servers", Quote(c.brokers) + " is not host:port[,host:port...]");
    }
  }
  SHORTFALL_RETURN_IF_ERROR(CheckProperties("kafka.common", c.kafka_common));
  SHORTFALL_RETURN_IF_ERROR(CheckProperties("kafka.consumer", c.kafka_consumer));
  SHORTFALL_RETURN_IF_ERROR(CheckProperties("kafka.producer", c.kafka_producer));

  std::vector<std::pair<std::string_view, const std::string*>> topics = {
      {"topics.shipments", &c.topics.shipments},
      {"topics.customs", &c.topics.customs},
      {"topics.alerts", &c.topics.alerts},
      {"topics.dlq", &c.topics.dlq}};
  if (!c.topics.alerts_json.empty()) topics.emplace_back("topics.alerts_json", &c.topics.alerts_json);
  const std::string repartition = RepartitionTopicName(c);
  for (size_t i = 0; i < topics.size(); ++i) {
    SHORTFALL_RETURN_IF_ERROR(CheckTopicName(topics[i].first, *topics[i].second));
    for (size_t j = 0; j < i; ++j) {
      if (*topics[i].second == *topics[j].second) {
        return error(topics[i].first, Quote(*topics[i].second) + " is also " +
                                          std::string(topics[j].first) + " (each topic has one role)");
      }
    }
    if (*topics[i].second == repartition) {
      return error(topics[i].first, Quote(repartition) +
                                        " is the internal repartition topic of this application_id");
    }
  }
  if (repartition.size() > kMaxTopicLength) {
    return error("application_id", "too long for the internal topic " + Quote(repartition));
  }

  if (c.repartition_partitions < 1) {
    return error("repartition.partitions", std::to_string(c.repartition_partitions) + " (want >= 1)");
  }
  if (c.replication_factor < 1) {
    return error("repartition.replication_factor",
                 std::to_string(c.replication_factor) + " (want >= 1)");
  }

  if (c.guarantee != ProcessingGuarantee::kAtLeastOnce &&
      c.guarantee != ProcessingGuarantee::kExactlyOnce) {
    return error("processing.guarantee", "want at_least_once or exactly_once");
  }
  if (c.commit_interval <= 0) {
    return error("processing.commit_interval", FormatDuration(c.commit_interval) + " (want > 0)");
  }
  if (c.guarantee == ProcessingGuarantee::kExactlyOnce) {
    const DurationMs timeout = TransactionTimeout(c);
    if (c.commit_interval >= timeout) {
      return error("processing.commit_interval",
                   FormatDuration(c.commit_interval) + " with exactly_once must be below the "
                   "producer's transaction.timeout.ms (" + std::to_string(timeout) +
                   " ms), or every transaction times out");
    }
  }
  if (c.batch_size < 1 || c.batch_size > kMaxBatchSize) {
    return error("processing.batch_size",
                 std::to_string(c.batch_size) + " (want 1 to " + std::to_string(kMaxBatchSize) + ")");
  }
  if (c.idle_after <= 0) {
    return error("processing.idle_after", FormatDuration(c.idle_after) + " (want > 0)");
  }
  if (c.num_standby_replicas < 0 || c.num_standby_replicas > 1) {
    return error("processing.num_standby_replicas",
                 std::to_string(c.num_standby_replicas) +
                     " (want 0 or 1: an instance keeps warm copies of all the stage-two tasks it does not run)");
  }
  if (c.num_standby_replicas > 0 && c.guarantee != ProcessingGuarantee::kExactlyOnce) {
    return error("processing.num_standby_replicas",
                 "standby replicas follow the changelog topics, which only exactly_once writes");
  }
  if (c.shutdown_timeout < 0) {
    return error("processing.shutdown_timeout", FormatDuration(c.shutdown_timeout) + " (want >= 0)");
  }

  if (c.state_dir.empty()) return error("state.dir", "required");
  if (c.state_block_cache_mb < 16 || c.state_block_cache_mb > (int64_t{1} << 20)) {
    return error("state.block_cache_mb", std::to_string(c.state_block_cache_mb) + " (want 16 to 1048576)");
  }
  // Charged to the block cache: more than half of it would leave the blocks
  // of every store too little room.
  if (c.state_write_buffer_mb < 0 || c.state_write_buffer_mb > c.state_block_cache_mb / 2) {
    return error("state.write_buffer_mb", std::to_string(c.state_write_buffer_mb) + " (want 1 to " +
                                              std::to_string(c.state_block_cache_mb / 2) +
                                              ", half of state.block_cache_mb, or 0 for a quarter)");
  }

  SHORTFALL_RETURN_IF_ERROR(c.pipeline.window.Validate());  // messages start "window."
  const Status normalizer = c.pipeline.normalizer.Validate();
  if (!normalizer.ok()) return InvalidArgumentError("validation." + normalizer.message());
  if (c.pipeline.normalizer.usd_rates.empty()) {
    return error("validation.usd_rates",
                 "empty (every goods line with a declared value would be invalid: unknown_currency)");
  }

  const Status detection = c.pipeline.detection.Validate(c.pipeline.window);
  if (!detection.ok()) return InvalidArgumentError("detection." + detection.message());

  if (Result<HostPort> bind = ParseHostPort(c.metrics_bind); !bind.ok()) {
    return AtPath("metrics.bind", bind.status());
  }
  return OkStatus();
}

std::string DescribeRunConfig(const RunConfig& config) {
  std::string out;
  std::vector<std::string_view> open;  // the sections the last leaf was in
  for (const Leaf& leaf : Leaves()) {
    const std::vector<std::string_view> parts = Split(leaf.path, '.');
    size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common]) {
      ++common;
    }
    open.resize(common);
    for (size_t i = common; i + 1 < parts.size(); ++i) {
      out += std::string(2 * i, ' ') + std::string(parts[i]) + ":\n";
      open.push_back(parts[i]);
    }
    const std::string indent(2 * (parts.size() - 1), ' ');
    out += indent + std::string(parts.back()) + ":";
    if (leaf.shape != Shape::kMap) {
      out += " " + leaf.show(config) + "\n";
      continue;
    }
    const auto entries = leaf.entries(config);
    if (entries.empty()) {
      out += " {}\n";
      continue;
    }
    out += "\n";
    for (const auto& [key, value] : entries) out += indent + "  " + YamlKey(key) + ": " + value + "\n";
  }
  return out;
}

}  // namespace shortfall::pipeline
