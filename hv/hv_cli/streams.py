"""Following a stream of the API: after a dropped connection (or the server's periodic close) it reconnects with
the last id received as Last-Event-ID, so nothing is lost or repeated, until the server says `end` or answers
204 (the stream ended while hv was away)."""
import time
from collections.abc import Callable, Iterator

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from .client import ApiError, Session, Unreachable, message_of

# The server sends a comment at least every 15 s: this long without a byte means the connection is gone.
SILENCE_SECONDS = 45
# Reconnecting gives up after failing this long in a row (a server that is down, not one that restarts).
GIVE_UP_SECONDS = 60
RETRIED_STATUSES = {502, 503, 504}


class StreamLost(ApiError):
    """The stream could not be followed to its end."""


def follow(session: Session, path: str, *, on_reconnect: Callable[[], None] | None = None
           ) -> Iterator[ServerSentEvent]:
    """The events of the stream at `path`, across reconnections, without the final `end`."""
    last_id, failing_since, delay = None, None, 0.2
    while True:
        try:
            headers = {**session.authorization(), "Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            with connect_sse(session.http, "GET", path, headers=headers,
                             timeout=httpx.Timeout(30, read=SILENCE_SECONDS)) as source:
                response = source.response
                if response.status_code == 204:
                    return
                if response.status_code == 401 and not session.fixed_token:
                    session.refresh(stale=headers["Authorization"].removeprefix("Bearer "))
                    continue
                if response.status_code >= 400 and response.status_code not in RETRIED_STATUSES:
                    response.read()
                    raise ApiError(message_of(response), response.status_code)
                if response.status_code < 400:
                    failing_since, delay = None, 0.2
                    for event in source.iter_sse():
                        if event.id:
                            last_id = event.id
                        if event.event == "end":
                            return
                        yield event
                    continue  # closed without `end`, as a server may: resume at once
        except (httpx.TransportError, Unreachable):
            pass
        failing_since = failing_since or time.monotonic()
        if time.monotonic() - failing_since > GIVE_UP_SECONDS:
            raise StreamLost(f"lost the stream from {session.server} and could not get it back for "
                             f"{GIVE_UP_SECONDS} s")
        if on_reconnect:
            on_reconnect()
        time.sleep(delay)
        delay = min(delay * 2, 5)
