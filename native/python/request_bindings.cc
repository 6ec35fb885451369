// The SERVER span of an HTTP request, started from the WSGI environ (Django's request.META) in
// one native call: the fields are read off the dict here and the attributes built by
// native/http/server_request. Only conversion lives in this file.
//
// Also the lifecycle of a Django request's span (begin, respond, leave, end): the state lives
// in a djtrace.integrations.django.handlers.RequestSpan, whose __slots__ this file reads and
// writes by offset; the rare cases (header capture, streaming bodies, an authenticated user,
// the Gunicorn access log) call back into that module.
#include <Python.h>
#include <structmember.h>

#include <string>

#include "http/server_request.h"
#include "python/common.h"
#include "trace/w3c.h"

namespace djtrace {
namespace {

constexpr int kCaptureAllMethods = 1;  // `flags` bits, as ServerRequestOptions
constexpr int kOldSemconv = 2;

// The environ keys read, interned once (the method comes from request.method).
struct MetaKeys {
  PyObject* query_string;
  PyObject* http_host;
  PyObject* server_name;
  PyObject* server_port;
  PyObject* forwarded_for;
  PyObject* remote_addr;
  PyObject* remote_port;
  PyObject* user_agent;
  PyObject* server_protocol;
};
MetaKeys g_keys;

// A str as UTF-8, viewed in place (CPython caches the encoding on the object). Values that are
// not str (an int SERVER_PORT set by a test client) are formatted into `storage`.
std::string_view View(PyObject* value, std::string* storage) {
  if (!value || value == Py_None) return {};
  if (PyUnicode_Check(value)) {
    Py_ssize_t size;
    const char* data = PyUnicode_AsUTF8AndSize(value, &size);
    if (data) return {data, static_cast<size_t>(size)};
    PyErr_Clear();
    return ToString(value, *storage) ? std::string_view(*storage) : std::string_view();
  }
  if (PyLong_Check(value)) {
    PyObject* text = PyObject_Str(value);
    if (!text) {
      PyErr_Clear();
      return {};
    }
    ToString(text, *storage);
    Py_DECREF(text);
    return *storage;
  }
  return {};
}

struct Fields {
  http::ServerRequest request;
  std::string storage[13];  // for values that are not str
};

std::string_view MetaField(PyObject* meta, PyObject* key, std::string* storage) {
  PyObject* value = PyDict_GetItemWithError(meta, key);  // borrowed
  if (!value) {
    PyErr_Clear();
    return {};
  }
  return View(value, storage);
}

// `meta` must be a dict; `version` is the ASGI scope's http_version (or None), used when the
// environ has no SERVER_PROTOCOL.
void ReadFields(nb::handle meta_h, nb::handle method, nb::handle scheme, nb::handle path,
                nb::handle version, Fields& f) {
  PyObject* meta = meta_h.ptr();
  http::ServerRequest& r = f.request;
  r.method = View(method.ptr(), &f.storage[0]);
  r.scheme = View(scheme.ptr(), &f.storage[1]);
  r.path = View(path.ptr(), &f.storage[2]);
  if (!PyDict_Check(meta)) return;
  r.query = MetaField(meta, g_keys.query_string, &f.storage[3]);
  r.host_header = MetaField(meta, g_keys.http_host, &f.storage[4]);
  r.server_name = MetaField(meta, g_keys.server_name, &f.storage[5]);
  r.server_port = MetaField(meta, g_keys.server_port, &f.storage[6]);
  r.forwarded_for = MetaField(meta, g_keys.forwarded_for, &f.storage[7]);
  r.remote_addr = MetaField(meta, g_keys.remote_addr, &f.storage[8]);
  r.remote_port = MetaField(meta, g_keys.remote_port, &f.storage[9]);
  r.user_agent = MetaField(meta, g_keys.user_agent, &f.storage[10]);
  r.protocol = MetaField(meta, g_keys.server_protocol, &f.storage[11]);
  if (r.protocol.empty()) r.protocol = View(version.ptr(), &f.storage[12]);
}

http::ServerRequestOptions Options(int flags) {
  http::ServerRequestOptions o;
  o.capture_all_methods = (flags & kCaptureAllMethods) != 0;
  o.old_semconv = (flags & kOldSemconv) != 0;
  return o;
}

nb::str Str(std::string_view s) { return nb::str(s.data(), s.size()); }

// The SERVER span of a request, started in the current context (not entered), and its name.
// The sampler decides first: a request that is not recorded skips reading and building its
// attributes, and its span (which nobody sees by name) is named by `method` alone.
std::pair<nb::object, nb::object> StartServerSpan(NativeTracer& tracer, nb::handle meta,
                                                  nb::handle method, nb::handle scheme,
                                                  nb::handle path, nb::handle version, int flags) {
  nb::object parent = SpanInContext(nb::none());
  StartOptions o;
  SpanContextData parent_ctx;
  SetParent(parent, parent_ctx, o);
  const bool recorded = SpanStarter::Decide(*tracer.owner->core, o) != SamplingDecision::kDrop;
  nb::object name = nb::borrow(method);
  if (recorded) {
    Fields f;
    ReadFields(meta, method, scheme, path, version, f);
    name = Str(http::AppendServerRequestAttributes(f.request, Options(flags), &o.attributes));
  }
  // The parent is already in `o`: NewSpan is given none to resolve again.
  nb::object span = NewSpan(tracer, name, static_cast<int>(SpanKind::kServer), nb::none(),
                            nb::none(), nb::none(), nb::none(), kAttachOnEnter, std::move(o));
  return {std::move(span), std::move(name)};
}

void BindRequestLifecycle(nb::module_& m);  // below

void Bind(nb::module_& m) {
  g_keys = MetaKeys{
      PyUnicode_InternFromString("QUERY_STRING"),
      PyUnicode_InternFromString("HTTP_HOST"),
      PyUnicode_InternFromString("SERVER_NAME"),
      PyUnicode_InternFromString("SERVER_PORT"),
      PyUnicode_InternFromString("HTTP_X_FORWARDED_FOR"),
      PyUnicode_InternFromString("REMOTE_ADDR"),
      PyUnicode_InternFromString("REMOTE_PORT"),
      PyUnicode_InternFromString("HTTP_USER_AGENT"),
      PyUnicode_InternFromString("SERVER_PROTOCOL"),
  };
  m.def(
      "start_http_server_span",
      [](nb::handle tracer_h, nb::handle meta, nb::handle method, nb::handle scheme,
         nb::handle path, nb::handle version, int flags) -> nb::object {
        NativeTracer* tracer = nullptr;
        if (!nb::try_cast<NativeTracer*>(tracer_h, tracer) || !tracer ||
            tracer->owner->py_start_current.is_valid())
          return nb::none();
        auto [span, name] = StartServerSpan(*tracer, meta, method, scheme, path, version, flags);
        SpanEnter(span);
        return nb::make_tuple(span, name);
      },
      "tracer"_a, "meta"_a, "method"_a.none(), "scheme"_a.none(), "path"_a.none(),
      "version"_a.none(), "flags"_a,
      "(span, name) for a request: a SERVER span named after its method, with the HTTP "
      "semantic-convention attributes read from `meta` (a WSGI environ), started in the current "
      "context and made current (span.__exit__ detaches it; it does not end it). None when "
      "`tracer` is not a native djtrace tracer. flags: 1 records unknown methods as sent, 2 adds "
      "the pre-1.21 attribute names.");
  m.def(
      "http_server_attributes",
      [](nb::handle meta, nb::handle method, nb::handle scheme, nb::handle path, nb::handle version,
         int flags) {
        Fields f;
        ReadFields(meta, method, scheme, path, version, f);
        http::ServerRequestOptions options = Options(flags);
        Attributes attrs;
        nb::str name = Str(http::AppendServerRequestAttributes(f.request, options, &attrs));
        return nb::make_tuple(FromAttributes(attrs), name);
      },
      "meta"_a, "method"_a.none(), "scheme"_a.none(), "path"_a.none(), "version"_a.none(),
      "flags"_a,
      "(attributes, name) of start_http_server_span, for tracers that are not djtrace's.");
  BindRequestLifecycle(m);
}

// ---- Django request lifecycle ---------------------------------------------------------------

// A __slots__ member of a Python class, read and written in place (its descriptor's offset).
struct Slot {
  Py_ssize_t offset = -1;
  PyObject* Get(PyObject* obj) const {  // borrowed; null when unset
    return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(obj) + offset);
  }
  void Set(PyObject* obj, PyObject* value) const {
    PyObject** p = reinterpret_cast<PyObject**>(reinterpret_cast<char*>(obj) + offset);
    PyObject* old = *p;
    Py_XINCREF(value);
    *p = value;
    Py_XDECREF(old);
  }
  void SetBool(PyObject* obj, bool value) const { Set(obj, value ? Py_True : Py_False); }
  bool True(PyObject* obj) const { return Get(obj) == Py_True; }
};

Slot FindSlot(nb::handle type, const char* name) {
  nb::object d = type.attr(name);
  if (!PyObject_TypeCheck(d.ptr(), &PyMemberDescr_Type))
    throw std::runtime_error(std::string("not a __slots__ member: ") + name);
  PyMemberDef* m = reinterpret_cast<PyMemberDescrObject*>(d.ptr())->d_member;
  if (m->type != T_OBJECT_EX) throw std::runtime_error(std::string("unexpected slot: ") + name);
  return Slot{m->offset};
}

// DjangoSettings.request_flags bits (set in djtrace.integrations.django.settings).
enum RequestFlags : long {
  kFlagCaptureAllMethods = 1,
  kFlagOldSemconv = 2,
  kFlagMiddleware = 4,
  kFlagViews = 8,
  kFlagDrf = 16,
  kFlagEnduser = 32,
  kFlagRequestHeaders = 64,
  kFlagResponseHeaders = 128,
  kFlagExcluded = 256,
  kFlagPlainScheme = 512,  // Django's SECURE_PROXY_SSL_HEADER is not set
};

struct RequestGlue {
  PyTypeObject* rs_type = nullptr;        // handlers.RequestSpan
  PyTypeObject* root_type = nullptr;      // _state.RootState
  PyObject* request_var = nullptr;        // _state.REQUEST
  PyObject* root_var = nullptr;           // _state.ROOT
  PyObject* excluded = nullptr;           // handlers.EXCLUDED
  PyObject* propagate = nullptr;          // the opentelemetry.propagate module
  PyObject* meta_keys = nullptr;          // handlers._meta_keys() -> tuple of META keys | None
  PyObject* extract = nullptr;            // handlers._extract_always(meta) -> Context | None
  PyObject* hooks = nullptr;              // handlers._NativeHooks: the rare cases, in Python
  PyObject* report = nullptr;             // _report_internal_error(where)
  PyObject* status_error = nullptr;       // StatusCode.ERROR (for spans that are not ours)
  PyTypeObject* wsgi_request = nullptr;   // django.core.handlers.wsgi.WSGIRequest
  PyObject* suppressed_var = nullptr;     // _suppress.SUPPRESSED
  PyObject* otel_suppress_key = nullptr;  // OpenTelemetry's suppress-instrumentation key, or null
  // The propagator the META keys were computed for, and those keys (None: always extract).
  PyObject* propagator = nullptr;
  PyObject* keys = nullptr;
  Slot span, request, tracer, scope, parent_token, req_token, root_token, root, ended, errored,
      routed, cfg, method, recording, trace_middleware, trace_views, trace_drf, ctx;
  Slot root_span;
};
RequestGlue g_req;

struct RequestNames {
  PyObject *META, *method, *scheme, *path, *scope, *http_version, *request_span, *request_flags,
      *excluded_re, *search, *status_code, *resolver_match, *route, *user, *wrapped,
      *resource_closers, *streaming, *gunicorn_socket, *http_host, *server_name, *http_route,
      *status_attr, *status_attr_old, *error_type, *slash, *http_text_format, *get_global_textmap,
      *exit, *end, *set_attribute, *update_name, *set_status, *append, *enduser, *response_headers,
      *stream, *empty, *environ, *wsgi_url_scheme, *environ_trace_id, *environ_span_id,
      *environ_sampled, *str_true, *str_false;
};
RequestNames g_n;

// Whether djtrace.integrations.logging is installed: Gunicorn's access log may then print the
// request's ids, which it reads from the environ after the span has ended.
bool g_gunicorn_ids = false;

// What djtrace.integrations.logging.remember_request stores, without its Python call: the ids
// of the request's span (recorded, so valid) as its ENVIRON_* keys.
void RememberIds(PyObject* environ, const SpanContextData& c) {
  const std::string trace = ToHex(c.trace_id.data(), c.trace_id.size());
  const std::string span = ToHex(c.span_id.data(), c.span_id.size());
  nb::object trace_str = nb::steal(PyUnicode_FromStringAndSize(trace.data(), trace.size()));
  nb::object span_str = nb::steal(PyUnicode_FromStringAndSize(span.data(), span.size()));
  if (!trace_str.is_valid() || !span_str.is_valid() ||
      PyDict_SetItem(environ, g_n.environ_trace_id, trace_str.ptr()) < 0 ||
      PyDict_SetItem(environ, g_n.environ_span_id, span_str.ptr()) < 0 ||
      PyDict_SetItem(environ, g_n.environ_sampled, c.sampled() ? g_n.str_true : g_n.str_false) < 0)
    throw nb::python_error();
}

void ReportError(const char* where) {
  // The instrumentation's own failure: logged once (rate-limited) and counted by Python.
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (g_req.report) {
    PyObject* r = PyObject_CallFunction(g_req.report, "s", where);
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
}

// span.set_attribute(key, value) for one of our spans natively, for others through the API.
void SetSpanAttribute(PyObject* span, PyObject* key, PyObject* value) {
  if (PySpan* ps = FastSpan(span)) {
    SetAttributeFromPython(*ps, key, value);
    return;
  }
  PyObject* r = PyObject_CallMethodObjArgs(span, g_n.set_attribute, key, value, nullptr);
  if (!r) throw nb::python_error();
  Py_DECREF(r);
}

// The http.route and the span name, once the URL is resolved (RequestSpan.record_route).
void RecordRoute(PyObject* rs) {
  g_req.routed.SetBool(rs, true);
  PyObject* request = g_req.request.Get(rs);
  PyObject* span = g_req.span.Get(rs);
  if (!request || !span) return;
  PySpan* ps = FastSpan(span);
  if (ps && !ps->span.is_recording()) return;  // a request not recorded: nobody sees the route
  nb::object match = nb::steal(OptionalAttr(request, g_n.resolver_match));
  if (!match.is_valid() || match.is_none()) return;
  nb::object route = nb::steal(PyObject_GetAttr(match.ptr(), g_n.route));
  if (!route.is_valid()) throw nb::python_error();
  int truthy = PyObject_IsTrue(route.ptr());
  if (truthy < 0) throw nb::python_error();
  if (!truthy) route = nb::borrow(g_n.slash);
  SetSpanAttribute(span, g_n.http_route, route.ptr());
  PyObject* method = g_req.method.Get(rs);
  nb::object name =
      nb::steal(PyUnicode_FromFormat("%S %S", method ? method : Py_None, route.ptr()));
  if (!name.is_valid()) throw nb::python_error();
  if (ps) {
    RenameSpan(*ps, name.ptr());
  } else {
    PyObject* r = PyObject_CallMethodObjArgs(span, g_n.update_name, name.ptr(), nullptr);
    if (!r) throw nb::python_error();
    Py_DECREF(r);
  }
}

// request.scheme without the property's two Python frames, where it is known to read
// environ["wsgi.url_scheme"]: a WSGIRequest itself (not a subclass, which may override either)
// while SECURE_PROXY_SSL_HEADER is not set. Django computes it again for its own checks.
PyObject* RequestScheme(PyObject* request, long flags) {
  if ((flags & kFlagPlainScheme) && g_req.wsgi_request && Py_IS_TYPE(request, g_req.wsgi_request)) {
    PyObject* environ = PyObject_GetAttr(request, g_n.environ);
    if (environ && PyDict_Check(environ)) {
      PyObject* scheme = PyDict_GetItemWithError(environ, g_n.wsgi_url_scheme);  // environ.get
      Py_DECREF(environ);
      if (scheme) return Py_NewRef(scheme);
      if (!PyErr_Occurred()) return Py_NewRef(Py_None);
    } else {
      Py_XDECREF(environ);
    }
    PyErr_Clear();
  }
  return PyObject_GetAttr(request, g_n.scheme);
}

long SettingsFlags(PyObject* cfg) {
  nb::object flags = nb::steal(PyObject_GetAttr(cfg, g_n.request_flags));
  if (!flags.is_valid()) throw nb::python_error();
  long v = PyLong_AsLong(flags.ptr());
  if (v == -1 && PyErr_Occurred()) throw nb::python_error();
  return v;
}

// `key in meta` for any of the propagator's META keys (recomputed when the propagator changes).
bool HasPropagationHeaders(PyObject* meta) {
  nb::object propagator = nb::steal(ModuleGlobal(g_req.propagate, g_n.http_text_format));
  if (!propagator.is_valid()) {
    PyErr_Clear();
    propagator = nb::steal(PyObject_CallMethodNoArgs(g_req.propagate, g_n.get_global_textmap));
    if (!propagator.is_valid()) throw nb::python_error();
  }
  if (propagator.ptr() != g_req.propagator) {
    nb::object keys = nb::steal(PyObject_CallNoArgs(g_req.meta_keys));
    if (!keys.is_valid()) throw nb::python_error();
    Py_XSETREF(g_req.keys, keys.release().ptr());
    Py_XSETREF(g_req.propagator, propagator.release().ptr());
  }
  if (g_req.keys == Py_None || !PyTuple_Check(g_req.keys)) return true;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(g_req.keys); ++i) {
    int found = PyDict_Contains(meta, PyTuple_GET_ITEM(g_req.keys, i));
    if (found < 0) throw nb::python_error();
    if (found) return true;
  }
  return false;
}

PyObject* NewInstance(PyTypeObject* type) {
  return type->tp_alloc(type, 0);  // __slots__ start unset; every one read later is set here
}

// request_begin(request, cfg, tracer) -> RequestSpan | None (already traced) | EXCLUDED |
// NotImplemented (a case handlers.begin handles in Python: request header capture, or a
// tracer that is not djtrace's native one).
PyObject* RequestBegin(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3 || !g_req.rs_type) {
    PyErr_SetString(PyExc_TypeError, "request_begin(request, cfg, tracer)");
    return nullptr;
  }
  PyObject* request = args[0];
  PyObject* cfg = args[1];
  PyObject* tracer_obj = args[2];
  NativeTracer* tracer = FastTracer(tracer_obj);
  if (!tracer || tracer->owner->py_start_current.is_valid()) Py_RETURN_NOTIMPLEMENTED;
  PyObject* parent_token = nullptr;
  try {
    const long flags = SettingsFlags(cfg);
    if (flags & kFlagRequestHeaders) Py_RETURN_NOTIMPLEMENTED;
    {
      PyObject* current = nullptr;
      if (PyContextVar_Get(g_req.request_var, nullptr, &current) < 0) throw nb::python_error();
      bool same = current && current != Py_None && PyObject_TypeCheck(current, g_req.rs_type) &&
                  g_req.request.Get(current) == request;
      Py_XDECREF(current);
      if (same) Py_RETURN_NONE;
    }
    nb::object meta = nb::steal(PyObject_GetAttr(request, g_n.META));
    if (!meta.is_valid()) throw nb::python_error();
    if (!PyDict_Check(meta.ptr())) Py_RETURN_NOTIMPLEMENTED;
    nb::object method = nb::steal(PyObject_GetAttr(request, g_n.method));
    nb::object scheme = nb::steal(RequestScheme(request, flags));
    nb::object path = nb::steal(PyObject_GetAttr(request, g_n.path));
    if (!method.is_valid() || !scheme.is_valid() || !path.is_valid()) throw nb::python_error();

    if (flags & kFlagExcluded) {
      // As handlers._url_for_exclusion: scheme://host/path against the excluded-URL patterns.
      PyObject* host = PyDict_GetItemWithError(meta.ptr(), g_n.http_host);
      if (!host || !PyObject_IsTrue(host)) {
        if (PyErr_Occurred()) throw nb::python_error();
        host = PyDict_GetItemWithError(meta.ptr(), g_n.server_name);
        if (!host && PyErr_Occurred()) throw nb::python_error();
      }
      nb::object url = nb::steal(
          PyUnicode_FromFormat("%S://%S%S", scheme.ptr(), host ? host : g_n.empty, path.ptr()));
      if (!url.is_valid()) throw nb::python_error();
      nb::object rx = nb::steal(PyObject_GetAttr(cfg, g_n.excluded_re));
      if (!rx.is_valid()) throw nb::python_error();
      if (!rx.is_none()) {
        nb::object m = nb::steal(PyObject_CallMethodOneArg(rx.ptr(), g_n.search, url.ptr()));
        if (!m.is_valid()) throw nb::python_error();
        if (!m.is_none()) return Py_NewRef(g_req.excluded);
      }
    }

    nb::object asgi_scope = nb::steal(OptionalAttr(request, g_n.scope));
    PyObject* version = Py_None;
    bool asgi = asgi_scope.is_valid() && PyDict_CheckExact(asgi_scope.ptr());
    if (asgi) {
      version = PyDict_GetItemWithError(asgi_scope.ptr(), g_n.http_version);
      if (!version) {
        if (PyErr_Occurred()) throw nb::python_error();
        version = Py_None;
      }
    }

    if (HasPropagationHeaders(meta.ptr())) {
      nb::object parent = nb::steal(PyObject_CallOneArg(g_req.extract, meta.ptr()));
      if (!parent.is_valid()) throw nb::python_error();
      if (!parent.is_none()) {
        if (g_ctx.var) {
          parent_token = PyContextVar_Set(g_ctx.var, parent.ptr());
        } else {
          parent_token = PyObject_CallOneArg(g_ctx.attach, parent.ptr());
        }
        if (!parent_token) throw nb::python_error();
      }
    }

    auto [span, name] =
        StartServerSpan(*tracer, meta, method, scheme, path, nb::handle(version),
                        static_cast<int>(flags & (kFlagCaptureAllMethods | kFlagOldSemconv)));
    SpanEnter(span);
    const bool recording = FastSpan(span.ptr())->span.is_recording();

    nb::object rs = nb::steal(NewInstance(g_req.rs_type));
    if (!rs.is_valid()) throw nb::python_error();
    PyObject* r = rs.ptr();
    g_req.span.Set(r, span.ptr());
    g_req.request.Set(r, request);
    g_req.tracer.Set(r, tracer_obj);
    g_req.scope.Set(r, span.ptr());  // its __exit__ detaches it without ending it
    g_req.parent_token.Set(r, parent_token ? parent_token : Py_None);
    Py_CLEAR(parent_token);
    g_req.ended.SetBool(r, false);
    g_req.errored.SetBool(r, false);
    g_req.routed.SetBool(r, false);
    g_req.cfg.Set(r, cfg);
    g_req.method.Set(r, name.ptr());
    g_req.recording.SetBool(r, recording);
    g_req.trace_middleware.SetBool(r, recording && (flags & kFlagMiddleware));
    g_req.trace_views.SetBool(r, recording && (flags & kFlagViews));
    g_req.trace_drf.SetBool(r, recording && (flags & kFlagDrf));
    g_req.ctx.Set(r, Py_None);
    PyObject* req_token = PyContextVar_Set(g_req.request_var, r);
    if (!req_token) throw nb::python_error();
    g_req.req_token.Set(r, req_token);
    Py_DECREF(req_token);
    // The root announced to the statistics (db_bindings.cc, AttachMissingStats), which only a
    // recorded request has: one that is not recorded skips the object and the variable.
    g_req.root.Set(r, Py_None);
    g_req.root_token.Set(r, Py_None);
    if (recording) {
      nb::object root = nb::steal(NewInstance(g_req.root_type));
      if (!root.is_valid()) throw nb::python_error();
      g_req.root_span.Set(root.ptr(), span.ptr());
      g_req.root.Set(r, root.ptr());
      PyObject* root_token = PyContextVar_Set(g_req.root_var, root.ptr());
      if (!root_token) throw nb::python_error();
      g_req.root_token.Set(r, root_token);
      Py_DECREF(root_token);
    }
    if (asgi) {
      if (PyDict_SetItem(asgi_scope.ptr(), g_n.request_span, r) < 0) throw nb::python_error();
    } else if (recording && g_gunicorn_ids) {
      // Gunicorn's access log is written after the span ends: leave it the ids.
      int gunicorn = PyDict_Contains(meta.ptr(), g_n.gunicorn_socket);
      if (gunicorn < 0) throw nb::python_error();
      if (gunicorn) RememberIds(meta.ptr(), FastSpan(span.ptr())->span.context());
    }
    return rs.release().ptr();
  } catch (nb::python_error& e) {
    e.restore();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  // The caller (handlers.trace_sync) reports the failure and serves the request untraced.
  if (parent_token) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    Detach(parent_token);
    Py_DECREF(parent_token);
    PyErr_Restore(type, value, tb);
  }
  return nullptr;
}

}  // namespace

