"""Run attempts on an agent's host: the bookkeeping of which container may live, under the caller's cluster
lock. Each start on a cluster with an agent is a new attempt; only the current attempt's container may run."""
from collections.abc import Iterable

from django.db.models import F
from django.utils import timezone

from agents.models import Agent
from clusters.models import Cluster

from .models import AttemptState, Deployment, RunAttempt


def begin_attempts(agent_id: int, deployment_ids: Iterable[int]) -> None:
    """A new run attempt for each deployment, for the agent to start: the only one whose container may live."""
    ids = list(deployment_ids)
    Deployment.objects.filter(pk__in=ids).update(attempt=F("attempt") + 1)
    RunAttempt.objects.bulk_create(
        RunAttempt(deployment_id=pk, number=number, agent_id=agent_id)
        for pk, number in Deployment.objects.filter(pk__in=ids).values_list("pk", "attempt")
    )


def stop_containers(deployment_ids: list[int]) -> None:
    """The deployments no longer hold resources: whatever container they have must stop."""
    RunAttempt.objects.filter(
        deployment_id__in=deployment_ids, state__in=(AttemptState.STARTING, AttemptState.RUNNING)
    ).update(state=AttemptState.STOPPING, updated_at=timezone.now())


def hand_over_to_agent(*, cluster: Cluster, agent: Agent) -> None:
    """A new agent drives the (locked) cluster: it runs what is running there, and owns no older attempt."""
    RunAttempt.objects.filter(deployment__cluster=cluster, state__in=RunAttempt.OPEN_STATES).exclude(
        agent=agent).update(state=AttemptState.STOPPED, updated_at=timezone.now())
    begin_attempts(agent.pk, Deployment.objects.filter(cluster=cluster).running().values_list("pk", flat=True))


def release_from_agent(*, cluster: Cluster, agent: Agent) -> None:
    """A revoked agent stops every container it runs; the (locked) cluster goes on as ledger-only."""
    RunAttempt.objects.filter(agent=agent, state__in=(AttemptState.STARTING, AttemptState.RUNNING)).update(
        state=AttemptState.STOPPING, updated_at=timezone.now())


def open_attempts(*, agent_id: int):
    """The attempts whose containers the agent must run or stop: the one query an idle sync costs."""
    return RunAttempt.objects.filter(agent_id=agent_id, state__in=RunAttempt.OPEN_STATES).select_related(
        "deployment").order_by("deployment_id")
