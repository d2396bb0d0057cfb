"""Liveness and readiness probes for load balancers and orchestrators."""
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from drf_yasg.utils import swagger_auto_schema
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from rest_framework import status
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.response import Response

from .celery import app as celery_app

PROBE_TIMEOUT_SECONDS = 2


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return False
    return True


def _broker_ok() -> bool:
    if not settings.CELERY_BROKER_URL:
        return True  # embedded mode: background work runs in-process
    try:
        with celery_app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=0, timeout=PROBE_TIMEOUT_SECONDS)
            conn.default_channel  # opening a channel is what proves the broker answers, not the socket alone
    except (BrokerError, OSError, RedisError):
        return False
    return True


def _cache_ok() -> bool:
    try:
        cache.get("readyz-probe")
    except (RedisError, OSError, DatabaseError):
        return False
    return True


@swagger_auto_schema(method="get", security=[], responses={200: "The process is up."})
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
@throttle_classes([])
def healthz(request):
    """The process is up and serving requests."""
    return Response({"status": "ok"})


@swagger_auto_schema(method="get", security=[], responses={200: "Ready.", 503: "A named dependency is down."})
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
@throttle_classes([])
def readyz(request):
    """The database, the broker and the cache (throttle counters) are reachable."""
    checks = {"database": _database_ok(), "broker": _broker_ok(), "cache": _cache_ok()}
    down = [name for name, ok in checks.items() if not ok]
    body = {"status": "unavailable" if down else "ok", "checks": {n: "ok" if ok else "down" for n, ok in checks.items()}}
    if down:
        body["down"] = down
    return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE if down else status.HTTP_200_OK)
