// Query statistics of one local root (a request, a task, a command): how many queries ran, how
// long they took, which (statement, call site) pairs repeated often enough to be an N+1, and how
// many executions repeated an earlier one exactly (same text, same parameters). The same root
// also counts the Celery task messages it sends: one task sent many times from one line is the
// N+1 of task queues (a group or a bulk task would do).
//
// One QueryStats hangs off the root span as its LocalRootState; every database span of that root
// records into it when it ends, and the root span receives the summary attributes and one event
// per N+1 group when it ends. Memory is bounded by the options, whatever the root does: a
// request that runs a million distinct statements holds `max_groups` groups and
// `max_exact_keys` execution hashes, and counts the rest.
//
// Thread-safe: a request may run queries from several threads (ASGI thread pools, or threads
// the application starts with a copied context), and the root may end on a thread that does
// not hold the Python GIL.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sql/obfuscator.h"
#include "trace/recording.h"
#include "trace/span_data.h"
#include "trace/tracer.h"

namespace djtrace::analysis {

// A piece of application code, as a frame walker finds it: shared by every call site in it.
struct CodeLocation {
  std::string filepath;
  std::string function;
  uint64_t hash = 0;  // of filepath and function; MakeCodeLocation fills it
};

std::shared_ptr<const CodeLocation> MakeCodeLocation(std::string filepath, std::string function);

// The attributes a template location is recorded under, on query spans and findings.
inline constexpr std::string_view kTemplateNameKey = "djtrace.template.name";
inline constexpr std::string_view kTemplateLinenoKey = "djtrace.template.lineno";

// Where a query was issued from: the first frame of application code and its line. A query
// made while a template renders also has the template's node that made it (Django's engine,
// whose rendering frames are Django's own): its name (`function`) and line.
struct CallSite {
  std::shared_ptr<const CodeLocation> code;  // null: no application frame was found
  int32_t lineno = 0;
  std::shared_ptr<const CodeLocation> template_code;  // null: not made by a template
  int32_t template_lineno = 0;
  uint64_t id = 0;  // identifies (code, lineno, template, template line); 0 when all unknown

