"""State changes of projects and their members, and who may submit to a project at what priority.

Locking policy: deleting a project locks its row FOR UPDATE first. Anything that writes a row naming a project
(a deployment, a quota) first takes FOR KEY SHARE on it (`hold_project`): the foreign key would take that lock
only at commit (Django's are deferred), too late for the deletion to see the new row. So a deletion either waits
for the writer and then sees its row (409), or commits first and the writer finds the project gone, rather than
failing on the foreign key at its commit. Concurrent writers do not block each other.
"""
from django.db import IntegrityError, connection, transaction
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from accounts.models import User
from hypervisor_mlops.api.exceptions import Conflict

from .models import (
    DEFAULT_PROJECT_NAME,
    DUPLICATE_PROJECT_NAME,
    Membership,
    Organization,
    Project,
    ProjectMembership,
    Role,
)


def create_default_project(*, organization: Organization) -> Project:
    """The project every member of a new organization belongs to; call it in the transaction creating it."""
    return Project.objects.create(organization=organization, name=DEFAULT_PROJECT_NAME, is_default=True)


def hold_project(project_id: int) -> bool:
    """Lock the project FOR KEY SHARE until the caller's transaction ends; False when it no longer exists."""
    if connection.vendor != "postgresql":
        # SQLite writes one transaction at a time, so nothing can delete it in between.
        return Project.objects.filter(pk=project_id).exists()
    # The ORM's select_for_update knows FOR UPDATE and FOR NO KEY UPDATE only; either would make every
    # submission to a project wait for the others.
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT 1 FROM "{Project._meta.db_table}" WHERE "id" = %s FOR KEY SHARE', [project_id])
        return cursor.fetchone() is not None


def update_project(*, project_id: int, **changes) -> Project:
    """Rename a project or change its priority ceiling; the default project keeps its name (409).

    A new ceiling applies to what is submitted or edited from then on; deployments already queued keep their
    priority.
    """
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project_id)
        if project.is_default and changes.get("name", project.name) != project.name:
            raise Conflict("The default project cannot be renamed.")
        for field, value in changes.items():
            setattr(project, field, value)
        try:
            with transaction.atomic():
                project.save(update_fields=list(changes))
        except IntegrityError as exc:
            raise ValidationError({"name": [DUPLICATE_PROJECT_NAME]}) from exc
    return project


def delete_project(*, project_id: int) -> None:
    """Delete a project and its quotas; 409 for the default project and while it has pending or running
    deployments. Its finished deployments stay, in the organization's default project."""
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project_id)
        if project.is_default:
            raise Conflict("The default project cannot be deleted.")
        active = project.deployments.active().count()
        if active:
            raise Conflict(f"The project has {active} pending or running deployments; cancel them first.")
        project.deployments.update(project=project.organization.default_project)
        project.delete()


def add_project_member(*, project: Project, user_id: int) -> tuple[User, bool]:
    """Make a member of the project's organization a member of the project; adding one twice changes nothing.

    Someone outside the organization is a 400 that says no more than that; the default project holds every
    member of its organization already. Returns the user and whether the membership is new.
    """
    with transaction.atomic():
        # The organization membership stays until this commits: removing a member waits for it (a row lock
        # against its DELETE), then removes this project membership too.
        membership = (Membership.objects.select_for_update(no_key=True)
                      .filter(organization_id=project.organization_id, user__pk=user_id).first())
        if membership is None:
            raise ValidationError({"user": ["Not a member of this project's organization."]})
        if project.is_default:
            return membership.user, False
        try:
            with transaction.atomic():
                created = ProjectMembership.objects.get_or_create(project=project, user=membership.user)[1]
        except IntegrityError:
            created = False  # the same user added twice at the same moment; the other request created it
    return membership.user, created


def remove_project_member(*, project: Project, user_id: int) -> None:
    """Take a user out of a project (404 when not in it); their deployments stay where they are.

    Every member of the organization belongs to its default project: they leave it only by leaving the
    organization (409).
    """
    if project.is_default:
        raise Conflict("Every member of the organization belongs to its default project; remove them from the "
                       "organization instead.")
    deleted, _ = ProjectMembership.objects.filter(project=project, user__pk=user_id).delete()
    if not deleted:
        raise NotFound("No such member in this project.")


def ensure_may_submit(*, project: Project, user: User, role: str) -> None:
    """403 unless the user may put deployments in the project: admins of its organization in any of its
    projects, everyone else in the default project and in those they are members of."""
    if role == Role.ADMIN or project.is_default:
        return
    if not ProjectMembership.objects.filter(project=project, user=user).exists():
        raise PermissionDenied(f"You are not a member of project '{project.name}'.")


def ensure_priority_allowed(*, project: Project, priority: int) -> None:
    """400 naming the project's ceiling when the priority is above it."""
    if project.max_priority is not None and priority > project.max_priority:
        raise ValidationError(
            {"priority": [f"Project '{project.name}' allows priority at most {project.max_priority}."]})
