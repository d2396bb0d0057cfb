"""A deployment's life as users and dependencies drive it: create, edit, finish (complete, fail, cancel), and
what a finish means for the deployments that depend on it."""
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Exists
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import User
from clusters.locks import lock_with_cluster
from clusters.models import Cluster
from hypervisor_mlops.api.exceptions import Conflict
from organizations.models import Project
from organizations.projects import hold_project

from .attempts import stop_containers
from .models import Deployment, DeploymentEvent, EndReason, EventKind, Status
from .snapshot import unfinished_dependencies
from .tasks import request_scheduling

FINISH_EVENTS = {Status.COMPLETED: EventKind.COMPLETED, Status.FAILED: EventKind.FAILED,
                 Status.CANCELLED: EventKind.CANCELLED}


FINISH_VERBS = {Status.COMPLETED: "completed", Status.FAILED: "failed", Status.CANCELLED: "cancelled"}


def create_deployment(*, cluster: Cluster, created_by: User, depends_on: Iterable[Deployment] = (),
                      project: Project | None = None, **fields) -> Deployment:
    """Queue a deployment in `project` (by default its organization's default project); a scheduling pass for
    its cluster runs once this commits.

    Its dependencies must still be able to complete: one that already failed or was cancelled is a 400, and so
    is a project deleted since the request was validated.
    """
    with transaction.atomic():
        project = project or Project.objects.default_of(cluster.organization_id)
        _lock_project(project)
        if depends_on:
            _ensure_dependencies_can_complete([d.pk for d in depends_on])
        deployment = Deployment.objects.create(cluster=cluster, project=project, created_by=created_by, **fields)
        if depends_on:
            deployment.depends_on.set(depends_on)
        DeploymentEvent.objects.create(
            deployment=deployment, kind=EventKind.QUEUED,
            message=f"Queued on cluster '{cluster.name}' with priority {deployment.priority}.",
        )
        request_scheduling(cluster.pk)
    return deployment


def finish_deployment(*, deployment_id: int, status: Status, actor: User | None) -> Deployment:
    """Complete, fail or cancel a deployment, freeing what it held; 409 when the transition does not apply.

    Completing one lets dependents whose dependencies are now all complete start, on whichever cluster they
    are; failing or cancelling one cancels everything that depends on it, directly or transitively. On a
    cluster with an agent, its container is stopped.
    """
    with transaction.atomic():
        cluster, deployment = lock_with_cluster(deployment_id)
        if not deployment.can_become(status):
            raise Conflict(f"A {deployment.status} deployment cannot be {FINISH_VERBS[status]}.")
        by = f" by {actor.username}" if actor else ""
        finish_locked(cluster, deployment, status, f"{FINISH_VERBS[status].capitalize()}{by}.", EndReason.USER)
    return deployment


def finish_locked(cluster: Cluster, deployment: Deployment, status: Status, message: str, end_reason: EndReason,
                  exit_code: int | None = None) -> None:
    """The finish itself, with the cluster and the deployment already locked and the transition checked."""
    was_running = deployment.status == Status.RUNNING
    deployment.status = status
    deployment.status_message = message
    deployment.end_reason = end_reason
    deployment.finished_at = timezone.now()
    deployment.exit_code = exit_code
    deployment.save(update_fields=["status", "status_message", "end_reason", "finished_at", "exit_code"])
    DeploymentEvent.objects.create(deployment=deployment, kind=FINISH_EVENTS[status], message=message)
    if was_running:
        cluster.set_allocated(cluster.allocated - deployment.demand)
        stop_containers([deployment.pk])
        request_scheduling(cluster.pk)
    if status == Status.COMPLETED:
        _release_dependents(deployment)
    else:
        _cancel_dependents(deployment)


# Fixed once a deployment has been scheduled: where it runs, whose share it draws on, what it holds, and how it
# runs and ends.
FIXED_ONCE_SCHEDULED = ("cluster", "project", "cpu_required", "ram_required", "gpu_required", "restart_policy",
                        "max_restarts", "time_limit_seconds", "persist_path", "ports", "health_check")


