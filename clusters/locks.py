"""The cluster lock, and the locking policy every change to what a cluster has promised follows.

Locking policy: every change to what a cluster has promised runs in one transaction that first locks the
cluster row with FOR NO KEY UPDATE (`select_for_update(no_key=True)`), then the deployment rows it changes,
several of them in id order. One cluster's scheduling passes and finish actions are therefore serialized,
while inserting a deployment (which only takes FOR KEY SHARE on the cluster through its foreign key) never
waits for them. Deleting a cluster takes a full FOR UPDATE, which also waits for those inserts. Scheduling
is enqueued only after commit (`deployments.tasks.request_scheduling`), so a worker always sees what the API
wrote.
"""
from django.db import transaction
from django.db.models import QuerySet

from deployments.models import Deployment

from .models import Cluster


def locked(clusters: QuerySet[Cluster] | None = None) -> QuerySet[Cluster]:
    """`clusters` (all of them by default) read under the cluster lock, inside the caller's transaction."""
    return (Cluster.objects.all() if clusters is None else clusters).select_for_update(no_key=True)


def lock_cluster(cluster_id: int) -> Cluster:
    """The cluster, locked; Cluster.DoesNotExist when it is gone."""
    return locked().get(pk=cluster_id)


def lock_cluster_for_delete(cluster_id: int) -> Cluster:
    """The cluster under a full FOR UPDATE, which also waits for deployments being inserted into it."""
    return Cluster.objects.select_for_update().get(pk=cluster_id)


def lock_with_cluster(deployment_id: int) -> tuple[Cluster, Deployment]:
    """Lock a deployment's cluster, then the deployment, in the policy's order.

    The cluster is known only by reading the deployment first; if the deployment moved to another cluster
    before its row was locked, the lock taken is the wrong one, so let it go and take the right one.
    """
    while True:
        cluster_id = Deployment.objects.values_list("cluster_id", flat=True).get(pk=deployment_id)
        with transaction.atomic():
            cluster = lock_cluster(cluster_id)
            deployment = Deployment.objects.select_for_update(no_key=True).get(pk=deployment_id)
            if deployment.cluster_id == cluster_id:
                return cluster, deployment
            transaction.set_rollback(True)
