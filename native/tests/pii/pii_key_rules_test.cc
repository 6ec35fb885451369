#include <gtest/gtest.h>

#include "pii/key_rules.h"

namespace djtrace::pii {
namespace {

TEST(KeyRulesTest, SensitiveKeys) {
  for (const char* key : {"http.request.header.authorization",
                          "http.request.header.cookie",
                          "http.response.header.set-cookie",
                          "http.request.header.proxy-authorization",
                          "http.request.header.x-api-key",
                          "HTTP.Request.Header.Authorization",
                          "http.request.header.x-auth-token",
                          "http.request.header.x-csrftoken",
                          "db.password",
                          "app.user_password",
                          "smtp.passwd",
                          "client_secret",
                          "oauth.access_token",
                          "stripe.api_key",
                          "service.apikey",
                          "config.private_key",
                          "token",
                          "rpc.grpc.request.metadata.authorization",
                          "session.refresh_token",
                          "aws.secret_key",
                          "cookie",
                          "auth.token_value"}) {
    EXPECT_TRUE(IsSensitiveAttributeKey(key)) << key;
  }
  for (const char* key :
       {"http.request.method", "http.route", "url.full", "gen_ai.usage.input_tokens",
        "gen_ai.request.max_tokens", "tokenizer.name", "db.query.text", "user_agent.original",
        "http.request.header.accept", "http.request.header.content-type", "session.id", "", "."}) {
    EXPECT_FALSE(IsSensitiveAttributeKey(key)) << key;
  }
}

TEST(KeyRulesTest, ClientAddressAndEnduser) {
  EXPECT_TRUE(IsClientAddressKey("client.address"));
  EXPECT_TRUE(IsClientAddressKey("net.sock.peer.addr"));
  EXPECT_FALSE(IsClientAddressKey("server.address"));
  EXPECT_TRUE(IsEnduserKey("enduser.id"));
  EXPECT_TRUE(IsEnduserKey("enduser.role"));
  EXPECT_TRUE(IsEnduserKey("user.email"));
  EXPECT_FALSE(IsEnduserKey("user_agent.original"));
  EXPECT_FALSE(IsEnduserKey("enduser"));
}

TEST(KeyRulesTest, AllowList) {
  for (const char* key : {"trace_id", "span_id", "otel.trace_id", "parent_span_id", "db.system",
                          "db.system.name", "http.route", "code.function", "code.filepath",
                          "code.lineno", "url.scheme", "thread.name", "rpc.method"}) {
    EXPECT_TRUE(IsBuiltinAllowedKey(key)) << key;
  }
  for (const char* key : {"url.full", "exception.message", "db.query.text", "http.target", "codec",
                          "db", "", "zzz"}) {
    EXPECT_FALSE(IsBuiltinAllowedKey(key)) << key;
  }
}

}  // namespace
}  // namespace djtrace::pii
