"""Benchmark of agents running deployments as containers on a real runtime (issue 9's targets).

Starts its own world: the benchmark database (dropped, recreated, migrated), gunicorn (2 workers x 4 threads)
on 127.0.0.1:8800 with eager scheduling (each pass runs in the gunicorn process right after the commit), one
Celery worker with beat (the lost-agent sweep), a private Podman service holding the busybox test image
(tests/runtime.py), a user, organization and cluster (8 CPU, 8 GiB, 4 GPUs) made through the API, a
registered agent and one real `bin/agent` process talking to the private Podman socket. Then measures:

1. submit to container started, on an idle agent (POST sent -> the container's State.StartedAt);
2. a burst of small deployments: first POST -> last container's StartedAt;
3. preemption: the victim's FinishedAt -> the preemptor's StartedAt;
4. agent loss: SIGKILL -> `offline`, -> requeued, and the restarted agent's new attempt running;
5. the agent's (and the Podman service's) CPU and RSS, idle and during the burst.

Times compare this process's wall clock with Podman's timestamps: the same machine, the same clock.
Everything it starts runs in its own process group and is stopped (TERM, then KILL) however the run ends.
"""
from __future__ import annotations

import argparse
import calendar
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import djangoenv
import docker
import httpx
import requests
from servers import background_load
from workload import percentile

API = "/api/v1"
VENV_BIN = ROOT / ".venv" / "bin"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IMAGE = "localhost/busybox:test"
OFFLINE_AFTER, LOST_AFTER = 3, 6
TARGETS = {"p50": 0.5, "p99": 2.0, "burst": 10.0, "gap": 0.5, "offline_slack": 1.0, "requeue_slack": 10.0}
LOOP = "while true; do sleep 0.1; done"


class TimeIsUp(Exception):
    pass


def _time_is_up(*_):
    raise TimeIsUp("time limit reached; stopping everything")


# --- Processes ---------------------------------------------------------------------------------------------

