// Database spans and per-root query statistics for djtrace.integrations.django.db.
//
// The execute wrapper that Django calls for every query is `db_execute` itself (bound to the
// connection's DbConnInfo with functools.partial), so one traced query costs one crossing into
// native code: the SQL cache lookup (obfuscation, fingerprint and summary once per distinct
// text), the walk up the Python frames to the application's call site, the span start, the
// call of Django's next executor, and the span end with the statistics of the local root. This
// file only converts Python objects and walks frames; the logic lives in sql/ and analysis/.
#include <Python.h>
#include <frameobject.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "analysis/query_stats.h"
#include "analysis/template_lines.h"
#include "python/common.h"
#include "python/frame_walk.h"
#include "sql/cache.h"
#include "sql/hash.h"
#include "trace/clock.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace djtrace {

namespace {

using analysis::CallSite;
using analysis::CodeLocation;
using analysis::QueryGroup;
using analysis::QueryStats;
using analysis::QueryStatsOptions;
using SqlPtr = std::shared_ptr<const sql::ObfuscatedSql>;

// A statement's spans from one call site: the key to the attributes they all carry.
struct SharedAttrKey {
  const sql::ObfuscatedSql* sql;
  const CodeLocation* code;
  int32_t lineno;
  const CodeLocation* template_code;
  int32_t template_lineno;
  bool operator==(const SharedAttrKey&) const = default;
};

struct SharedAttrKeyHash {
  size_t operator()(const SharedAttrKey& k) const noexcept {
    uint64_t h = reinterpret_cast<uintptr_t>(k.sql) * 0x9E3779B97F4A7C15ull;
    h ^= reinterpret_cast<uintptr_t>(k.code) * 0xC2B2AE3D27D4EB4Full + (h >> 29);
    h ^= static_cast<uint64_t>(static_cast<uint32_t>(k.lineno)) * 0x165667B19E3779F9ull;
    if (k.template_code)
      h ^= (reinterpret_cast<uintptr_t>(k.template_code) +
            static_cast<uint32_t>(k.template_lineno)) *
               0x27D4EB2F165667C5ull +
           (h >> 31);
    return h;
  }
};

struct SharedAttrEntry {
  SqlPtr sql;  // held, so that no other statement or code object reuses the key's addresses
  std::shared_ptr<const CodeLocation> code;
  std::shared_ptr<const CodeLocation> template_code;  // held likewise
  LimitedAttributes attributes;
};

// What is known about one Django connection (alias), computed once when it connects.
struct DbConnInfo {
  sql::Dialect dialect = sql::Dialect::kGeneric;
  std::string system_name;  // db.system.name: "postgresql", "sqlite", "mysql", "mariadb"
  std::string alias;
  std::string driver;      // for sqlcommenter's db_driver, e.g. "psycopg:3.2.1"
  Attributes attributes;   // the same on every span of the connection
  bool old_names = false;  // OTEL_SEMCONV_STABILITY_OPT_IN=database/dup
  // The connection's, statement's and call site's attributes, built on a statement's first
  // execution from a call site and then referenced by each of its spans instead of copied
  // (a few kilobytes of strings per query otherwise). Cleared when full, by count or by the
  // statement text it holds (texts too long for the SQL cache come anew on every execution).
  mutable std::unordered_map<SharedAttrKey, SharedAttrEntry, SharedAttrKeyHash> shared;
  mutable size_t shared_text_bytes = 0;
  static constexpr size_t kMaxShared = 2048;
  static constexpr size_t kMaxSharedTextBytes = 4 << 20;
};

using PassThrough = std::vector<std::pair<int, int>>;  // [start, end) instruction byte offsets

struct CodeEntry {
  bool app = false;
  // The function a worker thread enters to run the synchronous side of Django's async API
  // (asgiref's SyncToAsync.thread_handler): frames below it are not callers of the work.
  bool thread_entry = false;
  std::shared_ptr<const CodeLocation> loc;
  // The line of each instruction a call site was found at. PyCode_Addr2Line scans the line
  // table from its start, which costs more than the rest of the walk, and application code
  // issues its queries from the same instructions again and again: a view often from more
  // than a handful of them, which a small ring of recent ones would keep evicting.
  static constexpr size_t kMaxLines = 256;
  std::unordered_map<int, int> lines;
  // A template compiled to Python (Jinja2) has the template's file as its filename but the
  // generated module's line numbers. Such code (an application file that is not a .py one)
  // has its lines mapped back to the template's through the map Jinja keeps in the module's
  // globals, read the first time a call site is found in it.
  bool maybe_template = false;
  bool template_read = false;
  bool compiled_template = false;  // a Jinja2 template's: loc names the template
  analysis::TemplateLines template_lines;
  // Django's Node.render_annotated: the node it renders (its first local) is where a query
  // made by Django's template engine comes from in the template.
  bool template_node = false;
  // A middleware's code: the byte ranges of its calls to get_response, where its frame only
  // passes the request on and is not the call site of what runs below (db_pass_through).
  PassThrough pass_through;
};

// Queries observed while a djtrace.testing helper is active (see db.py: QueryCollector).
struct QueryCollector {
  std::shared_ptr<QueryStats> own;  // N+1 grouping for queries that belong to no root
  std::shared_ptr<QueryStats> all;  // every query of the block: duplicates
  nb::object parent;                // the collector that was active when this one started
  uint64_t queries = 0;
  uint64_t duration_ns = 0;
  uint64_t errors = 0;
  std::vector<QueryGroup> findings;
  std::vector<analysis::TaskSendGroup> task_send_findings;  // see record_task_send
  struct Executed {
    SqlPtr sql;
    CallSite site;
    std::string relation;
    uint64_t duration_ns;
  };
  std::vector<Executed> executed;  // capped at kMaxExecuted
  static constexpr size_t kMaxExecuted = 10000;
};

struct DbState {
  bool enabled = false;
  std::unique_ptr<sql::SqlCache> cache;
  // Context variables read on every query (owned references, kept for the process's life).
  PyObject* suppress_var = nullptr;       // djtrace.integrations._suppress.SUPPRESSED
  PyObject* otel_suppress_key = nullptr;  // OpenTelemetry's suppress_instrumentation key
  PyObject* relation_var = nullptr;       // "Model.field" while a related object loads
  PyObject* comment_var = nullptr;        // (route, controller) for sqlcommenter, or None
  PyObject* collector_var = nullptr;      // the active QueryCollector, or None
  // A CapturedSite while Django's async API runs the synchronous ORM for the application in a
  // worker thread (djtrace.integrations.django.db.AWAITED_SITE); read only when a query's own
  // stack has no frame of the application's.
  PyObject* site_var = nullptr;
  // The local root the request/command hooks started in this context: a span, or an object
  // whose `span` attribute is one (djtrace.integrations.django._state.ROOT).
  PyObject* root_var = nullptr;
  // The tracer, re-resolved whenever opentelemetry.trace._TRACER_PROVIDER changes.
  PyObject* trace_module = nullptr;
  PyObject* provider_attr = nullptr;
  PyObject* cached_provider = nullptr;  // owned; identity only
  bool tracer_resolved = false;
  nb::object tracer_obj;
  NativeTracer* tracer = nullptr;  // null: the tracer is not ours (fallback) or there is none
  nb::object resolve_tracer;       // provider -> tracer or None
  nb::object fallback;             // Python path for tracers that are not djtrace's
  nb::object on_finding;           // called with a dict when a group becomes an N+1
  nb::object client_kind;          // opentelemetry.trace.SpanKind.CLIENT
  QueryStatsOptions stats_options;
  bool n_plus_one = true;  // attach statistics to roots that have none
  bool query_source = true;
  bool root_spans = true;
  bool sqlcommenter = false;
  std::string framework;  // sqlcommenter's framework value, "django:5.2"
  std::vector<std::string> skip_prefixes;
  // The application's own code even where a shorter skip prefix covers it (a project
  // installed into site-packages).
  std::vector<std::string> app_prefixes;
  // Code objects of the thread entries above (owned references).
  std::vector<PyObject*> thread_entries;
  std::unordered_map<PyObject*, CodeEntry> code_cache;  // keys are owned references
  // Middleware code and its get_response calls (owned keys), kept apart from code_cache,
  // which is cleared when it grows or the prefixes change.
  std::unordered_map<PyObject*, PassThrough> pass_through;
  // Templates as call-site locations, by file path and name.
  std::unordered_map<std::string, std::shared_ptr<const CodeLocation>> template_locs;
  int collectors_active = 0;
};

// Never destroyed: its Python references must not be released after the interpreter is gone.
// db_shutdown (called at exit) drops them while the interpreter still runs.
DbState& g_db = *new DbState();

constexpr size_t kMaxCodeEntries = 16384;
constexpr int kMaxFrames = 128;
constexpr size_t kMaxSerializedParams = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Small conversions

std::string_view View(PyObject* o) {
  if (!o || !PyUnicode_Check(o)) return {};
  Py_ssize_t n;
  const char* s = PyUnicode_AsUTF8AndSize(o, &n);
  if (!s) {
    PyErr_Clear();
    return {};
  }
  return {s, static_cast<size_t>(n)};
}

// The value of a context variable (new reference), or null when unset.
PyObject* VarGet(PyObject* var) {
  if (!var) return nullptr;
  PyObject* v = nullptr;
  if (PyContextVar_Get(var, nullptr, &v) < 0) {
    PyErr_Clear();
    return nullptr;
  }
  return v;
}

bool VarTrue(PyObject* var) {
  PyObject* v = VarGet(var);
  if (!v) return false;
  bool r = v != Py_None && v != Py_False && PyObject_IsTrue(v) == 1;
  Py_DECREF(v);
  return r;
}

// A direct-mapped memo in front of code_cache: a query's walk looks up some twenty code objects,
// and a hash-map lookup (a division, a chain) costs more than the rest of a frame's visit. The
// entries point into code_cache's nodes, which stay put until ClearCodeCache clears both.
struct CodeMemo {
  PyObject* code = nullptr;
  CodeEntry* entry = nullptr;
};
std::array<CodeMemo, 512> g_code_memo;

CodeMemo& MemoSlot(PyObject* code) {
  uint64_t h = reinterpret_cast<uintptr_t>(code) * 0x9E3779B97F4A7C15ull;  // Fibonacci hashing
  return g_code_memo[h >> (64 - 9)];
}

void ClearCodeCache() {
  g_code_memo.fill({});
  for (auto& [code, entry] : g_db.code_cache) Py_DECREF(code);
  g_db.code_cache.clear();
}

// ---------------------------------------------------------------------------------------------
// Query source: the first frame of application code

// Whether a source file is the application's: the longest prefix that covers it decides, so
// that an application directory inside site-packages is the application's and a virtualenv
// inside the application's directory is not.
bool IsAppPath(std::string_view path) {
  auto longest = [path](const std::vector<std::string>& prefixes) {
    size_t n = 0;
    for (const std::string& prefix : prefixes)
      if (prefix.size() > n && path.size() >= prefix.size() &&
          path.compare(0, prefix.size(), prefix) == 0)
        n = prefix.size();
    return n;
  };
  return !path.empty() && path[0] != '<' &&
         longest(g_db.app_prefixes) >= longest(g_db.skip_prefixes);
}

CodeEntry& Classify(PyCodeObject* code) {
  CodeMemo& memo = MemoSlot(reinterpret_cast<PyObject*>(code));
  if (memo.code == reinterpret_cast<PyObject*>(code)) return *memo.entry;
  auto it = g_db.code_cache.find(reinterpret_cast<PyObject*>(code));
  if (it != g_db.code_cache.end()) {
    memo = {it->first, &it->second};
    return it->second;
  }
  if (g_db.code_cache.size() >= kMaxCodeEntries) ClearCodeCache();
  CodeEntry entry;
  PyObject* filename = PyObject_GetAttrString(reinterpret_cast<PyObject*>(code), "co_filename");
  if (!filename) PyErr_Clear();
  const std::string_view path = View(filename);
  const bool app = IsAppPath(path);
  entry.thread_entry = std::find(g_db.thread_entries.begin(), g_db.thread_entries.end(),
                                 reinterpret_cast<PyObject*>(code)) != g_db.thread_entries.end();
  if (app) {
    PyObject* name = PyObject_GetAttrString(reinterpret_cast<PyObject*>(code), "co_qualname");
    if (!name) {
      PyErr_Clear();
      name = PyObject_GetAttrString(reinterpret_cast<PyObject*>(code), "co_name");
      if (!name) PyErr_Clear();
    }
    try {
      entry.loc = analysis::MakeCodeLocation(std::string(path), std::string(View(name)));
      entry.app = true;
      entry.maybe_template = !path.ends_with(".py");
    } catch (...) {
      entry.app = false;
    }
    Py_XDECREF(name);
  } else if (path.ends_with("/django/template/base.py")) {
    PyObject* name = PyObject_GetAttrString(reinterpret_cast<PyObject*>(code), "co_qualname");
    if (!name) PyErr_Clear();
    entry.template_node = View(name) == "Node.render_annotated";
    Py_XDECREF(name);
  }
  Py_XDECREF(filename);
  if (auto pt = g_db.pass_through.find(reinterpret_cast<PyObject*>(code));
      pt != g_db.pass_through.end())
    entry.pass_through = pt->second;
  Py_INCREF(code);  // the key stays valid (and unique) while it is cached
  auto added = g_db.code_cache.emplace(reinterpret_cast<PyObject*>(code), std::move(entry)).first;
  MemoSlot(added->first) = {added->first, &added->second};  // after any clear above
  return added->second;
}

#if DJTRACE_FRAME_WALK
// PyCode_Addr2Line(code, addr), remembered in the code's entry: exact, since the cache holds the
// code object, whose line table never changes.
int LineAt(CodeEntry& entry, PyCodeObject* code, int addr) {
  auto it = entry.lines.find(addr);
  if (it != entry.lines.end()) return it->second;
  int lineno = PyCode_Addr2Line(code, addr);
  if (entry.lines.size() >= CodeEntry::kMaxLines) entry.lines.clear();
  entry.lines.emplace(addr, lineno);
  return lineno;
}
#endif

bool AwaitedSite(CallSite& out);

// Whether a frame of `entry`'s code executing the instruction at `addr` is only passing the
// request on (a middleware calling get_response). Most code has no ranges: an empty loop.
bool PassingOn(const CodeEntry& entry, int addr) {
  for (const auto& [start, end] : entry.pass_through)
    if (addr >= start && addr < end) return true;
  return false;
}

// The template's line for a generated line of `entry`'s code (its own line when the code is
// not a compiled template), as Jinja's Template.get_corresponding_lineno answers it: the
// template line of the last mapping at or before the generated line, else 1.
int TemplateLine(CodeEntry& entry, PyObject* globals, int lineno) {
  if (!entry.template_read) {
    entry.template_read = true;
    static PyObject* const kTemplate = PyUnicode_InternFromString("__jinja_template__");
    static PyObject* const kDebugInfo = PyUnicode_InternFromString("debug_info");
    static PyObject* const kName = PyUnicode_InternFromString("name");
    if (globals && PyDict_Check(globals)) {
      PyObject* is_template = PyDict_GetItemWithError(globals, kTemplate);  // borrowed
      PyObject* info = is_template ? PyDict_GetItemWithError(globals, kDebugInfo) : nullptr;
      if (info && PyUnicode_Check(info))
        entry.template_lines = analysis::ParseTemplateLines(View(info));
      // The generated function's name ("root", "block_content") means nothing to the
      // template's author: the template's name stands in, as for Django's engine.
      PyObject* name = is_template ? PyDict_GetItemWithError(globals, kName) : nullptr;
      if (name && PyUnicode_Check(name) && entry.loc && !View(name).empty()) {
        entry.loc = analysis::MakeCodeLocation(entry.loc->filepath, std::string(View(name)));
        entry.compiled_template = true;
      }
      if (PyErr_Occurred()) PyErr_Clear();
    }
  }
  return entry.template_lines.empty() ? lineno
                                      : analysis::TemplateLineOf(entry.template_lines, lineno);
}

#if DJTRACE_FRAME_WALK
// The template and line of a Django template node (node.origin, node.token.lineno) into
// `site`, when they can be read. Runs only for queries made while a template renders; only
// the frame walk of the interpreters it knows reads the node from the frame.
void CaptureTemplate(CallSite& site, PyObject* node) {
  static PyObject* const kOrigin = PyUnicode_InternFromString("origin");
  static PyObject* const kToken = PyUnicode_InternFromString("token");
  static PyObject* const kLineno = PyUnicode_InternFromString("lineno");
  static PyObject* const kName = PyUnicode_InternFromString("name");
  static PyObject* const kTemplateName = PyUnicode_InternFromString("template_name");
  if (!node) return;
  nb::object origin = nb::steal(PyObject_GetAttr(node, kOrigin));
  nb::object token = nb::steal(PyObject_GetAttr(node, kToken));
  nb::object line = token ? nb::steal(PyObject_GetAttr(token.ptr(), kLineno)) : nb::object();
  nb::object path = origin ? nb::steal(PyObject_GetAttr(origin.ptr(), kName)) : nb::object();
  nb::object name =
      origin ? nb::steal(PyObject_GetAttr(origin.ptr(), kTemplateName)) : nb::object();
  if (PyErr_Occurred()) PyErr_Clear();
  if (!line || !PyLong_Check(line.ptr())) return;
  const long lineno = PyLong_AsLong(line.ptr());
  if (lineno < 0 || lineno > INT32_MAX) {
    PyErr_Clear();
    return;
  }
  // A template made from a string has no template name: its origin's name stands in.
  std::string_view label = View(name.ptr());
  const std::string_view file = View(path.ptr());
  if (label.empty()) label = file;
  if (label.empty()) return;
  std::string key;
  key.reserve(file.size() + 1 + label.size());
  key.append(file).push_back('\0');
  key.append(label);
  auto it = g_db.template_locs.find(key);
  if (it == g_db.template_locs.end()) {
    if (g_db.template_locs.size() >= 1024) g_db.template_locs.clear();
    it = g_db.template_locs
             .emplace(std::move(key),
                      analysis::MakeCodeLocation(std::string(file), std::string(label)))
             .first;
  }
  site.SetTemplate(it->second, static_cast<int32_t>(lineno));
}

int VisitFrame(void* ctx, PyCodeObject* code, const djtrace_frame* frame) {
  try {
    CallSite& out = *static_cast<CallSite*>(ctx);
    CodeEntry& entry = Classify(code);
    if (entry.thread_entry) return AwaitedSite(out) ? 1 : 0;
    if (entry.template_node && !out.in_template())  // the innermost node is the one
      CaptureTemplate(out, djtrace_frame_local(frame, 0));
    if (!entry.app) return 0;
    const int addr = djtrace_frame_addr(frame);
    if (PassingOn(entry, addr)) return 0;
    // PyFrame_GetLineNumber's answer: a line set by a tracer first, else the line table's.
    int lineno = djtrace_frame_set_lineno(frame);
    if (!lineno) lineno = LineAt(entry, code, addr);
    if (entry.maybe_template) lineno = TemplateLine(entry, djtrace_frame_globals(frame), lineno);
    CallSite found = CallSite::Make(entry.loc, lineno);
    if (out.in_template())
      found.SetTemplate(std::move(out.template_code), out.template_lineno);
    else if (entry.compiled_template)
      found.SetTemplate(entry.loc, lineno);
    out = std::move(found);
    return 1;
  } catch (...) {
    return -1;  // out of memory: no call site, and no exception through the C walk
  }
}
#endif

// Where a coroutine of the application's awaited Django's async API (QuerySet.aget,
// Model.asave, `async for` over a queryset...): captured on the event loop's thread, where the
// coroutine's frame is on the stack, for the synchronous code that then runs in a worker thread.
struct CapturedSite {
  CallSite site;
};

// Walks up from the current frame to the first frame whose code is not in a skipped
// directory (Django, djtrace, site-packages, the standard library).
bool WalkCallSite(CallSite& out) {
#if DJTRACE_FRAME_WALK
  return djtrace_walk_frames(kMaxFrames, VisitFrame, &out) > 0;
#else
  PyFrameObject* frame = PyEval_GetFrame();  // borrowed
  Py_XINCREF(frame);
  for (int depth = 0; frame && depth < kMaxFrames; ++depth) {
    PyCodeObject* code = PyFrame_GetCode(frame);
    CodeEntry& entry = Classify(code);
    Py_DECREF(code);
    if (entry.thread_entry && AwaitedSite(out)) {
      Py_DECREF(frame);
      return true;
    }
    if (entry.app && !PassingOn(entry, PyFrame_GetLasti(frame))) {
      int lineno = PyFrame_GetLineNumber(frame);
      if (entry.maybe_template) {
        PyObject* globals = PyFrame_GetGlobals(frame);
        lineno = TemplateLine(entry, globals, lineno);
        Py_XDECREF(globals);
      }
      out = CallSite::Make(entry.loc, lineno);
      if (entry.compiled_template) out.SetTemplate(entry.loc, lineno);
      Py_DECREF(frame);
      return true;
    }
    PyFrameObject* back = PyFrame_GetBack(frame);
    Py_DECREF(frame);
    frame = back;
  }
  Py_XDECREF(frame);
  return false;
#endif
}

// The call site Django's async API captured where the application awaited it, when the
// context carries one.
bool AwaitedSite(CallSite& out) {
  PyObject* v = VarGet(g_db.site_var);
  if (!v) return false;
  CapturedSite* captured = nullptr;
  const bool found = v != Py_None && nb::try_cast<CapturedSite*>(nb::handle(v), captured) &&
                     captured && captured->site.known();
  if (found) out = captured->site;
  Py_DECREF(v);
  return found;
}

// The call site of the current query, cache read or task send: the first frame of the
// application's on this stack above the worker thread's entry, else the call site the
// application awaited (on the event loop, for Django's async API), else the first frame of
// the application's further down.
bool FindCallSite(CallSite& out) { return WalkCallSite(out) || AwaitedSite(out); }

// ---------------------------------------------------------------------------------------------
// Parameters, serialised only to be hashed (never exported, never kept)

void PutU64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }

bool SerializeParams(PyObject* o, std::string& out, int depth) {
  if (out.size() > kMaxSerializedParams || depth > 8) return false;
  if (o == Py_None) {
    out.push_back('N');
  } else if (PyBool_Check(o)) {
    out.push_back(o == Py_True ? 'T' : 'F');
  } else if (PyLong_Check(o)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    if (overflow) {
      Py_hash_t h = PyObject_Hash(o);
      if (h == -1) {
        PyErr_Clear();
        return false;
      }
      out.push_back('I');
      PutU64(out, static_cast<uint64_t>(h));
    } else {
      out.push_back('i');
      PutU64(out, static_cast<uint64_t>(v));
    }
  } else if (PyFloat_Check(o)) {
    double d = PyFloat_AS_DOUBLE(o);
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    out.push_back('f');
    PutU64(out, bits);
  } else if (PyUnicode_Check(o)) {
    Py_ssize_t n;
    const char* s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!s) {
      PyErr_Clear();
      return false;
    }
    out.push_back('s');
    PutU64(out, static_cast<uint64_t>(n));
    out.append(s, static_cast<size_t>(n));
  } else if (PyBytes_Check(o)) {
    out.push_back('b');
    PutU64(out, static_cast<uint64_t>(PyBytes_GET_SIZE(o)));
    out.append(PyBytes_AS_STRING(o), static_cast<size_t>(PyBytes_GET_SIZE(o)));
  } else if (PyByteArray_Check(o)) {
    out.push_back('B');
    PutU64(out, static_cast<uint64_t>(PyByteArray_GET_SIZE(o)));
    out.append(PyByteArray_AS_STRING(o), static_cast<size_t>(PyByteArray_GET_SIZE(o)));
  } else if (PyTuple_Check(o) || PyList_Check(o)) {
    // Items are read one at a time: a list could change under a callee's __hash__.
    const bool tuple = PyTuple_Check(o);
    out.push_back(tuple ? '(' : '[');
    for (Py_ssize_t i = 0; i < Py_SIZE(o); ++i) {
      PyObject* item = tuple ? PyTuple_GET_ITEM(o, i) : PyList_GET_ITEM(o, i);
      Py_INCREF(item);
      bool ok = SerializeParams(item, out, depth + 1);
      Py_DECREF(item);
      if (!ok) return false;
    }
    out.push_back(')');
  } else if (PyDict_Check(o)) {
    out.push_back('{');
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(o, &pos, &k, &v)) {
      if (!SerializeParams(k, out, depth + 1) || !SerializeParams(v, out, depth + 1)) return false;
    }
    out.push_back('}');
  } else {
    // Dates, decimals, UUIDs...: their hash is derived from their value. The type is part of
    // the key so that equal hashes of different types do not meet.
    Py_hash_t h = PyObject_Hash(o);
    if (h == -1) {
      PyErr_Clear();
      return false;
    }
    out.push_back('o');
    PutU64(out, reinterpret_cast<uint64_t>(Py_TYPE(o)));
    PutU64(out, static_cast<uint64_t>(h));
  }
  return out.size() <= kMaxSerializedParams;
}

