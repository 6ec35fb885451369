// Arranges the spans of one export request as OTLP nests them: ResourceSpans -> ScopeSpans ->
// Span. Shared by the protobuf and JSON encoders so that both send the same structure.
//
// The grouping is the one opentelemetry-sdk's OTLP encoder makes (it keys a dict by the SDK's
// Resource, then by InstrumentationScope):
// - resources in the order each first appears, and within a resource, scopes in the order each
//   first appears with that resource; spans keep their batch order inside their scope;
// - the same shared_ptr target is always the same group; distinct objects with equal content
//   are merged too, because the SDK's Resource and InstrumentationScope compare by value:
//   * Resource: equal schema_url and equal attributes as a mapping (order does not matter),
//     values compared with their types, as the SDK's hash (a JSON dump of the attributes)
//     tells 1, 1.0 and true apart; 0.0 and -0.0 differ, NaN never equals, empty arrays of any
//     element type are equal;
//   * InstrumentationScope: equal name, version, schema_url and attributes, values compared as
//     Python's == does (true == 1 == 1.0, 0.0 == -0.0, NaN never equals, arrays element by
//     element);
//   the group is then encoded with its first member's content, as the dict keeps its first key.
// - A null resource is treated as an empty one. A null scope is its own group (the SDK's None
//   key) and encodes as an empty InstrumentationScope with no schema_url.
// Attribute lists are taken to hold unique keys, as the SDK's mappings do.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "trace/span_data.h"

namespace djtrace {

bool SameResourceForGrouping(const Resource* a, const Resource* b) noexcept;
bool SameScopeForGrouping(const InstrumentationScope* a, const InstrumentationScope* b) noexcept;

class SpanGrouping {
 public:
  struct ScopeGroup {
    const InstrumentationScope* scope;  // first member's scope, may be null
    uint32_t first_span;                // range in spans()
    uint32_t end_span;
  };
  struct ResourceGroup {
    const Resource* resource;  // first member's resource, may be null
    uint32_t first_scope;      // range in scopes()
    uint32_t end_scope;
  };

  // Rebuilds the grouping for `spans`. Buffers are kept between calls, so an encoder that keeps
  // one SpanGrouping per thread stops allocating once it has seen its largest batch.
  void Build(std::span<const SpanData* const> spans);

  std::span<const ResourceGroup> resources() const { return resources_; }
  std::span<const ScopeGroup> scopes(const ResourceGroup& r) const {
    return std::span<const ScopeGroup>(scopes_).subspan(r.first_scope, r.end_scope - r.first_scope);
  }
  std::span<const SpanData* const> spans(const ScopeGroup& s) const {
    return std::span<const SpanData* const>(spans_).subspan(s.first_span,
                                                            s.end_span - s.first_span);
  }

 private:
  struct PendingScope {
    uint32_t resource;
    const InstrumentationScope* scope;
    uint32_t count;
  };
  struct ResourceAlias {
    const Resource* resource;
    uint32_t group;
  };
  struct ScopeAlias {
    uint32_t resource;
    const InstrumentationScope* scope;
    uint32_t group;
  };

  uint32_t ResourceGroupOf(const Resource* resource);
  uint32_t ScopeGroupOf(uint32_t resource_group, const InstrumentationScope* scope);

  std::vector<ResourceGroup> resources_;
  std::vector<ScopeGroup> scopes_;
  std::vector<const SpanData*> spans_;
  // Working space of Build().
  std::vector<PendingScope> pending_scopes_;
  std::vector<ResourceAlias> resource_aliases_;
  std::vector<ScopeAlias> scope_aliases_;
  std::vector<uint32_t> span_scope_;   // pending scope group of each input span
  std::vector<uint32_t> scope_order_;  // pending scope group -> index in scopes_
};

}  // namespace djtrace
