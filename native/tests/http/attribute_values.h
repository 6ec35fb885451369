// Span attributes as a map, for the HTTP tests' assertions.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>

#include "trace/span_data.h"

namespace djtrace::http::test_values {

using Values = std::map<std::string, AttrValue>;

// `attrs` by key; a key recorded twice fails the test.
inline Values ByKey(const Attributes& attrs) {
  Values out;
  for (const auto& a : attrs) {
    EXPECT_TRUE(out.emplace(a.key, a.value).second) << "duplicate key " << a.key;
  }
  return out;
}

inline std::string Str(const Values& v, const std::string& key) {
  auto it = v.find(key);
  if (it == v.end()) return "<absent>";
  return std::get<std::string>(it->second);
}

// -999 when absent.
inline int64_t Int(const Values& v, const std::string& key) {
  auto it = v.find(key);
  if (it == v.end()) return -999;
  return std::get<int64_t>(it->second);
}

}  // namespace djtrace::http::test_values
