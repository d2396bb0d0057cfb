"""The Celery app, configured from Django settings (the CELERY_ namespace)."""
import os

from celery import Celery, signals
from celery.fixups.django import DjangoFixup, DjangoWorkerFixup

from .observability import logging as request_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypervisor_mlops.settings")


class KeepConnectionsWorkerFixup(DjangoWorkerFixup):
    """Celery's Django worker fixup, but database connections live across tasks as they do across requests.

    Celery closes every database connection before and after each task, so each scheduling pass paid for a
    new PostgreSQL backend (connect, authenticate, fork) that halved the rate submissions were taken at.
    Around each task this does what Django does around each request instead (`close_old_connections`): a
    connection is closed once it is older than CONN_MAX_AGE, left outside autocommit or broken by an error
    that its health check confirms, and the first query of a task first checks the connection it reuses
    (CONN_HEALTH_CHECKS), so a PostgreSQL restart or a terminated backend costs one reconnect, not a failed
    task. A worker killed mid-pass takes its connection with it; PostgreSQL rolls back the open transaction
    and releases its row locks when the socket closes, as it would for a connection per task. Forked pool
    children still drop the connections they inherit (`on_worker_process_init`).
    """

    def on_task_prerun(self, sender, **kwargs) -> None:
        if not getattr(sender.request, "is_eager", False):
            self._db.close_old_connections()

    def on_task_postrun(self, sender, **kwargs) -> None:
        if not getattr(sender.request, "is_eager", False):
            self._db.close_old_connections()
            self.close_cache()


class KeepConnectionsFixup(DjangoFixup):
    """Celery's Django fixup (django.setup, checks, DjangoTask) with the worker part above."""

    @property
    def worker_fixup(self) -> DjangoWorkerFixup:
        if self._worker_fixup is None:
            self._worker_fixup = KeepConnectionsWorkerFixup(self.app)
        return self._worker_fixup


def keep_connections_fixup(app: Celery) -> KeepConnectionsFixup:
    """Installs the fixup on the app; named in place of Celery's built-in `celery.fixups.django:fixup`."""
    return KeepConnectionsFixup(app).install()


app = Celery("hypervisor_mlops", fixups=[f"{__name__}:keep_connections_fixup"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect(weak=False)
def _log_like_the_api(loglevel=None, **kwargs) -> None:
    """Workers log through settings.LOGGING (LOG_FORMAT, request ids), at the level of their --loglevel."""
    import logging
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


# A request's id follows the tasks it enqueues into the worker's log lines.
signals.before_task_publish.connect(request_logging.put_request_id_in_headers, weak=False)
signals.task_prerun.connect(request_logging.restore_request_id, weak=False)
signals.task_postrun.connect(request_logging.clear_request_id, weak=False)
