"""Trace-driven simulation of scheduling policies: the pure planner in a discrete-event loop, no database.

    .venv/bin/python bench/simulate.py [--sizes 1000,10000,100000] [--seed N] [--reserve-after S]

Each policy sees the same trace (bench/traces.py) on one cluster. Events are arrivals and completions; all
events at one second are applied, then the policy decides what starts and what is preempted. A preempted
deployment goes back to pending with its `created_at` and loses the work of that run since its latest
checkpoint: one that does not checkpoint restarts its whole duration (`traces.make_habits` says which do, and
the time limits users set). The simulation stops at the trace's horizon; deployments still waiting then count
with the wait they had so far (a lower bound on theirs).
"""
from __future__ import annotations

import argparse
import heapq
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scheduling.planner import PREEMPTION_CAP, Pending, Running, plan  # noqa: E402
from scheduling.resources import Resources  # noqa: E402
from traces import (CHECKPOINT_MINUTES, CHECKPOINT_SHARE, DAY, HIGH, LIMIT_SHARE, LOW, NORMAL,  # noqa: E402
                    Habits, Job, Trace, describe, make_habits, make_trace)

LEVELS = (LOW, NORMAL, HIGH)
LARGE_GPUS = 8
RESERVE_AFTER = 600  # the clusters' default reserve_after_seconds

Change = tuple[bool, Job]  # (True, job): started; (False, job): preempted


