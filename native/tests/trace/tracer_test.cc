#include "trace/tracer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "trace/clock.h"
#include "trace/memory_exporter.h"

namespace djtrace {
namespace {

using namespace std::chrono_literals;

// Keeps every span that reaches it; flush and shutdown only count.
class RecordingProcessor final : public SpanProcessor {
 public:
  void OnEnd(SpanPtr span) noexcept override { spans.push_back(std::move(span)); }
  bool ForceFlush(std::chrono::milliseconds) noexcept override {
    ++flushes;
    return true;
  }
  bool Shutdown(std::chrono::milliseconds) noexcept override {
    ++shutdowns;
    return true;
  }
  std::vector<SpanPtr> spans;
  int flushes = 0;
  int shutdowns = 0;
};

class TracerTest : public ::testing::Test {
 protected:
  void MakeCore(std::shared_ptr<const Sampler> sampler, SpanLimits limits = {}) {
    core_ = std::make_shared<TracerCore>(std::move(sampler), resource_, limits);
    core_->AddProcessor(processor_);
  }
  void SetUp() override {
    resource_ = std::make_shared<Resource>();
    resource_->attributes.push_back(Attribute{"service.name", std::string("test")});
    scope_ = std::make_shared<InstrumentationScope>();
    scope_->name = "tracer_test";
    processor_ = std::make_shared<RecordingProcessor>();
    MakeCore(std::make_shared<AlwaysOnSampler>());
  }

  // A new core whose only processor is a batch processor (exporting on flush) to the result.
  std::shared_ptr<InMemoryExporter> UseBatchExporter() {
    auto exporter = std::make_shared<InMemoryExporter>();
    BatchOptions options;
    options.schedule_delay = std::chrono::seconds(60);
    core_ =
        std::make_shared<TracerCore>(std::make_shared<AlwaysOnSampler>(), resource_, SpanLimits{});
    core_->AddProcessor(std::make_shared<BatchSpanProcessor>(exporter, options));
    return exporter;
  }
  void Start(LiveSpan& span, StartOptions options) {
    SpanStarter::Start(core_, scope_, std::move(options), span);
  }
  StartOptions Named(const std::string& name, const SpanContextData* parent = nullptr) {
    StartOptions o;
    o.name = name;
    o.parent = parent;
    return o;
  }

  std::shared_ptr<Resource> resource_;
  std::shared_ptr<InstrumentationScope> scope_;
  std::shared_ptr<RecordingProcessor> processor_;
  std::shared_ptr<TracerCore> core_;
};

SpanContextData Context(uint8_t trace_byte, uint8_t span_byte, uint8_t flags, bool remote,
                        std::string trace_state = "") {
  SpanContextData c;
  c.trace_id.fill(trace_byte);
  c.span_id.fill(span_byte);
  c.trace_flags = flags;
  c.remote = remote;
  c.trace_state = std::move(trace_state);
  return c;
}

TEST_F(TracerTest, UnsampledRootIsValidRecordsNothingAndIsNotCounted) {
  LiveSpan a, b;
  SpanStarter::Unsampled(a);
  SpanStarter::Unsampled(b);
  for (const LiveSpan* s : {&a, &b}) {
    EXPECT_TRUE(s->context().valid());
    EXPECT_FALSE(s->context().sampled());
    EXPECT_FALSE(s->context().remote);
    EXPECT_FALSE(s->is_recording());
    EXPECT_TRUE(s->is_local_root());
  }
  EXPECT_NE(a.context().trace_id, b.context().trace_id);
  EXPECT_NE(a.context().span_id, b.context().span_id);
  a.End(NowUnixNano());
  EXPECT_TRUE(processor_->spans.empty());
  EXPECT_EQ(core_->counters().spans_started.load(), 0u);
  EXPECT_EQ(core_->counters().spans_sampled_out.load(), 0u);

  // A span started under it is not sampled by the parent-based default.
  MakeCore(std::make_shared<ParentBasedSampler>(std::make_shared<AlwaysOnSampler>()));
  LiveSpan child;
  Start(child, Named("child", &a.context()));
  EXPECT_FALSE(child.is_recording());
  EXPECT_EQ(child.context().trace_id, a.context().trace_id);
}

TEST_F(TracerTest, RootSpanHasANewTraceAndTheKnownLocalFlag) {
  LiveSpan span;
  Start(span, Named("root"));
  ASSERT_TRUE(span.is_recording());
  const SpanData* d = span.data();
  EXPECT_FALSE(IsZero(d->trace_id));
  EXPECT_FALSE(IsZero(d->span_id));
  EXPECT_TRUE(IsZero(d->parent_span_id));
  EXPECT_TRUE(IsZero(span.parent_span_id()));
  EXPECT_EQ(d->flags, 0x101u);  // sampled, is-remote known, parent not remote
  EXPECT_EQ(d->name, "root");
  EXPECT_EQ(d->kind, SpanKind::kInternal);
  EXPECT_EQ(d->scope, scope_);
  EXPECT_EQ(d->resource, resource_);
  EXPECT_EQ(span.context().trace_id, d->trace_id);
  EXPECT_EQ(span.context().span_id, d->span_id);
  EXPECT_TRUE(span.context().sampled());
  EXPECT_FALSE(span.context().remote);
  EXPECT_TRUE(span.context().valid());

  LiveSpan other;
  Start(other, Named("root2"));
  EXPECT_NE(other.context().trace_id, span.context().trace_id);
}

TEST_F(TracerTest, ChildOfALocalParentContinuesItsTrace) {
  LiveSpan parent;
  Start(parent, Named("parent"));
  LiveSpan child;
  Start(child, Named("child", &parent.context()));
  const SpanData* d = child.data();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->trace_id, parent.context().trace_id);
  EXPECT_EQ(d->parent_span_id, parent.context().span_id);
  EXPECT_EQ(child.parent_span_id(), parent.context().span_id);
  EXPECT_NE(d->span_id, parent.context().span_id);
  EXPECT_EQ(d->flags, 0x101u);
}

TEST_F(TracerTest, ChildOfARemoteParentSetsTheRemoteBitAndKeepsTraceState) {
  const SpanContextData remote = Context(0x4B, 0x0F, 0x01, true, "rojo=00f067aa0ba902b7");
  LiveSpan span;
  Start(span, Named("server", &remote));
  const SpanData* d = span.data();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->trace_id, remote.trace_id);
  EXPECT_EQ(d->parent_span_id, remote.span_id);
  EXPECT_EQ(d->flags, 0x301u);
  EXPECT_EQ(d->trace_state, "rojo=00f067aa0ba902b7");
  EXPECT_EQ(span.context().trace_state, "rojo=00f067aa0ba902b7");
  EXPECT_FALSE(span.context().remote);  // the new span itself is local
}

