"""Changes to a cluster that touch what the scheduler has promised its deployments: resizing and deletion."""
from django.db import IntegrityError, transaction
from rest_framework.exceptions import ValidationError

from clusters.locks import lock_cluster, lock_cluster_for_delete
from clusters.models import DUPLICATE_NAME, Cluster
from hypervisor_mlops.api.exceptions import Conflict

from .models import Deployment
from .usage import guarantees_of
from .tasks import request_scheduling

LIMIT_FIELDS = {"cpu_limit": "cpu_allocated", "ram_limit": "ram_allocated", "gpu_limit": "gpu_allocated"}


def update_cluster(*, cluster_id: int, **changes) -> Cluster:
    """Rename, resize or retune a cluster under its row lock.

    Shrinking below what running deployments hold, or below what its projects are guaranteed, is a 409 naming
    the resource; growing places pending work at once, and so does a new starvation bound (a scheduling pass is
    queued when this commits).
    """
    with transaction.atomic():
        cluster = lock_cluster(cluster_id)
        for limit, allocated in LIMIT_FIELDS.items():
            if limit in changes and changes[limit] < getattr(cluster, allocated):
                raise Conflict(
                    f"Cannot set {limit} to {changes[limit]}: running deployments hold {getattr(cluster, allocated)}."
                    " Complete or cancel some first."
                )
        if LIMIT_FIELDS.keys() & changes.keys():
            guaranteed = guarantees_of(cluster)
            for limit, resource in zip(LIMIT_FIELDS, ("cpu", "ram", "gpu")):
                if limit in changes and changes[limit] < getattr(guaranteed, resource):
                    raise Conflict(
                        f"Cannot set {limit} to {changes[limit]}: its projects are guaranteed "
                        f"{getattr(guaranteed, resource)}. Lower their quotas first."
                    )
        for field, value in changes.items():
            setattr(cluster, field, value)
        # Checked again on the locked row: the serializer saw it before a concurrent change committed.
        if not (cluster.cpu_limit > 0 or cluster.ram_limit > 0 or cluster.gpu_limit > 0):
            raise ValidationError("A cluster needs a capacity above zero for at least one resource.")
        try:
            with transaction.atomic():
                cluster.save(update_fields=list(changes))
        except IntegrityError as exc:
            raise ValidationError({"name": [DUPLICATE_NAME]}) from exc
        if any(field in LIMIT_FIELDS or field == "reserve_after_seconds" for field in changes):
            request_scheduling(cluster.pk)
    return cluster


def delete_cluster(*, cluster_id: int) -> None:
    """Delete a cluster and its finished history; 409 while it has pending or running deployments."""
    with transaction.atomic():
        cluster = lock_cluster_for_delete(cluster_id)
        active = Deployment.objects.filter(cluster=cluster).active().count()
        if active:
            raise Conflict(f"The cluster has {active} pending or running deployments; cancel them first.")
        cluster.delete()