  static CallSite Make(std::shared_ptr<const CodeLocation> code, int32_t lineno) noexcept;
  // Adds the template location (kept by Make's callers that found one first) to the site.
  void SetTemplate(std::shared_ptr<const CodeLocation> tmpl, int32_t line) noexcept;
  bool known() const noexcept { return code != nullptr; }
  bool in_template() const noexcept { return template_code != nullptr; }
};

struct QueryStatsOptions {
  // Executions of one (statement fingerprint, call site) within a root that make it an N+1.
  // 0 turns detection off (counts and duplicates are still kept).
  uint32_t n_plus_one_threshold = 5;
  // ...and their total duration must reach this as well.
  uint64_t n_plus_one_min_duration_ns = 0;
  // Distinct (fingerprint, call site) pairs tracked per root; queries of further pairs are
  // counted in `ungrouped`.
  uint32_t max_groups = 256;
  // Distinct executions (text + parameters) remembered for duplicate counting.
  uint32_t max_exact_keys = 1024;
  // N+1 events written onto the root span at most (all groups still count in the attribute).
  uint32_t max_reported_groups = 16;
  // Cache gets of one key within a root that make it a repeated get worth an event.
  uint32_t repeated_cache_get_threshold = 5;
  // Distinct cache keys remembered per root.
  uint32_t max_cache_keys = 256;
  // Sends of one (task name, call site) within a root that make a repeated task send. 0 turns
  // detection off (sends are still counted).
  uint32_t task_send_threshold = 5;
  // Distinct (task name, call site) pairs tracked per root; further sends are only counted.
  uint32_t max_task_send_groups = 256;
};

// One (statement fingerprint, call site) pair and what ran of it.
struct QueryGroup {
  uint64_t fingerprint = 0;
  std::shared_ptr<const sql::ObfuscatedSql> sql;
  CallSite site;
  // The ORM relation whose lazy loading issued the queries ("Order.customer"); empty when the
  // queries were not lazy loads. The first non-empty one seen wins.
  std::string relation;
  uint32_t count = 0;
  uint64_t total_duration_ns = 0;
  uint64_t flagged_at_unix_nano = 0;  // when the group became an N+1; 0: it is not one
  bool n_plus_one() const noexcept { return flagged_at_unix_nano != 0; }
};

// One execution, as the database span that ran it saw it.
struct QueryRecord {
  const std::shared_ptr<const sql::ObfuscatedSql>* sql = nullptr;  // required
  const CallSite* site = nullptr;                                  // null: unknown
  std::string_view relation;
  uint64_t duration_ns = 0;
  uint64_t end_unix_nano = 0;
  bool error = false;
  // ExactKey() of the execution; without one it takes no part in duplicate counting.
  bool has_exact_key = false;
  uint64_t exact_key = 0;
};

// Repeated cache reads of one key within a root.
struct CacheKeyStats {
  uint64_t key_hash = 0;
  CallSite site;  // of the first get
  uint32_t gets = 0;
  uint32_t hits = 0;
  std::string alias;     // the cache (Django's CACHES alias); may be empty
  std::string key_text;  // the key as the caller allows it exported (redacted); usually empty
};

// Task messages of one (task name, call site) sent within a root.
struct TaskSendGroup {
  uint64_t key = 0;       // of the task name and the call site
  std::string task_name;  // cut to kMaxTaskNameChars
  CallSite site;
  uint32_t count = 0;
  uint64_t flagged_at_unix_nano = 0;  // when the group became a repeated send; 0: it is not one
  bool repeated() const noexcept { return flagged_at_unix_nano != 0; }
};

struct QueryStatsSummary {
  uint64_t query_count = 0;
  uint64_t total_duration_ns = 0;
  uint64_t error_count = 0;
  // Executions whose exact key (text and parameters) an earlier execution of this root had.
  uint64_t duplicate_count = 0;
  uint64_t n_plus_one_groups = 0;
  // Queries of (fingerprint, call site) pairs beyond max_groups.
  uint64_t ungrouped = 0;
  // Executions not checked for duplicates because max_exact_keys was reached.
  uint64_t unchecked_for_duplicates = 0;
  uint64_t cache_get_count = 0;
  // Cache gets of a key this root had already read.
  uint64_t repeated_cache_get_count = 0;
  uint64_t task_send_count = 0;
  uint64_t repeated_task_send_groups = 0;
  // Sends of (task name, call site) pairs beyond max_task_send_groups.
  uint64_t ungrouped_task_sends = 0;
};

// The key that identifies one execution exactly: the statement text as sent (literals
// included) and the caller's serialisation of the bound parameters. Only compared within the
// process; parameters never leave it.
uint64_t ExactKey(uint64_t fingerprint, std::string_view sql_text,
                  std::string_view serialized_params) noexcept;

class QueryStats final : public LocalRootState {
 public:
  static constexpr int kKind = 1;  // LocalRootState::kind()

  QueryStats(const QueryStatsOptions& options, const SpanLimits& limits);

  // `state` as QueryStats, or null when it is another kind of state (or null).
  static QueryStats* Of(LocalRootState* state) noexcept {
    return state && state->kind() == kKind ? static_cast<QueryStats*>(state) : nullptr;
  }
  int kind() const noexcept override { return kKind; }

  // Adds one execution. Returns true when this execution made its group an N+1 (exactly once
  // per group), and then copies the group to `*crossed` if that is not null.
  bool Record(const QueryRecord& query, QueryGroup* crossed = nullptr) noexcept;
  // Adds one cache read of the key with hash `key_hash`. Returns true when this read made the
  // key a repeated get (reaching repeated_cache_get_threshold), once per key. `alias` and
  // `key_text` (what may be exported of the key; empty: nothing) are kept from the first read.
  bool RecordCacheGet(uint64_t key_hash, bool hit, const CallSite& site,
                      std::string_view alias = {}, std::string_view key_text = {}) noexcept;
  // Adds one task message sent. Returns true when this send made its (task name, call site)
  // group a repeated send (exactly once per group), and then copies the group to `*crossed` if
  // that is not null. `now_unix_nano` is the time of the event (0: the root's end time).
  bool RecordTaskSend(std::string_view task_name, const CallSite& site, uint64_t now_unix_nano = 0,
                      TaskSendGroup* crossed = nullptr) noexcept;

