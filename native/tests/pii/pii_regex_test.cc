#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "pii/regex.h"

namespace djtrace::pii {
namespace {

std::unique_ptr<Regex> MustCompile(std::string_view pattern) {
  std::string error;
  auto re = Regex::Compile(pattern, &error);
  EXPECT_NE(re, nullptr) << pattern << ": " << error;
  return re;
}

std::vector<std::pair<size_t, size_t>> All(std::string_view pattern, std::string_view text) {
  auto re = MustCompile(pattern);
  if (!re) return {};
  Regex::Scratch scratch;
  std::vector<Regex::Match> matches;
  EXPECT_TRUE(re->FindAll(text, &matches, &scratch));
  std::vector<std::pair<size_t, size_t>> out;
  for (const auto& m : matches) out.emplace_back(m.begin, m.end);
  return out;
}

using Spans = std::vector<std::pair<size_t, size_t>>;

TEST(RegexTest, LiteralsClassesAndQuantifiers) {
  EXPECT_TRUE(MustCompile("abc")->FullMatch("abc"));
  EXPECT_FALSE(MustCompile("abc")->FullMatch("abd"));
  EXPECT_TRUE(MustCompile("a.c")->FullMatch("axc"));
  EXPECT_FALSE(MustCompile("a.c")->FullMatch("a\nc"));
  EXPECT_TRUE(MustCompile("[a-c]+")->FullMatch("abccba"));
  EXPECT_TRUE(MustCompile("\\d{3}-\\d{4}")->FullMatch("555-0100"));
  EXPECT_TRUE(MustCompile("colou?r")->FullMatch("color"));
  EXPECT_TRUE(MustCompile("colou?r")->FullMatch("colour"));
  EXPECT_TRUE(MustCompile("(ab|cd)+")->FullMatch("abcdab"));
  EXPECT_TRUE(MustCompile("(?:ab)*")->FullMatch(""));
  EXPECT_FALSE(MustCompile("a+")->FullMatch(""));
  EXPECT_TRUE(MustCompile("\\w+\\s\\S+")->FullMatch("hello w0rld!"));
  EXPECT_TRUE(MustCompile("\\D\\W")->FullMatch("x-"));
  EXPECT_TRUE(MustCompile("\\x41\\t\\.")->FullMatch("A\t."));
  EXPECT_TRUE(MustCompile("[^0-9]+")->FullMatch("ab-cd"));
  EXPECT_TRUE(MustCompile("[]a]+")->FullMatch("]a]"));
  EXPECT_TRUE(MustCompile("[a-]+")->FullMatch("a-a"));
  EXPECT_TRUE(MustCompile("[\\d_]+")->FullMatch("1_2"));
  EXPECT_TRUE(MustCompile("a{2,3}")->FullMatch("aaa"));
  EXPECT_FALSE(MustCompile("a{2,3}")->FullMatch("aaaa"));
  EXPECT_TRUE(MustCompile("a{2,}")->FullMatch("aaaaaa"));
  EXPECT_FALSE(MustCompile("a{2,}")->FullMatch("a"));
  EXPECT_TRUE(MustCompile("a{0,2}b")->FullMatch("b"));
  EXPECT_TRUE(MustCompile("(a|b){3}")->FullMatch("bab"));
  EXPECT_TRUE(MustCompile("a|")->FullMatch(""));
}

TEST(RegexTest, LeftmostLongestNonOverlapping) {
  EXPECT_EQ(All("a|ab", "ab"), (Spans{{0, 2}}));  // longest, unlike Perl's leftmost-first
  EXPECT_EQ(All("ab|abcd", "abcd"), (Spans{{0, 4}}));
  EXPECT_EQ(All("abcd|bc", "abcd"), (Spans{{0, 4}}));
  EXPECT_EQ(All("bc|abcx", "abcd"), (Spans{{1, 3}}));
  EXPECT_EQ(All("\\d+", "a12b345c"), (Spans{{1, 3}, {4, 7}}));
  EXPECT_EQ(All("a*", "baac"), (Spans{{1, 3}}));  // empty matches are skipped
  EXPECT_EQ(All("a{2,3}", "aaaaaaa"), (Spans{{0, 3}, {3, 6}}));
  EXPECT_EQ(All("x", ""), Spans{});
}

TEST(RegexTest, AnchorsAndWordBoundaries) {
  EXPECT_EQ(All("^a", "aa"), (Spans{{0, 1}}));
  EXPECT_EQ(All("a$", "aa"), (Spans{{1, 2}}));
  EXPECT_EQ(All("^$", ""), Spans{});
  EXPECT_EQ(All("\\bid\\b", "id uid id_x id"), (Spans{{0, 2}, {12, 14}}));
  EXPECT_EQ(All("\\Bid", "id uid"), (Spans{{4, 6}}));
  EXPECT_EQ(All("\\bEMP-\\d{6}\\b", "x EMP-123456 EMP-1234567"), (Spans{{2, 12}}));
}

TEST(RegexTest, CaseInsensitiveAndUtf8) {
  EXPECT_EQ(All("(?i)secret-[a-z]+", "SeCrEt-ABC and secret-x"), (Spans{{0, 10}, {15, 23}}));
  EXPECT_EQ(All("(?i)[^a]", "aAb"), (Spans{{2, 3}}));
  // The unit is the code point: '.' takes all of é, and classes hold non-ASCII ranges.
  EXPECT_TRUE(MustCompile("caf.")->FullMatch("caf\xC3\xA9"));
  EXPECT_EQ(All("\xC3\xA9+", "caf\xC3\xA9\xC3\xA9!"), (Spans{{3, 7}}));
  EXPECT_EQ(All("[\xC3\xA0-\xC3\xBF]+", "na\xC3\xAFve"), (Spans{{2, 4}}));
  EXPECT_EQ(All("[^a-z]", "a\xE2\x82\xAC"), (Spans{{1, 4}}));
  EXPECT_TRUE(MustCompile("\xF0\x9F\x98\x80{2}")->FullMatch("\xF0\x9F\x98\x80\xF0\x9F\x98\x80"));
}

TEST(RegexTest, CompileErrors) {
  std::string error;
  for (std::string_view bad :
       {"(",   ")",      "a)",     "[a",    "a**",     "a*?",  "a+?",   "*a",
        "?",   "a{3,2}", "a{256}", "a{1",   "a{x}",    "\\q",  "(?=x)", "(?<n>x)",
        "\\1", "a\\",    "{",      "[z-a]", "[a-\\d]", "\xFF", "(?i",   "x(?i)"}) {
    EXPECT_EQ(Regex::Compile(bad, &error), nullptr) << "accepted: " << bad;
    EXPECT_FALSE(error.empty());
  }
  std::string deep(101, '(');
  deep += "a" + std::string(101, ')');
  EXPECT_EQ(Regex::Compile(deep, &error), nullptr);
  EXPECT_NE(error.find("nested"), std::string::npos);
  EXPECT_EQ(Regex::Compile("(a{200}){200}", &error), nullptr);
  EXPECT_NE(error.find("too large"), std::string::npos);
  EXPECT_EQ(Regex::Compile(std::string(3000, 'a'), &error), nullptr);
  std::string ok_deep(100, '(');
  ok_deep += "a" + std::string(100, ')');
  EXPECT_NE(Regex::Compile(ok_deep, &error), nullptr) << error;
}

// The bar for "linear": at most 2 VM steps per (text position, program instruction), which a
// backtracking engine exceeds by orders of magnitude on these patterns.
void ExpectLinear(std::string_view pattern, const std::string& text, bool expect_match) {
  auto re = MustCompile(pattern);
  ASSERT_NE(re, nullptr);
  Regex::Scratch scratch;
  std::vector<Regex::Match> matches;
  uint64_t steps = 0;
  EXPECT_TRUE(re->FindAll(text, &matches, &scratch, &steps)) << pattern;
  EXPECT_EQ(!matches.empty(), expect_match) << pattern;
  const uint64_t bound = 2 * (text.size() + 1) * (re->program_size() + 1);
  EXPECT_LE(steps, bound) << pattern << " took " << steps << " steps";
  // And doubling the input at most doubles the work (plus a little).
  uint64_t steps2 = 0;
  matches.clear();
  re->FindAll(text + text, &matches, &scratch, &steps2);
  EXPECT_LE(steps2, 2 * steps + 1000) << pattern;
}

TEST(RegexTest, PathologicalPatternsRunInLinearSteps) {
  const std::string as(100000, 'a');
  ExpectLinear("(a*)*b", as, false);
  ExpectLinear("(a+)+b", as, false);
  ExpectLinear("(a|aa)*c", as, false);
  ExpectLinear("(a|a)*b", as, false);
  ExpectLinear("(x+x+)+y", std::string(100000, 'x'), false);
  ExpectLinear("(.*a){12}", std::string(5000, 'a') + "b", true);
  ExpectLinear("^(\\w+\\s?)*$", std::string(20000, 'w') + "!", false);
  // And on text where most positions could start a match.
  ExpectLinear("\\d{3}-\\d{2}-\\d{4}", std::string(50000, '1'), false);
}

TEST(RegexTest, PathologicalRestartsFailClosedWithinBudget) {
  // After each one-letter match the second alternative runs to the end of the text; restarting
  // after every match would be quadratic, so the budget stops it and the rest counts as matched.
  auto re = MustCompile("a|a.*Z");
  const std::string text(20000, 'a');
  Regex::Scratch scratch;
  std::vector<Regex::Match> matches;
  uint64_t steps = 0;
  EXPECT_FALSE(re->FindAll(text, &matches, &scratch, &steps));
  ASSERT_FALSE(matches.empty());
  EXPECT_EQ(matches.back().end, text.size());
  const uint64_t budget = Regex::StepBudget(text.size(), re->program_size());
  EXPECT_LE(steps, budget + 4 * (re->program_size() + 1));
  // Covered without gaps: every 'a' is in some match.
  size_t covered = 0;
  for (const auto& m : matches) {
    EXPECT_EQ(m.begin, covered);
    covered = m.end;
  }
}

TEST(RegexTest, SearchFromOffsetAndScratchReuse) {
  auto digits = MustCompile("\\d+");
  auto words = MustCompile("[a-z]+");
  Regex::Scratch scratch;  // one scratch shared by two programs of different sizes
  Regex::Match m;
  uint64_t steps = 0;
  ASSERT_TRUE(digits->Search("ab12cd34", 4, &m, &scratch, &steps));
  EXPECT_EQ(m.begin, 6u);
  EXPECT_EQ(m.end, 8u);
  ASSERT_TRUE(words->Search("ab12cd34", 1, &m, &scratch, &steps));
  EXPECT_EQ(m.begin, 1u);
  EXPECT_EQ(m.end, 2u);
  EXPECT_FALSE(digits->Search("ab12cd34", 8, &m, &scratch, &steps));
  EXPECT_GT(steps, 0u);
}

TEST(RegexTest, IllFormedTextIsSafe) {
  // Unrepaired input: an ill-formed byte is one U+FFFD to the VM.
  EXPECT_EQ(All("x.y", "x\xFFy"), (Spans{{0, 3}}));
  EXPECT_EQ(All("\\xFF", "\xFF"), Spans{});
  EXPECT_EQ(All(".+", "\xE2\x82"), (Spans{{0, 2}}));
}

}  // namespace
}  // namespace djtrace::pii
