#include "operators/alert_lifecycle.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "base/number_format.h"
#include "operators/corridor.h"
#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr std::string_view kLifecycleNs = "alert_lifecycle";

void SetTimestamp(TimestampMs ms, google::protobuf::Timestamp* ts) {
  const TimestampMs seconds = AlignDown(ms, kMsPerSecond) / kMsPerSecond;
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>((ms - seconds * kMsPerSecond) * 1'000'000));
}

std::string Printf(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

// "semiconductors MX-US-2304: shipments 41 vs expected 180 (-77%) over 24h
// since 2026-03-07T00:00:00Z"; a RESOLVED record says it is back to normal.
std::string Summary(std::string_view group, std::string_view corridor, v1::AlertState state,
                    TimestampMs window_start, TimestampMs window_end, TimestampMs opened_at,
                    const v1::Evidence& e) {
  std::string line(group);
  line += " ";
  line += corridor == kAllCorridorsCode ? std::string_view("all corridors") : corridor;
  line += ": ";
  line += e.measure().empty() ? std::string("value") : e.measure();
  line += " " + FormatNumber(e.observed()) + " vs expected " + FormatNumber(e.expected());
  if (e.expected() != 0 && std::isfinite(e.observed()) && std::isfinite(e.expected())) {
    const double change = std::round((e.observed() - e.expected()) / std::fabs(e.expected()) * 100);
    line += " (" + std::string(change > 0 ? "+" : "") + Printf("%.0f", change) + "%)";
  }
  if (window_end > window_start) line += " over " + FormatDuration(window_end - window_start);
  if (state == v1::ALERT_STATE_RESOLVED) {
    line += ", back to normal (open since " + FormatUtc(opened_at) + ")";
  } else {
    line += " since " + FormatUtc(opened_at);
  }
  return line;
}

}  // namespace

Status LifecycleOptions::Validate() const {
  constexpr DurationMs kMax = 366 * kMsPerDay;
  if (resolve_after < 0 || resolve_after > kMax) {
    return InvalidArgumentError("alert_lifecycle.resolve_after: " + FormatDuration(resolve_after) +
                                " (want 0 to 366d)");
  }
  if (cooldown < 0 || cooldown > kMax) {
    return InvalidArgumentError("alert_lifecycle.cooldown: " + FormatDuration(cooldown) +
                                " (want 0 to 366d)");
  }
  return OkStatus();
}

std::string AlertId(std::string_view group, std::string_view corridor, v1::AlertKind kind,
                    TimestampMs opening_window_start) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
  const auto mix = [&h](std::string_view bytes) {
    for (char c : bytes) {
      h ^= static_cast<uint8_t>(c);
      h *= 0x100000001b3ULL;  // FNV-1a 64 prime
    }
  };
  mix(group);
  mix("|");
  mix(corridor);
  mix("|");
  mix(std::to_string(static_cast<int>(kind)));
  mix("|");
  mix(std::to_string(opening_window_start));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016" PRIx64, h);
  return hex;
}

void SetCorridorFromCode(std::string_view code, v1::Corridor* corridor) {
  corridor->Clear();
  if (code == kAllCorridorsCode) return;
  const size_t first = code.find('-');
  const size_t second = first == std::string_view::npos ? first : code.find('-', first + 1);
  if (second == std::string_view::npos || code.find('-', second + 1) != std::string_view::npos) {
    corridor->set_port_of_entry(std::string(code));
    return;
  }
  // A part "*" means all values of that field: left empty, as the schema says.
  const auto set = [](std::string_view part, auto setter) {
    if (part != "*") setter(std::string(part));
  };
  set(code.substr(0, first), [&](std::string v) { corridor->set_origin_country(std::move(v)); });
  set(code.substr(first + 1, second - first - 1),
      [&](std::string v) { corridor->set_destination_country(std::move(v)); });
  set(code.substr(second + 1), [&](std::string v) { corridor->set_port_of_entry(std::move(v)); });
}

