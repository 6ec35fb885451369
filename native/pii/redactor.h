// The redaction engine that every span passes through before export, so that no PII or secret
// leaves the process. Built once from a RedactionConfig, then immutable: one Redactor is shared
// by every thread (the export worker, application threads) without locks; the only writes are
// relaxed atomic counter increments.
//
// Order of work for one string value under key K:
//   1. Key rules. A custom deny glob, then the built-in deny rules (sensitive_key,
//      client_address, enduser; see key_rules.h) replace the whole value. Otherwise an allowed
//      key (built-in allow-list, custom allow globs) skips step 3.
//   2. UTF-8 repair: each ill-formed sequence becomes U+FFFD.
//   3. Value detectors (detectors.h) and custom value patterns (regex.h), each match replaced
//      in the style of its rule (masking.h). Overlapping matches of different rules merge into
//      one full mask.
//   4. Bound: the result is never longer than 4 * input + 96 bytes; a value that would grow
//      past that (only possible with many tiny matches) becomes "[REDACTED]".
//
// Profiles (then per-detector overrides on top):
//   off      nothing (custom rules and overrides still apply, to build a policy from scratch)
//   default  credit_card, ssn, jwt, bearer_token, basic_auth, aws_access_key, aws_secret_key,
//            github_token, stripe_key, slack_token, private_key, url_credentials,
//            sensitive_param, sensitive_key
//   gdpr     default + email, phone, ipv4, ipv6, iban, client_address, enduser (enduser is
//            pseudonymised when hmac_key is set, fully masked otherwise)
// The "pseudonymise end users" option of other profiles is the same rule turned on:
// Set(Detector::kEnduser, true, MaskStyle::kPseudonymise) with an hmac_key.
// Every rule's style is full unless overridden. A pseudonymise style set explicitly (override or
// custom rule) needs hmac_key, or Build fails.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pii/detectors.h"
#include "pii/hmac.h"
#include "pii/masking.h"
#include "pii/regex.h"
#include "trace/span_data.h"

namespace djtrace::pii {

enum class Profile : uint8_t { kOff, kDefault, kGdpr };

std::string_view ProfileName(Profile profile) noexcept;
std::optional<Profile> ProfileFromName(std::string_view name) noexcept;  // off, default, gdpr

struct DetectorOverride {
  Detector detector;
  std::optional<bool> enabled;
  std::optional<MaskStyle> style;
};

// Keys matching the glob (glob.h) are redacted whole.
struct CustomKeyRule {
  std::string name;  // counter name: [a-z0-9_.-]{1,64}, unique, not a built-in detector name
  std::string key_glob;
  MaskStyle style = MaskStyle::kFull;
};

// Text matching the pattern (regex.h) is redacted wherever it appears.
struct CustomValuePattern {
  std::string name;  // as for CustomKeyRule
  std::string pattern;
  MaskStyle style = MaskStyle::kFull;
};

struct RedactionConfig {
  static constexpr size_t kMaxAllowKeys = 64;
  static constexpr size_t kMaxDenyKeys = 32;
  static constexpr size_t kMaxValuePatterns = 32;

  Profile profile = Profile::kDefault;
  std::vector<DetectorOverride> overrides;
  // Secret for the pseudonymise style. Keep it out of source control; rotating it changes
  // every pseudonym.
  std::string hmac_key;
  size_t pseudonym_hex_chars = 16;  // 8..64
  bool builtin_allow_keys = true;
  std::vector<std::string> allow_keys;  // extra allow-list globs
  std::vector<CustomKeyRule> deny_keys;
  std::vector<CustomValuePattern> value_patterns;
  // Remember, per thread, the values found clean and each key's decision, so that the values
  // every span repeats (the same SQL, file paths, names) are compared, not scanned, from the
  // second time on. Off only to measure the scanner itself.
  bool memoize = true;

