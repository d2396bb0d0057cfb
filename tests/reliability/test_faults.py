"""Faults: a worker killed with -9 in a scheduling storm, and Redis stopped while users keep submitting."""
import json
import random
import urllib.error
import urllib.request

import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from deployments.models import Deployment, Status
from organizations.models import Role
from tests.conftest import client_for
from tests.invariants import assert_all_invariants, assert_quiescent
from tests.threads import join_clients, start_clients, tenant_with_clusters
from tests.workers import PrivateRedis, Workers, real_workers, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def settled() -> bool:
    try:
        assert_quiescent()
    except AssertionError:
        return False
    return True


def storm(seed: int, user, clusters, created: list, count: int) -> None:
    rng = random.Random(seed)
    client = client_for(user)
    for n in range(count):
        response = client.post("/api/v1/deployments/", {
            "name": f"storm-{seed}-{n}", "cluster": rng.choice(clusters).pk, "docker_image": "img",
            "priority": rng.randint(0, 4), "cpu_required": rng.choice(["0.5", "1", "2"]),
            "gpu_required": rng.randint(0, 1),
        }, format="json")
        assert response.status_code == 201, response.content
        created.append(response.json()["id"])
        if n % 4 == 3:
            client.post(f"/api/v1/deployments/{rng.choice(created)}/complete/")


def test_killing_a_worker_mid_storm_loses_and_doubles_nothing():
    user, clusters = tenant_with_clusters(Role.DEVELOPER, 2, cpu_limit="5", ram_limit="8", gpu_limit=2)
    created: list[int] = []
    with real_workers("victim", "survivor") as workers:
        threads = start_clients(storm, range(6), user, clusters, created, 40)
        wait_until(lambda: len(created) > 60, timeout=60, what="the storm to get going")
        workers.kill("victim")
        join_clients(threads, timeout=120)
        # The killed worker's unacknowledged message comes back only after the visibility timeout; the
        # reconcile sweep of a fresh worker's beat is what places that work now.
        workers.env["RECONCILE_INTERVAL_SECONDS"] = "1"
        workers.start("replacement", beat=True)
        wait_until(settled, timeout=60, what="the clusters to settle")
    assert len(created) == 240 == len(set(created)) == Deployment.objects.count()
    assert Deployment.objects.filter(status=Status.RUNNING).exists()
    assert_all_invariants()


def call(base_url: str, method: str, path: str, body: dict | None = None, token: str | None = None):
    request = urllib.request.Request(
        base_url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_with_redis_down_the_api_keeps_accepting_and_reconcile_places_everything_after():
    user, (cluster,) = tenant_with_clusters(Role.DEVELOPER, 1, cpu_limit="100", ram_limit="100", gpu_limit=0)
    redis = PrivateRedis(port=6391)
    redis.start()
    workers = Workers(CELERY_BROKER_URL=f"{redis.url}/0", REDIS_URL=f"{redis.url}/1", RECONCILE_INTERVAL_SECONDS="1",
                      ALLOWED_HOSTS="127.0.0.1")
    try:
        base_url = workers.start_api("api", port=8791)
        workers.start("worker", beat=True, wait=False)
        token = str(RefreshToken.for_user(user).access_token)

        def submit(name: str) -> int:
            status, body = call(base_url, "POST", "/api/v1/deployments/", {
                "name": name, "cluster": cluster.pk, "docker_image": "img", "cpu_required": "1"}, token)
            assert status == 201, body
            assert body["status"] == "pending"
            return body["id"]

        before = submit("before-outage")
        wait_until(lambda: Deployment.objects.get(pk=before).status == Status.RUNNING, timeout=30,
                   what="the worker to place work while Redis is up")

        redis.stop()
        during = [submit(f"during-outage-{n}") for n in range(10)]
        status, body = call(base_url, "GET", "/readyz")
        assert status == 503
        assert body["checks"] == {"database": "ok", "broker": "down", "cache": "down"}
        assert set(Deployment.objects.filter(pk__in=during).values_list("status", flat=True)) == {Status.PENDING}

        redis.start()
        wait_until(lambda: not Deployment.objects.filter(pk__in=during).exclude(status=Status.RUNNING).exists(),
                   timeout=60, what="the next reconcile to place what was submitted during the outage")
        assert call(base_url, "GET", "/readyz")[0] == 200
    finally:
        workers.stop_all()
        redis.stop()
    assert_all_invariants()
