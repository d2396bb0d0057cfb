"""Request ids for log lines: the current request's id, a filter stamping it on records, a JSON formatter.

The id lives in a context variable for the request (set by RequestIdMiddleware) and travels to the Celery
tasks a request enqueues in the message headers, so the worker's log lines of that task carry it too.
"""
import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID_HEADER = "X-Request-ID"
# The Celery message header carrying the id from the process that enqueued a task to the worker.
TASK_HEADER = "hypervisor_request_id"
_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Known context a log line may carry, when the code logging it passes them (`extra={"cluster": pk}`).
CONTEXT_FIELDS = ("user", "cluster", "deployment")


def accepted_request_id(value: str | None) -> str:
    """The caller's id when it is 1 to 128 characters of [A-Za-z0-9._-], otherwise a new one."""
    if value is not None and _VALID_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamps `request_id` (None outside a request or task) on every record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and user/cluster/deployment if known."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id.get()),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# --- Celery: carry the id from the publisher to the worker ------------------------------------------------

def put_request_id_in_headers(headers: dict | None = None, **kwargs) -> None:
    """before_task_publish: the enqueuing request's id goes into the message headers."""
    current = request_id.get()
    if headers is not None and current is not None:
        headers.setdefault(TASK_HEADER, current)


_task_tokens: dict[str, object] = {}


def restore_request_id(task_id: str | None = None, task=None, **kwargs) -> None:
    """task_prerun: the worker's log lines of this task carry the id of the request that enqueued it."""
    carried = getattr(task.request, TASK_HEADER, None) if task is not None else None
    # Eager tasks run inside the request itself: no header, and the request's own id stays.
    if carried is not None and task_id is not None:
        _task_tokens[task_id] = request_id.set(accepted_request_id(carried))


def clear_request_id(task_id: str | None = None, **kwargs) -> None:
    """task_postrun: the next task on this worker starts without the previous one's id."""
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        request_id.reset(token)
