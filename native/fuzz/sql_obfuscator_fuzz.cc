// libFuzzer target for the SQL obfuscator.
//
// The first byte picks the dialect, the output bound and the mode:
//  - raw: the remaining bytes are the statement. Checked: no crash or out-of-bounds access
//    (ASan/UBSan), valid UTF-8 without control bytes, the length bound, a fingerprint that the
//    bound does not change, and idempotence (obfuscating the output again changes nothing).
//  - structured: the remaining bytes drive a generator of lexically valid statements for the
//    dialect, whose literals and comments carry the markers SECRET and 8675309 in every
//    quoting style; identifiers, keywords and placeholders never do. Checked on top: no
//    marker reaches any output, and a second rendering of the same statement with other
//    literal contents, other whitespace/comments and other keyword case has the same
//    fingerprint.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "sql/obfuscator.h"

namespace {

using djtrace::sql::Dialect;
using djtrace::sql::ObfuscatedSql;
using djtrace::sql::ObfuscateOptions;

[[noreturn]] void Fail(const char* what, std::string_view sql, std::string_view out) {
  std::fprintf(stderr, "%s\n  input:  %.*s\n  output: %.*s\n", what, static_cast<int>(sql.size()),
               sql.data(), static_cast<int>(out.size()), out.data());
  std::abort();
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = c & (0x7f >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

ObfuscatedSql Run(std::string_view sql, Dialect d, size_t max_length) {
  ObfuscateOptions o;
  o.max_length = max_length;
  return djtrace::sql::Obfuscate(sql, d, o);
}

// The invariants every input must keep.
ObfuscatedSql CheckCommon(std::string_view sql, Dialect d, size_t max_length) {
  const ObfuscatedSql r = Run(sql, d, max_length);
  for (const std::string* s : {&r.text, &r.operation, &r.table, &r.summary}) {
    if (!IsValidUtf8(*s)) Fail("output is not valid UTF-8", sql, *s);
    for (char c : *s)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        Fail("control byte in output", sql, *s);
  }
  if (max_length != 0 &&
      r.text.size() > std::max(max_length, djtrace::sql::kTruncationMarker.size()))
    Fail("output longer than max_length", sql, r.text);
  if (r.truncated && (r.text.size() < djtrace::sql::kTruncationMarker.size() ||
                      !std::string_view(r.text).ends_with(djtrace::sql::kTruncationMarker)))
    Fail("truncated without the marker", sql, r.text);
  const ObfuscatedSql full = Run(sql, d, 0);
  if (full.fingerprint != r.fingerprint) Fail("fingerprint depends on max_length", sql, r.text);
  if (full.summary != r.summary) Fail("summary depends on max_length", sql, r.text);
  if (!r.truncated && full.text != r.text) Fail("untruncated output differs", sql, r.text);
  const ObfuscatedSql again = Run(full.text, d, 0);
  if (again.text != full.text) Fail("not idempotent", full.text, again.text);
  return full;
}

// ---- structured generator ---------------------------------------------------------------

class Generator {
 public:
  Generator(FuzzedDataProvider& fdp, Dialect d) : fdp_(fdp), d_(d) {}

  // Draws the statement's decisions once; Render() then writes them in two variants.
  struct Token {
    uint8_t kind;
    uint8_t sub;
    std::vector<uint8_t> pieces;  // literal body or identifier, as abstract pieces
  };

  std::vector<Token> Draw() {
    std::vector<Token> tokens;
    while (fdp_.remaining_bytes() > 0 && tokens.size() < 200) {
      Token t;
      t.kind = fdp_.ConsumeIntegralInRange<uint8_t>(0, 8);
      t.sub = fdp_.ConsumeIntegral<uint8_t>();
      const size_t n = fdp_.ConsumeIntegralInRange<size_t>(0, 12);
      for (size_t i = 0; i < n && fdp_.remaining_bytes() > 0; ++i)
        t.pieces.push_back(fdp_.ConsumeIntegral<uint8_t>());
      tokens.push_back(std::move(t));
    }
    return tokens;
  }

  std::string Render(const std::vector<Token>& tokens, bool variant) const {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      Separator(out, tokens[i].sub + i, variant);
      Emit(out, tokens[i], variant);
    }
    return out;
  }

 private:
  bool pg() const { return d_ == Dialect::kPostgres; }
  bool mysql() const { return d_ == Dialect::kMysql; }
  bool sqlite() const { return d_ == Dialect::kSqlite; }
  bool generic() const { return d_ == Dialect::kGeneric; }

  // Whitespace or a comment (which must not contain what ends it) between every two tokens.
  void Separator(std::string& out, size_t seed, bool variant) const {
    switch ((seed + (variant ? 3 : 0)) % 6) {
      case 0:
      case 1:
        out += ' ';
        break;
      case 2:
        out += "\n\t";
        break;
      case 3:
        out += " -- SECRET 8675309 comment\n";
        break;
      case 4:
        out += " /* SECRET 8675309 */ ";
        break;
      case 5:
        out += mysql() ? " # SECRET 8675309\n" : " /* s3cr3t */ ";
        break;
    }
  }

  void Emit(std::string& out, const Token& t, bool variant) const {
    switch (t.kind) {
      case 0:
        return Keyword(out, t.sub, variant);
      case 1:
        return Identifier(out, t);
      case 2:
        return QuotedIdentifier(out, t);
      case 3:
      case 4:
        return String(out, t, variant);
      case 5:
        return Number(out, t.sub, variant);
      case 6:
        return Placeholder(out, t.sub, variant);
      case 7:
        return Punct(out, t.sub);
      default:
        return DollarOrDoubleQuoted(out, t, variant);
    }
  }

  void Keyword(std::string& out, uint8_t sub, bool variant) const {
    static const char* const kWords[] = {
        "SELECT", "FROM", "WHERE", "IN",     "VALUES", "ARRAY",     "INSERT",  "INTO", "UPDATE",
        "SET",    "AND",  "OR",    "NOT",    "NULL",   "WITH",      "AS",      "ON",   "DELETE",
        "LIMIT",  "TRUE", "FALSE", "CASE",   "WHEN",   "THEN",      "ELSE",    "END",  "JOIN",
        "ONLY",   "IS",   "LIKE",  "ESCAPE", "UNION",  "RETURNING", "DEFAULT", "MERGE"};
    std::string w = kWords[sub % std::size(kWords)];
    if (variant)
      for (char& c : w) c = static_cast<char>(c | 0x20);
    out += w;
  }

  // Identifiers come from letters a-h, so they never spell a marker, nor a prefix like E/N/X/B/U.
  static char IdentChar(uint8_t p) {
    return static_cast<char>('a' + p % 8 == 'b' ? 'h' : 'a' + p % 8);
  }

  void Identifier(std::string& out, const Token& t) const {
    out += 'c';
    for (uint8_t p : t.pieces) out += (p % 5 == 0) ? '_' : IdentChar(p);
  }

  void QuotedIdentifier(std::string& out, const Token& t) const {
    char open = '"', close = '"';
    const int style = t.sub % 3;
    if (mysql() || (style == 1 && !pg())) open = close = '`';
    if (sqlite() && style == 2) open = '[', close = ']';
    if (mysql() && open == '"') open = close = '`';  // "..." is a string in MySQL
    out += open;
    for (uint8_t p : t.pieces) {
      if (p % 7 == 0 && close != ']') {
        out += close;
        out += close;
      } else {
        out += (p % 3 == 0) ? ' ' : IdentChar(p);
      }
    }
    out += close;
  }

  // One body piece of a string whose quote is `q`; `backslash` says whether \ escapes.
  static void StringPiece(std::string& out, uint8_t p, char q, bool backslash, bool variant) {
    switch (p % 12) {
      case 0:
        out += variant ? "OTHER" : "SECRET";
        break;
      case 1:
        out += variant ? "1234567" : "8675309";
        break;
      case 2:
        out += q;
        out += q;
        break;
      case 3:
        if (backslash) {
          out += '\\';
          out += q;
        } else {
          out += "\\";  // an ordinary character
        }
        break;
      case 4:
        out += backslash ? "\\\\" : "x";
        break;
      case 5:
        out += "\n-- /* */ #";
        break;
      case 6:
        out += q == '\'' ? "\"" : "'";
        break;
      case 7:
        out += "%s ? $1 :n @v";
        break;
      case 8:
        out += "\xc3\xa9\xff";
        break;
      case 9:
        out += backslash ? "\\n" : "n";
        break;
      case 10:
        out += ") , (";
        break;
      default:
        out += variant ? "zz" : "s3cr3t";
        break;
    }
  }

  void String(std::string& out, const Token& t, bool variant) const {
    // The prefix kind is part of the structure; the body may differ between variants.
    bool backslash = mysql();
    switch (t.sub % 7) {
      case 1:
        out += 'N';
        break;
      case 2:
        out += 'X';
        break;
      case 3:
        out += 'b';
        break;
      case 4:
        if (pg() || generic()) {
          out += 'E';
          backslash = true;
        }
        break;
      case 5:
        if (pg() || generic()) {
          out += "U&";
          backslash = false;
        }
        break;
      default:
        break;
    }
    // In the generic dialect plain strings are ambiguous; a body with backslashes is fine to
    // generate (the obfuscator then hides the rest), but the generator must still produce text
    // that is a single string under the standard reading.
    const bool generic_plain = generic() && !backslash;
    out += '\'';
    for (uint8_t p : t.pieces) {
      if (generic_plain && (p % 12 == 3 || p % 12 == 4 || p % 12 == 9)) {
        out += '\\';
        continue;
      }
      StringPiece(out, p, '\'', backslash, variant);
    }
    out += '\'';
  }

  void DollarOrDoubleQuoted(std::string& out, const Token& t, bool variant) const {
    if (mysql()) {  // "..." string with backslash escapes and "" doubling
      out += '"';
      for (uint8_t p : t.pieces) StringPiece(out, p, '"', true, variant);
      out += '"';
      return;
    }
    if (!pg() && !generic()) return String(out, t, variant);
    std::string tag = "$";
    for (int i = 0; i < t.sub % 3; ++i) tag += static_cast<char>('a' + (t.sub / 3 + i) % 8);
    tag += '$';
    out += tag;
    for (uint8_t p : t.pieces) {
      if (p % 12 == 7) {
        out += "%s ? :n";  // no $ inside the body
      } else {
        StringPiece(out, p, '\'', false, variant);
      }
    }
    out += tag;
  }

  void Number(std::string& out, uint8_t sub, bool variant) const {
    const char* digits = variant ? "1234567" : "8675309";
    switch (sub % 8) {
      case 0:
        out += digits;
        break;
      case 1:
        out += digits;
        out += ".25";
        break;
      case 2:
        out += '.';
        out += digits;
        break;
      case 3:
        out += digits;
        out += "e-12";
        break;
      case 4:
        out += "0x";
        out += digits;
        break;
      case 5:
        out += "-";  // a sign: unary or binary, the same in both variants
        out += digits;
        break;
      case 6:
        out += digits;
        out += ".";
        break;
      default:
        out += "1.5E+";
        out += digits;
        break;
    }
  }

  void Placeholder(std::string& out, uint8_t sub, bool variant) const {
    const uint8_t k = static_cast<uint8_t>(sub + (variant ? 1 : 0));
    switch (d_) {
      case Dialect::kPostgres: {
        static const char* const kPg[] = {"%s", "%(name)s", "$1", "%b"};
        out += kPg[k % 4];
        return;
      }
      case Dialect::kMysql: {
        static const char* const kMy[] = {"%s", "%(name)s", "?"};
        out += kMy[k % 3];
        return;
      }
      default: {
        static const char* const kOther[] = {"%s", "?", "?2", ":name", "$1"};
        out += kOther[k % 5];
        return;
      }
    }
  }

  void Punct(std::string& out, uint8_t sub) const {
    static const char* const kCommon[] = {"(", ")",  ",", ".",  "=",   "<",  ">",  "+", "-", "*",
                                          "/", "::", ";", "||", "->>", "<=", "!=", "(", ")", ","};
    const size_t n = std::size(kCommon);
    if (sub % 32 < n) {
      out += kCommon[sub % 32];
      return;
    }
    if (pg()) {
      static const char* const kPg[] = {"?", "?|", "?&", "@>", "#>>", "[", "]", "#", "@"};
      out += kPg[sub % std::size(kPg)];
    } else if (mysql()) {
      static const char* const kMy[] = {":=", "@", "[", "]", "&"};
      out += kMy[sub % std::size(kMy)];
    } else if (sqlite()) {
      static const char* const kLite[] = {"&", "|", "~", "%", "!"};
      out += kLite[sub % std::size(kLite)];
    } else {
      static const char* const kGen[] = {"[", "]", "#", "{", "}", "@"};
      out += kGen[sub % std::size(kGen)];
    }
  }

  FuzzedDataProvider& fdp_;
  const Dialect d_;
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
  return s;
}

bool ContainsMarker(const std::string& s) {
  const std::string lower = Lower(s);
  return lower.find("secret") != std::string::npos || lower.find("s3cr3t") != std::string::npos ||
         lower.find("8675309") != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t control = data[0];
  const Dialect d = static_cast<Dialect>(control & 3);
  static const size_t kBounds[] = {0, 1, 3, 4, 16, 40, 4096, 64};
  const size_t max_length = kBounds[(control >> 3) & 7];
  if ((control & 4) == 0) {
    CheckCommon(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), d, max_length);
    return 0;
  }
  FuzzedDataProvider fdp(data + 1, size - 1);
  Generator gen(fdp, d);
  const auto tokens = gen.Draw();
  const std::string a = gen.Render(tokens, false);
  const std::string b = gen.Render(tokens, true);
  const ObfuscatedSql ra = CheckCommon(a, d, max_length);
  const ObfuscatedSql rb = CheckCommon(b, d, max_length);
  for (const std::string* s : {&ra.text, &ra.operation, &ra.table, &ra.summary})
    if (ContainsMarker(*s)) Fail("a literal or comment leaked", a, *s);
  if (ra.fingerprint != rb.fingerprint) Fail("fingerprint depends on literals", a, b);
  // A keyword in table position keeps the case it was written in, hence the folding.
  if (ra.operation != rb.operation || Lower(ra.table) != Lower(rb.table))
    Fail("summary depends on literals", a, b);
  return 0;
}
