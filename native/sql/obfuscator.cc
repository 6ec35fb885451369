#include "sql/obfuscator.h"

#include <array>
#include <cstring>

#include "sql/hash.h"

namespace djtrace::sql {
namespace {

// ---------------------------------------------------------------------------------------------
// Character classes

enum : uint8_t {
  kSpace = 1,      // whitespace: separates tokens
  kWordStart = 2,  // may start an unquoted word (letters, _, any byte >= 0x80)
  kWordPart = 4,   // may continue an unquoted word (also digits and $)
  kDigit = 8,      // 0-9
  kHexDigit = 16,  // 0-9 a-f A-F
  kDropped = 32,   // control bytes: never exported, act as a separator
  kNonAscii = 64,  // >= 0x80: exported only as valid UTF-8
};

constexpr std::array<uint8_t, 256> MakeClasses() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v')
      v |= kSpace;
    else if (c < 0x20 || c == 0x7f)
      v |= kDropped;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') v |= kWordStart | kWordPart;
    if (c >= 0x80) v |= kWordStart | kWordPart | kNonAscii;
    if (c >= '0' && c <= '9') v |= kWordPart | kDigit | kHexDigit;
    if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHexDigit;
    if (c == '$') v |= kWordPart;
    t[c] = v;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClass = MakeClasses();

inline uint8_t ClassOf(char c) { return kClass[static_cast<unsigned char>(c)]; }
inline bool Is(char c, uint8_t cls) { return (ClassOf(c) & cls) != 0; }
inline char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c; }
inline char Upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c & ~0x20) : c; }

// Length of the valid UTF-8 sequence at p (1-4), or 0 if the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t Utf8SequenceLength(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf;  // bounds of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (static_cast<size_t>(end - p) < n) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < n; ++i)
    if (p[i] < 0x80 || p[i] > 0xbf) return 0;
  return n;
}

constexpr std::string_view kReplacementChar = "\xef\xbf\xbd";  // U+FFFD

// Hands [b, e) to sink(run, length) piece by piece, with U+FFFD in place of invalid UTF-8
// and of control bytes.
template <class Sink>
void Sanitize(const char* b, const char* e, Sink&& sink) {
  const auto* p = reinterpret_cast<const unsigned char*>(b);
  const auto* end = reinterpret_cast<const unsigned char*>(e);
  while (p < end) {
    const auto* run = p;
    while (p < end && *p >= 0x20 && *p < 0x7f) ++p;
    if (p != run) sink(reinterpret_cast<const char*>(run), static_cast<size_t>(p - run));
    if (p == end) break;
    const size_t n = (*p >= 0x80) ? Utf8SequenceLength(p, end) : 0;
    if (n == 0) {
      sink(kReplacementChar.data(), kReplacementChar.size());
      ++p;
    } else {
      sink(reinterpret_cast<const char*>(p), n);
      p += n;
    }
  }
}

size_t SanitizedLength(const char* b, const char* e) {
  size_t n = 0;
  Sanitize(b, e, [&n](const char*, size_t k) { n += k; });
  return n;
}

void AppendSanitized(std::string& out, const char* b, const char* e) {
  Sanitize(b, e, [&out](const char* run, size_t k) { out.append(run, k); });
}

