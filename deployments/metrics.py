"""Metrics of deployments and scheduling (the collector is named in settings.METRICS_COLLECTORS).

SCHEDULING_PASS and LEDGER_DRIFT are observed in whichever process runs a pass or a reconcile, and summed over
every process's file when scraped; the collector reads the database's picture at scrape time.
"""
from collections import Counter as Tally
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, FloatField, OuterRef, Q, Subquery, Sum
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from . import insight
from .models import Deployment, DeploymentEvent, EndReason, EventKind, Status, passing_its_check

SCHEDULING_PASS = Histogram(
    "hypervisor_scheduling_pass_seconds", "Duration of one scheduling pass over one cluster.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=None,
)
LEDGER_DRIFT = Counter(
    "hypervisor_ledger_drift", "Clusters whose allocation counters reconcile found drifted and repaired.",
    registry=None,
)

RESOURCES = ("cpu", "ram", "gpu")
# Submission to first start; a queue may hold work for hours.
ADMISSION_WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400)


class DeploymentCollector:
    """Deployments by status, pending ones by why they wait, what each project's running ones hold, admissions,
    preemptions and the admission wait, read from the database at scrape time in a fixed handful of queries."""

    def collect(self):
        # The reasons are `deployments.insight`'s, as the API and the admin give them, for every cluster.
        reasons = insight.pending_reasons()
        cluster_ids = list(reasons)
        by_status, by_end, lost, ready, held = Tally(), Tally(), Tally(), Tally(), Tally()
        # Resource-seconds thrown away: each deployment's lost run time times what it holds while it runs.
        thrown_away = {f"lost_{r}": Sum(F("lost_seconds") * F(f"{r}_required"), output_field=FloatField())
                       for r in RESOURCES}
        # What they ask for, by project: what a project holds, from its running rows, in the same query.
        asked = {f"asked_{r}": Sum(f"{r}_required") for r in RESOURCES}
        for row in (Deployment.objects.order_by().values("cluster_id", "project_id", "status", "end_reason")
                    .annotate(n=Count("pk"), ready=Count("pk", filter=Q(health_check__isnull=False)
                                                         & Q(passing_its_check())), **thrown_away, **asked)):
            cluster_id, running = row["cluster_id"], row["status"] == Status.RUNNING
            by_status[cluster_id, row["status"]] += row["n"]
            by_end[cluster_id, row["end_reason"]] += row["n"]
            ready[cluster_id] += row["ready"] if running else 0
            for resource in RESOURCES:
                lost[cluster_id, resource] += row[f"lost_{resource}"] or 0.0
                # Every project with deployments on the cluster shows, at zero when none of them runs.
                held[cluster_id, row["project_id"], resource] += row[f"asked_{resource}"] if running else 0
        deployments = GaugeMetricFamily("hypervisor_deployments", "Deployments, by cluster and status.",
                                        labels=["cluster", "status"])
        finished = CounterMetricFamily("hypervisor_deployments_finished", "Finished deployments, by why they ended.",
                                       labels=["cluster", "end_reason"])
        thrown = CounterMetricFamily(
            "hypervisor_preemption_lost_seconds",
            "Resource-seconds thrown away by preemptions and requeues (cpu core-, ram GB-, gpu GPU-seconds).",
            labels=["cluster", "resource"])
        serving = GaugeMetricFamily("hypervisor_deployments_ready",
                                    "Running deployments with a health check that passes.", labels=["cluster"])
        for pk in cluster_ids:
            serving.add_metric([str(pk)], ready[pk])
            for status in Status.values:
                deployments.add_metric([str(pk), status], by_status[pk, status])
            for end_reason in EndReason.values:
                finished.add_metric([str(pk), end_reason], by_end[pk, end_reason])
            for resource in RESOURCES:
                thrown.add_metric([str(pk), resource], lost[pk, resource])
        usage = GaugeMetricFamily("hypervisor_project_usage",
                                  "What a project's running deployments hold on a cluster, by resource.",
                                  labels=["cluster", "project", "resource"])
        for (cluster_id, project_id, resource), amount in sorted(held.items()):
            usage.add_metric([str(cluster_id), str(project_id), resource], float(amount))
        yield deployments
        yield usage
        yield finished
        yield thrown
        yield serving
        yield self._pending_by_reason(reasons)
        yield from self._events(cluster_ids)
        yield self._admission_wait()

    @staticmethod
    def _pending_by_reason(reasons: dict[int, Tally]):
        family = GaugeMetricFamily("hypervisor_pending_deployments", "Pending deployments, by why they wait.",
                                   labels=["cluster", "reason"])
        for cluster_id, counts in reasons.items():
            for why, n in sorted(counts.items()):
                family.add_metric([str(cluster_id), why], n)
        return family

    @staticmethod
    def _events(cluster_ids):
        counts = {(c, k): n for c, k, n in DeploymentEvent.objects.order_by()
                  .filter(kind__in=(EventKind.SCHEDULED, EventKind.PREEMPTED))
                  .values("deployment__cluster_id", "kind").annotate(n=Count("pk"))
                  .values_list("deployment__cluster_id", "kind", "n")}
        admissions = CounterMetricFamily("hypervisor_admissions", "Starts of deployments (scheduled events).",
                                         labels=["cluster"])
        preemptions = CounterMetricFamily("hypervisor_preemptions", "Preemptions of running deployments.",
                                          labels=["cluster"])
        for pk in cluster_ids:
            admissions.add_metric([str(pk)], counts.get((pk, EventKind.SCHEDULED), 0))
            preemptions.add_metric([str(pk)], counts.get((pk, EventKind.PREEMPTED), 0))
        yield admissions
        yield preemptions

    @staticmethod
    def _admission_wait():
        first_start = Subquery(DeploymentEvent.objects.filter(deployment=OuterRef("pk"), kind=EventKind.SCHEDULED)
                               .order_by("at").values("at")[:1])
        waits = (Deployment.objects.order_by().annotate(first_start=first_start).filter(first_start__isnull=False)
                 .annotate(wait=ExpressionWrapper(F("first_start") - F("created_at"), output_field=DurationField())))
        buckets = {f"le_{n}": Count("pk", filter=Q(wait__lte=timedelta(seconds=bound)))
                   for n, bound in enumerate(ADMISSION_WAIT_BUCKETS)}
        row = waits.aggregate(count=Count("pk"), total=Sum("wait"), **buckets)
        family = HistogramMetricFamily("hypervisor_admission_wait_seconds",
                                       "Submission to first start of each deployment started at least once.")
        family.add_metric(
            [],
            [(_bound(bound), row[f"le_{n}"]) for n, bound in enumerate(ADMISSION_WAIT_BUCKETS)]
            + [("+Inf", row["count"])],
            sum_value=row["total"].total_seconds() if row["total"] is not None else 0.0,
        )
        return family


def _bound(seconds: float) -> str:
    return str(float(seconds))



