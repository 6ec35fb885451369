#include "pii/redactor.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "pii/glob.h"
#include "pii/key_rules.h"
#include "pii/utf8.h"
#include "sql/hash.h"

namespace djtrace::pii {
namespace {

constexpr uint16_t kMixedRule = 0xFFFF;  // overlapping matches of different rules
// Output bound: 4 * input + this. Large enough for any single mask (a 64-hex-digit pseudonym
// is 71 bytes), so only values full of tiny matches ever collapse.
constexpr size_t kGrowthSlack = 96;

struct Hit {
  size_t begin;
  size_t end;
  uint16_t rule;
};

bool ValidRuleName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

DetectorSet ProfileDetectors(Profile profile) {
  using D = Detector;
  DetectorSet set;
  if (profile == Profile::kOff) return set;
  for (D d : {D::kCreditCard, D::kSsn, D::kJwt, D::kBearerToken, D::kBasicAuth, D::kAwsAccessKey,
              D::kAwsSecretKey, D::kGithubToken, D::kStripeKey, D::kSlackToken, D::kPrivateKey,
              D::kUrlCredentials, D::kSensitiveParam, D::kSensitiveKey}) {
    set.Add(d);
  }
  if (profile == Profile::kGdpr) {
    for (D d :
         {D::kEmail, D::kPhone, D::kIpv4, D::kIpv6, D::kIban, D::kClientAddress, D::kEnduser}) {
      set.Add(d);
    }
  }
  return set;
}

template <typename T>
std::string ScalarText(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else {
    char buf[64];
    const auto result = std::to_chars(buf, buf + sizeof(buf), v);
    return std::string(buf, result.ptr);
  }
}

}  // namespace

struct Redactor::RuleBits {
  uint64_t words[2] = {0, 0};
  void Set(uint16_t rule) { words[rule >> 6] |= uint64_t{1} << (rule & 63); }
};

// Clean values are found again by exact comparison, never by hash alone, so a remembered
// verdict cannot let a different value through unscanned. Bounded: a memo that fills up starts
// over (values that vary per request, like paths with ids, would otherwise grow it forever).
struct Redactor::Memo {
  // The hash is unseeded: values built to collide only slow the lookups of their own bucket,
  // and the byte budget bounds how many there can be.
  static constexpr size_t kMaxValueBytes = 2048;
  static constexpr size_t kMaxBytes = 256 * 1024;  // of values, per thread
  static constexpr size_t kMaxKeys = 512;

  // The SQL fingerprints' inline hash (std::hash, an out-of-line call, cost several times more
  // on every attribute of every span). A long value is hashed by its length and its two ends:
  // the cost stays flat however long the SQL, and values that share both ends only share a
  // bucket (equality is still exact).
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      constexpr size_t kEnd = 48;
      if (s.size() <= 2 * kEnd) return sql::HashBytes(s);
      return sql::HashBytes(s.substr(s.size() - kEnd), sql::HashBytes(s.substr(0, kEnd))) ^
             s.size();
    }
  };
  uint64_t owner = 0;
  size_t clean_bytes = 0;
  std::unordered_set<std::string, Hash, std::equal_to<>> clean;
  std::unordered_map<std::string, KeyDecision, Hash, std::equal_to<>> keys;

  bool IsClean(std::string_view value) const { return clean.find(value) != clean.end(); }
  void AddClean(std::string_view value) noexcept {
    if (value.size() > kMaxValueBytes) return;
    try {
      if (clean_bytes + value.size() > kMaxBytes) {
        clean.clear();
        clean_bytes = 0;
      }
      if (clean.emplace(value).second) clean_bytes += value.size();
    } catch (...) {  // out of memory: only the memo is lost
    }
  }
  void Reset(uint64_t id) noexcept {
    clean.clear();
    clean_bytes = 0;
    keys.clear();
    owner = id;
  }
};

struct Redactor::Scratch {
  Memo* memo = nullptr;  // this thread's, looked up once per call (thread_local costs a call)
  std::vector<DetectorMatch> matches;
  std::vector<Hit> hits;
  std::vector<Regex::Match> regex_matches;
  Regex::Scratch regex;
  std::string repaired;
  std::string out;
  RuleBits fired;
};

