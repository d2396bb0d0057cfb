"""Benchmark of the HTTP API under load: gunicorn plus one Celery worker on this machine, driven over loopback."""
import argparse
import asyncio
import os
import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

import djangoenv  # noqa: E402
from loadgen import Results, closed_loop, open_loop  # noqa: E402
from servers import CpuMeter, Servers, background_load  # noqa: E402
from workload import percentile, random_demand, random_priority, total  # noqa: E402

API = "/api/v1"
QUEUED = 10_000
OLD_SERVICE_RATE = 55  # deployments per second the service this replaces handled
TARGETS = {"post_rate": 300, "post_p99_ms": 150, "submit_to_running_p50_ms": 25, "clusters_p50_ms": 5,
           "resize_s": 2.0}
POST, CLUSTERS, PENDING = "POST /deployments/", "GET /clusters/", "GET /deployments/?status=pending"


def check(ok: bool) -> str:
    return "met" if ok else "MISSED"


# --- Requests ----------------------------------------------------------------------------------------------

def post_deployment(cluster_id: int, rng: random.Random):
    async def request(client: httpx.AsyncClient) -> httpx.Response:
        demand = random_demand(rng)
        return await client.post(f"{API}/deployments/", json={
            "name": "load", "cluster": cluster_id, "docker_image": "trainer:1", "priority": random_priority(rng),
            "cpu_required": str(demand.cpu), "ram_required": str(demand.ram), "gpu_required": demand.gpu,
        })
    return request


