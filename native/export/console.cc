#include "export/console.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "export/json_writer.h"

namespace djtrace {
namespace {

constexpr uint32_t kNoParent = UINT32_MAX;

constexpr std::string_view kBranch = "├── ";
constexpr std::string_view kLastBranch = "└── ";
constexpr std::string_view kPipe = "│   ";
constexpr std::string_view kBlank = "    ";
constexpr std::string_view kEllipsis = "…";

// SGR sequences.
constexpr std::string_view kReset = "\x1b[0m";
constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kDim = "\x1b[2m";
constexpr std::string_view kRed = "\x1b[1;31m";
constexpr std::string_view kCyan = "\x1b[36m";
constexpr std::string_view kYellow = "\x1b[33m";

constexpr std::string_view kSpanKeyAttributes[] = {
    "http.route",
    "http.response.status_code",
    "db.query.text",
    "db.statement",
    "messaging.destination.name",
    "code.function",
    "code.function.name",
    "error.type",
};
// An N+1 or repeated-read finding is read for its statement and where it comes from.
constexpr std::string_view kEventKeyAttributes[] = {
    "exception.type", "exception.message", "db.query.text",
    "code.filepath",  "code.lineno",       "code.function",
};
constexpr std::string_view kOwnPrefix = "djtrace.";

bool IsOwn(std::string_view key) { return key.starts_with(kOwnPrefix); }

template <size_t N>
bool IsKey(std::string_view key, const std::string_view (&keys)[N]) {
  if (IsOwn(key)) return true;
  for (std::string_view k : keys) {
    if (k == key) return true;
  }
  return false;
}

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

class Renderer {
 public:
  Renderer(const ConsoleOptions& options, std::string& out) : options_(options), out_(out) {}

  void Render(std::span<const SpanData* const> input) {
    for (const SpanData* s : input) {
      if (s != nullptr) spans_.push_back(s);
    }
    // Trace by trace, each in start order (batch order on ties).
    order_.resize(spans_.size());
    for (uint32_t i = 0; i < order_.size(); ++i) order_[i] = i;
    std::sort(order_.begin(), order_.end(), [this](uint32_t a, uint32_t b) {
      const SpanData& x = *spans_[a];
      const SpanData& y = *spans_[b];
      if (x.trace_id != y.trace_id) return x.trace_id < y.trace_id;
      if (x.start_time_unix_nano != y.start_time_unix_nano) {
        return x.start_time_unix_nano < y.start_time_unix_nano;
      }
      return a < b;
    });
    struct TraceRange {
      uint32_t begin, end;
    };
    std::vector<TraceRange> traces;
    for (uint32_t i = 0; i < order_.size();) {
      uint32_t j = i + 1;
      while (j < order_.size() && spans_[order_[j]]->trace_id == spans_[order_[i]]->trace_id) ++j;
      traces.push_back({i, j});
      i = j;
    }
    // Traces by the start of their earliest span (their first in order_).
    std::stable_sort(traces.begin(), traces.end(), [this](TraceRange a, TraceRange b) {
      return spans_[order_[a.begin]]->start_time_unix_nano <
             spans_[order_[b.begin]]->start_time_unix_nano;
    });
    for (const TraceRange& t : traces) RenderTrace(t.begin, t.end);
  }

 private:
  // One trace: order_[begin, end) in start order. Nodes are numbered locally 0..m-1.
  void RenderTrace(uint32_t begin, uint32_t end) {
    const uint32_t m = end - begin;
    nodes_.assign(order_.begin() + begin, order_.begin() + end);
    // Parent lookup by span id; the earliest span wins if ids repeat.
    by_id_.resize(m);
    for (uint32_t i = 0; i < m; ++i) by_id_[i] = i;
    std::sort(by_id_.begin(), by_id_.end(), [this](uint32_t a, uint32_t b) {
      const SpanId& x = Span(a).span_id;
      const SpanId& y = Span(b).span_id;
      return x != y ? x < y : a < b;
    });
    parent_.assign(m, kNoParent);
    child_count_.assign(m + 1, 0);
    for (uint32_t i = 0; i < m; ++i) {
      const SpanData& s = Span(i);
      if (IsZero(s.parent_span_id)) continue;
      auto it = std::lower_bound(
          by_id_.begin(), by_id_.end(), s.parent_span_id,
          [this](uint32_t node, const SpanId& id) { return Span(node).span_id < id; });
      if (it == by_id_.end() || Span(*it).span_id != s.parent_span_id || *it == i) continue;
      parent_[i] = *it;
      ++child_count_[*it];
    }
    // Children lists (CSR); filling in node order keeps each list in start order.
    first_child_.assign(m + 1, 0);
    for (uint32_t i = 0; i < m; ++i) first_child_[i + 1] = first_child_[i] + child_count_[i];
    children_.resize(m);
    fill_.assign(first_child_.begin(), first_child_.end() - 1);
    for (uint32_t i = 0; i < m; ++i) {
      if (parent_[i] != kNoParent) children_[fill_[parent_[i]]++] = i;
    }
    visited_.assign(m, false);
    for (uint32_t i = 0; i < m; ++i) {
      if (parent_[i] == kNoParent) RenderTree(i);
    }
    // Whatever is left hangs in a parent cycle (corrupt ids): still show it.
    for (uint32_t i = 0; i < m; ++i) {
      if (!visited_[i]) RenderTree(i);
    }
  }

