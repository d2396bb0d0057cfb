"""What the agent tests do through the API, in the words of the tests."""
from agents.models import Agent
from tests.agent.processes import by_deployment
from tests.deployments.api import DEPLOYMENTS, get
from tests.workers import wait_until


def uid_of_cluster(cluster) -> str:
    return Agent.objects.get(cluster=cluster, revoked_at=None).uid


def run(client, cluster, script: str, *, cpu="0.5", ram="0.25", gpu=0, priority=0, grace=1,
        image="localhost/busybox:test", command=None) -> int:
    body = {"name": "job", "cluster": cluster.pk, "docker_image": image, "cpu_required": cpu,
            "ram_required": ram, "gpu_required": gpu, "priority": priority, "stop_grace_seconds": grace,
            "command": command if command is not None else ["sh", "-c", script]}
    response = client.post(DEPLOYMENTS, body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def settled(client, pk, *statuses, timeout=30) -> dict:
    wait_until(lambda: get(client, pk)["status"] in statuses, timeout=timeout, what=f"#{pk} to be {statuses}")
    return get(client, pk)


def runtime_state(client, pk, state, timeout=30) -> dict:
    wait_until(lambda: (get(client, pk)["runtime"] or {}).get("state") == state, timeout=timeout,
               what=f"#{pk}'s container to be {state}")
    return get(client, pk)


def logs(client, pk, tail=100) -> dict:
    return client.get(f"{DEPLOYMENTS}{pk}/logs/?tail={tail}").json()


def kinds(client, pk) -> list[str]:
    return [e["kind"] for e in client.get(f"{DEPLOYMENTS}{pk}/events/").json()["results"]]


def the_container(runtime, uid, pk):
    [container] = by_deployment(runtime, uid, pk)
    return container
