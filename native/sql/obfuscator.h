// SQL obfuscation, fingerprint and summary for database client spans.
//
// One forward pass over the statement text (no regular expressions, no backtracking) turns
//   SELECT "orders"."id" FROM "orders" WHERE "orders"."email" = 'a@b.c' AND "id" IN (1, 2, 3)
// into
//   text:        SELECT "orders"."id" FROM "orders" WHERE "orders"."email" = ? AND "id" IN (?)
//   operation:   SELECT
//   table:       orders
//   summary:     SELECT orders                    (the span name)
//   fingerprint: a 64-bit hash of the normalised token stream
//
// Every literal (strings in all their quoting styles, numbers, booleans, hex/bit/blob strings,
// dollar-quoted bodies) becomes `?`; placeholders (%s, %(name)s, ?, ?1, $1, :name) are kept;
// comments go; whitespace runs become one space; `IN (...)` value lists and multi-row VALUES
// lists collapse to their first item so that the fingerprint does not depend on their length.
//
// Input is untrusted and may be garbled or cut: an unterminated literal or quoted identifier
// swallows the rest of the text into one `?` (nothing after the break is exported verbatim),
// bytes that are neither identifier, punctuation nor whitespace are dropped, and invalid UTF-8
// in identifiers becomes U+FFFD, so the text is always valid UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace djtrace::sql {

// How the statement is lexed. The dialects differ in what a double quote, a backslash, `?`,
// `#`, `$`, `@`, `[` and a backtick mean.
enum class Dialect : uint8_t {
  // For unknown servers, read cautiously: "..." and `...` identifiers, nested block comments,
  // $tag$ bodies; a '...' string on whose end the standard and the backslash-escape readings
  // disagree hides the rest of the statement (either reading could be the server's).
  kGeneric = 0,
  // "..." identifiers; '...' strings without backslash escapes (standard_conforming_strings),
  // E'...' with them; $$ bodies; nested /* */; `?`, `?|`, `?&` and `#` are operators.
  kPostgres = 1,
  // "...", `...` and [...] identifiers; no backslash escapes; ?, ?NNN, :name, @name, $name.
  kSqlite = 2,
  // `...` identifiers; "..." and '...' strings, both with backslash escapes; # comments; @var.
  kMysql = 3,
};

// The dialect for a Django `connection.vendor` or an OpenTelemetry `db.system` value:
// "postgresql", "sqlite", "mysql", "mariadb"; anything else is kGeneric.
Dialect DialectFromName(std::string_view name) noexcept;
std::string_view DialectName(Dialect dialect) noexcept;

struct ObfuscateOptions {
  // Upper bound on ObfuscatedSql::text in bytes, marker included; 0 means unbounded. A longer
  // result is cut after the last whole token that fits and ends in kTruncationMarker. Values
  // below the marker's length behave as the marker's length.
  size_t max_length = 4096;
};

inline constexpr std::string_view kTruncationMarker = "...";

struct ObfuscatedSql {
  // The statement with literals replaced, comments removed and whitespace normalised.
  std::string text;
  // Upper-case first keyword of the statement ("SELECT", "INSERT", "BEGIN", "SAVEPOINT"...),
  // the main statement's keyword for WITH ... queries; empty when the text starts with
  // something other than a keyword.
  std::string operation;
  // The main table, unquoted, schema-qualified as written ("public.orders"): SELECT ... FROM t
  // (looking into a FROM (subquery) if that is what follows FROM), INSERT INTO t, UPDATE t,
  // DELETE FROM t, MERGE INTO t. Empty when there is none.
  std::string table;
  // "{operation} {table}", or just the operation; meant as the span name.
  std::string summary;
  // Equal for statements that differ only in literal values, placeholder style, the length of
  // IN lists, the number of VALUES rows, whitespace, comments and the case of unquoted words.
  // Computed over the whole statement even when `text` is truncated.
  uint64_t fingerprint = 0;
  // `text` was cut to ObfuscateOptions::max_length.
  bool truncated = false;
};

// Obfuscates `sql`. Never fails; any byte string is accepted. Reuses the capacity of `out`.
void Obfuscate(std::string_view sql, Dialect dialect, const ObfuscateOptions& options,
               ObfuscatedSql& out) noexcept;

inline ObfuscatedSql Obfuscate(std::string_view sql, Dialect dialect,
                               const ObfuscateOptions& options = {}) noexcept {
  ObfuscatedSql out;
  Obfuscate(sql, dialect, options, out);
  return out;
}

}  // namespace djtrace::sql
