"""Cluster endpoints: members read, admins create, rename, resize and delete."""
from django.db.models import Count, Q
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied

from deployments.models import Status
from organizations.permissions import ADMINS, ANY_MEMBER, HasOrganizationRole

from . import services
from .filters import ClusterFilter
from .models import Cluster
from .serializers import ClusterDetailSerializer, ClusterSerializer

# Detail views also count the cluster's queue; the list stays one cheap query for dashboards that poll it.
DETAIL_ACTIONS = {"retrieve", "partial_update"}


class ClusterViewSet(viewsets.ModelViewSet):
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
        services.update_cluster(cluster_id=serializer.instance.pk, **serializer.validated_data)
        serializer.instance = self.get_object()

    def perform_destroy(self, instance: Cluster) -> None:
        services.delete_cluster(cluster_id=instance.pk)