async def get_clusters(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get(f"{API}/clusters/")


async def get_pending(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get(f"{API}/deployments/", params={"status": "pending"})


# --- Setup -------------------------------------------------------------------------------------------------

def bootstrap(base_url: str) -> tuple[str, int, int]:
    """Register, log in, create an organization, a small cluster and a roomy one: (token, small, roomy)."""
    with httpx.Client(base_url=base_url + API, timeout=30) as client:
        credentials = {"username": "bench", "password": "correct-horse-battery-staple"}
        client.post("/auth/register", json={**credentials, "email": "bench@example.com"}).raise_for_status()
        token = client.post("/auth/login", json=credentials).raise_for_status().json()["access"]
        client.headers["Authorization"] = f"Bearer {token}"
        org = client.post("/organizations/", json={"name": "bench"}).raise_for_status().json()["id"]

        def cluster(name: str, cpu: str, ram: str, gpu: int) -> int:
            body = {"name": name, "organization": org, "cpu_limit": cpu, "ram_limit": ram, "gpu_limit": gpu}
            return client.post("/clusters/", json=body).raise_for_status().json()["id"]

        # The small cluster takes the largest single request the workload makes, so each one could start.
        return token, cluster("small", "16", "64", 8), cluster("roomy", "999999", "999999", 999999)


def queue_backlog(cluster_id: int, rng: random.Random):
    """10k pending deployments on the small cluster, settled by one pass; returns the capacity they all need."""
    from accounts.models import User
    from clusters.models import Cluster
    from deployments import passes
    from django.utils import timezone

    specs = djangoenv.random_specs(rng, QUEUED)
    cluster = Cluster.objects.get(pk=cluster_id)
    djangoenv.bulk_queue(cluster=cluster, user=User.objects.get(username="bench"), specs=specs,
                         start_at=timezone.now())
    passes.schedule_cluster(cluster_id=cluster_id)
    djangoenv.analyze()
    return total(demand for _, demand in specs)


# --- Measurements ------------------------------------------------------------------------------------------

def wait_for_idle_worker(broker_url: str, timeout: float = 20) -> None:
    import redis

    client = redis.Redis.from_url(broker_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and client.llen("celery") + client.hlen("unacked"):
        time.sleep(0.05)


def backlog(broker_url: str) -> int:
    import redis

    return redis.Redis.from_url(broker_url).llen("celery")


def resize(base_url: str, token: str, cluster_id: int, room) -> tuple[float, float, float]:
    """PATCH the small cluster to fit its whole queue: (PATCH seconds, seconds until none pending, by started_at)."""
    from django.db.models import Max
    from django.utils import timezone

    from deployments.models import Deployment

    queue = Deployment.objects.filter(cluster_id=cluster_id)
    sent_at, start = timezone.now(), time.monotonic()
    httpx.patch(
        f"{base_url}{API}/clusters/{cluster_id}/", headers={"Authorization": f"Bearer {token}"}, timeout=30,
        json={"cpu_limit": str(room.cpu), "ram_limit": str(room.ram), "gpu_limit": room.gpu},
    ).raise_for_status()
    patched = time.monotonic() - start
    deadline = start + 30
    while queue.pending().exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    drained = time.monotonic() - start
    if queue.pending().exists():
        return patched, float("inf"), float("inf")
    last_start = queue.aggregate(last=Max("started_at"))["last"]
    return patched, drained, (last_start - sent_at).total_seconds()


def submit_to_running(ids: list[int], timeout: float = 60) -> tuple[list[float], int, float]:
    """Waits until the deployments run: (started_at - created_at in ms for each, how many never ran, wait s)."""
    from deployments.models import Deployment

    deployments = Deployment.objects.filter(pk__in=ids)
    start = time.monotonic()
    while deployments.pending().exists() and time.monotonic() - start < timeout:
        time.sleep(0.1)
    waited = time.monotonic() - start
    delays = [(started - created).total_seconds() * 1e3
              for created, started in deployments.filter(started_at__isnull=False).values_list("created_at", "started_at")]
    return delays, len(ids) - len(delays), waited


# --- Phases ------------------------------------------------------------------------------------------------

class Run:
    """Holds what every phase needs and prints each phase's figures as it ends."""

    def __init__(self, args, servers: Servers, token: str, small: int, roomy: int) -> None:
        self.args, self.token, self.small, self.roomy = args, token, small, roomy
        self.base_url = f"http://{args.bind}"
        self.meter = CpuMeter(servers.group_ids(), djangoenv.DB_NAME)
        self.rng = random.Random(args.seed)
        self.figures: dict[str, float] = {}
        self.scale = 0.25 if args.quick else 1.0

    def closed(self, title: str, seconds: float, mix, clients: int | None = None) -> Results:
        clients = clients or self.args.concurrency
        return self._phase(f"{title}, closed loop, {clients} client{'s' if clients > 1 else ''}",
                           closed_loop(self.token, self.base_url, mix, clients, seconds * self.scale))

    def open(self, title: str, seconds: float, name: str, request, rate: float) -> Results:
        return self._phase(f"{title}, open loop at {rate:g}/s",
                           open_loop(self.token, self.base_url, name, request, rate, seconds * self.scale,
                                     self.args.connections))

    def _phase(self, title: str, coroutine) -> Results:
        print(f"\n{title}")
        before = self.meter.sample()
        results = asyncio.run(coroutine)
        print("\n".join("  " + line for line in results.lines()))
        print(f"  CPU: {CpuMeter.shares(before, self.meter.sample())}")
        return results

    def post(self, weight: int = 1):
        """A POST to the roomy cluster, as a (name, request, weight) entry of a closed loop's mix."""
        return (POST, post_deployment(self.roomy, self.rng), weight)

    def open_post(self, seconds: float, rate: float) -> Results:
        return self.open(f"{POST} (room for all)", seconds, POST, post_deployment(self.roomy, self.rng), rate)

    def report_running(self, results: Results, key: str) -> None:
        delays, never, waited = submit_to_running(results.created_ids)
        queue = backlog(djangoenv.ENV["CELERY_BROKER_URL"])
        if delays:
            print(f"  submit-to-running (started_at - created_at) of {len(delays):,}: p50 "
                  f"{percentile(delays, 50):.0f} ms, p90 {percentile(delays, 90):.0f} ms, "
                  f"p99 {percentile(delays, 99):.0f} ms, max {max(delays):.0f} ms; never running: {never} "
                  f"(waited {waited:.1f} s); scheduling tasks still queued: {queue:,}")
            self.figures[key] = percentile(delays, 50)
        self.figures[key + "_never"] = never


def run_phases(run: Run, room) -> None:
    args = run.args
    run.closed("warm-up (not counted)", 4, [run.post(), (CLUSTERS, get_clusters, 1)])
    wait_for_idle_worker(djangoenv.ENV["CELERY_BROKER_URL"])

    # A dashboard-like rate shows the service time; the closed loop shows the most it can serve.
    results = run.open(CLUSTERS, 6, CLUSTERS, get_clusters, args.read_rate)
    run.figures["clusters_p50_ms"] = results.p(CLUSTERS, 50)
    results = run.closed(CLUSTERS, 6, [(CLUSTERS, get_clusters, 1)])
    run.figures["clusters_max_rate"] = results.rate(CLUSTERS)
    # One client: with 10k pending a single request is already slow, and more would only queue behind it.
    results = run.closed(f"{PENDING} with {QUEUED:,} pending", 5, [(PENDING, get_pending, 1)], clients=1)
    run.figures["pending_p50_ms"] = results.p(PENDING, 50)

    print(f"\nresize: PATCH the small cluster so all {QUEUED:,} queued deployments fit")
    patched, drained, by_started_at = resize(run.base_url, run.token, run.small, room)
    print(f"  PATCH answered in {patched * 1e3:.0f} ms; none pending after {drained:.2f} s "
          f"(last started_at {by_started_at:.2f} s after the PATCH was sent)")
    run.figures["resize_s"] = drained
    # This server runs with autovacuum off; refresh the statistics as autovacuum would after 10k updates.
    djangoenv.analyze()

    results = run.closed(f"{POST} (room for all)", 15, [run.post()])
    run.figures["post_max_rate"] = results.rate(POST)
    run.report_running(results, "closed_s2r_p50_ms")

    # Below the target: the replaced service's rate, and a step up, to see where latency holds.
    for rate in (OLD_SERVICE_RATE, 2 * OLD_SERVICE_RATE):
        results = run.open_post(10, rate)
        run.figures[f"post_p99_ms@{rate}"] = results.p(POST, 99)
        run.report_running(results, f"s2r_p50_ms@{rate}")

    results = run.open_post(20, args.rate)
    run.figures["post_rate"] = results.rate(POST)
    run.figures["post_p99_ms"] = results.p(POST, 99)
    run.figures["post_errors"] = len(results.errors[POST])
    run.report_running(results, "submit_to_running_p50_ms")

    results = run.closed("mixed 8 POST : 1 GET /clusters/ : 1 GET pending (queue now short)", 10,
                         [run.post(8), (CLUSTERS, get_clusters, 1), (PENDING, get_pending, 1)])
    run.report_running(results, "mixed_s2r_p50_ms")


def summary(figures: dict[str, float], rate: int) -> None:
    t = TARGETS
    never = sum(value for key, value in figures.items() if key.endswith("_never"))
    print("\nsummary against the targets")
    rows = [
        (f"POST /deployments/ sustained at {rate}/s", f"{figures['post_rate']:.0f} req/s, "
         f"{figures['post_errors']:.0f} errors", f">= {t['post_rate']} req/s",
         figures["post_rate"] >= t["post_rate"] * 0.98 and not figures["post_errors"]),
        ("POST /deployments/ p99 at that rate", f"{figures['post_p99_ms']:.0f} ms", f"< {t['post_p99_ms']} ms",
         figures["post_p99_ms"] < t["post_p99_ms"]),
        ("every POSTed deployment running", f"{never:.0f} never ran", "0 never ran", not never),
        ("submit-to-running p50 (room)", f"{figures.get('submit_to_running_p50_ms', float('nan')):.0f} ms",
         f"< {t['submit_to_running_p50_ms']} ms",
         figures.get("submit_to_running_p50_ms", 1e9) < t["submit_to_running_p50_ms"]),
        ("GET /clusters/ p50", f"{figures['clusters_p50_ms']:.1f} ms", f"< {t['clusters_p50_ms']} ms",
         figures["clusters_p50_ms"] < t["clusters_p50_ms"]),
        (f"{QUEUED:,} running after a resize", f"{figures['resize_s']:.2f} s", f"<= {t['resize_s']} s",
         figures["resize_s"] <= t["resize_s"]),
        *(
            (f"POST /deployments/ at {rate}/s: p99, s2r p50", f"{figures[f'post_p99_ms@{rate}']:.0f} ms, "
             f"{figures.get(f's2r_p50_ms@{rate}', float('nan')):.0f} ms", "below the target rate", None)
            for rate in (OLD_SERVICE_RATE, 2 * OLD_SERVICE_RATE)
        ),
        ("POST /deployments/ max (closed loop)", f"{figures['post_max_rate']:.0f} req/s",
         f"for scale: {OLD_SERVICE_RATE}/s before", None),
        ("GET /clusters/ max (closed loop)", f"{figures['clusters_max_rate']:.0f} req/s", "no target", None),
        (f"GET pending list p50 ({QUEUED:,} pending)", f"{figures['pending_p50_ms']:.0f} ms", "no target", None),
    ]
    for name, value, target, ok in rows:
        verdict = "" if ok is None else check(ok)
        print(f"  {name:<46} {value:<22} {target:<24} {verdict}")


def _time_is_up(*_) -> None:
    raise TimeoutError("api_load: time limit reached")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", default="127.0.0.1:8800")
    parser.add_argument("--workers", type=int, default=2 * os.cpu_count() + 1, help="gunicorn workers (as bin/run)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (as bin/run)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients in the closed loops")
    parser.add_argument("--connections", type=int, default=64, help="connection pool of the open loop")
    parser.add_argument("--rate", type=int, default=TARGETS["post_rate"], help="open-loop POSTs per second")
    parser.add_argument("--read-rate", type=int, default=100, help="open-loop GET /clusters/ per second")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--quick", action="store_true", help="quarter-length phases, for a smoke test")
    parser.add_argument("--time-limit", type=int, default=300, help="seconds before everything is stopped")
    args = parser.parse_args()

    # Whatever ends this run (time limit, Ctrl-C, kill), the finally blocks stop what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, _time_is_up)
    signal.alarm(args.time_limit)

    print(f"API load: gunicorn {args.workers} workers x {args.threads} threads on {args.bind}, "
          f"one Celery worker (solo pool), database {djangoenv.DB_NAME}")
    print(f"machine busy before the run (others' work): {background_load():.0f}% of {os.cpu_count() * 100}%")
    djangoenv.setup_django(eager=False)
    env = djangoenv.apply_env(CELERY_TASK_ALWAYS_EAGER="false")
    djangoenv.flush_redis()
    try:
        with Servers(env, args.bind, args.workers, args.threads) as servers:
            token, small, roomy = bootstrap(f"http://{args.bind}")
            room = queue_backlog(small, random.Random(args.seed))
            run = Run(args, servers, token, small, roomy)
            run_phases(run, room)
    finally:
        djangoenv.flush_redis()
        djangoenv.end_sessions()
    summary(run.figures, args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
