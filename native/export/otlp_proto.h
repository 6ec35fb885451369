// OTLP protobuf encoding of spans: ExportTraceServiceRequest, byte-compatible with the official
// opentelemetry-proto definitions and with what opentelemetry-sdk's exporters send.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "trace/span_data.h"

namespace djtrace {

// Encodes spans as one ExportTraceServiceRequest, grouped by resource, then by scope, keeping
// the order in which each resource and scope first appears. Appends to `out`.
void EncodeExportTraceServiceRequest(std::span<const SpanData* const> spans, std::string& out);

// The same request, written into `buffer` from its first byte; returns its size (the request is
// the first that many bytes). The buffer only grows, to the largest request so far, and is not
// cleared: an exporter that reuses one skips the zero-fill of resizing a cleared string, which
// writes as many bytes per batch as the encoding does.
size_t EncodeExportTraceServiceRequestReusing(std::span<const SpanData* const> spans,
                                              std::string& buffer);

}  // namespace djtrace
