"""Why pending, and what if: the `scheduling` object, its agreement with the planner, and the dry run."""
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st

from deployments.models import Deployment, DeploymentEvent
from organizations.models import Role
from scheduling.insight import RESERVED, RESOURCES, SCHEDULING, explain, lower_priority_holdings, reservation_for
from scheduling.planner import PREEMPTION_CAP, Pending, Running, plan
from scheduling.resources import Resources
from tests.deployments.api import DEPLOYMENTS, action, get, status, submit
from tests.factories import ClusterFactory, MembershipFactory, OrganizationFactory
from tests.workers import real_workers, wait_for_idle_queue

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

# --- Pure: the explanation agrees with the planner on the same snapshot ----------------------------------------

amounts = st.builds(Resources, st.integers(0, 4).map(Decimal), st.integers(0, 4).map(Decimal), st.integers(0, 2))


@st.composite
def snapshots(draw):
    capacity = draw(st.builds(Resources, st.integers(1, 8).map(Decimal), st.integers(1, 8).map(Decimal),
                              st.integers(0, 4)))
    running, held = [], Resources.zero()
    for i, demand in enumerate(draw(st.lists(amounts, max_size=6))):
        if (held + demand).fits_in(capacity):
            held += demand
            running.append(Running(100 + i, draw(st.integers(-2, 2)), demand, T0 + timedelta(seconds=i),
                                   draw(st.integers(0, PREEMPTION_CAP))))
    pending = [Pending(i + 1, draw(st.integers(-2, 2)), demand, T0 + timedelta(seconds=i), due=draw(st.booleans()))
               for i, demand in enumerate(draw(st.lists(amounts, max_size=8)))]
    return capacity, running, pending


@settings(max_examples=500, deadline=None)
@given(snapshots())
def test_every_explanation_agrees_with_the_plan_of_the_same_snapshot(snapshot):
    capacity, running, pending = snapshot
    free = capacity - sum((r.demand for r in running), Resources.zero())
    # As deployments.insight reads them: only what may still be preempted counts.
    lower = lower_priority_holdings([(r.priority, r.demand) for r in running if r.evictable])
    queue = sorted(pending, key=lambda p: (-p.priority, p.created_at, p.id))
    result = plan(capacity, running, pending)
    first_due = next((p for p in queue if p.due and p.demand.fits_in(capacity)), None)
    reservation = reservation_for(first_due, free, lower(first_due.priority)) if first_due else None
    explanations = {}
    for index, p in enumerate(queue):
        behind = reservation if reservation and index > queue.index(first_due) else None
        explanation = explain(p.demand, capacity=capacity, free=free, preemptible=lower(p.priority),
                              waiting_for=(), queue_position=index + 1,
                              higher_ahead=sum(q.priority > p.priority for q in pending), priority=p.priority,
                              behind=behind)
        explanations[p.id] = explanation
        assert explanation.queue_position == index + 1
        assert explanation.shortfall == p.demand.shortfall(free)
        assert explanation.preemptible == sum((r.demand for r in running
                                               if r.priority < p.priority and r.preemptions < PREEMPTION_CAP),
                                              Resources.zero())
        # `resources`: not even evicting everything of lower priority would make it fit what is free now.
        assert (explanation.reason == RESOURCES) == (p.demand.fits_in(capacity)
                                                     and not p.demand.fits_in(free + explanation.preemptible))
        # `reserved`: it would fit, were it not behind a deployment that has waited too long.
        if explanation.reason == RESERVED:
            assert behind is not None and explanation.reserved_for == behind.id
            assert p.demand.fits_in(free + explanation.preemptible)
            assert not p.demand.fits_in(free - behind.held + (explanation.preemptible if p.priority < behind.priority
                                                               else Resources.zero()))
        else:
            assert explanation.reserved_for is None

    # Settled (the plan starts and evicts nothing) exactly when nothing explains itself as a pass due; the
    # first deployment a pass starts always does. Later ones may also start on what an earlier preemption
    # freed beyond its need, so their reason describes the picture before the pass.
    settled = not result.starts and not result.preemptions
    assert settled == all(e.reason != SCHEDULING for e in explanations.values())
    if settled:  # and then the reservation shown is the one the planner holds
        assert result.reservation == (reservation.id if reservation else None)
    if result.starts:
        first = next(p.id for p in queue if p.id in result.starts)
        assert explanations[first].reason == SCHEDULING


