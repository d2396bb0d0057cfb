"""Metrics of agents, read from the database at scrape time (named in settings.METRICS_COLLECTORS)."""
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from .models import Agent


class AgentCollector:
    """Whether each live agent is online, in one query."""

    def collect(self):
        agent_up = GaugeMetricFamily("hypervisor_agent_up", "1 while a live agent is online, else 0.",
                                     labels=["cluster", "agent"])
        now = timezone.now()
        for agent in Agent.objects.live().order_by("pk").only("pk", "cluster_id", "created_at", "last_seen_at"):
            agent_up.add_metric([str(agent.cluster_id), str(agent.pk)],
                                1 if agent.status_at(now) == Agent.Status.ONLINE else 0)
        yield agent_up
