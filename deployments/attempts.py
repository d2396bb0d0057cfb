"""Run attempts on an agent's host: the bookkeeping of which container may live, under the caller's cluster
lock. Each start on a cluster with an agent is a new attempt; only the current attempt's container may run."""
from collections.abc import Iterable

from django.db.models import F, Q
from django.utils import timezone

from agents.models import Agent
from clusters.models import Cluster

from .models import AttemptState, Deployment, RunAttempt


def begin_attempts(agent_id: int, deployment_ids: Iterable[int]) -> None:
    """A new run attempt for each deployment, for the agent to start: the only one whose container may live."""
    ids = list(deployment_ids)
    Deployment.objects.filter(pk__in=ids).update(attempt=F("attempt") + 1, run=F("run") + 1)
    RunAttempt.objects.bulk_create(
        RunAttempt(deployment_id=pk, number=run, attempt=attempt, agent_id=agent_id)
        for pk, run, attempt in Deployment.objects.filter(pk__in=ids).values_list("pk", "run", "attempt")
    )


def begin_restart(deployment: Deployment, after: RunAttempt, *, step: int, not_before) -> RunAttempt:
    """The next run of the (locked) deployment's attempt, after `after` exited: a restart in place, which the
    agent starts once `not_before` has passed (and once the exited container is gone). It asks for the host
    ports the exited run had, so a service's URL keeps working; it is not ready until its check passes again."""
    deployment.run += 1
    deployment.restart_count += 1
    deployment.save(update_fields=["run", "restart_count"])
    return RunAttempt.objects.create(deployment=deployment, number=deployment.run, attempt=after.attempt,
                                     agent_id=after.agent_id, restart_step=step, not_before=not_before,
                                     endpoints=after.endpoints)


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


def wanted_runs(*, agent_id: int):
    """The runs whose containers the agent must have now (anything else of its must stop): open, not stopping,
    and past any restart's backoff. The one query an idle sync costs."""
    return (RunAttempt.objects.filter(agent_id=agent_id, state__in=(AttemptState.STARTING, AttemptState.RUNNING))
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=timezone.now()))
            .select_related("deployment").order_by("deployment_id"))


def finished_volumes(deployment_ids: list[int]) -> list[int]:
    """Of the deployments whose volumes an agent holds, those that are finished (or gone): their volumes go
    once no container of theirs is left."""
    if not deployment_ids:
        return []
    active = set(Deployment.objects.filter(pk__in=deployment_ids).active().values_list("pk", flat=True))
    return sorted(set(deployment_ids) - active)