  const SpanData& Span(uint32_t node) const { return *spans_[nodes_[node]]; }

  void RenderTree(uint32_t root) {
    prefix_.clear();
    visited_[root] = true;
    RenderSpan(root, /*is_root=*/true);
    stack_.clear();
    PushFrame(root);
    while (!stack_.empty()) {
      StackFrame& frame = stack_.back();
      while (frame.next < frame.end && visited_[children_[frame.next]]) ++frame.next;
      if (frame.next == frame.end) {
        stack_.pop_back();
        continue;
      }
      uint32_t child = children_[frame.next++];
      bool last = frame.next == frame.end;
      prefix_.resize(frame.prefix_length);
      Glyphs(prefix_, last ? kLastBranch : kBranch);
      visited_[child] = true;
      prefix_.append(last ? kBlank : kPipe);
      RenderSpan(child, /*is_root=*/false);
      PushFrame(child);  // invalidates `frame`
    }
  }

  // A node whose children are about to be drawn. Only a node's own frame reaches its children
  // (each node has one parent), so which of them are already drawn (only possible after a
  // parent cycle) does not change meanwhile: the last one to draw is known now.
  void PushFrame(uint32_t node) {
    uint32_t begin = first_child_[node];
    uint32_t end = begin + child_count_[node];
    while (end > begin && visited_[children_[end - 1]]) --end;
    stack_.push_back({begin, end, prefix_.size()});
  }

  // The span's line, then its detail lines. prefix_ holds the prefix of its children.
  void RenderSpan(uint32_t node, bool is_root) {
    const SpanData& s = Span(node);
    if (is_root) Style(kBold);
    out_.append(s.name.empty() ? "(unnamed)" : "");
    AppendText(s.name);
    if (is_root) Style(kReset);
    out_.append(" ");
    Style(kDim);
    out_.push_back('(');
    AppendDuration(s.start_time_unix_nano, s.end_time_unix_nano);
    out_.push_back(')');
    Style(kReset);
    if (s.kind != SpanKind::kInternal) {
      out_.append(" [");
      out_.append(KindName(s.kind));
      out_.push_back(']');
    }
    if (s.status_code == StatusCode::kError) {
      out_.push_back(' ');
      Style(kRed);
      out_.append("ERROR");
      if (!s.status_message.empty()) {
        out_.push_back(' ');
        AppendQuoted(s.status_message, options_.verbose ? 0 : options_.max_value_bytes);
      }
      Style(kReset);
    } else if (s.status_code == StatusCode::kOk && options_.verbose) {
      out_.append(" OK");
    }
    if (is_root) {
      out_.append(" trace=");
      AppendHex(s.trace_id.data(), s.trace_id.size(), out_);
      if (!IsZero(s.parent_span_id)) {
        out_.append(" parent=");
        AppendHex(s.parent_span_id.data(), s.parent_span_id.size(), out_);
      }
    }
    if (options_.verbose) {
      out_.append(" span=");
      AppendHex(s.span_id.data(), s.span_id.size(), out_);
    } else {
      bool first = true;
      for (const Attribute& a : s.attributes) {
        if (!IsKey(a.key, kSpanKeyAttributes)) continue;
        out_.append(first ? "  " : " ");
        first = false;
        AppendAttribute(a);
      }
    }
    out_.push_back('\n');

    // Detail lines sit between the span and its first child: keep the children's rail going.
    bool has_children = child_count_[node] > 0;
    auto detail = [&] { Glyphs(prefix_, has_children ? "│ " : "  "); };
    if (options_.verbose) {
      for (const Attribute& a : s.attributes) {
        detail();
        AppendAttribute(a);
        out_.push_back('\n');
      }
    }
    for (const Event& e : s.events) {
      detail();
      out_.append("• ");
      AppendText(e.name);
      out_.append(" ");
      Style(kDim);
      out_.append("(");
      if (e.time_unix_nano >= s.start_time_unix_nano) {
        out_.push_back('+');
        AppendDuration(s.start_time_unix_nano, e.time_unix_nano);
      } else {
        out_.push_back('-');
        AppendDuration(e.time_unix_nano, s.start_time_unix_nano);
      }
      out_.append(")");
      Style(kReset);
      bool first = true;
      for (const Attribute& a : e.attributes) {
        if (!options_.verbose && !IsKey(a.key, kEventKeyAttributes)) continue;
        out_.append(first ? "  " : " ");
        first = false;
        AppendAttribute(a);
      }
      out_.push_back('\n');
    }
    if (options_.verbose) {
      for (const Link& l : s.links) {
        detail();
        out_.append("→ link trace=");
        AppendHex(l.trace_id.data(), l.trace_id.size(), out_);
        out_.append(" span=");
        AppendHex(l.span_id.data(), l.span_id.size(), out_);
        for (const Attribute& a : l.attributes) {
          out_.push_back(' ');
          AppendAttribute(a);
        }
        out_.push_back('\n');
      }
    }
  }

