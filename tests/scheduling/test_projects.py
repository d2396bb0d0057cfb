"""The pure scheduler with projects (no Django): limits, priority within a project, reclaim of guarantees
across projects, and lending by weighted share; with one project and no limit, exactly the planner."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.planner import PREEMPTION_CAP, Running, plan
from scheduling.projects import NO_QUOTA, QUOTA_LIMIT, RESERVED, RESOURCES, Quota, plan_with_quotas, weighted_share
from scheduling.resources import Resources
from tests.scheduling.test_planner import demands, pend, res, run, scenarios, total

A, B, C = 1, 2, 3
CAPACITY = res(8, 64, 8)


def in_project(project, item):
    return replace(item, project=project)


def test_a_project_never_exceeds_its_limit_and_waits_for_it():
    quotas = {A: Quota(limit=res(8, 64, 2))}
    result = plan_with_quotas(CAPACITY, [in_project(A, run(1, 9, res(1, 1, 2)))],
                              [in_project(A, pend(10, 5, res(1, 1, 1))), in_project(A, pend(11, 0, res(1, 1, 0)))],
                              quotas)
    # 10 would take A to 3 of 2 GPUs, and A runs nothing of lower priority to make room.
    assert result.plan.starts == (11,) and result.plan.preemptions == ()
    assert result.waiting == {10: QUOTA_LIMIT}


def test_at_its_limit_a_project_makes_room_by_evicting_its_own_lower_priorities():
    quotas = {A: Quota(limit=res(8, 64, 4))}
    running = [in_project(A, run(1, 0, res(1, 1, 2), started=0)), in_project(A, run(2, 0, res(1, 1, 2), started=1))]
    result = plan_with_quotas(CAPACITY, running, [in_project(A, pend(10, 5, res(1, 1, 2)))], quotas)
    # Capacity is free, the limit is not: the most recently started of its own goes.
    assert result.plan.preemptions == ((2, 10),) and result.plan.starts == (10,)
    # Of equal priority, nothing of its own may go: it waits for its limit.
    result = plan_with_quotas(CAPACITY, running, [in_project(A, pend(10, 0, res(1, 1, 2)))], quotas)
    assert result.plan.preemptions == () and result.waiting == {10: QUOTA_LIMIT}


def test_priority_preempts_within_a_project_and_never_across_projects():
    running = [in_project(A, run(1, 0, res(1, 1, 4))), in_project(B, run(2, 0, res(1, 1, 4)))]
    urgent_b = in_project(B, pend(10, 9, res(1, 1, 4)))
    result = plan_with_quotas(CAPACITY, running, [urgent_b], {})
    assert result.plan.preemptions == ((2, 10),) and result.plan.starts == (10,)
    # Nothing of B's own to evict: A's lower priority is not B's to take.
    result = plan_with_quotas(CAPACITY, running[:1] + [in_project(B, run(2, 9, res(1, 1, 4)))], [urgent_b], {})
    assert result.plan.starts == () and result.waiting == {10: RESOURCES}


def test_a_guarantee_is_reclaimed_from_a_borrower_whatever_its_priority():
    quotas = {A: Quota(guaranteed=res(4, 32, 4)), B: Quota(guaranteed=res(4, 32, 4))}
    borrowing = [in_project(B, run(1, 100, res(1, 1, 4), started=0)),
                 in_project(B, run(2, 100, res(1, 1, 4), started=1))]
    result = plan_with_quotas(CAPACITY, borrowing, [in_project(A, pend(10, 0, res(1, 1, 4)))], quotas)
    # Only what is needed, the most recently started of B's first; B keeps its guarantee.
    assert result.plan.preemptions == ((2, 10),) and result.plan.starts == (10,)


def test_reclaim_never_touches_a_project_within_its_guarantee():
    quotas = {A: Quota(guaranteed=res(4, 32, 4)), B: Quota(guaranteed=res(4, 32, 4))}
    within = [in_project(B, run(1, 0, res(1, 1, 4)))]
    result = plan_with_quotas(res(8, 64, 4), within, [in_project(A, pend(10, 0, res(1, 1, 4)))], quotas)
    assert result.plan.preemptions == () and result.waiting == {10: RESOURCES}


def test_work_beyond_a_guarantee_borrows_and_cannot_reclaim():
    quotas = {A: Quota(guaranteed=res(2, 16, 2)), B: Quota(guaranteed=res(2, 16, 2))}
    running = [in_project(B, run(1, 0, res(1, 1, 6)))]  # B borrows 4 GPUs
    result = plan_with_quotas(CAPACITY, running, [in_project(A, pend(10, 0, res(1, 1, 3)))], quotas)
    assert result.plan.preemptions == () and result.waiting == {10: RESOURCES}  # 3 GPUs is beyond A's 2


def test_lending_goes_to_the_lowest_weighted_share_first():
    quotas = {A: Quota(weight=1), B: Quota(weight=3)}
    running = [in_project(A, run(1, 0, res(0, 0, 2))), in_project(B, run(2, 0, res(0, 0, 4)))]
    # A's share 2/8 = 0.25; B's 4/8 / 3 = 0.17: B's later submission goes first and takes the last GPU.
    pending = [in_project(A, pend(10, 0, res(0, 0, 2), created=0)), in_project(B, pend(11, 0, res(0, 0, 2), created=5))]
    result = plan_with_quotas(CAPACITY, running, pending, quotas)
    assert result.plan.starts == (11,) and result.waiting == {10: RESOURCES}
    assert weighted_share(res(0, 0, 4), quotas[B], CAPACITY) < weighted_share(res(0, 0, 2), quotas[A], CAPACITY)


def test_within_a_guarantee_goes_before_borrowing():
    quotas = {A: Quota(guaranteed=res(0, 0, 2))}
    pending = [in_project(B, pend(10, 50, res(0, 0, 2), created=0)),
               in_project(A, pend(11, 0, res(0, 0, 2), created=9))]
    result = plan_with_quotas(res(8, 64, 2), [], pending, quotas)
    assert result.plan.starts == (11,)


def test_a_reservation_holds_what_is_free_for_its_deployment_whoever_comes_behind():
    running = [in_project(C, run(1, 9, res(0, 0, 6)))]
    pending = [in_project(A, pend(10, 0, res(0, 0, 4), due=True)), in_project(B, pend(11, 0, res(0, 0, 2), created=1))]
    result = plan_with_quotas(CAPACITY, running, pending, {})
    assert result.plan.reservation == 10 and result.plan.starts == ()
    assert result.waiting == {10: RESOURCES, 11: RESERVED}


def test_with_one_project_and_no_limit_the_planner_decides_alone():
    running = [run(1, 0, res(1, 1, 4))]
    pending = [pend(10, 5, res(1, 1, 8))]
    assert plan_with_quotas(CAPACITY, running, pending, {0: Quota(guaranteed=res(1))}).plan == plan(
        CAPACITY, running, pending)


# --- properties ------------------------------------------------------------------------------------------------

quota_specs = st.builds(
    lambda g, extra, limited, weight: Quota(g, g + extra if limited else None, weight),
    demands, demands, st.booleans(), st.integers(1, 3))


@st.composite
def shared(draw):
    capacity, running, pending = draw(scenarios())
    projects = st.sampled_from([A, B, C])
    running = [in_project(draw(projects), r) for r in running]
    pending = [in_project(draw(projects), p) for p in pending]
    quotas = {p: draw(quota_specs) for p in (A, B, C)}
    # The guarantees of a cluster never sum to more than its capacity: drop them, the last project's first.
    for project in (C, B, A):
        if not total(q.guaranteed for q in quotas.values()).fits_in(capacity):
            quotas[project] = replace(quotas[project], guaranteed=Resources.zero())
    return capacity, running, pending, quotas


def _running(item):
    """A deployment the pass started, as the next pass sees it running."""
    if hasattr(item, "started_at"):
        return item
    return Running(item.id, item.priority, item.demand, item.created_at, item.preemptions, item.project)


def usage_of(running, project):
    return total(r.demand for r in running if r.project == project)


@settings(max_examples=400, deadline=None)
@given(shared())
def test_properties_of_a_pass_with_projects(case):
    capacity, running, pending, quotas = case
    result = plan_with_quotas(capacity, running, pending, quotas)
    if not (capacity - total(r.demand for r in running)).is_nonnegative():
        return
    by_id = {r.id: r for r in running} | {p.id: p for p in pending}
    victims = {v for v, _ in result.plan.preemptions}
    after = [r for r in running if r.id not in victims] + [by_id[s] for s in result.plan.starts]
    assert total(r.demand for r in after).fits_in(capacity)
    for project, quota in quotas.items():
        started_here = [s for s in result.plan.starts if by_id[s].project == project]
        if quota.limit is not None and started_here:
            assert usage_of(after, project).fits_in(quota.limit)  # no start takes a project past its limit
    # Replay the pass in the order it started things, each start after its own victims' evictions.
    usage = {p: usage_of(running, p) for p in quotas}
    victims_of = {}
    for victim_id, by in result.plan.preemptions:
        victims_of.setdefault(by, []).append(by_id[victim_id])
    for started in result.plan.starts:
        preemptor = by_id[started]
        for victim in victims_of.get(started, []):
            if victim.project == preemptor.project:
                # Priority preempts strictly lower priority, within the project, under the cap.
                assert victim.priority < preemptor.priority and victim.preemptions < PREEMPTION_CAP
            else:
                # Reclaim: only from a project still above its guarantee, for one within its own.
                assert not usage[victim.project].fits_in(quotas[victim.project].guaranteed)
                assert (usage[preemptor.project] + preemptor.demand).fits_in(quotas[preemptor.project].guaranteed)
            usage[victim.project] -= victim.demand
        usage[preemptor.project] += preemptor.demand
    # Inclusion-minimal: no victim could have kept running beside what the pass leaves free (and does not set
    # aside for a reservation), within its project's limit.
    for victim_id, _ in result.plan.preemptions if result.plan.reservation is None else ():
        victim = by_id[victim_id]
        limit = quotas[victim.project].limit
        assert not (victim.demand.fits_in(result.plan.free)
                    and (limit is None or (usage_of(after, victim.project) + victim.demand).fits_in(limit)))
    if result.waiting:  # the rules with projects applied: every pending deployment starts or says why it waits
        assert set(result.waiting) == {p.id for p in pending} - set(result.plan.starts)
    # A deployment within its guarantee left waiting for resources could not start by reclaiming either: a
    # pass over what this one leaves would not start it alone.
    now_running = [r for r in running if r.id not in victims] + [
        replace(by_id[s], preemptions=0) for s in result.plan.starts]
    for p in pending:
        within = (usage_of(after, p.project) + p.demand).fits_in(quotas[p.project].guaranteed)
        if result.waiting.get(p.id) == RESOURCES and within and result.plan.reservation is None:
            again = plan_with_quotas(capacity, [_running(r) for r in now_running], [p], quotas)
            assert again.plan.starts == ()


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_with_one_project_and_no_limit_the_plans_equal_todays(case):
    capacity, running, pending = case
    quotas = {0: Quota(guaranteed=Resources.zero(), weight=2)}
    assert plan_with_quotas(capacity, running, pending, quotas).plan == plan(capacity, running, pending)
    assert NO_QUOTA.limit is None
