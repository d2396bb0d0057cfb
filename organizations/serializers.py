"""Serializers for organizations, invite codes and memberships."""
from django.db import IntegrityError, transaction
from rest_framework import serializers

from hypervisor_mlops.api.serializers import PageSerializer, StrictCharField, StrictModelSerializer, StrictSerializer

from .models import DUPLICATE_PROJECT_NAME, Membership, Organization, Project, Role


class OrganizationSerializer(StrictModelSerializer):
    role = serializers.CharField(source="caller_role", read_only=True)
    invite_code = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ("id", "name", "invite_code", "role", "created_at")
        read_only_fields = ("id", "created_at")

    def get_invite_code(self, organization: Organization) -> str | None:
        """Shown to admins only; null for everyone else."""
        return organization.invite_code if organization.caller_role == Role.ADMIN else None


class InviteCodeSerializer(serializers.Serializer):
    invite_code = StrictCharField(max_length=64)


class JoinResultSerializer(serializers.Serializer):
    organization = serializers.IntegerField(source="organization_id")
    role = serializers.CharField()
    already_member = serializers.BooleanField()
    detail = serializers.CharField()


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ("user", "username", "role", "joined_at")
        read_only_fields = ("user", "joined_at")


class MembershipPageSerializer(PageSerializer):
    results = MembershipSerializer(many=True)


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ProjectSerializer(StrictModelSerializer):
    organization = serializers.IntegerField(source="organization_id", read_only=True)
    max_priority = serializers.IntegerField(
        min_value=-(2**31), max_value=2**31 - 1, allow_null=True, required=False, default=None,
        help_text="The highest priority its deployments may ask for; null: no ceiling.")
    members_count = serializers.IntegerField(read_only=True, help_text="For `default`: every organization member.")

    class Meta:
        model = Project
        fields = ("id", "organization", "name", "max_priority", "members_count", "created_at")
        read_only_fields = ("id", "created_at")
        # Names are unique per organization, which comes from the URL: the database's constraint decides (400).
        validators = []

    def create(self, validated_data: dict) -> Project:
        try:
            with transaction.atomic():
                return super().create(validated_data)
        except IntegrityError as exc:
            raise serializers.ValidationError({"name": [DUPLICATE_PROJECT_NAME]}) from exc


class ProjectPageSerializer(PageSerializer):
    results = ProjectSerializer(many=True)


class ProjectMemberSerializer(StrictSerializer):
    user = serializers.IntegerField(source="pk", min_value=1, help_text="A member of the project's organization.")
    username = serializers.CharField(read_only=True)


class ProjectMemberPageSerializer(PageSerializer):
    results = ProjectMemberSerializer(many=True)
