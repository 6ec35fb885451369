#include "pii/regex.h"

#include <algorithm>
#include <utility>

#include "pii/utf8.h"

namespace djtrace::pii {
namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr size_t kNone = static_cast<size_t>(-1);

struct Range {
  uint32_t lo;
  uint32_t hi;
};

// A set of code points while parsing a class.
struct CharSet {
  std::vector<Range> ranges;

  void Add(uint32_t lo, uint32_t hi) { ranges.push_back({lo, hi}); }
  void AddAll(const CharSet& other) {
    ranges.insert(ranges.end(), other.ranges.begin(), other.ranges.end());
  }
  void Normalize() {
    std::sort(ranges.begin(), ranges.end(),
              [](const Range& a, const Range& b) { return a.lo < b.lo; });
    std::vector<Range> merged;
    for (const Range& r : ranges) {
      if (!merged.empty() && r.lo <= merged.back().hi + 1) {
        merged.back().hi = std::max(merged.back().hi, r.hi);
      } else {
        merged.push_back(r);
      }
    }
    ranges = std::move(merged);
  }
  void Negate() {
    Normalize();
    std::vector<Range> out;
    uint32_t next = 0;
    for (const Range& r : ranges) {
      if (r.lo > next) out.push_back({next, r.lo - 1});
      next = r.hi + 1;
    }
    if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
    ranges = std::move(out);
  }
  void AddCaseFolded() {
    const size_t n = ranges.size();
    for (size_t i = 0; i < n; ++i) {
      const Range r = ranges[i];
      const uint32_t lo_l = std::max<uint32_t>(r.lo, 'a'), hi_l = std::min<uint32_t>(r.hi, 'z');
      if (lo_l <= hi_l) ranges.push_back({lo_l - 32, hi_l - 32});
      const uint32_t lo_u = std::max<uint32_t>(r.lo, 'A'), hi_u = std::min<uint32_t>(r.hi, 'Z');
      if (lo_u <= hi_u) ranges.push_back({lo_u + 32, hi_u + 32});
    }
  }
};

CharSet DigitSet() {
  CharSet s;
  s.Add('0', '9');
  return s;
}
CharSet WordSet() {
  CharSet s;
  s.Add('0', '9');
  s.Add('A', 'Z');
  s.Add('a', 'z');
  s.Add('_', '_');
  return s;
}
CharSet SpaceSet() {
  CharSet s;
  s.Add('\t', '\r');  // \t \n \v \f \r
  s.Add(' ', ' ');
  return s;
}

enum class Op : uint8_t { kChar, kClass, kAny, kSplit, kJmp, kMatch, kAssert };
enum Assertion : uint32_t { kBol, kEol, kWordBoundary, kNotWordBoundary };

struct Inst {
  Op op;
  uint32_t x = 0;  // kChar: code point; kClass: class index; kSplit/kJmp: target; kAssert: kind
  uint32_t y = 0;  // kSplit: second target
};

struct CompiledClass {
  uint64_t ascii[2] = {0, 0};
  std::vector<Range> high;  // ranges at or above 0x80, sorted and disjoint

