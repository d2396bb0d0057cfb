"""Streams under load (issue 21): N followers of a deployment's output and of the list watch, on PostgreSQL with
Redis (or the embedded default with --embedded), served by gunicorn as WSGI threads or as its ASGI worker.

Prints, per serving model: `GET /api/v1/clusters/` p50 without and with the followers open, the server's memory
and CPU per 100 idle followers, and the latency from a line's arrival at the API (the agent's sync returning) to
each follower receiving it, p50/p99, and the share of (line, follower) pairs within 1 s.

    .venv/bin/python bench/streams.py [--followers 500] [--kinds asgi,wsgi] [--lines 40] [--embedded]
"""
import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

ROOT = Path(__file__).resolve().parent.parent
PORT = 8970
DB = "hypervisor_bench_streams"
ENV = {"DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}", "REDIS_URL": "redis://127.0.0.1:6379/12",
       "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13", "CELERY_TASK_ALWAYS_EAGER": "true", "SECRET_KEY": "bench",
       "THROTTLE_USER_RATE": "1000000/min", "THROTTLE_ANON_RATE": "1000000/min",
       "THROTTLE_AUTH_RATE": "1000000/min", "LOG_LEVEL": "WARNING", "STREAMS_PER_PROCESS": "100000"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def serve(kind: str, workers: int, threads: int, embedded: bool, directory: Path) -> subprocess.Popen:
    env = {**os.environ, **ENV}
    if embedded:
        for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER"):
            env.pop(name)
        env["DATABASE_URL"] = f"sqlite:///{directory / 'db.sqlite3'}"
    else:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DB], check=True)
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB], check=True)
    for command in (["migrate", "--noinput"], ["createcachetable"]):
        subprocess.run([sys.executable, "manage.py", *command], env=env, cwd=ROOT, check=True, capture_output=True)
    app = (["hypervisor_mlops.asgi:application", "--worker-class", "asgi"] if kind == "asgi"
           else ["hypervisor_mlops.wsgi:application", "--threads", str(threads)])
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", *app, "--bind", f"127.0.0.1:{PORT}", "--workers",
                                str(workers), "--log-level", "warning"], env=env, cwd=ROOT,
                               stdout=open(directory / "server.log", "wb"), stderr=subprocess.STDOUT)
    for _ in range(150):
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not start; see {directory / 'server.log'}")


def tree(pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *(p for child in children for p in tree(int(child)))]


