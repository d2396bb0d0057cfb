"""Time limits: a running deployment past its `time_limit_seconds` ends `failed` (`end_reason: time_limit`),
exactly once, under its cluster's lock like every other finish. Swept every TIME_LIMIT_SWEEP_SECONDS by beat
(`end_overdue_task`) or, on the embedded default, by `manage.py sweep`."""
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from clusters.locks import lock_with_cluster

from .lifecycle import finish_locked
from .models import Deployment, EndReason, Status


def overdue(deployment: Deployment, now) -> bool:
    """Whether the deployment has run past its time limit, counted from its latest start by the scheduler."""
    return (deployment.status == Status.RUNNING and deployment.time_limit_seconds is not None
            and deployment.started_at + timedelta(seconds=deployment.time_limit_seconds) <= now)


def end_overdue() -> int:
    """End every running deployment past its time limit; returns how many. Running deployments with a limit
    are few (they hold resources), so one indexed read finds them and the limit is checked here."""
    now = timezone.now()
    candidates = (Deployment.objects.running().filter(time_limit_seconds__isnull=False)
                  .only("pk", "status", "started_at", "time_limit_seconds").order_by("pk"))
    return sum(_end_if_overdue(d.pk) for d in candidates if overdue(d, now))


def _end_if_overdue(deployment_id: int) -> bool:
    with transaction.atomic():
        cluster, deployment = lock_with_cluster(deployment_id)
        # Checked again under the lock: it may have ended, or been preempted and started afresh, meanwhile.
        if not overdue(deployment, timezone.now()):
            return False
        finish_locked(cluster, deployment, Status.FAILED,
                      f"Failed: it reached its time limit of {deployment.time_limit_seconds} s.",
                      EndReason.TIME_LIMIT)
    return True


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def end_overdue_task() -> None:
    """Run by beat every TIME_LIMIT_SWEEP_SECONDS."""
    end_overdue()