  bool Contains(uint32_t cp) const {
    if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
    auto it = std::upper_bound(high.begin(), high.end(), cp,
                               [](uint32_t v, const Range& r) { return v < r.lo; });
    if (it == high.begin()) return false;
    --it;
    return cp <= it->hi;
  }
};

enum class NodeKind : uint8_t { kEmpty, kChar, kClass, kAny, kAssert, kConcat, kAlt, kRepeat };

struct Node {
  static Node Make(NodeKind kind, uint32_t value = 0) {
    Node n;
    n.kind = kind;
    n.value = value;
    return n;
  }
  NodeKind kind = NodeKind::kEmpty;
  uint32_t value = 0;  // code point, set index or assertion
  int min = 0;
  int max = 0;  // -1: unbounded
  std::vector<int> kids;
};

inline bool IsAsciiAlnum(uint32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool IsAsciiLetter(uint32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
inline bool IsWordByte(unsigned char c) { return IsAsciiAlnum(c) || c == '_'; }

// Recursive descent over the grammar in regex.h, building an AST; depth is bounded by the
// group nesting limit because quantifiers cannot stack.
class Parser {
 public:
  Parser(std::string_view pattern, std::string* error) : p_(pattern), error_(error) {}

  int Run() {
    if (p_.size() > Regex::kMaxPatternBytes) return Fail("pattern longer than 2048 bytes");
    if (p_.substr(0, 4) == "(?i)") {
      case_insensitive_ = true;
      pos_ = 4;
    }
    const int root = ParseAlt(0);
    if (root < 0) return -1;
    if (pos_ != p_.size()) return Fail("unbalanced ')'");
    return root;
  }

  std::vector<Node> nodes;
  std::vector<CharSet> sets;

 private:
  int Fail(const char* message) {
    if (error_->empty()) *error_ = std::string(message) + " at offset " + std::to_string(pos_);
    return -1;
  }
  bool AtEnd() const { return pos_ >= p_.size(); }
  char Peek() const { return p_[pos_]; }

  int Add(Node node) {
    nodes.push_back(std::move(node));
    return static_cast<int>(nodes.size() - 1);
  }
  int AddSet(CharSet set) {
    if (case_insensitive_) set.AddCaseFolded();
    set.Normalize();
    sets.push_back(std::move(set));
    return Add(Node::Make(NodeKind::kClass, static_cast<uint32_t>(sets.size() - 1)));
  }
  int Literal(uint32_t cp) {
    if (case_insensitive_ && IsAsciiLetter(cp)) {
      CharSet set;
      set.Add(cp, cp);
      return AddSet(std::move(set));
    }
    return Add(Node::Make(NodeKind::kChar, cp));
  }

  int ParseAlt(int depth) {
    std::vector<int> alternatives;
    int first = ParseConcat(depth);
    if (first < 0) return -1;
    alternatives.push_back(first);
    while (!AtEnd() && Peek() == '|') {
      ++pos_;
      const int next = ParseConcat(depth);
      if (next < 0) return -1;
      alternatives.push_back(next);
    }
    if (alternatives.size() == 1) return first;
    Node alt = Node::Make(NodeKind::kAlt);
    alt.kids = std::move(alternatives);
    return Add(std::move(alt));
  }

  int ParseConcat(int depth) {
    std::vector<int> items;
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      const int item = ParseRepeat(depth);
      if (item < 0) return -1;
      items.push_back(item);
    }
    if (items.empty()) return Add(Node::Make(NodeKind::kEmpty));
    if (items.size() == 1) return items[0];
    Node concat = Node::Make(NodeKind::kConcat);
    concat.kids = std::move(items);
    return Add(std::move(concat));
  }

  bool ParseNumber(int* value) {
    const size_t start = pos_;
    int v = 0;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
      v = v * 10 + (Peek() - '0');
      if (v > Regex::kMaxRepeat) return false;
      ++pos_;
    }
    *value = v;
    return pos_ > start;
  }

  int ParseRepeat(int depth) {
    int atom = ParseAtom(depth);
    if (atom < 0 || AtEnd()) return atom;
    int min, max;
    const char c = Peek();
    if (c == '*') {
      min = 0, max = -1;
      ++pos_;
    } else if (c == '+') {
      min = 1, max = -1;
      ++pos_;
    } else if (c == '?') {
      min = 0, max = 1;
      ++pos_;
    } else if (c == '{') {
      ++pos_;
      if (!ParseNumber(&min)) return Fail("bad counted repetition (numbers are 0..255)");
      max = min;
      if (!AtEnd() && Peek() == ',') {
        ++pos_;
        if (!AtEnd() && Peek() == '}') {
          max = -1;
        } else if (!ParseNumber(&max)) {
          return Fail("bad counted repetition (numbers are 0..255)");
        }
      }
      if (AtEnd() || Peek() != '}') return Fail("bad counted repetition: missing '}'");
      ++pos_;
      if (max != -1 && max < min) return Fail("bad counted repetition: max below min");
    } else {
      return atom;
    }
    if (!AtEnd() && (Peek() == '*' || Peek() == '+' || Peek() == '?' || Peek() == '{')) {
      return Fail("a quantifier cannot follow a quantifier (no lazy or possessive forms)");
    }
    Node repeat = Node::Make(NodeKind::kRepeat);
    repeat.min = min;
    repeat.max = max;
    repeat.kids.push_back(atom);
    return Add(std::move(repeat));
  }

  // Escapes valid both inside and outside classes. Returns 1 for a code point, 2 for a set,
  // 0 when not one of them (the caller handles \b \B or fails).
  int ParseCommonEscape(char e, uint32_t* cp, CharSet* set) {
    switch (e) {
      case 'd':
        *set = DigitSet();
        return 2;
      case 'w':
        *set = WordSet();
        return 2;
      case 's':
        *set = SpaceSet();
        return 2;
      case 'D':
        *set = DigitSet();
        set->Negate();
        return 2;
      case 'W':
        *set = WordSet();
        set->Negate();
        return 2;
      case 'S':
        *set = SpaceSet();
        set->Negate();
        return 2;
      case 't':
        *cp = '\t';
        return 1;
      case 'n':
        *cp = '\n';
        return 1;
      case 'r':
        *cp = '\r';
        return 1;
      case 'f':
        *cp = '\f';
        return 1;
      case 'v':
        *cp = '\v';
        return 1;
      case 'x': {
        if (pos_ + 2 > p_.size()) return -1;
        const int h = HexValue(p_[pos_]), l = HexValue(p_[pos_ + 1]);
        if (h < 0 || l < 0) return -1;
        pos_ += 2;
        *cp = static_cast<uint32_t>(h * 16 + l);
        return 1;
      }
      default: {
        const auto u = static_cast<unsigned char>(e);
        if (u >= 0x21 && u <= 0x7E && !IsAsciiAlnum(u)) {
          *cp = u;
          return 1;
        }
        return -1;
      }
    }
  }

  // One code point of pattern text at pos_ (not an escape).
  bool ParseCodePoint(uint32_t* cp) {
    const auto* p = reinterpret_cast<const unsigned char*>(p_.data()) + pos_;
    const size_t len = DecodeUtf8(p, p_.size() - pos_, cp);
    if (len == 0) return false;
    pos_ += len;
    return true;
  }

  int ParseAtom(int depth) {
    const char c = Peek();
    switch (c) {
      case '(': {
        if (depth + 1 > Regex::kMaxNesting) return Fail("groups nested too deeply");
        ++pos_;
        if (!AtEnd() && Peek() == '?') {
          if (p_.substr(pos_, 2) != "?:") {
            return Fail("unsupported group syntax (only (?:...) and a leading (?i))");
          }
          pos_ += 2;
        }
        const int inner = ParseAlt(depth + 1);
        if (inner < 0) return -1;
        if (AtEnd() || Peek() != ')') return Fail("missing ')'");
        ++pos_;
        return inner;
      }
      case '[':
        return ParseClass();
      case '.':
        ++pos_;
        return Add(Node::Make(NodeKind::kAny));
      case '^':
        ++pos_;
        return Add(Node::Make(NodeKind::kAssert, kBol));
      case '$':
        ++pos_;
        return Add(Node::Make(NodeKind::kAssert, kEol));
      case '*':
      case '+':
      case '?':
        return Fail("nothing to repeat");
      case '{':
        return Fail("'{' must be escaped outside a counted repetition");
      case '\\': {
        ++pos_;
        if (AtEnd()) return Fail("trailing backslash");
        const char e = p_[pos_++];
        if (e == 'b') return Add(Node::Make(NodeKind::kAssert, kWordBoundary));
        if (e == 'B') return Add(Node::Make(NodeKind::kAssert, kNotWordBoundary));
        uint32_t cp = 0;
        CharSet set;
        const int kind = ParseCommonEscape(e, &cp, &set);
        if (kind == 1) return Literal(cp);
        if (kind == 2) return AddSet(std::move(set));
        return Fail("unknown escape");
      }
      default: {
        uint32_t cp;
        if (!ParseCodePoint(&cp)) return Fail("pattern is not valid UTF-8");
        return Literal(cp);
      }
    }
  }

  // One endpoint inside a class: a code point (returns 1) or a set escape (returns 2).
  int ParseClassItem(uint32_t* cp, CharSet* set) {
    if (Peek() == '\\') {
      ++pos_;
      if (AtEnd()) return Fail("trailing backslash");
      const char e = p_[pos_++];
      const int kind = ParseCommonEscape(e, cp, set);
      if (kind < 0) return Fail("unknown escape in class");
      return kind;
    }
    if (!ParseCodePoint(cp)) return Fail("pattern is not valid UTF-8");
    return 1;
  }

  int ParseClass() {
    ++pos_;  // '['
    bool negate = false;
    if (!AtEnd() && Peek() == '^') {
      negate = true;
      ++pos_;
    }
    CharSet set;
    bool first = true;
    while (true) {
      if (AtEnd()) return Fail("missing ']'");
      if (Peek() == ']' && !first) {
        ++pos_;
        break;
      }
      first = false;
      uint32_t lo = 0;
      CharSet item_set;
      const int kind = ParseClassItem(&lo, &item_set);
      if (kind < 0) return -1;
      if (kind == 2) {
        set.AddAll(item_set);
        continue;
      }
      if (pos_ + 1 < p_.size() && Peek() == '-' && p_[pos_ + 1] != ']') {
        ++pos_;
        uint32_t hi = 0;
        const int hi_kind = ParseClassItem(&hi, &item_set);
        if (hi_kind < 0) return -1;
        if (hi_kind == 2) return Fail("a class escape cannot end a range");
        if (hi < lo) return Fail("range out of order");
        set.Add(lo, hi);
      } else {
        set.Add(lo, lo);
      }
    }
    if (case_insensitive_) set.AddCaseFolded();
    if (negate) set.Negate();
    // AddSet folds case again (harmless) and normalises.
    return AddSet(std::move(set));
  }

  std::string_view p_;
  std::string* error_;
  size_t pos_ = 0;
  bool case_insensitive_ = false;
};

// Program size of a node, saturating just above the limit.
size_t ProgramSize(const std::vector<Node>& nodes, int id) {
  constexpr size_t kCap = Regex::kMaxProgram + 1;
  const Node& n = nodes[id];
  auto sat = [](size_t v) { return v > kCap ? kCap : v; };
  switch (n.kind) {
    case NodeKind::kEmpty:
      return 0;
    case NodeKind::kChar:
    case NodeKind::kClass:
    case NodeKind::kAny:
    case NodeKind::kAssert:
      return 1;
    case NodeKind::kConcat: {
      size_t total = 0;
      for (int k : n.kids) total = sat(total + ProgramSize(nodes, k));
      return total;
    }
    case NodeKind::kAlt: {
      size_t total = 2 * (n.kids.size() - 1);
      for (int k : n.kids) total = sat(total + ProgramSize(nodes, k));
      return sat(total);
    }
    case NodeKind::kRepeat: {
      const size_t c = ProgramSize(nodes, n.kids[0]);
      if (n.max == -1) {
        if (n.min == 0) return sat(c + 2);
        if (n.min == 1) return sat(c + 1);
        return sat(static_cast<size_t>(n.min) * c + c + 2);
      }
      return sat(static_cast<size_t>(n.min) * c + static_cast<size_t>(n.max - n.min) * (c + 1));
    }
  }
  return kCap;
}

class Emitter {
 public:
  explicit Emitter(const std::vector<Node>& nodes) : nodes_(nodes) {}
  std::vector<Inst> insts;

