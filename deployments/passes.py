"""Scheduling and reconciling a cluster: the pure planner's decisions applied under the cluster's lock.

The lock is the one every change to what a cluster promised takes (clusters.locks); a pass decides from
what is in the database at that moment, so running it twice, or from several workers at once, changes
nothing more than running it once.
"""
import logging
from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.db.models import Case, Exists, F, Min, Q, Sum, Value, When
from django.utils import timezone

from agents.models import Agent
from clusters.locks import locked
from scheduling.planner import Pending, Plan, plan, plan_if_everything_fits
from scheduling.resources import Resources

from .attempts import begin_attempts, stop_containers
from .models import Deployment, DeploymentEvent, EventKind, Status
from .snapshot import pending_of, running_of, unfinished_dependencies, with_clock

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
        # The counters are exact under the row lock (reconcile proves them), so when everything waiting fits
        # in what they leave free, the running deployments need not be read at all.
        result = plan_if_everything_fits(cluster.available, pending)
        if result is None:
            result = plan(cluster.capacity, running_of(cluster.pk), pending)
        _apply(result, pending, agent_id=agent.pk if agent else None)
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
            gpu=Sum("gpu_required", default=0), lowest_priority=Min("priority"),
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
        stranded = (Deployment.objects.filter(cluster=cluster).pending().filter(placeable)
                    .filter(~Exists(unfinished_dependencies())).exists())
    if stranded:
        schedule_cluster(cluster_id=cluster_id)
    return drifted


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
            begin_attempts(agent_id, result.starts)
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
        stop_containers([victim for victim, _ in result.preemptions])
    DeploymentEvent.objects.bulk_create(events)