PyObject* RequestSpanField(PyObject* rs, RequestField field) {
  if (!g_req.rs_type || !PyObject_TypeCheck(rs, g_req.rs_type)) return nullptr;
  switch (field) {
    case RequestField::kTracer:
      return g_req.tracer.Get(rs);
    case RequestField::kRecording:
      return g_req.recording.Get(rs);
    case RequestField::kTraceMiddleware:
      return g_req.trace_middleware.Get(rs);
    case RequestField::kTraceViews:
      return g_req.trace_views.Get(rs);
  }
  return nullptr;
}

namespace {

bool CheckRequestSpan(PyObject* rs) {
  if (g_req.rs_type && PyObject_TypeCheck(rs, g_req.rs_type)) return true;
  PyErr_SetString(PyExc_TypeError, "expected a RequestSpan");
  return false;
}

// The response's attributes (RequestSpan._record_response).
void RecordResponse(PyObject* rs, PyObject* response, long flags) {
  PyObject* span = g_req.span.Get(rs);
  if (!span) return;
  nb::object status = nb::steal(PyObject_GetAttr(response, g_n.status_code));
  if (!status.is_valid()) throw nb::python_error();
  SetSpanAttribute(span, g_n.status_attr, status.ptr());
  if (flags & kFlagOldSemconv) SetSpanAttribute(span, g_n.status_attr_old, status.ptr());
  long code = PyLong_Check(status.ptr()) ? PyLong_AsLong(status.ptr()) : 0;
  if (code == -1 && PyErr_Occurred()) PyErr_Clear();
  if (code >= 500 && !g_req.errored.True(rs)) {
    g_req.errored.SetBool(rs, true);
    nb::object text = nb::steal(PyObject_Str(status.ptr()));
    if (!text.is_valid()) throw nb::python_error();
    SetSpanAttribute(span, g_n.error_type, text.ptr());
    if (PySpan* ps = FastSpan(span)) {
      ps->span.SetStatus(StatusCode::kError, "");
    } else {
      PyObject* r = PyObject_CallMethodObjArgs(span, g_n.set_status, g_req.status_error, nullptr);
      if (!r) throw nb::python_error();
      Py_DECREF(r);
    }
  }
  RecordRoute(rs);
  if (flags & kFlagEnduser) {
    // Only a user that authentication already loaded (see handlers._authenticated_user_id):
    // most requests have none, or a lazy one nobody evaluated, and need no Python call.
    PyObject* request = g_req.request.Get(rs);
    nb::object user = request ? nb::steal(OptionalAttr(request, g_n.user)) : nb::object();
    if (user.is_valid() && !user.is_none()) {
      // Read past LazyObject's __getattribute__ (Python): the instance's own _wrapped.
      nb::object wrapped = nb::steal(PyObject_GenericGetAttr(user.ptr(), g_n.wrapped));
      if (!wrapped.is_valid()) PyErr_Clear();
      PyObject* w = wrapped.is_valid() ? wrapped.ptr() : user.ptr();
      if (w != Py_None && Py_TYPE(w) != &PyBaseObject_Type) {
        PyObject* r = PyObject_CallMethodObjArgs(g_req.hooks, g_n.enduser, rs, nullptr);
        if (!r) throw nb::python_error();
        Py_DECREF(r);
      }
    }
  }
  if (flags & kFlagResponseHeaders) {
    PyObject* r =
        PyObject_CallMethodObjArgs(g_req.hooks, g_n.response_headers, rs, response, nullptr);
    if (!r) throw nb::python_error();
    Py_DECREF(r);
  }
}

PyObject* RequestEndImpl(PyObject* rs);

PyMethodDef g_request_closer_def = {
    "end", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(+[](PyObject* rs, PyObject*) {
      return RequestEndImpl(rs);
    })),
    METH_NOARGS, "Ends the request's span (a response closer)."};

