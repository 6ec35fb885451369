// Redaction of query strings, URLs and free text (http/url.h). The expected strings are what
// the former Python implementation (djtrace.integrations.redaction before the move) returns for
// the same input; tests/integrations/test_redaction_native.py compares the two on generated
// inputs as well.
#include "http/url.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace djtrace::http {
namespace {

using Redact = bool (*)(std::string_view, std::string*);

struct Case {
  std::string_view in;
  std::string_view want;
};

// Checks one function on a table: the output when something changes, and a false return with
// `out` untouched when nothing does. Also checks that redacting the output changes nothing.
void ExpectCases(Redact redact, const char* name, std::initializer_list<Case> cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(name) + "(\"" + std::string(c.in) + "\")");
    std::string out = "untouched";
    const bool changed = redact(c.in, &out);
    if (c.in == c.want) {
      EXPECT_FALSE(changed);
      EXPECT_EQ(out, "untouched");
    } else {
      EXPECT_TRUE(changed);
      EXPECT_EQ(out, c.want);
      std::string again = "untouched";
      EXPECT_FALSE(redact(out, &again));
      EXPECT_EQ(again, "untouched");
    }
  }
}

TEST(UrlTest, SensitiveNames) {
  for (std::string_view key : {"password",
                               "PASSWORD",
                               "user_password",
                               "passwd",
                               "secret",
                               "client_secret",
                               "api_key",
                               "api-key",
                               "apikey",
                               "API-KEY",
                               "PRIVATE-KEY",
                               "token",
                               "access_token",
                               "auth",
                               "auth_",
                               "auth_code",
                               "Auth-x",
                               "authorization",
                               "sessionid",
                               "sessions",
                               "csrfmiddlewaretoken",
                               "sig",
                               "Signature",
                               "X-Goog-Signature",
                               "x_goog_signature",
                               "AWSAccessKeyId",
                               "key",
                               "jwt",
                               "private_key",
                               "credentials",
                               "code-verifier",
                               "\xC3\xA9password"}) {
    EXPECT_TRUE(IsSensitiveParameterName(key)) << key;
  }
  for (std::string_view key : {"", "q", "page", "author", "design", "limit", "name", "keyword",
                               "monkey", "footprint", "id", "codeverifier", "passe", "p-ass"}) {
    EXPECT_FALSE(IsSensitiveParameterName(key)) << key;
  }
}

TEST(UrlTest, NamesAreTrimmedOfUnicodeWhitespace) {
  // str.strip() removes Unicode whitespace at both ends, not only ASCII.
  EXPECT_TRUE(IsSensitiveParameterName(" pass "));
  EXPECT_TRUE(IsSensitiveParameterName("\tpass\r\n\v\f"));
  EXPECT_TRUE(IsSensitiveParameterName("\xC2\xA0pass\xE3\x80\x80"));     // U+00A0, U+3000
  EXPECT_TRUE(IsSensitiveParameterName("\xC2\x85pin\x1C"));              // U+0085, U+001C
  EXPECT_TRUE(IsSensitiveParameterName("\xE1\x9A\x80pwd\xE2\x80\x8A"));  // U+1680, U+200A
  EXPECT_TRUE(IsSensitiveParameterName("\xE2\x80\xA8otp\xE2\x80\xA9"));  // U+2028, U+2029
  EXPECT_TRUE(IsSensitiveParameterName("\xE2\x80\xAFsig\xE2\x81\x9F"));  // U+202F, U+205F
  // U+200B ZERO WIDTH SPACE is not whitespace for Python.
  EXPECT_FALSE(IsSensitiveParameterName("\xE2\x80\x8Bpin"));
  EXPECT_FALSE(IsSensitiveParameterName("pass\xE2\x80\x8B"));
  // Whitespace inside the key stays.
  EXPECT_FALSE(IsSensitiveParameterName("pa ss"));
  // Only whitespace, or a truncated whitespace character.
  EXPECT_FALSE(IsSensitiveParameterName(" \xC2\xA0 "));
  EXPECT_FALSE(IsSensitiveParameterName("pin\xC2"));
  EXPECT_FALSE(IsSensitiveParameterName("\xE2\x80pin"));
}

TEST(UrlTest, NamesAreLowerCasedAsPythonDoes) {
  // U+212A KELVIN SIGN lower-cases to an ASCII 'k' in Python.
  EXPECT_TRUE(
      IsSensitiveParameterName("\xE2\x84\xAA"
                               "ey"));
  EXPECT_TRUE(
      IsSensitiveParameterName("api_\xE2\x84\xAA"
                               "EY"));
  EXPECT_TRUE(
      IsSensitiveParameterName("to\xE2\x84\xAA"
                               "en"));
  // U+0130 lower-cases to "i" + U+0307, which no word can match.
  EXPECT_FALSE(IsSensitiveParameterName("\xC4\xB0"));
  EXPECT_FALSE(IsSensitiveParameterName("p\xC4\xB0n"));
  EXPECT_FALSE(IsSensitiveParameterName("s\xC4\xB0gnature"));
}

