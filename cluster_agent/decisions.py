"""What the agent decides, as pure functions of the desired and the observed state (no Docker here)."""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from cluster_agent.health import HealthCheck

# Only these states hold nothing: "created" has not started yet, the others have ended. Anything else counts
# as live, including states a runtime adds (Podman's "stopping" while a SIGTERM'd process winds down), so an
# unfamiliar state can never let a preemptor start beside its victim.
NOT_STARTED_STATES = frozenset({"created", "configured"})
FINISHED_STATES = frozenset({"exited", "dead", "stopped"})
LOG_UNBROKEN_BYTES = 256 * 1024

Key = tuple[int, int]  # (deployment, attempt)


@dataclass(frozen=True)
class Observed:
    """A container of this agent as the runtime lists it, with what its labels say it runs."""

    container_id: str
    deployment: int
    attempt: int
    state: str
    exit_code: int | None = None
    gpus: tuple[int, ...] = ()
    stop_grace: int = 30
    ports: tuple[tuple[int, int], ...] = ()  # (container port, host port) as really bound now

    @property
    def key(self) -> Key:
        return (self.deployment, self.attempt)

    @property
    def live(self) -> bool:
        return self.state not in NOT_STARTED_STATES | FINISHED_STATES

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


@dataclass(frozen=True)
class Desired:
    """A deployment attempt the server wants running now, with what its container needs."""

    deployment: int
    attempt: int
    name: str = ""
    image: str = ""
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cpu: Decimal = Decimal(0)
    ram: Decimal = Decimal(0)
    gpu: int = 0
    stop_grace_seconds: int = 30
    persist_path: str | None = None  # where the deployment's own volume is mounted
    ports: tuple[int, ...] = ()  # container ports to publish
    host_ports: Mapping[int, int] = field(default_factory=dict)  # the host ports to ask for (a restart's)
    health_check: HealthCheck | None = None

    @property
    def key(self) -> Key:
        return (self.deployment, self.attempt)


@dataclass(frozen=True)
class Actions:
    """One pass's work: new containers (with their GPU indices), created ones to start, stops and removals,
    and containers to create now but start later."""

    start: tuple[tuple[Desired, tuple[int, ...]], ...] = ()
    prepare: tuple[tuple[Desired, tuple[int, ...]], ...] = ()
    resume: tuple[Observed, ...] = ()
    stop: tuple[Observed, ...] = ()
    remove: tuple[Observed, ...] = ()


def free_gpus(all_gpus: Iterable[int], observed: Iterable[Observed], reserved: Iterable[int] = ()) -> list[int]:
    """The agent's GPU indices that no live container holds and no start in flight has reserved, lowest first."""
    held = {index for container in observed if container.live for index in container.gpus} | set(reserved)
    return sorted(set(all_gpus) - held)


def stale(desired: Iterable[Desired], observed: Iterable[Observed]) -> list[Observed]:
    """Containers whose (deployment, attempt) the server no longer wants."""
    wanted = {want.key for want in desired}
    return [container for container in observed if container.key not in wanted]


def reported_state(state: str, log_drained: bool) -> str:
    """The state to report: "exited" only once the container's whole output goes out with the same report,
    so the server never finishes a deployment before it holds all of its logs."""
    if state in NOT_STARTED_STATES:
        return "created"
    if state in FINISHED_STATES and log_drained:
        return "exited"
    return "running"


def plan_pass(
    desired: Sequence[Desired],
    observed: Sequence[Observed],
    gpus: Sequence[int],
    failed: Collection[Key],
    in_flight: Mapping[Key, tuple[int, ...]],
    reported_exited: Collection[str] = (),
    creating: Collection[Key] = (),
) -> Actions:
    """Decides one pass. `failed` holds the attempts whose start failed (not to be retried while desired),
    `in_flight` maps each attempt being created or started right now to the GPU indices it was given (those
    in `creating` are only being created, not started), and `reported_exited` the ids of containers this pass
    reports as exited (only those may be removed, so no output or exit code is lost)."""
    gone = stale(desired, observed)
    stop = tuple(container for container in gone if container.live)
    busy = {deployment for deployment, _ in in_flight}
    remove = tuple(
        container for container in gone
        if not container.live and container.deployment not in busy
        and (container.state in NOT_STARTED_STATES or container.container_id in reported_exited)
    )
    by_deployment: dict[int, list[Observed]] = {}
    for container in observed:
        by_deployment.setdefault(container.deployment, []).append(container)
    reserved = [index for indices in in_flight.values() for index in indices]
    wanted = sorted(
        (want for want in desired if want.deployment not in busy and want.key not in failed),
        key=lambda want: want.key,
    )
    # A start in flight for an attempt the server no longer wants may make its container live at any moment,
    # unseen by this pass's listing: it counts as a victim still running until the next pass sees it.
    # (A creation cannot: what it makes holds nothing until a later pass starts it, however long its pull takes.)
    unwanted_in_flight = not set(in_flight) - set(creating) <= {want.key for want in desired}
    if stop or unwanted_in_flight:
        # The host never runs more than the cluster's capacity: nothing starts while a victim still runs.
        # What starts next is created meanwhile (a created container holds nothing), with indices the
        # victims will leave, so once they are gone it only has to be started.
        held = {index for container in observed
                if (container.live and container not in gone) or container.state in NOT_STARTED_STATES
                for index in container.gpus}
        pool = sorted(set(gpus) - held - set(reserved))
        prepare = []
        for want in wanted:
            if not by_deployment.get(want.deployment) and want.gpu <= len(pool):
                prepare.append((want, tuple(pool[: want.gpu])))
                pool = pool[want.gpu:]
        return Actions(stop=stop, remove=remove, prepare=tuple(prepare))

    free = free_gpus(gpus, observed, reserved)

    # Containers created before a crash start first, with the GPU indices they were created with; one whose
    # indices went to another container meanwhile is removed and started afresh.
    resume: list[Observed] = []
    for want in wanted:
        for container in by_deployment.get(want.deployment, []):
            if container.key == want.key and container.state in NOT_STARTED_STATES:
                if set(container.gpus) <= set(free):
                    resume.append(container)
                    free = [index for index in free if index not in container.gpus]
                else:
                    remove += (container,)

    # Removals run before any start of the pass, so a container removed now no longer counts.
    removed = {container.container_id for container in remove}
    start: list[tuple[Desired, tuple[int, ...]]] = []
    for want in wanted:
        # At most one container per deployment: a new attempt (or a restart's next run) starts only once the old
        # container is gone or removed in this pass.
        left = [c for c in by_deployment.get(want.deployment, []) if c.container_id not in removed]
        if not left and want.gpu <= len(free):
            start.append((want, tuple(free[: want.gpu])))
            free = free[want.gpu:]
    return Actions(start=tuple(start), resume=tuple(resume), remove=remove)


def volumes_to_remove(finished: Iterable[int], volumes: Mapping[int, str], observed: Iterable[Observed]) -> list[str]:
    """The volumes (deployment -> name) of finished deployments that no container of theirs uses any more."""
    in_use = {container.deployment for container in observed}
    return [volumes[deployment] for deployment in sorted(set(finished) & set(volumes)) if deployment not in in_use]


def log_cut(buffer: bytes | bytearray, done: bool, limit: int) -> int:
    """How many bytes of a container's buffered output to ship now, at most `limit`: whole lines only, unless
    the output has ended or a line runs past LOG_UNBROKEN_BYTES (waiting for its end would hold it forever)."""
    if done or len(buffer) > LOG_UNBROKEN_BYTES:
        return min(len(buffer), limit)
    return buffer.rfind(b"\n", 0, limit) + 1
