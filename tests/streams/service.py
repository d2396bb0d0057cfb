"""The service as the stream tests drive it: a real server process, and a user and a fake agent over HTTP.

The agent here is the test itself speaking the agent's sync API (what bin/agent sends), so that the tests can
write output line by line at the moments they choose; tests/cli runs the real agent on Podman.
"""
import base64
import itertools
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
from httpx_sse import connect_sse

from tests.workers import NOT_EMBEDDED, _answers, database_url_for_subprocesses, wait_until

ROOT = Path(__file__).resolve().parents[2]
# As bin/run serves it: 4 threads for requests plus STREAMS_PER_PROCESS (100) for streams.
APPS = {"wsgi": ["hypervisor_mlops.wsgi:application", "--threads", "104"],
        "asgi": ["hypervisor_mlops.asgi:application", "--worker-class", "asgi"]}
_names = itertools.count()


@contextmanager
def server(kind: str, port: int, directory: Path, *, embedded: bool, **settings: str):
    """gunicorn serving the API as a WSGI (threads) or ASGI application, on the test database (PostgreSQL with
    Redis) or, `embedded`, on a SQLite file with no Redis and no broker, as bin/run starts it unconfigured."""
    env = {**os.environ, "STREAM_HEARTBEAT_SECONDS": "1", **settings}
    if embedded:
        env = {name: value for name, value in env.items() if name not in NOT_EMBEDDED}
        env["DATABASE_URL"] = f"sqlite:///{directory / 'db.sqlite3'}"
        for command in (["migrate", "--noinput"], ["createcachetable"]):
            subprocess.run([sys.executable, "manage.py", *command], env=env, cwd=ROOT, check=True, capture_output=True)
    else:
        env.update(DATABASE_URL=database_url_for_subprocesses(), CELERY_TASK_ALWAYS_EAGER="true")
    args = [sys.executable, "-m", "gunicorn", *APPS[kind], "--bind", f"127.0.0.1:{port}",
            "--workers", "1" if embedded else "2", "--log-level", "warning"]
    with open(directory / f"{kind}-{port}.log", "ab") as log:
        process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _answers(f"{base}/healthz"), timeout=30, what=f"gunicorn ({kind}) to serve")
            yield base
        finally:
            process.terminate()
            process.wait(timeout=15)


class User:
    """Someone with an account, over HTTP."""

    def __init__(self, base: str) -> None:
        self.name = f"user{os.getpid()}x{next(_names)}"
        self.api = httpx.Client(base_url=f"{base}/api/v1", timeout=10)
        body = {"username": self.name, "email": f"{self.name}@example.com", "password": "correct-horse-battery"}
        assert self.api.post("/auth/register", json=body).status_code == 201
        self.token = self.api.post("/auth/login", json=body).json()["access"]
        self.api.headers["Authorization"] = f"Bearer {self.token}"

    def post(self, path: str, body: dict | None = None) -> dict:
        response = self.api.post(path, json=body or {})
        assert response.status_code in (200, 201), response.text
        return response.json()

    def get(self, path: str) -> dict:
        response = self.api.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def stream(self, path: str, last_event_id: int | str | None = None, **kwargs):
        """An SSE connection (a context manager yielding httpx-sse's EventSource)."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        return connect_sse(self.api, "GET", path, headers=headers, timeout=httpx.Timeout(10, read=20), **kwargs)


class Cluster:
    """A user's organization, cluster and the cluster's agent (the test speaking for it)."""

    def __init__(self, user: User) -> None:
        self.user = user
        org = user.post("/organizations/", {"name": f"org-{user.name}"})["id"]
        self.id = user.post("/clusters/", {"name": "pool", "organization": org, "cpu_limit": "64",
                                           "ram_limit": "64", "gpu_limit": 0})["id"]
        token = user.post(f"/clusters/{self.id}/agents/", {"name": "host-1"})["token"]
        self.agent = httpx.Client(base_url=user.api.base_url, timeout=10,
                                  headers={"Authorization": f"Bearer {token}"})
        self.written: dict[int, int] = {}
        self.running: set[int] = set()  # the agent reports all its containers in each picture

    def submit(self, **fields) -> int:
        body = {"name": "job", "cluster": self.id, "docker_image": "img:1", "cpu_required": "1", **fields}
        return self.user.post("/deployments/", body)["id"]

    def run(self, **fields) -> int:
        """A deployment whose container the agent reports running."""
        pk = self.submit(**fields)
        self.running.add(pk)
        self.sync([self._container(p, "running") for p in self.running])
        return pk

    def write(self, pk: int, text: str) -> None:
        """The container wrote `text`: the agent sends it with the next sync."""
        data = text.encode()
        offset = self.written.get(pk, 0)
        self.written[pk] = offset + len(data)
        self.sync(None, logs=[{"deployment": pk, "attempt": 1, "offset": offset,
                               "data": base64.b64encode(data).decode()}])

    def exit(self, pk: int, code: int = 0) -> None:
        self.running.discard(pk)
        self.sync([self._container(p, "running") for p in self.running] + [self._container(pk, "exited", code)])

    def sync(self, containers: list | None, logs=()) -> None:
        body = {"hostname": "host-1", "version": "test", "start_failures": [], "logs": list(logs)}
        if containers is not None:
            body["containers"] = containers
        response = self.agent.post("/agent/sync/", json=body)
        assert response.status_code == 200, response.text

    @staticmethod
    def _container(pk: int, state: str, exit_code: int | None = None) -> dict:
        return {"deployment": pk, "attempt": 1, "container": f"c{pk:011d}", "state": state, "exit_code": exit_code}


def lines_until(events, count: int) -> list[tuple[str, str, str]]:
    """(event, id, data) of the next `count` events of a stream."""
    return [(e.event, e.id, e.data) for e in itertools.islice(events, count)]
