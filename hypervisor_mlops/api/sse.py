"""For views with actions that also answer as a stream (`?follow=true`, `?watch=true`): the same auth and
tenant isolation as the action, errors as JSON, no throttle for a stream while it is open, and Last-Event-ID."""
import threading

from django.conf import settings
from django.http import HttpResponse
from rest_framework.exceptions import ValidationError
from rest_framework.fields import BooleanField
from rest_framework.renderers import JSONRenderer

from ..streams.hints import bus
from ..streams.responses import event_stream
from .exceptions import ServiceUnavailable
from .queries import WHOLE_NUMBER

_openings: threading.BoundedSemaphore | None = None


def opening() -> threading.BoundedSemaphore:
    """As many streams open at once as there are reader threads: the connections a process spends on them."""
    global _openings
    if _openings is None:
        _openings = threading.BoundedSemaphore(settings.STREAM_READERS)
    return _openings


class StreamingActions:
    """Mix into a viewset; `stream_parameters` names, per action, the query parameter that asks for a stream."""

    stream_parameters: dict[str, str] = {}

    def is_stream_request(self) -> bool:
        name = self.stream_parameters.get(getattr(self, "action", None))
        return name is not None and self.request.query_params.get(name) in BooleanField.TRUE_VALUES

    def get_throttles(self):
        # One request opens a stream that may last minutes: counting it as one request would be meaningless,
        # and counting its time would throttle a dashboard that simply stays open.
        return [] if self.is_stream_request() else super().get_throttles()

    def perform_content_negotiation(self, request, force=False):
        # A stream's client sends `Accept: text/event-stream`; its errors (401, 404, 400) still answer JSON.
        if self.is_stream_request():
            return JSONRenderer(), JSONRenderer.media_type
        return super().perform_content_negotiation(request, force)

    def last_event_id(self) -> int | None:
        """The id a reconnecting client last received; a 400 when it is not one of ours (whole numbers)."""
        value = self.request.headers.get("Last-Event-ID")
        if value is None or value == "":
            return None
        if not WHOLE_NUMBER.fullmatch(value) or value.startswith("-"):
            raise ValidationError({"Last-Event-ID": ["Not an event id of this stream."]})
        return int(value)

    def stream_close_at(self) -> float | None:
        """When the caller's access token expires (a stream then ends; the client resumes with a fresh one)."""
        token = getattr(self.request, "auth", None)
        return float(token["exp"]) if token is not None and "exp" in getattr(token, "payload", {}) else None

    def dispatch(self, request, *args, **kwargs):
        if not any(request.GET.get(name) in BooleanField.TRUE_VALUES for name in self.stream_parameters.values()):
            return super().dispatch(request, *args, **kwargs)
        # Opening a stream reads on the request's own connection (the caller, the object); a crowd of clients
        # reconnecting at once would open that many connections, so they take turns, a few at a time.
        with opening():
            return super().dispatch(request, *args, **kwargs)

    def serve_stream(self, reader, *, keys: tuple[int, ...]) -> HttpResponse:
        """Serve the reader's frames as they come; a 204 to a client that resumes a stream already over."""
        if bus().open_streams >= settings.STREAMS_PER_PROCESS:
            raise ServiceUnavailable("Too many streams open on this server; reconnect in a moment.")
        first = reader.read()
        frames, ended = first
        if ended and not frames and self.last_event_id() is not None:
            return HttpResponse(status=204)
        return event_stream(self.request, keys=keys, read=reader.read, first=first, close_at=self.stream_close_at())
