"""Deployment endpoints: submit, read, edit, the status actions and the event history."""
from django.db.models import Prefetch
from django.utils.decorators import method_decorator
from drf_yasg import openapi
from drf_yasg.utils import no_body, swagger_auto_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from hypervisor_mlops.api.queries import StrictQueryParameters
from hypervisor_mlops.api.sse import StreamingActions
from hypervisor_mlops.internals import set_prefetched
from hypervisor_mlops.streams.hints import EVERY
from organizations.permissions import ANY_MEMBER, MANAGERS, HasOrganizationRole
from organizations.projects import ensure_may_submit

from . import insight, lifecycle, streams
from .filters import DeploymentFilter
from .models import Deployment, DeploymentLog, RunAttempt, Status
from .output import last_lines
from .serializers import (
    DeploymentEventPageSerializer,
    DeploymentEventSerializer,
    DeploymentLogSerializer,
    DeploymentSerializer,
    DeploymentUpdateSerializer,
    DryRunSerializer,
    EventQuerySerializer,
    LogQuerySerializer,
    WatchQuerySerializer,
)

# What a deployment's representation reads besides its row: fetched once per page (or object), not per access.
RELATED = (
    Prefetch("depends_on", queryset=Deployment.objects.only("id", "status")),
    Prefetch("dependents", queryset=Deployment.objects.only("id")),
    Prefetch("attempts", queryset=RunAttempt.objects.order_by("-number")),
)


@method_decorator(name="create", decorator=swagger_auto_schema(
    responses={403: "Viewers cannot submit, nor anyone but admins to a project they are not a member of."}))
@method_decorator(name="partial_update", decorator=swagger_auto_schema(
    responses={409: "Its cluster and resource request cannot change once it has been scheduled."}))
