"""Thousands of mixed operations from many clients against two workers; the invariants hold at the end."""
import random
from decimal import Decimal

import pytest

from deployments.models import Deployment
from organizations.models import Role
from tests.conftest import client_for
from tests.invariants import assert_all_invariants
from tests.threads import join_clients, start_clients, tenant_with_clusters
from tests.workers import real_workers, wait_for_idle_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CLIENTS = 8
OPERATIONS_PER_CLIENT = 250
EXPECTED = {
    "create": {201},
    "complete": {200, 409},  # 409: not running (yet, or any more)
    "cancel": {200, 409},
    "resize": {200, 409},  # 409: below what running deployments hold
}


def client_session(seed: int, admin, clusters, created: list, outcomes: list) -> None:
    rng = random.Random(seed)
    client = client_for(admin)
    for n in range(OPERATIONS_PER_CLIENT):
        operation = rng.choices(list(EXPECTED), weights=(6, 2, 1, 1))[0]
        if operation == "create" or not created:
            operation = "create"
            response = client.post("/api/v1/deployments/", {
                "name": f"load-{seed}-{n}", "cluster": rng.choice(clusters).pk, "docker_image": "img",
                "priority": rng.randint(-3, 3), "cpu_required": rng.choice(["0.25", "0.5", "1", "3"]),
                "ram_required": rng.choice(["0.5", "2", "8"]), "gpu_required": rng.choice([0, 0, 1]),
            }, format="json")
            if response.status_code == 201:
                created.append(response.json()["id"])
        elif operation == "resize":
            response = client.patch(f"/api/v1/clusters/{rng.choice(clusters).pk}/", {
                "cpu_limit": str(rng.choice([4, 6, 8, 12])), "gpu_limit": rng.choice([2, 3, 4]),
            }, format="json")
        else:
            response = client.post(f"/api/v1/deployments/{rng.choice(created)}/{operation}/")
        outcomes.append((operation, response.status_code))


def test_mixed_load_keeps_every_invariant():
    admin, clusters = tenant_with_clusters(Role.ADMIN, 3, cpu_limit="12", ram_limit="32", gpu_limit=4)
    created: list[int] = []
    outcomes: list[tuple[str, int]] = []
    with real_workers("w1", "w2"):
        threads = start_clients(client_session, range(CLIENTS), admin, clusters, created, outcomes)
        join_clients(threads, timeout=300)
        wait_for_idle_queue()
    assert len(outcomes) == CLIENTS * OPERATIONS_PER_CLIENT
    unexpected = [(op, code) for op, code in outcomes if code not in EXPECTED[op]]
    assert unexpected == []
    assert {op for op, _ in outcomes} == set(EXPECTED)
    assert Deployment.objects.count() == len(created) == len(set(created))
    for cluster in clusters:
        cluster.refresh_from_db()
        assert cluster.cpu_allocated <= cluster.cpu_limit and cluster.cpu_limit in {Decimal(c) for c in (4, 6, 8, 12)}
    assert_all_invariants()
