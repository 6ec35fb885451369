#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "pii/redactor.h"
#include "pii/utf8.h"

namespace djtrace::pii {
namespace {

using D = Detector;

std::unique_ptr<Redactor> Build(const RedactionConfig& config) {
  std::string error;
  auto r = Redactor::Build(config, &error);
  EXPECT_NE(r, nullptr) << error;
  return r;
}

std::unique_ptr<Redactor> WithProfile(Profile p, std::string key = "") {
  RedactionConfig config;
  config.profile = p;
  config.hmac_key = std::move(key);
  return Build(config);
}

std::string Redacted(const Redactor& r, std::string value, std::string_view key = "") {
  r.RedactString(key, value);
  return value;
}

TEST(RedactorTest, DefaultProfileCoversSecretsNotContactData) {
  auto r = WithProfile(Profile::kDefault);
  EXPECT_EQ(Redacted(*r, "card 4242 4242 4242 4242"), "card [REDACTED]");
  EXPECT_EQ(Redacted(*r, "ssn 078-05-1120"), "ssn [REDACTED]");
  EXPECT_EQ(Redacted(*r, "/login?user=al&password=x1"), "/login?user=al&password=[REDACTED]");
  EXPECT_EQ(Redacted(*r, "key AKIAIOSFODNN7EXAMPLE"), "key [REDACTED]");
  EXPECT_EQ(Redacted(*r, "postgres://app:pw@db/x"), "postgres://app:[REDACTED]@db/x");
  // Contact data and addresses are gdpr's business.
  EXPECT_EQ(Redacted(*r, "alice@example.com from 10.0.0.1 +44 20 7946 0958"),
            "alice@example.com from 10.0.0.1 +44 20 7946 0958");
  EXPECT_EQ(Redacted(*r, "GB82WEST12345698765432"), "GB82WEST12345698765432");
  EXPECT_TRUE(r->enabled(D::kSensitiveKey));
  EXPECT_FALSE(r->enabled(D::kEmail));
}

TEST(RedactorTest, GdprProfileAddsPersonalData) {
  auto r = WithProfile(Profile::kGdpr);
  EXPECT_EQ(Redacted(*r, "alice@example.com from 10.0.0.1 +44 20 7946 0958 fe80::1"),
            "[REDACTED] from [REDACTED] [REDACTED] [REDACTED]");
  EXPECT_EQ(Redacted(*r, "GB82WEST12345698765432"), "[REDACTED]");
  EXPECT_EQ(Redacted(*r, "203.0.113.7", "client.address"), "[REDACTED]");
  // Without a key, enduser.* is fully masked rather than pseudonymised.
  EXPECT_EQ(Redacted(*r, "42", "enduser.id"), "[REDACTED]");
  EXPECT_EQ(r->style(D::kEnduser), MaskStyle::kFull);
  auto keyed = WithProfile(Profile::kGdpr, "s3cret");
  EXPECT_EQ(keyed->style(D::kEnduser), MaskStyle::kPseudonymise);
  const std::string p1 = Redacted(*keyed, "user-42", "enduser.id");
  EXPECT_EQ(p1.rfind("pseudo:", 0), 0u);
  EXPECT_EQ(p1.size(), 7u + 16u);
  EXPECT_EQ(Redacted(*keyed, "user-42", "enduser.id"), p1);  // stable
  EXPECT_NE(Redacted(*keyed, "user-43", "enduser.id"), p1);
}

TEST(RedactorTest, OffProfileDoesNothingButRepairsUtf8) {
  auto r = WithProfile(Profile::kOff);
  std::string v = "password=x alice@example.com 4242424242424242";
  EXPECT_FALSE(r->RedactString("", v));
  EXPECT_FALSE(r->RedactString("http.request.header.authorization", v));
  std::string bad = "ok\xFF";
  EXPECT_TRUE(r->RedactString("", bad));
  EXPECT_EQ(bad, "ok\xEF\xBF\xBD");
}

TEST(RedactorTest, OverridesEnableDisableAndRestyle) {
  RedactionConfig config;
  config.profile = Profile::kGdpr;
  config.Set(D::kEmail, true, MaskStyle::kPartial)
      .Set(D::kCreditCard, true, MaskStyle::kPartial)
      .Set(D::kPhone, false)
      .Set(D::kIpv4, true, MaskStyle::kPartial);
  auto r = Build(config);
  EXPECT_EQ(Redacted(*r, "alice@example.com 4242 4242 4242 4242 +44 20 7946 0958 10.1.2.3"),
            "al***@example.com **** **** **** 4242 +44 20 7946 0958 10.1.2.0/24");
  RedactionConfig only_email;
  only_email.profile = Profile::kOff;
  only_email.Set(D::kEmail, true);
  EXPECT_EQ(Redacted(*Build(only_email), "alice@example.com password=x"), "[REDACTED] password=x");
}

TEST(RedactorTest, PseudonymiseStyleNeedsAKey) {
  RedactionConfig config;
  config.Set(D::kEmail, true, MaskStyle::kPseudonymise);
  std::string error;
  EXPECT_EQ(Redactor::Build(config, &error), nullptr);
  EXPECT_NE(error.find("hmac_key"), std::string::npos);
  config.hmac_key = "k";
  config.pseudonym_hex_chars = 8;
  auto r = Build(config);
  const std::string out = Redacted(*r, "mail alice@example.com and alice@example.com");
  EXPECT_EQ(out.size(), std::string("mail pseudo:12345678 and pseudo:12345678").size());
  EXPECT_EQ(out.substr(5, 15), out.substr(25, 15));  // one value, one token
}

TEST(RedactorTest, ConfigErrorsNameTheSetting) {
  std::string error;
  RedactionConfig bad_regex;
  bad_regex.value_patterns.push_back({"emp", "EMP-(\\d+", MaskStyle::kFull});
  EXPECT_EQ(Redactor::Build(bad_regex, &error), nullptr);
  EXPECT_NE(error.find("value_patterns"), std::string::npos);
  EXPECT_NE(error.find("emp"), std::string::npos);
  RedactionConfig bad_name;
  bad_name.deny_keys.push_back({"Bad Name", "x.*", MaskStyle::kFull});
  EXPECT_EQ(Redactor::Build(bad_name, &error), nullptr);
  EXPECT_NE(error.find("deny_keys"), std::string::npos);
  RedactionConfig clash;
  clash.value_patterns.push_back({"email", "x", MaskStyle::kFull});
  EXPECT_EQ(Redactor::Build(clash, &error), nullptr);
  RedactionConfig bad_glob;
  bad_glob.allow_keys.push_back("");
  EXPECT_EQ(Redactor::Build(bad_glob, &error), nullptr);
  EXPECT_NE(error.find("allow_keys"), std::string::npos);
  RedactionConfig bad_hex;
  bad_hex.pseudonym_hex_chars = 4;
  EXPECT_EQ(Redactor::Build(bad_hex, &error), nullptr);
  EXPECT_NE(error.find("pseudonym_hex_chars"), std::string::npos);
  RedactionConfig too_many;
  for (int i = 0; i < 33; ++i) too_many.value_patterns.push_back({"p" + std::to_string(i), "x"});
  EXPECT_EQ(Redactor::Build(too_many, &error), nullptr);
}

TEST(RedactorTest, KeyRules) {
  RedactionConfig config;
  config.deny_keys.push_back({"tenant_header", "http.request.header.x-tenant-*", MaskStyle::kFull});
  config.deny_keys.push_back({"db_creds", "*.dsn", MaskStyle::kFull});
  config.allow_keys.push_back("app.order_ref");
  auto r = Build(config);
  EXPECT_EQ(r->ClassifyKey("http.request.header.authorization"), KeyAction::kDeny);
  EXPECT_EQ(r->ClassifyKey("http.request.header.x-tenant-id"), KeyAction::kDeny);
  EXPECT_EQ(r->ClassifyKey("app.db.dsn"), KeyAction::kDeny);
  EXPECT_EQ(r->ClassifyKey("trace_id"), KeyAction::kAllow);
  EXPECT_EQ(r->ClassifyKey("code.function"), KeyAction::kAllow);
  EXPECT_EQ(r->ClassifyKey("app.order_ref"), KeyAction::kAllow);
  EXPECT_EQ(r->ClassifyKey("url.full"), KeyAction::kScan);
  EXPECT_EQ(r->ClassifyKey(""), KeyAction::kScan);
  // Deny: the whole value, whatever it holds.
  EXPECT_EQ(Redacted(*r, "Bearer abc", "http.request.header.authorization"), "[REDACTED]");
  EXPECT_EQ(Redacted(*r, "plain", "db.password"), "[REDACTED]");
  EXPECT_EQ(Redacted(*r, "acme", "http.request.header.x-tenant-id"), "[REDACTED]");
  // Allow: no value detector looks at it.
  EXPECT_EQ(Redacted(*r, "4242424242424242", "app.order_ref"), "4242424242424242");
  EXPECT_EQ(Redacted(*r, "4242424242424242", "app.other"), "[REDACTED]");
  // Deny wins over allow; a custom allow does not un-deny a built-in deny.
  RedactionConfig both;
  both.allow_keys.push_back("*");
  auto rb = Build(both);
  EXPECT_EQ(Redacted(*rb, "x", "user.password"), "[REDACTED]");
  EXPECT_EQ(Redacted(*rb, "4242424242424242", "anything"), "4242424242424242");
  // Built-in allow-list can be switched off.
  RedactionConfig no_builtin;
  no_builtin.builtin_allow_keys = false;
  EXPECT_EQ(Build(no_builtin)->ClassifyKey("trace_id"), KeyAction::kScan);
  // Empty values stay empty under deny.
  std::string empty;
  EXPECT_FALSE(r->RedactString("db.password", empty));
}

TEST(RedactorTest, CustomValuePatterns) {
  RedactionConfig config;
  config.profile = Profile::kOff;
  config.hmac_key = "k";
  config.value_patterns.push_back({"employee_id", "\\bEMP-\\d{6}\\b", MaskStyle::kFull});
  config.value_patterns.push_back({"ticket", "(?i)tkt[0-9a-f]{8}", MaskStyle::kPseudonymise});
  auto r = Build(config);
  EXPECT_EQ(Redacted(*r, "by EMP-123456 for EMP-1234567"), "by [REDACTED] for EMP-1234567");
  const std::string t = Redacted(*r, "see TKTdeadbeef");
  EXPECT_EQ(t.rfind("see pseudo:", 0), 0u);
  EXPECT_EQ(Redacted(*r, "see TKTdeadbeef"), t);
  // Touching matches of one pattern make one mask; overlapping rules make one full mask.
  RedactionConfig single;
  single.profile = Profile::kGdpr;
  single.value_patterns.push_back({"letter_a", "a", MaskStyle::kFull});
  single.value_patterns.push_back({"example", "example\\.com", MaskStyle::kFull});
  auto rs = Build(single);
  EXPECT_EQ(Redacted(*rs, "baaab"), "b[REDACTED]b");
  EXPECT_EQ(Redacted(*rs, "x bob@example.com y"), "x [REDACTED] y");
  const auto counters = rs->CountersSnapshot();
  EXPECT_EQ(counters.at("letter_a"), 2u);  // "baaab", and the a of example.com
  EXPECT_EQ(counters.at("email"), 1u);
  EXPECT_EQ(counters.at("example"), 1u);
}

TEST(RedactorTest, PathologicalCustomPatternIsLinear) {
  RedactionConfig config;
  config.profile = Profile::kOff;
  config.value_patterns.push_back({"evil", "(a*)*b", MaskStyle::kFull});
  auto r = Build(config);
  std::string value(200000, 'a');
  EXPECT_FALSE(r->RedactString("", value));  // completes; the step bound is in regex tests
  value += "b";
  EXPECT_TRUE(r->RedactString("", value));
  EXPECT_EQ(value, "[REDACTED]");
}

TEST(RedactorTest, Utf8IsRepairedEverywhere) {
  auto r = WithProfile(Profile::kGdpr);
  std::string v = "caf\xC3\xA9 \xFF alice@example.com \xED\xA0\x80";
  EXPECT_TRUE(r->RedactString("", v));
  EXPECT_EQ(v, "caf\xC3\xA9 \xEF\xBF\xBD [REDACTED] \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  std::string allowed = "\xC0\x80";
  EXPECT_TRUE(r->RedactString("code.function", allowed));
  EXPECT_TRUE(IsValidUtf8(allowed));
  // A PEM END line whose closing dashes are missing, followed by multi-byte characters: the
  // match must not end inside a character (found by pii_redactor_fuzz).
  std::string pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY---";
  for (int i = 0; i < 40; ++i) pem += "\xFF\xC3\xA9";
  pem += "--\nend";
  EXPECT_TRUE(r->RedactString("", pem));
  EXPECT_TRUE(IsValidUtf8(pem)) << pem;
  EXPECT_EQ(pem.rfind("[REDACTED]", 0), 0u);
  // A custom match between multi-byte characters leaves them whole.
  RedactionConfig bytes;
  bytes.profile = Profile::kOff;
  bytes.value_patterns.push_back({"x", "x", MaskStyle::kFull});
  std::string mixed = "\xC3\xA9x\xC3\xA9";
  EXPECT_TRUE(Build(bytes)->RedactString("", mixed));
  EXPECT_EQ(mixed, "\xC3\xA9[REDACTED]\xC3\xA9");
  std::string denied = "\xFF\xFE";
  EXPECT_TRUE(r->RedactString("db.password", denied));
  EXPECT_EQ(denied, "[REDACTED]");
}

TEST(RedactorTest, OutputStaysWithinTheBound) {
  RedactionConfig config;
  config.profile = Profile::kOff;
  config.hmac_key = "k";
  config.pseudonym_hex_chars = 64;
  config.value_patterns.push_back({"digit", "\\d", MaskStyle::kPseudonymise});
  auto r = Build(config);
  std::string small = "1";
  r->RedactString("", small);
  EXPECT_EQ(small.size(), 7u + 64u);  // one mask of any kind always fits
  std::string many;
  for (int i = 0; i < 1000; ++i) many += "1 ";
  const size_t n = many.size();
  r->RedactString("", many);
  EXPECT_LE(many.size(), 4 * n + 96);
  EXPECT_EQ(many, "[REDACTED]");
}

TEST(RedactorTest, LeavesUnchangedSaysWhatRedactSpanWouldDoToTheAttributesAndCountsNothing) {
  auto r = WithProfile(Profile::kGdpr);
  const Attributes each = {
      {"db.query.text", std::string("SELECT id FROM orders WHERE email = %s")},
      {"code.filepath", std::string("/home/alice@example.com/app/views.py")},
      {"db.system.name", std::string("postgresql")},
      {"http.request.header.cookie", std::vector<std::string>{"sessionid=abc"}},
      {"app.tags", std::vector<std::string>{"a", "b"}},
      {"code.lineno", int64_t{42}},
      {"app.pin_token", int64_t{1234}},
      {"app.empty", std::string()},
  };
  for (const Attribute& a : each) {
    SpanData span;
    span.attributes = {a};
    r->RedactSpan(span);
    const bool unchanged = span.attributes[0].key == a.key && span.attributes[0].value == a.value;
    EXPECT_EQ(r->LeavesUnchanged({a}), unchanged) << a.key;
  }
  const auto before = r->CountersSnapshot();
  EXPECT_FALSE(r->LeavesUnchanged(each));
  EXPECT_TRUE(r->LeavesUnchanged({each[0], each[2], each[4], each[5], each[7]}));
  EXPECT_TRUE(r->LeavesUnchanged({}));
  EXPECT_EQ(r->CountersSnapshot(), before);
}

TEST(RedactorTest, RedactSpanCoversEveryTextField) {
  auto r = WithProfile(Profile::kGdpr);
  SpanData span;
  span.name = "GET /users/alice@example.com";
  span.status_message = "card 4242424242424242 declined";
  span.attributes.push_back({"url.full", std::string("https://x.io/cb?code=1&token=abc123")});
  span.attributes.push_back(
      {"http.request.header.cookie", std::vector<std::string>{"sessionid=abc", "csrftoken=def"}});
  span.attributes.push_back({"app.emails", std::vector<std::string>{"a@example.com", "plain"}});
  span.attributes.push_back({"http.response.status_code", int64_t{200}});
  span.attributes.push_back({"app.pin_token", int64_t{1234}});
  span.attributes.push_back({"app.secret_flags", std::vector<bool>{true, false}});
  span.attributes.push_back({"trace_id", std::string("4bf92f3577b34da6a3ce929d0e0e4736")});
  Event ex;
  ex.name = "exception";
  ex.attributes.push_back({"exception.message", std::string("bad password=hunter2")});
  ex.attributes.push_back(
      {"exception.stacktrace", std::string("File x.py\n  login(email='bob@example.com')")});
  span.events.push_back(ex);
  Event named;
  named.name = "sent to +44 20 7946 0958";
  span.events.push_back(named);
  Link link;
  link.attributes.push_back({"peer.ip", std::string("203.0.113.9")});
  span.links.push_back(link);

  r->RedactSpan(span);
  EXPECT_EQ(span.name, "GET /users/[REDACTED]");
  EXPECT_EQ(span.status_message, "card [REDACTED] declined");
  EXPECT_EQ(std::get<std::string>(span.attributes[0].value),
            "https://x.io/cb?code=1&token=[REDACTED]");
  EXPECT_EQ(std::get<std::vector<std::string>>(span.attributes[1].value),
            (std::vector<std::string>{"[REDACTED]", "[REDACTED]"}));
  EXPECT_EQ(std::get<std::vector<std::string>>(span.attributes[2].value),
            (std::vector<std::string>{"[REDACTED]", "plain"}));
  EXPECT_EQ(std::get<int64_t>(span.attributes[3].value), 200);
  EXPECT_EQ(std::get<std::string>(span.attributes[4].value), "[REDACTED]");
  EXPECT_EQ(std::get<std::vector<std::string>>(span.attributes[5].value),
            (std::vector<std::string>{"[REDACTED]", "[REDACTED]"}));
  EXPECT_EQ(std::get<std::string>(span.attributes[6].value), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(std::get<std::string>(span.events[0].attributes[0].value), "bad password=[REDACTED]");
  EXPECT_EQ(std::get<std::string>(span.events[0].attributes[1].value),
            "File x.py\n  login(email='[REDACTED]')");
  EXPECT_EQ(span.events[1].name, "sent to [REDACTED]");
  EXPECT_EQ(std::get<std::string>(span.links[0].attributes[0].value), "[REDACTED]");

  const auto c = r->CountersSnapshot();
  EXPECT_EQ(c.at("email"), 3u);  // span name, one array element, stacktrace
  EXPECT_EQ(c.at("credit_card"), 1u);
  EXPECT_EQ(c.at("sensitive_param"), 2u);
  EXPECT_EQ(c.at("sensitive_key"), 5u);  // two cookie elements, pin_token, two flags
  EXPECT_EQ(c.at("phone"), 1u);
  EXPECT_EQ(c.at("ipv4"), 1u);
  EXPECT_EQ(c.at("jwt"), 0u);
}

TEST(RedactorTest, RedactedOutputIsStable) {
  // Masks contain nothing a detector fires on, so redacting twice changes nothing more.
  RedactionConfig config;
  config.profile = Profile::kGdpr;
  config.hmac_key = "k";
  config.Set(D::kEmail, true, MaskStyle::kPartial)
      .Set(D::kCreditCard, true, MaskStyle::kPartial)
      .Set(D::kPhone, true, MaskStyle::kPartial)
      .Set(D::kIpv4, true, MaskStyle::kPseudonymise)
      .Set(D::kGithubToken, true, MaskStyle::kPartial);
  auto r = Build(config);
  std::string v =
      "alice@example.com 4242 4242 4242 4242 +44 20 7946 0958 10.0.0.1 "
      "ghp_abcdefghijklmnopqrstuvwxyz0123456789 password=x token=\"y\"";
  ASSERT_TRUE(r->RedactString("", v));
  std::string again = v;
  EXPECT_FALSE(r->RedactString("", again)) << again;
  EXPECT_EQ(again, v);
}

TEST(RedactorTest, RedactWritesOnlyOnChange) {
  auto r = WithProfile(Profile::kDefault);
  std::string out = "untouched";
  EXPECT_FALSE(r->Redact("", "nothing here", &out));
  EXPECT_EQ(out, "untouched");
  EXPECT_TRUE(r->Redact("", "pwd=1", &out));
  EXPECT_EQ(out, "pwd=[REDACTED]");
}

TEST(RedactorTest, SharedAcrossThreads) {
  auto r = WithProfile(Profile::kGdpr, "key");
  constexpr int kThreads = 4, kIterations = 2000;
  std::vector<std::thread> threads;
  std::vector<int> mismatches(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIterations; ++i) {
        std::string v = "user" + std::to_string(t) + "@example.com paid 4242424242424242";
        r->RedactString("", v);
        if (v != "[REDACTED] paid [REDACTED]") ++mismatches[t];
        std::string id = "u" + std::to_string(t);
        r->RedactString("enduser.id", id);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
  const auto c = r->CountersSnapshot();
  EXPECT_EQ(c.at("email"), uint64_t{kThreads * kIterations});
  EXPECT_EQ(c.at("credit_card"), uint64_t{kThreads * kIterations});
  EXPECT_EQ(c.at("enduser"), uint64_t{kThreads * kIterations});
}

// The per-thread memo must never change a result: a memoizing redactor and one that scans
// every value agree on values seen once, seen again, and seen under other keys.
TEST(RedactorTest, MemoChangesNoResult) {
  RedactionConfig config;
  config.profile = Profile::kGdpr;
  config.deny_keys.push_back({"pin", "*.pin", MaskStyle::kFull});
  config.value_patterns.push_back({"order_ref", "ORD-[0-9]+", MaskStyle::kFull});
  auto memo = Build(config);
  config.memoize = false;
  auto plain = Build(config);
  const std::vector<std::pair<std::string, std::string>> values = {
      {"db.query.text", "SELECT \"orders\".\"id\" FROM \"orders\" WHERE \"id\" = %s"},
      {"code.filepath", "/srv/app/orders/views.py"},
      {"url.query", "page=2&token=abc"},
      {"note", "clean text"},
      {"note", "clean text alice@example.com"},
      {"note", "ORD-123456 shipped"},
      {"payment.pin", "1234"},
      {"payment.note", "1234"},
      {"enduser.id", "42"},
      {"note", "42"},
      {"", "GET api/orders/<int:pk>/"},
      {"note", std::string("bad \xff byte")},
      {"note", std::string(3000, 'a')},
      // Long values with the same length and the same two ends share a memo bucket: only the
      // clean one may be remembered.
      {"note", std::string(100, 's') + "middle text is clean " + std::string(100, 'e')},
      {"note", std::string(100, 's') + "mail alice@example.c " + std::string(100, 'e')},
      {"note", std::string(100, 's') + "middle text is clean " + std::string(100, 'e')},
      {"note", std::string(100, 's') + "mail bob@example.com " + std::string(100, 'e')},
  };
  for (int pass = 0; pass < 3; ++pass) {
    for (const auto& [key, value] : values) {
      SCOPED_TRACE("pass " + std::to_string(pass) + " key '" + key + "'");
      EXPECT_EQ(Redacted(*memo, value, key), Redacted(*plain, value, key));
    }
  }
  EXPECT_EQ(memo->CountersSnapshot(), plain->CountersSnapshot());
  EXPECT_GT(memo->CountersSnapshot().at("email"), 0u);
}

// A value one redactor found clean is scanned again by another redactor on the same thread,
// whose rules may find something in it.
TEST(RedactorTest, MemoBelongsToOneRedactor) {
  auto lenient = WithProfile(Profile::kDefault);
  auto strict = WithProfile(Profile::kGdpr);
  const std::string value = "contact alice@example.com";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Redacted(*lenient, value), value);
    EXPECT_EQ(Redacted(*strict, value), "contact [REDACTED]");
  }
  // A redactor built later reuses no verdict of an earlier one, even at the same address.
  lenient.reset();
  auto again = WithProfile(Profile::kGdpr);
  EXPECT_EQ(Redacted(*again, value), "contact [REDACTED]");
}

// Many distinct values: the memo starts over when full and every value is still redacted.
TEST(RedactorTest, MemoStaysCorrectWhenFull) {
  auto r = WithProfile(Profile::kGdpr);
  for (int i = 0; i < 20000; ++i) {
    const std::string clean = "/api/orders/" + std::to_string(i) + "/items/" + std::string(40, 'x');
    EXPECT_EQ(Redacted(*r, clean), clean);
    const std::string dirty = "user" + std::to_string(i) + "@example.com";
    ASSERT_EQ(Redacted(*r, dirty), "[REDACTED]") << i;
  }
  // The first clean values are long gone from the memo; they are scanned again, still clean.
  EXPECT_EQ(Redacted(*r, "/api/orders/1/items/"), "/api/orders/1/items/");
}

TEST(RedactorTest, ProfileNames) {
  for (Profile p : {Profile::kOff, Profile::kDefault, Profile::kGdpr}) {
    EXPECT_EQ(ProfileFromName(ProfileName(p)), p);
  }
  EXPECT_FALSE(ProfileFromName("strict").has_value());
}

}  // namespace
}  // namespace djtrace::pii