  uint32_t Here() const { return static_cast<uint32_t>(insts.size()); }
  uint32_t Push(Inst inst) {
    insts.push_back(inst);
    return Here() - 1;
  }

  void Emit(int id) {
    const Node& n = nodes_[id];
    switch (n.kind) {
      case NodeKind::kEmpty:
        return;
      case NodeKind::kChar:
        Push({Op::kChar, n.value});
        return;
      case NodeKind::kClass:
        Push({Op::kClass, n.value});
        return;
      case NodeKind::kAny:
        Push({Op::kAny});
        return;
      case NodeKind::kAssert:
        Push({Op::kAssert, n.value});
        return;
      case NodeKind::kConcat:
        for (int k : n.kids) Emit(k);
        return;
      case NodeKind::kAlt: {
        std::vector<uint32_t> jumps;
        for (size_t i = 0; i < n.kids.size(); ++i) {
          if (i + 1 < n.kids.size()) {
            const uint32_t split = Push({Op::kSplit});
            insts[split].x = split + 1;
            Emit(n.kids[i]);
            jumps.push_back(Push({Op::kJmp}));
            insts[split].y = Here();
          } else {
            Emit(n.kids[i]);
          }
        }
        for (uint32_t j : jumps) insts[j].x = Here();
        return;
      }
      case NodeKind::kRepeat: {
        const int child = n.kids[0];
        if (n.max == -1) {
          if (n.min == 1) {
            const uint32_t loop = Here();
            Emit(child);
            const uint32_t split = Push({Op::kSplit});
            insts[split].x = loop;
            insts[split].y = split + 1;
            return;
          }
          for (int i = 0; i < n.min; ++i) Emit(child);
          EmitStar(child);
          return;
        }
        for (int i = 0; i < n.min; ++i) Emit(child);
        for (int i = n.min; i < n.max; ++i) {
          const uint32_t split = Push({Op::kSplit});
          insts[split].x = split + 1;
          Emit(child);
          insts[split].y = Here();
        }
        return;
      }
    }
  }

