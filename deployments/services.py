"""State changes of deployments, and the scheduling pass that applies the pure planner's decisions.

Locking policy: every change to what a cluster has promised runs in one transaction that first locks the
cluster row with FOR NO KEY UPDATE (`select_for_update(no_key=True)`), then the deployment rows it changes.
One cluster's scheduling passes and finish actions are therefore serialized, while inserting a deployment
(which only takes FOR KEY SHARE on the cluster through its foreign key) never waits for them. Scheduling
is enqueued only after commit, so a worker always sees what the API wrote.
"""
import logging
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, Exists, F, Min, OuterRef, Q, Subquery, Sum, TextField, Value, When
from django.db.models.functions import Cast, Now
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from rest_framework.exceptions import ValidationError

from accounts.models import User
from agents.models import Agent
from clusters.models import Cluster
from hypervisor_mlops.api.exceptions import Conflict
from scheduling.insight import Explanation, Reservation, describe, explain, lower_priority_holdings, reservation_for
from scheduling.planner import QUEUE_ORDER, Pending, Plan, Running, plan, plan_if_everything_fits, queue_key
from scheduling.resources import Resources

from . import tasks
from .models import AttemptState, Deployment, DeploymentEvent, DeploymentLog, EventKind, RunAttempt, Status
from .output import bounded, clean_output
from .reports import Change, OpenAttempt, SeenContainer, StartFailure, Transition, runtime_transitions

logger = logging.getLogger(__name__)

SCHEDULING_MARKER_TTL_SECONDS = 60

FINISH_EVENTS = {Status.COMPLETED: EventKind.COMPLETED, Status.FAILED: EventKind.FAILED,
                 Status.CANCELLED: EventKind.CANCELLED}
FINISH_VERBS = {Status.COMPLETED: "completed", Status.FAILED: "failed", Status.CANCELLED: "cancelled"}


def create_deployment(*, cluster: Cluster, created_by: User, depends_on: Iterable[Deployment] = (),
                      **fields) -> Deployment:
    """Queue a deployment; a scheduling pass for its cluster runs once this commits.

    Its dependencies must still be able to complete: one that already failed or was cancelled is a 400.
    """
    with transaction.atomic():
        if depends_on:
            _ensure_dependencies_can_complete([d.pk for d in depends_on])
        deployment = Deployment.objects.create(cluster=cluster, created_by=created_by, **fields)
        if depends_on:
            deployment.depends_on.set(depends_on)
        DeploymentEvent.objects.create(
            deployment=deployment, kind=EventKind.QUEUED,
            message=f"Queued on cluster '{cluster.name}' with priority {deployment.priority}.",
        )
        request_scheduling(cluster.pk)
    return deployment


def finish_deployment(*, deployment_id: int, status: Status, actor: User | None) -> Deployment:
    """Complete, fail or cancel a deployment, freeing what it held; 409 when the transition does not apply.

    Completing one lets dependents whose dependencies are now all complete start, on whichever cluster they
    are; failing or cancelling one cancels everything that depends on it, directly or transitively. On a
    cluster with an agent, its container is stopped.
    """
    with transaction.atomic():
        cluster, deployment = _lock_with_cluster(deployment_id)
        if not deployment.can_become(status):
            raise Conflict(f"A {deployment.status} deployment cannot be {FINISH_VERBS[status]}.")
        by = f" by {actor.username}" if actor else ""
        _finish_locked(cluster, deployment, status, f"{FINISH_VERBS[status].capitalize()}{by}.")
    return deployment


def _finish_locked(cluster: Cluster, deployment: Deployment, status: Status, message: str,
                   exit_code: int | None = None) -> None:
    """The finish itself, with the cluster and the deployment already locked and the transition checked."""
    was_running = deployment.status == Status.RUNNING
    deployment.status = status
    deployment.status_message = message
    deployment.finished_at = timezone.now()
    deployment.exit_code = exit_code
    deployment.save(update_fields=["status", "status_message", "finished_at", "exit_code"])
    DeploymentEvent.objects.create(deployment=deployment, kind=FINISH_EVENTS[status], message=message)
    if was_running:
        _set_allocated(cluster, cluster.allocated - deployment.demand)
        _stop_containers([deployment.pk])
        request_scheduling(cluster.pk)
    if status == Status.COMPLETED:
        _release_dependents(deployment)
    else:
        _cancel_dependents(deployment)


PLACEMENT_FIELDS = ("cluster", "cpu_required", "ram_required", "gpu_required")


def update_deployment(*, deployment_id: int, **changes) -> Deployment:
    """Edit a deployment. Its cluster and resource request are fixed once it has been scheduled (409)."""
    with transaction.atomic():
        cluster, deployment = _lock_with_cluster(deployment_id)
        cluster_id = cluster.pk
        moved = [f for f in PLACEMENT_FIELDS if f in changes and changes[f] != getattr(deployment, f)]
        if moved and (deployment.status != Status.PENDING or deployment.started_at or deployment.preemption_count):
            raise Conflict(f"{', '.join(moved)} cannot change once a deployment has been scheduled.")
        for field, value in changes.items():
            setattr(deployment, field, value)
        deployment.save(update_fields=list(changes))
        if deployment.status == Status.PENDING:
            request_scheduling(deployment.cluster_id)
            if deployment.cluster_id != cluster_id:
                request_scheduling(cluster_id)
    return deployment