bool NeedsSanitizing(const char* b, const char* e) {
  for (; b < e; ++b) {
    const auto c = static_cast<unsigned char>(*b);
    if (c < 0x20 || c >= 0x7f) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Keywords: only the few the obfuscator and the summary act on.

enum class Kw : uint8_t {
  kNone,
  kOther,  // a keyword with no role of its own beyond its flags
  kIn,
  kValues,
  kArray,
  kTrue,
  kFalse,
  kFrom,
  kInto,
  kSelect,
  kInsert,
  kReplace,
  kUpdate,
  kDelete,
  kMerge,
  kWith,
  kOnly,
  kLateral,
};

enum : uint8_t {
  kOperandNext = 1,     // an operand follows, so a sign after it is unary: WHERE -1, THEN +2
  kInsertModifier = 2,  // INSERT IGNORE INTO, INSERT OR REPLACE INTO
  kUpdateModifier = 4,  // UPDATE ONLY t, UPDATE LOW_PRIORITY t, UPDATE OR ROLLBACK t
};

struct Keyword {
  std::string_view name;  // lower case
  Kw id;
  uint8_t flags;
};

constexpr Keyword kKeywords[] = {
    {"in", Kw::kIn, kOperandNext},
    {"values", Kw::kValues, kOperandNext},
    {"array", Kw::kArray, 0},
    {"true", Kw::kTrue, 0},
    {"false", Kw::kFalse, 0},
    {"from", Kw::kFrom, 0},
    {"into", Kw::kInto, 0},
    {"select", Kw::kSelect, kOperandNext},
    {"insert", Kw::kInsert, 0},
    {"replace", Kw::kReplace, kInsertModifier | kUpdateModifier},
    {"update", Kw::kUpdate, 0},
    {"delete", Kw::kDelete, 0},
    {"merge", Kw::kMerge, 0},
    {"with", Kw::kWith, 0},
    {"only", Kw::kOnly, kUpdateModifier},
    {"lateral", Kw::kLateral, 0},
    {"ignore", Kw::kOther, kInsertModifier | kUpdateModifier},
    {"low_priority", Kw::kOther, kInsertModifier | kUpdateModifier},
    {"high_priority", Kw::kOther, kInsertModifier},
    {"delayed", Kw::kOther, kInsertModifier},
    {"or", Kw::kOther, kOperandNext | kInsertModifier | kUpdateModifier},
    {"rollback", Kw::kOther, kInsertModifier | kUpdateModifier},
    {"abort", Kw::kOther, kInsertModifier | kUpdateModifier},
    {"fail", Kw::kOther, kInsertModifier | kUpdateModifier},
    {"and", Kw::kOther, kOperandNext},
    {"not", Kw::kOther, kOperandNext},
    {"where", Kw::kOther, kOperandNext},
    {"when", Kw::kOther, kOperandNext},
    {"then", Kw::kOther, kOperandNext},
    {"else", Kw::kOther, kOperandNext},
    {"case", Kw::kOther, kOperandNext},
    {"by", Kw::kOther, kOperandNext},
    {"limit", Kw::kOther, kOperandNext},
    {"offset", Kw::kOther, kOperandNext},
    {"having", Kw::kOther, kOperandNext},
    {"on", Kw::kOther, kOperandNext},
    {"is", Kw::kOther, kOperandNext},
    {"like", Kw::kOther, kOperandNext},
    {"ilike", Kw::kOther, kOperandNext},
    {"glob", Kw::kOther, kOperandNext},
    {"regexp", Kw::kOther, kOperandNext},
    {"rlike", Kw::kOther, kOperandNext},
    {"similar", Kw::kOther, kOperandNext},
    {"between", Kw::kOther, kOperandNext},
    {"distinct", Kw::kOther, kOperandNext},
    {"all", Kw::kOther, kOperandNext},
    {"any", Kw::kOther, kOperandNext},
    {"some", Kw::kOther, kOperandNext},
    {"return", Kw::kOther, kOperandNext},
    {"set", Kw::kOther, kOperandNext},
    {"default", Kw::kOther, kOperandNext},
    {"interval", Kw::kOther, kOperandNext},
    {"escape", Kw::kOther, kOperandNext},
    {"div", Kw::kOther, kOperandNext},
    {"mod", Kw::kOther, kOperandNext},
    {"xor", Kw::kOther, kOperandNext},
    {"top", Kw::kOther, kOperandNext},
    {"fetch", Kw::kOther, kOperandNext},
    {"first", Kw::kOther, kOperandNext},
    {"next", Kw::kOther, kOperandNext},
};

constexpr size_t kMaxKeywordLength = 13;

// Keywords packed into two little-endian words, in an open-addressing table keyed by a
// multiplicative hash: a lookup is a pack, a multiply and (nearly always) one compare.
struct PackedWord {
  uint64_t lo = 0;
  uint64_t hi = 0;
};

constexpr uint64_t Pack8(std::string_view s, size_t from) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && from + i < s.size(); ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(s[from + i])) << (8 * i);
  return v;
}

constexpr size_t KeywordSlot(uint64_t lo, uint64_t hi) {
  return static_cast<size_t>(((lo ^ (hi * 0x9e3779b97f4a7c15)) * 0xbf58476d1ce4e5b9) >> 57);
}

struct KeywordTable {
  static constexpr size_t kSize = 128;
  PackedWord words[kSize] = {};
  uint8_t index[kSize] = {};  // 1 + position in kKeywords; 0 marks a free slot
};

constexpr KeywordTable MakeKeywordTable() {
  KeywordTable t;
  for (size_t i = 0; i < std::size(kKeywords); ++i) {
    const uint64_t lo = Pack8(kKeywords[i].name, 0), hi = Pack8(kKeywords[i].name, 8);
    size_t slot = KeywordSlot(lo, hi);
    while (t.index[slot] != 0) slot = (slot + 1) % KeywordTable::kSize;
    t.words[slot] = {lo, hi};
    t.index[slot] = static_cast<uint8_t>(i + 1);
  }
  return t;
}
constexpr KeywordTable kKeywordTable = MakeKeywordTable();

// `lower` holds the word case-folded, as packed by the caller.
const Keyword* LookupKeyword(uint64_t lo, uint64_t hi) {
  for (size_t slot = KeywordSlot(lo, hi);; slot = (slot + 1) % KeywordTable::kSize) {
    const uint8_t i = kKeywordTable.index[slot];
    if (i == 0) return nullptr;
    if (kKeywordTable.words[slot].lo == lo && kKeywordTable.words[slot].hi == hi)
      return &kKeywords[i - 1];
  }
}

// ---------------------------------------------------------------------------------------------
// The obfuscator: lexer, writer with collapse and truncation, and the summary state machine.

// The numbering is part of every fingerprint (each token's kind byte is hashed): changing it
// changes all fingerprints.
enum class Tok : uint8_t {
  kNone,    // before the first token
  kWord,    // unquoted identifier or keyword
  kQuoted,  // quoted identifier
  kValue,   // literal (written as ?) or placeholder (written as is)
  kOpen,    // ( or [
  kClose,   // ) or ]
  kComma,
  kDot,
  kOther,  // operators and other punctuation
};

// How a backslash in a '...' string is read.
enum class Escapes : uint8_t {
  kNone,       // an ordinary character (standard SQL, PostgreSQL, SQLite)
  kBackslash,  // escapes the next byte (MySQL, E'...')
  kUnknown,    // either: strings on which the two readings disagree hide the rest
};

struct DialectRules {
  Escapes escapes;           // in '...' strings
  bool double_quote_string;  // "..." is a string, not an identifier
  bool backtick_ident;       // `...` is a quoted identifier
  bool bracket_ident;        // [...] is a quoted identifier
  bool hash_comment;         // # starts a line comment
  bool nested_comments;      // /* /* */ */ nests
  bool pg_strings;           // $tag$...$tag$ bodies, E'...' and U&'...' strings
  bool question_operator;    // ? is an operator (PostgreSQL jsonb), not a placeholder
  bool question_digits;      // ?NNN placeholders
  bool at_variables;         // @name and @@name are identifiers
  bool dollar_names;         // $name placeholders (SQLite)
  bool dollar_word_start;    // $ may start an unquoted word (MySQL)
};

