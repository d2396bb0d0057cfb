"""Role-based authority over an organization's objects, shared by every app's viewsets.

Visibility is the queryset: a viewset returns `Model.objects.visible_to(user)`, which holds only objects of
the caller's organizations (others are 404) and annotates each with the caller's role as `caller_role`.
Authority is this one permission class: the viewset's `required_roles` maps each action to the roles that
may perform it (403 for the rest).
"""
from rest_framework.permissions import IsAuthenticated

from .models import Role

ANY_MEMBER = frozenset(Role.values)
MANAGERS = frozenset({Role.ADMIN, Role.DEVELOPER})
ADMINS = frozenset({Role.ADMIN})


class HasOrganizationRole(IsAuthenticated):
    """Signed in (401 otherwise) and, on an object, holding one of the roles its action requires (403)."""

    message = "Your role in this organization does not allow this."

    @staticmethod
    def role_decides(view) -> bool:
        """Whether a role the caller may not hold can refuse the view's action (its 403, for the OpenAPI document)."""
        roles = getattr(view, "required_roles", {}).get(getattr(view, "action", None))
        return roles is not None and set(roles) != set(ANY_MEMBER)

    def has_object_permission(self, request, view, obj) -> bool:
        return obj.caller_role in view.required_roles[view.action]

