// traced_call: a function call wrapped in a span, in one native call. The integrations' hottest
// wrappers (Django middleware, their hooks, views, templates) would otherwise spend five
// Python-level calls per span on `with tracer.start_as_current_span(...)`: the scope object,
// its __enter__ and __exit__, keyword parsing, and the exception bookkeeping of the block.
#include <algorithm>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
// After Python.h (common.h).
#include <structmember.h>

namespace djtrace {
namespace {

// (span, exception) -> None: how an integration records an exception (Django's rule: an
// exception Django turns into a 4xx response is not an error).
PyObject* g_error_hook = nullptr;
// traced_call's own signature, in Python: for tracers that are not djtrace's native ones, or
// whose provider has a sampler or span processor written in Python.
PyObject* g_fallback = nullptr;

constexpr int kUseErrorHook = 1;  // `mode` bit: exceptions go to g_error_hook

// A hook's fixed attributes (`mapping`, which never changes; null or None for none) as the
// span's shared ones in `o`, converted on first use into `shared`, the hook's own. NewSpan
// then takes None as its `attributes`.
void ShareFixed(LimitedAttributes& shared, PyObject* mapping, NativeTracer& tracer,
                StartOptions& o) {
  if (!mapping || mapping == Py_None) return;
  const SpanLimits& limits = tracer.owner->core->limits();
  if (!shared.Fits(limits)) {
    Attributes converted;
    ToAttributes(mapping, converted);
    shared.Build(std::move(converted), limits);
  }
  shared.ApplyTo(o);
}

// fn(*fn_args, **kwnames) inside a new current INTERNAL span; `args`/`nargs` are traced_call's
// own arguments, handed to the Python fallback when the tracer is not a native one. A hook
// whose `attributes` never change passes `shared` to keep them converted.
PyObject* CallInSpan(PyObject* tracer_obj, PyObject* name, PyObject* attributes, long mode,
                     PyObject* fn, PyObject* const* fn_args, Py_ssize_t fn_nargs, PyObject* kwnames,
                     LimitedAttributes* shared = nullptr) {
  NativeTracer* tracer = FastTracer(tracer_obj);
  if (!tracer || tracer->owner->py_start_current.is_valid()) {
    if (!g_fallback) return PyObject_Vectorcall(fn, fn_args, fn_nargs, kwnames);
    // traced_call's own arguments, for the Python version of it.
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    std::vector<PyObject*> all(static_cast<size_t>(5 + fn_nargs + nkw));
    PyObject* mode_obj = PyLong_FromLong(mode);
    if (!mode_obj) return nullptr;
    all[0] = tracer_obj;
    all[1] = name;
    all[2] = attributes;
    all[3] = mode_obj;
    all[4] = fn;
    for (Py_ssize_t i = 0; i < fn_nargs + nkw; ++i) all[static_cast<size_t>(5 + i)] = fn_args[i];
    PyObject* r = PyObject_Vectorcall(g_fallback, all.data(), 5 + fn_nargs, kwnames);
    Py_DECREF(mode_obj);
    return r;
  }

  const int flags = kAttachOnEnter | kDeferAttach | kEndOnExit |
                    ((mode & kUseErrorHook) ? 0 : (kRecordException | kSetStatusOnException));
  HookSpan hook;    // the span, while deferred attach is on
  nb::object span;  // the span otherwise
  try {
    StartOptions o;
    if (shared) {
      ShareFixed(*shared, attributes, *tracer, o);
    } else if (attributes && attributes != Py_None) {
      ToAttributes(attributes, o.attributes);
    }
    if (!HookSpanBegin(hook, *tracer, name, SpanKind::kInternal, flags, std::move(o))) {
      span =
          NewSpan(*tracer, name, static_cast<int>(SpanKind::kInternal), SpanInContext(nb::none()),
                  nb::none(), nb::none(), nb::none(), flags, std::move(o));
      SpanEnter(span);
    }
  } catch (nb::python_error& e) {
    e.discard_as_unraisable("djtrace traced_call start");
    span = nb::object();
  } catch (const std::exception&) {
    span = nb::object();
  }
  const bool lean = hook.started();
  if (!lean && !span.is_valid()) return PyObject_Vectorcall(fn, fn_args, fn_nargs, kwnames);

  PyObject* result = PyObject_Vectorcall(fn, fn_args, fn_nargs, kwnames);
  if (result) {
    if (lean) {
      HookSpanEnd(hook, nullptr);
    } else {
      SpanExit(span, nb::none());
    }
    return result;
  }
  // The exception propagates unchanged; the span records it on the way.
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (value && tb) PyException_SetTraceback(value, tb);
  if (value && (mode & kUseErrorHook) && g_error_hook &&
      PyErr_GivenExceptionMatches(value, PyExc_Exception)) {
    PyObject* span_obj = lean ? HookSpanObject(hook) : Py_NewRef(span.ptr());
    if (span_obj) {
      PyObject* r = PyObject_CallFunctionObjArgs(g_error_hook, span_obj, value, nullptr);
      if (r) {
        Py_DECREF(r);
      } else {
        PyErr_WriteUnraisable(g_error_hook);
      }
      Py_DECREF(span_obj);
    }
  }
  if (lean) {
    HookSpanEnd(hook, value);
  } else {
    try {
      SpanExit(span, value ? nb::handle(value) : nb::none());
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("djtrace traced_call end");
    } catch (const std::exception&) {
    }
  }
  PyErr_Restore(type, value, tb);
  return nullptr;
}

PyObject* TracedCall(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs < 5) {
    PyErr_SetString(PyExc_TypeError,
                    "traced_call(tracer, name, attributes, mode, fn, *args, **kwargs)");
    return nullptr;
  }
  long mode = PyLong_AsLong(args[3]);
  if (mode == -1 && PyErr_Occurred()) return nullptr;
  return CallInSpan(args[0], args[1], args[2], mode, args[4], args + 5, nargs - 5, kwnames);
}

// start_current_span(tracer, name, kind, attributes): a span started and made current in one
// call, for wrappers that must read the wrapped call's result onto the span before it ends
// (span.__exit__ ends it, recording an exception passed to it). Spares them the context
// manager of start_as_current_span and its keyword parsing. None when `tracer` is not a
// native one (the caller then goes through the API).
PyObject* StartCurrentSpan(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 4) {
    PyErr_SetString(PyExc_TypeError, "start_current_span(tracer, name, kind, attributes)");
    return nullptr;
  }
  NativeTracer* tracer = nullptr;
  if (!nb::try_cast<NativeTracer*>(nb::handle(args[0]), tracer) || !tracer ||
      tracer->owner->py_start_current.is_valid())
    Py_RETURN_NONE;
  long kind = PyLong_AsLong(args[2]);
  if (kind == -1 && PyErr_Occurred()) return nullptr;
  if (kind < static_cast<long>(SpanKind::kInternal) ||
      kind > static_cast<long>(SpanKind::kConsumer)) {
    PyErr_SetString(PyExc_ValueError, "start_current_span: kind must be an OTLP span kind (1-5)");
    return nullptr;
  }
  try {
    nb::object span = NewSpan(
        *tracer, args[1], static_cast<int>(kind), SpanInContext(nb::none()), args[3], nb::none(),
        nb::none(), kAttachOnEnter | kEndOnExit | kRecordException | kSetStatusOnException,
        StartOptions());
    SpanEnter(span);
    return span.release().ptr();
  } catch (nb::python_error& e) {
    e.restore();
    return nullptr;
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

PyMethodDef g_start_current_span_def = {
    "start_current_span",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(StartCurrentSpan)), METH_FASTCALL,
    "start_current_span(tracer, name, kind, attributes): a span (OTLP kind number) started in "
    "the current context and made current; its __exit__ detaches and ends it. None for a "
    "tracer that is not djtrace's native one."};

// The request being traced (djtrace.integrations.django._state.REQUEST) and the attribute
// names read off it and off middleware proxies.
PyObject* g_request_var = nullptr;
PyObject* g_str_inner = nullptr;
PyObject* g_str_name = nullptr;
PyObject* g_str_tracer = nullptr;

// The tracer of the request in REQUEST when that request records the layer whose switch is
// `layer` (kTraceMiddleware, kTraceViews): a new reference, else null.
PyObject* RequestTracer(RequestField layer) {
  PyObject* tracer = nullptr;
  PyObject* rs = nullptr;
  if (g_request_var && PyContextVar_Get(g_request_var, nullptr, &rs) < 0) {
    PyErr_Clear();
    rs = nullptr;
  }
  if (rs && rs != Py_None) {
    if (RequestSpanField(rs, layer) == Py_True) {
      tracer = RequestSpanField(rs, RequestField::kTracer);
      Py_XINCREF(tracer);
    }
  }
  Py_XDECREF(rs);
  return tracer;
}

// The base type of the Django middleware proxies (djtrace.integrations.django.middleware):
// calling one runs the wrapped middleware (`_djtrace_inner` in its dict) inside a span named
// `_djtrace_name` while the request records middleware spans, and alone otherwise. Native and
// called through vectorcall, so that the ten or so middleware of a request cost no Python
// frame, no bound method and no lookup of __call__ on the proxy's class.
struct MiddlewareProxy {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* dict;
  PyObject* weakrefs;
};

// Read straight off the proxy's own dict: its class defines __getattr__ for everything else.
PyObject* ProxyField(PyObject* self, PyObject* name) {
  PyObject* dict = reinterpret_cast<MiddlewareProxy*>(self)->dict;
  PyObject* value = dict ? PyDict_GetItemWithError(dict, name) : nullptr;
  if (value) return Py_NewRef(value);
  if (!PyErr_Occurred()) PyErr_SetObject(PyExc_AttributeError, name);
  return nullptr;
}

PyObject* MiddlewareProxyCall(PyObject* self, PyObject* const* args, size_t nargsf,
                              PyObject* kwnames) {
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  PyObject* inner = ProxyField(self, g_str_inner);
  if (!inner) return nullptr;
  PyObject* tracer = RequestTracer(RequestField::kTraceMiddleware);
  PyObject* result;
  PyObject* name = tracer ? ProxyField(self, g_str_name) : nullptr;
  if (name) {
    result = CallInSpan(tracer, name, Py_None, kUseErrorHook, inner, args, nargs, kwnames);
    Py_DECREF(name);
  } else {
    if (tracer) PyErr_Clear();
    result = PyObject_Vectorcall(inner, args, nargs, kwnames);
  }
  Py_XDECREF(tracer);
  Py_DECREF(inner);
  return result;
}

PyObject* MiddlewareProxyNew(PyTypeObject* type, PyObject*, PyObject*) {
  PyObject* self = type->tp_alloc(type, 0);
  if (self) reinterpret_cast<MiddlewareProxy*>(self)->vectorcall = MiddlewareProxyCall;
  return self;
}

int MiddlewareProxyTraverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(reinterpret_cast<MiddlewareProxy*>(self)->dict);
  Py_VISIT(Py_TYPE(self));  // a heap type
  return 0;
}

