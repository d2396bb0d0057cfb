"""A/B of the service against its ceiling (bench/ceiling): alternating rounds on the same PostgreSQL and Redis,
each figure printed with its ratio, pair by pair."""
import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("BENCH_DB", "hypervisor_ab")

import httpx  # noqa: E402
import redis  # noqa: E402

import djangoenv  # noqa: E402
from api_load import API, CLUSTERS, POST, bootstrap, get_clusters, post_deployment, submit_to_running  # noqa: E402
from loadgen import closed_loop, open_loop  # noqa: E402
from servers import ROOT, CpuMeter, Servers, background_load, machine_busy_seconds  # noqa: E402
from workload import percentile  # noqa: E402

# Redis DBs 12-15 and ports 8810/8811 are this benchmark's; api_load.py and the tests use others.
SIDES = {
    "service": {"bind": "127.0.0.1:8810", "broker": "redis://127.0.0.1:6379/12", "cache": "redis://127.0.0.1:6379/13"},
    "ceiling": {"bind": "127.0.0.1:8811", "broker": "redis://127.0.0.1:6379/14", "cache": "redis://127.0.0.1:6379/15"},
}
FIGURES = (  # key, label, unit
    ("post_rate", "POST /deployments/ sustained", "req/s"),
    ("post_p99_ms", "POST /deployments/ p99", "ms"),
    ("clusters_p50_ms", "GET /clusters/ p50", "ms"),
    ("s2r_p50_ms", "submit-to-running p50", "ms"),
    ("cpu_ms_ours", "CPU per submission, ours", "ms"),
    ("cpu_ms_machine", "CPU per submission, machine", "ms"),
)


class Side:
    """One app under test: its servers, the cluster it submits to, and a CPU meter over its processes."""

    def __init__(self, name: str, servers: Servers, cluster_id: int, token: str) -> None:
        self.name, self.servers, self.cluster_id, self.token = name, servers, cluster_id, token
        self.base_url = f"http://{SIDES[name]['bind']}"
        self.broker = SIDES[name]["broker"]
        self.meter = CpuMeter(servers.group_ids(), djangoenv.DB_NAME)


def wait_idle(broker: str, timeout: float = 30) -> None:
    """Until the side's Celery queue is empty and nothing is unacknowledged."""
    client = redis.Redis.from_url(broker)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and client.llen("celery") + client.hlen("unacked"):
        time.sleep(0.05)


def measure(side: Side, args, rng: random.Random) -> dict[str, float]:
    """One round of one side: GET /clusters/ at a dashboard's rate, submit-to-running on an idle cluster,
    then POST sustained by a closed loop with the CPU of every process over it."""
    post = post_deployment(side.cluster_id, rng)
    figures = {}
    results = asyncio.run(open_loop(side.token, side.base_url, CLUSTERS, get_clusters, args.read_rate,
                                    args.phase_seconds / 2, 16))
    figures["clusters_p50_ms"] = results.p(CLUSTERS, 50)
    results = asyncio.run(open_loop(side.token, side.base_url, POST, post, args.idle_rate, args.phase_seconds / 2, 4))
    delays, never, _ = submit_to_running(results.created_ids, timeout=15)
    figures["s2r_p50_ms"] = percentile(delays, 50) if delays else float("nan")
    figures["never_running"] = never
    wait_idle(side.broker)

    before = side.meter.sample()
    results = asyncio.run(closed_loop(side.token, side.base_url, [(POST, post, 1)], args.concurrency,
                                      args.phase_seconds))
    wait_idle(side.broker)  # the passes the burst queued belong to its cost
    after = side.meter.sample()
    posts = len(results.latencies[POST])
    figures["post_rate"] = results.rate(POST)
    figures["post_p99_ms"] = results.p(POST, 99)
    figures["post_errors"] = len(results.errors[POST])
    ours = sum(after[k] - before[k] for k in after if k not in ("machine", "wall"))
    figures["cpu_ms_ours"] = 1e3 * ours / posts
    figures["cpu_ms_machine"] = 1e3 * (after["machine"] - before["machine"]) / posts
    shares = CpuMeter.shares(before, after)
    print(f"  {side.name:<8} POST {figures['post_rate']:6.1f}/s p99 {figures['post_p99_ms']:6.1f} ms "
          f"(errors {figures['post_errors']}), GET /clusters/ p50 {figures['clusters_p50_ms']:5.2f} ms, "
          f"s2r p50 {figures['s2r_p50_ms']:5.1f} ms (never running {never}); CPU/submission "
          f"{figures['cpu_ms_ours']:.1f} ms ours, {figures['cpu_ms_machine']:.1f} ms machine; {shares}")
    return figures


def print_pairs(rounds: list[dict[str, dict[str, float]]]) -> dict[str, float]:
    """Each figure of each round with its ratio service/ceiling; returns the median ratio per figure."""
    print("\nfigure                          round   service   ceiling   ratio")
    medians = {}
    for key, label, unit in FIGURES:
        ratios = []
        for n, pair in enumerate(rounds, 1):
            a, b = pair["service"][key], pair["ceiling"][key]
            ratio = a / b if b else float("nan")
            ratios.append(ratio)
            print(f"{label + ' (' + unit + ')':<32} {n:>4} {a:9.2f} {b:9.2f} {ratio:7.2f}")
        medians[key] = statistics.median(ratios)
        medians[key + "_service"] = statistics.median(pair["service"][key] for pair in rounds)
        medians[key + "_ceiling"] = statistics.median(pair["ceiling"][key] for pair in rounds)
    return medians


