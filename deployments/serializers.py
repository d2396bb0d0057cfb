"""Serializers for deployments and their events."""
import re
from collections import Counter

from django.utils import timezone
from drf_yasg.utils import swagger_serializer_method
from rest_framework import serializers

from clusters.models import Cluster
from clusters.serializers import gpu_field, resource_field
from hypervisor_mlops.api.queries import PageQuerySerializer, QueryIntegerField
from hypervisor_mlops.api.serializers import PageSerializer, StrictCharField, StrictModelSerializer, StrictSerializer
from organizations.models import Project
from organizations.projects import ensure_priority_allowed
from scheduling.insight import DEPENDENCIES, EXCEEDS_CAPACITY, QUOTA_LIMIT, RESERVED, RESOURCES, SCHEDULING
from scheduling.resources import Resources

from .insight import explain_pending
from .models import (
    MAX_PERSIST_PATH,
    MAX_PORTS,
    MAX_RESTARTS,
    MAX_STOP_GRACE_SECONDS,
    MAX_TIME_LIMIT_SECONDS,
    AttemptState,
    Deployment,
    DeploymentEvent,
    RestartPolicy,
)
from .output import MAX_TAIL

INT32 = {"min_value": -(2**31), "max_value": 2**31 - 1}
RESOURCE_UNITS = {"cpu_required": ("cpu", "CPU"), "ram_required": ("ram", "GB of RAM"), "gpu_required": ("gpu", "GPU")}


class VisibleClusterField(serializers.PrimaryKeyRelatedField):
    """Only clusters of the caller's organizations can be named; any other id reads as nonexistent."""

    def get_queryset(self):
        return Cluster.objects.visible_to(self.context["request"].user)


class VisibleProjectField(serializers.PrimaryKeyRelatedField):
    """Only projects of the caller's organizations can be named; any other id reads as nonexistent."""

    def get_queryset(self):
        return Project.objects.visible_to(self.context["request"].user)


class DeploymentIdsField(serializers.ListField):
    """Deployments named by id: a list of ints in, the related ids out."""

    child = serializers.IntegerField(min_value=1)

    def to_representation(self, related) -> list[int]:
        return [d.pk for d in related.all()]


STARTED_SINCE = "fits; waiting for the scheduler"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Generous bounds that keep a container's configuration a sane size for the database and the runtime.
MAX_ARGS, MAX_ARG_CHARS, MAX_ENV, MAX_ENV_VALUE_CHARS = 1000, 65_536, 1000, 65_536


def _no_nul(value: str) -> str:
    # Neither the runtime nor PostgreSQL's JSON can carry a NUL character.
    if "\x00" in value:
        raise serializers.ValidationError("NUL characters are not allowed.")
    return value


class ContainerStringField(serializers.CharField):
    """A string exactly as given: numbers are not strings here, since `1` and `"1"` are different argv."""

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_blank=True, trim_whitespace=False, validators=[_no_nul], **kwargs)

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


PORT = {"min_value": 1, "max_value": 65535}


class HttpCheckSerializer(StrictSerializer):
    port = serializers.IntegerField(**PORT)
    path = StrictCharField(max_length=2000, default="/", help_text="Healthy on a 2xx or 3xx answer.")

    def validate_path(self, path: str) -> str:
        if not path.startswith("/") or any(c.isspace() or not c.isprintable() for c in path):
            raise serializers.ValidationError("A path that starts with '/', without spaces or control characters.")
        return path


class TcpCheckSerializer(StrictSerializer):
    port = serializers.IntegerField(**PORT, help_text="Healthy when a connection opens.")


CHECK_KINDS = ("http", "tcp", "exec")


class HealthCheckSerializer(StrictSerializer):
    """How the agent tells that a service answers: exactly one of `http`, `tcp` and `exec`, and its schedule."""

    http = HttpCheckSerializer(required=False)
    tcp = TcpCheckSerializer(required=False)
    exec = serializers.ListField(child=ContainerStringField(max_length=MAX_ARG_CHARS), min_length=1,
                                 max_length=MAX_ARGS, required=False,
                                 help_text="A command run inside the container; healthy on exit 0.")
    period_seconds = serializers.IntegerField(min_value=1, max_value=3600, default=5)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=3600, default=2)
    failure_threshold = serializers.IntegerField(min_value=1, max_value=100, default=3)
    initial_delay_seconds = serializers.IntegerField(min_value=0, max_value=3600, default=0)

    def validate(self, attrs: dict) -> dict:
        kinds = [kind for kind in CHECK_KINDS if kind in attrs]
        if len(kinds) != 1:
            raise serializers.ValidationError(f"Exactly one of http, tcp and exec; got {', '.join(kinds) or 'none'}.")
        return attrs