// This thread's serialisation buffer, looked up once per query (see ThreadSpans in
// span_pool.cc: a thread_local used directly costs a call at every inlined use).
[[gnu::noinline]] std::string& ThreadParamsBuffer() {
  thread_local std::string buf;
  return buf;
}

// The exact key of an execution, or false when its parameters cannot be hashed.
bool ExactKeyOf(const SqlPtr& sql, std::string_view text, PyObject* params, bool many,
                uint64_t& key) {
  std::string& buf = ThreadParamsBuffer();
  buf.clear();
  if (params && params != Py_None) {
    if (many && !PyList_Check(params) && !PyTuple_Check(params)) return false;  // an iterator
    if (!SerializeParams(params, buf, 0)) return false;
  }
  key = analysis::ExactKey(sql->fingerprint, text, buf);
  if (buf.capacity() > 4 * kMaxSerializedParams) std::string().swap(buf);
  return true;
}

// ---------------------------------------------------------------------------------------------
// sqlcommenter

void UrlEncode(std::string_view in, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : in) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '!' || c == '~' || c == '*' || c == '(' || c == ')') {
      out.push_back(static_cast<char>(c));
    } else if (c == '\'') {
      out += "\\'";  // the specification's meta-character escape
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
}

std::string Traceparent(const SpanContextData& c) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "00-";
  for (uint8_t b : c.trace_id) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 0xF]);
  }
  s.push_back('-');
  for (uint8_t b : c.span_id) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 0xF]);
  }
  s.push_back('-');
  s.push_back(kHex[c.trace_flags >> 4]);
  s.push_back(kHex[c.trace_flags & 0xF]);
  return s;
}

