"""Why a pending deployment waits, and what submitting one would do: the selectors behind the `scheduling`
object, `status_reason`, the dry run, the admin's explanations and the pending-by-reason metric.

Everything is read from one snapshot, exactly as a scheduling pass would see it, and explained by the pure
`scheduling.insight` on the pure planner's terms.
"""
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Exists, OuterRef, Subquery, Sum
from django.utils import timezone

from agents.models import Agent
from clusters.models import Cluster, ClusterQuota
from organizations.models import Project
from scheduling.insight import (
    Explanation,
    Reservation,
    describe,
    explain,
    explain_as_decided,
    lower_priority_holdings,
    reservation_for,
)
from scheduling.planner import PREEMPTION_CAP, QUEUE_ORDER, Pending, Plan, Running, plan_if_everything_fits, queue_key
from scheduling.projects import ProjectPlan, plan_with_quotas
from scheduling.resources import Resources

from .models import Deployment, Status
from .shares import ClusterShares, read_shares
from .snapshot import (
    RESOURCE_FIELDS,
    one_snapshot,
    planning_quotas,
    queue_of,
    running_of,
    unfinished_dependencies,
    with_clock,
)


def explain_pending(deployments: Sequence[Deployment], *, with_dependencies: Collection[int] | None = None,
                    ) -> dict[int, tuple[Explanation, str]]:
    """For each pending deployment given: its `scheduling` explanation and the sentence saying it in words.

    A fixed number of queries for any number of deployments and any depth of queue (positions come from one
    grouped count, see `queue_positions`), plus one indexed read of the queue's head per cluster on the page,
    all read from one snapshot of the database. `with_dependencies` names those that have dependencies when
    the caller has read them already (they are fixed at creation): the others need no look at their edges.
    """
    pending = [d for d in deployments if d.status == Status.PENDING]
    if not pending:
        return {}
    ids = [d.pk for d in pending]
    edge_ids = ids if with_dependencies is None else sorted(set(ids) & set(with_dependencies))
    cluster_ids = sorted({d.cluster_id for d in pending})
    with one_snapshot():
        clusters = _insight_clusters(cluster_ids)
        positions = queue_positions(cluster_ids, ids)
        lower = _lower_priority_holdings(cluster_ids)
        reservations = _reservations(clusters, lower)
        shares = read_shares(clusters, {d.project_id for d in pending})
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
        explanation = _explain(d, cluster, lower[d.cluster_id], reservations[d.cluster_id], shares[d.cluster_id],
                               waiting_for=[pk for pk, _ in waiting[d.pk]], queue_position=position,
                               higher_ahead=higher_ahead)
        insight[d.pk] = explanation, describe(explanation, d.demand, cluster.available, cluster.capacity,
                                              waiting[d.pk])
    return insight


def pending_reasons() -> dict[int, Counter]:
    """Per cluster, every one of them: how many pending deployments wait for each reason, the reason
    `explain_pending` gives each (the metric). A fixed number of queries (plus the queue's head of a cluster
    whose oldest pending deployment has waited long enough to reserve), one row read per pending deployment.

    Unlike the API's answers these reads share no snapshot: a scrape is a sample, and a transaction of its own
    would cost two statements on every scrape. A deployment started between two reads may be counted with
    the reason it had a moment before."""
    clusters = _insight_clusters(None)
    lower = _lower_priority_holdings(list(clusters))
    reservations = _reservations(clusters, lower)
    shares = read_shares(clusters, with_names=False)
    rows = (Deployment.objects.pending().order_by()
            .values_list("cluster_id", "pk", "priority", "cpu_required", "ram_required", "gpu_required",
                         "created_at", "project_id", Exists(unfinished_dependencies())))
    reasons = {pk: Counter() for pk in clusters}
    for cluster_id, pk, priority, cpu, ram, gpu, created_at, project, waiting in rows:
        if cluster_id not in clusters:
            continue  # created with a cluster after the clusters were read
        queued = Pending(pk, priority, Resources(cpu, ram, gpu), created_at, project=project)
        explanation = _explain(queued, clusters[cluster_id], lower[cluster_id], reservations[cluster_id],
                               shares[cluster_id], waiting_for=[pk] if waiting else [], queue_position=0,
                               higher_ahead=0)
        reasons[cluster_id][explanation.reason] += 1
    return reasons


def _explain(queued, cluster: Cluster, lower: Callable[[int], Resources],
             reservation: tuple[Pending | None, Reservation | None], shares: ClusterShares, **position,
             ) -> Explanation:
    """Why `queued` (a Deployment or a Pending) waits on `cluster`, as `_insight_clusters` read it: behind the
    cluster's reservation when it comes after the reserved deployment in queue order; where quotas decide, as
    the cluster's pass decides (`shares.decided`)."""
    project_id = queued.project if isinstance(queued, Pending) else queued.project_id
    project = shares.share(project_id, queued.demand)
    if shares.decided is not None:
        decided = shares.decided
        return explain_as_decided(queued.demand, decided.waiting.get(queued.id), capacity=cluster.capacity,
                                  free=cluster.available,
                                  preemptible=shares.preemptible(project_id, queued.priority, queued.demand),
                                  reserved_for=decided.plan.reservation, project=project, **position)
    first, held = reservation
    behind = held if held and queue_key(queued) > queue_key(first) else None
    return replace(explain(queued.demand, capacity=cluster.capacity, free=cluster.available,
                           preemptible=lower(queued.priority), priority=queued.priority, behind=behind, **position),
                   project=project)


