#include "export/otlp_grouping.h"

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <variant>

namespace djtrace {
namespace {

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

bool IsEmptyArray(const AttrValue& v) {
  return std::visit(
      [](const auto& x) {
        if constexpr (IsVector<std::decay_t<decltype(x)>>::value) {
          return x.empty();
        } else {
          return false;
        }
      },
      v);
}

// json.dumps writes 0.0 and -0.0 differently, so the SDK's Resource hash tells them apart.
bool SameDoubleTyped(double a, double b) { return a == b && std::signbit(a) == std::signbit(b); }

// Resource values: the SDK's dict lookup needs equal hashes (a JSON dump, which keeps the type:
// 1, 1.0 and true differ) and equal values.
bool SameResourceValue(const AttrValue& a, const AttrValue& b) {
  if (IsEmptyArray(a) && IsEmptyArray(b)) return true;  // both dump as [] and () == ()
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<double>(&a)) return SameDoubleTyped(*x, std::get<double>(b));
  if (const auto* x = std::get_if<std::vector<double>>(&a)) {
    const auto& y = std::get<std::vector<double>>(b);
    if (x->size() != y.size()) return false;
    for (size_t i = 0; i < x->size(); ++i) {
      if (!SameDoubleTyped((*x)[i], y[i])) return false;
    }
    return true;
  }
  return a == b;
}

// A bool, int or float seen as Python sees it in ==: bool is an int, and int == float compares
// exact values.
struct Number {
  bool is_double;
  int64_t i;
  double d;
};

bool SameNumber(const Number& a, const Number& b) {
  if (!a.is_double && !b.is_double) return a.i == b.i;
  if (a.is_double && b.is_double) return a.d == b.d;
  int64_t i = a.is_double ? b.i : a.i;
  double d = a.is_double ? a.d : b.d;
  // Exact comparison, not a conversion of i to double (which would round above 2^53).
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return false;  // NaN too
  if (d != std::trunc(d)) return false;
  return static_cast<int64_t>(d) == i;
}

bool ScalarNumber(const AttrValue& v, Number& n) {
  if (const auto* b = std::get_if<bool>(&v)) {
    n = {false, *b ? 1 : 0, 0};
    return true;
  }
  if (const auto* i = std::get_if<int64_t>(&v)) {
    n = {false, *i, 0};
    return true;
  }
  if (const auto* d = std::get_if<double>(&v)) {
    n = {true, 0, *d};
    return true;
  }
  return false;
}

// Element count of a numeric array (bool, int or double), or -1 if `v` is not one.
int64_t NumericArraySize(const AttrValue& v) {
  if (const auto* x = std::get_if<std::vector<bool>>(&v)) return static_cast<int64_t>(x->size());
  if (const auto* x = std::get_if<std::vector<int64_t>>(&v)) {
    return static_cast<int64_t>(x->size());
  }
  if (const auto* x = std::get_if<std::vector<double>>(&v)) {
    return static_cast<int64_t>(x->size());
  }
  return -1;
}

Number NumericElement(const AttrValue& v, size_t i) {
  if (const auto* x = std::get_if<std::vector<bool>>(&v)) return {false, (*x)[i] ? 1 : 0, 0};
  if (const auto* x = std::get_if<std::vector<int64_t>>(&v)) return {false, (*x)[i], 0};
  return {true, 0, std::get<std::vector<double>>(v)[i]};
}

// Scope values: InstrumentationScope.__hash__ leaves attributes out, so only == decides.
bool SamePythonValue(const AttrValue& a, const AttrValue& b) {
  Number x, y;
  bool a_scalar = ScalarNumber(a, x);
  bool b_scalar = ScalarNumber(b, y);
  if (a_scalar || b_scalar) return a_scalar && b_scalar && SameNumber(x, y);
  if (const auto* s = std::get_if<std::string>(&a)) {
    const auto* t = std::get_if<std::string>(&b);
    return t != nullptr && *s == *t;
  }
  if (std::holds_alternative<std::string>(b)) return false;
  // Both are arrays (tuples in the SDK).
  if (IsEmptyArray(a) && IsEmptyArray(b)) return true;
  const auto* s = std::get_if<std::vector<std::string>>(&a);
  const auto* t = std::get_if<std::vector<std::string>>(&b);
  if (s || t) return s && t && *s == *t;
  int64_t size = NumericArraySize(a);
  if (size != NumericArraySize(b)) return false;
  for (size_t i = 0; i < static_cast<size_t>(size); ++i) {
    if (!SameNumber(NumericElement(a, i), NumericElement(b, i))) return false;
  }
  return true;
}

// Mapping equality: same keys, equal values, order ignored.
template <class ValueEqual>
bool SameAttributes(const Attributes& a, const Attributes& b, ValueEqual equal) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const Attribute* match = nullptr;
    if (b[i].key == a[i].key) {
      match = &b[i];  // the usual case: same order
    } else {
      for (const Attribute& candidate : b) {
        if (candidate.key == a[i].key) {
          match = &candidate;
          break;
        }
      }
    }
    if (match == nullptr || !equal(a[i].value, match->value)) return false;
  }
  return true;
}

