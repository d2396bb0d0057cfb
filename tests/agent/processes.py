"""Real agent processes (bin/agent) for the end-to-end tests, and what the tests read off the runtime."""
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = "0.1"


class AgentProcess:
    """bin/agent against a server and the private Podman service; its output goes to a file for failures."""

    def __init__(self, server: str, token: str, docker_host: str, log_dir: Path, gpus: str = "",
                 extra: tuple[str, ...] = ()) -> None:
        self.args = [str(ROOT / "bin" / "agent"), "--server", server, "--token", token, "--interval", INTERVAL, *extra]
        if gpus:
            self.args += ["--gpus", gpus]
        self.env = {**os.environ, "DOCKER_HOST": docker_host}
        self.log_path = log_dir / f"agent-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "AgentProcess":
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed in wait)
        self.process = subprocess.Popen(self.args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.wait(10)


def labelled(runtime, uid: str) -> list[dict]:
    """The agent's containers as the runtime lists them (any state), with their labels."""
    return runtime.client.api.containers(all=True, filters={"label": f"hypervisor.agent={uid}"})


def by_deployment(runtime, uid: str, deployment: int) -> list:
    return runtime.client.containers.list(
        all=True, filters={"label": [f"hypervisor.agent={uid}", f"hypervisor.deployment={deployment}"]})


class RuntimeSampler:
    """Samples the runtime in a thread: live containers' summed limits and containers per deployment.

    What it proves holds at every sample, not only at the end: the host never runs more than the cluster's
    capacity, and no deployment ever has two containers.
    """

    def __init__(self, runtime, uid: str) -> None:
        self.runtime, self.uid = runtime, uid
        self.samples = 0
        self.max_cpu = Decimal(0)
        self.max_ram = Decimal(0)
        self.max_gpus_shared = 0
        self.max_containers_per_deployment = 0
        self.seen_deployments: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RuntimeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        api = self.runtime.client.api
        while not self._stop.is_set():
            containers = labelled(self.runtime, self.uid)
            per_deployment = Counter(c["Labels"]["hypervisor.deployment"] for c in containers)
            self.seen_deployments |= {int(d) for d in per_deployment}
            self.max_containers_per_deployment = max(self.max_containers_per_deployment,
                                                     max(per_deployment.values(), default=0))
            cpu, ram, gpus = Decimal(0), Decimal(0), Counter()
            for summary in containers:
                if summary["State"] != "running":
                    continue
                try:
                    host = api.inspect_container(summary["Id"])["HostConfig"]
                except docker.errors.APIError:  # removed between the listing and the inspection
                    continue
                cpu += Decimal(host.get("NanoCpus") or 0) / 10**9
                ram += Decimal(host.get("Memory") or 0) / 2**30
                gpus.update(i for i in summary["Labels"].get("hypervisor.gpus", "").split(",") if i)
            self.max_cpu, self.max_ram = max(self.max_cpu, cpu), max(self.max_ram, ram)
            self.max_gpus_shared = max(self.max_gpus_shared, max(gpus.values(), default=0))
            self.samples += 1
            time.sleep(0.02)
