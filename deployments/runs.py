"""What agents report about the deployments they run: containers started, exited (ending the deployment or
restarting it in place), failed to start, vanished or stopped, their output, and the work of an agent that
was lost. Each is decided by the pure `deployments.reports` and `deployments.restarts` and applied under the
cluster's lock."""
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, FloatField, Value, When
from django.utils import timezone

from agents.models import Agent
from clusters.locks import lock_cluster
from clusters.models import Cluster
from hypervisor_mlops.streams.hints import announce
from scheduling.resources import Resources

from .attempts import begin_restart, stop_containers
from .lifecycle import FINISH_VERBS, finish_locked
from .models import (
    AttemptState,
    Deployment,
    DeploymentEvent,
    DeploymentLog,
    EndReason,
    EventKind,
    RunAttempt,
    Status,
)
from .output import clean_output, trimmed
from .reports import (
    Change,
    OpenAttempt,
    SeenContainer,
    ServiceUpdate,
    StartFailure,
    Transition,
    runtime_transitions,
    service_updates,
)
from .restarts import Backoff, exhausted, restarts_after

logger = logging.getLogger(__name__)


def apply_agent_report(*, agent: Agent, seen: list[SeenContainer], failures: list[StartFailure], host: str) -> bool:
    """Record what the agent saw: containers started, exited (finishing their deployments), failed to start,
    vanished, or stopped, and where the running ones are published (on `host`) and whether they are ready.
    Returns whether anything changed.

    Decided by `runtime_transitions` and `service_updates` twice: without a lock, so a report that changes
    nothing (most of them) costs one query, then again under the cluster's row lock on what is there, so a
    report that arrives late or twice changes nothing the second time.
    """
    snapshot = _open_snapshot(agent.pk)
    if not runtime_transitions(snapshot, seen, failures) and not service_updates(snapshot, seen, host):
        return False
    with transaction.atomic():
        cluster = lock_cluster(agent.cluster_id)
        snapshot = _open_snapshot(agent.pk)
        transitions = runtime_transitions(snapshot, seen, failures)
        deployments = Deployment.objects.select_for_update(no_key=True).filter(
            pk__in=[t.attempt.deployment for t in transitions]).order_by("pk").in_bulk()
        now = timezone.now()
        for transition in transitions:
            _apply_transition(cluster, agent, deployments[transition.attempt.deployment], transition, now)
        updates = service_updates(snapshot, seen, host)
        for update in updates:
            _apply_service_update(update, now)
    return bool(transitions or updates)


def _open_snapshot(agent_id: int) -> list[OpenAttempt]:
    rows = RunAttempt.objects.filter(agent_id=agent_id, state__in=RunAttempt.OPEN_STATES).values_list(
        "pk", "deployment_id", "number", "state", "container", "endpoints", "ready")
    return [OpenAttempt(*row[:5], tuple(row[5]), row[6]) for row in rows]


# What each change makes of the attempt (None: it stays as it is).
ATTEMPT_STATE_AFTER = {
    Change.CREATED: None, Change.STARTED: AttemptState.RUNNING, Change.EXITED: AttemptState.EXITED,
    Change.START_FAILED: AttemptState.STOPPED, Change.VANISHED: AttemptState.STOPPED,
    Change.STOPPED: AttemptState.STOPPED,
}


def _apply_transition(cluster: Cluster, agent: Agent, deployment: Deployment, transition: Transition,
                      now: datetime) -> None:
    attempt, change, short = transition.attempt, transition.change, transition.container[:12]
    current = deployment.status == Status.RUNNING and deployment.run == attempt.number
    run = RunAttempt.objects.filter(pk=attempt.id)
    run.update(state=ATTEMPT_STATE_AFTER[change] or attempt.state, container=transition.container,
               exit_code=transition.exit_code, updated_at=now)
    # A container that ran and exited between two reports did start: the history says so.
    if change is Change.STARTED or (change is Change.EXITED and attempt.state == AttemptState.STARTING):
        run.filter(running_since__isnull=True).update(running_since=now)
        DeploymentEvent.objects.create(deployment=deployment, kind=EventKind.STARTED,
                                       message=f"Container {short} started on agent '{agent.name}'.")
        if current and deployment.status_message:  # a restart's countdown is over
            deployment.status_message = ""
            deployment.save(update_fields=["status_message"])
    if change is Change.STOPPED and short:
        code = "" if transition.exit_code is None else f" (exit code {transition.exit_code})"
        DeploymentEvent.objects.create(deployment=deployment, kind=EventKind.STOPPED,
                                       message=f"Container {short} stopped{code}.")
    if not current:
        return
    if change is Change.EXITED and restarts_after(deployment.restart_policy, transition.exit_code):
        _restart_or_give_up(cluster, deployment, run.get(), now)
        return
    ending = _ending(transition)
    if ending:
        finish_locked(cluster, deployment, *ending, exit_code=transition.exit_code)


def _apply_service_update(update: ServiceUpdate, now: datetime) -> None:
    changes = {"updated_at": now}
    if update.endpoints is not None:
        changes["endpoints"] = list(update.endpoints)
    if update.ready is not None:
        changes["ready"] = update.ready
        health = f": {update.health.rstrip('.')}" if update.health else ""
        DeploymentEvent.objects.create(
            deployment_id=update.attempt.deployment, kind=EventKind.READY if update.ready else EventKind.NOT_READY,
            message=(f"Ready{health}." if update.ready else f"Not ready{health}.")[:500])
    RunAttempt.objects.filter(pk=update.attempt.id).update(**changes)