TEST(UrlTest, QueryString) {
  ExpectCases(RedactQueryString, "RedactQueryString",
              {
                  {"", ""},
                  {"a", "a"},
                  {"a=1", "a=1"},
                  {"=", "="},
                  {"=x", "=x"},
                  {"password", "password"},    // no '='
                  {"password=", "password="},  // empty values stay empty
                  {"password=x", "password=REDACTED"},
                  {"a=1&password=x&token=&sig=y", "a=1&password=REDACTED&token=&sig=REDACTED"},
                  {"pass=1&pass=2&pass=", "pass=REDACTED&pass=REDACTED&pass="},
                  {"password=REDACTED", "password=REDACTED"},
                  {"token==x", "token=REDACTED"},  // the value is everything after the first '='
                  {"token=a=b", "token=REDACTED"},
                  {"&&token=x&&", "&&token=REDACTED&&"},
                  {"key=%26", "key=REDACTED"},
                  {"key=a#frag", "key=REDACTED"},  // a query string has no fragment
              });
}

TEST(UrlTest, QueryKeysArePercentDecoded) {
  ExpectCases(RedactQueryString, "RedactQueryString",
              {
                  {"pass%77ord=x", "pass%77ord=REDACTED"},
                  {"pass%77ord=x&pass%7=y", "pass%77ord=REDACTED&pass%7=y"},
                  {"api%5fkey=x&api-key=y&API_KEY=z",
                   "api%5fkey=REDACTED&api-key=REDACTED&API_KEY=REDACTED"},
                  {"pass+word=x", "pass+word=x"},   // '+' is a space
                  {"+pass+=x", "+pass+=REDACTED"},  // ... which the key test trims
                  {"%20pass=x", "%20pass=REDACTED"},
                  {"%C2%A0pwd%E2%80%80=x", "%C2%A0pwd%E2%80%80=REDACTED"},
                  {"%E2%84%AAey=x", "%E2%84%AAey=REDACTED"},  // KELVIN SIGN
                  {"%4Bey=x", "%4Bey=REDACTED"},
                  {"pass%=x", "pass%=x"},  // an invalid escape is kept as it is
                  {"%%70ass=x", "%%70ass=x"},
                  {"%zzkey=x", "%zzkey=x"},
                  {"key%=x", "key%=x"},
              });
}

TEST(UrlTest, QueryNonAscii) {
  ExpectCases(RedactQueryString, "RedactQueryString",
              {
                  {"caf\xC3\xA9=1&s\xC3\xA9ssion=2&session=\xC3\xA9",
                   "caf\xC3\xA9=1&s\xC3\xA9ssion=2&session=REDACTED"},
                  // Invalid UTF-8: kept byte for byte, never whitespace, never a letter.
                  {"token=\xFF\xFE&\xFFkey=1&pin\xC3=2&\xE2\x84pin=3&pin=\xC3",
                   "token=REDACTED&\xFFkey=1&pin\xC3=2&\xE2\x84pin=3&pin=REDACTED"},
                  {"%FFkey=1&key%C3=2", "%FFkey=1&key%C3=2"},
              });
}

TEST(UrlTest, Url) {
  ExpectCases(RedactUrl, "RedactUrl",
              {
                  {"", ""},
                  {"REDACTED", "REDACTED"},
                  {"http://example.com/path", "http://example.com/path"},
                  {"https://u:p@example.com:8443/a?b=1&token=t#frag",
                   "https://REDACTED:REDACTED@example.com:8443/a?b=1&token=REDACTED#frag"},
                  {"http://user@host/", "http://REDACTED:REDACTED@host/"},  // no password
                  {"http://%75ser:pa%73s@h/", "http://REDACTED:REDACTED@h/"},
                  {"http://u@h:1#f@g", "http://REDACTED:REDACTED@h:1#f@g"},
                  {"http://a@b@c/", "http://REDACTED:REDACTED@c/"},  // up to the last '@'
                  {"http://a:b@", "http://REDACTED:REDACTED@"},
                  {"x://u:p@h", "x://REDACTED:REDACTED@h"},
                  {"redis://:secret@cache:6379/0", "redis://REDACTED:REDACTED@cache:6379/0"},
                  {"http://REDACTED:REDACTED@h/?token=REDACTED",
                   "http://REDACTED:REDACTED@h/?token=REDACTED"},
                  {"http://u:p@h?pin=", "http://REDACTED:REDACTED@h?pin="},
                  {"/relative?key=v", "/relative?key=REDACTED"},
                  {"?key=1&b=2", "?key=REDACTED&b=2"},
                  {"mailto:a@b?token=1", "mailto:a@b?token=REDACTED"},  // no "://": no authority
                  {"://u:p@h/?key=1", "://u:p@h/?key=REDACTED"},        // "://" at 0: no scheme
              });
}

