"""Agent tokens: they authenticate an agent's own calls, and nothing else (user endpoints read them as a bad JWT)."""
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from .models import Agent, hash_token


class AgentRefused(exceptions.APIException):
    """401 with a machine-readable code, so an agent can tell revocation (stop everything) from a typo."""

    status_code = status.HTTP_401_UNAUTHORIZED

    def __init__(self, code: str, detail: str, **extra: str) -> None:
        super().__init__({"detail": detail, "code": code, **extra})


class AgentTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer":
            return None
        agent = Agent.objects.filter(token_hash=hash_token(parts[1].decode("latin-1"))).first()
        if agent is None:
            raise AgentRefused("agent_token_invalid", "Unknown agent token.")
        if agent.revoked_at is not None:
            raise AgentRefused("agent_revoked", "This agent was revoked: stop its containers and exit.",
                               agent=agent.uid)
        return None, agent

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="agent"'


class IsAgent(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Agent)
