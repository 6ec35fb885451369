"""Native OTLP export against real receivers: retries, failures reported once, collector down
or hanging (the application is never blocked, memory stays bounded, drops are counted exactly,
export resumes), TLS, gzip, headers, and configuration from the environment."""

from __future__ import annotations

import logging
import os
import resource
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support.otlp_receiver import (
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    closed_port,
    self_signed_cert,
)

from djtrace.sdk import BatchSpanProcessor, Resource, SimpleSpanProcessor, TracerProvider
from djtrace.sdk.exporter.otlp_grpc import OTLPSpanExporter as GrpcExporter
from djtrace.sdk.exporter.otlp_http import OTLPSpanExporter as HttpExporter


def _provider(exporter, **bsp) -> TracerProvider:
    provider = TracerProvider(resource=Resource({"service.name": "export-test"}),
                              shutdown_on_exit=False)
    bsp.setdefault("schedule_delay_millis", 20)
    provider.add_span_processor(BatchSpanProcessor(exporter, **bsp))
    return provider


def _emit(provider: TracerProvider, n: int, prefix: str = "s") -> None:
    tracer = provider.get_tracer("t")
    for i in range(n):
        with tracer.start_as_current_span(f"{prefix}{i}") as span:
            span.set_attribute("i", i)


def test_retry_on_503_then_success() -> None:
    with OtlpHttpReceiver(responses=[503, 503], retry_after="0") as receiver:
        exporter = HttpExporter(endpoint=receiver.endpoint)
        provider = _provider(exporter)
        _emit(provider, 10)
        assert provider.force_flush(20000)
        assert receiver.received.span_count() == 10
        assert receiver.attempts == 3
        assert exporter.stats()["retries"] == 2
        provider.shutdown()


def test_grpc_unavailable_is_retried() -> None:
    import grpc

    with OtlpGrpcReceiver(codes=[grpc.StatusCode.UNAVAILABLE]) as receiver:
        exporter = GrpcExporter(endpoint=receiver.endpoint, insecure=True)
        provider = _provider(exporter)
        _emit(provider, 5)
        assert provider.force_flush(20000)
        assert receiver.received.span_count() == 5
        assert exporter.stats()["retries"] >= 1
        provider.shutdown()


def test_non_retryable_failure_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="djtrace.exporter")
    with OtlpHttpReceiver(responses=[400] * 5) as receiver:
        exporter = HttpExporter(endpoint=receiver.endpoint)
        provider = _provider(exporter, max_export_batch_size=1, max_queue_size=10)
        for i in range(5):
            _emit(provider, 1, prefix=f"b{i}-")
            provider.force_flush(5000)
        assert receiver.attempts == 5  # 400 is not retried
        stats = exporter.stats()
        assert stats["batches_failed"] == 5 and stats["retries"] == 0
        provider.shutdown()
    messages = [r.getMessage() for r in caplog.records if r.name == "djtrace.exporter"]
    failures = [m for m in messages if "400" in m]
    assert len(failures) == 1, messages
    assert "bad request" in failures[0]


def test_gzip_and_headers_reach_the_receiver() -> None:
    with OtlpHttpReceiver() as receiver:
        exporter = HttpExporter(endpoint=receiver.endpoint, compression="gzip",
                                headers={"x-api-key": "secret-key", "authorization": "Bearer t"})
        provider = _provider(exporter)
        _emit(provider, 3)
        provider.force_flush(10000)
        headers = receiver.received.headers[0]
        assert headers["content-encoding"] == "gzip"
        assert headers["x-api-key"] == "secret-key"
        assert headers["authorization"] == "Bearer t"
        assert headers["content-type"] == "application/x-protobuf"
        provider.shutdown()