 private:
  void EmitStar(int child) {
    const uint32_t split = Push({Op::kSplit});
    insts[split].x = split + 1;
    Emit(child);
    Push({Op::kJmp, split});
    insts[split].y = Here();
  }

  const std::vector<Node>& nodes_;
};

}  // namespace

struct Regex::Program {
  std::vector<Inst> insts;
  std::vector<CompiledClass> classes;
  bool first_byte[256] = {};  // bytes that can begin a non-empty match
  bool use_prefilter = false;
};

Regex::Regex(std::unique_ptr<Program> program) : program_(std::move(program)) {}
Regex::~Regex() = default;

size_t Regex::program_size() const { return program_->insts.size(); }

std::unique_ptr<Regex> Regex::Compile(std::string_view pattern, std::string* error) {
  error->clear();
  Parser parser(pattern, error);
  const int root = parser.Run();
  if (root < 0) return nullptr;
  if (ProgramSize(parser.nodes, root) + 1 > kMaxProgram) {
    *error = "pattern too large after expanding repetition (limit 10000 instructions)";
    return nullptr;
  }
  Emitter emitter(parser.nodes);
  emitter.Emit(root);
  emitter.Push({Op::kMatch});

  auto program = std::make_unique<Program>();
  program->insts = std::move(emitter.insts);
  for (const CharSet& set : parser.sets) {
    CompiledClass cls;
    for (const Range& r : set.ranges) {
      for (uint32_t c = r.lo; c <= std::min<uint32_t>(r.hi, 127); ++c) {
        cls.ascii[c >> 6] |= uint64_t{1} << (c & 63);
      }
      if (r.hi >= 128) cls.high.push_back({std::max<uint32_t>(r.lo, 128), r.hi});
    }
    program->classes.push_back(std::move(cls));
  }

  // First bytes: walk the epsilon closure of the start, assuming every assertion can hold.
  std::vector<bool> seen(program->insts.size(), false);
  std::vector<uint32_t> stack = {0};
  bool* first = program->first_byte;
  while (!stack.empty()) {
    const uint32_t pc = stack.back();
    stack.pop_back();
    if (seen[pc]) continue;
    seen[pc] = true;
    const Inst& in = program->insts[pc];
    switch (in.op) {
      case Op::kJmp:
        stack.push_back(in.x);
        break;
      case Op::kSplit:
        stack.push_back(in.x);
        stack.push_back(in.y);
        break;
      case Op::kAssert:
        stack.push_back(pc + 1);
        break;
      case Op::kChar:
        if (in.x < 0x80) {
          first[in.x] = true;
        } else {
          // Non-ASCII: any lead byte, and any byte at all for U+FFFD, which stands for
          // ill-formed input when the regex is used on unrepaired text.
          for (int b = 0x80; b < 256; ++b) first[b] = true;
        }
        break;
      case Op::kClass: {
        const CompiledClass& cls = program->classes[in.x];
        for (int b = 0; b < 128; ++b) {
          if (cls.Contains(static_cast<uint32_t>(b))) first[b] = true;
        }
        if (!cls.high.empty()) {
          for (int b = 0x80; b < 256; ++b) first[b] = true;
        }
        break;
      }
      case Op::kAny:
        for (int b = 0; b < 256; ++b) first[b] = first[b] || b != '\n';
        break;
      case Op::kMatch:
        break;
    }
  }
  int count = 0;
  for (int b = 0; b < 256; ++b) count += first[b] ? 1 : 0;
  program->use_prefilter = count < 256;
  return std::unique_ptr<Regex>(new Regex(std::move(program)));
}

