"""Pure priority scheduler: which pending deployments start, and which running ones are preempted."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from operator import attrgetter

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Resources:
    cpu: Decimal
    ram: Decimal
    gpu: int

    @classmethod
    def zero(cls) -> Resources:
        return cls(_ZERO, _ZERO, 0)

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.ram + other.ram, self.gpu + other.gpu)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.ram - other.ram, self.gpu - other.gpu)

    def fits_in(self, other: Resources) -> bool:
        return self.cpu <= other.cpu and self.ram <= other.ram and self.gpu <= other.gpu

    def meet(self, other: Resources) -> Resources:
        """Per resource, the smaller of the two."""
        return Resources(min(self.cpu, other.cpu), min(self.ram, other.ram), min(self.gpu, other.gpu))

    def shortfall(self, available: Resources) -> Resources:
        return Resources(
            max(self.cpu - available.cpu, _ZERO),
            max(self.ram - available.ram, _ZERO),
            max(self.gpu - available.gpu, 0),
        )

    def is_nonnegative(self) -> bool:
        return self.cpu >= 0 and self.ram >= 0 and self.gpu >= 0


@dataclass(frozen=True, slots=True)
class Running:
    id: int
    priority: int
    demand: Resources
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    priority: int
    demand: Resources
    created_at: datetime
    due: bool = False  # has waited the cluster's reserve_after_seconds: may hold a reservation


@dataclass(frozen=True, slots=True)
class Plan:
    starts: tuple[int, ...]
    preemptions: tuple[tuple[int, int], ...]  # (victim running id, preemptor pending id)
    free: Resources
    reservation: int | None = None  # the pending deployment that what is free is set aside for


def _total(demands: Iterable[Resources]) -> Resources:
    # Summing components directly avoids allocating one Resources per running deployment.
    cpu, ram, gpu = _ZERO, _ZERO, 0
    for d in demands:
        cpu += d.cpu
        ram += d.ram
        gpu += d.gpu
    return Resources(cpu, ram, gpu)


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
    free = capacity - _total(r.demand for r in running)
    if not free.is_nonnegative():
        # Over-committed (cluster shrunk, or counters drifted): nothing fits, and evicting to repair
        # the overshoot is an operator's decision, not a side effect of scheduling.
        return Plan((), (), free)

    # Cheapest to lose first: lowest priority, then the most recently started (least work lost).
    # Stable sorts on attrgetter keys: started_at cannot be negated, and this is the hot setup cost.
    order = sorted(running, key=attrgetter("started_at", "id"), reverse=True)
    order.sort(key=attrgetter("priority"))
    queue = sorted(pending, key=attrgetter("created_at", "id"))
    queue.sort(key=attrgetter("priority"), reverse=True)  # reverse=True keeps equal keys in order

    # reach = free + everything evictable by the current queue position (priority strictly below it),
    # so a deployment that cannot fit even by preempting is rejected in O(1) without scanning.
    reach = capacity
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
    needed = _total(p.demand for p in pending)
    if not needed.fits_in(free):
        return None
    queue = sorted(pending, key=attrgetter("created_at", "id"))
    queue.sort(key=attrgetter("priority"), reverse=True)
    return Plan(starts=tuple(p.id for p in queue), preemptions=(), free=free - needed)


_UNITS = (("cpu", "{} CPU"), ("ram", "RAM {} GB"), ("gpu", "{} GPU"))


def _amount(value: Decimal | int) -> str:
    # normalize() strips trailing zeros but may yield an exponent (10 -> 1E+1); "f" undoes that.
    return format(Decimal(value).normalize(), "f")


def describe_wait(demand: Resources, free: Resources, ahead: int, *, free_as: str = "free") -> str:
    """One sentence telling a user why a pending deployment waits, e.g. "needs 2 GPU, 1 free".

    `free_as` names what `free` is when it is not what is free now (say, the cluster's whole capacity).
    """
    short = demand.shortfall(free)
    parts = [
        f"{unit.format(_amount(getattr(demand, name)))}, {_amount(max(getattr(free, name), 0))} {free_as}"
        for name, unit in _UNITS
        if getattr(short, name) > 0
    ]
    sentence = "needs " + "; ".join(parts) if parts else "fits; waiting for the scheduler"
    if ahead > 0:
        sentence += f"; {ahead} deployment{'s' if ahead != 1 else ''} of higher priority ahead"
    return sentence


# --- Why a pending deployment waits -----------------------------------------------------------------------

DEPENDENCIES, EXCEEDS_CAPACITY, RESOURCES, RESERVED, SCHEDULING = (
    "dependencies", "exceeds_capacity", "resources", "reserved", "scheduling")


@dataclass(frozen=True, slots=True)
class Reservation:
    """A deployment that has waited too long, and the part of what is free set aside for it."""

    id: int
    priority: int
    held: Resources


def reservation_for(first_due: Pending | None, free: Resources, preemptible: Resources) -> Reservation | None:
    """The reservation a settled cluster holds: `first_due` is its first due deployment in queue order that
    fits the capacity, and it holds one when it cannot start, not even by evicting strictly lower priority
    (`preemptible`). When it can, a pass is due, which starts it."""
    if first_due is None or first_due.demand.fits_in(free + preemptible):
        return None
    return Reservation(first_due.id, first_due.priority, first_due.demand.meet(free))


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one pending deployment waits, from one snapshot of its cluster, as the API's `scheduling` object."""

    reason: str
    shortfall: Resources
    queue_position: int  # 1-based, among the cluster's pending deployments in queue order
    waiting_for: tuple[int, ...]
    preemptible: Resources  # what running deployments of strictly lower priority hold
    higher_ahead: int  # pending deployments of strictly higher priority
    reserved_for: int | None = None  # the deployment it yields to, when the reason is `reserved`


def explain(demand: Resources, *, capacity: Resources, free: Resources, preemptible: Resources,
            waiting_for: Sequence[int], queue_position: int, higher_ahead: int, priority: int = 0,
            behind: Reservation | None = None) -> Explanation:
    """The reason is the first that applies of: dependencies, exceeds_capacity, resources, reserved, scheduling.

    `exceeds_capacity` comes before `resources`, which it implies, or it could never show. `resources` means
    that even evicting every running deployment of strictly lower priority would not make it fit what is free
    now. `reserved` means it would, but not on what is left beside the reservation it is `behind` in queue
    order (where its own priority may not preempt). Otherwise it fits and a pass is due (`scheduling`). A
    cluster is settled (a pass would start and evict nothing) exactly when none of its pending deployments is
    `scheduling`; while a pass is due, one described as `resources` may still start on what a preemption
    ahead of it frees beyond its need.
    """
    reserved_for = None
    if waiting_for:
        reason = DEPENDENCIES
    elif not demand.fits_in(capacity):
        reason = EXCEEDS_CAPACITY
    elif not demand.fits_in(free + preemptible):
        reason = RESOURCES
    elif behind is not None and not demand.fits_in(
            free - behind.held + (preemptible if priority < behind.priority else Resources.zero())):
        reason, reserved_for = RESERVED, behind.id
    else:
        reason = SCHEDULING
    return Explanation(reason, demand.shortfall(free), queue_position, tuple(waiting_for), preemptible,
                       higher_ahead, reserved_for)


def lower_priority_holdings(running: Iterable[tuple[int, Resources]]) -> Callable[[int], Resources]:
    """From (priority, held) pairs of running deployments: priority -> what strictly lower priorities hold."""
    by_priority = sorted(running, key=lambda pair: pair[0])
    priorities = [priority for priority, _ in by_priority]
    prefix = [Resources.zero()]
    for _, held in by_priority:
        prefix.append(prefix[-1] + held)
    return lambda priority: prefix[bisect_left(priorities, priority)]


def describe(explanation: Explanation, demand: Resources, free: Resources, capacity: Resources,
             dependency_statuses: Sequence[tuple[int, str]] = ()) -> str:
    """The explanation in words, e.g. "Needs 2 GPU, 1 free; 3 deployments of higher priority ahead."."""
    if explanation.reason == DEPENDENCIES:
        sentence = "waiting for dependencies " + ", ".join(f"#{pk} ({status})" for pk, status in dependency_statuses)
    elif explanation.reason == RESERVED:
        sentence = (f"held back: what is free is set aside for #{explanation.reserved_for}, which has waited "
                    "longer than its cluster's reserve_after_seconds")
    elif explanation.reason == EXCEEDS_CAPACITY:
        sentence = "can never start here: " + describe_wait(demand, capacity, 0, free_as="in the whole cluster")
    elif explanation.reason == SCHEDULING and demand.fits_in(free):
        sentence = "fits; waiting for the scheduler"
    elif explanation.reason == SCHEDULING:
        sentence = "can start by preempting lower-priority work; waiting for the scheduler"
    else:
        sentence = describe_wait(demand, free, explanation.higher_ahead)
    return sentence
