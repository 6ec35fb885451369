// Shared by the binding files of djtrace._native: the Python-facing span and tracer objects and
// the type conversions. Only conversions and glue live here; no tracing logic.
#pragma once

#include <Python.h>
#include <nanobind/nanobind.h>

#include <memory>
#include <string>
#include <vector>

#include "trace/span_data.h"
#include "trace/tracer.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace djtrace {

// The OpenTelemetry context variable, set up once from Python (djtrace.sdk._context).
struct ContextGlue {
  PyObject* var = nullptr;           // ContextVarsRuntimeContext._current_context
  PyObject* context_type = nullptr;  // opentelemetry.context.context.Context
  PyObject* span_key = nullptr;      // opentelemetry.trace.propagation._SPAN_KEY
  PyObject* attach = nullptr;        // fallbacks when another runtime context is configured
  PyObject* detach = nullptr;
  PyObject* set_span_in_context = nullptr;
  PyObject* get_current = nullptr;
  PyObject* misuse = nullptr;  // called with (what) for a call on an ended span
  // The variable's default, which every thread that never set it sees (see DeferredEntry).
  PyObject* default_context = nullptr;
  // Spans entered with kDeferAttach leave the variable alone: the runtime context the API reads
  // (djtrace.sdk._context) finds them. False until that runtime context is installed.
  bool defer = false;
};
extern ContextGlue g_ctx;

enum SpanFlags : uint8_t {
  kAttachOnEnter = 1,
  kEndOnExit = 2,
  kRecordException = 4,
  kSetStatusOnException = 8,
  // With kAttachOnEnter: made current without setting the context variable (ext.cc, "Deferred
  // attach"). Only for spans entered and exited by native code around one call, on one thread.
  kDeferAttach = 16,
  // Spans the application starts through the API: at the end, the span object keeps a copy of
  // what it recorded, which the read API (attributes, events, status, times) then returns, as
  // the official SDK's span does. Not set on the spans djtrace's hooks start: nobody reads those
  // after their end, and every request would pay for the copy.
  kKeepReadable = 32,
};

// One per tracer provider. The Python hooks are set only when the provider has a sampler or
// span processors written in Python; spans then take the (slower) Python path.
struct PyTracerCore {
  std::shared_ptr<TracerCore> core;
  bool end_may_block = false;   // a simple processor exports on the ending thread
  nb::object py_start_span;     // (tracer, name, context, kind, attributes, links, start_time,
                                //  record_exception, set_status_on_exception) -> span
  nb::object py_start_current;  // same plus end_on_exit -> context manager
  nb::object py_end_hook;       // (span, end_time) -> None, replaces the native end
};

struct PySpan {
  LiveSpan span;
  PyTracerCore* owner = nullptr;
  PyObject* owner_ref = nullptr;      // owned: keeps `owner` alive
  PyObject* token = nullptr;          // owned; set while entered as the current span
  PyObject* context_cache = nullptr;  // owned; the SpanContext built on first request
  // Owned: the name as a str (set by NewSpan, changed only by RenameSpan), so that `span.name`
  // still reads after the span's data has gone to export (as the official SDK's span does).
  PyObject* name = nullptr;
  std::unique_ptr<SpanData> ended;  // kKeepReadable: the span's data as it ended
  uint8_t flags = 0;

  PySpan() = default;
  ~PySpan() {
    Py_XDECREF(name);
    Py_XDECREF(token);
    Py_XDECREF(context_cache);
    Py_XDECREF(owner_ref);
  }
};

struct NativeTracer {
  nb::object owner_obj;  // the TracerCore Python object
  PyTracerCore* owner = nullptr;
  std::shared_ptr<const InstrumentationScope> scope;
  nb::object py_scope;  // the Python InstrumentationScope, for the read API
};

// The Python types of PySpan and NativeTracer (set when the module is made), so that the hot
// paths check an object's type by pointer rather than through nanobind's type map.
extern PyTypeObject* g_span_type;
extern PyTypeObject* g_tracer_type;

inline bool IsInstance(PyObject* o, PyTypeObject* type) {
  return type && (Py_TYPE(o) == type || PyType_IsSubtype(Py_TYPE(o), type));
}
// `o` as our span or tracer, or null when it is something else.
inline PySpan* FastSpan(PyObject* o) {
  return IsInstance(o, g_span_type) ? nb::inst_ptr<PySpan>(nb::handle(o)) : nullptr;
}
// getattr(obj, name, None) without raising, as a new reference (null when absent or failed).
inline PyObject* OptionalAttr(PyObject* obj, PyObject* name) {
  PyObject* value = nullptr;
#if PY_VERSION_HEX >= 0x030D0000
  if (PyObject_GetOptionalAttr(obj, name, &value) < 0) PyErr_Clear();
#else
  if (_PyObject_LookupAttr(obj, name, &value) < 0) PyErr_Clear();
#endif
  return value;
}

