#include "sql/obfuscator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tests/sql/utf8.h"

namespace djtrace::sql {
namespace {

using testing::IsValidUtf8;

constexpr Dialect kAllDialects[] = {Dialect::kGeneric, Dialect::kPostgres, Dialect::kSqlite,
                                    Dialect::kMysql};

std::string Text(std::string_view sql, Dialect d = Dialect::kPostgres) {
  return Obfuscate(sql, d).text;
}
uint64_t Fp(std::string_view sql, Dialect d = Dialect::kPostgres) {
  return Obfuscate(sql, d).fingerprint;
}
ObfuscatedSql Unbounded(std::string_view sql, Dialect d) {
  ObfuscateOptions o;
  o.max_length = 0;
  return Obfuscate(sql, d, o);
}

TEST(DialectTest, FromDjangoVendorAndOtelSystem) {
  EXPECT_EQ(DialectFromName("postgresql"), Dialect::kPostgres);
  EXPECT_EQ(DialectFromName("PostgreSQL"), Dialect::kPostgres);
  EXPECT_EQ(DialectFromName("sqlite"), Dialect::kSqlite);
  EXPECT_EQ(DialectFromName("mysql"), Dialect::kMysql);
  EXPECT_EQ(DialectFromName("mariadb"), Dialect::kMysql);
  EXPECT_EQ(DialectFromName("oracle"), Dialect::kGeneric);
  EXPECT_EQ(DialectFromName(""), Dialect::kGeneric);
  for (Dialect d : kAllDialects) EXPECT_EQ(DialectFromName(DialectName(d)), d);
}

TEST(ObfuscatorTest, StringLiteralsInEveryQuotingStyle) {
  EXPECT_EQ(Text("SELECT 'a', 'it''s', E'\\'', e'\\\\', N'x', X'1F', x'1f', B'01', U&'\\0061'"),
            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?");
  EXPECT_EQ(Text("SELECT 'a\\', 'b'"), "SELECT ?, ?");  // standard strings in PostgreSQL
  EXPECT_EQ(Text("SELECT 'a\\', 'b'", Dialect::kSqlite), "SELECT ?, ?");
  EXPECT_EQ(Text("SELECT 'a\\'', 'b'", Dialect::kMysql), "SELECT ?, ?");
  EXPECT_EQ(Text("SELECT \"a\\\"\", \"b\"\"c\"", Dialect::kMysql), "SELECT ?, ?");
  EXPECT_EQ(Text("SELECT \"col\" FROM t", Dialect::kPostgres), "SELECT \"col\" FROM t");
  EXPECT_EQ(Text("SELECT \"col\" FROM t", Dialect::kSqlite), "SELECT \"col\" FROM t");
  EXPECT_EQ(Text("SELECT \"col\" FROM t", Dialect::kMysql), "SELECT ? FROM t");
  // E and U& prefixes exist only where the dialect has them; elsewhere the letter is a word.
  EXPECT_EQ(Text("SELECT e'x'", Dialect::kMysql), "SELECT e?");
  EXPECT_EQ(Text("SELECT U&'x'", Dialect::kSqlite), "SELECT U&?");
}

TEST(ObfuscatorTest, StringsWithNulAndNewlines) {
  const std::string sql("SELECT 'a\0b\nc' FROM t", 21);
  EXPECT_EQ(Text(sql), "SELECT ? FROM t");
}

TEST(ObfuscatorTest, Numbers) {
  EXPECT_EQ(Text("SELECT 1, 12.5, .5, 5., 1e10, 1E+3, 1.5e-3, 0x1F, 0XfF, 0b11, 0o7, 1_000"),
            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?");
  // Identifier characters glued to a number go with it.
  EXPECT_EQ(Text("SELECT 1abc, 2e, 3.x FROM t"), "SELECT ?, ?, ? FROM t");
  // Words containing digits are words.
  EXPECT_EQ(Text("SELECT t1.c2 FROM t1"), "SELECT t1.c2 FROM t1");
}

TEST(ObfuscatorTest, SignIsPartOfTheLiteralOnlyWhereUnary) {
  EXPECT_EQ(Text("SELECT -1"), "SELECT ?");
  EXPECT_EQ(Text("SELECT +1.5"), "SELECT ?");
  EXPECT_EQ(Text("SELECT -.5"), "SELECT ?");
  EXPECT_EQ(Text("SELECT a-1"), "SELECT a-?");
  EXPECT_EQ(Text("SELECT a -1"), "SELECT a -?");
  EXPECT_EQ(Text("SELECT a - -1"), "SELECT a - ?");
  EXPECT_EQ(Text("SELECT 2-1"), "SELECT ?-?");
  EXPECT_EQ(Text("SELECT (1)-1"), "SELECT (?)-?");
  EXPECT_EQ(Text("SELECT f(-1, -2)"), "SELECT f(?, ?)");
  EXPECT_EQ(Text("SELECT x WHERE a=-1 AND b<-2 OR c IS -3"),
            "SELECT x WHERE a=? AND b<? OR c IS ?");
  EXPECT_EQ(Text("SELECT CASE WHEN a THEN -1 ELSE +2 END"), "SELECT CASE WHEN a THEN ? ELSE ? END");
  EXPECT_EQ(Text("SELECT \"a\"-1, %s-1"), "SELECT \"a\"-?, %s-?");
  // The sign binds in every dialect alike, so the fingerprint ignores the sign's presence.
  EXPECT_EQ(Fp("SELECT x FROM t WHERE a = -1"), Fp("SELECT x FROM t WHERE a = 1"));
}

TEST(ObfuscatorTest, BooleansAreLiteralsNullIsNot) {
  EXPECT_EQ(Text("SELECT TRUE, false, True, NULL, null"), "SELECT ?, ?, ?, NULL, null");
  // A word that merely starts like one is a word.
  EXPECT_EQ(Text("SELECT trueish, falsey"), "SELECT trueish, falsey");
}

TEST(ObfuscatorTest, PlaceholdersAreKept) {
  EXPECT_EQ(Text("a = %s AND b = %(name)s AND c = %b AND d = %t", Dialect::kPostgres),
            "a = %s AND b = %(name)s AND c = %b AND d = %t");
  EXPECT_EQ(Text("a = $1 AND b = $12"), "a = $1 AND b = $12");
  EXPECT_EQ(Text("a = ? AND b = ?7 AND c = :n AND d = @v AND e = $v", Dialect::kSqlite),
            "a = ? AND b = ?7 AND c = :n AND d = @v AND e = $v");
  EXPECT_EQ(Text("a = ? AND b = @v AND c = @@global.x", Dialect::kMysql),
            "a = ? AND b = @v AND c = @@global.x");
  // %% is an escaped percent sign; %sfoo is no placeholder.
  EXPECT_EQ(Text("SELECT a %% b, a%size"), "SELECT a %% b, a%size");
  // A placeholder name that is not plain ASCII is replaced rather than exported.
  EXPECT_EQ(Text("a = :n\xc3\xa9", Dialect::kSqlite), "a = ?");
}

TEST(ObfuscatorTest, QuestionMarkIsAnOperatorInPostgres) {
  EXPECT_EQ(Text("SELECT d ? 'k', d ?| ARRAY['a','b'], d ?& %s FROM t", Dialect::kPostgres),
            "SELECT d ? ?, d ?| ARRAY[?], d ?& %s FROM t");
  // The operator and a literal are different tokens to the fingerprint.
  EXPECT_NE(Fp("SELECT a ? b"), Fp("SELECT a 1 b"));
  EXPECT_EQ(Text("SELECT d ? 'k'", Dialect::kSqlite), "SELECT d ? ?");
}

TEST(ObfuscatorTest, CommentsAreRemovedAndSeparate) {
  EXPECT_EQ(Text("SELECT a/**/b"), "SELECT a b");
  EXPECT_EQ(Text("SELECT a--x\nb"), "SELECT a b");
  EXPECT_EQ(Text("SELECT 1 # x\n, 2", Dialect::kMysql), "SELECT ? , ?");
  EXPECT_EQ(Text("SELECT 1 # x", Dialect::kPostgres), "SELECT ? # x");
  // Nesting: PostgreSQL and generic nest, MySQL and SQLite do not.
  EXPECT_EQ(Text("SELECT /* a /* b */ c */ 1", Dialect::kPostgres), "SELECT ?");
  EXPECT_EQ(Text("SELECT /* a /* b */ c */ 1", Dialect::kSqlite), "SELECT c */ ?");
  EXPECT_EQ(Text("SELECT /* a /* b */ c */ 1", Dialect::kGeneric), "SELECT ?");
}

TEST(ObfuscatorTest, WhitespaceIsNormalised) {
  EXPECT_EQ(Text("  SELECT\t\n a ,\r\n b  FROM   t  ;  "), "SELECT a , b FROM t ;");
  EXPECT_EQ(Fp("SELECT a,b FROM t"), Fp("SELECT\n  a ,\n  b\nFROM t"));
}

TEST(ObfuscatorTest, InListsCollapse) {
  EXPECT_EQ(Text("WHERE a IN (1, 2, 3)"), "WHERE a IN (?)");
  EXPECT_EQ(Text("WHERE a IN (1)"), "WHERE a IN (?)");
  EXPECT_EQ(Text("WHERE a NOT IN ('x','y')"), "WHERE a NOT IN (?)");
  EXPECT_EQ(Text("WHERE a in (%s, %s)"), "WHERE a in (%s)");
  EXPECT_EQ(Text("WHERE a IN ()"), "WHERE a IN ()");
  EXPECT_EQ(Text("WHERE a IN /* c */ (1, 2)"), "WHERE a IN (?)");
  EXPECT_EQ(Text("WHERE (a, b) IN ((1, 2), (3, 4))"), "WHERE (a, b) IN ((?, ?))");
  EXPECT_EQ(Text("WHERE a IN (1, f(2))"), "WHERE a IN (?, f(?))");
  EXPECT_EQ(Text("WHERE a IN (1, 2"), "WHERE a IN (?, ?");  // cut off: nothing to collapse
  EXPECT_EQ(Text("WHERE a IN (SELECT 1, 2)"), "WHERE a IN (SELECT ?, ?)");
  // An IN list inside an IN list's rejected item still collapses on its own.
  EXPECT_EQ(Text("WHERE a IN (x, (SELECT b FROM c WHERE d IN (1, 2)))"),
            "WHERE a IN (x, (SELECT b FROM c WHERE d IN (?)))");
  uint64_t one = Fp("SELECT * FROM t WHERE a IN (%s)");
  for (int n = 2; n < 50; ++n) {
    std::string sql = "SELECT * FROM t WHERE a IN (%s";
    for (int i = 1; i < n; ++i) sql += ", %s";
    sql += ")";
    EXPECT_EQ(Fp(sql), one) << n;
  }
}

TEST(ObfuscatorTest, ValuesRowsCollapse) {
  EXPECT_EQ(Text("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')"),
            "INSERT INTO t VALUES (?, ?)");
  EXPECT_EQ(Text("INSERT INTO t VALUES(1),(2);"), "INSERT INTO t VALUES(?);");
  EXPECT_EQ(Text("INSERT INTO t VALUES (1), (2) RETURNING id"),
            "INSERT INTO t VALUES (?) RETURNING id");
  // The first row's shape is kept even when later rows differ.
  EXPECT_EQ(Text("INSERT INTO t VALUES (1, DEFAULT), (now(), 2)"),
            "INSERT INTO t VALUES (?, DEFAULT)");
  // ON DUPLICATE KEY UPDATE ... VALUES(col) is a function call, not a row list.
  EXPECT_EQ(Text("INSERT INTO t (a, b) VALUES (1, 2) ON DUPLICATE KEY UPDATE a = VALUES(a), "
                 "b = VALUES(b)",
                 Dialect::kMysql),
            "INSERT INTO t (a, b) VALUES (?, ?) ON DUPLICATE KEY UPDATE a = VALUES(a), b = "
            "VALUES(b)");
  const uint64_t one = Fp("INSERT INTO t (a, b) VALUES (%s, %s)");
  std::string sql = "INSERT INTO t (a, b) VALUES (%s, %s)";
  for (int rows = 2; rows < 40; ++rows) {
    sql += ", (%s, %s)";
    EXPECT_EQ(Fp(sql), one) << rows;
  }
}

TEST(ObfuscatorTest, FingerprintIgnoresLiteralsCaseWhitespaceComments) {
  const uint64_t base = Fp("SELECT a FROM t WHERE b = 'x' AND c IN (1, 2) LIMIT 10");
  EXPECT_EQ(base, Fp("select A from T where B = 'yy' and C in (3) limit 99"));
  EXPECT_EQ(base, Fp("SELECT a /* hi */ FROM t -- there\n WHERE b = $$z$$ AND c IN (%s) LIMIT %s"));
  EXPECT_EQ(base, Fp("SELECT a FROM t WHERE b=E'\\'' AND c IN(-1.5e3,0x1,TRUE)LIMIT 1"));
  // NULL is a keyword, not a literal: IS NULL and = 1 are different shapes.
  EXPECT_NE(base, Fp("SELECT a FROM t WHERE b = NULL AND c IN (1, 2) LIMIT 10"));
}

// Fingerprints are exported and compared across processes, hosts and releases; these values
// pin the token-stream encoding and the hash so that neither changes by accident.
TEST(ObfuscatorTest, FingerprintIsStable) {
  EXPECT_EQ(Fp("SELECT \"t\".\"id\" FROM \"t\" WHERE \"t\".\"id\" IN (%s, %s) LIMIT 21"),
            0x5e5c7c9aeab444b7ull);
  EXPECT_EQ(Fp(""), 0xcd43846814136c10ull);
  for (Dialect d : kAllDialects) EXPECT_EQ(Fp("", d), Fp("  -- nothing\n", d));
}

TEST(ObfuscatorTest, FingerprintSeesStructure) {
  const uint64_t base = Fp("SELECT a FROM t WHERE b = 1");
  EXPECT_NE(base, Fp("SELECT a FROM u WHERE b = 1"));
  EXPECT_NE(base, Fp("SELECT b FROM t WHERE a = 1"));
  EXPECT_NE(base, Fp("SELECT a FROM t WHERE b > 1"));
  EXPECT_NE(base, Fp("SELECT a FROM t WHERE b = 1 AND c = 2"));
  EXPECT_NE(base, Fp("SELECT a FROM t WHERE b = c"));
  EXPECT_NE(base, Fp("SELECT \"a\" FROM t WHERE b = 1"));
  EXPECT_NE(Fp("SELECT \"A\" FROM t"), Fp("SELECT \"a\" FROM t"));  // quoted: case matters
  EXPECT_NE(Fp("SELECT ab FROM t"), Fp("SELECT a b FROM t"));
  EXPECT_NE(Fp("SELECT a.b FROM t"), Fp("SELECT a b FROM t"));
  EXPECT_NE(Fp("SELECT a FROM t WHERE x IN (1)"), Fp("SELECT a FROM t WHERE x IN (1, y)"));
}

TEST(ObfuscatorTest, SummaryOperations) {
  struct Case {
    const char* sql;
    const char* operation;
    const char* table;
  } cases[] = {
      {"select * from orders", "SELECT", "orders"},
      {"SELECT * FROM orders o JOIN items i ON i.o = o.id", "SELECT", "orders"},
      {"SELECT * FROM a, b", "SELECT", "a"},
      {"SELECT (SELECT max(x) FROM inner_t) FROM outer_t", "SELECT", "outer_t"},
      {"SELECT 1", "SELECT", ""},
      {"SELECT * FROM (SELECT * FROM (SELECT * FROM deep) a) b", "SELECT", "deep"},
      {"SELECT * FROM LATERAL f(x)", "SELECT", ""},
      {"insert into \"x\".\"y\" values (1)", "INSERT", "x.y"},
      {"INSERT INTO t SELECT * FROM u", "INSERT", "t"},
      {"UPDATE t SET a = 1", "UPDATE", "t"},
      {"UPDATE ONLY s.t SET a = 1", "UPDATE", "s.t"},
      {"DELETE FROM t", "DELETE", "t"},
      {"DELETE FROM", "DELETE", ""},
      {"WITH x AS (SELECT 1) UPDATE t SET a = (SELECT * FROM x)", "UPDATE", "t"},
      {"WITH x AS (SELECT * FROM a)", "WITH", ""},
      {"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "MERGE", "t"},
      {"BEGIN", "BEGIN", ""},
      {"begin transaction", "BEGIN", ""},
      {"COMMIT", "COMMIT", ""},
      {"ROLLBACK TO SAVEPOINT s1", "ROLLBACK", ""},
      {"VACUUM", "VACUUM", ""},
      {"  \n-- c\n/* d */ SELECT * FROM t", "SELECT", "t"},
      {"((SELECT * FROM t))", "SELECT", "t"},
      {"(SELECT * FROM t) UNION (SELECT * FROM u)", "SELECT", "t"},
      {"123", "", ""},
      {"\"quoted\" stuff", "", ""},
      {"sel3ct * from t", "", ""},
      {"", "", ""},
      {"SELECT * FROM t.", "SELECT", "t"},
      {"SELECT * FROM %s", "SELECT", ""},
  };
  for (const auto& c : cases) {
    const ObfuscatedSql r = Obfuscate(c.sql, Dialect::kPostgres);
    EXPECT_EQ(r.operation, c.operation) << c.sql;
    EXPECT_EQ(r.table, c.table) << c.sql;
    EXPECT_EQ(r.summary,
              *c.table ? std::string(c.operation) + " " + c.table : std::string(c.operation))
        << c.sql;
  }
}

TEST(ObfuscatorTest, OverlongTableAndOperationAreDropped) {
  const std::string long_name(300, 'n');
  ObfuscatedSql r = Obfuscate("SELECT * FROM " + long_name, Dialect::kPostgres);
  EXPECT_EQ(r.table, "");
  EXPECT_EQ(r.summary, "SELECT");
  r = Obfuscate("SELECT * FROM s." + long_name, Dialect::kPostgres);
  EXPECT_EQ(r.table, "");
  r = Obfuscate(std::string(40, 'X') + " a", Dialect::kPostgres);
  EXPECT_EQ(r.operation, "");
}

TEST(ObfuscatorTest, InvalidUtf8BecomesReplacementCharacter) {
  // A lone continuation byte, an overlong encoding, a surrogate and a cut sequence.
  const std::string sql = "SELECT a\x80 b, \"q\xc0\xaf\", c\xed\xa0\x80, d\xe2\x82 FROM t\xf5";
  for (Dialect d : kAllDialects) {
    const ObfuscatedSql r = Obfuscate(sql, d);
    EXPECT_TRUE(IsValidUtf8(r.text)) << r.text;
    EXPECT_TRUE(IsValidUtf8(r.table));
  }
  EXPECT_EQ(Text("SELECT a\x80 FROM t"), "SELECT a\xef\xbf\xbd FROM t");
  EXPECT_EQ(Text("SELECT \"\xff\" FROM t"), "SELECT \"\xef\xbf\xbd\" FROM t");
  // Valid multi-byte text is kept as is.
  EXPECT_EQ(Text("SELECT \xe2\x98\x83, \"\xf0\x9f\x98\x80\""),
            "SELECT \xe2\x98\x83, \"\xf0\x9f\x98\x80\"");
}

TEST(ObfuscatorTest, ControlBytesAreDroppedOrReplaced) {
  EXPECT_EQ(Text(std::string("SELECT\0a\x01\x7f"
                             "b",
                             12)),
            "SELECT a b");
  EXPECT_EQ(Text("SELECT \"a\x01"
                 "b\" FROM t"),
            "SELECT \"a\xef\xbf\xbd"
            "b\" FROM t");
  const ObfuscatedSql r = Obfuscate("SELECT * FROM \"a\x02\"", Dialect::kPostgres);
  EXPECT_EQ(r.table, "a\xef\xbf\xbd");
}

TEST(ObfuscatorTest, UnterminatedConstructsHideTheRest) {
  for (Dialect d : kAllDialects) {
    EXPECT_EQ(Text("SELECT 'abc FROM t", d), "SELECT ?") << DialectName(d);
    EXPECT_EQ(Text("SELECT a FROM t WHERE b = 'x\\", d), "SELECT a FROM t WHERE b = ?");
    EXPECT_EQ(Text("SELECT a /* b", d), "SELECT a");
    EXPECT_EQ(Text("SELECT a -- b", d), "SELECT a");
  }
  EXPECT_EQ(Text("SELECT \"abc FROM t", Dialect::kPostgres), "SELECT ?");
  EXPECT_EQ(Text("SELECT `abc FROM t", Dialect::kMysql), "SELECT ?");
  EXPECT_EQ(Text("SELECT [abc FROM t", Dialect::kSqlite), "SELECT ?");
  EXPECT_EQ(Text("SELECT $a$ abc $b$", Dialect::kPostgres), "SELECT ?");
  EXPECT_EQ(Text("SELECT $$", Dialect::kPostgres), "SELECT ?");
  EXPECT_EQ(Text("SELECT $", Dialect::kPostgres), "SELECT $");
  EXPECT_EQ(Text("SELECT %(abc", Dialect::kPostgres), "SELECT %(abc");
  // A dollar tag longer than any real one: hidden, and no quadratic search for its end.
  const std::string tag = "$" + std::string(100, 't') + "$";
  EXPECT_EQ(Text("SELECT " + tag + " secret " + tag + " FROM t"), "SELECT ?");
  std::string many = "SELECT $" + std::string(60, 't') + "$";
  for (int i = 0; i < 100000; ++i) many += "$" + std::string(59, 't');
  EXPECT_EQ(Text(many), "SELECT ?");
}

TEST(ObfuscatorTest, Truncation) {
  const std::string sql = "SELECT alpha, beta, gamma, delta FROM t WHERE x = 'literal'";
  const std::string full = Unbounded(sql, Dialect::kPostgres).text;
  for (size_t max = 1; max <= full.size() + 2; ++max) {
    ObfuscateOptions o;
    o.max_length = max;
    const ObfuscatedSql r = Obfuscate(sql, Dialect::kPostgres, o);
    EXPECT_LE(r.text.size(), std::max<size_t>(max, kTruncationMarker.size())) << max;
    EXPECT_EQ(r.fingerprint, Unbounded(sql, Dialect::kPostgres).fingerprint);
    EXPECT_EQ(r.summary, "SELECT t");
    if (max >= full.size()) {
      EXPECT_FALSE(r.truncated);
      EXPECT_EQ(r.text, full);
      continue;
    }
    ASSERT_TRUE(r.truncated) << max;
    ASSERT_GE(r.text.size(), kTruncationMarker.size());
    const std::string kept = r.text.substr(0, r.text.size() - kTruncationMarker.size());
    EXPECT_EQ(r.text.substr(kept.size()), kTruncationMarker);
    // A prefix of the full text that ends where a token ends.
    EXPECT_EQ(full.compare(0, kept.size(), kept), 0) << kept;
    if (!kept.empty()) {
      const char next = full[kept.size()];
      const char last = kept.back();
      EXPECT_TRUE(next == ' ' || next == ',' || last == ',' || next == '.' || last == '.' ||
                  next == '=' || last == '=')
          << "cut inside a token: " << kept << "|" << full.substr(kept.size());
    }
  }
}

TEST(ObfuscatorTest, TruncationNeverSplitsMultiByteCharacters) {
  std::string sql = "SELECT ";
  for (int i = 0; i < 50; ++i) sql += "\"\xe2\x98\x83\xe2\x98\x83\", ";
  sql += "1";
  for (size_t max = 3; max < 120; ++max) {
    ObfuscateOptions o;
    o.max_length = max;
    const ObfuscatedSql r = Obfuscate(sql, Dialect::kPostgres, o);
    EXPECT_TRUE(IsValidUtf8(r.text));
    EXPECT_LE(r.text.size(), max);
  }
}

TEST(ObfuscatorTest, HugeInputsStayBoundedAndLinear) {
  std::string sql = "SELECT * FROM t WHERE id IN (";
  for (int i = 0; i < 200000; ++i) sql += (i ? ", " : "") + std::to_string(i);
  sql += ") AND name = 'x'";
  const auto start = std::chrono::steady_clock::now();
  const ObfuscatedSql r = Obfuscate(sql, Dialect::kPostgres);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  EXPECT_EQ(r.text, "SELECT * FROM t WHERE id IN (?) AND name = ?");
  EXPECT_FALSE(r.truncated);
  EXPECT_LT(ms, 2000);  // generous: the point is that it is not quadratic
  EXPECT_EQ(Unbounded(sql, Dialect::kPostgres).text, r.text);
}

// Statements far larger than any internal buffer: the fingerprint still sees every token.
TEST(ObfuscatorTest, LongStatementsKeepFullFingerprints) {
  std::string a = "SELECT ", b = "select\n";
  for (int i = 0; i < 20000; ++i) {
    a += "\"column_" + std::to_string(i) + "\", c" + std::to_string(i) + ", ";
    b += "\"column_" + std::to_string(i) + "\" , C" + std::to_string(i) + " /* x */ ,\n";
  }
  a += "1 FROM t";
  b += "2 from t";
  EXPECT_EQ(Fp(a), Fp(b));
  std::string c = a;
  c[c.size() / 2] = c[c.size() / 2] == '1' ? '2' : '1';  // one digit inside one name
  EXPECT_NE(Fp(a), Fp(c));
  EXPECT_NE(Fp(a), Fp(a.substr(0, a.size() - 8) + " FROM u"));
}

TEST(ObfuscatorTest, DeepNestingIsHandled) {
  std::string sql = "SELECT ";
  for (int i = 0; i < 100; ++i) sql += "(";
  sql += "1";
  for (int i = 0; i < 100; ++i) sql += ")";
  sql += " FROM t WHERE a IN (1, 2)";
  const ObfuscatedSql r = Obfuscate(sql, Dialect::kPostgres);
  EXPECT_EQ(r.text, "SELECT " + std::string(100, '(') + "?" + std::string(100, ')') +
                        " FROM t WHERE a IN (?)");
  EXPECT_EQ(r.table, "t");
  // Unbalanced closers do not confuse what follows.
  EXPECT_EQ(Text(")))) SELECT a IN (1, 2)"), ")))) SELECT a IN (?)");
}

TEST(ObfuscatorTest, OutputStructIsReused) {
  ObfuscatedSql out;
  Obfuscate("INSERT INTO big_table VALUES (1)", Dialect::kPostgres, {}, out);
  EXPECT_EQ(out.table, "big_table");
  ObfuscateOptions tiny;
  tiny.max_length = 8;
  Obfuscate("SELECT aaaa, bbbb, cccc", Dialect::kPostgres, tiny, out);
  EXPECT_TRUE(out.truncated);
  Obfuscate("BEGIN", Dialect::kPostgres, {}, out);
  EXPECT_EQ(out.text, "BEGIN");
  EXPECT_EQ(out.table, "");
  EXPECT_EQ(out.summary, "BEGIN");
  EXPECT_FALSE(out.truncated);
  EXPECT_EQ(out.fingerprint, Fp("BEGIN"));
}

// Obfuscating the output again changes nothing: a property the exporter and the fuzzer rely on
// to know that no second reading of our own output would expose anything new.
TEST(ObfuscatorTest, IdempotentOnTrickyInputs) {
  const char* inputs[] = {
      "SELECT 'a'1, 'b'abc, 1'c', x'1'y, e'\\''e, N'x'N, $1$2, ?1?2, :a:b, @a@b",
      "SELECT a.5, 1..2, 1.e5, .e5, 0x, 0xg, 1e+, --x\n1",
      "SELECT a-/**/-1, a/**/-1, -/**/1, +-1, -+1",
      "SELECT a IN (1, 2) IN (3, 4), VALUES (1), (2), (3)",
      "INSERT INTO t VALUES (1), (2) , x",
      "INSERT INTO t VALUES (1), (2) (3)",
      "SELECT $a$b$a$c$, $$ $ $$, $a$$a$, $ 1",
      "SELECT U&'x', U&\"y\", u&'z' UESCAPE '!'",
      "SELECT \"a\"\"b\", `c``d`, [e]]f]",
      "SELECT %s%s, %%s, %(a)s%(b)s, %(a b)s, %()s",
      "SELECT ARRAY[1, 2][1], ARRAY[[1], [2]], ARRAY[]",
      "SELECT \xe2\x98\x83\x80\xff 'x' \x01\x02",
      "SELECT ?, ??, ?|, ?-1, ? -1",
      "SELECT 1 -- c\n-2, 3/**/4",
  };
  for (Dialect d : kAllDialects) {
    for (const char* sql : inputs) {
      const ObfuscatedSql once = Unbounded(sql, d);
      const ObfuscatedSql twice = Unbounded(once.text, d);
      EXPECT_EQ(twice.text, once.text) << DialectName(d) << ": " << sql;
    }
  }
}

// Random byte soup from the SQL alphabet: never crashes, always valid UTF-8, bounded and
// idempotent. The libFuzzer target explores further; this keeps a floor in every test run.
TEST(ObfuscatorTest, RandomInputsKeepTheInvariants) {
  static const char kAlphabet[] =
      "abcSELECTinINvaluesVALUESarrayARRAYtrue0123456789xXeEbBnNuU_$@#%?:;.,()[]{}'\"`\\-+*/"
      "=<>!|&^~ \t\n\r\x01\x80\xc3\xa9\xe2\x98\x83\xff";
  std::mt19937 rng(12345);
  std::uniform_int_distribution<size_t> pick(0, sizeof kAlphabet - 2);
  std::uniform_int_distribution<size_t> length(0, 80);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string sql;
    const size_t n = length(rng);
    for (size_t i = 0; i < n; ++i) sql += kAlphabet[pick(rng)];
    for (Dialect d : kAllDialects) {
      ObfuscateOptions o;
      o.max_length = 40;
      const ObfuscatedSql r = Obfuscate(sql, d, o);
      ASSERT_TRUE(IsValidUtf8(r.text)) << sql;
      ASSERT_TRUE(IsValidUtf8(r.summary)) << sql;
      ASSERT_LE(r.text.size(), 40u);
      for (char c : r.text) ASSERT_GE(static_cast<unsigned char>(c), 0x20) << sql;
      const ObfuscatedSql full = Unbounded(sql, d);
      ASSERT_EQ(full.fingerprint, r.fingerprint);
      ASSERT_EQ(Unbounded(full.text, d).text, full.text) << DialectName(d) << ": " << sql;
    }
  }
}

// Figures for the report; run with --gtest_also_run_disabled_tests.
TEST(ObfuscatorPerf, DISABLED_Throughput) {
  const std::string orm =
      "SELECT \"shop_order\".\"id\", \"shop_order\".\"customer_id\", \"shop_order\".\"total\", "
      "\"shop_order\".\"status\", \"shop_order\".\"created_at\" FROM \"shop_order\" INNER JOIN "
      "\"shop_customer\" ON (\"shop_order\".\"customer_id\" = \"shop_customer\".\"id\") WHERE "
      "(\"shop_customer\".\"email\" = %s AND \"shop_order\".\"status\" IN (%s, %s, %s)) ORDER "
      "BY \"shop_order\".\"created_at\" DESC LIMIT 21";
  std::string literal_heavy;
  for (int i = 0; i < 2000; ++i)
    literal_heavy += "INSERT INTO t (a, b, c) VALUES (" + std::to_string(i * 7919) +
                     ", 'some string value " + std::to_string(i) + "', 3.25e-2);\n";
  ObfuscatedSql out;
  for (const auto& [name, sql, iters] :
       {std::tuple<const char*, const std::string&, int>{"orm query", orm, 200000},
        {"literal-heavy script", literal_heavy, 200}}) {
    for (Dialect d : {Dialect::kPostgres, Dialect::kMysql}) {
      ObfuscateOptions unbounded;
      unbounded.max_length = 0;
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) Obfuscate(sql, d, unbounded, out);
      const double ns =
          std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
              .count() /
          iters;
      std::printf("%-22s %-10s %6zu bytes  %9.0f ns/op  %7.1f MB/s\n", name,
                  std::string(DialectName(d)).c_str(), sql.size(), ns, sql.size() / ns * 1e3);
    }
  }
}

}  // namespace
}  // namespace djtrace::sql
