// Replay: the operator core over an event file, no Kafka — a backtest.
// `shortfall replay` is a thin command-line front for RunReplay().
//
// It reads an event file (as `shortfall gen` writes it), runs every record
// through VolumePipeline, prints rolling volumes as windows close and each
// alert record as the detectors raise it ("alert <line>", as `shortfall tail`
// prints them), and ends with a table of totals and the count of records by
// outcome. The windows the end of the file closes are printed but not run
// through the detectors: the file ends mid-stream, and a cut-short last
// bucket would read as a drop. Output depends only on the input and the
// options: the same file gives byte-identical output, whether state is in
// memory or in RocksDB (--state-dir).
//
// With a report path, the volume-drop detector's reading of every judged
// close is kept and, at the end, written as one HTML page (report_html.h)
// with the alert records and, given a truth file, its windows; it covers the
// closes of this run only (after a resume, from the checkpoint on). Without
// one, nothing is kept.
//
// With a state directory, state and the position in the file (records and
// byte offset) are committed together every `commit_every` records; a replay
// over a directory that holds a checkpoint resumes after the last committed
// record, as the Kafka runtime resumes from committed offsets, and refuses
// an input whose records do not line up with that position.
//
// Thread-safety: RunReplay is reentrant; it shares nothing between calls.
#ifndef SHORTFALL_PIPELINE_REPLAY_H_
#define SHORTFALL_PIPELINE_REPLAY_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "base/status.h"
#include "operators/catalog.h"
#include "operators/volume_pipeline.h"
#include "pipeline/event_file.h"

namespace shortfall::pipeline {

// Which window closes replay prints: none, every bucket close, or the closes
// that fall on midnight UTC.
enum class PrintEvery { kNone, kBucket, kDay };
Result<PrintEvery> ParsePrintEvery(std::string_view text);  // "none" | "bucket" | "day"

struct ReplayOptions {
  std::string input;                         // path, "-" for stdin
  EventFileFormat format = EventFileFormat::kProtobuf;
  std::string state_dir;                     // empty: in-memory state
  PrintEvery print_every = PrintEvery::kDay; // which window closes to print
  bool print_corridors = true;               // false: only each group's total ("*")
  uint64_t commit_every = 10000;             // records between commits (state dir only)
  uint64_t max_records = 0;                  // stop after this many records; 0 = all
  std::string totals_csv;                    // also write final totals here (optional)
  std::string alerts_json;                   // also write alert records here, JSON lines (optional)
  std::string report_html;                   // also write the HTML report here (optional; report_html.h)
  std::string truth_csv;                     // with report_html: ground truth to shade (gen --truth)
  std::string shipments_topic = "shipments.events.v1";
  std::string customs_topic = "customs.events.v1";
  operators::PipelineOptions pipeline;
};

// Runs the replay, writing the report to `out`. Returns an error for what
// stops a replay (unreadable input, corrupt file framing, state I/O); bad
// records are counted and reported, never errors.
Status RunReplay(const ReplayOptions& options, const operators::Catalog& catalog,
                 std::ostream& out);

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_REPLAY_H_