  // Convenience for overrides.
  RedactionConfig& Set(Detector detector, bool enabled,
                       std::optional<MaskStyle> style = std::nullopt) {
    overrides.push_back({detector, enabled, style});
    return *this;
  }
};

// How a key is treated.
enum class KeyAction : uint8_t { kScan, kAllow, kDeny };

class Redactor {
 public:
  // Returns nullptr and sets *error (naming the offending setting) for an invalid config.
  static std::unique_ptr<Redactor> Build(const RedactionConfig& config, std::string* error);

  ~Redactor();
  Redactor(const Redactor&) = delete;
  Redactor& operator=(const Redactor&) = delete;

  // Redacts `value` in place under attribute key `key` ("" for text without a key, like a span
  // name). Returns whether the value changed.
  bool RedactString(std::string_view key, std::string& value) const;

  // Same, reading `value` and writing the result to *out only when it differs. `value` and
  // *out must not overlap.
  bool Redact(std::string_view key, std::string_view value, std::string* out) const;

  // Redacts, in place: the span name, string and string-array attributes (and, under a deny
  // rule, attributes of any type, which become strings), event names and attributes (including
  // exception.message and exception.stacktrace), link attributes and the status message.
  // Resource and scope attributes are configuration, shared between spans, and not touched.
  void RedactSpan(SpanData& span) const;

  // Whether RedactSpan would leave these attributes as they are. Counts nothing: the batch
  // processor asks it once of a block of attributes shared by many spans (SharedAttributesCheck).
  bool LeavesUnchanged(const Attributes& attributes) const;

  KeyAction ClassifyKey(std::string_view key) const noexcept;

  // Values redacted so far, per rule name (built-in detectors and custom rules, zeros
  // included). A value counts once per rule that changed it. Never holds the values.
  std::map<std::string, uint64_t> CountersSnapshot() const;

  bool enabled(Detector detector) const noexcept;
  MaskStyle style(Detector detector) const noexcept;

 private:
  struct Rule {
    std::string name;
    bool enabled = false;
    MaskStyle style = MaskStyle::kFull;
  };
  struct KeyDecision {
    KeyAction action = KeyAction::kScan;
    uint16_t rule = 0;
  };
  struct Scratch;
  struct RuleBits;
  struct Memo;

  Redactor();
  // `memo` (may be null) remembers decisions already taken on this thread.
  KeyDecision Decide(std::string_view key, Memo* memo) const noexcept;
  KeyDecision DecideUncached(std::string_view key) const noexcept;
  // This thread's memo for this redactor, or null when memoizing is off.
  Memo* ThreadMemo() const;
  // Writes the redacted value to *out and returns true when it differs from `in`.
  bool RedactValue(const KeyDecision& decision, std::string_view in, std::string* out,
                   Scratch& scratch) const;
  void AppendRuleMask(uint16_t rule, std::string_view match, std::string* out) const;
  void RedactAttributes(Attributes& attributes, Scratch& scratch) const;
  void RedactText(std::string& text, Scratch& scratch) const;
  void Count(const RuleBits& fired) const;

  std::vector<Rule> rules_;  // built-in detectors, then custom key rules, then value patterns
  std::unique_ptr<std::atomic<uint64_t>[]> counters_;
  PiiScanner scanner_;
  std::optional<HmacSha256> hmac_;
  size_t hex_chars_ = 16;
  bool builtin_allow_ = true;
  bool value_work_ = false;  // any value detector or value pattern
  bool memoize_ = true;
  uint64_t id_ = 0;  // distinct per redactor built, so a thread's memo never outlives its rules
  struct KeyGlob {
    std::string glob;
    uint16_t rule;
  };
  std::vector<KeyGlob> deny_globs_;
  std::vector<std::string> allow_globs_;
  struct Pattern {
    std::unique_ptr<Regex> regex;
    uint16_t rule;
  };
  std::vector<Pattern> patterns_;
};

}  // namespace djtrace::pii