TEST_F(TracerTest, AnInvalidParentMakesARootSpan) {
  SpanContextData invalid = Context(0, 0x0F, 0x01, true, "a=b");
  LiveSpan span;
  Start(span, Named("root", &invalid));
  const SpanData* d = span.data();
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE(IsZero(d->trace_id));
  EXPECT_TRUE(IsZero(d->parent_span_id));
  EXPECT_EQ(d->flags, 0x101u);
  EXPECT_EQ(d->trace_state, "");
}

TEST_F(TracerTest, ParentBasedFollowsTheParentFlags) {
  MakeCore(nullptr);  // the default: ParentBased(AlwaysOn)
  EXPECT_EQ(core_->sampler()->Description().rfind("ParentBased{root:AlwaysOnSampler", 0), 0u);
  const SpanContextData not_sampled = Context(0x4B, 0x0F, 0x00, true);
  LiveSpan dropped;
  Start(dropped, Named("dropped", &not_sampled));
  EXPECT_FALSE(dropped.is_recording());
  EXPECT_EQ(dropped.context().trace_id, not_sampled.trace_id);
  EXPECT_EQ(dropped.context().trace_flags, 0);

  const SpanContextData sampled = Context(0x4B, 0x0F, 0x01, false);
  LiveSpan kept;
  Start(kept, Named("kept", &sampled));
  ASSERT_TRUE(kept.is_recording());
  EXPECT_EQ(kept.data()->flags, 0x101u);
}

TEST_F(TracerTest, SpansThatAreNotSampledStoreNothing) {
  MakeCore(std::make_shared<AlwaysOffSampler>());
  LiveSpan span;
  StartOptions o = Named("dropped");
  o.attributes.push_back(Attribute{"k", int64_t{1}});
  Start(span, std::move(o));
  EXPECT_FALSE(span.is_recording());
  EXPECT_EQ(span.data(), nullptr);
  EXPECT_TRUE(span.context().valid());  // still propagates a context
  EXPECT_FALSE(span.context().sampled());
  span.SetAttribute("a", int64_t{1});
  span.AddEvent("e", 0, {});
  span.SetStatus(StatusCode::kError, "x");
  span.End();
  EXPECT_TRUE(span.has_ended());
  EXPECT_TRUE(processor_->spans.empty());
  EXPECT_EQ(core_->counters().spans_started.load(), 1u);
  EXPECT_EQ(core_->counters().spans_sampled_out.load(), 1u);
  EXPECT_EQ(core_->counters().calls_after_end.load(), 0u);
}

TEST_F(TracerTest, ADecisionMadeInPythonOverridesTheSampler) {
  MakeCore(std::make_shared<AlwaysOffSampler>());
  TraceId chosen;
  chosen.fill(0x77);
  StartOptions o = Named("python-sampled");
  o.decision = SamplingDecision::kRecordAndSample;
  o.trace_id = chosen;
  o.trace_state_override = "congo=t61rcWkgMzE";
  o.has_trace_state_override = true;
  LiveSpan span;
  Start(span, std::move(o));
  ASSERT_TRUE(span.is_recording());
  EXPECT_EQ(span.data()->trace_id, chosen);
  EXPECT_EQ(span.data()->trace_state, "congo=t61rcWkgMzE");
  EXPECT_EQ(span.data()->flags, 0x101u);
  EXPECT_EQ(core_->counters().spans_sampled_out.load(), 0u);

  // The other way round: a drop overrides an always-on sampler.
  MakeCore(std::make_shared<AlwaysOnSampler>());
  StartOptions drop = Named("python-dropped");
  drop.decision = SamplingDecision::kDrop;
  LiveSpan dropped;
  Start(dropped, std::move(drop));
  EXPECT_FALSE(dropped.is_recording());
}

