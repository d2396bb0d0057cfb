"""Benchmark of the pure planner `scheduling.planner.plan` on synthetic queues of growing size."""
import argparse
import gc
import math
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduling.planner import Pending, Running, plan  # noqa: E402
from scheduling.resources import Resources  # noqa: E402
from workload import random_demand, random_priority, total  # noqa: E402

RUNNING = 2_000
SIZES = (1_000, 10_000, 100_000)
REPEATS = {1_000: 30, 10_000: 10, 100_000: 5}
TARGET_MS_10K = 100.0

EPOCH = datetime(2026, 11, 26, tzinfo=timezone.utc)


def synthetic_cluster(rng: random.Random, running: int, pending: int, roomy: bool = False):
    """(capacity, running, pending): nearly full, so the pass backfills and preempts; or roomy, so all start."""
    now = EPOCH
    held = []
    for i in range(running):
        now += timedelta(milliseconds=rng.randint(1, 5_000))
        held.append(Running(i + 1, random_priority(rng), random_demand(rng), now))
    queue = []
    for i in range(pending):
        now += timedelta(milliseconds=rng.randint(1, 500))
        queue.append(Pending(running + i + 1, random_priority(rng), random_demand(rng), now))
    held_total = total(r.demand for r in ((*held, *queue) if roomy else held))
    # About 2% headroom: small requests backfill, larger ones must preempt or wait.
    capacity = Resources(held_total.cpu * Decimal("1.02"), held_total.ram * Decimal("1.02"), held_total.gpu + 4)
    return capacity, held, queue


def time_plan(capacity, running, pending, repeats: int) -> list[float]:
    """Seconds per pass, with a collection before each so one run does not pay for another's garbage."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        plan(capacity, running, pending)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()

    print(f"plan(): {RUNNING:,} running, pending queues of {', '.join(f'{n:,}' for n in SIZES)}; seed {args.seed}")
    worst = 0.0
    for roomy in (False, True):
        medians = bench_scenario(args.seed, roomy, args.quick)
        worst = max(worst, medians[10_000])
    ms = worst * 1e3
    verdict = "met" if ms < TARGET_MS_10K else "MISSED"
    print(f"target 10k pending x 2k running < {TARGET_MS_10K:.0f} ms: {ms:.1f} ms median (worse scenario), {verdict}")
    return 0


def bench_scenario(seed: int, roomy: bool, quick: bool) -> dict[int, float]:
    """Print one table and the growth ratios; return the median seconds per pass by queue size."""
    print("\nroomy cluster: every pending deployment starts" if roomy
          else "\nnearly full cluster (2% headroom): backfill and preemption")
    print(f"{'pending':>9} {'best ms':>9} {'median ms':>10} {'us/item':>8} {'starts':>7} {'preempts':>9}")
    medians = {}
    for size in SIZES:
        capacity, running, pending = synthetic_cluster(random.Random(seed + size), RUNNING, size, roomy)
        result = plan(capacity, running, pending)
        times = time_plan(capacity, running, pending, 3 if quick else REPEATS[size])
        medians[size] = statistics.median(times)
        print(f"{size:>9,} {min(times) * 1e3:>9.1f} {medians[size] * 1e3:>10.1f} "
              f"{medians[size] / (size + RUNNING) * 1e6:>8.2f} {len(result.starts):>7} {len(result.preemptions):>9}")
    print("growth (median time ratio vs n log n ratio, n = pending + running):")
    for small, large in zip(SIZES, SIZES[1:]):
        n1, n2 = small + RUNNING, large + RUNNING
        print(f"  {small:>7,} -> {large:>7,}: x{medians[large] / medians[small]:.1f} "
              f"(n log n: x{n2 * math.log(n2) / (n1 * math.log(n1)):.1f})")
    return medians


if __name__ == "__main__":
    sys.exit(main())