  // True when this root has read the key already (its call site is then known): callers skip
  // the frame walk for repeated reads.
  bool KnowsCacheKey(uint64_t key_hash) const noexcept;

  QueryStatsSummary Summary() const noexcept;
  // The groups that are N+1s, in the order they became one.
  std::vector<QueryGroup> NPlusOneGroups() const;
  // Keys read at least repeated_cache_get_threshold times, in the order they got there.
  std::vector<CacheKeyStats> RepeatedCacheGets() const;
  // The task send groups that are repeated sends, in the order they became one.
  std::vector<TaskSendGroup> RepeatedTaskSends() const;
  const QueryStatsOptions& options() const noexcept { return options_; }

  // Writes the summary attributes and one "djtrace.n_plus_one" event per N+1 group (at most
  // max_reported_groups; likewise for repeated cache gets and repeated task sends) onto the
  // root span, within the span limits.
  void OnRootEnd(SpanData& root) noexcept override;

  // Attribute and event names written on the root span.
  static constexpr std::string_view kQueryCount = "djtrace.db.query_count";
  static constexpr std::string_view kDurationMs = "djtrace.db.duration_ms";
  static constexpr std::string_view kErrorCount = "djtrace.db.error_count";
  static constexpr std::string_view kNPlusOneCount = "djtrace.n_plus_one.count";
  static constexpr std::string_view kDuplicateCount = "djtrace.db.duplicate_count";
  static constexpr std::string_view kCacheRepeatedGets = "djtrace.cache.repeated_get_count";
  static constexpr std::string_view kNPlusOneEvent = "djtrace.n_plus_one";
  static constexpr std::string_view kRepeatedCacheGetEvent = "djtrace.cache.repeated_get";
  // Written only when the root sent task messages. The event's count attribute has the name of
  // the root's group count, as with the N+1 names.
  static constexpr std::string_view kTaskSendCount = "djtrace.celery.send_count";
  static constexpr std::string_view kRepeatedTaskSendCount = "djtrace.celery.repeated_send.count";
  static constexpr std::string_view kRepeatedTaskSendEvent = "djtrace.celery.repeated_send";
  static constexpr std::string_view kTaskName = "celery.task_name";
  // Longer task names are cut (in code points) when kept; the full name still tells groups apart.
  static constexpr uint32_t kMaxTaskNameChars = 256;

 private:
  QueryGroup* FindOrAddGroup(uint64_t fingerprint, const QueryRecord& q) noexcept;
  // True if `key` was seen before; remembers it otherwise (while there is room).
  bool SeenExact(uint64_t key) noexcept;
  CacheKeyStats* FindOrAddCacheKey(uint64_t key_hash, const CallSite& site, std::string_view alias,
                                   std::string_view key_text) noexcept;
  TaskSendGroup* FindOrAddTaskSend(uint64_t key, std::string_view task_name,
                                   const CallSite& site) noexcept;

  const QueryStatsOptions options_;
  const SpanLimits limits_;
  mutable std::mutex mu_;
  QueryStatsSummary summary_;
  std::vector<QueryGroup> groups_;
  std::vector<uint32_t> group_index_;  // open addressing: group position + 1, 0 = empty
  std::vector<uint32_t> flagged_;      // positions in groups_, in flagging order
  std::vector<uint64_t> exact_keys_;   // open addressing, 0 = empty
  size_t exact_size_ = 0;
  bool zero_key_seen_ = false;
  std::vector<CacheKeyStats> cache_keys_;  // linear: roots read few distinct keys
  std::vector<uint32_t> repeated_cache_;   // positions in cache_keys_
  std::vector<TaskSendGroup> task_sends_;  // linear: roots send few distinct tasks
  std::vector<uint32_t> repeated_sends_;   // positions in task_sends_, in flagging order
  bool ended_ = false;
};

// Hexadecimal form of a fingerprint as exported ("c0ffee..." 16 digits).
std::string FingerprintHex(uint64_t fingerprint);

}  // namespace djtrace::analysis