AlertLifecycle::AlertLifecycle(LifecycleOptions options) : options_(options) {
  SHORTFALL_CHECK(options_.Validate().ok());
}

void AlertLifecycle::Apply(const Signal& signal, std::vector<v1::ShortageAlert>* out) {
  const KeyView view(signal.group, signal.corridor, static_cast<int>(signal.kind));
  auto it = entries_.find(view);
  const TimestampMs now = signal.window_end;

  if (it == entries_.end() || !it->second.open) {
    if (it != entries_.end() && now < it->second.cooldown_until) return;  // cooling down
    if (!signal.firing) {
      // A cooldown that has run out is forgotten, so entries do not pile up.
      if (it != entries_.end()) {
        if (it->second.persisted) deleted_keys_.push_back(StateKey(it->first));
        entries_.erase(it);
      }
      return;
    }
    if (it == entries_.end()) {
      it = entries_.emplace(Key(signal.group, signal.corridor, static_cast<int>(signal.kind)), Entry())
               .first;
    }
    Entry& e = it->second;
    const bool persisted = e.persisted;
    e = Entry();
    e.persisted = persisted;
    e.open = true;
    e.opening_window_start = signal.window_start;
    e.opened_at = now;
    e.severity = signal.severity;
    Emit(it->first, &e, v1::ALERT_STATE_OPEN, signal, out);
    return;
  }

  Entry& e = it->second;
  if (signal.firing) {
    if (e.recovered_since != kMinTimestamp) {
      e.recovered_since = kMinTimestamp;
      e.dirty = true;
    }
    if (signal.severity != e.severity) {
      e.severity = signal.severity;
      Emit(it->first, &e, v1::ALERT_STATE_UPDATED, signal, out);
    }
    return;
  }
  if (!signal.recovered) {
    if (e.recovered_since != kMinTimestamp) {
      e.recovered_since = kMinTimestamp;
      e.dirty = true;
    }
    return;
  }
  if (e.recovered_since == kMinTimestamp) {
    e.recovered_since = now;
    e.dirty = true;
  }
  if (now - e.recovered_since < options_.resolve_after) return;
  Emit(it->first, &e, v1::ALERT_STATE_RESOLVED, signal, out);
  // Only the cooldown outlives the alert; the record is out and final.
  const bool persisted = e.persisted;
  e = Entry();
  e.persisted = persisted;
  e.cooldown_until = now + options_.cooldown;
  e.dirty = true;
}

void AlertLifecycle::Emit(const Key& key, Entry* entry, v1::AlertState state,
                          const Signal& signal, std::vector<v1::ShortageAlert>* out) {
  entry->state = state;
  entry->revision += 1;
  entry->window_start = signal.window_start;
  entry->window_end = signal.window_end;
  entry->evidence = signal.evidence;
  entry->dirty = true;
  out->push_back(BuildRecord(key, *entry));
}

v1::ShortageAlert AlertLifecycle::BuildRecord(const Key& key, const Entry& e) {
  const auto& [group, corridor, kind_number] = key;
  const auto kind = static_cast<v1::AlertKind>(kind_number);
  v1::ShortageAlert alert;
  alert.set_alert_id(AlertId(group, corridor, kind, e.opening_window_start));
  alert.set_commodity_group(group);
  SetCorridorFromCode(corridor, alert.mutable_corridor());
  alert.set_kind(kind);
  alert.set_severity(e.severity);
  alert.set_state(e.state);
  SetTimestamp(e.window_start, alert.mutable_window_start());
  SetTimestamp(e.window_end, alert.mutable_window_end());
  SetTimestamp(e.opened_at, alert.mutable_opened_at());
  *alert.mutable_evidence() = e.evidence;
  alert.set_revision(e.revision);
  alert.set_summary(
      Summary(group, corridor, e.state, e.window_start, e.window_end, e.opened_at, e.evidence));
  return alert;
}

size_t AlertLifecycle::open_count() const {
  size_t n = 0;
  for (const auto& [key, e] : entries_) n += e.open ? 1 : 0;
  return n;
}