std::string_view ProfileName(Profile profile) noexcept {
  switch (profile) {
    case Profile::kOff:
      return "off";
    case Profile::kDefault:
      return "default";
    case Profile::kGdpr:
      return "gdpr";
  }
  return "default";
}

std::optional<Profile> ProfileFromName(std::string_view name) noexcept {
  if (name == "off") return Profile::kOff;
  if (name == "default") return Profile::kDefault;
  if (name == "gdpr") return Profile::kGdpr;
  return std::nullopt;
}

Redactor::Redactor() : scanner_(DetectorSet()) {
  static std::atomic<uint64_t> next_id{1};
  id_ = next_id.fetch_add(1, std::memory_order_relaxed);
}
Redactor::~Redactor() = default;

std::unique_ptr<Redactor> Redactor::Build(const RedactionConfig& config, std::string* error) {
  error->clear();
  std::unique_ptr<Redactor> r(new Redactor());
  r->rules_.resize(kDetectorCount);
  const DetectorSet profile_set = ProfileDetectors(config.profile);
  for (size_t i = 0; i < kDetectorCount; ++i) {
    const auto d = static_cast<Detector>(i);
    r->rules_[i].name = std::string(DetectorName(d));
    r->rules_[i].enabled = profile_set.Has(d);
  }
  const bool has_key = !config.hmac_key.empty();
  if (config.profile == Profile::kGdpr && has_key) {
    r->rules_[static_cast<size_t>(Detector::kEnduser)].style = MaskStyle::kPseudonymise;
  }
  for (const DetectorOverride& o : config.overrides) {
    const auto i = static_cast<size_t>(o.detector);
    if (i >= kDetectorCount) {
      *error = "overrides: unknown detector";
      return nullptr;
    }
    if (o.enabled) r->rules_[i].enabled = *o.enabled;
    if (o.style) {
      if (*o.style == MaskStyle::kPseudonymise && !has_key) {
        *error = "overrides: detector '" + r->rules_[i].name +
                 "' uses style pseudonymise, which needs hmac_key";
        return nullptr;
      }
      r->rules_[i].style = *o.style;
    }
  }
  if (config.pseudonym_hex_chars < 8 || config.pseudonym_hex_chars > 64) {
    *error =
        "pseudonym_hex_chars: " + std::to_string(config.pseudonym_hex_chars) + " is outside 8..64";
    return nullptr;
  }
  if (config.allow_keys.size() > RedactionConfig::kMaxAllowKeys ||
      config.deny_keys.size() > RedactionConfig::kMaxDenyKeys ||
      config.value_patterns.size() > RedactionConfig::kMaxValuePatterns) {
    *error = "too many custom rules (at most 64 allow_keys, 32 deny_keys, 32 value_patterns)";
    return nullptr;
  }
  auto check_name = [&](const std::string& name, const char* setting) {
    if (!ValidRuleName(name)) {
      *error = std::string(setting) + ": rule name '" + name +
               "' must be 1-64 characters of [a-z0-9_.-]";
      return false;
    }
    for (const Rule& rule : r->rules_) {
      if (rule.name == name) {
        *error = std::string(setting) + ": rule name '" + name + "' is already used";
        return false;
      }
    }
    return true;
  };
  auto check_style = [&](MaskStyle style, const std::string& name, const char* setting) {
    if (style == MaskStyle::kPseudonymise && !has_key) {
      *error = std::string(setting) + ": rule '" + name +
               "' uses style pseudonymise, which needs hmac_key";
      return false;
    }
    return true;
  };
  std::string detail;
  for (const CustomKeyRule& rule : config.deny_keys) {
    if (!check_name(rule.name, "deny_keys") || !check_style(rule.style, rule.name, "deny_keys")) {
      return nullptr;
    }
    if (!ValidateKeyGlob(rule.key_glob, &detail)) {
      *error = "deny_keys: rule '" + rule.name + "': " + detail;
      return nullptr;
    }
    r->deny_globs_.push_back({rule.key_glob, static_cast<uint16_t>(r->rules_.size())});
    r->rules_.push_back({rule.name, true, rule.style});
  }
  for (const std::string& glob : config.allow_keys) {
    if (!ValidateKeyGlob(glob, &detail)) {
      *error = "allow_keys: '" + glob + "': " + detail;
      return nullptr;
    }
    r->allow_globs_.push_back(glob);
  }
  for (const CustomValuePattern& pattern : config.value_patterns) {
    if (!check_name(pattern.name, "value_patterns") ||
        !check_style(pattern.style, pattern.name, "value_patterns")) {
      return nullptr;
    }
    std::unique_ptr<Regex> regex = Regex::Compile(pattern.pattern, &detail);
    if (regex == nullptr) {
      *error = "value_patterns: rule '" + pattern.name + "': " + detail;
      return nullptr;
    }
    r->patterns_.push_back({std::move(regex), static_cast<uint16_t>(r->rules_.size())});
    r->rules_.push_back({pattern.name, true, pattern.style});
  }

  DetectorSet value_set;
  for (size_t i = 0; i < kValueDetectorCount; ++i) {
    if (r->rules_[i].enabled) value_set.Add(static_cast<Detector>(i));
  }
  r->scanner_ = PiiScanner(value_set);
  r->value_work_ = value_set.AnyValueDetector() || !r->patterns_.empty();
  if (has_key) r->hmac_.emplace(config.hmac_key);
  r->hex_chars_ = config.pseudonym_hex_chars;
  r->builtin_allow_ = config.builtin_allow_keys;
  r->memoize_ = config.memoize;
  r->counters_ = std::make_unique<std::atomic<uint64_t>[]>(r->rules_.size());
  return r;
}