class EndpointSerializer(serializers.Serializer):
    port = serializers.IntegerField(help_text="The container's port.")
    host = serializers.CharField(help_text="The address its agent advertises.")
    host_port = serializers.IntegerField(help_text="Where the port is published on the agent's host.")
    url = serializers.SerializerMethodField()

    def get_url(self, endpoint: dict) -> str:
        return f"http://{endpoint['host']}:{endpoint['host_port']}"


BACKOFF = "backoff"


class RuntimeSerializer(serializers.Serializer):
    """The container of the deployment's latest run, as its agent last reported it."""

    agent = serializers.IntegerField(source="agent_id")
    container = serializers.CharField(allow_blank=True, help_text="Empty until the agent has created it.")
    state = serializers.SerializerMethodField()
    attempt = serializers.IntegerField(help_text="Each start by the scheduler is a new attempt; restarts keep it.")
    exit_code = serializers.IntegerField(allow_null=True)
    next_start_at = serializers.SerializerMethodField()
    endpoints = serializers.SerializerMethodField()
    ready = serializers.SerializerMethodField()
    updated_at = serializers.DateTimeField()

    @swagger_serializer_method(serializer_or_field=serializers.ChoiceField(choices=(*AttemptState.values, BACKOFF)))
    def get_state(self, run) -> str:
        return BACKOFF if self._waiting(run) else run.state

    @swagger_serializer_method(serializer_or_field=serializers.DateTimeField(
        allow_null=True, help_text="In `backoff`: when the restart is due."))
    def get_next_start_at(self, run) -> str | None:
        return serializers.DateTimeField().to_representation(run.not_before) if self._waiting(run) else None

    @swagger_serializer_method(serializer_or_field=EndpointSerializer(many=True, help_text=(
        "Where each of its `ports` is published while its container runs; [] otherwise.")))
    def get_endpoints(self, run) -> list[dict]:
        return EndpointSerializer(run.live_endpoints, many=True).data

    @swagger_serializer_method(serializer_or_field=serializers.BooleanField(allow_null=True, help_text=(
        "Null without a health check; else whether it passes (false until the first success).")))
    def get_ready(self, run) -> bool | None:
        if run.deployment.health_check is None:
            return None
        return run.passing

    @staticmethod
    def _waiting(run) -> bool:
        return run.state == AttemptState.STARTING and run.not_before is not None and run.not_before > timezone.now()


class AmountsSerializer(serializers.Serializer):
    cpu = resource_field(read_only=True)
    ram = resource_field(read_only=True)
    gpu = gpu_field(read_only=True)


class LimitAmountsSerializer(AmountsSerializer):
    """A project's limit, or null for none: a definition of its own in the schema, which says it may be null."""


class ProjectShareSerializer(serializers.Serializer):
    """Its project on its cluster: what the project holds, is guaranteed and may hold at most."""

    id = serializers.IntegerField()
    usage = AmountsSerializer()
    guaranteed = AmountsSerializer()
    limit = LimitAmountsSerializer(allow_null=True)
    borrowing = serializers.BooleanField(help_text="Whether starting it would take its project above its guarantee.")


class SchedulingSerializer(serializers.Serializer):
    """Why a pending deployment waits, computed from one snapshot exactly as the scheduler would see it."""

    reason = serializers.ChoiceField(choices=(DEPENDENCIES, RESOURCES, RESERVED, EXCEEDS_CAPACITY, QUOTA_LIMIT,
                                              SCHEDULING))
    shortfall = AmountsSerializer(help_text="What it needs beyond what is free.")
    queue_position = serializers.IntegerField(help_text="1-based place among the cluster's pending deployments.")
    waiting_for = serializers.ListField(child=serializers.IntegerField(), help_text="Unfinished dependencies.")
    preemptible = AmountsSerializer(
        help_text="What running deployments of strictly lower priority that may still be preempted hold.")
    reserved_for = serializers.IntegerField(
        allow_null=True, help_text="For `reserved`: the deployment that what is free is set aside for.")
    project = ProjectShareSerializer()


