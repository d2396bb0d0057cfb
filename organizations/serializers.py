"""Serializers for organizations, invite codes and memberships."""
from rest_framework import serializers

from hypervisor_mlops.api.serializers import PageSerializer, StrictCharField, StrictModelSerializer

from .models import Membership, Organization, Role


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
