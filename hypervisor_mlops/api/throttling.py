"""Throttles, with counters in the shared cache (Redis) so every API process counts together.

If Redis is unreachable, reading the API and submitting work go on unthrottled (logged), since a cache
outage must not take the platform down; login, register and join, which throttling protects from
guessing, answer 503 instead until the counters are back.
"""
import logging

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from ..internals import redis_client
from .exceptions import ServiceUnavailable

logger = logging.getLogger(__name__)

# Counts one request in a window and starts the window's expiry with its first request, atomically: one
# command, so one round trip to Redis per throttled request (redis-py sends EVALSHA, and the script itself
# only once per Redis restart).
COUNT_IN_WINDOW = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


def count_in_window(cache, key: str, *, seconds: int) -> int:
    """Adds one to the counter `key` of the cache, which expires `seconds` after its first count."""
    if isinstance(cache, RedisCache):
        # The cache's own connection pool; INCR stores a plain integer, which the cache reads back as one.
        full_key = cache.make_and_validate_key(key)
        client = redis_client(cache, full_key)
        return client.register_script(COUNT_IN_WINDOW)(keys=[full_key], args=[seconds])
    # The embedded default's database cache has no atomic increment: add, then increment.
    cache.add(key, 0, timeout=seconds)
    try:
        return cache.incr(key)
    except ValueError:  # the window's key expired between add and incr: this request opens it again
        cache.set(key, 1, timeout=seconds)
        return 1


class WindowCounterMixin:
    """Counts requests in fixed windows with one atomic increment (one Redis round trip) per request.

    DRF's throttles keep a list of timestamps per client and read and rewrite it whole on every request; at
    the rates a polling dashboard needs (1,200 a minute) that list is the costliest part of a cheap request.
    A window counter costs the same at any rate, at the price of allowing up to twice the rate across a
    window boundary.
    """

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        # The backend itself (DRF's `self.cache` is a proxy), looked up now so a changed setting takes effect.
        count = count_in_window(caches["default"], f"{self.key}:{window}", seconds=int(self.duration))
        return count <= self.num_requests

    def wait(self) -> float:
        return max(self.window_ends - self.now, 0)


class FailOpenMixin:
    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            logger.warning("Throttle counters unreachable (%s); letting %s through.", exc, request.path)
            return True


class AnonThrottle(FailOpenMixin, WindowCounterMixin, AnonRateThrottle):
    pass


class UserThrottle(FailOpenMixin, WindowCounterMixin, UserRateThrottle):
    pass


class ClientAddressRateThrottle(WindowCounterMixin, SimpleRateThrottle):
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
