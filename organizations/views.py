"""Organization endpoints: CRUD, joining by invite code, members and roles."""
from drf_yasg.utils import no_body, swagger_auto_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from hypervisor_mlops.api.queries import PageQuerySerializer, StrictQueryParameters
from hypervisor_mlops.api.throttling import JoinRateThrottle

from . import services
from .models import Organization, Role
from .permissions import ADMINS, ANY_MEMBER, HasOrganizationRole
from .serializers import (
    InviteCodeSerializer,
    JoinResultSerializer,
    MembershipPageSerializer,
    MembershipSerializer,
    OrganizationSerializer,
    RoleSerializer,
)


class OrganizationViewSet(
    StrictQueryParameters,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's organizations. Anyone may create one (and becomes its admin) or join one by code."""

    serializer_class = OrganizationSerializer
    lookup_value_regex = r"\d+"
    permission_classes = (HasOrganizationRole,)
    http_method_names = ("get", "post", "patch", "delete", "head", "options")
    query_serializers = {"members": PageQuerySerializer}
    required_roles = {
        "retrieve": ANY_MEMBER,
        "partial_update": ADMINS,
        "members": ANY_MEMBER,
        "member": ADMINS,
        "leave": ANY_MEMBER,
        "rotate_invite_code": ADMINS,
    }

    def get_queryset(self):
        return Organization.objects.visible_to(self.request.user).order_by("id")

    def perform_create(self, serializer) -> None:
        organization = services.create_organization(name=serializer.validated_data["name"], creator=self.request.user)
        organization.caller_role = Role.ADMIN
        serializer.instance = organization

    @swagger_auto_schema(request_body=InviteCodeSerializer, responses={200: JoinResultSerializer})
    @action(detail=True, methods=["post"], url_path="join", throttle_classes=[JoinRateThrottle])
    def join(self, request, pk=None):
        """Join this organization with its invite code (a wrong code is 400 and reveals nothing)."""
        return self._join(request, organization_id=int(pk))

    @swagger_auto_schema(request_body=InviteCodeSerializer, responses={200: JoinResultSerializer})
    @action(detail=False, methods=["post"], url_path="join", url_name="join-by-code",
            throttle_classes=[JoinRateThrottle])
    def join_by_code(self, request):
        """Join whichever organization the invite code belongs to."""
        return self._join(request, organization_id=None)

    def _join(self, request, organization_id: int | None) -> Response:
        serializer = InviteCodeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership, created = services.join_organization(
            invite_code=serializer.validated_data["invite_code"], user=request.user, organization_id=organization_id
        )
        membership.already_member = not created
        membership.detail = "Joined the organization." if created else "You are already a member of this organization."
        return Response(JoinResultSerializer(membership).data)

    @swagger_auto_schema(responses={200: MembershipPageSerializer})
    @action(detail=True, methods=["get"])
    def members(self, request, pk=None):
        """Every member with their role."""
        organization = self.get_object()
        queryset = organization.memberships.select_related("user").order_by("joined_at", "id")
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(MembershipSerializer(page, many=True).data)

    @swagger_auto_schema(method="patch", request_body=RoleSerializer, responses={
        200: MembershipSerializer, 409: "The last admin cannot be demoted."})
    @swagger_auto_schema(method="delete", responses={204: "Removed", 409: "The last admin cannot be removed."})
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<user_id>\d+)")
    def member(self, request, pk=None, user_id=None):
        """Change a member's role or remove them (admins); the last admin stays (409)."""
        organization = self.get_object()
        if request.method == "DELETE":
            services.remove_member(organization=organization, user_id=int(user_id))
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = RoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.change_member_role(
            organization=organization, user_id=int(user_id), role=serializer.validated_data["role"]
        )
        return Response(MembershipSerializer(membership).data)

    @swagger_auto_schema(request_body=no_body, responses={204: "Left", 409: "The last admin cannot leave."})
    @action(detail=True, methods=["post"])
    def leave(self, request, pk=None):
        """Leave the organization; the last admin cannot (409)."""
        organization = self.get_object()
        services.remove_member(organization=organization, user_id=request.user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @swagger_auto_schema(request_body=no_body, responses={200: InviteCodeSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-invite-code")
    def rotate_invite_code(self, request, pk=None):
        """Replace the invite code; the old one stops working at once."""
        organization = self.get_object()
        return Response({"invite_code": services.rotate_invite_code(organization=organization)})
