// SourceWatermarks: stage two's event-time clock. Stage one sends, with its
// contributions and in watermark-only records to every repartition
// partition, the watermark of the input partition it reads, and whether that
// partition is idle (read to its end). Stage two closes a window when the
// smallest watermark among the sources that are not idle has passed it; when
// every source is idle — all input read — the largest counts, so the last
// windows close too.
//
// Stage two must know which sources exist (the input topics' partitions):
// Expect() registers one, and it holds every window back until it reports —
// otherwise the first source to report would close windows the others still
// have data for. A source neither expected nor heard from holds nothing
// back. A watermark never moves backwards. Idleness is declared by the
// source from its own position (lag 0), not guessed from wall-clock time, so
// results do not depend on how fast anything ran.
//
// Thread-safety: not thread-safe; one per stage-two task.
#ifndef SHORTFALL_OPERATORS_SOURCE_WATERMARKS_H_
#define SHORTFALL_OPERATORS_SOURCE_WATERMARKS_H_

#include <map>

#include "base/status.h"
#include "base/time.h"
#include "operators/state_store.h"
#include "operators/watermark.h"

namespace shortfall::operators {

class SourceWatermarks {
 public:
  // Registers a source that will report; until it does, Combined() stays at
  // kMinTimestamp. No effect on a source already known.
  void Expect(PartitionKey source);
  // Records a report from `source`.
  void Update(PartitionKey source, TimestampMs watermark, bool idle);

  // The watermark that closes windows; kMinTimestamp before any report.
  TimestampMs Combined() const;
  size_t source_count() const { return sources_.size(); }

  // Persistence, namespace "source_watermarks": Flush writes the sources
  // changed since the last Flush; Restore replaces the state.
  void Flush(StateWriteBatch* batch);
  Status Restore(const StateView& state);

 private:
  struct Source {
    TimestampMs watermark = kMinTimestamp;
    bool idle = false;
    bool dirty = false;
  };
  std::map<PartitionKey, Source> sources_;
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_SOURCE_WATERMARKS_H_