TEST(UrlTest, UrlIpv6Hosts) {
  ExpectCases(RedactUrl, "RedactUrl",
              {
                  {"http://[::1]:8080/?pwd=1", "http://[::1]:8080/?pwd=REDACTED"},
                  {"http://u:p@[::1]:8080/", "http://REDACTED:REDACTED@[::1]:8080/"},
                  {"http://[fe80::1%25eth0]/", "http://[fe80::1%25eth0]/"},
              });
}

TEST(UrlTest, UrlAtOutsideTheAuthority) {
  // Only the authority's userinfo is credentials: the authority ends at the first '/', '?' or
  // '#' after "://".
  ExpectCases(RedactUrl, "RedactUrl",
              {
                  {"http://h/p@ath?x=a@b&key=c@d", "http://h/p@ath?x=a@b&key=REDACTED"},
                  {"http://h?next=http://u:p@i/", "http://h?next=http://u:p@i/"},
                  {"http://h#u:p@i", "http://h#u:p@i"},
                  {"a?b://c@d/?key=1", "a?b://REDACTED:REDACTED@d/?key=1"},
              });
}

TEST(UrlTest, UrlFragments) {
  // The query ends at the first '#' after the first '?'; the fragment is kept whole.
  ExpectCases(RedactUrl, "RedactUrl",
              {
                  {"http://h#x?key=1", "http://h#x?key=REDACTED"},
                  {"http://h/?key=1#a?pass=2", "http://h/?key=REDACTED#a?pass=2"},
                  {"http://h/?key=#", "http://h/?key=#"},
                  {"http://h/?#key=1", "http://h/?#key=1"},
                  {"http://h//x?key=//y", "http://h//x?key=REDACTED"},
              });
}

TEST(UrlTest, Text) {
  ExpectCases(
      RedactText, "RedactText",
      {
          {"", ""},
          {"plain text", "plain text"},
          {"token=abc", "token=REDACTED"},
          {"token:abc", "token:REDACTED"},  // key:value
          {"connect postgres://admin:pw@db/x then token=abc and q=1",
           "connect postgres://REDACTED:REDACTED@db/x then token=REDACTED and q=1"},
          {"user:42:token=abc123", "user:42:token=REDACTED"},
          {"api_key: 1234", "api_key: 1234"},  // no value right after the separator
          {"key=a,pass=b;pin=c&otp=d", "key=REDACTED,pass=REDACTED;pin=REDACTED&otp=REDACTED"},
          {"a.b-c_d.token=x", "a.b-c_d.token=REDACTED"},
          {"token=x=y", "token=REDACTED=y"},
          {"pwd=1:2", "pwd=REDACTED:2"},
          {"sessionid=abc\ttoken=def\nkey=ghi", "sessionid=REDACTED\ttoken=REDACTED\nkey=REDACTED"},
          {"password=\"x\" key='y'", "password=\"x\" key='y'"},
          {"\xE2\x84\xAA"
           "ey=1",
           "\xE2\x84\xAA"
           "ey=1"},  // the key is ASCII: "ey"
      });
}

TEST(UrlTest, TextKeepsRedactedValuesAndUrlRests) {
  ExpectCases(RedactText, "RedactText",
              {
                  {"key=REDACTED", "key=REDACTED"},
                  {"key=//host/x", "key=//host/x"},  // "scheme://..." seen as a pair
                  {"key=REDACTEDX", "key=REDACTED"},
                  {"key=/x", "key=REDACTED"},
                  // A URL's redacted query value keeps the fragment after it; other values
                  // that hold a '#' are redacted whole.
                  {"https://h/p?a=1&token=z#sec", "https://h/p?a=1&token=REDACTED#sec"},
                  {"token=REDACTED#password=x", "token=REDACTED#password=REDACTED"},
                  {"password=ab#cd", "password=REDACTED"},
                  {"password=REDACTEDab#cd", "password=REDACTED"},
              });
}

