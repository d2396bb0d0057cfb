"""Throttles for unauthenticated entry points that invite guessing (passwords, invite codes)."""
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class ClientAddressRateThrottle(SimpleRateThrottle):
    """Login and register: counts requests per client address (X-Forwarded-For only as far as NUM_PROXIES trusts it)."""

    scope = "auth"

    def get_rate(self) -> str:
        # Read at request time, not import time, so a changed setting takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES["auth"]

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class JoinRateThrottle(ClientAddressRateThrottle):
    """Invite-code guesses get the same budget as password guesses, counted apart from logins."""

    scope = "join"
