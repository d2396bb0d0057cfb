"""GET /metrics: refused without the token, and exact values after known activity, in a bounded number of queries."""
import io
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents.models import Agent, generate_token, hash_token
from clusters.models import Cluster
from deployments.metrics import ADMISSION_WAIT_BUCKETS, LEDGER_DRIFT, SCHEDULING_PASS
from deployments.models import Deployment, DeploymentEvent, EventKind
from hypervisor_mlops.observability import metrics
from tests.deployments.api import get, submit
from tests.factories import ClusterFactory

TOKEN = "scrape-token-for-tests"
DEPLOYMENTS = "/api/v1/deployments/"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client=None) -> dict:
    """{(sample name, frozenset of labels): value} of one scrape."""
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/metrics", "/metrics/"])
def test_metrics_is_404_while_no_token_is_set(api_client, settings, path):
    settings.METRICS_TOKEN = ""
    response = api_client.get(path, HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {TOKEN}x", TOKEN, f"Token {TOKEN}", "Bearer "])
def test_metrics_refuses_a_missing_or_wrong_token(api_client, metrics_token, header):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = api_client.get("/metrics/", **extra)
    assert response.status_code == 401
    assert "detail" in response.json()
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_metrics_answers_the_token_with_the_text_format(api_client, metrics_token):
    response = api_client.get("/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"hypervisor_deployments", "hypervisor_cluster_capacity", "hypervisor_cluster_allocated",
            "hypervisor_pending_deployments", "hypervisor_admissions", "hypervisor_preemptions",
            "hypervisor_admission_wait_seconds", "hypervisor_scheduling_pass_seconds", "hypervisor_http_requests",
            "hypervisor_http_request_duration_seconds", "hypervisor_agent_up", "hypervisor_ledger_drift"} <= names


def test_metrics_is_not_in_the_api_schema(api_client, db):
    paths = api_client.get("/swagger.json").json()["paths"]
    assert not any("metrics" in path for path in paths)


LABELS = {"hypervisor_http_requests_total": ("method", "route", "status"),
          "hypervisor_http_request_duration_seconds_count": ("method", "route"), "hypervisor_ledger_drift_total": ()}


def own_share() -> dict:
    """This process's own values of the process-level series, from its multiprocess file."""
    def read(metric, *labels):
        return (metric.labels(*labels) if labels else metric)._value.get()

    def count(histogram, *labels):
        child = histogram.labels(*labels) if labels else histogram
        return sum(bucket.get() for bucket in child._buckets)

    return {
        ("hypervisor_http_requests_total", key): read(metrics.HTTP_REQUESTS, *key)
        for key in (("POST", "deployment-list", "201"), ("POST", "deployment-complete", "200"), ("GET", "metrics", "200"))
    } | {
        ("hypervisor_http_request_duration_seconds_count", ("POST", "deployment-list")):
            count(metrics.HTTP_REQUEST_DURATION, "POST", "deployment-list"),
        ("hypervisor_ledger_drift_total", ()): read(LEDGER_DRIFT),
        ("hypervisor_scheduling_pass_seconds_count", ()): count(SCHEDULING_PASS),
    }


def _submit(client, cluster_id, **fields) -> int:
    body = {"name": "job", "cluster": cluster_id, "docker_image": "img:1", "cpu_required": "1",
            "ram_required": "1", "gpu_required": 0, **fields}
    response = client.post(DEPLOYMENTS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _expected_admission_wait() -> tuple[list[float], float]:
    waits = []
    for deployment in Deployment.objects.all():
        first = DeploymentEvent.objects.filter(deployment=deployment, kind=EventKind.SCHEDULED).order_by("at").first()
        if first is not None:
            waits.append((first.at - deployment.created_at).total_seconds())
    return waits, sum(waits)


@pytest.mark.django_db(transaction=True)
def test_metrics_after_known_activity_are_exact(auth_client, metrics_token):
    own_before = own_share()
    org = auth_client.post("/api/v1/organizations/", {"name": "ops"}, format="json").json()["id"]
    clusters = []
    for name in ("gpu-pool", "small"):
        response = auth_client.post("/api/v1/clusters/", {"organization": org, "name": name, "cpu_limit": "8",
                                                          "ram_limit": "32", "gpu_limit": 2}, format="json")
        assert response.status_code == 201, response.content
        clusters.append(response.json()["id"])
    pool, small = clusters

    done = _submit(auth_client, pool, gpu_required=2, priority=1)
    assert auth_client.post(f"{DEPLOYMENTS}{done}/complete/").status_code == 200
    victim = _submit(auth_client, pool, gpu_required=2, priority=1)
    _submit(auth_client, pool, gpu_required=2, priority=10)  # preempts the victim
    _submit(auth_client, pool, depends_on=[victim])  # waits on its dependency
    _submit(auth_client, small, gpu_required=1)
    too_big = _submit(auth_client, small, gpu_required=2)
    # Shrunk below what the second one asks: it can never start there.
    assert auth_client.patch(f"/api/v1/clusters/{small}/", {"gpu_limit": 1}, format="json").status_code == 200
    assert Deployment.objects.get(pk=too_big).status == "pending"
    now = timezone.now()
    online = Agent.objects.create(cluster_id=pool, name="a", token_hash=hash_token(generate_token()), last_seen_at=now)
    silent = Agent.objects.create(cluster_id=small, name="b", token_hash=hash_token(generate_token()),
                                  last_seen_at=now - timedelta(hours=1))
    Cluster.objects.filter(pk=small).update(cpu_allocated=0)  # drift that reconcile repairs
    call_command("reconcile", stdout=io.StringIO())

    after = scrape()
    own_after = own_share()  # the scrape itself is counted once it is answered
    p, s = str(pool), str(small)
    assert {status: value(after, "hypervisor_deployments", cluster=p, status=status)
            for status in ("pending", "running", "completed", "failed", "cancelled")} == {
        "pending": 2, "running": 1, "completed": 1, "failed": 0, "cancelled": 0}
    assert value(after, "hypervisor_deployments", cluster=s, status="running") == 1
    assert value(after, "hypervisor_deployments", cluster=s, status="pending") == 1
    assert value(after, "hypervisor_cluster_capacity", cluster=p, resource="gpu") == 2
    assert value(after, "hypervisor_cluster_capacity", cluster=p, resource="cpu") == 8
    assert value(after, "hypervisor_cluster_capacity", cluster=s, resource="gpu") == 1
    assert value(after, "hypervisor_cluster_allocated", cluster=p, resource="gpu") == 2
    assert value(after, "hypervisor_cluster_allocated", cluster=p, resource="cpu") == 1
    assert value(after, "hypervisor_cluster_allocated", cluster=s, resource="cpu") == 1
    assert value(after, "hypervisor_pending_deployments", cluster=p, reason="resources") == 1
    assert value(after, "hypervisor_pending_deployments", cluster=p, reason="dependencies") == 1
    assert value(after, "hypervisor_pending_deployments", cluster=s, reason="exceeds_capacity") == 1
    assert value(after, "hypervisor_pending_deployments", cluster=s, reason="resources") == 0
    # Starts: done, victim, the urgent one on the pool; one on the small cluster.
    assert value(after, "hypervisor_admissions_total", cluster=p) == 3
    assert value(after, "hypervisor_admissions_total", cluster=s) == 1
    assert value(after, "hypervisor_preemptions_total", cluster=p) == 1
    assert value(after, "hypervisor_preemptions_total", cluster=s) == 0
    assert value(after, "hypervisor_agent_up", cluster=p, agent=str(online.pk)) == 1
    assert value(after, "hypervisor_agent_up", cluster=s, agent=str(silent.pk)) == 0

    waits, total = _expected_admission_wait()
    assert value(after, "hypervisor_admission_wait_seconds_count") == len(waits) == 4
    assert value(after, "hypervisor_admission_wait_seconds_sum") == pytest.approx(total, abs=1e-6)
    for bound in ADMISSION_WAIT_BUCKETS:
        assert value(after, "hypervisor_admission_wait_seconds_bucket", le=str(float(bound))) == sum(
            w <= bound for w in waits)
    assert value(after, "hypervisor_admission_wait_seconds_bucket", le="+Inf") == 4

    # Process-level series: the scrape sums every process's multiprocess file (exactness across processes is
    # proven against a real Prometheus in test_prometheus.py); other test runs on this host may share the
    # directory, so what this process did is read from its own share, before and after.
    for (name, labels), grown in {
        ("hypervisor_http_requests_total", ("POST", "deployment-list", "201")): 6,
        ("hypervisor_http_requests_total", ("POST", "deployment-complete", "200")): 1,
        ("hypervisor_http_requests_total", ("GET", "metrics", "200")): 1,
        ("hypervisor_http_request_duration_seconds_count", ("POST", "deployment-list")): 6,
        ("hypervisor_ledger_drift_total", ()): 1,
    }.items():
        assert own_after[name, labels] - own_before[name, labels] == grown, name
        if labels[1:2] != ("metrics",):
            assert value(after, name, **dict(zip(LABELS[name], labels))) >= own_after[name, labels]
    assert own_after["hypervisor_scheduling_pass_seconds_count", ()] - own_before[
        "hypervisor_scheduling_pass_seconds_count", ()] >= 6


def _deployments(cluster, count: int) -> None:
    project = cluster.organization.default_project
    Deployment.objects.bulk_create(Deployment(name=f"d{n}", cluster=cluster, project=project, docker_image="img",
                                              gpu_required=n % 3) for n in range(count))
    ids = list(Deployment.objects.filter(cluster=cluster).values_list("pk", flat=True))
    DeploymentEvent.objects.bulk_create(DeploymentEvent(deployment_id=pk, kind=EventKind.SCHEDULED, message="Started.")
                                        for pk in ids[::2])


@pytest.mark.django_db
def test_a_scrape_costs_the_same_queries_for_10_or_200_deployments(api_client, metrics_token):
    cluster = ClusterFactory()
    _deployments(cluster, 10)
    with CaptureQueriesContext(connection) as few:
        scrape(api_client)
    _deployments(ClusterFactory(), 190)
    Agent.objects.create(cluster=cluster, name="a", token_hash=hash_token(generate_token()))
    with CaptureQueriesContext(connection) as many:
        scrape(api_client)
    assert Deployment.objects.count() == 200
    assert len(few.captured_queries) == len(many.captured_queries) <= 8


@pytest.mark.django_db(transaction=True)
def test_pending_deployments_are_counted_under_the_reason_the_api_gives_each(dev, organization, metrics_token):
    cluster = ClusterFactory(organization=organization, cpu_limit="8", ram_limit="64", gpu_limit=2,
                             reserve_after_seconds=0)
    holder = submit(dev, cluster, name="holder", gpu=1)
    big = submit(dev, cluster, name="big", gpu=2)  # due at once: it reserves the free GPU
    small = submit(dev, cluster, name="small", gpu=1)  # held back behind it
    waiting = submit(dev, cluster, name="after", depends_on=[holder])
    reasons = Counter(get(dev, pk)["scheduling"]["reason"] for pk in (big, small, waiting))
    assert reasons == {"resources": 1, "reserved": 1, "dependencies": 1}

    samples = scrape()
    assert {reason: value(samples, "hypervisor_pending_deployments", cluster=str(cluster.pk), reason=reason)
            for reason in reasons} == reasons
