"""The thin shell over the Docker Engine API: the agent's containers, found and made by their labels."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import docker
import requests
from docker.errors import APIError, DockerException, NotFound

from cluster_agent.decisions import FINISHED_STATES, Desired, Observed

log = logging.getLogger(__name__)

AGENT = "hypervisor.agent"
DEPLOYMENT = "hypervisor.deployment"
ATTEMPT = "hypervisor.attempt"
GPUS = "hypervisor.gpus"
STOP_GRACE = "hypervisor.stop-grace"
CLUSTER = "hypervisor.cluster"

# How many starts and stops talk to the runtime at once; more only queue up inside it.
CONCURRENT_ACTIONS = 8

# The runtime could not be reached or answered with an error: the loop logs it and tries again.
ERRORS = (DockerException, requests.RequestException)


class StartFailed(Exception):
    """A container could not be made to run; the message is the runtime's own."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def container_name(deployment: int, attempt: int, uid: str) -> str:
    return f"hv-{deployment}-{attempt}-{uid[:8]}"


def volume_name(deployment: int, uid: str) -> str:
    return f"hv-{uid[:8]}-deployment-{deployment}"


def format_gpus(gpus: Sequence[int]) -> str:
    return ",".join(str(index) for index in gpus)


def parse_gpus(text: str) -> tuple[int, ...]:
    return tuple(int(index) for index in text.split(",") if index.strip())


def gpu_environment(gpus: Sequence[int]) -> dict[str, str]:
    """What the NVIDIA runtime and CUDA read: exactly the given indices, or none at all."""
    if not gpus:
        return {"NVIDIA_VISIBLE_DEVICES": "void", "CUDA_VISIBLE_DEVICES": ""}
    return {"NVIDIA_VISIBLE_DEVICES": format_gpus(gpus), "CUDA_VISIBLE_DEVICES": format_gpus(gpus)}


def explain(exc: DockerException) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def is_gone(exc: APIError) -> bool:
    # Docker answers 404; Podman sometimes 500 with "no such container".
    return isinstance(exc, NotFound) or "no such container" in explain(exc)


def is_name_conflict(exc: APIError) -> bool:
    # Docker answers 409; Podman answers 500 with "already in use".
    return exc.status_code == 409 or "already in use" in explain(exc)