# --- Through the API -------------------------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


def scheduling(client, pk) -> dict:
    return get(client, pk)["scheduling"]


@pytestmark_db
def test_a_running_or_finished_deployment_has_no_scheduling_object(dev, cluster):
    pk = submit(dev, cluster)
    assert get(dev, pk)["scheduling"] is None
    action(dev, pk, "complete")
    assert get(dev, pk)["scheduling"] is None


@pytestmark_db
def test_resources_with_shortfall_position_and_what_lower_priority_holds(dev, cluster):
    submit(dev, cluster, gpu=2, cpu="1", priority=5)
    low = submit(dev, cluster, gpu=0, cpu="2", priority=-1)
    first = submit(dev, cluster, gpu=1, cpu="1", priority=5)
    second = submit(dev, cluster, gpu=2, cpu="0", priority=1)
    assert scheduling(dev, first) == {
        "reason": "resources", "shortfall": {"cpu": "0.000", "ram": "0.000", "gpu": 1}, "queue_position": 1,
        "waiting_for": [], "preemptible": {"cpu": "2.000", "ram": "1.000", "gpu": 0}, "reserved_for": None,
        # The default project holds all that runs; without quotas it is guaranteed nothing, so all it runs borrows.
        "project": {"id": cluster.organization.default_project.pk, "usage": {"cpu": "3.000", "ram": "2.000", "gpu": 2},
                    "guaranteed": {"cpu": "0.000", "ram": "0.000", "gpu": 0}, "limit": None, "borrowing": True},
    }
    assert scheduling(dev, second)["queue_position"] == 2 and scheduling(dev, low) is None
    assert get(dev, first)["status_reason"] == "Needs 1 GPU, 0 free."
    assert get(dev, second)["status_reason"] == "Needs 2 GPU, 0 free; 1 deployment of higher priority ahead."


@pytestmark_db
def test_a_deployment_preempted_cap_times_is_not_preemptible_in_the_explanation_nor_the_dry_run(dev, cluster):
    older = submit(dev, cluster, gpu=1, cpu="1", priority=0, name="older")
    Deployment.objects.filter(pk=older).update(preemption_count=PREEMPTION_CAP - 1)
    capped = submit(dev, cluster, gpu=1, cpu="1", priority=0, name="capped")
    Deployment.objects.filter(pk=capped).update(preemption_count=PREEMPTION_CAP)  # as after two preemptions
    # The capped one, started last, would be the first victim by start time; the cap leaves only the older one.
    assert dry_run(dev, cluster, gpu_required=1, cpu_required="1", priority=5).json()["preempts"] == [older]
    body = dry_run(dev, cluster, gpu_required=2, cpu_required="1", priority=5).json()
    assert body["decision"] == "wait" and body["preempts"] == []
    assert body["scheduling"]["reason"] == "resources"
    assert body["scheduling"]["preemptible"] == {"cpu": "1.000", "ram": "1.000", "gpu": 1}
    waiting = submit(dev, cluster, gpu=2, cpu="1", priority=5, name="waits")
    assert [status(dev, pk) for pk in (older, capped, waiting)] == ["running", "running", "pending"]
    assert scheduling(dev, waiting)["preemptible"] == {"cpu": "1.000", "ram": "1.000", "gpu": 1}
    assert scheduling(dev, waiting)["reason"] == "resources"
    assert get(dev, waiting)["status_reason"] == "Needs 2 GPU, 0 free."


@pytestmark_db
def test_dependencies_come_first_and_name_what_it_waits_for(dev, cluster):
    blocker = submit(dev, cluster, gpu=2)
    waiting = submit(dev, cluster, gpu=2, depends_on=[blocker])
    body = get(dev, waiting)
    assert body["scheduling"]["reason"] == "dependencies" and body["scheduling"]["waiting_for"] == [blocker]
    assert body["scheduling"]["shortfall"]["gpu"] == 2  # the other reasons still show
    assert body["status_reason"] == f"Waiting for dependencies #{blocker} (running)."