const Resource& ResourceOrEmpty(const Resource* r) {
  static const Resource kEmpty;
  return r ? *r : kEmpty;
}

}  // namespace

bool SameResourceForGrouping(const Resource* a, const Resource* b) noexcept {
  if (a == b) return true;
  const Resource& x = ResourceOrEmpty(a);
  const Resource& y = ResourceOrEmpty(b);
  return x.schema_url == y.schema_url &&
         SameAttributes(x.attributes, y.attributes, SameResourceValue);
}

bool SameScopeForGrouping(const InstrumentationScope* a, const InstrumentationScope* b) noexcept {
  if (a == b) return true;
  if (a == nullptr || b == nullptr) return false;  // None is its own key
  return a->name == b->name && a->version == b->version && a->schema_url == b->schema_url &&
         SameAttributes(a->attributes, b->attributes, SamePythonValue);
}

uint32_t SpanGrouping::ResourceGroupOf(const Resource* resource) {
  for (const ResourceAlias& alias : resource_aliases_) {
    if (alias.resource == resource) return alias.group;
  }
  uint32_t group = 0;
  for (; group < resources_.size(); ++group) {
    if (SameResourceForGrouping(resources_[group].resource, resource)) break;
  }
  if (group == resources_.size()) resources_.push_back({resource, 0, 0});
  resource_aliases_.push_back({resource, group});
  return group;
}

uint32_t SpanGrouping::ScopeGroupOf(uint32_t resource_group, const InstrumentationScope* scope) {
  for (const ScopeAlias& alias : scope_aliases_) {
    if (alias.resource == resource_group && alias.scope == scope) return alias.group;
  }
  uint32_t group = 0;
  for (; group < pending_scopes_.size(); ++group) {
    const PendingScope& pending = pending_scopes_[group];
    if (pending.resource == resource_group && SameScopeForGrouping(pending.scope, scope)) break;
  }
  if (group == pending_scopes_.size()) pending_scopes_.push_back({resource_group, scope, 0});
  scope_aliases_.push_back({resource_group, scope, group});
  return group;
}

void SpanGrouping::Build(std::span<const SpanData* const> spans) {
  resources_.clear();
  scopes_.clear();
  pending_scopes_.clear();
  resource_aliases_.clear();
  scope_aliases_.clear();
  span_scope_.resize(spans.size());

  // Batches usually share one resource and a few scopes, in runs: remember the last answer.
  bool have_last = false;
  const Resource* last_resource = nullptr;
  const InstrumentationScope* last_scope = nullptr;
  uint32_t last_resource_group = 0;
  uint32_t last_scope_group = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const Resource* resource = spans[i]->resource.get();
    const InstrumentationScope* scope = spans[i]->scope.get();
    uint32_t resource_group;
    uint32_t scope_group;
    if (have_last && resource == last_resource) {
      resource_group = last_resource_group;
      scope_group = scope == last_scope ? last_scope_group : ScopeGroupOf(resource_group, scope);
    } else {
      resource_group = ResourceGroupOf(resource);
      scope_group = ScopeGroupOf(resource_group, scope);
    }
    have_last = true;
    last_resource = resource;
    last_scope = scope;
    last_resource_group = resource_group;
    last_scope_group = scope_group;
    span_scope_[i] = scope_group;
    ++pending_scopes_[scope_group].count;
  }

  // Lay the scope groups out resource by resource, each keeping its order of first appearance,
  // then place every span in its scope's slice of spans_ (a stable counting sort).
  scope_order_.resize(pending_scopes_.size());
  uint32_t offset = 0;
  for (uint32_t r = 0; r < resources_.size(); ++r) {
    resources_[r].first_scope = static_cast<uint32_t>(scopes_.size());
    for (uint32_t p = 0; p < pending_scopes_.size(); ++p) {
      const PendingScope& pending = pending_scopes_[p];
      if (pending.resource != r) continue;
      scope_order_[p] = static_cast<uint32_t>(scopes_.size());
      scopes_.push_back({pending.scope, offset, offset});
      offset += pending.count;
    }
    resources_[r].end_scope = static_cast<uint32_t>(scopes_.size());
  }
  spans_.resize(spans.size());
  for (size_t i = 0; i < spans.size(); ++i) {
    ScopeGroup& group = scopes_[scope_order_[span_scope_[i]]];
    spans_[group.end_span++] = spans[i];
  }
}

}  // namespace djtrace
