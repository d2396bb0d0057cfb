"""The embedded default under concurrent writers: SQLite, no broker, as `bin/run` starts it with nothing configured.

Several clients at once over HTTP, every one of them writing: developers submit, complete, fail and cancel
deployments; an admin changes a member's role, resizes a cluster and rotates the invite code while newcomers
join by it; an agent syncs its containers and reports exits; `manage.py sweep` sweeps beside gunicorn.
No request may answer 5xx (SQLite's "database is locked" was one), and the ledger still adds up afterwards.
"""
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest

from tests.workers import embedded_service, wait_until

pytestmark = pytest.mark.slow

PORT = 8933
DEVELOPERS = 4
ROUNDS = 12
# What a client may legitimately be answered while others race it: a transition someone else made first
# (409), a role just taken away (403), an invite code just rotated (400).
EXPECTED = {200, 201, 204, 400, 403, 409}


@pytest.fixture
def embedded(tmp_path):
    with embedded_service(tmp_path, PORT, THROTTLE_AUTH_RATE="100000/min", THROTTLE_USER_RATE="100000/min",
                          AGENT_SWEEP_SECONDS="0.5") as base:
        yield base


class Client:
    """One user's API client that keeps every answer it got."""

    def __init__(self, base: str, answers: list, token: str | None = None):
        # A new connection per request: gunicorn's threaded worker closes a kept-alive connection whose
        # keep-alive time ran out even when a request arrived on it meanwhile (the client reads a reset, a
        # race browsers retry through), and this test is about the answers the service gives.
        self.http = httpx.Client(base_url=f"{base}/api/v1", timeout=60,
                                 limits=httpx.Limits(max_keepalive_connections=0))
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        self.answers = answers

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        self.answers.append((method, path, response.status_code, response.text[:300]))
        return response

    @classmethod
    def signed_up(cls, base: str, answers: list, name: str) -> "Client":
        client = cls(base, answers)
        user = {"username": name, "email": f"{name}@example.com", "password": "correct-horse-battery"}
        assert client.call("POST", "/auth/register", json=user).status_code == 201
        client.http.headers["Authorization"] = f"Bearer {client.call('POST', '/auth/login', json=user).json()['access']}"
        return client


def developer(client: Client, seed: int, clusters: list[int]) -> None:
    for round_ in range(ROUNDS):
        cluster = clusters[(seed + round_) % len(clusters)]
        created = client.call("POST", "/deployments/", json={
            "name": f"job-{seed}-{round_}", "cluster": cluster, "docker_image": "registry/img:1",
            "cpu_required": "0.5", "ram_required": "1", "priority": (seed * 7 + round_) % 5})
        running = client.call("GET", "/deployments/", params={"status": "running", "cluster": clusters[0]})
        mine = [d["id"] for d in running.json()["results"] if d["name"].startswith(f"job-{seed}-")]
        if mine:
            client.call("POST", f"/deployments/{mine[0]}/{'complete' if round_ % 2 else 'fail'}/")
        if created.status_code == 201 and round_ % 3 == 0:
            client.call("POST", f"/deployments/{created.json()['id']}/cancel/")


def admin(client: Client, organization: int, pawn: int, clusters: list[int]) -> None:
    for round_ in range(ROUNDS):
        client.call("PATCH", f"/organizations/{organization}/members/{pawn}/",
                    json={"role": "viewer" if round_ % 2 == 0 else "developer"})
        client.call("PATCH", f"/clusters/{clusters[0]}/", json={"cpu_limit": str(4 + round_ % 3)})
        client.call("POST", f"/organizations/{organization}/rotate-invite-code/")
        client.call("GET", f"/organizations/{organization}/members/")


