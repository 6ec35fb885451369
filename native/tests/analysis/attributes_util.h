// Reading span attributes in the analysis tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "trace/span_data.h"

namespace djtrace::analysis::testing {

inline const Attribute* Find(const Attributes& attrs, std::string_view key) {
  for (const auto& a : attrs)
    if (a.key == key) return &a;
  return nullptr;
}

inline int64_t IntAttr(const Attributes& attrs, std::string_view key) {
  const Attribute* a = Find(attrs, key);
  EXPECT_NE(a, nullptr) << key;
  return a ? std::get<int64_t>(a->value) : -1;
}

inline std::string StrAttr(const Attributes& attrs, std::string_view key) {
  const Attribute* a = Find(attrs, key);
  EXPECT_NE(a, nullptr) << key;
  return a ? std::get<std::string>(a->value) : "";
}

}  // namespace djtrace::analysis::testing
