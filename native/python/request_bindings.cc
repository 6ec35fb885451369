// The SERVER span of an HTTP request, started from the WSGI environ (Django's request.META) in
// one native call: the fields are read off the dict here and the attributes built by
// native/http/server_request. Only conversion lives in this file.
#include <string>

#include "http/server_request.h"
#include "python/common.h"

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
        Fields f;
        ReadFields(meta, method, scheme, path, version, f);
        http::ServerRequestOptions options = Options(flags);
        StartOptions o;
        nb::str name = Str(http::AppendServerRequestAttributes(f.request, options, &o.attributes));
        nb::object span =
            NewSpan(*tracer, name, static_cast<int>(SpanKind::kServer), SpanInContext(nb::none()),
                    nb::none(), nb::none(), nb::none(), kAttachOnEnter, std::move(o));
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
}

RegisterBindings g_register(Bind);

}  // namespace
}  // namespace djtrace