class PlannerPolicy:
    """This service's scheduler: `scheduling.planner.plan` on the cluster's whole picture.

    A deployment is `due` once it has waited `reserve_after` seconds since it was created (None: never, i.e.
    the planner without reservations). A pass runs only when something may start: an arrival that fits in
    what is free plus what strictly lower priorities hold, or a completion when some pending deployment's
    GPUs would. A settled cluster stays settled otherwise (a reservation coming due only holds back, and a
    protection only takes victims away), so the passes skipped are exactly those that would plan nothing. A
    pass with preemptions is followed by another at the same second until one preempts nothing, as the
    service's reconcile sweep would (a victim may in turn preempt what started behind its preemptor).

    Levers under measurement, each a protection the planner is given as a deployment it may not evict (as if
    at the cap): `protect_ending` seconds, a running deployment whose time limit (`habits`) ends within that
    long; `protect_reserved`, one that started on its reservation, for the rest of that run.
    """

    def __init__(self, trace: Trace, reserve_after: int | None, name: str = "", *, skip_idle: bool = True,
                 habits: Habits | None = None, protect_ending: int | None = None,
                 protect_reserved: bool = False) -> None:
        self.skip_idle = skip_idle  # False: a pass after every event (to check that skipping changes nothing)
        self.name = name or ("planner" if reserve_after is not None else "planner, no reservations")
        self.limits = habits.time_limit if habits is not None else None
        self.protect_ending = protect_ending if self.limits is not None else None
        self.protect_reserved = protect_reserved
        self.ending: list[tuple[int, int, int]] = []  # heap of (when its protection begins, id, its start)
        self.reserve_after = reserve_after
        self.capacity = Resources(trace.cpu, trace.ram, trace.gpu)
        self.free = [trace.cpu, trace.ram, trace.gpu]
        self.jobs = {job.id: job for job in trace.jobs}
        self.running: dict[int, Running] = {}
        self.pending: dict[int, Pending] = {}
        self.held = {level: [0, 0, 0] for level in LEVELS}  # what running deployments hold, per priority
        self.pending_gpus: dict[int, dict[int, int]] = {level: {} for level in LEVELS}  # GPUs asked -> count
        self.due_at: list[tuple[int, int]] = []  # heap of (time it comes due, id)
        self.dirty = False
        self.freed = False
        self.passes = 0
        self.queue_total = 0  # sum over passes of the pending queue's length
        self.queue_max = 0
        self.reservations = 0  # passes that returned a reservation
        self.reserved_since: dict[int, int] = {}  # id -> when it first held the reservation, until it starts
        self.preempted: dict[int, int] = {}  # id -> how often it was preempted (the planner's cap reads it)
        self.longest_held = 0  # longest time from first holding the reservation to starting

    def _lower(self, priority: int) -> tuple[int, int, int]:
        cpu = ram = gpu = 0
        for level in LEVELS:
            if level < priority:
                held = self.held[level]
                cpu, ram, gpu = cpu + held[0], ram + held[1], gpu + held[2]
        return cpu, ram, gpu

    def _could_start(self, job: Job) -> bool:
        cpu, ram, gpu = self._lower(job.priority)
        free = self.free
        return job.gpu <= free[2] + gpu and job.cpu <= free[0] + cpu and job.ram <= free[1] + ram

    def _enqueue(self, job: Job, now: int) -> None:
        due = self.reserve_after is not None and now - job.arrival >= self.reserve_after
        self.pending[job.id] = Pending(job.id, job.priority, Resources(job.cpu, job.ram, job.gpu), job.arrival, due=due)
        if self.reserve_after is not None and not due:
            heapq.heappush(self.due_at, (job.arrival + self.reserve_after, job.id))
        counts = self.pending_gpus[job.priority]
        counts[job.gpu] = counts.get(job.gpu, 0) + 1

    def arrive(self, job: Job, now: int) -> None:
        self._enqueue(job, now)
        if self._could_start(job):
            self.dirty = True

    def finish(self, job: Job) -> None:
        del self.running[job.id]
        self._release(job)
        self.freed = True

    def _release(self, job: Job) -> None:
        free, held = self.free, self.held[job.priority]
        free[0] += job.cpu
        free[1] += job.ram
        free[2] += job.gpu
        held[0] -= job.cpu
        held[1] -= job.ram
        held[2] -= job.gpu

    def _take(self, job: Job) -> None:
        free, held = self.free, self.held[job.priority]
        free[0] -= job.cpu
        free[1] -= job.ram
        free[2] -= job.gpu
        held[0] += job.cpu
        held[1] += job.ram
        held[2] += job.gpu

    def _some_gpus_fit(self) -> bool:
        for level in LEVELS:
            counts = self.pending_gpus[level]
            if counts and min(counts) <= self.free[2] + self._lower(level)[2]:
                return True
        return False

    def schedule(self, now: int) -> list[Change]:
        if self.freed:
            self.freed = False
            self.dirty = self.dirty or self._some_gpus_fit()
        if not self.dirty and self.skip_idle:
            return []
        self.dirty = False
        due_at, pending = self.due_at, self.pending
        while due_at and due_at[0][0] <= now:
            _, pk = heapq.heappop(due_at)
            waiting = pending.get(pk)
            if waiting is not None and not waiting.due:
                pending[pk] = replace(waiting, due=True)
        ending, running = self.ending, self.running
        while ending and ending[0][0] <= now:
            _, pk, started = heapq.heappop(ending)
            current = running.get(pk)
            if current is not None and current.started_at == started:
                running[pk] = replace(current, preemptions=PREEMPTION_CAP)
        changes: list[Change] = []
        for _ in range(10):
            self.passes += 1
            self.queue_total += len(pending)
            self.queue_max = max(self.queue_max, len(pending))
            result = plan(self.capacity, list(self.running.values()), list(pending.values()))
            if result.reservation is not None:
                self.reservations += 1
                self.reserved_since.setdefault(result.reservation, now)
            for victim, _by in result.preemptions:
                self.preempted[victim] = self.preempted.get(victim, 0) + 1
                job = self.jobs[victim]
                del self.running[victim]
                self._release(job)
                self._enqueue(job, now)
                changes.append((False, job))
            for pk in result.starts:
                job = self.jobs[pk]
                del pending[pk]
                counts = self.pending_gpus[job.priority]
                counts[job.gpu] -= 1
                if not counts[job.gpu]:
                    del counts[job.gpu]
                since = self.reserved_since.pop(pk, None)
                if since is not None:
                    self.longest_held = max(self.longest_held, now - since)
                protected = self.protect_reserved and since is not None
                self.running[pk] = Running(pk, job.priority, Resources(job.cpu, job.ram, job.gpu), now,
                                           PREEMPTION_CAP if protected else self.preempted.get(pk, 0))
                limit = self.limits[pk] if self.protect_ending is not None else None
                if limit is not None and not protected:
                    heapq.heappush(self.ending, (now + limit - self.protect_ending, pk, now))
                self._take(job)
                changes.append((True, job))
            if not result.preemptions:
                break
        return changes

    def longest_reserved_wait(self, horizon: int) -> int:
        """Longest time from first holding the reservation to starting (still waiting: until the horizon)."""
        return max([self.longest_held, *(horizon - since for since in self.reserved_since.values())])

    def stats(self, horizon: int) -> str:
        mean = self.queue_total / self.passes if self.passes else 0
        held = (f", {self.reservations:,} with a reservation; longest from holding it to starting "
                f"{duration(self.longest_reserved_wait(horizon))}") if self.reserve_after is not None else ""
        return f"{self.passes:,} passes, queue mean {mean:.0f} max {self.queue_max:,}{held}"


