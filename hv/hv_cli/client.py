"""The API as hv speaks it: which server, the bearer token (refreshed under a file lock when it expires), pages
fetched together, and errors in the API's own words."""
import base64
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from filelock import FileLock

from . import config

# Refresh a little before the access token expires, so a request never races its expiry.
EXPIRY_MARGIN_SECONDS = 30


class ApiError(Exception):
    """An answer of the API that is not a success, or no answer at all: printed as one line, exit code 1."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Unreachable(ApiError):
    """No answer from the server (down, restarting, or the network): worth trying again for a stream."""


def message_of(response: httpx.Response) -> str:
    """The API's message: `detail`, or each invalid field with its messages (DRF's two error shapes)."""
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.reason_phrase}"
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    if isinstance(body, dict):
        return "; ".join(f"{field}: {' '.join(map(str, messages)) if isinstance(messages, list) else messages}"
                         for field, messages in body.items())
    return json.dumps(body)


def expires_soon(token: str) -> bool:
    """Whether a JWT's `exp` is near; read without verifying (the server verifies, hv only plans ahead)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims["exp"] - EXPIRY_MARGIN_SECONDS < time.time()
    except (IndexError, KeyError, ValueError):
        return False


class Session:
    """One hv invocation's view of the API: HV_SERVER / --server and HV_TOKEN win over the config file."""

    def __init__(self, server: str | None = None) -> None:
        settings = config.load()
        self.server = (server or os.environ.get("HV_SERVER") or settings.get("server") or "").rstrip("/")
        self.fixed_token = os.environ.get("HV_TOKEN") or None
        self.http = httpx.Client(base_url=f"{self.server}/api/v1", timeout=30, headers={"User-Agent": "hv"})

    def request(self, method: str, path: str, *, auth: bool = True, **kwargs) -> httpx.Response:
        if not self.server:
            raise ApiError("no server: run `hv login --server URL` first, or set HV_SERVER")
        response = self._send(method, path, auth, kwargs)
        if response.status_code == 401 and auth and not self.fixed_token:
            self.refresh(stale=self._access())
            response = self._send(method, path, auth, kwargs)
        if response.status_code >= 400:
            raise ApiError(message_of(response), response.status_code)
        return response

    def get(self, path: str, **params) -> dict:
        return self.request("GET", path, params=params or None).json()

    def post(self, path: str, body: dict | None = None, *, auth: bool = True) -> dict:
        response = self.request("POST", path, json=body if body is not None else {}, auth=auth)
        return response.json() if response.content else {}

    def every(self, path: str, **params) -> list[dict]:
        """All pages of a list: the first tells how many there are, the rest are fetched side by side."""
        first = self.get(path, **params)
        results, count = list(first["results"]), first["count"]
        pages = -(-count // len(results)) if results else 1
        if pages > 1:
            with ThreadPoolExecutor(8) as pool:
                for page in pool.map(lambda n: self.get(path, **params, page=n), range(2, pages + 1)):
                    results.extend(page["results"])
        return results

    def authorization(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def token(self) -> str:
        if self.fixed_token:
            return self.fixed_token
        access = self._access()
        return self.refresh(stale=access) if expires_soon(access) else access

    def refresh(self, *, stale: str) -> str:
        """A fresh access token. Refresh tokens rotate (the used one stops working), so this takes the config
        file's lock and first looks whether another hv process already refreshed while it waited."""
        if self.fixed_token:
            raise ApiError("HV_TOKEN was refused: it is invalid or has expired", 401)
        with FileLock(config.lock_path(), timeout=60):
            settings = config.load()
            if settings.get("access") and settings["access"] != stale and not expires_soon(settings["access"]):
                return settings["access"]
            try:
                response = self.http.post("/auth/refresh", json={"refresh": settings.get("refresh", "")})
            except httpx.TransportError as error:
                raise Unreachable(f"cannot reach {self.server}: {error}") from error
            if response.status_code != 200:
                raise ApiError("your session has ended: run `hv login` again", 401)
            tokens = response.json()
            settings.update(access=tokens["access"], refresh=tokens.get("refresh", settings["refresh"]))
            config.save(settings)
            return settings["access"]

    def _access(self) -> str:
        access = self.fixed_token or config.load().get("access")
        if not access:
            raise ApiError("not logged in: run `hv login` first (or set HV_TOKEN)")
        return access

    def _send(self, method: str, path: str, auth: bool, kwargs: dict) -> httpx.Response:
        headers = self.authorization() if auth else {}
        try:
            return self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as error:
            raise Unreachable(f"cannot reach {self.server}: {error}") from error
