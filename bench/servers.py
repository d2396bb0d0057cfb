"""The service's processes for a load benchmark (gunicorn and one Celery worker), and their CPU use."""
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Servers:
    """Starts gunicorn and Celery workers, each in its own process group, and always stops them all.

    By default the service of this checkout with one worker; `wsgi` serves another app (bench/ceiling),
    `root` runs the service of another checkout (an older commit, for "before" figures), `celery_workers`
    starts that many solo-pool workers (grouped as "celery" in the CPU figures)."""

    def __init__(self, env: dict[str, str], bind: str, workers: int, threads: int, *,
                 wsgi: str = "hypervisor_mlops.wsgi:application", root: Path = ROOT, celery_workers: int = 1,
                 name: str = "bench") -> None:
        self.env = {**os.environ, **env}
        self.bind, self.workers, self.threads = bind, workers, threads
        self.wsgi, self.root, self.celery_workers, self.name = wsgi, Path(root), celery_workers, name
        self.logs = Path(tempfile.mkdtemp(prefix="hypervisor-bench-"))
        self.processes: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "Servers":
        try:
            self._start("gunicorn", [
                VENV_BIN / "gunicorn", self.wsgi, "--bind", self.bind,
                "--workers", str(self.workers), "--threads", str(self.threads), "--log-level", "warning",
            ])
            for n in range(self.celery_workers):
                self._start("celery" if n == 0 else f"celery{n + 1}", [
                    VENV_BIN / "celery", "-A", "hypervisor_mlops", "worker", "--pool", "solo", "--loglevel",
                    "WARNING", "--hostname", f"{self.name}{n + 1}@%h", "--without-gossip", "--without-mingle",
                    "--without-heartbeat",
                ])
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self, name: str, args: list) -> None:
        with open(self.logs / f"{name}.log", "w") as log:
            # A new session makes the process a group leader, so stopping it also stops its children.
            self.processes[name] = subprocess.Popen(
                [str(a) for a in args], cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_until_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited at start; see {self.logs / name}.log")
            try:
                if httpx.get(f"http://{self.bind}/readyz", timeout=1).status_code == 200 and self._workers_up():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the service did not become ready within {timeout} s; logs in {self.logs}")

    def _workers_up(self) -> bool:
        # A worker logs nothing at WARNING once ready; a ping through its broker confirms it.
        from celery import Celery

        with Celery(broker=self.env["CELERY_BROKER_URL"]) as app:
            return len(app.control.ping(timeout=0.5)) >= self.celery_workers

    def stop(self) -> None:
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()

    def group_ids(self) -> dict[str, int]:
        """Process group ids by name: "gunicorn", "celery", "celery2", ..."""
        return {name: process.pid for name, process in self.processes.items()}


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _stat_fields(pid: str) -> tuple[str, list[str]] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces; the fields after it are plain.
    return raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()


class CpuMeter:
    """CPU seconds used by the service's process groups, PostgreSQL serving `database`, this process, and the
    rest of the machine (others' test runs share it, so their share is printed to judge the noise)."""

    def __init__(self, groups: dict[str, int], database: str) -> None:
        self.groups, self.database = groups, database

    def sample(self) -> dict[str, float]:
        used = dict.fromkeys((*self.groups, "postgres", "load generator"), 0.0)
        by_group = {pgid: name for name, pgid in self.groups.items()}
        me = os.getpid()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            stat = _stat_fields(pid)
            if stat is None:
                continue
            comm, fields = stat
            seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            if int(fields[2]) in by_group:
                used[by_group[int(fields[2])]] += seconds
            elif int(pid) == me:
                used["load generator"] += seconds
            elif comm == "postgres" and self._serves_us(pid):
                used["postgres"] += seconds
        used["machine"] = machine_busy_seconds()
        used["wall"] = time.monotonic()
        return used

    def _serves_us(self, pid: str) -> bool:
        # A backend's title names its database: "postgres: 15/main: postgres hypervisor_bench 127.0.0.1(...)".
        try:
            return f" {self.database} " in Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            return False

    @staticmethod
    def shares(before: dict[str, float], after: dict[str, float]) -> str:
        """Percent of one core each used between two samples, e.g. 'gunicorn 120%, celery 60%, ...'."""
        wall = after["wall"] - before["wall"]
        used = {name: 100 * (after[name] - before[name]) / wall for name in after if name != "wall"}
        machine = used.pop("machine")
        parts = [f"{name} {share:.0f}%" for name, share in used.items()]
        rest = machine - sum(used.values())
        return ", ".join(parts) + f", rest (Redis, kernel, others) {rest:.0f}% (of {os.cpu_count() * 100}%)"


def background_load(seconds: float = 2.0) -> float:
    """Percent of one core the machine is busy with before the benchmark starts anything."""
    before, start = machine_busy_seconds(), time.monotonic()
    time.sleep(seconds)
    return 100 * (machine_busy_seconds() - before) / (time.monotonic() - start)


def machine_busy_seconds() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS
