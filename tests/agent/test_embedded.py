"""The embedded default with an agent: SQLite, no broker and no beat (as `bin/run` starts it with nothing
configured), `manage.py sweep` beside gunicorn, and a real bin/agent on the private Podman service.

Everything goes over HTTP, as a newcomer following the README would do it.
"""
import signal

import httpx
import pytest

from tests.agent.processes import AgentProcess
from tests.workers import embedded_service, wait_until

pytestmark = pytest.mark.slow

PORT = 8932
LOST_AFTER = 3


@pytest.fixture
def embedded(tmp_path):
    with embedded_service(tmp_path, PORT, AGENT_OFFLINE_AFTER_SECONDS="1.5",
                          AGENT_LOST_AFTER_SECONDS=str(LOST_AFTER), AGENT_SWEEP_SECONDS="0.5",
                          THROTTLE_AUTH_RATE="1000/min") as base:
        yield base


def test_an_agent_runs_deployments_and_its_loss_requeues_them_on_the_embedded_default(
        embedded, container_runtime, agent_installed, tmp_path):
    api = httpx.Client(base_url=f"{embedded}/api/v1", timeout=10)
    user = {"username": "ada", "email": "ada@example.com", "password": "correct-horse-battery"}
    assert api.post("/auth/register", json=user).status_code == 201
    token = api.post("/auth/login", json=user).json()["access"]
    api.headers["Authorization"] = f"Bearer {token}"
    org = api.post("/organizations/", json={"name": "ml"}).json()["id"]
    cluster = api.post("/clusters/", json={"name": "pool", "organization": org, "cpu_limit": "2",
                                           "ram_limit": "2", "gpu_limit": 0}).json()["id"]
    registered = api.post(f"/clusters/{cluster}/agents/", json={"name": "host-1"}).json()
    agent = AgentProcess(embedded, registered["token"], container_runtime.docker_host, tmp_path).start()

    def submit(script: str) -> int:
        response = api.post("/deployments/", json={"name": "job", "cluster": cluster, "cpu_required": "1",
                                                   "docker_image": "localhost/busybox:test",
                                                   "command": ["sh", "-c", script], "stop_grace_seconds": 1})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def deployment(pk: int) -> dict:
        return api.get(f"/deployments/{pk}/").json()

    try:
        done = submit("echo hello from the embedded default")
        wait_until(lambda: deployment(done)["status"] == "completed", timeout=30, what="the deployment to complete")
        assert deployment(done)["exit_code"] == 0
        assert api.get(f"/deployments/{done}/logs/").json()["lines"] == ["hello from the embedded default"]

        long = submit("while true; do sleep 0.1; done")
        wait_until(lambda: (deployment(long)["runtime"] or {}).get("state") == "running", timeout=30,
                   what="the long deployment to run")
        agent.signal(signal.SIGKILL)
        agent.wait(timeout=5)
        # No beat here: `manage.py sweep` requeues it.
        wait_until(lambda: deployment(long)["status"] == "pending", timeout=LOST_AFTER + 10, what="the requeue")
        events = [e["kind"] for e in api.get(f"/deployments/{long}/events/").json()["results"]]
        assert events[-1] == "requeued"
        agent = AgentProcess(embedded, registered["token"], container_runtime.docker_host, tmp_path).start()
        wait_until(lambda: (deployment(long)["runtime"] or {}).get("attempt") == 2
                   and deployment(long)["runtime"]["state"] == "running", timeout=30, what="the second attempt")
    finally:
        agent.stop()
        for summary in container_runtime.client.api.containers(all=True, filters={"label": "hypervisor.cluster"}):
            if summary["Labels"].get("hypervisor.cluster") == str(cluster):
                container_runtime.client.api.remove_container(summary["Id"], force=True)
