// djtrace._native: the only file that knows Python. It converts between Python objects and the
// native core's types, releases the GIL around anything that may wait, and glues the span's
// context-manager protocol onto OpenTelemetry's contextvar so that entering a span costs one
// call. No tracing logic lives here.
#include <Python.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "export/otlp_exporter.h"
#include "export/stream_exporters.h"
#include "python/common.h"
#include "trace/ids.h"
#include "trace/memory_exporter.h"
#include "trace/processor.h"
#include "trace/sampler.h"
#include "trace/tracer.h"
#include "trace/w3c.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace djtrace {

ContextGlue g_ctx;
PyTypeObject* g_span_type = nullptr;
PyTypeObject* g_tracer_type = nullptr;

std::vector<BindFn>& Binders() {
  static std::vector<BindFn> binders;
  return binders;
}

// ---------------------------------------------------------------------------------------------
// Ids <-> Python int

nb::object IdToInt(const uint8_t* bytes, size_t n) {
#if PY_VERSION_HEX >= 0x030D0000
  return nb::steal(PyLong_FromUnsignedNativeBytes(bytes, n, Py_ASNATIVEBYTES_BIG_ENDIAN));
#else
  return nb::steal(_PyLong_FromByteArray(bytes, n, /*little_endian=*/0, /*is_signed=*/0));
#endif
}

bool IntToId(nb::handle h, uint8_t* out, size_t n) {
  if (!PyLong_Check(h.ptr())) return false;
#if PY_VERSION_HEX >= 0x030D0000
  Py_ssize_t r =
      PyLong_AsNativeBytes(h.ptr(), out, static_cast<Py_ssize_t>(n),
                           Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER |
                               Py_ASNATIVEBYTES_REJECT_NEGATIVE);
  if (r < 0 || static_cast<size_t>(r) > n) {
    PyErr_Clear();
    return false;
  }
  return true;
#else
  if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(h.ptr()), out, n, 0, 0) < 0) {
    PyErr_Clear();
    return false;
  }
  return true;
#endif
}

// ---------------------------------------------------------------------------------------------
// Attribute values

bool ToString(PyObject* o, std::string& out) {
  Py_ssize_t size;
  const char* data = PyUnicode_AsUTF8AndSize(o, &size);
  if (!data) {
    // Lone surrogates cannot be UTF-8: replace them rather than lose the value.
    PyErr_Clear();
    PyObject* b = PyUnicode_AsEncodedString(o, "utf-8", "replace");
    if (!b) {
      PyErr_Clear();
      return false;
    }
    out.assign(PyBytes_AS_STRING(b), static_cast<size_t>(PyBytes_GET_SIZE(b)));
    Py_DECREF(b);
    return true;
  }
  out.assign(data, static_cast<size_t>(size));
  return true;
}

bool ToInt64(PyObject* o, int64_t& out) {
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow || (v == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return false;
  }
  out = v;
  return true;
}

template <typename T, typename Check, typename Conv>
bool ToArray(PyObject* seq, AttrValue& out, Check check, Conv conv) {
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject** items = PySequence_Fast_ITEMS(seq);
  std::vector<T> values;
  values.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (!check(items[i])) return false;
    T v;
    if (!conv(items[i], v)) return false;
    values.push_back(std::move(v));
  }
  out = std::move(values);
  return true;
}

// Converts a Python attribute value; false for types OpenTelemetry does not accept (the value
// is then dropped, as the official SDK drops it with a warning).
bool ToAttrValue(PyObject* o, AttrValue& out) {
  if (PyUnicode_Check(o)) {
    std::string s;
    if (!ToString(o, s)) return false;
    out = std::move(s);
    return true;
  }
  if (PyBool_Check(o)) {
    out = (o == Py_True);
    return true;
  }
  if (PyLong_Check(o)) {
    int64_t v;
    if (!ToInt64(o, v)) return false;
    out = v;
    return true;
  }
  if (PyFloat_Check(o)) {
    out = PyFloat_AS_DOUBLE(o);
    return true;
  }
  if (PyList_Check(o) || PyTuple_Check(o)) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
    if (n == 0) {
      out = std::vector<std::string>{};
      return true;
    }
    PyObject* first = PySequence_Fast_ITEMS(o)[0];
    if (PyUnicode_Check(first))
      return ToArray<std::string>(
          o, out, [](PyObject* x) { return PyUnicode_Check(x) != 0; },
          [](PyObject* x, std::string& v) { return ToString(x, v); });
    if (PyBool_Check(first))
      return ToArray<bool>(
          o, out, [](PyObject* x) { return PyBool_Check(x) != 0; },
          [](PyObject* x, bool& v) {
            v = (x == Py_True);
            return true;
          });
    if (PyLong_Check(first))
      return ToArray<int64_t>(
          o, out, [](PyObject* x) { return PyLong_Check(x) && !PyBool_Check(x); },
          [](PyObject* x, int64_t& v) { return ToInt64(x, v); });
    if (PyFloat_Check(first))
      return ToArray<double>(
          o, out, [](PyObject* x) { return PyFloat_Check(x) != 0; },
          [](PyObject* x, double& v) {
            v = PyFloat_AS_DOUBLE(x);
            return true;
          });
    return false;
  }
  return false;
}

// Reads a mapping of attributes (dict, or any Mapping with items()).
void ToAttributes(nb::handle mapping, Attributes& out) {
  if (mapping.is_none()) return;
  PyObject* m = mapping.ptr();
  if (PyDict_Check(m)) {
    out.reserve(static_cast<size_t>(PyDict_GET_SIZE(m)));
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(m, &pos, &k, &v)) {
      if (!PyUnicode_Check(k)) continue;
      Attribute a;
      if (!ToString(k, a.key) || a.key.empty() || !ToAttrValue(v, a.value)) continue;
      out.push_back(std::move(a));
    }
    return;
  }
  nb::object items = nb::borrow(mapping).attr("items")();
  for (nb::handle item : items) {
    nb::handle k = item[0], v = item[1];
    if (!PyUnicode_Check(k.ptr())) continue;
    Attribute a;
    if (!ToString(k.ptr(), a.key) || a.key.empty() || !ToAttrValue(v.ptr(), a.value)) continue;
    out.push_back(std::move(a));
  }
}

nb::object FromAttrValue(const AttrValue& v) {
  return std::visit(
      [](const auto& x) -> nb::object {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          return nb::bool_(x);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return nb::int_(x);
        } else if constexpr (std::is_same_v<T, double>) {
          return nb::float_(x);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return nb::str(x.data(), x.size());
        } else {
          nb::list l;
          for (const auto& e : x) {
            if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::vector<bool>>) {
              l.append(nb::bool_(static_cast<bool>(e)));
            } else if constexpr (std::is_same_v<std::decay_t<decltype(e)>, std::string>) {
              l.append(nb::str(e.data(), e.size()));
            } else if constexpr (std::is_same_v<std::decay_t<decltype(e)>, int64_t>) {
              l.append(nb::int_(e));
            } else {
              l.append(nb::float_(e));
            }
          }
          return nb::tuple(l);
        }
      },
      v);
}