class Runtime:
    """The container runtime at DOCKER_HOST (Docker, or Podman's Docker-compatible service)."""

    def __init__(self, client: docker.DockerClient, log_client: docker.DockerClient, lossless_follow: bool) -> None:
        self.client = client
        # A finished container's exit code never changes: inspect it once, not on every pass.
        self.exit_codes: dict[str, int] = {}
        # Log streams stay open as long as a container runs, silent or not: no read timeout, their own pool.
        self.log_client = log_client
        self.lossless_follow = lossless_follow

    @classmethod
    def from_env(cls) -> Runtime:
        # Starts and stops run in threads of their own; a pool smaller than them discards connections.
        client = docker.from_env(max_pool_size=CONCURRENT_ACTIONS * 2)
        # Podman 4's compatible API drops lines from followed logs under bursts of output (its plain reads
        # are exact), so on Podman the followers poll instead of following.
        components = client.version().get("Components") or []
        podman = any("podman" in str(component.get("Name", "")).lower() for component in components)
        return cls(client, docker.from_env(timeout=None, max_pool_size=256), lossless_follow=not podman)

    def list(self, uid: str) -> list[Observed]:
        """This agent's containers in any state: one listing call, plus an inspection per finished container."""
        listed = self.client.api.containers(all=True, filters={"label": f"{AGENT}={uid}"})
        self.exit_codes = {entry["Id"]: code for entry in listed
                           if (code := self.exit_codes.get(entry["Id"])) is not None}
        observed = []
        for entry in listed:
            labels = entry.get("Labels") or {}
            try:
                deployment, attempt = int(labels[DEPLOYMENT]), int(labels[ATTEMPT])
                gpus, grace = parse_gpus(labels.get(GPUS, "")), int(labels.get(STOP_GRACE, 30))
            except (KeyError, ValueError):
                log.warning("ignoring container %s: its labels are not the agent's (%s)", entry["Id"][:12], labels)
                continue
            state, exit_code = entry["State"], None
            if state in FINISHED_STATES:
                try:
                    exit_code = self.exit_code(entry["Id"])
                except APIError as exc:
                    if not is_gone(exc):
                        raise
                    continue
            observed.append(Observed(entry["Id"], deployment, attempt, state, exit_code, gpus, grace,
                                     published_ports(entry)))
        return observed

    def exit_code(self, container_id: str) -> int:
        if container_id not in self.exit_codes:
            self.exit_codes[container_id] = self.client.api.inspect_container(container_id)["State"]["ExitCode"]
        return self.exit_codes[container_id]

    def start(self, want: Desired, gpus: Sequence[int], *, uid: str, cluster: int | None) -> None:
        """Creates the container (see `create`) and starts it."""
        container_id = self.create(want, gpus, uid=uid, cluster=cluster)
        if container_id is not None:
            self.resume(container_id)

    def create(self, want: Desired, gpus: Sequence[int], *, uid: str, cluster: int | None) -> str | None:
        """Creates the container with its limits and labels, not started, pulling the image only when the
        runtime lacks it. Raises StartFailed with the runtime's message when it cannot be made; None when a
        container of the same name was already made (by an earlier pass), which is left alone."""
        # The low-level call: one request, where the high-level one inspects the image before and the
        # container after, which halved the rate of starts in a burst.
        config = {
            "image": want.image,
            "command": list(want.command) if want.command else None,
            "name": container_name(want.deployment, want.attempt, uid),
            "labels": {
                AGENT: uid,
                DEPLOYMENT: str(want.deployment),
                ATTEMPT: str(want.attempt),
                GPUS: format_gpus(gpus),
                STOP_GRACE: str(want.stop_grace_seconds),
                CLUSTER: "" if cluster is None else str(cluster),
            },
            "environment": {**want.env, **gpu_environment(gpus)},
            "ports": list(want.ports),
            "detach": True,
        }
        try:
            options = {}
            if want.ports:
                # A host port of None: the runtime picks a free one.
                options["port_bindings"] = {port: want.host_ports.get(port) for port in want.ports}
            if want.persist_path:
                config["volumes"] = [want.persist_path]
                options["binds"] = [f"{self.volume(want.deployment, uid)}:{want.persist_path}:rw"]
            config["host_config"] = self.client.api.create_host_config(**limits(want), **options)
            try:
                return self.client.api.create_container(**config)["Id"]
            except docker.errors.ImageNotFound:
                log.info("pulling %s", want.image)
                self.client.images.pull(want.image)
                return self.client.api.create_container(**config)["Id"]
        except APIError as exc:
            if is_name_conflict(exc):
                return None
            raise StartFailed(explain(exc)) from exc

    def volume(self, deployment: int, uid: str) -> str:
        """The deployment's own volume, labelled like its containers: made on its first use, found after."""
        name = volume_name(deployment, uid)
        try:
            self.client.api.inspect_volume(name)
        except NotFound:
            try:
                self.client.api.create_volume(name, labels={AGENT: uid, DEPLOYMENT: str(deployment)})
            except APIError:
                self.client.api.inspect_volume(name)  # made meanwhile by another start: fine; else it raises
        return name

    def volumes(self, uid: str) -> dict[int, str]:
        """This agent's volumes: deployment -> name."""
        listed = self.client.api.volumes(filters={"label": f"{AGENT}={uid}"}).get("Volumes") or []
        found = {}
        for entry in listed:
            try:
                found[int((entry.get("Labels") or {})[DEPLOYMENT])] = entry["Name"]
            except (KeyError, ValueError):
                log.warning("ignoring volume %s: its labels are not the agent's", entry.get("Name"))
        return found

    def remove_volume(self, name: str) -> None:
        try:
            self.client.api.remove_volume(name)
        except NotFound:
            pass

    def resume(self, container_id: str) -> None:
        """Starts a created container; one that cannot start is removed, so a retry begins from nothing."""
        try:
            self.client.api.start(container_id)
        except APIError as exc:
            self.remove(container_id)
            raise StartFailed(explain(exc)) from exc

    def stop(self, container_id: str, grace: int) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        try:
            self.client.api.stop(container_id, timeout=grace)
        except APIError as exc:
            if not is_gone(exc):
                raise

    def remove(self, container_id: str) -> None:
        try:
            self.client.api.remove_container(container_id, force=True)
        except APIError as exc:
            if not is_gone(exc):
                raise

    def exec(self, container_id: str, argv: tuple[str, ...]) -> int:
        """Runs `argv` inside the container, its output discarded; its exit code."""
        # Attached to its output, the start returns only once the command has ended.
        exec_id = self.client.api.exec_create(container_id, list(argv))["Id"]
        self.client.api.exec_start(exec_id)
        return self.client.api.exec_inspect(exec_id)["ExitCode"]

    def follow_logs(self, container_id: str) -> Iterator[bytes]:
        """The container's stdout and stderr from its first byte, raw, until it stops."""
        return self.log_client.api.logs(container_id, stdout=True, stderr=True, stream=True, follow=True)

    def logs(self, container_id: str) -> bytes:
        """The container's stdout and stderr so far, raw."""
        return self.log_client.api.logs(container_id, stdout=True, stderr=True)


def published_ports(entry: dict) -> tuple[tuple[int, int], ...]:
    """(container port, host port) of the TCP ports a listing entry shows bound; once each, though Docker lists
    a port once per address family, and none at all right after a start (moby#42860): only what is bound."""
    bound = {}
    for port in entry.get("Ports") or ():
        if port.get("Type", "tcp") == "tcp" and port.get("PublicPort"):
            bound.setdefault(int(port["PrivatePort"]), int(port["PublicPort"]))
    return tuple(sorted(bound.items()))


def limits(want: Desired) -> dict[str, int]:
    """CPU and memory limits as `docker run --cpus` and `--memory` set them; a zero request sets none."""
    result = {}
    if want.cpu > 0:
        result["nano_cpus"] = int(want.cpu * 10**9)
    if want.ram > 0:
        result["mem_limit"] = int(want.ram * 2**30)
    return result
