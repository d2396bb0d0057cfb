"""The workload lifecycle through the API: the new fields and their validation, why a deployment ended on
every path a user or a dependency drives, and time limits on a ledger-only cluster."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deployments import deadlines
from deployments.models import Deployment
from tests.deployments.api import DEPLOYMENTS, action, available, get, submit

pytestmark = pytest.mark.django_db(transaction=True)

LIFECYCLE = {"restart_policy": "on_failure", "max_restarts": 3, "time_limit_seconds": 3600, "persist_path": "/data"}


def post(client, cluster, **fields):
    return client.post(DEPLOYMENTS, {"name": "job", "cluster": cluster.pk, "docker_image": "img:1", **fields},
                       format="json")


def test_the_lifecycle_fields_default_and_read_back_as_sent(dev, cluster):
    defaults = get(dev, submit(dev, cluster))
    assert {field: defaults[field] for field in (*LIFECYCLE, "restart_count", "end_reason")} == {
        "restart_policy": "never", "max_restarts": 5, "time_limit_seconds": None, "persist_path": None,
        "restart_count": 0, "end_reason": None}
    response = post(dev, cluster, **LIFECYCLE)
    assert response.status_code == 201
    assert {field: response.json()[field] for field in LIFECYCLE} == LIFECYCLE
    assert post(dev, cluster, max_restarts=None, restart_policy="always").json()["max_restarts"] is None


@pytest.mark.parametrize("field, value", [
    ("restart_policy", "sometimes"), ("restart_policy", None), ("restart_policy", 1),
    ("max_restarts", -1), ("max_restarts", 10_001), ("max_restarts", 1.5), ("max_restarts", "many"),
    ("time_limit_seconds", 0), ("time_limit_seconds", 31_536_001), ("time_limit_seconds", -5),
    ("persist_path", "data"), ("persist_path", "/data/../etc"), ("persist_path", "/"), ("persist_path", 5),
    ("persist_path", "/" + "a" * 255), ("persist_path", "/da\x00ta"),
])
def test_a_bad_value_is_a_400_naming_the_field_and_nothing_is_created(dev, cluster, field, value):
    response = post(dev, cluster, **{field: value})
    assert response.status_code == 400 and set(response.json()) == {field}, response.content
    assert not Deployment.objects.exists()


def test_the_lifecycle_fields_are_editable_until_it_first_starts(dev, cluster):
    waiting = submit(dev, cluster, cpu="4")
    blocked = submit(dev, cluster, cpu="4")
    assert get(dev, blocked)["status"] == "pending"
    changed = dev.patch(f"{DEPLOYMENTS}{blocked}/", {"restart_policy": "always", "time_limit_seconds": 60},
                        format="json")
    assert changed.status_code == 200 and changed.json()["restart_policy"] == "always"
    refused = dev.patch(f"{DEPLOYMENTS}{waiting}/", {"max_restarts": 1}, format="json")
    assert refused.status_code == 409 and "max_restarts" in refused.json()["detail"]


def test_why_it_ended_on_the_users_and_the_dependencies_paths(dev, cluster):
    completed, failed, cancelled = (submit(dev, cluster, cpu="1") for _ in range(3))
    dependent = submit(dev, cluster, cpu="0", depends_on=[failed])
    transitive = submit(dev, cluster, cpu="0", depends_on=[dependent])
    action(dev, completed, "complete")
    action(dev, failed, "fail")
    action(dev, cancelled, "cancel")
    assert {pk: get(dev, pk)["end_reason"] for pk in (completed, failed, cancelled, dependent, transitive)} == {
        completed: "user", failed: "user", cancelled: "user", dependent: "dependency", transitive: "dependency"}
    listed = dev.get(f"{DEPLOYMENTS}?end_reason=dependency").json()["results"]
    assert sorted(d["id"] for d in listed) == sorted([dependent, transitive])
    assert dev.get(f"{DEPLOYMENTS}?end_reason=bored").status_code == 400


def test_a_time_limit_ends_a_deployment_on_a_ledger_only_cluster_exactly_once(dev, cluster):
    limited = submit(dev, cluster, cpu="4", time_limit_seconds=60)
    waiting = submit(dev, cluster, cpu="4")
    assert deadlines.end_overdue() == 0  # not yet
    Deployment.objects.filter(pk=limited).update(started_at=timezone.now() - timedelta(seconds=60))
    assert deadlines.end_overdue() == 1
    assert deadlines.end_overdue() == 0
    body = get(dev, limited)
    assert (body["status"], body["end_reason"]) == ("failed", "time_limit")
    assert body["status_reason"] == "Failed: it reached its time limit of 60 s."
    last = dev.get(f"{DEPLOYMENTS}{limited}/events/").json()["results"][-1]
    assert (last["kind"], last["message"]) == ("failed", "Failed: it reached its time limit of 60 s.")
    assert get(dev, waiting)["status"] == "running"  # what it held went to the next in line
    assert available(dev, cluster)[0] == "0.000"


def test_finished_deployments_are_counted_by_why_they_ended(dev, cluster, settings):
    settings.METRICS_TOKEN = "t"
    for verb in ("complete", "fail"):
        action(dev, submit(dev, cluster, cpu="1"), verb)
    scrape = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    samples = {(s.name, s.labels.get("end_reason")): s.value for family in text_string_to_metric_families(scrape)
               for s in family.samples if s.name == "hypervisor_deployments_finished_total"
               and s.labels["cluster"] == str(cluster.pk)}
    assert samples[("hypervisor_deployments_finished_total", "user")] == 2
    assert samples[("hypervisor_deployments_finished_total", "time_limit")] == 0


def test_a_preemption_says_how_long_its_victim_ran_and_counts_that_as_lost(dev, cluster, settings):
    settings.METRICS_TOKEN = "t"
    victim = submit(dev, cluster, cpu="2", gpu=2)
    Deployment.objects.filter(pk=victim).update(started_at=timezone.now() - timedelta(seconds=723))
    urgent = submit(dev, cluster, cpu="1", gpu=1, priority=10)
    last = dev.get(f"{DEPLOYMENTS}{victim}/events/").json()["results"][-2]
    assert (last["kind"], last["message"]) == (
        "preempted", f"Preempted by deployment #{urgent} (priority 10) after 12 min 3 s of running.")
    body = get(dev, victim)
    assert 723 <= body["lost_seconds"] < 730 and body["preemption_count"] == 1
    assert body["status_reason"].startswith(f"Preempted by deployment #{urgent} (priority 10). Now")
    scrape = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    lost = {s.labels["resource"]: s.value for family in text_string_to_metric_families(scrape) for s in family.samples
            if s.name == "hypervisor_preemption_lost_seconds_total" and s.labels["cluster"] == str(cluster.pk)}
    assert lost["gpu"] == pytest.approx(2 * body["lost_seconds"]) and lost["cpu"] == pytest.approx(2 * body["lost_seconds"])
    assert lost["ram"] == pytest.approx(float(body["ram_required"]) * body["lost_seconds"])
