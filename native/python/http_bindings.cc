// Bindings of the integrations' redaction (http/url.h), for djtrace.integrations.redaction:
// is_sensitive_key, redact_query_string, redact_url and redact_text; and of the HTTP client
// span's attributes (http/client_request.h). Only the str <-> UTF-8 conversions live here.
#include <string>
#include <string_view>
#include <variant>

#include "http/client_request.h"
#include "http/url.h"
#include "python/common.h"

namespace djtrace {
namespace {

// The UTF-8 bytes of a str. A str holding lone surrogates has none: it is then encoded with
// "surrogatepass" into `storage` (and the result decoded the same way), so that such a value is
// still redacted and comes back with its surrogates, instead of raising in the middle of an
// integration or being returned unredacted.
std::string_view Utf8Of(const nb::str& s, nb::object& storage, bool& surrogates) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(s.ptr(), &size);
  surrogates = data == nullptr;
  if (surrogates) {
    PyErr_Clear();
    storage = nb::steal(PyUnicode_AsEncodedString(s.ptr(), "utf-8", "surrogatepass"));
    if (!storage.is_valid()) throw nb::python_error();
    data = PyBytes_AS_STRING(storage.ptr());
    size = PyBytes_GET_SIZE(storage.ptr());
  }
  return {data, static_cast<size_t>(size)};
}

// `s` itself when `redact` changes nothing, else a new str.
template <bool (*redact)(std::string_view, std::string*)>
nb::object RedactStr(const nb::str& s) {
  nb::object storage;
  bool surrogates = false;
  const std::string_view in = Utf8Of(s, storage, surrogates);
  std::string out;
  if (!redact(in, &out)) return nb::steal(Py_NewRef(s.ptr()));
  PyObject* result = PyUnicode_DecodeUTF8(out.data(), static_cast<Py_ssize_t>(out.size()),
                                          surrogates ? "surrogatepass" : nullptr);
  if (!result) throw nb::python_error();
  return nb::steal(result);
}

void Bind(nb::module_& m) {
  m.def(
      "is_sensitive_key",
      [](const nb::str& key) {
        nb::object storage;
        bool surrogates = false;
        return http::IsSensitiveParameterName(Utf8Of(key, storage, surrogates));
      },
      "key"_a);
  m.def("redact_query_string", &RedactStr<http::RedactQueryString>, "query"_a);
  m.def("redact_url", &RedactStr<http::RedactUrl>, "url"_a);
  m.def("redact_text", &RedactStr<http::RedactText>, "text"_a);
  m.def(
      "client_request_attributes",
      [](const nb::str& method, const nb::str& url, bool old_semconv) {
        nb::object method_storage, url_storage;
        bool method_surrogates = false, url_surrogates = false;
        const std::string_view m = Utf8Of(method, method_storage, method_surrogates);
        const std::string_view u = Utf8Of(url, url_storage, url_surrogates);
        Attributes attrs;
        const std::string name = http::AppendClientRequestAttributes(m, u, old_semconv, &attrs);
        // Values are text or whole numbers; text comes back with the surrogates it came with.
        const char* errors = method_surrogates || url_surrogates ? "surrogatepass" : nullptr;
        nb::dict out;
        for (const Attribute& a : attrs) {
          nb::object value;
          if (const auto* text = std::get_if<std::string>(&a.value)) {
            value = nb::steal(
                PyUnicode_DecodeUTF8(text->data(), static_cast<Py_ssize_t>(text->size()), errors));
            if (!value.is_valid()) throw nb::python_error();
          } else {
            value = nb::int_(std::get<int64_t>(a.value));
          }
          out[nb::str(a.key.data(), a.key.size())] = value;
        }
        return nb::make_tuple(nb::str(name.data(), name.size()), out);
      },
      "method"_a, "url"_a, "old_semconv"_a,
      "(span name, attributes) of an outgoing HTTP request: http/client_request.h.");
}

RegisterBindings g_register(Bind);

}  // namespace
}  // namespace djtrace