def _ensure_dependencies_can_complete(ids: list[int]) -> None:
    # Locking the dependencies (in id order, like every multi-row lock here) keeps them from failing
    # between this check and the commit, which would leave the new deployment waiting forever.
    locked = Deployment.objects.filter(pk__in=ids).order_by("pk").select_for_update(no_key=True)
    dead = [
        f"#{pk} is {status}"
        for pk, status in locked.values_list("pk", "status")
        if status in (Status.FAILED, Status.CANCELLED)
    ]
    if dead:
        raise ValidationError({"depends_on": [f"These dependencies can never complete: {', '.join(dead)}."]})


def _dependents_of(ids: Iterable[int]):
    edges = Deployment.depends_on.through.objects.filter(to_deployment__in=ids).values("from_deployment")
    return Deployment.objects.filter(pk__in=edges, status=Status.PENDING)


def _release_dependents(completed: Deployment) -> None:
    """Dependents whose last dependency just completed: say so, and schedule their clusters.

    Their rows are locked before readiness is checked, in a statement of its own: when two dependencies
    complete at the same moment on different clusters, the second transaction waits for the first and then
    sees both completions, so one of them always releases the dependent.
    """
    waiting = list(_dependents_of([completed.pk]).order_by("pk").select_for_update(no_key=True)
                   .values_list("pk", flat=True))
    ready = list(Deployment.objects.filter(pk__in=waiting).filter(~Exists(_unfinished_dependencies()))
                 .values_list("pk", "cluster_id"))
    message = f"All dependencies completed (the last was #{completed.pk} '{completed.name}')."
    DeploymentEvent.objects.bulk_create(
        DeploymentEvent(deployment_id=pk, kind=EventKind.DEPENDENCIES_RESOLVED, message=message) for pk, _ in ready
    )
    for cluster_id in {cluster_id for _, cluster_id in ready}:
        request_scheduling(cluster_id)


def _cancel_dependents(root: Deployment) -> None:
    """Cancel every pending deployment downstream of a failed or cancelled one, naming it as the cause.

    Dependents are always pending (they start only once every dependency completed), so no resources move
    and their clusters need no lock; their rows are locked in id order, level by level.
    """
    message = f"Cancelled: it depends on #{root.pk} '{root.name}', which {root.status}."
    frontier = [root.pk]
    while frontier:
        frontier = list(
            _dependents_of(frontier).order_by("pk").select_for_update(no_key=True).values_list("pk", flat=True)
        )
        Deployment.objects.filter(pk__in=frontier).update(
            status=Status.CANCELLED, status_message=message, finished_at=timezone.now()
        )
        DeploymentEvent.objects.bulk_create(
            DeploymentEvent(deployment_id=pk, kind=EventKind.CANCELLED, message=message) for pk in frontier
        )


def _lock_with_cluster(deployment_id: int) -> tuple[Cluster, Deployment]:
    """Lock a deployment's cluster, then the deployment, in the policy's order.

    The cluster is known only by reading the deployment first; if the deployment moved to another cluster
    before its row was locked, the lock taken is the wrong one, so let it go and take the right one.
    """
    while True:
        cluster_id = Deployment.objects.values_list("cluster_id", flat=True).get(pk=deployment_id)
        with transaction.atomic():
            cluster = Cluster.objects.select_for_update(no_key=True).get(pk=cluster_id)
            deployment = Deployment.objects.select_for_update(no_key=True).get(pk=deployment_id)
            if deployment.cluster_id == cluster_id:
                return cluster, deployment
            transaction.set_rollback(True)


def request_scheduling(cluster_id: int) -> None:
    """Queue a scheduling pass for the cluster once the current transaction commits."""
    transaction.on_commit(partial(_send_scheduling, cluster_id))


def _scheduling_queued_key(cluster_id: int) -> str:
    return f"scheduling-queued:{cluster_id}"


def _send_scheduling(cluster_id: int) -> None:
    # A queued pass reads the whole picture when it runs, so one queued pass per cluster is enough: under a
    # burst of submissions the marker (in the shared cache, with a TTL in case a message is lost) turns
    # hundreds of messages into a few passes. schedule_cluster clears it before it reads anything.
    key = _scheduling_queued_key(cluster_id)
    try:
        if not cache.add(key, 1, timeout=SCHEDULING_MARKER_TTL_SECONDS):
            return
    except RedisError:
        pass  # no marker store: send the message anyway
    # The change is committed either way: with the broker down, the request still succeeds and the next
    # reconcile sweep places the work, rather than the API failing after the fact.
    try:
        tasks.schedule_cluster_task.apply_async((cluster_id,), retry=False)
    except BrokerError as exc:
        logger.warning("Broker unreachable (%s); cluster %s waits for the next reconcile.", exc, cluster_id)
        _clear_scheduling_marker(cluster_id)


def _clear_scheduling_marker(cluster_id: int) -> None:
    try:
        cache.delete(_scheduling_queued_key(cluster_id))
    except RedisError:
        logger.warning("Cache unreachable; the scheduling marker of cluster %s expires by itself.", cluster_id)