// request_respond(rs, response): records the response and arranges for the span to end when
// the response is closed (RequestSpan.respond).
PyObject* RequestRespond(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "request_respond(rs, response)");
    return nullptr;
  }
  PyObject* rs = args[0];
  PyObject* response = args[1];
  if (!CheckRequestSpan(rs)) return nullptr;
  long flags = 0;
  try {
    PyObject* cfg = g_req.cfg.Get(rs);
    if (cfg) flags = SettingsFlags(cfg);
    RecordResponse(rs, response, flags);
  } catch (nb::python_error& e) {
    e.restore();
    ReportError("django response attributes");
  } catch (const std::exception&) {
    ReportError("django response attributes");
  }
  PyObject* closers = OptionalAttr(response, g_n.resource_closers);
  if (!closers || closers == Py_None) {
    Py_XDECREF(closers);
    return RequestEndImpl(rs);
  }
  nb::object streaming = nb::steal(OptionalAttr(response, g_n.streaming));
  if (streaming.is_valid() && PyObject_IsTrue(streaming.ptr()) == 1) {
    PyObject* r = PyObject_CallMethodObjArgs(g_req.hooks, g_n.stream, rs, response, nullptr);
    if (!r) ReportError("django streaming response");
    Py_XDECREF(r);
  }
  if (PyErr_Occurred()) PyErr_Clear();
  int rc = -1;
  if (PyObject* closer = PyCFunction_NewEx(&g_request_closer_def, rs, nullptr)) {
    if (PyList_Check(closers)) {
      rc = PyList_Append(closers, closer);
    } else if (PyObject* r = PyObject_CallMethodObjArgs(closers, g_n.append, closer, nullptr)) {
      rc = 0;
      Py_DECREF(r);
    }
    Py_DECREF(closer);
  }
  Py_DECREF(closers);
  if (rc < 0) {
    ReportError("django response closer");
    return RequestEndImpl(rs);  // nobody would end it
  }
  Py_RETURN_NONE;
}

