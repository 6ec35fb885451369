// Precision and recall of every value detector on the labelled corpus in
// tests/data/pii/corpus.tsv. Bars: recall 1.0 on the positives (each detector alone must remove
// the marked substring, and so must the whole gdpr profile) and no false positive on the
// negatives (a detector alone leaves its own negatives untouched; the gdpr profile leaves the
// '*' hard negatives untouched).
#include <gtest/gtest.h>

#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "pii/redactor.h"

namespace djtrace::pii {
namespace {

struct Row {
  int line;
  std::string detector;
  bool positive;
  std::string text;
  std::string expect;
};

std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char n = s[++i];
      out.push_back(n == 'n' ? '\n' : n == 't' ? '\t' : n);
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<Row> LoadCorpus() {
  std::ifstream in(std::string(DJTRACE_TEST_DATA_DIR) + "/pii/corpus.tsv");
  EXPECT_TRUE(in.good()) << "corpus.tsv not found";
  std::vector<Row> rows;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols;
    std::stringstream ss(line);
    std::string col;
    while (std::getline(ss, col, '\t')) cols.push_back(col);
    if (cols.size() == 3) cols.push_back("");
    EXPECT_EQ(cols.size(), 4u) << "line " << number;
    if (cols.size() != 4) continue;
    EXPECT_TRUE(cols[1] == "positive" || cols[1] == "negative") << "line " << number;
    rows.push_back({number, cols[0], cols[1] == "positive", Unescape(cols[2]), Unescape(cols[3])});
    if (rows.back().positive) EXPECT_FALSE(rows.back().expect.empty()) << "line " << number;
  }
  return rows;
}

std::unique_ptr<Redactor> OnlyDetector(Detector d) {
  RedactionConfig config;
  config.profile = Profile::kOff;
  config.Set(d, true);
  std::string error;
  auto r = Redactor::Build(config, &error);
  EXPECT_NE(r, nullptr) << error;
  return r;
}

std::unique_ptr<Redactor> Gdpr() {
  RedactionConfig config;
  config.profile = Profile::kGdpr;
  std::string error;
  return Redactor::Build(config, &error);
}

struct Score {
  int tp = 0, fn = 0, fp = 0, tn = 0;
};

TEST(CorpusTest, PrecisionAndRecallPerDetector) {
  const std::vector<Row> rows = LoadCorpus();
  ASSERT_GT(rows.size(), 400u);
  const auto gdpr = Gdpr();
  std::map<std::string, std::unique_ptr<Redactor>> alone;
  std::map<std::string, Score> scores;
  for (const Row& row : rows) {
    SCOPED_TRACE("corpus.tsv line " + std::to_string(row.line) + ": " + row.text);
    Score& score = scores[row.detector];
    if (row.detector == "*") {
      ASSERT_FALSE(row.positive);
      std::string value = row.text;
      const bool changed = gdpr->RedactString("", value);
      EXPECT_FALSE(changed) << "gdpr profile changed a hard negative into: " << value;
      ++(changed ? score.fp : score.tn);
      continue;
    }
    const auto detector = DetectorFromName(row.detector);
    ASSERT_TRUE(detector.has_value()) << "unknown detector " << row.detector;
    auto& redactor = alone[row.detector];
    if (!redactor) redactor = OnlyDetector(*detector);
    std::string value = row.text;
    const bool changed = redactor->RedactString("", value);
    if (row.positive) {
      const bool ok = changed && value.find(row.expect) == std::string::npos;
      EXPECT_TRUE(ok) << row.detector << " missed '" << row.expect << "', output: " << value;
      ++(ok ? score.tp : score.fn);
      std::string all = row.text;
      gdpr->RedactString("", all);
      EXPECT_EQ(all.find(row.expect), std::string::npos) << "gdpr profile output: " << all;
    } else {
      EXPECT_FALSE(changed) << row.detector << " false positive, output: " << value;
      ++(changed ? score.fp : score.tn);
    }
  }
  std::ostringstream table;
  table << std::left << std::setw(18) << "detector"
        << " pos  neg  precision  recall\n";
  for (const auto& [name, s] : scores) {
    const double precision = s.tp + s.fp == 0 ? 1.0 : double(s.tp) / (s.tp + s.fp);
    const double recall = s.tp + s.fn == 0 ? 1.0 : double(s.tp) / (s.tp + s.fn);
    table << std::left << std::setw(18) << name << std::right << std::setw(4) << s.tp + s.fn
          << std::setw(5) << s.fp + s.tn << std::setw(11) << std::fixed << std::setprecision(3)
          << precision << std::setw(8) << recall << "\n";
    if (name != "*") {
      EXPECT_GE(s.tp + s.fn, 15) << name << " needs at least 15 positives";
      EXPECT_GE(s.fp + s.tn, 4) << name << " needs hard negatives";
      EXPECT_EQ(s.fn, 0) << name << " recall below 1.0";
    }
    EXPECT_EQ(s.fp, 0) << name << " has false positives";
  }
  std::cout << table.str();
}

TEST(CorpusTest, EveryValueDetectorIsCovered) {
  const std::vector<Row> rows = LoadCorpus();
  for (size_t i = 0; i < kValueDetectorCount; ++i) {
    const std::string name(DetectorName(static_cast<Detector>(i)));
    int positives = 0;
    for (const Row& row : rows) positives += row.detector == name && row.positive ? 1 : 0;
    EXPECT_GE(positives, 15) << name;
  }
}

}  // namespace
}  // namespace djtrace::pii
