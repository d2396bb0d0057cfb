"""Top-level URLs: the versioned API, health probes, API docs and the admin."""
from django.contrib import admin
from django.urls import include, path, re_path
from drf_yasg import openapi
from drf_yasg.views import get_schema_view
from rest_framework import permissions

from agents.views import ClusterAgentViewSet
from clusters.views import ClusterQuotaViewSet, ClusterViewSet
from deployments.views import DeploymentViewSet
from organizations.views import OrganizationViewSet, ProjectViewSet

from . import health
from .api.routers import OptionalSlashRouter, router
from .observability import metrics

schema_view = get_schema_view(
    openapi.Info(
        title="hypervisor-mlops API",
        default_version="v1",
        description="Organizations, clusters and the deployments a priority scheduler places on them.",
    ),
    public=True,
    permission_classes=[permissions.AllowAny],
)

router.register("organizations", OrganizationViewSet, basename="organization")
router.register("projects", ProjectViewSet, basename="project")
router.register("clusters", ClusterViewSet, basename="cluster")
router.register("deployments", DeploymentViewSet, basename="deployment")
# A cluster's agent and its projects' quotas live under the cluster's URL and route names, each served by a
# viewset of its own (a router takes a basename once).
cluster_agents, cluster_quotas = OptionalSlashRouter(), OptionalSlashRouter()
cluster_agents.register("clusters", ClusterAgentViewSet, basename="cluster")
cluster_quotas.register("clusters", ClusterQuotaViewSet, basename="cluster")

api_v1 = [
    path("auth/", include("accounts.urls")),
    path("agent/", include("agents.urls")),
    path("", include(router.urls)),
    path("", include(cluster_agents.urls)),
    path("", include(cluster_quotas.urls)),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    re_path(r"^healthz/?$", health.healthz, name="healthz"),
    re_path(r"^readyz/?$", health.readyz, name="readyz"),
    # A plain Django view, outside the API and its schema: it is for Prometheus, with its own token.
    re_path(r"^metrics/?$", metrics.metrics, name="metrics"),
    re_path(r"^swagger(?P<format>\.json|\.yaml)$", schema_view.without_ui(cache_timeout=0), name="schema-json"),
    re_path(r"^swagger/?$", schema_view.with_ui("swagger", cache_timeout=0), name="schema-swagger-ui"),
    re_path(r"^redoc/?$", schema_view.with_ui("redoc", cache_timeout=0), name="schema-redoc"),
    path("admin/", admin.site.urls),
]

handler400 = "hypervisor_mlops.api.exceptions.bad_request"
handler403 = "hypervisor_mlops.api.exceptions.permission_denied"
handler404 = "hypervisor_mlops.api.exceptions.not_found"
handler500 = "hypervisor_mlops.api.exceptions.server_error"
