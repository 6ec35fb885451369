// Bindings of the PII redaction engine: a Redactor built from a Python dict, redaction of one
// value (for integrations that redact before recording), and installation as the transform
// that every processor applies before export.
#include <nanobind/stl/map.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>

#include "pii/redactor.h"
#include "python/common.h"
#include "trace/processor.h"

namespace djtrace {
namespace {

using pii::Redactor;

pii::MaskStyle StyleFromPy(nb::handle h, const char* setting) {
  std::string name = nb::cast<std::string>(h);
  auto style = pii::MaskStyleFromName(name);
  if (!style)
    throw nb::value_error((std::string(setting) + ": unknown masking style '" + name +
                           "' (full, partial, pseudonymise)")
                              .c_str());
  return *style;
}

std::shared_ptr<const Redactor> BuildRedactor(nb::dict cfg) {
  pii::RedactionConfig c;
  if (cfg.contains("profile")) {
    std::string name = nb::cast<std::string>(cfg["profile"]);
    auto profile = pii::ProfileFromName(name);
    if (!profile)
      throw nb::value_error(
          ("DJTRACE['pii']['profile'] must be off, default or gdpr; got '" + name + "'").c_str());
    c.profile = *profile;
  }
  if (cfg.contains("detectors")) {
    // {detector: False | True | style name}
    for (auto [key, value] : nb::cast<nb::dict>(cfg["detectors"])) {
      std::string name = nb::cast<std::string>(key);
      auto detector = pii::DetectorFromName(name);
      if (!detector)
        throw nb::value_error(
            ("DJTRACE['pii']['detectors']: unknown detector '" + name + "'").c_str());
      pii::DetectorOverride o{*detector, std::nullopt, std::nullopt};
      if (PyBool_Check(value.ptr())) {
        o.enabled = value.ptr() == Py_True;
      } else {
        o.enabled = true;
        o.style = StyleFromPy(value, "DJTRACE['pii']['detectors']");
      }
      c.overrides.push_back(o);
    }
  }
  if (cfg.contains("hmac_key")) c.hmac_key = nb::cast<std::string>(cfg["hmac_key"]);
  if (cfg.contains("pseudonym_length"))
    c.pseudonym_hex_chars = nb::cast<size_t>(cfg["pseudonym_length"]);
  if (cfg.contains("builtin_allow_keys"))
    c.builtin_allow_keys = nb::cast<bool>(cfg["builtin_allow_keys"]);
  if (cfg.contains("allow_keys"))
    for (nb::handle k : cfg["allow_keys"]) c.allow_keys.push_back(nb::cast<std::string>(k));
  if (cfg.contains("deny_keys")) {
    for (nb::handle rule : cfg["deny_keys"]) {  // (name, glob, style)
      c.deny_keys.push_back({nb::cast<std::string>(rule[0]), nb::cast<std::string>(rule[1]),
                             StyleFromPy(rule[2], "DJTRACE['pii']['deny_keys']")});
    }
  }
  if (cfg.contains("value_patterns")) {
    for (nb::handle rule : cfg["value_patterns"]) {  // (name, pattern, style)
      c.value_patterns.push_back({nb::cast<std::string>(rule[0]),
                                  nb::cast<std::string>(rule[1]),
                                  StyleFromPy(rule[2], "DJTRACE['pii']['value_patterns']")});
    }
  }
  std::string error;
  std::unique_ptr<Redactor> r = Redactor::Build(c, &error);
  if (!r) throw nb::value_error(error.c_str());
  return std::shared_ptr<const Redactor>(std::move(r));
}

SpanTransform TransformOf(std::shared_ptr<const Redactor> redactor) {
  if (!redactor) return {};
  return [redactor](SpanData& span) { redactor->RedactSpan(span); };
}

void BindPii(nb::module_& m) {
  nb::class_<Redactor>(m, "Redactor")
      .def_static("build", &BuildRedactor, "config"_a)
      .def(
          "redact",
          [](const Redactor& r, std::string_view key, nb::handle value) -> nb::object {
            std::string text;
            if (!PyUnicode_Check(value.ptr()) || !ToString(value.ptr(), text))
              return nb::borrow(value);
            std::string out;
            if (!r.Redact(key, text, &out)) return nb::borrow(value);
            return nb::str(out.data(), out.size());
          },
          "key"_a, "value"_a.none())
      .def("counters", &Redactor::CountersSnapshot);
  m.def("set_processor_redactor",
        [](SpanProcessor& p, std::shared_ptr<const Redactor> redactor) {
          if (auto* batch = dynamic_cast<BatchSpanProcessor*>(&p)) {
            SharedAttributesCheck check;
            if (redactor) {
              check = [redactor](const Attributes& a) { return redactor->LeavesUnchanged(a); };
            }
            batch->SetTransform(TransformOf(redactor), std::move(check));
          } else if (auto* simple = dynamic_cast<SimpleSpanProcessor*>(&p)) {
            simple->SetTransform(TransformOf(std::move(redactor)));
          }
        },
        "processor"_a, "redactor"_a.none());
}

RegisterBindings register_pii(&BindPii);

}  // namespace
}  // namespace djtrace
