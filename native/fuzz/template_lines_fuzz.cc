// Fuzzes the parser of Jinja2's debug_info line map: it may not crash, every entry it keeps is
// two non-negative numbers in ascending generated order, and the lookup answers each entry's
// generated line with the template line of the last entry on that line.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "analysis/template_lines.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace djtrace::analysis;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const TemplateLines lines = ParseTemplateLines(input);
  Check(lines.size() <= size / 3 + 1);  // each entry takes at least "a=b"
  for (size_t i = 0; i < lines.size(); ++i) {
    Check(lines[i].first >= 0 && lines[i].second >= 0);
    if (i > 0) Check(lines[i - 1].first <= lines[i].first);
    if (i + 1 == lines.size() || lines[i + 1].first != lines[i].first)
      Check(TemplateLineOf(lines, lines[i].first) == lines[i].second);
  }
  if (lines.empty() || lines.front().first > 0) Check(TemplateLineOf(lines, 0) == 1);
  return 0;
}
