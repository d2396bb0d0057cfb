"""Log followers: one thread per container reads its raw output into memory until the server holds it."""
from __future__ import annotations

import logging
import threading

from cluster_agent.decisions import Observed, log_cut
from cluster_agent.runtime import ERRORS, Runtime

log = logging.getLogger(__name__)

FOLLOW_RETRY_SECONDS = 0.5
# Each poll reads the whole log: often enough for "within a few seconds", rare enough that a hundred
# containers do not keep the runtime busy. An exit is read at once (see `finished`).
POLL_SECONDS = 1.0


class LogFollower:
    """The output of one container, read from byte 0; bytes leave the buffer once the server acknowledges them."""

    def __init__(self, runtime: Runtime, container: Observed) -> None:
        self.runtime = runtime
        self.container_id = container.container_id
        self.key = container.key
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._read = 0  # bytes read from the stream so far: the buffer ends at this absolute offset
        self._acknowledged = 0
        self._done = False
        self._closed = threading.Event()
        self._finished = threading.Event()
        self._wake = threading.Event()

    def start(self) -> LogFollower:
        threading.Thread(target=self._run, daemon=True, name=f"logs-{self.container_id[:12]}").start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._wake.set()

    def finished(self) -> None:
        """The runtime listed the container as finished: whatever is read after this is all of its output."""
        self._finished.set()
        self._wake.set()

    def take(self, limit: int) -> tuple[int, bytes, bool]:
        """(absolute offset, bytes to ship now, whether that is all the container will ever write)."""
        with self._lock:
            length = log_cut(self._buffer, self._done, limit)
            return self._read - len(self._buffer), bytes(self._buffer[:length]), self._done and length == len(self._buffer)

    def acknowledge(self, offset: int) -> None:
        with self._lock:
            self._acknowledged = max(self._acknowledged, offset)
            self._trim()

    def _trim(self) -> None:
        # After a restart the server may already hold bytes not yet re-read: those are dropped as they arrive.
        start = self._read - len(self._buffer)
        del self._buffer[: max(0, self._acknowledged - start)]

    def _append(self, data: bytes) -> None:
        with self._lock:
            self._buffer += data
            self._read += len(data)
            self._trim()

    def _run(self) -> None:
        while not self._closed.is_set():
            # Known finished before the read: then the read holds all the output.
            finished = self._finished.is_set()
            try:
                if self.runtime.lossless_follow:
                    self._follow()
                else:
                    self._append_beyond(self.runtime.logs(self.container_id))
            except ERRORS as exc:
                log.warning("reading the log of %s failed: %s", self.container_id[:12], exc)
                finished = False
            if finished:
                with self._lock:
                    self._done = True
                return
            self._wake.wait(FOLLOW_RETRY_SECONDS if self.runtime.lossless_follow else POLL_SECONDS)
            self._wake.clear()

    def _follow(self) -> None:
        # A stream can end or break while the container still runs (a restarted runtime): it is then read
        # again from the start, skipping what was already read, so each byte is kept exactly once.
        received = 0
        for chunk in self.runtime.follow_logs(self.container_id):
            fresh = chunk[max(0, self._read - received):]
            received += len(chunk)
            if fresh:
                self._append(fresh)

    def _append_beyond(self, output: bytes) -> None:
        if len(output) > self._read:
            self._append(output[self._read:])
