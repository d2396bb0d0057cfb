"""Pure: scheduling a cluster shared by projects, each with a guarantee, a limit and a weight.

With one project and no limit this is `planner.plan` exactly (it is what runs then). Otherwise one pass:
- a deployment starts only within its project's limit (else it waits: `quota_limit`);
- within a project, priority rules as in `planner.plan`: queue order, backfill, preemption of strictly lower
  priority of the same project only (never across projects), the preemption cap, the reservation;
- a deployment whose project, with it started, holds no more than its guarantee may reclaim: evict what other
  projects hold beyond their guarantees, whatever its priority (a guarantee beats priority between projects),
  each victim taken from a project still above its guarantee at that moment, the project of highest weighted
  share first, within it the lowest priority, then the most recently started; only what is needed;
- who goes next is decided anew at each step: deployments within their project's guarantee first (in queue
  order), then those that would borrow, the project of lowest weighted share first: its dominant share (the
  largest over cpu, ram and gpu of its usage beyond its guarantee over the capacity) divided by its weight.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter

from .planner import Pending, Plan, Running, in_queue_order, plan, queue_key
from .resources import Resources, total

QUOTA_LIMIT, RESOURCES, RESERVED = "quota_limit", "resources", "reserved"
_DIMENSIONS = ("cpu", "ram", "gpu")


@dataclass(frozen=True, slots=True)
class Quota:
    """A project's share of one cluster: what it is guaranteed, what it may never exceed, its weight."""

    guaranteed: Resources = field(default_factory=Resources.zero)
    limit: Resources | None = None
    weight: int = 1


NO_QUOTA = Quota()


@dataclass(frozen=True, slots=True)
class ProjectPlan:
    """The plan, and why each pending deployment it does not start waits (QUOTA_LIMIT, RESOURCES or RESERVED)."""

    plan: Plan
    waiting: Mapping[int, str]


def priority_rules_suffice(projects: Collection[int], quotas: Mapping[int, Quota]) -> bool:
    """Deployments of one project (`projects`: those of the running and pending ones) and no limit: the quotas
    change nothing, `planner.plan` decides alone."""
    return len(projects) <= 1 and all(quotas.get(p, NO_QUOTA).limit is None for p in projects)


def weighted_share(usage: Resources, quota: Quota, capacity: Resources) -> Decimal:
    """The dominant share of what a project holds beyond its guarantee, over its weight."""
    beyond = usage - quota.guaranteed
    shares = [Decimal(max(getattr(beyond, name), 0)) / Decimal(getattr(capacity, name))
              for name in _DIMENSIONS if getattr(capacity, name) > 0]
    return max(shares, default=Decimal(0)) / quota.weight


def plan_with_quotas(capacity: Resources, running: Sequence[Running], pending: Sequence[Pending],
                     quotas: Mapping[int, Quota]) -> ProjectPlan:
    if priority_rules_suffice({r.project for r in running} | {p.project for p in pending}, quotas):
        return ProjectPlan(plan(capacity, running, pending), {})
    return _Pass(capacity, running, quotas).run(pending)


