// DwellJoin: pairs the two sides of each shipment's stay at the border —
// the actual arrival at the border (the counting ARRI) and the customs
// release (CUSTOMS_STATUS_RELEASED naming the shipment) — and adds the
// dwell, release minus arrival, to the windowed volumes as a dwell sample
// (VolumeDelta::dwell; operators/volume.h) of the (group, corridor) series
// and the group's total, for the dwell-time detector.
//
//   DwellJoin join(options, group_names, &corridors);
//   join.Offer(group, "SHP-1", DwellRole::kArrival, t_arri, corridor, &aggregator);
//   join.Offer(group, "SHP-1", DwellRole::kRelease, t_rel, corridor, &aggregator);  // adds the sample
//   aggregator.AdvanceTo(watermark, &reports);
//   join.Expire(aggregator.closed_until());
//   join.Flush(&batch);  store.Commit(batch, checkpoint);
//
// Where it runs. The two sides come from different topics keyed differently
// (shipment id, declaration id), so from different stage-one tasks; both
// carry the shipment's goods lines, so both reach the stage-two task of each
// group they carry (the repartition topic is keyed by group). The join is
// therefore per (group, shipment id), in stage two — and in replay, one
// instance for every group. A shipment with goods of two groups is joined
// once per group.
//
// Semantics. The side seen first waits; when the other side comes the pair
// makes one sample if the two are at most `time_bound` apart: dwell =
// release - arrival, a negative one (a release stamped before its arrival:
// clocks, or a pre-arrival release) clamped to 0 and counted. The sample
// goes to the arrival's corridor, in the bucket of the later side's event
// time: that bucket is never closed when the later side is not late itself,
// so samples are the same whichever side comes first, across partitions and
// restarts. A sample for a closed bucket all the same is counted (`late`),
// never dropped silently; so is a side whose own bucket is closed (it could
// only make such a sample). Sides further apart than the bound are not
// paired (`out_of_bound`; the waiting one is dropped). A second side of the
// role already waiting (a resent event) is ignored (`repeated_sides`): the
// first waits on. Once paired, the entry is gone, so a resent side after
// the pair waits alone until it expires (deduplication by event id is not
// done yet, as for volumes).
//
// Expiry. A side at time t can only pair with a side at most time_bound
// later, whose sample lands in a bucket ending by t + time_bound + bucket.
// Once the aggregator has closed past t + time_bound, no such sample could
// count, so Expire drops the side (`expired`): abandoned shipments (never
// released, or their arrival lost) do not hold memory for longer than the
// bound plus the allowed lateness. Expire scans every waiting side, once per
// call that moves closed_until; waiting sides are few (most pairs meet within
// hours), so that is cheap next to the bucket closes that drive it.
//
// Persistence, namespace "dwell_join": one key per waiting side (group name
// '\0' shipment id) and "#counters"; Flush writes the sides added and deletes
// the ones paired or expired since the last Flush. State goes where the
// aggregator's goes (a task's store, its changelog under exactly_once).
//
// Thread-safety: not thread-safe; one per task.
// Failure: Offer and Expire never fail. Restore returns kDataLoss for state
// it cannot read and kFailedPrecondition for a group the catalog lacks; on
// any error it leaves the join empty.
#ifndef SHORTFALL_OPERATORS_DWELL_JOIN_H_
#define SHORTFALL_OPERATORS_DWELL_JOIN_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "operators/corridor.h"
#include "operators/event_normalizer.h"
#include "operators/state_store.h"
#include "operators/volume_aggregator.h"

namespace shortfall::operators {

struct DwellJoinOptions {
  // The longest dwell measured, and how long a side waits for the other
  // (plus the allowed lateness, see Expire). Default 7 d: a hold that lasts
  // longer is a seizure, not a delay; more keeps abandoned sides longer.
  DurationMs time_bound = 7 * kMsPerDay;
  // kInvalidArgument naming the field ("dwell.time_bound: ...").
  Status Validate() const;
  friend bool operator==(const DwellJoinOptions&, const DwellJoinOptions&) = default;
};

struct DwellJoinCounters {
  uint64_t joined = 0;          // pairs that made a sample
  uint64_t expired = 0;         // sides dropped unpaired after the bound
  uint64_t negative = 0;        // pairs with the release before the arrival (dwell 0)
  uint64_t late = 0;            // sides or samples for a closed bucket (not counted)
  uint64_t out_of_bound = 0;    // pairs further apart than the bound (not counted)
  uint64_t repeated_sides = 0;  // a side of the role already waiting (ignored)
  friend bool operator==(const DwellJoinCounters&, const DwellJoinCounters&) = default;
};

class DwellJoin {
 public:
  // `group_names[id]` names group id, as for the VolumeAggregator.
  // REQUIRES: options.Validate().ok(). `corridors` must outlive this.
  DwellJoin(const DwellJoinOptions& options, std::vector<std::string> group_names, CorridorTable* corridors);
  DwellJoin(const DwellJoin&) = delete;
  DwellJoin& operator=(const DwellJoin&) = delete;

  // Offers one side of `shipment_id`'s dwell in `group`. When the other side
  // waits and the pair is within the bound, adds the sample to *aggregator
  // (series (group, arrival corridor) and the group's total). REQUIRES:
  // role != kNone.
  void Offer(GroupId group, std::string_view shipment_id, DwellRole role, TimestampMs event_time,
             CorridorId corridor, VolumeAggregator* aggregator);

  // Drops the sides no pair could count for any more (see the header).
  void Expire(TimestampMs closed_until);

  void Flush(StateWriteBatch* batch);
  Status Restore(const StateView& state);

  size_t waiting() const { return sides_.size(); }
  const DwellJoinCounters& counters() const { return counters_; }
  const DwellJoinOptions& options() const { return options_; }

 private:
  struct Side {
    DwellRole role = DwellRole::kNone;
    TimestampMs event_time = 0;
    CorridorId corridor = kAllCorridors;
    bool dirty = false;      // not yet written
    bool persisted = false;  // written by some Flush: removing it must delete it
  };
  // Memory key: group id byte, then the shipment id.
  static std::string MemoryKey(GroupId group, std::string_view shipment_id);
  std::string StateKey(std::string_view memory_key) const;
  void Remove(std::unordered_map<std::string, Side>::iterator it);
  Status RestoreFrom(const StateView& state);

  DwellJoinOptions options_;
  std::vector<std::string> group_names_;
  CorridorTable* corridors_;
  std::unordered_map<std::string, Side> sides_;
  std::vector<std::string> deleted_;  // state keys to delete on Flush
  // Memory keys of the sides added since the last Flush (some paired or
  // expired since, some listed twice): what Flush writes, without a scan.
  std::vector<std::string> dirty_;
  DwellJoinCounters counters_;
  bool counters_dirty_ = false;
  TimestampMs expired_until_ = kMinTimestamp;  // closed_until of the last Expire
  std::string key_;  // scratch
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_DWELL_JOIN_H_