def rss_mib(pid: int) -> float:
    total = 0
    for p in tree(pid):
        with open(f"/proc/{p}/status") as status:
            total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    return total / 1024


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        with open(f"/proc/{p}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


class World:
    def __init__(self, base: str) -> None:
        self.api = httpx.Client(base_url=f"{base}/api/v1", timeout=30)
        user = {"username": "bench", "email": "bench@example.com", "password": "correct-horse-battery"}
        self.api.post("/auth/register", json=user)
        self.token = self.api.post("/auth/login", json=user).json()["access"]
        self.api.headers["Authorization"] = f"Bearer {self.token}"
        org = self.api.post("/organizations/", json={"name": "bench"}).json()["id"]
        self.cluster = self.api.post("/clusters/", json={"name": "pool", "organization": org, "cpu_limit": "64",
                                                         "ram_limit": "64", "gpu_limit": 0}).json()["id"]
        agent = self.api.post(f"/clusters/{self.cluster}/agents/", json={"name": "host"}).json()["token"]
        self.agent = httpx.Client(base_url=f"{base}/api/v1", timeout=30, headers={"Authorization": f"Bearer {agent}"})
        body = {"name": "job", "cluster": self.cluster, "docker_image": "img:1", "cpu_required": "1"}
        self.deployment = self.api.post("/deployments/", json=body).json()["id"]
        self._sync(containers=[{"deployment": self.deployment, "attempt": 1, "container": "c1", "state": "running",
                                "exit_code": None}])
        self.offset = 0

    def _sync(self, **body) -> None:
        response = self.agent.post("/agent/sync/", json={"hostname": "h", "version": "b", "start_failures": [],
                                                         "logs": [], **body})
        response.raise_for_status()

    def write(self, line: str) -> float:
        """Sends a line as the agent would; returns when the API has it (the sync answered)."""
        data = (line + "\n").encode()
        self._sync(logs=[{"deployment": self.deployment, "attempt": 1, "offset": self.offset,
                          "data": base64.b64encode(data).decode()}])
        self.offset += len(data)
        return time.monotonic()

    def clusters_p50(self, n: int = 200) -> float:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            self.api.get("/clusters/").raise_for_status()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000


async def follower(base: str, token: str, path: str, received: dict, ready: asyncio.Event, counter: list) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", headers=headers, timeout=httpx.Timeout(60)) as client:
        async with aconnect_sse(client, "GET", path) as source:
            counter[0] += 1
            if counter[0] == counter[1]:
                ready.set()
            async for event in source.aiter_sse():
                if event.event == "message" and event.data.startswith("t="):
                    received.setdefault(event.data, []).append(time.monotonic())


async def measure(world: World, base: str, followers: int, lines: int, pid: int) -> dict:
    received: dict[str, list[float]] = {}
    ready, counter = asyncio.Event(), [0, followers]
    logs, lists = followers - followers // 5, followers // 5  # four in five follow the output, one watches the list
    paths = [f"/deployments/{world.deployment}/logs/?follow=true&tail=0"] * logs + ["/deployments/?watch=true"] * lists
    rss_before = rss_mib(pid)
    tasks = [asyncio.create_task(follower(base, world.token, path, received, ready, counter)) for path in paths]
    await asyncio.wait_for(ready.wait(), 120)
    await asyncio.sleep(2)
    rss_after = rss_mib(pid)
    cpu_start = cpu_seconds(pid)
    await asyncio.sleep(10)
    idle_cpu = (cpu_seconds(pid) - cpu_start) / 10
    clusters = await asyncio.to_thread(world.clusters_p50)
    sent = {}
    for n in range(lines):
        line = f"t={n}"
        sent[line] = await asyncio.to_thread(world.write, line)
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(t - sent[line] for line, times in received.items() for t in times)
    expected = lines * logs
    return {"rss_per_100": (rss_after - rss_before) / followers * 100, "idle_cpu_per_100": idle_cpu / followers * 100,
            "clusters_p50_ms": clusters, "delivered": len(latencies), "expected": expected,
            "p50": statistics.median(latencies) if latencies else None,
            "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else None,
            "within_1s": sum(1 for x in latencies if x <= 1) / expected if expected else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--followers", type=int, default=500)
    parser.add_argument("--kinds", default="asgi,wsgi")
    parser.add_argument("--workers", type=int, default=2 * os.cpu_count() + 1)
    parser.add_argument("--lines", type=int, default=40)
    parser.add_argument("--embedded", action="store_true", help="SQLite and no Redis, one worker, as bin/run")
    args = parser.parse_args()
    workers = 1 if args.embedded else args.workers
    for kind in args.kinds.split(","):
        directory = Path(tempfile.mkdtemp(prefix="hv-bench-streams-"))
        # Threads hold one stream each, and connections are not spread evenly over the workers: room for twice
        # a fair share, plus the requests beside them.
        threads = 2 * args.followers // workers + 8
        process = serve(kind, workers, threads, args.embedded, directory)
        try:
            world = World(f"http://127.0.0.1:{PORT}")
            baseline = world.clusters_p50()
            figures = asyncio.run(measure(world, f"http://127.0.0.1:{PORT}", args.followers, args.lines, process.pid))
        finally:
            process.terminate()
            process.wait(30)
        shape = f"{workers} workers" + (f" x {threads} threads" if kind == "wsgi" else "")
        print(f"{kind} ({shape}, {'embedded' if args.embedded else 'PostgreSQL + Redis'}), {args.followers} followers:")
        print(f"  GET /clusters/ p50: {baseline:.1f} ms alone, {figures['clusters_p50_ms']:.1f} ms with followers "
              f"({figures['clusters_p50_ms'] / baseline:.2f}x)")
        print(f"  per 100 idle followers: {figures['rss_per_100']:.1f} MiB RSS, "
              f"{figures['idle_cpu_per_100'] * 100:.1f}% of a core")
        if figures["p50"] is not None:
            print(f"  line to follower: p50 {figures['p50'] * 1000:.0f} ms, p99 {figures['p99'] * 1000:.0f} ms, "
                  f"{figures['delivered']}/{figures['expected']} delivered, {figures['within_1s']:.1%} within 1 s")


if __name__ == "__main__":
    main()
