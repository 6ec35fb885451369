// SqlCache: the obfuscation result per distinct SQL text, shared by every execution of it.
//
// Django sends the same few hundred statement texts thousands of times, so the obfuscator runs
// once per (text, dialect) and every later execution costs one hash of the text and one
// lookup. The cache is split into shards, each behind its own mutex, so threads that look up
// different statements rarely meet. A hit does not allocate: the lookup key is a view of the
// caller's text with its hash computed once, used both to pick the shard and as the hash-table
// hash. Eviction is CLOCK (second chance): a hit sets a bit, an insertion into a full shard
// sweeps to the first entry whose bit is clear.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sql/obfuscator.h"

namespace djtrace::sql {

struct SqlCacheOptions {
  // Entries kept at most; 0 disables caching (every Get obfuscates).
  size_t capacity = 4096;
  // Texts longer than this are obfuscated on every call and never stored, which bounds the
  // memory the cache can pin to about capacity * max_sql_length. Such texts are rare and
  // usually unique (bulk inserts with inline values).
  size_t max_sql_length = 16 * 1024;
  ObfuscateOptions obfuscate;
};

class SqlCache {
 public:
  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;    // obfuscated and stored
    uint64_t uncached = 0;  // obfuscated, too long (or capacity 0) to store
    uint64_t evictions = 0;
    size_t size = 0;  // entries held now
  };

  explicit SqlCache(const SqlCacheOptions& options = {});
  SqlCache(const SqlCache&) = delete;
  SqlCache& operator=(const SqlCache&) = delete;
  ~SqlCache();

  // The result for `sql` lexed as `dialect`, from the cache or computed now. The result stays
  // valid as long as the caller holds it, eviction notwithstanding.
  std::shared_ptr<const ObfuscatedSql> Get(std::string_view sql, Dialect dialect) noexcept;

  Stats stats() const noexcept;
  size_t capacity() const noexcept { return capacity_; }
  const SqlCacheOptions& options() const noexcept { return options_; }
  void Clear() noexcept;

 private:
  // A view of a stored text, or of the caller's text during a lookup, with its hash.
  struct Key {
    std::string_view sql;
    uint64_t hash;
    Dialect dialect;
    bool operator==(const Key& o) const noexcept {
      return hash == o.hash && dialect == o.dialect && sql == o.sql;
    }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept { return static_cast<size_t>(k.hash); }
  };
  struct Slot {
    std::string sql;  // owns the bytes the index's Key points into
    uint64_t hash = 0;
    Dialect dialect = Dialect::kGeneric;
    bool referenced = false;
    std::shared_ptr<const ObfuscatedSql> value;
  };
  struct alignas(64) Shard {
    std::mutex mu;
    std::unordered_map<Key, uint32_t, KeyHash> index;  // Key -> position in slots
    std::vector<Slot> slots;  // reserved once to `limit`, so Keys never dangle
    size_t limit = 0;
    size_t hand = 0;  // the CLOCK hand
    // Written under mu, read without it.
    std::atomic<uint64_t> hits{0};
    std::atomic<uint64_t> misses{0};
    std::atomic<uint64_t> evictions{0};
  };

  static void Bump(std::atomic<uint64_t>& counter) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  Shard& ShardFor(uint64_t hash) noexcept { return shards_[(hash >> 32) & shard_mask_]; }

  const SqlCacheOptions options_;
  const size_t capacity_;
  size_t shard_mask_ = 0;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<uint64_t> uncached_{0};
};

}  // namespace djtrace::sql