TEST_F(TracerTest, DecideTakesTheDecisionStartThenKeeps) {
  MakeCore(std::make_shared<ParentBasedSampler>(std::make_shared<TraceIdRatioBasedSampler>(0.5)));
  int recorded = 0;
  for (int i = 0; i < 64; ++i) {
    StartOptions o = Named("root");
    const SamplingDecision decision = SpanStarter::Decide(*core_, o);
    ASSERT_TRUE(o.decision.has_value());
    ASSERT_TRUE(o.trace_id.has_value());
    EXPECT_EQ(*o.decision, decision);
    EXPECT_EQ(SpanStarter::Decide(*core_, o), decision);  // decided once
    const TraceId trace_id = *o.trace_id;
    LiveSpan span;
    Start(span, std::move(o));
    EXPECT_EQ(span.context().trace_id, trace_id);
    EXPECT_EQ(span.is_recording(), decision != SamplingDecision::kDrop);
    EXPECT_EQ(span.context().sampled(), decision == SamplingDecision::kRecordAndSample);
    recorded += span.is_recording();
  }
  EXPECT_GT(recorded, 0);  // both outcomes came up (2^-64 odds against each)
  EXPECT_LT(recorded, 64);
  EXPECT_EQ(core_->counters().spans_started.load(), 64u);  // Decide counts nothing
  EXPECT_EQ(core_->counters().spans_sampled_out.load(), 64u - recorded);

  // Under a parent: the parent's trace and flags, no trace id drawn.
  const SpanContextData not_sampled = Context(0x4B, 0x0F, 0x00, true);
  StartOptions child = Named("child", &not_sampled);
  EXPECT_EQ(SpanStarter::Decide(*core_, child), SamplingDecision::kDrop);
  EXPECT_FALSE(child.trace_id.has_value());
  const SpanContextData sampled = Context(0x4C, 0x0F, 0x01, false);
  StartOptions kept = Named("kept", &sampled);
  EXPECT_EQ(SpanStarter::Decide(*core_, kept), SamplingDecision::kRecordAndSample);
  LiveSpan span;
  Start(span, std::move(kept));
  ASSERT_TRUE(span.is_recording());
  EXPECT_EQ(span.context().trace_id, sampled.trace_id);
}

TEST_F(TracerTest, ATraceIdOverrideIsIgnoredUnderAValidParent) {
  const SpanContextData parent = Context(0x4B, 0x0F, 0x01, false, "a=1");
  TraceId chosen;
  chosen.fill(0x77);
  StartOptions o = Named("child", &parent);
  o.decision = SamplingDecision::kRecordAndSample;
  o.trace_id = chosen;
  LiveSpan span;
  Start(span, std::move(o));
  ASSERT_TRUE(span.is_recording());
  EXPECT_EQ(span.data()->trace_id, parent.trace_id);
  EXPECT_EQ(span.data()->trace_state, "a=1");  // no override asked for
}

TEST_F(TracerTest, RecordOnlyRecordsButIsNotSampled) {
  auto exporter = std::make_shared<InMemoryExporter>();
  core_->AddProcessor(std::make_shared<SimpleSpanProcessor>(exporter));
  StartOptions o = Named("record-only");
  o.decision = SamplingDecision::kRecordOnly;
  LiveSpan span;
  Start(span, std::move(o));
  ASSERT_TRUE(span.is_recording());
  EXPECT_FALSE(span.context().sampled());
  EXPECT_EQ(span.data()->flags, 0x100u);
  span.End();
  // In-process processors see it; the exporting processor does not export it.
  ASSERT_EQ(processor_->spans.size(), 1u);
  EXPECT_EQ(processor_->spans[0]->name, "record-only");
  EXPECT_TRUE(exporter->Snapshot().empty());
}