std::vector<v1::ShortageAlert> AlertLifecycle::OpenAlerts() const {
  std::vector<v1::ShortageAlert> alerts;
  for (const auto& [key, e] : entries_) {
    if (e.open) alerts.push_back(BuildRecord(key, e));
  }
  return alerts;
}

// Key layout: group '\0' corridor '\0' kind number in decimal.
std::string AlertLifecycle::StateKey(const Key& key) {
  std::string k = std::get<0>(key);
  k.push_back('\0');
  k += std::get<1>(key);
  k.push_back('\0');
  k += std::to_string(std::get<2>(key));
  return k;
}

void AlertLifecycle::Flush(StateWriteBatch* batch) {
  for (const std::string& key : deleted_keys_) batch->Delete(kLifecycleNs, key);
  deleted_keys_.clear();
  internal::AlertLifecycleState s;
  for (auto& [key, e] : entries_) {
    if (!e.dirty) continue;
    s.Clear();
    s.set_open(e.open);
    if (e.open) {
      s.set_opening_window_start_ms(e.opening_window_start);
      s.set_opened_at_ms(e.opened_at);
      s.set_revision(e.revision);
      s.set_severity(e.severity);
      s.set_state(e.state);
      s.set_window_start_ms(e.window_start);
      s.set_window_end_ms(e.window_end);
      *s.mutable_evidence() = e.evidence;
      if (e.recovered_since != kMinTimestamp) s.set_recovered_since_ms(e.recovered_since);
    } else {
      s.set_cooldown_until_ms(e.cooldown_until);
    }
    batch->Put(kLifecycleNs, StateKey(key), s.SerializeAsString());
    e.dirty = false;
    e.persisted = true;
  }
}

Status AlertLifecycle::Restore(const StateView& state) {
  Status status = RestoreFrom(state);
  if (!status.ok()) {
    entries_.clear();
    deleted_keys_.clear();
  }
  return status;
}

Status AlertLifecycle::RestoreFrom(const StateView& state) {
  entries_.clear();
  deleted_keys_.clear();
  Status error;
  internal::AlertLifecycleState s;
  SHORTFALL_RETURN_IF_ERROR(
      state.Scan(kLifecycleNs, "", [&](std::string_view key, std::string_view value) {
        const size_t g_end = key.find('\0');
        const size_t c_end = g_end == std::string_view::npos ? g_end : key.find('\0', g_end + 1);
        if (c_end == std::string_view::npos || c_end + 1 >= key.size()) {
          error = DataLossError("alert_lifecycle state: malformed key");
          return false;
        }
        int kind = 0;
        for (char c : key.substr(c_end + 1)) {
          if (c < '0' || c > '9' || kind > 100'000'000) {
            error = DataLossError("alert_lifecycle state: malformed kind in key");
            return false;
          }
          kind = kind * 10 + (c - '0');
        }
        if (!s.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
            (s.open() ? s.revision() == 0 : !s.has_cooldown_until_ms())) {
          error = DataLossError("alert_lifecycle state: malformed entry");
          return false;
        }
        Entry e;
        e.persisted = true;
        e.open = s.open();
        if (e.open) {
          e.opening_window_start = s.opening_window_start_ms();
          e.opened_at = s.opened_at_ms();
          e.revision = s.revision();
          e.severity = s.severity();
          e.state = s.state();
          e.window_start = s.window_start_ms();
          e.window_end = s.window_end_ms();
          e.evidence = s.evidence();
          if (s.has_recovered_since_ms()) e.recovered_since = s.recovered_since_ms();
        } else {
          e.cooldown_until = s.cooldown_until_ms();
        }
        entries_.emplace(Key(std::string(key.substr(0, g_end)),
                             std::string(key.substr(g_end + 1, c_end - g_end - 1)), kind),
                         std::move(e));
        return true;
      }));
  return error;
}

}  // namespace shortfall::operators
