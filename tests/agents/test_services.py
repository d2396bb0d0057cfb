"""Services through the agent-facing API: the ports an agent publishes become `runtime.endpoints`, its health
checks' verdicts `runtime.ready` with events, across restarts in place (the test speaks as the agent;
tests/agent/test_services.py runs real containers)."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deployments.models import RunAttempt
from tests.agents.sync import SYNC, container, desired, events, sync
from tests.deployments.api import DEPLOYMENTS, action, get, submit

pytestmark = pytest.mark.django_db(transaction=True)

CHECK = {"http": {"port": 8080, "path": "/healthz"}, "period_seconds": 1}


def serving(pk, attempt, host_port=40001, ready=None, health="", state="running", exit_code=None) -> dict:
    return {**container(pk, attempt, state, exit_code), "ports": [{"port": 8080, "host_port": host_port}],
            "ready": ready, "health": health}


def report(agent, containers, advertise_address="gpu-7.example") -> dict:
    response = agent.post(SYNC, {"hostname": "host-1", "advertise_address": advertise_address,
                                 "containers": list(containers)}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_published_ports_are_the_endpoints_while_the_container_runs(dev, agent, cluster):
    pk = submit(dev, cluster, ports=[8080])
    assert get(dev, pk)["runtime"]["endpoints"] == []  # not running yet
    report(agent, [serving(pk, 1)])
    assert get(dev, pk)["runtime"]["endpoints"] == [
        {"port": 8080, "host": "gpu-7.example", "host_port": 40001, "url": "http://gpu-7.example:40001"}]
    assert get(dev, pk)["runtime"]["ready"] is None  # no check
    report(agent, [serving(pk, 1, state="exited", exit_code=0)])
    body = get(dev, pk)
    assert body["status"] == "completed" and body["runtime"]["endpoints"] == []


def test_without_an_advertised_address_the_url_names_the_agents_host(dev, agent, cluster):
    pk = submit(dev, cluster, ports=[8080])
    report(agent, [serving(pk, 1)], advertise_address="")
    assert get(dev, pk)["runtime"]["endpoints"][0]["url"] == "http://host-1:40001"


def test_a_port_not_yet_bound_shows_once_the_agent_sees_it_bound(dev, agent, cluster):
    pk = submit(dev, cluster, ports=[8080])
    report(agent, [{**serving(pk, 1), "ports": []}])  # Docker may list no binding right after a start
    assert get(dev, pk)["runtime"]["endpoints"] == []
    report(agent, [serving(pk, 1)])
    assert [e["host_port"] for e in get(dev, pk)["runtime"]["endpoints"]] == [40001]


def test_readiness_follows_the_agents_verdicts_with_an_event_for_each_change(dev, agent, cluster):
    pk = submit(dev, cluster, ports=[8080], health_check=CHECK)
    assert desired(report(agent, [])) == {pk: 1}
    [spec] = report(agent, [])["deployments"]
    assert spec["ports"] == [8080] and spec["health_check"]["http"] == {"port": 8080, "path": "/healthz"}
    report(agent, [serving(pk, 1, ready=None)])  # no verdict yet: not ready
    assert get(dev, pk)["runtime"]["ready"] is False
    assert dev.get(f"{DEPLOYMENTS}?ready=false").json()["results"][0]["id"] == pk
    report(agent, [serving(pk, 1, ready=True, health="HTTP 200 from /healthz")])
    report(agent, [serving(pk, 1, ready=True, health="HTTP 200 from /healthz")])  # no change, no event
    assert get(dev, pk)["runtime"]["ready"] is True
    assert [d["id"] for d in dev.get(f"{DEPLOYMENTS}?ready=true").json()["results"]] == [pk]
    report(agent, [serving(pk, 1, ready=False, health="HTTP 503 from /healthz")])
    assert get(dev, pk)["runtime"]["ready"] is False
    assert [e for e in events(dev, pk) if e[0] in ("ready", "not_ready")] == [
        ("ready", "Ready: HTTP 200 from /healthz."), ("not_ready", "Not ready: HTTP 503 from /healthz.")]


def test_an_agent_without_a_verdict_keeps_the_last_one(dev, agent, cluster):
    """A restarted agent adopts its containers before its first probe: what it does not know changes nothing."""
    pk = submit(dev, cluster, ports=[8080], health_check=CHECK)
    report(agent, [serving(pk, 1, ready=True)])
    report(agent, [serving(pk, 1, ready=None)])
    assert get(dev, pk)["runtime"]["ready"] is True


def test_a_restart_in_place_asks_for_the_same_host_ports_and_is_not_ready_until_its_check_passes(dev, agent, cluster,
                                                                                                   settings):
    settings.RESTART_BACKOFF_SECONDS = 10
    pk = submit(dev, cluster, ports=[8080], health_check=CHECK, restart_policy="always")
    report(agent, [serving(pk, 1, ready=True)])
    report(agent, [serving(pk, 1, state="exited", exit_code=1)])
    body = get(dev, pk)
    assert body["runtime"]["state"] == "backoff" and body["runtime"]["ready"] is False
    assert body["runtime"]["endpoints"] == []
    assert events(dev, pk)[-2:] == [("not_ready", "Not ready: its container exited with code 1."),
                                    ("restarted", "Restart 1 of 5 after 10 s: its container exited with code 1.")]
    RunAttempt.objects.filter(deployment_id=pk, number=2).update(not_before=timezone.now() - timedelta(seconds=1))
    [spec] = report(agent, [])["deployments"]
    assert (spec["attempt"], spec["host_ports"]) == (2, [{"port": 8080, "host_port": 40001}])
    report(agent, [serving(pk, 2, ready=None)])
    body = get(dev, pk)
    assert body["runtime"]["ready"] is False and body["runtime"]["endpoints"][0]["host_port"] == 40001
    report(agent, [serving(pk, 2, ready=True)])
    assert get(dev, pk)["runtime"]["ready"] is True


def test_a_new_attempt_asks_for_no_particular_host_port(dev, agent, cluster):
    victim = submit(dev, cluster, cpu="4", ports=[8080])
    report(agent, [serving(victim, 1)])
    urgent = submit(dev, cluster, cpu="4", priority=5)
    report(agent, [])  # the victim's container is gone
    action(dev, urgent, "complete")
    [spec] = report(agent, [])["deployments"]
    assert (spec["id"], spec["attempt"], spec["host_ports"]) == (victim, 2, [])


def test_bad_reports_of_ports_and_readiness_are_400s(agent):
    for bad in ({"ports": [{"port": 0, "host_port": 1}]}, {"ports": [{"port": 80}]}, {"ready": "yes"}, {"ready": 0},
                {"health": "x" * 501}):
        body = {"hostname": "h", "containers": [{**container(1, 1), **bad}]}
        assert agent.post(SYNC, body, format="json").status_code == 400


def test_ready_services_are_counted_per_cluster(dev, agent, cluster, settings):
    settings.METRICS_TOKEN = "t"
    ready, not_ready = submit(dev, cluster, ports=[8080], health_check=CHECK), submit(dev, cluster, ports=[8080])
    report(agent, [serving(ready, 1, ready=True), serving(not_ready, 1, 40002)])
    scrape = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    counted = {s.labels["cluster"]: s.value for family in text_string_to_metric_families(scrape)
               for s in family.samples if s.name == "hypervisor_deployments_ready"}
    assert counted[str(cluster.pk)] == 1
    sync(agent, [container(ready, 1, "exited", 0), container(not_ready, 1)])
    scrape = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    assert "hypervisor_deployments_ready{cluster=\"%d\"} 0.0" % cluster.pk in scrape