def reservation_of(cluster_id: int) -> Reservation | None:
    """The reservation the cluster holds now (starvation bound), as its pending deployments explain it."""
    with one_snapshot():
        clusters = _insight_clusters([cluster_id])
        if not clusters:
            return None
        _, reservation = _reservations(clusters, _lower_priority_holdings([cluster_id]))[cluster_id]
    return reservation


def _insight_clusters(cluster_ids: list[int] | None) -> dict[int, Cluster]:
    """The clusters (every one for None), on the database's clock and with the submission time of their
    longest-waiting pending deployment (`pending_since`), by which `_first_due` knows without reading the
    queue that none is due, and whether projects share it (`shared`: its organization has more projects than
    the default one, or it has quotas), without which `read_shares` reads nothing more."""
    oldest = Deployment.objects.filter(cluster_id=OuterRef("pk")).pending().order_by("created_at")
    shared = (Exists(Project.objects.filter(organization_id=OuterRef("organization_id"), is_default=False))
              | Exists(ClusterQuota.objects.filter(cluster_id=OuterRef("pk"))))
    return with_clock(Cluster.objects).annotate(pending_since=Subquery(oldest.values("created_at")[:1]),
                                                shared=shared).order_by("pk").in_bulk(cluster_ids)


def _lower_priority_holdings(cluster_ids: list[int]) -> dict[int, Callable[[int], Resources]]:
    """Per cluster: priority -> what its running deployments of strictly lower priority that may still be
    preempted hold (one query)."""
    held = defaultdict(list)
    for row in (Deployment.objects.filter(cluster_id__in=cluster_ids, preemption_count__lt=PREEMPTION_CAP).running()
                .order_by()
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


def _first_due(cluster: Cluster) -> Pending | None:
    """The cluster's first deployment in queue order that has waited long enough to reserve and could ever
    start (dependencies met, within the capacity): one indexed read of the queue's head."""
    due_before = cluster.due_before(cluster.db_now)
    if due_before is None or cluster.pending_since is None or cluster.pending_since > due_before:
        return None  # nothing has waited long enough: the common case, answered without reading the queue
    capacity = cluster.capacity
    row = (Deployment.objects.filter(cluster_id=cluster.pk, created_at__lte=due_before, cpu_required__lte=capacity.cpu,
                                     ram_required__lte=capacity.ram, gpu_required__lte=capacity.gpu)
           .pending().filter(~Exists(unfinished_dependencies())).order_by(*QUEUE_ORDER)
           .values_list(*RESOURCE_FIELDS, "created_at").first())
    if row is None:
        return None
    pk, priority, cpu, ram, gpu, created_at = row
    return Pending(pk, priority, Resources(cpu, ram, gpu), created_at, due=True)


WOULD_BE = 0  # the id a dry run gives the deployment it imagines: no real deployment has it


@dataclass(frozen=True)
class DryRun:
    decision: str  # "start", "preempt" or "wait"
    preempts: tuple[int, ...]
    scheduling: Explanation | None
    status_reason: str


def dry_run_deployment(*, cluster: Cluster, depends_on: Iterable[Deployment] = (), priority: int = 0,
                       cpu_required: Decimal = Decimal(0), ram_required: Decimal = Decimal(0), gpu_required: int = 0,
                       project: Project | None = None, **ignored) -> DryRun:
    """What submitting this deployment would do now, writing nothing: the scheduling pass that would follow
    the submission, planned by the same pure planner on the same picture plus the would-be deployment.

    Exact: submitted next, with nothing else changing, it gets this decision, these victims, this position.
    """
    demand = Resources(cpu_required, ram_required, gpu_required)
    dependency_ids = [d.pk for d in depends_on]
    with one_snapshot():
        cluster = with_clock(Cluster.objects).get(pk=cluster.pk)
        agent = Agent.objects.live().filter(cluster=cluster).only("pk", "created_at", "last_seen_at").first()
        unfinished = list(Deployment.objects.filter(pk__in=dependency_ids).exclude(status=Status.COMPLETED)
                          .order_by("pk").values_list("pk", "status"))
        pending, blocked = queue_of(cluster)
        quotas = planning_quotas(cluster.pk)
        project = project or cluster.organization.default_project
        due_before = cluster.due_before(cluster.db_now)
        would_be = Pending(WOULD_BE, priority, demand, cluster.db_now,
                           due=due_before is not None and cluster.db_now <= due_before, project=project.pk)
        queue = pending if unfinished else [*pending, would_be]
        lost = agent is not None and agent.is_lost_at(timezone.now())
        # As schedule_cluster decides: when what is free holds the whole queue (and no limit says otherwise),
        # the running ones do not matter.
        limited = any(quota.limit is not None for quota in quotas.values())
        result = None if lost or limited else plan_if_everything_fits(cluster.available, queue)
        if result is not None and WOULD_BE in result.starts:
            return DryRun("start", (), None, "Would start now.")
        running = running_of(cluster.pk)
    decided = None
    if lost:
        result = Plan((), (), cluster.available)  # as schedule_cluster: nothing starts on a lost host
    elif result is None:
        decided = plan_with_quotas(cluster.capacity, running, queue, quotas)
        result = decided.plan
    victims = tuple(victim for victim, by in result.preemptions if by == WOULD_BE)
    if WOULD_BE in result.starts:
        words = f"Would start now{' by preempting ' + ', '.join(f'#{v}' for v in victims) if victims else ''}."
        return DryRun("preempt" if victims else "start", victims, None, words)

    # As the deployment would show it once that pass is done: what the pass starts leaves the queue, what
    # it preempts returns to it (before the newcomer, which is the latest of its priority).
    started, evicted = set(result.starts), {victim for victim, _ in result.preemptions}
    queue_after = [p.priority for p in pending if p.id not in started] + blocked
    queue_after += [r.priority for r in running if r.id in evicted]
    if decided is not None and decided.waiting:
        return _dry_run_with_quotas(decided, would_be, cluster, running, pending, quotas, project, unfinished,
                                    queue_position=1 + sum(p >= priority for p in queue_after),
                                    higher_ahead=sum(p > priority for p in queue_after))
    running_after = [(r.priority, r.demand) for r in running if r.id not in evicted and r.evictable]
    running_after += [(p.priority, p.demand) for p in pending if p.id in started and p.preemptions < PREEMPTION_CAP]
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
    explanation = replace(explanation, project=_shares_after(result, running, pending, quotas, project).share(
        project.pk, demand))
    sentence = describe(explanation, demand, result.free, cluster.capacity, unfinished)
    return DryRun("wait", (), explanation, sentence[0].upper() + sentence[1:] + ".")


def _shares_after(result: Plan, running: list[Running], pending: list[Pending], quotas: dict,
                  project: Project) -> ClusterShares:
    """The projects' shares of the cluster as the pass `result` leaves it."""
    started, evicted = set(result.starts), {victim for victim, _ in result.preemptions}
    after = [r for r in running if r.id not in evicted]
    after += [Running(p.id, p.priority, p.demand, p.created_at, p.preemptions, p.project)
              for p in pending if p.id in started]
    shares = ClusterShares(quotas=quotas, names={project.pk: project.name}, running=after)
    for r in after:
        shares.usage[r.project] = shares.usage.get(r.project, Resources.zero()) + r.demand
    return shares


def _dry_run_with_quotas(decided: ProjectPlan, would_be: Pending, cluster: Cluster, running: list[Running],
                         pending: list[Pending], quotas: dict, project: Project, unfinished: list[tuple[int, str]],
                         **position) -> DryRun:
    """Where quotas decide, the reason is the one the pass gave the would-be deployment; its project's share and
    what it could evict are read off the cluster as that pass leaves it."""
    shares = _shares_after(decided.plan, running, pending, quotas, project)
    demand = would_be.demand
    explanation = explain_as_decided(
        demand, decided.waiting.get(WOULD_BE), capacity=cluster.capacity, free=decided.plan.free,
        preemptible=shares.preemptible(project.pk, would_be.priority, demand), waiting_for=[pk for pk, _ in unfinished],
        reserved_for=decided.plan.reservation, project=shares.share(project.pk, demand), **position)
    sentence = describe(explanation, demand, decided.plan.free, cluster.capacity, unfinished)
    return DryRun("wait", (), explanation, sentence[0].upper() + sentence[1:] + ".")


_ONE_MICROSECOND = timedelta(microseconds=1)  # PostgreSQL's timestamps, like Python's, count microseconds


def queue_positions(cluster_ids: list[int], ids: list[int]) -> dict[int, tuple[int, int]]:
    """pk -> (1-based place in its cluster's queue, pending deployments of strictly higher priority).

    On PostgreSQL, one grouped count over the queues rather than a window numbering every row of them (a
    third of the time at 100,000 pending): the page's own keys cut each queue into buckets, and a page row's
    place is one more than the rows in the buckets before its key. Elsewhere, the window query.
    """
    if connection.vendor != "postgresql":
        return queue_positions_by_window(cluster_ids, ids)
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


def queue_positions_by_window(cluster_ids: list[int], ids: list[int]) -> dict[int, tuple[int, int]]:
    """As `queue_positions`, by numbering every row of the queues (SQLite has no width_bucket)."""
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
