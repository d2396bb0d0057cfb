"""Health checks run against live containers, each on a thread of its own: a probe that hangs costs its own
check its timeout, never the reconcile loop or another check."""
from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping

from cluster_agent.health import EXEC, HTTP, HealthCheck, Verdict, next_probe_at, observe
from cluster_agent.runtime import ERRORS, Runtime

log = logging.getLogger(__name__)

# Published ports are probed where the host reaches them.
PROBE_HOST = "127.0.0.1"


class HealthChecker:
    """Probes one container on its check's schedule and keeps the verdict; `on_change` is called when
    readiness changes, so the loop reports it without waiting for its next pass."""

    def __init__(self, runtime: Runtime, container_id: str, check: HealthCheck, on_change: Callable[[], None]) -> None:
        self.runtime = runtime
        self.container_id = container_id
        self.check = check
        self.on_change = on_change
        self.verdict = Verdict()
        self.published: Mapping[int, int] = {}  # container port -> host port, as the runtime lists them now
        self.closed = threading.Event()
        self.hung_exec: threading.Thread | None = None

    def start(self) -> HealthChecker:
        threading.Thread(target=self.run, daemon=True, name=f"check-{self.container_id[:12]}").start()
        return self

    def close(self) -> None:
        self.closed.set()

    def run(self) -> None:
        began, last = time.monotonic(), None
        while not self.closed.wait(max(next_probe_at(self.check, began, last) - time.monotonic(), 0)):
            last = time.monotonic()
            ok, said = self.probe()
            if self.closed.is_set():
                return
            verdict = observe(self.verdict, self.check, ok, said)
            changed = verdict.ready != self.verdict.ready
            self.verdict = verdict
            if changed:
                log.info("container %s is %sready: %s", self.container_id[:12], "" if verdict.ready else "not ", said)
                self.on_change()

    def probe(self) -> tuple[bool, str]:
        """(healthy, what the probe saw in words a user reads in an event)."""
        if self.check.kind == EXEC:
            return self.probe_exec()
        host_port = self.published.get(self.check.port)
        if host_port is None:
            return False, f"port {self.check.port} is not published yet"
        try:
            if self.check.kind == HTTP:
                return probe_http(host_port, self.check.path, self.check.timeout)
            with socket.create_connection((PROBE_HOST, host_port), timeout=self.check.timeout):
                return True, f"port {self.check.port} accepts connections"
        except TimeoutError:
            return False, f"no answer within {self.check.timeout:g} s"
        except ConnectionRefusedError:
            return False, "connection refused"
        except (OSError, http.client.HTTPException) as exc:
            return False, str(exc) or type(exc).__name__

    def probe_exec(self) -> tuple[bool, str]:
        # The Engine API cannot bound an exec's time: it runs on a thread of its own, and one still hanging
        # from an earlier probe counts as another failure rather than piling up a second.
        if self.hung_exec is not None and self.hung_exec.is_alive():
            return False, f"{self.check.argv[0]} still running after {self.check.timeout:g} s"
        outcome: list[tuple[bool, str]] = []
        runner = threading.Thread(target=lambda: outcome.append(self.run_exec()), daemon=True)
        runner.start()
        runner.join(self.check.timeout)
        if not outcome:
            self.hung_exec = runner
            return False, f"{self.check.argv[0]} did not finish within {self.check.timeout:g} s"
        return outcome[0]

    def run_exec(self) -> tuple[bool, str]:
        try:
            code = self.runtime.exec(self.container_id, self.check.argv)
        except ERRORS as exc:
            return False, f"{self.check.argv[0]} could not run: {exc}"
        return code == 0, f"{self.check.argv[0]} exited with code {code}"


def probe_http(host_port: int, path: str, timeout: float) -> tuple[bool, str]:
    connection = http.client.HTTPConnection(PROBE_HOST, host_port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"User-Agent": "hypervisor-agent-health-check"})
        status = connection.getresponse().status
    finally:
        connection.close()
    return 200 <= status < 400, f"HTTP {status} from {path}"
