// Repeated task sends in QueryStats: one Celery task sent many times from one line of one root.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "analysis/query_stats.h"
#include "attributes_util.h"

namespace djtrace::analysis {
namespace {

using testing::Find;
using testing::IntAttr;
using testing::StrAttr;

std::vector<const Event*> EventsNamed(const SpanData& span, std::string_view name) {
  std::vector<const Event*> out;
  for (const Event& e : span.events)
    if (e.name == name) out.push_back(&e);
  return out;
}

class TaskSendStatsTest : public ::testing::Test {
 protected:
  std::shared_ptr<const CodeLocation> handle_ =
      MakeCodeLocation("/srv/app/orders/management/commands/process.py", "Command.handle");
  CallSite loop_site_ = CallSite::Make(handle_, 42);
  CallSite other_site_ = CallSite::Make(handle_, 57);
  SpanLimits limits_;
  static constexpr std::string_view kTask = "orders.tasks.process_order";
};

TEST_F(TaskSendStatsTest, GroupBecomesRepeatedAtThresholdExactlyOnce) {
  QueryStats stats({}, limits_);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(stats.RecordTaskSend(kTask, loop_site_, 100 + i));
  EXPECT_TRUE(stats.RepeatedTaskSends().empty());
  TaskSendGroup crossed;
  EXPECT_TRUE(stats.RecordTaskSend(kTask, loop_site_, 104, &crossed));
  EXPECT_EQ(crossed.task_name, kTask);
  EXPECT_EQ(crossed.count, 5u);
  EXPECT_EQ(crossed.site.lineno, 42);
  EXPECT_EQ(crossed.site.code->function, "Command.handle");
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(stats.RecordTaskSend(kTask, loop_site_, 105 + i));
  auto repeated = stats.RepeatedTaskSends();
  ASSERT_EQ(repeated.size(), 1u);
  EXPECT_EQ(repeated[0].count, 12u);
  EXPECT_EQ(repeated[0].flagged_at_unix_nano, 104u);
  QueryStatsSummary s = stats.Summary();
  EXPECT_EQ(s.task_send_count, 12u);
  EXPECT_EQ(s.repeated_task_send_groups, 1u);
  EXPECT_EQ(s.query_count, 0u);
}

TEST_F(TaskSendStatsTest, GroupsByTaskNameAndCallSite) {
  QueryStatsOptions o;
  o.task_send_threshold = 3;
  QueryStats stats(o, limits_);
  // Two sends of the task from each of two lines, and two of another task from the loop's line:
  // no group reaches 3, although the task was sent 4 times and the line sent 4 messages.
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(stats.RecordTaskSend(kTask, loop_site_));
    EXPECT_FALSE(stats.RecordTaskSend(kTask, other_site_));
    EXPECT_FALSE(stats.RecordTaskSend("orders.tasks.notify", loop_site_));
  }
  EXPECT_TRUE(stats.RecordTaskSend(kTask, other_site_));
  EXPECT_TRUE(stats.RecordTaskSend(kTask, loop_site_));
  auto repeated = stats.RepeatedTaskSends();
  ASSERT_EQ(repeated.size(), 2u);
  EXPECT_EQ(repeated[0].site.lineno, 57);  // in the order the groups crossed
  EXPECT_EQ(repeated[1].site.lineno, 42);
  EXPECT_EQ(stats.Summary().task_send_count, 8u);
}

TEST_F(TaskSendStatsTest, UnknownCallSiteStillGroups) {
  QueryStatsOptions o;
  o.task_send_threshold = 2;
  QueryStats stats(o, limits_);
  CallSite unknown;
  EXPECT_FALSE(stats.RecordTaskSend(kTask, unknown));
  TaskSendGroup g;
  EXPECT_TRUE(stats.RecordTaskSend(kTask, unknown, 0, &g));
  EXPECT_FALSE(g.site.known());
  SpanData root;
  root.end_time_unix_nano = 9;
  stats.OnRootEnd(root);
  auto events = EventsNamed(root, "djtrace.celery.repeated_send");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]->time_unix_nano, 9u);  // no time given: the root's end
  EXPECT_EQ(Find(events[0]->attributes, "code.filepath"), nullptr);
}

TEST_F(TaskSendStatsTest, ThresholdZeroTurnsDetectionOff) {
  QueryStatsOptions o;
  o.task_send_threshold = 0;
  QueryStats stats(o, limits_);
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(stats.RecordTaskSend(kTask, loop_site_));
  EXPECT_TRUE(stats.RepeatedTaskSends().empty());
  SpanData root;
  stats.OnRootEnd(root);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.celery.send_count"), 50);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.celery.repeated_send.count"), 0);
  EXPECT_TRUE(EventsNamed(root, "djtrace.celery.repeated_send").empty());
}

TEST_F(TaskSendStatsTest, GroupsAreBounded) {
  QueryStatsOptions o;
  o.task_send_threshold = 2;
  o.max_task_send_groups = 3;
  QueryStats stats(o, limits_);
  int crossings = 0;
  for (int round = 0; round < 2; ++round)
    for (int t = 0; t < 10; ++t)
      crossings += stats.RecordTaskSend("tasks.t" + std::to_string(t), loop_site_);
  EXPECT_EQ(crossings, 3);
  QueryStatsSummary s = stats.Summary();
  EXPECT_EQ(s.task_send_count, 20u);
  EXPECT_EQ(s.ungrouped_task_sends, 14u);  // 7 tasks beyond the cap, twice
  EXPECT_EQ(s.repeated_task_send_groups, 3u);
}

