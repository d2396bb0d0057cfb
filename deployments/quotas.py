"""Projects' quotas on a cluster: setting one under the cluster lock.

A quota changes what the scheduler may start, so it is set here, beside the resize (`capacity.py`), under the
same lock and followed by a scheduling pass.
"""
from django.db import transaction
from rest_framework.exceptions import NotFound, ValidationError

from clusters.locks import lock_cluster
from clusters.models import ClusterQuota
from organizations.models import Project
from organizations.projects import hold_project
from scheduling.resources import Resources

from .tasks import request_scheduling
from .usage import ProjectQuota, guarantees_of, quotas_of

RESOURCE_WORDS = {"cpu": "CPU", "ram": "GB of RAM", "gpu": "GPU"}


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


def _below_guarantee(guaranteed: Resources, limit: Resources | None) -> list[str]:
    if limit is None:
        return []
    return [f"The limit of {getattr(limit, name)} {word} is below the guarantee of {getattr(guaranteed, name)}."
            for name, word in RESOURCE_WORDS.items() if getattr(limit, name) < getattr(guaranteed, name)]
