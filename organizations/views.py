"""Organization endpoints: CRUD, joining by invite code, members and roles; projects and their members."""
from django.utils.decorators import method_decorator
from drf_yasg.utils import no_body, swagger_auto_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from hypervisor_mlops.api.queries import PageQuerySerializer, StrictQueryParameters
from hypervisor_mlops.api.throttling import JoinRateThrottle

from accounts.models import User

from . import projects as project_actions, services
from .models import Organization, Project, Role
from .permissions import ADMINS, ANY_MEMBER, HasOrganizationRole
from .serializers import (
    InviteCodeSerializer,
    JoinResultSerializer,
    MembershipPageSerializer,
    MembershipSerializer,
    OrganizationSerializer,
    ProjectMemberPageSerializer,
    ProjectMemberSerializer,
    ProjectPageSerializer,
    ProjectSerializer,
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
    query_serializers = {"members": PageQuerySerializer, "projects": PageQuerySerializer}
    required_roles = {
        "retrieve": ANY_MEMBER,
        "partial_update": ADMINS,
        "projects": ANY_MEMBER,
        "create_project": ADMINS,
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

    @swagger_auto_schema(responses={200: ProjectPageSerializer})
    @action(detail=True, methods=["get"])
    def projects(self, request, pk=None):
        """The organization's projects, oldest (its `default`) first."""
        organization = self.get_object()
        page = self.paginate_queryset(organization.projects.with_members_count().order_by("id"))
        return self.get_paginated_response(ProjectSerializer(page, many=True).data)

    @swagger_auto_schema(request_body=ProjectSerializer, responses={
        201: ProjectSerializer, 400: "Invalid, or the name is taken in the organization.",
        403: "Only admins create projects."})
    @projects.mapping.post
    def create_project(self, request, pk=None):
        """Create a project (admins); its name is unique in the organization."""
        organization = self.get_object()
        serializer = ProjectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = serializer.save(organization=organization)
        project.members_count = 0
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


@method_decorator(name="partial_update", decorator=swagger_auto_schema(
    responses={409: "The default project cannot be renamed."}))
@method_decorator(name="destroy", decorator=swagger_auto_schema(
    responses={409: "The default project, or one with pending or running deployments."}))
class ProjectViewSet(
    StrictQueryParameters,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Projects of the caller's organizations: members read them, admins change them and their members."""

    serializer_class = ProjectSerializer
    lookup_value_regex = r"\d+"
    permission_classes = (HasOrganizationRole,)
    http_method_names = ("get", "post", "patch", "delete", "head", "options")
    query_serializers = {"members": PageQuerySerializer}
    required_roles = {
        "retrieve": ANY_MEMBER,
        "partial_update": ADMINS,
        "destroy": ADMINS,
        "members": ANY_MEMBER,
        "add_member": ADMINS,
        "member": ADMINS,
    }

    def get_queryset(self):
        return Project.objects.visible_to(self.request.user).with_members_count().order_by("id")

    def perform_update(self, serializer) -> None:
        project_actions.update_project(project_id=serializer.instance.pk, **serializer.validated_data)
        serializer.instance = self.get_object()

    def perform_destroy(self, instance: Project) -> None:
        project_actions.delete_project(project_id=instance.pk)

    @swagger_auto_schema(responses={200: ProjectMemberPageSerializer})
    @action(detail=True, methods=["get"])
    def members(self, request, pk=None):
        """Its members (for `default`: every member of the organization)."""
        project = self.get_object()
        users = (User.objects.filter(memberships__organization_id=project.organization_id) if project.is_default
                 else User.objects.filter(project_memberships__project=project))
        page = self.paginate_queryset(users.order_by("id"))
        return self.get_paginated_response(ProjectMemberSerializer(page, many=True).data)

    @swagger_auto_schema(request_body=ProjectMemberSerializer, responses={
        201: ProjectMemberSerializer, 200: "Already a member.", 400: "Not a member of the organization."})
    @members.mapping.post
    def add_member(self, request, pk=None):
        """Add a member of the organization to the project (admins); adding one twice is harmless (200)."""
        project = self.get_object()
        serializer = ProjectMemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, created = project_actions.add_project_member(project=project, user_id=serializer.validated_data["pk"])
        return Response(ProjectMemberSerializer(user).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @swagger_auto_schema(responses={204: "Removed", 404: "Not a member of the project.",
                                    409: "Members leave the default project only with the organization."})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>\d+)")
    def member(self, request, pk=None, user_id=None):
        """Take a user out of the project (admins)."""
        project_actions.remove_project_member(project=self.get_object(), user_id=int(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