def schedule_cluster(*, cluster_id: int) -> Plan | None:
    """One scheduling pass: start what fits, preempt strictly lower priority where that makes room.

    Runs under the cluster's row lock and decides from what is in the database at that moment, so running
    it twice, or from several workers at once, changes nothing more than running it once. Returns the plan
    applied, or None when the cluster no longer exists.
    """
    # Cleared before reading: a change committed from now on queues a new pass rather than being missed.
    _clear_scheduling_marker(cluster_id)
    with transaction.atomic():
        cluster = _with_clock(Cluster.objects.select_for_update(no_key=True)).filter(pk=cluster_id).first()
        if cluster is None:
            return None
        agent = Agent.objects.live().filter(cluster=cluster).only("pk", "created_at", "last_seen_at").first()
        if agent is not None and agent.is_lost_at(timezone.now()):
            # Whatever started here would only be requeued again: the host that would run it is gone.
            return Plan((), (), cluster.available)
        pending = _read_pending(cluster)
        # The counters are exact under the row lock (reconcile proves them), so when everything waiting fits
        # in what they leave free, the running deployments need not be read at all.
        result = plan_if_everything_fits(cluster.available, pending)
        if result is None:
            result = plan(cluster.capacity, _read_running(cluster.pk), pending)
        _apply(result, pending, agent_id=agent.pk if agent else None)
        if cluster.capacity - result.free != cluster.allocated:
            _set_allocated(cluster, cluster.capacity - result.free)
    return result


def reconcile_cluster(*, cluster_id: int) -> bool:
    """Prove the cluster's counters against its running deployments, repair drift, place stranded work.

    A fixed handful of queries whatever the queue's depth, under the same row lock as scheduling, so it is
    safe beside any number of scheduling passes. A full scheduling pass runs only when some pending
    deployment fits what is free or outranks something running: work whose scheduling message was lost
    (say, while the broker was down). Returns whether the counters had drifted.
    """
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update(no_key=True).filter(pk=cluster_id).first()
        if cluster is None:
            return False
        running = Deployment.objects.filter(cluster=cluster).running()
        sums = running.aggregate(
            cpu=Sum("cpu_required", default=Decimal(0)), ram=Sum("ram_required", default=Decimal(0)),
            gpu=Sum("gpu_required", default=0), lowest_priority=Min("priority"),
        )
        held = Resources(sums["cpu"], sums["ram"], sums["gpu"])
        drifted = held != cluster.allocated
        if drifted:
            logger.warning("Cluster %s allocation drifted: counters said %s, running deployments hold %s; repaired.",
                           cluster.pk, cluster.allocated, held)
            _set_allocated(cluster, held)
        free = cluster.capacity - held
        placeable = Q(cpu_required__lte=free.cpu, ram_required__lte=free.ram, gpu_required__lte=free.gpu)
        if sums["lowest_priority"] is not None:
            placeable |= Q(priority__gt=sums["lowest_priority"])
        stranded = (Deployment.objects.filter(cluster=cluster).pending().filter(placeable)
                    .filter(~Exists(_unfinished_dependencies())).exists())
    if stranded:
        schedule_cluster(cluster_id=cluster_id)
    return drifted


# --- Scheduling insight: why pending, and what if --------------------------------------------------------

def explain_pending(deployments: Sequence[Deployment], *, with_dependencies: Collection[int] | None = None,
                    ) -> dict[int, tuple[Explanation, str]]:
    """For each pending deployment given: its `scheduling` explanation and the sentence saying it in words.

    A fixed number of queries for any number of deployments and any depth of queue (positions come from one
    grouped count, see `_queue_positions`), plus one indexed read of the queue's head per cluster on the page,
    all read from one snapshot of the database. `with_dependencies` names those that have dependencies when
    the caller has read them already (they are fixed at creation): the others need no look at their edges.
    """
    pending = [d for d in deployments if d.status == Status.PENDING]
    if not pending:
        return {}
    ids = [d.pk for d in pending]
    edge_ids = ids if with_dependencies is None else sorted(set(ids) & set(with_dependencies))
    cluster_ids = sorted({d.cluster_id for d in pending})
    with _one_snapshot():
        clusters = _insight_clusters(cluster_ids)
        positions = _queue_positions(cluster_ids, ids)
        lower = _lower_priority_holdings(cluster_ids)
        reservations = _reservations(clusters, lower)
        waiting = defaultdict(list)
        edges = Deployment.depends_on.through.objects.filter(from_deployment__in=edge_ids).exclude(
            to_deployment__status=Status.COMPLETED).order_by("to_deployment_id")
        for pk, dependency, status in edges.values_list("from_deployment_id", "to_deployment_id",
                                                        "to_deployment__status") if edge_ids else ():
            waiting[pk].append((dependency, status))
    insight = {}
    for d in pending:
        if d.pk not in positions:
            continue  # no longer pending: it was read before a pass started it
        cluster = clusters[d.cluster_id]
        position, higher_ahead = positions[d.pk]
        first, reservation = reservations[d.cluster_id]
        behind = reservation if reservation and queue_key(d) > queue_key(first) else None
        explanation = explain(d.demand, capacity=cluster.capacity, free=cluster.available,
                              preemptible=lower[d.cluster_id](d.priority),
                              waiting_for=[pk for pk, _ in waiting[d.pk]], queue_position=position,
                              higher_ahead=higher_ahead, priority=d.priority, behind=behind)
        insight[d.pk] = explanation, describe(explanation, d.demand, cluster.available, cluster.capacity,
                                              waiting[d.pk])
    return insight


