"""Throttles, with counters in the shared cache (Redis) so every API process counts together.

If Redis is unreachable, reading the API and submitting work go on unthrottled (logged), since a cache
outage must not take the platform down; login, register and join, which throttling protects from
guessing, answer 503 instead until the counters are back.
"""
import logging

from redis.exceptions import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from hypervisor_mlops.exceptions import ServiceUnavailable

logger = logging.getLogger(__name__)


class FailOpenMixin:
    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            logger.warning("Throttle counters unreachable (%s); letting %s through.", exc, request.path)
            return True


class AnonThrottle(FailOpenMixin, AnonRateThrottle):
    pass


class UserThrottle(FailOpenMixin, UserRateThrottle):
    pass


class ClientAddressRateThrottle(SimpleRateThrottle):
    """Login and register: counts requests per client address (X-Forwarded-For only as far as NUM_PROXIES trusts it)."""

    scope = "auth"

    def get_rate(self) -> str:
        # Read at request time, not import time, so a changed setting takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES["auth"]

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            raise ServiceUnavailable("Sign-in is briefly unavailable; try again in a moment.") from exc


class JoinRateThrottle(ClientAddressRateThrottle):
    """Invite-code guesses get the same budget as password guesses, counted apart from logins."""

    scope = "join"
