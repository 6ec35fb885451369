"""Prepares the target app for the HTTP workloads, in the app's own settings (run as
`python -m harness.prepare` with DJANGO_SETTINGS_MODULE=harness.settings): a fresh PostgreSQL
database, migrations, seed data (20 users, 200 orders of three items), and the endpoint mix,
each endpoint checked through Django's test client with the cookie and CSRF header the load
generator will send. Prints one JSON object: {"requests", "ids", "cookie", "csrf"} or
{"error": reason}.

The endpoints of examples/order_service are found by the names the guide gives its views
(order_list, order_detail, OrderCreateView, order_list_html / order_detail_html, an N+1
listing, health); anything missing or failing is reported and stops the benchmark.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import sys
from decimal import Decimal


def fresh_database() -> None:
    import psycopg

    name = os.environ.get("BENCH_DB_NAME", "djtrace_bench")
    with psycopg.connect(host="127.0.0.1", port=int(os.environ.get("BENCH_PG_PORT", "54339")),
                         user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def models():
    from django.apps import apps

    order = item = None
    for model in apps.get_models():
        fields = {f.name for f in model._meta.get_fields()}
        if model.__name__ == "Order" and {"user", "product_name", "amount"} <= fields:
            order = model
        elif model.__name__ == "OrderItem" and {"order", "product_sku", "quantity"} <= fields:
            item = model
    return order, item


def seed(order_model, item_model) -> tuple[list[int], object]:
    from django.contrib.auth.models import User

    users = User.objects.bulk_create([User(username=f"bench{i}", email=f"bench{i}@example.com")
                                      for i in range(20)])
    users = list(User.objects.order_by("id"))
    orders = order_model.objects.bulk_create([
        order_model(user=users[i % 20], product_name=f"Product {i}",
                    amount=Decimal("19.90") + i, status="pending" if i % 3 else "completed")
        for i in range(200)])
    if not orders or orders[0].pk is None:
        orders = list(order_model.objects.order_by("id"))
    if item_model is not None:
        item_model.objects.bulk_create([
            item_model(order=o, product_sku=f"SKU-{k}", quantity=k + 1,
                       unit_price=Decimal("9.90")) for o in orders for k in range(3)])
    return [o.pk for o in orders], users[0]


def _patterns(resolver, prefix=""):
    from django.urls import URLPattern, URLResolver

    for p in resolver.url_patterns:
        route = getattr(p.pattern, "_route", None)
        if route is None:
            continue
        if isinstance(p, URLResolver):
            yield from _patterns(p, prefix + route)
        elif isinstance(p, URLPattern):
            callback = p.callback
            view = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
            view_name = view.__name__ if view is not None else callback.__name__
            yield prefix + route, view_name, p.name or "", callback


def discovered_mix() -> tuple[list[dict], list[str]]:
    from django.urls import get_resolver

    found: dict[str, dict] = {}
    wanted = [
        ("list", ("order_list",), "GET"),
        ("detail", ("order_detail",), "GET"),
        ("create", ("ordercreateview", "order_create"), "POST"),
        ("html", ("order_detail_html", "order_list_html"), "GET"),
        ("n+1", ("n_plus_one_bad", "bad", "n_plus_one", "nplusone"), "GET"),
        ("health", ("health",), "GET"),
    ]
    patterns = list(_patterns(get_resolver()))
    for label, keys, method in wanted:
        for key in keys:
            for route, view_name, name, _ in patterns:
                names = (view_name.lower(), name.lower())
                if label == "n+1":
                    hit = any(key in n for n in names) and "good" not in route and \
                        not any("good" in n for n in names)
                else:
                    hit = key in names
                if not hit or label in found:
                    continue
                if route.startswith("api/") and label != "create":
                    continue  # the DRF API wants a JWT: the plain views first
                path = "/" + re.sub(r"<(?:\w+:)?\w+>", "{id}", route)
                entry = {"label": label, "method": method, "path": path}
                if method == "POST":
                    entry["body"] = "product=Widget&amount=19.90&product_name=Widget"
                found[label] = entry
    missing = [w[0] for w in wanted if w[0] not in found]
    return [found[w[0]] for w in wanted if w[0] in found], missing


def main() -> None:
    try:
        fresh_database()
    except Exception as exc:  # noqa: BLE001
        print(json.dumps({"error": f"database: {exc}"}))
        return
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    order_model, item_model = models()
    if order_model is None:
        print(json.dumps({"error": "no Order model with user, product_name, amount"}))
        return
    ids, user = seed(order_model, item_model)
    csrf = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    cookie = f"csrftoken={csrf}"
    mix, missing = discovered_mix()
    if missing:
        print(json.dumps({"error": "endpoints not found: " + ", ".join(missing)}))
        return
    client = Client()
    client.force_login(user)
    from django.conf import settings as dj_settings

    session = client.cookies.get(dj_settings.SESSION_COOKIE_NAME)
    if session is not None:
        cookie += f"; {dj_settings.SESSION_COOKIE_NAME}={session.value}"
    # Each endpoint as the load generator will send it.
    client = Client(enforce_csrf_checks=True, HTTP_COOKIE=cookie)
    for entry in mix:
        path = entry["path"].replace("{id}", str(ids[0]))
        if entry["method"] == "POST":
            resp = client.post(path, data=entry["body"],
                               content_type="application/x-www-form-urlencoded",
                               HTTP_X_CSRFTOKEN=csrf)
        else:
            resp = client.get(path)
        if resp.status_code >= 400:
            print(json.dumps({"error": f"{entry['method']} {path} answered {resp.status_code}"}))
            return
    print(json.dumps({"requests": mix, "ids": ids, "cookie": cookie, "csrf": csrf}))


if __name__ == "__main__":
    sys.exit(main())
