"""End to end: the service (gunicorn on PostgreSQL, Celery beat for liveness) and real bin/agent processes
running deployments as containers on a private Podman service.

Users act through the API in this process (scheduling runs on commit, as a worker would); the agent talks to
the gunicorn server over loopback, as on a real host.
"""
import signal
from decimal import Decimal

import docker
import pytest

from agents.models import Agent
from deployments.models import Deployment, RunAttempt
from tests.agent.processes import RuntimeSampler, by_deployment, labelled
from tests.agent.steps import kinds, logs, run, runtime_state, settled, the_container, uid_of_cluster
from tests.deployments.api import DEPLOYMENTS, action, get
from tests.factories import ClusterFactory
from tests.invariants import assert_capacity_and_exact_availability
from tests.workers import Workers, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OFFLINE_AFTER, LOST_AFTER = 2, 4
LIVENESS = {"AGENT_OFFLINE_AFTER_SECONDS": str(OFFLINE_AFTER), "AGENT_LOST_AFTER_SECONDS": str(LOST_AFTER),
            "AGENT_SWEEP_SECONDS": "0.5"}
PORT = 8931


@pytest.fixture(scope="module")
def server():
    """gunicorn serving the API on the test database, plus a worker running beat for the lost-agent sweep."""
    workers = Workers(CELERY_TASK_ALWAYS_EAGER="true", **LIVENESS)
    try:
        url = workers.start_api("api", PORT)
        workers.start("beat", beat=True)
        yield url
    finally:
        workers.stop_all()


@pytest.fixture(autouse=True)
def _liveness(settings):
    for name, value in LIVENESS.items():
        setattr(settings, name, float(value))


@pytest.fixture
def cluster(organization):
    return ClusterFactory(organization=organization, cpu_limit="2", ram_limit="2", gpu_limit=3)


# --- Running, exiting, logs ----------------------------------------------------------------------------------

def test_exit_codes_finish_deployments_and_their_output_is_readable(dev, cluster, start_agent):
    start_agent()
    ok = run(dev, cluster, "echo hello; echo to-stderr >&2; exit 0")
    bad = run(dev, cluster, "echo failing; exit 3")
    body = settled(dev, ok, "completed")
    assert body["exit_code"] == 0 and body["runtime"]["state"] == "exited"
    assert logs(dev, ok) == {"lines": ["hello", "to-stderr"], "truncated": False}
    assert kinds(dev, ok) == ["queued", "scheduled", "started", "completed"]
    body = settled(dev, bad, "failed")
    assert body["exit_code"] == 3 and "code 3" in body["status_reason"]
    assert logs(dev, bad)["lines"] == ["failing"]


def test_the_container_gets_the_limits_labels_and_environment_of_the_contract(dev, cluster, start_agent,
                                                                              container_runtime):
    start_agent(gpus="0,1,2")
    pk = run(dev, cluster, "env; sleep 30", cpu="0.5", ram="0.25", gpu=2)
    body = runtime_state(dev, pk, "running")
    container = the_container(container_runtime, uid_of_cluster(cluster), pk)
    assert container.id == body["runtime"]["container"]
    host = container.attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 2**28
    assert container.labels["hypervisor.deployment"] == str(pk) and container.labels["hypervisor.attempt"] == "1"
    wait_until(lambda: "CUDA_VISIBLE_DEVICES=0,1" in logs(dev, pk)["lines"], timeout=10, what="env in the logs")
    assert "NVIDIA_VISIBLE_DEVICES=0,1" in logs(dev, pk)["lines"]
    assert any(e["kind"] == "started" and container.id[:12] in e["message"]
               for e in dev.get(f"{DEPLOYMENTS}{pk}/events/").json()["results"])


def test_a_zero_request_sets_no_limit_and_sees_no_gpu(dev, cluster, start_agent, container_runtime):
    start_agent(gpus="0")
    pk = run(dev, cluster, "env; sleep 30", cpu="0", ram="0")
    runtime_state(dev, pk, "running")
    host = the_container(container_runtime, uid_of_cluster(cluster), pk).attrs["HostConfig"]
    assert not host.get("NanoCpus") and not host.get("Memory")
    wait_until(lambda: "NVIDIA_VISIBLE_DEVICES=void" in logs(dev, pk)["lines"], timeout=10, what="env")


def test_gpu_indices_are_never_shared_between_live_containers(dev, cluster, start_agent, container_runtime):
    start_agent(gpus="0,1,2")
    first = run(dev, cluster, "sleep 30", cpu="0.1", gpu=2)
    second = run(dev, cluster, "sleep 30", cpu="0.1", gpu=1)
    for pk in (first, second):
        runtime_state(dev, pk, "running")
    uid = uid_of_cluster(cluster)
    given = {pk: the_container(container_runtime, uid, pk).labels["hypervisor.gpus"] for pk in (first, second)}
    assert sorted(given.values()) == ["0,1", "2"]
    action(dev, first, "complete")
    third = run(dev, cluster, "sleep 30", cpu="0.1", gpu=2)
    runtime_state(dev, third, "running")
    assert the_container(container_runtime, uid, third).labels["hypervisor.gpus"] == given[first]


