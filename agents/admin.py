"""Admin for agents: each cluster's agent with its liveness; registering and revoking go through the API."""
from django.contrib import admin

from .models import Agent


class AgentInline(admin.TabularInline):
    model = Agent
    extra = 0
    can_delete = False
    fields = ("name", "status", "last_seen_at", "hostname", "version", "created_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "cluster", "status", "last_seen_at", "hostname", "version", "revoked_at")
    list_filter = ("cluster__organization",)
    list_select_related = ("cluster",)
    search_fields = ("name", "hostname", "cluster__name")
    readonly_fields = ("cluster", "name", "uid", "status", "hostname", "version", "created_at", "last_seen_at",
                       "revoked_at")
    exclude = ("token_hash",)

    # A token exists in clear only in the API's registration answer; the admin cannot show one.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