def test_https_with_certificate_file(tmp_path: Path) -> None:
    cert, key, cert_path, key_path = self_signed_cert(tmp_path)
    with OtlpHttpReceiver(tls=(cert_path, key_path)) as receiver:
        exporter = HttpExporter(endpoint=receiver.endpoint, certificate_file=cert_path)
        provider = _provider(exporter)
        _emit(provider, 4)
        assert provider.force_flush(10000)
        assert receiver.received.span_count() == 4
        provider.shutdown()


def test_https_rejects_an_untrusted_certificate(tmp_path: Path) -> None:
    cert, key, cert_path, key_path = self_signed_cert(tmp_path)
    with OtlpHttpReceiver(tls=(cert_path, key_path)) as receiver:
        exporter = HttpExporter(endpoint=receiver.endpoint, timeout=2)
        provider = _provider(exporter, export_timeout_millis=2000)
        _emit(provider, 2)
        provider.force_flush(10000)
        assert receiver.received.span_count() == 0
        assert exporter.stats()["batches_failed"] >= 1
        provider.shutdown()


def test_grpc_tls_with_bearer_metadata(tmp_path: Path) -> None:
    cert, key, cert_path, _ = self_signed_cert(tmp_path)
    with OtlpGrpcReceiver(tls=(cert, key)) as receiver:
        exporter = GrpcExporter(endpoint=receiver.endpoint, insecure=False,
                                certificate_file=cert_path,
                                headers={"authorization": "Bearer scout-key"})
        provider = _provider(exporter)
        _emit(provider, 6)
        assert provider.force_flush(10000)
        assert receiver.received.span_count() == 6
        assert receiver.received.headers[0]["authorization"] == "Bearer scout-key"
        provider.shutdown()


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_collector_down_drops_exactly_and_resumes() -> None:
    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}/v1/traces"
    exporter = HttpExporter(endpoint=endpoint, timeout=0.2)
    provider = _provider(exporter, max_queue_size=200, max_export_batch_size=50,
                         export_timeout_millis=300)
    processor = provider._processors[0]
    _emit(provider, 2000)  # warm up: allocator pools reach their steady state
    rss_before = _rss_kib()
    total = 200_000
    _emit(provider, total)
    rss_growth_mib = (_rss_kib() - rss_before) / 1024
    stats = processor.stats()
    assert stats["spans_queued"] + stats["spans_dropped"] == total + 2000
    assert stats["spans_dropped"] > 0
    assert stats["queue_length"] <= 200
    # 200,000 retained spans would need far more than this: the queue bounds memory.
    assert rss_growth_mib < 40, rss_growth_mib
    # The collector comes back on the same port: export resumes.
    with OtlpHttpReceiver(port=port) as receiver:
        def arrived_after() -> bool:
            return any(span.name.startswith("after") for _, _, span in receiver.received.spans())

        deadline = time.time() + 30
        while time.time() < deadline and not arrived_after():
            _emit(provider, 10, prefix="after")
            provider.force_flush(2000)
        assert arrived_after()
        provider.shutdown()
    final = processor.stats()
    assert final["spans_queued"] == final["spans_exported"] + final["spans_failed"]


def test_hanging_collector_does_not_block_the_application() -> None:
    with OtlpHttpReceiver(hang=True) as receiver:
        exporter = HttpExporter(endpoint=receiver.endpoint, timeout=0.3)
        provider = _provider(exporter, max_queue_size=100, max_export_batch_size=10,
                             export_timeout_millis=300)
        _emit(provider, 5000)
        stats = provider._processors[0].stats()
        assert stats["spans_queued"] + stats["spans_dropped"] == 5000
        provider.force_flush(1000)
        provider.shutdown()
        assert receiver.received.span_count() == 0
        assert receiver.attempts >= 1


def test_simple_processor_exports_on_end() -> None:
    with OtlpHttpReceiver() as receiver:
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(HttpExporter(endpoint=receiver.endpoint)))
        _emit(provider, 3)
        assert receiver.received.span_count() == 3
        provider.shutdown()