void ResetVar(PyObject* var, PyObject* token) {
  if (!token || token == Py_None) return;
  if (PyContextVar_Reset(var, token) < 0) PyErr_Clear();  // set in another context
}

// request_leave(rs): detaches the request's context from the current one; the span stays
// open (RequestSpan.leave).
PyObject* RequestLeave(PyObject*, PyObject* rs) {
  if (!CheckRequestSpan(rs)) return nullptr;
  ResetVar(g_req.root_var, g_req.root_token.Get(rs));
  ResetVar(g_req.request_var, g_req.req_token.Get(rs));
  if (PyObject* scope = g_req.scope.Get(rs)) {
    if (FastSpan(scope)) {
      try {
        SpanExit(scope, nb::none());
      } catch (nb::python_error& e) {
        e.restore();
        ReportError("django request leave");
      }
    } else {
      PyObject* r = PyObject_CallMethodObjArgs(scope, g_n.exit, Py_None, Py_None, Py_None, nullptr);
      if (!r) ReportError("django request leave");
      Py_XDECREF(r);
    }
  }
  PyObject* token = g_req.parent_token.Get(rs);
  if (token && token != Py_None) {
    Py_INCREF(token);
    g_req.parent_token.Set(rs, Py_None);
    Detach(token);
    Py_DECREF(token);
  }
  Py_RETURN_NONE;
}