def newcomers(base: str, answers: list, owner: Client, organization: int) -> None:
    for n in range(ROUNDS // 2):
        code = owner.call("GET", f"/organizations/{organization}/").json()["invite_code"]
        Client.signed_up(base, answers, f"newcomer{n}").call("POST", "/organizations/join/", json={"invite_code": code})


def agent(client: Client) -> None:
    """Runs what it is told to: reports each deployment running, then exited, one sync later."""
    seen: dict[tuple[int, int], str] = {}
    for _ in range(ROUNDS * 2):
        report = {"hostname": "host", "version": "test", "containers": [
            {"deployment": d, "attempt": a, "container": f"c-{d}-{a}", "state": state,
             "exit_code": 0 if state == "exited" else None} for (d, a), state in seen.items()]}
        answer = client.call("POST", "/agent/sync", json=report)
        desired = {(d["id"], d["attempt"]) for d in answer.json()["deployments"]} if answer.status_code == 200 else set()
        seen = {key: "exited" if seen.get(key) == "running" else "running" for key in desired}


def test_the_embedded_default_answers_concurrent_writers_without_a_5xx(embedded):
    answers: list[tuple[str, str, int, str]] = []
    owner = Client.signed_up(embedded, answers, "owner")
    organization = owner.call("POST", "/organizations/", json={"name": "ml"}).json()["id"]
    clusters = [owner.call("POST", "/clusters/", json={"name": name, "organization": organization,
                                                       "cpu_limit": "4", "ram_limit": "16", "gpu_limit": 0}).json()["id"]
                for name in ("ledger", "driven")]
    registered = owner.call("POST", f"/clusters/{clusters[1]}/agents/", json={"name": "host"}).json()
    code = owner.call("GET", f"/organizations/{organization}/").json()["invite_code"]
    developers = [Client.signed_up(embedded, answers, f"dev{n}") for n in range(DEVELOPERS)]
    for client in developers:
        assert client.call("POST", "/organizations/join/", json={"invite_code": code}).status_code == 200
    pawn = developers[-1].call("GET", "/auth/me").json()["id"]

    with ThreadPoolExecutor(max_workers=DEVELOPERS + 3) as pool:
        jobs = [pool.submit(developer, client, seed, clusters) for seed, client in enumerate(developers)]
        jobs.append(pool.submit(admin, owner, organization, pawn, clusters))
        jobs.append(pool.submit(newcomers, embedded, answers, owner, organization))
        jobs.append(pool.submit(agent, Client(embedded, answers, registered["token"])))
        for job in jobs:
            job.result()

    failures = [answer for answer in answers if answer[2] >= 500]
    assert not failures, f"{len(failures)} of {len(answers)} requests failed: {failures[:5]}"
    unexpected = [answer for answer in answers if answer[2] not in EXPECTED]
    assert not unexpected, unexpected[:5]
    statuses = Counter(status for _, _, status, _ in answers)
    # The run raced for real: transitions and role changes were answered, not only reads.
    assert statuses[201] > DEVELOPERS * ROUNDS // 2 and statuses[200] > 0, statuses

    # The ledger adds up: what each cluster shows free is its capacity minus what its running deployments hold.
    for pk in clusters:
        cluster = owner.call("GET", f"/clusters/{pk}/").json()
        held = sum((Decimal(d["cpu_required"]) for d in _all(owner, {"cluster": pk, "status": "running"})),
                   Decimal(0))
        assert Decimal(cluster["cpu_available"]) == Decimal(cluster["cpu_limit"]) - held >= 0


def _all(client: Client, params: dict) -> list[dict]:
    results, page = [], 1
    while True:
        body = client.call("GET", "/deployments/", params={**params, "page": page}).json()
        results += body["results"]
        if not body["next"]:
            return results
        page += 1


def test_the_embedded_default_holds_running_deployments_to_their_time_limits(embedded):
    """No beat here: `manage.py sweep` ends what ran past its limit and frees what it held."""
    client = Client.signed_up(embedded, [], "timer")
    organization = client.call("POST", "/organizations/", json={"name": "timed"}).json()["id"]
    cluster = client.call("POST", "/clusters/", json={"name": "ledger", "organization": organization,
                                                      "cpu_limit": "1", "ram_limit": "1", "gpu_limit": 0}).json()["id"]
    pk = client.call("POST", "/deployments/", json={"name": "slow", "cluster": cluster, "docker_image": "img:1",
                                                    "cpu_required": "1", "time_limit_seconds": 1}).json()["id"]
    wait_until(lambda: client.call("GET", f"/deployments/{pk}/").json()["status"] == "failed", timeout=15,
               what="the time limit to end it")
    body = client.call("GET", f"/deployments/{pk}/").json()
    assert (body["end_reason"], body["status_reason"]) == ("time_limit", "Failed: it reached its time limit of 1 s.")
    assert client.call("GET", f"/clusters/{cluster}/").json()["cpu_available"] == "1.000"