DialectRules RulesFor(Dialect d) {
  switch (d) {
    case Dialect::kPostgres:
      return {.escapes = Escapes::kNone,
              .double_quote_string = false,
              .backtick_ident = false,
              .bracket_ident = false,
              .hash_comment = false,
              .nested_comments = true,
              .pg_strings = true,
              .question_operator = true,
              .question_digits = false,
              .at_variables = false,
              .dollar_names = false,
              .dollar_word_start = false};
    case Dialect::kSqlite:
      return {.escapes = Escapes::kNone,
              .double_quote_string = false,
              .backtick_ident = true,
              .bracket_ident = true,
              .hash_comment = false,
              .nested_comments = false,
              .pg_strings = false,
              .question_operator = false,
              .question_digits = true,
              .at_variables = true,
              .dollar_names = true,
              .dollar_word_start = false};
    case Dialect::kMysql:
      return {.escapes = Escapes::kBackslash,
              .double_quote_string = true,
              .backtick_ident = true,
              .bracket_ident = false,
              .hash_comment = true,
              .nested_comments = false,
              .pg_strings = false,
              .question_operator = false,
              .question_digits = false,
              .at_variables = true,
              .dollar_names = false,
              .dollar_word_start = true};
    case Dialect::kGeneric:
    default:
      return {.escapes = Escapes::kUnknown,
              .double_quote_string = false,
              .backtick_ident = true,
              .bracket_ident = false,
              .hash_comment = false,
              .nested_comments = true,
              .pg_strings = true,
              .question_operator = false,
              .question_digits = true,
              .at_variables = true,
              .dollar_names = false,
              .dollar_word_start = false};
  }
}

constexpr size_t kMaxFrames = 32;
constexpr ptrdiff_t kMaxDollarTagLength = 64;
constexpr size_t kFoldedWordLength = 64;
constexpr uint64_t kFingerprintSeed = 0x5ca1ab1e0ddba11;
constexpr size_t kMaxTableLength = 256;
constexpr size_t kMaxOperationLength = 32;

// What a VALUES list at one nesting level has seen so far.
enum class ValuesState : uint8_t { kNone, kExpectFirstRow, kInRow, kAfterRow, kExpectRow };

// Where the summary state machine stands.
enum class SummaryState : uint8_t {
  kStart,        // before the first keyword
  kWith,         // inside WITH's common table expressions, looking for the main statement
  kSeekFrom,     // SELECT/DELETE: looking for FROM
  kSeekInto,     // MERGE: looking for INTO
  kInsertHead,   // after INSERT/REPLACE: modifiers, INTO, or (MySQL) the table itself
  kUpdateHead,   // after UPDATE: modifiers, then the table
  kExpectTable,  // after FROM/INTO
  kAfterName,    // a name was read: a dot continues it
  kExpectPart,   // after the dot of a qualified name
  kDone,
};

class Obfuscator {
 public:
  Obfuscator(std::string_view sql, Dialect dialect, const ObfuscateOptions& options,
             ObfuscatedSql& out)
      : p_(sql.data()),
        end_(sql.data() + sql.size()),
        rules_(RulesFor(dialect)),
        out_(out.text),
        result_(out) {
    out.text.clear();
    out.operation.clear();
    out.table.clear();
    out.summary.clear();
    out.truncated = false;
    out.fingerprint = 0;
    if (options.max_length == 0) {
      limit_ = static_cast<size_t>(-1);
    } else {
      limit_ = options.max_length < kTruncationMarker.size() ? kTruncationMarker.size()
                                                             : options.max_length;
    }
    soft_limit_ = limit_ == static_cast<size_t>(-1) ? limit_ : limit_ - kTruncationMarker.size();
    // The text is written through a raw pointer into a buffer sized for the common case
    // (output no longer than input), grown on demand, and cut to length at the end.
    cap_ = sql.size() + 16 < limit_ ? sql.size() + 16 : limit_;
    out_.resize(cap_);
    buf_ = out_.data();
    frames_[0].Reset(false, false);
  }

  void Run() {
    while (p_ < end_) Step();
    Finish();
  }

 private:
  struct Snapshot {
    size_t size;
    size_t soft_end;
    bool truncated;
    size_t stream;  // length of the fingerprint's token stream
  };

  // Frames and their snapshots are initialised when a parenthesis opens, not up front: a
  // statement rarely nests deeply, and clearing all of them costs more than lexing it.
  struct Frame {
    Frame() {}
    void Reset(bool is_list, bool is_values_row) {
      list = is_list;
      all_values = true;
      has_comma = false;
      values_row = is_values_row;
      values = ValuesState::kNone;
      extra_rows = false;
      first_row_seen = false;
    }
    bool list;                // an IN (...) or ARRAY[...] whose values may collapse
    bool all_values;          // only values, commas and value tuples so far
    bool has_comma;           // a second item has started
    bool values_row;          // this frame is a row of the enclosing VALUES list
    ValuesState values;       // a VALUES list directly in this frame
    bool extra_rows;          // that list has rows after its first
    bool first_row_seen;      // that list's first row has closed
    Snapshot first_item_end;  // list: the output after the first item
    Snapshot first_row_end;   // VALUES: the output after the first row
  };

  // ---- lexer -------------------------------------------------------------------------------