int MiddlewareProxyClear(PyObject* self) {
  Py_CLEAR(reinterpret_cast<MiddlewareProxy*>(self)->dict);
  return 0;
}

void MiddlewareProxyDealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (reinterpret_cast<MiddlewareProxy*>(self)->weakrefs) PyObject_ClearWeakRefs(self);
  MiddlewareProxyClear(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMemberDef g_middleware_proxy_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(MiddlewareProxy, vectorcall), READONLY, nullptr},
    {"__dictoffset__", T_PYSSIZET, offsetof(MiddlewareProxy, dict), READONLY, nullptr},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(MiddlewareProxy, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyGetSetDef g_middleware_proxy_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot g_middleware_proxy_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(MiddlewareProxyNew)},
    {Py_tp_dealloc, reinterpret_cast<void*>(MiddlewareProxyDealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(MiddlewareProxyTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(MiddlewareProxyClear)},
    {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
    {Py_tp_members, g_middleware_proxy_members},
    {Py_tp_getset, g_middleware_proxy_getset},
    {Py_tp_doc, const_cast<char*>("Base of djtrace's Django middleware proxies: calling one "
                                  "runs the wrapped middleware, in a span while middleware is "
                                  "traced.")},
    {0, nullptr}};

PyType_Spec g_middleware_proxy_spec = {
    "djtrace._native.MiddlewareProxy", sizeof(MiddlewareProxy), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    g_middleware_proxy_slots};

PyTypeObject* g_middleware_proxy_type = nullptr;

// Python 3.11 does not pass the vectorcall flag on to subclasses defined in Python (3.12
// does); without it a call to the proxy would go through tp_call and an argument tuple.
// Sets it on `cls`, a subclass of MiddlewareProxy that keeps its __call__.
void MiddlewareProxyClassReady(nb::handle cls) {
  if (!PyType_Check(cls.ptr()) || !g_middleware_proxy_type ||
      !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls.ptr()), g_middleware_proxy_type))
    throw nb::type_error("expected a subclass of MiddlewareProxy");
  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  if (type->tp_call == PyVectorcall_Call &&
      type->tp_vectorcall_offset == offsetof(MiddlewareProxy, vectorcall))
    type->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
}

// A middleware's hook (process_view and the like) as the proxy exposes it: `state` is
// (hook, span name). Same rule as MiddlewareProxyCall.
PyObject* MiddlewareHookCall(PyObject* state, PyObject* const* args, Py_ssize_t nargs,
                             PyObject* kwnames) {
  PyObject* hook = PyTuple_GET_ITEM(state, 0);
  PyObject* name = PyTuple_GET_ITEM(state, 1);
  PyObject* tracer = RequestTracer(RequestField::kTraceMiddleware);
  if (!tracer) return PyObject_Vectorcall(hook, args, static_cast<size_t>(nargs), kwnames);
  PyObject* result = CallInSpan(tracer, name, Py_None, kUseErrorHook, hook, args, nargs, kwnames);
  Py_DECREF(tracer);
  return result;
}

PyMethodDef g_middleware_hook_def = {
    "middleware_hook",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(MiddlewareHookCall)),
    METH_FASTCALL | METH_KEYWORDS, "A middleware hook, in a span while middleware is traced."};

PyMethodDef g_traced_call_def = {
    "traced_call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(TracedCall)),
    METH_FASTCALL | METH_KEYWORDS,
    "traced_call(tracer, name, attributes, mode, fn, *args, **kwargs): fn(*args, **kwargs) "
    "inside a new current INTERNAL span `name`; mode 1 hands exceptions to the error hook "
    "instead of recording them on the span."};

// SQLCompiler.execute_sql, wrapped: while the compiler's query carries the ORM relation whose
// lazy loading made it (`query._djtrace_relation`, set by djtrace's related managers), that
// relation is in the context variable the database span reads. Native: every query of the
// application passes here, and nearly all of them carry no relation.
PyObject* g_str_query = nullptr;
PyObject* g_str_relation = nullptr;

