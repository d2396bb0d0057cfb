"""Prometheus metrics: process-level series shared through multiprocess files, the database's at scrape time.

Counters and histograms that every process observes (HTTP requests in each gunicorn worker, here; scheduling
passes in each Celery worker and ledger repairs, in `deployments.metrics`) are written by prometheus_client in
multiprocess mode into PROMETHEUS_MULTIPROC_DIR and summed over every process's file when scraped. What the
database knows (capacity, deployments, queue, admissions, preemptions, admission wait, agents) is read when
scraped by the collectors each app defines in its `metrics.py` and names in settings.METRICS_COLLECTORS, in a
fixed handful of queries whatever the number of deployments, so it is exact across processes and restarts.
"""
import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ..api.exceptions import not_found

# --- Process-level series (multiprocess mode) --------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "hypervisor_http_requests", "HTTP requests answered, by method, route (URL pattern name) and status.",
    ["method", "route", "status"], registry=None,
)
HTTP_REQUEST_DURATION = Histogram(
    "hypervisor_http_request_duration_seconds", "Time to answer an HTTP request, by method and route.",
    ["method", "route"], registry=None,
)


def registry() -> CollectorRegistry:
    """Every process's counters and histograms from the multiprocess files, and what each app's collectors
    (named in settings.METRICS_COLLECTORS, like MIDDLEWARE) read from the database."""
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    for path in settings.METRICS_COLLECTORS:
        registry.register(import_string(path)())
    return registry


def metrics(request):
    """GET /metrics: the Prometheus text format, only with METRICS_TOKEN set and presented as a bearer token."""
    token = settings.METRICS_TOKEN
    if not token:
        return not_found(request)
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    presented = request.headers.get("Authorization", "")
    if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
        detail = "Invalid metrics token." if presented else "Authentication credentials were not provided."
        response = JsonResponse({"detail": detail}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
