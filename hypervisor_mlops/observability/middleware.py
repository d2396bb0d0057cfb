"""Request middleware: the X-Request-ID of every request, and its HTTP metrics and access log line."""
import logging
import time

from django.core.signals import request_finished
from django.dispatch import receiver

from ..internals import evaluated_user
from .logging import REQUEST_ID_HEADER, accepted_request_id, request_id
from .metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

access_logger = logging.getLogger("hypervisor_mlops.access")


class RequestIdMiddleware:
    """Accepts the caller's X-Request-ID when valid (else makes one), holds it for the request, echoes it."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        value = accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
        # Held until request_finished, not just while the middleware runs: Django logs 4xx responses
        # (django.request) after the middleware chain has returned.
        request_id.set(value)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = value
        return response


@receiver(request_finished)
def _forget_request_id(sender, **kwargs) -> None:
    request_id.set(None)


class MetricsMiddleware:
    """Counts and times every request by its URL pattern (never the raw path, whose ids would explode series)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        route = _route(request)
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_REQUEST_DURATION.labels(request.method, route).observe(elapsed)
        access_logger.info("%s %s %s %.1f ms", request.method, request.path, response.status_code, elapsed * 1000,
                           extra=_context(request))
        return response


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or match.route


def _context(request) -> dict:
    """Who made the request and what it was about, when known (DRF sets request.user once it authenticates)."""
    context = {}
    # Never evaluates Django's lazy user (a query for a log line): an unevaluated one has no pk to give.
    user = evaluated_user(request)
    if user is not None:
        context["user"] = user.pk
    match = getattr(request, "resolver_match", None)
    if match is not None and "pk" in match.kwargs and match.url_name:
        kind = match.url_name.split("-", 1)[0]
        if kind in ("deployment", "cluster"):
            context[kind] = match.kwargs["pk"]
    return context
