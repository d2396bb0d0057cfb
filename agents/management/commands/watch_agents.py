"""watch_agents: the lost-agent sweep in a loop, for the embedded default, which has no Celery beat."""
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from agents.liveness import requeue_lost_agents


class Command(BaseCommand):
    help = "Every AGENT_SWEEP_SECONDS, requeue the running deployments of agents silent too long (what beat runs)."

    def handle(self, *args, **options) -> None:
        while True:
            close_old_connections()
            requeue_lost_agents()
            time.sleep(settings.AGENT_SWEEP_SECONDS)
