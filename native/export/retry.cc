#include "export/retry.h"

#include <algorithm>
#include <cmath>

namespace djtrace {
namespace {

using std::chrono::nanoseconds;

// A day count from 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool done() const { return pos_ == s_.size(); }
  bool Eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool EatWord(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  // Exactly `min`..`max` digits.
  bool Digits(size_t min, size_t max, int64_t& value) {
    size_t start = pos_;
    value = 0;
    while (pos_ < s_.size() && pos_ - start < max && s_[pos_] >= '0' && s_[pos_] <= '9') {
      value = value * 10 + (s_[pos_] - '0');
      ++pos_;
    }
    return pos_ - start >= min;
  }
  std::string_view Letters() {
    size_t start = pos_;
    while (pos_ < s_.size() &&
           ((s_[pos_] >= 'a' && s_[pos_] <= 'z') || (s_[pos_] >= 'A' && s_[pos_] <= 'Z'))) {
      ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

bool Month(std::string_view name, unsigned& month) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (unsigned i = 0; i < 12; ++i) {
    if (name == kMonths[i]) {
      month = i + 1;
      return true;
    }
  }
  return false;
}

bool IsDayName(std::string_view name) {
  static constexpr std::string_view kShort[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr std::string_view kLong[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                               "Friday", "Saturday", "Sunday"};
  for (auto d : kShort)
    if (name == d) return true;
  for (auto d : kLong)
    if (name == d) return true;
  return false;
}

bool Time(Cursor& c, int64_t& h, int64_t& m, int64_t& s) {
  return c.Digits(2, 2, h) && c.Eat(':') && c.Digits(2, 2, m) && c.Eat(':') && c.Digits(2, 2, s) &&
         h <= 23 && m <= 59 && s <= 60;  // 60: a leap second
}

std::string_view Trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace

nanoseconds BackoffDelay(const RetryPolicy& policy, int retry, double unit_random) noexcept {
  const double max = static_cast<double>(policy.max_backoff.count());
  double base = static_cast<double>(policy.initial_backoff.count());
  // Multiply step by step so that a large `retry` saturates at the cap instead of overflowing.
  for (int i = 0; i < retry && base < max; ++i) base *= policy.multiplier;
  base = std::min(base, max);
  const double r = std::clamp(unit_random, 0.0, 1.0);
  double delay = base * (1.0 - policy.jitter + 2.0 * policy.jitter * r);
  delay = std::clamp(delay, 0.0, max);
  return nanoseconds(static_cast<int64_t>(delay));
}

std::optional<nanoseconds> NextRetryDelay(const RetryPolicy& policy, int retry,
                                          std::optional<nanoseconds> server_delay,
                                          nanoseconds time_left, double unit_random) noexcept {
  nanoseconds delay = server_delay ? std::max(*server_delay, policy.min_server_delay)
                                   : BackoffDelay(policy, retry, unit_random);
  // Waiting until the deadline itself would leave no time to send; give up now and free the
  // worker for the next batch.
  if (delay >= time_left) return std::nullopt;
  return delay;
}

bool IsRetryableHttpStatus(int status) noexcept {
  return status == 429 || status == 502 || status == 503 || status == 504;
}

std::string_view GrpcCodeName(int code) noexcept {
  static constexpr std::string_view kNames[] = {"OK",
                                                "CANCELLED",
                                                "UNKNOWN",
                                                "INVALID_ARGUMENT",
                                                "DEADLINE_EXCEEDED",
                                                "NOT_FOUND",
                                                "ALREADY_EXISTS",
                                                "PERMISSION_DENIED",
                                                "RESOURCE_EXHAUSTED",
                                                "FAILED_PRECONDITION",
                                                "ABORTED",
                                                "OUT_OF_RANGE",
                                                "UNIMPLEMENTED",
                                                "INTERNAL",
                                                "UNAVAILABLE",
                                                "DATA_LOSS",
                                                "UNAUTHENTICATED"};
  if (code >= 0 && code <= 16) return kNames[code];
  return "CODE_UNKNOWN";
}

bool IsRetryableGrpcStatus(int code, bool has_retry_info) noexcept {
  switch (static_cast<GrpcCode>(code)) {
    case GrpcCode::kCancelled:
    case GrpcCode::kDeadlineExceeded:
    case GrpcCode::kAborted:
    case GrpcCode::kOutOfRange:
    case GrpcCode::kUnavailable:
    case GrpcCode::kDataLoss:
      return true;
    case GrpcCode::kResourceExhausted:
      return has_retry_info;
    default:
      return false;
  }
}

std::optional<int64_t> ParseHttpDate(std::string_view value) noexcept {
  Cursor c(Trim(value));
  if (!IsDayName(c.Letters())) return std::nullopt;
  int64_t day = 0, year = 0, h = 0, m = 0, s = 0;
  unsigned month = 0;
  if (c.Eat(',')) {
    if (!c.Eat(' ') || !c.Digits(2, 2, day)) return std::nullopt;
    if (c.Eat(' ')) {  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
      if (!Month(c.Letters(), month) || !c.Eat(' ') || !c.Digits(4, 4, year)) return std::nullopt;
    } else if (c.Eat('-')) {  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
      if (!Month(c.Letters(), month) || !c.Eat('-') || !c.Digits(2, 2, year)) return std::nullopt;
      // RFC 9110 says to read a two-digit year as the most recent past year with those digits;
      // with no clock here, 70-99 are taken as 19xx and 00-69 as 20xx.
      year += year >= 70 ? 1900 : 2000;
    } else {
      return std::nullopt;
    }
    if (!c.Eat(' ') || !Time(c, h, m, s) || !c.Eat(' ') || !c.EatWord("GMT")) return std::nullopt;
  } else {  // asctime: Sun Nov  6 08:49:37 1994
    if (!c.Eat(' ') || !Month(c.Letters(), month) || !c.Eat(' ')) return std::nullopt;
    c.Eat(' ');  // a one-digit day is padded with a space
    if (!c.Digits(1, 2, day) || !c.Eat(' ') || !Time(c, h, m, s) || !c.Eat(' ') ||
        !c.Digits(4, 4, year)) {
      return std::nullopt;
    }
  }
  if (!c.done() || day < 1 || day > DaysInMonth(year, month)) return std::nullopt;
  return DaysFromCivil(year, month, static_cast<unsigned>(day)) * 86400 + h * 3600 + m * 60 + s;
}

std::optional<nanoseconds> ParseRetryAfter(std::string_view value,
                                           std::chrono::system_clock::time_point now) noexcept {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  if (value.front() >= '0' && value.front() <= '9') {
    int64_t seconds = 0;
    for (char ch : value) {
      if (ch < '0' || ch > '9') return std::nullopt;
      // Anything beyond a day is as good as "not within this export"; saturate there.
      seconds = std::min<int64_t>(seconds * 10 + (ch - '0'), 86400);
    }
    return std::chrono::seconds(seconds);
  }
  std::optional<int64_t> at = ParseHttpDate(value);
  if (!at) return std::nullopt;
  const int64_t now_ns = std::chrono::duration_cast<nanoseconds>(now.time_since_epoch()).count();
  const int64_t now_s = now_ns / 1000000000;
  // Compare in seconds first: an HTTP-date may lie millennia away, beyond int64 nanoseconds.
  const int64_t diff_s = *at - now_s;
  if (diff_s <= 0) return nanoseconds(0);
  if (diff_s > 86400) return std::chrono::seconds(86400);
  return nanoseconds(std::max<int64_t>(diff_s * 1000000000 - (now_ns - now_s * 1000000000), 0));
}

}  // namespace djtrace
