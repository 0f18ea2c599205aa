// libFuzzer target: arbitrary bytes as an input record value, through the
// whole operator core (decode, validate, normalise, windows). Whatever the
// bytes, the pipeline must not crash, and every record must end in exactly
// one outcome.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/status.h"
#include "operators/catalog.h"
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
  pipeline.CloseAll(&reports);
  const PipelineCounters& c = pipeline.counters();
  SHORTFALL_CHECK(c.records == 2);
  SHORTFALL_CHECK(c.records == c.accepted + c.late + c.invalid_total());
  return 0;
}
