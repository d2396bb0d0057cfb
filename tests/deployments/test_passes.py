"""The scheduling pass against the database: constant queries, and the plan written exactly."""
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments import lifecycle, passes
from deployments.models import Deployment, DeploymentEvent, EventKind, Status
from tests.factories import ClusterFactory, UserFactory
from tests.invariants import assert_capacity_and_exact_availability, assert_quiescent

pytestmark = pytest.mark.django_db


def bulk_deployments(cluster, count: int, *, status=Status.PENDING, priority=0, gpu=0, cpu="1"):
    now, project = timezone.now(), cluster.organization.default_project
    return Deployment.objects.bulk_create(
        Deployment(cluster=cluster, project=project, name=f"d{n}", docker_image="img", priority=priority, cpu_required=Decimal(cpu),
                   gpu_required=gpu, status=status, started_at=now if status == Status.RUNNING else None)
        for n in range(count)
    )


def pass_queries(cluster) -> int:
    with CaptureQueriesContext(connection) as queries:
        passes.schedule_cluster(cluster_id=cluster.pk)
    return len(queries)


def test_a_pass_issues_the_same_number_of_queries_for_ten_or_a_thousand_starts():
    small, large = ClusterFactory(cpu_limit="10000"), ClusterFactory(cpu_limit="10000")
    bulk_deployments(small, 10)
    bulk_deployments(large, 1000)
    assert pass_queries(small) == pass_queries(large)
    assert Deployment.objects.filter(status=Status.RUNNING).count() == 1010


def test_a_pass_preempting_many_victims_for_many_preemptors_stays_constant_too():
    few, many = ClusterFactory(cpu_limit="1000", gpu_limit=4), ClusterFactory(cpu_limit="1000", gpu_limit=400)
    for cluster, count in ((few, 4), (many, 400)):
        bulk_deployments(cluster, count, status=Status.RUNNING, priority=0, gpu=1, cpu="0")
        cluster.gpu_allocated = count
        cluster.save()
        bulk_deployments(cluster, count, priority=5, gpu=1, cpu="0")
    assert pass_queries(few) == pass_queries(many)
    victims = Deployment.objects.filter(cluster=many, priority=0)
    assert set(victims.values_list("status", "preemption_count")) == {(Status.PENDING, 1)}
    first = victims.order_by("pk").first()
    event = DeploymentEvent.objects.get(deployment=first, kind=EventKind.PREEMPTED)
    assert first.status_message.startswith("Preempted by deployment #") and first.status_message.endswith("(priority 5).")
    assert event.message == f"{first.status_message[:-1]} after 0 s of running." and first.lost_seconds >= 0
    assert_capacity_and_exact_availability()
    assert_quiescent()


def test_running_a_pass_twice_changes_nothing_more():
    cluster = ClusterFactory(cpu_limit="4")
    lifecycle.create_deployment(cluster=cluster, created_by=UserFactory(), name="a", docker_image="i",
                               cpu_required=3)
    bulk_deployments(cluster, 3)
    passes.schedule_cluster(cluster_id=cluster.pk)
    state = list(Deployment.objects.order_by("pk").values_list("status", "started_at", "preemption_count"))
    events = DeploymentEvent.objects.count()
    assert passes.schedule_cluster(cluster_id=cluster.pk).starts == ()
    assert list(Deployment.objects.order_by("pk").values_list("status", "started_at", "preemption_count")) == state
    assert DeploymentEvent.objects.count() == events