void Regex::Scratch::Prepare(size_t program_size) {
  for (List& list : lists_) {
    if (list.sparse.size() < program_size) {
      list.sparse.resize(program_size);
      list.dense.resize(program_size);
    }
    list.size = 0;
  }
  if (stack_.capacity() < 2 * program_size + 2) stack_.reserve(2 * program_size + 2);
}

namespace {

inline bool AssertionHolds(uint32_t kind, std::string_view text, size_t pos) {
  switch (kind) {
    case kBol:
      return pos == 0;
    case kEol:
      return pos == text.size();
    default: {
      const bool before = pos > 0 && IsWordByte(static_cast<unsigned char>(text[pos - 1]));
      const bool after = pos < text.size() && IsWordByte(static_cast<unsigned char>(text[pos]));
      return (before != after) == (kind == kWordBoundary);
    }
  }
}

}  // namespace

bool Regex::SearchBounded(std::string_view text, size_t from, Match* match, Scratch* scratch,
                          uint64_t* steps, uint64_t budget, bool* exhausted) const {
  const Program& prog = *program_;
  scratch->Prepare(prog.insts.size());
  using List = Scratch::List;
  List* clist = &scratch->lists_[0];
  List* nlist = &scratch->lists_[1];
  std::vector<uint32_t>& stack = scratch->stack_;
  uint64_t used = 0;

  // Adds pc and its epsilon closure at text position `at`. A state already in the list keeps
  // its earlier (smaller) start: that thread wins every match the later one could make.
  auto add_thread = [&](List* list, uint32_t pc0, size_t start, size_t at) {
    stack.clear();
    stack.push_back(pc0);
    while (!stack.empty()) {
      const uint32_t pc = stack.back();
      stack.pop_back();
      const uint32_t slot = list->sparse[pc];
      if (slot < list->size && list->dense[slot].pc == pc) continue;
      list->sparse[pc] = static_cast<uint32_t>(list->size);
      list->dense[list->size++] = {pc, start};
      ++used;
      const Inst& in = prog.insts[pc];
      switch (in.op) {
        case Op::kJmp:
          stack.push_back(in.x);
          break;
        case Op::kSplit:
          stack.push_back(in.y);
          stack.push_back(in.x);
          break;
        case Op::kAssert:
          if (AssertionHolds(in.x, text, at)) stack.push_back(pc + 1);
          break;
        default:
          break;
      }
    }
  };

  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t best_start = kNone, best_end = 0;
  size_t pos = from;
  clist->size = 0;
  while (true) {
    if (best_start == kNone) {
      if (clist->size == 0) {
        if (prog.use_prefilter) {
          while (pos < n && !prog.first_byte[s[pos]]) ++pos;
        }
        if (pos >= n) break;  // a non-empty match cannot start at the end
      }
      if (pos < n) add_thread(clist, 0, pos, pos);
    }
    if (clist->size == 0) break;
    if (used > budget) {
      *exhausted = true;
      break;
    }
    uint32_t cp = 0;
    size_t len = 0;
    if (pos < n) {
      len = DecodeUtf8(s + pos, n - pos, &cp);
      if (len == 0) {
        len = cp;  // the ill-formed subpart counts as one U+FFFD
        cp = 0xFFFD;
      }
    }
    nlist->size = 0;
    const size_t next = pos + len;
    for (size_t t = 0; t < clist->size; ++t) {
      const Scratch::Thread th = clist->dense[t];
      // Threads are in start order; once a match is known, later starts cannot win.
      if (best_start != kNone && th.start > best_start) break;
      ++used;
      const Inst& in = prog.insts[th.pc];
      switch (in.op) {
        case Op::kMatch:
          if (pos > th.start && (best_start == kNone || th.start < best_start ||
                                 (th.start == best_start && pos > best_end))) {
            best_start = th.start;
            best_end = pos;
          }
          break;
        case Op::kChar:
          if (len != 0 && cp == in.x) add_thread(nlist, th.pc + 1, th.start, next);
          break;
        case Op::kClass:
          if (len != 0 && prog.classes[in.x].Contains(cp)) {
            add_thread(nlist, th.pc + 1, th.start, next);
          }
          break;
        case Op::kAny:
          if (len != 0 && cp != '\n') add_thread(nlist, th.pc + 1, th.start, next);
          break;
        default:
          break;
      }
    }
    if (pos >= n) break;
    pos = next;
    std::swap(clist, nlist);
  }
  *steps += used;
  if (*exhausted || best_start == kNone) return false;
  match->begin = best_start;
  match->end = best_end;
  return true;
}

