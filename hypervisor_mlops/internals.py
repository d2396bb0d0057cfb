"""Where this code reaches into a framework's private parts: each reach in one named function here.

tests/ops/test_internals.py checks each against the installed versions, so an upgrade that moves one fails
there, by name, rather than somewhere far from the cause. (Celery's Django fixup, subclassed to keep database
connections across tasks, lives in hypervisor_mlops/celery.py; tests/reliability/test_worker_connections.py
checks it on a real worker.)
"""
from django.core.cache.backends.redis import RedisCache


def redis_client(cache: RedisCache, full_key: str):
    """The redis-py client of the cache's own connection pool that holds `full_key` (Django's `_cache`)."""
    return cache._cache.get_client(full_key, write=True)


def evaluated_user(request):
    """The request's user if something has already loaded it, else None: never a query of its own.

    Django's `request.user` is a SimpleLazyObject that reads the session's user when first touched; its
    `_wrapped` is the user once loaded (DRF sets a plain user once it authenticates)."""
    user = request.__dict__.get("user")
    user = getattr(user, "_wrapped", user)
    return user if getattr(user, "is_authenticated", False) is True else None


def set_prefetched(instance, name: str, rows: list) -> None:
    """Make `instance.<name>.all()` answer `rows` without a query, as prefetch_related_objects leaves it: a
    queryset marked done, holding the rows, in the instance's prefetch cache."""
    cache = instance.__dict__.setdefault("_prefetched_objects_cache", {})
    queryset = getattr(instance, name).all()
    queryset._result_cache, queryset._prefetch_done = rows, True
    cache[name] = queryset
