#include "analysis/template_lines.h"

#include <gtest/gtest.h>

namespace djtrace::analysis {
namespace {

TEST(TemplateLinesTest, ParsesJinjaDebugInfo) {
  EXPECT_EQ(ParseTemplateLines("2=9&4=15&4=17&6=30"),
            (TemplateLines{{9, 2}, {15, 4}, {17, 4}, {30, 6}}));
  EXPECT_EQ(ParseTemplateLines(""), TemplateLines{});
}

TEST(TemplateLinesTest, LeavesOutWhatIsNotTwoNumbers) {
  EXPECT_EQ(ParseTemplateLines("1=x&=3&7=&a&3=4&-1=2&9999999999=5&&5=6"),
            (TemplateLines{{4, 3}, {6, 5}}));
}

TEST(TemplateLinesTest, SortsByGeneratedLine) {
  EXPECT_EQ(ParseTemplateLines("6=30&2=9"), (TemplateLines{{9, 2}, {30, 6}}));
}

TEST(TemplateLinesTest, MapsAGeneratedLineToTheLastEntryAtOrBeforeIt) {
  const TemplateLines lines = ParseTemplateLines("2=9&4=15&6=30");
  EXPECT_EQ(TemplateLineOf(lines, 1), 1);  // before every entry: Jinja answers 1
  EXPECT_EQ(TemplateLineOf(lines, 9), 2);
  EXPECT_EQ(TemplateLineOf(lines, 14), 2);
  EXPECT_EQ(TemplateLineOf(lines, 15), 4);
  EXPECT_EQ(TemplateLineOf(lines, 29), 4);
  EXPECT_EQ(TemplateLineOf(lines, 300), 6);
  EXPECT_EQ(TemplateLineOf(TemplateLines{}, 12), 1);
}

}  // namespace
}  // namespace djtrace::analysis
