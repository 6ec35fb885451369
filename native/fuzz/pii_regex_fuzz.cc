// Fuzzes the custom-pattern compiler and VM: the input up to the first NUL is a pattern, the
// rest is text. Checks: no crash or overread in the parser (the pattern sits in a buffer of
// exactly its size), every match is non-empty, ordered, disjoint and in bounds, and the VM stays
// within its step budget (the linear-time promise).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "pii/regex.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t plen = nul ? static_cast<size_t>(nul - data) : size;
  std::unique_ptr<char[]> pattern(new char[plen == 0 ? 1 : plen]);
  std::memcpy(pattern.get(), data, plen);
  std::string error;
  auto re = djtrace::pii::Regex::Compile(std::string_view(pattern.get(), plen), &error);
  if (!re) {
    if (error.empty()) std::abort();
    return 0;
  }
  if (re->program_size() > djtrace::pii::Regex::kMaxProgram) std::abort();
  const size_t tstart = nul ? plen + 1 : size;
  const size_t tlen = size - tstart;
  std::unique_ptr<char[]> text(new char[tlen == 0 ? 1 : tlen]);
  std::memcpy(text.get(), data + tstart, tlen);
  const std::string_view view(text.get(), tlen);

  djtrace::pii::Regex::Scratch scratch;
  std::vector<djtrace::pii::Regex::Match> matches;
  uint64_t steps = 0;
  const bool complete = re->FindAll(view, &matches, &scratch, &steps);
  size_t last = 0;
  for (const auto& m : matches) {
    if (m.begin < last || m.begin >= m.end || m.end > tlen) std::abort();
    last = m.end;
  }
  const uint64_t budget = djtrace::pii::Regex::StepBudget(tlen, re->program_size());
  if (steps > budget + 4 * (re->program_size() + 1)) std::abort();
  if (!complete && (matches.empty() || matches.back().end != tlen)) std::abort();
  re->FullMatch(view);
  return 0;
}
