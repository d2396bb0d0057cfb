"""The Celery app, configured from Django settings (the CELERY_ namespace)."""
import os

from celery import Celery, signals

from . import logging as request_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypervisor_mlops.settings")

app = Celery("hypervisor_mlops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# A request's id follows the tasks it enqueues into the worker's log lines.
signals.before_task_publish.connect(request_logging.put_request_id_in_headers, weak=False)
signals.task_prerun.connect(request_logging.restore_request_id, weak=False)
signals.task_postrun.connect(request_logging.clear_request_id, weak=False)
