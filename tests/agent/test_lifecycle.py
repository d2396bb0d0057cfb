"""The workload lifecycle on real containers: restarts in place with their backoff, time limits, and a volume
that outlives preemption, with real bin/agent processes against gunicorn on PostgreSQL and beat."""
import signal
from datetime import datetime

import pytest

from deployments.models import RunAttempt
from tests.agent.steps import kinds, logs, runtime_state, settled, uid_of_cluster
from tests.deployments.api import DEPLOYMENTS, action, get
from tests.factories import ClusterFactory
from tests.workers import Workers, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BACKOFF, RESET = 1, 4
SETTINGS = {"RESTART_BACKOFF_SECONDS": str(BACKOFF), "RESTART_BACKOFF_MAX_SECONDS": "60",
            "RESTART_RESET_SECONDS": str(RESET)}
PORT = 8934
# Counts its tries in its own volume: fails the first two, then succeeds.
FLAKY = "n=$(cat /state/n 2>/dev/null || echo 0); echo $((n+1)) > /state/n; echo try $n; [ $n -ge 2 ]"


@pytest.fixture(scope="module")
def server():
    """gunicorn serving the API (it decides restarts), and workers taking scheduling from the broker, one of
    them running beat (it enforces time limits), as in production."""
    workers = Workers(**SETTINGS)
    try:
        url = workers.start_api("api", PORT)
        workers.start("worker")
        workers.start("beat", beat=True)
        yield url
    finally:
        workers.stop_all()


@pytest.fixture
def cluster(organization):
    return ClusterFactory(organization=organization, cpu_limit="2", ram_limit="2", gpu_limit=0)