// original(*args) with `relation` (not set when null or None) in the context variable `var`,
// which is reset afterwards, the call's exception kept.
PyObject* CallWithRelation(PyObject* original, PyObject* const* args, Py_ssize_t nargs_f,
                           PyObject* kwnames, PyObject* var, PyObject* relation) {
  if (!relation || relation == Py_None)
    return PyObject_Vectorcall(original, args, nargs_f, kwnames);
  PyObject* token = PyContextVar_Set(var, relation);
  if (!token) {
    PyErr_Clear();  // the call goes on untagged
    return PyObject_Vectorcall(original, args, nargs_f, kwnames);
  }
  PyObject* result = PyObject_Vectorcall(original, args, nargs_f, kwnames);
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (PyContextVar_Reset(var, token) < 0) PyErr_Clear();
  PyErr_Restore(type, value, tb);
  Py_DECREF(token);
  return result;
}

PyObject* RelationCall(PyObject* state, PyObject* const* args, Py_ssize_t nargs,
                       PyObject* kwnames) {
  // state: (original execute_sql, the RELATION context variable)
  PyObject* original = PyTuple_GET_ITEM(state, 0);
  PyObject* var = PyTuple_GET_ITEM(state, 1);
  PyObject* relation = nullptr;
  if (nargs >= 1) {
    // Most queries carry no relation: looked up without raising and clearing AttributeError.
    PyObject* query = OptionalAttr(args[0], g_str_query);
    if (query) {
      relation = OptionalAttr(query, g_str_relation);
      Py_DECREF(query);
    }
  }
  PyObject* result = CallWithRelation(original, args, nargs, kwnames, var, relation);
  Py_XDECREF(relation);
  return result;
}

PyMethodDef g_relation_call_def = {
    "execute_sql", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(RelationCall)),
    METH_FASTCALL | METH_KEYWORDS,
    "SQLCompiler.execute_sql with the ORM relation of its query in djtrace's context."};

// kwargs[name] of a vectorcall, borrowed, or null.
PyObject* Keyword(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames, PyObject* name) {
  if (!kwnames) return nullptr;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); ++i) {
    PyObject* k = PyTuple_GET_ITEM(kwnames, i);
    if (k == name || PyUnicode_Compare(k, name) == 0) return args[nargs + i];
  }
  return nullptr;
}

PyObject* g_str_method = nullptr;
PyObject* g_str_view = nullptr;

// A synchronous view, wrapped (djtrace.integrations.django.views.traced_view): the call in a
// view span while the request in REQUEST records view spans, and alone otherwise. Native so
// that a traced request runs no Python frame of djtrace's around its view.
PyObject* ViewCall(PyObject* state, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  // state: (the callable: the view, possibly inside transaction.atomic; the view's name cache
  // {method: (span name, attributes)}; name_for(method), which fills it; traced_call's mode)
  PyObject* callable = PyTuple_GET_ITEM(state, 0);
  nargs = PyVectorcall_NARGS(nargs);
  PyObject* tracer = nargs >= 1 ? RequestTracer(RequestField::kTraceViews) : nullptr;
  PyObject* entry = nullptr;  // (span name, attributes)
  if (tracer) {
    PyObject* method = PyObject_GetAttr(args[0], g_str_method);
    if (method) {
      entry = PyDict_GetItemWithError(PyTuple_GET_ITEM(state, 1), method);  // borrowed
      if (entry) {
        Py_INCREF(entry);
      } else {
        PyErr_Clear();  // not named yet (or an unhashable method): name_for names it
        entry = PyObject_CallOneArg(PyTuple_GET_ITEM(state, 2), method);
      }
      Py_DECREF(method);
    }
    if (!entry || !PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2) {
      // Tracing must not break the view: it runs unobserved.
      if (!entry) PyErr_Clear();
      Py_CLEAR(entry);
    }
  }
  PyObject* result;
  if (entry) {
    const long mode = PyLong_AsLong(PyTuple_GET_ITEM(state, 3));
    result = CallInSpan(tracer, PyTuple_GET_ITEM(entry, 0), PyTuple_GET_ITEM(entry, 1), mode,
                        callable, args, nargs, kwnames);
    Py_DECREF(entry);
  } else {
    result = PyObject_Vectorcall(callable, args, nargs, kwnames);
  }
  Py_XDECREF(tracer);
  return result;
}

PyMethodDef g_view_call_def = {
    "traced_view", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(ViewCall)),
    METH_FASTCALL | METH_KEYWORDS, "The view called in a view span while view spans are recorded."};

// BaseHandler.make_view_atomic(self, view), wrapped: Django's own result, replaced by its
// traced wrapper (views.traced_view) while the request in REQUEST records view spans. The
// common case, the view itself wrapped on an earlier request, is a dict lookup here; anything
// else goes to the Python `wrap(callable, view)`, which never raises.
PyObject* MakeViewAtomic(PyObject* state, PyObject* const* args, Py_ssize_t nargs,
                         PyObject* kwnames) {
  // state: (Django's make_view_atomic, the {view: wrapper} cache, wrap)
  PyObject* callable = PyObject_Vectorcall(PyTuple_GET_ITEM(state, 0), args, nargs, kwnames);
  if (!callable) return nullptr;
  nargs = PyVectorcall_NARGS(nargs);
  PyObject* view = nargs >= 2 ? args[1] : Keyword(args, nargs, kwnames, g_str_view);
  PyObject* tracer = view ? RequestTracer(RequestField::kTraceViews) : nullptr;
  if (!tracer) return callable;
  Py_DECREF(tracer);
  if (callable == view) {
    PyObject* cached = PyDict_GetItemWithError(PyTuple_GET_ITEM(state, 1), view);  // borrowed
    if (cached) {
      Py_INCREF(cached);
      Py_DECREF(callable);
      return cached;
    }
    PyErr_Clear();  // not wrapped yet (or unhashable): wrap says
  }
  PyObject* wrapped =
      PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(state, 2), callable, view, nullptr);
  if (!wrapped) {
    PyErr_Clear();  // wrap reports its own failures; this is only a last resort
    return callable;
  }
  Py_DECREF(callable);
  return wrapped;
}

PyMethodDef g_make_view_atomic_def = {
    "make_view_atomic", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(MakeViewAtomic)),
    METH_FASTCALL | METH_KEYWORDS,
    "BaseHandler.make_view_atomic, returning the view's traced wrapper while view spans are "
    "recorded."};

// ForwardManyToOneDescriptor.get_object(self, instance) and ReverseOneToOneDescriptor.__get__
// (self, instance, cls=None), wrapped: the lazy load of one related object (`order.user`, the
// classic N+1) runs with its relation ("Order.user") in the context variable the database span
// reads. The name is computed once per descriptor, by `name_of(descriptor)` in Python, and kept
// in the descriptor's `_djtrace_relation`. State: (original, relation variable, name_of,
// whether a call without an instance, a class attribute access, is passed through).

