"""Cluster endpoints: members read, admins create, rename, resize and delete."""
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from drf_yasg.utils import swagger_auto_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from agents import registration
from agents.models import Agent
from agents.serializers import AgentPageSerializer, AgentRegistrationSerializer, AgentSerializer
from deployments import capacity
from deployments.models import Status
from hypervisor_mlops.api.queries import PageQuerySerializer, StrictQueryParameters
from organizations.permissions import ADMINS, ANY_MEMBER, HasOrganizationRole

from .filters import ClusterFilter
from .models import Cluster
from .serializers import ClusterDetailSerializer, ClusterSerializer

# Detail views also count the cluster's queue; the list stays one cheap query for dashboards that poll it.
DETAIL_ACTIONS = {"retrieve", "partial_update"}


@method_decorator(name="create", decorator=swagger_auto_schema(
    responses={403: "Only admins of the organization can create clusters."}))
@method_decorator(name="partial_update", decorator=swagger_auto_schema(
    responses={409: "Resizing below what running deployments hold."}))
@method_decorator(name="destroy", decorator=swagger_auto_schema(
    responses={409: "The cluster has pending or running deployments."}))
class ClusterViewSet(StrictQueryParameters, viewsets.ModelViewSet):
    """Clusters of the caller's organizations (`?organization=` narrows to one)."""

    permission_classes = (HasOrganizationRole,)
    http_method_names = ("get", "post", "patch", "delete", "head", "options")
    filterset_class = ClusterFilter
    query_serializers = {"agents": PageQuerySerializer}
    lookup_value_regex = r"\d+"
    required_roles = {"retrieve": ANY_MEMBER, "partial_update": ADMINS, "destroy": ADMINS,
                      "agents": ANY_MEMBER, "register_agent": ADMINS, "revoke_agent": ADMINS}

    def get_queryset(self):
        queryset = Cluster.objects.visible_to(self.request.user).order_by("id")
        if self.action in DETAIL_ACTIONS:
            queryset = queryset.annotate(
                pending_count=Count("deployments", filter=Q(deployments__status=Status.PENDING)),
                running_count=Count("deployments", filter=Q(deployments__status=Status.RUNNING)),
            )
        return queryset

    def get_serializer_class(self):
        if self.action == "register_agent":
            return AgentRegistrationSerializer
        return ClusterDetailSerializer if self.action in DETAIL_ACTIONS else ClusterSerializer

    def perform_create(self, serializer) -> None:
        organization = serializer.validated_data["organization"]
        if organization.caller_role not in ADMINS:
            raise PermissionDenied("Only admins of the organization can create clusters.")
        serializer.save()

    def perform_update(self, serializer) -> None:
        capacity.update_cluster(cluster_id=serializer.instance.pk, **serializer.validated_data)
        serializer.instance = self.get_object()

    def perform_destroy(self, instance: Cluster) -> None:
        capacity.delete_cluster(cluster_id=instance.pk)

    @swagger_auto_schema(responses={200: AgentPageSerializer})
    @action(detail=True, methods=["get"])
    def agents(self, request, pk=None):
        """The cluster's agent (at most one): `new` until it first calls, then `online` or `offline`."""
        cluster = self.get_object()
        page = self.paginate_queryset(Agent.objects.live().filter(cluster=cluster))
        return self.get_paginated_response(AgentSerializer(page, many=True).data)

    @swagger_auto_schema(request_body=AgentRegistrationSerializer, responses={201: AgentRegistrationSerializer,
                                                                             409: "The cluster has an agent"})
    @agents.mapping.post
    def register_agent(self, request, pk=None):
        """Register the cluster's agent; its `token` is shown only in this response."""
        cluster = self.get_object()
        serializer = AgentRegistrationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent, token = registration.register_agent(cluster_id=cluster.pk, name=serializer.validated_data["name"])
        agent.token = token
        return Response(AgentRegistrationSerializer(agent).data, status=status.HTTP_201_CREATED)

    @swagger_auto_schema(responses={204: "Revoked"})
    @action(detail=True, methods=["delete"], url_path=r"agents/(?P<agent_id>\d+)")
    def revoke_agent(self, request, pk=None, agent_id=None):
        """Revoke the agent: its token stops working at once."""
        cluster = self.get_object()
        agent = get_object_or_404(Agent.objects.live(), cluster=cluster, pk=agent_id)
        registration.revoke_agent(agent_id=agent.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
