"""Organizations, their members and the role each member holds."""
import secrets

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce, Now


def generate_invite_code() -> str:
    """128 random bits, URL-safe: unguessable and short enough to paste."""
    return secrets.token_urlsafe(16)


class TenantQuerySet(models.QuerySet):
    """Objects owned by an organization, reached from the model through `organization_path`."""

    organization_path = ""

    def visible_to(self, user) -> "TenantQuerySet":
        """Objects of the user's organizations, each annotated with the user's role there as `caller_role`.

        Anything else is simply absent, so other tenants' objects are 404s, never 403s.
        """
        if not user.is_authenticated:
            return self.none()
        memberships = f"{self.organization_path}memberships"
        return self.filter(**{f"{memberships}__user": user}).annotate(caller_role=models.F(f"{memberships}__role"))


class Organization(models.Model):
    """A team: it owns clusters, and its members deploy onto them according to their roles."""

    name = models.CharField(max_length=200)
    invite_code = models.CharField(max_length=64, default=generate_invite_code, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="organizations")

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ("id",)
        constraints = [
            models.UniqueConstraint(
                fields=("invite_code",),
                name="%(app_label)s_%(class)s_invite_code_unique",
                violation_error_message="This invite code is already in use.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def default_project(self) -> "Project":
        """The project every member belongs to, and where deployments go unless they name another."""
        return Project.objects.default_of(self.pk)


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    """A user's place in an organization."""

    Role = Role

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DEVELOPER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("joined_at", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("user", "organization"),
                name="%(app_label)s_%(class)s_user_organization_unique",
                violation_error_message="This user is already a member of this organization.",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values),
                name="%(app_label)s_%(class)s_role_valid",
                violation_error_message="Unknown role.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} as {self.role}"


DEFAULT_PROJECT_NAME = "default"
DUPLICATE_PROJECT_NAME = "A project with this name already exists in this organization."


class ProjectQuerySet(TenantQuerySet):
    organization_path = "organization__"

    def default_of(self, organization_id: int) -> "Project":
        return self.get(organization_id=organization_id, is_default=True)

    def with_members_count(self) -> "ProjectQuerySet":
        """Annotated with `members_count`: the organization's members for the default project, its own for the
        others (counted in subqueries, which the join of `visible_to` cannot multiply)."""
        def count(queryset, key: str):
            counted = queryset.order_by().values(key).annotate(n=models.Count("pk")).values("n")
            return Coalesce(models.Subquery(counted), 0)

        return self.annotate(members_count=models.Case(
            models.When(is_default=True, then=count(
                Membership.objects.filter(organization=models.OuterRef("organization")), "organization")),
            default=count(ProjectMembership.objects.filter(project=models.OuterRef("pk")), "project"),
        ))


class Project(models.Model):
    """A share of an organization's clusters: its quotas say what it is guaranteed and may use on each, and
    `max_priority` caps the priority its deployments may ask for.

    Every organization has exactly one default project (`is_default`, named `default`), which every member of
    the organization belongs to without a membership row; other projects list their members.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100)
    max_priority = models.IntegerField(
        null=True, blank=True, default=None,
        help_text="The highest priority its deployments may ask for; empty: no ceiling.",
    )
    is_default = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ("id",)
        constraints = [
            models.UniqueConstraint(
                fields=("organization", "name"),
                name="%(app_label)s_%(class)s_organization_name_unique",
                violation_error_message=DUPLICATE_PROJECT_NAME,
            ),
            models.UniqueConstraint(
                fields=("organization",),
                condition=models.Q(is_default=True),
                name="%(app_label)s_%(class)s_one_default_per_organization",
                violation_error_message="An organization has one default project.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ProjectMembership(models.Model):
    """A user's place in a project (never needed for the default project, which holds every member)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships")
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("project", "user"),
                name="%(app_label)s_%(class)s_project_user_unique",
                violation_error_message="This user is already a member of this project.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project}"
