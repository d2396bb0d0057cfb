"""Celery tasks: thin wrappers that take ids and call the scheduling services."""
from celery import shared_task

from . import services


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def schedule_cluster_task(cluster_id: int) -> None:
    """One scheduling pass over one cluster; idempotent, so redelivery or duplicates are harmless."""
    services.schedule_cluster(cluster_id=cluster_id)
