"""Pure: why a pending deployment waits, in a structured explanation and in words, and the reservation a
cluster holds for a deployment that has waited too long."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from .planner import Pending
from .resources import Resources

_UNITS = (("cpu", "{} CPU"), ("ram", "RAM {} GB"), ("gpu", "{} GPU"))


def _amount(value: Decimal | int) -> str:
    # normalize() strips trailing zeros but may yield an exponent (10 -> 1E+1); "f" undoes that.
    return format(Decimal(value).normalize(), "f")


def describe_duration(seconds: float) -> str:
    """A run time in words, to the second: "45 s", "12 min 3 s", "2 h 5 min"."""
    whole = int(seconds)
    hours, minutes, rest = whole // 3600, whole // 60 % 60, whole % 60
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


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


DEPENDENCIES, EXCEEDS_CAPACITY, QUOTA_LIMIT, RESOURCES, RESERVED, SCHEDULING = (
    "dependencies", "exceeds_capacity", "quota_limit", "resources", "reserved", "scheduling")


@dataclass(frozen=True, slots=True)
class ProjectShare:
    """A pending deployment's project on its cluster: what it holds, is guaranteed and may hold at most, and
    whether starting the deployment would take it above its guarantee (`borrowing`)."""

    id: int
    name: str
    usage: Resources
    guaranteed: Resources
    limit: Resources | None
    borrowing: bool


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
    preemptible: Resources  # what running deployments of strictly lower priority that may be preempted hold
    higher_ahead: int  # pending deployments of strictly higher priority
    reserved_for: int | None = None  # the deployment it yields to, when the reason is `reserved`
    project: ProjectShare | None = None


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


def explain_as_decided(demand: Resources, decided: str | None, *, capacity: Resources, free: Resources,
                       preemptible: Resources, waiting_for: Sequence[int], queue_position: int, higher_ahead: int,
                       reserved_for: int | None, project: ProjectShare) -> Explanation:
    """Where quotas decide (scheduling.projects), the reason is the one the pass itself gave: `decided` is
    QUOTA_LIMIT, RESOURCES or RESERVED for one it left waiting, None for one it would start (`scheduling`)."""
    if waiting_for:
        reason = DEPENDENCIES
    elif not demand.fits_in(capacity):
        reason = EXCEEDS_CAPACITY
    else:
        reason = decided or SCHEDULING
    return Explanation(reason, demand.shortfall(free), queue_position, tuple(waiting_for), preemptible,
                       higher_ahead, reserved_for if reason == RESERVED else None, project)


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
    if explanation.reason == QUOTA_LIMIT:
        sentence = describe_limit(explanation.project, demand)
    elif explanation.reason == DEPENDENCIES:
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


def describe_limit(project: ProjectShare, demand: Resources) -> str:
    """The limit its start would exceed, e.g. "project 'research' is at its GPU limit: 8 of 8", or "project
    'research' would exceed its GPU limit: 6 of 8 in use, needs 4"."""
    units = {"cpu": ("CPU", ""), "ram": ("RAM", " GB"), "gpu": ("GPU", "")}
    after = project.usage + demand
    name = next(name for name in ("gpu", "cpu", "ram") if getattr(after, name) > getattr(project.limit, name))
    unit, suffix = units[name]
    used, limit = getattr(project.usage, name), getattr(project.limit, name)
    if used >= limit:
        return f"project '{project.name}' is at its {unit} limit: {_amount(used)} of {_amount(limit)}{suffix}"
    return (f"project '{project.name}' would exceed its {unit} limit: {_amount(used)} of {_amount(limit)}{suffix} "
            f"in use, needs {_amount(getattr(demand, name))}")