PyObject* RelationDescriptorCall(PyObject* state, PyObject* const* args, Py_ssize_t nargs_f,
                                 PyObject* kwnames) {
  PyObject* original = PyTuple_GET_ITEM(state, 0);
  PyObject* var = PyTuple_GET_ITEM(state, 1);
  PyObject* name_of = PyTuple_GET_ITEM(state, 2);
  const bool class_access = PyTuple_GET_ITEM(state, 3) == Py_True;
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargs_f);
  if (nargs < 1 || (class_access && (nargs < 2 || args[1] == Py_None)))
    return PyObject_Vectorcall(original, args, nargs_f, kwnames);
  PyObject* descriptor = args[0];
  PyObject* name = OptionalAttr(descriptor, g_str_relation);
  if (!name) {
    name = PyObject_CallOneArg(name_of, descriptor);
    if (name && PyObject_SetAttr(descriptor, g_str_relation, name) < 0) PyErr_Clear();
    if (!name) PyErr_Clear();  // as the Python wrapper did: the load goes on untagged
  }
  PyObject* result = CallWithRelation(original, args, nargs_f, kwnames, var, name);
  Py_XDECREF(name);
  return result;
}

PyMethodDef g_relation_descriptor_def = {
    "get_object",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(RelationDescriptorCall)),
    METH_FASTCALL | METH_KEYWORDS,
    "A related-object descriptor's method, run with the ORM relation in djtrace's context."};

// What a hook read off the Django integration's settings object, kept with that object: a
// reload replaces the object and never changes a published one (as the request path's
// precomputed `request_flags` also assumes), so while the object is the same, so are these.
// The object is held, so that its address cannot come back as another one's.
struct SeenSettings {
  PyObject* cfg = nullptr;  // owned
  bool on = false;          // the layer's switch (template_spans, cache_spans)
  bool keys = false;        // cache_keys
  long repeat_threshold = 0;

  ~SeenSettings() { Py_XDECREF(cfg); }
  bool Matches(PyObject* current) const { return current && current == cfg; }
  void Keep(PyObject* current) { Py_XSETREF(cfg, Py_NewRef(current)); }
};

// Template.render / ExtendsNode.render of the Django template engine, wrapped: the call in a
// span `render <name>` unless the request is not recorded, instrumentation is suppressed or
// template spans are off. Native, so that each template a page renders adds no Python frame.
struct TemplateState {
  PyObject* orig;          // the unwrapped method
  PyObject* name_of;       // None: the template's own name; else (self, context) -> name
  PyObject* names;         // dict: name -> span name (templates._names)
  PyObject* span_name;     // templates._span_name(name), for names not cached yet
  PyObject* settings_mod;  // djtrace.integrations.django.settings (its _current and get())
  PyObject* suppressed;    // the SUPPRESSED context variable
  PyObject* holder;        // the _state module (its cached _tracer), and _state.tracer()
  PyObject* get_tracer;
  PyObject* attributes;           // {"djtrace.template.engine": "django"}
  LimitedAttributes shared = {};  // `attributes`, converted on first use
  SeenSettings seen;              // template_spans

  ~TemplateState() {
    for (PyObject* o : {orig, name_of, names, span_name, settings_mod, suppressed, holder,
                        get_tracer, attributes})
      Py_XDECREF(o);
  }
};

PyObject* g_str_current = nullptr;
PyObject* g_str_template_spans = nullptr;
PyObject* g_str_get = nullptr;
PyObject* g_str_name_attr = nullptr;

// True when a request is being traced but not recorded, or instrumentation is suppressed.
int NotRecorded(PyObject* suppressed_var) {
  PyObject* rs = nullptr;
  if (g_request_var && PyContextVar_Get(g_request_var, nullptr, &rs) < 0) return -1;
  int off = 0;
  if (rs && rs != Py_None) {
    PyObject* rec = RequestSpanField(rs, RequestField::kRecording);
    off = rec == Py_False;
  }
  Py_XDECREF(rs);
  if (off) return off;
  PyObject* sup = nullptr;
  if (PyContextVar_Get(suppressed_var, nullptr, &sup) < 0) return -1;
  off = sup ? PyObject_IsTrue(sup) : 0;
  Py_XDECREF(sup);
  return off;
}

}  // namespace

PyObject* DjangoSettings(PyObject* settings_module) {
  PyObject* cfg = ModuleGlobal(settings_module, g_str_current);
  if (cfg && cfg != Py_None) return cfg;
  Py_XDECREF(cfg);
  PyErr_Clear();
  return PyObject_CallMethodNoArgs(settings_module, g_str_get);
}

PyObject* CachedTracer(PyObject* holder, PyObject* get_tracer) {
  PyObject* tracer = ModuleGlobal(holder, g_str_tracer);
  if (!tracer) return nullptr;
  if (tracer != Py_None) return tracer;
  Py_DECREF(tracer);
  return PyObject_CallNoArgs(get_tracer);
}

namespace {

PyObject* TemplateRender(PyObject* state_obj, PyObject* const* args, Py_ssize_t nargs,
                         PyObject* kwnames) {
  auto* st = reinterpret_cast<TemplateState*>(PyCapsule_GetPointer(state_obj, nullptr));
  if (!st) return nullptr;
  if (nargs != 2 || kwnames) return PyObject_Vectorcall(st->orig, args, nargs, kwnames);
  int off = NotRecorded(st->suppressed);
  if (off == 0) {
    PyObject* cfg = DjangoSettings(st->settings_mod);
    if (st->seen.Matches(cfg)) {
      off = !st->seen.on;
    } else {
      PyObject* on = cfg ? PyObject_GetAttr(cfg, g_str_template_spans) : nullptr;
      off = on ? !PyObject_IsTrue(on) : -1;
      if (off >= 0) {
        st->seen.Keep(cfg);
        st->seen.on = !off;
      }
      Py_XDECREF(on);
    }
    Py_XDECREF(cfg);
  }
  if (off) {
    if (off < 0) PyErr_Clear();  // tracing must not break rendering
    return PyObject_Vectorcall(st->orig, args, nargs, nullptr);
  }
  PyObject* key = st->name_of == Py_None ? PyObject_GetAttr(args[0], g_str_name_attr)
                                         : PyObject_Vectorcall(st->name_of, args, 2, nullptr);
  PyObject* name = nullptr;
  if (key) {
    name = PyDict_GetItemWithError(st->names, key);  // borrowed
    if (name) {
      Py_INCREF(name);
    } else if (!PyErr_Occurred()) {
      name = PyObject_CallOneArg(st->span_name, key);
    }
    Py_DECREF(key);
  }
  PyObject* tracer = name ? CachedTracer(st->holder, st->get_tracer) : nullptr;
  if (!tracer) {
    PyErr_Clear();
    Py_XDECREF(name);
    return PyObject_Vectorcall(st->orig, args, nargs, nullptr);
  }
  PyObject* result =
      CallInSpan(tracer, name, st->attributes, 0, st->orig, args, nargs, nullptr, &st->shared);
  Py_DECREF(tracer);
  Py_DECREF(name);
  return result;
}

PyMethodDef g_template_render_def = {
    "render", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(TemplateRender)),
    METH_FASTCALL | METH_KEYWORDS, "Renders the template in a span `render <name>`."};

