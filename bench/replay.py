"""Replay a small trace through the real service, time-compressed, and compare it with the simulator.

    .venv/bin/python bench/replay.py [--jobs 220] [--gpus 32] [--seed 1] [--load 0.9] [--seconds 120]
        [--reserve-after 600]

The trace (bench/traces.py) is the simulator's. The service runs as in production: gunicorn and a Celery
worker on PostgreSQL (database `hypervisor_replay`) and a Redis of the replay's own (port 6391). A client
submits each deployment through the API at its arrival time, scaled so that the trace's horizon lasts
`--seconds`, and plays the workloads: it completes each running deployment once it has run its duration
since its latest start (a preempted one starts over, as in the simulator). The cluster's
`reserve_after_seconds` is the trace's bound, scaled too. Afterwards the deployments' events give the same
figures as bench/simulate.py prints, in trace seconds, beside the simulator's for the same policy.

What cannot agree exactly: the service needs real time to react (a submission, a pass, a completion each
take milliseconds, which the scaling turns into trace minutes), and it plans on every change where the
simulator plans once per trace second.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_DB", "hypervisor_replay")

import djangoenv  # noqa: E402
from servers import Servers  # noqa: E402
from simulate import PlannerPolicy, Runs, summarize, simulate, table, HEADER, row  # noqa: E402
from traces import Trace, describe, make_trace  # noqa: E402

REDIS_PORT = 6391
djangoenv.ENV.update(CELERY_BROKER_URL=f"redis://127.0.0.1:{REDIS_PORT}/0", REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}/1")
BIND = "127.0.0.1:8820"
POLL_SECONDS = 0.02


class PrivateRedis:
    """A Redis of the replay's own: its broker queue and scheduling markers meet nobody else's."""

    def __enter__(self) -> PrivateRedis:
        self.process = subprocess.Popen(["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True).stdout != b"PONG\n":
            if time.monotonic() > deadline:
                raise RuntimeError("the replay's Redis did not start")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def prepare(trace: Trace, reserve_after: float | None) -> tuple[int, str]:
    """A fresh database with an owner and the trace's cluster: (cluster id, the owner's access token)."""
    from clusters.models import Cluster
    from rest_framework_simplejwt.tokens import RefreshToken

    user, organization = djangoenv.make_owner("replay")
    cluster = Cluster.objects.create(organization=organization, name="trace", cpu_limit=trace.cpu,
                                     ram_limit=trace.ram, gpu_limit=trace.gpu,
                                     reserve_after_seconds=None if reserve_after is None else round(reserve_after))
    return cluster.pk, str(RefreshToken.for_user(user).access_token)


class Player:
    """Submits the trace's deployments on time and completes each once it has run its (scaled) duration."""

    def __init__(self, trace: Trace, cluster: int, token: str, scale: float) -> None:
        self.trace, self.cluster, self.scale = trace, cluster, scale
        self.headers = {"Authorization": f"Bearer {token}"}
        self.ids: dict[int, int] = {}  # deployment id -> job id
        self.late: list[float] = []  # how late each submission went out, seconds of wall time
        self.errors: list[str] = []
        self.done = threading.Event()

    def play(self) -> float:
        """Runs the trace; returns the wall-clock time (epoch seconds) of its start."""
        self.t0 = time.time() + 1.0
        submitter = threading.Thread(target=self.submit_all, name="submitter")
        submitter.start()
        try:
            self.complete_until(self.t0 + self.trace.horizon * self.scale)
        finally:
            self.done.set()
            submitter.join()
        return self.t0

    def submit_all(self) -> None:
        with httpx.Client(base_url=f"http://{BIND}/api/v1", headers=self.headers, timeout=30) as client:
            for job in self.trace.jobs:
                due = self.t0 + job.arrival * self.scale
                if self.done.wait(max(0.0, due - time.time())):
                    return
                self.late.append(time.time() - due)
                response = client.post("/deployments/", json={
                    "name": f"job-{job.id}", "cluster": self.cluster, "docker_image": "trainer:1",
                    "priority": job.priority, "cpu_required": str(job.cpu), "ram_required": str(job.ram),
                    "gpu_required": job.gpu})
                if response.status_code != 201:
                    self.errors.append(f"POST job {job.id}: {response.status_code} {response.text[:200]}")
                    continue
                self.ids[response.json()["id"]] = job.id

    def complete_until(self, end: float) -> None:
        jobs = {job.id: job for job in self.trace.jobs}
        with httpx.Client(base_url=f"http://{BIND}/api/v1", headers=self.headers, timeout=30) as client:
            while time.time() < end:
                url = f"/deployments/?cluster={self.cluster}&status=running"
                while url:
                    page = client.get(url).json()
                    for deployment in page["results"]:
                        job = jobs.get(self.ids.get(deployment["id"], 0))
                        started = datetime.fromisoformat(deployment["started_at"]).timestamp()
                        if job is not None and time.time() >= started + job.duration * self.scale:
                            answer = client.post(f"/deployments/{deployment['id']}/complete/")
                            if answer.status_code not in (200, 409):  # 409: preempted meanwhile
                                self.errors.append(f"complete {deployment['id']}: {answer.status_code}")
                    url = page["next"]
                time.sleep(POLL_SECONDS)


