"""An agent's liveness: its heartbeats, and the sweep that requeues the work of agents silent too long."""
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from deployments.models import Deployment
from deployments.runs import requeue_from_lost_agent
from deployments.tasks import request_scheduling

from .models import Agent

# Heartbeats within this of the last recorded one are not written: liveness needs seconds, not every poll.
HEARTBEAT_RESOLUTION = timedelta(seconds=1)

def record_heartbeat(*, agent: Agent, hostname: str, version: str) -> None:
    """The agent called. One that was lost is back: its cluster may start work again."""
    now = timezone.now()
    was_lost = agent.is_lost_at(now)
    stale = agent.last_seen_at is None or now - agent.last_seen_at >= HEARTBEAT_RESOLUTION
    if stale or (agent.hostname, agent.version) != (hostname, version):
        Agent.objects.filter(pk=agent.pk).update(last_seen_at=now, hostname=hostname, version=version)
        agent.last_seen_at, agent.hostname, agent.version = now, hostname, version
    if was_lost:
        request_scheduling(agent.cluster_id)

def requeue_lost_agents() -> int:
    """Requeue the running deployments of every cluster whose agent has been silent for
    AGENT_LOST_AFTER_SECONDS (run by beat, or `manage.py sweep`). Returns how many were requeued."""
    lost = Agent.objects.live().silent_since(timezone.now() - timedelta(seconds=settings.AGENT_LOST_AFTER_SECONDS))
    lost = lost.filter(Exists(Deployment.objects.running().filter(cluster=OuterRef("cluster"))))
    return sum(requeue_from_lost_agent(agent_id) for agent_id in lost.values_list("pk", flat=True))