def summary(medians: dict[str, float]) -> None:
    print("\nsummary (medians over rounds)")
    rows = [
        ("POST sustained, service/ceiling", medians["post_rate"], ">= 0.90", medians["post_rate"] >= 0.90),
        ("POST p99, service (ms)", medians["post_p99_ms_service"], "<= 150", medians["post_p99_ms_service"] <= 150),
        ("GET /clusters/ p50, service/ceiling", medians["clusters_p50_ms"], "<= 1.3",
         medians["clusters_p50_ms"] <= 1.3),
        ("submit-to-running p50, service (ms)", medians["s2r_p50_ms_service"], "<= 15",
         medians["s2r_p50_ms_service"] <= 15),
        ("submit-to-running p50, service/ceiling", medians["s2r_p50_ms"], "<= 1.2", medians["s2r_p50_ms"] <= 1.2),
        ("CPU per submission ours, service (ms)", medians["cpu_ms_ours_service"], "reported", None),
        ("CPU per submission ours, ceiling (ms)", medians["cpu_ms_ours_ceiling"], "reported", None),
    ]
    for name, value, target, ok in rows:
        print(f"  {name:<42} {value:8.2f}   {target:<9} {'' if ok is None else 'met' if ok else 'MISSED'}")


def _time_is_up(*_) -> None:
    raise TimeoutError("ab: time limit reached")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phase-seconds", type=float, default=10, help="POST closed loop; the others half")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers, each side")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--celery-workers", type=int, default=2, help="solo-pool Celery workers, each side")
    parser.add_argument("--concurrency", type=int, default=16, help="clients of the POST closed loop")
    parser.add_argument("--read-rate", type=float, default=100, help="GET /clusters/ per second (open loop)")
    parser.add_argument("--idle-rate", type=float, default=20, help="POSTs per second for submit-to-running")
    parser.add_argument("--service-root", type=Path, default=ROOT,
                        help="checkout whose service is measured (an export of an older commit for 'before')")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--time-limit", type=int, default=420, help="seconds before everything is stopped")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, _time_is_up)
    signal.alarm(args.time_limit)

    print(f"A/B: service ({args.service_root}) vs ceiling (bench/ceiling), each gunicorn {args.workers} x "
          f"{args.threads} threads and {args.celery_workers} Celery workers, database {djangoenv.DB_NAME}")
    print(f"machine busy before the run (others' work): {background_load():.0f}% of {os.cpu_count() * 100}%")
    djangoenv.ENV.update(CELERY_BROKER_URL=SIDES["service"]["broker"], REDIS_URL=SIDES["service"]["cache"])
    djangoenv.setup_django(eager=False)
    urls = [side[key] for side in SIDES.values() for key in ("broker", "cache")]
    for url in urls:
        redis.Redis.from_url(url).flushdb()
    base = djangoenv.apply_env(CELERY_TASK_ALWAYS_EAGER="false")
    common = dict(workers=args.workers, threads=args.threads, celery_workers=args.celery_workers)
    service_env = base | {"CELERY_BROKER_URL": SIDES["service"]["broker"], "REDIS_URL": SIDES["service"]["cache"]}
    # The ceiling's gunicorn loads its own settings (bench/ceiling/wsgi.py); its Celery workers run the
    # service's task (the scheduling pass) from this checkout, on the ceiling's own broker and cache.
    ceiling_env = base | {"CELERY_BROKER_URL": SIDES["ceiling"]["broker"], "REDIS_URL": SIDES["ceiling"]["cache"]}
    start = time.monotonic()
    try:
        with Servers(service_env, SIDES["service"]["bind"], root=args.service_root, name="ab-service",
                     **common) as service_servers, \
                Servers(ceiling_env, SIDES["ceiling"]["bind"], wsgi="bench.ceiling.wsgi:application",
                        name="ab-ceiling", **common) as ceiling_servers:
            token, _, service_cluster = bootstrap(f"http://{SIDES['service']['bind']}")
            with httpx.Client(base_url=f"http://{SIDES['service']['bind']}{API}", timeout=30,
                              headers={"Authorization": f"Bearer {token}"}) as client:
                org = client.get(f"/clusters/{service_cluster}/").raise_for_status().json()["organization"]
                ceiling_cluster = client.post("/clusters/", json={
                    "name": "roomy-ceiling", "organization": org, "cpu_limit": "999999", "ram_limit": "999999",
                    "gpu_limit": 999999}).raise_for_status().json()["id"]
            sides = {"service": Side("service", service_servers, service_cluster, token),
                     "ceiling": Side("ceiling", ceiling_servers, ceiling_cluster, token)}
            rng = random.Random(args.seed)
            for side in sides.values():  # warm-up, not counted: connections, imports, caches
                asyncio.run(closed_loop(token, side.base_url, [(POST, post_deployment(side.cluster_id, rng), 1),
                                                               (CLUSTERS, get_clusters, 1)], args.concurrency, 3))
                wait_idle(side.broker)
            rounds = []
            for n in range(args.rounds):
                # ABBA: each side goes first in every other round, so a drift in the machine's load evens out.
                order = ("service", "ceiling") if n % 2 == 0 else ("ceiling", "service")
                print(f"\nround {n + 1} ({time.monotonic() - start:.0f} s in; machine {load_now():.0f}% busy)")
                rounds.append({name: measure(sides[name], args, rng) for name in order})
    finally:
        for url in urls:
            redis.Redis.from_url(url).flushdb()
        djangoenv.end_sessions()
    summary(print_pairs(rounds))
    return 0


_last_load = [machine_busy_seconds(), time.monotonic()]


def load_now() -> float:
    """Percent of one core the machine was busy since the previous call (all processes, ours included)."""
    busy, now = machine_busy_seconds(), time.monotonic()
    share = 100 * (busy - _last_load[0]) / (now - _last_load[1])
    _last_load[:] = [busy, now]
    return share


if __name__ == "__main__":
    sys.exit(main())