def reservation_of(cluster_id: int) -> Reservation | None:
    """The reservation the cluster holds now (starvation bound), as its pending deployments explain it."""
    with _one_snapshot():
        clusters = _insight_clusters([cluster_id])
        if not clusters:
            return None
        _, reservation = _reservations(clusters, _lower_priority_holdings([cluster_id]))[cluster_id]
    return reservation


def _insight_clusters(cluster_ids: list[int]) -> dict[int, Cluster]:
    """The clusters, on the database's clock and with the submission time of their longest-waiting pending
    deployment (`pending_since`), by which `_first_due` knows without reading the queue that none is due."""
    oldest = Deployment.objects.filter(cluster_id=OuterRef("pk")).pending().order_by("created_at")
    return _with_clock(Cluster.objects).annotate(pending_since=Subquery(oldest.values("created_at")[:1])
                                                 ).in_bulk(cluster_ids)


def _lower_priority_holdings(cluster_ids: list[int]) -> dict[int, Callable[[int], Resources]]:
    """Per cluster: priority -> what its running deployments of strictly lower priority hold (one query)."""
    held = defaultdict(list)
    for row in (Deployment.objects.filter(cluster_id__in=cluster_ids).running().order_by()
                .values("cluster_id", "priority").annotate(cpu=Sum("cpu_required"), ram=Sum("ram_required"),
                                                           gpu=Sum("gpu_required"))):
        held[row["cluster_id"]].append((row["priority"], Resources(row["cpu"], row["ram"], row["gpu"])))
    return {pk: lower_priority_holdings(held[pk]) for pk in cluster_ids}


def _reservations(clusters: dict[int, Cluster], lower: dict[int, Callable[[int], Resources]],
                  ) -> dict[int, tuple[Pending | None, Reservation | None]]:
    """Per cluster (as `_insight_clusters` reads them): its first due deployment, and the reservation it holds
    when it cannot start."""
    found = {}
    for pk, cluster in clusters.items():
        first = _first_due(cluster)
        found[pk] = first, reservation_for(first, cluster.available, lower[pk](first.priority)) if first else None
    return found


WOULD_BE = 0  # the id a dry run gives the deployment it imagines: no real deployment has it


@dataclass(frozen=True)
class DryRun:
    decision: str  # "start", "preempt" or "wait"
    preempts: tuple[int, ...]
    scheduling: Explanation | None
    status_reason: str


def dry_run_deployment(*, cluster: Cluster, depends_on: Iterable[Deployment] = (), priority: int = 0,
                       cpu_required: Decimal = Decimal(0), ram_required: Decimal = Decimal(0), gpu_required: int = 0,
                       **ignored) -> DryRun:
    """What submitting this deployment would do now, writing nothing: the scheduling pass that would follow
    the submission, planned by the same pure planner on the same picture plus the would-be deployment.

    Exact: submitted next, with nothing else changing, it gets this decision, these victims, this position.
    """
    demand = Resources(cpu_required, ram_required, gpu_required)
    dependency_ids = [d.pk for d in depends_on]
    with _one_snapshot():
        cluster = _with_clock(Cluster.objects).get(pk=cluster.pk)
        agent = Agent.objects.live().filter(cluster=cluster).only("pk", "created_at", "last_seen_at").first()
        unfinished = list(Deployment.objects.filter(pk__in=dependency_ids).exclude(status=Status.COMPLETED)
                          .order_by("pk").values_list("pk", "status"))
        pending, blocked = _read_queue(cluster)
        due_before = cluster.due_before(cluster.db_now)
        would_be = Pending(WOULD_BE, priority, demand, cluster.db_now,
                           due=due_before is not None and cluster.db_now <= due_before)
        queue = pending if unfinished else [*pending, would_be]
        lost = agent is not None and agent.is_lost_at(timezone.now())
        # As schedule_cluster decides: when what is free holds the whole queue, the running ones do not matter.
        result = None if lost else plan_if_everything_fits(cluster.available, queue)
        if result is not None and WOULD_BE in result.starts:
            return DryRun("start", (), None, "Would start now.")
        running = _read_running(cluster.pk)
    if lost:
        result = Plan((), (), cluster.available)  # as schedule_cluster: nothing starts on a lost host
    elif result is None:
        result = plan(cluster.capacity, running, queue)
    victims = tuple(victim for victim, by in result.preemptions if by == WOULD_BE)
    if WOULD_BE in result.starts:
        words = f"Would start now{' by preempting ' + ', '.join(f'#{v}' for v in victims) if victims else ''}."
        return DryRun("preempt" if victims else "start", victims, None, words)

    # As the deployment would show it once that pass is done: what the pass starts leaves the queue, what
    # it preempts returns to it (before the newcomer, which is the latest of its priority).
    started, evicted = set(result.starts), {victim for victim, _ in result.preemptions}
    queue_after = [p.priority for p in pending if p.id not in started] + blocked
    queue_after += [r.priority for r in running if r.id in evicted]
    running_after = [(r.priority, r.demand) for r in running if r.id not in evicted]
    running_after += [(p.priority, p.demand) for p in pending if p.id in started]
    # The newcomer is the latest of its priority: behind the reservation unless it outranks it (or holds it).
    reserved = next((p for p in pending if p.id == result.reservation), None)
    behind = None
    if reserved is not None and priority <= reserved.priority:
        behind = Reservation(reserved.id, reserved.priority, reserved.demand.meet(result.free))
    explanation = explain(demand, capacity=cluster.capacity, free=result.free,
                          preemptible=lower_priority_holdings(running_after)(priority),
                          waiting_for=[pk for pk, _ in unfinished],
                          queue_position=1 + sum(p >= priority for p in queue_after),
                          higher_ahead=sum(p > priority for p in queue_after), priority=priority, behind=behind)
    sentence = describe(explanation, demand, result.free, cluster.capacity, unfinished)
    return DryRun("wait", (), explanation, sentence[0].upper() + sentence[1:] + ".")


