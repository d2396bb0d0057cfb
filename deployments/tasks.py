"""Celery tasks: thin wrappers that take ids and call the scheduling services."""
import logging

from celery import shared_task

from clusters.models import Cluster

from . import services
from .metrics import LEDGER_DRIFT, SCHEDULING_PASS

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def schedule_cluster_task(cluster_id: int) -> None:
    """One scheduling pass over one cluster; idempotent, so redelivery or duplicates are harmless."""
    with SCHEDULING_PASS.time():
        result = services.schedule_cluster(cluster_id=cluster_id)
    if result is not None:
        logger.info("scheduling pass on cluster %s: %d started, %d preempted", cluster_id, len(result.starts),
                    len(result.preemptions), extra={"cluster": cluster_id})


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def reconcile_cluster_task(cluster_id: int) -> None:
    if services.reconcile_cluster(cluster_id=cluster_id):
        LEDGER_DRIFT.inc()


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def reconcile_clusters_task() -> None:
    """Run by beat: fan out one reconcile per cluster, so workers share the sweep."""
    for cluster_id in Cluster.objects.values_list("pk", flat=True).iterator():
        reconcile_cluster_task.delay(cluster_id)


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def requeue_lost_agents_task() -> None:
    """Run by beat every AGENT_SWEEP_SECONDS: requeue what lost agents were running."""
    services.requeue_lost_agents()
