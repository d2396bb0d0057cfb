"""WSGI entry of the ceiling app (gunicorn bench.ceiling.wsgi:application, run from the repository root)."""
import os

from django.core.wsgi import get_wsgi_application

# Forced: the environment the benchmark passes names the service's settings, for the Celery workers.
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.ceiling.settings"
application = get_wsgi_application()