bool Redactor::enabled(Detector detector) const noexcept {
  const auto i = static_cast<size_t>(detector);
  return i < kDetectorCount && rules_[i].enabled;
}

MaskStyle Redactor::style(Detector detector) const noexcept {
  const auto i = static_cast<size_t>(detector);
  return i < kDetectorCount ? rules_[i].style : MaskStyle::kFull;
}

Redactor::Memo* Redactor::ThreadMemo() const {
  if (!memoize_) return nullptr;
  // One memo per thread (in practice the export worker), reset when another redactor uses it.
  thread_local Memo memo;
  if (memo.owner != id_) memo.Reset(id_);
  return &memo;
}

Redactor::KeyDecision Redactor::Decide(std::string_view key, Memo* memo) const noexcept {
  if (key.empty()) return {};
  if (memo) {
    auto it = memo->keys.find(key);
    if (it != memo->keys.end()) return it->second;
  }
  const KeyDecision decision = DecideUncached(key);
  if (memo) {
    try {
      if (memo->keys.size() >= Memo::kMaxKeys) memo->keys.clear();
      memo->keys.emplace(key, decision);
    } catch (...) {
    }
  }
  return decision;
}

Redactor::KeyDecision Redactor::DecideUncached(std::string_view key) const noexcept {
  if (key.empty()) return {};
  for (const KeyGlob& g : deny_globs_) {
    if (KeyGlobMatch(g.glob, key)) return {KeyAction::kDeny, g.rule};
  }
  auto rule_on = [this](Detector d) { return rules_[static_cast<size_t>(d)].enabled; };
  if (rule_on(Detector::kSensitiveKey) && IsSensitiveAttributeKey(key)) {
    return {KeyAction::kDeny, static_cast<uint16_t>(Detector::kSensitiveKey)};
  }
  if (rule_on(Detector::kClientAddress) && IsClientAddressKey(key)) {
    return {KeyAction::kDeny, static_cast<uint16_t>(Detector::kClientAddress)};
  }
  if (rule_on(Detector::kEnduser) && IsEnduserKey(key)) {
    return {KeyAction::kDeny, static_cast<uint16_t>(Detector::kEnduser)};
  }
  if (builtin_allow_ && IsBuiltinAllowedKey(key)) return {KeyAction::kAllow, 0};
  for (const std::string& glob : allow_globs_) {
    if (KeyGlobMatch(glob, key)) return {KeyAction::kAllow, 0};
  }
  return {};
}

KeyAction Redactor::ClassifyKey(std::string_view key) const noexcept {
  return DecideUncached(key).action;
}

void Redactor::AppendRuleMask(uint16_t rule, std::string_view match, std::string* out) const {
  if (rule == kMixedRule) {
    out->append(kFullMask);
    return;
  }
  const Detector detector = rule < kDetectorCount ? static_cast<Detector>(rule) : Detector::kCount;
  AppendMask(detector, rules_[rule].style, match, hmac_ ? &*hmac_ : nullptr, hex_chars_, out);
}

