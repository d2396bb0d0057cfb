"""Synthetic GPU-cluster traces, seeded, shaped after published studies of production deep-learning clusters.

Shapes, not fitted figures (the parameters below are this file's choices, chosen to match the qualitative
findings of the studies; none of their data is used):

- Microsoft Philly (Jeon et al., ATC'19; about 117k jobs over five months): most jobs ask for one GPU, a
  minority for 8 or more, and those few take much of the GPU time; run times span minutes to days.
- SenseTime Helios (Hu et al., SC'21; 1.6M GPU jobs over six months on four clusters): single-GPU jobs are
  the majority, durations are heavy-tailed, submissions follow a daily cycle and come in bursts (users
  submit sweeps of near-identical jobs at once).
- Alibaba PAI (Weng et al., NSDI'22): heavy-tailed durations, bursty arrivals, most tasks small.

So: GPUs per deployment from {1: 70%, 2: 10%, 4: 9%, 8: 7%, 16: 3%, 32: 1%}; durations log-normal (median
15 min, sigma 1.8, longer for larger deployments, clipped to [30 s, 7 days]); arrivals in submissions of 1
(70%) or a sweep of 2 to 16 alike deployments (30%), submissions a Poisson process whose rate follows a
daily cycle (x0.4 at night to x1.6 in the afternoon) and switches into bursts (x4 for about an hour, about
10% of the time); priorities high 10%, normal 60%, low 30% per submission; CPU and RAM proportional to GPUs
with noise (4 to 12 cores and 32 to 128 GB per GPU). The arrival rate is set so that the work offered
(GPUs x duration) is `load` times the cluster's GPUs over the horizon.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

GPU_SIZES = (1, 2, 4, 8, 16, 32)
GPU_WEIGHTS = (70, 10, 9, 7, 3, 1)
LOW, NORMAL, HIGH = 0, 1, 2
PRIORITY_NAMES = {HIGH: "high", NORMAL: "normal", LOW: "low"}
PRIORITY_WEIGHTS = ((HIGH, 10), (NORMAL, 60), (LOW, 30))
MEDIAN_SECONDS = 900
SIGMA = 1.8
MIN_SECONDS, MAX_SECONDS = 30, 7 * 86_400
DAY = 86_400
BURST_FACTOR, BURST_MEAN_SECONDS, BURST_SHARE = 4.0, 3_600, 0.10
# One 8-GPU node: 96 cores, 1 TB RAM.
CPU_PER_GPU, RAM_PER_GPU = 12, 128


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    arrival: int  # seconds from the start of the trace
    priority: int
    gpu: int
    cpu: int
    ram: int
    duration: int  # seconds of running it needs, in one go


@dataclass(frozen=True, slots=True)
class Trace:
    name: str
    gpu: int
    cpu: int
    ram: int
    horizon: int  # seconds: arrivals fall in [0, horizon), and the simulation stops at horizon
    jobs: tuple[Job, ...]  # in arrival order, ids 1..n in that order

    @property
    def offered_gpu_seconds(self) -> int:
        """Work offered within the horizon: no policy can run a deployment before it arrives."""
        return sum(j.gpu * min(j.duration, self.horizon - j.arrival) for j in self.jobs)


def _duration(rng: random.Random, gpu: int, median: float) -> int:
    return int(min(MAX_SECONDS, max(MIN_SECONDS, rng.lognormvariate(math.log(median), SIGMA))))


def _submissions(rng: random.Random, n: int) -> list[list[tuple[int, int, int, int, int]]]:
    """Groups of (priority, gpu, cpu, ram, duration), one group per submission, n deployments in all."""
    groups = []
    left = n
    priorities, weights = zip(*PRIORITY_WEIGHTS)
    while left > 0:
        size = 1 if rng.random() < 0.7 else rng.randint(2, 16)
        size = min(size, left)
        left -= size
        priority = rng.choices(priorities, weights)[0]
        gpu = rng.choices(GPU_SIZES, GPU_WEIGHTS)[0]
        # Larger deployments run longer (Philly, Helios); a sweep shares a typical length.
        median = MEDIAN_SECONDS * (1 + math.log2(gpu)) * rng.lognormvariate(0, 0.5)
        cpu_per_gpu = rng.randint(4, CPU_PER_GPU)
        ram_per_gpu = rng.choice((32, 64, 96, 128))
        groups.append([(priority, gpu, gpu * cpu_per_gpu, gpu * ram_per_gpu, _duration(rng, gpu, median))
                       for _ in range(size)])
    return groups


def _arrival_times(rng: random.Random, count: int, mean_gap: float) -> list[int]:
    """Submission times of a Poisson process modulated by a daily cycle and by bursts (mean gap preserved)."""
    # Expected rate multiplier: the daily cycle averages 1; bursts add (BURST_FACTOR - 1) x their share.
    base = 1 / (mean_gap * (1 + (BURST_FACTOR - 1) * BURST_SHARE))
    peak = base * 1.6 * BURST_FACTOR
    times = []
    t = 0.0
    burst_until = -1.0
    next_burst = rng.expovariate(BURST_SHARE / BURST_MEAN_SECONDS)
    while len(times) < count:
        t += rng.expovariate(peak)  # thinning: propose at the peak rate, keep with probability rate/peak
        while t >= next_burst:
            burst_until = next_burst + rng.expovariate(1 / BURST_MEAN_SECONDS)
            next_burst = burst_until + rng.expovariate(BURST_SHARE / BURST_MEAN_SECONDS)
        daily = 1 - 0.6 * math.cos(2 * math.pi * ((t / DAY) % 1 - 0.125))  # lowest at 03:00, highest at 15:00
        rate = base * daily * (BURST_FACTOR if t < burst_until else 1)
        if rng.random() * peak < rate:
            times.append(int(t))
    return times


def make_trace(n: int, *, seed: int, gpus: int = 256, load: float = 0.9) -> Trace:
    """n deployments on a cluster of `gpus` GPUs (8-GPU nodes' CPU and RAM), offering `load` x its GPU time."""
    rng = random.Random(seed * 1_000_003 + n)
    groups = _submissions(rng, n)
    work = sum(gpu * duration for group in groups for _, gpu, _, _, duration in group)
    # Horizon such that the offered work is `load` x capacity; submissions spread over it.
    horizon_estimate = work / (load * gpus)
    times = _arrival_times(rng, len(groups), horizon_estimate / len(groups))
    jobs = []
    for when, group in zip(times, groups):
        for priority, gpu, cpu, ram, duration in group:
            jobs.append(Job(len(jobs) + 1, when, priority, gpu, cpu, ram, duration))
    horizon = max(times[-1] + 1, int(horizon_estimate))
    return Trace(f"{n:,}", gpus, gpus * CPU_PER_GPU, gpus * RAM_PER_GPU, horizon, tuple(jobs))


def describe(trace: Trace) -> str:
    """One line of the trace's shape, for the report."""
    jobs = trace.jobs
    n = len(jobs)
    single = sum(j.gpu == 1 for j in jobs) / n
    large = sum(j.gpu >= 8 for j in jobs) / n
    large_work = sum(j.gpu * j.duration for j in jobs if j.gpu >= 8) / sum(j.gpu * j.duration for j in jobs)
    durations = sorted(j.duration for j in jobs)
    offered = trace.offered_gpu_seconds / (trace.gpu * trace.horizon)
    return (f"{n:,} deployments over {trace.horizon / DAY:.1f} days on {trace.gpu} GPUs; 1-GPU {single:.0%}, "
            f">=8 GPU {large:.1%} (holding {large_work:.0%} of the GPU time); duration p50 "
            f"{durations[n // 2] / 60:.0f} min, p99 {durations[int(n * 0.99)] / 3600:.1f} h, max "
            f"{durations[-1] / 3600:.1f} h; offered load {offered:.2f}")


@dataclass(frozen=True, slots=True)
class Habits:
    """What the users of a trace's deployments set beside the request: a time limit, and whether the workload
    checkpoints (and how often). Indexed by deployment id (index 0 unused); None for none."""

    time_limit: tuple[int | None, ...]
    checkpoint_every: tuple[int | None, ...]


LIMIT_SHARE = 0.7  # deployments that set time_limit_seconds
LIMIT_FACTOR_MEDIAN, LIMIT_FACTOR_SIGMA = 2.0, 0.8  # the limit over the run time, at least 1
LIMIT_ROUNDING = 600  # users type round numbers: the limit is rounded up to 10 minutes
CHECKPOINT_SHARE, CHECKPOINT_MINUTES = 0.5, 30


def make_habits(trace: Trace, *, seed: int, limit_share: float = LIMIT_SHARE,
                checkpoint_share: float = CHECKPOINT_SHARE, checkpoint_minutes: float = CHECKPOINT_MINUTES) -> Habits:
    """Time limits and checkpoints for `trace`, from a generator of their own: the trace itself is unchanged.

    Time limits: `limit_share` of the deployments set one; it is never below the run time (a limit that ended
    a run would be a failure, which the trace does not model) and overestimates it as users of batch
    schedulers do (Tsafrir et al., "Backfilling using system-generated predictions", TPDS 2007: most requested
    limits are several times the run): run time x a log-normal factor of median 2 (at least 1), rounded up to
    10 minutes. Checkpoints: `checkpoint_share` of the deployments (drawn apart from the limits) save their
    work every `checkpoint_minutes` of running and, once preempted, resume from the latest save.
    """
    rng = random.Random(seed * 7_919 + len(trace.jobs))
    every = round(checkpoint_minutes * 60)
    limits: list[int | None] = [None]
    checkpoints: list[int | None] = [None]
    for job in trace.jobs:
        factor = max(1.0, rng.lognormvariate(math.log(LIMIT_FACTOR_MEDIAN), LIMIT_FACTOR_SIGMA))
        limit = -(-math.ceil(job.duration * factor) // LIMIT_ROUNDING) * LIMIT_ROUNDING
        limits.append(limit if rng.random() < limit_share else None)
        checkpoints.append(every if every > 0 and rng.random() < checkpoint_share else None)
    return Habits(tuple(limits), tuple(checkpoints))