class _Pass:
    def __init__(self, capacity: Resources, running: Sequence[Running], quotas: Mapping[int, Quota]) -> None:
        self.capacity = capacity
        self.quotas = quotas
        self.free = capacity - total(r.demand for r in running)
        self.usage: dict[int, Resources] = {}
        for r in running:
            self.usage[r.project] = self.usage.get(r.project, Resources.zero()) + r.demand
        # Per project, cheapest to lose first: lowest priority, then the most recently started. Keyed by id, in
        # that order, so an eviction takes it out at once.
        order = sorted(running, key=attrgetter("started_at", "id"), reverse=True)
        order.sort(key=attrgetter("priority"))
        self.alive: dict[int, dict[int, Running]] = {}
        for r in order:
            self.alive.setdefault(r.project, {})[r.id] = r
        self.evicted: dict[int, tuple[Running, int]] = {}  # victim id -> (victim, preemptor id), in order
        self.waiting: dict[int, str] = {}
        # project -> priority -> what its evictable running deployments of that priority hold
        self.evictable: dict[int, dict[int, Resources]] = {}
        for r in order:
            if r.evictable:
                by_priority = self.evictable.setdefault(r.project, {})
                by_priority[r.priority] = by_priority.get(r.priority, Resources.zero()) + r.demand
        self.shares: dict[int, Decimal] = {}  # project -> its weighted share, until its usage changes
        self.rooms: dict[int, Resources] = {}  # project -> what is left of its guarantee, until its usage changes

    def quota(self, project: int) -> Quota:
        return self.quotas.get(project, NO_QUOTA)

    def used(self, project: int) -> Resources:
        return self.usage.get(project, Resources.zero())

    def within_guarantee(self, p: Pending) -> bool:
        if p.project not in self.rooms:
            self.rooms[p.project] = self.quota(p.project).guaranteed - self.used(p.project)
        return p.demand.fits_in(self.rooms[p.project])

    def share(self, project: int) -> Decimal:
        if project not in self.shares:
            self.shares[project] = weighted_share(self.used(project), self.quota(project), self.capacity)
        return self.shares[project]

    def add_usage(self, project: int, demand: Resources, sign: int = 1) -> None:
        self.usage[project] = self.used(project) + demand if sign > 0 else self.used(project) - demand
        self.shares.pop(project, None)
        self.rooms.pop(project, None)

    def run(self, pending: Sequence[Pending]) -> ProjectPlan:
        if not self.free.is_nonnegative():
            return ProjectPlan(Plan((), (), self.free), {p.id: RESOURCES for p in pending})
        queues: dict[int, list[Pending]] = {}
        for p in reversed(in_queue_order(pending)):
            queues.setdefault(p.project, []).append(p)  # each project's queue, its head last
        starts: list[int] = []
        reservation: Pending | None = None
        held = Resources.zero()
        while queues:
            p = self.next_up([queue[-1] for queue in queues.values()])
            queues[p.project].pop()
            if not queues[p.project]:
                del queues[p.project]
            # Behind a reservation, its project's equal or higher priorities may not preempt (what they took,
            # the reserved one could not evict); other projects are not its to evict anyway.
            may_preempt = reservation is None or p.project != reservation.project or p.priority < reservation.priority
            if not self.within_limit(p, self.own_lower(p) if may_preempt else Resources.zero()):
                # Not even by evicting the lower priorities of its own project.
                self.waiting[p.id] = QUOTA_LIMIT
                continue
            fits = p.demand.fits_in(self.free) and self.within_limit(p)
            victims = [] if fits else self.victims(p, may_preempt)
            if victims is None:
                self.waiting[p.id] = RESOURCES
                if reservation is None and p.due and p.demand.fits_in(self.capacity):
                    reservation, held = p, p.demand.meet(self.free)
                    self.free -= held
                elif reservation is not None and self.fits_beside_nothing_held(p, held):
                    self.waiting[p.id] = RESERVED
                continue
            for victim in victims:
                self.evict(victim, p.id)
            self.free -= p.demand
            self.add_usage(p.project, p.demand)
            starts.append(p.id)
        self.reprieve()
        self.free += held
        return ProjectPlan(Plan(tuple(starts), tuple((v.id, by) for v, by in self.evicted.values()), self.free,
                                reservation.id if reservation is not None else None), self.waiting)

    def fits_beside_nothing_held(self, p: Pending, held: Resources) -> bool:
        """Whether `p` would start were nothing set aside for the reservation (it waits for that alone)."""
        self.free += held
        try:
            return self.victims(p, may_preempt=True) is not None
        finally:
            self.free -= held

    def next_up(self, heads: list[Pending]) -> Pending:
        """Within a guarantee first, in queue order; then the borrower of the lowest weighted share."""
        within = [p for p in heads if self.within_guarantee(p)]
        if within:
            return min(within, key=queue_key)
        return min(heads, key=lambda p: (self.share(p.project), queue_key(p)))

    def within_limit(self, p: Pending, freed: Resources = Resources.zero()) -> bool:
        """Whether its project, with `freed` of its own evicted and `p` started, stays within its limit."""
        limit = self.quota(p.project).limit
        return limit is None or (self.used(p.project) - freed + p.demand).fits_in(limit)

    def own_lower(self, p: Pending) -> Resources:
        """What the evictable lower priorities of its own project hold."""
        # A handful of distinct priorities per project: summing them beats keeping prefix sums current.
        return total(held for priority, held in self.evictable.get(p.project, {}).items() if priority < p.priority)

    def reach(self, p: Pending, may_preempt: bool) -> Resources:
        """What `p` could have at most: what is free, what lower priorities of its project hold, and, within its
        guarantee, all that other projects above theirs hold. Cheap, so most of a long queue is passed over
        without looking at who runs."""
        reach = self.free
        if may_preempt:
            reach += self.own_lower(p)
        if self.within_guarantee(p):
            reach += total(used for project, used in self.usage.items()
                           if project != p.project and not used.fits_in(self.quota(project).guaranteed))
        return reach

    def victims(self, p: Pending, may_preempt: bool) -> list[Running] | None:
        """Whom to evict so that `p` fits in what is free and within its project's limit (an inclusion-minimal
        set), or None when nobody may make it fit."""
        if not p.demand.fits_in(self.reach(p, may_preempt)):
            return None
        candidates = self.reclaimable(p) if self.within_guarantee(p) else []
        if may_preempt:
            candidates += [r for r in self.alive.get(p.project, {}).values() if r.priority < p.priority
                           and r.evictable]
        limit = self.quota(p.project).limit
        available, own, taken = self.free, Resources.zero(), {}
        usage = dict(self.usage)

        def enough(available: Resources, own: Resources) -> bool:
            return p.demand.fits_in(available) and self.within_limit(p, own)

        for r in candidates:
            if enough(available, own):
                break
            short = {name for name in _DIMENSIONS if getattr(p.demand, name) > getattr(available, name)}
            if r.project == p.project and limit is not None:
                over = self.used(p.project) - own + p.demand
                short |= {name for name in _DIMENSIONS if getattr(over, name) > getattr(limit, name)}
            if not any(getattr(r.demand, name) > 0 for name in short):
                continue  # holds nothing that is short: evicting it could not help
            if r.project != p.project and usage[r.project].fits_in(self.quota(r.project).guaranteed):
                continue  # its project is back within its guarantee: nothing more of it may go
            taken[r.id] = r
            usage[r.project] -= r.demand
            available += r.demand
            own += r.demand if r.project == p.project else Resources.zero()
        if not enough(available, own):
            return None
        # Give back every victim it can do without, the last taken (the most valuable) first.
        for r in reversed(list(taken.values())):
            mine = r.demand if r.project == p.project else Resources.zero()
            if enough(available - r.demand, own - mine):
                available -= r.demand
                own -= mine
                del taken[r.id]
        return list(taken.values())

    def reclaimable(self, p: Pending) -> list[Running]:
        """What other projects hold beyond their guarantees, in the order reclaim takes it: the project of the
        highest weighted share first, then lowest priority, then the most recently started (`alive`'s order)."""
        over = {project for project, used in self.usage.items()
                if project != p.project and not used.fits_in(self.quota(project).guaranteed)}
        ranked = sorted(over, key=lambda project: (-self.share(project), project))
        return [r for project in ranked for r in self.alive.get(project, {}).values()]

    def evict(self, victim: Running, by: int) -> None:
        del self.alive[victim.project][victim.id]
        if victim.evictable:
            self.evictable[victim.project][victim.priority] -= victim.demand
        self.evicted[victim.id] = (victim, by)
        self.free += victim.demand
        self.add_usage(victim.project, victim.demand, -1)

    def reprieve(self) -> None:
        """A victim that fits again once the pass is done keeps running, the most valuable first."""
        for victim_id in reversed(list(self.evicted)):
            victim, _ = self.evicted[victim_id]
            limit = self.quota(victim.project).limit
            back = self.used(victim.project) + victim.demand
            if victim.demand.fits_in(self.free) and (limit is None or back.fits_in(limit)):
                del self.evicted[victim_id]
                self.free -= victim.demand
                self.add_usage(victim.project, victim.demand)
