#include "analysis/query_stats.h"

#include <algorithm>
#include <utility>

#include "sql/hash.h"

namespace djtrace::analysis {

namespace {

double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

size_t NextPowerOfTwo(size_t n) {
  size_t p = 8;
  while (p < n) p <<= 1;
  return p;
}

void AddCallSite(Event& e, const CallSite& site, const SpanLimits& limits) {
  auto set = [&](std::string_view key, AttrValue value) {
    SetAttribute(e.attributes, e.dropped_attributes_count, key, std::move(value),
                 limits.max_event_attributes, limits.max_attribute_length);
  };
  if (site.known()) {
    set("code.filepath", site.code->filepath);
    set("code.lineno", int64_t{site.lineno});
    set("code.function", site.code->function);
  }
  if (site.in_template()) {
    set(kTemplateNameKey, site.template_code->function);
    set(kTemplateLinenoKey, int64_t{site.template_lineno});
  }
}

}  // namespace

std::shared_ptr<const CodeLocation> MakeCodeLocation(std::string filepath, std::string function) {
  auto loc = std::make_shared<CodeLocation>();
  loc->hash = sql::Hasher(0x636f6465)  // "code"
                  .Update(filepath)
                  .Put(0)
                  .Update(function)
                  .Finish();
  loc->filepath = std::move(filepath);
  loc->function = std::move(function);
  return loc;
}

CallSite CallSite::Make(std::shared_ptr<const CodeLocation> code, int32_t lineno) noexcept {
  CallSite site;
  if (!code) return site;
  // Never 0, which means "unknown".
  site.id = sql::HashCombine(code->hash, static_cast<uint64_t>(static_cast<uint32_t>(lineno))) | 1;
  site.lineno = lineno;
  site.code = std::move(code);
  return site;
}

void CallSite::SetTemplate(std::shared_ptr<const CodeLocation> tmpl, int32_t line) noexcept {
  if (!tmpl) return;
  id = sql::HashCombine(id, sql::HashCombine(tmpl->hash, static_cast<uint32_t>(line))) | 1;
  template_lineno = line;
  template_code = std::move(tmpl);
}

uint64_t ExactKey(uint64_t fingerprint, std::string_view sql_text,
                  std::string_view serialized_params) noexcept {
  // Fingerprints ignore literals, so the text itself is part of the key: two statements with
  // different inline values and no parameters are not duplicates. (Empty views get a non-null
  // pointer: the hash copies them with memcpy, which must not see null even for 0 bytes.)
  static constexpr char kEmpty[] = "";
  if (sql_text.empty()) sql_text = std::string_view(kEmpty, 0);
  if (serialized_params.empty()) serialized_params = std::string_view(kEmpty, 0);
  return sql::ParameterHash(sql::HashCombine(fingerprint, sql::HashBytes(sql_text)),
                            serialized_params);
}

std::string FingerprintHex(uint64_t fingerprint) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kDigits[fingerprint & 0xF];
    fingerprint >>= 4;
  }
  return out;
}

QueryStats::QueryStats(const QueryStatsOptions& options, const SpanLimits& limits)
    : options_(options), limits_(limits) {}

QueryGroup* QueryStats::FindOrAddGroup(uint64_t fingerprint, const QueryRecord& q) noexcept {
  const uint64_t site_id = q.site ? q.site->id : 0;
  const uint64_t h = sql::HashCombine(fingerprint, site_id);
  if (!group_index_.empty()) {
    const size_t mask = group_index_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      uint32_t slot = group_index_[i];
      if (slot == 0) break;
      QueryGroup& g = groups_[slot - 1];
      if (g.fingerprint == fingerprint && g.site.id == site_id) return &g;
    }
  }
  if (groups_.size() >= options_.max_groups) return nullptr;
  try {
    // Keep the table at most half full so that probes stay short.
    if ((groups_.size() + 1) * 2 > group_index_.size()) {
      std::vector<uint32_t> bigger(NextPowerOfTwo((groups_.size() + 1) * 2), 0);
      const size_t mask = bigger.size() - 1;
      for (uint32_t pos = 0; pos < groups_.size(); ++pos) {
        const QueryGroup& g = groups_[pos];
        size_t i = sql::HashCombine(g.fingerprint, g.site.id) & mask;
        while (bigger[i] != 0) i = (i + 1) & mask;
        bigger[i] = pos + 1;
      }
      group_index_ = std::move(bigger);
    }
    if (groups_.empty()) groups_.reserve(8);
    QueryGroup& g = groups_.emplace_back();
    g.fingerprint = fingerprint;
    g.sql = *q.sql;
    if (q.site) g.site = *q.site;
    const size_t mask = group_index_.size() - 1;
    size_t i = h & mask;
    while (group_index_[i] != 0) i = (i + 1) & mask;
    group_index_[i] = static_cast<uint32_t>(groups_.size());
    return &g;
  } catch (...) {  // out of memory: count the query, skip the grouping
    return nullptr;
  }
}