bool Redactor::RedactValue(const KeyDecision& decision, std::string_view in, std::string* out,
                           Scratch& sc) const {
  sc.fired = RuleBits();
  if (decision.action == KeyAction::kDeny) {
    if (in.empty()) return false;
    out->clear();
    AppendRuleMask(decision.rule, in, out);
    if (*out == in) return false;
    sc.fired.Set(decision.rule);
    return true;
  }
  // Only scanned values are remembered: an allowed key's value is never scanned, and a value
  // that needed repair or masking is not clean.
  Memo* memo = decision.action == KeyAction::kScan && value_work_ ? sc.memo : nullptr;
  if (memo && in.size() <= Memo::kMaxValueBytes && memo->IsClean(in)) return false;
  std::string_view text = in;
  bool repaired = false;
  if (ValidUtf8Prefix(in) != in.size()) {
    sc.repaired.clear();
    AppendRepairedUtf8(in, &sc.repaired);
    text = sc.repaired;
    repaired = true;
  }
  sc.hits.clear();
  if (decision.action == KeyAction::kScan && value_work_) {
    sc.matches.clear();
    scanner_.Scan(text, &sc.matches);
    for (const DetectorMatch& m : sc.matches) {
      sc.hits.push_back({m.begin, m.end, static_cast<uint16_t>(m.detector)});
    }
    if (!patterns_.empty()) {
      for (const Pattern& p : patterns_) {
        sc.regex_matches.clear();
        p.regex->FindAll(text, &sc.regex_matches, &sc.regex);
        for (const Regex::Match& m : sc.regex_matches) sc.hits.push_back({m.begin, m.end, p.rule});
      }
      std::sort(sc.hits.begin(), sc.hits.end(), [](const Hit& a, const Hit& b) {
        return a.begin < b.begin || (a.begin == b.begin && a.end > b.end);
      });
    }
  }
  if (sc.hits.empty()) {
    if (!repaired) {
      if (memo) memo->AddClean(in);
      return false;
    }
    out->assign(text);
    return true;
  }
  // Merge overlaps (and touching matches of one custom pattern, so "aaaa" under the pattern
  // "a" gives one mask, not four). Sorted by begin already: the scanner emits in order, and
  // custom matches were sorted in above.
  size_t w = 0;
  for (size_t r = 0; r < sc.hits.size(); ++r) {
    Hit h = sc.hits[r];
    sc.fired.Set(h.rule);
    // Every detector stops on ASCII bytes, but the output must stay valid UTF-8 whatever a
    // rule matches: a boundary inside a character widens to the whole character (before the
    // overlap test, so two matches that met inside one character merge).
    while (h.begin > 0 && (static_cast<unsigned char>(text[h.begin]) & 0xC0) == 0x80) --h.begin;
    while (h.end < text.size() && (static_cast<unsigned char>(text[h.end]) & 0xC0) == 0x80) {
      ++h.end;
    }
    if (w > 0) {
      Hit& last = sc.hits[w - 1];
      if (h.begin < last.end) {
        if (h.rule != last.rule) last.rule = kMixedRule;
        last.end = std::max(last.end, h.end);
        continue;
      }
      if (h.begin == last.end && h.rule == last.rule && h.rule >= kDetectorCount) {
        last.end = h.end;
        continue;
      }
    }
    sc.hits[w++] = h;
  }
  sc.hits.resize(w);
  out->clear();
  out->reserve(text.size() + 16);
  size_t pos = 0;
  for (const Hit& h : sc.hits) {
    out->append(text.substr(pos, h.begin - pos));
    AppendRuleMask(h.rule, text.substr(h.begin, h.end - h.begin), out);
    pos = h.end;
  }
  out->append(text.substr(pos));
  if (out->size() > 4 * in.size() + kGrowthSlack) out->assign(kFullMask);
  if (*out == in) {
    sc.fired = RuleBits();
    return false;
  }
  return true;
}

void Redactor::Count(const RuleBits& fired) const {
  for (int w = 0; w < 2; ++w) {
    uint64_t bits = fired.words[w];
    while (bits != 0) {
      const int b = __builtin_ctzll(bits);
      bits &= bits - 1;
      counters_[w * 64 + b].fetch_add(1, std::memory_order_relaxed);
    }
  }
}

