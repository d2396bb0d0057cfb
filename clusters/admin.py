"""Admin for clusters, with utilization per resource in the list."""
from django.contrib import admin

from agents.admin import AgentInline
from deployments import insight
from deployments.usage import usage_by_project
from scheduling.resources import Resources

from .models import Cluster, ClusterQuota


def _utilization(allocated, limit) -> str:
    percent = f" ({allocated / limit:.0%})" if limit else ""
    return f"{allocated}/{limit}{percent}"


class SaveChangedFieldsOnly:
    """Admin saves write only what the form changed: a full save would put back the status and allocations
    read when the form was opened, over whatever the scheduler has done since."""

    def save_model(self, request, obj, form, change) -> None:
        if change:
            obj.save(update_fields=form.changed_data)
        else:
            super().save_model(request, obj, form, change)


def _amounts(resources: Resources | None) -> str:
    return "none" if resources is None else f"{resources.cpu} CPU, {resources.ram} GB RAM, {resources.gpu} GPU"


class ClusterQuotaInline(admin.TabularInline):
    """Projects' quotas with what they use now; set through the API, which keeps the guarantees within the
    cluster's capacity under its lock."""

    model = ClusterQuota
    extra = 0
    can_delete = False
    fields = ("project", "guaranteed_amounts", "limit_amounts", "weight", "usage")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project")

    @admin.display(description="guaranteed")
    def guaranteed_amounts(self, quota: ClusterQuota) -> str:
        return _amounts(quota.guaranteed)

    @admin.display(description="limit")
    def limit_amounts(self, quota: ClusterQuota) -> str:
        return _amounts(quota.limit)

    @admin.display(description="usage (running)")
    def usage(self, quota: ClusterQuota) -> str:
        return _amounts(usage_by_project([quota.cluster_id]).get((quota.cluster_id, quota.project_id),
                                                                 Resources.zero()))


@admin.register(Cluster)
class ClusterAdmin(SaveChangedFieldsOnly, admin.ModelAdmin):
    list_display = ("name", "organization", "cpu_utilization", "ram_utilization", "gpu_utilization", "created_at")
    list_filter = ("organization",)
    list_select_related = ("organization",)
    search_fields = ("name", "organization__name")
    readonly_fields = ("cpu_allocated", "ram_allocated", "gpu_allocated", "reservation", "created_at")
    inlines = (ClusterQuotaInline, AgentInline)

    def get_readonly_fields(self, request, obj=None):
        # Resizing goes through the API, which refuses to shrink below what running deployments hold.
        fields = self.readonly_fields
        return (*fields, "organization", "cpu_limit", "ram_limit", "gpu_limit") if obj else fields

    @admin.display(description="Reservation (starvation bound)")
    def reservation(self, cluster: Cluster) -> str:
        reservation = insight.reservation_of(cluster.pk) if cluster.pk else None
        if reservation is None:
            return "none"
        held = reservation.held
        return (f"deployment #{reservation.id} has waited longer than {cluster.reserve_after_seconds} s: "
                f"{held.cpu} CPU, {held.ram} GB RAM, {held.gpu} GPU of what is free is set aside for it")

    @admin.display(description="CPU allocated/capacity")
    def cpu_utilization(self, cluster: Cluster) -> str:
        return _utilization(cluster.cpu_allocated, cluster.cpu_limit)

    @admin.display(description="RAM allocated/capacity")
    def ram_utilization(self, cluster: Cluster) -> str:
        return _utilization(cluster.ram_allocated, cluster.ram_limit)

    @admin.display(description="GPU allocated/capacity")
    def gpu_utilization(self, cluster: Cluster) -> str:
        return _utilization(cluster.gpu_allocated, cluster.gpu_limit)
