"""Cluster endpoints: members read, admins create, rename, resize and delete; and projects' quotas on a cluster."""
from django.db.models import Count, Q
from django.utils.decorators import method_decorator
from drf_yasg.utils import swagger_auto_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from deployments import capacity, quotas, usage
from deployments.models import Status
from hypervisor_mlops.api.queries import PageQuerySerializer, StrictQueryParameters
from organizations.models import Project
from organizations.permissions import ADMINS, ANY_MEMBER, HasOrganizationRole

from .filters import ClusterFilter
from .models import Cluster
from .serializers import ClusterDetailSerializer, ClusterSerializer, QuotaPageSerializer, QuotaSerializer

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
    lookup_value_regex = r"\d+"
    required_roles = {"retrieve": ANY_MEMBER, "partial_update": ADMINS, "destroy": ADMINS}

    def get_queryset(self):
        queryset = Cluster.objects.visible_to(self.request.user).order_by("id")
        if self.action in DETAIL_ACTIONS:
            queryset = queryset.annotate(
                pending_count=Count("deployments", filter=Q(deployments__status=Status.PENDING)),
                running_count=Count("deployments", filter=Q(deployments__status=Status.RUNNING)),
            )
        return queryset

    def get_serializer_class(self):
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


class ClusterQuotaViewSet(StrictQueryParameters, viewsets.GenericViewSet):
    """Projects' quotas on a cluster, under the cluster's URL (`/clusters/{id}/quotas/`): members read them,
    admins set them."""

    permission_classes = (HasOrganizationRole,)
    http_method_names = ("get", "put", "head", "options")
    query_serializers = {"quotas": PageQuerySerializer}
    lookup_value_regex = r"\d+"
    required_roles = {"quotas": ANY_MEMBER, "quota": ADMINS}

    def get_queryset(self):
        return Cluster.objects.visible_to(self.request.user).order_by("id")

    def get_serializer_class(self):
        return QuotaSerializer

    @swagger_auto_schema(responses={200: QuotaPageSerializer})
    @action(detail=True, methods=["get"])
    def quotas(self, request, pk=None):
        """Every project of the cluster's organization: its quota here and what it uses now."""
        cluster = self.get_object()
        projects = Project.objects.filter(organization_id=cluster.organization_id).order_by("id")
        page = self.paginate_queryset(projects.values_list("pk", flat=True))
        return self.get_paginated_response(QuotaSerializer(usage.quotas_of(cluster, list(page)), many=True).data)

    @swagger_auto_schema(request_body=QuotaSerializer, responses={
        200: QuotaSerializer, 400: "A limit below the guarantee, or guarantees beyond the cluster's capacity.",
        404: "No such project in the cluster's organization."})
    @action(detail=True, methods=["put"], url_path=r"quotas/(?P<project_id>\d+)")
    def quota(self, request, pk=None, project_id=None):
        """Set a project's guarantee, limit and weight on the cluster (admins); a scheduling pass follows."""
        cluster = self.get_object()
        serializer = QuotaSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        quota = quotas.set_quota(cluster_id=cluster.pk, project_id=int(project_id), **serializer.validated_data)
        return Response(QuotaSerializer(quota).data)
