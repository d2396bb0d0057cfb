"""The agent's fixtures: a private Podman service, bin/agent installed before any test times it, and real
agents started against the module's `server` (each module runs the service with the settings it needs)."""
import subprocess

import pytest

from agents.models import Agent
from tests.agent.processes import ROOT, AgentProcess, labelled
from tests.runtime import container_runtime

__all__ = ["container_runtime", "agent_installed"]


@pytest.fixture(scope="session")
def agent_installed() -> None:
    """bin/agent creates its virtualenv on first use; do that once, not inside a test's liveness window."""
    subprocess.run([str(ROOT / "bin" / "agent"), "--help"], check=True, capture_output=True, timeout=600)


@pytest.fixture
def start_agent(admin, cluster, server, container_runtime, agent_installed, tmp_path):
    """start_agent(gpus="", *extra_args) -> a running bin/agent for `cluster` (registered once); all are killed at
    the end."""
    registered = {}
    started = []

    def start(gpus: str = "", *extra: str, token: str | None = None) -> AgentProcess:
        if token is None:
            if not registered:
                response = admin.post(f"/api/v1/clusters/{cluster.pk}/agents/", {"name": "host-1"})
                registered.update(response.json())
            token = registered["token"]
        agent = AgentProcess(server, token, container_runtime.docker_host, tmp_path, gpus, extra).start()
        agent.registered = registered
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
    api = container_runtime.client.api
    for uid in Agent.objects.values_list("uid", flat=True):
        for summary in labelled(container_runtime, uid):
            api.remove_container(summary["Id"], force=True)
        for volume in api.volumes(filters={"label": f"hypervisor.agent={uid}"}).get("Volumes") or []:
            api.remove_volume(volume["Name"], force=True)