// A cache backend class's method, wrapped (djtrace.integrations.django.cache): the call in a
// span `cache.<op>`, with cache.hit for get and the read counted in the local root's
// statistics. The wrapper sits on the class, once, and traces the instances Django's cache
// handler made, which carry a CacheBackendInfo (their alias, fixed attributes and kind) in
// `_djtrace_cache`; other instances are served untraced. Wrapping the class rather than each
// instance matters under ASGI, where Django makes each request its own backends: nothing is
// built per backend but that one shared attribute.
// Natively for single-key operations; calls a backend makes to itself, operations that read
// their result in other ways, exported keys and tracers that are not djtrace's native one go
// to the Python wrapper (`fallback`), which handles every case.
struct CacheState {
  PyObject* method;        // the class's function (the instance comes first in the arguments)
  PyObject* fallback;      // the Python wrapper, with the same arguments
  PyObject* name;          // "cache.get"
  PyObject* in_call;       // cache._IN_CALL (threading.local; .call is the outer call)
  PyObject* call_record;   // cache._NATIVE_CALL
  PyObject* settings_mod;  // as TemplateState
  PyObject* suppressed;
  PyObject* holder;
  PyObject* get_tracer;
  PyObject* record_get;  // _native.record_cache_get
  bool is_get;
  bool native_ok;     // a single-key operation whose result says nothing more than get's
  SeenSettings seen;  // cache_spans, cache_keys, cache_repeat_threshold

  ~CacheState() {
    for (PyObject* o : {method, fallback, name, in_call, call_record, settings_mod, suppressed,
                        holder, get_tracer, record_get})
      Py_XDECREF(o);
  }
};

// What a traced backend instance carries: one per class, alias and server, shared by every
// backend Django makes for them (and, with no alias, what a Redis connection pool carries: see
// RedisCommand). Its attributes are converted once, into `shared`.
struct CacheBackendInfo {
  PyObject_HEAD PyObject* alias;  // the CACHES alias
  PyObject* attributes;           // the fixed attributes (dict)
  PyObject* api_kind;             // the API's SpanKind, for the Python wrapper
  int kind;                       // the OTLP span kind
  LimitedAttributes* shared;
};

int CacheBackendInfoTraverse(PyObject* self, visitproc visit, void* arg) {
  auto* info = reinterpret_cast<CacheBackendInfo*>(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(info->alias);
  Py_VISIT(info->attributes);
  Py_VISIT(info->api_kind);
  return 0;
}

int CacheBackendInfoClear(PyObject* self) {
  auto* info = reinterpret_cast<CacheBackendInfo*>(self);
  Py_CLEAR(info->alias);
  Py_CLEAR(info->attributes);
  Py_CLEAR(info->api_kind);
  return 0;
}

void CacheBackendInfoDealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  CacheBackendInfoClear(self);
  auto* info = reinterpret_cast<CacheBackendInfo*>(self);
  delete info->shared;
  info->shared = nullptr;
  type->tp_free(self);
  Py_DECREF(type);
}

PyMemberDef g_cache_backend_info_members[] = {
    {"alias", T_OBJECT, offsetof(CacheBackendInfo, alias), READONLY, nullptr},
    {"attributes", T_OBJECT, offsetof(CacheBackendInfo, attributes), READONLY, nullptr},
    {"api_kind", T_OBJECT, offsetof(CacheBackendInfo, api_kind), READONLY, nullptr},
    {"kind", T_INT, offsetof(CacheBackendInfo, kind), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot g_cache_backend_info_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(CacheBackendInfoDealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(CacheBackendInfoTraverse)},
    {Py_tp_clear, reinterpret_cast<void*>(CacheBackendInfoClear)},
    {Py_tp_members, g_cache_backend_info_members},
    {0, nullptr}};

PyType_Spec g_cache_backend_info_spec = {
    "djtrace._native.CacheBackendInfo", sizeof(CacheBackendInfo), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, g_cache_backend_info_slots};

PyTypeObject* g_cache_backend_info_type = nullptr;

PyObject* g_str_call = nullptr;
PyObject* g_str_cache_spans = nullptr;
PyObject* g_str_cache_keys = nullptr;
PyObject* g_str_repeat_threshold = nullptr;
PyObject* g_str_default = nullptr;
PyObject* g_str_key = nullptr;
PyObject* g_str_version = nullptr;

PyObject* g_str_djtrace_cache = nullptr;

PyObject* CacheCall(PyObject* state_obj, PyObject* const* args, Py_ssize_t nargs_f,
                    PyObject* kwnames) {
  auto* st = reinterpret_cast<CacheState*>(PyCapsule_GetPointer(state_obj, nullptr));
  if (!st) return nullptr;
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargs_f);
  auto plain = [&] { return PyObject_Vectorcall(st->method, args, nargs, kwnames); };
  if (nargs < 1) return plain();  // no instance: the function says what is wrong
  // The instance's info: None (the class default) for a backend Django's handler did not make.
  PyObject* info_obj = PyObject_GetAttr(args[0], g_str_djtrace_cache);
  if (!info_obj) {
    PyErr_Clear();
    return plain();
  }
  nb::object info_ref = nb::steal(info_obj);
  if (Py_TYPE(info_obj) != g_cache_backend_info_type) return plain();
  auto* info = reinterpret_cast<CacheBackendInfo*>(info_obj);
  auto fallback = [&] { return PyObject_Vectorcall(st->fallback, args, nargs, kwnames); };
  if (!st->native_ok) return fallback();
  // The checks below never raise into the application: a failure means an untraced call.
  PyObject* outer = PyObject_GetAttr(st->in_call, g_str_call);
  if (!outer) {
    PyErr_Clear();
    return plain();
  }
  bool nested = outer != Py_None;
  Py_DECREF(outer);
  if (nested) return fallback();  // the backend calling itself: part of the outer span
  int off = NotRecorded(st->suppressed);
  long repeat_threshold = 0;
  if (off == 0) {
    nb::object cfg = nb::steal(DjangoSettings(st->settings_mod));
    if (!st->seen.Matches(cfg.ptr())) {
      nb::object on, keys, threshold;
      if (cfg.is_valid()) on = nb::steal(PyObject_GetAttr(cfg.ptr(), g_str_cache_spans));
      if (on.is_valid()) keys = nb::steal(PyObject_GetAttr(cfg.ptr(), g_str_cache_keys));
      if (keys.is_valid())
        threshold = nb::steal(PyObject_GetAttr(cfg.ptr(), g_str_repeat_threshold));
      long limit = threshold.is_valid() ? PyLong_AsLong(threshold.ptr()) : -1;
      int on_true = on.is_valid() ? PyObject_IsTrue(on.ptr()) : -1;
      int keys_true = keys.is_valid() ? PyObject_IsTrue(keys.ptr()) : -1;
      if (!threshold.is_valid() || (limit == -1 && PyErr_Occurred()) || on_true < 0 ||
          keys_true < 0) {
        PyErr_Clear();
        return plain();  // tracing must not break the cache call
      }
      st->seen.Keep(cfg.ptr());
      st->seen.on = on_true == 1;
      st->seen.keys = keys_true == 1;
      st->seen.repeat_threshold = limit;
    }
    off = !st->seen.on;
    repeat_threshold = st->seen.repeat_threshold;
    if (!off && st->seen.keys) return fallback();  // keys exported
  }
  if (off) {
    if (off < 0) PyErr_Clear();
    return plain();
  }

  PyObject* tracer = CachedTracer(st->holder, st->get_tracer);
  NativeTracer* native = tracer ? FastTracer(tracer) : nullptr;
  if (!native || native->owner->py_start_current.is_valid()) {
    if (!tracer) {
      PyErr_Clear();
      return plain();
    }
    Py_DECREF(tracer);
    return fallback();
  }
  // A call in progress, so that the backend's calls to itself make no spans of their own.
  PyObject* record = st->call_record;
  Py_INCREF(record);
  if (PyObject_SetAttr(st->in_call, g_str_call, record) < 0) {
    PyErr_Clear();
    Py_DECREF(record);
    Py_DECREF(tracer);
    return plain();
  }
  const int flags =
      kAttachOnEnter | kDeferAttach | kEndOnExit | kRecordException | kSetStatusOnException;
  HookSpan hook;    // the span, while deferred attach is on
  nb::object span;  // the span otherwise
  try {
    StartOptions o;
    ShareFixed(*info->shared, info->attributes, *native, o);
    if (!HookSpanBegin(hook, *native, st->name, static_cast<SpanKind>(info->kind), flags,
                       std::move(o))) {
      span = NewSpan(*native, st->name, info->kind, SpanInContext(nb::none()), nb::none(),
                     nb::none(), nb::none(), flags, std::move(o));
      SpanEnter(span);
    }
  } catch (nb::python_error& e) {
    e.discard_as_unraisable("djtrace cache span start");
    span = nb::object();
  } catch (const std::exception&) {
    span = nb::object();
  }
  Py_DECREF(tracer);
  const bool lean = hook.started();
  const bool traced = lean || span.is_valid();
  PyObject* result = plain();
  bool hit = false;
  auto end = [&](PyObject* exc) {
    if (lean) {
      HookSpanEnd(hook, exc);
      return;
    }
    try {
      SpanExit(span, exc ? nb::handle(exc) : nb::none());
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("djtrace cache span end");
    } catch (const std::exception&) {
    }
  };
  if (traced) {
    if (!result) {
      PyObject *type, *value, *tb;
      PyErr_Fetch(&type, &value, &tb);
      PyErr_NormalizeException(&type, &value, &tb);
      if (value && tb) PyException_SetTraceback(value, tb);
      end(value);
      PyErr_Restore(type, value, tb);
    } else {
      if (st->is_get) {
        // args[0] is the backend: get(key, default=None, version=None) follows.
        PyObject* dflt = nargs > 2 ? args[2] : Keyword(args, nargs, kwnames, g_str_default);
        hit = result != (dflt ? dflt : Py_None);
        PySpan* ps = lean ? nullptr : FastSpan(span.ptr());
        LiveSpan* live = lean ? &hook.span() : (ps ? &ps->span : nullptr);
        if (live && live->is_recording()) live->SetAttribute("cache.hit", AttrValue(hit));
      }
      end(nullptr);
    }
  }
  {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (PyObject_SetAttr(st->in_call, g_str_call, Py_None) < 0) PyErr_Clear();
    PyErr_Restore(type, value, tb);
  }
  Py_DECREF(record);
  if (result && st->is_get && repeat_threshold && traced) {
    // Counted once the cache span is closed: the current span is then the one that made the
    // call, and a local root the application started gets its statistics from it.
    PyObject* key = nargs > 1 ? args[1] : Keyword(args, nargs, kwnames, g_str_key);
    PyObject* version = nargs > 3 ? args[3] : Keyword(args, nargs, kwnames, g_str_version);
    PyObject* call_args[5] = {info->alias, key ? key : Py_None, version ? version : Py_None,
                              hit ? Py_True : Py_False, Py_None};
    PyObject* r = PyObject_Vectorcall(st->record_get, call_args, 5, nullptr);
    if (!r) PyErr_WriteUnraisable(st->record_get);  // never into the application
    Py_XDECREF(r);
  }
  return result;
}