TEST_F(TracerTest, StartAttributesAndLinksFollowTheLimits) {
  SpanLimits limits;
  limits.max_attributes = 2;
  limits.max_attribute_length = 3;
  limits.max_links = 1;
  limits.max_link_attributes = 1;
  MakeCore(std::make_shared<AlwaysOnSampler>(), limits);
  StartOptions o = Named("limited");
  o.kind = SpanKind::kServer;
  o.attributes.push_back(Attribute{"a", std::string("abcdef")});
  o.attributes.push_back(Attribute{"b", int64_t{2}});
  o.attributes.push_back(Attribute{"c", int64_t{3}});
  o.links.emplace_back(Context(0x01, 0x02, 0x01, true, "x=y"),
                       Attributes{Attribute{"l1", true}, Attribute{"l2", true}});
  o.links.emplace_back(Context(0x03, 0x04, 0x00, false),
                       Attributes{Attribute{"l3", std::string("long value")}});
  LiveSpan span;
  Start(span, std::move(o));
  const SpanData* d = span.data();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->kind, SpanKind::kServer);
  ASSERT_EQ(d->attributes.size(), 2u);
  EXPECT_EQ(d->attributes[0].key, "b");
  EXPECT_EQ(d->attributes[1].key, "c");
  EXPECT_EQ(d->dropped_attributes_count, 1u);
  ASSERT_EQ(d->links.size(), 1u);
  EXPECT_EQ(d->dropped_links_count, 1u);
  const Link& link = d->links[0];  // the newest one is kept
  EXPECT_EQ(link.span_id[0], 0x04);
  EXPECT_EQ(link.flags, 0x100u);  // not sampled, known local
  ASSERT_EQ(link.attributes.size(), 1u);
  EXPECT_EQ(std::get<std::string>(link.attributes[0].value), "lon");
}

TEST_F(TracerTest, SpanAndEventOrLinkValueLengthLimitsAreApart) {
  // OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT for the span's own attributes,
  // OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT for those of events and links, as the official SDK has.
  SpanLimits limits;
  limits.max_span_attribute_length = 2;
  limits.max_attribute_length = 4;
  MakeCore(std::make_shared<AlwaysOnSampler>(), limits);
  StartOptions o = Named("lengths");
  o.attributes.push_back(Attribute{"start", std::string("abcdefgh")});
  o.links.emplace_back(Context(0x01, 0x02, 0x01, false),
                       Attributes{Attribute{"link", std::string("abcdefgh")}});
  LiveSpan span;
  Start(span, std::move(o));
  span.SetAttribute("later", std::vector<std::string>{"abcdefgh", "x"});
  span.AddEvent("e", 0, {Attribute{"event", std::string("abcdefgh")}});
  span.AddLink(Context(0x03, 0x04, 0x01, false), {Attribute{"added", std::string("abcdefgh")}});
  const SpanData* d = span.data();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(std::get<std::string>(d->attributes[0].value), "ab");
  EXPECT_EQ(std::get<std::vector<std::string>>(d->attributes[1].value),
            (std::vector<std::string>{"ab", "x"}));
  EXPECT_EQ(std::get<std::string>(d->events[0].attributes[0].value), "abcd");
  EXPECT_EQ(std::get<std::string>(d->links[0].attributes[0].value), "abcd");
  EXPECT_EQ(std::get<std::string>(d->links[1].attributes[0].value), "abcd");
}

TEST_F(TracerTest, LinkFlagsCarryTraceFlagsAndRemoteness) {
  StartOptions o = Named("linked");
  o.links.emplace_back(Context(0x01, 0x02, 0x01, true, "x=y"), Attributes{});
  LiveSpan span;
  Start(span, std::move(o));
  ASSERT_EQ(span.data()->links.size(), 1u);
  EXPECT_EQ(span.data()->links[0].flags, 0x301u);
  EXPECT_EQ(span.data()->links[0].trace_state, "x=y");

  span.AddLink(Context(0x05, 0x06, 0x00, false), {Attribute{"k", int64_t{1}}});
  span.AddLink(SpanContextData{}, {});  // invalid: ignored
  ASSERT_EQ(span.data()->links.size(), 2u);
  EXPECT_EQ(span.data()->links[1].flags, 0x100u);
  EXPECT_EQ(span.data()->links[1].attributes.size(), 1u);
}

TEST_F(TracerTest, StartTimeIsGivenOrNow) {
  StartOptions o = Named("timed");
  o.start_time_unix_nano = 1234;
  LiveSpan timed;
  Start(timed, std::move(o));
  EXPECT_EQ(timed.data()->start_time_unix_nano, 1234u);

  const uint64_t before = NowUnixNano();
  LiveSpan now;
  Start(now, Named("now"));
  const uint64_t after = NowUnixNano();
  EXPECT_GE(now.data()->start_time_unix_nano, before);
  EXPECT_LE(now.data()->start_time_unix_nano, after);
}