def runs_from_events(trace: Trace, ids: dict[int, int], t0: float, scale: float) -> Runs:
    """What the service did, in trace seconds: each deployment's runs and whether each ended in completion."""
    from deployments.models import DeploymentEvent, EventKind

    runs = Runs(trace)
    events = (DeploymentEvent.objects.filter(deployment_id__in=ids)
              .filter(kind__in=(EventKind.SCHEDULED, EventKind.PREEMPTED, EventKind.COMPLETED))
              .order_by("at", "id").values_list("deployment_id", "kind", "at"))
    for pk, kind, at in events:
        when = (at.timestamp() - t0) / scale
        if when > trace.horizon:
            break
        job = ids[pk]
        if kind == EventKind.SCHEDULED:
            runs.start(job, when)
        elif kind == EventKind.PREEMPTED:
            runs.preempt(job, when)
        else:
            runs.complete(job, when)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=220)
    parser.add_argument("--gpus", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--load", type=float, default=0.9, help="work offered over GPU capacity (as simulate.py's)")
    parser.add_argument("--seconds", type=float, default=120, help="wall-clock length of the replay")
    parser.add_argument("--reserve-after", type=int, default=600, help="trace seconds; 0 or less: never")
    args = parser.parse_args(argv)

    trace = make_trace(args.jobs, seed=args.seed, gpus=args.gpus, load=args.load)
    scale = args.seconds / trace.horizon
    reserve_after = args.reserve_after if args.reserve_after > 0 else None
    print(f"trace: {describe(trace)}")
    print(f"replayed in {args.seconds:.0f} s: 1 s of the replay is {1 / scale:,.0f} s of the trace; "
          f"reserve_after_seconds {reserve_after} in the trace, "
          f"{'never' if reserve_after is None else f'{reserve_after * scale:.2f} s'} in the replay")

    env = djangoenv.apply_env(CELERY_TASK_ALWAYS_EAGER="false")
    with PrivateRedis():
        djangoenv.setup_django(eager=False)
        cluster, token = prepare(trace, None if reserve_after is None else reserve_after * scale)
        with Servers(env, BIND, workers=2, threads=4):
            player = Player(trace, cluster, token, scale)
            t0 = player.play()
        replayed = summarize(trace, "service (replayed)", runs_from_events(trace, player.ids, t0, scale))
        djangoenv.end_sessions()

    simulated = simulate(trace, PlannerPolicy(trace, reserve_after))
    print(table([HEADER, row(simulated), row(replayed)]))
    print(f"agreement: utilisation {simulated.utilisation:.3f} and {replayed.utilisation:.3f} (within 0.02: "
          f"{abs(simulated.utilisation - replayed.utilisation) <= 0.02}), completed {simulated.completed} and "
          f"{replayed.completed} (equal: {simulated.completed == replayed.completed})")
    for job in trace.jobs:
        ours, theirs = simulated.completed_at[job.id], replayed.completed_at[job.id]
        if (ours < 0) != (theirs < 0):
            print(f"completed by one only: job {job.id} ({job.gpu} GPU, priority {job.priority}, {job.duration} s), "
                  f"simulated {'never' if ours < 0 else f'at {ours:.0f}'}, replayed "
                  f"{'never' if theirs < 0 else f'at {theirs:.0f}'}, horizon {trace.horizon}; first starts "
                  f"{simulated.first_starts[job.id]:.0f} and {replayed.first_starts[job.id]:.0f}")
    late = sorted(player.late)
    print(f"submissions: {len(player.ids)} of {len(trace.jobs)}; late by p50 {late[len(late) // 2] * 1000:.0f} ms, "
          f"max {late[-1] * 1000:.0f} ms (wall); errors: {len(player.errors)}")
    for error in player.errors[:10]:
        print("  ", error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
