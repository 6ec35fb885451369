#include "sql/cache.h"

#include "sql/hash.h"

namespace djtrace::sql {
namespace {

constexpr uint64_t kKeySeed = 0x6a09e667f3bcc908;  // sqrt(2)
constexpr size_t kMaxShards = 16;

}  // namespace

SqlCache::SqlCache(const SqlCacheOptions& options)
    : options_(options), capacity_(options.capacity) {
  // Enough shards that threads seldom share one, but never so many that a shard holds fewer
  // than a handful of entries (eviction would then be close to random).
  size_t shards = 1;
  while (shards < kMaxShards && capacity_ / (shards * 2) >= 8) shards *= 2;
  shard_mask_ = shards - 1;
  shards_ = std::make_unique<Shard[]>(shards);
  for (size_t i = 0; i < shards; ++i) {
    Shard& s = shards_[i];
    s.limit = capacity_ / shards + (i < capacity_ % shards ? 1 : 0);
    s.slots.reserve(s.limit);
    s.index.reserve(s.limit);
  }
}

SqlCache::~SqlCache() = default;

std::shared_ptr<const ObfuscatedSql> SqlCache::Get(std::string_view sql, Dialect dialect) noexcept {
  if (capacity_ == 0 || sql.size() > options_.max_sql_length) {
    uncached_.fetch_add(1, std::memory_order_relaxed);
    auto result = std::make_shared<ObfuscatedSql>();
    Obfuscate(sql, dialect, options_.obfuscate, *result);
    return result;
  }
  const Key key{sql, HashBytes(sql, kKeySeed ^ static_cast<uint64_t>(dialect)), dialect};
  Shard& shard = ShardFor(key.hash);
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.index.find(key);
    if (it != shard.index.end()) {
      Slot& slot = shard.slots[it->second];
      slot.referenced = true;
      Bump(shard.hits);
      return slot.value;
    }
  }

  // Obfuscate outside the lock: a slow statement must not stall lookups of others.
  auto computed = std::make_shared<ObfuscatedSql>();
  Obfuscate(sql, dialect, options_.obfuscate, *computed);
  std::shared_ptr<const ObfuscatedSql> result = std::move(computed);

  std::lock_guard<std::mutex> lock(shard.mu);
  Bump(shard.misses);
  auto it = shard.index.find(key);
  if (it != shard.index.end()) return shard.slots[it->second].value;  // another thread won

  uint32_t pos;
  if (shard.slots.size() < shard.limit) {
    pos = static_cast<uint32_t>(shard.slots.size());
    shard.slots.emplace_back();
  } else {
    // Second chance: clear bits until an entry not used since the last sweep comes up.
    while (shard.slots[shard.hand].referenced) {
      shard.slots[shard.hand].referenced = false;
      shard.hand = shard.hand + 1 == shard.limit ? 0 : shard.hand + 1;
    }
    pos = static_cast<uint32_t>(shard.hand);
    shard.hand = shard.hand + 1 == shard.limit ? 0 : shard.hand + 1;
    Slot& victim = shard.slots[pos];
    shard.index.erase(Key{victim.sql, victim.hash, victim.dialect});
    Bump(shard.evictions);
  }
  Slot& slot = shard.slots[pos];
  slot.sql.assign(sql);
  slot.hash = key.hash;
  slot.dialect = dialect;
  slot.referenced = false;
  slot.value = result;
  shard.index.emplace(Key{slot.sql, slot.hash, slot.dialect}, pos);
  return result;
}

SqlCache::Stats SqlCache::stats() const noexcept {
  Stats s;
  s.uncached = uncached_.load(std::memory_order_relaxed);
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    s.hits += shard.hits.load(std::memory_order_relaxed);
    s.misses += shard.misses.load(std::memory_order_relaxed);
    s.evictions += shard.evictions.load(std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(shard.mu);
    s.size += shard.index.size();
  }
  return s;
}

void SqlCache::Clear() noexcept {
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.index.clear();
    shard.slots.clear();  // keeps the reserved capacity: Keys of new entries stay valid
    shard.hand = 0;
  }
}

}  // namespace djtrace::sql
