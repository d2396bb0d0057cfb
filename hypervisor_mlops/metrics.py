"""Prometheus metrics: process-level series shared through multiprocess files, the database's at scrape time.

Counters and histograms that every process observes (HTTP requests in each gunicorn worker, scheduling
passes in each Celery worker, ledger repairs) are written by prometheus_client in multiprocess mode into
PROMETHEUS_MULTIPROC_DIR and summed over every process's file when scraped. What the database knows
(deployments, capacity, queue, admissions, preemptions, admission wait, agents) is read when scraped, in a
fixed handful of queries whatever the number of deployments, so it is exact across processes and restarts.
"""
import hmac
from datetime import timedelta

from django.conf import settings
from django.db.models import (
    Case,
    CharField,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from .api.exceptions import not_found

# --- Process-level series (multiprocess mode) --------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "hypervisor_http_requests", "HTTP requests answered, by method, route (URL pattern name) and status.",
    ["method", "route", "status"], registry=None,
)
HTTP_REQUEST_DURATION = Histogram(
    "hypervisor_http_request_duration_seconds", "Time to answer an HTTP request, by method and route.",
    ["method", "route"], registry=None,
)
SCHEDULING_PASS = Histogram(
    "hypervisor_scheduling_pass_seconds", "Duration of one scheduling pass over one cluster.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=None,
)
LEDGER_DRIFT = Counter(
    "hypervisor_ledger_drift", "Clusters whose allocation counters reconcile found drifted and repaired.",
    registry=None,
)

# Submission to first start; a queue may hold work for hours.
ADMISSION_WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400)
RESOURCES = ("cpu", "ram", "gpu")


class DatabaseCollector:
    """The scheduler's picture, read from the database at scrape time in six queries."""

    def collect(self):
        from agents.models import Agent
        from clusters.models import Cluster
        from deployments.models import Deployment, DeploymentEvent, EventKind, Status

        clusters = list(Cluster.objects.order_by("pk").values_list(
            "pk", "cpu_limit", "ram_limit", "gpu_limit", "cpu_allocated", "ram_allocated", "gpu_allocated"))
        capacity = GaugeMetricFamily("hypervisor_cluster_capacity", "A cluster's capacity, by resource.",
                                     labels=["cluster", "resource"])
        allocated = GaugeMetricFamily("hypervisor_cluster_allocated",
                                      "What running deployments hold on a cluster, by resource.",
                                      labels=["cluster", "resource"])
        for pk, *values in clusters:
            for resource, limit, held in zip(RESOURCES, values[:3], values[3:]):
                capacity.add_metric([str(pk), resource], float(limit))
                allocated.add_metric([str(pk), resource], float(held))
        yield capacity
        yield allocated

        by_status = {(c, s): n for c, s, n in Deployment.objects.order_by().values("cluster_id", "status")
                     .annotate(n=Count("pk")).values_list("cluster_id", "status", "n")}
        deployments = GaugeMetricFamily("hypervisor_deployments", "Deployments, by cluster and status.",
                                        labels=["cluster", "status"])
        for pk, *_ in clusters:
            for status in Status.values:
                deployments.add_metric([str(pk), status], by_status.get((pk, status), 0))
        yield deployments

        yield self._pending_by_reason(Deployment, Status)
        yield from self._events(DeploymentEvent, EventKind, [pk for pk, *_ in clusters])
        yield self._admission_wait(Deployment, DeploymentEvent, EventKind)

        agent_up = GaugeMetricFamily("hypervisor_agent_up", "1 while a live agent is online, else 0.",
                                     labels=["cluster", "agent"])
        now = timezone.now()
        for agent in Agent.objects.live().order_by("pk").only("pk", "cluster_id", "created_at", "last_seen_at"):
            agent_up.add_metric([str(agent.cluster_id), str(agent.pk)],
                                1 if agent.status_at(now) == Agent.Status.ONLINE else 0)
        yield agent_up

    @staticmethod
    def _pending_by_reason(Deployment, Status):
        edges = Deployment.depends_on.through.objects
        unfinished = edges.filter(from_deployment=OuterRef("pk")).exclude(to_deployment__status=Status.COMPLETED)
        reason = Case(
            When(Exists(unfinished), then=Value("dependencies")),
            When(Q(cpu_required__gt=F("cluster__cpu_limit")) | Q(ram_required__gt=F("cluster__ram_limit"))
                 | Q(gpu_required__gt=F("cluster__gpu_limit")), then=Value("exceeds_capacity")),
            default=Value("resources"), output_field=CharField(),
        )
        rows = (Deployment.objects.pending().order_by().annotate(reason=reason)
                .values("cluster_id", "reason").annotate(n=Count("pk")).values_list("cluster_id", "reason", "n"))
        family = GaugeMetricFamily("hypervisor_pending_deployments", "Pending deployments, by why they wait.",
                                   labels=["cluster", "reason"])
        for cluster_id, why, n in rows:
            family.add_metric([str(cluster_id), why], n)
        return family

    @staticmethod
    def _events(DeploymentEvent, EventKind, cluster_ids):
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
    def _admission_wait(Deployment, DeploymentEvent, EventKind):
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


def registry() -> CollectorRegistry:
    """Every process's counters and histograms from the multiprocess files, and the database's picture."""
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    registry.register(DatabaseCollector())
    return registry


def metrics(request):
    """GET /metrics: the Prometheus text format, only with METRICS_TOKEN set and presented as a bearer token."""
    token = settings.METRICS_TOKEN
    if not token:
        return not_found(request)
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    presented = request.headers.get("Authorization", "")
    if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
        detail = "Invalid metrics token." if presented else "Authentication credentials were not provided."
        response = JsonResponse({"detail": detail}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
