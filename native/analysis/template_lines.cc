#include "analysis/template_lines.h"

#include <algorithm>

namespace djtrace::analysis {
namespace {

bool ParseLine(std::string_view digits, int& out) {
  if (digits.empty() || digits.size() > 9) return false;  // 9 digits fit an int
  int value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  out = value;
  return true;
}

}  // namespace

TemplateLines ParseTemplateLines(std::string_view debug_info) {
  TemplateLines lines;
  while (!debug_info.empty()) {
    const size_t amp = debug_info.find('&');
    const std::string_view item = debug_info.substr(0, amp);
    const size_t eq = item.find('=');
    int template_line = 0;
    int generated_line = 0;
    if (eq != std::string_view::npos && ParseLine(item.substr(0, eq), template_line) &&
        ParseLine(item.substr(eq + 1), generated_line))
      lines.emplace_back(generated_line, template_line);
    if (amp == std::string_view::npos) break;
    debug_info.remove_prefix(amp + 1);
  }
  // Jinja writes them in generated order; sorting keeps the lookup right if one does not.
  std::stable_sort(lines.begin(), lines.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return lines;
}

int TemplateLineOf(const TemplateLines& lines, int generated_line) {
  auto after = std::upper_bound(
      lines.begin(), lines.end(), generated_line,
      [](int line, const std::pair<int, int>& entry) { return line < entry.first; });
  return after == lines.begin() ? 1 : std::prev(after)->second;
}

}  // namespace djtrace::analysis
