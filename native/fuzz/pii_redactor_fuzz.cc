// Fuzzes the redaction engine: arbitrary bytes as an attribute value under a handful of keys and
// configurations. Checks: no crash or read past the input (the value is copied into a buffer of
// exactly its size, so ASan sees any overread), output is valid UTF-8, output stays within
// 4 * input + 96 bytes, scanner matches are ordered, disjoint and in bounds, and RedactSpan
// leaves every text field valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "pii/detectors.h"
#include "pii/redactor.h"
#include "pii/utf8.h"

namespace {

using djtrace::pii::Detector;
using djtrace::pii::MaskStyle;
using djtrace::pii::Profile;
using djtrace::pii::RedactionConfig;
using djtrace::pii::Redactor;

std::vector<std::unique_ptr<Redactor>> MakeRedactors() {
  std::vector<std::unique_ptr<Redactor>> out;
  std::string error;
  RedactionConfig gdpr;
  gdpr.profile = Profile::kGdpr;
  gdpr.hmac_key = "fuzz-key";
  gdpr.value_patterns.push_back({"emp", "\\bEMP-\\d{4,8}\\b", MaskStyle::kFull});
  gdpr.value_patterns.push_back({"word", "(?i)s[e3]cr[e3]t\\w*", MaskStyle::kPseudonymise});
  gdpr.value_patterns.push_back({"evil", "(a|a.*Z)", MaskStyle::kFull});
  gdpr.deny_keys.push_back({"tenant", "http.request.header.x-tenant-*", MaskStyle::kFull});
  out.push_back(Redactor::Build(gdpr, &error));
  RedactionConfig partial = gdpr;
  partial.value_patterns.clear();
  for (size_t i = 0; i < djtrace::pii::kDetectorCount; ++i) {
    partial.Set(static_cast<Detector>(i), true, MaskStyle::kPartial);
  }
  out.push_back(Redactor::Build(partial, &error));
  RedactionConfig pseudo = partial;
  for (size_t i = 0; i < djtrace::pii::kDetectorCount; ++i) {
    pseudo.Set(static_cast<Detector>(i), true, MaskStyle::kPseudonymise);
  }
  pseudo.pseudonym_hex_chars = 64;
  out.push_back(Redactor::Build(pseudo, &error));
  RedactionConfig plain;
  out.push_back(Redactor::Build(plain, &error));
  for (const auto& r : out) {
    if (!r) std::abort();
  }
  return out;
}

const char* const kKeys[] = {"",
                             "url.full",
                             "http.request.header.authorization",
                             "enduser.id",
                             "client.address",
                             "code.function",
                             "db.password",
                             "http.request.header.x-tenant-id"};

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::unique_ptr<Redactor>> redactors = MakeRedactors();
  if (size < 1) return 0;
  const Redactor& r = *redactors[data[0] % redactors.size()];
  const char* key = kKeys[(data[0] >> 2) % (sizeof(kKeys) / sizeof(kKeys[0]))];
  const size_t n = size - 1;
  std::unique_ptr<char[]> buf(new char[n == 0 ? 1 : n]);
  std::memcpy(buf.get(), data + 1, n);
  const std::string_view value(buf.get(), n);

  std::string out;
  if (r.Redact(key, value, &out)) {
    Check(djtrace::pii::IsValidUtf8(out));
    Check(out.size() <= 4 * n + 96);
  } else {
    Check(djtrace::pii::IsValidUtf8(value));
  }

  djtrace::pii::PiiScanner scanner(djtrace::pii::DetectorSet::All());
  std::vector<djtrace::pii::DetectorMatch> matches;
  scanner.Scan(value, &matches);
  size_t last = 0;
  for (const auto& m : matches) {
    Check(m.begin >= last && m.begin < m.end && m.end <= n);
    last = m.end;
  }

  djtrace::SpanData span;
  span.name = std::string(value);
  span.status_message = std::string(value);
  span.attributes.push_back({key, std::string(value)});
  span.attributes.push_back({"app.list", std::vector<std::string>{std::string(value), "x"}});
  span.attributes.push_back({"app.secret_number", int64_t{static_cast<int64_t>(n)}});
  djtrace::Event event;
  event.name = std::string(value);
  event.attributes.push_back({"exception.message", std::string(value)});
  span.events.push_back(std::move(event));
  r.RedactSpan(span);
  Check(djtrace::pii::IsValidUtf8(span.name));
  Check(djtrace::pii::IsValidUtf8(span.status_message));
  Check(djtrace::pii::IsValidUtf8(std::get<std::string>(span.attributes[0].value)));
  for (const auto& s : std::get<std::vector<std::string>>(span.attributes[1].value)) {
    Check(djtrace::pii::IsValidUtf8(s));
  }
  Check(djtrace::pii::IsValidUtf8(span.events[0].name));
  Check(djtrace::pii::IsValidUtf8(std::get<std::string>(span.events[0].attributes[0].value)));
  return 0;
}