def test_output_that_is_not_utf8_or_has_nul_bytes_never_breaks_the_logs(dev, cluster, start_agent):
    start_agent()
    pk = run(dev, cluster, r"printf 'bad \377\376 bytes\000nul\n'; seq 1 150000; echo end")
    settled(dev, pk, "completed")
    body = logs(dev, pk, tail=3)
    assert body == {"lines": ["149999", "150000", "end"], "truncated": True}
    assert logs(dev, pk, tail=10000)["lines"][0] == "140002"
    assert Deployment.objects.get(pk=pk).log.text.startswith("bad \ufffd\ufffd bytesnul\n1\n")


def test_an_image_that_cannot_be_had_or_a_command_that_cannot_run_fails_with_the_runtimes_message(
        dev, cluster, start_agent):
    start_agent()
    no_image = run(dev, cluster, "true", image="localhost/no-such-image:1")
    no_command = run(dev, cluster, "", command=["/no/such/binary"])
    body = settled(dev, no_image, "failed")
    assert body["status_reason"].startswith("Failed to start: ") and "no-such-image" in body["status_reason"]
    body = settled(dev, no_command, "failed")
    assert "/no/such/binary" in body["status_reason"]


# --- Stopping ----------------------------------------------------------------------------------------------

def test_a_cancelled_deployment_gets_sigterm_then_is_gone(dev, cluster, start_agent, container_runtime):
    start_agent()
    pk = run(dev, cluster, "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done")
    wait_until(lambda: logs(dev, pk)["lines"] == ["ready"], timeout=20, what="the container to run")
    action(dev, pk, "cancel")
    body = runtime_state(dev, pk, "stopped")
    assert body["status"] == "cancelled" and kinds(dev, pk)[-1] == "stopped"
    assert logs(dev, pk)["lines"] == ["ready", "got TERM"]
    wait_until(lambda: not by_deployment(container_runtime, uid_of_cluster(cluster), pk), timeout=10,
               what="the container to be removed")


def test_a_container_ignoring_sigterm_is_killed_after_its_grace(dev, cluster, start_agent):
    start_agent()
    pk = run(dev, cluster, "trap '' TERM; echo ready; while true; do sleep 0.1; done", grace=1)
    wait_until(lambda: logs(dev, pk)["lines"] == ["ready"], timeout=20, what="the container to run")
    action(dev, pk, "cancel")
    runtime_state(dev, pk, "stopped", timeout=15)
    assert RunAttempt.objects.get(deployment_id=pk).exit_code == 137
    assert dev.get(f"{DEPLOYMENTS}{pk}/events/").json()["results"][-1]["message"].endswith("(exit code 137).")


def test_a_preemptor_starts_only_once_its_slow_victim_is_gone(dev, cluster, start_agent, container_runtime):
    start_agent()
    victim = run(dev, cluster, "trap 'echo stopping; sleep 2; exit 0' TERM; echo ready; "
                               "while true; do sleep 0.1; done", cpu="2", priority=0, grace=10)
    wait_until(lambda: logs(dev, victim)["lines"] == ["ready"], timeout=20, what="the victim to run")
    with RuntimeSampler(container_runtime, uid_of_cluster(cluster)) as sampler:
        preemptor = run(dev, cluster, "echo urgent; sleep 30", cpu="2", priority=10)
        assert get(dev, victim)["status"] == "pending" and get(dev, victim)["preemption_count"] == 1
        assert get(dev, preemptor)["status"] == "running"
        wait_until(lambda: "stopping" in logs(dev, victim)["lines"], timeout=10, what="the victim to get SIGTERM")
        assert get(dev, preemptor)["runtime"]["state"] == "starting"  # it waits while its victim still runs
        runtime_state(dev, preemptor, "running", timeout=20)
    # Both ask for the whole cluster's 2 CPUs: had they overlapped for one sample, the host would run 4.
    assert sampler.samples > 10 and sampler.max_cpu == Decimal(2)
    wait_until(lambda: kinds(dev, victim)[-1] == "stopped", timeout=10, what="the victim's stopped event")
    assert RunAttempt.objects.get(deployment_id=victim, number=1).exit_code == 0
    # Once the preemptor is done, the victim runs again as a new attempt.
    action(dev, preemptor, "complete")
    body = runtime_state(dev, victim, "running", timeout=30)
    assert body["runtime"]["attempt"] == 2 and body["status"] == "running"


# --- The agent's own life ------------------------------------------------------------------------------------