PyObject* RequestEndImpl(PyObject* rs) {
  if (!CheckRequestSpan(rs)) return nullptr;
  if (g_req.ended.True(rs)) Py_RETURN_NONE;
  g_req.ended.SetBool(rs, true);
  try {
    if (!g_req.routed.True(rs)) RecordRoute(rs);
    PyObject* span = g_req.span.Get(rs);
    if (PySpan* ps = span ? FastSpan(span) : nullptr) {
      EndSpan(span, *ps, nb::none());
    } else if (span) {
      PyObject* r = PyObject_CallMethodNoArgs(span, g_n.end);
      if (!r) throw nb::python_error();
      Py_DECREF(r);
    }
  } catch (nb::python_error& e) {
    e.restore();
    ReportError("django request end");
  } catch (const std::exception&) {
    ReportError("django request end");
  }
  Py_RETURN_NONE;
}

PyObject* RequestEnd(PyObject*, PyObject* rs) { return RequestEndImpl(rs); }

PyObject* RequestRecordRoute(PyObject*, PyObject* rs) {
  if (!CheckRequestSpan(rs)) return nullptr;
  try {
    RecordRoute(rs);
  } catch (nb::python_error& e) {
    e.restore();
    return nullptr;
  }
  Py_RETURN_NONE;
}