TEST_F(TracerTest, LiveSpanBuildsUnderTheLimits) {
  SpanLimits limits;
  limits.max_attributes = 2;
  limits.max_events = 1;
  limits.max_event_attributes = 1;
  MakeCore(std::make_shared<AlwaysOnSampler>(), limits);
  LiveSpan span;
  Start(span, Named("live"));
  span.SetAttribute("a", int64_t{1});
  span.SetAttribute("b", int64_t{2});
  span.SetAttribute("a", int64_t{3});
  span.SetAttribute("c", int64_t{4});
  span.AddEvent("first", 10, {});
  span.AddEvent("second", 0, {Attribute{"x", true}, Attribute{"y", true}});
  span.UpdateName("renamed");
  span.SetStatus(StatusCode::kError, "bad");
  const SpanData* d = span.data();
  ASSERT_EQ(d->attributes.size(), 2u);
  EXPECT_EQ(d->attributes[0].key, "a");
  EXPECT_EQ(d->attributes[1].key, "c");
  EXPECT_EQ(d->dropped_attributes_count, 1u);
  ASSERT_EQ(d->events.size(), 1u);
  EXPECT_EQ(d->events[0].name, "second");
  EXPECT_GT(d->events[0].time_unix_nano, 0u);  // 0 means now
  EXPECT_EQ(d->events[0].attributes.size(), 1u);
  EXPECT_EQ(d->events[0].dropped_attributes_count, 1u);
  EXPECT_EQ(d->dropped_events_count, 1u);
  EXPECT_EQ(d->name, "renamed");
  EXPECT_EQ(d->status_code, StatusCode::kError);
  EXPECT_EQ(d->status_message, "bad");
}

TEST_F(TracerTest, EndHandsTheSpanToTheProcessorsOnce) {
  LiveSpan span;
  Start(span, Named("ended"));
  span.End(5000);
  EXPECT_TRUE(span.has_ended());
  EXPECT_FALSE(span.is_recording());
  ASSERT_EQ(processor_->spans.size(), 1u);
  EXPECT_EQ(processor_->spans[0]->end_time_unix_nano, 5000u);
  span.End(6000);
  span.End();
  EXPECT_EQ(processor_->spans.size(), 1u);
  EXPECT_EQ(processor_->spans[0]->end_time_unix_nano, 5000u);
  EXPECT_EQ(core_->counters().spans_ended_twice.load(), 2u);
}

TEST_F(TracerTest, ANameReferenceIsCopiedAndWinsOverTheOwnedName) {
  std::string source = "django.contrib.sessions.middleware.SessionMiddleware";
  StartOptions o = Named("owned name, not used");
  o.name_ref = source;
  LiveSpan span;
  Start(span, std::move(o));
  source.assign(source.size(), 'x');  // the span must hold its own copy
  span.End(10);
  StartOptions plain = Named("owned name");
  LiveSpan second;
  Start(second, std::move(plain));
  second.End(20);
  ASSERT_EQ(processor_->spans.size(), 2u);
  EXPECT_EQ(processor_->spans[0]->name, "django.contrib.sessions.middleware.SessionMiddleware");
  EXPECT_EQ(processor_->spans[1]->name, "owned name");
}

TEST_F(TracerTest, EndWithoutATimeUsesNow) {
  LiveSpan span;
  Start(span, Named("ended"));
  const uint64_t before = NowUnixNano();
  span.End();
  ASSERT_EQ(processor_->spans.size(), 1u);
  EXPECT_GE(processor_->spans[0]->end_time_unix_nano, before);
  EXPECT_LE(processor_->spans[0]->end_time_unix_nano, NowUnixNano());
}

TEST_F(TracerTest, CallsAfterEndAreIgnoredAndCounted) {
  LiveSpan span;
  Start(span, Named("ended"));
  span.End();
  span.SetAttribute("late", int64_t{1});
  span.AddEvent("late", 0, {});
  span.AddLink(Context(1, 2, 1, false), {});
  span.UpdateName("late");
  span.SetStatus(StatusCode::kError, "late");
  EXPECT_EQ(core_->counters().calls_after_end.load(), 5u);
  ASSERT_EQ(processor_->spans.size(), 1u);
  const SpanData& d = *processor_->spans[0];
  EXPECT_EQ(d.name, "ended");
  EXPECT_TRUE(d.attributes.empty());
  EXPECT_TRUE(d.events.empty());
  EXPECT_TRUE(d.links.empty());
  EXPECT_EQ(d.status_code, StatusCode::kUnset);
}

TEST_F(TracerTest, AnEndedSpanIsReadOnlyBeforeItIsSubmitted) {
  // Processors written in Python look at the span between MarkEnded and Submit; a change made
  // then must not reach the export, as opentelemetry-sdk ignores changes to an ended span.
  LiveSpan span;
  Start(span, Named("ended"));
  span.SetAttribute("before", int64_t{1});
  EXPECT_TRUE(span.MarkEnded(777));
  EXPECT_FALSE(span.MarkEnded(888));
  ASSERT_NE(span.data(), nullptr);
  EXPECT_EQ(span.data()->end_time_unix_nano, 777u);
  span.SetAttribute("after", int64_t{2});
  span.UpdateName("renamed");
  span.SetStatus(StatusCode::kOk, "");
  span.Submit();
  ASSERT_EQ(processor_->spans.size(), 1u);
  const SpanData& d = *processor_->spans[0];
  ASSERT_EQ(d.attributes.size(), 1u);
  EXPECT_EQ(d.attributes[0].key, "before");
  EXPECT_EQ(d.name, "ended");
  EXPECT_EQ(d.status_code, StatusCode::kUnset);
  EXPECT_EQ(d.end_time_unix_nano, 777u);
  EXPECT_EQ(core_->counters().calls_after_end.load(), 3u);
  EXPECT_EQ(core_->counters().spans_ended_twice.load(), 1u);
  span.Submit();  // the data is gone: nothing more reaches the processors
  EXPECT_EQ(processor_->spans.size(), 1u);
}

