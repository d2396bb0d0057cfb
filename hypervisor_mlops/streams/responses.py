"""The response that serves a stream as Server-Sent Events, to a threaded (WSGI) or an async (ASGI) server.

Django buffers a streaming response whose iterator does not match the server (a sync iterator under ASGI, an
async one under WSGI, each read whole into memory before the first byte is sent), so the iterator is chosen by
the request the server made. Both run the same loop: read from the database, send what is new, then wait for a
hint with no database connection or transaction held. Reads run on a few reader threads per process, each with
its own connection (single autocommit statements, no transaction), so a process's streams share a handful of
connections however many they are, and no stream holds one while it waits.
"""
import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connections
from django.http import StreamingHttpResponse

from .hints import bus

# A read's answer: the frames to send now, and whether the stream is over (`event: end` follows).
Read = tuple[list[bytes], bool]
SSE_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A comment line alone: followed by a blank line, some clients (httpx-sse) would dispatch an empty event.
HEARTBEAT = b": keep-alive\n"
END = b"event: end\ndata: \n\n"


def frame(data: str | dict, *, event: str | None = None, id: int | None = None) -> bytes:
    """One SSE event. Line breaks inside the data become data lines of their own (the client joins them)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    fields = [f"event: {event}"] if event else []
    if id is not None:
        fields.append(f"id: {id}")
    fields.extend(f"data: {part}" for part in SSE_LINE_BREAK.split(text))
    return ("\n".join(fields) + "\n\n").encode()


@dataclass(frozen=True)
class Wait:
    seconds: float


def event_stream(request, *, keys: tuple[int, ...], read: Callable[[], Read], first: Read,
                 close_at: float | None = None) -> StreamingHttpResponse:
    """Serve `first`, then whatever `read` returns each time a hint for `keys` (or the poll) wakes the stream.

    Closes after `end`, at STREAM_MAX_SECONDS, or at `close_at` (a time.time(): when the caller's token expires);
    the client resumes with Last-Event-ID. A comment goes out whenever nothing else did for the heartbeat.
    """
    close_connections()  # the first read ran on the request's connection: let it go before any waiting
    subscription = bus().subscribe(keys)
    lifetime = settings.STREAM_MAX_SECONDS
    if close_at is not None:
        lifetime = min(lifetime, close_at - time.time())
    steps = _steps(read, first, time.monotonic() + lifetime)
    asynchronous = getattr(request, "scope", None) is not None  # an ASGIRequest
    content = _async_frames(steps, subscription) if asynchronous else _sync_frames(steps, subscription)
    response = StreamingHttpResponse(content, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold events back
    return response


def close_connections() -> None:
    for connection in connections.all(initialized_only=True):
        connection.close()


_readers: ThreadPoolExecutor | None = None
_readers_lock = threading.Lock()


def readers() -> ThreadPoolExecutor:
    """The process's reader threads (made on first use, after a server forks its workers)."""
    global _readers
    with _readers_lock:
        if _readers is None:
            _readers = ThreadPoolExecutor(settings.STREAM_READERS, thread_name_prefix="stream-read")
        return _readers


def _read_on_a_reader(read: Callable[[], Read]) -> Read:
    # Outside a request nothing else retires a reader's connection past CONN_MAX_AGE or after an error.
    close_old_connections()
    return read()


def _steps(read: Callable[[], Read], first: Read, deadline: float) -> Iterator[bytes | Wait]:
    """The loop both servers run: frames to send, and waits between reads."""
    frames, ended = first
    last_sent = time.monotonic()
    while True:
        if frames:
            yield b"".join(frames)
            last_sent = time.monotonic()
        if ended:
            yield END
            return
        now = time.monotonic()
        if now >= deadline:
            return
        heartbeat = settings.STREAM_HEARTBEAT_SECONDS
        yield Wait(max(0.0, min(bus().poll_seconds, heartbeat - (now - last_sent), deadline - now)))
        if time.monotonic() - last_sent >= heartbeat:
            yield HEARTBEAT
            last_sent = time.monotonic()
        frames, ended = readers().submit(_read_on_a_reader, read).result()


def _sync_frames(steps: Iterator[bytes | Wait], subscription) -> Iterator[bytes]:
    try:
        for step in steps:
            if isinstance(step, Wait):
                subscription.wait(step.seconds)
            else:
                yield step
    finally:
        bus().unsubscribe(subscription)


async def _async_frames(steps: Iterator[bytes | Wait], subscription):
    # A step may read the database (on a reader thread, waited for in the step): it never runs on the event loop.
    loop = asyncio.get_running_loop()
    try:
        while (step := await loop.run_in_executor(None, next, steps, None)) is not None:
            if isinstance(step, Wait):
                await subscription.wait_async(step.seconds)
            else:
                yield step
    finally:
        bus().unsubscribe(subscription)