def _read_queue(cluster: Cluster) -> tuple[list[Pending], list[int]]:
    """The cluster's queue in one read: what a pass plans from (dependencies met, `due` on the database's
    clock), and the priorities of the deployments still waiting for dependencies.

    Demands come as text and equal ones share one Resources: at thousands of rows, building the objects
    costs more than the query.
    """
    due_before = cluster.due_before(cluster.db_now)
    rows = (Deployment.objects.filter(cluster_id=cluster.pk).pending().order_by()
            .values_list("pk", "priority", Cast("cpu_required", TextField()), Cast("ram_required", TextField()),
                         "gpu_required", "created_at", Exists(_unfinished_dependencies())))
    ready, blocked, demands = [], [], {}
    for pk, priority, cpu, ram, gpu, created_at, waiting in rows:
        if waiting:
            blocked.append(priority)
            continue
        demand = demands.get((cpu, ram, gpu))
        if demand is None:
            demand = demands[cpu, ram, gpu] = Resources(Decimal(cpu), Decimal(ram), gpu)
        ready.append(Pending(pk, priority, demand, created_at, due=due_before is not None and created_at <= due_before))
    return ready, blocked


@contextmanager
def _one_snapshot():
    """Reads that see one moment of the database: PostgreSQL's REPEATABLE READ (SQLite always does)."""
    nested = connection.in_atomic_block
    with transaction.atomic():
        # Only the first statement of a transaction may set its isolation; inside another one, reads
        # share that one's snapshot rules.
        if connection.vendor == "postgresql" and not nested:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


_ONE_MICROSECOND = timedelta(microseconds=1)  # PostgreSQL's timestamps, like Python's, count microseconds


def _queue_positions(cluster_ids: list[int], ids: list[int]) -> dict[int, tuple[int, int]]:
    """pk -> (1-based place in its cluster's queue, pending deployments of strictly higher priority).

    On PostgreSQL, one grouped count over the queues rather than a window numbering every row of them (a
    third of the time at 100,000 pending): the page's own keys cut each queue into buckets, and a page row's
    place is one more than the rows in the buckets before its key. Elsewhere, the window query.
    """
    if connection.vendor != "postgresql":
        return _queue_positions_by_window(cluster_ids, ids)
    # Their keys as they are in this snapshot (a priority may have changed since the page was read).
    page = list(Deployment.objects.filter(pk__in=ids, cluster_id__in=cluster_ids).pending()
                .values_list("pk", "cluster_id", "priority", "created_at"))
    if not page:
        return {}
    # Bounds in pairs (x, the next value after x), so a row's bucket is odd exactly when it equals a page
    # row's value: width_bucket counts the bounds <= the row's value, as bisect_right does here.
    priorities = sorted(v for p in {p for _, _, p, _ in page} for v in (p, p + 1))
    times = sorted(v for t in {t for _, _, _, t in page} for v in (t, t + _ONE_MICROSECOND))
    page_ids = sorted(pk for pk, _, _, _ in page)
    width = len(page_ids) + 1
    # Per cluster and priority bucket: (time bucket, rows) for the rows whose created_at is no page row's,
    # and ((time bucket, id bucket), rows) for those created at the same microsecond as a page row.
    sql = (
        f"SELECT cluster_id, width_bucket(priority::bigint, %(priorities)s::bigint[]), "
        f"CASE WHEN created_at < %(first)s THEN 0 "
        f"WHEN mod(width_bucket(created_at, %(times)s::timestamptz[]), 2) = 1 THEN "
        f"-1 - (width_bucket(created_at, %(times)s::timestamptz[]) * %(width)s + width_bucket(id, %(ids)s::bigint[])) "
        f"ELSE width_bucket(created_at, %(times)s::timestamptz[]) END, count(*) "
        f"FROM {Deployment._meta.db_table} WHERE status = %(pending)s AND cluster_id = ANY(%(clusters)s) "
        f"GROUP BY 1, 2, 3"
    )
    counts = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"priorities": priorities, "times": times, "first": times[0], "width": width,
                             "ids": page_ids, "pending": Status.PENDING, "clusters": sorted(cluster_ids)})
        for cluster_id, priority_bucket, at, rows in cursor.fetchall():
            counts[cluster_id].append((priority_bucket, at, rows))
    positions = {}
    for pk, cluster_id, priority, created_at in page:
        mine = bisect_right(priorities, priority)
        time_bucket, id_bucket = bisect_right(times, created_at), bisect_right(page_ids, pk)
        higher = before = 0
        for priority_bucket, at, rows in counts[cluster_id]:
            if priority_bucket > mine:
                higher += rows
            elif priority_bucket == mine and (0 <= at < time_bucket
                                              or (at < 0 and divmod(-1 - at, width) < (time_bucket, id_bucket))):
                before += rows
        positions[pk] = higher + before + 1, higher
    return positions


