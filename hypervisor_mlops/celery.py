"""The Celery app, configured from Django settings (the CELERY_ namespace)."""
import os

from celery import Celery, signals

from . import logging as request_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypervisor_mlops.settings")

app = Celery("hypervisor_mlops")
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