bool QueryStats::SeenExact(uint64_t key) noexcept {
  if (key == 0) {  // 0 marks an empty slot, so the zero key lives outside the table
    if (zero_key_seen_) return true;
    zero_key_seen_ = true;
    return false;
  }
  if (!exact_keys_.empty()) {
    const size_t mask = exact_keys_.size() - 1;
    for (size_t i = key & mask;; i = (i + 1) & mask) {
      if (exact_keys_[i] == key) return true;
      if (exact_keys_[i] == 0) break;
    }
  }
  if (exact_size_ >= options_.max_exact_keys) {
    ++summary_.unchecked_for_duplicates;
    return false;
  }
  try {
    if ((exact_size_ + 1) * 2 > exact_keys_.size()) {
      std::vector<uint64_t> bigger(NextPowerOfTwo((exact_size_ + 1) * 2), 0);
      const size_t mask = bigger.size() - 1;
      for (uint64_t k : exact_keys_) {
        if (k == 0) continue;
        size_t i = k & mask;
        while (bigger[i] != 0) i = (i + 1) & mask;
        bigger[i] = k;
      }
      exact_keys_ = std::move(bigger);
    }
  } catch (...) {
    ++summary_.unchecked_for_duplicates;
    return false;
  }
  const size_t mask = exact_keys_.size() - 1;
  size_t i = key & mask;
  while (exact_keys_[i] != 0) i = (i + 1) & mask;
  exact_keys_[i] = key;
  ++exact_size_;
  return false;
}

bool QueryStats::Record(const QueryRecord& q, QueryGroup* crossed) noexcept {
  if (!q.sql || !*q.sql) return false;
  std::lock_guard<std::mutex> lock(mu_);
  ++summary_.query_count;
  summary_.total_duration_ns += q.duration_ns;
  if (q.error) ++summary_.error_count;
  if (q.has_exact_key && SeenExact(q.exact_key)) ++summary_.duplicate_count;

  const uint64_t fingerprint = (*q.sql)->fingerprint;
  QueryGroup* g = FindOrAddGroup(fingerprint, q);
  if (!g) {
    ++summary_.ungrouped;
    return false;
  }
  ++g->count;
  g->total_duration_ns += q.duration_ns;
  if (g->relation.empty() && !q.relation.empty()) {
    try {
      g->relation.assign(q.relation);
    } catch (...) {
    }
  }
  if (g->n_plus_one() || options_.n_plus_one_threshold == 0 || ended_) return false;
  if (g->count < options_.n_plus_one_threshold ||
      g->total_duration_ns < options_.n_plus_one_min_duration_ns)
    return false;
  g->flagged_at_unix_nano = q.end_unix_nano ? q.end_unix_nano : 1;
  const uint32_t pos = static_cast<uint32_t>(g - groups_.data());
  try {
    flagged_.push_back(pos);
    ++summary_.n_plus_one_groups;
    if (crossed) *crossed = *g;
  } catch (...) {
    return false;
  }
  return true;
}

CacheKeyStats* QueryStats::FindOrAddCacheKey(uint64_t key_hash, const CallSite& site,
                                             std::string_view alias,
                                             std::string_view key_text) noexcept {
  for (auto& k : cache_keys_)
    if (k.key_hash == key_hash) return &k;
  if (cache_keys_.size() >= options_.max_cache_keys) return nullptr;
  try {
    CacheKeyStats& k = cache_keys_.emplace_back();
    k.key_hash = key_hash;
    k.site = site;
    k.alias.assign(alias);
    k.key_text.assign(key_text);
    return &k;
  } catch (...) {
    return nullptr;
  }
}

