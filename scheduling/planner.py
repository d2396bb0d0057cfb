"""Pure priority scheduler: the queue order, which pending deployments start, which running ones are preempted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter

from .resources import Resources, total

# A deployment preempted this often is no longer a victim: it keeps what it holds until it ends. Measured in
# bench/simulate.py (README, "The rules"): repeated preemption of the same long runs threw away a third of
# the GPU time, and a cap of 2 keeps high-priority waits at 0 s where a cap of 1 does not.
PREEMPTION_CAP = 2

# The queue order, written once: higher priority first, then the earlier submission, then the lower id.
# As Django ordering for the database; `queue_key` and `in_queue_order` are the same order in Python.
QUEUE_ORDER = ("-priority", "created_at", "id")


def queue_key(item) -> tuple:
    """The queue order as a sort key, for anything with `priority`, `created_at` and `id`."""
    return -item.priority, item.created_at, item.id


def in_queue_order(items: Sequence) -> list:
    """`items` sorted by `queue_key`, by two stable sorts on attrgetter keys: the hot setup cost of a pass, and
    cheaper than building a tuple key per deployment."""
    queue = sorted(items, key=attrgetter("created_at", "id"))
    queue.sort(key=attrgetter("priority"), reverse=True)  # reverse=True keeps equal keys in order
    return queue


@dataclass(frozen=True, slots=True)
class Running:
    id: int
    priority: int
    demand: Resources
    started_at: datetime
    preemptions: int = 0  # how often it was preempted before: at PREEMPTION_CAP it is no longer a victim
    project: int = 0  # see scheduling.projects: with one project and no limit, plan() is the whole rule

    @property
    def evictable(self) -> bool:
        return self.preemptions < PREEMPTION_CAP


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    priority: int
    demand: Resources
    created_at: datetime
    due: bool = False  # has waited the cluster's reserve_after_seconds: may hold a reservation
    preemptions: int = 0  # how often it was preempted before (once it runs again: see Running)
    project: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    starts: tuple[int, ...]
    preemptions: tuple[tuple[int, int], ...]  # (victim running id, preemptor pending id)
    free: Resources
    reservation: int | None = None  # the pending deployment that what is free is set aside for


_DIMENSIONS = ("cpu", "ram", "gpu")


def _holders(order: Sequence[Running], name: str) -> list[int]:
    """Skip list over `order` whose live entries (skip[j] == j) are the deployments holding some `name`."""
    skip = [j if getattr(r.demand, name) > 0 else j + 1 for j, r in enumerate(order)]
    skip.append(len(order))
    return skip


def _next_live(skip: list[int], i: int) -> int:
    # Union-find with path compression: evicted and non-holding entries are hopped over in amortized
    # O(1), so repeated preemptions never rescan earlier victims.
    root = i
    while skip[root] != root:
        root = skip[root]
    while skip[i] != root:
        skip[i], i = root, skip[i]
    return root


def _choose_victims(
    demand: Resources, free: Resources, order: Sequence[Running], holders: dict[str, list[int]]
) -> tuple[list[int], Resources]:
    """Victims (indices into `order`, eviction order) that make `demand` fit, and what is then available.

    The caller guarantees that evicting every live candidate makes `demand` fit.
    """
    available = free
    chosen: list[int] = []
    i = 0
    while not demand.fits_in(available):
        # A candidate holding none of what is still short cannot make `demand` fit and would be
        # reprieved below anyway; hopping over it gives the same victims without rescanning, say,
        # every CPU-only deployment each time a GPU is short.
        i = min(
            _next_live(holders[name], i) for name in _DIMENSIONS if getattr(demand, name) > getattr(available, name)
        )
        available += order[i].demand
        chosen.append(i)
        i += 1
    # Greedy eviction may overshoot; give back every victim the preemptor can do without,
    # most valuable first.
    needed: list[int] = []
    for i in reversed(chosen):
        without = available - order[i].demand
        if demand.fits_in(without):
            available = without
        else:
            needed.append(i)
    needed.reverse()
    return needed, available


def plan(capacity: Resources, running: Sequence[Running], pending: Sequence[Pending]) -> Plan:
    """Walk the queue once, starting what fits and preempting strictly lower priority when that makes it fit.

    Demands are assumed non-negative; `pending` holds only deployments whose dependencies are met.

    Starvation bound: the first `due` deployment in queue order that fits the capacity but cannot start now
    holds a reservation. What is free, up to its demand, is set aside for it; nothing behind it starts on
    that part, and nothing of its own priority behind it preempts (that would take, for as long as it runs,
    what the reserved one cannot evict). Lower priorities behind it still preempt still lower ones: whatever
    they start, the reserved one may evict. So it starts once what held its resources at the time ends.
    """
    free = capacity - total(r.demand for r in running)
    if not free.is_nonnegative():
        # Over-committed (cluster shrunk, or counters drifted): nothing fits, and evicting to repair
        # the overshoot is an operator's decision, not a side effect of scheduling.
        return Plan((), (), free)

    # Cheapest to lose first: lowest priority, then the most recently started (least work lost); those
    # preempted PREEMPTION_CAP times already are no candidates at all.
    # Stable sorts on attrgetter keys: started_at cannot be negated, and this is the hot setup cost.
    order = sorted((r for r in running if r.evictable), key=attrgetter("started_at", "id"), reverse=True)
    order.sort(key=attrgetter("priority"))
    queue = in_queue_order(pending)

    # reach = free + everything evictable by the current queue position (priority strictly below it),
    # so a deployment that cannot fit even by preempting is rejected in O(1) without scanning.
    reach = capacity - total(r.demand for r in running if not r.evictable)
    top = len(order)  # order[:top] are the candidates: priority below the current queue priority
    evicted: dict[int, int] = {}  # index in order -> preemptor id
    holders = {name: _holders(order, name) for name in _DIMENSIONS}
    starts: list[int] = []
    reservation: Pending | None = None
    held = Resources.zero()  # the part of what is free set aside for the reservation

    for p in queue:
        demand = p.demand
        # The queue descends in priority, so candidates only ever drop out; deployments started in
        # this pass have priority >= the current one and so never become candidates.
        while top and order[top - 1].priority >= p.priority:
            top -= 1
            if top not in evicted:
                reach -= order[top].demand
        if demand.fits_in(free):
            free -= demand
            reach -= demand
            starts.append(p.id)
            continue
        if not demand.fits_in(reach) or (reservation is not None and p.priority >= reservation.priority):
            # Skipped without blocking the rest of the queue (backfill), unless it is the first that has
            # waited too long: it takes what is free for itself.
            if reservation is None and p.due and demand.fits_in(capacity):
                reservation = p
                held = demand.meet(free)
                free -= held
                reach -= held
            continue

        # Evicting every candidate yields exactly `reach`, which fits, so the scan stays below top.
        victims, available = _choose_victims(demand, free, order, holders)
        for i in victims:
            evicted[i] = p.id
            for skip in holders.values():
                skip[i] = i + 1
        # Victims move from the evictable pool to free, so reach only loses the preemptor's demand.
        free = available - demand
        reach -= demand
        starts.append(p.id)

    # A later preemption may have freed more than its preemptor took; a victim that fits again simply
    # keeps running. Most valuable first, and not on what is set aside for a reservation. No pending
    # deployment can newly fit: free + its evictable pool never grows after it is passed, so only victims
    # need this second look.
    for i in sorted(evicted, reverse=True):
        if order[i].demand.fits_in(free):
            free -= order[i].demand
            del evicted[i]
    free += held

    return Plan(
        starts=tuple(starts),
        preemptions=tuple((order[i].id, by) for i, by in evicted.items()),
        free=free,
        reservation=reservation.id if reservation is not None else None,
    )


def plan_if_everything_fits(free: Resources, pending: Sequence[Pending]) -> Plan | None:
    """The plan when what is free holds every pending deployment at once: start them all, in queue order.

    It is what `plan` would decide, reached without knowing the running deployments at all, which spares a
    scheduling pass on a busy cluster from reading them. None when they do not all fit.
    """
    needed = total(p.demand for p in pending)
    if not needed.fits_in(free):
        return None
    queue = in_queue_order(pending)
    return Plan(starts=tuple(p.id for p in queue), preemptions=(), free=free - needed)