// BaseHandler.get_response, wrapped: the request served inside its span. State: (the original
// get_response, the settings module, the _state module, _state.tracer, handlers._begin_python,
// handlers._serve_sync). Native so that a traced request adds no Python frame of ours; an
// excluded URL and what begin does in Python go through _serve_sync.
struct HandlerState {
  PyObject* orig;
  PyObject* settings_mod;
  PyObject* holder;
  PyObject* get_tracer;
  PyObject* begin;
  PyObject* serve;

  ~HandlerState() {
    for (PyObject* o : {orig, settings_mod, holder, get_tracer, begin, serve}) Py_XDECREF(o);
  }
};

// An excluded request served as handlers._serve_sync does, without its Python frames: djtrace's
// and OpenTelemetry's suppression flags set, and a valid but unsampled root span current, so
// that whatever runs in it records nothing and makes no orphan root span.
template <typename Serve>
PyObject* ServeExcluded(NativeTracer& tracer, Serve serve) {
  PyObject* suppress_token = PyContextVar_Set(g_req.suppressed_var, Py_True);
  if (!suppress_token) ReportError("django excluded request");
  PyObject* context_token = AttachUnsampledRoot(tracer, g_req.otel_suppress_key, Py_True);
  if (!context_token) ReportError("django excluded request");
  PyObject* response = serve();
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);  // the response's exception, kept across the resets
  if (context_token) {
    Detach(context_token);
    Py_DECREF(context_token);
  }
  if (suppress_token) {
    ResetVar(g_req.suppressed_var, suppress_token);
    Py_DECREF(suppress_token);
  }
  PyErr_Restore(type, value, tb);
  return response;
}

PyObject* g_str_instrument = nullptr;
PyObject* g_str_placed = nullptr;
PyObject* g_str_fail = nullptr;

PyObject* HandlerGetResponse(PyObject* state_obj, PyObject* const* args, Py_ssize_t nargs_f,
                             PyObject* kwnames) {
  auto* st = reinterpret_cast<HandlerState*>(PyCapsule_GetPointer(state_obj, nullptr));
  if (!st) return nullptr;
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargs_f);
  if (nargs != 2 || kwnames) return PyObject_Vectorcall(st->orig, args, nargs, kwnames);
  PyObject* self = args[0];
  PyObject* request = args[1];
  auto plain = [&] { return PyObject_Vectorcall(st->orig, args, 2, nullptr); };

  nb::object cfg = nb::steal(DjangoSettings(st->settings_mod));
  if (!cfg.is_valid()) return nullptr;  // as the Python wrapper did: settings.get() raised
  {
    nb::object on = nb::steal(PyObject_GetAttr(cfg.ptr(), g_str_instrument));
    if (!on.is_valid()) return nullptr;
    if (on.ptr() != Py_True && PyObject_IsTrue(on.ptr()) != 1) return plain();
    nb::object placed = nb::steal(OptionalAttr(self, g_str_placed));
    if (placed.is_valid() && PyObject_IsTrue(placed.ptr()) == 1) return plain();
    if (PyErr_Occurred()) PyErr_Clear();
  }

  nb::object rs;
  nb::object tracer = nb::steal(CachedTracer(st->holder, st->get_tracer));
  {
    if (tracer.is_valid()) {
      PyObject* begin_args[3] = {request, cfg.ptr(), tracer.ptr()};
      rs = nb::steal(RequestBegin(nullptr, begin_args, 3));
      if (rs.is_valid() && rs.ptr() == Py_NotImplemented) {
        PyObject* py_args[2] = {request, cfg.ptr()};
        rs = nb::steal(PyObject_Vectorcall(st->begin, py_args, 2, nullptr));
      }
    }
    if (!rs.is_valid()) {
      ReportError("django request start");
      return plain();
    }
  }
  if (rs.is_none()) return plain();
  if (!PyObject_TypeCheck(rs.ptr(), g_req.rs_type)) {  // EXCLUDED
    NativeTracer* native = FastTracer(tracer.ptr());
    if (native && g_ctx.var) return ServeExcluded(*native, plain);
    nb::object call = nb::steal(PyMethod_New(st->orig, self));
    if (!call.is_valid()) return nullptr;
    PyObject* serve_args[3] = {call.ptr(), request, rs.ptr()};
    return PyObject_Vectorcall(st->serve, serve_args, 3, nullptr);
  }

  PyObject* response = plain();
  if (!response) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb) PyException_SetTraceback(value, tb);
    if (value) {
      PyObject* r = PyObject_CallMethodOneArg(rs.ptr(), g_str_fail, value);
      if (!r) ReportError("django request exception");
      Py_XDECREF(r);
    }
    PyObject* r = RequestLeave(nullptr, rs.ptr());
    Py_XDECREF(r);
    r = RequestEndImpl(rs.ptr());
    Py_XDECREF(r);
    if (PyErr_Occurred()) PyErr_Clear();
    PyErr_Restore(type, value, tb);
    return nullptr;
  }
  PyObject* respond_args[2] = {rs.ptr(), response};
  PyObject* r = RequestRespond(nullptr, respond_args, 2);
  if (!r) ReportError("django response");
  Py_XDECREF(r);
  r = RequestLeave(nullptr, rs.ptr());
  if (!r) ReportError("django request leave");
  Py_XDECREF(r);
  return response;
}

