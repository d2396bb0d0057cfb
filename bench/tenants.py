"""Multi-tenant simulation of the scheduler with projects (issue 22's targets), no database.

    .venv/bin/python bench/tenants.py [--deployments 50000] [--load 0.9] [--seed 11]

The trace is `traces.make_trace`'s (bursty arrivals, a daily cycle, sweeps), its deployments dealt to four
projects whose demand peaks at different times of day (each project's share of the arrivals follows a daily
wave of its own phase), on a cluster of 256 GPUs:

    project   guaranteed (GPUs; CPU and RAM in proportion)   limit      weight
    vision    96                                              none       3
    speech    64                                              192 GPUs   2
    research  32                                              128 GPUs   1
    adhoc     0                                               96 GPUs    1

`scheduling.projects.plan_with_quotas` runs a pass after every second with an arrival or a completion, and
again while a pass preempts (as the service's reconcile would). A preempted deployment restarts its whole run.
Printed, against the targets:
- guarantee latency: for each deployment whose project, when it arrived, held plus queued no more than its
  guarantee with it: arrival to start (p99 must be 0 s: the same pass);
- fairness: over the saturated time (two or more projects wait for resources beyond their guarantees), the
  weighted Jain index of what the waiting projects borrow (GPUs beyond their guarantee over their weight),
  time-weighted;
- preemption cycles: a deployment preempting one that preempted it in the last 10 minutes;
- utilisation (useful GPU-seconds over capacity x horizon) against the planner with every project merged into
  one (no quotas) on the same trace.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scheduling.planner import Pending, Running  # noqa: E402
from scheduling.projects import RESOURCES, Quota, plan_with_quotas  # noqa: E402
from scheduling.resources import Resources  # noqa: E402
from traces import CPU_PER_GPU, DAY, RAM_PER_GPU, Job, make_trace  # noqa: E402

GPUS = 256
PROJECTS = {1: ("vision", 96, None, 3), 2: ("speech", 64, 192, 2), 3: ("research", 32, 128, 1), 4: ("adhoc", 0, 96, 1)}
CYCLE_WINDOW = 600
TARGETS = {"guarantee_p99": 0, "jain": 0.99, "cycles": 0, "utilisation_ratio": 0.97}


def node_share(gpus: int) -> Resources:
    return Resources(gpus * CPU_PER_GPU, gpus * RAM_PER_GPU, gpus)


def quotas() -> dict[int, Quota]:
    return {pk: Quota(node_share(guaranteed), node_share(limit) if limit is not None else None, weight)
            for pk, (_, guaranteed, limit, weight) in PROJECTS.items()}


def deal(jobs: tuple[Job, ...], seed: int) -> dict[int, int]:
    """Job id -> project: each project's share of the arrivals rises and falls with a daily wave of its own."""
    rng = random.Random(seed)
    owners = {}
    for job in jobs:
        phase = (job.arrival / DAY) % 1
        weights = [1.2 + math.sin(2 * math.pi * (phase + k / len(PROJECTS))) for k in range(len(PROJECTS))]
        owners[job.id] = rng.choices(list(PROJECTS), weights)[0]
    return owners


