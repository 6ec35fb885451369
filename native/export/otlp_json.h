// OTLP/JSON encoding (the protobuf JSON mapping as OTLP specifies it: hex trace and span ids,
// lowerCamelCase field names, enums as integers, 64-bit integers as decimal strings). One
// ExportTraceServiceRequest per line is the OpenTelemetry Collector file exporter's format.
#pragma once

#include <span>
#include <string>

#include "trace/span_data.h"

namespace djtrace {

// Appends one ExportTraceServiceRequest as a single line of JSON, without the newline.
void EncodeExportTraceServiceRequestJson(std::span<const SpanData* const> spans, std::string& out);

}  // namespace djtrace
