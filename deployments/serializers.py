"""Serializers for deployments and their events."""
from collections import Counter

from rest_framework import serializers

from clusters.models import Cluster
from clusters.serializers import gpu_field, resource_field
from organizations.serializers import PageSerializer

from .models import Deployment, DeploymentEvent
from .scheduling import Resources

INT32 = {"min_value": -(2**31), "max_value": 2**31 - 1}
RESOURCE_UNITS = {"cpu_required": ("cpu", "CPU"), "ram_required": ("ram", "GB of RAM"), "gpu_required": ("gpu", "GPU")}


class VisibleClusterField(serializers.PrimaryKeyRelatedField):
    """Only clusters of the caller's organizations can be named; any other id reads as nonexistent."""

    def get_queryset(self):
        return Cluster.objects.visible_to(self.context["request"].user)


class DeploymentIdsField(serializers.ListField):
    """Deployments named by id: a list of ints in, the related ids out."""

    child = serializers.IntegerField(min_value=1)

    def to_representation(self, related) -> list[int]:
        return [d.pk for d in related.all()]


class DeploymentSerializer(serializers.ModelSerializer):
    cluster = VisibleClusterField()
    organization = serializers.IntegerField(source="cluster.organization_id", read_only=True)
    priority = serializers.IntegerField(default=0, **INT32)
    cpu_required = resource_field(default=0)
    ram_required = resource_field(default=0)
    gpu_required = gpu_field(default=0)
    depends_on = DeploymentIdsField(required=False, max_length=1000)
    dependents = DeploymentIdsField(read_only=True)
    status_reason = serializers.CharField(read_only=True)

    class Meta:
        model = Deployment
        fields = (
            "id", "name", "organization", "cluster", "docker_image", "priority",
            "cpu_required", "ram_required", "gpu_required", "depends_on", "dependents",
            "status", "status_reason", "preemption_count", "created_by", "created_at", "started_at", "finished_at",
        )
        read_only_fields = ("status", "preemption_count", "created_by", "created_at", "started_at", "finished_at")

    def validate(self, attrs: dict) -> dict:
        cluster = attrs.get("cluster") or self.instance.cluster
        demand = Resources(
            *(attrs.get(field, getattr(self.instance, field, 0)) for field in RESOURCE_UNITS)
        )
        errors = {
            field: [f"Requests {getattr(demand, name)} {unit} but the cluster has {getattr(cluster.capacity, name)}"
                    f" in all, so it could never start."]
            for field, (name, unit) in RESOURCE_UNITS.items()
            if getattr(demand, name) > getattr(cluster.capacity, name)
        }
        if errors:
            raise serializers.ValidationError(errors)
        if "depends_on" in attrs:
            attrs["depends_on"] = self._dependencies(attrs["depends_on"], cluster)
        return attrs

    def _dependencies(self, ids: list[int], cluster: Cluster) -> list[Deployment]:
        duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
        if duplicates:
            raise serializers.ValidationError({"depends_on": [f"Listed more than once: {_ids(duplicates)}."]})
        if self.instance is not None and self.instance.pk in ids:
            raise serializers.ValidationError({"depends_on": ["A deployment cannot depend on itself."]})
        found = list(Deployment.objects.filter(pk__in=ids, cluster__organization_id=cluster.organization_id))
        unknown = sorted(set(ids) - {d.pk for d in found})
        if unknown:
            raise serializers.ValidationError(
                {"depends_on": [f"No deployment in this organization with id {_ids(unknown)}."]}
            )
        return found


class DeploymentUpdateSerializer(DeploymentSerializer):
    """What may change after creation: the cluster and resources only until the deployment has run."""

    cluster = VisibleClusterField(required=False)
    depends_on = DeploymentIdsField(read_only=True)

    def validate_cluster(self, cluster: Cluster) -> Cluster:
        # Dependencies stay within one organization; so do the deployments they join.
        if cluster.organization_id != self.instance.cluster.organization_id:
            raise serializers.ValidationError("A deployment cannot move to another organization's cluster.")
        return cluster


class DeploymentEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentEvent
        fields = ("at", "kind", "message")


class DeploymentEventPageSerializer(PageSerializer):
    results = DeploymentEventSerializer(many=True)


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids)