nb::dict FromAttributes(const Attributes& attrs) {
  nb::dict d;
  for (const auto& a : attrs) d[nb::str(a.key.data(), a.key.size())] = FromAttrValue(a.value);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Span contexts as Python tuples: (trace_id, span_id, trace_flags, is_remote, trace_state)

nb::tuple ContextTuple(const SpanContextData& c) {
  return nb::make_tuple(IdToInt(c.trace_id.data(), 16), IdToInt(c.span_id.data(), 8), c.trace_flags,
                        c.remote, nb::str(c.trace_state.c_str()));
}

bool ContextFromTuple(nb::handle t, SpanContextData& c) {
  if (!PyTuple_CheckExact(t.ptr()) || PyTuple_GET_SIZE(t.ptr()) < 4) return false;
  if (!IntToId(PyTuple_GET_ITEM(t.ptr(), 0), c.trace_id.data(), 16)) return false;
  if (!IntToId(PyTuple_GET_ITEM(t.ptr(), 1), c.span_id.data(), 8)) return false;
  long flags = PyLong_AsLong(PyTuple_GET_ITEM(t.ptr(), 2));
  if (flags == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  c.trace_flags = static_cast<uint8_t>(flags);
  c.remote = PyObject_IsTrue(PyTuple_GET_ITEM(t.ptr(), 3)) == 1;
  if (PyTuple_GET_SIZE(t.ptr()) > 4) {
    PyObject* ts = PyTuple_GET_ITEM(t.ptr(), 4);
    if (PyUnicode_Check(ts)) ToString(ts, c.trace_state);
  }
  return c.valid();
}

// ---------------------------------------------------------------------------------------------
// Finished spans as Python dicts (read by ReadableSpan, the in-memory exporter and exporters
// written in Python).

nb::dict SpanToDict(const SpanData& s) {
  nb::dict d;
  d["name"] = nb::str(s.name.data(), s.name.size());
  d["trace_id"] = IdToInt(s.trace_id.data(), 16);
  d["span_id"] = IdToInt(s.span_id.data(), 8);
  d["parent_span_id"] =
      IsZero(s.parent_span_id) ? nb::object(nb::none()) : IdToInt(s.parent_span_id.data(), 8);
  d["parent_is_remote"] = (s.flags & 0x200u) != 0;
  d["trace_flags"] = s.flags & 0xFFu;
  d["trace_state"] = nb::str(s.trace_state.c_str());
  d["kind"] = static_cast<int>(s.kind);
  d["start_time"] = s.start_time_unix_nano;
  d["end_time"] = s.end_time_unix_nano ? nb::object(nb::int_(s.end_time_unix_nano)) : nb::none();
  nb::dict attributes = s.shared_attributes ? FromAttributes(*s.shared_attributes) : nb::dict();
  for (const auto& a : s.attributes)
    attributes[nb::str(a.key.data(), a.key.size())] = FromAttrValue(a.value);
  d["attributes"] = attributes;
  d["dropped_attributes"] = s.dropped_attributes_count;
  nb::list events;
  for (const auto& e : s.events)
    events.append(nb::make_tuple(nb::str(e.name.c_str()), e.time_unix_nano,
                                 FromAttributes(e.attributes), e.dropped_attributes_count));
  d["events"] = events;
  d["dropped_events"] = s.dropped_events_count;
  nb::list links;
  for (const auto& l : s.links) {
    SpanContextData c;
    c.trace_id = l.trace_id;
    c.span_id = l.span_id;
    c.trace_flags = static_cast<uint8_t>(l.flags & 0xFF);
    c.remote = (l.flags & 0x200u) != 0;
    c.trace_state = l.trace_state;
    links.append(
        nb::make_tuple(ContextTuple(c), FromAttributes(l.attributes), l.dropped_attributes_count));
  }
  d["links"] = links;
  d["dropped_links"] = s.dropped_links_count;
  d["status_code"] = static_cast<int>(s.status_code);
  d["status_message"] = nb::str(s.status_message.c_str());
  if (s.scope) {
    d["scope"] =
        nb::make_tuple(nb::str(s.scope->name.c_str()), nb::str(s.scope->version.c_str()),
                       nb::str(s.scope->schema_url.c_str()), FromAttributes(s.scope->attributes));
  } else {
    d["scope"] = nb::none();
  }
  if (s.resource) {
    d["resource"] = nb::make_tuple(FromAttributes(s.resource->attributes),
                                   nb::str(s.resource->schema_url.c_str()));
  } else {
    d["resource"] = nb::none();
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// The OpenTelemetry context variable, set up once from Python (djtrace.sdk._context).

// ---------------------------------------------------------------------------------------------
// The span object Python sees.

uint64_t ToTime(nb::handle t) {
  if (t.is_none()) return 0;
  unsigned long long v = PyLong_AsUnsignedLongLong(t.ptr());
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    return 0;
  }
  return v;
}

// With kKeepReadable, a copy of what the span recorded, taken as it ends (before its data
// goes to the processors), for the read API. A failed copy leaves the read API empty, as before.
void KeepReadable(PySpan& self) {
  const SpanData* data = self.span.data();
  if (!(self.flags & kKeepReadable) || !data) return;
  try {
    self.ended = std::make_unique<SpanData>(*data);
  } catch (...) {
    self.ended.reset();
  }
}

void EndLive(LiveSpan& span, bool may_block) {
  if (may_block) {
    nb::gil_scoped_release release;
    span.End();
  } else {
    span.End();
  }
}

void SubmitEnded(PySpan& self, bool may_block) {
  if (may_block) {
    nb::gil_scoped_release release;
    self.span.Submit();
  } else {
    self.span.Submit();
  }
}

void NativeEnd(PySpan& self, uint64_t end_time) {
  const bool may_block = self.owner && self.owner->end_may_block && self.span.is_recording();
  if (!self.span.MarkEnded(end_time)) return;  // ended before: counted, nothing to submit
  KeepReadable(self);
  SubmitEnded(self, may_block);
}

void ReportMisuse(PySpan& span, const char* what) {
  if (span.owner) {
    auto& counters = span.owner->core->counters();
    (std::strcmp(what, "end") == 0 ? counters.spans_ended_twice : counters.calls_after_end)
        .fetch_add(1, std::memory_order_relaxed);
  }
  if (!g_ctx.misuse) return;
  PyObject* r = PyObject_CallFunction(g_ctx.misuse, "s", what);
  if (!r) PyErr_Clear();
  Py_XDECREF(r);
}

void SetAttributeFromPython(PySpan& self, PyObject* key, PyObject* value) {
  if (!self.span.is_recording() || !PyUnicode_Check(key)) {
    if (self.span.has_ended()) ReportMisuse(self, "set_attribute");
    return;
  }
  Py_ssize_t n;
  const char* k = PyUnicode_AsUTF8AndSize(key, &n);
  if (!k || n == 0) {
    PyErr_Clear();
    return;
  }
  AttrValue v;
  if (ToAttrValue(value, v))
    self.span.SetAttribute(std::string_view(k, static_cast<size_t>(n)), std::move(v));
}

void EndSpan(nb::handle self_h, PySpan& self, nb::handle end_time) {
  if (self.span.has_ended()) {
    ReportMisuse(self, "end");
    return;
  }
  if (self.owner && self.owner->py_end_hook.is_valid() && self.span.is_recording()) {
    try {
      self.owner->py_end_hook(self_h, end_time);
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("djtrace span end");
    }
    return;
  }
  NativeEnd(self, ToTime(end_time));
}

// A copy of the context `current` (may be null) as a new OpenTelemetry Context. Context is a
// dict subclass that adds neither __new__ nor __init__, so it is made as dict makes it, without
// the type call (its argument tuple and keyword parsing cost more than the copy).
PyObject* NewContext(PyObject* current) {
  auto* type = reinterpret_cast<PyTypeObject*>(g_ctx.context_type);
  static PyObject* const empty = PyTuple_New(0);
  if (empty && PyType_IsSubtype(type, &PyDict_Type) && type->tp_new == PyDict_Type.tp_new &&
      type->tp_init == PyDict_Type.tp_init) {
    PyObject* ctx = type->tp_new(type, empty, nullptr);
    if (ctx && current && PyDict_Update(ctx, current) < 0) Py_CLEAR(ctx);
    return ctx;
  }
  return current ? PyObject_CallOneArg(g_ctx.context_type, current)
                 : PyObject_CallNoArgs(g_ctx.context_type);
}

// A span object of `tracer` that is not started yet (its LiveSpan is fresh).
nb::object AllocSpan(NativeTracer& tracer, int flags) {
  nb::object obj = nb::inst_alloc(nb::handle(reinterpret_cast<PyObject*>(g_span_type)));
  PySpan* ps = nb::inst_ptr<PySpan>(obj);
  new (ps) PySpan();
  nb::inst_mark_ready(obj);
  ps->owner = tracer.owner;
  ps->owner_ref = tracer.owner_obj.inc_ref().ptr();
  ps->flags = static_cast<uint8_t>(flags);
  return obj;
}

// Through the context variable (g_ctx.var): a copy of the current context with `span_obj` as
// its span, and `key` (when not null) set to `value`, made current; its token, or null.
PyObject* AttachToContextVar(PyObject* span_obj, PyObject* key, PyObject* value) {
  PyObject* current = nullptr;
  if (PyContextVar_Get(g_ctx.var, nullptr, &current) < 0) return nullptr;
  PyObject* ctx = NewContext(current);
  Py_XDECREF(current);
  if (!ctx) return nullptr;
  // The Context type forbids item assignment from Python; the dict beneath is fresh and ours.
  if ((key && PyDict_SetItem(ctx, key, value) < 0) ||
      PyDict_SetItem(ctx, g_ctx.span_key, span_obj) < 0) {
    Py_DECREF(ctx);
    return nullptr;
  }
  PyObject* token = PyContextVar_Set(g_ctx.var, ctx);
  Py_DECREF(ctx);
  return token;
}

// ---------------------------------------------------------------------------------------------
// Deferred attach. The spans native hooks wrap around one call (traced_call: middleware, views,
// templates, cache calls) are made current without touching the context variable. Copying the
// Context dict, setting the variable and resetting it cost about 4.6 k instructions a span,
// more than a quarter of what djtrace added to a request of the benchmark page, and nothing
// reads that Context for most of them. Each is pushed here instead, with the variable's value
// at that moment (its base). The current span is the innermost entry whose base is still the
// variable's value: anything set after it (a span of the application's, a value attached)
// hides it, and the Context holding it is built only when asked for (the runtime context's
// get_current, djtrace.sdk._context) and kept until the entry is popped.
//
// One list for the process, read and written under the GIL. A reader takes the innermost
// entry on its base pushed by its own thread; failing that (a thread or event loop that copied
// the context: async_to_sync, a pool running copy_context().run), the innermost entry on its
// base of the thread that pushed the first one, the request's own thread, whose current span
// is the one the copy was taken in while it waits for the work. The variable's default is
// shared by every thread that never set it, so it only matches a thread's own entries.
//
// A hook span (HookSpan) is pushed without its Python object: `hook` points at its state, and
// `span` stays null until the object is asked for (EntrySpan). Readers that only need a parent's
// context use the LiveSpan (EntryLive), so that a hook's children do not make it.
struct HookSpanState {
  LiveSpan live;  // the span, until its object is made (which then holds it)
  NativeTracer* tracer = nullptr;
  PyObject* name = nullptr;  // borrowed: the hook's str, alive for the call
  PyObject* obj = nullptr;   // owned: the span object, once made
  uint8_t flags = 0;         // the object's (kEndOnExit and what to record on an exception)
  bool pushed = false;       // on the deferred list

  LiveSpan& span() { return obj ? nb::inst_ptr<PySpan>(nb::handle(obj))->span : live; }
};

LiveSpan& HookSpan::span() { return state->span(); }

namespace {
// The span object of a hook span's state, made on first request (new reference; null with no
// error set when it cannot be made).
PyObject* StateObject(HookSpanState& h);
}  // namespace

struct DeferredEntry {
  PyObject* span;       // owned; null for a hook span whose object was not made
  HookSpanState* hook;  // a hook span; null for a span object pushed
  PyObject* base;       // owned; may be null (a variable without default, never set)
  PyObject* context;    // owned; null until asked for
  PyThreadState* thread;
};
std::vector<DeferredEntry> g_deferred;

const DeferredEntry* FindDeferred(PyObject* base) {
  if (g_deferred.empty()) return nullptr;
  PyThreadState* thread = PyThreadState_Get();
  for (auto it = g_deferred.rbegin(); it != g_deferred.rend(); ++it)
    if (it->base == base && it->thread == thread) return &*it;
  if (!base || base == g_ctx.default_context) return nullptr;
  PyThreadState* origin = nullptr;
  const DeferredEntry* found = nullptr;
  for (const DeferredEntry& e : g_deferred) {
    if (e.base != base) continue;
    if (!origin) origin = e.thread;
    if (e.thread == origin) found = &e;
  }
  return found;
}

// False with a Python error set when the variable cannot be read.
bool PushDeferred(PyObject* span_obj) {
  PyObject* base = nullptr;
  if (PyContextVar_Get(g_ctx.var, nullptr, &base) < 0) return false;
  try {
    g_deferred.push_back({Py_NewRef(span_obj), nullptr, base, nullptr, PyThreadState_Get()});
  } catch (const std::bad_alloc&) {
    Py_DECREF(span_obj);
    Py_XDECREF(base);
    PyErr_NoMemory();
    return false;
  }
  return true;
}

// Called once the entry is off the list: a Context's release can run Python code.
void ReleaseDeferred(DeferredEntry& e) {
  Py_XDECREF(e.context);
  Py_XDECREF(e.base);
  Py_XDECREF(e.span);
}

void PopDeferred(PyObject* span_obj) {
  for (size_t i = g_deferred.size(); i-- > 0;) {
    if (g_deferred[i].span != span_obj || g_deferred[i].hook) continue;
    DeferredEntry e = g_deferred[i];
    g_deferred.erase(g_deferred.begin() + static_cast<std::ptrdiff_t>(i));
    ReleaseDeferred(e);
    return;
  }
}

// In a child process after fork(): only the forking thread exists, so the other threads'
// entries can never be popped; their thread states' addresses may be reused by new threads.
void ForgetOtherThreadsDeferred() {
  PyThreadState* self = PyThreadState_Get();
  std::vector<DeferredEntry> gone;
  for (size_t i = g_deferred.size(); i-- > 0;) {
    if (g_deferred[i].thread == self) continue;
    // A hook span of a thread that did not survive: its stack is gone, never to pop it.
    if (HookSpanState* h = g_deferred[i].hook) h->pushed = false;
    gone.push_back(g_deferred[i]);
    g_deferred.erase(g_deferred.begin() + static_cast<std::ptrdiff_t>(i));
  }
  for (DeferredEntry& e : gone) ReleaseDeferred(e);
}

// The span of a deferred entry: its LiveSpan, read in place.
LiveSpan& EntryLive(const DeferredEntry& e) {
  return e.hook ? e.hook->span() : nb::inst_ptr<PySpan>(nb::handle(e.span))->span;
}

// The span object of a deferred entry (made now for a hook span that has none), or None.
nb::object EntrySpan(const DeferredEntry& e) {
  if (e.span) return nb::borrow(e.span);
  PyObject* obj = StateObject(*e.hook);
  return obj ? nb::steal(obj) : nb::none();
}

// The Context of a deferred entry (new reference), built on first request; null with an error.
PyObject* DeferredContext(const DeferredEntry& entry) {
  if (entry.context) return Py_NewRef(entry.context);
  // Held here: building the Context may run code that changes the list (and `entry` with it).
  nb::object span_obj = EntrySpan(entry);
  if (span_obj.is_none()) {
    PyErr_SetString(PyExc_RuntimeError, "djtrace: the current span could not be made");
    return nullptr;
  }
  PyObject* ctx = NewContext(entry.base);
  if (!ctx) return nullptr;
  if (PyDict_SetItem(ctx, g_ctx.span_key, span_obj.ptr()) < 0) {
    Py_DECREF(ctx);
    return nullptr;
  }
  for (DeferredEntry& e : g_deferred) {
    if (e.span == span_obj.ptr() && !e.context) {
      e.context = Py_NewRef(ctx);
      break;
    }
  }
  return ctx;
}

PyObject* Attach(PyObject* span_obj) {
  if (g_ctx.var) return AttachToContextVar(span_obj, nullptr, nullptr);
  PyObject* ctx = PyObject_CallOneArg(g_ctx.set_span_in_context, span_obj);
  if (!ctx) return nullptr;
  PyObject* token = PyObject_CallOneArg(g_ctx.attach, ctx);
  Py_DECREF(ctx);
  return token;
}

PyObject* AttachUnsampledRoot(NativeTracer& tracer, PyObject* key, PyObject* value) {
  if (!g_ctx.var) {
    PyErr_SetString(PyExc_RuntimeError, "the OpenTelemetry context variable is not set up");
    return nullptr;
  }
  nb::object span;
  try {
    span = AllocSpan(tracer, 0);
  } catch (nb::python_error& e) {
    e.restore();
    return nullptr;
  }
  SpanStarter::Unsampled(nb::inst_ptr<PySpan>(span)->span);
  return AttachToContextVar(span.ptr(), key, value);
}

void Detach(PyObject* token) {
  if (g_ctx.var) {
    if (PyContextVar_Reset(g_ctx.var, token) < 0) PyErr_Clear();  // reset in another context
    return;
  }
  PyObject* r = PyObject_CallOneArg(g_ctx.detach, token);
  if (!r) PyErr_Clear();
  Py_XDECREF(r);
}

// An OpenTelemetry SpanContext (any object with its attributes) as native data.
bool SpanContextFromPy(nb::handle sc, SpanContextData& out) {
  try {
    if (!nb::cast<bool>(sc.attr("is_valid"))) return false;
    nb::object ts = sc.attr("trace_state");
    std::string trace_state;
    if (!ts.is_none()) {
      nb::object header = ts.attr("to_header")();
      ToString(header.ptr(), trace_state);
    }
    nb::tuple t =
        nb::make_tuple(sc.attr("trace_id"), sc.attr("span_id"), nb::int_(sc.attr("trace_flags")),
                       sc.attr("is_remote"), nb::str(trace_state.c_str()));
    return ContextFromTuple(t, out);
  } catch (const nb::python_error&) {
    return false;
  }
}

// Resolves a parent given as one of our spans, a context tuple, or any object with
// get_span_context() (an OpenTelemetry NonRecordingSpan from a propagator, for one).
bool ParentContext(nb::handle parent, SpanContextData& out) {
  if (parent.is_none()) return false;
  if (PySpan* ps = FastSpan(parent.ptr())) {
    out = ps->span.context();
    return out.valid();
  }
  if (PyTuple_CheckExact(parent.ptr())) return ContextFromTuple(parent, out);
  try {
    return SpanContextFromPy(nb::borrow(parent).attr("get_span_context")(), out);
  } catch (const nb::python_error&) {
    return false;
  }
}

nb::object CurrentContext();

nb::object RawCurrentContext() {
  if (g_ctx.var) {
    PyObject* current = nullptr;
    if (PyContextVar_Get(g_ctx.var, nullptr, &current) < 0) {
      PyErr_Clear();
      return nb::none();
    }
    return current ? nb::steal(current) : nb::none();
  }
  return CurrentContext();
}

nb::object CurrentContext() {
  if (g_ctx.var) {
    nb::object current = RawCurrentContext();
    if (const DeferredEntry* entry = FindDeferred(current.is_none() ? nullptr : current.ptr())) {
      PyObject* ctx = DeferredContext(*entry);
      if (!ctx) {
        PyErr_Clear();
        return nb::none();
      }
      return nb::steal(ctx);
    }
    return current;
  }
  if (g_ctx.get_current) {
    PyObject* r = PyObject_CallNoArgs(g_ctx.get_current);
    if (!r) {
      PyErr_Clear();
      return nb::none();
    }
    return nb::steal(r);
  }
  return nb::none();
}

nb::object SpanInRawContext(nb::handle raw) {
  if (g_ctx.var) {
    if (const DeferredEntry* entry = FindDeferred(raw.is_none() ? nullptr : raw.ptr()))
      return EntrySpan(*entry);
  }
  return raw.is_none() ? nb::none() : SpanInContext(raw);
}

// The span stored in `context` (the current context when None), or None.
nb::object SpanInContext(nb::handle context) {
  if (context.is_none() && g_ctx.var) return SpanInRawContext(RawCurrentContext());
  nb::object ctx = context.is_none() ? CurrentContext() : nb::borrow(context);
  if (ctx.is_none() || !g_ctx.span_key) return nb::none();
  if (PyDict_Check(ctx.ptr())) {
    PyObject* span = PyDict_GetItemWithError(ctx.ptr(), g_ctx.span_key);
    if (!span) {
      PyErr_Clear();
      return nb::none();
    }
    return nb::borrow(span);
  }
  try {
    return ctx.attr("get")(nb::handle(g_ctx.span_key));
  } catch (const nb::python_error&) {
    return nb::none();
  }
}

// OpenTelemetry's SpanKind members, cached so that the common case is a pointer comparison.
PyObject* g_span_kinds[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};

int KindToOtlp(nb::handle kind) {
  if (kind.is_none()) return static_cast<int>(SpanKind::kInternal);
  for (int i = 0; i < 5; ++i)
    if (kind.ptr() == g_span_kinds[i]) return i + 1;
  try {
    return nb::cast<int>(kind.attr("value")) + 1;
  } catch (const std::exception&) {
    PyErr_Clear();
    return static_cast<int>(SpanKind::kInternal);
  }
}

// Links are OpenTelemetry Link objects (.context, .attributes) or (context tuple, attributes).
void ReadLinks(nb::handle links, StartOptions& o) {
  if (links.is_none()) return;
  try {
    for (nb::handle link : links) {
      SpanContextData lc;
      Attributes la;
      if (PyTuple_CheckExact(link.ptr())) {
        if (!ContextFromTuple(link[0], lc)) continue;
        ToAttributes(link[1], la);
      } else {
        if (!SpanContextFromPy(link.attr("context"), lc)) continue;
        ToAttributes(link.attr("attributes"), la);
      }
      o.links.emplace_back(std::move(lc), std::move(la));
    }
  } catch (const nb::python_error&) {
  }
}

void SetParent(nb::handle parent, SpanContextData& ctx, StartOptions& o) {
  if (!ParentContext(parent, ctx)) return;
  o.parent = &ctx;
  if (PySpan* local = FastSpan(parent.ptr())) o.local_parent = &local->span;
}

nb::object NewSpan(NativeTracer& tracer, nb::handle name, int kind, nb::handle parent,
                   nb::handle attributes, nb::handle links, nb::handle start_time, int flags,
                   StartOptions&& o) {
  nb::object obj = AllocSpan(tracer, flags);
  PySpan* ps = nb::inst_ptr<PySpan>(obj);
  // The str's own UTF-8 buffer (cached on it), alive until Start has copied it.
  Py_ssize_t name_size = 0;
  const char* name_utf8 =
      PyUnicode_Check(name.ptr()) ? PyUnicode_AsUTF8AndSize(name.ptr(), &name_size) : nullptr;
  if (name_utf8) {
    o.name_ref = std::string_view(name_utf8, static_cast<size_t>(name_size));
    ps->name = Py_NewRef(name.ptr());
  } else {
    PyErr_Clear();
    static PyObject* const kUnnamed = PyUnicode_InternFromString("unnamed");
    o.name = "unnamed";
    ps->name = Py_NewRef(kUnnamed);
  }
  o.kind = static_cast<SpanKind>(kind);
  SpanContextData parent_ctx;
  SetParent(parent, parent_ctx, o);
  o.start_time_unix_nano = ToTime(start_time);
  if (!attributes.is_none()) ToAttributes(attributes, o.attributes);
  ReadLinks(links, o);
  SpanStarter::Start(tracer.owner->core, tracer.scope, std::move(o), ps->span);
  return obj;
}

// ----- hook spans (HookSpan in common.h)

LiveSpan* CurrentParent(nb::handle raw, SpanContextData& remote, const SpanContextData*& parent) {
  parent = nullptr;
  LiveSpan* local = nullptr;
  if (g_ctx.var) {
    if (const DeferredEntry* entry = FindDeferred(raw.is_none() ? nullptr : raw.ptr()))
      local = &EntryLive(*entry);
  }
  if (!local) {
    nb::object span = raw.is_none() ? nb::none() : SpanInContext(raw);
    if (span.is_none()) return nullptr;
    if (PySpan* ps = FastSpan(span.ptr())) {
      local = &ps->span;
    } else {
      if (ParentContext(span, remote)) parent = &remote;
      return nullptr;
    }
  }
  if (!local->context().valid()) return nullptr;
  parent = &local->context();
  return local;
}

namespace {

// Hook span states kept for reuse (under the GIL): a hook takes one per call.
std::vector<HookSpanState*> g_hook_states;
constexpr size_t kMaxKeptHookStates = 256;  // more than any nesting of hooks

HookSpanState* TakeHookState() {
  if (g_hook_states.empty()) return new HookSpanState();
  HookSpanState* s = g_hook_states.back();
  g_hook_states.pop_back();
  return s;
}

void KeepHookState(HookSpanState* s) {
  s->live = LiveSpan();
  s->tracer = nullptr;
  s->name = nullptr;
  s->flags = 0;
  s->pushed = false;
  if (g_hook_states.size() >= kMaxKeptHookStates) {
    delete s;
    return;
  }
  try {
    g_hook_states.push_back(s);
  } catch (const std::bad_alloc&) {
    delete s;
  }
}

// Takes `h` off the deferred list (its references released after, as a Context's release can
// run Python code).
void PopHook(HookSpanState& h) {
  if (!h.pushed) return;
  h.pushed = false;
  for (size_t i = g_deferred.size(); i-- > 0;) {
    if (g_deferred[i].hook != &h) continue;
    DeferredEntry e = g_deferred[i];
    g_deferred.erase(g_deferred.begin() + static_cast<std::ptrdiff_t>(i));
    ReleaseDeferred(e);
    return;
  }
}

}  // namespace

HookSpan::~HookSpan() {
  if (!state) return;
  PopHook(*state);
  Py_CLEAR(state->obj);
  KeepHookState(state);
}

bool HookSpanBegin(HookSpan& h, NativeTracer& tracer, PyObject* name, SpanKind kind, int flags,
                   StartOptions&& o) {
  if (h.state || !g_ctx.defer || !g_ctx.var || !PyUnicode_Check(name)) return false;
  Py_ssize_t name_size = 0;
  const char* name_utf8 = PyUnicode_AsUTF8AndSize(name, &name_size);
  if (!name_utf8) {
    PyErr_Clear();
    return false;
  }
  PyObject* base = nullptr;
  if (PyContextVar_Get(g_ctx.var, nullptr, &base) < 0) {
    PyErr_Clear();
    return false;
  }
  HookSpanState* s = nullptr;
  try {
    g_deferred.reserve(g_deferred.size() + 1);  // the push below cannot fail once started
    s = TakeHookState();
  } catch (const std::bad_alloc&) {
    Py_XDECREF(base);
    return false;
  }
  SpanContextData remote;
  const SpanContextData* parent = nullptr;
  const LiveSpan* local = CurrentParent(base ? nb::handle(base) : nb::none(), remote, parent);
  o.name_ref = std::string_view(name_utf8, static_cast<size_t>(name_size));
  o.kind = kind;
  o.parent = parent;
  o.local_parent = local;
  h.state = s;  // from here on, the handle gives the state back
  SpanStarter::Start(tracer.owner->core, tracer.scope, std::move(o), s->live);
  s->tracer = &tracer;
  s->name = name;
  s->flags = static_cast<uint8_t>(flags & (kEndOnExit | kRecordException | kSetStatusOnException));
  g_deferred.push_back({nullptr, s, base, nullptr, PyThreadState_Get()});
  s->pushed = true;
  return true;
}

uint64_t g_hook_span_objects = 0;  // made so far, for tests that the hot paths make none

namespace {

PyObject* StateObject(HookSpanState& h) {
  if (h.obj) return Py_NewRef(h.obj);
  if (!h.tracer) return nullptr;
  ++g_hook_span_objects;
  try {
    nb::object obj = AllocSpan(*h.tracer, h.flags);
    PySpan* ps = nb::inst_ptr<PySpan>(obj);
    ps->span = std::move(h.live);
    ps->name = Py_NewRef(h.name);
    h.obj = obj.release().ptr();
  } catch (nb::python_error& e) {
    e.discard_as_unraisable("djtrace hook span");
    return nullptr;
  } catch (const std::exception&) {
    return nullptr;
  }
  for (DeferredEntry& e : g_deferred) {
    if (e.hook == &h) {
      e.span = Py_NewRef(h.obj);
      break;
    }
  }
  return Py_NewRef(h.obj);
}

}  // namespace

PyObject* HookSpanObject(HookSpan& h) { return h.state ? StateObject(*h.state) : nullptr; }

void HookSpanEnd(HookSpan& hook, PyObject* exc) {
  if (!hook.state) return;
  HookSpanState& h = *hook.state;
  PopHook(h);
  if (exc && !h.obj && (h.flags & (kRecordException | kSetStatusOnException)))
    Py_XDECREF(StateObject(h));  // the span object records the exception
  if (h.obj) {
    // Made while the call ran (or for its exception): the span object ends it, as before.
    try {
      SpanExit(h.obj, exc ? nb::handle(exc) : nb::none());
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("djtrace hook span end");
    } catch (const std::exception&) {
    }
    Py_CLEAR(h.obj);
    return;
  }
  if (h.tracer) EndLive(h.live, h.tracer->owner->end_may_block && h.live.is_recording());
}

void RenameSpan(PySpan& span, PyObject* name) {
  std::string n;
  if (!PyUnicode_Check(name) || !ToString(name, n)) return;
  if (!span.span.has_ended()) Py_XSETREF(span.name, Py_NewRef(name));
  span.span.UpdateName(std::move(n));  // after the end, only counted
}

nb::object SpanEnter(nb::handle self_h) {
  PySpan* fast = FastSpan(self_h.ptr());
  PySpan& self = fast ? *fast : nb::cast<PySpan&>(self_h);
  if ((self.flags & kAttachOnEnter) && !self.token) {
    if ((self.flags & kDeferAttach) && g_ctx.defer) {
      // None as the token marks a deferred entry (see "Deferred attach").
      if (PushDeferred(self_h.ptr())) {
        self.token = Py_NewRef(Py_None);
      } else {
        PyErr_Clear();  // tracing must not break the caller
      }
    } else {
      PyObject* token = Attach(self_h.ptr());
      if (!token) PyErr_Clear();  // tracing must not break the caller
      self.token = token;
    }
  }
  return nb::borrow(self_h);
}

void SpanExit(nb::handle self_h, nb::handle exc) {
  PySpan* fast = FastSpan(self_h.ptr());
  PySpan& self = fast ? *fast : nb::cast<PySpan&>(self_h);
  if (self.token) {
    PyObject* token = self.token;
    self.token = nullptr;
    if (token == Py_None) {
      PopDeferred(self_h.ptr());
    } else {
      Detach(token);
    }
    Py_DECREF(token);
  }
  if (!exc.is_none() && self.span.is_recording() && !self.span.has_ended() &&
      (self.flags & (kRecordException | kSetStatusOnException))) {
    // Rare path: the Python side formats the exception as the official SDK does.
    try {
      nb::borrow(self_h).attr("_on_exception")(exc, self.flags);
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("djtrace span __exit__");
    }
  }
  if (self.flags & kEndOnExit) EndSpan(self_h, self, nb::none());
}

// What tracer.start_as_current_span() returns: the span starts on __enter__, in the context
// current at that moment, as the official generator-based context manager does.
struct SpanScope {
  nb::object tracer_obj;
  nb::object name, context, attributes, links, start_time;
  int kind = 1;
  int flags = 0;
  nb::object span;
};

int Flags(bool attach, bool end_on_exit, bool record_exception, bool set_status) {
  return kKeepReadable | (attach ? kAttachOnEnter : 0) | (end_on_exit ? kEndOnExit : 0) |
         (record_exception ? kRecordException : 0) | (set_status ? kSetStatusOnException : 0);
}

// ----- calls into Python from native threads (see PythonCall)

std::atomic<int> g_python_calls{0};
std::atomic<bool> g_python_calls_closed{false};

PythonCall::PythonCall() noexcept {
  // Counted before the check, and ClosePythonCalls closes before it counts: whichever of the two
  // comes second sees the other.
  g_python_calls.fetch_add(1);
  entered_ = !g_python_calls_closed.load() && Py_IsInitialized() && !_Py_IsFinalizing();
  if (!entered_) g_python_calls.fetch_sub(1);
}

PythonCall::~PythonCall() {
  if (entered_) g_python_calls.fetch_sub(1);
}

// Called under the GIL. Returns whether every call under way ended within `timeout_s`; the GIL
// is released while waiting, so that they can finish.
bool ClosePythonCalls(double timeout_s) {
  g_python_calls_closed.store(true);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6));
  while (g_python_calls.load() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    nb::gil_scoped_release release;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace djtrace

using namespace djtrace;

NB_MODULE(_native, m) {
  m.doc() = "djtrace native core";
  // Objects still alive at exit are not leaks here: a server that called gc.freeze() (as
  // Gunicorn preload set-ups do) keeps spans and tracers to the end, and the report would be
  // printed on every worker exit.
  nb::set_leak_warnings(false);

  // ----- context glue
  m.def(
      "set_context_glue",
      [](nb::object var, nb::object context_type, nb::object span_key, nb::object attach,
         nb::object detach, nb::object set_span_in_context, nb::object get_current,
         nb::object misuse) {
        auto keep = [](nb::object o) -> PyObject* {
          if (o.is_none()) return nullptr;
          return o.release().ptr();  // kept for the life of the process
        };
        g_ctx.var = keep(var);
        g_ctx.context_type = keep(context_type);
        g_ctx.span_key = keep(span_key);
        g_ctx.attach = keep(attach);
        g_ctx.detach = keep(detach);
        g_ctx.set_span_in_context = keep(set_span_in_context);
        g_ctx.get_current = keep(get_current);
        g_ctx.misuse = keep(misuse);
      },
      nb::arg("var").none(), nb::arg("context_type").none(), nb::arg("span_key"), nb::arg("attach"),
      nb::arg("detach"), nb::arg("set_span_in_context"), nb::arg("get_current"),
      nb::arg("misuse").none());

  m.def(
      "enable_deferred_attach",
      [](nb::object default_context) {
        if (!g_ctx.var) throw nb::value_error("enable_deferred_attach: no context variable");
        if (!g_ctx.default_context && !default_context.is_none())
          g_ctx.default_context = default_context.release().ptr();  // kept for the process
        g_ctx.defer = true;
      },
      nb::arg("default_context").none(),
      "Lets native hooks make their spans current without setting the context variable; "
      "current_context() then answers for the runtime context.");
  m.def(
      "current_context",
      []() -> nb::object {
        nb::object ctx = CurrentContext();
        if (!ctx.is_none()) return ctx;
        PyObject* empty = NewContext(nullptr);
        if (!empty) throw nb::python_error();
        return nb::steal(empty);
      },
      "The current OpenTelemetry Context, the innermost deferred span included.");
  m.def("close_python_calls", &ClosePythonCalls, "timeout_s"_a,
        "At exit, after the providers' shutdown: native threads no longer call into Python; "
        "waits up to timeout_s for the calls under way. False when some did not end in time.");
  // A thread that was inside a call when the process forked does not exist in the child.
  pthread_atfork(nullptr, nullptr, [] { g_python_calls.store(0); });
  m.def("deferred_after_fork", [] { ForgetOtherThreadsDeferred(); },
        "In a forked child: drops the deferred spans of the threads that did not survive.");
  m.def(
      "hook_span_objects", [] { return g_hook_span_objects; },
      "Span objects made so far for hook spans, which start without one (HookSpan).");
  m.def("deferred_span_count", [] { return g_deferred.size(); },
        "Spans made current without the context variable and not exited yet (all threads).");

  // ----- resources and scopes
  nb::class_<Resource>(m, "NativeResource");
  m.def("make_resource", [](nb::handle attributes, const std::string& schema_url) {
    auto r = std::make_shared<Resource>();
    ToAttributes(attributes, r->attributes);
    r->schema_url = schema_url;
    return std::shared_ptr<const Resource>(std::move(r));
  });
  nb::class_<InstrumentationScope>(m, "NativeScope");
  m.def("make_scope", [](const std::string& name, const std::string& version,
                         const std::string& schema_url, nb::handle attributes) {
    auto s = std::make_shared<InstrumentationScope>();
    s->name = name;
    s->version = version;
    s->schema_url = schema_url;
    ToAttributes(attributes, s->attributes);
    return std::shared_ptr<const InstrumentationScope>(std::move(s));
  });

  // ----- samplers
  nb::class_<Sampler>(m, "NativeSampler")
      .def("description", &Sampler::Description)
      .def("should_sample", [](const Sampler& s, nb::handle trace_id, bool parent_valid,
                               bool parent_remote, bool parent_sampled) {
        TraceId id{};
        if (!IntToId(trace_id, id.data(), 16)) throw nb::value_error("bad trace id");
        ParentInfo p{parent_valid, parent_remote, parent_sampled};
        return static_cast<int>(s.ShouldSample(p, id));
      });
  m.def("sampler_from_name", [](const std::string& name, const std::string& arg) {
    std::string error;
    auto s = MakeSampler(name, arg, &error);
    if (!s) throw nb::value_error(error.c_str());
    return std::const_pointer_cast<Sampler>(s);
  });
  m.def("always_on_sampler", [] { return std::shared_ptr<Sampler>(new AlwaysOnSampler()); });
  m.def("always_off_sampler", [] { return std::shared_ptr<Sampler>(new AlwaysOffSampler()); });
  m.def("ratio_sampler", [](double ratio) {
    if (!(ratio >= 0.0 && ratio <= 1.0))
      throw nb::value_error("Probability must be in range [0.0, 1.0].");
    return std::shared_ptr<Sampler>(new TraceIdRatioBasedSampler(ratio));
  });
  m.def(
      "parent_based_sampler",
      [](std::shared_ptr<Sampler> root, std::shared_ptr<Sampler> rs, std::shared_ptr<Sampler> rns,
         std::shared_ptr<Sampler> ls, std::shared_ptr<Sampler> lns) {
        return std::shared_ptr<Sampler>(new ParentBasedSampler(root, rs, rns, ls, lns));
      },
      "root"_a, "remote_parent_sampled"_a.none() = nb::none(),
      "remote_parent_not_sampled"_a.none() = nb::none(),
      "local_parent_sampled"_a.none() = nb::none(),
      "local_parent_not_sampled"_a.none() = nb::none());

  // ----- exporters
  nb::class_<SpanExporter>(m, "NativeExporter").def("shutdown", [](SpanExporter& e) {
    nb::gil_scoped_release release;
    e.Shutdown();
  });
  nb::class_<InMemoryExporter, SpanExporter>(m, "InMemoryExporter")
      .def(nb::init<>())
      .def("take",
           [](InMemoryExporter& e) {
             nb::list out;
             for (const auto& s : e.Take()) out.append(SpanToDict(s));
             return out;
           })
      .def("snapshot",
           [](InMemoryExporter& e) {
             nb::list out;
             for (const auto& s : e.Snapshot()) out.append(SpanToDict(s));
             return out;
           })
      .def("clear", &InMemoryExporter::Clear);
  m.def(
      "callback_exporter",
      [](nb::object export_fn, nb::object shutdown_fn) {
        // The callables run on the batch worker thread: take the GIL only around the call.
        auto keep_export = std::make_shared<nb::object>(std::move(export_fn));
        auto keep_shutdown = std::make_shared<nb::object>(std::move(shutdown_fn));
        auto exp = std::make_shared<CallbackExporter>(
            [keep_export](std::span<const SpanData* const> spans) {
              PythonCall call;
              if (!call.entered()) return ExportResult::kFailure;
              nb::gil_scoped_acquire gil;
              try {
                nb::list batch;
                for (const SpanData* s : spans) batch.append(SpanToDict(*s));
                nb::object r = (*keep_export)(batch);
                return nb::cast<bool>(r) ? ExportResult::kSuccess : ExportResult::kFailure;
              } catch (nb::python_error& e) {
                e.restore();
                PyErr_WriteUnraisable(nullptr);
                return ExportResult::kFailure;
              }
            },
            [keep_shutdown] {
              PythonCall call;
              if (!call.entered()) return;
              nb::gil_scoped_acquire gil;
              try {
                if (!keep_shutdown->is_none()) (*keep_shutdown)();
              } catch (nb::python_error& e) {
                e.discard_as_unraisable("djtrace exporter shutdown");
              }
            });
        return std::shared_ptr<SpanExporter>(exp);
      },
      "export_fn"_a, "shutdown_fn"_a.none());

  nb::class_<ConsoleExporter, SpanExporter>(m, "ConsoleExporter")
      .def(
          "__init__",
          [](ConsoleExporter* self, nb::object out, bool verbose, bool color) {
            ConsoleOptions o;
            o.verbose = verbose;
            o.color = color;
            ConsoleExporter::WriteFn write;
            if (PyLong_Check(out.ptr())) {
              write = ConsoleExporter::FdWriter(nb::cast<int>(out));
            } else {
              // A Python stream (no file descriptor): write under the GIL.
              auto keep = std::make_shared<nb::object>(std::move(out));
              write = [keep](const std::string& text) {
                PythonCall call;
                if (!call.entered()) return;
                nb::gil_scoped_acquire gil;
                try {
                  keep->attr("write")(nb::str(text.data(), text.size()));
                  keep->attr("flush")();
                } catch (nb::python_error& e) {
                  e.discard_as_unraisable("djtrace console exporter");
                }
              };
            }
            new (self) ConsoleExporter(std::move(write), o);
          },
          "out"_a, "verbose"_a = false, "color"_a = false);
  nb::class_<OtlpJsonFileExporter, SpanExporter>(m, "OtlpJsonFileExporter")
      .def(nb::init<std::string>(), "path"_a)
      .def_prop_ro("path", &OtlpJsonFileExporter::path);

  // OTLP exporters. `log` is called from the export worker thread with (level, message); it
  // runs under the GIL, taken only for that call.
  auto make_otlp = [](bool grpc, const std::string& endpoint, nb::handle headers,
                      const std::string& compression, double timeout_s,
                      const std::string& certificate_file, const std::string& client_key_file,
                      const std::string& client_certificate_file, bool insecure,
                      nb::object log) -> std::shared_ptr<SpanExporter> {
    OtlpExporterOptions o;
    o.endpoint = endpoint;
    if (!headers.is_none()) {
      for (nb::handle item : headers) {
        o.headers.emplace_back(nb::cast<std::string>(item[0]), nb::cast<std::string>(item[1]));
      }
    }
    if (!ParseOtlpCompression(compression, o.compression))
      throw nb::value_error(("unsupported OTLP compression '" + compression + "'").c_str());
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    o.certificate_file = certificate_file;
    o.client_key_file = client_key_file;
    o.client_certificate_file = client_certificate_file;
    o.insecure = insecure;
    o.user_agent = "djtrace-otlp-exporter/" DJTRACE_VERSION;
    if (!log.is_none()) {
      auto keep = std::make_shared<nb::object>(std::move(log));
      o.log = [keep](int level, std::string_view message) {
        PythonCall call;
        if (!call.entered()) return;
        nb::gil_scoped_acquire gil;
        try {
          (*keep)(level, nb::str(message.data(), message.size()));
        } catch (nb::python_error& e) {
          e.discard_as_unraisable("djtrace exporter log");
        }
      };
    }
    std::string error;
    std::shared_ptr<SpanExporter> exporter;
    if (grpc) {
      exporter = OtlpGrpcExporter::Create(std::move(o), error);
    } else {
      exporter = OtlpHttpExporter::Create(std::move(o), error);
    }
    if (!exporter) throw nb::value_error(error.c_str());
    return exporter;
  };
  m.def(
      "otlp_exporter",
      [make_otlp](bool grpc, const std::string& endpoint, nb::handle headers,
                  const std::string& compression, double timeout_s,
                  const std::string& certificate_file, const std::string& client_key_file,
                  const std::string& client_certificate_file, bool insecure, nb::object log) {
        return make_otlp(grpc, endpoint, headers, compression, timeout_s, certificate_file,
                         client_key_file, client_certificate_file, insecure, std::move(log));
      },
      "grpc"_a, "endpoint"_a, "headers"_a.none(), "compression"_a, "timeout_s"_a,
      "certificate_file"_a, "client_key_file"_a, "client_certificate_file"_a, "insecure"_a,
      "log"_a.none());
  m.def("otlp_exporter_stats", [](std::shared_ptr<SpanExporter> e) -> nb::object {
    auto* otlp = dynamic_cast<OtlpExporterBase*>(e.get());
    if (!otlp) return nb::none();
    OtlpExporterStats s = otlp->stats();
    nb::dict d;
    d["batches_exported"] = s.batches_exported;
    d["spans_exported"] = s.spans_exported;
    d["batches_failed"] = s.batches_failed;
    d["spans_failed"] = s.spans_failed;
    d["retries"] = s.retries;
    d["spans_rejected"] = s.spans_rejected;
    d["connections"] = s.connections;
    d["last_error"] = s.last_error;
    return d;
  });

  // ----- processors
  nb::class_<SpanProcessor>(m, "NativeProcessor")
      .def(
          "force_flush",
          [](SpanProcessor& p, int64_t timeout_ms) {
            return p.ForceFlush(std::chrono::milliseconds(timeout_ms));
          },
          "timeout_ms"_a, nb::call_guard<nb::gil_scoped_release>())
      .def(
          "shutdown",
          [](SpanProcessor& p, int64_t timeout_ms) {
            return p.Shutdown(std::chrono::milliseconds(timeout_ms));
          },
          "timeout_ms"_a, nb::call_guard<nb::gil_scoped_release>());
  nb::class_<SimpleSpanProcessor, SpanProcessor>(m, "SimpleProcessor")
      .def("__init__", [](SimpleSpanProcessor* self, std::shared_ptr<SpanExporter> exporter,
                          int64_t export_timeout_ms) {
        new (self) SimpleSpanProcessor(std::move(exporter), {},
                                       std::chrono::milliseconds(export_timeout_ms));
      });
  nb::class_<BatchSpanProcessor, SpanProcessor>(m, "BatchProcessor")
      .def("__init__",
           [](BatchSpanProcessor* self, std::shared_ptr<SpanExporter> exporter,
              uint32_t max_queue_size, int64_t schedule_delay_ms, uint32_t max_export_batch_size,
              int64_t export_timeout_ms) {
             BatchOptions o;
             o.max_queue_size = max_queue_size;
             o.schedule_delay = std::chrono::milliseconds(schedule_delay_ms);
             o.max_export_batch_size = max_export_batch_size;
             o.export_timeout = std::chrono::milliseconds(export_timeout_ms);
             new (self) BatchSpanProcessor(std::move(exporter), o);
           })
      .def("stats", [](const BatchSpanProcessor& p) {
        BatchStats s = p.Stats();
        nb::dict d;
        d["spans_queued"] = s.spans_queued;
        d["spans_dropped"] = s.spans_dropped;
        d["spans_exported"] = s.spans_exported;
        d["spans_failed"] = s.spans_failed;
        d["batches_exported"] = s.batches_exported;
        d["batches_failed"] = s.batches_failed;
        d["queue_length"] = s.queue_length;
        return d;
      });

  // ----- the tracer core
  nb::class_<PyTracerCore>(m, "TracerCore")
      .def("__init__",
           [](PyTracerCore* self, std::shared_ptr<Sampler> sampler,
              std::shared_ptr<const Resource> resource, nb::tuple limits) {
             SpanLimits l;
             auto get = [&](size_t i, uint32_t& field) {
               if (i < limits.size() && !limits[i].is_none()) field = nb::cast<uint32_t>(limits[i]);
             };
             get(0, l.max_attributes);
             get(1, l.max_span_attribute_length);
             get(2, l.max_events);
             get(3, l.max_links);
             get(4, l.max_event_attributes);
             get(5, l.max_link_attributes);
             get(6, l.max_attribute_length);
             new (self) PyTracerCore();
             self->core = std::make_shared<TracerCore>(std::move(sampler), std::move(resource), l);
           })
      .def("add_processor",
           [](PyTracerCore& self, std::shared_ptr<SpanProcessor> p, bool blocks_on_end) {
             self.core->AddProcessor(std::move(p));
             self.end_may_block = self.end_may_block || blocks_on_end;
           })
      .def(
          "set_python_hooks",
          [](PyTracerCore& self, nb::object start_span, nb::object start_current,
             nb::object end_hook) {
            self.py_start_span = start_span.is_none() ? nb::object() : start_span;
            self.py_start_current = start_current.is_none() ? nb::object() : start_current;
            self.py_end_hook = end_hook.is_none() ? nb::object() : end_hook;
          },
          "start_span"_a.none(), "start_current"_a.none(), "end_hook"_a.none())
      .def(
          "force_flush",
          [](PyTracerCore& self, int64_t timeout_ms) {
            return self.core->ForceFlush(std::chrono::milliseconds(timeout_ms));
          },
          nb::call_guard<nb::gil_scoped_release>())
      .def(
          "shutdown",
          [](PyTracerCore& self, int64_t timeout_ms) {
            return self.core->Shutdown(std::chrono::milliseconds(timeout_ms));
          },
          nb::call_guard<nb::gil_scoped_release>())
      .def(
          "set_exiting", [](PyTracerCore& self, bool on) { self.core->SetExiting(on); }, "on"_a)
      .def("is_shutdown", [](PyTracerCore& self) { return self.core->is_shutdown(); })
      .def("counters", [](PyTracerCore& self) {
        auto& c = self.core->counters();
        nb::dict d;
        d["spans_started"] = c.spans_started.load();
        d["spans_sampled_out"] = c.spans_sampled_out.load();
        d["spans_ended_twice"] = c.spans_ended_twice.load();
        d["calls_after_end"] = c.calls_after_end.load();
        return d;
      });

  m.def("set_span_kinds", [](nb::handle internal, nb::handle server, nb::handle client,
                             nb::handle producer, nb::handle consumer) {
    nb::handle kinds[5] = {internal, server, client, producer, consumer};
    for (int i = 0; i < 5; ++i) g_span_kinds[i] = nb::borrow(kinds[i]).release().ptr();
  });

  nb::class_<NativeTracer>(m, "Tracer")
      .def(
          "__init__",
          [](NativeTracer* self, nb::object owner, const std::string& name,
             const std::string& version, const std::string& schema_url, nb::handle attributes,
             nb::object py_scope) {
            new (self) NativeTracer();
            self->owner = &nb::cast<PyTracerCore&>(owner);
            self->owner_obj = std::move(owner);
            auto scope = std::make_shared<InstrumentationScope>();
            scope->name = name;
            scope->version = version;
            scope->schema_url = schema_url;
            ToAttributes(attributes, scope->attributes);
            self->scope = std::move(scope);
            self->py_scope = std::move(py_scope);
          },
          "core"_a, "name"_a, "version"_a, "schema_url"_a, "attributes"_a.none(),
          "py_scope"_a.none())
      .def_prop_ro("instrumentation_scope", [](NativeTracer& t) { return t.py_scope; })
      .def(
          "start_span",
          [](nb::handle self_h, nb::handle name, nb::handle context, nb::handle kind,
             nb::handle attributes, nb::handle links, nb::handle start_time, bool record_exception,
             bool set_status_on_exception) -> nb::object {
            NativeTracer& t = nb::cast<NativeTracer&>(self_h);
            if (t.owner->py_start_span.is_valid())
              return t.owner->py_start_span(self_h, name, context, kind, attributes, links,
                                            start_time, record_exception, set_status_on_exception);
            nb::object parent = SpanInContext(context);
            return NewSpan(t, name, KindToOtlp(kind), parent, attributes, links, start_time,
                           Flags(false, true, record_exception, set_status_on_exception),
                           StartOptions());
          },
          "name"_a.none(), "context"_a.none() = nb::none(), "kind"_a.none() = nb::none(),
          "attributes"_a.none() = nb::none(), "links"_a.none() = nb::none(),
          "start_time"_a.none() = nb::none(), "record_exception"_a = true,
          "set_status_on_exception"_a = true)
      .def(
          "start_as_current_span",
          [](nb::handle self_h, nb::handle name, nb::handle context, nb::handle kind,
             nb::handle attributes, nb::handle links, nb::handle start_time, bool record_exception,
             bool set_status_on_exception, bool end_on_exit) -> nb::object {
            NativeTracer& t = nb::cast<NativeTracer&>(self_h);
            if (t.owner->py_start_current.is_valid())
              return t.owner->py_start_current(self_h, name, context, kind, attributes, links,
                                               start_time, record_exception,
                                               set_status_on_exception, end_on_exit);
            nb::object obj = nb::inst_alloc(nb::type<SpanScope>());
            SpanScope* s = nb::inst_ptr<SpanScope>(obj);
            new (s) SpanScope();
            nb::inst_mark_ready(obj);
            s->tracer_obj = nb::borrow(self_h);
            s->name = nb::borrow(name);
            s->context = nb::borrow(context);
            s->kind = KindToOtlp(kind);
            s->attributes = nb::borrow(attributes);
            s->links = nb::borrow(links);
            s->start_time = nb::borrow(start_time);
            s->flags = Flags(true, end_on_exit, record_exception, set_status_on_exception);
            return obj;
          },
          "name"_a.none(), "context"_a.none() = nb::none(), "kind"_a.none() = nb::none(),
          "attributes"_a.none() = nb::none(), "links"_a.none() = nb::none(),
          "start_time"_a.none() = nb::none(), "record_exception"_a = true,
          "set_status_on_exception"_a = true, "end_on_exit"_a = true)
      // A span whose sampling decision was taken by a sampler written in Python.
      .def(
          "_start_span_decided",
          [](NativeTracer& t, nb::handle name, nb::handle parent, int kind, nb::handle attributes,
             nb::handle links, nb::handle start_time, int flags, nb::handle trace_id, int decision,
             nb::handle trace_state) {
            StartOptions o;
            o.decision = static_cast<SamplingDecision>(decision);
            if (PyUnicode_Check(trace_state.ptr()))
              o.has_trace_state_override = ToString(trace_state.ptr(), o.trace_state_override);
            TraceId id{};
            if (IntToId(trace_id, id.data(), 16) && !IsZero(id)) o.trace_id = id;
            return NewSpan(t, name, kind, parent, attributes, links, start_time, flags,
                           std::move(o));
          },
          "name"_a.none(), "parent"_a.none(), "kind"_a, "attributes"_a.none(), "links"_a.none(),
          "start_time"_a.none(), "flags"_a, "trace_id"_a.none(), "decision"_a,
          "trace_state"_a.none())
      .def(
          "_start_span_native",
          [](NativeTracer& t, nb::handle name, nb::handle parent, int kind, nb::handle attributes,
             nb::handle links, nb::handle start_time, int flags) {
            return NewSpan(t, name, kind, parent, attributes, links, start_time, flags,
                           StartOptions());
          },
          "name"_a.none(), "parent"_a.none(), "kind"_a, "attributes"_a.none(), "links"_a.none(),
          "start_time"_a.none(), "flags"_a);

  // Pooled: a dead span object is kept for the next span, which skips the allocation and
  // nanobind's instance-map insert and erase (a random access into a large table) per span.
  nb::class_<PySpan>(m, "Span", nb::pooled(256))
      .def(
          "set_attribute",
          [](PySpan& self, nb::handle key, nb::handle value) {
            SetAttributeFromPython(self, key.ptr(), value.ptr());
          },
          "key"_a.none(), "value"_a.none())
      .def(
          "set_attributes",
          [](PySpan& self, nb::handle attributes) {
            if (!self.span.is_recording()) return;
            Attributes attrs;
            ToAttributes(attributes, attrs);
            for (auto& a : attrs) self.span.SetAttribute(a.key, std::move(a.value));
          },
          "attributes"_a.none())
      .def(
          "add_event",
          [](PySpan& self, nb::handle name, nb::handle attributes, nb::handle timestamp) {
            if (!self.span.is_recording()) {
              if (self.span.has_ended()) ReportMisuse(self, "add_event");
              return;
            }
            std::string n;
            if (!PyUnicode_Check(name.ptr()) || !ToString(name.ptr(), n)) return;
            Attributes attrs;
            ToAttributes(attributes, attrs);
            self.span.AddEvent(std::move(n), ToTime(timestamp), std::move(attrs));
          },
          "name"_a.none(), "attributes"_a.none() = nb::none(), "timestamp"_a.none() = nb::none())
      .def(
          "add_link",
          [](PySpan& self, nb::handle context, nb::handle attributes) {
            if (!self.span.is_recording() || context.is_none()) return;
            SpanContextData c;
            if (!(PyTuple_CheckExact(context.ptr()) ? ContextFromTuple(context, c)
                                                    : SpanContextFromPy(context, c)))
              return;
            Attributes attrs;
            ToAttributes(attributes, attrs);
            self.span.AddLink(c, std::move(attrs));
          },
          "context"_a.none(), "attributes"_a.none() = nb::none())
      .def(
          "update_name",
          [](PySpan& self, nb::handle name) { RenameSpan(self, name.ptr()); },
          "name"_a.none())
      .def(
          "_set_status",
          [](PySpan& self, int code, nb::handle description) {
            std::string d;
            if (PyUnicode_Check(description.ptr())) ToString(description.ptr(), d);
            self.span.SetStatus(static_cast<StatusCode>(code), d);
          },
          "code"_a, "description"_a.none())
      .def(
          "end",
          [](nb::handle self_h, nb::handle end_time) {
            EndSpan(self_h, nb::cast<PySpan&>(self_h), end_time);
          },
          "end_time"_a.none() = nb::none())
      .def(
          "_mark_ended",
          [](PySpan& self, nb::handle end_time) { return self.span.MarkEnded(ToTime(end_time)); },
          "end_time"_a.none() = nb::none())
      .def("_submit",
           [](PySpan& self) {
             KeepReadable(self);
             SubmitEnded(self, self.owner && self.owner->end_may_block);
           })
      .def("is_recording",
           [](PySpan& self) { return self.span.is_recording() && !self.span.has_ended(); })
      .def_prop_ro("_ended", [](PySpan& self) { return self.span.has_ended(); })
      .def_prop_ro("_name",
                   [](PySpan& self) -> nb::object {
                     return self.name ? nb::borrow(self.name) : nb::none();
                   })
      .def("_context_tuple", [](PySpan& self) { return ContextTuple(self.span.context()); })
      .def("_parent_span_id",
           [](PySpan& self) -> nb::object {
             const SpanId& p = self.span.parent_span_id();
             return IsZero(p) ? nb::object(nb::none()) : IdToInt(p.data(), 8);
           })
      .def("_data",
           [](PySpan& self) -> nb::object {
             const SpanData* d = self.span.data();
             if (!d) d = self.ended.get();
             if (!d) return nb::none();
             return SpanToDict(*d);
           })
      .def_prop_rw(
          "_context_cache",
          [](PySpan& self) -> nb::object {
            return self.context_cache ? nb::borrow(self.context_cache) : nb::none();
          },
          [](PySpan& self, nb::handle v) {
            Py_XDECREF(self.context_cache);
            self.context_cache = v.is_none() ? nullptr : nb::borrow(v).release().ptr();
          },
          nb::arg("value").none())
      .def("__enter__", [](nb::handle self_h) { return SpanEnter(self_h); })
      .def(
          "__exit__",
          [](nb::handle self_h, nb::handle, nb::handle exc, nb::handle) {
            SpanExit(self_h, exc);
            return false;
          },
          "exc_type"_a.none(), "exc"_a.none(), "tb"_a.none());

  nb::class_<SpanScope>(m, "SpanScope")
      .def("__enter__",
           [](SpanScope& self) {
             if (!self.span.is_valid()) {
               nb::object parent = SpanInContext(self.context);
               self.span = NewSpan(nb::cast<NativeTracer&>(self.tracer_obj), self.name, self.kind,
                                   parent, self.attributes, self.links, self.start_time, self.flags,
                                   StartOptions());
             }
             return SpanEnter(self.span);
           })
      .def(
          "__exit__",
          [](SpanScope& self, nb::handle, nb::handle exc, nb::handle) {
            if (self.span.is_valid()) SpanExit(self.span, exc);
            return false;
          },
          "exc_type"_a.none(), "exc"_a.none(), "tb"_a.none())
      .def("_recreate", [](SpanScope& self) {
        nb::object obj = nb::inst_alloc(nb::type<SpanScope>());
        SpanScope* copy = nb::inst_ptr<SpanScope>(obj);
        new (copy) SpanScope(self);
        copy->span = nb::object();
        nb::inst_mark_ready(obj);
        return obj;
      });

  m.def(
      "current_span", [](nb::handle context) { return SpanInContext(context); },
      "context"_a.none() = nb::none());

  // ----- ids and W3C helpers
  m.def("new_trace_id", [] {
    TraceId id = NewTraceId();
    return IdToInt(id.data(), 16);
  });
  m.def("new_span_id", [] {
    SpanId id = NewSpanId();
    return IdToInt(id.data(), 8);
  });
  m.def("parse_traceparent", [](std::string_view header) -> nb::object {
    Traceparent tp;
    if (!ParseTraceparent(header, tp)) return nb::none();
    return nb::make_tuple(IdToInt(tp.trace_id.data(), 16), IdToInt(tp.span_id.data(), 8), tp.flags);
  });
  m.def("normalize_tracestate", [](std::string_view header) -> nb::object {
    std::string out;
    if (!NormalizeTracestate(header, out)) return nb::none();
    return nb::str(out.c_str());
  });

  // Bindings of the other native areas (python/*_bindings.cc) register themselves.
  g_span_type = reinterpret_cast<PyTypeObject*>(nb::type<PySpan>().ptr());
  g_tracer_type = reinterpret_cast<PyTypeObject*>(nb::type<NativeTracer>().ptr());
  for (BindFn bind : Binders()) bind(m);
}
