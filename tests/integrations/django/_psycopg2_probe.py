"""Runs in a subprocess with psycopg 3 hidden, so that Django's PostgreSQL backend falls back
to psycopg2; prints the spans of a few queries as JSON for test_db_psycopg2.py."""

import json
import os
import sys
from pathlib import Path

sys.modules["psycopg"] = None  # `import psycopg` now raises ImportError
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]
os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")

from support import services  # noqa: E402

SCHEMA = f"djtrace_pg2_{os.getpid()}"

import django  # noqa: E402
from django.conf import settings  # noqa: E402

db = services.postgres_settings("postgres")
db["OPTIONS"] = {"options": f"-c search_path={SCHEMA}"}
settings.configure(
    INSTALLED_APPS=["project.shop", "djtrace"],
    DATABASES={"default": db},
    DJTRACE={"exporters": "none"},
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

from django.apps import apps  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.backends.postgresql.psycopg_any import is_psycopg3  # noqa: E402
from opentelemetry import trace  # noqa: E402
from project.shop.models import Customer, Order, OrderItem  # noqa: E402

from djtrace.testing import capture_spans  # noqa: E402


def span_dict(s):
    return {
        "name": s.name,
        "kind": s.kind.name,
        "span_id": s.context.span_id,
        "parent": s.parent.span_id if s.parent else None,
        "status": s.status.status_code.name,
        "attributes": dict(s.attributes),
        "events": [{"name": e.name, "attributes": dict(e.attributes)} for e in s.events],
    }


def main():
    import psycopg2

    out = {"psycopg3": is_psycopg3, "driver_module": type(connection.connection).__module__
           if connection.connection else None, "psycopg2": psycopg2.__version__}
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {SCHEMA}")
    try:
        with connection.schema_editor() as editor:
            for model in apps.get_app_config("shop").get_models():
                editor.create_model(model)
        for i in range(6):
            c = Customer.objects.create(name=f"C{i}", email=f"c{i}@secret.example")
            o = Order.objects.create(customer=c, reference=f"REF-{i}", total=i)
            OrderItem.objects.create(order=o, sku=f"SKU-{i}")
        out["driver_module"] = type(connection.connection).__module__
        tracer = trace.get_tracer("probe")
        with capture_spans() as captured:
            with tracer.start_as_current_span("job"):
                for order in Order.objects.order_by("id"):  # probe: loop
                    order.customer.name  # noqa: B018  probe: lazy
                with connection.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO order_items (order_id, sku, quantity) VALUES (%s, %s, %s)",
                        [(o.id, f"SKU-SECRET-{i}", 1) for i in range(4)])
                    cursor.execute(
                        "SELECT count(*) FROM orders WHERE reference = 'SECRET-REF-4242'")
                    try:
                        with transaction.atomic():
                            cursor.execute("SELECT nope FROM missing WHERE t = %s",
                                           ["SECRET-TOKEN-123"])
                    except Exception as exc:  # noqa: BLE001
                        out["error"] = type(exc).__name__
        out["spans"] = [span_dict(s) for s in captured.spans]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    print(json.dumps(out))


main()
