"""The reads a scheduling pass plans from, and the snapshot insight reads in: the cluster's queue as the pure
planner takes it, on the database's clock."""
from contextlib import contextmanager
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, TextField
from django.db.models.functions import Cast, Now

from clusters.models import Cluster, ClusterQuota
from scheduling.planner import Pending, Running
from scheduling.projects import Quota
from scheduling.resources import Resources

from .models import Deployment, Status

RESOURCE_FIELDS = ("pk", "priority", "cpu_required", "ram_required", "gpu_required")


def read_queue(*, cluster_id: int) -> tuple[list[Running], list[Pending]]:
    """The cluster's running deployments and the pending ones whose dependencies are all completed.

    What a full pass plans from; the invariant checks replay `plan` on it to prove a cluster is settled.
    """
    return running_of(cluster_id), pending_of(with_clock(Cluster.objects).get(pk=cluster_id))


def with_clock(clusters):
    # How long a deployment has waited is measured on the database's clock, the one every process shares.
    return clusters.annotate(db_now=Now())


def running_of(cluster_id: int) -> list[Running]:
    rows = Deployment.objects.filter(cluster_id=cluster_id).running().values_list(
        *RESOURCE_FIELDS, "started_at", "preemption_count", "project_id")
    return [Running(pk, priority, Resources(cpu, ram, gpu), started_at, preemptions, project)
            for pk, priority, cpu, ram, gpu, started_at, preemptions, project in rows]


def planning_quotas(cluster_id: int) -> dict[int, Quota]:
    """Each project's quota on the cluster as the planner takes it; a project without one has no guarantee, no
    limit and weight 1."""
    return {quota.project_id: as_quota(quota) for quota in ClusterQuota.objects.filter(cluster_id=cluster_id)}


def as_quota(quota: ClusterQuota) -> Quota:
    return Quota(quota.guaranteed, quota.limit, quota.weight)


def pending_of(cluster: Cluster) -> list[Pending]:
    """The queue a pass plans from: pending deployments whose dependencies are met, each marked `due` once it
    has waited the cluster's reserve_after_seconds."""
    return queue_of(cluster)[0]


def queue_of(cluster: Cluster) -> tuple[list[Pending], list[int]]:
    """The cluster's queue in one read: what a pass plans from (dependencies met, `due` on the database's
    clock), and the priorities of the deployments still waiting for dependencies.

    Demands come as text and equal ones share one Resources: at thousands of rows, building the objects
    costs more than the query.
    """
    due_before = cluster.due_before(cluster.db_now)
    rows = (Deployment.objects.filter(cluster_id=cluster.pk).pending().order_by()
            .values_list("pk", "priority", Cast("cpu_required", TextField()), Cast("ram_required", TextField()),
                         "gpu_required", "created_at", "preemption_count", "project_id",
                         Exists(unfinished_dependencies())))
    ready, blocked, demands = [], [], {}
    for pk, priority, cpu, ram, gpu, created_at, preemptions, project, waiting in rows:
        if waiting:
            blocked.append(priority)
            continue
        demand = demands.get((cpu, ram, gpu))
        if demand is None:
            demand = demands[cpu, ram, gpu] = Resources(Decimal(cpu), Decimal(ram), gpu)
        ready.append(Pending(pk, priority, demand, created_at, due=due_before is not None and created_at <= due_before,
                             preemptions=preemptions, project=project))
    return ready, blocked


def unfinished_dependencies():
    edges = Deployment.depends_on.through.objects
    return edges.filter(from_deployment=OuterRef("pk")).exclude(to_deployment__status=Status.COMPLETED)


@contextmanager
def one_snapshot():
    """Reads that see one moment of the database: PostgreSQL's REPEATABLE READ (SQLite always does)."""
    nested = connection.in_atomic_block
    with transaction.atomic():
        # Only the first statement of a transaction may set its isolation; inside another one, reads
        # share that one's snapshot rules.
        if connection.vendor == "postgresql" and not nested:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield
