"""API clients in real threads, each with its own database connection."""
import threading
from collections.abc import Callable

from django.db import connection

from tests.factories import ClusterFactory, MembershipFactory, OrganizationFactory


def start_clients(target: Callable, seeds: range, *args) -> list[threading.Thread]:
    """Start one thread per seed running target(seed, *args)."""

    def run(seed: int) -> None:
        try:
            target(seed, *args)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(seed,)) for seed in seeds]
    for thread in threads:
        thread.start()
    return threads


def join_clients(threads: list[threading.Thread], timeout: float) -> None:
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a client thread did not finish in time"


def tenant_with_clusters(role: str, count: int, **capacity) -> tuple:
    """A user holding `role` in a new organization with `count` clusters of the given capacity."""
    organization = OrganizationFactory()
    user = MembershipFactory(organization=organization, role=role).user
    return user, [ClusterFactory(organization=organization, **capacity) for _ in range(count)]


