"""reconcile: one reconcile sweep over every cluster, now, in this process."""
from django.core.management.base import BaseCommand

from clusters.models import Cluster
from deployments.metrics import LEDGER_DRIFT
from deployments.passes import reconcile_cluster


class Command(BaseCommand):
    help = "Repair drifted allocation counters and place stranded work on every cluster (what beat runs)."

    def handle(self, *args, **options) -> None:
        cluster_ids = list(Cluster.objects.values_list("pk", flat=True))
        drifted = [pk for pk in cluster_ids if reconcile_cluster(cluster_id=pk)]
        LEDGER_DRIFT.inc(len(drifted))
        self.stdout.write(f"Reconciled {len(cluster_ids)} clusters; repaired drift on {len(drifted)}.")