TEST(UrlTest, UrlsInText) {
  ExpectCases(
      RedactText, "RedactText",
      {
          {"see 'http://u:p@h/?key=1' now", "see 'http://REDACTED:REDACTED@h/?key=REDACTED' now"},
          // The URL ends at '>', but the pair "key=REDACTED>" then takes the '>' with it, as the
          // Python did.
          {"<http://u:p@h/?key=1>\"https://a@b\"",
           "<http://REDACTED:REDACTED@h/?key=REDACTED\"https://REDACTED:REDACTED@b\""},
          {"<http://u:p@h/?a=1>", "<http://REDACTED:REDACTED@h/?a=1>"},
          {"1http://u@h", "1http://REDACTED:REDACTED@h"},  // the scheme starts at a letter
          {"-http://u@h", "-http://REDACTED:REDACTED@h"},
          {"h+t.t-p://u@h", "h+t.t-p://REDACTED:REDACTED@h"},
          {"http:// u@h", "http:// u@h"},  // nothing after "://"
          {"http://", "http://"},
          {"x=http://u:p@h/?token=1", "x=http://REDACTED:REDACTED@h/?token=REDACTED"},
          {"pwd=+a://u@h", "pwd=REDACTED://REDACTED:REDACTED@h"},
          {"http://u@h\xC2\xA0http://v@i",
           "http://REDACTED:REDACTED@h\xC2\xA0http://REDACTED:REDACTED@i"},
          // The fragment after a URL's redacted query value is kept.
          {"http://h/?a=1&token=2#x token=3", "http://h/?a=1&token=REDACTED#x token=REDACTED"},
      });
}

TEST(UrlTest, TextUnicodeWhitespaceEndsValues) {
  ExpectCases(
      RedactText, "RedactText",
      {
          {"password=\xC3\xA9\xC3\xA9 secret=\xC2\xA0x", "password=REDACTED secret=\xC2\xA0x"},
          {"token=a\xC2\xA0"
           "b token=a\xE2\x80\x80"
           "b token=a\xE3\x80\x80"
           "b token=a\xC2\x85"
           "b",
           "token=REDACTED\xC2\xA0"
           "b token=REDACTED\xE2\x80\x80"
           "b token=REDACTED\xE3\x80\x80"
           "b token=REDACTED\xC2\x85"
           "b"},
          {"token=a\x1F"
           "b",
           "token=REDACTED\x1F"
           "b"},
          {"token=a\xE2\x80\x8B"
           "b",
           "token=REDACTED"},  // U+200B is not whitespace
          {"token=caf\xC3\xA9\xC3\xA9", "token=REDACTED"},
      });
}

TEST(UrlTest, InvalidUtf8IsKept) {
  ExpectCases(
      RedactText, "RedactText",
      {
          {"token=\xFF x\xC3=\xC3 \xE2\x80 pin=\xE2\x80",
           "token=REDACTED x\xC3=\xC3 \xE2\x80 pin=REDACTED"},
          {"\xFFhttp://u@\xFF/?key=\xC0\xAF\xF8",
           "\xFFhttp://REDACTED:REDACTED@\xFF/?key=REDACTED"},
          {std::string_view("a\0b=1\0token=\0", 13), std::string_view("a\0b=1\0token=\0", 13)},
      });
  ExpectCases(
      RedactUrl, "RedactUrl",
      {
          {"\xC3://\xC3@\xC3?\xC3=\xC3#\xC3", "\xC3://REDACTED:REDACTED@\xC3?\xC3=\xC3#\xC3"},
      });
}

TEST(UrlTest, NulBytes) {
  const std::string in("token=a\0b&x=1", 13);
  std::string out;
  ASSERT_TRUE(RedactQueryString(in, &out));
  EXPECT_EQ(out, "token=REDACTED&x=1");
}

TEST(UrlTest, OutputMayAliasTheInput) {
  std::string s = "http://u:p@h/?token=1";
  ASSERT_TRUE(RedactUrl(s, &s));
  EXPECT_EQ(s, "http://REDACTED:REDACTED@h/?token=REDACTED");
  s = "password=x and http://u@h";
  ASSERT_TRUE(RedactText(s, &s));
  EXPECT_EQ(s, "password=REDACTED and http://REDACTED:REDACTED@h");
  s = "a=1&token=x";
  ASSERT_TRUE(RedactQueryString(s, &s));
  EXPECT_EQ(s, "a=1&token=REDACTED");
}

TEST(UrlTest, LongInputs) {
  // Scans are linear: a long run of key or scheme characters is skipped once.
  const std::string run(1 << 20, 'a');
  std::string out;
  EXPECT_FALSE(RedactText(run + ":", &out));
  EXPECT_FALSE(RedactText(run + "://", &out));
  EXPECT_TRUE(RedactText(run + "token=1", &out));
  EXPECT_EQ(out, run + "token=REDACTED");
  std::string many;
  for (int i = 0; i < 10000; ++i) many += "a=1&pass=2&";
  ASSERT_TRUE(RedactQueryString(many, &out));
  EXPECT_EQ(out.size(), many.size() + 10000 * 7);
}

}  // namespace
}  // namespace djtrace::http
