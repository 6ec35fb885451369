"""The guide's production initialize_tracing(), with only its import lines changed, runs on
djtrace and delivers its spans to an OTLP/gRPC collector over TLS with the bearer header."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from support.otlp_receiver import OtlpGrpcReceiver, self_signed_cert

GUIDE = textwrap.dedent('''
    import os
    from opentelemetry import trace
    # The guide's imports, changed to djtrace's (the only change):
    from djtrace.sdk import TracerProvider, BatchSpanProcessor, Resource
    from djtrace.sdk.trace.sampling import TraceIdRatioBased, ParentBased
    from djtrace.sdk.exporter.otlp_grpc import OTLPSpanExporter

    def initialize_tracing():
        """Initialize production-grade OpenTelemetry tracing."""
        resource = Resource.create({
            "service.name": os.getenv("OTEL_SERVICE_NAME", "django-order-service"),
            "service.version": os.getenv("APP_VERSION", "1.0.0"),
            "deployment.environment": os.getenv("ENVIRONMENT", "production"),
            "cloud.provider": os.getenv("CLOUD_PROVIDER", "aws"),
            "cloud.region": os.getenv("AWS_REGION", "us-east-1"),
            "k8s.cluster.name": os.getenv("K8S_CLUSTER", "production"),
            "k8s.namespace.name": os.getenv("K8S_NAMESPACE", "default"),
            "k8s.pod.name": os.getenv("HOSTNAME", "unknown"),
        })
        sample_rate = float(os.getenv("OTEL_TRACE_SAMPLE_RATE", "0.1"))
        sampler = ParentBased(root=TraceIdRatioBased(sample_rate))
        provider = TracerProvider(resource=resource, sampler=sampler)
        otlp_exporter = OTLPSpanExporter(
            endpoint=os.getenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://scout.base14.io:4317"),
            headers={
                "authorization": f"Bearer {os.getenv('SCOUT_API_KEY', '')}",
            },
            insecure=False,
        )
        batch_processor = BatchSpanProcessor(
            otlp_exporter,
            max_queue_size=2048,
            max_export_batch_size=512,
            schedule_delay_millis=5000,
            export_timeout_millis=30000,
        )
        provider.add_span_processor(batch_processor)
        trace.set_tracer_provider(provider)
        print(f"OpenTelemetry initialized: {resource.attributes.get('service.name')} "
              f"v{resource.attributes.get('service.version')} "
              f"(sample rate: {sample_rate})")
        return provider

    provider = initialize_tracing()
    tracer = trace.get_tracer(__name__)
    for i in range(20):
        with tracer.start_as_current_span("process_payment") as span:
            span.set_attribute("payment.amount", 42.0 + i)
    provider.shutdown()
''')


def test_guide_initialize_tracing_with_changed_imports(tmp_path: Path) -> None:
    cert, key, cert_path, _ = self_signed_cert(tmp_path)
    script = tmp_path / "tracing.py"
    script.write_text(GUIDE)
    with OtlpGrpcReceiver(tls=(cert, key)) as receiver:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
               "OTEL_EXPORTER_OTLP_CERTIFICATE": cert_path, "SCOUT_API_KEY": "scout-key",
               "OTEL_TRACE_SAMPLE_RATE": "1.0", "OTEL_SERVICE_NAME": "django-order-service"}
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        assert "OpenTelemetry initialized: django-order-service v1.0.0 (sample rate: 1.0)" \
            in result.stdout
        spans = receiver.received.wait_for(20)
    assert len(spans) == 20
    resource = {kv.key: kv.value.string_value for kv in spans[0][0].attributes}
    assert resource["service.name"] == "django-order-service"
    assert resource["k8s.cluster.name"] == "production"
    assert receiver.received.headers[0]["authorization"] == "Bearer scout-key"
