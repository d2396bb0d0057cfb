"""What the streams of deployments read: a deployment's output line by line, its events, and the changes of the
deployments a caller sees. Each is a reader object whose `read()` returns the frames that are new since its
last read and whether the stream is over; `hypervisor_mlops.streams.responses` serves them.

Resuming is exact because ids come from the writing transaction: a line's id is its place in all the output the
deployment ever wrote (the log row counts what trimming dropped, in the transaction that appends), and an event's
id is its primary key, which for one deployment is a sequence in commit order: every transaction that writes a
deployment's events first takes its cluster's lock (scheduling passes, agents' reports, finishes) or its row lock
(a dependency resolved or failed, for pending deployments only, whose rows a pass must lock to start them), or
created the row, so no event of it commits after one with a higher id. A new writer of events must do the same.
"""
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from django.db.models import Exists, F, IntegerField, OuterRef, Q, Value
from django.db.models.functions import Cast, Coalesce, Greatest, Substr
from django.utils import timezone

from hypervisor_mlops.streams.responses import Read, frame

from .models import Deployment, DeploymentEvent, RunAttempt
from .output import complete_lines

# After a deployment finished, how long its last container may still be stopping (and writing) before the
# follow ends anyway: beyond its stop grace period, an agent that went silent must not hold followers forever.
SETTLE_SECONDS = 10
# Events of different deployments commit out of id order; one this old is taken to be in place (see `Changes`).
SETTLED_AFTER_SECONDS = 10


def _over(row: dict) -> bool:
    """Finished, and no container of it can write more (or it has had time enough to)."""
    if row["status"] in Deployment.ACTIVE_STATUSES:
        return False
    grace = timedelta(seconds=row["stop_grace_seconds"] + SETTLE_SECONDS)
    return not row["open"] or row["finished_at"] is None or row["finished_at"] + grace < timezone.now()


class LogLines:
    """A deployment's output, one event per complete line; a last line without its newline is sent at the end.

    From the line after `after` (a Last-Event-ID), or the last `tail` lines when there is none.
    """

    def __init__(self, deployment_id: int, *, after: int | None, tail: int) -> None:
        self.deployment_id = deployment_id
        self._after, self._tail = after, tail
        self._next_id: int | None = None  # the id of the next line to send
        self._offset = 0  # where that line starts, counting every character ever written

    def read(self) -> Read:
        row = self._row()
        if row is None:
            return [], True
        text, dropped_lines, dropped_chars, ended = row["text"] or "", row["lines"], row["chars"], _over(row)
        frames = []
        lines, rest = complete_lines(text)
        if ended and rest:
            lines.append(rest)
        if self._next_id is None:
            start = self._start(len(lines), dropped_lines, frames)
        elif self._offset < dropped_chars or self._next_id <= dropped_lines:
            frames.append(frame("", event="reset"))  # what was to come next has been trimmed away
            start = 0
        else:
            start = 0  # `text` begins where the last read stopped
            dropped_lines = self._next_id - 1
            dropped_chars = self._offset
        sent = lines[start:]
        frames.extend(frame(line.removesuffix("\r"), id=dropped_lines + start + i + 1) for i, line in enumerate(sent))
        self._next_id = dropped_lines + len(lines) + 1
        self._offset = dropped_chars + sum(len(line) + 1 for line in lines)
        return frames, ended

    def _start(self, count: int, dropped_lines: int, frames: list[bytes]) -> int:
        if self._after is None:
            return max(count - self._tail, 0)
        if self._after < dropped_lines:
            frames.append(frame("", event="reset"))
            return 0
        return min(self._after - dropped_lines, count)

    def _row(self) -> dict | None:
        # The status and the text in one statement: one snapshot, so a finish is never seen before its output.
        # Where the text still unsent starts (1-based), within the kept text whose size is bounded.
        log_start = Cast(Greatest(Value(self._offset + 1) - Coalesce(F("log__dropped_chars"), 0), Value(1)),
                         IntegerField())
        open_runs = RunAttempt.objects.filter(deployment=OuterRef("pk"), state__in=RunAttempt.OPEN_STATES)
        return (Deployment.objects.filter(pk=self.deployment_id)
                .annotate(text=Substr("log__text", log_start), lines=Coalesce(F("log__dropped_lines"), 0),
                          chars=Coalesce(F("log__dropped_chars"), 0), open=Exists(open_runs))
                .values("status", "finished_at", "stop_grace_seconds", "text", "lines", "chars", "open").first())


