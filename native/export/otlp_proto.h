// OTLP protobuf encoding of spans: ExportTraceServiceRequest, byte-compatible with the official
// opentelemetry-proto definitions and with what opentelemetry-sdk's exporters send.
#pragma once

#include <span>
#include <string>

#include "trace/span_data.h"

namespace djtrace {

// Encodes spans as one ExportTraceServiceRequest, grouped by resource, then by scope, keeping
// the order in which each resource and scope first appears. Appends to `out`.
void EncodeExportTraceServiceRequest(std::span<const SpanData* const> spans, std::string& out);

}  // namespace djtrace