@pytestmark_db
def test_exceeds_capacity_after_a_shrink(member, dev, cluster):
    submit(dev, cluster, cpu="4")
    big = submit(dev, cluster, cpu="3")
    assert member(Role.ADMIN).patch(f"/api/v1/clusters/{cluster.pk}/", {"cpu_limit": "4"}).status_code == 200
    Deployment.objects.filter(pk=big).update(cpu_required=5)  # as a request made before the cluster shrank
    body = get(dev, big)
    assert body["scheduling"]["reason"] == "exceeds_capacity"
    assert body["status_reason"].startswith("Can never start here")


@pytestmark_db
def test_scheduling_while_a_pass_is_due(dev, cluster):
    # Written without the pass that would follow a submission: it fits, and a pass is due.
    pk = Deployment.objects.create(cluster=cluster, project=cluster.organization.default_project, name="x",
                                   docker_image="i", cpu_required=1).pk
    assert scheduling(dev, pk)["reason"] == "scheduling"
    assert get(dev, pk)["status_reason"] == "Fits; waiting for the scheduler."


@pytestmark_db
def test_a_page_costs_the_same_queries_whatever_the_queue(dev, cluster):
    root = submit(dev, cluster, cpu="4", gpu=2)

    def queries_for_a_page() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert dev.get(f"{DEPLOYMENTS}?status=pending&cluster={cluster.pk}").status_code == 200
        return len(ctx.captured_queries)

    for _ in range(51):  # more than a page: a shorter one is read without counting
        submit(dev, cluster, cpu="1", depends_on=[root])
    few = queries_for_a_page()
    for i in range(40):
        submit(dev, cluster, cpu="1", priority=i % 4, depends_on=[root])
    assert queries_for_a_page() == few
    with CaptureQueriesContext(connection) as ctx:
        get(dev, Deployment.objects.filter(status="pending").last().pk)
    assert len(ctx.captured_queries) <= few


@pytest.mark.django_db
def test_queue_positions_of_a_page_are_the_queue_numbered():
    """The grouped count gives each page row the place the window numbering gives it, ties included: rows
    created at the same microsecond (ordered by id), equal and extreme priorities, pages across clusters."""
    from deployments.insight import queue_positions, queue_positions_by_window
    from deployments.snapshot import one_snapshot

    rng = random.Random(3)
    clusters = [ClusterFactory(organization=OrganizationFactory()) for _ in range(3)]
    projects = {c.pk: c.organization.default_project for c in clusters}
    instants = [T0 + timedelta(microseconds=rng.choice([0, 1, 2, 5, 6, 7, 10**6])) for _ in range(20)]
    Deployment.objects.bulk_create(
        Deployment(name=f"d{i}", cluster=(chosen := rng.choice(clusters)), project=projects[chosen.pk],
                   docker_image="i", created_at=rng.choice(instants),
                   priority=rng.choice([-2**31, -1, 0, 0, 1, 2, 2**31 - 1]),
                   status="pending")
        for i in range(400)
    )
    Deployment.objects.filter(pk__in=Deployment.objects.order_by("?")[:100]).update(status="completed")
    queued = list(Deployment.objects.filter(status="pending").values_list("pk", "cluster_id"))
    for size in (1, 2, 7, 50):
        for _ in range(10):
            page = rng.sample(queued, size)
            ids, cluster_ids = [pk for pk, _ in page], sorted({c for _, c in page})
            with one_snapshot():
                assert queue_positions(cluster_ids, ids) == queue_positions_by_window(cluster_ids, ids)


# --- Dry run -------------------------------------------------------------------------------------------------

def dry_run(client, cluster, **fields):
    return client.post(f"{DEPLOYMENTS}dry-run/", {"name": "what-if", "cluster": cluster.pk, "docker_image": "i",
                                                  **fields})


@pytestmark_db
def test_dry_run_tells_start_preempt_or_wait(dev, cluster):
    victim = submit(dev, cluster, gpu=2, priority=0)
    assert dry_run(dev, cluster, cpu_required="1").json() == {
        "decision": "start", "preempts": [], "scheduling": None, "status_reason": "Would start now."}
    assert dry_run(dev, cluster, gpu_required=1, priority=5).json()["preempts"] == [victim]
    body = dry_run(dev, cluster, gpu_required=1, priority=0).json()
    assert body["decision"] == "wait" and body["scheduling"]["reason"] == "resources"
    assert body["status_reason"] == "Needs 1 GPU, 0 free."