// getattr(module, name) for a module's own global, read from its dict: no lookup on the
// module type first. CPython's method cache (4,096 entries, indexed by addresses) is shared
// with the application, and each lookup djtrace makes on the hot path can evict one of its
// entries. Anything that is not a plain module, or a name it lacks, goes through getattr.
inline PyObject* ModuleGlobal(PyObject* module, PyObject* name) {
  if (PyModule_CheckExact(module)) {
    PyObject* dict = PyModule_GetDict(module);  // borrowed, never null for a module
    PyObject* value = PyDict_GetItemWithError(dict, name);
    if (value) return Py_NewRef(value);
    if (PyErr_Occurred()) return nullptr;
  }
  return PyObject_GetAttr(module, name);
}

inline NativeTracer* FastTracer(PyObject* o) {
  return IsInstance(o, g_tracer_type) ? nb::inst_ptr<NativeTracer>(nb::handle(o)) : nullptr;
}

// Conversions (definitions in ext.cc).
nb::object IdToInt(const uint8_t* bytes, size_t n);
bool IntToId(nb::handle h, uint8_t* out, size_t n);
bool ToString(PyObject* o, std::string& out);
bool ToAttrValue(PyObject* o, AttrValue& out);
void ToAttributes(nb::handle mapping, Attributes& out);
nb::object FromAttrValue(const AttrValue& v);
nb::dict FromAttributes(const Attributes& attrs);
nb::dict SpanToDict(const SpanData& s);
uint64_t ToTime(nb::handle t);
// The span stored in `context` (the current context when None), or None.
nb::object SpanInContext(nb::handle context);
// The context of `parent` (one of our spans, a context tuple, or anything with
// get_span_context()) into `out`; false when there is none or it is invalid.
bool ParentContext(nb::handle parent, SpanContextData& out);
// `parent` (as ParentContext takes it) as the parent in `o`, its context copied into `ctx`
// (which must outlive `o`'s use), and as the local parent when it is one of our spans.
void SetParent(nb::handle parent, SpanContextData& ctx, StartOptions& o);
// The OpenTelemetry context variable's value (None when unset): the current context but for the
// span, which may be a deferred one (use SpanInContext for that). Never builds a Context.
nb::object RawCurrentContext();
// The current span, given the variable's value `raw` (RawCurrentContext's): a deferred span
// entered on it, else the span stored in it, else None.
nb::object SpanInRawContext(nb::handle raw);
// Starts a span as tracer.start_span does; `parent` is a span object or None.
nb::object NewSpan(NativeTracer& tracer, nb::handle name, int kind, nb::handle parent,
                   nb::handle attributes, nb::handle links, nb::handle start_time, int flags,
                   StartOptions&& o);
// Makes a span object current (its token kept on the span) and undoes it: span.__enter__ and
// span.__exit__ (which also records `exc`, not None, as the span's flags say, and ends the
// span when it was started to end on exit).
nb::object SpanEnter(nb::handle self_h);
void SpanExit(nb::handle self_h, nb::handle exc);
// span.update_name: renames the span unless it has ended, keeping PySpan::name in step.
// Anything but a str is ignored.
void RenameSpan(PySpan& span, PyObject* name);
// Makes current a copy of the current OpenTelemetry context with `key` (when not null) set to
// `value` and, as its span, a new root span that is valid, not sampled and records nothing.
// Needs the context variable (g_ctx.var). Returns the token for Detach, or null with a Python
// error set.
PyObject* AttachUnsampledRoot(NativeTracer& tracer, PyObject* key, PyObject* value);
// Undoes an attach of the OpenTelemetry context (a token of its context variable, or of the
// runtime context's attach when another one is configured); errors are cleared.
void Detach(PyObject* token);
// Reports a call on an ended span (debug log and counter, on the Python side).
void ReportMisuse(PySpan& span, const char* what);
// Ends a span as span.end() does (Python hooks included).
void EndSpan(nb::handle self_h, PySpan& self, nb::handle end_time);
// Ends a native span, with the GIL released around it when `may_block` (a simple processor
// exports on the ending thread).
void EndLive(LiveSpan& span, bool may_block);

struct HookSpanState;  // the span itself: pooled, on the heap (ext.cc)

