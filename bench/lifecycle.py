"""Benchmark of the workload lifecycle on a real runtime (issue 18's targets).

Starts the world of bench/agent.py (gunicorn with eager scheduling, one Celery worker with beat taking its
tasks from the broker, a private Podman service, one bin/agent), with RESTART_BACKOFF_SECONDS=0, then
measures:

1. restart latency: a container exits and the next one of its deployment runs, over 50 restarts in place.
   Each container prints the host's uptime when it starts and when it is about to exit (/proc/uptime is
   the host's in a container), so both ends are read on one clock, from the deployment's logs;
2. time-limit enforcement on a ledger-only cluster: 50 deployments with a 2 s limit, the limit to `failed`
   (finished_at - started_at - limit);
3. the same on the agent's cluster, and the limit to the container gone (the run's `stopped` report).
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime

from agent import Bench, drive, wait_for
from workload import percentile

RESTARTS = 50
LIMIT = 2
GRACE = 1
TARGETS = {"restart_p50": 0.5, "restart_p99": 1.0, "limit_p99": 2.0, "gone_p99": GRACE + 2.0}


def restart_latency(bench: Bench, restarts: int) -> None:
    script = "cat /proc/uptime; sleep 0.2; cat /proc/uptime; exit 1"
    pk = bench.http.post("/deployments/", json={
        "cluster": bench.cluster, "name": "flaky", "docker_image": "localhost/busybox:test",
        "command": ["sh", "-c", script], "cpu_required": "0.1", "ram_required": "0.1", "stop_grace_seconds": 1,
        "restart_policy": "on_failure", "max_restarts": restarts}).raise_for_status().json()["id"]
    wait_for(lambda: bench.deployment(pk)["status"] == "failed", 60 + restarts * 5, "the restarts to be used up",
             interval=0.2)
    lines = bench.http.get(f"/deployments/{pk}/logs/?tail=1000").raise_for_status().json()["lines"]
    uptimes = [float(line.split()[0]) for line in lines]
    gaps = [uptimes[i + 1] - uptimes[i] for i in range(1, len(uptimes) - 1, 2)]  # an exit to the next start
    body = bench.deployment(pk)
    print(f"restarts: {body['restart_count']} ({body['end_reason']}), {len(gaps)} gaps measured")
    bench.row("restart latency p50 (exit -> next container running)", f"{percentile(gaps, 50):.2f} s",
              f"<= {TARGETS['restart_p50']} s", percentile(gaps, 50) <= TARGETS["restart_p50"])
    bench.row("restart latency p99", f"{percentile(gaps, 99):.2f} s", f"<= {TARGETS['restart_p99']} s",
              percentile(gaps, 99) <= TARGETS["restart_p99"])


def seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def time_limits(bench: Bench, cluster: int, count: int, label: str, with_agent: bool) -> None:
    script = "trap 'exit 143' TERM; while true; do sleep 0.1; done"
    ids = [bench.http.post("/deployments/", json={
        "cluster": cluster, "name": f"limited-{i}", "docker_image": "localhost/busybox:test",
        "command": ["sh", "-c", script], "cpu_required": "0.1", "ram_required": "0.05", "stop_grace_seconds": GRACE,
        "time_limit_seconds": LIMIT}).raise_for_status().json()["id"] for i in range(count)]

    def done() -> bool:
        bodies = [bench.deployment(pk) for pk in ids]
        gone = all((b["runtime"] or {}).get("state") in ("stopped", "exited") for b in bodies) if with_agent else True
        return all(b["status"] == "failed" for b in bodies) and gone

    wait_for(done, 60, f"{label}: every deployment to reach its limit", interval=0.5)
    bodies = [bench.deployment(pk) for pk in ids]
    assert all(b["end_reason"] == "time_limit" for b in bodies), [b["end_reason"] for b in bodies]
    late = [seconds(b["finished_at"]) - seconds(b["started_at"]) - LIMIT for b in bodies]
    bench.row(f"{label}: limit -> failed, p99", f"{percentile(late, 99):.2f} s (max {max(late):.2f})",
              f"<= {TARGETS['limit_p99']} s", percentile(late, 99) <= TARGETS["limit_p99"])
    if with_agent:
        gone = [seconds(b["runtime"]["updated_at"]) - seconds(b["started_at"]) - LIMIT for b in bodies]
        bench.row(f"{label}: limit -> container gone, p99", f"{percentile(gone, 99):.2f} s",
                  f"<= grace + 2 = {TARGETS['gone_p99']} s", percentile(gone, 99) <= TARGETS["gone_p99"])


def run(bench: Bench) -> None:
    from tests.runtime import start_podman_runtime

    os.environ.update(RESTART_BACKOFF_SECONDS="0", TIME_LIMIT_SWEEP_SECONDS="1")
    bench.start_services(5)
    # The worker takes what beat and the time limits send through the broker, as in production: an eager
    # task run by the beat process it forks would share the worker's database connection.
    bench.procs.stop("celery")
    bench.env["CELERY_TASK_ALWAYS_EAGER"] = "false"
    bench.start_celery(5)
    bench.runtime = start_podman_runtime()
    bench.bootstrap()
    bench.start_agent()
    wait_for(lambda: bench.agent_info()["status"] == "online", 60, "the agent to come online", interval=0.1)
    organization = bench.http.get(f"/clusters/{bench.cluster}/").json()["organization"]
    ledger = bench.http.post("/clusters/", json={"name": "ledger", "organization": organization, "cpu_limit": "8",
                                                 "ram_limit": "8", "gpu_limit": 0}).raise_for_status().json()["id"]
    restart_latency(bench, bench.args.restarts)
    time_limits(bench, ledger, bench.args.count, "ledger-only", with_agent=False)
    time_limits(bench, bench.cluster, bench.args.count, "agent", with_agent=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="127.0.0.1:8800")
    parser.add_argument("--restarts", type=int, default=RESTARTS)
    parser.add_argument("--count", type=int, default=50, help="deployments with a time limit, per cluster kind")
    parser.add_argument("--time-limit", type=int, default=400, help="seconds before everything is stopped")
    args = parser.parse_args()
    args.interval = None
    return drive(args, run, f"lifecycle benchmark: the world of bench/agent.py on {args.bind}")


if __name__ == "__main__":
    sys.exit(main())