bool Redactor::Redact(std::string_view key, std::string_view value, std::string* out) const {
  Scratch sc;
  sc.memo = ThreadMemo();
  if (!RedactValue(Decide(key, sc.memo), value, &sc.out, sc)) return false;
  out->swap(sc.out);
  Count(sc.fired);
  return true;
}

bool Redactor::RedactString(std::string_view key, std::string& value) const {
  Scratch sc;
  sc.memo = ThreadMemo();
  if (!RedactValue(Decide(key, sc.memo), value, &sc.out, sc)) return false;
  value.swap(sc.out);
  Count(sc.fired);
  return true;
}

void Redactor::RedactText(std::string& text, Scratch& sc) const {
  if (text.empty()) return;
  if (RedactValue(KeyDecision{}, text, &sc.out, sc)) {
    text.swap(sc.out);
    Count(sc.fired);
  }
}

void Redactor::RedactAttributes(Attributes& attributes, Scratch& sc) const {
  for (Attribute& attr : attributes) {
    const KeyDecision decision = Decide(attr.key, sc.memo);
    if (auto* s = std::get_if<std::string>(&attr.value)) {
      if (!s->empty() && RedactValue(decision, *s, &sc.out, sc)) {
        s->swap(sc.out);
        Count(sc.fired);
      }
      continue;
    }
    if (auto* list = std::get_if<std::vector<std::string>>(&attr.value)) {
      for (std::string& item : *list) {
        if (!item.empty() && RedactValue(decision, item, &sc.out, sc)) {
          item.swap(sc.out);
          Count(sc.fired);
        }
      }
      continue;
    }
    if (decision.action != KeyAction::kDeny) continue;
    // A number or flag under a secret's key is still the secret (a PIN, a numeric token):
    // it becomes the masked text of its decimal form.
    auto mask = [&](const std::string& text) {
      std::string masked;
      RedactValue(decision, text, &masked, sc);
      Count(sc.fired);
      return masked;
    };
    std::visit(
        [&](auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, int64_t> ||
                        std::is_same_v<T, double>) {
            attr.value = mask(ScalarText(v));
          } else if constexpr (std::is_same_v<T, std::vector<bool>> ||
                               std::is_same_v<T, std::vector<int64_t>> ||
                               std::is_same_v<T, std::vector<double>>) {
            if (v.empty()) return;
            std::vector<std::string> masked;
            masked.reserve(v.size());
            for (size_t i = 0; i < v.size(); ++i) {
              using E = typename T::value_type;
              masked.push_back(mask(ScalarText(static_cast<E>(v[i]))));
            }
            attr.value = std::move(masked);
          }
        },
        attr.value);
  }
}

void Redactor::RedactSpan(SpanData& span) const {
  Scratch sc;
  sc.memo = ThreadMemo();
  RedactText(span.name, sc);
  RedactAttributes(span.attributes, sc);
  for (Event& event : span.events) {
    RedactText(event.name, sc);
    RedactAttributes(event.attributes, sc);
  }
  for (Link& link : span.links) RedactAttributes(link.attributes, sc);
  RedactText(span.status_message, sc);
}

bool Redactor::LeavesUnchanged(const Attributes& attributes) const {
  Scratch sc;
  sc.memo = ThreadMemo();
  for (const Attribute& attr : attributes) {
    const KeyDecision decision = Decide(attr.key, sc.memo);
    if (const auto* s = std::get_if<std::string>(&attr.value)) {
      if (!s->empty() && RedactValue(decision, *s, &sc.out, sc)) return false;
    } else if (const auto* list = std::get_if<std::vector<std::string>>(&attr.value)) {
      for (const std::string& item : *list) {
        if (!item.empty() && RedactValue(decision, item, &sc.out, sc)) return false;
      }
    } else if (decision.action == KeyAction::kDeny) {
      return false;  // a number or flag under a secret's key becomes its mask
    }
  }
  return true;
}

std::map<std::string, uint64_t> Redactor::CountersSnapshot() const {
  std::map<std::string, uint64_t> snapshot;
  for (size_t i = 0; i < rules_.size(); ++i) {
    snapshot[rules_[i].name] = counters_[i].load(std::memory_order_relaxed);
  }
  return snapshot;
}

}  // namespace djtrace::pii
