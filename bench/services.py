"""Benchmark of services on a real runtime (issue 20's targets).

Starts the world of bench/agent.py (gunicorn, one Celery worker, a private Podman service, one bin/agent),
then, with N busybox httpd services (default 50):

1. container running -> its endpoint in the API: the runtime's StartedAt of each container against the
   first read that shows its `runtime.endpoints` (read every 50 ms), for services submitted one at a time
   (default 20), then for N submitted at once;
2. a readiness change -> its `ready` / `not_ready` event: the health file of each service is removed (then
   put back) inside its container, and the event's time is compared with that moment (one clock: this host);
3. the agent's CPU per minute and the submit -> started latency of other work, with the N services running
   without a check, then with an http check every second each.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

from agent import Bench, Meter, drive, inspect, parse_time, wait_for, wait_started
from workload import percentile

PERIOD, TIMEOUT = 1, 1
HTTPD = "mkdir -p /www && echo ok > /www/index.html && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www"
CHECK = {"http": {"port": 8080, "path": "/healthz"}, "period_seconds": PERIOD, "timeout_seconds": TIMEOUT,
         "failure_threshold": 1}
TARGETS = {"endpoint_p99": 1.0, "readiness_p99": PERIOD + TIMEOUT + 1.0}


def submit_services(bench: Bench, count: int, check: dict | None) -> list[int]:
    ids = []
    for i in range(count):
        ids.append(bench.http.post("/deployments/", json={
            "cluster": bench.cluster, "name": f"web-{i}", "docker_image": "localhost/busybox:test",
            "command": ["sh", "-c", HTTPD], "cpu_required": "0.1", "ram_required": "0.1", "stop_grace_seconds": 1,
            "ports": [8080], "health_check": check}).raise_for_status().json()["id"])
    return ids


def running_services(bench: Bench) -> dict[int, dict]:
    found, url = {}, f"/deployments/?status=running&cluster={bench.cluster}"
    while url:
        page = bench.http.get(url).raise_for_status().json()
        found.update((d["id"], d) for d in page["results"])
        url = page["next"]
    return found


def one_at_a_time(bench: Bench, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        [pk] = submit_services(bench, 1, None)
        latencies += endpoint_latency(bench, [pk])
        cancel_all(bench, [pk])
    return latencies


def endpoint_latency(bench: Bench, ids: list[int]) -> list[float]:
    """Seconds from each container running to the API showing its endpoint."""
    seen_at: dict[int, float] = {}
    deadline = time.monotonic() + 120
    while len(seen_at) < len(ids) and time.monotonic() < deadline:
        now = time.time()
        for pk, body in running_services(bench).items():
            if pk in ids and pk not in seen_at and (body["runtime"] or {}).get("endpoints"):
                seen_at[pk] = now
        time.sleep(0.05)
    latencies = []
    for pk in ids:
        details = wait_started(bench.runtime, pk, timeout=30)
        latencies.append(seen_at[pk] - parse_time(details["State"]["StartedAt"]))
    return latencies


def event_time(bench: Bench, pk: int, kind: str, after: float) -> float | None:
    events = bench.http.get(f"/deployments/{pk}/events/").raise_for_status().json()["results"]
    times = [datetime.fromisoformat(e["at"]).timestamp() for e in events if e["kind"] == kind]
    return next((at for at in times if at >= after - 0.5), None)


def readiness_latency(bench: Bench, ids: list[int], command: str, kind: str) -> list[float]:
    """Runs `command` in each service's container, then the seconds until its `kind` event."""
    changed = {}
    for pk in ids:
        [summary] = [c for c in bench.runtime.client.api.containers(
            filters={"label": f"hypervisor.deployment={pk}"})]
        bench.runtime.client.api.exec_start(bench.runtime.client.api.exec_create(summary["Id"], ["sh", "-c", command]))
        changed[pk] = time.time()
    found: dict[int, float] = {}
    wait_for(lambda: all(found.setdefault(pk, event_time(bench, pk, kind, changed[pk])) for pk in ids
                         if found.get(pk) is None) and len([v for v in found.values() if v]) == len(ids),
             60, f"every {kind} event", interval=0.25)
    return [found[pk] - changed[pk] for pk in ids]


