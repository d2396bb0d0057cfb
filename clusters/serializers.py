"""Serializers for clusters: writable capacity, read-only availability."""
from django.db import IntegrityError, transaction
from rest_framework import serializers

from hypervisor_mlops.api.serializers import PageSerializer, StrictModelSerializer, StrictSerializer
from organizations.models import Organization
from scheduling.resources import Resources

from .models import DEFAULT_RESERVE_AFTER_SECONDS, DUPLICATE_NAME, MAX_WEIGHT, RESOURCE_DECIMAL, Cluster


def resource_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(**RESOURCE_DECIMAL, min_value=0, **kwargs)


def gpu_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=2**31 - 1, **kwargs)


class VisibleOrganizationField(serializers.PrimaryKeyRelatedField):
    """Only the caller's organizations can be named; any other id reads as nonexistent."""

    def get_queryset(self):
        return Organization.objects.visible_to(self.context["request"].user)


class ClusterSerializer(StrictModelSerializer):
    organization = VisibleOrganizationField()
    cpu_limit = resource_field()
    ram_limit = resource_field()
    gpu_limit = gpu_field()
    cpu_available = resource_field(source="available.cpu", read_only=True)
    ram_available = resource_field(source="available.ram", read_only=True)
    gpu_available = gpu_field(source="available.gpu", read_only=True)
    reserve_after_seconds = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, allow_null=True, required=False, default=DEFAULT_RESERVE_AFTER_SECONDS,
        help_text="Seconds a pending deployment waits before what frees up is set aside for it (the starvation "
                  "bound); null: never.",
    )

    class Meta:
        model = Cluster
        fields = (
            "id", "name", "organization", "cpu_limit", "ram_limit", "gpu_limit",
            "cpu_available", "ram_available", "gpu_available", "reserve_after_seconds", "created_at",
        )
        read_only_fields = ("id", "created_at")
        # Uniqueness of names is checked in validate(), with the organization taken from the instance on
        # updates; DRF's generated validator would demand the organization in every PATCH.
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None:
            fields["organization"].read_only = True
        return fields

    def validate(self, attrs: dict) -> dict:
        merged = {
            name: attrs.get(name, getattr(self.instance, name, None))
            for name in ("name", "organization", "cpu_limit", "ram_limit", "gpu_limit")
        }
        if not (merged["cpu_limit"] > 0 or merged["ram_limit"] > 0 or merged["gpu_limit"] > 0):
            raise serializers.ValidationError("A cluster needs a capacity above zero for at least one resource.")
        others = Cluster.objects.filter(organization=merged["organization"], name=merged["name"])
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if "name" in attrs and others.exists():
            raise serializers.ValidationError({"name": [DUPLICATE_NAME]})
        return attrs

    def create(self, validated_data: dict) -> Cluster:
        try:
            with transaction.atomic():
                return super().create(validated_data)
        except IntegrityError as exc:
            raise serializers.ValidationError({"name": [DUPLICATE_NAME]}) from exc


class ClusterDetailSerializer(ClusterSerializer):
    pending_count = serializers.IntegerField(read_only=True)
    running_count = serializers.IntegerField(read_only=True)

    class Meta(ClusterSerializer.Meta):
        fields = (*ClusterSerializer.Meta.fields, "pending_count", "running_count")


class ResourcesSerializer(StrictSerializer):
    """CPU and RAM as exact decimals, whole GPUs; every one of them given."""

    cpu = resource_field()
    ram = resource_field()
    gpu = gpu_field()

    def to_internal_value(self, data) -> Resources:
        values = super().to_internal_value(data)
        return Resources(values["cpu"], values["ram"], values["gpu"])


class LimitSerializer(ResourcesSerializer):
    """A limit: every resource, or null for none (a definition of its own in the schema, which says so)."""


class QuotaSerializer(StrictSerializer):
    """A project's quota on a cluster; without one a project has nothing guaranteed, no limit and weight 1.

    `guaranteed` is always recoverable from other projects, and the guarantees of a cluster together stay within
    its capacity; `limit` is the most the project may hold on the cluster, never below `guaranteed`; `usage` is
    what its running deployments hold there.
    """

    project = serializers.IntegerField(read_only=True)
    guaranteed = ResourcesSerializer(default=Resources.zero)
    limit = LimitSerializer(allow_null=True, default=None)
    weight = serializers.IntegerField(min_value=1, max_value=MAX_WEIGHT, default=1,
                                      help_text="Its share of what it borrows beyond its guarantee.")
    usage = ResourcesSerializer(read_only=True)


class QuotaPageSerializer(PageSerializer):
    results = QuotaSerializer(many=True)
