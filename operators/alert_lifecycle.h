// AlertLifecycle: turns what detectors say about a series at each evaluation
// (a Signal) into ShortageAlert records: OPEN once, UPDATED when the severity
// changes, RESOLVED when the signal has stayed back in its normal band long
// enough, then a cooldown before the same alert can open again. It is the
// same for every detector kind; detectors only compute Signals.
//
//   AlertLifecycle lifecycle(options);            // options.Validate().ok()
//   for (const Signal& s : signals) lifecycle.Apply(s, &alerts);
//   lifecycle.Flush(&batch);  store.Commit(batch, checkpoint);
//
// An alert is one (group, corridor, kind). Its records share an alert_id, a
// hash of that triple and the start of the evidence window of the signal
// that opened it (AlertId), so a replay or a restart from a checkpoint
// produces the same ids and the same records. Revisions count 1, 2, 3, ...
// per alert_id.
//
// Rules, per (group, corridor, kind), for signals fed in event-time order:
//   - not open, firing, not in cooldown       -> OPEN (revision 1, opened_at =
//     the signal's window_end);
//   - open, firing, another severity          -> UPDATED (new severity,
//     window and evidence);
//   - open, firing, same severity             -> nothing, even if the
//     evidence moved (one record per change an operator acts on, not per
//     bucket);
//   - open, `recovered` on every signal for at least resolve_after of event
//     time (any signal that is not `recovered` restarts the clock)
//                                             -> RESOLVED (the alert's
//     severity, the last signal's evidence), and the cooldown starts;
//   - anything else                           -> nothing.
// A flapping signal therefore produces no records while the alert is open:
// it never stays recovered long enough to resolve.
//
// Thread-safety: not thread-safe; one lifecycle per task.
// Failure: Apply never fails. Restore returns kDataLoss for state it cannot
// read and then holds nothing (as if new).
#ifndef SHORTFALL_OPERATORS_ALERT_LIFECYCLE_H_
#define SHORTFALL_OPERATORS_ALERT_LIFECYCLE_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "operators/state_store.h"
#include "shortfall/v1/shortage_alert.pb.h"

namespace shortfall::operators {

// What a detector says about one series at one evaluation (one closed bucket).
struct Signal {
  v1::AlertKind kind = v1::ALERT_KIND_UNSPECIFIED;
  std::string group;     // commodity group name
  std::string corridor;  // corridor code "MX-US-2304", or "*" for all corridors of the group
  TimestampMs window_start = 0;  // evidence window [start, end)
  TimestampMs window_end = 0;    // = evaluation time (the closed bucket's end)
  // The statistic is past its threshold now.
  bool firing = false;
  // The series is back inside its normal band now. Never true together with
  // `firing`; both false means "in between" (stops a resolve, opens nothing).
  bool recovered = false;
  // Meaningful when firing: the severity the alert should have now.
  v1::Severity severity = v1::SEVERITY_UNSPECIFIED;
  // measure, observed, expected, statistic, statistic_value, threshold,
  // baseline_history_seconds (and top_contributors when the detector has them).
  v1::Evidence evidence;
};

struct LifecycleOptions {
  // How long (event time) an open alert's signal must stay `recovered`
  // before the alert is RESOLVED. Default 24 h: shorter resolves sooner and
  // risks OPEN/RESOLVED pairs for a series that wobbles around its band.
  DurationMs resolve_after = 24 * kMsPerHour;
  // After RESOLVED, how long (event time) the same (group, corridor, kind)
  // cannot open again. Default 24 h: suppresses re-alerting on the tail of
  // the same episode; longer also hides a genuine second episode.
  DurationMs cooldown = 24 * kMsPerHour;

  // kInvalidArgument naming the field ("alert_lifecycle.cooldown: ...").
  Status Validate() const;
};

// Deterministic alert id: 16 lower-case hex digits of FNV-1a 64 over
// "group|corridor|kind-number|window_start_ms", e.g.
// "semiconductors|MX-US-2304|1|1772841600000".
std::string AlertId(std::string_view group, std::string_view corridor, v1::AlertKind kind,
                    TimestampMs opening_window_start);

// Fills `corridor` from a code: "MX-US-2304" -> origin MX, destination US,
// port 2304; "*" -> all fields empty ("all corridors"); a part "*" leaves its
// field empty ("MX-US-*": every port from MX into US). A code that is not
// three '-'-separated parts goes whole into port_of_entry (never happens for
// codes from a CorridorTable).
void SetCorridorFromCode(std::string_view code, v1::Corridor* corridor);

class AlertLifecycle {
 public:
  // REQUIRES: options.Validate().ok() (aborts otherwise).
  explicit AlertLifecycle(LifecycleOptions options);

  // Feeds one signal. REQUIRES: signals of one (group, corridor, kind) come
  // in order of window_end (signals of different ones may interleave).
  // Appends 0 or 1 alert records to *out.
  void Apply(const Signal& signal, std::vector<v1::ShortageAlert>* out);

  size_t open_count() const;
  // The latest record of each open alert, in (group, corridor, kind) order.
  std::vector<v1::ShortageAlert> OpenAlerts() const;

  // Persistence, namespace "alert_lifecycle", one small key per
  // (group, corridor, kind) that is open or cooling down. Flush writes what
  // changed since the last Flush and marks it clean; if the Commit of that
  // batch fails, Restore before going on. Restore replaces everything held;
  // on error (kDataLoss for state it cannot read) it leaves the lifecycle empty.
  void Flush(StateWriteBatch* batch);
  Status Restore(const StateView& state);

  const LifecycleOptions& options() const { return options_; }

 private:
  // (group, corridor, kind): the map's order is OpenAlerts()'s order.
  using Key = std::tuple<std::string, std::string, int>;
  using KeyView = std::tuple<std::string_view, std::string_view, int>;
  struct KeyLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return KeyView(std::get<0>(a), std::get<1>(a), std::get<2>(a)) <
             KeyView(std::get<0>(b), std::get<1>(b), std::get<2>(b));
    }
  };
  // Everything a record is built from; exactly what is persisted.
  struct Entry {
    bool open = false;
    TimestampMs opening_window_start = 0;
    TimestampMs opened_at = 0;
    uint32_t revision = 0;
    v1::Severity severity = v1::SEVERITY_UNSPECIFIED;
    v1::AlertState state = v1::ALERT_STATE_UNSPECIFIED;  // of the latest record
    TimestampMs window_start = 0;                        // of the latest record
    TimestampMs window_end = 0;
    v1::Evidence evidence;                               // of the latest record
    TimestampMs recovered_since = kMinTimestamp;         // kMinTimestamp: not recovering
    TimestampMs cooldown_until = kMinTimestamp;          // when not open
    bool dirty = false;      // changed since the last Flush
    bool persisted = false;  // some Flush wrote it: erasing it must delete it
  };
  using EntryMap = std::map<Key, Entry, KeyLess>;

  // Takes the latest record's fields from `signal` and appends the record.
  void Emit(const Key& key, Entry* entry, v1::AlertState state, const Signal& signal,
            std::vector<v1::ShortageAlert>* out);
  static v1::ShortageAlert BuildRecord(const Key& key, const Entry& entry);
  static std::string StateKey(const Key& key);
  Status RestoreFrom(const StateView& state);

  LifecycleOptions options_;
  EntryMap entries_;
  std::vector<std::string> deleted_keys_;  // state keys to delete on Flush
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_ALERT_LIFECYCLE_H_
