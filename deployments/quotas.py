"""Projects' quotas on a cluster: setting one under the cluster lock, and what each project uses there.

A quota changes what the scheduler may start, so it is set here, beside the resize (`capacity.py`), under the
same lock and followed by a scheduling pass.
"""
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from rest_framework.exceptions import NotFound, ValidationError

from clusters.locks import lock_cluster
from clusters.models import Cluster, ClusterQuota
from organizations.models import Project
from organizations.projects import hold_project
from scheduling.resources import Resources

from .models import Deployment
from .tasks import request_scheduling

RESOURCE_WORDS = {"cpu": "CPU", "ram": "GB of RAM", "gpu": "GPU"}
DEFAULT_WEIGHT = 1


@dataclass(frozen=True, slots=True)
class ProjectQuota:
    """A project's quota on a cluster (the defaults when it has no row) and what it uses there now."""

    project: int
    guaranteed: Resources
    limit: Resources | None
    weight: int
    usage: Resources


def usage_by_project(cluster_ids) -> dict[tuple[int, int], Resources]:
    """What running deployments hold, per (cluster, project), in one grouped query."""
    rows = (Deployment.objects.running().filter(cluster_id__in=cluster_ids).order_by()
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


def set_quota(*, cluster_id: int, project_id: int, guaranteed: Resources, limit: Resources | None,
              weight: int) -> ProjectQuota:
    """Set a project's quota on a cluster, under the cluster lock; a scheduling pass follows the commit.

    400 naming the resource when the limit is below the guarantee, or when the cluster's guarantees would sum
    to more than its capacity: guarantees are what any project can always get back, so together they never
    promise more than the cluster has. A project not of the cluster's organization (or deleted meanwhile) is
    a 404.
    """
    errors = _below_guarantee(guaranteed, limit)
    if errors:
        raise ValidationError({"limit": errors})
    with transaction.atomic():
        cluster = lock_cluster(cluster_id)
        project = Project.objects.filter(pk=project_id, organization_id=cluster.organization_id).first()
        # Deleting the project either waits for this commit, or has committed (organizations.projects).
        if project is None or not hold_project(project.pk):
            raise NotFound("No such project in this cluster's organization.")
        others = guarantees_of(cluster, excluding=project.pk)
        over = [
            f"Guarantees on cluster '{cluster.name}' would sum to {getattr(others + guaranteed, name)} "
            f"{word}, more than its capacity of {getattr(cluster.capacity, name)}."
            for name, word in RESOURCE_WORDS.items()
            if getattr(others + guaranteed, name) > getattr(cluster.capacity, name)
        ]
        if over:
            raise ValidationError({"guaranteed": over})
        limits = (limit.cpu, limit.ram, limit.gpu) if limit is not None else (None, None, None)
        ClusterQuota.objects.update_or_create(cluster=cluster, project=project, defaults={
            "guaranteed_cpu": guaranteed.cpu, "guaranteed_ram": guaranteed.ram, "guaranteed_gpu": guaranteed.gpu,
            **dict(zip(("limit_cpu", "limit_ram", "limit_gpu"), limits)), "weight": weight,
        })
        request_scheduling(cluster.pk)
        return quotas_of(cluster, [project.pk])[0]


def guarantees_of(cluster: Cluster, excluding: int | None = None) -> Resources:
    """The sum of the cluster's guarantees (but the `excluding` project's); callers hold the cluster lock."""
    quotas = ClusterQuota.objects.filter(cluster=cluster)
    if excluding is not None:
        quotas = quotas.exclude(project_id=excluding)
    sums = quotas.aggregate(
        cpu=Sum("guaranteed_cpu", default=Decimal(0)), ram=Sum("guaranteed_ram", default=Decimal(0)),
        gpu=Sum("guaranteed_gpu", default=0))
    return Resources(sums["cpu"], sums["ram"], sums["gpu"])


def _below_guarantee(guaranteed: Resources, limit: Resources | None) -> list[str]:
    if limit is None:
        return []
    return [f"The limit of {getattr(limit, name)} {word} is below the guarantee of {getattr(guaranteed, name)}."
            for name, word in RESOURCE_WORDS.items() if getattr(limit, name) < getattr(guaranteed, name)]
