"""The sync's JSON, both ways: what the agent sends to `POST /api/v1/agent/sync/` and what it reads back.

The one place the agent spells the wire format; `tests/agents/test_protocol.py` checks it against the
server's serializers (agents/serializers.py), so a field renamed on either side fails there, not in the field.
"""
from __future__ import annotations

import base64
from collections.abc import Mapping
from decimal import Decimal

from cluster_agent.decisions import Desired
from cluster_agent.health import Verdict, parse_check


def sync_request(*, hostname: str, version: str, gpus: list[int], containers: list[dict] | None,
                 start_failures: list[dict], logs: list[dict], volumes: list[int] = (),
                 advertise_address: str = "") -> dict:
    """The report: `containers` None when the agent has not looked yet (an empty list says none exist);
    `volumes` the deployments whose volumes it holds; `advertise_address` the host of its services' URLs."""
    body = {"hostname": hostname, "version": version, "gpus": list(gpus), "start_failures": start_failures,
            "logs": logs, "volumes": sorted(volumes), "advertise_address": advertise_address}
    if containers is not None:
        body["containers"] = containers
    return body


def seen_container(*, deployment: int, attempt: int, container: str, state: str, exit_code: int | None,
                   ports: tuple[tuple[int, int], ...] = (), verdict: Verdict | None = None) -> dict:
    """One container of the agent as it sees it: `state` created, running or exited (with its `exit_code`),
    the host ports its ports are bound to, and its health check's verdict (none without a check)."""
    verdict = verdict or Verdict()
    return {"deployment": deployment, "attempt": attempt, "container": container, "state": state,
            "exit_code": exit_code if state == "exited" else None,
            "ports": [{"port": port, "host_port": host_port} for port, host_port in ports],
            "ready": verdict.ready, "health": verdict.said[:500]}


def start_failure(*, deployment: int, attempt: int, error: str) -> dict:
    return {"deployment": deployment, "attempt": attempt, "error": error}


def log_chunk(*, deployment: int, attempt: int, offset: int, data: bytes) -> dict:
    """Output of an attempt's container from byte `offset` on, as base64."""
    return {"deployment": deployment, "attempt": attempt, "offset": offset,
            "data": base64.b64encode(data).decode("ascii")}


def desired(entry: Mapping) -> Desired:
    """One deployment the server wants running now, as the container of its current attempt."""
    command = entry.get("command")
    return Desired(
        deployment=int(entry["id"]),
        attempt=int(entry["attempt"]),
        name=entry.get("name", ""),
        image=entry["image"],
        command=None if command is None else tuple(str(part) for part in command),
        env={str(name): str(value) for name, value in (entry.get("env") or {}).items()},
        cpu=Decimal(str(entry.get("cpu") or 0)),
        ram=Decimal(str(entry.get("ram") or 0)),
        gpu=int(entry.get("gpu") or 0),
        stop_grace_seconds=int(entry.get("stop_grace_seconds", 30)),
        persist_path=entry.get("persist_path") or None,
        ports=tuple(int(port) for port in entry.get("ports") or ()),
        host_ports={int(e["port"]): int(e["host_port"]) for e in entry.get("host_ports") or ()},
        health_check=parse_check(entry.get("health_check")),
    )


def desired_deployments(response: Mapping) -> list[Desired]:
    """Everything that must run now; whatever else the agent has must stop."""
    return [desired(entry) for entry in response["deployments"]]


def identity(response: Mapping) -> tuple[str | None, int | None]:
    """The agent's uid (the label of its containers) and its cluster, as the server knows them."""
    agent = response.get("agent") or {}
    return agent.get("uid"), agent.get("cluster")


def poll_seconds(response: Mapping) -> float | None:
    """How long the server asks agents to wait between syncs; None when it does not say."""
    return float(response["poll_seconds"]) if response.get("poll_seconds") else None


def finished_volumes(response: Mapping) -> list[int]:
    """The deployments, of the volumes reported, that are finished: their volumes go once unused."""
    return [int(deployment) for deployment in response.get("remove_volumes") or []]


def held_output(response: Mapping) -> list[tuple[int, int, int]]:
    """(deployment, attempt, bytes of its output the server holds) for each chunk it took."""
    return [(int(e["deployment"]), int(e["attempt"]), int(e["offset"])) for e in response.get("logs") or []]