  static std::string_view KindName(SpanKind kind) {
    switch (kind) {
      case SpanKind::kServer:
        return "SERVER";
      case SpanKind::kClient:
        return "CLIENT";
      case SpanKind::kProducer:
        return "PRODUCER";
      case SpanKind::kConsumer:
        return "CONSUMER";
      case SpanKind::kInternal:
        return "INTERNAL";
      default:
        return "UNSPECIFIED";
    }
  }

  void AppendDuration(uint64_t start, uint64_t end) {
    if (start == 0 || end == 0 || end < start) {
      out_.append("? ms");
      return;
    }
    uint64_t ns = end - start;
    char buffer[48];
    int n;
    if (ns >= 1'000'000'000) {
      n = std::snprintf(buffer, sizeof buffer, "%.2f s", static_cast<double>(ns) / 1e9);
    } else if (ns >= 1'000'000) {
      n = std::snprintf(buffer, sizeof buffer, "%.1f ms", static_cast<double>(ns) / 1e6);
    } else if (ns >= 1'000) {
      n = std::snprintf(buffer, sizeof buffer, "%.0f µs", static_cast<double>(ns) / 1e3);
    } else {
      n = std::snprintf(buffer, sizeof buffer, "%llu ns", static_cast<unsigned long long>(ns));
    }
    out_.append(buffer, static_cast<size_t>(n));
  }

  void AppendAttribute(const Attribute& a) {
    bool own = IsOwn(a.key);
    Style(own ? kYellow : kCyan);
    AppendText(a.key);
    Style(kReset);
    out_.push_back('=');
    std::visit(
        [this](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (IsVector<T>::value) {
            out_.push_back('[');
            bool first = true;
            for (const auto& e : x) {
              if (!first) out_.append(", ");
              first = false;
              AppendScalar(static_cast<typename T::value_type>(e));
            }
            out_.push_back(']');
          } else {
            AppendScalar(x);
          }
        },
        a.value);
  }

  template <class T>
  void AppendScalar(const T& x) {
    if constexpr (std::is_same_v<T, bool>) {
      out_.append(x ? "true" : "false");
    } else if constexpr (std::is_same_v<T, int64_t>) {
      char buffer[24];
      auto result = std::to_chars(buffer, buffer + sizeof buffer, x);
      out_.append(buffer, result.ptr);
    } else if constexpr (std::is_same_v<T, double>) {
      if (std::isnan(x)) {
        out_.append("NaN");
      } else if (std::isinf(x)) {
        out_.append(x > 0 ? "Infinity" : "-Infinity");
      } else {
        char buffer[32];
        auto result = std::to_chars(buffer, buffer + sizeof buffer, x);
        out_.append(buffer, result.ptr);
      }
    } else {
      AppendQuoted(x, options_.verbose ? 0 : options_.max_value_bytes);
    }
  }

  // A quoted, escaped value cut at `limit` bytes (0: no limit) on a character boundary.
  void AppendQuoted(std::string_view s, size_t limit) {
    bool cut = limit != 0 && s.size() > limit;
    if (cut) {
      size_t n = limit;
      while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
      s = s.substr(0, n);
    }
    out_.push_back('"');
    AppendJsonStringContent(s, out_);
    if (cut) out_.append(kEllipsis);
    out_.push_back('"');
  }

  // Names and keys, escaped as in a JSON string but unquoted: one span, one line.
  void AppendText(std::string_view s) { AppendJsonStringContent(s, out_); }

  void Style(std::string_view sgr) {
    if (options_.color) out_.append(sgr);
  }
  // Tree drawing: the prefix of the parent's rails, then this line's own piece.
  void Glyphs(std::string_view rails, std::string_view piece) {
    Style(kDim);
    out_.append(rails);
    out_.append(piece);
    Style(kReset);
  }

  const ConsoleOptions& options_;
  std::string& out_;
  std::vector<const SpanData*> spans_;
  std::vector<uint32_t> order_;
  // Per trace, indexed by local node number.
  std::vector<uint32_t> nodes_;  // index in spans_
  std::vector<uint32_t> by_id_;
  std::vector<uint32_t> parent_;
  std::vector<uint32_t> child_count_;
  std::vector<uint32_t> first_child_;
  std::vector<uint32_t> fill_;
  std::vector<uint32_t> children_;
  std::vector<bool> visited_;
  std::string prefix_;
  struct StackFrame {
    uint32_t next;  // range of children_ still to draw
    uint32_t end;
    size_t prefix_length;  // prefix_ of these children
  };
  std::vector<StackFrame> stack_;
};

}  // namespace

void RenderTraceTree(std::span<const SpanData* const> spans, const ConsoleOptions& options,
                     std::string& out) {
  Renderer(options, out).Render(spans);
}

}  // namespace djtrace
