"""Unit and property-based tests of the pure scheduler (no Django needed)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.insight import describe_duration, describe_wait
from scheduling.planner import (
    PREEMPTION_CAP,
    Pending,
    Plan,
    Running,
    in_queue_order,
    plan,
    plan_if_everything_fits,
    queue_key,
)
from scheduling.resources import Resources

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def res(cpu: str | int = 0, ram: str | int = 0, gpu: int = 0) -> Resources:
    return Resources(Decimal(cpu), Decimal(ram), gpu)


def run(id: int, priority: int, demand: Resources, started: int = 0) -> Running:
    return Running(id, priority, demand, T0 + timedelta(minutes=started))


def pend(id: int, priority: int, demand: Resources, created: int = 0, due: bool = False) -> Pending:
    return Pending(id, priority, demand, T0 + timedelta(minutes=created), due)


def total(demands: Iterable[Resources]) -> Resources:
    result = Resources.zero()
    for demand in demands:
        result += demand
    return result


# --- Resources -------------------------------------------------------------------------------


def test_resources_add_and_subtract_componentwise() -> None:
    assert res("1.5", "2", 1) + res("0.25", "1", 2) == res("1.75", "3", 3)
    assert res("1.5", "2", 1) - res("0.25", "3", 2) == res("1.25", "-1", -1)


def test_fits_in_requires_every_component_to_fit() -> None:
    assert res(1, 1, 1).fits_in(res(1, 1, 1))
    assert not res(1, 1, 2).fits_in(res(5, 5, 1))
    assert not res("1.001", 0, 0).fits_in(res(1, 5, 5))


def test_shortfall_is_what_is_missing_per_component() -> None:
    assert res(2, 4, 1).shortfall(res("0.5", 8, 0)) == res("1.5", 0, 1)
    assert res(1, 1, 1).shortfall(res(2, 2, 2)) == Resources.zero()


def test_is_nonnegative_rejects_any_negative_component() -> None:
    assert Resources.zero().is_nonnegative()
    assert not res(1, 1, -1).is_nonnegative()
    assert not res("-0.001", 1, 1).is_nonnegative()


# --- plan: unit rules --------------------------------------------------------------------------


def test_pending_that_fits_starts_and_free_shrinks() -> None:
    result = plan(res(4, 16, 1), [run(1, 0, res(1, 4))], [pend(10, 0, res(2, 8, 1))])
    assert result == Plan(starts=(10,), preemptions=(), free=res(1, 4, 0))


def test_pending_waits_when_cluster_is_full() -> None:
    result = plan(res(2), [run(1, 5, res(2))], [pend(10, 5, res(1))])
    assert result == Plan(starts=(), preemptions=(), free=res(0))


@given(st.lists(st.tuples(st.integers(-2, 2), st.integers(0, 3)), max_size=30), st.randoms())
def test_in_queue_order_sorts_exactly_by_queue_key(keys: list[tuple[int, int]], shuffle: Random) -> None:
    items = [pend(id, priority, res(), created) for id, (priority, created) in enumerate(keys)]
    shuffle.shuffle(items)
    assert in_queue_order(items) == sorted(items, key=queue_key)


def test_higher_priority_starts_first() -> None:
    result = plan(res(1), [], [pend(10, 1, res(1), created=0), pend(11, 2, res(1), created=5)])
    assert result.starts == (11,)


def test_earlier_created_starts_first_within_a_priority() -> None:
    result = plan(res(1), [], [pend(10, 1, res(1), created=5), pend(11, 1, res(1), created=0)])
    assert result.starts == (11,)


def test_lower_id_starts_first_when_created_at_the_same_time() -> None:
    result = plan(res(1), [], [pend(11, 1, res(1)), pend(10, 1, res(1))])
    assert result.starts == (10,)


def test_higher_priority_preempts_lower_priority() -> None:
    result = plan(res(2), [run(1, 0, res(2))], [pend(10, 1, res(1))])
    assert result == Plan(starts=(10,), preemptions=((1, 10),), free=res(1))


def test_lowest_priority_is_evicted_first() -> None:
    running = [run(1, 0, res(1), started=0), run(2, 1, res(1), started=9)]
    result = plan(res(2), running, [pend(10, 2, res(1))])
    assert result.preemptions == ((1, 10),)


def test_most_recently_started_is_evicted_first_among_equal_priority() -> None:
    running = [run(1, 0, res(1), started=9), run(2, 0, res(1), started=0)]
    result = plan(res(2), running, [pend(10, 1, res(1))])
    assert result.preemptions == ((1, 10),)


def test_victim_not_needed_after_greedy_eviction_is_reprieved() -> None:
    # Greedy evicts 1 then 2; 2 alone suffices, so 1 goes back before 11 could take its place.
    running = [run(1, 0, res(1)), run(2, 1, res(3))]
    result = plan(res(4), running, [pend(10, 5, res(3)), pend(11, 0, res(1))])
    assert result == Plan(starts=(10,), preemptions=((2, 10),), free=res(0))


def test_victim_that_contributes_nothing_short_keeps_running() -> None:
    running = [run(1, 0, res(0, 0, 1)), run(2, 1, res(2))]
    result = plan(res(2, 0, 1), running, [pend(10, 5, res(2))])
    assert result.preemptions == ((2, 10),)


def test_a_deployment_preempted_cap_times_is_no_longer_a_victim() -> None:
    protected = replace(run(1, 0, res(gpu=1), started=5), preemptions=PREEMPTION_CAP)
    older = replace(run(2, 0, res(gpu=1), started=1), preemptions=PREEMPTION_CAP - 1)
    result = plan(res(gpu=2), [protected, older], [pend(3, 5, res(gpu=1))])
    assert result.preemptions == ((2, 3),)  # the older one goes, though the protected one started later
    assert plan(res(gpu=2), [protected, older], [pend(3, 5, res(gpu=2))]).starts == ()


def test_equal_priority_is_never_preempted() -> None:
    result = plan(res(2), [run(1, 3, res(2))], [pend(10, 3, res(1))])
    assert result == Plan(starts=(), preemptions=(), free=res(0))


def test_higher_priority_is_never_preempted() -> None:
    result = plan(res(2), [run(1, 4, res(2))], [pend(10, 3, res(1))])
    assert result == Plan(starts=(), preemptions=(), free=res(0))


def test_preemption_never_takes_more_than_strictly_lower_priority_offers() -> None:
    running = [run(1, 0, res(1)), run(2, 5, res(1))]
    result = plan(res(2), running, [pend(10, 5, res(2))])
    assert result == Plan(starts=(), preemptions=(), free=res(0))


def test_big_pending_does_not_block_a_smaller_one_behind_it() -> None:
    pending = [pend(10, 9, res(8), created=0), pend(11, 1, res(1), created=5)]
    result = plan(res(2), [run(1, 5, res(1))], pending)
    assert result == Plan(starts=(11,), preemptions=(), free=res(0))


def test_victim_that_fits_again_after_a_later_preemption_keeps_running() -> None:
    # 10 takes 1's GPU; 11 then evicts 2, whose spare GPU lets 1 fit again.
    running = [run(1, 1, res(0, 0, 1)), run(2, 2, res(2, 0, 1))]
    pending = [pend(10, 9, res(0, 0, 1)), pend(11, 5, res(2))]
    result = plan(res(2, 0, 2), running, pending)
    assert result == Plan(starts=(10, 11), preemptions=((2, 11),), free=res(0))


def test_over_committed_capacity_starts_and_preempts_nothing() -> None:
    running = [run(1, 0, res(3)), run(2, 0, res(1))]
    pending = [pend(10, 9, res("0.5")), pend(11, 9, Resources.zero())]
    result = plan(res(2, 0, 0), running, pending)
    assert result == Plan(starts=(), preemptions=(), free=res(-2))


def test_empty_inputs_give_an_empty_plan() -> None:
    assert plan(res(4, 8, 1), [], []) == Plan(starts=(), preemptions=(), free=res(4, 8, 1))
    assert plan(Resources.zero(), [], []) == Plan(starts=(), preemptions=(), free=Resources.zero())


def test_decimal_arithmetic_is_exact() -> None:
    pending = [pend(10, 0, res("0.1")), pend(11, 0, res("0.1")), pend(12, 0, res("0.1"))]
    result = plan(res("0.3"), [], pending)
    assert result.starts == (10, 11, 12)
    assert result.free == Resources.zero()


def test_plan_does_not_depend_on_input_order() -> None:
    running = [run(1, 0, res(1), started=1), run(2, 0, res(1), started=1), run(3, 2, res(2))]
    pending = [pend(10, 1, res(1)), pend(11, 1, res(1)), pend(12, 3, res(2, 0, 1))]
    forward = plan(res(4, 0, 1), running, pending)
    assert plan(res(4, 0, 1), running[::-1], pending[::-1]) == forward


def test_large_plan_completes() -> None:
    running = [run(i, i % 7, res("0.5", 2, i % 2), started=i % 50) for i in range(500)]
    pending = [pend(10_000 + i, i % 9, res(i % 5, i % 17, i % 3), created=i % 100) for i in range(2000)]
    capacity = total(r.demand for r in running) + res(10, 40, 4)
    result = plan(capacity, running, pending)
    assert result.free.is_nonnegative()


# --- describe_wait -----------------------------------------------------------------------------


def test_describe_wait_names_the_short_resource_and_how_much_is_free() -> None:
    assert describe_wait(res(1, 1, 2), res(4, 4, 1), 0) == "needs 2 GPU, 1 free"


def test_describe_wait_names_every_short_resource() -> None:
    assert describe_wait(res("1.5", 4), res("0.5", 2), 0) == "needs 1.5 CPU, 0.5 free; RAM 4 GB, 2 free"
    assert describe_wait(res(2, 0, 3), res(1, 8, 0), 0) == "needs 2 CPU, 1 free; 3 GPU, 0 free"


def test_describe_wait_normalizes_decimals() -> None:
    assert describe_wait(res("2.000"), res("0.500"), 0) == "needs 2 CPU, 0.5 free"
    assert describe_wait(res(0, "10.000"), res(0, "0.000"), 0) == "needs RAM 10 GB, 0 free"


def test_describe_wait_never_shows_negative_free() -> None:
    assert describe_wait(res(1), res(-2), 0) == "needs 1 CPU, 0 free"


def test_describe_wait_mentions_deployments_ahead() -> None:
    assert describe_wait(res(0, 0, 2), res(0, 0, 1), 3) == "needs 2 GPU, 1 free; 3 deployments of higher priority ahead"
    assert describe_wait(res(0, 0, 2), res(0, 0, 1), 1) == "needs 2 GPU, 1 free; 1 deployment of higher priority ahead"


def test_describe_wait_when_nothing_is_short() -> None:
    assert describe_wait(res(1), res(2), 0) == "fits; waiting for the scheduler"
    assert describe_wait(res(1), res(2), 2) == "fits; waiting for the scheduler; 2 deployments of higher priority ahead"


# --- plan: properties --------------------------------------------------------------------------

demands = st.builds(
    Resources,
    cpu=st.sampled_from([Decimal(v) for v in ("0", "0.001", "0.1", "0.5", "1", "1.5", "2")]),
    ram=st.sampled_from([Decimal(v) for v in ("0", "0.5", "1", "2", "4")]),
    gpu=st.integers(0, 2),
)
specs = st.lists(st.tuples(st.integers(0, 3), demands, st.integers(0, 4)), max_size=8)


@st.composite
def scenarios(
    draw: st.DrawFn, holds_everything: bool = False, any_capacity: bool = False
) -> tuple[Resources, list[Running], list[Pending]]:
    running = [replace(run(i, p, d, started=m), preemptions=draw(st.integers(0, PREEMPTION_CAP)))
               for i, (p, d, m) in enumerate(draw(specs), start=1)]
    pending = [replace(pend(i, p, d, created=m, due=draw(st.booleans())), preemptions=draw(st.integers(0, 2)))
               for i, (p, d, m) in enumerate(draw(specs), start=100)]
    if any_capacity:
        return draw(demands), running, pending
    held = total(r.demand for r in running)
    if holds_everything:
        held += total(p.demand for p in pending)
    return held + draw(demands), running, pending


def reference_plan(capacity: Resources, running: Sequence[Running], pending: Sequence[Pending]) -> Plan:
    """The rules read literally: quadratic, but obviously what the contract says."""
    free = capacity - total(r.demand for r in running)
    if not free.is_nonnegative():
        return Plan((), (), free)
    reserved: Pending | None = None
    held = Resources.zero()
    # Those preempted PREEMPTION_CAP times already are never victims.
    eviction_order = sorted((r for r in running if r.preemptions < PREEMPTION_CAP),
                            key=lambda r: (r.priority, -r.started_at.timestamp(), -r.id))
    # Deployments started in this pass never rank below a later one in the queue, so only the
    # originally running ones can ever be candidates.
    alive = list(eviction_order)
    victims: list[tuple[Running, int]] = []
    starts: list[int] = []
    for p in sorted(pending, key=lambda p: (-p.priority, p.created_at, p.id)):
        if p.demand.fits_in(free):
            free -= p.demand
            starts.append(p.id)
            continue
        may_preempt = reserved is None or p.priority < reserved.priority
        candidates = [r for r in alive if r.priority < p.priority] if may_preempt else []
        if not p.demand.fits_in(free + total(c.demand for c in candidates)):
            if reserved is None and p.due and p.demand.fits_in(capacity):
                reserved = p
                held = Resources(*(min(getattr(p.demand, n), getattr(free, n)) for n in ("cpu", "ram", "gpu")))
                free -= held
            continue
        available, chosen = free, []
        for c in candidates:
            if p.demand.fits_in(available):
                break
            available += c.demand
            chosen.append(c)
        needed = []
        for c in reversed(chosen):
            if p.demand.fits_in(available - c.demand):
                available -= c.demand
            else:
                needed.append(c)
        for c in reversed(needed):
            alive.remove(c)
            victims.append((c, p.id))
        free = available - p.demand
        starts.append(p.id)
    for c in sorted((c for c, _ in victims), key=eviction_order.index, reverse=True):
        if c.demand.fits_in(free):
            free -= c.demand
            victims = [v for v in victims if v[0] is not c]
    free += held
    return Plan(tuple(starts), tuple((c.id, by) for c, by in victims), free, reserved.id if reserved else None)


def queue_order(pending: Iterable[Pending]) -> list[Pending]:
    return sorted(pending, key=lambda p: (-p.priority, p.created_at, p.id))


def not_due(pending: Iterable[Pending]) -> list[Pending]:
    return [replace(p, due=False) for p in pending]


def plan_and_ahead(capacity: Resources, running: Sequence[Running],
                   pending: Sequence[Pending]) -> tuple[Plan, set[int]]:
    """The plan, and the ids ahead of its reservation in queue order (none without one)."""
    result = plan(capacity, running, pending)
    queue = [p.id for p in queue_order(pending)]
    return result, set(queue[: queue.index(result.reservation)] if result.reservation is not None else ())


def check_contract(capacity: Resources, running: Sequence[Running], pending: Sequence[Pending], result: Plan) -> None:
    running_by_id = {r.id: r for r in running}
    pending_by_id = {p.id: p for p in pending}
    started = set(result.starts)
    victims = [running_by_id[v] for v, _ in result.preemptions]
    victim_ids = {v.id for v in victims}
    final = [(r.priority, r.demand, r.preemptions) for r in running if r.id not in victim_ids]
    final += [(pending_by_id[i].priority, pending_by_id[i].demand, pending_by_id[i].preemptions)
              for i in result.starts]

    # 1. never over capacity, and free is exactly what remains
    assert total(d for _, d, _ in final).fits_in(capacity)
    assert result.free == capacity - total(d for _, d, _ in final)

    # 2. preemptions are legitimate
    assert len(started) == len(result.starts) and started <= pending_by_id.keys()
    assert len(victim_ids) == len(victims)
    assert not victim_ids & started
    for victim_id, preemptor_id in result.preemptions:
        assert preemptor_id in started
        assert running_by_id[victim_id].priority < pending_by_id[preemptor_id].priority
        assert running_by_id[victim_id].preemptions < PREEMPTION_CAP  # the cap protects

    # 3. nothing left waiting fits (behind a reservation, what is free may be set aside)
    waiting = [p for p in pending if p.id not in started]
    if result.reservation is not None:
        queue = [p.id for p in queue_order(pending)]
        waiting = [p for p in waiting if queue.index(p.id) <= queue.index(result.reservation)]
    for p in waiting:
        assert not p.demand.fits_in(result.free)

    # 4. nothing left waiting could have preempted its way in
    for p in waiting:
        evictable = total(d for priority, d, times in final if priority < p.priority and times < PREEMPTION_CAP)
        assert not p.demand.fits_in(result.free + evictable)

    # 5. no unnecessary victim: putting any one back would not fit (beside what a reservation sets aside)
    for v in victims if result.reservation is None else ():
        assert not v.demand.fits_in(result.free)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_plan_honours_the_contract(scenario: tuple[Resources, list[Running], list[Pending]]) -> None:
    capacity, running, pending = scenario
    check_contract(capacity, running, pending, plan(capacity, running, pending))


@settings(max_examples=300, deadline=None)
@given(scenarios(holds_everything=True))
def test_everything_starts_and_nothing_is_preempted_when_capacity_holds_it_all(
    scenario: tuple[Resources, list[Running], list[Pending]],
) -> None:
    capacity, running, pending = scenario
    result = plan(capacity, running, pending)
    assert sorted(result.starts) == sorted(p.id for p in pending)
    assert result.preemptions == ()


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_plan_is_the_same_whatever_the_input_order(
    scenario: tuple[Resources, list[Running], list[Pending]], rng: Random
) -> None:
    capacity, running, pending = scenario
    shuffled_running, shuffled_pending = list(running), list(pending)
    rng.shuffle(shuffled_running)
    rng.shuffle(shuffled_pending)
    assert plan(capacity, shuffled_running, shuffled_pending) == plan(capacity, running, pending)


@settings(max_examples=300, deadline=None)
@given(scenarios(any_capacity=True))
def test_plan_matches_a_literal_reading_of_the_rules(scenario: tuple[Resources, list[Running], list[Pending]]) -> None:
    capacity, running, pending = scenario
    assert plan(capacity, running, pending) == reference_plan(capacity, running, pending)


@settings(max_examples=300, deadline=None)
@given(scenarios(any_capacity=True))
def test_over_committed_capacity_never_starts_or_preempts(
    scenario: tuple[Resources, list[Running], list[Pending]],
) -> None:
    capacity, running, pending = scenario
    free = capacity - total(r.demand for r in running)
    result = plan(capacity, running, pending)
    if not free.is_nonnegative():
        assert result == Plan(starts=(), preemptions=(), free=free)


# --- plan: the starvation bound -----------------------------------------------------------------

def test_a_due_deployment_that_cannot_start_keeps_what_frees_up_from_those_behind_it() -> None:
    running = [run(1, 0, res(2))]
    pending = [pend(10, 0, res(3), created=1, due=True), pend(11, 0, res(1), created=2)]
    result = plan(res(4), running, pending)
    assert result == Plan(starts=(), preemptions=(), free=res(2), reservation=10)
    # Without the reservation the small one slips past, as backfill allows.
    assert plan(res(4), running, not_due(pending)).starts == (11,)


def test_the_reservation_sets_aside_only_the_reserved_deployments_demand() -> None:
    pending = [pend(10, 0, res(3, 0, 1), created=1, due=True), pend(11, 0, res(1, 1), created=2)]
    result = plan(res(4, 1, 1), [run(1, 0, res(0, 0, 1))], pending)
    assert result.reservation == 10 and result.starts == (11,)  # RAM and CPU beyond its need stay usable


def test_the_reserved_deployment_starts_as_soon_as_its_demand_is_free() -> None:
    pending = [pend(10, 0, res(3), created=1, due=True), pend(11, 0, res(1), created=2)]
    assert plan(res(4), [run(1, 0, res(1))], pending) == Plan(starts=(10,), preemptions=(), free=res(0))


def test_a_deployment_too_large_for_the_cluster_reserves_nothing() -> None:
    pending = [pend(10, 0, res(5), created=1, due=True), pend(11, 0, res(1), created=2)]
    result = plan(res(4), [run(1, 0, res(2))], pending)
    assert result.reservation is None and result.starts == (11,)


def test_behind_a_reservation_its_own_priority_does_not_preempt_but_lower_ones_do() -> None:
    running = [run(1, 0, res(2)), run(2, 5, res(2))]
    pending = [pend(10, 5, res(4), created=1, due=True), pend(11, 5, res(2), created=2),
               pend(12, 3, res(2), created=3)]
    result = plan(res(4), running, pending)
    assert result.reservation == 10
    assert result.starts == (12,) and result.preemptions == ((1, 12),)


def test_higher_priority_ahead_of_a_reservation_is_unaffected() -> None:
    pending = [pend(10, 9, res(2), created=5), pend(11, 0, res(4), created=1, due=True)]
    assert plan(res(4), [run(1, 0, res(2))], pending).starts == (10,)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_with_no_reservation_taken_plans_are_exactly_todays(
    scenario: tuple[Resources, list[Running], list[Pending]],
) -> None:
    capacity, running, pending = scenario
    result = plan(capacity, running, pending)
    today = plan(capacity, running, not_due(pending))
    if result.reservation is None:
        assert result == today
    assert today.reservation is None


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_a_reservation_never_changes_what_happens_ahead_of_it(
    scenario: tuple[Resources, list[Running], list[Pending]],
) -> None:
    capacity, running, pending = scenario
    result, ahead = plan_and_ahead(capacity, running, pending)
    if result.reservation is None:
        return
    today = plan(capacity, running, not_due(pending))
    assert [pk for pk in result.starts if pk in ahead] == [pk for pk in today.starts if pk in ahead]
    assert result.reservation not in result.starts


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_nothing_behind_a_reservation_starts_on_what_is_set_aside(
    scenario: tuple[Resources, list[Running], list[Pending]],
) -> None:
    capacity, running, pending = scenario
    result, ahead = plan_and_ahead(capacity, running, pending)
    if result.reservation is None:
        return
    # What was free when the walk reached the reserved deployment, as this plan's own moves ahead of it tell.
    by_id, held_by = {p.id: p for p in pending}, {r.id: r.demand for r in running}
    free_then = (capacity - total(held_by.values()) - total(by_id[pk].demand for pk in result.starts if pk in ahead)
                 + total(held_by[v] for v, by in result.preemptions if by in ahead))
    reserved = by_id[result.reservation].demand
    set_aside = reserved.meet(free_then)
    started_behind = total(by_id[pk].demand for pk in result.starts if pk not in ahead)
    evicted_behind = total(held_by[v] for v, by in result.preemptions if by not in ahead)
    assert started_behind.fits_in(free_then - set_aside + evicted_behind)


def test_shortcut_declines_when_not_everything_fits() -> None:
    assert plan_if_everything_fits(res(2), [pend(1, 0, res(1)), pend(2, 0, res("1.001"))]) is None


def test_shortcut_starts_everything_in_queue_order() -> None:
    pending = [pend(1, 0, res(1), created=2), pend(2, 5, res(1), created=3), pend(3, 0, res(1), created=1)]
    assert plan_if_everything_fits(res(3, 1), pending) == Plan(starts=(2, 3, 1), preemptions=(), free=res(0, 1))


@settings(max_examples=300, deadline=None)
@given(scenarios(any_capacity=True))
def test_shortcut_agrees_with_the_full_plan_whenever_it_answers(
    scenario: tuple[Resources, list[Running], list[Pending]],
) -> None:
    capacity, running, pending = scenario
    free = capacity - total(r.demand for r in running)
    shortcut = plan_if_everything_fits(free, pending)
    if shortcut is not None and free.is_nonnegative():
        assert shortcut == plan(capacity, running, pending)


@pytest.mark.parametrize("seconds, words", [(0.4, "0 s"), (45, "45 s"), (723, "12 min 3 s"), (7500, "2 h 5 min")])
def test_describe_duration_says_a_run_time_to_the_second(seconds: float, words: str) -> None:
    assert describe_duration(seconds) == words
