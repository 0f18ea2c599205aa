// Alert formatting: a ShortageAlert (proto/shortfall/v1/shortage_alert.proto)
// as one line an operator can read and act on, or as one line of JSON, for
// `shortfall tail`, logs and the runtime.
//
//   2026-03-09T14:00:00Z OPEN CRITICAL volume_drop semiconductors MX-US-2304:
//   shipments 41 vs expected 180 (-77%) over 24h (cusum 7.2 > 5.0)
//   since 2026-03-07T00:00:00Z [id a1b2c3]
//
// (one line; wrapped here). Fields, in order: the end of the evidence window
// (else the opening time), state, severity, kind, commodity group, corridor
// (origin-destination-port, "*" for "all", "all corridors" when unset), then
// the evidence: measure, observed vs expected and the relative change, the
// window length, the statistic that fired against its threshold, the top
// contributing corridors when there are any ("top MX-US-2304 62%, ..."),
// when the alert opened, and its id (and revision after the first).
// Measures named *_rate or *share print as percentages, *_seconds as hours.
//
// Thread-safety: pure functions.
#ifndef SHORTFALL_PIPELINE_ALERT_FORMAT_H_
#define SHORTFALL_PIPELINE_ALERT_FORMAT_H_

#include <string>

#include "base/status.h"
#include "shortfall/v1/shortage_alert.pb.h"

namespace shortfall::pipeline {

// The readable line, without a trailing newline. Never fails: missing
// fields print as "-" or are left out.
std::string FormatAlertLine(const shortfall::v1::ShortageAlert& alert);

// "MX-US-2304"; "*" for an empty field; "all corridors" when all are empty.
std::string FormatCorridor(const shortfall::v1::Corridor& corridor);

// Lower-case enum names without their prefix, for metric labels: "volume_drop",
// "critical", "open" (the number for a value this build does not know).
std::string AlertKindLabel(shortfall::v1::AlertKind kind);
std::string SeverityLabel(shortfall::v1::Severity severity);
std::string AlertStateLabel(shortfall::v1::AlertState state);

// One JSON object in protobuf's JSON mapping (lowerCamelCase, enums by
// name, RFC 3339 timestamps), without a trailing newline.
Result<std::string> FormatAlertJson(const shortfall::v1::ShortageAlert& alert);

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_ALERT_FORMAT_H_