def agent_cost(bench: Bench, label: str, seconds: float, jobs: int) -> tuple[float, list[float]]:
    """The agent's CPU per minute over a window with the services up, and the submit -> started latency of
    short jobs meanwhile."""
    latencies = []
    with Meter(bench) as meter:
        end = time.monotonic() + seconds
        for i in range(jobs):
            sent = time.time()
            pk = bench.submit("sleep 0.2", name=f"job-{label}-{i}")
            details = wait_started(bench.runtime, pk, timeout=20)
            latencies.append(parse_time(details["State"]["StartedAt"]) - sent)
            wait_for(lambda cid=details["Id"]: (inspect(bench.runtime, cid) or {}).get("State", {}).get(
                "Status") != "running", 10, "the job to exit", interval=0.05)
        time.sleep(max(end - time.monotonic(), 0))
    print(f"    {label}: {meter.describe()}")
    return meter.per_minute()["agent"], latencies


def cancel_all(bench: Bench, ids: list[int]) -> None:
    for pk in ids:
        bench.cancel(pk)
    bench.wait_idle(timeout=120)


def run(bench: Bench) -> None:
    from tests.runtime import start_podman_runtime

    args = bench.args
    bench.start_services(5)
    bench.runtime = start_podman_runtime()
    bench.bootstrap()
    bench.start_agent()
    wait_for(lambda: bench.agent_info()["status"] == "online", 60, "the agent to come online", interval=0.1)

    print(f"\n[1] running -> endpoint in the API: {args.sequential} services one at a time, then {args.services} "
          "at once")
    sequential = one_at_a_time(bench, args.sequential)
    plain = submit_services(bench, args.services, None)
    for label, latencies in (("one at a time", sequential), ("at once", endpoint_latency(bench, plain))):
        p99 = percentile(latencies, 99)
        bench.row(f"running -> endpoint in the API ({label}), p50 / p99",
                  f"{percentile(latencies, 50):.2f} / {p99:.2f} s", f"p99 <= {TARGETS['endpoint_p99']:g} s",
                  p99 <= TARGETS["endpoint_p99"])
    print(f"\n[3a] the agent with {args.services} services and no checks, {args.window:.0f} s")
    plain_cpu, plain_starts = agent_cost(bench, "no checks", args.window, args.jobs)
    cancel_all(bench, plain)

    print(f"\n[2] {args.services} services with an http check every {PERIOD} s: readiness -> event")
    checked = submit_services(bench, args.services, CHECK)
    wait_for(lambda: all((d["runtime"] or {}).get("ready") for pk, d in running_services(bench).items()
                         if pk in checked) and len(running_services(bench)) >= len(checked),
             120, "every service to be ready", interval=0.5)
    print(f"\n[3b] the agent with {args.services} services checked every {PERIOD} s, {args.window:.0f} s")
    checked_cpu, checked_starts = agent_cost(bench, "checks", args.window, args.jobs)
    down = readiness_latency(bench, checked, "rm /www/healthz", "not_ready")
    up = readiness_latency(bench, checked, "echo ok > /www/healthz", "ready")
    for label, values in (("not_ready", down), ("ready", up)):
        p99 = percentile(values, 99)
        bench.row(f"file changed -> {label} event, p99", f"{p99:.2f} s (p50 {percentile(values, 50):.2f})",
                  f"<= period + timeout + 1 = {TARGETS['readiness_p99']:g} s", p99 <= TARGETS["readiness_p99"])
    bench.row(f"agent CPU with {args.services} services, no checks", f"{plain_cpu:.2f} s/min", "—", None)
    bench.row(f"agent CPU with {args.services} services, http checks every {PERIOD} s", f"{checked_cpu:.2f} s/min",
              "—", None)
    for label, values in (("no checks", plain_starts), ("checks", checked_starts)):
        bench.row(f"submit -> started meanwhile ({label}), p50 / max",
                  f"{percentile(values, 50):.2f} / {max(values):.2f} s", "—", None)
    cancel_all(bench, checked)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="127.0.0.1:8800")
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--sequential", type=int, default=20, help="services started one at a time in part 1")
    parser.add_argument("--window", type=float, default=60, help="seconds of each CPU window")
    parser.add_argument("--jobs", type=int, default=10, help="short jobs submitted during each window")
    parser.add_argument("--time-limit", type=int, default=600, help="seconds before everything is stopped")
    args = parser.parse_args()
    args.interval = None
    return drive(args, run, f"services benchmark: the world of bench/agent.py on {args.bind}")


if __name__ == "__main__":
    sys.exit(main())
