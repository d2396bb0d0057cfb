"""Many API clients and two real Celery workers at once: nothing over capacity, nothing lost or doubled."""
import random

import pytest

from deployments.models import Deployment, Status
from organizations.models import Role
from tests.conftest import client_for
from tests.invariants import assert_all_invariants
from tests.threads import join_clients, start_clients, tenant_with_clusters
from tests.workers import real_workers, wait_for_idle_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

THREADS = 8
PER_THREAD = 40


def submit_many(seed: int, user, clusters, created: list, errors: list) -> None:
    rng = random.Random(seed)
    client = client_for(user)
    for n in range(PER_THREAD):
        body = {
            "name": f"job-{seed}-{n}", "cluster": rng.choice(clusters).pk, "docker_image": "img:1",
            "priority": rng.randint(-2, 3), "cpu_required": str(rng.choice(["0.5", "1", "1.25", "2"])),
            "ram_required": str(rng.choice(["0.5", "1", "4"])), "gpu_required": rng.randint(0, 1),
        }
        response = client.post("/api/v1/deployments/", body, format="json")
        if response.status_code != 201:
            errors.append(response.content)
            continue
        created.append(response.json()["id"])
        if n % 5 == 4:
            # Finish something of our own while the workers are scheduling.
            pk = rng.choice(created[-5:])
            verb = rng.choice(["complete", "cancel"])
            response = client.post(f"/api/v1/deployments/{pk}/{verb}/")
            if response.status_code not in (200, 409):
                errors.append(response.content)


@pytest.mark.parametrize("round_", range(2))
def test_concurrent_submissions_with_two_workers_keep_every_invariant(round_):
    user, clusters = tenant_with_clusters(Role.DEVELOPER, 3, cpu_limit="6", ram_limit="12", gpu_limit=2)
    created: list[int] = []
    errors: list = []
    with real_workers("w1", "w2"):
        seeds = range(round_ * 100, round_ * 100 + THREADS)
        join_clients(start_clients(submit_many, seeds, user, clusters, created, errors), timeout=120)
        wait_for_idle_queue()
    assert errors == []
    assert len(created) == THREADS * PER_THREAD == len(set(created))
    assert Deployment.objects.count() == len(created)
    assert Deployment.objects.filter(status=Status.RUNNING).exists()
    assert_all_invariants()
