"""The agents' endpoints: a cluster's agent as its members see it (list, register, revoke), and the agent-facing
API, one level-triggered sync of what runs on the host against what should."""
from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_yasg.utils import swagger_auto_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.models import Cluster
from deployments import attempts, runs
from hypervisor_mlops.api.queries import PageQuerySerializer, StrictQueryParameters
from organizations.permissions import ADMINS, ANY_MEMBER, HasOrganizationRole

from . import liveness, registration
from .authentication import AgentTokenAuthentication, IsAgent
from .models import Agent
from .serializers import (
    AgentPageSerializer,
    AgentRegistrationSerializer,
    AgentSerializer,
    SyncRequestSerializer,
    SyncResponseSerializer,
)


class ClusterAgentViewSet(StrictQueryParameters, viewsets.GenericViewSet):
    """A cluster's agent, under the cluster's URL (`/clusters/{id}/agents/`): members read it, admins register
    and revoke it."""

    permission_classes = (HasOrganizationRole,)
    http_method_names = ("get", "post", "delete", "head", "options")
    query_serializers = {"agents": PageQuerySerializer}
    lookup_value_regex = r"\d+"
    required_roles = {"agents": ANY_MEMBER, "register_agent": ADMINS, "revoke_agent": ADMINS}

    def get_queryset(self):
        return Cluster.objects.visible_to(self.request.user).order_by("id")

    def get_serializer_class(self):
        return AgentRegistrationSerializer

    @swagger_auto_schema(responses={200: AgentPageSerializer})
    @action(detail=True, methods=["get"])
    def agents(self, request, pk=None):
        """The cluster's agent (at most one): `new` until it first calls, then `online` or `offline`."""
        cluster = self.get_object()
        page = self.paginate_queryset(Agent.objects.live().filter(cluster=cluster))
        return self.get_paginated_response(AgentSerializer(page, many=True).data)

    @swagger_auto_schema(request_body=AgentRegistrationSerializer, responses={201: AgentRegistrationSerializer,
                                                                             409: "The cluster has an agent"})
    @agents.mapping.post
    def register_agent(self, request, pk=None):
        """Register the cluster's agent; its `token` is shown only in this response."""
        cluster = self.get_object()
        serializer = AgentRegistrationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent, token = registration.register_agent(cluster_id=cluster.pk, name=serializer.validated_data["name"])
        agent.token = token
        return Response(AgentRegistrationSerializer(agent).data, status=status.HTTP_201_CREATED)

    @swagger_auto_schema(responses={204: "Revoked"})
    @action(detail=True, methods=["delete"], url_path=r"agents/(?P<agent_id>\d+)")
    def revoke_agent(self, request, pk=None, agent_id=None):
        """Revoke the agent: its token stops working at once."""
        cluster = self.get_object()
        agent = get_object_or_404(Agent.objects.live(), cluster=cluster, pk=agent_id)
        registration.revoke_agent(agent_id=agent.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)




class AgentSyncView(StrictQueryParameters, APIView):
    """An agent reports every container it has (and new output); the answer is what must run now.

    Anything of the agent's not in `deployments` must stop. Authenticated by the agent's token only.
    """

    authentication_classes = (AgentTokenAuthentication,)
    permission_classes = (IsAgent,)
    # One agent per cluster polls several times a second by design; its token, not a rate, bounds it.
    throttle_classes = ()

    @swagger_auto_schema(request_body=SyncRequestSerializer, responses={200: SyncResponseSerializer},
                         security=[{"Bearer": []}])
    def post(self, request):
        agent = request.auth
        report = SyncRequestSerializer(data=request.data)
        report.is_valid(raise_exception=True)
        liveness.record_heartbeat(agent=agent, hostname=report.validated_data["hostname"],
                                  version=report.validated_data["version"])
        held = runs.append_logs(agent_id=agent.pk, chunks=report.chunks())
        seen = report.seen()
        if seen is not None:
            runs.apply_agent_report(agent=agent, seen=seen, failures=report.failures(), host=report.host())
        return Response(SyncResponseSerializer({
            "agent": agent,
            "poll_seconds": settings.AGENT_POLL_SECONDS,
            "deployments": attempts.wanted_runs(agent_id=agent.pk),
            "logs": [{"deployment": d, "attempt": n, "offset": offset} for d, n, offset in held],
            "remove_volumes": attempts.finished_volumes(report.validated_data["volumes"]),
        }).data)
