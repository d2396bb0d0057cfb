"""The agent-facing API: one level-triggered sync of what runs on the host against what should."""
from django.conf import settings
from drf_yasg.utils import swagger_auto_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from deployments import attempts, runs
from hypervisor_mlops.api.queries import StrictQueryParameters

from . import liveness
from .authentication import AgentTokenAuthentication, IsAgent
from .serializers import SyncRequestSerializer, SyncResponseSerializer


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
            runs.apply_agent_report(agent=agent, seen=seen, failures=report.failures())
        desired = [a for a in attempts.open_attempts(agent_id=agent.pk) if a.state != a.State.STOPPING]
        return Response(SyncResponseSerializer({
            "agent": agent,
            "poll_seconds": settings.AGENT_POLL_SECONDS,
            "deployments": desired,
            "logs": [{"deployment": d, "attempt": n, "offset": offset} for d, n, offset in held],
        }).data)
