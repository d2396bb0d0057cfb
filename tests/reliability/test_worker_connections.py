"""The Celery worker keeps its PostgreSQL connection across tasks, and survives losing it."""
import psycopg2
import pytest
from django.db import connection

from deployments import lifecycle
from deployments.models import Deployment, Status
from organizations.models import Role
from tests.threads import tenant_with_clusters
from tests.workers import database_url_for_subprocesses, real_workers, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def submit(user, cluster) -> Deployment:
    return lifecycle.create_deployment(cluster=cluster, created_by=user, name="conn", docker_image="img",
                                      priority=0, cpu_required=1, ram_required=1, gpu_required=0)


def wait_running(deployment: Deployment) -> None:
    wait_until(lambda: Deployment.objects.get(pk=deployment.pk).status == Status.RUNNING, timeout=30,
               what=f"deployment {deployment.pk} to run")


def other_backends(*, besides: tuple[int, ...] = ()) -> set[tuple[int, object]]:
    """(pid, backend_start) of the sessions on the test database other than this process's."""
    with connection.cursor() as cur:
        cur.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
        return {row for row in cur.fetchall() if row[0] not in besides}


def the_workers_backend(*, besides: tuple[int, ...] = ()) -> tuple[int, object]:
    """The one session the worker keeps open between tasks (none if it closes its connection after each)."""
    backends = other_backends(besides=besides)
    assert len(backends) == 1, f"expected the worker's one kept connection, found {backends}"
    return backends.pop()


def test_worker_reuses_one_backend_across_tasks_and_reconnects_after_it_is_terminated():
    user, (cluster,) = tenant_with_clusters(Role.DEVELOPER, 1, cpu_limit="8", ram_limit="8", gpu_limit=0)
    with real_workers("keeper"):
        wait_running(submit(user, cluster))
        first = the_workers_backend()
        wait_running(submit(user, cluster))
        assert other_backends() == {first}  # the same backend, not a new one with the same pid

        with connection.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", [first[0]])
        wait_until(lambda: not other_backends(), timeout=10, what="the worker's backend to end")
        # As after a PostgreSQL restart: the health check finds the connection dead and the task reconnects.
        wait_running(submit(user, cluster))
        second = the_workers_backend()
        assert second != first
    assert Deployment.objects.filter(status=Status.RUNNING).count() == 3


def test_worker_killed_while_its_pass_waits_for_the_cluster_lock_leaves_no_lock_behind():
    user, (cluster,) = tenant_with_clusters(Role.DEVELOPER, 1, cpu_limit="8", ram_limit="8", gpu_limit=0)
    locker = psycopg2.connect(database_url_for_subprocesses())
    try:
        with real_workers("victim") as workers:
            wait_running(submit(user, cluster))  # the worker now holds a kept connection
            with locker.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                (locker_pid,) = cur.fetchone()
                cur.execute("SELECT id FROM clusters_cluster WHERE id = %s FOR NO KEY UPDATE", [cluster.pk])
            stuck = submit(user, cluster)
            victim_pid, _ = the_workers_backend(besides=(locker_pid,))
            wait_until(lambda: _waits_for_lock(victim_pid), timeout=10, what="the pass to wait for the lock")
            workers.kill("victim")
            locker.rollback()
            wait_until(lambda: not other_backends(besides=(locker_pid,)), timeout=10,
                       what="the killed worker's backend to end")
            # The killed pass cleared the cluster's scheduling marker before it read anything, so the next
            # submission sends a pass that places both.
            workers.start("replacement")
            after = submit(user, cluster)
            wait_running(after)
            wait_running(stuck)
    finally:
        locker.close()


def _waits_for_lock(pid: int) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cur.fetchone()
    return row is not None and row[0] == "Lock"