  void Step() {
    const char c = *p_;
    const uint8_t cls = ClassOf(c);
    if (cls & (kSpace | kDropped)) {
      ++p_;
      while (p_ < end_ && Is(*p_, kSpace | kDropped)) ++p_;
      pending_space_ = true;
      return;
    }
    if (cls & kDigit) return Number(p_);
    if (cls & kWordStart) return Word();
    switch (c) {
      case '\'':
        return QuotedString(p_ + 1, rules_.escapes);
      case '"':
        if (rules_.double_quote_string) return QuotedString(p_ + 1, Escapes::kBackslash);
        return QuotedIdentifier('"', '"');
      case '`':
        if (rules_.backtick_ident) return QuotedIdentifier('`', '`');
        return Punct(1, Tok::kOther);
      case '[':
        if (rules_.bracket_ident) return QuotedIdentifier('[', ']');
        return Punct(1, Tok::kOpen);
      case ']':
      case ')':
        return Punct(1, Tok::kClose);
      case '(':
        return Punct(1, Tok::kOpen);
      case ',':
        return Punct(1, Tok::kComma);
      case '.':
        if (p_ + 1 < end_ && Is(p_[1], kDigit)) return Number(p_);
        return Punct(1, Tok::kDot);
      case '-':
        if (p_ + 1 < end_ && p_[1] == '-') return LineComment();
        [[fallthrough]];
      case '+':
        if (StartsNumber(p_ + 1) && UnaryContext()) return Number(p_, p_ + 1);
        return Punct(1, Tok::kOther);
      case '/':
        if (p_ + 1 < end_ && p_[1] == '*') return BlockComment();
        return Punct(1, Tok::kOther);
      case '#':
        if (rules_.hash_comment) return LineComment();
        return Punct(1, Tok::kOther);
      case '$':
        return Dollar();
      case '?':
        return Question();
      case ':':
        return Colon();
      case '@':
        return At();
      case '%':
        return Percent();
      default:
        return Punct(1, Tok::kOther);
    }
  }

  bool StartsNumber(const char* p) const {
    if (p >= end_) return false;
    if (Is(*p, kDigit)) return true;
    return *p == '.' && p + 1 < end_ && Is(p[1], kDigit);
  }

  // Numbers in every form: 42, 4_2, 3.14, .5, 5., 1e10, 1.5E-3, 0x1F, 0b101, 0o17, with an
  // optional unary sign. Identifier characters glued to a number are swallowed with it: they
  // are no identifier in PostgreSQL or SQLite, and failing closed beats guessing.
  void Number(const char* start, const char* digits = nullptr) {
    const char* p = digits ? digits : start;
    if (*p == '0' && p + 2 < end_ &&
        (Lower(p[1]) == 'x' || Lower(p[1]) == 'b' || Lower(p[1]) == 'o') && Is(p[2], kHexDigit)) {
      p += 2;
      while (p < end_ && (Is(*p, kHexDigit) || *p == '_')) ++p;
    } else {
      while (p < end_ && (Is(*p, kDigit) || *p == '_')) ++p;
      if (p < end_ && *p == '.') {
        ++p;
        while (p < end_ && (Is(*p, kDigit) || *p == '_')) ++p;
      }
      if (p < end_ && Lower(*p) == 'e') {
        const char* q = p + 1;
        if (q < end_ && (*q == '+' || *q == '-')) ++q;
        if (q < end_ && Is(*q, kDigit)) {
          p = q;
          while (p < end_ && Is(*p, kDigit)) ++p;
        }
      }
    }
    while (p < end_ && Is(*p, kWordPart)) ++p;
    p_ = p;
    Value("?");
  }

  void Word() {
    const char* b = p_;
    const char* p = p_ + 1;
    while (p < end_ && Is(*p, kWordPart)) ++p;
    const size_t len = p - b;
    if (len == 1 && p < end_) {
      const char c = Lower(*b);
      if (*p == '\'') {
        // N'...', X'...', B'...' everywhere; E'...' (backslash escapes) where dialects have it.
        if (c == 'n' || c == 'x' || c == 'b') return QuotedString(p + 1, rules_.escapes);
        if (c == 'e' && rules_.pg_strings) return QuotedString(p + 1, Escapes::kBackslash);
      }
      // U&'...': Unicode escapes use the backslash, quotes are only doubled.
      if (c == 'u' && rules_.pg_strings && *p == '&' && p + 1 < end_ && p[1] == '\'')
        return QuotedString(p + 2, Escapes::kNone);
    }
    p_ = p;
    // Case-folded once, for the keyword lookup and for the fingerprint.
    char folded[kFoldedWordLength];
    bool ascii = true;
    const size_t n = len < kFoldedWordLength ? len : kFoldedWordLength;
    for (size_t i = 0; i < n; ++i) {
      ascii &= static_cast<unsigned char>(b[i]) < 0x80;
      folded[i] = Lower(b[i]);
    }
    for (size_t i = n; i < len; ++i) ascii &= static_cast<unsigned char>(b[i]) < 0x80;
    const Keyword* kw = nullptr;
    if (ascii && len >= 2 && len <= kMaxKeywordLength) {
      unsigned char packed[16] = {};
      std::memcpy(packed, folded, len);
      kw = LookupKeyword(hash_internal::Load64(packed), hash_internal::Load64(packed + 8));
      if (kw && (kw->id == Kw::kTrue || kw->id == Kw::kFalse)) return Value("?");
    }
    Emit(Tok::kWord, kw, b, p, !ascii, len <= kFoldedWordLength ? folded : nullptr);
  }

