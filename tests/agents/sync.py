"""What the agent tests do through the agent-facing API, in the words of the tests."""
import base64

from rest_framework.test import APIClient

from tests.deployments.api import DEPLOYMENTS

SYNC = "/api/v1/agent/sync/"


def register(admin, cluster, name="host-1") -> dict:
    response = admin.post(f"/api/v1/clusters/{cluster.pk}/agents/", {"name": name})
    assert response.status_code == 201, response.content
    return response.json()


def agent_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def container(deployment: int, attempt: int, state: str = "running", exit_code=None, cid: str | None = None) -> dict:
    return {"deployment": deployment, "attempt": attempt, "container": cid or f"c{deployment:011d}a{attempt}",
            "state": state, "exit_code": exit_code}


def chunk(deployment: int, attempt: int, offset: int, data: bytes) -> dict:
    return {"deployment": deployment, "attempt": attempt, "offset": offset, "data": base64.b64encode(data).decode()}


def sync(client, containers=(), start_failures=(), logs=(), status_code=200) -> dict:
    """A sync reporting exactly these containers; `containers=None` reports no picture at all."""
    body = {"hostname": "host-1", "version": "1.0.0", "start_failures": list(start_failures), "logs": list(logs)}
    if containers is not None:
        body["containers"] = list(containers)
    response = client.post(SYNC, body)
    assert response.status_code == status_code, response.content
    return response.json()


def desired(answer: dict) -> dict[int, int]:
    """deployment id -> attempt, of what the agent is told to run."""
    return {d["id"]: d["attempt"] for d in answer["deployments"]}


def events(client, pk) -> list[tuple[str, str]]:
    return [(e["kind"], e["message"]) for e in client.get(f"{DEPLOYMENTS}{pk}/events/").json()["results"]]


def kinds(client, pk) -> list[str]:
    return [kind for kind, _ in events(client, pk)]