@pytestmark_db
def test_dry_run_creates_nothing_and_sends_nothing(dev, cluster, django_capture_on_commit_callbacks):
    submit(dev, cluster, gpu=2)
    rows, events = Deployment.objects.count(), DeploymentEvent.objects.count()
    with django_capture_on_commit_callbacks() as callbacks:
        assert dry_run(dev, cluster, gpu_required=2, priority=9).json()["decision"] == "preempt"
    assert callbacks == [] and Deployment.objects.count() == rows and DeploymentEvent.objects.count() == events


BAD_BODIES = [
    {"cpu_required": "-1"}, {"cpu_required": "1e309"}, {"gpu_required": 3}, {"priority": 2**31},
    {"depends_on": [999999]}, {"env": {"1X": "y"}}, {"command": "ls"}, {"cluster": None}, {"docker_image": ""},
]


@pytestmark_db
@pytest.mark.parametrize("bad", BAD_BODIES)
def test_dry_run_validates_exactly_as_create(dev, cluster, bad):
    body = {"name": "x", "cluster": cluster.pk, "docker_image": "i", **bad}
    created = dev.post(DEPLOYMENTS, body)
    dry = dev.post(f"{DEPLOYMENTS}dry-run/", body)
    assert (dry.status_code, dry.json()) == (created.status_code, created.json()) and dry.status_code == 400


@pytestmark_db
def test_dry_run_permissions_match_create(member, cluster, auth_client):
    viewer = member(Role.VIEWER)
    body = {"name": "x", "cluster": cluster.pk, "docker_image": "i"}
    assert viewer.post(f"{DEPLOYMENTS}dry-run/", body).status_code == viewer.post(DEPLOYMENTS, body).status_code == 403
    outsider = auth_client.post(f"{DEPLOYMENTS}dry-run/", body)
    assert (outsider.status_code, outsider.json()) == (auth_client.post(DEPLOYMENTS, body).status_code,
                                                       auth_client.post(DEPLOYMENTS, body).json())
    other = ClusterFactory(organization=MembershipFactory(organization=OrganizationFactory()).organization)
    assert member(Role.DEVELOPER).post(f"{DEPLOYMENTS}dry-run/", {**body, "cluster": other.pk}).status_code == 400


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_dry_run_is_what_the_submission_then_gets(dev, organization):
    """Random states through the API with a real worker: decision, victims and position replay exactly."""
    rng = random.Random(9)
    shapes = [("1", "2", 0), ("2", "4", 1), ("0.5", "1", 0), ("3", "8", 2), ("1", "1", 1)]
    decisions = set()
    with real_workers("insight"):
        for round_ in range(12):
            cluster = ClusterFactory(organization=organization, cpu_limit="4", ram_limit="16", gpu_limit=2)
            for _ in range(rng.randint(0, 6)):
                cpu, ram, gpu = rng.choice(shapes)
                submit(dev, cluster, cpu=cpu, ram=ram, gpu=gpu, priority=rng.randint(-1, 2))
            wait_for_idle_queue()
            cpu, ram, gpu = rng.choice(shapes)
            body = {"name": "x", "cluster": cluster.pk, "docker_image": "i", "cpu_required": cpu,
                    "ram_required": ram, "gpu_required": gpu, "priority": rng.randint(-1, 3)}
            predicted = dev.post(f"{DEPLOYMENTS}dry-run/", body).json()
            before = dict(Deployment.objects.filter(cluster=cluster).values_list("pk", "preemption_count"))
            pk = dev.post(DEPLOYMENTS, body).json()["id"]
            wait_for_idle_queue()
            actual = get(dev, pk)
            preempted = sorted(d for d, n in Deployment.objects.filter(pk__in=before).values_list("pk", "preemption_count")
                               if n > before[d])
            decision = ("preempt" if preempted else "start") if actual["status"] == "running" else "wait"
            assert (decision, preempted) == (predicted["decision"], predicted["preempts"]), round_
            assert actual["scheduling"] == predicted["scheduling"], round_
            assert actual["status_reason"] == predicted["status_reason"] or decision != "wait", round_
            decisions.add(decision)
    assert decisions == {"start", "preempt", "wait"}  # the rounds reached every kind of answer
