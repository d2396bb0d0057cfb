"""Admin for deployments: filters for operators, and actions to cancel or reschedule."""
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.utils.html import format_html

from clusters.admin import SaveChangedFieldsOnly

from . import lifecycle, tasks
from .insight import explain_pending
from .models import Deployment, DeploymentEvent, DeploymentLog, Status
from .output import last_lines

ADMIN_LOG_LINES = 50


class DeploymentEventInline(admin.TabularInline):
    model = DeploymentEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "message")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class InsightChangeList(ChangeList):
    """The list page explains its pending deployments at once, as the API's list does."""

    def get_results(self, request) -> None:
        super().get_results(request)
        insight = explain_pending(list(self.result_list))
        for deployment in self.result_list:
            deployment.insight = insight.get(deployment.pk, (None, ""))[0]


@admin.register(Deployment)
class DeploymentAdmin(SaveChangedFieldsOnly, admin.ModelAdmin):
    list_display = ("id", "name", "cluster", "project", "status", "waiting_reason", "queue_position", "end_reason", "priority",
                    "cpu_required", "ram_required", "gpu_required", "restart_count", "preemption_count", "lost_seconds",
                    "created_at")
    list_filter = ("status", "end_reason", "restart_policy", "cluster", "cluster__organization", "project",
                   "priority")
    list_select_related = ("cluster", "project")
    search_fields = ("name", "docker_image")
    readonly_fields = ("status", "status_message", "end_reason", "restart_count", "preemption_count", "lost_seconds",
                       "created_by",
                       "created_at", "started_at", "finished_at", "scheduling", "exit_code", "runtime",
                       "last_log_lines")
    inlines = (DeploymentEventInline,)
    actions = ("cancel", "reschedule")

    # Deployments are submitted and moved through the API, whose services keep allocations and events right.
    def has_add_permission(self, request) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "cluster", "project", "priority", "cpu_required", "ram_required", "gpu_required",
                "depends_on", "command", "env", "stop_grace_seconds", "restart_policy", "max_restarts",
                "time_limit_seconds", "persist_path", "ports", "health_check")

    def get_changelist(self, request, **kwargs):
        return InsightChangeList

    @admin.display(description="Waiting for")
    def waiting_reason(self, deployment: Deployment) -> str:
        return deployment.insight.reason if getattr(deployment, "insight", None) else ""

    @admin.display(description="Queue position")
    def queue_position(self, deployment: Deployment) -> int | str:
        return deployment.insight.queue_position if getattr(deployment, "insight", None) else ""

    @admin.display(description="Scheduling")
    def scheduling(self, deployment: Deployment) -> str:
        explanation, sentence = explain_pending([deployment]).get(deployment.pk, (None, ""))
        if explanation is None:
            return "Not pending."
        return f"{explanation.reason}, position {explanation.queue_position} in the queue: {sentence}."

    @admin.display(description="Runtime")
    def runtime(self, deployment: Deployment) -> str:
        latest = deployment.attempts.order_by("-number").first()
        if latest is None:
            return "No container (ledger-only, or not started yet)."
        code = "" if latest.exit_code is None else f", exit code {latest.exit_code}"
        due = f" (restart due {latest.not_before:%H:%M:%S} UTC)" if latest.not_before else ""
        serving = "".join(f"; port {e['port']} at http://{e['host']}:{e['host_port']}" for e in latest.live_endpoints)
        if deployment.health_check is not None:
            serving += "; ready" if latest.passing else "; not ready"
        return (f"Attempt {latest.attempt}: {latest.state}{due}{code}; run {latest.number}, container "
                f"{latest.container[:12] or '-'} on agent #{latest.agent_id}{serving}, updated "
                f"{latest.updated_at:%Y-%m-%d %H:%M:%S} UTC")

    @admin.display(description=f"Last {ADMIN_LOG_LINES} log lines")
    def last_log_lines(self, deployment: Deployment) -> str:
        text = DeploymentLog.objects.filter(deployment=deployment).values_list("text", flat=True).first()
        return format_html("<pre>{}</pre>", "\n".join(last_lines(text, ADMIN_LOG_LINES)[0])) if text else ""

    @admin.action(description="Cancel the selected deployments")
    def cancel(self, request, queryset) -> None:
        active = list(queryset.filter(status__in=Deployment.ACTIVE_STATUSES).values_list("pk", flat=True))
        for pk in active:
            lifecycle.finish_deployment(deployment_id=pk, status=Status.CANCELLED, actor=request.user)
        self.message_user(request, f"Cancelled {len(active)} deployments.", messages.SUCCESS)

    @admin.action(description="Run a scheduling pass on their clusters")
    def reschedule(self, request, queryset) -> None:
        clusters = set(queryset.values_list("cluster_id", flat=True))
        for cluster_id in clusters:
            tasks.request_scheduling(cluster_id)
        self.message_user(request, f"Scheduling requested for {len(clusters)} clusters.", messages.SUCCESS)
