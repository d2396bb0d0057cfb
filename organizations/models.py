"""Organizations, their members and the role each member holds."""
import secrets

from django.conf import settings
from django.db import models


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
