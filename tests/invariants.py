"""What must hold in the database whatever happened before: checked after concurrency, faults and load."""
from decimal import Decimal

from django.db.models import Count, Sum

from clusters.models import Cluster
from deployments.models import Deployment, DeploymentEvent, EventKind, Status
from deployments.snapshot import read_queue
from scheduling.planner import plan
from scheduling.resources import Resources


def running_sum(cluster: Cluster) -> Resources:
    sums = Deployment.objects.filter(cluster=cluster, status=Status.RUNNING).aggregate(
        cpu=Sum("cpu_required", default=Decimal(0)), ram=Sum("ram_required", default=Decimal(0)),
        gpu=Sum("gpu_required", default=0),
    )
    return Resources(sums["cpu"], sums["ram"], sums["gpu"])


def assert_capacity_and_exact_availability() -> None:
    """No cluster holds more than it has, and its counters equal what running deployments hold, exactly."""
    for cluster in Cluster.objects.all():
        held = running_sum(cluster)
        assert held.fits_in(cluster.capacity), f"{cluster} over capacity: {held} > {cluster.capacity}"
        assert cluster.allocated == held, f"{cluster} counters {cluster.allocated} != running sum {held}"


def assert_quiescent() -> None:
    """Nothing left to do: no pending deployment fits, none could preempt strictly lower priority."""
    for cluster in Cluster.objects.all():
        running, pending = read_queue(cluster_id=cluster.pk)
        leftover = plan(cluster.capacity, running, pending)
        assert leftover.starts == () and leftover.preemptions == (), f"{cluster} not settled: {leftover}"


def assert_every_deployment_has_one_queued_event() -> None:
    counts = DeploymentEvent.objects.filter(kind=EventKind.QUEUED).values("deployment").annotate(n=Count("id"))
    assert all(row["n"] == 1 for row in counts)
    assert counts.count() == Deployment.objects.count()


def assert_all_invariants() -> None:
    assert_capacity_and_exact_availability()
    assert_quiescent()
    assert_every_deployment_has_one_queued_event()
