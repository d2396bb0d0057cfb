"""The lost-agent sweep as a Celery task, run by beat."""
from celery import shared_task

from .liveness import requeue_lost_agents


# Named as it was when it lived in deployments.tasks, so beat entries and messages in flight still resolve.
@shared_task(name="deployments.tasks.requeue_lost_agents_task", acks_late=True, time_limit=60, soft_time_limit=50)
def requeue_lost_agents_task() -> None:
    """Run by beat every AGENT_SWEEP_SECONDS: requeue what lost agents were running."""
    requeue_lost_agents()