class Processes:
    """Named processes, each the leader of its own process group; stop() ends a group, TERM then KILL."""

    def __init__(self) -> None:
        self.logs = Path(tempfile.mkdtemp(prefix="hypervisor-bench-agent-"))
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list, env: dict[str, str]) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen([str(a) for a in args], cwd=ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.running[name] = process
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        process = self.running.pop(name, None)
        if process is None:
            return
        _killpg(process, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _killpg(process, signal.SIGKILL)
            process.wait(timeout=10)
        if sig != signal.SIGKILL:
            _killpg(process, signal.SIGKILL)  # whatever of the group outlived its leader

    def stop_all(self) -> None:
        for name in list(self.running):
            _killpg(self.running[name], signal.SIGTERM)
        for name in list(self.running):
            self.stop(name)


def _killpg(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# --- CPU and memory of processes -----------------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and of its children it has waited for."""
    fields = _stat(pid)
    return 0.0 if fields is None else sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


def group_cpu_seconds(pgid: int) -> float:
    total = 0.0
    for entry in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat(int(entry))
        if fields is not None and int(fields[2]) == pgid:
            total += sum(int(v) for v in fields[11:15]) / CLOCK_TICKS
    return total


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Meter:
    """CPU of the agent, the Podman service, gunicorn and Celery over a window, and the agent's peak RSS."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.peak_rss = {"agent": 0.0, "podman": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_rss, daemon=True)

    def sample(self) -> dict[str, float]:
        b = self.bench
        return {"agent": cpu_seconds(b.agent.pid), "podman": cpu_seconds(b.runtime.process.pid),
                "gunicorn": group_cpu_seconds(b.procs.running["gunicorn"].pid),
                "celery": group_cpu_seconds(b.procs.running["celery"].pid), "wall": time.monotonic()}

    def __enter__(self) -> Meter:
        self.before = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.after = self.sample()
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample_rss(self) -> None:
        while not self._stop.is_set():
            self.peak_rss["agent"] = max(self.peak_rss["agent"], rss_mib(self.bench.agent.pid))
            self.peak_rss["podman"] = max(self.peak_rss["podman"], rss_mib(self.bench.runtime.process.pid))
            self._stop.wait(0.1)

    def per_minute(self) -> dict[str, float]:
        wall = self.after["wall"] - self.before["wall"]
        return {name: 60 * (self.after[name] - self.before[name]) / wall for name in self.after if name != "wall"}

    def describe(self) -> str:
        rates = self.per_minute()
        return (f"CPU s/min: agent {rates['agent']:.2f}, podman service {rates['podman']:.2f}, "
                f"gunicorn {rates['gunicorn']:.2f}, celery {rates['celery']:.2f}; peak RSS agent "
                f"{self.peak_rss['agent']:.0f} MiB, podman service {self.peak_rss['podman']:.0f} MiB "
                f"(window {self.after['wall'] - self.before['wall']:.1f} s)")


# --- The runtime's view --------------------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?")


def parse_time(text: str | None) -> float | None:
    """RFC 3339 (nanoseconds, Z or an offset) as Unix seconds; None for Go's zero time or nothing."""
    if not text or text.startswith("0001-"):
        return None
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    seconds = calendar.timegm(datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S").timetuple())
    zone = match[3] or "Z"
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        seconds -= offset if zone[0] == "+" else -offset
    return seconds + (float("0." + match[2]) if match[2] else 0.0)


def containers_of(runtime, deployment: int) -> list[dict]:
    return runtime.client.api.containers(all=True, filters={"label": f"hypervisor.deployment={deployment}"})


def inspect(runtime, container_id: str) -> dict | None:
    import docker

    try:
        return runtime.client.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        if "no such container" in str(exc).lower():
            return None
        raise


def wait_started(runtime, deployment: int, timeout: float, attempt: int | None = None,
                 interval: float = 0.02) -> dict:
    """Polls the runtime until the deployment's container (of `attempt`, if given) has a StartedAt; its
    inspection."""
    deadline = time.monotonic() + timeout
    container_id = None
    while time.monotonic() < deadline:
        if container_id is None:
            for summary in containers_of(runtime, deployment):
                if attempt is None or summary["Labels"].get("hypervisor.attempt") == str(attempt):
                    container_id = summary["Id"]
        if container_id is not None:
            details = inspect(runtime, container_id)
            if details is None:
                container_id = None
            elif parse_time(details["State"].get("StartedAt")) is not None:
                return details
        time.sleep(interval)
    raise RuntimeError(f"deployment {deployment}'s container did not start within {timeout} s")


def live_containers(runtime) -> list[dict]:
    return [c for c in runtime.client.api.containers(all=True, filters={"label": "hypervisor.agent"})
            if c["State"] not in ("exited", "stopped", "dead", "created", "configured")]


# --- The benchmark -------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.procs = Processes()
        self.base_url = f"http://{args.bind}"
        self.env: dict[str, str] = {}
        self.runtime = None
        self.agent: subprocess.Popen | None = None
        self.agent_starts = 0
        self.rows: list[tuple[str, str, str, str]] = []  # figure, value, target, verdict
        self.notes: list[str] = []

    # -- setup --

    def start_services(self, sweep: float) -> None:
        self.env = {**os.environ, **djangoenv.apply_env(
            CELERY_TASK_ALWAYS_EAGER="true", AGENT_OFFLINE_AFTER_SECONDS=str(OFFLINE_AFTER),
            AGENT_LOST_AFTER_SECONDS=str(LOST_AFTER), AGENT_SWEEP_SECONDS=str(sweep))}
        self.procs.start("gunicorn", [VENV_BIN / "gunicorn", "hypervisor_mlops.wsgi:application", "--bind",
                                      self.args.bind, "--workers", "2", "--threads", "4", "--log-level", "warning"],
                         self.env)
        self.start_celery(sweep)
        wait_for(self._ready, 30, "gunicorn to answer /readyz", interval=0.2)

    def start_celery(self, sweep: float) -> None:
        env = {**self.env, "AGENT_SWEEP_SECONDS": str(sweep)}
        schedule = self.procs.logs / f"beat-schedule-{sweep}"
        self.procs.start("celery", [VENV_BIN / "celery", "-A", "hypervisor_mlops", "worker", "--pool", "solo",
                                    "--beat", "--schedule", schedule, "--hostname", "bench-agent@%h",
                                    "--loglevel", "WARNING", "--without-gossip", "--without-mingle"], env)
        from hypervisor_mlops.celery import app

        wait_for(lambda: app.control.ping(timeout=0.5), 30, "the Celery worker to answer a ping", interval=0.2)

    def _ready(self) -> bool:
        for name, process in self.procs.running.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited at start; see {self.procs.logs / name}.log")
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def bootstrap(self) -> None:
        self.http = httpx.Client(base_url=self.base_url + API, timeout=30)
        credentials = {"username": "bench", "password": "correct-horse-battery-staple"}
        self.http.post("/auth/register", json={**credentials, "email": "bench@example.com"}).raise_for_status()
        token = self.http.post("/auth/login", json=credentials).raise_for_status().json()["access"]
        self.token = token
        self.http.headers["Authorization"] = f"Bearer {token}"
        org = self.http.post("/organizations/", json={"name": "bench"}).raise_for_status().json()["id"]
        self.cluster = self.http.post("/clusters/", json={
            "name": "agent-bench", "organization": org, "cpu_limit": "8", "ram_limit": "8", "gpu_limit": 4,
        }).raise_for_status().json()["id"]
        self.agent_token = self.http.post(f"/clusters/{self.cluster}/agents/", json={"name": "host-1"}) \
            .raise_for_status().json()["token"]

    def start_agent(self) -> None:
        args = [ROOT / "bin" / "agent", "--server", self.base_url, "--token", self.agent_token, "--gpus", "0,1,2,3"]
        if self.args.interval:
            args += ["--interval", str(self.args.interval)]
        self.agent_starts += 1
        # bin/agent execs the agent's Python, so this pid is the agent itself.
        self.agent = self.procs.start(f"agent-{self.agent_starts}", args,
                                      {**os.environ, "DOCKER_HOST": self.runtime.docker_host})
        self.agent_name = f"agent-{self.agent_starts}"

    def agent_info(self) -> dict:
        return self.http.get(f"/clusters/{self.cluster}/agents/").raise_for_status().json()["results"][0]

    def submit(self, script: str, *, client: httpx.Client | None = None, cpu="0.1", ram="0.1", priority=0,
               grace=1, name="bench") -> int:
        response = (client or self.http).post("/deployments/", json={
            "cluster": self.cluster, "name": name, "docker_image": IMAGE, "command": ["sh", "-c", script],
            "cpu_required": cpu, "ram_required": ram, "gpu_required": 0, "priority": priority,
            "stop_grace_seconds": grace,
        })
        if response.status_code != 201:
            raise RuntimeError(f"POST /deployments/ answered {response.status_code}: {response.text[:300]}")
        return response.json()["id"]

    def deployment(self, pk: int) -> dict:
        return self.http.get(f"/deployments/{pk}/").raise_for_status().json()

    def kinds(self, pk: int) -> list[str]:
        return [e["kind"] for e in self.http.get(f"/deployments/{pk}/events/").raise_for_status().json()["results"]]

    def cancel(self, pk: int) -> None:
        self.http.post(f"/deployments/{pk}/cancel/")

    def wait_idle(self, timeout: float = 60) -> None:
        """Until the cluster holds nothing and no container of the agent is live."""
        def idle() -> bool:
            body = self.http.get(f"/clusters/{self.cluster}/").json()
            return float(body["cpu_available"]) == 8 and not live_containers(self.runtime)
        wait_for(idle, timeout, "the cluster to be idle", interval=0.2)

    def row(self, figure: str, value: str, target: str, ok: bool | None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        self.rows.append((figure, value, target, verdict))

    # -- 5a: idle agent --

    def idle_cost(self) -> None:
        seconds = self.args.idle
        print(f"\n[5] the agent idle for {seconds:.0f} s (no deployments)")
        with Meter(self) as meter:
            time.sleep(seconds)
        print("   ", meter.describe())
        rates = meter.per_minute()
        self.row("agent CPU idle", f"{rates['agent']:.2f} s/min", "—", None)
        self.row("agent RSS idle", f"{meter.peak_rss['agent']:.0f} MiB", "—", None)
        self.row("podman service CPU idle", f"{rates['podman']:.2f} s/min", "—", None)
        self.row("gunicorn CPU idle (serving syncs)", f"{rates['gunicorn']:.2f} s/min", "—", None)

    # -- 1: submit to started --

    def submit_to_started(self) -> None:
        n = self.args.sequential
        print(f"\n[1] submit to container started: {n} sequential submissions onto the idle agent")
        rng = random.Random(9)
        latencies, to_created, create_to_start, post_times = [], [], [], []
        for i in range(n):
            # A random pause so submissions do not fall into step with the agent's poll cycle.
            time.sleep(rng.uniform(0, 0.3))
            sent = time.time()
            pk = self.submit("sleep 0.2", name=f"seq-{i}")
            post_times.append(time.time() - sent)
            details = wait_started(self.runtime, pk, timeout=20)
            started = parse_time(details["State"]["StartedAt"])
            created = parse_time(details.get("Created"))
            latencies.append(started - sent)
            if created is not None:
                to_created.append(created - sent)
                create_to_start.append(started - created)
            # Until it has exited, so the next one meets an idle agent.
            def exited(container_id=details["Id"]) -> bool:
                current = inspect(self.runtime, container_id)
                return current is None or current["State"]["Status"] != "running"
            wait_for(exited, 5, "the container to exit", interval=0.02)
        p50, p99, worst = percentile(latencies, 50), percentile(latencies, 99), max(latencies)
        print(f"    POST -> StartedAt: p50 {p50:.3f} s, p99 {p99:.3f} s, max {worst:.3f} s, min {min(latencies):.3f} s")
        print(f"    POST answered: p50 {percentile(post_times, 50) * 1000:.0f} ms; POST -> container created "
              f"p50 {percentile(to_created, 50):.3f} s; created -> started p50 "
              f"{percentile(create_to_start, 50):.3f} s, max {max(create_to_start):.3f} s")
        self.row("submit -> started p50", f"{p50:.3f} s", f"<= {TARGETS['p50']} s", p50 <= TARGETS["p50"])
        self.row("submit -> started p99", f"{p99:.3f} s", f"<= {TARGETS['p99']} s", p99 <= TARGETS["p99"])
        self.row("submit -> started max", f"{worst:.3f} s", "—", None)
        self.row("  of which POST -> created p50", f"{percentile(to_created, 50):.3f} s", "—", None)
        self.row("  of which created -> started p50", f"{percentile(create_to_start, 50):.3f} s", "—", None)

    # -- 2: burst --

    def burst(self) -> None:
        n = self.args.burst
        print(f"\n[2] a burst of {n} deployments (cpu 0.05, ram 0.05, sleep 15) from {self.args.burst_threads} threads")
        self.wait_idle()
        local = threading.local()
        clients: list[httpx.Client] = []

        def submit(i: int) -> int:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=self.base_url + API, timeout=30,
                                            headers={"Authorization": f"Bearer {self.token}"})
                clients.append(local.client)
            # Long enough that every container is still there to inspect when the watcher gets to it.
            return self.submit("sleep 15", client=local.client, cpu="0.05", ram="0.05", name=f"burst-{i}")

        started: dict[int, float] = {}
        done = threading.Event()
        seen_ids: set[str] = set()

        def watch() -> None:
            while not done.is_set():
                try:
                    for summary in self.runtime.client.api.containers(all=True, filters={"label": "hypervisor.agent"}):
                        if summary["Id"] in seen_ids or summary["State"] in ("created", "configured"):
                            continue
                        details = inspect(self.runtime, summary["Id"])
                        at = details and parse_time(details["State"].get("StartedAt"))
                        if at:
                            seen_ids.add(summary["Id"])
                            started[int(summary["Labels"]["hypervisor.deployment"])] = at
                except (docker.errors.DockerException, requests.RequestException) as exc:
                    # A listing during removals may fail: sample again.
                    print(f"    (runtime listing failed: {exc})")
                done.wait(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        with Meter(self) as meter:
            watcher.start()
            first = time.time()
            with ThreadPoolExecutor(self.args.burst_threads) as pool:
                ids = list(pool.map(submit, range(n)))
            posted = time.time()
            try:
                wait_for(lambda: all(pk in started for pk in ids), 90, "every burst container to start", 0.1)
            finally:
                done.set()
                watcher.join(timeout=10)
        for client in clients:
            client.close()
        times = sorted(started[pk] - first for pk in ids)
        last = times[-1]
        print(f"    all {n} POSTs answered in {posted - first:.2f} s ({n / (posted - first):.0f}/s); containers "
              f"started: first {times[0]:.2f} s, half {times[len(times) // 2]:.2f} s, 90 % "
              f"{times[int(len(times) * 0.9) - 1]:.2f} s, last {last:.2f} s after the first POST")
        print("   ", meter.describe())
        rates = meter.per_minute()
        quick = n != 100
        self.row(f"burst of {n}: first POST -> last started", f"{last:.2f} s",
                 "<= 10 s (for 100)", None if quick else last <= TARGETS["burst"])
        self.row("burst: containers started per second", f"{n / (last - times[0]):.1f}/s" if last > times[0] else "-",
                 "—", None)
        self.row("agent CPU during burst", f"{rates['agent']:.2f} s/min", "—", None)
        self.row("agent RSS peak during burst", f"{meter.peak_rss['agent']:.0f} MiB", "—", None)
        self.row("podman service CPU during burst", f"{rates['podman']:.2f} s/min", "—", None)
        self.burst_ids = ids

    def burst_outcome(self) -> None:
        def settled():
            statuses = {}
            for status in ("running", "pending", "completed", "failed"):
                statuses[status] = self.http.get("/deployments/", params={
                    "cluster": self.cluster, "status": status}).json()["count"]
            return statuses if statuses["running"] + statuses["pending"] == 0 else None
        try:
            statuses = wait_for(settled, 60, "the burst to finish", interval=0.5)
        except RuntimeError:
            # Seen here: the agent's passes slowed past AGENT_LOST_AFTER_SECONDS under the burst, the sweep
            # requeued everything, the restarts slowed it again. Cancel what is left so the run can go on.
            statuses = None
            for pk in self.burst_ids:
                self.cancel(pk)
        restarted = [pk for pk in self.burst_ids if (self.deployment(pk)["runtime"] or {}).get("attempt", 1) > 1]
        if restarted:
            note = (f"{len(restarted)} of the burst's deployments ran more than one attempt (requeued: the agent "
                    f"was declared lost during the burst)" + ("" if statuses else "; the burst never settled"))
            self.notes.append(note)
            print(f"    {note}")
        self.row("burst: deployments restarted (requeued as lost)", str(len(restarted)), "0", not restarted)
        self.wait_idle()
        if statuses is None:
            return
        print(f"    after the burst: {statuses['completed']} completed, {statuses['failed']} failed (all parts so far)")
        if statuses["failed"]:
            failed = self.http.get("/deployments/", params={"cluster": self.cluster, "status": "failed"}).json()
            reasons = {d["status_reason"] for d in failed["results"]}
            self.notes.append(f"{statuses['failed']} deployments failed: {sorted(reasons)[:3]}")
            print(f"    failure reasons: {sorted(reasons)[:3]}")

    # -- 3: preemption --

    def preemption(self) -> None:
        reps = self.args.preemptions
        print(f"\n[3] preemption: a cpu-8 victim trapping TERM (sleeps 1 s) and a cpu-8 preemptor, {reps} times")
        gaps = []
        for rep in range(reps):
            self.wait_idle()
            victim = self.submit(f"trap 'sleep 1; exit 0' TERM; {LOOP}", cpu="8", ram="1", priority=0, grace=10,
                                 name=f"victim-{rep}")
            victim_details = wait_started(self.runtime, victim, timeout=20)
            time.sleep(0.3)  # the shell has installed its trap
            finished: list[float] = []
            stop = threading.Event()

            def watch_victim(container_id=victim_details["Id"], stop=stop, finished=finished) -> None:
                while not stop.is_set():
                    details = inspect(self.runtime, container_id)
                    if details is None:
                        return
                    at = parse_time(details["State"].get("FinishedAt"))
                    if at is not None and details["State"]["Status"] in ("exited", "stopped", "dead"):
                        finished[:] = [at]
                    time.sleep(0.02)

            watcher = threading.Thread(target=watch_victim, daemon=True)
            watcher.start()
            sent = time.time()
            preemptor = self.submit(f"trap 'exit 0' TERM; {LOOP}", cpu="8", ram="1", priority=10, grace=1,
                                    name=f"preemptor-{rep}")
            details = wait_started(self.runtime, preemptor, timeout=30)
            stop.set()
            watcher.join(timeout=5)
            started = parse_time(details["State"]["StartedAt"])
            created = parse_time(details.get("Created"))
            if finished:
                gap = started - finished[0]
                gaps.append(gap)
                print(f"    #{rep + 1}: victim finished {finished[0] - sent:.3f} s after the preemptor's POST; "
                      f"preemptor created {created - finished[0]:+.3f} s, started {gap:.3f} s after it")
            else:
                print(f"    #{rep + 1}: the victim's FinishedAt was not seen (removed before an inspection)")
                self.notes.append("a preemption victim was removed before its FinishedAt could be read")
            self.cancel(victim)
            self.cancel(preemptor)
        self.wait_idle()
        if gaps:
            each = ", ".join(f"{g:.3f}" for g in gaps)
            self.row("preemption gap (victim finished -> preemptor started) max", f"{max(gaps):.3f} s ({each})",
                     f"<= {TARGETS['gap']} s", max(gaps) <= TARGETS["gap"])

    # -- 4: agent loss --

    def agent_loss(self, sweep: float) -> None:
        print(f"\n[4] agent loss (offline after {OFFLINE_AFTER} s, lost after {LOST_AFTER} s, sweep every {sweep:g} s)")
        self.wait_idle()
        pk = self.submit(f"trap 'exit 0' TERM; {LOOP}", cpu="1", ram="0.5", grace=2, name=f"loss-{sweep:g}")
        first = wait_started(self.runtime, pk, timeout=20)
        time.sleep(0.5)
        killed = time.time()
        self.procs.stop(self.agent_name, signal.SIGKILL)
        time.sleep(0.1)  # a sync in flight has landed
        last_seen = parse_time(self.agent_info()["last_seen_at"])

        def offline():
            return self.agent_info()["status"] == "offline" and time.time()
        offline_at = wait_for(offline, OFFLINE_AFTER + 10, "the agent to show offline", interval=0.05)

        def requeued():
            body = self.deployment(pk)
            return body["status"] == "pending" and "requeued" in self.kinds(pk) and time.time()
        requeued_at = wait_for(requeued, LOST_AFTER + sweep + 20, "the deployment to be requeued", interval=0.05)
        old = inspect(self.runtime, first["Id"])
        old_state = old["State"]["Status"] if old else "gone"
        restarted = time.time()
        self.start_agent()
        second = wait_started(self.runtime, pk, timeout=60, attempt=2)
        again = parse_time(second["State"]["StartedAt"])

        def api_running():
            runtime = self.deployment(pk)["runtime"] or {}
            return runtime.get("attempt") == 2 and runtime.get("state") == "running" and time.time()
        api_at = wait_for(api_running, 30, "the API to show attempt 2 running", interval=0.05)
        print(f"    killed {killed - last_seen:.2f} s after the agent's last_seen_at (heartbeats are written "
              f"at most once a second)")
        print(f"    offline: {offline_at - last_seen:.2f} s after last_seen_at ({offline_at - killed:.2f} s after the "
              f"kill); requeued: {requeued_at - last_seen:.2f} s after last_seen_at ({requeued_at - killed:.2f} s "
              f"after the kill); the old container meanwhile: {old_state}")
        print(f"    restarted agent: attempt 2 started {again - restarted:.2f} s after the restart (the API showed it "
              f"running after {api_at - restarted:.2f} s)")
        label = f"sweep {sweep:g} s"
        off_target = OFFLINE_AFTER + TARGETS["offline_slack"]
        self.row(f"agent loss ({label}): last seen -> offline", f"{offline_at - last_seen:.2f} s",
                 f"<= {off_target:g} s", offline_at - last_seen <= off_target)
        req_target = LOST_AFTER + TARGETS["requeue_slack"]
        self.row(f"agent loss ({label}): last seen -> requeued", f"{requeued_at - last_seen:.2f} s",
                 f"<= {req_target:g} s", requeued_at - last_seen <= req_target)
        self.row(f"agent loss ({label}): restart -> attempt 2 started", f"{again - restarted:.2f} s", "—", None)
        if old_state != "running":
            self.notes.append(f"while the agent was away its container went {old_state} (expected running)")
        self.cancel(pk)
        self.wait_idle()

    # -- the table --

    def table(self) -> None:
        width = max(len(r[0]) for r in self.rows)
        vwidth = max(len(r[1]) for r in self.rows)
        twidth = max(len(r[2]) for r in self.rows)
        print(f"\n{'figure':<{width}}  {'measured':<{vwidth}}  {'target':<{twidth}}")
        for figure, value, target, verdict in self.rows:
            print(f"{figure:<{width}}  {value:<{vwidth}}  {target:<{twidth}}  {verdict}")
        for note in self.notes:
            print(f"note: {note}")


def run(bench: Bench) -> None:
    from tests.runtime import start_podman_runtime

    args = bench.args
    sweeps = [float(s) for s in args.sweeps.split(",") if s]
    started = time.monotonic()
    bench.start_services(sweeps[0])
    bench.runtime = start_podman_runtime()
    bench.bootstrap()
    bench.start_agent()
    wait_for(lambda: bench.agent_info()["status"] == "online", 60, "the agent to come online", interval=0.1)
    time.sleep(1)
    interval = args.interval or "default (the server suggests 0.25 s)"
    print(f"setup: {time.monotonic() - started:.1f} s; agent poll interval {interval}; logs in {bench.procs.logs}")
    bench.idle_cost()
    bench.submit_to_started()
    bench.burst()
    bench.burst_outcome()
    bench.preemption()
    for i, sweep in enumerate(sweeps):
        if i:
            bench.procs.stop("celery")
            bench.start_celery(sweep)
        bench.agent_loss(sweep)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="127.0.0.1:8800")
    parser.add_argument("--quick", action="store_true", help="fewer submissions and repetitions, one sweep setting")
    parser.add_argument("--interval", type=float, default=None, help="the agent's --interval (default: the server's)")
    parser.add_argument("--sequential", type=int, help="sequential submissions of part 1 (50; quick 15)")
    parser.add_argument("--burst", type=int, help="deployments in the burst of part 2 (100; quick 40)")
    parser.add_argument("--burst-threads", type=int, default=4)
    parser.add_argument("--preemptions", type=int, help="repetitions of part 3 (5; quick 2)")
    parser.add_argument("--sweeps", help="AGENT_SWEEP_SECONDS values for part 4 (5,1; quick 5)")
    parser.add_argument("--idle", type=float, help="seconds of the idle window (20; quick 8)")
    parser.add_argument("--time-limit", type=int, default=270, help="seconds before everything is stopped")
    args = parser.parse_args()
    defaults = {"sequential": (50, 15), "burst": (100, 40), "preemptions": (5, 2), "sweeps": ("5,1", "5"),
                "idle": (20, 8)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)

    return drive(args, run, f"agent benchmark: gunicorn 2 workers x 4 threads on {args.bind} (eager scheduling), "
                            f"one Celery worker with beat, a private Podman service, one bin/agent")


def drive(args, run: Callable[[Bench], None], title: str) -> int:
    """Runs `run` on a new Bench within `args.time_limit` seconds, then stops everything it started, whatever
    happened, and prints the figures measured. Returns the exit status."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, _time_is_up)
    signal.alarm(args.time_limit)
    begun = time.monotonic()
    print(f"{title}; database {djangoenv.DB_NAME}")
    print(f"machine busy before the run (others' work): {background_load():.0f}% of {os.cpu_count() * 100}%")
    djangoenv.setup_django(eager=True)
    djangoenv.flush_redis()
    bench = Bench(args)
    failed = None
    try:
        run(bench)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 (print what was measured, then stop everything)
        failed = exc
        print(f"\nstopped early: {type(exc).__name__}: {exc}; logs in {bench.procs.logs}", file=sys.stderr)
    finally:
        signal.alarm(0)
        for name in [n for n in bench.procs.running if n.startswith("agent-")]:
            bench.procs.stop(name, signal.SIGKILL)
        bench.procs.stop_all()
        if bench.runtime is not None:
            from tests.runtime import stop_podman_runtime

            stop_podman_runtime(bench.runtime)
        djangoenv.flush_redis()
        djangoenv.end_sessions()
    if bench.rows:
        bench.table()
    print(f"total {time.monotonic() - begun:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
