"""The reconcile pass repairs drifted counters and places work whose scheduling message never went out."""
import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from clusters.models import Cluster
from deployments import lifecycle, passes, tasks
from deployments.models import Deployment, Status
from tests.factories import ClusterFactory, UserFactory
from tests.invariants import assert_all_invariants

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster():
    return ClusterFactory(cpu_limit="4", ram_limit="8", gpu_limit=1)


def test_reconcile_repairs_a_counter_corrupted_behind_its_back(cluster, caplog):
    lifecycle.create_deployment(cluster=cluster, created_by=UserFactory(), name="a", docker_image="i",
                               cpu_required=1, ram_required=2, gpu_required=1)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE clusters_cluster SET cpu_allocated = 3.5, gpu_allocated = 0 WHERE id = %s",
                       [cluster.pk])
    with caplog.at_level(logging.WARNING, logger="deployments.passes"):
        assert passes.reconcile_cluster(cluster_id=cluster.pk) is True
    cluster.refresh_from_db()
    assert (cluster.cpu_allocated, cluster.ram_allocated, cluster.gpu_allocated) == (1, 2, 1)
    assert f"Cluster {cluster.pk} allocation drifted" in caplog.text
    assert passes.reconcile_cluster(cluster_id=cluster.pk) is False
    assert_all_invariants()


def test_reconcile_places_a_deployment_whose_scheduling_message_was_never_sent(cluster, monkeypatch):
    monkeypatch.setattr(lifecycle, "request_scheduling", lambda cluster_id: None)  # the message is lost
    deployment = lifecycle.create_deployment(cluster=cluster, created_by=UserFactory(), name="a",
                                            docker_image="i", cpu_required=1)
    assert Deployment.objects.get(pk=deployment.pk).status == Status.PENDING
    monkeypatch.undo()
    tasks.reconcile_clusters_task.delay()
    assert Deployment.objects.get(pk=deployment.pk).status == Status.RUNNING
    assert_all_invariants()


def test_reconcile_leaves_a_settled_cluster_alone(cluster):
    user = UserFactory()
    lifecycle.create_deployment(cluster=cluster, created_by=user, name="big", docker_image="i", gpu_required=1)
    waiting = lifecycle.create_deployment(cluster=cluster, created_by=user, name="w", docker_image="i",
                                         gpu_required=1)
    before = list(Deployment.objects.values_list("pk", "status", "preemption_count").order_by("pk"))
    assert passes.reconcile_cluster(cluster_id=cluster.pk) is False
    assert list(Deployment.objects.values_list("pk", "status", "preemption_count").order_by("pk")) == before
    assert Deployment.objects.get(pk=waiting.pk).status == Status.PENDING


def test_reconcile_of_a_deleted_cluster_is_a_no_op(cluster):
    pk = cluster.pk
    Cluster.objects.filter(pk=pk).delete()
    assert passes.reconcile_cluster(cluster_id=pk) is False


def test_beat_schedules_the_reconcile_sweep(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["reconcile-clusters"]
    assert entry["task"] == tasks.reconcile_clusters_task.name
    assert entry["schedule"] == settings.RECONCILE_INTERVAL_SECONDS == 30


def test_reconcile_command_sweeps_every_cluster_now(cluster, monkeypatch):
    monkeypatch.setattr(lifecycle, "request_scheduling", lambda cluster_id: None)
    stranded = lifecycle.create_deployment(cluster=cluster, created_by=UserFactory(), name="a", docker_image="i")
    Cluster.objects.filter(pk=cluster.pk).update(cpu_allocated=2)
    monkeypatch.undo()
    out = StringIO()
    call_command("reconcile", stdout=out)
    assert out.getvalue().strip() == "Reconciled 1 clusters; repaired drift on 1."
    assert Deployment.objects.get(pk=stranded.pk).status == Status.RUNNING
    assert_all_invariants()
