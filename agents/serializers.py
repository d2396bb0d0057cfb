"""Serializers for agents: how users see them, and what an agent's sync says and is told."""
import base64

from drf_yasg.utils import swagger_serializer_method
from rest_framework import serializers

from deployments.output import LOG_KEEP_CHARS
from deployments.serializers import PORT
from deployments.reports import SeenContainer, StartFailure
from hypervisor_mlops.api.serializers import (
    PageSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictModelSerializer,
)

from .models import Agent

ID = {"min_value": 1, "max_value": 2**63 - 1}
INT32 = {"min_value": -(2**31), "max_value": 2**31 - 1}
# A sync carries at most about this much output; the agent sends the rest on its next passes.
MAX_LOG_CHUNK_BYTES = LOG_KEEP_CHARS


class AgentSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=Agent.Status.choices, read_only=True)
    # Empty until the agent first calls.
    version = serializers.CharField(read_only=True, allow_blank=True)
    hostname = serializers.CharField(read_only=True, allow_blank=True)

    class Meta:
        model = Agent
        fields = ("id", "name", "status", "last_seen_at", "version", "hostname", "created_at")
        read_only_fields = fields


class AgentRegistrationSerializer(StrictModelSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown only in this response; stored hashed.")

    class Meta:
        model = Agent
        fields = ("id", "name", "token", "created_at")
        read_only_fields = ("id", "created_at")


class AgentPageSerializer(PageSerializer):
    results = AgentSerializer(many=True)


class PublishedPortSerializer(serializers.Serializer):
    port = serializers.IntegerField(**PORT)
    host_port = serializers.IntegerField(**PORT)


class SeenContainerSerializer(serializers.Serializer):
    deployment = serializers.IntegerField(**ID)
    attempt = serializers.IntegerField(**ID)
    container = StrictCharField(max_length=128)
    state = serializers.ChoiceField(choices=("created", "running", "exited"))
    exit_code = serializers.IntegerField(allow_null=True, default=None, **INT32)
    ports = PublishedPortSerializer(many=True, default=list, help_text="The ports really bound on the host now.")
    ready = StrictBooleanField(allow_null=True, default=None,
                               help_text="Whether its health check passes; null without a verdict yet.")
    health = StrictCharField(max_length=500, allow_blank=True, default="", help_text="What the latest probe said.")


class StartFailureSerializer(serializers.Serializer):
    deployment = serializers.IntegerField(**ID)
    attempt = serializers.IntegerField(**ID)
    error = StrictCharField(max_length=10_000, trim_whitespace=False)


class LogChunkSerializer(serializers.Serializer):
    deployment = serializers.IntegerField(**ID)
    attempt = serializers.IntegerField(**ID)
    offset = serializers.IntegerField(min_value=0, max_value=2**62)
    data = StrictCharField(max_length=MAX_LOG_CHUNK_BYTES * 4 // 3 + 4, trim_whitespace=False,
                                 help_text="Raw bytes, base64.")

    def validate_data(self, value: str) -> bytes:
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as exc:  # binascii.Error, or characters that are not ASCII at all
            raise serializers.ValidationError("Not valid base64.") from exc


class SyncRequestSerializer(serializers.Serializer):
    """What the agent sees on its host: its whole picture each time, so a lost or repeated report is harmless."""

    hostname = StrictCharField(max_length=255, allow_blank=True, default="")
    advertise_address = StrictCharField(max_length=255, allow_blank=True, default="",
                                        help_text="The host in its services' URLs; empty for `hostname`.")
    version = StrictCharField(max_length=64, allow_blank=True, default="")
    gpus = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=1023), max_length=1024,
                                 default=list)
    containers = SeenContainerSerializer(many=True, required=False,
                                         help_text="Every container of the agent; omitted when it has not looked yet.")
    start_failures = StartFailureSerializer(many=True, default=list)
    logs = LogChunkSerializer(many=True, default=list)
    volumes = serializers.ListField(child=serializers.IntegerField(**ID), max_length=10_000, default=list,
                                    help_text="The deployments whose volumes (persist_path) the agent holds.")

    def validate_logs(self, chunks: list[dict]) -> list[dict]:
        if sum(len(chunk["data"]) for chunk in chunks) > MAX_LOG_CHUNK_BYTES:
            raise serializers.ValidationError(f"At most {MAX_LOG_CHUNK_BYTES} bytes of output per sync.")
        return chunks

    def seen(self) -> list[SeenContainer] | None:
        containers = self.validated_data.get("containers")
        if containers is None:
            return None
        return [SeenContainer(**{**c, "ports": tuple((p["port"], p["host_port"]) for p in c["ports"])})
                for c in containers]

    def host(self) -> str:
        """Where the agent's published ports are reached."""
        return self.validated_data["advertise_address"] or self.validated_data["hostname"]

    def failures(self) -> list[StartFailure]:
        return [StartFailure(**f) for f in self.validated_data["start_failures"]]

    def chunks(self) -> list[tuple[int, int, int, bytes]]:
        return [(c["deployment"], c["attempt"], c["offset"], c["data"]) for c in self.validated_data["logs"]]