def _run(code: str, env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_configure_from_environment_and_exit_flush(protocol: str, tmp_path: Path) -> None:
    receiver_cls = OtlpGrpcReceiver if protocol == "grpc" else OtlpHttpReceiver
    with receiver_cls() as receiver:
        base = receiver.endpoint.rsplit("/v1/traces", 1)[0]
        result = _run("""
            import djtrace
            from opentelemetry import trace
            djtrace.configure()
            djtrace.configure()  # a second call is harmless
            tracer = trace.get_tracer("env")
            for i in range(50):
                with tracer.start_as_current_span(f"span-{i}"):
                    pass
        """, {
            "OTEL_SERVICE_NAME": "env-service",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci,team=obs%20team",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_ENDPOINT": base,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "60000",
            "OTEL_TRACES_EXPORTER": "otlp",
        }, tmp_path)
        assert result.returncode == 0, result.stderr
        spans = receiver.received.wait_for(50)
        assert len(spans) == 50  # flushed at interpreter exit
        res = {kv.key: kv.value.string_value for kv in spans[0][0].attributes}
        assert res["service.name"] == "env-service"
        assert res["deployment.environment"] == "ci"
        assert res["team"] == "obs team"
        assert res["telemetry.sdk.name"] == "djtrace"
        assert receiver.received.headers[0]["x-tenant"] == "acme"


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_exit_with_no_collector_listening_does_not_retry(protocol: str, tmp_path: Path) -> None:
    # At exit, the queued spans get one attempt: nothing listens, so the process leaves at once
    # instead of retrying with backoff until the export timeout.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _run("""
        import djtrace
        from opentelemetry import trace
        djtrace.configure()
        with trace.get_tracer("exit").start_as_current_span("last"):
            pass
    """, {
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "60000",
        "OTEL_TRACES_EXPORTER": "otlp",
    }, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(1 attempt; not retried: the process is exiting)" in result.stderr, result.stderr


def test_exit_flush_tries_once_then_retries_resume() -> None:
    with OtlpHttpReceiver(responses=[503] * 3, retry_after="0") as receiver:
        provider = _provider(HttpExporter(endpoint=receiver.endpoint))
        _emit(provider, 2)
        provider.exit_flush(30000)  # done in time; the batch itself failed
        assert receiver.attempts == 1
        assert receiver.received.span_count() == 0
        # An ordinary flush afterwards retries as before: two more 503s, then accepted.
        _emit(provider, 1)
        assert provider.force_flush(30000) is True
        assert receiver.attempts == 4
        assert receiver.received.span_count() == 1
        provider.shutdown()


@pytest.mark.parametrize("env,needle", [
    ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
     "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "OTEL_EXPORTER_OTLP_HEADERS"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "-1"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
    ({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10", "OTEL_BSP_MAX_QUEUE_SIZE": "5"},
     "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
    ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "OTEL_RESOURCE_ATTRIBUTES"),
    ({"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli"}, "OTEL_EXPORTER_OTLP_COMPRESSION"),
])
def test_bad_configuration_names_the_variable(env: dict, needle: str, tmp_path: Path) -> None:
    result = _run("""
        import djtrace
        try:
            djtrace.configure()
        except djtrace.ConfigError as exc:
            print("ERROR:", exc)
    """, env, tmp_path)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("ERROR:"), result.stdout + result.stderr
    assert needle in line
    bad_value = next(v for k, v in env.items() if k == needle)
    assert bad_value in line


def test_sdk_disabled_is_a_no_op(tmp_path: Path) -> None:
    result = _run("""
        import djtrace
        from opentelemetry import trace
        provider = djtrace.configure()
        tracer = trace.get_tracer("off")
        with tracer.start_as_current_span("x") as span:
            span.set_attribute("a", 1)
            assert not span.is_recording()
            assert not trace.get_current_span().get_span_context().is_valid
        print(type(provider).__name__)
    """, {"OTEL_SDK_DISABLED": "true"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DisabledTracerProvider"