TEST_F(TracerTest, DetachEndsWithoutExporting) {
  LiveSpan span;
  Start(span, Named("detached"));
  SpanPtr data = span.Detach();
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->name, "detached");
  EXPECT_TRUE(span.has_ended());
  EXPECT_FALSE(span.is_recording());
  span.End();
  EXPECT_TRUE(processor_->spans.empty());
  EXPECT_EQ(core_->counters().spans_ended_twice.load(), 1u);
}

TEST_F(TracerTest, AShutDownCoreDropsSpansOnEnd) {
  LiveSpan span;
  Start(span, Named("open during shutdown"));
  EXPECT_TRUE(core_->Shutdown(1s));
  EXPECT_TRUE(core_->is_shutdown());
  EXPECT_EQ(processor_->shutdowns, 1);
  span.End();
  EXPECT_TRUE(processor_->spans.empty());
  EXPECT_FALSE(span.is_recording());
  EXPECT_TRUE(core_->Shutdown(1s));  // once only
  EXPECT_EQ(processor_->shutdowns, 1);
}

TEST_F(TracerTest, EveryProcessorReceivesEndedSpans) {
  auto second = std::make_shared<RecordingProcessor>();
  core_->AddProcessor(second);
  LiveSpan span;
  Start(span, Named("both"));
  span.End();
  ASSERT_EQ(processor_->spans.size(), 1u);
  ASSERT_EQ(second->spans.size(), 1u);
  EXPECT_EQ(second->spans[0]->name, "both");
  EXPECT_TRUE(core_->ForceFlush(1s));
  EXPECT_EQ(processor_->flushes, 1);
  EXPECT_EQ(second->flushes, 1);
}

// Counts the root ends it sees and leaves a mark on the root, as query statistics do.
class CountingRootState final : public LocalRootState {
 public:
  void OnRootEnd(SpanData& root) noexcept override {
    ++ends;
    last_root_name = root.name;
    root.attributes.push_back(Attribute{"djtrace.root_state", true});
  }
  int ends = 0;
  std::string last_root_name;
};

TEST_F(TracerTest, LocalRootStateIsHandedDownAndSeesTheRootEnd) {
  auto state = std::make_shared<CountingRootState>();
  LiveSpan root;
  Start(root, Named("request"));
  EXPECT_TRUE(root.is_local_root());
  root.set_root_state(state);

  StartOptions child_options = Named("query", &root.context());
  child_options.local_parent = &root;
  LiveSpan child;
  Start(child, std::move(child_options));
  EXPECT_FALSE(child.is_local_root());
  EXPECT_EQ(child.root_state(), state);

  StartOptions grandchild_options = Named("row", &child.context());
  grandchild_options.local_parent = &child;
  LiveSpan grandchild;
  Start(grandchild, std::move(grandchild_options));
  EXPECT_EQ(grandchild.root_state(), state);

  grandchild.End();
  child.End();
  EXPECT_EQ(state->ends, 0);  // only the root's end counts
  root.End();
  EXPECT_EQ(state->ends, 1);
  EXPECT_EQ(state->last_root_name, "request");
  root.End();
  EXPECT_EQ(state->ends, 1);
  // The state saw the root before the processors did.
  ASSERT_EQ(processor_->spans.size(), 3u);
  const SpanData& exported_root = *processor_->spans[2];
  ASSERT_EQ(exported_root.attributes.size(), 1u);
  EXPECT_EQ(exported_root.attributes[0].key, "djtrace.root_state");
  EXPECT_TRUE(processor_->spans[0]->attributes.empty());
}

TEST_F(TracerTest, ASpanBelowARootCanOwnAStateOfItsOwn) {
  auto outer = std::make_shared<CountingRootState>();
  LiveSpan root;
  Start(root, Named("request"));
  root.set_root_state(outer);
  EXPECT_TRUE(root.owns_root_state());

  StartOptions task_options = Named("task", &root.context());
  task_options.local_parent = &root;
  LiveSpan task;
  Start(task, std::move(task_options));
  EXPECT_EQ(task.root_state(), outer);
  EXPECT_FALSE(task.owns_root_state());  // inherited
  auto inner = std::make_shared<CountingRootState>();
  task.OwnRootState(inner);
  EXPECT_TRUE(task.owns_root_state());
  EXPECT_FALSE(task.is_local_root());

  StartOptions query_options = Named("query", &task.context());
  query_options.local_parent = &task;
  LiveSpan query;
  Start(query, std::move(query_options));
  EXPECT_EQ(query.root_state(), inner);  // spans under it count in its state
  query.End();
  EXPECT_EQ(inner->ends, 0);
  task.End();
  EXPECT_EQ(inner->ends, 1);  // it sees its own end, as a root does
  EXPECT_EQ(inner->last_root_name, "task");
  EXPECT_EQ(outer->ends, 0);

  StartOptions after_options = Named("after", &root.context());
  after_options.local_parent = &root;
  LiveSpan after;
  Start(after, std::move(after_options));
  EXPECT_EQ(after.root_state(), outer);  // the root's own spans are unaffected
  after.End();
  root.End();
  EXPECT_EQ(outer->ends, 1);
  EXPECT_EQ(outer->last_root_name, "request");
}

