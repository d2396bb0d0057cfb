"""Scheduling and reconciling a cluster: the pure planner's decisions applied under the cluster's lock.

The lock is the one every change to what a cluster promised takes (clusters.locks); a pass decides from
what is in the database at that moment, so running it twice, or from several workers at once, changes
nothing more than running it once.
"""
import logging
from decimal import Decimal

from django.db import transaction
from django.db.models import Case, Exists, F, FloatField, Min, Q, Sum, Value, When
from django.utils import timezone

from agents.models import Agent
from clusters.locks import locked
from clusters.models import ClusterQuota
from organizations.models import Project
from scheduling.insight import describe_duration
from scheduling.planner import PREEMPTION_CAP, Pending, Plan, Running, plan_if_everything_fits
from scheduling.projects import plan_with_quotas
from scheduling.resources import Resources

from .attempts import begin_attempts, stop_containers
from .models import Deployment, DeploymentEvent, EventKind, Status
from .snapshot import pending_of, planning_quotas, running_of, unfinished_dependencies, with_clock

logger = logging.getLogger(__name__)


def schedule_cluster(*, cluster_id: int) -> Plan | None:
    """One scheduling pass: start what fits, preempt strictly lower priority where that makes room.

    Runs under the cluster's row lock and decides from what is in the database at that moment, so running
    it twice, or from several workers at once, changes nothing more than running it once. Returns the plan
    applied, or None when the cluster no longer exists.
    """
    with transaction.atomic():
        cluster = with_clock(locked()).filter(pk=cluster_id).first()
        if cluster is None:
            return None
        agent = Agent.objects.live().filter(cluster=cluster).only("pk", "created_at", "last_seen_at").first()
        if agent is not None and agent.is_lost_at(timezone.now()):
            # Whatever started here would only be requeued again: the host that would run it is gone.
            return Plan((), (), cluster.available)
        pending = pending_of(cluster)
        quotas = planning_quotas(cluster.pk)
        # The counters are exact under the row lock (reconcile proves them), so when everything waiting fits
        # in what they leave free (and no project's limit says otherwise), the running deployments need not be
        # read at all.
        limited = any(quota.limit is not None for quota in quotas.values())
        result, running = None if limited else plan_if_everything_fits(cluster.available, pending), []
        if result is None:
            running = running_of(cluster.pk)
            result = plan_with_quotas(cluster.capacity, running, pending, quotas).plan
        _apply(result, pending, running, agent_id=agent.pk if agent else None)
        if cluster.capacity - result.free != cluster.allocated:
            cluster.set_allocated(cluster.capacity - result.free)
    return result


def reconcile_cluster(*, cluster_id: int) -> bool:
    """Prove the cluster's counters against its running deployments, repair drift, place stranded work.

    A fixed handful of queries whatever the queue's depth, under the same row lock as scheduling, so it is
    safe beside any number of scheduling passes. A full scheduling pass runs only when some pending
    deployment fits what is free or outranks something running: work whose scheduling message was lost
    (say, while the broker was down). Returns whether the counters had drifted.
    """
    with transaction.atomic():
        cluster = locked().filter(pk=cluster_id).first()
        if cluster is None:
            return False
        running = Deployment.objects.filter(cluster=cluster).running()
        sums = running.aggregate(
            cpu=Sum("cpu_required", default=Decimal(0)), ram=Sum("ram_required", default=Decimal(0)),
            gpu=Sum("gpu_required", default=0),
            lowest_priority=Min("priority", filter=Q(preemption_count__lt=PREEMPTION_CAP)),
        )
        held = Resources(sums["cpu"], sums["ram"], sums["gpu"])
        drifted = held != cluster.allocated
        if drifted:
            logger.warning("Cluster %s allocation drifted: counters said %s, running deployments hold %s; repaired.",
                           cluster.pk, cluster.allocated, held)
            cluster.set_allocated(held)
        free = cluster.capacity - held
        placeable = Q(cpu_required__lte=free.cpu, ram_required__lte=free.ram, gpu_required__lte=free.gpu)
        if sums["lowest_priority"] is not None:
            placeable |= Q(priority__gt=sums["lowest_priority"])
        if ClusterQuota.objects.filter(cluster=cluster).exists():
            placeable = Q()  # a guarantee may reclaim whatever the priorities: only a pass can tell
        stranded = (Deployment.objects.filter(cluster=cluster).pending().filter(placeable)
                    .filter(~Exists(unfinished_dependencies())).exists())
    if stranded:
        schedule_cluster(cluster_id=cluster_id)
    return drifted


def _preempted_by(victim: Running, preemptor: Pending, names: dict[int, str]) -> str:
    """Who took its place, and by which rule: priority within its project, or a guarantee across projects."""
    if victim.project == preemptor.project:
        return f"Preempted by deployment #{preemptor.id} (priority {preemptor.priority})"
    return f"Preempted by deployment #{preemptor.id} (project '{names[preemptor.project]}', within its guarantee)"


def _apply(result: Plan, pending: list[Pending], running: list[Running], *, agent_id: int | None) -> None:
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
            begin_attempts(agent_id, result.starts)
    if result.preemptions:
        preemptors = {p.id: p for p in pending}
        victims = {r.id: r for r in running}
        # The work each victim throws away: its run since its latest start.
        ran = {r.id: max((now - r.started_at).total_seconds(), 0.0) for r in running}
        reclaiming = {preemptors[by].project for victim, by in result.preemptions
                      if victims[victim].project != preemptors[by].project}
        names = dict(Project.objects.filter(pk__in=reclaiming).values_list("pk", "name")) if reclaiming else {}
        reasons = {victim: _preempted_by(victims[victim], preemptors[preemptor], names)
                   for victim, preemptor in result.preemptions}
        Deployment.objects.filter(pk__in=list(reasons)).update(
            status=Status.PENDING, started_at=None, preemption_count=F("preemption_count") + 1,
            status_message=Case(*(When(pk=victim, then=Value(f"{reason}.")) for victim, reason in reasons.items())),
            lost_seconds=F("lost_seconds") + Case(*(When(pk=victim, then=Value(ran[victim])) for victim in reasons),
                                                  output_field=FloatField()),
        )
        for victim, reason in reasons.items():
            events.append(DeploymentEvent(deployment_id=victim, kind=EventKind.PREEMPTED, at=now,
                                          message=f"{reason} after {describe_duration(ran[victim])} of running."))
            events.append(DeploymentEvent(deployment_id=victim, kind=EventKind.REQUEUED, at=now,
                                          message="Back in the queue at its original place."))
        stop_containers([victim for victim, _ in result.preemptions])
    DeploymentEvent.objects.bulk_create(events)