bool QueryStats::KnowsCacheKey(uint64_t key_hash) const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& k : cache_keys_)
    if (k.key_hash == key_hash) return true;
  return false;
}

bool QueryStats::RecordCacheGet(uint64_t key_hash, bool hit, const CallSite& site,
                                std::string_view alias, std::string_view key_text) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  ++summary_.cache_get_count;
  CacheKeyStats* k = FindOrAddCacheKey(key_hash, site, alias, key_text);
  if (!k) return false;
  if (k->gets > 0) ++summary_.repeated_cache_get_count;
  ++k->gets;
  if (hit) ++k->hits;
  if (options_.repeated_cache_get_threshold == 0 || ended_ ||
      k->gets != options_.repeated_cache_get_threshold)
    return false;
  try {
    repeated_cache_.push_back(static_cast<uint32_t>(k - cache_keys_.data()));
  } catch (...) {
    return false;
  }
  return true;
}

TaskSendGroup* QueryStats::FindOrAddTaskSend(uint64_t key, std::string_view task_name,
                                             const CallSite& site) noexcept {
  for (auto& g : task_sends_)
    if (g.key == key) return &g;
  if (task_sends_.size() >= options_.max_task_send_groups) return nullptr;
  try {
    TaskSendGroup g;
    g.key = key;
    g.task_name.assign(task_name);
    TruncateUtf8(g.task_name, kMaxTaskNameChars);
    g.site = site;
    return &task_sends_.emplace_back(std::move(g));
  } catch (...) {
    return nullptr;
  }
}

bool QueryStats::RecordTaskSend(std::string_view task_name, const CallSite& site,
                                uint64_t now_unix_nano, TaskSendGroup* crossed) noexcept {
  // The name hashed in full (the kept copy may be cut); site.id is 0 when unknown.
  static constexpr char kEmpty[] = "";
  if (task_name.empty()) task_name = std::string_view(kEmpty, 0);
  const uint64_t key = sql::HashCombine(sql::HashBytes(task_name, 0x7461736b), site.id);  // "task"
  std::lock_guard<std::mutex> lock(mu_);
  ++summary_.task_send_count;
  TaskSendGroup* g = FindOrAddTaskSend(key, task_name, site);
  if (!g) {
    ++summary_.ungrouped_task_sends;
    return false;
  }
  ++g->count;
  if (g->repeated() || options_.task_send_threshold == 0 || ended_ ||
      g->count < options_.task_send_threshold)
    return false;
  g->flagged_at_unix_nano = now_unix_nano ? now_unix_nano : 1;
  try {
    repeated_sends_.push_back(static_cast<uint32_t>(g - task_sends_.data()));
    ++summary_.repeated_task_send_groups;
    if (crossed) *crossed = *g;
  } catch (...) {
    return false;
  }
  return true;
}

QueryStatsSummary QueryStats::Summary() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return summary_;
}

std::vector<QueryGroup> QueryStats::NPlusOneGroups() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<QueryGroup> out;
  out.reserve(flagged_.size());
  for (uint32_t pos : flagged_) out.push_back(groups_[pos]);
  return out;
}

std::vector<CacheKeyStats> QueryStats::RepeatedCacheGets() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<CacheKeyStats> out;
  out.reserve(repeated_cache_.size());
  for (uint32_t pos : repeated_cache_) out.push_back(cache_keys_[pos]);
  return out;
}

std::vector<TaskSendGroup> QueryStats::RepeatedTaskSends() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<TaskSendGroup> out;
  out.reserve(repeated_sends_.size());
  for (uint32_t pos : repeated_sends_) out.push_back(task_sends_[pos]);
  return out;
}

