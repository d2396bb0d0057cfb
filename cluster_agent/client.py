"""The agent's HTTP client of the server: one sync call that reports what runs and returns what should."""
from __future__ import annotations

import requests

TIMEOUT_SECONDS = 10


class Refused(Exception):
    """The server refused the token (401): revoked (`agent_revoked`, naming the agent's uid) or unknown."""

    def __init__(self, code: str, detail: str, agent_uid: str | None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.agent_uid = agent_uid

    @property
    def revoked(self) -> bool:
        return self.code == "agent_revoked"


class Unavailable(Exception):
    """The call did not succeed for a reason worth retrying: no connection, a timeout, a 5xx, or an
    unexpected 4xx (`client_error`: a bug on one side, reported loudly but not a reason to stop)."""

    def __init__(self, message: str, client_error: bool = False) -> None:
        super().__init__(message)
        self.client_error = client_error


class ServerClient:
    def __init__(self, server: str, token: str) -> None:
        self.server, self.token = server, token
        self.url = server.rstrip("/") + "/api/v1/agent/sync/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def clone(self) -> ServerClient:
        """Another client of the same server, with a session of its own for another thread."""
        return ServerClient(self.server, self.token)

    def sync(self, report: dict) -> dict:
        try:
            response = self.session.post(self.url, json=report, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            raise Unavailable(str(exc)) from exc
        if response.status_code == 401:
            body = json_object(response)
            raise Refused(
                str(body.get("code") or "agent_token_invalid"),
                str(body.get("detail") or response.text[:200]),
                body.get("agent"),
            )
        if response.status_code != 200:
            raise Unavailable(f"HTTP {response.status_code}: {response.text[:500]}", 400 <= response.status_code < 500)
        body = json_object(response)
        if "deployments" not in body:
            raise Unavailable(f"unexpected response: {response.text[:500]}")
        return body


def json_object(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