// The statement with a sqlcommenter comment, or null to send it unchanged (it already has a
// comment, as the specification requires, or there is nothing to say).
PyObject* CommentedSql(std::string_view sql, const SpanContextData& ctx, const DbConnInfo& info,
                       bool escape_percent) {
  if (sql.find("--") != std::string_view::npos || sql.find("/*") != std::string_view::npos)
    return nullptr;
  std::string_view route, controller;
  PyObject* tags = VarGet(g_db.comment_var);
  if (tags && PyTuple_Check(tags) && PyTuple_GET_SIZE(tags) >= 2) {
    route = View(PyTuple_GET_ITEM(tags, 0));
    controller = View(PyTuple_GET_ITEM(tags, 1));
  }
  // Keys in lexicographic order, values URL-encoded.
  std::pair<std::string_view, std::string> pairs[6];
  size_t n = 0;
  if (!controller.empty()) pairs[n++] = {"controller", std::string(controller)};
  if (!info.driver.empty()) pairs[n++] = {"db_driver", info.driver};
  if (!g_db.framework.empty()) pairs[n++] = {"framework", g_db.framework};
  if (!route.empty()) pairs[n++] = {"route", std::string(route)};
  if (ctx.valid()) pairs[n++] = {"traceparent", Traceparent(ctx)};
  if (ctx.valid() && !ctx.trace_state.empty()) pairs[n++] = {"tracestate", ctx.trace_state};
  if (n == 0) {
    Py_XDECREF(tags);
    return nullptr;
  }
  std::string comment = "/*";
  for (size_t i = 0; i < n; ++i) {
    if (i) comment.push_back(',');
    UrlEncode(pairs[i].first, comment);
    comment += "='";
    UrlEncode(pairs[i].second, comment);
    comment.push_back('\'');
  }
  comment += "*/";
  Py_XDECREF(tags);
  if (escape_percent) {
    // The driver interpolates parameters with %-formatting: a literal % is written %%.
    std::string escaped;
    escaped.reserve(comment.size() + 16);
    for (char c : comment) {
      escaped.push_back(c);
      if (c == '%') escaped.push_back('%');
    }
    comment.swap(escaped);
  }
  // Before a final semicolon, so that the comment stays within the statement.
  size_t end = sql.size();
  while (end > 0 && (sql[end - 1] == ' ' || sql[end - 1] == '\n' || sql[end - 1] == '\t' ||
                     sql[end - 1] == '\r'))
    --end;
  std::string out;
  out.reserve(sql.size() + comment.size() + 1);
  if (end > 0 && sql[end - 1] == ';') {
    out.append(sql.substr(0, end - 1));
    out.push_back(' ');
    out += comment;
    out.append(sql.substr(end - 1));
  } else {
    out.append(sql);
    out.push_back(' ');
    out += comment;
  }
  return PyUnicode_FromStringAndSize(out.data(), static_cast<Py_ssize_t>(out.size()));
}

// ---------------------------------------------------------------------------------------------
// The tracer in force

// True when `g_db.tracer` / `g_db.tracer_obj` are up to date with the global provider.
void RefreshTracer() {
  PyObject* provider = ModuleGlobal(g_db.trace_module, g_db.provider_attr);
  if (!provider) {
    PyErr_Clear();
    provider = Py_NewRef(Py_None);
  }
  if (g_db.tracer_resolved && provider == g_db.cached_provider) {
    Py_DECREF(provider);
    return;
  }
  Py_XDECREF(g_db.cached_provider);
  g_db.cached_provider = provider;  // owned
  g_db.tracer_resolved = true;
  g_db.tracer = nullptr;
  g_db.tracer_obj = nb::object();
  try {
    nb::object t = g_db.resolve_tracer(nb::handle(provider));
    if (!t.is_none()) {
      g_db.tracer_obj = t;
      NativeTracer* nt = nullptr;
      if (nb::try_cast<NativeTracer*>(t, nt) && nt) g_db.tracer = nt;
    }
  } catch (nb::python_error& e) {
    e.discard_as_unraisable("djtrace db tracer");
  }
}

// ---------------------------------------------------------------------------------------------
// Errors

struct RaisedError {
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* tb = nullptr;
  void Fetch() {
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
  }
  void Restore() {
    PyErr_Restore(type, value, tb);
    type = value = tb = nullptr;
  }
};

// "module.QualName" as the official SDK writes exception.type (builtins without a module).
std::string ExceptionTypeName(PyObject* type) {
  std::string out;
  PyObject* module = PyObject_GetAttrString(type, "__module__");
  if (!module) PyErr_Clear();
  PyObject* qualname = PyObject_GetAttrString(type, "__qualname__");
  if (!qualname) PyErr_Clear();
  std::string_view m = View(module), q = View(qualname);
  if (!m.empty() && m != "builtins") {
    out.assign(m);
    out.push_back('.');
  }
  out.append(q.empty() ? std::string_view("Exception") : q);
  Py_XDECREF(module);
  Py_XDECREF(qualname);
  return out;
}

// The first line of the message only: database errors add DETAIL lines that quote the values
// of the offending row ("Key (email)=(...) already exists").
std::string ExceptionMessage(PyObject* value) {
  if (!value) return {};
  PyObject* s = PyObject_Str(value);
  if (!s) {
    PyErr_Clear();
    return {};
  }
  std::string_view v = View(s);
  size_t nl = v.find('\n');
  std::string out(v.substr(0, nl));
  Py_DECREF(s);
  while (!out.empty() && (out.back() == ' ' || out.back() == '\r')) out.pop_back();
  return out;
}

void RecordError(LiveSpan& span, PyObject* type, PyObject* value) {
  std::string type_name = ExceptionTypeName(type);
  std::string message = ExceptionMessage(value);
  span.SetAttribute("error.type", type_name);
  Attributes attrs;
  attrs.push_back({"exception.type", type_name});
  attrs.push_back({"exception.message", message});
  attrs.push_back({"exception.escaped", std::string("True")});
  span.AddEvent("exception", 0, std::move(attrs));
  span.SetStatus(StatusCode::kError, message.empty() ? std::string_view(type_name) : message);
}

// ---------------------------------------------------------------------------------------------
// Findings as Python dicts

// filepath, lineno and function of a finding's call site (None when unknown).
void PutCallSite(nb::dict& d, const CallSite& site) {
  if (site.known()) {
    d["filepath"] = nb::str(site.code->filepath.data(), site.code->filepath.size());
    d["lineno"] = site.lineno;
    d["function"] = nb::str(site.code->function.data(), site.code->function.size());
  } else {
    d["filepath"] = nb::none();
    d["lineno"] = nb::none();
    d["function"] = nb::none();
  }
  if (site.in_template()) {
    const std::string& name = site.template_code->function;
    d["template"] = nb::str(name.data(), name.size());
    d["template_lineno"] = site.template_lineno;
  }
}

nb::dict FindingDict(const QueryGroup& g, const DbConnInfo* info) {
  nb::dict d;
  d["kind"] = "n_plus_one";
  d["sql"] = nb::str(g.sql->text.data(), g.sql->text.size());
  d["summary"] = nb::str(g.sql->summary.data(), g.sql->summary.size());
  std::string fp = analysis::FingerprintHex(g.fingerprint);
  d["fingerprint"] = nb::str(fp.data(), fp.size());
  d["count"] = g.count;
  d["duration_ms"] = static_cast<double>(g.total_duration_ns) / 1e6;
  PutCallSite(d, g.site);
  d["relation"] = g.relation.empty() ? nb::object(nb::none())
                                     : nb::object(nb::str(g.relation.data(), g.relation.size()));
  if (info) {
    d["db_system"] = nb::str(info->system_name.data(), info->system_name.size());
    d["alias"] = nb::str(info->alias.data(), info->alias.size());
  }
  return d;
}

nb::dict StatsDict(const QueryStats& stats) {
  analysis::QueryStatsSummary s = stats.Summary();
  nb::dict d;
  d["query_count"] = s.query_count;
  d["duration_ms"] = static_cast<double>(s.total_duration_ns) / 1e6;
  d["error_count"] = s.error_count;
  d["duplicate_count"] = s.duplicate_count;
  d["n_plus_one_count"] = s.n_plus_one_groups;
  d["ungrouped"] = s.ungrouped;
  d["cache_get_count"] = s.cache_get_count;
  d["repeated_cache_get_count"] = s.repeated_cache_get_count;
  d["task_send_count"] = s.task_send_count;
  d["repeated_task_send_count"] = s.repeated_task_send_groups;
  nb::list findings;
  for (const QueryGroup& g : stats.NPlusOneGroups()) findings.append(FindingDict(g, nullptr));
  d["findings"] = findings;
  return d;
}

std::shared_ptr<QueryStats> NewStats(const SpanLimits& limits) {
  return std::make_shared<QueryStats>(g_db.stats_options, limits);
}

QueryStats* StatsOf(const LiveSpan& span) { return QueryStats::Of(span.root_state().get()); }

// ---------------------------------------------------------------------------------------------
// One traced execution

struct Execution {
  const DbConnInfo* info = nullptr;
  SqlPtr sql;
  std::string_view text;
  CallSite site;
  PyObject* relation = nullptr;  // owned
  std::shared_ptr<LocalRootState> root_state;
  LiveSpan native_span;
  nb::object py_span;  // when the provider has Python hooks
  PySpan* py = nullptr;
  LiveSpan* span = nullptr;  // whichever of the two is in use
  bool end_may_block = false;
  ~Execution() { Py_XDECREF(relation); }
};

// The driver cursor's rowcount (new reference, or null). Django hands the wrappers its own
// CursorWrapper, whose attribute fallback (__getattr__, after a failed lookup that raises
// internally) costs several thousand instructions; the DB-API cursor is its `cursor`.
PyObject* RowCount(PyObject* context) {
  static PyObject* const kCursor = PyUnicode_InternFromString("cursor");
  static PyObject* const kRowcount = PyUnicode_InternFromString("rowcount");
  if (!PyDict_Check(context)) return nullptr;
  PyObject* wrapper = PyDict_GetItemWithError(context, kCursor);  // borrowed
  if (!wrapper) {
    PyErr_Clear();
    return nullptr;
  }
  PyObject* rc = nullptr;
  PyObject* inner = PyObject_GetAttr(wrapper, kCursor);
  if (inner) {
    rc = PyObject_GetAttr(inner, kRowcount);
    Py_DECREF(inner);
  } else {
    PyErr_Clear();
    rc = PyObject_GetAttr(wrapper, kRowcount);
  }
  if (!rc) PyErr_Clear();
  return rc;
}