def create(client, cluster, script, *, cpu="0.5", priority=0, grace=1, **fields) -> int:
    body = {"name": "job", "cluster": cluster.pk, "docker_image": "localhost/busybox:test", "cpu_required": cpu,
            "ram_required": "0.25", "priority": priority, "stop_grace_seconds": grace,
            "command": ["sh", "-c", script], **fields}
    response = client.post(DEPLOYMENTS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def history(client, pk) -> list[tuple[datetime, str, str]]:
    return [(datetime.fromisoformat(e["at"]), e["kind"], e["message"])
            for e in client.get(f"{DEPLOYMENTS}{pk}/events/").json()["results"]]


def volumes(runtime, cluster) -> list[str]:
    listed = runtime.client.api.volumes(filters={"label": f"hypervisor.agent={uid_of_cluster(cluster)}"})
    return [volume["Name"] for volume in listed.get("Volumes") or []]


def test_a_flaky_job_restarts_in_place_with_its_backoff_then_completes(dev, cluster, start_agent,
                                                                       container_runtime):
    start_agent()
    pk = create(dev, cluster, FLAKY, restart_policy="on_failure", persist_path="/state")
    body = settled(dev, pk, "completed", timeout=60)
    assert (body["restart_count"], body["end_reason"], body["exit_code"]) == (2, "exited", 0)
    assert body["runtime"]["attempt"] == 1 and body["preemption_count"] == 0
    events = history(dev, pk)
    assert [kind for _, kind, _ in events] == [
        "queued", "scheduled", "started", "restarted", "started", "restarted", "started", "completed"]
    assert [message for _, kind, message in events if kind == "restarted"] == [
        "Restart 1 of 5 after 1 s: its container exited with code 1.",
        "Restart 2 of 5 after 2 s: its container exited with code 1."]
    # Each restart's container started no sooner than its backoff after the exit.
    restarts = [at for at, kind, _ in events if kind == "restarted"]
    starts = [at for at, kind, _ in events if kind == "started"][1:]
    waited = [(start - exit).total_seconds() for exit, start in zip(restarts, starts)]
    assert waited[0] >= BACKOFF and waited[1] >= 2 * BACKOFF, waited
    assert logs(dev, pk)["lines"] == ["try 0", "try 1", "try 2"]
    # Its volume goes once it is finished and its last container is gone.
    wait_until(lambda: volumes(container_runtime, cluster) == [], timeout=15, what="the volume to be removed")


def test_always_restarts_even_a_clean_exit_until_its_restarts_are_used_up(dev, cluster, start_agent):
    start_agent()
    pk = create(dev, cluster, "echo once; exit 0", restart_policy="always", max_restarts=2)
    body = settled(dev, pk, "failed", timeout=60)
    assert (body["end_reason"], body["restart_count"], body["exit_code"]) == ("restarts_exhausted", 2, 0)
    assert kinds(dev, pk).count("restarted") == 2 and logs(dev, pk)["lines"] == ["once"] * 3


def test_a_container_that_ran_long_restarts_at_once(dev, cluster, start_agent):
    start_agent()
    pk = create(dev, cluster, f"sleep {RESET + 1}; exit 1", restart_policy="on_failure", max_restarts=1)
    wait_until(lambda: get(dev, pk)["restart_count"] == 1, timeout=30, what="the first restart")
    assert [m for _, k, m in history(dev, pk) if k == "restarted"] == [
        "Restart 1 of 1 after 0 s: its container exited with code 1."]
    action(dev, pk, "cancel")


def test_an_agent_killed_during_a_backoff_neither_loses_nor_repeats_the_restart(dev, cluster, start_agent):
    agent = start_agent()
    pk = create(dev, cluster, FLAKY.replace("[ $n -ge 2 ]", "sleep 0.5; exit 3"), restart_policy="on_failure",
                max_restarts=1, persist_path="/state")
    wait_until(lambda: get(dev, pk)["restart_count"] == 1, timeout=30, what="the first exit")
    agent.signal(signal.SIGKILL)
    agent.wait(timeout=10)
    start_agent()
    body = settled(dev, pk, "failed", timeout=60)
    assert (body["end_reason"], body["restart_count"]) == ("restarts_exhausted", 1)
    assert kinds(dev, pk).count("restarted") == 1
    assert RunAttempt.objects.filter(deployment_id=pk).count() == 2  # two containers ran, one after the other
    # The restarted agent adopted the volume: the second container read what the first wrote.
    assert logs(dev, pk)["lines"] == ["try 0", "try 1"]


def test_a_time_limit_stops_the_container_with_sigterm_and_ends_it(dev, cluster, start_agent):
    start_agent()
    pk = create(dev, cluster, "trap 'echo got TERM; exit 143' TERM; echo up; while true; do sleep 0.1; done",
                time_limit_seconds=2)
    started = runtime_state(dev, pk, "running")["started_at"]
    body = settled(dev, pk, "failed", timeout=30)
    assert (body["end_reason"], body["status_reason"]) == ("time_limit", "Failed: it reached its time limit of 2 s.")
    overran = (datetime.fromisoformat(body["finished_at"]) - datetime.fromisoformat(started)).total_seconds()
    assert 2 <= overran <= 4, overran
    wait_until(lambda: get(dev, pk)["runtime"]["state"] == "stopped", timeout=15, what="the container to stop")
    assert "got TERM" in logs(dev, pk)["lines"]


def test_a_time_limit_on_a_ledger_only_cluster_frees_its_resources(dev, organization, server):
    ledger = ClusterFactory(organization=organization, cpu_limit="1", ram_limit="1", gpu_limit=0)
    pk = create(dev, ledger, "unused", cpu="1", time_limit_seconds=1)
    body = settled(dev, pk, "failed", timeout=15)
    assert body["end_reason"] == "time_limit"
    assert dev.get(f"/api/v1/clusters/{ledger.pk}/").json()["cpu_available"] == "1.000"


def test_a_checkpointing_job_resumes_after_a_preemption_from_its_volume(dev, cluster, start_agent,
                                                                        container_runtime):
    start_agent()
    counting = ("n=$(cat /ckpt/n 2>/dev/null || echo 0); echo resumed from $n; "
                "trap 'echo $n > /ckpt/n; exit 143' TERM; "
                "while [ $n -lt 40 ]; do n=$((n+1)); sleep 0.1; done; echo done at $n")
    pk = create(dev, cluster, counting, cpu="2", persist_path="/ckpt", grace=5)
    runtime_state(dev, pk, "running")
    wait_until(lambda: "resumed from 0" in logs(dev, pk)["lines"], timeout=15, what="the first run's output")
    urgent = create(dev, cluster, "sleep 1", cpu="2", priority=10)
    settled(dev, urgent, "completed", timeout=30)
    body = settled(dev, pk, "completed", timeout=60)
    assert body["preemption_count"] == 1 and body["end_reason"] == "exited"
    lines = logs(dev, pk)["lines"]
    resumed = [int(line.split()[-1]) for line in lines if line.startswith("resumed from")]
    assert resumed[0] == 0 and resumed[1] > 0, lines  # the second run went on from its checkpoint
    assert lines[-1] == "done at 40"
    wait_until(lambda: volumes(container_runtime, cluster) == [], timeout=15, what="the volume to be removed")
