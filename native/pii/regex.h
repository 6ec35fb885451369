// Value patterns from configuration: a small regular-expression language compiled to a Thompson
// NFA and run as a Pike VM (one pass over the text, every NFA state at most once per position).
// There is no backtracking, so a pattern like (a*)*b costs O(len(text) * states), never
// exponential time; std::regex and PCRE-style engines are not safe to feed patterns from
// configuration on a tracer's hot path.
//
// Syntax (UTF-8 text; the unit of matching is the code point):
//   c            a literal character (any code point except the metacharacters below)
//   \c           a metacharacter taken literally: \\ \. \* \+ \? \( \) \[ \] \{ \} \| \^ \$ \-
//                (any other ASCII punctuation after a backslash is also literal)
//   \t \n \r \f \v   control characters;   \xHH   the code point with that hex value
//   .            any code point except \n
//   [abc] [a-z0-9_] [^...]   a class of code points; \d \w \s \D \W \S and escapes work inside;
//                a ']' first in the class and a '-' first or last are literal
//   \d \w \s     [0-9], [A-Za-z0-9_], [ \t\n\r\f\v];   \D \W \S their complements
//   \b \B        ASCII word boundary, not a word boundary
//   ^ $          start, end of the value
//   (e) (?:e)    grouping (there are no capture groups)
//   e* e+ e?     zero or more, one or more, zero or one (greedy; there are no lazy forms)
//   e{m} e{m,} e{m,n}   counted repetition, m <= n <= 255
//   e|f          alternation
//   (?i)         only at the very start: ASCII letters match either case
// Not supported (compile error): backreferences, lookaround, lazy or possessive quantifiers.
// Limits: pattern <= 2048 bytes, group nesting <= 100, program <= 10000 instructions (counted
// repetition is expanded into copies, so (a{100}){100} is refused).
//
// Semantics: matches are leftmost-longest (POSIX) and non-overlapping; empty matches are
// skipped. FindAll is budgeted at 4 * (len + 1) * (program size + 1) VM steps; a search that
// would exceed it (possible only when alternatives keep running far past a match, e.g. a|a.*Z)
// stops and reports the rest of the text as one match, so a redactor fails closed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace djtrace::pii {

class Regex {
 public:
  struct Match {
    size_t begin = 0;
    size_t end = 0;
  };

  // Working memory of a search, reusable across searches and patterns by one thread.
  class Scratch {
   public:
    Scratch() = default;

   private:
    friend class Regex;
    struct Thread {
      uint32_t pc;
      size_t start;
    };
    struct List {
      std::vector<uint32_t> sparse;
      std::vector<Thread> dense;
      size_t size = 0;
    };
    void Prepare(size_t program_size);
    List lists_[2];
    std::vector<uint32_t> stack_;
  };

  static constexpr size_t kMaxPatternBytes = 2048;
  static constexpr int kMaxNesting = 100;
  static constexpr size_t kMaxProgram = 10000;
  static constexpr int kMaxRepeat = 255;

  // Returns nullptr and sets *error (with the byte offset) for an invalid pattern.
  static std::unique_ptr<Regex> Compile(std::string_view pattern, std::string* error);

  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Leftmost-longest non-empty match that starts at or after `from`. `*steps` is increased by
  // the VM steps taken. Returns false when there is none.
  bool Search(std::string_view text, size_t from, Match* match, Scratch* scratch,
              uint64_t* steps) const;

  // Appends every non-overlapping match in text order. Returns false if the step budget ran
  // out; then the last appended match runs to the end of the text.
  bool FindAll(std::string_view text, std::vector<Match>* out, Scratch* scratch,
               uint64_t* steps = nullptr) const;

  // Whether the whole text matches.
  bool FullMatch(std::string_view text) const;

  size_t program_size() const;
  static uint64_t StepBudget(size_t text_size, size_t program_size) {
    return 4 * (static_cast<uint64_t>(text_size) + 1) * (program_size + 1);
  }

  struct Program;

 private:
  explicit Regex(std::unique_ptr<Program> program);
  bool SearchBounded(std::string_view text, size_t from, Match* match, Scratch* scratch,
                     uint64_t* steps, uint64_t budget, bool* exhausted) const;

  std::unique_ptr<Program> program_;
};

}  // namespace djtrace::pii