  // A '...' string (or "..." in MySQL) whose body starts at `body`; the quote is body[-1].
  void QuotedString(const char* body, Escapes escapes) {
    const char* end = nullptr;
    if (escapes == Escapes::kUnknown) {
      // Both readings must agree on where the string ends; where they do not, a literal of
      // one reading is SQL text in the other, and only hiding the rest is safe for both.
      end = StringEnd(body, false);
      if (end != StringEnd(body, true)) end = nullptr;
    } else {
      end = StringEnd(body, escapes == Escapes::kBackslash);
    }
    if (!end) return Unterminated();
    p_ = end;
    Value("?");
  }

  // Just past the closing quote of the string whose body starts at `body`, or nullptr.
  const char* StringEnd(const char* body, bool backslash) const {
    const char quote = body[-1];
    const char* p = body;
    for (;;) {
      if (!backslash) {
        const void* hit = std::memchr(p, quote, end_ - p);
        if (!hit) return nullptr;
        p = static_cast<const char*>(hit) + 1;
      } else {
        while (p < end_ && *p != quote) {
          if (*p == '\\' && ++p == end_) break;  // skip the escaped byte, whatever it is
          ++p;
        }
        if (p == end_) return nullptr;
        ++p;
      }
      if (p < end_ && *p == quote) {  // doubled quote: still inside
        ++p;
        continue;
      }
      return p;
    }
  }

  // Something opened and never closed: the rest of the input is one value.
  void Unterminated() {
    p_ = end_;
    Value("?");
  }

  void QuotedIdentifier(char open, char close) {
    const char* b = p_;
    const char* p = p_ + 1;
    bool plain = true;  // printable ASCII only: copied without sanitising
    for (;;) {
      while (p < end_ && *p != close) {
        const auto c = static_cast<unsigned char>(*p++);
        plain &= c >= 0x20 && c < 0x7f;
      }
      if (p == end_) return Unterminated();
      ++p;
      if (open != '[' && p < end_ && *p == close) {  // doubled: still inside
        ++p;
        continue;
      }
      break;
    }
    p_ = p;
    Emit(Tok::kQuoted, nullptr, b, p, !plain);
  }

  void LineComment() {
    const void* nl = std::memchr(p_, '\n', end_ - p_);
    p_ = nl ? static_cast<const char*>(nl) + 1 : end_;
    pending_space_ = true;
  }

  void BlockComment() {
    const char* p = p_ + 2;
    size_t depth = 1;
    while (p < end_) {
      if (*p == '*' && p + 1 < end_ && p[1] == '/') {
        p += 2;
        if (--depth == 0) break;
      } else if (rules_.nested_comments && *p == '/' && p + 1 < end_ && p[1] == '*') {
        p += 2;
        ++depth;
      } else {
        ++p;
      }
    }
    p_ = p;  // an unterminated comment runs to the end and is dropped with it
    pending_space_ = true;
  }

  void Dollar() {
    const char* p = p_ + 1;
    if (p < end_ && Is(*p, kDigit)) {  // $1: positional parameter
      while (p < end_ && Is(*p, kDigit)) ++p;
      return Placeholder(p);
    }
    if (rules_.pg_strings) {
      // $tag$ ... $tag$ with an optional tag that does not start with a digit.
      const char* tag_end = p;
      if (tag_end < end_ && Is(*tag_end, kWordStart)) {
        while (tag_end < end_ && Is(*tag_end, kWordPart) && *tag_end != '$') ++tag_end;
      }
      if (tag_end < end_ && *tag_end == '$') {
        // The closing search compares the delimiter at every '$' of the body, so a huge tag
        // would make it quadratic; no real tag is that long, and hiding the rest is safe.
        if (tag_end - p > kMaxDollarTagLength) return Unterminated();
        const std::string_view delim(p_, tag_end + 1 - p_);
        const char* body = tag_end + 1;
        for (const char* q = body; q < end_;) {
          const void* hit = std::memchr(q, '$', end_ - q);
          if (!hit) break;
          q = static_cast<const char*>(hit);
          if (static_cast<size_t>(end_ - q) >= delim.size() &&
              std::memcmp(q, delim.data(), delim.size()) == 0) {
            p_ = q + delim.size();
            return Value("?");
          }
          ++q;
        }
        return Unterminated();
      }
    }
    if (rules_.dollar_names && p < end_ && Is(*p, kWordStart)) {  // SQLite $name
      while (p < end_ && Is(*p, kWordPart)) ++p;
      return Placeholder(p);
    }
    if (rules_.dollar_word_start && p < end_ && Is(*p, kWordPart)) return Word();
    return Punct(1, Tok::kOther);
  }

  void Question() {
    if (rules_.question_operator) return Punct(1, Tok::kOther);
    const char* p = p_ + 1;
    if (rules_.question_digits)
      while (p < end_ && Is(*p, kDigit)) ++p;
    return Placeholder(p);
  }

  void Colon() {
    const char* p = p_ + 1;
    if (p < end_ && *p == ':') return Punct(2, Tok::kOther);  // PostgreSQL cast
    if (p < end_ && Is(*p, kWordStart)) {                     // :name
      while (p < end_ && Is(*p, kWordPart)) ++p;
      return Placeholder(p);
    }
    return Punct(1, Tok::kOther);
  }

  void At() {
    const char* p = p_ + 1;
    if (rules_.at_variables) {
      if (p < end_ && *p == '@') ++p;  // @@session variables
      if (p < end_ && Is(*p, kWordStart)) {
        const char* b = p_;
        bool ascii = true;
        while (p < end_ && Is(*p, kWordPart)) ascii &= !Is(*p++, kNonAscii);
        p_ = p;
        return Emit(Tok::kWord, nullptr, b, p, !ascii);
      }
    }
    return Punct(1, Tok::kOther);
  }