class DeploymentViewSet(
    StreamingActions,
    StrictQueryParameters,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Deployments of the caller's organizations; `status` changes only through the scheduler and actions."""

    permission_classes = (HasOrganizationRole,)
    http_method_names = ("get", "post", "patch", "head", "options")
    filterset_class = DeploymentFilter
    query_serializers = {"list": WatchQuerySerializer, "events": EventQuerySerializer, "logs": LogQuerySerializer}
    stream_parameters = {"list": "watch", "events": "watch", "logs": "follow"}
    lookup_value_regex = r"\d+"
    required_roles = {
        "retrieve": ANY_MEMBER,
        "events": ANY_MEMBER,
        "logs": ANY_MEMBER,
        "partial_update": MANAGERS,
        "complete": MANAGERS,
        "fail": MANAGERS,
        "cancel": MANAGERS,
    }

    def get_queryset(self):
        return (
            Deployment.objects.visible_to(self.request.user)
            .select_related("cluster")
            .prefetch_related(*RELATED)
        )

    def get_serializer_class(self):
        return DeploymentUpdateSerializer if self.action == "partial_update" else DeploymentSerializer

    def list(self, request, *args, **kwargs):
        # With `?watch=true`, a stream of their changes. (No docstring: the schema keeps the class's words.)
        WatchQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
        if not self.is_stream_request():
            return super().list(request, *args, **kwargs)
        return self.serve_stream(streams.Changes(after=self.last_event_id(), select=self._select,
                                                 select_unfiltered=self._select_unfiltered), keys=(EVERY,))

    def _select(self, condition) -> "list[dict]":
        return self._serialized(self.filter_queryset(self.get_queryset()).filter(condition))

    def _select_unfiltered(self, condition) -> "list[dict]":
        return self._serialized(self.get_queryset().filter(condition))

    def _serialized(self, deployments) -> "list[dict]":
        return DeploymentSerializer(deployments, many=True, context=self.get_serializer_context()).data

    def perform_create(self, serializer) -> None:
        self._ensure_may_submit(serializer.validated_data)
        deployment = lifecycle.create_deployment(created_by=self.request.user, **serializer.validated_data)
        _relations_as_committed(deployment, serializer.validated_data.get("depends_on", ()))
        serializer.instance = deployment

    def perform_update(self, serializer) -> None:
        cluster = serializer.validated_data.get("cluster")
        if cluster is not None and cluster.caller_role not in MANAGERS:
            raise PermissionDenied("Viewers cannot move deployments onto a cluster.")
        if "project" in serializer.validated_data:
            ensure_may_submit(project=serializer.validated_data["project"], user=self.request.user,
                              role=serializer.instance.caller_role)
        lifecycle.update_deployment(deployment_id=serializer.instance.pk, **serializer.validated_data)
        serializer.instance = self.get_object()

    @swagger_auto_schema(request_body=DeploymentSerializer, responses={
        200: openapi.Response("What submitting this body would do now.", DryRunSerializer, examples={
            "application/json": {"decision": "wait", "preempts": [], "status_reason":
                                 "Needs 2 GPU, 1 free; 3 deployments of higher priority ahead.",
                                 "scheduling": {"reason": "resources",
                                                "shortfall": {"cpu": "0.000", "ram": "0.000", "gpu": 1},
                                                "queue_position": 4, "waiting_for": [],
                                                "preemptible": {"cpu": "0.000", "ram": "0.000", "gpu": 0}}}}),
        400: "Invalid, exactly as a create", 403: "Viewers cannot submit"})
    @action(detail=False, methods=["post"], url_path="dry-run")
    def dry_run(self, request):
        """What submitting this body would do now (start, preempt whom, or wait and why), creating nothing."""
        serializer = DeploymentSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        self._ensure_may_submit(serializer.validated_data)
        return Response(DryRunSerializer(insight.dry_run_deployment(**serializer.validated_data)).data)

    def _ensure_may_submit(self, validated: dict) -> None:
        role = validated["cluster"].caller_role
        if role not in MANAGERS:
            raise PermissionDenied("Viewers cannot create deployments.")
        ensure_may_submit(project=validated["project"], user=self.request.user, role=role)

    def _finish(self, status: Status) -> Response:
        deployment = self.get_object()
        lifecycle.finish_deployment(deployment_id=deployment.pk, status=status, actor=self.request.user)
        return Response(self.get_serializer(self.get_object()).data)

    @swagger_auto_schema(request_body=no_body, responses={200: DeploymentSerializer, 409: "Not running"})
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        """running -> completed; frees its resources."""
        return self._finish(Status.COMPLETED)

    @swagger_auto_schema(request_body=no_body, responses={200: DeploymentSerializer, 409: "Not running"})
    @action(detail=True, methods=["post"])
    def fail(self, request, pk=None):
        """running -> failed; frees its resources."""
        return self._finish(Status.FAILED)

    @swagger_auto_schema(request_body=no_body, responses={200: DeploymentSerializer, 409: "Already finished"})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """pending or running -> cancelled; frees its resources."""
        return self._finish(Status.CANCELLED)

    @swagger_auto_schema(responses={200: DeploymentEventPageSerializer})
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """The status history, oldest first; with `?watch=true`, a stream of it that ends after the finish."""
        deployment = self.get_object()
        EventQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
        if self.is_stream_request():
            reader = streams.Events(deployment.pk, after=self.last_event_id(),
                                    serialize=lambda events: DeploymentEventSerializer(events, many=True).data)
            return self.serve_stream(reader, keys=(deployment.pk,))
        page = self.paginate_queryset(deployment.events.order_by("at", "id"))
        return self.get_paginated_response(DeploymentEventSerializer(page, many=True).data)

    @swagger_auto_schema(responses={200: DeploymentLogSerializer})
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        """The last lines its containers wrote to stdout and stderr, oldest first; empty on a ledger-only cluster."""
        deployment = self.get_object()
        query = LogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        if query.validated_data["follow"]:
            reader = streams.LogLines(deployment.pk, after=self.last_event_id(), tail=query.validated_data["tail"])
            return self.serve_stream(reader, keys=(deployment.pk,))
        text = DeploymentLog.objects.filter(deployment=deployment).values_list("text", "truncated").first()
        lines, more = last_lines(text[0], query.validated_data["tail"]) if text else ([], False)
        return Response({"lines": lines, "truncated": more or bool(text and text[1])})


def _relations_as_committed(deployment: Deployment, depends_on) -> None:
    """Its relations as its own transaction committed them, without the three queries that would read them back:
    the dependencies just validated, and no dependents or run attempts, which only later transactions can add.
    The answer is the deployment at its commit, as its `status` already is."""
    for name, rows in (("depends_on", list(depends_on)), ("dependents", []), ("attempts", [])):
        set_prefetched(deployment, name, rows)


