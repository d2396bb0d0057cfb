"""Real processes for tests: Celery workers, gunicorn and a private Redis, all against the test database."""
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager

from django.conf import settings
from django.db import connection

from hypervisor_mlops.celery import app


def database_url_for_subprocesses() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Workers:
    """Starts, kills and waits for worker processes; every worker is stopped when the block ends."""

    def __init__(self, **env: str) -> None:
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "DATABASE_URL": database_url_for_subprocesses(), "CELERY_TASK_ALWAYS_EAGER": "false", **env}

    def start(self, name: str, *, beat: bool = False, wait: bool = True, stderr=None, loglevel: str = "WARNING") -> None:
        """Start a worker; with beat, it also runs the periodic reconcile sweep; stderr: a file for its logs."""
        args = [sys.executable, "-m", "celery", "-A", "hypervisor_mlops", "worker", "--pool", "solo",
                "--hostname", f"{name}@%h", "--loglevel", loglevel, "--without-gossip", "--without-mingle"]
        if beat:
            args += ["--beat", "--schedule", os.path.join(tempfile.mkdtemp(), "beat-schedule")]
        self.processes[name] = subprocess.Popen(args, env=self.env, cwd=settings.BASE_DIR, stderr=stderr)
        if wait:
            self._wait_until_ready(name)

    def start_api(self, name: str, port: int, *, stderr=None) -> str:
        """gunicorn serving the API as in production; returns its base URL once /healthz answers."""
        args = [sys.executable, "-m", "gunicorn", "hypervisor_mlops.wsgi:application", "--bind",
                f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"]
        self.processes[name] = subprocess.Popen(args, env=self.env, cwd=settings.BASE_DIR, stderr=stderr)
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{base_url}/healthz"), timeout=30, what="gunicorn to serve /healthz")
        return base_url

    def kill(self, name: str) -> None:
        """kill -9: the worker gets no chance to finish, ack or clean up."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    def _wait_until_ready(self, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(name in hostname for reply in app.control.ping(timeout=0.5) for hostname in reply):
                return
        raise RuntimeError(f"worker {name} did not start within {timeout} s")


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class PrivateRedis:
    """A Redis server of the test's own, so the test may stop and start it without touching anyone else's."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._pings, timeout=10, what=f"redis on port {self.port}")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def _pings(self) -> bool:
        return subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout == b"PONG\n"


def wait_for_idle_queue(timeout: float = 90) -> None:
    """Until the broker queue is empty and stays empty for a moment (workers ack only when done)."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        with app.connection_for_write() as conn:
            client = conn.default_channel.client
            busy = client.llen(app.conf.task_default_queue) + client.hlen("unacked")
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.0:
            return
        time.sleep(0.1)
    raise AssertionError(f"the queue did not drain within {timeout} s")


@contextmanager
def real_workers(*names: str):
    """Send tasks through the broker (not in-process) to worker processes with the given names."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(app.conf.task_default_queue, "unacked", "unacked_index")
    workers = Workers()
    connection.close()
    try:
        for name in names:
            workers.start(name)
        yield workers
    finally:
        workers.stop_all()
        app.conf.task_always_eager = previous


# The test process's own settings point at PostgreSQL, Redis and a broker; the embedded default has none.
NOT_EMBEDDED = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER")


@contextmanager
def embedded_service(directory, port: int, **overrides: str):
    """The embedded default as `bin/run` starts it with nothing configured: SQLite in `directory`, no broker,
    one gunicorn process with four threads and `manage.py sweep` beside it. Yields its base URL."""
    env = {name: value for name, value in os.environ.items() if name not in NOT_EMBEDDED}
    env.update(DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}", SECRET_KEY="embedded-test", **overrides)
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--noinput"], ["createcachetable"]):
        subprocess.run(manage + command, env=env, check=True, capture_output=True)
    with open(directory / "service.log", "wb") as log:
        processes = [
            subprocess.Popen([sys.executable, "-m", "gunicorn", "hypervisor_mlops.wsgi:application", "--bind",
                              f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"], env=env, stdout=log,
                             stderr=subprocess.STDOUT),
            subprocess.Popen(manage + ["sweep"], env=env, stdout=log, stderr=subprocess.STDOUT),
        ]
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _answers(f"{base}/healthz"), timeout=30, what="the embedded service")
            yield base
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=15)