PyMethodDef g_handler_get_response_def = {
    "get_response", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(HandlerGetResponse)),
    METH_FASTCALL | METH_KEYWORDS, "BaseHandler.get_response inside the request's span."};

}  // namespace

// A native function that binds like a Python function when stored on a class and keeps the
// function it wraps in __wrapped__ (as functools.wraps does), for inspect.unwrap, debuggers
// and the tests that check an installation.
struct NativeMethod {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* fn;       // the PyCFunction that does the work
  PyObject* wrapped;  // __wrapped__
};

PyObject* NativeMethodCall(PyObject* self, PyObject* const* args, size_t nargsf,
                           PyObject* kwnames) {
  return PyObject_Vectorcall(reinterpret_cast<NativeMethod*>(self)->fn, args, nargsf, kwnames);
}

PyObject* NativeMethodGet(PyObject* self, PyObject* obj, PyObject*) {
  if (!obj || obj == Py_None) return Py_NewRef(self);
  return PyMethod_New(self, obj);
}

void NativeMethodDealloc(PyObject* self) {
  auto* m = reinterpret_cast<NativeMethod*>(self);
  Py_XDECREF(m->fn);
  Py_XDECREF(m->wrapped);
  Py_TYPE(self)->tp_free(self);
}

PyMemberDef g_native_method_members[] = {
    {"__wrapped__", T_OBJECT, offsetof(NativeMethod, wrapped), READONLY, nullptr},
    // What the integrations that patch a class attribute look for (they may unwrap it).
    {"__djtrace_wrapped__", T_OBJECT, offsetof(NativeMethod, wrapped), READONLY, nullptr},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(NativeMethod, vectorcall), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyTypeObject* NativeMethodType() {
  static PyTypeObject* type = [] {
    static PyType_Slot slots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(NativeMethodDealloc)},
                                  {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
                                  {Py_tp_descr_get, reinterpret_cast<void*>(NativeMethodGet)},
                                  {Py_tp_members, g_native_method_members},
                                  {0, nullptr}};
    static PyType_Spec spec = {
        "djtrace._native.NativeMethod", sizeof(NativeMethod), 0,
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR, slots};
    return reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  }();
  return type;
}

PyObject* NewNativeMethod(PyObject* fn, PyObject* wrapped) {
  PyTypeObject* type = NativeMethodType();
  if (!type) return nullptr;
  auto* m = PyObject_New(NativeMethod, type);
  if (!m) return nullptr;
  m->vectorcall = NativeMethodCall;
  m->fn = Py_NewRef(fn);
  m->wrapped = Py_NewRef(wrapped);
  return reinterpret_cast<PyObject*>(m);
}

nb::object NativeMethodOf(PyMethodDef& def, nb::handle state, nb::handle wrapped) {
  nb::object fn = nb::steal(PyCFunction_NewEx(&def, state.ptr(), nullptr));
  if (!fn.is_valid()) throw nb::python_error();
  nb::object method = nb::steal(NewNativeMethod(fn.ptr(), wrapped.ptr()));
  if (!method.is_valid()) throw nb::python_error();
  return method;
}

PyObject* NativeMethodFunction(PyObject* obj) {
  PyTypeObject* type = NativeMethodType();
  if (!type || Py_TYPE(obj) != type) return nullptr;
  return reinterpret_cast<NativeMethod*>(obj)->fn;
}

namespace {

PyMethodDef g_request_defs[] = {
    {"request_begin", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(RequestBegin)),
     METH_FASTCALL,
     "request_begin(request, cfg, tracer): starts the request's SERVER span and makes the "
     "request current; returns its RequestSpan, None when this request is already traced, "
     "EXCLUDED for an excluded URL, or NotImplemented for what handlers.begin does in Python."},
    {"request_respond", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(RequestRespond)),
     METH_FASTCALL, "request_respond(rs, response): RequestSpan.respond."},
    {"request_leave", RequestLeave, METH_O, "request_leave(rs): RequestSpan.leave."},
    {"request_end", RequestEnd, METH_O, "request_end(rs): RequestSpan.end."},
    {"request_record_route", RequestRecordRoute, METH_O,
     "request_record_route(rs): RequestSpan.record_route."},
};

PyObject* Intern(const char* s) { return PyUnicode_InternFromString(s); }