bool Regex::Search(std::string_view text, size_t from, Match* match, Scratch* scratch,
                   uint64_t* steps) const {
  bool exhausted = false;
  uint64_t local = 0;
  const bool found = SearchBounded(text, from, match, scratch, &local, UINT64_MAX, &exhausted);
  if (steps != nullptr) *steps += local;
  return found;
}

bool Regex::FindAll(std::string_view text, std::vector<Match>* out, Scratch* scratch,
                    uint64_t* steps) const {
  const uint64_t budget = StepBudget(text.size(), program_->insts.size());
  uint64_t used = 0;
  size_t from = 0;
  bool ok = true;
  while (from < text.size()) {
    Match m;
    bool exhausted = false;
    const bool found = SearchBounded(text, from, &m, scratch, &used, budget - used, &exhausted);
    if (exhausted || used > budget) {
      out->push_back({from, text.size()});
      ok = false;
      break;
    }
    if (!found) break;
    out->push_back(m);
    from = m.end;
  }
  if (steps != nullptr) *steps += used;
  return ok;
}

bool Regex::FullMatch(std::string_view text) const {
  Scratch scratch;
  if (text.empty()) {
    // Empty matches are skipped by searches; test the start closure directly.
    const Program& prog = *program_;
    std::vector<bool> seen(prog.insts.size(), false);
    std::vector<uint32_t> stack = {0};
    while (!stack.empty()) {
      const uint32_t pc = stack.back();
      stack.pop_back();
      if (seen[pc]) continue;
      seen[pc] = true;
      const Inst& in = prog.insts[pc];
      if (in.op == Op::kMatch) return true;
      if (in.op == Op::kJmp) stack.push_back(in.x);
      if (in.op == Op::kSplit) {
        stack.push_back(in.x);
        stack.push_back(in.y);
      }
      if (in.op == Op::kAssert && AssertionHolds(in.x, text, 0)) stack.push_back(pc + 1);
    }
    return false;
  }
  Match m;
  uint64_t steps = 0;
  return Search(text, 0, &m, &scratch, &steps) && m.begin == 0 && m.end == text.size();
}

}  // namespace djtrace::pii