def simulate(trace, owners: dict[int, int], quota_of: dict[int, Quota]) -> dict:
    jobs = {job.id: job for job in trace.jobs}
    capacity = Resources(trace.cpu, trace.ram, trace.gpu)
    arrivals = sorted(trace.jobs, key=lambda j: (j.arrival, j.id))
    running: dict[int, tuple[Running, int]] = {}  # id -> (as the planner sees it, when it ends)
    pending: dict[int, Pending] = {}
    preemptions: dict[int, int] = {}
    usage = {pk: Resources.zero() for pk in quota_of} | {0: Resources.zero()}
    asked_within: dict[int, int] = {}  # id -> arrival, for those asking within their project's guarantee
    guarantee_waits, last_preempted_by, cycles = [], {}, 0
    useful = lost = 0.0
    fair_weighted = saturated_time = 0.0
    started_at: dict[int, int] = {}
    i, horizon = 0, trace.horizon
    fairness_since, fairness_value = None, None
    while True:
        next_end = min((end for _, end in running.values()), default=horizon + 1)
        next_arrival = arrivals[i].arrival if i < len(arrivals) else horizon + 1
        now = min(next_end, next_arrival)
        if fairness_since is not None:
            span = min(now, horizon) - fairness_since
            if fairness_value is not None and span > 0:
                saturated_time += span
                fair_weighted += fairness_value * span
        if now > horizon:
            break
        for pk in [pk for pk, (_, end) in running.items() if end == now]:
            r, _ = running.pop(pk)
            usage[r.project] -= r.demand
            useful += r.demand.gpu * (now - started_at[pk])
        while i < len(arrivals) and arrivals[i].arrival == now:
            job = arrivals[i]
            i += 1
            project = owners[job.id]
            demand = Resources(job.cpu, job.ram, job.gpu)
            queued = sum((p.demand for p in pending.values() if p.project == project), Resources.zero())
            if (usage[project] + queued + demand).fits_in(quota_of.get(project, Quota()).guaranteed):
                asked_within[job.id] = now
            pending[job.id] = Pending(job.id, job.priority, demand, job.arrival, project=project)
        while True:
            result = plan_with_quotas(capacity, [r for r, _ in running.values()], list(pending.values()), quota_of)
            for victim, by in result.plan.preemptions:
                r, _ = running.pop(victim)
                usage[r.project] -= r.demand
                lost += r.demand.gpu * (now - started_at[victim])
                preemptions[victim] = preemptions.get(victim, 0) + 1
                if last_preempted_by.get(by, (None, -CYCLE_WINDOW - 1))[0] == victim and \
                        now - last_preempted_by[by][1] <= CYCLE_WINDOW:
                    cycles += 1
                last_preempted_by[victim] = (by, now)
                job = jobs[victim]
                pending[victim] = Pending(victim, job.priority, r.demand, job.arrival, preemptions=preemptions[victim],
                                          project=r.project)
            for pk in result.plan.starts:
                p = pending.pop(pk)
                running[pk] = (Running(pk, p.priority, p.demand, now, p.preemptions, p.project),
                               now + jobs[pk].duration)
                usage[p.project] += p.demand
                started_at[pk] = now
                if pk in asked_within:
                    guarantee_waits.append(now - asked_within.pop(pk))
            if not result.plan.preemptions:
                break
        fairness_since, fairness_value = now, weighted_jain(result.waiting, pending, usage, quota_of)
    useful += sum(r.demand.gpu * (horizon - started_at[pk]) for pk, (r, _) in running.items())
    guarantee_waits += [horizon - at for at in asked_within.values()]  # still waiting at the end
    return {"utilisation": useful / (GPUS * horizon), "lost": lost / max(useful + lost, 1),
            "guarantee_waits": sorted(guarantee_waits), "cycles": cycles,
            "jain": fair_weighted / saturated_time if saturated_time else None,
            "saturated_share": saturated_time / horizon, "preemptions_max": max(preemptions.values(), default=0)}


def weighted_jain(waiting: dict[int, str], pending: dict[int, Pending], usage: dict[int, Resources],
                  quota_of: dict[int, Quota]) -> float | None:
    """Among projects waiting for resources beyond their guarantee: Jain's index of (borrowed GPUs / weight);
    None when fewer than two such projects wait (the cluster is not contended between them)."""
    contending = {pending[pk].project for pk, why in waiting.items() if why == RESOURCES and pk in pending}
    contending = {p for p in contending if p in quota_of}
    if len(contending) < 2:
        return None
    shares = [max(usage[p].gpu - quota_of[p].guaranteed.gpu, 0) / quota_of[p].weight for p in contending]
    total = sum(shares)
    if total == 0:
        return 1.0
    return total * total / (len(shares) * sum(s * s for s in shares))


def percentile(ordered, q: float) -> float:
    rank = max(1, round(q / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=50_000)
    parser.add_argument("--load", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    trace = make_trace(args.deployments, seed=args.seed, gpus=GPUS, load=args.load)
    owners = deal(trace.jobs, args.seed)
    print(f"{len(trace.jobs):,} deployments ({2 * len(trace.jobs):,} events) over {trace.horizon / DAY:.1f} days "
          f"on {GPUS} GPUs, load {args.load}, seed {args.seed}; projects: "
          + ", ".join(f"{name} g{g} l{limit} w{w}" for name, g, limit, w in PROJECTS.values()))
    began = time.perf_counter()
    shared = simulate(trace, owners, quotas())
    seconds = time.perf_counter() - began
    merged = simulate(trace, {pk: 0 for pk in owners}, {})
    waits = shared["guarantee_waits"]
    ratio = shared["utilisation"] / merged["utilisation"]
    rows = [
        ("within-guarantee arrival -> running, p99", f"{percentile(waits, 99):g} s (max {waits[-1]:g} s, "
         f"{len(waits):,} asked)", "0 s (one pass)", percentile(waits, 99) <= TARGETS["guarantee_p99"]),
        ("weighted Jain index of borrowing, saturated time",
         "n/a" if shared["jain"] is None else f"{shared['jain']:.3f} ({shared['saturated_share']:.0%} of the time)",
         f">= {TARGETS['jain']}", shared["jain"] is not None and shared["jain"] >= TARGETS["jain"]),
        ("preemption cycles (10 min)", f"{shared['cycles']}", "0", shared["cycles"] <= TARGETS["cycles"]),
        ("utilisation, projects / one merged project", f"{shared['utilisation']:.3f} / {merged['utilisation']:.3f} "
         f"= {ratio:.3f}", f">= {TARGETS['utilisation_ratio']}", ratio >= TARGETS["utilisation_ratio"]),
        ("work lost to preemption, projects / merged", f"{shared['lost']:.1%} / {merged['lost']:.1%}", "—", None),
        ("most preemptions of one deployment", f"{shared['preemptions_max']}", "—", None),
        ("simulation time with projects", f"{seconds:.0f} s", "—", None),
    ]
    for figure, value, target, ok in rows:
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        print(f"{figure:<48} {value:<44} {target:<16} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