void BindRequestLifecycle(nb::module_& m) {
  g_n = RequestNames{Intern("META"),
                     Intern("method"),
                     Intern("scheme"),
                     Intern("path"),
                     Intern("scope"),
                     Intern("http_version"),
                     Intern("djtrace.request_span"),
                     Intern("request_flags"),
                     Intern("excluded_re"),
                     Intern("search"),
                     Intern("status_code"),
                     Intern("resolver_match"),
                     Intern("route"),
                     Intern("user"),
                     Intern("_wrapped"),
                     Intern("_resource_closers"),
                     Intern("streaming"),
                     Intern("gunicorn.socket"),
                     Intern("HTTP_HOST"),
                     Intern("SERVER_NAME"),
                     Intern("http.route"),
                     Intern("http.response.status_code"),
                     Intern("http.status_code"),
                     Intern("error.type"),
                     Intern("/"),
                     Intern("_HTTP_TEXT_FORMAT"),
                     Intern("get_global_textmap"),
                     Intern("__exit__"),
                     Intern("end"),
                     Intern("set_attribute"),
                     Intern("update_name"),
                     Intern("set_status"),
                     Intern("append"),
                     Intern("enduser"),
                     Intern("response_headers"),
                     Intern("stream"),
                     Intern(""),
                     Intern("environ"),
                     Intern("wsgi.url_scheme"),
                     Intern("djtrace.trace_id"),
                     Intern("djtrace.span_id"),
                     Intern("djtrace.trace_sampled"),
                     Intern("true"),
                     Intern("false")};
  for (PyMethodDef& def : g_request_defs)
    m.attr(def.ml_name) = nb::steal(PyCFunction_NewEx(&def, nullptr, nullptr));
  g_str_instrument = Intern("instrument");
  g_str_placed = Intern("_djtrace_placed");
  g_str_fail = Intern("fail");
  m.def(
      "request_gunicorn_ids", [](bool enabled) { g_gunicorn_ids = enabled; }, "enabled"_a,
      "Whether requests served by Gunicorn leave their span's ids in the environ "
      "(djtrace.integrations.logging's install and uninstall).");
  m.def(
      "request_handler",
      [](nb::object orig, nb::object settings_mod, nb::object holder, nb::object get_tracer,
         nb::object begin, nb::object serve) {
        auto* st = new HandlerState{orig.release().ptr(),   settings_mod.release().ptr(),
                                    holder.release().ptr(), get_tracer.release().ptr(),
                                    begin.release().ptr(),  serve.release().ptr()};
        nb::object capsule = OwnedCapsule(st);  // owns st, which stays valid with it
        return NativeMethodOf(g_handler_get_response_def, capsule, st->orig);
      },
      "orig"_a, "settings_module"_a, "holder"_a, "get_tracer"_a, "begin"_a, "serve"_a,
      "A method for BaseHandler.get_response: `orig` inside the request's span.");
  m.def(
      "request_setup",
      [](nb::handle rs_type, nb::handle root_type, nb::handle request_var, nb::handle root_var,
         nb::handle excluded, nb::handle propagate, nb::handle meta_keys, nb::handle extract,
         nb::handle hooks, nb::handle report, nb::handle status_error, nb::handle wsgi_request,
         nb::handle suppressed_var, nb::handle otel_suppress_key) {
        RequestGlue g;
        if (!PyType_Check(rs_type.ptr()) || !PyType_Check(root_type.ptr()) ||
            !(wsgi_request.is_none() || PyType_Check(wsgi_request.ptr())))
          throw nb::type_error(
              "request_setup: RequestSpan, RootState and WSGIRequest (or None) must be classes");
        g.span = FindSlot(rs_type, "span");
        g.request = FindSlot(rs_type, "request");
        g.tracer = FindSlot(rs_type, "tracer");
        g.scope = FindSlot(rs_type, "scope");
        g.parent_token = FindSlot(rs_type, "parent_token");
        g.req_token = FindSlot(rs_type, "req_token");
        g.root_token = FindSlot(rs_type, "root_token");
        g.root = FindSlot(rs_type, "root");
        g.ended = FindSlot(rs_type, "ended");
        g.errored = FindSlot(rs_type, "errored");
        g.routed = FindSlot(rs_type, "routed");
        g.cfg = FindSlot(rs_type, "cfg");
        g.method = FindSlot(rs_type, "method");
        g.recording = FindSlot(rs_type, "recording");
        g.trace_middleware = FindSlot(rs_type, "trace_middleware");
        g.trace_views = FindSlot(rs_type, "trace_views");
        g.trace_drf = FindSlot(rs_type, "trace_drf");
        g.ctx = FindSlot(rs_type, "ctx");
        g.root_span = FindSlot(root_type, "span");
        g.rs_type = reinterpret_cast<PyTypeObject*>(nb::borrow(rs_type).release().ptr());
        g.root_type = reinterpret_cast<PyTypeObject*>(nb::borrow(root_type).release().ptr());
        g.request_var = nb::borrow(request_var).release().ptr();
        g.root_var = nb::borrow(root_var).release().ptr();
        g.excluded = nb::borrow(excluded).release().ptr();
        g.propagate = nb::borrow(propagate).release().ptr();
        g.meta_keys = nb::borrow(meta_keys).release().ptr();
        g.extract = nb::borrow(extract).release().ptr();
        g.hooks = nb::borrow(hooks).release().ptr();
        g.report = nb::borrow(report).release().ptr();
        g.status_error = nb::borrow(status_error).release().ptr();
        if (!wsgi_request.is_none())
          g.wsgi_request =
              reinterpret_cast<PyTypeObject*>(nb::borrow(wsgi_request).release().ptr());
        if (!PyContextVar_CheckExact(suppressed_var.ptr()))
          throw nb::type_error("request_setup: suppressed_var must be a ContextVar");
        g.suppressed_var = nb::borrow(suppressed_var).release().ptr();
        if (!otel_suppress_key.is_none())
          g.otel_suppress_key = nb::borrow(otel_suppress_key).release().ptr();
        g_req = g;  // set up once, at import (the previous references, if any, stay alive)
      },
      "rs_type"_a, "root_type"_a, "request_var"_a, "root_var"_a, "excluded"_a, "propagate"_a,
      "meta_keys"_a, "extract"_a, "hooks"_a, "report"_a, "status_error"_a, "wsgi_request"_a.none(),
      "suppressed_var"_a, "otel_suppress_key"_a.none(),
      "Wires the request lifecycle functions to djtrace.integrations.django.handlers.");
}

RegisterBindings g_register(Bind);

}  // namespace
}  // namespace djtrace