TEST_F(TracerTest, ARemoteParentStartsANewLocalRoot) {
  const SpanContextData remote = Context(0x4B, 0x0F, 0x01, true);
  LiveSpan span;
  Start(span, Named("server", &remote));
  EXPECT_TRUE(span.is_local_root());
  EXPECT_EQ(span.root_state(), nullptr);
  // A local parent given without a valid parent context is ignored as well.
  LiveSpan other_root;
  Start(other_root, Named("root"));
  auto state = std::make_shared<CountingRootState>();
  other_root.set_root_state(state);
  StartOptions o = Named("orphan");
  o.local_parent = &other_root;
  LiveSpan orphan;
  Start(orphan, std::move(o));
  EXPECT_TRUE(orphan.is_local_root());
  EXPECT_EQ(orphan.root_state(), nullptr);
}

TEST_F(TracerTest, ANonRecordingRootDoesNotCallItsState) {
  MakeCore(std::make_shared<AlwaysOffSampler>());
  auto state = std::make_shared<CountingRootState>();
  LiveSpan root;
  Start(root, Named("dropped"));
  root.set_root_state(state);
  root.End();
  EXPECT_EQ(state->ends, 0);
}

TEST_F(TracerTest, EndToEndThroughABatchProcessor) {
  auto exporter = UseBatchExporter();
  LiveSpan parent;
  Start(parent, Named("parent"));
  LiveSpan child;
  Start(child, Named("child", &parent.context()));
  child.End();
  parent.End();
  ASSERT_TRUE(core_->ForceFlush(5s));
  auto spans = exporter->Take();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].name, "child");
  EXPECT_EQ(spans[0].parent_span_id, spans[1].span_id);
  EXPECT_EQ(spans[0].trace_id, spans[1].trace_id);
  EXPECT_TRUE(core_->Shutdown(5s));
}

// The attributes a span shares with others, in order, then its own (what export sees).
std::vector<std::string> Keys(const SpanData& d) {
  std::vector<std::string> keys;
  if (d.shared_attributes)
    for (const Attribute& a : *d.shared_attributes) keys.push_back(a.key);
  for (const Attribute& a : d.attributes) keys.push_back(a.key);
  return keys;
}

std::shared_ptr<const Attributes> SharedAB() {
  return std::make_shared<const Attributes>(
      Attributes{Attribute{"a", std::string("shared")}, Attribute{"b", int64_t{1}}});
}

SpanLimits ThreeAttributes() {
  SpanLimits limits;
  limits.max_attributes = 3;
  return limits;
}

// A span named "query" that shares SharedAB()'s attributes.
StartOptions SharedQuery() {
  StartOptions o;
  o.name = "query";
  o.shared_attributes = SharedAB();
  return o;
}

TEST_F(TracerTest, SharedAttributesAreReferencedNotCopied) {
  auto shared = SharedAB();
  StartOptions o = Named("query");
  o.shared_attributes = shared;
  o.shared_dropped = 2;
  o.attributes.push_back(Attribute{"own", true});
  LiveSpan span;
  Start(span, std::move(o));
  const SpanData* d = span.data();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->shared_attributes.get(), shared.get());
  EXPECT_EQ(Keys(*d), (std::vector<std::string>{"a", "b", "own"}));
  EXPECT_EQ(d->dropped_attributes_count, 2u);  // what building the shared ones dropped

  span.SetAttribute("rows", int64_t{3});  // a new key: appended, nothing copied
  EXPECT_EQ(d->shared_attributes.get(), shared.get());
  EXPECT_EQ(Keys(*d), (std::vector<std::string>{"a", "b", "own", "rows"}));

  span.End();
  ASSERT_EQ(processor_->spans.size(), 1u);
  SpanData& ended = *processor_->spans[0];
  FlattenAttributes(ended);
  EXPECT_EQ(ended.shared_attributes, nullptr);
  EXPECT_EQ(Keys(ended), (std::vector<std::string>{"a", "b", "own", "rows"}));
  EXPECT_EQ(std::get<std::string>(ended.attributes[0].value), "shared");
  EXPECT_EQ(shared->size(), 2u);  // the shared list itself is never changed
}

