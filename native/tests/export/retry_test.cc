#include "export/retry.h"

#include <gtest/gtest.h>

#include <vector>

namespace djtrace {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(RetryTest, BackoffScheduleWithoutJitter) {
  RetryPolicy p;
  p.jitter = 0;
  std::vector<nanoseconds> got;
  for (int i = 0; i < 8; ++i) got.push_back(BackoffDelay(p, i, 0.7));
  std::vector<nanoseconds> want = {seconds(1),  seconds(2),  seconds(4),  seconds(8),
                                   seconds(16), seconds(32), seconds(32), seconds(32)};
  EXPECT_EQ(got, want);
  EXPECT_EQ(BackoffDelay(p, 1000000, 0.5), seconds(32));  // saturates, no overflow
}

TEST(RetryTest, JitterBoundsAndDeterminism) {
  RetryPolicy p;  // jitter 0.2
  EXPECT_EQ(BackoffDelay(p, 0, 0.0), milliseconds(800));
  EXPECT_EQ(BackoffDelay(p, 0, 0.5), milliseconds(1000));
  EXPECT_EQ(BackoffDelay(p, 2, 0.25), milliseconds(3600));  // 4 s * 0.9
  EXPECT_EQ(BackoffDelay(p, 10, 0.999999), seconds(32));    // capped after jitter too
  // A seeded sequence gives the same schedule every time.
  auto schedule = [&](uint32_t seed) {
    std::vector<nanoseconds> out;
    uint32_t s = seed;
    for (int i = 0; i < 6; ++i) {
      s = s * 1664525u + 1013904223u;
      out.push_back(BackoffDelay(p, i, (s >> 8) / double(1 << 24)));
    }
    return out;
  };
  EXPECT_EQ(schedule(42), schedule(42));
  EXPECT_NE(schedule(42), schedule(43));
  for (nanoseconds d : schedule(7)) {
    EXPECT_GE(d, milliseconds(800));
    EXPECT_LE(d, seconds(32));
  }
}

TEST(RetryTest, MultiplierOneAndAHalf) {
  RetryPolicy p;
  p.multiplier = 1.5;
  p.jitter = 0;
  EXPECT_EQ(BackoffDelay(p, 0, 0), seconds(1));
  EXPECT_EQ(BackoffDelay(p, 1, 0), milliseconds(1500));
  EXPECT_EQ(BackoffDelay(p, 2, 0), milliseconds(2250));
}

TEST(RetryTest, NextRetryDelayHonoursDeadlineAndServer) {
  RetryPolicy p;
  p.jitter = 0;
  EXPECT_EQ(NextRetryDelay(p, 0, std::nullopt, seconds(10), 0.5), seconds(1));
  EXPECT_EQ(NextRetryDelay(p, 3, std::nullopt, seconds(10), 0.5), seconds(8));
  EXPECT_EQ(NextRetryDelay(p, 3, std::nullopt, seconds(9), 0.5), seconds(8));
  EXPECT_EQ(NextRetryDelay(p, 0, std::nullopt, milliseconds(999), 0.5), std::nullopt);
  // The server's wish replaces the backoff, even beyond max_backoff...
  EXPECT_EQ(NextRetryDelay(p, 0, seconds(40), seconds(60), 0.5), seconds(40));
  // ...but not beyond the deadline,
  EXPECT_EQ(NextRetryDelay(p, 0, seconds(5), seconds(3), 0.5), std::nullopt);
  // and "retry at once" is slowed to the floor.
  EXPECT_EQ(NextRetryDelay(p, 0, nanoseconds(0), seconds(3), 0.5), milliseconds(100));
}

TEST(RetryTest, NextRetryDelayFirstArgumentsAreExact) {
  RetryPolicy p;
  p.jitter = 0;
  // Exactly at the deadline is too late: there would be no time to send.
  EXPECT_EQ(NextRetryDelay(p, 3, std::nullopt, seconds(8), 0.5), std::nullopt);
}

TEST(RetryTest, RetryableHttpStatuses) {
  for (int s : {429, 502, 503, 504}) EXPECT_TRUE(IsRetryableHttpStatus(s)) << s;
  for (int s : {200, 400, 401, 403, 404, 408, 413, 500, 501, 505}) {
    EXPECT_FALSE(IsRetryableHttpStatus(s)) << s;
  }
}

TEST(RetryTest, RetryableGrpcCodes) {
  for (int c : {1, 4, 10, 11, 14, 15}) {
    EXPECT_TRUE(IsRetryableGrpcStatus(c, false)) << c;
    EXPECT_TRUE(IsRetryableGrpcStatus(c, true)) << c;
  }
  EXPECT_FALSE(IsRetryableGrpcStatus(8, false));
  EXPECT_TRUE(IsRetryableGrpcStatus(8, true));
  for (int c : {0, 2, 3, 5, 6, 7, 9, 12, 13, 16, 17, -1}) {
    EXPECT_FALSE(IsRetryableGrpcStatus(c, true)) << c;
  }
  EXPECT_EQ(GrpcCodeName(14), "UNAVAILABLE");
  EXPECT_EQ(GrpcCodeName(8), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(GrpcCodeName(99), "CODE_UNKNOWN");
}

TEST(RetryTest, ParseHttpDateAllThreeForms) {
  // RFC 9110's example instant: 784111777.
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_EQ(ParseHttpDate("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(ParseHttpDate("Tue, 29 Feb 2028 23:59:59 GMT"), 1835481599);
  EXPECT_EQ(ParseHttpDate("Wed, 29 Feb 2027 00:00:00 GMT"), std::nullopt);  // not a leap year
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 UTC"), std::nullopt);
  EXPECT_EQ(ParseHttpDate("Sun, 6 Nov 1994 08:49:37 GMT"), std::nullopt);
  EXPECT_EQ(ParseHttpDate("Sun, 06 Foo 1994 08:49:37 GMT"), std::nullopt);
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 24:00:00 GMT"), std::nullopt);
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT x"), std::nullopt);
  EXPECT_EQ(ParseHttpDate("Xyz, 06 Nov 1994 08:49:37 GMT"), std::nullopt);
  EXPECT_EQ(ParseHttpDate(""), std::nullopt);
}

TEST(RetryTest, ParseRetryAfter) {
  const auto now = std::chrono::system_clock::time_point(seconds(784111777)) + milliseconds(250);
  EXPECT_EQ(ParseRetryAfter("120", now), seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), seconds(0));
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", now), seconds(86400));
  EXPECT_EQ(ParseRetryAfter("1.5", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-1", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:47 GMT", now), milliseconds(9750));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:00 GMT", now), seconds(0));  // past
  EXPECT_EQ(ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", now), seconds(86400));
  EXPECT_EQ(ParseRetryAfter("Mon, 01 Jan 0001 00:00:00 GMT", now), seconds(0));
}

}  // namespace
}  // namespace djtrace
