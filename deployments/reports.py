"""Pure: what an agent's report of its containers means for the run attempts the service holds open."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

STARTING, RUNNING, STOPPING = "starting", "running", "stopping"


@dataclass(frozen=True, slots=True)
class OpenAttempt:
    """An attempt whose container may live: `starting` or `running` (current), or `stopping`."""

    id: int
    deployment: int
    number: int
    state: str
    container: str
    endpoints: tuple[dict, ...] = ()
    ready: bool = False


@dataclass(frozen=True, slots=True)
class SeenContainer:
    """A container as the agent saw it: `created`, `running`, or `exited` with its code; the host ports its
    ports are really bound to, as (port, host_port); whether its health check passes (None: no verdict yet,
    or no check) and what the latest probe said."""

    deployment: int
    attempt: int
    container: str
    state: str
    exit_code: int | None = None
    ports: tuple[tuple[int, int], ...] = ()
    ready: bool | None = None
    health: str = ""


@dataclass(frozen=True, slots=True)
class StartFailure:
    deployment: int
    attempt: int
    error: str


class Change(Enum):
    CREATED = "created"  # the agent made the container; it has not run yet
    STARTED = "started"
    EXITED = "exited"  # the current attempt's container ended by itself: the deployment finishes
    START_FAILED = "start_failed"
    VANISHED = "vanished"  # a running container is gone without an exit the agent saw
    STOPPED = "stopped"  # a container that had to stop is gone


ENDINGS = frozenset({Change.EXITED, Change.START_FAILED, Change.VANISHED, Change.STOPPED})


@dataclass(frozen=True, slots=True)
class Transition:
    change: Change
    attempt: OpenAttempt
    container: str = ""
    exit_code: int | None = None
    error: str = ""


def runtime_transitions(open_attempts: Iterable[OpenAttempt], seen: Iterable[SeenContainer],
                        failures: Iterable[StartFailure]) -> list[Transition]:
    """The changes a report implies, given the attempts still open; nothing for what is already recorded.

    A report is the agent's whole picture, so an open attempt missing from it has no container. Reports that
    arrive twice or late therefore imply nothing new: every transition leaves the attempt's open state. Its
    endings come first, then the starts.
    """
    seen_by_key = {(s.deployment, s.attempt): s for s in seen}
    failed = {(f.deployment, f.attempt): f for f in failures}
    transitions = []
    for attempt in open_attempts:
        key = (attempt.deployment, attempt.number)
        container = seen_by_key.get(key)
        if attempt.state == STOPPING:
            if container is None:
                transitions.append(Transition(Change.STOPPED, attempt, attempt.container))
            elif container.state == "exited":
                transitions.append(Transition(Change.STOPPED, attempt, container.container, container.exit_code))
        elif container is None:
            if attempt.state == RUNNING:
                transitions.append(Transition(Change.VANISHED, attempt, attempt.container))
            elif key in failed:
                transitions.append(Transition(Change.START_FAILED, attempt, error=failed[key].error))
        elif container.state == "exited":
            transitions.append(Transition(Change.EXITED, attempt, container.container, container.exit_code))
        elif container.state == "running" and attempt.state == STARTING:
            transitions.append(Transition(Change.STARTED, attempt, container.container))
        elif container.state == "created" and container.container != attempt.container:
            transitions.append(Transition(Change.CREATED, attempt, container.container))
    # What ended comes before what started: a report that says a victim's container is gone and its
    # preemptor's runs is applied, and told in the history, in the order it happened on the host.
    return sorted(transitions, key=lambda t: t.change not in ENDINGS)


@dataclass(frozen=True, slots=True)
class ServiceUpdate:
    """A running container's endpoints or readiness changed: the new value of each that did (None: unchanged),
    with the probe's words for a change of readiness."""

    attempt: OpenAttempt
    endpoints: tuple[dict, ...] | None = None
    ready: bool | None = None
    health: str = ""


def service_updates(open_attempts: Iterable[OpenAttempt], seen: Iterable[SeenContainer],
                    host: str) -> list[ServiceUpdate]:
    """What a report changes of the current runs' endpoints (published on `host`, the agent's advertised address)
    and readiness. Only a container seen running counts; a verdict the agent has not reached yet keeps the last."""
    seen_by_key = {(s.deployment, s.attempt): s for s in seen if s.state == "running"}
    updates = []
    for attempt in open_attempts:
        container = seen_by_key.get((attempt.deployment, attempt.number))
        if attempt.state not in (STARTING, RUNNING) or container is None:
            continue
        endpoints = tuple({"port": port, "host": host, "host_port": host_port}
                          for port, host_port in sorted(set(container.ports)))
        new_endpoints = endpoints if endpoints != tuple(attempt.endpoints) else None
        new_ready = container.ready if container.ready is not None and container.ready != attempt.ready else None
        if new_endpoints is not None or new_ready is not None:
            updates.append(ServiceUpdate(attempt, new_endpoints, new_ready, container.health))
    return updates
