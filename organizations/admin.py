"""Admin for organizations, with their members inline."""
from django.contrib import admin
from django.db.models import Count

from .models import Membership, Organization


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "joined_at")
    readonly_fields = ("joined_at",)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "member_count", "created_at")
    search_fields = ("name", "invite_code")
    readonly_fields = ("invite_code", "created_at")
    inlines = (MembershipInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    @admin.display(description="members", ordering="member_count")
    def member_count(self, organization: Organization) -> int:
        return organization.member_count