TEST_F(TracerTest, ReplacingASharedAttributeFollowsTheUsualRules) {
  auto shared = SharedAB();
  StartOptions o = Named("query");
  o.shared_attributes = shared;
  LiveSpan span;
  Start(span, std::move(o));
  span.SetAttribute("a", std::string("mine"));
  const SpanData* d = span.data();
  EXPECT_EQ(d->shared_attributes, nullptr);
  // A repeated key replaces the value and moves to the end, as opentelemetry-sdk does.
  EXPECT_EQ(Keys(*d), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(std::get<std::string>(d->attributes[1].value), "mine");
  EXPECT_EQ(std::get<std::string>((*shared)[0].value), "shared");
}

TEST_F(TracerTest, SharedAttributesCountTowardsTheLimit) {
  MakeCore(std::make_shared<AlwaysOnSampler>(), ThreeAttributes());
  StartOptions o = SharedQuery();
  LiveSpan span;
  Start(span, std::move(o));
  span.SetAttribute("c", int64_t{3});
  span.SetAttribute("d", int64_t{4});  // the table is full: the oldest ("a") goes
  const SpanData* d = span.data();
  EXPECT_EQ(Keys(*d), (std::vector<std::string>{"b", "c", "d"}));
  EXPECT_EQ(d->dropped_attributes_count, 1u);
}

TEST_F(TracerTest, StartAttributesThatCollideWithSharedOnesAreMergedAtOnce) {
  MakeCore(std::make_shared<AlwaysOnSampler>(), ThreeAttributes());
  StartOptions o = SharedQuery();
  o.attributes.push_back(Attribute{"b", int64_t{2}});
  o.attributes.push_back(Attribute{"c", int64_t{3}});
  o.attributes.push_back(Attribute{"d", int64_t{4}});
  LiveSpan span;
  Start(span, std::move(o));
  const SpanData* d = span.data();
  EXPECT_EQ(d->shared_attributes, nullptr);
  EXPECT_EQ(Keys(*d), (std::vector<std::string>{"b", "c", "d"}));
  EXPECT_EQ(std::get<int64_t>(d->attributes[0].value), 2);
  EXPECT_EQ(d->dropped_attributes_count, 1u);
}

TEST_F(TracerTest, ALocalRootStateSeesSharedAttributesMerged) {
  class Reader final : public LocalRootState {
   public:
    void OnRootEnd(SpanData& root) noexcept override {
      shared_left = root.shared_attributes != nullptr;
      keys = Keys(root);
    }
    bool shared_left = true;
    std::vector<std::string> keys;
  };
  auto state = std::make_shared<Reader>();
  StartOptions o = Named("root query");
  o.shared_attributes = SharedAB();
  LiveSpan span;
  Start(span, std::move(o));
  span.set_root_state(state);
  span.End();
  EXPECT_FALSE(state->shared_left);
  EXPECT_EQ(state->keys, (std::vector<std::string>{"a", "b"}));
}

TEST_F(TracerTest, SharedAttributesReachExportersMerged) {
  auto exporter = UseBatchExporter();
  auto simple = std::make_shared<InMemoryExporter>();
  core_->AddProcessor(std::make_shared<SimpleSpanProcessor>(simple));
  StartOptions o = SharedQuery();
  o.attributes.push_back(Attribute{"own", true});
  LiveSpan span;
  Start(span, std::move(o));
  span.End();
  ASSERT_TRUE(core_->ForceFlush(5s));
  for (auto* e : {exporter.get(), simple.get()}) {
    auto spans = e->Take();
    ASSERT_EQ(spans.size(), 1u);
    EXPECT_EQ(spans[0].shared_attributes, nullptr);
    EXPECT_EQ(Keys(spans[0]), (std::vector<std::string>{"a", "b", "own"}));
  }
  EXPECT_TRUE(core_->Shutdown(5s));
}

TEST_F(TracerTest, LimitedAttributesAreBuiltWithinTheLimitsAndRebuiltWhenTheyChange) {
  SpanLimits limits = ThreeAttributes();
  limits.max_span_attribute_length = 2;
  LimitedAttributes built;
  EXPECT_FALSE(built.Fits(limits));
  built.Build(Attributes{Attribute{"a", std::string("long")}, Attribute{"b", int64_t{1}},
                         Attribute{"c", true}, Attribute{"d", 2.5}},
              limits);
  EXPECT_TRUE(built.Fits(limits));
  ASSERT_EQ(built.attributes->size(), 3u);  // the oldest went
  EXPECT_EQ((*built.attributes)[0].key, "b");
  EXPECT_EQ(built.dropped, 1u);
  built.Build(Attributes{Attribute{"a", std::string("long")}}, limits);
  EXPECT_EQ(std::get<std::string>((*built.attributes)[0].value), "lo");
  EXPECT_FALSE(built.Fits(SpanLimits{}));

  StartOptions o = Named("hook");
  built.ApplyTo(o);
  LiveSpan span;
  Start(span, std::move(o));
  EXPECT_EQ(span.data()->shared_attributes.get(), built.attributes.get());
  EXPECT_EQ(span.data()->dropped_attributes_count, 0u);
}

TEST_F(TracerTest, DetachMergesSharedAttributes) {
  StartOptions o = SharedQuery();
  LiveSpan span;
  Start(span, std::move(o));
  SpanPtr data = span.Detach();
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->shared_attributes, nullptr);
  EXPECT_EQ(Keys(*data), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace djtrace
