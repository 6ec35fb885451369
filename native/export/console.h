// Human-readable trace trees for the console exporter: a developer's view of one batch.
//
//   POST /api/orders/ (250.1 ms) [SERVER] trace=4bf92f3577b34da6a3ce929d0e0e4736
//   ├── OrderViewSet.create (200.0 ms)  code.function.name="OrderViewSet.create"
//   │   ├── SELECT orders (5.0 ms) [CLIENT]  db.query.text="SELECT ... FROM orders WHERE id = ?"
//   │   └── INSERT orders (3.2 ms) [CLIENT] ERROR "duplicate key"  db.query.text="INSERT ..."
//   │         • exception (+3.1 ms)  exception.type="IntegrityError" exception.message="..."
//   └── render orders.html (12.4 ms)
//
// Layout:
// - Spans are grouped by trace; traces are ordered by the start of their earliest span.
// - Within a trace, a span whose parent is in the batch is drawn under it; children are sorted
//   by start time (batch order on ties). A span with no parent, or whose parent is not in the
//   batch, is a root of its trace; such a root also shows "parent=<span id>" when it has a
//   parent (a remote caller, or a part of the trace exported in another batch). Each root line
//   shows the full trace id, so a partial trace is easy to find in a backend.
// - Each span line: name, duration (ns, µs, ms or s), the kind unless INTERNAL, ERROR and the
//   status message when the status is an error, then key attributes.
// - Key attributes (the rest only in verbose mode), in the span's own order: those starting
//   with "djtrace." (our findings, e.g. N+1 queries) and
//     http.route, http.response.status_code, db.query.text, db.statement (pre-1.26 name of
//     db.query.text, still sent by many instrumentations), messaging.destination.name,
//     code.function, code.function.name (its current name), error.type.
//   They say what a span did (which route, which query, which queue, which function) and how it
//   ended, which is what one looks for in a console; resource-like or per-request noise
//   (server.address, user_agent.original, ...) is left to verbose mode.
// - Events are listed under their span as "• name (+offset from span start)", with the key
//   event attributes exception.type, exception.message and "djtrace.*" (all in verbose mode).
// - String values are quoted with JSON escapes (control characters can't break a line; bad
//   UTF-8 shows as U+FFFD) and, unless verbose, cut at `max_value_bytes` with "…".
// - Verbose mode adds the span id, every attribute on its own line under the span, every event
//   attribute, and the span's links.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "trace/span_data.h"

namespace djtrace {

struct ConsoleOptions {
  bool verbose = false;  // every attribute, span ids, links; values not cut
  bool color = false;    // ANSI SGR escapes (the caller decides, e.g. from isatty and NO_COLOR)
  size_t max_value_bytes = 120;  // cut longer values when not verbose
};

// Appends the trace trees of `spans` to `out`, one line per span, event, and (verbose) attribute
// or link, each ending in '\n'. Null pointers in `spans` are skipped.
void RenderTraceTree(std::span<const SpanData* const> spans, const ConsoleOptions& options,
                     std::string& out);

}  // namespace djtrace