def update_deployment(*, deployment_id: int, **changes) -> Deployment:
    """Edit a deployment. Its cluster, project, resource request and lifecycle fields are fixed once it has been
    scheduled (409)."""
    with transaction.atomic():
        cluster, deployment = lock_with_cluster(deployment_id)
        if "project" in changes:
            _lock_project(changes["project"])
        cluster_id = cluster.pk
        moved = [f for f in FIXED_ONCE_SCHEDULED if f in changes and changes[f] != getattr(deployment, f)]
        if moved and deployment.has_been_scheduled:
            raise Conflict(f"{', '.join(moved)} cannot change once a deployment has been scheduled.")
        for field, value in changes.items():
            setattr(deployment, field, value)
        deployment.save(update_fields=list(changes))
        if deployment.status == Status.PENDING:
            request_scheduling(deployment.cluster_id)
            if deployment.cluster_id != cluster_id:
                request_scheduling(cluster_id)
    return deployment


def _lock_project(project: Project) -> None:
    # Deleting the project either waits for this commit and sees the deployment, or has committed already
    # (organizations.projects, its locking policy).
    if not hold_project(project.pk):
        raise ValidationError({"project": ["This project no longer exists."]})


def _ensure_dependencies_can_complete(ids: list[int]) -> None:
    # Locking the dependencies (in id order, like every multi-row lock here) keeps them from failing
    # between this check and the commit, which would leave the new deployment waiting forever.
    locked = Deployment.objects.filter(pk__in=ids).order_by("pk").select_for_update(no_key=True)
    dead = [
        f"#{pk} is {status}"
        for pk, status in locked.values_list("pk", "status")
        if status in (Status.FAILED, Status.CANCELLED)
    ]
    if dead:
        raise ValidationError({"depends_on": [f"These dependencies can never complete: {', '.join(dead)}."]})


def _dependents_of(ids: Iterable[int]):
    edges = Deployment.depends_on.through.objects.filter(to_deployment__in=ids).values("from_deployment")
    return Deployment.objects.filter(pk__in=edges, status=Status.PENDING)


def _release_dependents(completed: Deployment) -> None:
    """Dependents whose last dependency just completed: say so, and schedule their clusters.

    Their rows are locked before readiness is checked, in a statement of its own: when two dependencies
    complete at the same moment on different clusters, the second transaction waits for the first and then
    sees both completions, so one of them always releases the dependent.
    """
    waiting = list(_dependents_of([completed.pk]).order_by("pk").select_for_update(no_key=True)
                   .values_list("pk", flat=True))
    ready = list(Deployment.objects.filter(pk__in=waiting).filter(~Exists(unfinished_dependencies()))
                 .values_list("pk", "cluster_id"))
    message = f"All dependencies completed (the last was #{completed.pk} '{completed.name}')."
    DeploymentEvent.objects.bulk_create(
        DeploymentEvent(deployment_id=pk, kind=EventKind.DEPENDENCIES_RESOLVED, message=message) for pk, _ in ready
    )
    for cluster_id in {cluster_id for _, cluster_id in ready}:
        request_scheduling(cluster_id)


def _cancel_dependents(root: Deployment) -> None:
    """Cancel every pending deployment downstream of a failed or cancelled one, naming it as the cause.

    Dependents are always pending (they start only once every dependency completed), so no resources move
    and their clusters need no lock; their rows are locked in id order, level by level.
    """
    message = f"Cancelled: it depends on #{root.pk} '{root.name}', which {root.status}."
    frontier = [root.pk]
    while frontier:
        frontier = list(
            _dependents_of(frontier).order_by("pk").select_for_update(no_key=True).values_list("pk", flat=True)
        )
        Deployment.objects.filter(pk__in=frontier).update(
            status=Status.CANCELLED, status_message=message, end_reason=EndReason.DEPENDENCY,
            finished_at=timezone.now()
        )
        DeploymentEvent.objects.bulk_create(
            DeploymentEvent(deployment_id=pk, kind=EventKind.CANCELLED, message=message) for pk in frontier
        )
