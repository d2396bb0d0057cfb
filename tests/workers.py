"""Real Celery worker processes for tests, consuming from the real Redis broker against the test database."""
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import connection

from hypervisor_mlops.celery import app


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Workers:
    """Starts, kills and waits for worker processes; every worker is stopped when the block ends."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "DATABASE_URL": test_database_url(), "CELERY_TASK_ALWAYS_EAGER": "false"}

    def start(self, name: str) -> None:
        args = [sys.executable, "-m", "celery", "-A", "hypervisor_mlops", "worker", "--pool", "solo",
                "--hostname", f"{name}@%h", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
        self.processes[name] = subprocess.Popen(args, env=self.env, cwd=settings.BASE_DIR)
        self._wait_until_ready(name)

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
