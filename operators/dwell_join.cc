#include "operators/dwell_join.h"

#include <algorithm>

#include "shortfall/internal/state.pb.h"

namespace shortfall::operators {
namespace {

constexpr std::string_view kNamespace = "dwell_join";
constexpr std::string_view kCountersKey = "#counters";  // no '\0': no side's key

}  // namespace

Status DwellJoinOptions::Validate() const {
  if (time_bound < kMsPerHour || time_bound > 90 * kMsPerDay) {
    return InvalidArgumentError("dwell.time_bound: " + FormatDuration(time_bound) + " (want 1h to 90d)");
  }
  return OkStatus();
}

DwellJoin::DwellJoin(const DwellJoinOptions& options, std::vector<std::string> group_names,
                     CorridorTable* corridors)
    : options_(options), group_names_(std::move(group_names)), corridors_(corridors) {
  SHORTFALL_CHECK(options_.Validate().ok());
}

std::string DwellJoin::MemoryKey(GroupId group, std::string_view shipment_id) {
  std::string key(1, static_cast<char>(group));
  key.append(shipment_id);
  return key;
}

std::string DwellJoin::StateKey(std::string_view memory_key) const {
  std::string key = group_names_[static_cast<uint8_t>(memory_key[0])];
  key.push_back('\0');
  key.append(memory_key.substr(1));
  return key;
}

void DwellJoin::Remove(std::unordered_map<std::string, Side>::iterator it) {
  if (it->second.persisted) deleted_.push_back(StateKey(it->first));
  sides_.erase(it);
}

void DwellJoin::Offer(GroupId group, std::string_view shipment_id, DwellRole role, TimestampMs event_time,
                      CorridorId corridor, VolumeAggregator* aggregator) {
  SHORTFALL_CHECK(role != DwellRole::kNone);
  counters_dirty_ = true;
  if (aggregator->IsClosed(event_time)) {  // could only make a sample for a closed bucket
    ++counters_.late;
    return;
  }
  key_.assign(1, static_cast<char>(group));
  key_.append(shipment_id);
  auto it = sides_.find(key_);
  if (it == sides_.end()) {
    sides_.emplace(key_, Side{role, event_time, corridor, true, false});
    dirty_.push_back(key_);
    return;
  }
  Side& other = it->second;
  if (other.role == role) {
    ++counters_.repeated_sides;
    counters_dirty_ = true;
    return;
  }
  const TimestampMs arrival = role == DwellRole::kArrival ? event_time : other.event_time;
  const TimestampMs release = role == DwellRole::kRelease ? event_time : other.event_time;
  const CorridorId arrival_corridor = role == DwellRole::kArrival ? corridor : other.corridor;
  Remove(it);
  const DurationMs dwell = release - arrival;
  if (dwell > options_.time_bound || -dwell > options_.time_bound) {
    ++counters_.out_of_bound;
    return;
  }
  if (dwell < 0) ++counters_.negative;
  VolumeDelta sample;
  sample.AddDwell(DwellSample(DwellKey(corridors_->Code(arrival_corridor)), std::max<DurationMs>(dwell, 0)));
  if (aggregator->Add(group, arrival_corridor, std::max(arrival, release), sample)) {
    ++counters_.joined;
  } else {
    ++counters_.late;
  }
}

void DwellJoin::Expire(TimestampMs closed_until) {
  if (closed_until == kMinTimestamp || closed_until <= expired_until_) return;
  expired_until_ = closed_until;
  for (auto it = sides_.begin(); it != sides_.end();) {
    if (it->second.event_time + options_.time_bound < closed_until) {
      auto gone = it++;
      Remove(gone);
      ++counters_.expired;
      counters_dirty_ = true;
    } else {
      ++it;
    }
  }
}

void DwellJoin::Flush(StateWriteBatch* batch) {
  for (const std::string& key : deleted_) batch->Delete(kNamespace, key);
  deleted_.clear();
  // Sorted, so equal states write equal batches whatever the hash order.
  // Only the sides added since the last Flush, not every waiting one: with
  // a million waiting, a scan per commit would cost more than the commit.
  std::vector<std::pair<std::string, Side*>> dirty;
  for (const std::string& key : dirty_) {
    auto it = sides_.find(key);
    if (it == sides_.end() || !it->second.dirty) continue;  // paired or expired since, or listed twice
    it->second.dirty = false;
    dirty.emplace_back(StateKey(key), &it->second);
  }
  dirty_.clear();
  std::sort(dirty.begin(), dirty.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  internal::DwellSideState proto;
  for (auto& [key, side] : dirty) {
    proto.set_role(static_cast<uint32_t>(side->role));
    proto.set_event_time_ms(side->event_time);
    proto.set_corridor(corridors_->Code(side->corridor));
    batch->Put(kNamespace, key, proto.SerializeAsString());
    side->persisted = true;
  }
  if (counters_dirty_) {
    internal::DwellJoinCountersState c;
    c.set_joined(counters_.joined);
    c.set_expired(counters_.expired);
    c.set_negative(counters_.negative);
    c.set_late(counters_.late);
    c.set_out_of_bound(counters_.out_of_bound);
    c.set_repeated_sides(counters_.repeated_sides);
    batch->Put(kNamespace, kCountersKey, c.SerializeAsString());
    counters_dirty_ = false;
  }
}

Status DwellJoin::Restore(const StateView& state) {
  Status s = RestoreFrom(state);
  if (!s.ok()) {
    sides_.clear();
    counters_ = {};
  }
  return s;
}

Status DwellJoin::RestoreFrom(const StateView& state) {
  sides_.clear();
  deleted_.clear();
  dirty_.clear();
  counters_ = {};
  counters_dirty_ = false;
  expired_until_ = kMinTimestamp;
  Status error = OkStatus();
  internal::DwellSideState side;
  SHORTFALL_RETURN_IF_ERROR(state.Scan(kNamespace, "", [&](std::string_view key, std::string_view value) {
    if (key == kCountersKey) {
      internal::DwellJoinCountersState c;
      if (!c.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        error = DataLossError("dwell_join state: malformed counters");
        return false;
      }
      counters_ = {c.joined(), c.expired(), c.negative(), c.late(), c.out_of_bound(), c.repeated_sides()};
      return true;
    }
    const size_t split = key.find('\0');
    if (split == std::string_view::npos || !side.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
        (side.role() != static_cast<uint32_t>(DwellRole::kArrival) &&
         side.role() != static_cast<uint32_t>(DwellRole::kRelease))) {
      error = DataLossError("dwell_join state: malformed side");
      return false;
    }
    const auto group = std::find(group_names_.begin(), group_names_.end(), key.substr(0, split));
    if (group == group_names_.end()) {
      error = FailedPreconditionError("dwell_join state names group '" + std::string(key.substr(0, split)) +
                                      "', which the catalog does not have");
      return false;
    }
    const std::optional<CorridorId> corridor = corridors_->InternCode(side.corridor());
    if (!corridor) {
      error = DataLossError("dwell_join state: bad corridor code '" + side.corridor() + "'");
      return false;
    }
    sides_.emplace(MemoryKey(static_cast<GroupId>(group - group_names_.begin()), key.substr(split + 1)),
                   Side{static_cast<DwellRole>(side.role()), side.event_time_ms(), *corridor, false, true});
    return true;
  }));
  return error;
}

}  // namespace shortfall::operators
