// Runs the hard-case corpus in native/tests/data/sql/*.cases through the obfuscator.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>

#include "sql/obfuscator.h"
#include "tests/sql/corpus.h"
#include "tests/sql/utf8.h"

namespace djtrace::sql {
namespace {

using testing::CorpusCase;

const std::vector<CorpusCase>& Corpus() {
  static const std::vector<CorpusCase> corpus = testing::LoadCorpus();
  return corpus;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The markers that the corpus puts inside literals and comments only.
const char* const kMarkers[] = {"secret", "s3cr3t", "8675309"};

bool ContainsMarker(const std::string& s) {
  const std::string lower = Lower(s);
  for (const char* m : kMarkers)
    if (lower.find(m) != std::string::npos) return true;
  return false;
}

ObfuscatedSql RunCase(const CorpusCase& c) {
  ObfuscateOptions options;
  options.max_length = c.max_length;
  return Obfuscate(c.input, c.dialect, options);
}

class CorpusTest : public ::testing::TestWithParam<CorpusCase> {};

TEST_P(CorpusTest, MatchesExpectation) {
  const CorpusCase& c = GetParam();
  SCOPED_TRACE(c.file + ":" + std::to_string(c.line) + " " + c.name);
  const ObfuscatedSql r = RunCase(c);
  EXPECT_EQ(r.text, c.expected_text);
  EXPECT_EQ(r.summary, c.expected_summary);
  if (c.expected_operation) EXPECT_EQ(r.operation, *c.expected_operation);
  if (c.expected_table) EXPECT_EQ(r.table, *c.expected_table);
  if (c.expected_truncated) EXPECT_EQ(r.truncated, *c.expected_truncated);
  if (c.max_length != 0) EXPECT_LE(r.text.size(), std::max(c.max_length, size_t{3}));
}

TEST_P(CorpusTest, NoLiteralSurvives) {
  const CorpusCase& c = GetParam();
  const ObfuscatedSql r = RunCase(c);
  for (const std::string* out : {&r.text, &r.operation, &r.table, &r.summary}) {
    EXPECT_FALSE(ContainsMarker(*out)) << c.name << ": " << *out;
    for (const std::string& secret : c.secrets)
      EXPECT_EQ(out->find(secret), std::string::npos) << c.name << ": " << secret;
  }
}

TEST_P(CorpusTest, OutputIsValidUtf8AndIdempotent) {
  const CorpusCase& c = GetParam();
  ObfuscateOptions unbounded;
  unbounded.max_length = 0;
  const ObfuscatedSql r = Obfuscate(c.input, c.dialect, unbounded);
  EXPECT_TRUE(testing::IsValidUtf8(r.text));
  EXPECT_TRUE(testing::IsValidUtf8(r.summary));
  const ObfuscatedSql again = Obfuscate(r.text, c.dialect, unbounded);
  EXPECT_EQ(again.text, r.text) << c.name;
  EXPECT_EQ(again.summary, r.summary) << c.name;
}

std::string CaseName(const ::testing::TestParamInfo<CorpusCase>& info) {
  std::string name = info.param.name;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Sql, CorpusTest, ::testing::ValuesIn(Corpus()), CaseName);

TEST(CorpusShape, IsLargeAndCoversEveryDialect) {
  const auto& corpus = Corpus();
  EXPECT_GE(corpus.size(), 80u);
  std::map<Dialect, int> per_dialect;
  std::set<std::string> names;
  int with_markers = 0;
  for (const auto& c : corpus) {
    ++per_dialect[c.dialect];
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name " << c.name;
    if (ContainsMarker(c.input)) ++with_markers;
  }
  EXPECT_GE(per_dialect[Dialect::kPostgres], 30);
  EXPECT_GE(per_dialect[Dialect::kSqlite], 20);
  EXPECT_GE(per_dialect[Dialect::kMysql], 20);
  EXPECT_GE(per_dialect[Dialect::kGeneric], 10);
  // The leak check means something only if many inputs carry markers.
  EXPECT_GE(with_markers, 60);
}

// Cases of one group share a fingerprint; cases of different groups do not.
TEST(CorpusFingerprints, GroupsAgreeWithinAndDifferAcross) {
  std::map<std::string, std::pair<std::string, uint64_t>> first_of_group;
  std::map<uint64_t, std::string> group_of_fingerprint;
  for (const auto& c : Corpus()) {
    if (c.group.empty()) continue;
    const ObfuscatedSql r = RunCase(c);
    auto [it, inserted] = first_of_group.try_emplace(c.group, c.name, r.fingerprint);
    if (!inserted) {
      EXPECT_EQ(r.fingerprint, it->second.second)
          << c.name << " and " << it->second.first << " are both in group " << c.group;
      continue;
    }
    auto [fit, fresh] = group_of_fingerprint.try_emplace(r.fingerprint, c.group);
    EXPECT_TRUE(fresh) << "groups " << c.group << " and " << fit->second << " collide";
  }
  EXPECT_GE(first_of_group.size(), 8u);
}

// Every case's fingerprint differs from every other case's unless they share a group.
TEST(CorpusFingerprints, UngroupedCasesAreDistinct) {
  std::map<uint64_t, std::pair<const CorpusCase*, std::string>> seen;
  for (const auto& c : Corpus()) {
    const ObfuscatedSql r = RunCase(c);
    auto [it, inserted] = seen.try_emplace(r.fingerprint, &c, Lower(r.text));
    if (inserted || (!c.group.empty() && c.group == it->second.first->group)) continue;
    // Different inputs may end in the same token stream (an unterminated literal in one
    // dialect, an ambiguous one in another); then the fingerprints rightly agree.
    if (Lower(r.text) == it->second.second) continue;
    ADD_FAILURE() << c.name << " and " << it->second.first->name << " share a fingerprint";
  }
}

TEST(CorpusParser, ReportsMalformedInput) {
  EXPECT_THROW(testing::ParseCorpus("dialect: postgres\n", "x"), std::runtime_error);
  EXPECT_THROW(testing::ParseCorpus("=== a\ndialect: oracle\n", "x"), std::runtime_error);
  EXPECT_THROW(testing::ParseCorpus("=== a\nin: x\nout: x\n", "x"), std::runtime_error);
  const auto cases = testing::ParseCorpus(
      "=== a\ndialect: mysql\nin:\n| SELECT 1\n|\n| -- x\nout: SELECT ?\nsummary: SELECT\n", "x");
  ASSERT_EQ(cases.size(), 1u);
  EXPECT_EQ(cases[0].input, "SELECT 1\n\n-- x");
  EXPECT_EQ(cases[0].dialect, Dialect::kMysql);
}

}  // namespace
}  // namespace djtrace::sql