class FifoPolicy:
    """A queue without backfill: its head starts when it fits, and until then nothing behind it starts.

    `by_priority`: the queue is in the planner's order (priority, then created_at); otherwise by created_at
    alone. `preempt`: a head that does not fit evicts strictly lower priority when that makes it fit (the
    planner's victim order: lowest priority, then most recently started; victims not needed are put back).
    """

    def __init__(self, trace: Trace, *, by_priority: bool, preempt: bool, name: str) -> None:
        self.name = name
        self.by_priority = by_priority
        self.preempt = preempt
        self.free = [trace.cpu, trace.ram, trace.gpu]
        self.queue: list[tuple] = []
        self.running: dict[int, tuple[Job, int]] = {}  # id -> (job, started_at)
        self.held = {level: [0, 0, 0] for level in LEVELS}

    def _push(self, job: Job) -> None:
        key = (-job.priority, job.arrival, job.id) if self.by_priority else (job.arrival, job.id)
        heapq.heappush(self.queue, (key, job))

    def arrive(self, job: Job, now: int) -> None:
        self._push(job)

    def finish(self, job: Job) -> None:
        del self.running[job.id]
        self._move(job, 1)

    def _move(self, job: Job, sign: int) -> None:
        free, held = self.free, self.held[job.priority]
        free[0] += sign * job.cpu
        free[1] += sign * job.ram
        free[2] += sign * job.gpu
        held[0] -= sign * job.cpu
        held[1] -= sign * job.ram
        held[2] -= sign * job.gpu

    def _evict_for(self, job: Job) -> list[Job] | None:
        reach = list(self.free)
        for level in LEVELS:
            if level < job.priority:
                reach = [a + b for a, b in zip(reach, self.held[level])]
        if not _fits(job, reach):
            return None
        candidates = sorted((entry for entry in self.running.values() if entry[0].priority < job.priority),
                            key=lambda entry: (entry[0].priority, -entry[1], -entry[0].id))
        available = list(self.free)
        chosen = []
        for victim, _ in candidates:
            if _fits(job, available):
                break
            available = [available[0] + victim.cpu, available[1] + victim.ram, available[2] + victim.gpu]
            chosen.append(victim)
        needed = []
        for victim in reversed(chosen):
            without = [available[0] - victim.cpu, available[1] - victim.ram, available[2] - victim.gpu]
            if _fits(job, without):
                available = without
            else:
                needed.append(victim)
        return needed

    def schedule(self, now: int) -> list[Change]:
        changes: list[Change] = []
        queue = self.queue
        while queue:
            job = queue[0][1]
            if not _fits(job, self.free):
                victims = self._evict_for(job) if self.preempt else None
                if victims is None:
                    break
                for victim in victims:
                    del self.running[victim.id]
                    self._move(victim, 1)
                    self._push(victim)
                    changes.append((False, victim))
            heapq.heappop(queue)  # still the head: victims have strictly lower priority, so queue behind it
            self.running[job.id] = (job, now)
            self._move(job, -1)
            changes.append((True, job))
        return changes

    def stats(self, horizon: int) -> str:
        return ""