  // Python DB-API placeholders: %s, %b, %t (psycopg) and %(name)s; %% is a literal percent.
  void Percent() {
    const char* p = p_ + 1;
    if (p < end_ && *p == '%') return Punct(2, Tok::kOther);
    auto format = [this](const char* q) {
      return q < end_ && (*q == 's' || *q == 'b' || *q == 't') &&
             (q + 1 == end_ || !Is(q[1], kWordPart));
    };
    if (format(p)) return Placeholder(p + 1);
    if (p < end_ && *p == '(') {
      const char* q = p + 1;
      // ASCII identifier names only: anything wider could be assembled from pieces that
      // were not a placeholder before obfuscation, and the output would lex differently.
      while (q < end_ && Is(*q, kWordPart) && !Is(*q, kNonAscii) && *q != '$') ++q;
      if (q < end_ && *q == ')' && format(q + 1)) return Placeholder(q + 2);
    }
    return Punct(1, Tok::kOther);
  }

  void Placeholder(const char* e) {
    const char* b = p_;
    p_ = e;
    // Only :name and $name may hold non-ASCII bytes; such a name is no more than a value.
    if (NeedsSanitizing(b, e)) return Value("?");
    Value(std::string_view(b, e - b));
  }

  void Punct(size_t n, Tok kind) {
    const char* b = p_;
    p_ += n;
    Emit(kind, nullptr, b, p_, false);
  }

  void Value(std::string_view written) {
    Emit(Tok::kValue, nullptr, written.data(), written.data() + written.size(), false);
  }

  // Whether a + or - right here is a sign rather than an operator.
  bool UnaryContext() const {
    switch (prev_kind_) {
      case Tok::kNone:
      case Tok::kOpen:
      case Tok::kComma:
      case Tok::kOther:
        return true;
      case Tok::kWord:
        return (prev_flags_ & kOperandNext) != 0;
      default:
        return false;
    }
  }

  // ---- writer ------------------------------------------------------------------------------

  Snapshot Snap() const { return {len_, soft_end_, truncated_, stream_len_}; }

  void Rollback(const Snapshot& s) {
    len_ = s.size;
    soft_end_ = s.soft_end;
    truncated_ = s.truncated;
    stream_len_ = s.stream;
  }

  void Reserve(size_t more) {
    if (len_ + more <= cap_) return;
    cap_ = 2 * cap_ > len_ + more ? 2 * cap_ : len_ + more;
    out_.resize(cap_);
    buf_ = out_.data();
  }

  void Write(const char* b, const char* e, bool sanitize) {
    if (truncated_) return;
    const size_t space = pending_space_ && len_ != 0 ? 1 : 0;
    const size_t n = sanitize ? SanitizedLength(b, e) : static_cast<size_t>(e - b);
    if (len_ + space + n > limit_) {
      truncated_ = true;
      return;
    }
    Reserve(space + n);
    char* dst = buf_ + len_;
    if (space) *dst++ = ' ';
    if (sanitize) {
      Sanitize(b, e, [&dst](const char* run, size_t k) {
        std::memcpy(dst, run, k);
        dst += k;
      });
    } else if (n <= 32) {
      hash_internal::CopyShort(reinterpret_cast<unsigned char*>(dst),
                               reinterpret_cast<const unsigned char*>(b), n);
    } else {
      std::memcpy(dst, b, n);
    }
    len_ += space + n;
    if (len_ <= soft_limit_) soft_end_ = len_;
  }

  // The fingerprint is the hash of a token stream in which every token is its kind byte and
  // its normalised bytes: values and placeholders are the kind alone, unquoted words are
  // case-folded, quoted identifiers carry their length (their bytes are arbitrary), and
  // whitespace and comments are absent. Kind bytes are control characters, which no word or
  // punctuation token contains, so the stream splits into tokens in exactly one way.
  void Fingerprint(Tok kind, const char* b, const char* e, const char* folded) {
    const size_t n = e - b;
    StreamReserve(n + 11);
    char* dst = stream_ + stream_len_;
    *dst++ = static_cast<char>(kind);
    if (kind == Tok::kValue) {
      stream_len_ = dst - stream_;
      return;
    }
    if (kind == Tok::kQuoted) {
      size_t v = n;
      for (; v >= 0x80; v >>= 7) *dst++ = static_cast<char>((v & 0x7f) | 0x80);
      *dst++ = static_cast<char>(v);
    }
    const char* src = (kind == Tok::kWord && folded) ? folded : b;
    if (kind == Tok::kWord && !folded) {
      for (size_t i = 0; i < n; ++i) dst[i] = Lower(b[i]);
    } else if (n <= 32) {
      hash_internal::CopyShort(reinterpret_cast<unsigned char*>(dst),
                               reinterpret_cast<const unsigned char*>(src), n);
    } else {
      std::memcpy(dst, src, n);
    }
    stream_len_ = dst + n - stream_;
  }

  void StreamReserve(size_t more) {
    if (stream_len_ + more <= stream_cap_) return;
    stream_cap_ = 2 * stream_cap_ > stream_len_ + more ? 2 * stream_cap_ : stream_len_ + more;
    const bool on_stack = stream_ == stream_stack_;
    stream_heap_.resize(stream_cap_);  // moves what the heap buffer already held
    if (on_stack) std::memcpy(stream_heap_.data(), stream_stack_, stream_len_);
    stream_ = stream_heap_.data();
  }

  Frame* CurrentFrame() { return depth_ < kMaxFrames ? &frames_[depth_] : nullptr; }

