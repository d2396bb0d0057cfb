"""hv end to end: real `hv` processes (bin/hv, installed on first use) against gunicorn on the test database and a
real bin/agent running containers on the private Podman service."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.agent.conftest import agent_installed  # noqa: F401 (a fixture)
from tests.runtime import container_runtime  # noqa: F401 (a fixture)
from tests.workers import _answers, database_url_for_subprocesses, wait_until

ROOT = Path(__file__).resolve().parents[2]
PORT = 8966


class Server:
    """gunicorn as bin/run serves it, in its own process group so the tests can cut it off and bring it back."""

    def __init__(self, directory: Path) -> None:
        self.base = f"http://127.0.0.1:{PORT}"
        self.env = {**os.environ, "DATABASE_URL": database_url_for_subprocesses(), "CELERY_TASK_ALWAYS_EAGER": "true",
                    "STREAM_HEARTBEAT_SECONDS": "2", "AGENT_POLL_SECONDS": "0.1"}
        self.log = directory / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "hypervisor_mlops.wsgi:application", "--bind", f"127.0.0.1:{PORT}",
                 "--workers", "2", "--threads", "104", "--log-level", "warning"],
                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: _answers(f"{self.base}/healthz"), timeout=30, what="gunicorn to serve")

    def cut(self) -> None:
        """Every connection dropped at once, as when a server dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def hv_installed() -> None:
    """bin/hv installs hv into hv/.venv on first use: do that once, before any test."""
    subprocess.run([str(ROOT / "bin" / "hv"), "--version"], check=True, capture_output=True, timeout=600)


@pytest.fixture
def server(tmp_path):
    server = Server(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.cut()


class Hv:
    """Runs `hv` as a user does, with its own config directory."""

    def __init__(self, server: str, home: Path) -> None:
        self.server = server
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config")}
        for name in ("HV_SERVER", "HV_TOKEN"):
            self.env.pop(name, None)

    def __call__(self, *args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / "bin" / "hv"), *args], env=self.env, input=input, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(ROOT / "bin" / "hv"), *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    @property
    def config(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "hv" / "config.json"


@pytest.fixture
def hv(server, hv_installed, tmp_path):
    return Hv(server.base, tmp_path)


@pytest.fixture
def account(server):
    """A registered user, as a newcomer registers (the API; hv has no register command)."""
    user = {"username": "ada", "email": "ada@example.com", "password": "correct-horse-battery"}
    assert httpx.post(f"{server.base}/api/v1/auth/register", json=user).status_code == 201
    return user