def _ending(transition: Transition) -> tuple[Status, str, EndReason] | None:
    """How the change ends the deployment, if it runs that attempt: its status, the reason in words and why."""
    if transition.change is Change.EXITED:
        status = Status.COMPLETED if transition.exit_code == 0 else Status.FAILED
        return (status, f"{FINISH_VERBS[status].capitalize()}: its container exited with code {transition.exit_code}.",
                EndReason.EXITED)
    if transition.change is Change.START_FAILED:
        return Status.FAILED, f"Failed to start: {transition.error}"[:500], EndReason.START_ERROR
    if transition.change is Change.VANISHED:
        return (Status.FAILED, f"Failed: its container {transition.container[:12]} vanished from the agent's host.",
                EndReason.VANISHED)
    return None


def _restart_or_give_up(cluster: Cluster, deployment: Deployment, exited: RunAttempt, now: datetime) -> None:
    """The deployment's container exited and its policy restarts it: in place after its backoff, or, with its
    restarts used up, not at all (it fails)."""
    code, cap = exited.exit_code, deployment.max_restarts
    if exhausted(deployment.restart_count, cap):
        finish_locked(cluster, deployment, Status.FAILED,
                      f"Failed: its container exited with code {code}; its restarts are used up (max_restarts {cap}).",
                      EndReason.RESTARTS_EXHAUSTED, exit_code=code)
        return
    backoff = Backoff(settings.RESTART_BACKOFF_SECONDS, settings.RESTART_BACKOFF_MAX_SECONDS,
                      settings.RESTART_RESET_SECONDS)
    ran = (now - exited.running_since).total_seconds() if exited.running_since else None
    step = backoff.step_after(exited.restart_step, ran)
    delay = backoff.delay(step)
    begin_restart(deployment, exited, step=step, not_before=now + timedelta(seconds=delay))
    if exited.ready and deployment.health_check is not None:
        DeploymentEvent.objects.create(deployment=deployment, kind=EventKind.NOT_READY,
                                       message=f"Not ready: its container exited with code {code}.")
    which = f"{deployment.restart_count}{'' if cap is None else f' of {cap}'}"
    deployment.status_message = f"Restarting ({which}) in {delay:g} s: its container exited with code {code}."
    deployment.save(update_fields=["status_message"])
    DeploymentEvent.objects.create(deployment=deployment, kind=EventKind.RESTARTED,
                                   message=f"Restart {which} after {delay:g} s: its container exited with code {code}.")


def requeue_from_lost_agent(agent_id: int) -> int:
    """Requeue what the cluster of a lost agent runs (back to pending at its place, not a preemption), unless
    the agent came back or was revoked while this waited for the cluster's lock. Returns how many."""
    with transaction.atomic():
        cluster_id = Agent.objects.values_list("cluster_id", flat=True).get(pk=agent_id)
        cluster = lock_cluster(cluster_id)
        agent = Agent.objects.get(pk=agent_id)
        if agent.revoked_at is not None or not agent.is_lost_at(timezone.now()):
            return 0  # it came back (or was revoked) while this sweep waited for the lock
        started = dict(Deployment.objects.filter(cluster=cluster).running().order_by("pk")
                       .select_for_update(no_key=True).values_list("pk", "started_at"))
        ids, now = list(started), timezone.now()
        message = f"Requeued: agent '{agent.name}' was lost (silent since {agent.last_heard_at:%Y-%m-%d %H:%M:%S} UTC)."
        # Their runs start over: what they ran is thrown away, as a preemption's is.
        lost = Case(*(When(pk=pk, then=Value(max((now - at).total_seconds(), 0.0))) for pk, at in started.items()),
                    default=Value(0.0), output_field=FloatField())
        Deployment.objects.filter(pk__in=ids).update(status=Status.PENDING, started_at=None, status_message=message,
                                                     lost_seconds=F("lost_seconds") + lost)
        DeploymentEvent.objects.bulk_create(
            DeploymentEvent(deployment_id=pk, kind=EventKind.REQUEUED, message=message) for pk in ids)
        stop_containers(ids)
        cluster.set_allocated(Resources.zero())
    logger.warning("Agent %s of cluster %s lost: requeued %s running deployments.", agent_id, cluster_id, len(ids))
    return len(ids)


def append_logs(*, agent_id: int, chunks: Iterable[tuple[int, int, int, bytes]]) -> list[tuple[int, int, int]]:
    """Add output the agent read from its containers: (deployment, attempt, byte offset, raw bytes) each.

    Only bytes beyond what the attempt already has are added, so a chunk sent twice, late, or again from 0
    by a restarted agent adds nothing twice. Returns (deployment, attempt, bytes now held) for each chunk.
    """
    held = []
    for deployment_id, number, offset, data in chunks:
        with transaction.atomic():
            attempt = RunAttempt.objects.select_for_update().filter(
                agent_id=agent_id, deployment_id=deployment_id, number=number).first()
            if attempt is None:
                continue
            new = data[max(attempt.log_bytes - offset, 0):]
            if new:
                log, _ = DeploymentLog.objects.select_for_update().get_or_create(deployment_id=deployment_id)
                log.text, dropped_chars, dropped_lines = trimmed(log.text + clean_output(new))
                log.truncated = log.truncated or dropped_chars > 0
                log.dropped_chars += dropped_chars
                log.dropped_lines += dropped_lines
                log.save()
                announce(deployment_id)
                attempt.log_bytes = offset + len(data)
                attempt.save(update_fields=["log_bytes"])
            held.append((deployment_id, number, attempt.log_bytes))
    return held
