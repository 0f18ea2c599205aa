// libFuzzer target: arbitrary bytes as an input record value, through the
// whole operator core (decode, validate, normalise, windows, flush, restore).
// Whatever the bytes, the pipeline must not crash, every record must end in
// exactly one outcome, and what was accepted must survive a restore.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/status.h"
#include "operators/catalog.h"
#include "operators/in_memory_state_store.h"
#include "operators/volume_pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shortfall::operators;
  static const PipelineOptions options;
  VolumePipeline pipeline(Catalog::Default(), options);
  const std::string_view value(reinterpret_cast<const char*>(data), size);
  // The first byte picks the source and format, the rest is the value.
  const uint8_t selector = size > 0 ? data[0] : 0;
  const std::string_view rest = size > 0 ? value.substr(1) : value;
  const EventSource source = (selector & 1) ? EventSource::kCustoms : EventSource::kShipments;
  const PayloadFormat format = static_cast<PayloadFormat>((selector >> 1) % 3);
  pipeline.ProcessValue(source, 0, rest, format, 0);
  pipeline.ProcessValue(source == EventSource::kShipments ? EventSource::kCustoms : EventSource::kShipments,
                        1, value, PayloadFormat::kAuto, 0);
  std::vector<WindowReport> reports;
  pipeline.DrainClosedWindows(&reports);
  const PipelineCounters& c = pipeline.counters();
  SHORTFALL_CHECK(c.records == 2);
  SHORTFALL_CHECK(c.records == c.accepted + c.late + c.invalid_total());
  // Whatever was accepted survives a commit and a restore.
  InMemoryStateStore store;
  StateWriteBatch batch;
  pipeline.Flush(&batch);
  SHORTFALL_CHECK(store.Commit(batch, "cp").ok());
  VolumePipeline restored(Catalog::Default(), options);
  SHORTFALL_CHECK(restored.Restore(store).ok());
  SHORTFALL_CHECK(restored.counters().accepted == c.accepted);
  SHORTFALL_CHECK(restored.aggregator().Summaries().size() == pipeline.aggregator().Summaries().size());
  pipeline.CloseAll(&reports);
  return 0;
}