// redis-py's Redis.execute_command(self, name, *args, **options), wrapped
// (djtrace.integrations.redis): the command in a CLIENT span beneath the current recording span,
// natively when the command's name is a str, the current span is one of djtrace's and the
// integration's tracer is djtrace's native one. Everything else (no parent, a foreign parent,
// bytes names, a provider with Python samplers or processors) goes to the Python wrapper,
// `fallback`, which handles every case; a suppressed context, a span that is not recording and
// a pool marked untraced get the plain call.
struct RedisState {
  PyObject* method;              // the original execute_command
  PyObject* fallback;            // the Python wrapper, with the same arguments
  PyObject* suppressed;          // _suppress.SUPPRESSED
  PyObject* api;                 // the opentelemetry.trace module (its _TRACER_PROVIDER)
  PyObject* get_tracer;          // () -> the integration's tracer when it is native, else None
  PyObject* pool_attributes;     // (pool) -> its CacheBackendInfo (kept on it), or False
  PyObject* error_attributes;    // (exception) -> the attributes of a failed command
  PyObject* no_pool;             // a CacheBackendInfo: the attributes of a client without one pool
  PyObject* provider = nullptr;  // the provider `tracer` was fetched for (borrowed, compared)
  PyObject* tracer = nullptr;    // its tracer, or null

  ~RedisState() {
    for (PyObject* o : {method, fallback, suppressed, api, get_tracer, pool_attributes,
                        error_attributes, no_pool, tracer})
      Py_XDECREF(o);
  }
};

PyObject* g_str_tracer_provider = nullptr;
PyObject* g_str_connection_pool = nullptr;
PyObject* g_str_pool_key = nullptr;

// The integration's native tracer (borrowed from the state), refreshed when the global provider
// changed; null when it is not a native one. No Python error is left set.
NativeTracer* RedisTracer(RedisState& st) {
  PyObject* provider = ModuleGlobal(st.api, g_str_tracer_provider);
  if (!provider) {
    PyErr_Clear();
    return nullptr;
  }
  Py_DECREF(provider);  // compared by address only; the module keeps it
  if (provider != st.provider || !st.tracer) {
    PyObject* tracer = PyObject_CallNoArgs(st.get_tracer);
    if (!tracer) {
      PyErr_Clear();
      return nullptr;
    }
    Py_XSETREF(st.tracer, tracer);
    st.provider = provider;
  }
  NativeTracer* native = FastTracer(st.tracer);
  if (!native || native->owner->py_start_current.is_valid()) return nullptr;
  return native;
}