class DesiredDeploymentSerializer(serializers.Serializer):
    """One deployment the agent must run now, as the container of its current run (`attempt` is the run's number:
    each start by the scheduler and each restart in place is a new one)."""

    id = serializers.IntegerField(source="deployment.pk")
    attempt = serializers.IntegerField(source="number")
    name = serializers.CharField(source="deployment.name")
    image = serializers.CharField(source="deployment.docker_image")
    command = serializers.ListField(source="deployment.command", child=serializers.CharField(), allow_null=True)
    env = serializers.DictField(source="deployment.env", child=serializers.CharField())
    cpu = serializers.DecimalField(source="deployment.cpu_required", max_digits=12, decimal_places=3)
    ram = serializers.DecimalField(source="deployment.ram_required", max_digits=12, decimal_places=3)
    gpu = serializers.IntegerField(source="deployment.gpu_required")
    stop_grace_seconds = serializers.IntegerField(source="deployment.stop_grace_seconds")
    persist_path = serializers.CharField(source="deployment.persist_path", allow_null=True,
                                         help_text="Where the deployment's own volume is mounted; null for none.")
    ports = serializers.ListField(source="deployment.ports", child=serializers.IntegerField(),
                                  help_text="Container ports to publish on free host ports.")
    host_ports = serializers.SerializerMethodField()
    health_check = serializers.JSONField(source="deployment.health_check", allow_null=True,
                                         help_text="As the deployment has it; null for none.")

    @swagger_serializer_method(serializer_or_field=PublishedPortSerializer(many=True, help_text=(
        "The host ports its attempt's previous run had: asked for again, so a URL outlives a restart.")))
    def get_host_ports(self, run) -> list[dict]:
        return [{"port": e["port"], "host_port": e["host_port"]} for e in run.endpoints]


class SyncAgentSerializer(serializers.ModelSerializer):
    cluster = serializers.IntegerField(source="cluster_id")

    class Meta:
        model = Agent
        fields = ("id", "uid", "name", "cluster")


class LogOffsetSerializer(serializers.Serializer):
    deployment = serializers.IntegerField()
    attempt = serializers.IntegerField()
    offset = serializers.IntegerField(help_text="Bytes of this attempt's output the service holds.")


class SyncResponseSerializer(serializers.Serializer):
    agent = SyncAgentSerializer()
    poll_seconds = serializers.FloatField()
    deployments = DesiredDeploymentSerializer(many=True, help_text="What must run now; stop everything else.")
    logs = LogOffsetSerializer(many=True)
    remove_volumes = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Of the volumes reported, the deployments that are finished: remove each once no container of "
                  "its deployment is left.")