PyObject* CallExecutor(PyObject* executor, PyObject* sql, PyObject* params, PyObject* many,
                       PyObject* context) {
  PyObject* args[4] = {sql, params, many, context};
  return PyObject_Vectorcall(executor, args, 4, nullptr);
}

// The parent of a query has no statistics to hand down: its local root was started without
// attach_query_stats. A local root gets them now (a span the application started itself); a
// span below a root that the request or command hooks announced in `root_var` gets that
// root's, attached now if need be. Spans started before keep none, which only costs them the
// lookup again.
void AttachMissingStats(LiveSpan& parent, const SpanLimits& limits) {
  auto usable = [](const LiveSpan& s) { return s.is_recording() && !s.has_ended(); };
  if (parent.is_local_root()) {
    if (usable(parent)) parent.set_root_state(NewStats(limits));
    return;
  }
  PyObject* root_obj = VarGet(g_db.root_var);
  if (!root_obj) return;
  PySpan* root = nullptr;
  if (!nb::try_cast<PySpan*>(nb::handle(root_obj), root) || !root) {
    PyObject* span = PyObject_GetAttrString(root_obj, "span");
    if (!span) PyErr_Clear();
    if (span && (!nb::try_cast<PySpan*>(nb::handle(span), root) || !root)) root = nullptr;
    Py_XDECREF(span);  // the root object keeps the span alive
  }
  if (root && &root->span != &parent && root->span.is_local_root() && usable(root->span) &&
      root->span.context().trace_id == parent.context().trace_id) {
    if (!root->span.root_state()) root->span.set_root_state(NewStats(limits));
    if (StatsOf(root->span)) parent.set_root_state(root->span.root_state());
  }
  Py_DECREF(root_obj);
}

// The attributes every span of `sql` from `site` on the connection carries, before limits.
Attributes StatementAttributes(const DbConnInfo& info, const SqlPtr& sql, const CallSite& site) {
  Attributes a;
  a.reserve(info.attributes.size() + 9);
  a = info.attributes;
  if (sql) {
    a.push_back({"db.query.text", sql->text});
    if (!sql->operation.empty()) a.push_back({"db.operation.name", sql->operation});
    if (!sql->table.empty()) a.push_back({"db.collection.name", sql->table});
    if (info.old_names) {
      a.push_back({"db.statement", sql->text});
      if (!sql->operation.empty()) a.push_back({"db.operation", sql->operation});
      if (!sql->table.empty()) a.push_back({"db.sql.table", sql->table});
    }
  }
  if (site.known()) {
    a.push_back({"code.filepath", site.code->filepath});
    a.push_back({"code.lineno", static_cast<int64_t>(site.lineno)});
    a.push_back({"code.function", site.code->function});
  }
  if (site.in_template()) {
    a.push_back({std::string(analysis::kTemplateNameKey), site.template_code->function});
    a.push_back(
        {std::string(analysis::kTemplateLinenoKey), static_cast<int64_t>(site.template_lineno)});
  }
  return a;
}

// StatementAttributes within `limits`, kept per connection.
const SharedAttrEntry& SharedAttributes(const DbConnInfo& info, const SqlPtr& sql,
                                        const CallSite& site, const SpanLimits& limits) {
  const SharedAttrKey key{sql.get(), site.code.get(), site.known() ? site.lineno : 0,
                          site.template_code.get(), site.template_lineno};
  auto it = info.shared.find(key);
  if (it != info.shared.end() && it->second.attributes.Fits(limits)) return it->second;

  Attributes a = StatementAttributes(info, sql, site);
  if (it == info.shared.end()) {
    if (info.shared.size() >= DbConnInfo::kMaxShared ||
        info.shared_text_bytes >= DbConnInfo::kMaxSharedTextBytes) {
      info.shared.clear();
      info.shared_text_bytes = 0;
    }
    it = info.shared.try_emplace(key).first;
    if (sql) info.shared_text_bytes += sql->text.size();
  }
  SharedAttrEntry& entry = it->second;
  entry.sql = sql;
  entry.code = site.code;
  entry.template_code = site.template_code;
  entry.attributes.Build(std::move(a), limits);
  return entry;
}

enum class Mode { kUntraced, kTraced, kFallback };

// Starts the span when the query is to be traced (no exception left set either way).
Mode Start(Execution& ex, const DbConnInfo& info, PyObject* sql, PyObject* params, bool many) {
  ex.info = &info;
  if (g_db.suppress_var && VarTrue(g_db.suppress_var)) return Mode::kUntraced;
  // The suppression key is never the span's, so the variable's value answers for it even when
  // the current span is a deferred one.
  nb::object ctx = RawCurrentContext();
  if (g_db.otel_suppress_key && PyDict_Check(ctx.ptr())) {
    PyObject* v = PyDict_GetItemWithError(ctx.ptr(), g_db.otel_suppress_key);
    if (!v && PyErr_Occurred()) PyErr_Clear();
    if (v && PyObject_IsTrue(v) == 1) return Mode::kUntraced;
  }
  RefreshTracer();
  NativeTracer* tracer = g_db.tracer;
  if (!tracer) {
    // A tracer that is not djtrace's (the official SDK, say) takes the Python path.
    return g_db.tracer_obj.is_valid() && g_db.fallback.is_valid() ? Mode::kFallback
                                                                  : Mode::kUntraced;
  }

  // The current span's LiveSpan, read in place: a hook span that is current (the view's, say)
  // gets no Python object made for its queries.
  SpanContextData remote_parent;
  const SpanContextData* parent_ctx = nullptr;
  LiveSpan* parent_span = CurrentParent(ctx, remote_parent, parent_ctx);
  if (!parent_ctx && !g_db.root_spans) return Mode::kUntraced;
  if (parent_span && !parent_span->is_recording() && !tracer->owner->py_start_span.is_valid()) {
    // A child of a span that was sampled out (90% of requests at 10% sampling): when the
    // sampler drops this one too, as a parent-based sampler does, nothing below is needed.
    TracerCore& core = *tracer->owner->core;
    ParentInfo unsampled;
    unsampled.valid = true;
    unsampled.remote = false;
    unsampled.sampled = false;
    if (core.sampler()->ShouldSample(unsampled, parent_ctx->trace_id) == SamplingDecision::kDrop) {
      core.counters().spans_started.fetch_add(1, std::memory_order_relaxed);
      core.counters().spans_sampled_out.fetch_add(1, std::memory_order_relaxed);
      return Mode::kUntraced;
    }
  }

  if (parent_span && g_db.n_plus_one && !parent_span->root_state())
    AttachMissingStats(*parent_span, tracer->owner->core->limits());

  ex.text = View(sql);
  if (!ex.text.empty()) ex.sql = g_db.cache->Get(ex.text, info.dialect);
  if (g_db.query_source) FindCallSite(ex.site);
  ex.relation = VarGet(g_db.relation_var);
  std::string_view relation = View(ex.relation);

  StartOptions o;
  const std::string& summary = ex.sql ? ex.sql->summary : info.system_name;
  o.name_ref = summary.empty() ? std::string_view(info.system_name) : std::string_view(summary);
  o.kind = SpanKind::kClient;
  o.parent = parent_ctx;
  o.local_parent = parent_span;
  PyTracerCore* owner = tracer->owner;
  Attributes& a = o.attributes;  // this execution's own
  if (many) {
    Py_ssize_t n = -1;
    if (PyList_Check(params) || PyTuple_Check(params)) n = Py_SIZE(params);
    if (n >= 0) a.push_back({"db.operation.batch.size", static_cast<int64_t>(n)});
  }
  if (!relation.empty()) a.push_back({"djtrace.orm.relation", std::string(relation)});

  ex.end_may_block = owner->end_may_block;
  if (owner->py_start_span.is_valid()) {
    // A sampler or span processor written in Python: go through its hooks, with every
    // attribute in one mapping, before limits (the span applies them, and counts what they
    // drop).
    nb::object name = nb::str(o.name_ref.data(), o.name_ref.size());
    nb::dict attrs = FromAttributes(StatementAttributes(info, ex.sql, ex.site));
    for (const Attribute& own : a) attrs[nb::str(own.key.c_str())] = FromAttrValue(own.value);
    ex.py_span = owner->py_start_span(g_db.tracer_obj, name, nb::none(), g_db.client_kind, attrs,
                                      nb::none(), nb::none(), false, false);
    if (!nb::try_cast<PySpan*>(ex.py_span, ex.py) || !ex.py) return Mode::kUntraced;
    ex.span = &ex.py->span;
  } else {
    SharedAttributes(info, ex.sql, ex.site, owner->core->limits()).attributes.ApplyTo(o);
    SpanStarter::Start(owner->core, tracer->scope, std::move(o), ex.native_span);
    ex.span = &ex.native_span;
  }
  ex.root_state = ex.span->root_state();
  return Mode::kTraced;
}

