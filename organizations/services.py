"""State changes of organizations and their memberships.

Locking policy: every change that could leave an organization without an admin locks the organization row
first (`select_for_update`), so two admins demoting each other at the same moment are serialized and the
second one sees that only one admin is left.
"""
from django.db import IntegrityError, transaction
from rest_framework.exceptions import NotFound, ValidationError

from accounts.models import User
from hypervisor_mlops.api.exceptions import Conflict

from .models import Membership, Organization, ProjectMembership, Role, generate_invite_code
from .projects import create_default_project

INVALID_INVITE_CODE = "Invalid invite code."


def create_organization(*, name: str, creator: User) -> Organization:
    """Create an organization whose creator is its first admin, with its default project."""
    with transaction.atomic():
        organization = Organization.objects.create(name=name)
        Membership.objects.create(organization=organization, user=creator, role=Role.ADMIN)
        create_default_project(organization=organization)
    return organization


def join_organization(*, invite_code: str, user: User, organization_id: int | None = None) -> tuple[Membership, bool]:
    """Make the user a developer of the organization the code belongs to; joining twice changes nothing.

    A wrong code, or a code of another organization than the one named, gives the same answer, so guessing
    reveals nothing about which organizations exist. Returns the membership and whether it is new.
    """
    organization = Organization.objects.filter(invite_code=invite_code).first()
    if organization is None or (organization_id is not None and organization.pk != organization_id):
        raise ValidationError({"invite_code": [INVALID_INVITE_CODE]})
    try:
        with transaction.atomic():
            return Membership.objects.get_or_create(
                organization=organization, user=user, defaults={"role": Role.DEVELOPER}
            )
    except IntegrityError:
        # The same user joined twice at the same moment; the other request created the membership.
        return Membership.objects.get(organization=organization, user=user), False


def rotate_invite_code(*, organization: Organization) -> str:
    """Give the organization a new invite code; the old one stops working when this commits."""
    organization.invite_code = generate_invite_code()
    organization.save(update_fields=["invite_code"])
    return organization.invite_code


def change_member_role(*, organization: Organization, user_id: int, role: str) -> Membership:
    """Set a member's role; the last admin cannot be demoted (409)."""
    with transaction.atomic():
        membership = _lock_membership(organization, user_id)
        if membership.role == Role.ADMIN and role != Role.ADMIN:
            _ensure_another_admin(organization, "demoted")
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def remove_member(*, organization: Organization, user_id: int) -> None:
    """Remove a member (or let one leave), and from the organization's projects; the last admin can never go (409)."""
    with transaction.atomic():
        membership = _lock_membership(organization, user_id)
        if membership.role == Role.ADMIN:
            _ensure_another_admin(organization, "removed")
        membership.delete()
        # After the membership is gone, in a statement of its own: a project membership being added waited for
        # that delete (organizations.projects) and is committed by now, so it goes too.
        ProjectMembership.objects.filter(project__organization=organization, user=membership.user_id).delete()


def _lock_membership(organization: Organization, user_id: int) -> Membership:
    Organization.objects.select_for_update().only("pk").get(pk=organization.pk)
    try:
        # Through the user's key, whose lookup knows a number beyond 64 bits matches nothing (user_id's would
        # hand it to SQLite, which cannot even compare it).
        return Membership.objects.get(organization=organization, user__pk=user_id)
    except Membership.DoesNotExist:
        raise NotFound("No such member in this organization.") from None


def _ensure_another_admin(organization: Organization, verb: str) -> None:
    if Membership.objects.filter(organization=organization, role=Role.ADMIN).count() < 2:
        raise Conflict(f"The last admin of an organization cannot be {verb}; make another member admin first.")