class Events:
    """A deployment's events after `after` (all of them when None), each as `event: <kind>`."""

    def __init__(self, deployment_id: int, *, after: int | None, serialize: Callable[[list], list[dict]]) -> None:
        self.deployment_id = deployment_id
        self._after = after or 0
        self._serialize = serialize

    def read(self) -> Read:
        # The status first: an event that finished it committed with it, so the read after sees it.
        status = Deployment.objects.filter(pk=self.deployment_id).values_list("status", flat=True).first()
        events = list(DeploymentEvent.objects.filter(deployment_id=self.deployment_id, pk__gt=self._after)
                      .order_by("pk"))
        if events:
            self._after = events[-1].pk
        frames = [frame(data, event=event.kind, id=event.pk)
                  for event, data in zip(events, self._serialize(events), strict=True)]
        return frames, status not in Deployment.ACTIVE_STATUSES


class Changes:
    """The deployments a caller sees whose status or run changed: the current JSON of each, at least once per
    change, read afresh each time so a later frame never shows an older state than an earlier one.

    Events are the feed (every change of status or of a container's state writes one). Their ids commit out of
    order across deployments, so this re-reads the last SETTLED_AFTER_SECONDS of events on every read, skipping
    those already sent, and hands out as the frames' id only a point below which every event has committed.
    Resuming from it sends again what changed shortly before (at least once, never stale); without a
    Last-Event-ID the stream starts with every pending or running deployment the caller sees. A deployment this
    stream sent that no longer matches its filters (a `?status=running` watch, and it completed) is sent once
    more as it now is, as a watch tells an object leaving its selector, and then no longer.
    """

    def __init__(self, *, after: int | None, select: Callable[[Q], list[dict]],
                 select_unfiltered: Callable[[Q], list[dict]]) -> None:
        self._select = select
        self._select_unfiltered = select_unfiltered
        self._floor = after
        self._sent: set[int] = set()
        self._marks: deque[tuple[float, int]] = deque()
        self._shown: set[int] = set()  # deployments sent that matched the filters then

    def read(self) -> Read:
        now = time.monotonic()
        if self._floor is None:
            self._floor = _settled_event_id()
            return self._frames(self._matching(Q(status__in=Deployment.ACTIVE_STATUSES))), False
        rows = list(DeploymentEvent.objects.filter(pk__gt=self._floor).order_by("pk")
                    .values_list("pk", "deployment_id"))
        changed = {deployment for pk, deployment in rows if pk not in self._sent}
        self._sent.update(pk for pk, _ in rows)
        if rows:
            self._marks.append((now, rows[-1][0]))
        while self._marks and self._marks[0][0] <= now - SETTLED_AFTER_SECONDS:
            self._floor = max(self._floor, self._marks.popleft()[1])
        self._sent = {pk for pk in self._sent if pk > self._floor}
        if not changed:
            return [], False
        matching = self._matching(Q(pk__in=changed))
        left = (changed & self._shown) - {d["id"] for d in matching}
        self._shown -= left
        return self._frames(matching + (self._select_unfiltered(Q(pk__in=left)) if left else [])), False

    def _matching(self, condition: Q) -> list[dict]:
        deployments = self._select(condition)
        self._shown.update(d["id"] for d in deployments)
        return deployments

    def _frames(self, deployments: list[dict]) -> list[bytes]:
        return [frame(data, event="deployment", id=self._floor) for data in deployments]


def _settled_event_id() -> int:
    """The newest event written at least SETTLED_AFTER_SECONDS ago: every event before it has committed."""
    old = timezone.now() - timedelta(seconds=SETTLED_AFTER_SECONDS)
    return DeploymentEvent.objects.filter(at__lte=old).order_by("-pk").values_list("pk", flat=True).first() or 0
