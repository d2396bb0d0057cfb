"""Admin for organizations, with their members inline, and their projects, with theirs."""
from django.contrib import admin
from django.db import transaction
from django.db.models import Count

from accounts.models import User

from .models import Membership, Organization, Project, ProjectMembership
from .projects import create_default_project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "joined_at")
    readonly_fields = ("joined_at",)


class ProjectInline(admin.TabularInline):
    model = Project
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("name", "is_default", "max_priority", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "member_count", "created_at")
    search_fields = ("name", "invite_code")
    readonly_fields = ("invite_code", "created_at")
    inlines = (MembershipInline, ProjectInline)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    @admin.display(description="members", ordering="member_count")
    def member_count(self, organization: Organization) -> int:
        return organization.member_count

    def save_model(self, request, obj, form, change) -> None:
        # An organization always has its default project, whichever way it was created.
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if not change:
                create_default_project(organization=obj)


class ProjectMembershipInline(admin.TabularInline):
    model = ProjectMembership
    extra = 0
    fields = ("user", "created_at")
    readonly_fields = ("created_at",)

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        if obj is not None:
            # As through the API: only members of the project's organization.
            formset.form.base_fields["user"].queryset = User.objects.filter(
                memberships__organization_id=obj.organization_id).order_by("username")
        return formset


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "is_default", "max_priority", "members_count", "created_at")
    list_filter = ("is_default", "organization")
    list_select_related = ("organization",)
    search_fields = ("name", "organization__name")
    readonly_fields = ("is_default", "members_count", "created_at")
    inlines = (ProjectMembershipInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).with_members_count()

    def get_readonly_fields(self, request, obj=None):
        # The default project keeps its name and holds every member of its organization, without rows.
        if obj is not None and obj.is_default:
            return (*self.readonly_fields, "organization", "name")
        return (*self.readonly_fields, "organization") if obj else self.readonly_fields

    def get_inlines(self, request, obj):
        return () if obj is not None and obj.is_default else self.inlines

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting one goes through the API, which refuses while it has work and keeps its finished history.
        return False

    @admin.display(description="members", ordering="members_count")
    def members_count(self, project: Project) -> int:
        return project.members_count