void QueryStats::OnRootEnd(SpanData& root) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return;
  ended_ = true;
  try {
    const uint32_t max_attrs = limits_.max_attributes;
    const uint32_t max_len = limits_.max_span_attribute_length;
    auto put = [&](std::string_view key, AttrValue v) {
      SetAttribute(root.attributes, root.dropped_attributes_count, key, std::move(v), max_attrs,
                   max_len);
    };
    put(kQueryCount, static_cast<int64_t>(summary_.query_count));
    put(kDurationMs, Ms(summary_.total_duration_ns));
    put(kNPlusOneCount, static_cast<int64_t>(summary_.n_plus_one_groups));
    put(kDuplicateCount, static_cast<int64_t>(summary_.duplicate_count));
    if (summary_.error_count) put(kErrorCount, static_cast<int64_t>(summary_.error_count));
    if (summary_.repeated_cache_get_count)
      put(kCacheRepeatedGets, static_cast<int64_t>(summary_.repeated_cache_get_count));
    if (summary_.task_send_count) {
      put(kTaskSendCount, static_cast<int64_t>(summary_.task_send_count));
      put(kRepeatedTaskSendCount, static_cast<int64_t>(summary_.repeated_task_send_groups));
    }

    const uint32_t max_ev_attrs = limits_.max_event_attributes;
    const uint32_t max_ev_len = limits_.max_attribute_length;
    uint32_t reported = 0;
    for (uint32_t pos : flagged_) {
      if (reported++ >= options_.max_reported_groups) break;
      const QueryGroup& g = groups_[pos];
      Event e;
      e.name = std::string(kNPlusOneEvent);
      e.time_unix_nano =
          g.flagged_at_unix_nano > 1 ? g.flagged_at_unix_nano : root.end_time_unix_nano;
      auto ev = [&](std::string_view key, AttrValue v) {
        SetAttribute(e.attributes, e.dropped_attributes_count, key, std::move(v), max_ev_attrs,
                     max_ev_len);
      };
      ev("db.query.text", g.sql->text);
      ev("db.query.summary", g.sql->summary);
      ev("djtrace.db.fingerprint", FingerprintHex(g.fingerprint));
      ev("djtrace.n_plus_one.count", static_cast<int64_t>(g.count));
      ev("djtrace.n_plus_one.duration_ms", Ms(g.total_duration_ns));
      AddCallSite(e, g.site, limits_);
      if (!g.relation.empty()) ev("djtrace.orm.relation", g.relation);
      AddEvent(root, std::move(e), limits_);
    }
    reported = 0;
    for (uint32_t pos : repeated_cache_) {
      if (reported++ >= options_.max_reported_groups) break;
      const CacheKeyStats& k = cache_keys_[pos];
      Event e;
      e.name = std::string(kRepeatedCacheGetEvent);
      e.time_unix_nano = root.end_time_unix_nano;
      SetAttribute(e.attributes, e.dropped_attributes_count, "djtrace.cache.get_count",
                   static_cast<int64_t>(k.gets), max_ev_attrs, max_ev_len);
      SetAttribute(e.attributes, e.dropped_attributes_count, "djtrace.cache.hit_count",
                   static_cast<int64_t>(k.hits), max_ev_attrs, max_ev_len);
      SetAttribute(e.attributes, e.dropped_attributes_count, "djtrace.cache.key_hash",
                   FingerprintHex(k.key_hash), max_ev_attrs, max_ev_len);
      if (!k.alias.empty())
        SetAttribute(e.attributes, e.dropped_attributes_count, "djtrace.cache.alias", k.alias,
                     max_ev_attrs, max_ev_len);
      if (!k.key_text.empty())
        SetAttribute(e.attributes, e.dropped_attributes_count, "djtrace.cache.key", k.key_text,
                     max_ev_attrs, max_ev_len);
      AddCallSite(e, k.site, limits_);
      AddEvent(root, std::move(e), limits_);
    }
    reported = 0;
    for (uint32_t pos : repeated_sends_) {
      if (reported++ >= options_.max_reported_groups) break;
      const TaskSendGroup& g = task_sends_[pos];
      Event e;
      e.name = std::string(kRepeatedTaskSendEvent);
      e.time_unix_nano =
          g.flagged_at_unix_nano > 1 ? g.flagged_at_unix_nano : root.end_time_unix_nano;
      SetAttribute(e.attributes, e.dropped_attributes_count, kTaskName, g.task_name, max_ev_attrs,
                   max_ev_len);
      SetAttribute(e.attributes, e.dropped_attributes_count, kRepeatedTaskSendCount,
                   static_cast<int64_t>(g.count), max_ev_attrs, max_ev_len);
      AddCallSite(e, g.site, limits_);
      AddEvent(root, std::move(e), limits_);
    }
  } catch (...) {
    // Out of memory while building attributes: the root keeps what it has.
  }
}

}  // namespace djtrace::analysis
