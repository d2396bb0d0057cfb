"""Synthetic workload shared by the benchmarks: seeded resource requests and priorities, and percentiles."""
import random
from decimal import Decimal

from scheduling.resources import Resources

# Most work runs at the default priority; a few urgent and a few best-effort tiers, as on a shared cluster.
PRIORITIES = (-10, 0, 0, 0, 0, 0, 5, 10, 10, 50, 100)
CPUS = ("0.25", "0.5", "1", "1", "2", "2", "4", "8", "16")
RAMS = ("0.5", "1", "2", "4", "4", "8", "16", "32", "64")
GPUS = (0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 4, 8)


def _amount(rng: random.Random, choices: tuple[str, ...]) -> Decimal:
    # One request in five is an odd size with all three decimals, as users type them.
    if rng.random() < 0.2:
        return Decimal(rng.randint(1, 16_000)) / 1000
    return Decimal(rng.choice(choices))


def random_demand(rng: random.Random) -> Resources:
    return Resources(_amount(rng, CPUS), _amount(rng, RAMS), rng.choice(GPUS))


def random_priority(rng: random.Random) -> int:
    return rng.choice(PRIORITIES)


def total(demands) -> Resources:
    result = Resources.zero()
    for demand in demands:
        result += demand
    return result


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]
