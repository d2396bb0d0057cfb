"""Admin for deployments: filters for operators, and actions to cancel or reschedule."""
from django.contrib import admin, messages

from clusters.admin import SaveChangedFieldsOnly

from . import services
from .models import Deployment, DeploymentEvent, Status


class DeploymentEventInline(admin.TabularInline):
    model = DeploymentEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "message")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Deployment)
class DeploymentAdmin(SaveChangedFieldsOnly, admin.ModelAdmin):
    list_display = ("id", "name", "cluster", "status", "priority", "cpu_required", "ram_required", "gpu_required",
                    "preemption_count", "created_at")
    list_filter = ("status", "cluster", "cluster__organization", "priority")
    list_select_related = ("cluster",)
    search_fields = ("name", "docker_image")
    readonly_fields = ("status", "status_message", "preemption_count", "created_by", "created_at", "started_at",
                       "finished_at")
    inlines = (DeploymentEventInline,)
    actions = ("cancel", "reschedule")

    # Deployments are submitted and moved through the API, whose services keep allocations and events right.
    def has_add_permission(self, request) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "cluster", "priority", "cpu_required", "ram_required", "gpu_required",
                "depends_on")

    @admin.action(description="Cancel the selected deployments")
    def cancel(self, request, queryset) -> None:
        active = list(queryset.filter(status__in=Deployment.ACTIVE_STATUSES).values_list("pk", flat=True))
        for pk in active:
            services.finish_deployment(deployment_id=pk, status=Status.CANCELLED, actor=request.user)
        self.message_user(request, f"Cancelled {len(active)} deployments.", messages.SUCCESS)

    @admin.action(description="Run a scheduling pass on their clusters")
    def reschedule(self, request, queryset) -> None:
        clusters = set(queryset.values_list("cluster_id", flat=True))
        for cluster_id in clusters:
            services.request_scheduling(cluster_id)
        self.message_user(request, f"Scheduling requested for {len(clusters)} clusters.", messages.SUCCESS)
