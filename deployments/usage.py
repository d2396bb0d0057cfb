"""What projects are guaranteed and hold on clusters: the reads that setting quotas, resizing, the quota
endpoint, the admin and the metrics share."""
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum

from clusters.models import Cluster, ClusterQuota
from scheduling.resources import Resources

from .models import Deployment

DEFAULT_WEIGHT = 1


@dataclass(frozen=True, slots=True)
class ProjectQuota:
    """A project's quota on a cluster (the defaults when it has no row) and what it uses there now."""

    project: int
    guaranteed: Resources
    limit: Resources | None
    weight: int
    usage: Resources


def usage_by_project(cluster_ids: list[int] | None) -> dict[tuple[int, int], Resources]:
    """What running deployments hold, per (cluster, project), on these clusters (None: all), in one grouped
    query."""
    running = Deployment.objects.running()
    if cluster_ids is not None:
        running = running.filter(cluster_id__in=cluster_ids)
    rows = (running.order_by()
            .values_list("cluster_id", "project_id")
            .annotate(cpu=Sum("cpu_required", default=Decimal(0)), ram=Sum("ram_required", default=Decimal(0)),
                      gpu=Sum("gpu_required", default=0)))
    return {(cluster, project): Resources(cpu, ram, gpu) for cluster, project, cpu, ram, gpu in rows}


def quotas_of(cluster: Cluster, project_ids: list[int]) -> list[ProjectQuota]:
    """The quota and usage of each of these projects on the cluster, in their order, in two queries."""
    rows = {quota.project_id: quota for quota in ClusterQuota.objects.filter(cluster=cluster, project__in=project_ids)}
    usage = usage_by_project([cluster.pk])
    return [_quota(pk, rows.get(pk), usage.get((cluster.pk, pk), Resources.zero())) for pk in project_ids]


def _quota(project_id: int, row: ClusterQuota | None, usage: Resources) -> ProjectQuota:
    if row is None:
        return ProjectQuota(project_id, Resources.zero(), None, DEFAULT_WEIGHT, usage)
    return ProjectQuota(project_id, row.guaranteed, row.limit, row.weight, usage)


def guarantees_of(cluster: Cluster, excluding: int | None = None) -> Resources:
    """The sum of the cluster's guarantees (but the `excluding` project's); callers hold the cluster lock."""
    quotas = ClusterQuota.objects.filter(cluster=cluster)
    if excluding is not None:
        quotas = quotas.exclude(project_id=excluding)
    sums = quotas.aggregate(
        cpu=Sum("guaranteed_cpu", default=Decimal(0)), ram=Sum("guaranteed_ram", default=Decimal(0)),
        gpu=Sum("guaranteed_gpu", default=0))
    return Resources(sums["cpu"], sums["ram"], sums["gpu"])