PyObject* RedisCommand(PyObject* state_obj, PyObject* const* args, Py_ssize_t nargs_f,
                       PyObject* kwnames) {
  auto* st = reinterpret_cast<RedisState*>(PyCapsule_GetPointer(state_obj, nullptr));
  if (!st) return nullptr;
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargs_f);
  auto plain = [&] { return PyObject_Vectorcall(st->method, args, nargs, kwnames); };
  auto fallback = [&] { return PyObject_Vectorcall(st->fallback, args, nargs, kwnames); };
  // args[0] is the client, args[1] the command's name.
  if (nargs < 2) return plain();
  PyObject* sup = nullptr;
  if (PyContextVar_Get(st->suppressed, nullptr, &sup) < 0) {
    PyErr_Clear();
    return plain();
  }
  const int suppressed = sup ? PyObject_IsTrue(sup) : 0;
  Py_XDECREF(sup);
  if (suppressed) {
    if (suppressed < 0) PyErr_Clear();
    return plain();
  }
  PyObject* name = args[1];
  if (!PyUnicode_CheckExact(name)) return fallback();
  SpanContextData remote;
  const SpanContextData* parent = nullptr;
  LiveSpan* local = nullptr;
  try {
    local = CurrentParent(RawCurrentContext(), remote, parent);
  } catch (...) {
    if (PyErr_Occurred()) PyErr_Clear();
    return fallback();
  }
  if (!local) return fallback();  // no parent (a setting decides), or not one of ours
  if (!local->is_recording()) return plain();
  NativeTracer* tracer = RedisTracer(*st);
  if (!tracer) return fallback();

  // The pool's attributes, as a CacheBackendInfo (converted once, then shared by its spans),
  // kept on the pool by `pool_attributes`; False for Celery's pools. An attribute, not an entry
  // of the pool's __dict__: asking for that makes CPython turn the pool's inline attribute
  // values into a dict, and every attribute redis-py then reads on the pool takes the slow path
  // (9 k instructions per command here).
  nb::object info;
  PyObject* pool = OptionalAttr(args[0], g_str_connection_pool);
  if (!pool || pool == Py_None) {
    info = nb::borrow(st->no_pool);
  } else if (PyObject* kept = OptionalAttr(pool, g_str_pool_key)) {
    info = nb::steal(kept);
  } else {
    info = nb::steal(PyObject_CallOneArg(st->pool_attributes, pool));
  }
  Py_XDECREF(pool);
  if (!info.is_valid()) {
    PyErr_Clear();
    return fallback();
  }
  if (info.ptr() == Py_False) return plain();
  if (Py_TYPE(info.ptr()) != g_cache_backend_info_type) return fallback();
  auto* pool_info = reinterpret_cast<CacheBackendInfo*>(info.ptr());

  const int flags =
      kAttachOnEnter | kDeferAttach | kEndOnExit | kRecordException | kSetStatusOnException;
  HookSpan hook;
  try {
    StartOptions o;
    ShareFixed(*pool_info->shared, pool_info->attributes, *tracer, o);
    std::string op;
    if (!ToString(name, op)) throw std::runtime_error("command name");
    // The command and a "?" per argument: no key and no value leaves the process.
    std::string text = op;
    for (Py_ssize_t i = 2; i < nargs; ++i) text += " ?";
    o.attributes.push_back(Attribute{"db.operation.name", AttrValue(std::move(op))});
    o.attributes.push_back(Attribute{"db.query.text", AttrValue(std::move(text))});
    if (!HookSpanBegin(hook, *tracer, name, SpanKind::kClient, flags, std::move(o))) {
      if (PyErr_Occurred()) PyErr_Clear();
      return fallback();  // deferred attach off: the usual way, in Python
    }
  } catch (nb::python_error& e) {
    e.discard_as_unraisable("djtrace redis span start");
    return plain();
  } catch (const std::exception&) {
    if (PyErr_Occurred()) PyErr_Clear();
    return plain();
  }
  PyObject* result = plain();
  if (result) {
    HookSpanEnd(hook, nullptr);
    return result;
  }
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (value && tb) PyException_SetTraceback(value, tb);
  if (value && hook.span().is_recording()) {
    // error.type, and the Redis error prefix ("WRONGTYPE") for errors the server returned.
    PyObject* attrs = PyObject_CallOneArg(st->error_attributes, value);
    if (attrs && PyDict_Check(attrs)) {
      Attributes converted;
      try {
        ToAttributes(nb::handle(attrs), converted);
      } catch (...) {
        converted.clear();
      }
      for (Attribute& a : converted) hook.span().SetAttribute(a.key, std::move(a.value));
    }
    Py_XDECREF(attrs);
    if (PyErr_Occurred()) PyErr_Clear();
  }
  HookSpanEnd(hook, value);
  PyErr_Restore(type, value, tb);
  return nullptr;
}

PyMethodDef g_redis_command_def = {
    "execute_command", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(RedisCommand)),
    METH_FASTCALL | METH_KEYWORDS, "A Redis command in a CLIENT span."};

PyMethodDef g_cache_call_def = {
    "call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(CacheCall)),
    METH_FASTCALL | METH_KEYWORDS, "A cache method in a span `cache.<op>`."};

void Replace(PyObject*& slot, nb::object value) {
  PyObject* old = slot;
  slot = value.is_none() ? nullptr : value.release().ptr();
  Py_XDECREF(old);
}

void Bind(nb::module_& m) {
  g_str_inner = PyUnicode_InternFromString("_djtrace_inner");
  g_str_name = PyUnicode_InternFromString("_djtrace_name");
  g_str_tracer = PyUnicode_InternFromString("_tracer");
  m.attr("traced_call") = nb::steal(PyCFunction_NewEx(&g_traced_call_def, nullptr, nullptr));
  m.attr("start_current_span") =
      nb::steal(PyCFunction_NewEx(&g_start_current_span_def, nullptr, nullptr));
  g_middleware_proxy_type =
      reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&g_middleware_proxy_spec));
  if (!g_middleware_proxy_type) throw nb::python_error();
  m.attr("MiddlewareProxy") = nb::borrow(reinterpret_cast<PyObject*>(g_middleware_proxy_type));
  m.def("middleware_proxy_class_ready", &MiddlewareProxyClassReady, "cls"_a,
        "Lets calls to instances of `cls` (a subclass of MiddlewareProxy defined in Python) "
        "use vectorcall, as Python 3.12 does by itself.");
  m.def(
      "middleware_hook",
      [](nb::object hook, nb::str name) {
        nb::object state = nb::make_tuple(hook, name);
        return nb::steal(PyCFunction_NewEx(&g_middleware_hook_def, state.ptr(), nullptr));
      },
      "hook"_a, "name"_a,
      "`hook` (a bound middleware method) run inside a span `name` while the request records "
      "middleware spans, as it is otherwise.");
  g_str_query = PyUnicode_InternFromString("query");
  g_str_relation = PyUnicode_InternFromString("_djtrace_relation");
  m.def(
      "relation_execute_sql",
      [](nb::object original, nb::object relation_var) {
        nb::object state = nb::make_tuple(original, relation_var);
        nb::object fn = nb::steal(PyCFunction_NewEx(&g_relation_call_def, state.ptr(), nullptr));
        return nb::steal(PyInstanceMethod_New(fn.ptr()));
      },
      "original"_a, "relation_var"_a,
      "A method for SQLCompiler: `original` run with query._djtrace_relation, when set, in "
      "`relation_var`.");
  g_str_method = PyUnicode_InternFromString("method");
  g_str_view = PyUnicode_InternFromString("view");
  m.def(
      "make_view_atomic",
      [](nb::object original, nb::dict cache, nb::object wrap) {
        nb::object state = nb::make_tuple(original, cache, wrap);
        nb::object fn = nb::steal(PyCFunction_NewEx(&g_make_view_atomic_def, state.ptr(), nullptr));
        return nb::steal(PyInstanceMethod_New(fn.ptr()));
      },
      "original"_a, "cache"_a, "wrap"_a,
      "A method for BaseHandler: `original(self, view)`, then, while the request records view "
      "spans, `cache[view]` when `original` returned the view itself and it is cached, else "
      "`wrap(callable, view)`.");
  m.def(
      "view_call",
      [](nb::object callable, nb::dict names, nb::object name_for, long mode) {
        nb::object state = nb::make_tuple(callable, names, name_for, nb::int_(mode));
        return nb::steal(PyCFunction_NewEx(&g_view_call_def, state.ptr(), nullptr));
      },
      "callable"_a, "names"_a, "name_for"_a, "mode"_a,
      "A synchronous view wrapper: `callable(request, ...)` in a span named and attributed by "
      "`names[request.method]` (filled by `name_for(method)`), through traced_call with `mode`, "
      "while the request in REQUEST records view spans; alone otherwise.");
  m.def(
      "relation_descriptor_method",
      [](nb::object original, nb::object relation_var, nb::object name_of, bool class_access) {
        if (!PyContextVar_CheckExact(relation_var.ptr()))
          throw nb::type_error("relation_descriptor_method: relation_var must be a ContextVar");
        nb::object state = nb::make_tuple(original, relation_var, name_of, nb::bool_(class_access));
        nb::object fn =
            nb::steal(PyCFunction_NewEx(&g_relation_descriptor_def, state.ptr(), nullptr));
        return nb::steal(PyInstanceMethod_New(fn.ptr()));
      },
      "original"_a, "relation_var"_a, "name_of"_a, "class_access"_a,
      "A method for a related-object descriptor: `original` run with the descriptor's relation "
      "(`name_of(descriptor)`, computed once) in `relation_var`; with `class_access`, a call "
      "whose instance is None (the descriptor read on its class) is passed through.");
  g_str_current = PyUnicode_InternFromString("_current");
  g_str_template_spans = PyUnicode_InternFromString("template_spans");
  g_str_get = PyUnicode_InternFromString("get");
  g_str_name_attr = PyUnicode_InternFromString("name");
  m.def(
      "template_render",
      [](nb::object orig, nb::object name_of, nb::dict names, nb::object span_name,
         nb::object settings_mod, nb::object suppressed, nb::object holder, nb::object get_tracer,
         nb::dict attributes) {
        auto* st = new TemplateState{
            orig.release().ptr(),      name_of.release().ptr(),      names.release().ptr(),
            span_name.release().ptr(), settings_mod.release().ptr(), suppressed.release().ptr(),
            holder.release().ptr(),    get_tracer.release().ptr(),   attributes.release().ptr()};
        nb::object capsule = OwnedCapsule(st);
        nb::object fn =
            nb::steal(PyCFunction_NewEx(&g_template_render_def, capsule.ptr(), nullptr));
        return nb::steal(PyInstanceMethod_New(fn.ptr()));
      },
      "orig"_a, "name_of"_a.none(), "names"_a, "span_name"_a, "settings_module"_a, "suppressed"_a,
      "holder"_a, "get_tracer"_a, "attributes"_a,
      "A method for Template.render / ExtendsNode.render: `orig` in a span `render <name>` "
      "while template spans are recorded.");
  g_cache_backend_info_type =
      reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&g_cache_backend_info_spec));
  if (!g_cache_backend_info_type) throw nb::python_error();
  m.attr("CacheBackendInfo") = nb::borrow(reinterpret_cast<PyObject*>(g_cache_backend_info_type));
  g_str_djtrace_cache = PyUnicode_InternFromString("_djtrace_cache");
  g_str_call = PyUnicode_InternFromString("call");
  g_str_cache_spans = PyUnicode_InternFromString("cache_spans");
  g_str_cache_keys = PyUnicode_InternFromString("cache_keys");
  g_str_repeat_threshold = PyUnicode_InternFromString("cache_repeat_threshold");
  g_str_default = PyUnicode_InternFromString("default");
  g_str_key = PyUnicode_InternFromString("key");
  g_str_version = PyUnicode_InternFromString("version");
  m.def(
      "cache_backend_info",
      [](nb::object alias, nb::dict attributes, nb::object api_kind, int kind) {
        auto* info = PyObject_GC_New(CacheBackendInfo, g_cache_backend_info_type);
        if (!info) throw nb::python_error();
        info->alias = alias.release().ptr();
        info->attributes = attributes.release().ptr();
        info->api_kind = api_kind.release().ptr();
        info->kind = kind;
        info->shared = new (std::nothrow) LimitedAttributes();
        PyObject_GC_Track(reinterpret_cast<PyObject*>(info));
        nb::object owned = nb::steal(reinterpret_cast<PyObject*>(info));
        if (!info->shared) throw std::bad_alloc();
        return owned;
      },
      "alias"_a.none(), "attributes"_a, "api_kind"_a.none(), "kind"_a,
      "What a traced cache backend carries in `_djtrace_cache` (see CacheCall); `attributes` "
      "must not change afterwards.");
  m.def(
      "cache_call",
      [](nb::object method, nb::object fallback, nb::str name, nb::object in_call,
         nb::object call_record, nb::object settings_mod, nb::object suppressed, nb::object holder,
         nb::object get_tracer, nb::object record_get, bool is_get, bool native_ok) {
        nb::object wrapped = method;
        auto* st = new CacheState{method.release().ptr(),
                                  fallback.release().ptr(),
                                  name.release().ptr(),
                                  in_call.release().ptr(),
                                  call_record.release().ptr(),
                                  settings_mod.release().ptr(),
                                  suppressed.release().ptr(),
                                  holder.release().ptr(),
                                  get_tracer.release().ptr(),
                                  record_get.release().ptr(),
                                  is_get,
                                  native_ok};
        return NativeMethodOf(g_cache_call_def, OwnedCapsule(st), wrapped);
      },
      "method"_a, "fallback"_a, "name"_a, "in_call"_a, "call_record"_a, "settings_module"_a,
      "suppressed"_a, "holder"_a, "get_tracer"_a, "record_get"_a, "is_get"_a, "native_ok"_a,
      "A method for a cache backend class: `method(self, ...)` in a span `cache.<op>` for an "
      "instance whose `_djtrace_cache` is a CacheBackendInfo (see CacheCall); `method` is its "
      "__wrapped__.");
  g_str_tracer_provider = PyUnicode_InternFromString("_TRACER_PROVIDER");
  g_str_connection_pool = PyUnicode_InternFromString("connection_pool");
  g_str_pool_key = PyUnicode_InternFromString("_djtrace_redis");
  m.def(
      "redis_command",
      [](nb::object method, nb::object fallback, nb::object suppressed, nb::object api,
         nb::object get_tracer, nb::object pool_attributes, nb::object error_attributes,
         nb::object no_pool) {
        if (!PyContextVar_CheckExact(suppressed.ptr()))
          throw nb::type_error("redis_command: suppressed must be a ContextVar");
        if (Py_TYPE(no_pool.ptr()) != g_cache_backend_info_type)
          throw nb::type_error("redis_command: no_pool must be a CacheBackendInfo");
        nb::object wrapped = method;
        auto* st = new RedisState{method.release().ptr(),           fallback.release().ptr(),
                                  suppressed.release().ptr(),       api.release().ptr(),
                                  get_tracer.release().ptr(),       pool_attributes.release().ptr(),
                                  error_attributes.release().ptr(), no_pool.release().ptr()};
        return NativeMethodOf(g_redis_command_def, OwnedCapsule(st), wrapped);
      },
      "method"_a, "fallback"_a, "suppressed"_a, "api"_a, "get_tracer"_a, "pool_attributes"_a,
      "error_attributes"_a, "no_pool"_a,
      "A method for redis-py's Redis class: `method(self, name, ...)` (execute_command) in a "
      "CLIENT span (see RedisCommand); `method` is its __wrapped__.");
  m.def(
      "is_cache_call",
      [](nb::handle f) {
        PyObject* fn = NativeMethodFunction(f.ptr());
        return fn && PyCFunction_Check(fn) &&
               reinterpret_cast<PyCFunctionObject*>(fn)->m_ml == &g_cache_call_def;
      },
      "f"_a.none(), "Whether `f` is a cache method cache_call made.");
  m.def(
      "set_traced_call_hooks",
      [](nb::object error_hook, nb::object fallback, nb::object request_var) {
        Replace(g_error_hook, std::move(error_hook));
        Replace(g_fallback, std::move(fallback));
        Replace(g_request_var, std::move(request_var));
      },
      "error_hook"_a.none(), "fallback"_a.none(), "request_var"_a.none() = nb::none());
}

RegisterBindings g_register(Bind);

}  // namespace
}  // namespace djtrace
