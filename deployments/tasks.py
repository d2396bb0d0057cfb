"""The scheduling queue: after-commit messages, at most one queued per cluster, and the thin Celery tasks that
run scheduling passes and reconcile sweeps."""
import logging
from functools import partial

from celery import shared_task
from django.core.cache import cache
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from clusters.models import Cluster

from . import passes
from .metrics import LEDGER_DRIFT, SCHEDULING_PASS

logger = logging.getLogger(__name__)

SCHEDULING_MARKER_TTL_SECONDS = 60


def request_scheduling(cluster_id: int) -> None:
    """Queue a scheduling pass for the cluster once the current transaction commits."""
    transaction.on_commit(partial(_send_scheduling, cluster_id))


def _scheduling_queued_key(cluster_id: int) -> str:
    return f"scheduling-queued:{cluster_id}"


def _send_scheduling(cluster_id: int) -> None:
    # A queued pass reads the whole picture when it runs, so one queued pass per cluster is enough: under a
    # burst of submissions the marker (in the shared cache, with a TTL in case a message is lost) turns
    # hundreds of messages into a few passes. The task clears it before its pass reads anything.
    key = _scheduling_queued_key(cluster_id)
    try:
        if not cache.add(key, 1, timeout=SCHEDULING_MARKER_TTL_SECONDS):
            return
    except RedisError:
        pass  # no marker store: send the message anyway
    # The change is committed either way: with the broker down, the request still succeeds and the next
    # reconcile sweep places the work, rather than the API failing after the fact.
    try:
        schedule_cluster_task.apply_async((cluster_id,), retry=False)
    except BrokerError as exc:
        logger.warning("Broker unreachable (%s); cluster %s waits for the next reconcile.", exc, cluster_id)
        _clear_scheduling_marker(cluster_id)


def _clear_scheduling_marker(cluster_id: int) -> None:
    try:
        cache.delete(_scheduling_queued_key(cluster_id))
    except RedisError:
        logger.warning("Cache unreachable; the scheduling marker of cluster %s expires by itself.", cluster_id)


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def schedule_cluster_task(cluster_id: int) -> None:
    """One scheduling pass over one cluster; idempotent, so redelivery or duplicates are harmless."""
    # Cleared before the pass reads: a change committed from now on queues a new pass rather than being missed.
    _clear_scheduling_marker(cluster_id)
    with SCHEDULING_PASS.time():
        result = passes.schedule_cluster(cluster_id=cluster_id)
    if result is not None:
        logger.info("scheduling pass on cluster %s: %d started, %d preempted", cluster_id, len(result.starts),
                    len(result.preemptions), extra={"cluster": cluster_id})


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def reconcile_cluster_task(cluster_id: int) -> None:
    if passes.reconcile_cluster(cluster_id=cluster_id):
        LEDGER_DRIFT.inc()


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def reconcile_clusters_task() -> None:
    """Run by beat: fan out one reconcile per cluster, so workers share the sweep."""
    for cluster_id in Cluster.objects.values_list("pk", flat=True).iterator():
        reconcile_cluster_task.delay(cluster_id)