TEST_F(TaskSendStatsTest, LongTaskNamesAreCutButStillTellGroupsApart) {
  QueryStatsOptions o;
  o.task_send_threshold = 2;
  QueryStats stats(o, limits_);
  const std::string prefix(1000, 'x');
  TaskSendGroup a, b;
  stats.RecordTaskSend(prefix + "a", loop_site_);
  stats.RecordTaskSend(prefix + "b", loop_site_);
  EXPECT_TRUE(stats.RecordTaskSend(prefix + "a", loop_site_, 0, &a));
  EXPECT_TRUE(stats.RecordTaskSend(prefix + "b", loop_site_, 0, &b));
  EXPECT_EQ(a.task_name.size(), QueryStats::kMaxTaskNameChars);
  EXPECT_EQ(a.count, 2u);
  EXPECT_EQ(b.count, 2u);
}

TEST_F(TaskSendStatsTest, RootAttributesAndEvent) {
  QueryStats stats({}, limits_);
  for (int i = 0; i < 6; ++i) stats.RecordTaskSend(kTask, loop_site_, 1000 + i);
  stats.RecordTaskSend("orders.tasks.notify", loop_site_, 2000);
  SpanData root;
  root.end_time_unix_nano = 5000;
  stats.OnRootEnd(root);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.celery.send_count"), 7);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.celery.repeated_send.count"), 1);
  auto events = EventsNamed(root, "djtrace.celery.repeated_send");
  ASSERT_EQ(events.size(), 1u);
  const Event& e = *events[0];
  EXPECT_EQ(e.time_unix_nano, 1004u);  // when the group crossed
  EXPECT_EQ(StrAttr(e.attributes, "celery.task_name"), kTask);
  EXPECT_EQ(IntAttr(e.attributes, "djtrace.celery.repeated_send.count"), 6);
  EXPECT_EQ(StrAttr(e.attributes, "code.filepath"),
            "/srv/app/orders/management/commands/process.py");
  EXPECT_EQ(IntAttr(e.attributes, "code.lineno"), 42);
  EXPECT_EQ(StrAttr(e.attributes, "code.function"), "Command.handle");
  // A second end does not double up.
  stats.OnRootEnd(root);
  EXPECT_EQ(EventsNamed(root, "djtrace.celery.repeated_send").size(), 1u);
}

TEST_F(TaskSendStatsTest, NoSendsWriteNoTaskAttributes) {
  QueryStats stats({}, limits_);
  SpanData root;
  stats.OnRootEnd(root);
  EXPECT_EQ(Find(root.attributes, "djtrace.celery.send_count"), nullptr);
  EXPECT_EQ(Find(root.attributes, "djtrace.celery.repeated_send.count"), nullptr);
}

TEST_F(TaskSendStatsTest, EventsAreBoundedAndRespectSpanLimits) {
  SpanLimits tight;
  tight.max_events = 3;
  tight.max_event_attributes = 3;
  tight.max_attribute_length = 8;
  QueryStatsOptions o;
  o.task_send_threshold = 2;
  o.max_reported_groups = 4;
  QueryStats stats(o, tight);
  for (int t = 0; t < 6; ++t) {
    const std::string name = "orders.tasks.number_" + std::to_string(t);
    stats.RecordTaskSend(name, loop_site_);
    stats.RecordTaskSend(name, loop_site_);
  }
  EXPECT_EQ(stats.Summary().repeated_task_send_groups, 6u);
  SpanData root;
  stats.OnRootEnd(root);
  EXPECT_EQ(IntAttr(root.attributes, "djtrace.celery.repeated_send.count"), 6);
  // 4 reported groups into room for 3: the oldest went.
  ASSERT_EQ(root.events.size(), 3u);
  EXPECT_EQ(root.dropped_events_count, 1u);
  for (const Event& e : root.events) {
    EXPECT_EQ(e.name, "djtrace.celery.repeated_send");
    EXPECT_EQ(e.attributes.size(), 3u);
    EXPECT_GT(e.dropped_attributes_count, 0u);
    for (const auto& a : e.attributes)
      if (auto* s = std::get_if<std::string>(&a.value)) EXPECT_LE(s->size(), 8u);
  }
}

TEST_F(TaskSendStatsTest, SendsAfterTheRootEndedAreCountedNotFlagged) {
  QueryStatsOptions o;
  o.task_send_threshold = 2;
  QueryStats stats(o, limits_);
  stats.RecordTaskSend(kTask, loop_site_);
  SpanData root;
  stats.OnRootEnd(root);
  EXPECT_FALSE(stats.RecordTaskSend(kTask, loop_site_));
  EXPECT_EQ(stats.Summary().task_send_count, 2u);
  EXPECT_EQ(stats.Summary().repeated_task_send_groups, 0u);
}

}  // namespace
}  // namespace djtrace::analysis