// A span a native hook starts around one call and makes current the deferred way (see
// "Deferred attach" in ext.cc) without a Python object: the object is made only when something
// asks for the current span while the call runs (the API's get_current_span, a span the
// application starts, a Context built from the current one) or when the call raises. The
// handle lives on the hook's stack, between HookSpanBegin and HookSpanEnd; the span itself is
// kept on the heap, since the deferred list points at it and code on another thread, or in
// another greenlet of this one (greenlet swaps C stacks in place), may read it while the hook
// waits.
class HookSpan {
 public:
  HookSpan() = default;
  HookSpan(const HookSpan&) = delete;
  HookSpan& operator=(const HookSpan&) = delete;
  ~HookSpan();  // pops the span if still pushed, releases its object, returns it to the pool

  bool started() const { return state != nullptr; }
  LiveSpan& span();  // once started

  HookSpanState* state = nullptr;  // set by HookSpanBegin when it starts the span
};

// Starts `h` as a span `name` (a str) of `kind` in the current context, with `o`'s attributes,
// and makes it current the deferred way. False when deferred attach is off or `name` is not a
// str: the caller then makes the span the usual way (no Python error is left set).
bool HookSpanBegin(HookSpan& h, NativeTracer& tracer, PyObject* name, SpanKind kind, int flags,
                   StartOptions&& o);
// The span object of `h` (made on first request), as a new reference; null with no error set
// when it cannot be made.
PyObject* HookSpanObject(HookSpan& h);
// Makes `h` no longer current, records `exc` (a normalized exception, or null) as its flags say,
// and ends it.
void HookSpanEnd(HookSpan& h, PyObject* exc);
// The current span as a parent, given the context variable's value `raw` (RawCurrentContext's;
// may be None), without making a deferred hook span's object. Returns the span when it is one of
// ours (null otherwise) and points `parent` at its context, or at another kind of span's context
// copied into `remote`; `parent` is null when there is no valid one.
LiveSpan* CurrentParent(nb::handle raw, SpanContextData& remote, const SpanContextData*& parent);

// Fields of a djtrace.integrations.django.handlers.RequestSpan, read in place (its __slots__,
// by offset; request_bindings.cc). Borrowed; null when `rs` is not a RequestSpan or the field
// is unset.
enum class RequestField { kTracer, kRecording, kTraceMiddleware, kTraceViews };
PyObject* RequestSpanField(PyObject* rs, RequestField field);

// The Django integration's settings object (settings._current, or settings.get() before it is
// cached) and its tracer (_state._tracer, or _state.tracer() before it is cached): new
// references, or null with an exception set (call_bindings.cc).
PyObject* DjangoSettings(PyObject* settings_module);
PyObject* CachedTracer(PyObject* holder, PyObject* get_tracer);

// A native function that binds like a Python function when stored on a class (a method
// descriptor calling `fn` with the instance first), with `wrapped` as __wrapped__; a new
// reference, or null with an exception set (request_bindings.cc). `NativeMethodFunction` gives
// a NativeMethod's `fn` (borrowed), or null for anything else.
PyObject* NewNativeMethod(PyObject* fn, PyObject* wrapped);
PyObject* NativeMethodFunction(PyObject* obj);
// A NativeMethod whose work is `def`, called with `state` (the capsule owning a hook's state)
// as its self, and `wrapped` as __wrapped__. Raises nb::python_error on failure.
nb::object NativeMethodOf(PyMethodDef& def, nb::handle state, nb::handle wrapped);

// span.set_attribute(key, value) on one of our spans, as the Python method does (ext.cc).
void SetAttributeFromPython(PySpan& span, PyObject* key, PyObject* value);

// A capsule that owns `state` and deletes it with itself: the state of a native wrapper
// function (its `self`). State's destructor releases what it holds.
template <class State>
nb::object OwnedCapsule(State* state) {
  PyObject* capsule = PyCapsule_New(state, nullptr, [](PyObject* cap) {
    delete static_cast<State*>(PyCapsule_GetPointer(cap, nullptr));
  });
  if (!capsule) {
    delete state;
    throw nb::python_error();
  }
  return nb::steal(capsule);
}

// Native threads (the batch workers) call into Python only inside a PythonCall: its `entered()`
// says whether they may take the GIL. At exit, once the providers have shut down,
// ClosePythonCalls turns every later call away and waits for those under way. CPython ends a
// thread that waits for the GIL while the interpreter finalizes with pthread_exit, whose unwinding
// through the worker's noexcept frames aborts the process (a collector that cannot be reached at
// exit left workers logging then).
class PythonCall {
 public:
  PythonCall() noexcept;
  ~PythonCall();
  PythonCall(const PythonCall&) = delete;
  PythonCall& operator=(const PythonCall&) = delete;
  bool entered() const { return entered_; }

 private:
  bool entered_;
};

// Binding files register a function that adds their classes and functions to the module.
using BindFn = void (*)(nb::module_&);
std::vector<BindFn>& Binders();
struct RegisterBindings {
  explicit RegisterBindings(BindFn fn) { Binders().push_back(fn); }
};

}  // namespace djtrace