class DeploymentSerializer(StrictModelSerializer):
    cluster = VisibleClusterField()
    project = VisibleProjectField(required=False, help_text="Default: the organization's `default` project.")
    organization = serializers.IntegerField(source="cluster.organization_id", read_only=True)
    priority = serializers.IntegerField(default=0, **INT32)
    cpu_required = resource_field(default=0)
    ram_required = resource_field(default=0)
    gpu_required = gpu_field(default=0)
    depends_on = DeploymentIdsField(required=False, max_length=1000)
    dependents = DeploymentIdsField(read_only=True)
    status_reason = serializers.SerializerMethodField()
    scheduling = serializers.SerializerMethodField()
    command = serializers.ListField(child=ContainerStringField(max_length=MAX_ARG_CHARS), allow_null=True,
                                    required=False, max_length=MAX_ARGS,
                                    help_text="Arguments to run instead of the image's command; null for the image's.")
    env = serializers.DictField(child=ContainerStringField(max_length=MAX_ENV_VALUE_CHARS), required=False,
                                help_text="Environment variables of the container.")
    stop_grace_seconds = serializers.IntegerField(min_value=0, max_value=MAX_STOP_GRACE_SECONDS, required=False,
                                                  help_text="Seconds between SIGTERM and SIGKILL when it is stopped.")
    restart_policy = serializers.ChoiceField(choices=RestartPolicy.choices, required=False,
                                             help_text="Whether an exit restarts its container in place.")
    max_restarts = serializers.IntegerField(min_value=0, max_value=MAX_RESTARTS, allow_null=True, required=False,
                                            help_text="Restarts in place over its life; null for no cap.")
    time_limit_seconds = serializers.IntegerField(
        min_value=1, max_value=MAX_TIME_LIMIT_SECONDS, allow_null=True, required=False,
        help_text="It ends `failed` this long after its latest start by the scheduler; null for no limit.")
    persist_path = StrictCharField(max_length=MAX_PERSIST_PATH, allow_null=True, required=False,
                                   help_text="An absolute path in the container where a volume of its own outlives "
                                             "its containers.")
    ports = serializers.ListField(child=serializers.IntegerField(**PORT), max_length=MAX_PORTS, required=False,
                                  help_text="TCP ports the container listens on, each published on its agent's host.")
    health_check = HealthCheckSerializer(allow_null=True, required=False)
    runtime = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = (
            "id", "name", "organization", "cluster", "project", "docker_image", "priority",
            "cpu_required", "ram_required", "gpu_required", "depends_on", "dependents",
            "command", "env", "stop_grace_seconds", "restart_policy", "max_restarts", "time_limit_seconds",
            "persist_path", "ports", "health_check", "status", "status_reason", "scheduling", "exit_code",
            "end_reason", "restart_count",
            "runtime", "preemption_count", "lost_seconds", "created_by", "created_at", "started_at", "finished_at",
        )
        read_only_fields = ("status", "exit_code", "end_reason", "restart_count", "preemption_count", "lost_seconds",
                            "created_by", "created_at", "started_at", "finished_at")

    def _insight(self, deployment: Deployment):
        """(explanation, sentence) of a pending deployment, computed once for the whole page it is on; no
        explanation for one that a pass started since it was read (say, the answer to its own submission)."""
        insight = self.context.setdefault("insight", {})
        if deployment.pk not in insight:
            batch = self.parent.instance if isinstance(self.parent, serializers.ListSerializer) else [deployment]
            insight.update(dict.fromkeys((d.pk for d in batch), (None, STARTED_SINCE)))
            # Their dependencies are read for `depends_on` anyway (prefetched by the views).
            insight.update(explain_pending(
                list(batch), with_dependencies=[d.pk for d in batch if d.depends_on.all()]))
        return insight[deployment.pk]

    @swagger_serializer_method(serializer_or_field=serializers.CharField())
    def get_status_reason(self, deployment: Deployment) -> str:
        waiting = self._insight(deployment)[1] if deployment.status == Deployment.Status.PENDING else ""
        return deployment.status_reason(waiting)

    @swagger_serializer_method(serializer_or_field=SchedulingSerializer(allow_null=True))
    def get_scheduling(self, deployment: Deployment) -> dict | None:
        explanation = self._insight(deployment)[0] if deployment.status == Deployment.Status.PENDING else None
        return None if explanation is None else SchedulingSerializer(explanation).data

    @swagger_serializer_method(serializer_or_field=RuntimeSerializer(allow_null=True))
    def get_runtime(self, deployment: Deployment) -> dict | None:
        # The view prefetches the attempts newest first; none means a ledger-only run, or no start yet.
        latest = next(iter(deployment.attempts.all()), None)
        return RuntimeSerializer(latest).data if latest else None

    def validate_persist_path(self, path: str | None) -> str | None:
        if path is None:
            return None
        _no_nul(path)
        if not path.startswith("/") or not path.strip("/") or ".." in path.split("/"):
            raise serializers.ValidationError("An absolute path inside the container, without '..' segments.")
        return path

    def validate_ports(self, ports: list[int]) -> list[int]:
        repeated = sorted(port for port, n in Counter(ports).items() if n > 1)
        if repeated:
            raise serializers.ValidationError(f"Listed more than once: {', '.join(map(str, repeated))}.")
        return ports

    def validate_env(self, env: dict) -> dict:
        if len(env) > MAX_ENV:
            raise serializers.ValidationError(f"At most {MAX_ENV} variables.")
        bad = sorted(name for name in env if not re.match(ENV_NAME, name))
        if bad:
            raise serializers.ValidationError(
                f"Variable names are letters, digits and underscores, not starting with a digit: {', '.join(repr(n[:50]) for n in bad[:5])}."
            )
        return env

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
        self._check_project(attrs, cluster)
        self._check_probes_a_port(attrs)
        if "depends_on" in attrs:
            attrs["depends_on"] = self._dependencies(attrs["depends_on"], cluster)
        return attrs

    def _check_project(self, attrs: dict, cluster: Cluster) -> None:
        """The project (the organization's default unless named) is of the cluster's organization, and allows
        the priority; on an edit, checked again when either changes."""
        if self.instance is None:
            attrs.setdefault("project", Project.objects.default_of(cluster.organization_id))
        elif not {"project", "priority"} & attrs.keys():
            return
        project = attrs.get("project", getattr(self.instance, "project", None))
        if project.organization_id != cluster.organization_id:
            raise serializers.ValidationError({"project": ["This project belongs to another organization than the "
                                                           "cluster."]})
        ensure_priority_allowed(project=project, priority=attrs.get("priority", getattr(self.instance, "priority", 0)))

    def _check_probes_a_port(self, attrs: dict) -> None:
        ports = attrs.get("ports", getattr(self.instance, "ports", None) or [])
        check = attrs.get("health_check", getattr(self.instance, "health_check", None))
        target = (check or {}).get("http") or (check or {}).get("tcp")
        if target and target["port"] not in ports:
            field = "health_check" if "health_check" in attrs else "ports"
            raise serializers.ValidationError(
                {field: [f"The health check's port {target['port']} must be one of ports ({ports})."]})

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


class DryRunSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=("start", "preempt", "wait"))
    preempts = serializers.ListField(child=serializers.IntegerField(), help_text="What it would evict.")
    scheduling = SchedulingSerializer(allow_null=True, help_text="For `wait`: as the deployment would show it.")
    status_reason = serializers.CharField()


class LogQuerySerializer(serializers.Serializer):
    tail = QueryIntegerField(min_value=0, max_value=MAX_TAIL, default=100,
                             help_text=f"How many of the last lines (at most {MAX_TAIL}).")
    follow = serializers.BooleanField(default=False, help_text=(
        "Answer `text/event-stream`: the last `tail` lines, then each new line as it is written (`id:` each, "
        "for `Last-Event-ID`), `event: end` once the deployment finished and all its output was sent."))


class EventQuerySerializer(PageQuerySerializer):
    watch = serializers.BooleanField(default=False, help_text=(
        "Answer `text/event-stream`: each event as `event: <kind>` with its JSON, from `Last-Event-ID` on, "
        "`event: end` once the deployment finished."))


class WatchQuerySerializer(serializers.Serializer):
    watch = serializers.BooleanField(default=False, help_text=(
        "Answer `text/event-stream`: `event: deployment` with a deployment's JSON each time one this list shows "
        "changes status or run state, resumable with `Last-Event-ID`."))


class DeploymentLogSerializer(serializers.Serializer):
    lines = serializers.ListField(child=serializers.CharField(), help_text="Oldest first.")
    truncated = serializers.BooleanField(help_text="Earlier output exists that is not in `lines`.")


class DeploymentEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentEvent
        fields = ("at", "kind", "message")


class DeploymentEventPageSerializer(PageSerializer):
    results = DeploymentEventSerializer(many=True)


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids)