void EndNative(Execution& ex) {
  if (ex.py) {
    EndSpan(ex.py_span, *ex.py, nb::none());
  } else {
    EndLive(ex.native_span, ex.end_may_block);
  }
}

void AddToCollectors(PyObject* head, const QueryGroup& finding) {
  for (PyObject* c = head; c && c != Py_None;) {
    QueryCollector* qc = nullptr;
    if (!nb::try_cast<QueryCollector*>(nb::handle(c), qc) || !qc) break;
    qc->findings.push_back(finding);
    c = qc->parent.ptr();
  }
}

// Records the execution into the root's statistics and the active collectors. Returns the
// finding to report when a group just became an N+1.
bool Account(Execution& ex, PyObject* params, bool many, bool error, uint64_t duration_ns,
             uint64_t end_time, QueryGroup& crossed) {
  if (!ex.sql) return false;
  QueryStats* stats = QueryStats::Of(ex.root_state.get());
  PyObject* collector = g_db.collectors_active > 0 ? VarGet(g_db.collector_var) : nullptr;
  if (!stats && (!collector || collector == Py_None)) {
    Py_XDECREF(collector);
    return false;
  }
  analysis::QueryRecord q;
  q.sql = &ex.sql;
  q.site = &ex.site;
  q.relation = View(ex.relation);
  q.duration_ns = duration_ns;
  q.end_unix_nano = end_time;
  q.error = error;
  q.has_exact_key = ExactKeyOf(ex.sql, ex.text, params, many, q.exact_key);
  bool found = false;
  if (stats) found = stats->Record(q, &crossed);
  if (collector && collector != Py_None) {
    QueryCollector* qc = nullptr;
    if (nb::try_cast<QueryCollector*>(nb::handle(collector), qc) && qc) {
      if (!stats && qc->own && qc->own->Record(q, &crossed)) found = true;
      for (PyObject* c = collector; c && c != Py_None;) {
        QueryCollector* each = nullptr;
        if (!nb::try_cast<QueryCollector*>(nb::handle(c), each) || !each) break;
        if (each->all) each->all->Record(q);
        ++each->queries;
        each->duration_ns += duration_ns;
        if (error) ++each->errors;
        if (each->executed.size() < QueryCollector::kMaxExecuted)
          each->executed.push_back({ex.sql, ex.site, std::string(q.relation), duration_ns});
        c = each->parent.ptr();
      }
      if (found) AddToCollectors(collector, crossed);
    }
  }
  Py_XDECREF(collector);
  return found;
}

PyObject* DbExecute(PyObject* info_obj, PyObject* executor, PyObject* sql, PyObject* params,
                    PyObject* many_obj, PyObject* context) {
  DbConnInfo* info = nullptr;
  if (!g_db.enabled || !nb::try_cast<DbConnInfo*>(nb::handle(info_obj), info) || !info)
    return CallExecutor(executor, sql, params, many_obj, context);
  const bool many = many_obj == Py_True;

  Execution ex;
  Mode mode = Mode::kUntraced;
  try {
    mode = Start(ex, *info, sql, params, many);
  } catch (nb::python_error& e) {
    e.discard_as_unraisable("djtrace db span start");
    mode = Mode::kUntraced;
  } catch (...) {
    mode = Mode::kUntraced;
  }
  if (PyErr_Occurred()) PyErr_Clear();  // tracing never leaks an error into the query
  if (mode == Mode::kFallback) {
    PyObject* args[6] = {info_obj, executor, sql, params, many_obj, context};
    return PyObject_Vectorcall(g_db.fallback.ptr(), args, 6, nullptr);
  }
  if (mode == Mode::kUntraced) return CallExecutor(executor, sql, params, many_obj, context);

  PyObject* sent = sql;
  PyObject* commented = nullptr;
  if (g_db.sqlcommenter && !ex.text.empty()) {
    try {
      commented = CommentedSql(ex.text, ex.span->context(), *info, params != Py_None);
    } catch (...) {
      commented = nullptr;
    }
    if (!commented && PyErr_Occurred()) PyErr_Clear();
    if (commented) sent = commented;
  }

  PyObject* result = CallExecutor(executor, sent, params, many_obj, context);
  Py_XDECREF(commented);

  RaisedError err;
  if (!result) err.Fetch();
  QueryGroup crossed;
  bool found = false;
  try {
    const uint64_t end = NowUnixNano();
    LiveSpan& span = *ex.span;
    const SpanData* data = span.data();
    const uint64_t start = data ? data->start_time_unix_nano : end;
    const uint64_t duration = end > start ? end - start : 0;
    if (span.is_recording()) {
      if (result) {
        PyObject* rc = RowCount(context);
        if (rc && PyLong_Check(rc)) {
          long long n = PyLong_AsLongLong(rc);
          if (n == -1 && PyErr_Occurred()) PyErr_Clear();
          if (n >= 0 && ex.sql) {
            const std::string& op = ex.sql->operation;
            const bool returns = op == "SELECT" || op == "WITH" || op == "SHOW" || op == "VALUES" ||
                                 op == "PRAGMA" || op == "EXPLAIN";
            // SQLite counts the rows of `INSERT ... RETURNING` only as they are fetched, after
            // the execute this span covers: a 0 there means "not known yet".
            const bool unknown = n == 0 && !returns && info->dialect == sql::Dialect::kSqlite &&
                                 ex.sql->text.find("RETURNING") != std::string::npos;
            if (!unknown)
              span.SetAttribute(returns ? "db.response.returned_rows" : "djtrace.db.rows_affected",
                                static_cast<int64_t>(n));
          }
        }
        Py_XDECREF(rc);
      } else {
        RecordError(span, err.type, err.value);
      }
      found = Account(ex, params, many, !result, duration, end, crossed);
    }
    if (data) {
      // End at `end`, the time the statistics saw.
      if (ex.py) {
        EndSpan(ex.py_span, *ex.py, nb::int_(end));
      } else if (ex.end_may_block) {
        nb::gil_scoped_release release;
        ex.native_span.End(end);
      } else {
        ex.native_span.End(end);
      }
    } else {
      EndNative(ex);
    }
  } catch (nb::python_error& e) {
    e.discard_as_unraisable("djtrace db span end");
  } catch (...) {
  }
  if (PyErr_Occurred()) PyErr_Clear();

  if (!result) {
    err.Restore();
    return nullptr;
  }
  if (found && g_db.on_finding.is_valid()) {
    // May raise (strict mode): the query has run and its span has ended; the error reaches
    // the code that issued it.
    PyObject* finding = nullptr;
    try {
      finding = FindingDict(crossed, info).release().ptr();
    } catch (...) {
      if (PyErr_Occurred()) PyErr_Clear();
    }
    if (finding) {
      PyObject* r = PyObject_CallOneArg(g_db.on_finding.ptr(), finding);
      Py_DECREF(finding);
      if (!r) {
        Py_DECREF(result);
        return nullptr;
      }
      Py_DECREF(r);
    }
  }
  return result;
}

PyObject* KeepRef(nb::handle h) {
  if (h.is_none()) return nullptr;
  return nb::borrow(h).release().ptr();
}

void ReplaceRef(PyObject*& slot, nb::handle h) {
  PyObject* old = slot;
  slot = KeepRef(h);
  Py_XDECREF(old);
}

// Fast entry point: avoids nanobind's overload dispatch for the hottest call.
PyObject* DbExecuteFast(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 6) {
    PyErr_SetString(PyExc_TypeError,
                    "db_execute(info, executor, sql, params, many, context) takes 6 arguments");
    return nullptr;
  }
  return DbExecute(args[0], args[1], args[2], args[3], args[4], args[5]);
}

PyMethodDef g_db_execute_def = {
    "db_execute", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(DbExecuteFast)),
    METH_FASTCALL,
    "db_execute(info, executor, sql, params, many, context): Django "
    "execute wrapper; bind info with functools.partial."};

// ---------------------------------------------------------------------------------------------
// Task sends (djtrace.integrations.celery.producer): per-root counts of Celery task messages

nb::dict TaskSendDict(const analysis::TaskSendGroup& g) {
  nb::dict d;
  d["kind"] = "repeated_task_send";
  d["task_name"] = nb::str(g.task_name.data(), g.task_name.size());
  d["count"] = g.count;
  PutCallSite(d, g.site);
  return d;
}

// The statistics of the current span's local root, attached now if the root has none yet (as
// its first query would attach them), or null outside djtrace spans.
std::shared_ptr<LocalRootState> StateForSend() {
  // Read in place: a current hook span (the view's) gets no Python object made for this.
  SpanContextData remote;
  const SpanContextData* parent = nullptr;
  LiveSpan* span = CurrentParent(RawCurrentContext(), remote, parent);
  if (!span) return nullptr;
  if (!span->root_state() && span->is_recording() && !span->has_ended() && span->core())
    AttachMissingStats(*span, span->core()->limits());
  return StatsOf(*span) ? span->root_state() : nullptr;
}