  // `folded`: a word's case-folded bytes, when the caller has them.
  void Emit(Tok kind, const Keyword* kw, const char* b, const char* e, bool sanitize,
            const char* folded = nullptr) {
    Frame* f = CurrentFrame();
    bool opens_row = false;
    if (f) {
      // A VALUES list in this frame: every row is written as it comes, and once the list
      // ends (anything but a comma after a row) the output is rolled back to the end of the
      // first row. Rolling back after the fact keeps this a single pass.
      switch (f->values) {
        case ValuesState::kAfterRow:
          if (kind == Tok::kComma) {
            f->values = ValuesState::kExpectRow;
          } else {
            if (f->extra_rows) Rollback(f->first_row_end);
            f->values = ValuesState::kNone;
          }
          break;
        case ValuesState::kExpectFirstRow:
        case ValuesState::kExpectRow:
          if (kind == Tok::kOpen && *b == '(') {
            opens_row = true;
            f->values = ValuesState::kInRow;
          } else {
            f->values = ValuesState::kNone;
          }
          break;
        default:
          break;
      }
      if (kind == Tok::kComma) {
        if (f->list && !f->has_comma) {
          f->first_item_end = Snap();
          f->has_comma = true;
        }
      } else if (kind != Tok::kValue && kind != Tok::kOpen && kind != Tok::kClose) {
        f->all_values = false;
      }
    }

    if (kind == Tok::kClose && depth_ > 0) {
      if (f && f->list && f->all_values && f->has_comma) Rollback(f->first_item_end);
      Write(b, e, sanitize);
      Fingerprint(kind, b, e, folded);
      const bool child_values = f && f->all_values;
      const bool was_row = f && f->values_row;
      --depth_;
      if (Frame* parent = CurrentFrame()) {
        parent->all_values &= child_values;
        if (was_row && parent->values == ValuesState::kInRow) {
          if (!parent->first_row_seen) {
            parent->first_row_end = Snap();
            parent->first_row_seen = true;
          } else {
            parent->extra_rows = true;
          }
          parent->values = ValuesState::kAfterRow;
        }
      }
    } else {
      if (kind == Tok::kClose && f) f->all_values = false;  // unbalanced
      Write(b, e, sanitize);
      Fingerprint(kind, b, e, folded);
      if (kind == Tok::kOpen) {
        const Kw prev = prev_kw_;
        ++depth_;
        if (Frame* child = CurrentFrame()) {
          child->Reset((*b == '(' && prev == Kw::kIn) || (*b == '[' && prev == Kw::kArray),
                       opens_row);
        }
      }
    }
    if (kw && kw->id == Kw::kValues && f) {
      f->values = ValuesState::kExpectFirstRow;
      f->extra_rows = false;
      f->first_row_seen = false;
    }

    if (summary_ != SummaryState::kDone) Summarize(kind, kw, b, e);
    prev_kind_ = kind;
    prev_kw_ = kw ? kw->id : Kw::kNone;
    prev_flags_ = kw ? kw->flags : 0;
    pending_space_ = false;
  }

  // ---- summary -----------------------------------------------------------------------------

  // Called after the token's depth change, so `depth_` is the level of what follows an
  // opening parenthesis and the level returned to after a closing one; `level` below is the
  // level the token itself sits at.
  void Summarize(Tok kind, const Keyword* kw, const char* b, const char* e) {
    const size_t level = kind == Tok::kOpen ? depth_ - 1 : depth_;
    const Kw id = kw ? kw->id : Kw::kNone;
    if (summary_ == SummaryState::kStart) {
      if (kind == Tok::kOpen && *b == '(') {
        base_ = depth_;  // (SELECT ...) UNION (SELECT ...)
        return;
      }
      if (kind != Tok::kWord || !SetOperation(b, e)) return Done();
      return Dispatch(id);
    }
    if (level < base_) return Done();
    if (level > base_) return;
    switch (summary_) {
      case SummaryState::kWith:
        if (kind == Tok::kWord && (id == Kw::kSelect || id == Kw::kInsert || id == Kw::kReplace ||
                                   id == Kw::kUpdate || id == Kw::kDelete || id == Kw::kMerge)) {
          SetOperation(b, e);
          Dispatch(id);
        }
        return;
      case SummaryState::kSeekFrom:
        if (id == Kw::kFrom) {
          summary_ = SummaryState::kExpectTable;
          table_after_from_ = true;
        }
        return;
      case SummaryState::kSeekInto:
        if (id == Kw::kInto) {
          summary_ = SummaryState::kExpectTable;
          table_after_from_ = false;
        }
        return;
      case SummaryState::kInsertHead:
        if (id == Kw::kInto) {
          summary_ = SummaryState::kExpectTable;
          table_after_from_ = false;
          return;
        }
        if (kw && (kw->flags & kInsertModifier)) return;
        return StartName(kind, b, e);
      case SummaryState::kUpdateHead:
        if (kw && (kw->flags & kUpdateModifier)) return;
        table_after_from_ = false;
        return StartName(kind, b, e);
      case SummaryState::kExpectTable:
        if (kind == Tok::kOpen && *b == '(' && table_after_from_) {
          // FROM (SELECT ... FROM t) alias: the table of the subquery.
          base_ = depth_;
          summary_ = SummaryState::kSeekFrom;
          return;
        }
        if (id == Kw::kOnly || id == Kw::kLateral) return;
        return StartName(kind, b, e);
      case SummaryState::kAfterName:
        if (kind == Tok::kDot) {
          summary_ = SummaryState::kExpectPart;
          return;
        }
        // FROM generate_series(...) is a function, not a table.
        if (kind == Tok::kOpen && *b == '(' && table_after_from_) result_.table.clear();
        return Done();
      case SummaryState::kExpectPart:
        if (kind == Tok::kWord || kind == Tok::kQuoted) {
          result_.table.push_back('.');
          AppendName(kind, b, e);
          summary_ = SummaryState::kAfterName;
          return;
        }
        return Done();
      default:
        return;
    }
  }

