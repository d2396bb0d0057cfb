"""The stream tests' servers: PostgreSQL with Redis under a threaded (WSGI, what bin/run serves) and an async
(ASGI) gunicorn, since each needs its own kind of iterator, and the embedded default (SQLite, no Redis) as bin/run
serves it."""
import pytest

from tests.streams.service import server

SERVERS = {"postgres-wsgi": ("wsgi", 8961, False), "postgres-asgi": ("asgi", 8962, False),
           "embedded": ("wsgi", 8963, True)}


@pytest.fixture(scope="module", params=list(SERVERS))
def service(request, tmp_path_factory, django_db_setup, django_db_blocker):
    kind, port, embedded = SERVERS[request.param]
    with server(kind, port, tmp_path_factory.mktemp(request.param), embedded=embedded) as base:
        yield base
