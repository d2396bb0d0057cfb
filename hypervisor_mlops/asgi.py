"""ASGI entry point: hypervisor_mlops.asgi:application (what bin/run serves; see README, "Streams")."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypervisor_mlops.settings")

application = get_asgi_application()
