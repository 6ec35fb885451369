"""Probes for load balancers and Kubernetes. They are excluded from tracing
(DJTRACE["excluded_urls"]): no span, and the checks' own queries are not recorded either.

    /liveness/   the process answers (no dependency: a database outage must not restart pods)
    /readiness/  the database answers, and Redis when REDIS_URL is set: 503 otherwise, so the
                 pod is taken out of the load balancer until they are back
    /health/     the same checks as readiness, for humans and uptime monitors
"""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis():
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _run_checks():
    checks = {"database": _check_database}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis
    results = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a probe reports failures, never raises them
            results[name] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in results.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", "checks": results},
                        status=200 if healthy else 503)


@never_cache
@require_GET
def liveness(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readiness(request):
    return _run_checks()


@never_cache
@require_GET
def health(request):
    return _run_checks()
