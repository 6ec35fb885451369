"""Helpers of the database tests: the shop's data, the lines of its queries, span filters."""

from __future__ import annotations

import os
import re
from pathlib import Path

from opentelemetry.trace import SpanKind

SHOP_VIEWS = Path(__file__).resolve().parent / "project" / "shop" / "views.py"
POSTGRES = os.environ.get("DJTRACE_TEST_DB", "sqlite") == "postgres"
MYSQL = os.environ.get("DJTRACE_TEST_DB", "sqlite") == "mysql"
# db.system.name: Django's MySQL backend on the MariaDB server the tests start is "mariadb".
VENDOR = "postgresql" if POSTGRES else "mariadb" if MYSQL else "sqlite"


def quoted(sql: str) -> str:
    """`sql` written with standard "identifier" quotes, as Django quotes them on this
    database (MySQL: backticks)."""
    return sql.replace('"', "`") if MYSQL else sql

# Values that must never reach a span: emails, references, tokens written by the tests.
SECRETS = ("secret.example", "SECRET-REF-4242", "1234.5", "SECRET-TOKEN-123", "SKU-SECRET")


def line_of(marker: str, path: Path = SHOP_VIEWS) -> int:
    """The line of `# query: <marker>` in the shop's views."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.search(rf"# query: {re.escape(marker)}$", line.rstrip()):
            return number
    raise AssertionError(f"no line marked {marker!r} in {path}")


def make_shop(customers: int = 6, items_per_order: int = 2):
    """`customers` customers (with profiles), one order each with items and a tag."""
    from project.shop.models import Customer, CustomerProfile, Order, OrderItem, Tag

    tags = [Tag.objects.create(label=f"tag-{i}") for i in range(2)]
    orders = []
    for i in range(customers):
        c = Customer.objects.create(name=f"Customer {i}", email=f"c{i}@secret.example")
        CustomerProfile.objects.create(customer=c, loyalty_tier="gold" if i % 2 else "silver")
        o = Order.objects.create(customer=c, reference=f"REF-{i}", total=10 + i)
        o.tags.add(tags[i % 2])
        for j in range(items_per_order):
            OrderItem.objects.create(order=o, sku=f"SKU-{i}-{j}", quantity=j + 1)
        orders.append(o)
    return orders


def db_spans(spans) -> list:
    """The database CLIENT spans among captured spans, in the order they started."""
    found = [s for s in spans if s.kind is SpanKind.CLIENT and "db.system.name" in s.attributes]
    return sorted(found, key=lambda s: s.start_time)


def server_span(spans):
    found = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def events(span, name: str) -> list:
    return [e for e in span.events if e.name == name]


def all_text(spans) -> str:
    """Every attribute and event attribute value of `spans`, as one string."""
    parts = []
    for s in spans:
        parts.append(s.name)
        parts.extend(repr(v) for v in s.attributes.values())
        for e in s.events:
            parts.extend(repr(v) for v in e.attributes.values())
    return "\n".join(parts)