def test_an_agent_stopped_with_sigterm_leaves_its_container_and_adopts_it_again(dev, cluster, start_agent,
                                                                               container_runtime):
    agent = start_agent()
    pk = run(dev, cluster, "echo one; sleep 4; echo two; exit 0")
    runtime_state(dev, pk, "running")
    container = the_container(container_runtime, uid_of_cluster(cluster), pk)
    agent.signal(signal.SIGTERM)
    assert agent.wait(timeout=5) == 0
    container.reload()
    assert container.status == "running"
    start_agent()
    body = settled(dev, pk, "completed", timeout=30)
    assert body["runtime"]["attempt"] == 1 and body["runtime"]["container"] == container.id
    # Adopted, never restarted: the same container ran the script once.
    assert logs(dev, pk)["lines"] == ["one", "two"]
    assert RunAttempt.objects.filter(deployment_id=pk).count() == 1


def test_a_killed_agent_goes_offline_its_work_is_requeued_and_runs_again_when_it_returns(
        dev, admin, cluster, start_agent, container_runtime):
    agent = start_agent()
    pk = run(dev, cluster, "echo attempt; while true; do sleep 0.1; done")
    runtime_state(dev, pk, "running")
    uid = uid_of_cluster(cluster)
    old = the_container(container_runtime, uid, pk)
    agent.signal(signal.SIGKILL)
    agent.wait(timeout=5)
    agents_url = f"/api/v1/clusters/{cluster.pk}/agents/"
    wait_until(lambda: admin.get(agents_url).json()["results"][0]["status"] == "offline", timeout=OFFLINE_AFTER + 3,
               what="the agent to show offline")
    body = settled(dev, pk, "pending", timeout=LOST_AFTER + 10)
    assert kinds(dev, pk)[-1] == "requeued" and "host-1" in body["status_reason"]
    old.reload()
    assert old.status == "running"  # nothing on the host has changed while its agent is away
    with RuntimeSampler(container_runtime, uid) as sampler:
        start_agent()
        body = runtime_state(dev, pk, "running", timeout=30)
    assert body["runtime"]["attempt"] == 2 and body["runtime"]["container"] != old.id
    with pytest.raises(docker.errors.NotFound):
        old.reload()
    assert sampler.samples > 0 and sampler.max_containers_per_deployment == 1
    assert RunAttempt.objects.get(deployment_id=pk, number=1).state == "stopped"
    # The log follower ships the new attempt's output beside the sync that reports it running, not with it.
    wait_until(lambda: logs(dev, pk)["lines"] == ["attempt", "attempt"], timeout=10,
               what="both attempts' output in the logs")


def test_revoking_the_agent_stops_its_containers_and_it_exits(dev, admin, cluster, start_agent,
                                                              container_runtime):
    agent = start_agent()
    pk = run(dev, cluster, "sleep 60")
    runtime_state(dev, pk, "running")
    uid = uid_of_cluster(cluster)
    admin.delete(f"/api/v1/clusters/{cluster.pk}/agents/{agent.registered['id']}/")
    assert agent.wait(timeout=20) == 3
    assert labelled(container_runtime, uid) == []
    assert "revoked" in agent.output()


def test_a_refused_token_is_a_clear_error_and_a_nonzero_exit(cluster, start_agent):
    agent = start_agent(token="hva_not-a-real-token")
    assert agent.wait(timeout=60) == 2
    assert "refused the agent token" in agent.output()


# --- Many at once ----------------------------------------------------------------------------------------------

def test_a_storm_of_short_deployments_never_overcommits_the_host(dev, cluster, start_agent, container_runtime):
    start_agent(gpus="0,1,2")
    pks = []
    shapes = [("0.5", "0.25", 0), ("1", "0.5", 1), ("0.25", "1", 0), ("2", "0.5", 2), ("0.5", "0.5", 1)]
    wait_until(lambda: Agent.objects.filter(cluster=cluster, last_seen_at__isnull=False).exists(), timeout=60,
               what="the agent to connect")
    uid = uid_of_cluster(cluster)
    with RuntimeSampler(container_runtime, uid) as sampler:
        for i in range(30):
            cpu, ram, gpu = shapes[i % len(shapes)]
            pks.append(run(dev, cluster, f"echo {i}; sleep 0.{i % 5}", cpu=cpu, ram=ram, gpu=gpu, priority=i % 3))
        for pk in pks:
            settled(dev, pk, "completed", timeout=120)
    assert sampler.samples > 10 and sampler.seen_deployments
    assert sampler.max_cpu <= Decimal(2) and sampler.max_ram <= Decimal(2)
    assert sampler.max_gpus_shared <= 1 and sampler.max_containers_per_deployment == 1
    # Each attempt that got to run wrote its line once (a preempted one runs again, as a new attempt).
    for i, pk in enumerate(pks):
        lines = logs(dev, pk)["lines"]
        assert set(lines) == {str(i)} and len(lines) <= RunAttempt.objects.filter(deployment_id=pk).count()
    assert_capacity_and_exact_availability()
    wait_until(lambda: labelled(container_runtime, uid) == [], timeout=20, what="every container to be removed")
