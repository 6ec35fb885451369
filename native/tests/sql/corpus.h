// Reader for the SQL corpus in native/tests/data/sql/*.cases (format: README.md there).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "sql/obfuscator.h"

namespace djtrace::sql::testing {

struct CorpusCase {
  std::string file;
  int line = 0;
  std::string name;
  Dialect dialect = Dialect::kGeneric;
  std::string input;
  std::string expected_text;
  std::string expected_summary;
  std::optional<std::string> expected_operation;
  std::optional<std::string> expected_table;
  std::optional<bool> expected_truncated;
  size_t max_length = ObfuscateOptions{}.max_length;
  std::string group;
  std::vector<std::string> secrets;
};

// Names the case in gtest messages instead of dumping its bytes.
inline void PrintTo(const CorpusCase& c, std::ostream* os) { *os << c.file << ":" << c.name; }

inline std::string Trim(std::string s) {
  const auto not_space = [](unsigned char c) { return c != ' ' && c != '\t' && c != '\r'; };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// Throws std::runtime_error naming file and line on a malformed file.
inline std::vector<CorpusCase> ParseCorpus(const std::string& text, const std::string& file) {
  std::vector<CorpusCase> cases;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  std::string* block = nullptr;  // the field that continuation lines extend
  bool block_started = false;
  bool have_in = false, have_out = false, have_summary = false;
  auto fail = [&](const std::string& why) {
    throw std::runtime_error(file + ":" + std::to_string(lineno) + ": " + why);
  };
  auto finish = [&] {
    if (cases.empty()) return;
    const CorpusCase& c = cases.back();
    if (!have_in || !have_out || !have_summary)
      throw std::runtime_error(file + ":" + std::to_string(c.line) + ": case " + c.name +
                               " needs in:, out: and summary:");
  };
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] == '|') {
      if (!block) fail("continuation line without a field to continue");
      if (block_started) block->push_back('\n');
      block->append(line.size() >= 2 && line[1] == ' ' ? line.substr(2) : line.substr(1));
      block_started = true;
      continue;
    }
    block = nullptr;
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("===", 0) == 0) {
      finish();
      cases.emplace_back();
      cases.back().file = file;
      cases.back().line = lineno;
      cases.back().name = Trim(line.substr(3));
      if (cases.back().name.empty()) fail("case without a name");
      have_in = have_out = have_summary = false;
      continue;
    }
    if (cases.empty()) fail("field before the first === case");
    CorpusCase& c = cases.back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos) fail("expected 'field: value'");
    const std::string key = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    auto text_field = [&](std::string& field) {
      field = value;
      block = &field;
      block_started = !value.empty();
    };
    if (key == "dialect") {
      const std::string v = Trim(value);
      if (v == "postgres")
        c.dialect = Dialect::kPostgres;
      else if (v == "sqlite")
        c.dialect = Dialect::kSqlite;
      else if (v == "mysql")
        c.dialect = Dialect::kMysql;
      else if (v == "generic")
        c.dialect = Dialect::kGeneric;
      else
        fail("unknown dialect " + v);
    } else if (key == "in") {
      text_field(c.input);
      have_in = true;
    } else if (key == "out") {
      text_field(c.expected_text);
      have_out = true;
    } else if (key == "summary") {
      c.expected_summary = Trim(value);
      have_summary = true;
    } else if (key == "operation") {
      c.expected_operation = Trim(value);
    } else if (key == "table") {
      c.expected_table = Trim(value);
    } else if (key == "truncated") {
      const std::string v = Trim(value);
      if (v != "yes" && v != "no") fail("truncated: yes or no");
      c.expected_truncated = v == "yes";
    } else if (key == "max_length") {
      c.max_length = std::strtoul(Trim(value).c_str(), nullptr, 10);
    } else if (key == "group") {
      c.group = Trim(value);
    } else if (key == "secrets") {
      std::istringstream parts(value);
      std::string part;
      while (std::getline(parts, part, ',')) {
        part = Trim(part);
        if (!part.empty()) c.secrets.push_back(part);
      }
    } else {
      fail("unknown field " + key);
    }
  }
  finish();
  return cases;
}

inline std::vector<CorpusCase> LoadCorpus() {
  std::vector<CorpusCase> all;
  const std::filesystem::path dir = std::filesystem::path(DJTRACE_TEST_DATA_DIR) / "sql";
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path().extension() == ".cases") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream buf;
    buf << f.rdbuf();
    auto cases = ParseCorpus(buf.str(), path.filename().string());
    all.insert(all.end(), cases.begin(), cases.end());
  }
  return all;
}

}  // namespace djtrace::sql::testing