void BindDb(nb::module_& m) {
  nb::class_<DbConnInfo>(m, "DbConnInfo")
      .def(
          "__init__",
          [](DbConnInfo* self, const std::string& vendor, const std::string& system_name,
             nb::handle namespace_, nb::handle server_address, nb::handle server_port,
             const std::string& alias, const std::string& driver, bool old_names) {
            new (self) DbConnInfo();
            self->dialect = sql::DialectFromName(vendor);
            self->system_name = system_name.empty() ? vendor : system_name;
            self->alias = alias;
            self->driver = driver;
            self->old_names = old_names;
            Attributes& a = self->attributes;
            a.push_back({"db.system.name", self->system_name});
            a.push_back({"db.system", self->system_name});
            std::string ns(View(namespace_.ptr()));
            if (!ns.empty()) {
              a.push_back({"db.namespace", ns});
              if (old_names) a.push_back({"db.name", ns});
            }
            std::string host(View(server_address.ptr()));
            if (!host.empty()) {
              a.push_back({"server.address", host});
              if (old_names) a.push_back({"net.peer.name", host});
            }
            if (!server_port.is_none() && PyLong_Check(server_port.ptr())) {
              int64_t port = PyLong_AsLongLong(server_port.ptr());
              if (port == -1 && PyErr_Occurred()) PyErr_Clear();
              if (port > 0) {
                a.push_back({"server.port", port});
                if (old_names) a.push_back({"net.peer.port", port});
              }
            }
          },
          "vendor"_a, "system_name"_a, "namespace"_a.none(), "server_address"_a.none(),
          "server_port"_a.none(), "alias"_a, "driver"_a = "", "old_names"_a = false)
      .def_prop_ro("alias", [](DbConnInfo& i) { return i.alias; })
      .def_prop_ro("system_name", [](DbConnInfo& i) { return i.system_name; })
      .def_prop_ro("dialect",
                   [](DbConnInfo& i) { return std::string(sql::DialectName(i.dialect)); })
      .def("attributes", [](DbConnInfo& i) { return FromAttributes(i.attributes); });

  m.attr("db_execute") = nb::steal(PyCFunction_NewEx(&g_db_execute_def, nullptr, nullptr));

  m.def(
      "db_configure",
      [](bool enabled, nb::handle suppress_var, nb::handle otel_suppress_key,
         nb::handle relation_var, nb::handle comment_var, nb::handle collector_var,
         nb::handle root_var, nb::handle trace_module, nb::object resolve_tracer,
         nb::object fallback, nb::object on_finding, nb::object client_kind,
         std::vector<std::string> skip_prefixes, uint32_t threshold, double min_duration_ms,
         uint32_t max_groups, bool n_plus_one, bool query_source, bool root_spans,
         bool sqlcommenter, const std::string& framework, size_t cache_capacity,
         std::vector<std::string> app_prefixes, nb::handle site_var,
         std::vector<nb::object> thread_entries) {
        if (!g_db.cache || g_db.cache->capacity() != cache_capacity) {
          sql::SqlCacheOptions co;
          co.capacity = cache_capacity;
          g_db.cache = std::make_unique<sql::SqlCache>(co);
        }
        ReplaceRef(g_db.suppress_var, suppress_var);
        ReplaceRef(g_db.otel_suppress_key, otel_suppress_key);
        ReplaceRef(g_db.relation_var, relation_var);
        ReplaceRef(g_db.comment_var, comment_var);
        ReplaceRef(g_db.collector_var, collector_var);
        ReplaceRef(g_db.site_var, site_var);
        ReplaceRef(g_db.root_var, root_var);
        ReplaceRef(g_db.trace_module, trace_module);
        if (!g_db.provider_attr)
          g_db.provider_attr = PyUnicode_InternFromString("_TRACER_PROVIDER");
        g_db.resolve_tracer = std::move(resolve_tracer);
        g_db.fallback = fallback.is_none() ? nb::object() : std::move(fallback);
        g_db.on_finding = on_finding.is_none() ? nb::object() : std::move(on_finding);
        g_db.client_kind = std::move(client_kind);
        g_db.tracer_resolved = false;  // resolve again: the provider may be new
        g_db.tracer = nullptr;
        g_db.tracer_obj = nb::object();
        QueryStatsOptions so;
        so.n_plus_one_threshold = threshold;
        so.n_plus_one_min_duration_ns =
            min_duration_ms > 0 ? static_cast<uint64_t>(min_duration_ms * 1e6) : 0;
        so.max_groups = max_groups;
        so.repeated_cache_get_threshold = g_db.stats_options.repeated_cache_get_threshold;
        so.task_send_threshold = g_db.stats_options.task_send_threshold;  // task_send_configure
        g_db.stats_options = so;
        g_db.n_plus_one = n_plus_one;
        g_db.query_source = query_source;
        g_db.root_spans = root_spans;
        g_db.sqlcommenter = sqlcommenter;
        g_db.framework = framework;
        std::vector<PyObject*> entries;
        for (const nb::object& code : thread_entries)
          if (PyCode_Check(code.ptr())) entries.push_back(code.ptr());
        bool prefixes_changed = skip_prefixes != g_db.skip_prefixes ||
                                app_prefixes != g_db.app_prefixes || entries != g_db.thread_entries;
        g_db.skip_prefixes = std::move(skip_prefixes);
        g_db.app_prefixes = std::move(app_prefixes);
        if (entries != g_db.thread_entries) {
          for (PyObject* code : entries) Py_INCREF(code);
          for (PyObject* code : g_db.thread_entries) Py_DECREF(code);
          g_db.thread_entries = std::move(entries);
        }
        if (prefixes_changed) ClearCodeCache();
        g_db.enabled = enabled && g_db.trace_module && g_db.resolve_tracer.is_valid();
      },
      "enabled"_a, "suppress_var"_a.none(), "otel_suppress_key"_a.none(), "relation_var"_a.none(),
      "comment_var"_a.none(), "collector_var"_a.none(), "root_var"_a.none(), "trace_module"_a,
      "resolve_tracer"_a, "fallback"_a.none(), "on_finding"_a.none(), "client_kind"_a,
      "skip_prefixes"_a, "n_plus_one_threshold"_a = 5, "n_plus_one_min_duration_ms"_a = 0.0,
      "n_plus_one_max_groups"_a = 256, "n_plus_one"_a = true, "query_source"_a = true,
      "root_spans"_a = true, "sqlcommenter"_a = false, "framework"_a = "",
      "sql_cache_capacity"_a = 4096, "app_prefixes"_a = std::vector<std::string>(),
      "site_var"_a.none() = nb::none(), "thread_entries"_a = std::vector<nb::object>());

  m.def("db_disable", [] { g_db.enabled = false; });

  // Drops every Python reference the database state holds (registered with atexit), so that
  // nothing is released after the interpreter has finalised.
  m.def("db_shutdown", [] {
    g_db.enabled = false;
    for (PyObject** slot : {&g_db.suppress_var, &g_db.otel_suppress_key, &g_db.relation_var,
                            &g_db.comment_var, &g_db.collector_var, &g_db.site_var, &g_db.root_var,
                            &g_db.trace_module, &g_db.cached_provider}) {
      Py_XDECREF(*slot);
      *slot = nullptr;
    }
    g_db.tracer_resolved = false;
    g_db.tracer = nullptr;
    g_db.tracer_obj = nb::object();
    g_db.resolve_tracer = nb::object();
    g_db.fallback = nb::object();
    g_db.on_finding = nb::object();
    g_db.client_kind = nb::object();
    ClearCodeCache();
    for (PyObject* code : g_db.thread_entries) Py_DECREF(code);
    g_db.thread_entries.clear();
    for (auto& [code, ranges] : g_db.pass_through) Py_DECREF(code);
    g_db.pass_through.clear();
  });

  // Registers a middleware's code with the byte ranges of its calls to get_response: while
  // one of its frames executes one of them, the frame is passing the request on, and the call
  // site of a query below is looked for further down (or is unknown), not at that line.
  m.def(
      "db_pass_through",
      [](nb::handle code, std::vector<std::pair<int, int>> ranges) {
        if (!PyCode_Check(code.ptr())) throw nb::type_error("db_pass_through: a code object");
        auto [it, added] = g_db.pass_through.try_emplace(code.ptr());
        if (added) Py_INCREF(code.ptr());
        it->second = ranges;
        auto cached = g_db.code_cache.find(code.ptr());
        if (cached != g_db.code_cache.end()) cached->second.pass_through = std::move(ranges);
      },
      "code"_a, "ranges"_a);

  m.def("db_forget_tracer", [] {
    g_db.tracer_resolved = false;
    g_db.tracer = nullptr;
    g_db.tracer_obj = nb::object();
  });

  // Gives `span` statistics of its own (the request, task and command hooks call this when
  // they start a root). A span below a local root stops counting in that root's: it and what
  // starts under it from then on count in its own, which it records when it ends (a task run
  // eagerly, or a framework command, inside a traced operation). Without `findings`, its
  // queries, cache reads and task sends are counted but never flagged (no N+1, repeated get or
  // repeated send): the command hook gives these to the commands of Django and of installed
  // libraries, whose repeated statements the project cannot change.
  m.def(
      "attach_query_stats",
      [](nb::handle span, bool findings) {
        PySpan* ps = nullptr;
        if (!nb::try_cast<PySpan*>(span, ps) || !ps || !ps->span.is_recording() ||
            ps->span.has_ended() || !ps->owner)
          return false;
        if (ps->span.owns_root_state() && StatsOf(ps->span)) return true;
        if (findings) {
          ps->span.OwnRootState(NewStats(ps->owner->core->limits()));
          return true;
        }
        QueryStatsOptions counting_only = g_db.stats_options;
        counting_only.n_plus_one_threshold = 0;
        counting_only.repeated_cache_get_threshold = 0;
        counting_only.task_send_threshold = 0;
        ps->span.OwnRootState(
            std::make_shared<QueryStats>(counting_only, ps->owner->core->limits()));
        return true;
      },
      "span"_a.none(), "findings"_a = true);

  m.def(
      "query_stats",
      [](nb::handle span) -> nb::object {
        nb::object s = span.is_none() ? SpanInContext(nb::none()) : nb::borrow(span);
        PySpan* ps = nullptr;
        if (!nb::try_cast<PySpan*>(s, ps) || !ps) return nb::none();
        QueryStats* stats = StatsOf(ps->span);
        if (!stats) return nb::none();
        return StatsDict(*stats);
      },
      "span"_a.none() = nb::none());

  m.def(
      "record_cache_get",
      [](nb::handle alias, nb::handle key, nb::handle version, bool hit,
         nb::handle key_text) -> bool {
        if (!g_db.enabled) return false;
        std::shared_ptr<LocalRootState> state = StateForSend();
        QueryStats* stats = QueryStats::Of(state.get());
        if (!stats) return false;
        // The same key hashes the same in every process: (alias, version, key) as text.
        std::string text;
        auto append = [&text](nb::handle part) {
          if (part.is_none()) return;
          if (PyUnicode_Check(part.ptr())) {
            text.append(View(part.ptr()));
            return;
          }
          PyObject* str = PyObject_Str(part.ptr());
          if (str) {
            text.append(View(str));
            Py_DECREF(str);
          } else {
            PyErr_Clear();
          }
        };
        append(alias);
        text.push_back('\0');
        append(version);
        text.push_back('\0');
        append(key);
        const uint64_t key_hash = sql::HashBytes(text, 0x6b6579);
        CallSite site;  // kept from the first read only: no walk for the repeats
        if (g_db.query_source && !stats->KnowsCacheKey(key_hash)) FindCallSite(site);
        return stats->RecordCacheGet(key_hash, hit, site, View(alias.ptr()), View(key_text.ptr()));
      },
      "alias"_a.none(), "key"_a.none(), "version"_a.none(), "hit"_a,
      "key_text"_a.none() = nb::none(),
      "Counts one cache read in the current local root; True when it made the key a repeated "
      "get. key_text, when given, is exported on the finding (pass it redacted).");

  // The repeated-get threshold of roots started from now on (Django's cache_repeat_threshold).
  m.def(
      "cache_repeat_configure",
      [](uint32_t threshold) { g_db.stats_options.repeated_cache_get_threshold = threshold; },
      "threshold"_a);

  m.def("db_call_site", []() -> nb::object {
    CallSite site;
    if (!FindCallSite(site)) return nb::none();
    return nb::make_tuple(nb::str(site.code->filepath.data(), site.code->filepath.size()),
                          site.lineno,
                          nb::str(site.code->function.data(), site.code->function.size()));
  });

  m.def(
      "db_obfuscate",
      [](nb::handle sql, const std::string& vendor) -> nb::object {
        std::string_view text = View(sql.ptr());
        SqlPtr r;
        if (g_db.cache) {
          r = g_db.cache->Get(text, sql::DialectFromName(vendor));
        } else {
          r = std::make_shared<const sql::ObfuscatedSql>(
              sql::Obfuscate(text, sql::DialectFromName(vendor)));
        }
        nb::dict d;
        d["text"] = nb::str(r->text.data(), r->text.size());
        d["operation"] = nb::str(r->operation.data(), r->operation.size());
        d["table"] = nb::str(r->table.data(), r->table.size());
        d["summary"] = nb::str(r->summary.data(), r->summary.size());
        std::string fp = analysis::FingerprintHex(r->fingerprint);
        d["fingerprint"] = nb::str(fp.data(), fp.size());
        return d;
      },
      "sql"_a.none(), "vendor"_a);

  m.def("db_cache_stats", []() -> nb::object {
    nb::dict d;
    if (g_db.cache) {
      auto s = g_db.cache->stats();
      d["hits"] = s.hits;
      d["misses"] = s.misses;
      d["uncached"] = s.uncached;
      d["evictions"] = s.evictions;
      d["size"] = s.size;
    }
    d["code_objects"] = g_db.code_cache.size();
    return d;
  });

  m.def("db_clear_code_cache", [] { ClearCodeCache(); });

  // Whether a source file is the application's, by the rule of the call-site walk and the
  // prefixes db_configure last set (the command hook asks it of a command's module).
  m.def("db_is_app_path", [](const std::string& path) { return IsAppPath(path); }, "path"_a);

  // The call site of the application's code that is calling now (djtrace frames and the
  // libraries skipped), for the work Django's async API hands to a worker thread; None when
  // there is none.
  nb::class_<CapturedSite>(m, "CapturedSite");
  m.def("capture_call_site", []() -> nb::object {
    CapturedSite captured;
    if (!WalkCallSite(captured.site)) return nb::none();
    return nb::cast(std::move(captured));
  });

  nb::class_<QueryCollector>(m, "QueryCollector")
      .def(
          "__init__",
          [](QueryCollector* self, nb::object parent) {
            new (self) QueryCollector();
            self->parent = parent;
            SpanLimits limits;
            self->own = std::make_shared<QueryStats>(g_db.stats_options, limits);
            QueryStatsOptions all_options = g_db.stats_options;
            all_options.n_plus_one_threshold = 0;
            all_options.max_exact_keys = 1 << 16;
            self->all = std::make_shared<QueryStats>(all_options, limits);
          },
          "parent"_a.none())
      .def_prop_ro("query_count", [](QueryCollector& c) { return c.queries; })
      .def_prop_ro("duration_ms",
                   [](QueryCollector& c) { return static_cast<double>(c.duration_ns) / 1e6; })
      .def_prop_ro("error_count", [](QueryCollector& c) { return c.errors; })
      .def_prop_ro("duplicate_count",
                   [](QueryCollector& c) { return c.all->Summary().duplicate_count; })
      .def("findings",
           [](QueryCollector& c) {
             nb::list out;
             for (const QueryGroup& g : c.findings) out.append(FindingDict(g, nullptr));
             return out;
           })
      .def("task_send_findings",
           [](QueryCollector& c) {
             nb::list out;
             for (const auto& g : c.task_send_findings) out.append(TaskSendDict(g));
             return out;
           })
      .def("queries", [](QueryCollector& c) {
        nb::list out;
        for (const auto& e : c.executed) {
          nb::dict d;
          d["sql"] = nb::str(e.sql->text.data(), e.sql->text.size());
          d["summary"] = nb::str(e.sql->summary.data(), e.sql->summary.size());
          d["duration_ms"] = static_cast<double>(e.duration_ns) / 1e6;
          PutCallSite(d, e.site);
          d["relation"] = e.relation.empty()
                              ? nb::object(nb::none())
                              : nb::object(nb::str(e.relation.data(), e.relation.size()));
          out.append(d);
        }
        return out;
      });

  m.def("db_collectors_adjust", [](int delta) {
    g_db.collectors_active += delta;
    if (g_db.collectors_active < 0) g_db.collectors_active = 0;
    return g_db.collectors_active;
  });

  // Settings of the Celery integration: the repeated-send threshold of roots started from now
  // on, and the directories that are not application code when the database integration has
  // not set them (a worker without Django).
  m.def(
      "task_send_configure",
      [](uint32_t threshold, std::vector<std::string> skip_prefixes) {
        g_db.stats_options.task_send_threshold = threshold;
        if (g_db.skip_prefixes.empty() && !skip_prefixes.empty()) {
          g_db.skip_prefixes = std::move(skip_prefixes);
          ClearCodeCache();
        }
      },
      "threshold"_a, "skip_prefixes"_a);

  // Counts one task message sent in the current local root (and in the active djtrace.testing
  // collectors) by (task name, call site). Returns the finding as a dict when this send made
  // its group a repeated send, None otherwise.
  m.def(
      "record_task_send",
      [](nb::handle task_name) -> nb::object {
        PyObject* collector = g_db.collectors_active > 0 ? VarGet(g_db.collector_var) : nullptr;
        QueryCollector* head = nullptr;
        if (collector && collector != Py_None &&
            (!nb::try_cast<QueryCollector*>(nb::handle(collector), head) || !head))
          head = nullptr;
        nb::object result = nb::none();
        try {
          std::shared_ptr<LocalRootState> state = StateForSend();
          QueryStats* stats = QueryStats::Of(state.get());
          if (!stats && head) stats = head->own.get();  // sends outside any root
          if (stats) {
            CallSite site;
            FindCallSite(site);
            analysis::TaskSendGroup crossed;
            if (stats->RecordTaskSend(View(task_name.ptr()), site, NowUnixNano(), &crossed)) {
              for (PyObject* c = collector; head && c && c != Py_None;) {
                QueryCollector* each = nullptr;
                if (!nb::try_cast<QueryCollector*>(nb::handle(c), each) || !each) break;
                each->task_send_findings.push_back(crossed);
                c = each->parent.ptr();
              }
              result = TaskSendDict(crossed);
            }
          }
        } catch (...) {
          Py_XDECREF(collector);
          throw;
        }
        Py_XDECREF(collector);
        return result;
      },
      "task_name"_a.none());
}

RegisterBindings g_register(&BindDb);

}  // namespace
}  // namespace djtrace
