"""A private Podman Docker-compatible API service with its own storage, for tests that need real containers."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

IMAGE = "localhost/busybox:test"

# runc with cgroupfs and modest rlimits: the defaults (crun, systemd) fail on these machines (RUNTIME.md).
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


@dataclass
class PodmanRuntime:
    """A running private Podman service: its socket, a client of it, and the test image it holds."""

    directory: Path
    process: subprocess.Popen
    docker_host: str
    client: docker.DockerClient
    image: str = IMAGE

    def containers(self, label_filter: str) -> list[Container]:
        """All containers (any state) carrying a label, e.g. "hypervisor.agent=5f0c..."."""
        return self.client.containers.list(all=True, filters={"label": label_filter})

    def podman(self, *args: str) -> subprocess.CompletedProcess:
        """Runs the podman CLI against this private storage."""
        return subprocess.run(
            ["podman", "--root", str(self.directory / "root"), "--runroot", str(self.directory / "run"), *args],
            env=podman_env(self.directory),
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )


def podman_env(directory: Path) -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(directory / "containers.conf")}


def start_podman_runtime() -> PodmanRuntime:
    """Starts the service in a new temporary directory and imports the busybox image into it."""
    if shutil.which("podman") is None:
        raise RuntimeError("podman is not installed: bin/test installs it (apt-get install podman runc busybox-static)")
    directory = Path(tempfile.mkdtemp(prefix="hv-podman-"))
    (directory / "containers.conf").write_text(CONTAINERS_CONF)
    socket = directory / "podman.sock"
    with open(directory / "service.log", "wb") as log:
        process = subprocess.Popen(
            ["podman", "--root", str(directory / "root"), "--runroot", str(directory / "run"),
             "system", "service", "--time=0", f"unix://{socket}"],
            env=podman_env(directory), stdout=log, stderr=subprocess.STDOUT,
        )
    docker_host = f"unix://{socket}"
    try:
        client = connect(docker_host, process, directory)
        runtime = PodmanRuntime(directory, process, docker_host, client)
        import_busybox(runtime)
    except BaseException:
        end_service(process)
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return runtime


def connect(docker_host: str, process: subprocess.Popen, directory: Path, seconds: float = 30) -> docker.DockerClient:
    """A client of the service once it answers (the client asks the API version as it is made)."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"podman service exited: {(directory / 'service.log').read_text()}")
        try:
            client = docker.DockerClient(base_url=docker_host)
            client.ping()
            return client
        except docker.errors.DockerException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def import_busybox(runtime: PodmanRuntime) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    tree = runtime.directory / "image"
    (tree / "bin").mkdir(parents=True)
    shutil.copy(busybox, tree / "bin" / "busybox")
    for applet in applets:
        if applet != "busybox":
            (tree / "bin" / applet).symlink_to("busybox")
    with tarfile.open(runtime.directory / "busybox.tar", "w") as tar:
        tar.add(tree, arcname=".")
    result = runtime.podman("import", "-q", str(runtime.directory / "busybox.tar"), runtime.image)
    if result.returncode != 0:
        raise RuntimeError(f"podman import failed: {result.stderr}")


def stop_podman_runtime(runtime: PodmanRuntime) -> None:
    """Removes every container of the private storage, ends the service by its pid, deletes the directory."""
    try:
        runtime.podman("rm", "-fa", "-t", "0")
    except (OSError, subprocess.SubprocessError):
        pass  # The service must still be stopped and the directory removed.
    runtime.client.close()
    end_service(runtime.process)
    unmount_leftovers(runtime.directory)
    shutil.rmtree(runtime.directory, ignore_errors=True)


def end_service(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def unmount_leftovers(directory: Path) -> None:
    with open("/proc/self/mounts") as mounts:
        targets = [line.split()[1] for line in mounts if line.split()[1].startswith(str(directory))]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


@pytest.fixture(scope="session")
def container_runtime() -> Iterator[PodmanRuntime]:
    runtime = start_podman_runtime()
    yield runtime
    stop_podman_runtime(runtime)
