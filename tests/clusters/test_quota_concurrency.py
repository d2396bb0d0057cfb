"""Two admins setting quotas on one cluster at the same instant, while a third resizes it and developers submit:
the guarantees never sum beyond the capacity and no limit falls below its guarantee, whatever the interleaving."""
import random
import threading
from decimal import Decimal

import pytest
from django.db.models import Sum

from clusters.models import Cluster, ClusterQuota
from deployments.models import Deployment
from organizations.models import ProjectMembership, Role
from scheduling.resources import Resources
from tests.conftest import client_for
from tests.factories import ClusterFactory, MembershipFactory, OrganizationFactory, ProjectFactory
from tests.invariants import assert_capacity_and_exact_availability, assert_every_deployment_has_one_queued_event
from tests.threads import join_clients, start_clients

ROUNDS = 30
CHANGERS = 3  # two admins setting quotas, one resizing


def violations(cluster_id: int) -> list[str]:
    """What is wrong with the cluster's guarantees and limits now, in the database."""
    cluster = Cluster.objects.get(pk=cluster_id)
    sums = ClusterQuota.objects.filter(cluster=cluster).aggregate(
        cpu=Sum("guaranteed_cpu", default=Decimal(0)), ram=Sum("guaranteed_ram", default=Decimal(0)),
        gpu=Sum("guaranteed_gpu", default=0))
    found = [] if Resources(**sums).fits_in(cluster.capacity) else [f"guarantees {sums} > {cluster.capacity}"]
    return found + [f"limit below guarantee: {quota}" for quota in ClusterQuota.objects.filter(cluster=cluster)
                    if quota.limit is not None and not quota.guaranteed.fits_in(quota.limit)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_quota_changes_keep_the_guarantees_within_capacity():
    organization = OrganizationFactory()
    cluster = ClusterFactory(organization=organization, cpu_limit="8", ram_limit="32", gpu_limit=4)
    projects = [organization.default_project, *(ProjectFactory(organization=organization) for _ in range(2))]
    admins = [MembershipFactory(organization=organization, role=Role.ADMIN).user for _ in range(CHANGERS)]
    developers = [MembershipFactory(organization=organization, role=Role.DEVELOPER).user for _ in range(2)]
    for developer in developers:
        ProjectMembership.objects.bulk_create(ProjectMembership(project=p, user=developer) for p in projects[1:])
    barrier, statuses, found = threading.Barrier(CHANGERS), [], []

    def change(seed: int) -> None:
        # Every round the three act at the same instant, then one of them checks the database while all wait.
        rng, client = random.Random(seed), client_for(admins[seed])
        for _ in range(ROUNDS):
            barrier.wait(timeout=60)
            if seed == 2:
                response = client.patch(f"/api/v1/clusters/{cluster.pk}/", {"gpu_limit": rng.randint(2, 4),
                                        "cpu_limit": str(rng.randint(5, 8))}, format="json")
            else:
                guaranteed = {"cpu": str(rng.randint(0, 5)), "ram": str(rng.randint(0, 20)), "gpu": rng.randint(0, 3)}
                limit = rng.choice([None, {"cpu": "5", "ram": "20", "gpu": rng.randint(0, 3)}])
                response = client.put(f"/api/v1/clusters/{cluster.pk}/quotas/{projects[seed + 1].pk}/",
                                      {"guaranteed": guaranteed, "limit": limit, "weight": rng.randint(1, 1000)},
                                      format="json")
            statuses.append(response.status_code)
            barrier.wait(timeout=60)
            if seed == 0:
                found.extend(violations(cluster.pk))
            barrier.wait(timeout=60)

    def submit(seed: int) -> None:
        rng, client = random.Random(seed), client_for(developers[seed - 10])
        for n in range(ROUNDS):
            response = client.post("/api/v1/deployments/", {
                "name": f"d{n}", "cluster": cluster.pk, "docker_image": "img", "cpu_required": "1",
                "ram_required": "1", "gpu_required": rng.randint(0, 1), "project": rng.choice(projects).pk,
            }, format="json")
            assert response.status_code == 201, response.content

    threads = start_clients(change, range(CHANGERS)) + start_clients(submit, range(10, 12))
    join_clients(threads, timeout=300)

    assert len(statuses) == CHANGERS * ROUNDS and set(statuses) <= {200, 400, 409}
    assert {200, 400, 409} <= set(statuses)
    assert found == []
    assert violations(cluster.pk) == []
    assert Deployment.objects.count() == 2 * ROUNDS
    assert_capacity_and_exact_availability()
    assert_every_deployment_has_one_queued_event()
