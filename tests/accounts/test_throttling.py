"""Login and register are throttled per client address, with counters in the shared Redis."""
import uuid
from contextlib import contextmanager

import pytest
import redis
from django.core.cache import cache

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"


@contextmanager
def commands_sent_to(redis_url: str):
    """The commands clients send to the database of `redis_url` within the block, as Redis saw them (MONITOR).

    Commands a Lua script runs are left out: they cost no round trip.
    """
    connection, marker = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    marker.ping()  # connected (and its database selected) before the block
    db = connection.connection_pool.connection_kwargs.get("db", 0)
    seen = []
    with connection.monitor() as monitor:
        yield seen
        end = f"end-of-block-{uuid.uuid4()}"
        marker.echo(end)
        while (command := monitor.next_command())["command"] != f"ECHO {end}":
            if command["db"] == db and command["client_type"] != "lua":
                seen.append(command["command"].split(" ", 1)[0])


@pytest.fixture
def auth_rate_3_per_minute(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"},
    }


def guess(api_client, **headers):
    return api_client.post(LOGIN, {"username": "ada", "password": "guess"}, **headers)


def test_password_guessing_gets_429_after_the_rate(api_client, auth_rate_3_per_minute):
    assert [guess(api_client).status_code for _ in range(3)] == [401, 401, 401]
    response = guess(api_client)
    assert response.status_code == 429
    assert "throttled" in response.json()["detail"]


def test_counters_live_in_redis(api_client, auth_rate_3_per_minute, settings):
    guess(api_client)
    guess(api_client)
    keys = redis.Redis.from_url(settings.REDIS_URL).keys("*throttle_auth_127.0.0.1:*")
    assert len(keys) == 1
    assert cache.get(keys[0].decode().split(":", 2)[2]) == 2


def test_429_says_when_to_come_back(api_client, auth_rate_3_per_minute):
    for _ in range(3):
        guess(api_client)
    response = guess(api_client)
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_spoofed_forwarded_for_does_not_reset_the_counter(api_client, auth_rate_3_per_minute):
    for n in range(3):
        guess(api_client, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
    assert guess(api_client, HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


def test_register_shares_the_auth_budget(api_client, auth_rate_3_per_minute):
    for _ in range(3):
        guess(api_client)
    response = api_client.post("/api/v1/auth/register", {"username": "x", "email": "x@example.com", "password": "p"})
    assert response.status_code == 429


def test_trusted_proxy_count_uses_the_forwarded_address(api_client, settings, auth_rate_3_per_minute):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    for _ in range(3):
        guess(api_client, HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert guess(api_client, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    assert guess(api_client, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 401


def test_with_the_counter_store_down_reads_go_on_but_sign_in_is_503(api_client, auth_client, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    assert auth_client.get("/api/v1/auth/me").status_code == 200
    response = guess(api_client)
    assert response.status_code == 503
    assert response.json() == {"detail": "Sign-in is briefly unavailable; try again in a moment."}


def test_a_throttled_request_costs_one_redis_round_trip(auth_client, settings):
    assert auth_client.get("/api/v1/auth/me").status_code == 200  # Redis learns the script once
    with commands_sent_to(settings.REDIS_URL) as commands:
        for _ in range(3):
            assert auth_client.get("/api/v1/auth/me").status_code == 200
    assert commands == ["EVALSHA"] * 3


def test_a_throttled_sign_in_costs_one_redis_round_trip(api_client, auth_rate_3_per_minute, settings):
    guess(api_client)
    with commands_sent_to(settings.REDIS_URL) as commands:
        assert [guess(api_client).status_code for _ in range(3)] == [401, 401, 429]
    assert commands == ["EVALSHA"] * 3
