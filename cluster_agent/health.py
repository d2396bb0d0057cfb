"""Pure: a deployment's health check as the agent runs it, when each probe is due, and what the probes add up to."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

HTTP, TCP, EXEC = "http", "tcp", "exec"


@dataclass(frozen=True)
class HealthCheck:
    """One of: an HTTP GET of `path` on `port`, a TCP connection to `port`, or `argv` run inside the container."""

    kind: str
    port: int | None = None
    path: str = "/"
    argv: tuple[str, ...] = ()
    period: float = 5
    timeout: float = 2
    failure_threshold: int = 3
    initial_delay: float = 0


def parse_check(entry: Mapping | None) -> HealthCheck | None:
    """The check as the server sends it (the API's `health_check`), or None for none."""
    if not entry:
        return None
    schedule = {"period": float(entry.get("period_seconds", 5)), "timeout": float(entry.get("timeout_seconds", 2)),
                "failure_threshold": int(entry.get("failure_threshold", 3)),
                "initial_delay": float(entry.get("initial_delay_seconds", 0))}
    if entry.get(HTTP):
        return HealthCheck(HTTP, port=int(entry[HTTP]["port"]), path=str(entry[HTTP].get("path") or "/"), **schedule)
    if entry.get(TCP):
        return HealthCheck(TCP, port=int(entry[TCP]["port"]), **schedule)
    return HealthCheck(EXEC, argv=tuple(str(part) for part in entry[EXEC]), **schedule)


@dataclass(frozen=True)
class Verdict:
    """What the probes of one container add up to: `ready` None until the first success or until
    `failure_threshold` failures in a row (an agent that adopts a container does not know), then whether it is
    ready; the failures in a row; what the latest probe said."""

    ready: bool | None = None
    failures: int = 0
    said: str = ""


def observe(verdict: Verdict, check: HealthCheck, ok: bool, said: str) -> Verdict:
    """The verdict after one more probe: one success makes it ready, `failure_threshold` failures in a row not."""
    if ok:
        return Verdict(True, 0, said)
    failures = verdict.failures + 1
    return Verdict(False if failures >= check.failure_threshold else verdict.ready, failures, said)


def next_probe_at(check: HealthCheck, began_at: float, last_probe_at: float | None) -> float:
    """When the next probe is due: `initial_delay` after the checking began, then a `period` after the previous
    probe began (one that outlasts its period is followed at once, never overlapped)."""
    if last_probe_at is None:
        return began_at + check.initial_delay
    return last_probe_at + check.period
