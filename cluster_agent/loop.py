"""The reconcile loop: observe the containers, report them, receive what should run, act on the difference."""
from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from cluster_agent import __version__, protocol
from cluster_agent.client import Refused, ServerClient, Unavailable
from cluster_agent.decisions import (
    NOT_STARTED_STATES,
    Desired,
    Key,
    Observed,
    plan_pass,
    reported_state,
    volumes_to_remove,
)
from cluster_agent.logs import LogFollower
from cluster_agent.probes import HealthChecker
from cluster_agent.runtime import CONCURRENT_ACTIONS, ERRORS, Runtime, StartFailed

log = logging.getLogger(__name__)

BACKOFF_MIN_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 5.0
DEFAULT_POLL_SECONDS = 0.25
# A pass slower than this (a runtime slow to list, a burst of starts) still tells the server the agent lives.
HEARTBEAT_SECONDS = 1.0
LOG_BYTES_PER_REQUEST = 1024 * 1024

EXIT_STOPPED = 0
EXIT_TOKEN_REFUSED = 2
EXIT_REVOKED = 3


class Agent:
    """One agent's loop. State kept here is only a cache of work in flight and unshipped output: every
    decision is made afresh from what the runtime and the server say in each pass."""

    def __init__(
        self,
        server: ServerClient,
        connect: Callable[[], Runtime],
        gpus: Sequence[int],
        interval: float | None,
        stop: threading.Event,
        advertise_address: str = "",
    ) -> None:
        self.server = server
        self.advertise_address = advertise_address
        self.connect = connect
        self.runtime: Runtime | None = None
        self.gpus = tuple(gpus)
        self.interval = interval
        self.poll_seconds = DEFAULT_POLL_SECONDS
        self.stop = stop
        self.uid: str | None = None
        self.cluster: int | None = None
        self.followers: dict[str, LogFollower] = {}
        self.checkers: dict[str, HealthChecker] = {}
        self.wake = threading.Event()
        self.lock = threading.Lock()  # guards the three below, which background actions change
        self.starting: dict[Key, tuple[int, ...]] = {}  # attempt -> GPU indices of its start in flight
        self.creating: set[Key] = set()  # those of them only being created
        self.stopping: set[str] = set()
        self.failures: dict[Key, str] = {}
        self.starts = threading.BoundedSemaphore(CONCURRENT_ACTIONS)
        self.last_sync = time.monotonic()

    def run(self) -> int:
        """Runs passes until stopped (0), refused at the first call (2) or revoked (3)."""
        threading.Thread(target=self.heartbeat, args=(self.server.clone(),), daemon=True, name="heartbeat").start()
        backoff = BACKOFF_MIN_SECONDS
        while not self.stop.is_set():
            self.wake.clear()
            try:
                self.pass_once()
            except Refused as refusal:
                return self.refused(refusal)
            except Unavailable as exc:
                report = log.error if exc.client_error else log.warning
                report("sync failed: %s; retrying in %.1f s", exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
                continue
            except ERRORS as exc:
                log.warning("container runtime failed: %s; retrying in %.1f s", exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
                continue
            backoff = BACKOFF_MIN_SECONDS
            self.wake.wait(self.interval if self.interval is not None else self.poll_seconds)
        return EXIT_STOPPED

    def pass_once(self) -> None:
        if self.uid is None:
            # The containers' label needs the agent's uid, which only the server's answer tells; until then
            # it has no picture to report (an empty list would say its containers are gone).
            self.adopt(self.server.sync(self.body(None, [], [])))
            self.wake.set()
            return
        # Work in flight is read before the listing: a start that ends in between is then still reserved
        # here rather than missing from both, which could hand its GPU indices to another start.
        with self.lock:
            in_flight, creating, failures = dict(self.starting), set(self.creating), dict(self.failures)
        observed = self.docker().list(self.uid)
        volumes = self.docker().volumes(self.uid)
        self.follow(observed)
        containers, logs, exited = self.report(observed)
        failed = [protocol.start_failure(deployment=d, attempt=a, error=error) for (d, a), error in failures.items()]
        response = self.server.sync(self.body(containers, failed, logs, list(volumes)))
        self.last_sync = time.monotonic()
        self.adopt(response)
        self.acknowledge(protocol.held_output(response))
        desired = protocol.desired_deployments(response)
        wanted = {want.key for want in desired}
        with self.lock:
            self.failures = {key: error for key, error in self.failures.items() if key in wanted}
        self.act(desired, observed, in_flight, creating, set(failures) & wanted, exited)
        self.check_health(desired, observed)
        for name in volumes_to_remove(protocol.finished_volumes(response), volumes, observed):
            self.docker().remove_volume(name)

    def heartbeat(self, server: ServerClient) -> None:
        """Liveness must not wait on the runtime: while a pass is slow, a sync with no picture (which changes
        nothing but the last-seen time) goes out on its own."""
        while not self.stop.wait(HEARTBEAT_SECONDS / 2):
            if self.uid is None or time.monotonic() - self.last_sync < HEARTBEAT_SECONDS:
                continue
            try:
                server.sync(self.body(None, [], []))
            except (Unavailable, Refused) as exc:
                log.debug("heartbeat failed (%s); the reconcile loop handles it", exc)

    def body(self, containers: list[dict] | None, start_failures: list[dict], logs: list[dict],
             volumes: list[int] = ()) -> dict:
        return protocol.sync_request(hostname=socket.gethostname(), version=__version__, gpus=list(self.gpus),
                                     containers=containers, start_failures=start_failures, logs=logs, volumes=volumes,
                                     advertise_address=self.advertise_address)

    def adopt(self, response: dict) -> None:
        uid, cluster = protocol.identity(response)
        self.uid = uid or self.uid
        self.cluster = self.cluster if cluster is None else cluster
        self.poll_seconds = protocol.poll_seconds(response) or DEFAULT_POLL_SECONDS

    def docker(self) -> Runtime:
        if self.runtime is None:
            self.runtime = self.connect()
        return self.runtime

    def follow(self, observed: list[Observed]) -> None:
        present = {container.container_id for container in observed}
        for container_id in [known for known in self.followers if known not in present]:
            self.followers.pop(container_id).close()
        for container in observed:
            # A created container has no output yet, and its log stream would end at once.
            if container.state not in NOT_STARTED_STATES and container.container_id not in self.followers:
                self.followers[container.container_id] = LogFollower(self.docker(), container).start()
            if container.finished:
                self.followers[container.container_id].finished()

    def report(self, observed: list[Observed]) -> tuple[list[dict], list[dict], set[str]]:
        containers, logs, exited = [], [], set()
        budget = LOG_BYTES_PER_REQUEST
        for container in observed:
            drained = False
            follower = self.followers.get(container.container_id)
            if follower is not None:
                offset, data, drained = follower.take(budget)
                budget -= len(data)
                if data:
                    logs.append(protocol.log_chunk(deployment=container.deployment, attempt=container.attempt,
                                                   offset=offset, data=data))
            state = reported_state(container.state, drained)
            if state == "exited":
                exited.add(container.container_id)
            checker = self.checkers.get(container.container_id)
            containers.append(protocol.seen_container(deployment=container.deployment, attempt=container.attempt,
                                                      container=container.container_id, state=state,
                                                      exit_code=container.exit_code, ports=container.ports,
                                                      verdict=checker.verdict if checker else None))
        return containers, logs, exited

    def check_health(self, desired: list[Desired], observed: list[Observed]) -> None:
        """A checker for each running container of a deployment with a health check; none for anything else."""
        checks = {want.key: want.health_check for want in desired if want.health_check is not None}
        running = {container.container_id: container for container in observed
                   if container.live and container.key in checks}
        for container_id in [known for known in self.checkers if known not in running]:
            self.checkers.pop(container_id).close()
        for container_id, container in running.items():
            if container_id not in self.checkers:
                self.checkers[container_id] = HealthChecker(
                    self.docker(), container_id, checks[container.key], self.wake.set).start()
            self.checkers[container_id].published = dict(container.ports)

    def acknowledge(self, held: list[tuple[int, int, int]]) -> None:
        by_key = {follower.key: follower for follower in self.followers.values()}
        for deployment, attempt, offset in held:
            follower = by_key.get((deployment, attempt))
            if follower is not None:
                follower.acknowledge(offset)

    def act(
        self,
        desired: list[Desired],
        observed: list[Observed],
        in_flight: dict[Key, tuple[int, ...]],
        creating: set[Key],
        failed: set[Key],
        exited: set[str],
    ) -> None:
        actions = plan_pass(desired, observed, self.gpus, failed, in_flight, exited, creating)
        for container in actions.stop:
            self.stop_in_background(container)
        for container in actions.remove:
            log.info("removing container %s of deployment %s attempt %s",
                     container.container_id[:12], container.deployment, container.attempt)
            self.docker().remove(container.container_id)
        by_key = {want.key: want for want in desired}
        for container in actions.resume:
            self.start_in_background(by_key[container.key], container.gpus, container.container_id)
        for want, gpus in actions.start:
            self.start_in_background(want, gpus, None)
        for want, gpus in actions.prepare:
            self.start_in_background(want, gpus, None, create_only=True)

    def start_in_background(self, want: Desired, gpus: tuple[int, ...], created: str | None,
                            create_only: bool = False) -> None:
        # plan_pass never starts a deployment already in `starting`, and only this thread adds to it.
        with self.lock:
            self.starting[want.key] = gpus
            if create_only:
                self.creating.add(want.key)
        threading.Thread(target=self.start_container, args=(want, gpus, created, create_only), daemon=True,
                         name=f"start-{want.deployment}").start()

    def start_container(self, want: Desired, gpus: tuple[int, ...], created: str | None,
                        create_only: bool = False) -> None:
        failure = None
        try:
            with self.starts:
                if create_only:
                    self.docker().create(want, gpus, uid=self.uid, cluster=self.cluster)
                elif created is None:
                    self.start_published(want, gpus)
                else:
                    self.docker().resume(created)
            log.info("%s deployment %s attempt %s (%s) with GPUs [%s]", "created" if create_only else "started",
                     want.deployment, want.attempt, want.image, ",".join(map(str, gpus)))
        except StartFailed as exc:
            failure = exc.message
            log.warning("deployment %s attempt %s cannot start: %s", want.deployment, want.attempt, failure)
        except ERRORS as exc:
            log.warning("starting deployment %s attempt %s failed, will retry: %s", want.deployment, want.attempt, exc)
        finally:
            with self.lock:
                if failure is not None:
                    self.failures[want.key] = failure
                del self.starting[want.key]
                self.creating.discard(want.key)
            self.wake.set()

    def start_published(self, want: Desired, gpus: tuple[int, ...]) -> None:
        """Starts the container on the host ports its attempt's previous run had, or, when another process took
        one of them meanwhile, on free ones (its URL changes then, rather than the restart failing)."""
        try:
            self.docker().start(want, gpus, uid=self.uid, cluster=self.cluster)
        except StartFailed as exc:
            if not want.host_ports:
                raise
            log.warning("deployment %s attempt %s: its host ports %s are taken (%s); publishing on free ones",
                        want.deployment, want.attempt, dict(want.host_ports), exc.message)
            self.docker().start(replace(want, host_ports={}), gpus, uid=self.uid, cluster=self.cluster)

    def stop_in_background(self, container: Observed) -> None:
        with self.lock:
            if container.container_id in self.stopping:
                return
            self.stopping.add(container.container_id)
        threading.Thread(target=self.stop_container, args=(container,), daemon=True,
                         name=f"stop-{container.container_id[:12]}").start()

    def stop_container(self, container: Observed) -> None:
        log.info("stopping container %s of deployment %s attempt %s (grace %s s)",
                 container.container_id[:12], container.deployment, container.attempt, container.stop_grace)
        try:
            self.docker().stop(container.container_id, container.stop_grace)
        except ERRORS as exc:
            log.warning("stopping %s failed, will retry: %s", container.container_id[:12], exc)
        finally:
            with self.lock:
                self.stopping.discard(container.container_id)
            self.wake.set()

    def refused(self, refusal: Refused) -> int:
        if refusal.revoked or self.uid is not None:
            return self.revoke(refusal.agent_uid or self.uid, refusal)
        print(f"bin/agent: the server refused the agent token ({refusal.detail}); register an agent and pass "
              "its token", file=sys.stderr)
        return EXIT_TOKEN_REFUSED

    def revoke(self, uid: str | None, refusal: Refused) -> int:
        """Stops (each with its grace, all at once) and removes every container of the revoked agent."""
        log.error("the server revoked this agent (%s): stopping its containers", refusal)
        containers = self.list_until_answered(uid) if uid is not None else []
        threads = [threading.Thread(target=self.stop_and_remove, args=(container,), daemon=True)
                   for container in containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log.error("stopped and removed %d containers; exiting", len(containers))
        return EXIT_REVOKED

    def list_until_answered(self, uid: str) -> list[Observed]:
        backoff = BACKOFF_MIN_SECONDS
        while not self.stop.is_set():
            try:
                return self.docker().list(uid)
            except ERRORS as exc:
                log.warning("container runtime failed: %s; retrying in %.1f s", exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
        return []

    def stop_and_remove(self, container: Observed) -> None:
        try:
            self.docker().stop(container.container_id, container.stop_grace)
            self.docker().remove(container.container_id)
        except ERRORS as exc:
            log.error("could not remove container %s: %s", container.container_id[:12], exc)