  void Done() {
    if (result_.table.size() > kMaxTableLength) result_.table.clear();
    summary_ = SummaryState::kDone;
  }

  bool SetOperation(const char* b, const char* e) {
    const size_t n = e - b;
    if (n == 0 || n > kMaxOperationLength) return false;
    for (const char* p = b; p < e; ++p) {
      const char c = Lower(*p);
      if (!((c >= 'a' && c <= 'z') || c == '_')) return false;
    }
    result_.operation.resize(n);
    for (size_t i = 0; i < n; ++i) result_.operation[i] = Upper(b[i]);
    return true;
  }

  void Dispatch(Kw id) {
    switch (id) {
      case Kw::kSelect:
      case Kw::kDelete:
        summary_ = SummaryState::kSeekFrom;
        return;
      case Kw::kInsert:
      case Kw::kReplace:
        summary_ = SummaryState::kInsertHead;
        return;
      case Kw::kUpdate:
        summary_ = SummaryState::kUpdateHead;
        return;
      case Kw::kMerge:
        summary_ = SummaryState::kSeekInto;
        return;
      case Kw::kWith:
        summary_ = SummaryState::kWith;
        return;
      default:
        return Done();
    }
  }

  void StartName(Tok kind, const char* b, const char* e) {
    if (kind != Tok::kWord && kind != Tok::kQuoted) return Done();
    AppendName(kind, b, e);
    summary_ = SummaryState::kAfterName;
  }

  // Appends one part of a table name without its quotes, doubled quotes undoubled.
  void AppendName(Tok kind, const char* b, const char* e) {
    std::string& t = result_.table;
    if (t.size() > kMaxTableLength) return;  // cleared in Done()
    if (kind == Tok::kWord) {
      AppendSanitized(t, b, e);
      return;
    }
    const char close = *b == '[' ? ']' : *b;
    const char* p = b + 1;
    const char* const end = e - 1;
    const char* run = p;
    while (p < end) {
      if (*p == close) {  // the first of a doubled quote: keep one
        AppendSanitized(t, run, p + 1);
        p += 2;
        run = p;
        continue;
      }
      ++p;
    }
    if (run < end) AppendSanitized(t, run, end);
  }

  // ---- end ---------------------------------------------------------------------------------

  void Finish() {
    if (Frame* f = CurrentFrame()) {
      if (f->values == ValuesState::kAfterRow && f->extra_rows) Rollback(f->first_row_end);
    }
    if (summary_ == SummaryState::kAfterName || summary_ == SummaryState::kExpectPart) Done();
    if (summary_ != SummaryState::kDone) result_.table.clear();
    if (result_.table.size() > kMaxTableLength) result_.table.clear();
    if (truncated_) {
      len_ = soft_end_;
      Reserve(kTruncationMarker.size());
      std::memcpy(buf_ + len_, kTruncationMarker.data(), kTruncationMarker.size());
      len_ += kTruncationMarker.size();
    }
    out_.resize(len_);
    result_.truncated = truncated_;
    result_.fingerprint = HashBytes(std::string_view(stream_, stream_len_), kFingerprintSeed);
    result_.summary = result_.operation;
    if (!result_.table.empty() && !result_.operation.empty()) {
      result_.summary.push_back(' ');
      result_.summary.append(result_.table);
    }
  }

  const char* p_;
  const char* const end_;
  const DialectRules rules_;
  std::string& out_;
  ObfuscatedSql& result_;
  size_t limit_;
  size_t soft_limit_;
  char* buf_;
  size_t len_ = 0;
  size_t cap_;
  size_t soft_end_ = 0;
  bool truncated_ = false;
  bool pending_space_ = false;
  // The fingerprint's token stream: on the stack for statements of ordinary size.
  char stream_stack_[2048];
  std::string stream_heap_;
  char* stream_ = stream_stack_;
  size_t stream_len_ = 0;
  size_t stream_cap_ = sizeof stream_stack_;

  Tok prev_kind_ = Tok::kNone;
  Kw prev_kw_ = Kw::kNone;
  uint8_t prev_flags_ = 0;

  size_t depth_ = 0;
  Frame frames_[kMaxFrames];

  SummaryState summary_ = SummaryState::kStart;
  size_t base_ = 0;
  bool table_after_from_ = false;
};

}  // namespace

Dialect DialectFromName(std::string_view name) noexcept {
  auto eq = [name](std::string_view want) {
    if (name.size() != want.size()) return false;
    for (size_t i = 0; i < name.size(); ++i)
      if (Lower(name[i]) != want[i]) return false;
    return true;
  };
  if (eq("postgresql") || eq("postgres") || eq("cockroachdb")) return Dialect::kPostgres;
  if (eq("sqlite") || eq("sqlite3")) return Dialect::kSqlite;
  if (eq("mysql") || eq("mariadb")) return Dialect::kMysql;
  return Dialect::kGeneric;
}

std::string_view DialectName(Dialect dialect) noexcept {
  switch (dialect) {
    case Dialect::kPostgres:
      return "postgresql";
    case Dialect::kSqlite:
      return "sqlite";
    case Dialect::kMysql:
      return "mysql";
    default:
      return "generic";
  }
}

void Obfuscate(std::string_view sql, Dialect dialect, const ObfuscateOptions& options,
               ObfuscatedSql& out) noexcept {
  Obfuscator(sql, dialect, options, out).Run();
}

}  // namespace djtrace::sql