def _queue_positions_by_window(cluster_ids: list[int], ids: list[int]) -> dict[int, tuple[int, int]]:
    """As `_queue_positions`, by numbering every row of the queues (SQLite has no width_bucket)."""
    table = Deployment._meta.db_table
    sql = (
        f"SELECT id, position, higher FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY cluster_id ORDER BY "
        f"{_sql_order(QUEUE_ORDER)}) AS position, RANK() OVER (PARTITION BY cluster_id ORDER BY priority DESC)"
        f" - 1 AS higher FROM {table} WHERE status = %s AND cluster_id IN ({', '.join(['%s'] * len(cluster_ids))})"
        f") queue WHERE id IN ({', '.join(['%s'] * len(ids))})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [Status.PENDING, *cluster_ids, *ids])
        return {pk: (position, higher) for pk, position, higher in cursor.fetchall()}


def _sql_order(fields: tuple[str, ...]) -> str:
    """Django's ordering of plain columns as SQL's ORDER BY list."""
    return ", ".join(f"{name[1:]} DESC" if name.startswith("-") else name for name in fields)


def read_queue(*, cluster_id: int) -> tuple[list[Running], list[Pending]]:
    """The cluster's running deployments and the pending ones whose dependencies are all completed.

    What a full pass plans from; the invariant checks replay `plan` on it to prove a cluster is settled.
    """
    return _read_running(cluster_id), _read_pending(_with_clock(Cluster.objects).get(pk=cluster_id))


def _with_clock(clusters):
    # How long a deployment has waited is measured on the database's clock, the one every process shares.
    return clusters.annotate(db_now=Now())


RESOURCE_FIELDS = ("pk", "priority", "cpu_required", "ram_required", "gpu_required")


def _read_running(cluster_id: int) -> list[Running]:
    rows = Deployment.objects.filter(cluster_id=cluster_id).running().values_list(*RESOURCE_FIELDS, "started_at")
    return [Running(pk, priority, Resources(cpu, ram, gpu), started_at)
            for pk, priority, cpu, ram, gpu, started_at in rows]


def _read_pending(cluster: Cluster) -> list[Pending]:
    """The queue a pass plans from: pending deployments whose dependencies are met, each marked `due` once it
    has waited the cluster's reserve_after_seconds."""
    return _read_queue(cluster)[0]


def _first_due(cluster: Cluster) -> Pending | None:
    """The cluster's first deployment in queue order that has waited long enough to reserve and could ever
    start (dependencies met, within the capacity): one indexed read of the queue's head."""
    due_before = cluster.due_before(cluster.db_now)
    if due_before is None or cluster.pending_since is None or cluster.pending_since > due_before:
        return None  # nothing has waited long enough: the common case, answered without reading the queue
    capacity = cluster.capacity
    row = (Deployment.objects.filter(cluster_id=cluster.pk, created_at__lte=due_before, cpu_required__lte=capacity.cpu,
                                     ram_required__lte=capacity.ram, gpu_required__lte=capacity.gpu)
           .pending().filter(~Exists(_unfinished_dependencies())).order_by(*QUEUE_ORDER)
           .values_list(*RESOURCE_FIELDS, "created_at").first())
    if row is None:
        return None
    pk, priority, cpu, ram, gpu, created_at = row
    return Pending(pk, priority, Resources(cpu, ram, gpu), created_at, due=True)


def _unfinished_dependencies():
    edges = Deployment.depends_on.through.objects
    return edges.filter(from_deployment=OuterRef("pk")).exclude(to_deployment__status=Status.COMPLETED)


def _apply(result: Plan, pending: list[Pending], *, agent_id: int | None) -> None:
    """Write the plan in a fixed number of statements, however many deployments it moves.

    On a cluster with an agent, each start is a new run attempt, and the victims' containers are stopped.
    """
    now = timezone.now()
    events = [DeploymentEvent(deployment_id=pk, kind=EventKind.SCHEDULED, message="Started.", at=now)
              for pk in result.starts]
    if result.starts:
        Deployment.objects.filter(pk__in=result.starts, status=Status.PENDING).update(
            status=Status.RUNNING, started_at=now, status_message=""
        )
        if agent_id is not None:
            _begin_attempts(agent_id, result.starts)
    if result.preemptions:
        victims_by_preemptor = defaultdict(list)
        for victim, preemptor in result.preemptions:
            victims_by_preemptor[preemptor].append(victim)
        priority_of = {p.id: p.priority for p in pending}
        messages = {
            preemptor: f"Preempted by deployment #{preemptor} (priority {priority_of[preemptor]})."
            for preemptor in victims_by_preemptor
        }
        Deployment.objects.filter(pk__in=[victim for victim, _ in result.preemptions]).update(
            status=Status.PENDING, started_at=None, preemption_count=F("preemption_count") + 1,
            status_message=Case(*(When(pk__in=victims, then=Value(messages[preemptor]))
                                  for preemptor, victims in victims_by_preemptor.items())),
        )
        for victim, preemptor in result.preemptions:
            events.append(DeploymentEvent(deployment_id=victim, kind=EventKind.PREEMPTED, message=messages[preemptor],
                                          at=now))
            events.append(DeploymentEvent(deployment_id=victim, kind=EventKind.REQUEUED, at=now,
                                          message="Back in the queue at its original place."))
        _stop_containers([victim for victim, _ in result.preemptions])
    DeploymentEvent.objects.bulk_create(events)


def _set_allocated(cluster: Cluster, allocated: Resources) -> None:
    cluster.cpu_allocated, cluster.ram_allocated, cluster.gpu_allocated = allocated.cpu, allocated.ram, allocated.gpu
    cluster.save(update_fields=["cpu_allocated", "ram_allocated", "gpu_allocated"])


# --- Execution: run attempts on an agent's host -------------------------------------------------------------

def _begin_attempts(agent_id: int, deployment_ids: Iterable[int]) -> None:
    """A new run attempt for each deployment, for the agent to start: the only one whose container may live."""
    ids = list(deployment_ids)
    Deployment.objects.filter(pk__in=ids).update(attempt=F("attempt") + 1)
    RunAttempt.objects.bulk_create(
        RunAttempt(deployment_id=pk, number=number, agent_id=agent_id)
        for pk, number in Deployment.objects.filter(pk__in=ids).values_list("pk", "attempt")
    )


def _stop_containers(deployment_ids: list[int]) -> None:
    """The deployments no longer hold resources: whatever container they have must stop."""
    RunAttempt.objects.filter(
        deployment_id__in=deployment_ids, state__in=(AttemptState.STARTING, AttemptState.RUNNING)
    ).update(state=AttemptState.STOPPING, updated_at=timezone.now())


def hand_over_to_agent(*, cluster: Cluster, agent: Agent) -> None:
    """A new agent drives the (locked) cluster: it runs what is running there, and owns no older attempt."""
    RunAttempt.objects.filter(deployment__cluster=cluster, state__in=RunAttempt.OPEN_STATES).exclude(
        agent=agent).update(state=AttemptState.STOPPED, updated_at=timezone.now())
    _begin_attempts(agent.pk, Deployment.objects.filter(cluster=cluster).running().values_list("pk", flat=True))


def release_from_agent(*, cluster: Cluster, agent: Agent) -> None:
    """A revoked agent stops every container it runs; the (locked) cluster goes on as ledger-only."""
    RunAttempt.objects.filter(agent=agent, state__in=(AttemptState.STARTING, AttemptState.RUNNING)).update(
        state=AttemptState.STOPPING, updated_at=timezone.now())


def open_attempts(*, agent_id: int):
    """The attempts whose containers the agent must run or stop: the one query an idle sync costs."""
    return RunAttempt.objects.filter(agent_id=agent_id, state__in=RunAttempt.OPEN_STATES).select_related(
        "deployment").order_by("deployment_id")


def apply_agent_report(*, agent: Agent, seen: list[SeenContainer], failures: list[StartFailure]) -> bool:
    """Record what the agent saw: containers started, exited (finishing their deployments), failed to start,
    vanished, or stopped. Returns whether anything changed.

    Decided by `runtime_transitions` twice: without a lock, so a report that changes nothing (most of them)
    costs one query, then again under the cluster's row lock on what is there, so a report that arrives late
    or twice changes nothing the second time.
    """
    if not runtime_transitions(_open_snapshot(agent.pk), seen, failures):
        return False
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update(no_key=True).get(pk=agent.cluster_id)
        transitions = runtime_transitions(_open_snapshot(agent.pk), seen, failures)
        deployments = Deployment.objects.select_for_update(no_key=True).filter(
            pk__in=[t.attempt.deployment for t in transitions]).order_by("pk").in_bulk()
        for transition in transitions:
            _apply_transition(cluster, agent, deployments[transition.attempt.deployment], transition)
    return bool(transitions)


def _open_snapshot(agent_id: int) -> list[OpenAttempt]:
    rows = RunAttempt.objects.filter(agent_id=agent_id, state__in=RunAttempt.OPEN_STATES).values_list(
        "pk", "deployment_id", "number", "state", "container")
    return [OpenAttempt(*row) for row in rows]


# What each change makes of the attempt (None: it stays as it is).
ATTEMPT_STATE_AFTER = {
    Change.CREATED: None, Change.STARTED: AttemptState.RUNNING, Change.EXITED: AttemptState.EXITED,
    Change.START_FAILED: AttemptState.STOPPED, Change.VANISHED: AttemptState.STOPPED,
    Change.STOPPED: AttemptState.STOPPED,
}


def _apply_transition(cluster: Cluster, agent: Agent, deployment: Deployment, transition: Transition) -> None:
    attempt, change, short = transition.attempt, transition.change, transition.container[:12]
    RunAttempt.objects.filter(pk=attempt.id).update(
        state=ATTEMPT_STATE_AFTER[change] or attempt.state, container=transition.container,
        exit_code=transition.exit_code, updated_at=timezone.now(),
    )
    # A container that ran and exited between two reports did start: the history says so.
    if change is Change.STARTED or (change is Change.EXITED and attempt.state == AttemptState.STARTING):
        DeploymentEvent.objects.create(deployment=deployment, kind=EventKind.STARTED,
                                       message=f"Container {short} started on agent '{agent.name}'.")
    if change is Change.STOPPED and short:
        code = "" if transition.exit_code is None else f" (exit code {transition.exit_code})"
        DeploymentEvent.objects.create(deployment=deployment, kind=EventKind.STOPPED,
                                       message=f"Container {short} stopped{code}.")
    ending = _ending(transition)
    if ending and deployment.status == Status.RUNNING and deployment.attempt == attempt.number:
        _finish_locked(cluster, deployment, *ending, exit_code=transition.exit_code)


def _ending(transition: Transition) -> tuple[Status, str] | None:
    """How the change ends the deployment, if it runs that attempt: its status and the reason."""
    if transition.change is Change.EXITED:
        status = Status.COMPLETED if transition.exit_code == 0 else Status.FAILED
        return status, f"{FINISH_VERBS[status].capitalize()}: its container exited with code {transition.exit_code}."
    if transition.change is Change.START_FAILED:
        return Status.FAILED, f"Failed to start: {transition.error}"[:500]
    if transition.change is Change.VANISHED:
        return Status.FAILED, f"Failed: its container {transition.container[:12]} vanished from the agent's host."
    return None


def requeue_lost_agents() -> int:
    """Requeue the running deployments of every cluster whose agent has been silent for
    AGENT_LOST_AFTER_SECONDS (run by beat, or `manage.py watch_agents`). Returns how many were requeued."""
    lost = Agent.objects.live().silent_since(timezone.now() - timedelta(seconds=settings.AGENT_LOST_AFTER_SECONDS))
    lost = lost.filter(Exists(Deployment.objects.running().filter(cluster=OuterRef("cluster"))))
    return sum(_requeue_from_lost_agent(agent_id) for agent_id in lost.values_list("pk", flat=True))


def _requeue_from_lost_agent(agent_id: int) -> int:
    with transaction.atomic():
        cluster_id = Agent.objects.values_list("cluster_id", flat=True).get(pk=agent_id)
        cluster = Cluster.objects.select_for_update(no_key=True).get(pk=cluster_id)
        agent = Agent.objects.get(pk=agent_id)
        if agent.revoked_at is not None or not agent.is_lost_at(timezone.now()):
            return 0  # it came back (or was revoked) while this sweep waited for the lock
        ids = list(Deployment.objects.filter(cluster=cluster).running().order_by("pk")
                   .select_for_update(no_key=True).values_list("pk", flat=True))
        message = f"Requeued: agent '{agent.name}' was lost (silent since {agent.last_heard_at:%Y-%m-%d %H:%M:%S} UTC)."
        Deployment.objects.filter(pk__in=ids).update(status=Status.PENDING, started_at=None, status_message=message)
        DeploymentEvent.objects.bulk_create(
            DeploymentEvent(deployment_id=pk, kind=EventKind.REQUEUED, message=message) for pk in ids)
        _stop_containers(ids)
        _set_allocated(cluster, Resources.zero())
    logger.warning("Agent %s of cluster %s lost: requeued %s running deployments.", agent_id, cluster_id, len(ids))
    return len(ids)


def append_logs(*, agent_id: int, chunks: Iterable[tuple[int, int, int, bytes]]) -> list[tuple[int, int, int]]:
    """Add output the agent read from its containers: (deployment, attempt, byte offset, raw bytes) each.

    Only bytes beyond what the attempt already has are added, so a chunk sent twice, late, or again from 0
    by a restarted agent adds nothing twice. Returns (deployment, attempt, bytes now held) for each chunk.
    """
    held = []
    for deployment_id, number, offset, data in chunks:
        with transaction.atomic():
            attempt = RunAttempt.objects.select_for_update().filter(
                agent_id=agent_id, deployment_id=deployment_id, number=number).first()
            if attempt is None:
                continue
            new = data[max(attempt.log_bytes - offset, 0):]
            if new:
                log, _ = DeploymentLog.objects.select_for_update().get_or_create(deployment_id=deployment_id)
                log.text, dropped = bounded(log.text + clean_output(new))
                log.truncated = log.truncated or dropped
                log.save()
                attempt.log_bytes = offset + len(data)
                attempt.save(update_fields=["log_bytes"])
            held.append((deployment_id, number, attempt.log_bytes))
    return held
