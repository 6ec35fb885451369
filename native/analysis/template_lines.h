// Lines of templates compiled to Python code. Jinja2 compiles a template to a module whose code
// objects carry the template's file name but the generated module's line numbers, and keeps
// the correspondence in the module as `debug_info`: "template_line=generated_line&...". The
// query-source walk maps a generated line back to the template's with it.
#pragma once

#include <string_view>
#include <utility>
#include <vector>

namespace djtrace::analysis {

// (generated line, template line) pairs, ascending by generated line.
using TemplateLines = std::vector<std::pair<int, int>>;

// Parses a `debug_info` string; entries that are not two decimal numbers are left out.
TemplateLines ParseTemplateLines(std::string_view debug_info);

// The template line of a generated line, as Jinja's Template.get_corresponding_lineno answers:
// that of the last entry at or before it, else 1.
int TemplateLineOf(const TemplateLines& lines, int generated_line);

}  // namespace djtrace::analysis