def _fits(job: Job, free: Sequence[int]) -> bool:
    return job.gpu <= free[2] and job.cpu <= free[0] and job.ram <= free[1]


@dataclass(frozen=True, slots=True)
class Result:
    policy: str
    utilisation: float  # useful GPU-seconds (held, less what preemption threw away) over capacity x horizon
    held: float  # GPU-seconds held by running deployments over capacity x horizon
    completed: int
    waits: dict[int, tuple[float, float]]  # priority -> (p50, p99) of the wait to first start, seconds
    longest_large: int  # longest wait of a deployment of >= LARGE_GPUS GPUs
    longest: int  # longest wait of any deployment (every one fits the cluster)
    preemptions_mean: float
    preemptions_max: int
    lost: float  # share of the GPU-seconds held that preemption threw away
    seconds: float  # wall time of the simulation
    stats: str
    first_starts: tuple[int, ...]  # by deployment id (index 0 unused): when it first started, -1 for never
    reserved_wait: int | None = None  # planner with reservations: longest from holding one to starting
    # (work lost share, completed, deployments) of those that checkpoint, then of the others
    populations: tuple[tuple[float, int, int], ...] = ()
    completed_at: tuple[float, ...] = ()  # by deployment id (index 0 unused): when it completed, -1 for never


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a sorted, non-empty sequence."""
    rank = max(1, round(q / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


class Runs:
    """What happened to a trace's deployments, by id: first starts, runs, preemptions and completions.

    Recorded by the simulator as it goes, and read off the service's events by bench/replay.py, so that both
    are summarized by the same `summarize`. Held and lost GPU-seconds and completions are also kept apart for
    the deployments that checkpoint (population True) and the others (False).
    """

    def __init__(self, trace: Trace, checkpointing: Sequence[bool] = ()) -> None:
        n = len(trace.jobs)
        self.gpus = [0] + [job.gpu for job in trace.jobs]
        self.checkpointing = list(checkpointing) or [False] * (n + 1)
        self.first_start = [-1.0] * (n + 1)
        self.completed_at = [-1.0] * (n + 1)
        self.preemptions = [0] * (n + 1)
        self.running: dict[int, float] = {}  # id -> start of its current run
        self.completed = {False: 0, True: 0}
        self.held = {False: 0.0, True: 0.0}  # GPU-seconds of the runs that have ended
        self.lost = {False: 0.0, True: 0.0}  # of which preemption threw away

    def start(self, pk: int, t: float) -> None:
        if self.first_start[pk] < 0:
            self.first_start[pk] = t
        self.running[pk] = t

    def preempt(self, pk: int, t: float, kept: float = 0.0) -> None:
        """`kept`: seconds of this run that its latest checkpoint saved."""
        ran = t - self.running.pop(pk)
        population = self.checkpointing[pk]
        self.held[population] += self.gpus[pk] * ran
        self.lost[population] += self.gpus[pk] * (ran - kept)
        self.preemptions[pk] += 1

    def complete(self, pk: int, t: float) -> None:
        population = self.checkpointing[pk]
        self.held[population] += self.gpus[pk] * (t - self.running.pop(pk))
        self.completed[population] += 1
        self.completed_at[pk] = t

    def held_until(self, horizon: int) -> dict[bool, float]:
        held = dict(self.held)
        for pk, start in self.running.items():
            held[self.checkpointing[pk]] += self.gpus[pk] * (horizon - start)
        return held


def simulate(trace: Trace, policy, habits: Habits | None = None) -> Result:
    """Replay `trace` through `policy` (arrive, finish, schedule) up to the trace's horizon; with `habits`, the
    deployments that checkpoint lose only the run time since their latest checkpoint when preempted."""
    clock = time.perf_counter()
    jobs, horizon, n = trace.jobs, trace.horizon, len(trace.jobs)
    every = habits.checkpoint_every if habits is not None else (None,) * (n + 1)
    runs = Runs(trace, [e is not None for e in every])
    remaining = [0] + [job.duration for job in jobs]  # run time still needed, less what checkpoints saved
    run = [0] * (n + 1)  # number of the current run: a completion event of an earlier run is stale
    completions: list[tuple[int, int, int]] = []  # heap of (end, id, run)
    i = 0
    never = horizon + 1
    while True:
        t = min(jobs[i].arrival if i < n else never, completions[0][0] if completions else never)
        if t > horizon:
            break
        while completions and completions[0][0] == t:
            _, pk, attempt = heapq.heappop(completions)
            if run[pk] == attempt:
                run[pk] += 1
                runs.complete(pk, t)
                policy.finish(jobs[pk - 1])
        while i < n and jobs[i].arrival == t:
            policy.arrive(jobs[i], t)
            i += 1
        for started, job in policy.schedule(t):
            pk = job.id
            run[pk] += 1
            if started:
                runs.start(pk, t)
                heapq.heappush(completions, (t + remaining[pk], pk, run[pk]))
            else:
                ran = t - runs.running[pk]
                kept = ran // every[pk] * every[pk] if every[pk] else 0
                remaining[pk] -= kept
                runs.preempt(pk, t, kept)
    seconds = time.perf_counter() - clock
    reserved_wait = None
    if isinstance(policy, PlannerPolicy) and policy.reserve_after is not None:
        reserved_wait = policy.longest_reserved_wait(horizon)
    return summarize(trace, policy.name, runs, seconds=seconds, stats=policy.stats(horizon),
                     reserved_wait=reserved_wait)


def summarize(trace: Trace, name: str, runs: Runs, *, seconds: float = 0.0, stats: str = "",
              reserved_wait: int | None = None) -> Result:
    """The figures of one policy on one trace, from what happened to its deployments."""
    horizon, n = trace.horizon, len(trace.jobs)
    waits: dict[int, list[float]] = {level: [] for level in LEVELS}
    longest = longest_large = 0
    for job in trace.jobs:
        start = runs.first_start[job.id]
        wait = (start if start >= 0 else horizon) - job.arrival
        waits[job.priority].append(wait)
        longest = max(longest, wait)
        if job.gpu >= LARGE_GPUS:
            longest_large = max(longest_large, wait)
    quantiles = {}
    for level, values in waits.items():
        values.sort()
        quantiles[level] = (percentile(values, 50), percentile(values, 99)) if values else (0, 0)
    counts = runs.preemptions[1:]
    capacity = trace.gpu * horizon
    held = runs.held_until(horizon)
    busy, lost = sum(held.values()), sum(runs.lost.values())
    populations = tuple((runs.lost[c] / held[c] if held[c] else 0.0, runs.completed[c],
                         sum(runs.checkpointing[job.id] == c for job in trace.jobs)) for c in (True, False))
    return Result(name, (busy - lost) / capacity, busy / capacity, sum(runs.completed.values()), quantiles,
                  longest_large, longest, sum(counts) / n, max(counts), lost / busy if busy else 0.0, seconds, stats,
                  tuple(runs.first_start), reserved_wait, populations, tuple(runs.completed_at))


def bounds(trace: Trace) -> tuple[float, int]:
    """(utilisation, completions) no policy can beat.

    Utilisation: the work offered within the horizon over capacity x horizon. Completions: a deployment
    completes only if it arrives at least its duration before the horizon, and all that complete together
    need no more GPU-seconds than the cluster has; the most such deployments is the smallest works first.
    """
    capacity = trace.gpu * trace.horizon
    works = sorted(j.gpu * j.duration for j in trace.jobs if j.arrival + j.duration <= trace.horizon)
    count = total = 0
    for work in works:
        if total + work > capacity:
            break
        total += work
        count += 1
    return min(1.0, trace.offered_gpu_seconds / capacity), count


# (trace, reserve_after, **levers of PlannerPolicy) -> policy; the FIFO policies take no lever.
POLICIES: dict[str, Callable[..., object]] = {
    "planner": lambda trace, reserve_after, **levers: PlannerPolicy(trace, reserve_after, **levers),
    "no-reservations": lambda trace, _, **levers: PlannerPolicy(trace, None, **levers),
    "priority-fifo": lambda trace, _, **levers: FifoPolicy(trace, by_priority=True, preempt=False,
                                                           name="priority FIFO, no backfill"),
    "priority-fifo-preempt": lambda trace, _, **levers: FifoPolicy(trace, by_priority=True, preempt=True,
                                                                   name="priority FIFO + preemption"),
    "fifo": lambda trace, _, **levers: FifoPolicy(trace, by_priority=False, preempt=False,
                                                  name="FIFO, no priority"),
}


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7_200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / DAY:.1f}d"


HEADER = ("policy", "GPU util", "held", "completed", "high p50/p99", "normal p50/p99", "low p50/p99",
          f"longest >={LARGE_GPUS} GPU", "longest any", "preempt mean/max", "work lost", "checkpointing: lost, done",
          "others: lost, done", "sim s")


def row(result: Result) -> tuple[str, ...]:
    return (result.policy, f"{result.utilisation:.3f}", f"{result.held:.3f}", f"{result.completed:,}",
            *(f"{duration(result.waits[level][0])}/{duration(result.waits[level][1])}" for level in (HIGH, NORMAL, LOW)),
            duration(result.longest_large), duration(result.longest),
            f"{result.preemptions_mean:.3f}/{result.preemptions_max}", f"{result.lost:.1%}",
            *(f"{lost:.1%}, {done:,} of {count:,}" for lost, done, count in result.populations),
            f"{result.seconds:.1f}")


def table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, columns padded so it also reads as plain text."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def check_targets(trace: Trace, results: dict[str, Result], reserve_after: int) -> list[str]:
    """Each target of issue 11 that one trace can decide, with its figures and met or MISSED."""
    ours = results.get("planner")
    if ours is None:
        return []
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "**MISSED**"

    best_util = max(r.utilisation for r in results.values())
    best_done = max(r.completed for r in results.values())
    lines.append(f"utilisation {ours.utilisation:.3f} = {ours.utilisation / best_util:.1%} of the best "
                 f"({best_util:.3f}), target >= 95%: {verdict(ours.utilisation >= 0.95 * best_util)}")
    lines.append(f"completed {ours.completed:,} = {ours.completed / best_done:.1%} of the best ({best_done:,}), "
                 f"target >= 97%: {verdict(ours.completed >= 0.97 * best_done)}")
    strict = results.get("priority-fifo")
    if strict is not None:
        mine, theirs = ours.waits[HIGH][1], strict.waits[HIGH][1]
        lines.append(f"high-priority wait p99 {duration(mine)} vs strict priority FIFO's {duration(theirs)}: "
                     f"{verdict(mine <= theirs)}")
    longest_run = max(j.duration for j in trace.jobs)
    bound = reserve_after + longest_run
    lines.append(f"longest wait {duration(ours.longest)} vs reserve_after + longest run = {duration(bound)}: "
                 f"{verdict(ours.longest <= bound)}")
    if ours.reserved_wait is not None:
        lines.append(f"longest time from holding the reservation to starting {duration(ours.reserved_wait)} vs the "
                     f"longest run {duration(longest_run)} (the contract's bound): "
                     f"{verdict(ours.reserved_wait <= longest_run)}")
    return lines


def check_preemption_targets(trace: Trace, results: dict[str, Result]) -> list[str]:
    """Each target of issue 19 (preemption that keeps work) that one trace can decide, met or MISSED."""
    ours, fifo = results.get("planner"), results.get("fifo")
    if ours is None or fifo is None:
        return []

    def verdict(ok: bool) -> str:
        return "met" if ok else "**MISSED**"

    util_bound, _ = bounds(trace)
    best_fifo = max(r.utilisation for key, r in results.items() if key in ("fifo", "priority-fifo"))
    best_done = max(r.completed for r in results.values())
    return [
        f"work lost {ours.lost:.1%} <= 5%: {verdict(ours.lost <= 0.05)}",
        f"utilisation {ours.utilisation:.4f} = {ours.utilisation / util_bound:.3f} of the bound ({util_bound:.4f}) "
        f">= 0.97: {verdict(ours.utilisation >= 0.97 * util_bound)}; >= the best FIFO's ({best_fifo:.4f}): "
        f"{verdict(ours.utilisation >= best_fifo)}",
        f"completed {ours.completed:,} = {ours.completed / best_done:.1%} of the best ({best_done:,}) >= 99%: "
        f"{verdict(ours.completed >= 0.99 * best_done)}",
        f"high-priority wait p99 {duration(ours.waits[HIGH][1])} <= 5 min: {verdict(ours.waits[HIGH][1] <= 300)}",
        f"longest wait {duration(ours.longest)} <= 2 x FIFO's ({duration(fifo.longest)}): "
        f"{verdict(ours.longest <= 2 * fifo.longest)}",
        f"most preemptions of one deployment {ours.preemptions_max} <= 5: {verdict(ours.preemptions_max <= 5)}",
        f"simulated in {ours.seconds:.1f} s",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="deployments per trace, comma separated")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--reserve-after", type=int, default=RESERVE_AFTER, help="seconds (the planner's)")
    parser.add_argument("--gpus", type=int, default=256, help="GPUs of the cluster (8-GPU nodes' CPU and RAM)")
    parser.add_argument("--load", type=float, default=0.5, help="work offered over GPU capacity")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma separated: " + ", ".join(POLICIES))
    parser.add_argument("--checkpoint-share", type=float, default=CHECKPOINT_SHARE,
                        help="share of deployments that checkpoint")
    parser.add_argument("--checkpoint-minutes", type=float, default=CHECKPOINT_MINUTES,
                        help="minutes of running between two checkpoints")
    parser.add_argument("--limit-share", type=float, default=LIMIT_SHARE, help="share that set a time limit")
    parser.add_argument("--protect-ending", type=int, default=None,
                        help="lever: seconds; no victim whose time limit ends within that long")
    parser.add_argument("--protect-reserved", action="store_true",
                        help="lever: no victim that started on its reservation")
    args = parser.parse_args(argv)
    levers = {"protect_ending": args.protect_ending, "protect_reserved": args.protect_reserved}

    longest_without: list[tuple[int, int]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        trace = make_trace(size, seed=args.seed, gpus=args.gpus, load=args.load)
        habits = make_habits(trace, seed=args.seed, limit_share=args.limit_share,
                             checkpoint_share=args.checkpoint_share, checkpoint_minutes=args.checkpoint_minutes)
        print(f"\n### {trace.name} deployments (seed {args.seed}, reserve_after {args.reserve_after} s; "
              f"{args.checkpoint_share:.0%} checkpoint every {args.checkpoint_minutes:g} min, "
              f"{args.limit_share:.0%} set a time limit; levers {levers})\n")
        print(describe(trace) + "\n")
        results = {}
        for key in args.policies.split(","):
            policy = POLICIES[key](trace, args.reserve_after, habits=habits, **levers)
            results[key] = simulate(trace, policy, habits)
            print(f"  {results[key].policy}: {results[key].seconds:.1f} s {results[key].stats}", file=sys.stderr)
        util_bound, done_bound = bounds(trace)
        rows = [HEADER, *(row(r) for r in results.values()),
                ("bound (no policy beats it)", f"{util_bound:.3f}", "-", f"{done_bound:,}", *["-"] * (len(HEADER) - 4))]
        print(table(rows) + "\n")
        for line in check_targets(trace, results, args.reserve_after):
            print(f"- {line}")
        for line in check_preemption_targets(trace, results):
            print(f"- issue 19: {line}")
        if "no-reservations" in results:
            longest_without.append((size, results["no-reservations"].longest))
        for key, result in results.items():
            if result.stats:
                print(f"- {result.policy}: {result.stats}")
    if len(longest_without) > 1:
        print("\nlongest wait without reservations by trace size: "
              + ", ".join(f"{size:,}: {duration(wait)}" for size, wait in longest_without))
    return 0


if __name__ == "__main__":
    sys.exit(main())
