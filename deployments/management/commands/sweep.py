"""sweep: what beat runs periodically, in a loop, for the embedded default, which has no Celery beat."""
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from agents.liveness import requeue_lost_agents
from deployments.deadlines import end_overdue


class Command(BaseCommand):
    help = ("Every TIME_LIMIT_SWEEP_SECONDS, end the deployments past their time limit; every AGENT_SWEEP_SECONDS, "
            "requeue the running deployments of agents silent too long.")

    def handle(self, *args, **options) -> None:
        last_agent_sweep = float("-inf")
        while True:
            close_old_connections()
            end_overdue()
            if time.monotonic() - last_agent_sweep >= settings.AGENT_SWEEP_SECONDS:
                last_agent_sweep = time.monotonic()
                requeue_lost_agents()
            time.sleep(settings.TIME_LIMIT_SWEEP_SECONDS)
