#include <gtest/gtest.h>

#include <string>

#include "pii/glob.h"

namespace djtrace::pii {
namespace {

TEST(KeyGlobTest, Matching) {
  EXPECT_TRUE(KeyGlobMatch("*.password", "db.password"));
  EXPECT_TRUE(KeyGlobMatch("*.password", "a.b.c.password"));
  EXPECT_FALSE(KeyGlobMatch("*.password", "password"));
  EXPECT_FALSE(KeyGlobMatch("*.password", "db.password_hint"));
  EXPECT_TRUE(KeyGlobMatch("http.request.header.x-*", "http.request.header.x-tenant"));
  EXPECT_FALSE(KeyGlobMatch("http.request.header.x-*", "http.request.header.accept"));
  EXPECT_TRUE(KeyGlobMatch("HTTP.Request.Header.X-*", "http.request.header.X-TENANT"));
  EXPECT_TRUE(KeyGlobMatch("user.?d", "user.id"));
  EXPECT_FALSE(KeyGlobMatch("user.?d", "user.iid"));
  EXPECT_TRUE(KeyGlobMatch("*", ""));
  EXPECT_TRUE(KeyGlobMatch("*", "anything.at.all"));
  EXPECT_TRUE(KeyGlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_TRUE(KeyGlobMatch("a*b*c", "abbbc"));
  EXPECT_FALSE(KeyGlobMatch("a*b*c", "abbbcd"));
  EXPECT_TRUE(KeyGlobMatch("exact.key", "exact.key"));
  EXPECT_FALSE(KeyGlobMatch("exact.key", "exact.key2"));
  EXPECT_TRUE(KeyGlobMatch("lit\\*eral", "lit*eral"));
  EXPECT_FALSE(KeyGlobMatch("lit\\*eral", "litXeral"));
  EXPECT_TRUE(KeyGlobMatch("**x**", "aaxaa"));
}

TEST(KeyGlobTest, Validation) {
  std::string error;
  EXPECT_TRUE(ValidateKeyGlob("*.token", &error));
  EXPECT_FALSE(ValidateKeyGlob("", &error));
  EXPECT_FALSE(ValidateKeyGlob("bad\\", &error));
  EXPECT_FALSE(ValidateKeyGlob(std::string(300, 'a'), &error));
}

TEST(KeyGlobTest, ManyStarsStayPolynomial) {
  // The classic exponential case for recursive globbing finishes at once here.
  const std::string pattern = "*a*a*a*a*a*a*a*a*a*a*b";
  const std::string key(200, 'a');
  EXPECT_FALSE(KeyGlobMatch(pattern, key));
}

}  // namespace
}  // namespace djtrace::pii
