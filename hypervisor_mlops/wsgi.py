"""WSGI entry point: hypervisor_mlops.wsgi:application."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypervisor_mlops.settings")

application = get_wsgi_application()
